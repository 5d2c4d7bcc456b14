//===- PlanLoader.cpp - compile a tiny spec in process, as plan tables ---===//
#include "PlanLoader.h"

#include "IR/Builder.h"
#include "Spec/Config.h"
#include "Support/JsonDoc.h"
#include "Verify/Verifier.h"

#include "llvm/Support/MemoryBuffer.h"

#include <fstream>
#include <nlohmann/json.hpp>

using namespace autotpc;

const char *const autotpc::TinyFamilies[8] = {"llama", "mistral", "qwen2", "phi3",
                                              "mixtral", "deepseek_v2", "bloom", "chatglm"};

static std::string tinyDir() { return std::string(AUTOTPC_SPECS_DIR) + "/tiny"; }

namespace {

atp::Precision precision(Precision P) {
  switch (P) {
  case Precision::FP32: return atp::Precision::F32;
  case Precision::BF16: return atp::Precision::BF16;
  case Precision::FP16: return atp::Precision::F16;
  }
  return atp::Precision::F32;
}

atp::LrSchedule schedule(LrScheduleKind K) {
  switch (K) {
  case LrScheduleKind::Constant: return atp::LrSchedule::Constant;
  case LrScheduleKind::WarmupLR: return atp::LrSchedule::WarmupLR;
  case LrScheduleKind::WarmupDecayLR: return atp::LrSchedule::WarmupDecayLR;
  case LrScheduleKind::WarmupCosineLR: return atp::LrSchedule::WarmupCosineLR;
  }
  return atp::LrSchedule::Constant;
}

/// The ZeroPlan zero.cpp would state for M under Z, into Zero.
void loadZero(const Module &M, const Config &C, const ZeroSettings &Z, LoadedZero &Zero) {
  Zero.Settings = Z;
  Zero.Layouts = zeroLayout(M, C);
  Zero.LedgerDp = Z.DpSize > 0 ? Z.DpSize : 1;
  for (const ZeroRankLayout &L : Zero.Layouts) {
    Zero.Params.emplace_back();
    for (const ZeroFlatParam &F : L.Params)
      Zero.Params.back().push_back({int32_t(F.Param), F.Offset, F.Numel, F.TpSharded});
    Zero.Buckets.emplace_back();
    for (const ZeroBucket &B : L.Buckets)
      Zero.Buckets.back().push_back({B.Begin, B.End, int32_t(B.First), int32_t(B.Count)});
    const MemoryLedger Ml = memoryLedger(L, C, Zero.LedgerDp);
    Zero.Ledgers.push_back({uint64_t(Ml.Params), uint64_t(Ml.Grads), uint64_t(Ml.Fp32Master), uint64_t(Ml.Fp32Grads),
                            uint64_t(Ml.Moments)});
  }
  for (size_t R = 0; R < Zero.Layouts.size(); ++R)
    Zero.FlatLayouts.push_back({Zero.Layouts[R].Numel, int32_t(Zero.Params[R].size()), Zero.Params[R].data(),
                                int32_t(Zero.Buckets[R].size()), Zero.Buckets[R].data()});
  atp::ZeroPlan &P = Zero.Plan;
  P.stage = int32_t(Z.Stage.Value);
  P.precision = precision(Z.Prec.Value);
  P.tp_size = int32_t(Z.TpSize);
  P.dp_size = int32_t(Z.DpSize);
  P.gradient_accumulation_steps = int32_t(Z.GradAccum.Value);
  P.batch = {Z.TrainBatch.Value, Z.MicroBatch.Value, Z.GradAccumGiven.Value};
  P.gradient_clipping = Z.GradientClipping.Value;
  P.reduce_bucket_size = Z.ReduceBucketSize.Value;
  const AdamWSettings &A = Z.AdamW;
  P.adamw = {A.Lr.Value,          A.Beta1.Value,     A.Beta2.Value,         A.Eps.Value,
             A.WeightDecay.Value, A.AdamWMode.Value, A.BiasCorrection.Value};
  const SchedulerSettings &S = Z.Scheduler;
  P.scheduler.type = schedule(S.Kind);
  P.scheduler.warmup_min_lr = S.WarmupMinLr.Value;
  P.scheduler.warmup_max_lr = S.WarmupMaxLr.Value;
  P.scheduler.warmup_num_steps = S.WarmupNumSteps.Value;
  P.scheduler.warmup_log = S.WarmupLog.Value;
  P.scheduler.total_num_steps = S.TotalNumSteps.Value;
  P.scheduler.warmup_min_ratio = S.WarmupMinRatio.Value;
  P.scheduler.cos_min_ratio = S.CosMinRatio.Value;
  const LossScaleSettings &LS = Z.LossScale;
  P.loss_scale = {LS.StaticScale.Value, int32_t(LS.InitialScalePower.Value), LS.Window.Value,
                  int32_t(LS.Hysteresis.Value), LS.MinScale.Value};
  P.layouts = Zero.FlatLayouts.data();
}

/// compileTiny, compileTinyZero and compileTinyTrain: Zero and Decoder are
/// null where not asked for.
std::string compile(const std::string &Family, int Tp, const nlohmann::json *Overrides, LoadedPlan &Out,
                    LoadedZero *Zero, LoadedDecoder *Decoder = nullptr) {
  std::ifstream In(tinyDir() + "/" + Family + ".ds.json");
  nlohmann::json Cfg = nlohmann::json::parse(In);
  if (Overrides)
    Cfg.merge_patch(*Overrides);
  Cfg["tensor_parallel"]["autotp_size"] = Tp;
  Cfg["model"] = tinyDir() + "/" + Family + ".json";
  std::string Text = Cfg.dump(2), Diag;
  llvm::raw_string_ostream DiagOS(Diag);
  llvm::SourceMgr SM;
  DiagEngine Diags(SM, DiagOS);
  unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Text, Family + ".ds.json"), llvm::SMLoc());
  std::vector<std::unique_ptr<JsonDoc>> Docs;
  Docs.push_back(JsonDoc::parse(Diags, ID));
  Config C;
  if (!Docs.back() || !parseConfig(*Docs.back(), Diags, C))
    return DiagOS.str();
  std::optional<LoadedModel> Model = loadModel(C, *Docs.back(), "", Diags, Docs);
  if (!Model)
    return DiagOS.str();
  std::optional<Module> M = buildModule(C, *Model, Diags);
  Topology Topo;
  if (!M || !verifyModule(VerifyContext{*M, C, *Model, Diags, std::nullopt}, Topo) || Diags.hasErrors())
    return DiagOS.str();
  if (Zero) {
    std::optional<ZeroSettings> Z = lowerZeroSettings(C, Topo, M->TpSize, Diags, /*ForCodegen=*/true);
    if (!Z || Diags.hasErrors())
      return DiagOS.str();
    loadZero(*M, C, *Z, *Zero);
  }
  if (Decoder) { // as Driver.cpp does for code generation
    if (!M->Dims || !hasDecoderCode(M->Dims->Family))
      return Family + ": no training code for this family\n";
    std::optional<DecoderDesc> D = lowerDecoder(*M, *Model, Diags);
    if (!D || !applyActivationCheckpointing(C.ActivationCheckpointing, *D, Diags) || Diags.hasErrors())
      return DiagOS.str();
    Decoder->load(std::move(*D));
  }
  Out.Tables = planTables(*M);
  Out.Fingerprint = planFingerprint(*M);
  for (const PlanTableParam &T : Out.Tables) {
    Out.Boxes.emplace_back();
    for (const auto &B : T.Boxes)
      Out.Boxes.back().push_back({{B[0], B[1]}, {B[2], B[3]}});
    Out.Ranks.emplace_back();
    for (const auto &R : T.Ranks)
      Out.Ranks.back().push_back({int32_t(R[0]), int32_t(R[1]), R[2], R[3]});
  }
  for (size_t I = 0; I < Out.Tables.size(); ++I) {
    const PlanTableParam &T = Out.Tables[I];
    atp::Split S = T.Kind == PartKind::Row      ? atp::Split::Row
                   : T.Kind == PartKind::Column ? atp::Split::Column
                                                : atp::Split::Replicate;
    Out.Params.push_back({T.Name.c_str(), *atp::dtype_from_name(T.DType), int32_t(M->Params[I].Info.Shape.size()),
                          T.Shape.data(), T.Rows, T.Cols, S, int32_t(T.ConcatDim), Out.Boxes[I].data(),
                          Out.Ranks[I].data()});
  }
  Out.Plan = {Out.Fingerprint.c_str(), int32_t(M->TpSize), int32_t(Out.Params.size()), Out.Params.data()};
  return "";
}

} // namespace

void LoadedDecoder::load(DecoderDesc D) {
  Desc = std::move(D);
  Layers.clear();
  for (const std::array<int, NumDecoderSlots> &L : Desc.LayerParams) {
    atp::DecoderLayerParams P{};
    P.input_norm = L[SlotInputNorm], P.q = L[SlotQ], P.k = L[SlotK], P.v = L[SlotV];
    P.q_bias = L[SlotQBias], P.k_bias = L[SlotKBias], P.v_bias = L[SlotVBias], P.qkv = L[SlotQKV], P.o = L[SlotO];
    P.post_norm = L[SlotPostNorm], P.gate = L[SlotGate], P.up = L[SlotUp], P.gate_up = L[SlotGateUp];
    P.down = L[SlotDown];
    Layers.push_back(P);
  }
  atp::DecoderShape &S = Shape;
  S.hidden = Desc.Hidden, S.layers = Desc.Layers, S.vocab = Desc.Vocab, S.heads = Desc.Heads;
  S.kv_heads = Desc.KVHeads, S.head_dim = Desc.HeadDim, S.ffn = Desc.Ffn, S.max_positions = Desc.MaxPositions;
  S.tp_size = int32_t(Desc.Tp), S.attn_split = Desc.AttnSplit, S.mlp_split = Desc.MlpSplit;
  S.local_heads = Desc.LocalHeads, S.local_kv_heads = Desc.LocalKVHeads, S.local_ffn = Desc.LocalFfn;
  S.qkv_fused = Desc.QkvFused, S.qkv_bias = Desc.QkvBias, S.gate_up_fused = Desc.GateUpFused;
  S.tied_embeddings = Desc.Tied, S.rms_eps = Desc.RmsEps, S.sliding_window = Desc.SlidingWindow;
  S.rope_theta = Desc.RopeTheta, S.rope_factor = Desc.RopeFactor, S.rope_low_freq_factor = Desc.RopeLowFreqFactor;
  S.rope_high_freq_factor = Desc.RopeHighFreqFactor, S.rope_original_max_positions = Desc.RopeOriginalMaxPositions;
  S.recompute = Desc.Recompute;
  Params.embed = Desc.Embed, Params.final_norm = Desc.FinalNorm, Params.lm_head = Desc.Tied ? -1 : Desc.LmHead;
  bind();
}

void LoadedDecoder::bind() {
  Shape.rope_type = Desc.RopeType.c_str(); // a short string lives inside the object: re-point after a move
  Params.layers = Layers.data();
}

LoadedDecoder &LoadedDecoder::operator=(LoadedDecoder &&O) noexcept {
  Desc = std::move(O.Desc);
  Layers = std::move(O.Layers);
  Shape = O.Shape;
  Params = O.Params;
  bind();
  return *this;
}

std::string autotpc::compileTiny(const std::string &Family, int Tp, LoadedPlan &Out) {
  return compile(Family, Tp, nullptr, Out, nullptr);
}

std::string autotpc::compileTinyZero(const std::string &Family, int Tp, const nlohmann::json &Overrides,
                                     LoadedPlan &Out, LoadedZero &Zero) {
  return compile(Family, Tp, &Overrides, Out, &Zero);
}

std::string autotpc::compileTinyTrain(const std::string &Family, int Tp, const nlohmann::json &Overrides,
                                      LoadedPlan &Out, LoadedZero &Zero, LoadedDecoder &Decoder) {
  return compile(Family, Tp, &Overrides, Out, &Zero, &Decoder);
}
