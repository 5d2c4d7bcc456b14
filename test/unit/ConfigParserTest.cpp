//===- ConfigParserTest.cpp - tests for DeepSpeed config JSON -> Config --===//
//
// Defaults and strictness follow DeepSpeed (reference §1.1 to §1.4): the
// `tensor_parallel` model forbids extra keys, `partition_config` ignores
// unknown ones, "auto" means the default. ZeRO, precision, batch, optimizer
// and scheduler defaults are DeepSpeed's documented ones. Each config is
// parsed from a SourceMgr buffer with diagnostics captured in a string.
//
//===----------------------------------------------------------------------===//

#include "Spec/Config.h"
#include "Support/JsonDoc.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

using namespace autotpc;

namespace {

struct Parsed {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS{Text};
  DiagEngine Diags{SM, OS};
  std::unique_ptr<JsonDoc> Doc;
  Config C;
  bool Ok = false;

  explicit Parsed(llvm::StringRef Json) {
    unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Json, "ds.json"), llvm::SMLoc());
    Doc = JsonDoc::parse(Diags, ID);
    EXPECT_TRUE(Doc) << OS.str();
    if (Doc)
      Ok = parseConfig(*Doc, Diags, C);
  }
  std::string out() { return OS.str(); }
  bool says(llvm::StringRef Needle) { return llvm::StringRef(out()).contains(Needle); }
  unsigned errors() const { return Diags.errorCount(); }
  unsigned warnings() const { return Diags.warningCount(); }
};

TEST(ConfigParserTest, EmptyConfigHasDeepSpeedDefaults) {
  Parsed P("{}");
  ASSERT_TRUE(P.Ok) << P.out();
  EXPECT_EQ(P.errors(), 0u);
  EXPECT_EQ(P.warnings(), 0u);
  const Config &C = P.C;
  EXPECT_EQ(C.Path, "ds.json");
  // tensor_parallel (reference §1.2 and §1.3).
  EXPECT_EQ(C.TP.AutotpSize, 0);
  EXPECT_FALSE(C.TP.AutotpSizeLoc.isValid());
  EXPECT_FALSE(C.TP.PresetModel.has_value());
  EXPECT_FALSE(C.TP.HasPartitionConfig);
  EXPECT_TRUE(C.TP.UseDefaultSpecs);
  EXPECT_FALSE(C.TP.StrictMode);
  EXPECT_TRUE(C.TP.LayerSpecs.empty());
  EXPECT_FALSE(C.TP.TpOverlapComm);
  EXPECT_EQ(C.TP.TpSize, 1);
  EXPECT_EQ(C.TP.TpGrainSize, 1);
  EXPECT_EQ(C.TP.DType, "float16");
  EXPECT_FALSE(C.TP.KeepModuleOnHost);
  // ZeRO stage 0 and fp32 when neither fp16 nor bf16 is enabled.
  EXPECT_EQ(C.Zero.Stage, 0);
  EXPECT_EQ(C.Zero.ReduceBucketSize, 500000000);
  EXPECT_EQ(C.Zero.AllgatherBucketSize, 500000000);
  EXPECT_TRUE(C.Zero.ContiguousGradients);
  EXPECT_TRUE(C.Zero.ReduceScatter);
  EXPECT_FALSE(C.Zero.OverlapComm);
  EXPECT_EQ(C.Prec, Precision::FP32);
  EXPECT_STREQ(precisionName(C.Prec), "fp32");
  // fp16 dynamic loss scaling defaults (DeepSpeed config docs).
  EXPECT_EQ(C.LossScale.LossScale, 0);
  EXPECT_EQ(C.LossScale.InitialScalePower, 16);
  EXPECT_EQ(C.LossScale.LossScaleWindow, 1000);
  EXPECT_EQ(C.LossScale.Hysteresis, 2);
  EXPECT_EQ(C.LossScale.MinLossScale, 1);
  EXPECT_FALSE(C.TrainBatch.Value || C.MicroBatch.Value || C.GradAccum.Value);
  EXPECT_FALSE(C.TrainBatch.Auto || C.MicroBatch.Auto || C.GradAccum.Auto);
  EXPECT_EQ(C.GradientClipping, 0);
  EXPECT_FALSE(C.Optimizer || C.Scheduler);
  EXPECT_FALSE(C.ModelPath);
  EXPECT_FALSE(C.ModelInline);
}

TEST(ConfigParserTest, TensorParallelSection) {
  Parsed P(R"({"tensor_parallel": {"autotp_size": 4, "preset_model": "LLaMA", "tp_overlap_comm": true,
               "tp": {"tp_size": 4, "tp_grain_size": 64}, "dtype": "bfloat16", "keep_module_on_host": true}})");
  ASSERT_TRUE(P.Ok) << P.out();
  EXPECT_EQ(P.C.TP.AutotpSize, 4);
  EXPECT_TRUE(P.C.TP.AutotpSizeLoc.isValid());
  ASSERT_TRUE(P.C.TP.PresetModel);
  EXPECT_EQ(*P.C.TP.PresetModel, "LLaMA"); // lower-cased only at lookup (§1.2)
  EXPECT_TRUE(P.C.TP.TpOverlapComm);
  EXPECT_EQ(P.C.TP.TpSize, 4);
  EXPECT_EQ(P.C.TP.TpGrainSize, 64);
  EXPECT_EQ(P.C.TP.DType, "bfloat16");
  EXPECT_TRUE(P.C.TP.KeepModuleOnHost);
  EXPECT_EQ(P.errors(), 0u);
}

TEST(ConfigParserTest, NullPresetAndPartitionConfigAreAbsent) {
  Parsed P(R"({"tensor_parallel": {"autotp_size": 2, "preset_model": null, "partition_config": null}})");
  ASSERT_TRUE(P.Ok) << P.out();
  EXPECT_FALSE(P.C.TP.PresetModel);
  EXPECT_FALSE(P.C.TP.HasPartitionConfig);
}

TEST(ConfigParserTest, Precision) {
  {
    Parsed P(R"({"bf16": {"enabled": true}})");
    ASSERT_TRUE(P.Ok) << P.out();
    EXPECT_EQ(P.C.Prec, Precision::BF16);
    EXPECT_STREQ(precisionName(P.C.Prec), "bf16");
  }
  {
    Parsed P(R"({"bfloat16": {"enabled": true}})"); // DeepSpeed's legacy key
    ASSERT_TRUE(P.Ok) << P.out();
    EXPECT_EQ(P.C.Prec, Precision::BF16);
  }
  {
    Parsed P(R"({"fp16": {"enabled": true, "loss_scale": 128, "initial_scale_power": 12, "loss_scale_window": 500,
                          "hysteresis": 4, "min_loss_scale": 0.5}})");
    ASSERT_TRUE(P.Ok) << P.out();
    EXPECT_EQ(P.C.Prec, Precision::FP16);
    EXPECT_EQ(P.C.LossScale.LossScale, 128);
    EXPECT_EQ(P.C.LossScale.InitialScalePower, 12);
    EXPECT_EQ(P.C.LossScale.LossScaleWindow, 500);
    EXPECT_EQ(P.C.LossScale.Hysteresis, 4);
    EXPECT_EQ(P.C.LossScale.MinLossScale, 0.5);
  }
  {
    Parsed P(R"({"bf16": {"enabled": false}, "fp16": {"enabled": false}})");
    ASSERT_TRUE(P.Ok) << P.out();
    EXPECT_EQ(P.C.Prec, Precision::FP32);
  }
  {
    // DeepSpeed: "bfloat16 and fp16 modes cannot be simultaneously enabled".
    Parsed P(R"({"fp16": {"enabled": true}, "bf16": {"enabled": true}})");
    EXPECT_FALSE(P.Ok);
    EXPECT_EQ(P.errors(), 1u);
    EXPECT_TRUE(P.says("error: bfloat16 and fp16 modes cannot be simultaneously enabled")) << P.out();
  }
  {
    Parsed P(R"({"bf16": {"enabled": "yes"}})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("'enabled' in bf16 must be true or false")) << P.out();
  }
  {
    Parsed P(R"({"bf16": true})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("'bf16' must be an object")) << P.out();
  }
}

TEST(ConfigParserTest, AutoMeansTheDefault) {
  // Reference §1.1: in non-strict mode "auto" is dropped and the key falls back to its default.
  Parsed P(R"({"tensor_parallel": {"autotp_size": "auto", "tp_overlap_comm": "auto"},
               "zero_optimization": {"stage": "auto"}, "gradient_clipping": "auto"})");
  ASSERT_TRUE(P.Ok) << P.out();
  EXPECT_EQ(P.errors(), 0u);
  EXPECT_EQ(P.C.TP.AutotpSize, 0);
  EXPECT_FALSE(P.C.TP.TpOverlapComm);
  EXPECT_EQ(P.C.Zero.Stage, 0);
  EXPECT_EQ(P.C.GradientClipping, 0);
  // Each "auto" is remarked (a note), not warned about.
  EXPECT_EQ(P.warnings(), 0u);
  EXPECT_TRUE(P.says("note: 'autotp_size' is \"auto\"")) << P.out();
}

TEST(ConfigParserTest, BatchKeys) {
  {
    Parsed P(R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2,
                 "gradient_clipping": 1.0})");
    ASSERT_TRUE(P.Ok) << P.out();
    EXPECT_EQ(P.C.TrainBatch.Value, std::optional<int64_t>(32));
    EXPECT_EQ(P.C.MicroBatch.Value, std::optional<int64_t>(4));
    EXPECT_EQ(P.C.GradAccum.Value, std::optional<int64_t>(2));
    EXPECT_TRUE(P.C.TrainBatch.L.isValid());
    EXPECT_EQ(P.C.GradientClipping, 1.0);
  }
  {
    Parsed P(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto"})");
    ASSERT_TRUE(P.Ok) << P.out();
    EXPECT_TRUE(P.C.TrainBatch.Auto);
    EXPECT_TRUE(P.C.MicroBatch.Auto);
    EXPECT_FALSE(P.C.TrainBatch.Value);
    EXPECT_FALSE(P.C.GradAccum.Auto);
  }
  {
    Parsed P(R"({"train_batch_size": 0, "gradient_accumulation_steps": -1})");
    EXPECT_FALSE(P.Ok);
    EXPECT_EQ(P.errors(), 2u) << P.out();
    EXPECT_TRUE(P.says("'train_batch_size' must be positive (got 0)")) << P.out();
  }
  {
    Parsed P(R"({"train_micro_batch_size_per_gpu": 2.5})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("must be an integer")) << P.out();
  }
}

TEST(ConfigParserTest, OptimizerAndScheduler) {
  Parsed P(R"({"optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.9, 0.95], "eps": 1e-8,
                                                        "weight_decay": 0.1, "torch_adam": true, "lr_auto": "auto"}},
               "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0, "warmup_num_steps": 100}}})");
  ASSERT_TRUE(P.Ok) << P.out();
  ASSERT_TRUE(P.C.Optimizer);
  EXPECT_EQ(P.C.Optimizer->Type, "AdamW");
  const auto &Params = P.C.Optimizer->Params;
  EXPECT_EQ(Params.at("lr"), (std::vector<double>{3e-4}));
  EXPECT_EQ(Params.at("betas"), (std::vector<double>{0.9, 0.95}));
  EXPECT_EQ(Params.at("eps"), (std::vector<double>{1e-8}));
  EXPECT_EQ(Params.at("weight_decay"), (std::vector<double>{0.1}));
  EXPECT_EQ(Params.at("torch_adam"), (std::vector<double>{1}));
  EXPECT_EQ(Params.count("lr_auto"), 0u); // "auto" is left to the launcher
  ASSERT_TRUE(P.C.Scheduler);
  EXPECT_EQ(P.C.Scheduler->Type, "WarmupLR");
  EXPECT_EQ(P.C.Scheduler->Params.at("warmup_num_steps"), (std::vector<double>{100}));
  EXPECT_EQ(P.C.Scheduler->Params.at("warmup_min_lr"), (std::vector<double>{0}));
}

TEST(ConfigParserTest, OptimizerErrors) {
  {
    Parsed P(R"({"optimizer": {"params": {"lr": 1}}})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("'optimizer' needs a 'type'")) << P.out();
  }
  {
    // A string param is kept (warmup_type is one); whether "lr" may be a
    // string is decided where it is read (ZeroSettingsTest). A mixed list or
    // an object is never a param value.
    Parsed P(R"({"optimizer": {"type": "Adam", "params": {"lr": "fast", "betas": [0.9, "x"], "eps": {}}}})");
    EXPECT_FALSE(P.Ok);
    EXPECT_EQ(P.errors(), 2u) << P.out();
    EXPECT_FALSE(P.says("'optimizer.params.lr'")) << P.out();
    EXPECT_TRUE(P.says("'optimizer.params.betas' must be a number, a string or a list of numbers")) << P.out();
    EXPECT_TRUE(P.says("'optimizer.params.eps' must be a number, a string or a list of numbers")) << P.out();
  }
  {
    Parsed P(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_type": "linear"}}})");
    ASSERT_TRUE(P.Ok) << P.out();
    EXPECT_EQ(P.C.Scheduler->Strings.at("warmup_type"), "linear");
    EXPECT_EQ(P.C.Scheduler->Params.count("warmup_type"), 0u);
  }
  {
    Parsed P(R"({"scheduler": {"type": "WarmupLR", "params": [1]}})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("'scheduler.params' must be an object")) << P.out();
  }
  {
    Parsed P(R"({"optimizer": "adam"})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("'optimizer' must be an object")) << P.out();
  }
}

TEST(ConfigParserTest, WrongTypesAreErrorsAtTheValue) {
  // Line 2 `  "tensor_parallel": {"autotp_size": "2"},`: the value's quote is column 38.
  Parsed P("{\n  \"tensor_parallel\": {\"autotp_size\": \"2\"},\n  \"zero_optimization\": {\"stage\": true}\n}");
  EXPECT_FALSE(P.Ok);
  EXPECT_EQ(P.errors(), 2u) << P.out();
  EXPECT_TRUE(P.says("ds.json:2:38: error: 'autotp_size' in tensor_parallel must be an integer")) << P.out();
  // Line 3 `  "zero_optimization": {"stage": true}`: "true" is column 34.
  EXPECT_TRUE(P.says("ds.json:3:34: error: 'stage' in zero_optimization must be an integer")) << P.out();
}

TEST(ConfigParserTest, MoreWrongTypes) {
  struct Case {
    const char *Json, *Message;
  } Cases[] = {
      {R"({"tensor_parallel": {"autotp_size": 2.5}})", "'autotp_size' in tensor_parallel must be an integer"},
      {R"({"tensor_parallel": {"autotp_size": -2}})", "'autotp_size' must not be negative (got -2)"},
      {R"({"tensor_parallel": {"preset_model": 3}})", "'preset_model' in tensor_parallel must be a string"},
      {R"({"tensor_parallel": {"tp_overlap_comm": 1}})", "'tp_overlap_comm' in tensor_parallel must be true or false"},
      {R"({"tensor_parallel": [2]})", "'tensor_parallel' must be an object"},
      {R"({"tensor_parallel": {"partition_config": {"use_default_specs": "no"}}})",
       "'use_default_specs' in partition_config must be true or false"},
      {R"({"tensor_parallel": {"partition_config": {"layer_specs": {"patterns": ["x"]}}}})",
       "'layer_specs' must be a list of layer spec objects"},
      {R"({"tensor_parallel": {"partition_config": []}})", "'partition_config' must be an object"},
      {R"({"tensor_parallel": {"tp": {"tp_grain_size": 0}}})", "'tp_grain_size' must be positive (got 0)"},
      {R"({"tensor_parallel": {"dtype": "int8"}})", "'dtype' must name a floating-point torch dtype"},
      {R"({"zero_optimization": {"stage": 4}})", "'stage' must be 0, 1, 2 or 3 (got 4)"},
      {R"({"zero_optimization": {"overlap_comm": "yes"}})",
       "'overlap_comm' in zero_optimization must be true or false"},
      {R"({"model": 7})", "'model' must be a path"},
      {R"([1, 2])", "a DeepSpeed config must be a JSON object"},
      {R"({"gradient_clipping": "big"})", "'gradient_clipping' in the config must be a number"},
  };
  for (const Case &C : Cases) {
    Parsed P(C.Json);
    EXPECT_FALSE(P.Ok) << C.Json;
    EXPECT_GE(P.errors(), 1u) << C.Json;
    EXPECT_TRUE(P.says(C.Message)) << C.Json << "\n" << P.out();
  }
}

TEST(ConfigParserTest, TensorParallelForbidsExtraKeys) {
  // Reference §1.1: pydantic extra="forbid" under tensor_parallel and tensor_parallel.tp.
  Parsed P(R"({"tensor_parallel": {"autotp_sise": 2, "tp": {"tp_sise": 2}}})");
  EXPECT_FALSE(P.Ok);
  EXPECT_EQ(P.errors(), 2u) << P.out();
  EXPECT_TRUE(P.says("error: unknown key 'autotp_sise' in tensor_parallel; did you mean 'autotp_size'?")) << P.out();
  EXPECT_TRUE(P.says("error: unknown key 'tp_sise' in tensor_parallel.tp; did you mean 'tp_size'?")) << P.out();
}

TEST(ConfigParserTest, TpSizeMustMatchAutotpSize) {
  // Reference §3.1: "tensor_parallel.tp.tp_size ({a}) does not match tensor_parallel.autotp_size ({b})."
  {
    Parsed P(R"({"tensor_parallel": {"autotp_size": 2, "tp": {"tp_size": 4}}})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("error: tensor_parallel.tp.tp_size (4) does not match tensor_parallel.autotp_size (2)"))
        << P.out();
  }
  {
    Parsed P(R"({"tensor_parallel": {"autotp_size": 2, "tensor_parallel": {"tp_size": 2}}})"); // alias of "tp"
    EXPECT_TRUE(P.Ok) << P.out();
    EXPECT_EQ(P.C.TP.TpSize, 2);
  }
  {
    Parsed P(R"({"tensor_parallel": {"autotp_size": 2, "tp": {}, "tensor_parallel": {}}})");
    EXPECT_FALSE(P.Ok);
    EXPECT_TRUE(P.says("'tp' and 'tensor_parallel' name the same field")) << P.out();
  }
}

TEST(ConfigParserTest, PartitionConfig) {
  Parsed P(R"({"tensor_parallel": {"autotp_size": 2, "preset_model": "llama", "partition_config": {
    "use_default_specs": false, "strict_mode": true,
    "layer_specs": [
      {"patterns": [".*\\.o_proj\\.weight$", ".*\\.down_proj\\.weight$"], "partition_type": "ROW"},
      {"patterns": [".*\\.qkv_proj\\.weight$"], "shape": [[4096, 1024, 1024], -1], "partition_dim": 0,
       "model_types": ["Phi3"], "gather_output": false},
      {"patterns": [".*\\.gate\\.weight$"], "partition_type": "skip", "grad_allreduce": true}
    ]}}})");
  ASSERT_TRUE(P.Ok) << P.out();
  const TensorParallelConfig &TP = P.C.TP;
  EXPECT_TRUE(TP.HasPartitionConfig);
  EXPECT_FALSE(TP.UseDefaultSpecs);
  EXPECT_TRUE(TP.StrictMode);
  ASSERT_EQ(TP.LayerSpecs.size(), 3u);

  const LayerSpec &Row = TP.LayerSpecs[0];
  EXPECT_EQ(Row.Patterns, (std::vector<std::string>{".*\\.o_proj\\.weight$", ".*\\.down_proj\\.weight$"}));
  EXPECT_EQ(Row.PatternLocs.size(), 2u);
  EXPECT_EQ(Row.Type, PartitionType::Row); // case-insensitive (§1.4)
  EXPECT_EQ(Row.partitionDim(), 1);
  EXPECT_FALSE(Row.Shape);
  EXPECT_EQ(Row.Origin, "layer_specs[0]");
  EXPECT_FALSE(Row.FromPreset);

  const LayerSpec &Qkv = TP.LayerSpecs[1];
  EXPECT_EQ(Qkv.Type, PartitionType::Column); // the default type
  ASSERT_TRUE(Qkv.Shape);
  ASSERT_EQ(Qkv.Shape->size(), 2u);
  EXPECT_TRUE((*Qkv.Shape)[0].IsList);
  EXPECT_EQ((*Qkv.Shape)[0].Sizes, (std::vector<int64_t>{4096, 1024, 1024}));
  EXPECT_FALSE((*Qkv.Shape)[1].IsList);
  EXPECT_EQ((*Qkv.Shape)[1].Value, -1);
  EXPECT_EQ(Qkv.PartitionDim, std::optional<int64_t>(0));
  ASSERT_TRUE(Qkv.ModelTypes);
  EXPECT_EQ(*Qkv.ModelTypes, (std::vector<std::string>{"phi3"}));
  EXPECT_FALSE(Qkv.GatherOutput);

  const LayerSpec &Skip = TP.LayerSpecs[2];
  EXPECT_EQ(Skip.Type, PartitionType::Skip);
  EXPECT_TRUE(Skip.GradAllreduce);
  EXPECT_EQ(P.errors(), 0u);
  EXPECT_EQ(P.warnings(), 0u);
}

TEST(ConfigParserTest, PartitionConfigIgnoresUnknownAndDeadKeys) {
  // Reference §1.3: unknown keys are ignored by DeepSpeed (so warnings, not
  // errors); tp_size, embedding_partition_dim and lm_head_patterns are dead.
  Parsed P(R"({"tensor_parallel": {"partition_config": {"layer_spec": [], "tp_size": 8,
               "embedding_partition_dim": 0, "lm_head_patterns": ["lm_head"],
               "layer_specs": [{"patterns": ["x"], "partiton_type": "row"}]}}})");
  ASSERT_TRUE(P.Ok) << P.out();
  EXPECT_EQ(P.errors(), 0u);
  EXPECT_EQ(P.warnings(), 5u) << P.out();
  EXPECT_TRUE(P.says("warning: unknown key 'layer_spec' in partition_config; did you mean 'layer_specs'? "
                     "[-Wignored-key]"))
      << P.out();
  EXPECT_TRUE(P.says("warning: 'tp_size' in partition_config is accepted but has no effect [-Wignored-key]"))
      << P.out();
  EXPECT_TRUE(P.says("unknown key 'partiton_type' in layer_specs[0]; did you mean 'partition_type'?")) << P.out();
  // The misspelt partition_type leaves the default (column).
  ASSERT_EQ(P.C.TP.LayerSpecs.size(), 1u);
  EXPECT_EQ(P.C.TP.LayerSpecs[0].Type, PartitionType::Column);
}

TEST(ConfigParserTest, LayerSpecErrors) {
  struct Case {
    const char *Spec, *Message;
  } Cases[] = {
      // Reference §1.4 / §3.1, DeepSpeed's wording as the stem.
      {R"({"patterns": ["x"], "partition_type": "foo"})", "'foo' is not a valid PartitionType"},
      {R"({"patterns": "x"})", "'patterns' must be a list of regex strings, not a string"},
      {R"({"patterns": [1]})", "'patterns' entries must be strings"},
      {R"({"patterns": ["x"], "shape": [0, -1]})", "AutoTP shape dimensions must be positive integers or -1"},
      {R"({"patterns": ["x"], "shape": [-2, -1]})", "AutoTP shape dimensions must be positive integers or -1"},
      {R"({"patterns": ["x"], "shape": [3, [1, 2]], "partition_dim": 0})",
       "AutoTP shape nested tuple only allowed at partition_dim=0, got at 1"},
      {R"({"patterns": ["x"], "shape": [3, -1], "partition_dim": 2})",
       "AutoTP partition_dim 2 is out of range for shape length 2"},
      {R"({"patterns": ["x"], "partition_type": "row", "shape": [4]})",
       "AutoTP partition_dim 1 is out of range for shape length 1"},
      {R"({"patterns": ["x"], "shape": [[], -1]})", "AutoTP shape nested tuple cannot be empty"},
      {R"({"patterns": ["x"], "shape": [[[1], 2], -1]})",
       "AutoTP shape supports only 1-level nesting at partition_dim"},
      {R"({"patterns": ["x"], "shape": [[4, 0], -1]})", "AutoTP nested sub-parameter sizes must be positive integers"},
      {R"({"patterns": ["x"], "shape": ["a", -1]})",
       "AutoTP shape must contain only integers or a tuple at partition_dim"},
      {R"({"patterns": ["x"], "shape": 3})", "AutoTP shape must be a tuple of ints or a tuple at partition_dim"},
      {R"({"patterns": ["x"], "partition_dim": "0"})", "'partition_dim' in layer_specs[0] must be an integer"},
      {R"({"patterns": ["x"], "model_types": "llama"})", "'model_types' must be a list of strings"},
      {R"({"patterns": ["x"], "gather_output": 1})", "'gather_output' in layer_specs[0] must be true or false"},
      {R"("x")", "'layer_specs[0]' must be an object"},
  };
  for (const Case &C : Cases) {
    std::string Json = std::string(R"({"tensor_parallel": {"partition_config": {"layer_specs": [)") + C.Spec + "]}}}";
    Parsed P(Json);
    EXPECT_FALSE(P.Ok) << C.Spec;
    EXPECT_TRUE(P.says(C.Message)) << C.Spec << "\n" << P.out();
    EXPECT_TRUE(P.C.TP.LayerSpecs.empty()) << C.Spec;
  }
}

TEST(ConfigParserTest, ZeroSection) {
  Parsed P(R"({"zero_optimization": {"stage": 2, "reduce_bucket_size": 200000000, "allgather_bucket_size": 100,
               "overlap_comm": true, "contiguous_gradients": false, "reduce_scatter": false}})");
  ASSERT_TRUE(P.Ok) << P.out();
  EXPECT_EQ(P.C.Zero.Stage, 2);
  EXPECT_TRUE(P.C.Zero.StageLoc.isValid());
  EXPECT_EQ(P.C.Zero.ReduceBucketSize, 200000000);
  EXPECT_EQ(P.C.Zero.AllgatherBucketSize, 100);
  EXPECT_TRUE(P.C.Zero.OverlapComm);
  EXPECT_FALSE(P.C.Zero.ContiguousGradients);
  EXPECT_FALSE(P.C.Zero.ReduceScatter);
}

TEST(ConfigParserTest, ModelKey) {
  {
    Parsed P(R"({"model": "models/llama.json"})");
    ASSERT_TRUE(P.Ok);
    EXPECT_EQ(P.C.ModelPath, std::optional<std::string>("models/llama.json"));
    EXPECT_FALSE(P.C.ModelInline);
    EXPECT_TRUE(P.C.ModelLoc.isValid());
  }
  {
    Parsed P(R"({"model": {"model_type": "llama"}})");
    ASSERT_TRUE(P.Ok);
    EXPECT_FALSE(P.C.ModelPath);
    EXPECT_TRUE(P.C.ModelInline);
  }
}

TEST(ConfigParserTest, AllErrorsAreReportedNotJustTheFirst) {
  Parsed P(R"({"tensor_parallel": {"autotp_size": "x", "preset_model": 1},
               "zero_optimization": {"stage": 9}, "train_batch_size": -4})");
  EXPECT_FALSE(P.Ok);
  EXPECT_EQ(P.errors(), 4u) << P.out();
}

} // namespace
