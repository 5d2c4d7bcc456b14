//===- ZeroSettingsTest.cpp - tests for the ZeRO engine's settings -------===//
//
// The settings zero.cpp states, read from configs parsed here: DeepSpeed's
// defaults (FusedAdam, lr_schedules.py, the fp16 section), the gradient
// accumulation steps derived from the batch keys, how unsupported types are
// reported (warning under --check, error for code generation), and the
// exact shortest printing of doubles.
//
//===----------------------------------------------------------------------===//

#include "Lower/ZeroSettings.h"
#include "Support/JsonDoc.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

using namespace autotpc;

namespace {

struct Lowered {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS{Text};
  DiagEngine Diags{SM, OS};
  std::unique_ptr<JsonDoc> Doc;
  Config C;
  std::optional<ZeroSettings> Z;

  Lowered(llvm::StringRef Json, bool ForCodegen, std::optional<int64_t> Dp = std::nullopt) {
    unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Json, "ds.json"), llvm::SMLoc());
    Doc = JsonDoc::parse(Diags, ID);
    EXPECT_TRUE(Doc && parseConfig(*Doc, Diags, C)) << OS.str();
    Topology Topo;
    Topo.Dp = Dp;
    Z = lowerZeroSettings(C, Topo, 2, Diags, ForCodegen);
  }
  std::string out() { return OS.str(); }
  bool says(llvm::StringRef Needle) { return llvm::StringRef(out()).contains(Needle); }
};

TEST(ZeroSettingsTest, FormatDoubleIsShortestAndExact) {
  EXPECT_EQ(formatDouble(0.001), "0.001");
  EXPECT_EQ(formatDouble(1e-8), "1e-08");
  EXPECT_EQ(formatDouble(2e-5), "2e-05");
  EXPECT_EQ(formatDouble(0.9), "0.9");
  EXPECT_EQ(formatDouble(0.999), "0.999");
  EXPECT_EQ(formatDouble(1.0), "1.0");
  EXPECT_EQ(formatDouble(0.0), "0.0");
  EXPECT_EQ(formatDouble(-0.5), "-0.5");
  EXPECT_EQ(formatDouble(500000000.0), "5e+08");
  EXPECT_EQ(formatDouble(1.0 / 3.0), "0.3333333333333333"); // 16 digits read back exactly
  EXPECT_EQ(formatDouble(0.1 + 0.2), "0.30000000000000004"); // needs all 17 digits
  std::mt19937_64 Gen(7);
  std::uniform_real_distribution<double> Dist(-1e6, 1e6);
  for (int I = 0; I < 2000; ++I) {
    double D = Dist(Gen) * std::pow(10.0, double(int(Gen() % 40) - 20));
    EXPECT_EQ(std::strtod(formatDouble(D).c_str(), nullptr), D) << formatDouble(D);
  }
}

TEST(ZeroSettingsTest, DeepSpeedDefaults) {
  Lowered L("{}", /*ForCodegen=*/true);
  ASSERT_TRUE(L.Z) << L.out();
  const ZeroSettings &Z = *L.Z;
  EXPECT_EQ(Z.Stage.Value, 0);
  EXPECT_EQ(Z.Prec.Value, Precision::FP32);
  EXPECT_EQ(Z.TpSize, 2);
  EXPECT_EQ(Z.DpSize, 0);
  EXPECT_EQ(Z.GradAccum.Value, 1);
  EXPECT_EQ(Z.GradAccum.Why, "default");
  EXPECT_EQ(Z.GradientClipping.Value, 0.0);
  EXPECT_EQ(Z.ReduceBucketSize.Value, 500000000);
  // FusedAdam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, adam_w_mode=True, bias_correction=True).
  EXPECT_EQ(Z.AdamW.Lr.Value, 1e-3);
  EXPECT_EQ(Z.AdamW.Beta1.Value, 0.9);
  EXPECT_EQ(Z.AdamW.Beta2.Value, 0.999);
  EXPECT_EQ(Z.AdamW.Eps.Value, 1e-8);
  EXPECT_EQ(Z.AdamW.WeightDecay.Value, 0.0);
  EXPECT_TRUE(Z.AdamW.AdamWMode.Value);
  EXPECT_TRUE(Z.AdamW.BiasCorrection.Value);
  EXPECT_FALSE(Z.AdamW.Given);
  EXPECT_EQ(Z.Scheduler.Kind, LrScheduleKind::Constant);
  // lr_schedules.py: warmup_min_lr 0, warmup_max_lr 0.001, warmup_num_steps 1000, "log";
  // WarmupCosineLR warmup_min_ratio 0, cos_min_ratio 0.0001.
  EXPECT_EQ(Z.Scheduler.WarmupMinLr.Value, 0.0);
  EXPECT_EQ(Z.Scheduler.WarmupMaxLr.Value, 1e-3);
  EXPECT_EQ(Z.Scheduler.WarmupNumSteps.Value, 1000);
  EXPECT_TRUE(Z.Scheduler.WarmupLog.Value);
  EXPECT_EQ(Z.Scheduler.WarmupMinRatio.Value, 0.0);
  EXPECT_EQ(Z.Scheduler.CosMinRatio.Value, 1e-4);
  // fp16: loss_scale 0 (dynamic), initial_scale_power 16, window 1000, hysteresis 2, min 1.
  EXPECT_EQ(Z.LossScale.StaticScale.Value, 0.0);
  EXPECT_EQ(Z.LossScale.InitialScalePower.Value, 16);
  EXPECT_EQ(Z.LossScale.Window.Value, 1000);
  EXPECT_EQ(Z.LossScale.Hysteresis.Value, 2);
  EXPECT_EQ(Z.LossScale.MinScale.Value, 1.0);
}

TEST(ZeroSettingsTest, ConfigValuesAndTheirOrigins) {
  Lowered L(R"({"zero_optimization": {"stage": 2, "reduce_bucket_size": 1000}, "bf16": {"enabled": true},
                "gradient_accumulation_steps": 3, "gradient_clipping": 1.5,
                "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.8, 0.9], "eps": 1e-6}},
                "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 50, "warmup_type": "linear"}},
                "fp16": {"enabled": false, "loss_scale": 128, "min_loss_scale": 0.5}})",
            true, 4);
  ASSERT_TRUE(L.Z) << L.out();
  const ZeroSettings &Z = *L.Z;
  EXPECT_EQ(Z.Stage.Value, 2);
  EXPECT_TRUE(Z.Stage.From.isValid());
  EXPECT_EQ(Z.Prec.Value, Precision::BF16);
  EXPECT_EQ(Z.DpSize, 4);
  EXPECT_EQ(Z.GradAccum.Value, 3);
  EXPECT_EQ(Z.GradAccum.Why, "config");
  EXPECT_EQ(Z.GradientClipping.Value, 1.5);
  EXPECT_EQ(Z.ReduceBucketSize.Value, 1000);
  EXPECT_EQ(Z.AdamW.Lr.Value, 3e-4);
  EXPECT_EQ(Z.AdamW.Beta1.Value, 0.8);
  EXPECT_EQ(Z.AdamW.Beta2.Value, 0.9);
  EXPECT_EQ(Z.AdamW.Eps.Value, 1e-6);
  EXPECT_EQ(Z.AdamW.WeightDecay.Why, "default");
  EXPECT_EQ(Z.Scheduler.Kind, LrScheduleKind::WarmupDecayLR);
  EXPECT_EQ(Z.Scheduler.TotalNumSteps.Value, 50);
  EXPECT_FALSE(Z.Scheduler.WarmupLog.Value);
  EXPECT_EQ(Z.LossScale.StaticScale.Value, 128.0);
  EXPECT_EQ(Z.LossScale.MinScale.Value, 0.5);
  EXPECT_EQ(L.Diags.warningCount(), 0u) << L.out();
}

TEST(ZeroSettingsTest, GradientAccumulationDerived) {
  // 32 / (4 x dp 2) = 4; without the DP size, or when it does not divide, 1.
  const char *Json = R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4})";
  Lowered Known(Json, true, 2);
  EXPECT_EQ(Known.Z->GradAccum.Value, 4);
  EXPECT_NE(Known.Z->GradAccum.Why, "default");
  Lowered Unknown(Json, true);
  EXPECT_EQ(Unknown.Z->GradAccum.Value, 1);
  Lowered Uneven(Json, true, 3);
  EXPECT_EQ(Uneven.Z->GradAccum.Value, 1);
  Lowered Auto(R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": "auto"})",
               true, 8);
  EXPECT_EQ(Auto.Z->GradAccum.Value, 1); // 32 / (4 x 8)
}

TEST(ZeroSettingsTest, AdamWModeRule) {
  // engine.py: effective_adam_w_mode = name == "adamw" or adam_w_mode.
  Lowered Adam(R"({"optimizer": {"type": "Adam", "params": {"adam_w_mode": false}}})", true);
  EXPECT_FALSE(Adam.Z->AdamW.AdamWMode.Value);
  Lowered AdamDefault(R"({"optimizer": {"type": "ADAM"}})", true);
  EXPECT_TRUE(AdamDefault.Z->AdamW.AdamWMode.Value);
  Lowered AdamW(R"({"optimizer": {"type": "AdamW", "params": {"adam_w_mode": false}}})", true);
  EXPECT_TRUE(AdamW.Z->AdamW.AdamWMode.Value);
  EXPECT_EQ(AdamW.Diags.warningCount(), 1u);
  EXPECT_TRUE(AdamW.says("'adam_w_mode' false has no effect")) << AdamW.out();
}

TEST(ZeroSettingsTest, UnsupportedTypesWarnUnlessGenerating) {
  const char *Json = R"({"optimizer": {"type": "Lamb"}, "scheduler": {"type": "OneCycle"}})";
  Lowered Check(Json, /*ForCodegen=*/false);
  ASSERT_TRUE(Check.Z) << Check.out();
  EXPECT_EQ(Check.Diags.errorCount(), 0u);
  EXPECT_EQ(Check.Diags.warningCount(), 2u);
  Lowered Gen(Json, /*ForCodegen=*/true);
  EXPECT_FALSE(Gen.Z);
  EXPECT_EQ(Gen.Diags.errorCount(), 2u);
  EXPECT_TRUE(Gen.says("supported types: Adam, AdamW")) << Gen.out();
  EXPECT_TRUE(Gen.says("supported types: WarmupLR, WarmupDecayLR, WarmupCosineLR")) << Gen.out();
}

TEST(ZeroSettingsTest, DeepSpeedRejectsAreAlwaysErrors) {
  for (bool ForCodegen : {false, true}) {
    Lowered NoTotal(R"({"scheduler": {"type": "WarmupCosineLR", "params": {"warmup_num_steps": 5}}})", ForCodegen);
    EXPECT_FALSE(NoTotal.Z);
    EXPECT_TRUE(NoTotal.says("needs 'total_num_steps'")) << NoTotal.out();
    Lowered Amsgrad(R"({"optimizer": {"type": "Adam", "params": {"amsgrad": true}}})", ForCodegen);
    EXPECT_FALSE(Amsgrad.Z);
    Lowered NotInt(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 2.5}}})", ForCodegen);
    EXPECT_FALSE(NotInt.Z);
    EXPECT_TRUE(NotInt.says("'scheduler.params.warmup_num_steps' must be an integer")) << NotInt.out();
    Lowered Unknown(R"({"scheduler": {"type": "WarmupLR", "params": {"total_num_steps": 10}}})", ForCodegen);
    EXPECT_FALSE(Unknown.Z); // WarmupLR takes no total_num_steps
    EXPECT_TRUE(Unknown.says("unknown key 'total_num_steps' in scheduler.params of WarmupLR")) << Unknown.out();
  }
}

TEST(ZeroSettingsTest, WarmupTypeOtherThanLogOrLinear) {
  // DeepSpeed warns and warms up logarithmically.
  Lowered L(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_type": "cosine"}}})", true);
  ASSERT_TRUE(L.Z) << L.out();
  EXPECT_TRUE(L.Z->Scheduler.WarmupLog.Value);
  EXPECT_EQ(L.Diags.warningCount(), 1u);
}

} // namespace
