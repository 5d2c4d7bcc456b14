//===- DecoderLowering.cpp - IR -> the generated model's constants -------===//
//
// Finds each parameter's slot from its role and name, checks that its
// partition is one the decoder executes exactly, and reads the HF config's
// training-relevant keys (norm epsilon, RoPE, sliding window, activation) in
// both the transformers 4 spelling (rope_theta, rope_scaling) and the 5
// spelling (rope_parameters).
//
//===----------------------------------------------------------------------===//
#include "Lower/DecoderLowering.h"

#include "Support/JsonDoc.h"

#include <nlohmann/json.hpp>

using namespace autotpc;

bool autotpc::hasDecoderCode(llvm::StringRef Family) {
  return Family == "llama" || Family == "mistral" || Family == "qwen2" || Family == "phi3";
}

namespace {

/// Reads optional keys of the HF config object, reporting ill-typed values at their location.
struct ConfigKeys {
  const LoadedModel &Model;
  DiagEngine &Diags;
  bool Ok = true;

  const nlohmann::json *get(const std::string &Key) const {
    return Model.ConfigDoc ? Model.ConfigDoc->get(Model.Prefix + "/" + Key) : nullptr;
  }
  Loc loc(const std::string &Key) const {
    return Model.ConfigDoc ? Model.ConfigDoc->value(Model.Prefix + "/" + Key) : Loc();
  }
  double number(const std::string &Key, double Default) {
    const nlohmann::json *V = get(Key);
    if (!V || V->is_null())
      return Default;
    if (!V->is_number()) {
      Diags.error(loc(Key), "'" + Key + "' must be a number for the training code");
      Ok = false;
      return Default;
    }
    return V->get<double>();
  }
  void unsupported(const std::string &Key, const std::string &Why) {
    Diags.error(loc(Key), "'" + Key + "' " + Why + "; the training code of this family cannot run it exactly");
    Ok = false;
  }
};

/// The parameter's place in the decoder, from its role and name.
int slotOf(const Param &P) {
  llvm::StringRef Name = P.Info.Name;
  const bool Bias = Name.endswith(".bias");
  switch (P.Info.R) {
  case Role::AttnQ: return Bias ? SlotQBias : SlotQ;
  case Role::AttnK: return Bias ? SlotKBias : SlotK;
  case Role::AttnV: return Bias ? SlotVBias : SlotV;
  case Role::AttnQKV: return Bias ? -1 : SlotQKV;
  case Role::AttnOut: return Bias ? -1 : SlotO;
  case Role::MlpGate: return Bias ? -1 : SlotGate;
  case Role::MlpUp: return Bias ? -1 : SlotUp;
  case Role::MlpGateUp: return Bias ? -1 : SlotGateUp;
  case Role::MlpDown: return Bias ? -1 : SlotDown;
  case Role::Norm:
    if (Name.contains("input_layernorm"))
      return SlotInputNorm;
    if (Name.contains("post_attention_layernorm"))
      return SlotPostNorm;
    return -1;
  default: return -1;
  }
}

/// Where to point an error about parameter P: the spec that split it, else nowhere.
Loc paramLoc(const Module &M, const Param &P) {
  if (P.Part.SpecIndex >= 0 && size_t(P.Part.SpecIndex) < M.Specs.size())
    return M.Specs[size_t(P.Part.SpecIndex)].anchor();
  return Loc();
}

/// Checks that P is split evenly along its partition dim: every rank holds SubSizes[i] / tp of each
/// sub-parameter, and (when Expect is not empty) the sub-parameters are Expect.
bool evenSplit(const Module &M, const Param &P, const std::vector<int64_t> &Expect, DiagEngine &Diags) {
  bool Ok = Expect.empty() || P.Part.SubSizes == Expect;
  for (const auto &Sizes : P.Part.RankSizes)
    for (size_t i = 0; i < Sizes.size() && i < P.Part.SubSizes.size(); ++i)
      Ok &= Sizes[i] * M.TpSize == P.Part.SubSizes[i];
  if (!Ok)
    Diags.error(paramLoc(M, P), "'" + P.Info.Name +
                                    "' is split in a way the training code cannot run: it needs equal shards of "
                                    "whole heads (q, k, v blocks) or of the ffn");
  return Ok;
}

} // namespace

std::optional<DecoderDesc> autotpc::lowerDecoder(const Module &M, const LoadedModel &Model, DiagEngine &Diags) {
  const ModelDims &D = *M.Dims;
  DecoderDesc R;
  R.Family = D.Family;
  R.Hidden = D.Hidden.Value, R.Layers = D.NumLayers.Value, R.Vocab = D.Vocab.Value;
  R.Heads = D.NumHeads.Value, R.KVHeads = D.NumKVHeads.Value, R.HeadDim = D.HeadDim.Value;
  R.Ffn = D.Intermediate.Value, R.Tp = M.TpSize, R.Tied = D.TiedEmbeddings;
  R.LayerParams.assign(size_t(R.Layers), {});
  if (Model.ConfigDoc)
    if (const nlohmann::json *J = Model.ConfigDoc->get(Model.Prefix))
      R.HFConfigJson = J->dump(2);
  for (auto &L : R.LayerParams)
    L.fill(-1);

  ConfigKeys K{Model, Diags};
  // hyperparameters
  if (const nlohmann::json *Act = K.get("hidden_act"); Act && !(Act->is_string() && *Act == "silu"))
    K.unsupported("hidden_act", "is " + Act->dump() + ", not \"silu\"");
  R.RmsEps = K.number("rms_norm_eps", D.Family == "phi3" ? 1e-5 : 1e-6);
  R.MaxPositions = int64_t(K.number("max_position_embeddings", 2048));
  if (K.number("partial_rotary_factor", 1.0) != 1.0)
    K.unsupported("partial_rotary_factor", "is not 1");
  // RoPE: transformers 5 keeps rope_theta and the scaling in rope_parameters; 4 has rope_theta and rope_scaling.
  std::string RopeKey = "rope_scaling";
  const nlohmann::json *Rope = K.get("rope_scaling");
  if (const nlohmann::json *P = K.get("rope_parameters"); P && P->is_object()) {
    Rope = P, RopeKey = "rope_parameters";
    if (P->contains("rope_theta") && (*P)["rope_theta"].is_number())
      R.RopeTheta = (*P)["rope_theta"].get<double>();
  } else {
    R.RopeTheta = K.number("rope_theta", 10000.0);
  }
  if (Rope && Rope->is_object()) {
    std::string Type = "default";
    for (const char *TypeKey : {"rope_type", "type"})
      if (Rope->contains(TypeKey) && (*Rope)[TypeKey].is_string())
        Type = (*Rope)[TypeKey].get<std::string>();
    if (Type == "llama3") {
      auto num = [&](const char *Key, double Def) {
        return Rope->contains(Key) && (*Rope)[Key].is_number() ? (*Rope)[Key].get<double>() : Def;
      };
      R.RopeType = "llama3";
      R.RopeFactor = num("factor", 8.0);
      R.RopeLowFreqFactor = num("low_freq_factor", 1.0);
      R.RopeHighFreqFactor = num("high_freq_factor", 4.0);
      R.RopeOriginalMaxPositions = num("original_max_position_embeddings", 8192.0);
    } else if (Type != "default") {
      K.unsupported(RopeKey, "asks for rope type '" + Type + "' (supported: default, llama3)");
    }
  } else if (Rope && !Rope->is_null()) {
    K.unsupported(RopeKey, "is not an object");
  }
  // Sliding windows: mistral and phi3 apply sliding_window when set; qwen2 only with use_sliding_window.
  const nlohmann::json *Use = K.get("use_sliding_window");
  const bool Sliding = D.Family != "qwen2" || (Use && Use->is_boolean() && Use->get<bool>());
  if (Sliding)
    R.SlidingWindow = int64_t(K.number("sliding_window", 0));
  if (R.SlidingWindow < 0)
    K.unsupported("sliding_window", "is negative");

  // parameters: slots and partitions
  bool Ok = K.Ok;
  for (size_t I = 0; I < M.Params.size(); ++I) {
    const Param &P = M.Params[I];
    const int Slot = slotOf(P);
    const bool Whole = P.Part.Kind == PartKind::Replicate;
    if (P.Info.R == Role::Embedding || P.Info.R == Role::LmHead ||
        (P.Info.R == Role::Norm && P.Info.Layer < 0)) {
      int &Where = P.Info.R == Role::Embedding ? R.Embed : P.Info.R == Role::LmHead ? R.LmHead : R.FinalNorm;
      Where = int(I);
      if (!Whole) {
        Diags.error(paramLoc(M, P), "'" + P.Info.Name + "' is split, but the training code keeps it whole " +
                                        "(vocabulary-parallel embeddings and LM heads are not built yet)");
        Ok = false;
      }
      continue;
    }
    if (Slot < 0 || P.Info.Layer < 0 || P.Info.Layer >= R.Layers) {
      Diags.error(paramLoc(M, P), "'" + P.Info.Name + "' has no place in the " + D.Family +
                                      " training code (an attention or MLP bias, or a parameter of another "
                                      "architecture)");
      Ok = false;
      continue;
    }
    R.LayerParams[size_t(P.Info.Layer)][size_t(Slot)] = int(I);
  }
  if (R.Embed < 0 || R.FinalNorm < 0 || (!R.Tied && R.LmHead < 0)) {
    Diags.error("the model's inventory lacks an embedding, final norm or LM head: no training code");
    return std::nullopt;
  }
  const int64_t Cq = R.Heads * R.HeadDim, Ck = R.KVHeads * R.HeadDim;
  for (int64_t L = 0; L < R.Layers; ++L) {
    const auto &S = R.LayerParams[size_t(L)];
    auto kind = [&](int Slot) { return S[size_t(Slot)] < 0 ? PartKind::Replicate : M.Params[size_t(S[size_t(Slot)])].Part.Kind; };
    auto param = [&](int Slot) -> const Param & { return M.Params[size_t(S[size_t(Slot)])]; };
    R.QkvFused = S[SlotQKV] >= 0;
    R.GateUpFused = S[SlotGateUp] >= 0;
    R.QkvBias = S[SlotQBias] >= 0;
    // Attention: all of q/k/v (or qkv) column and o row, or all whole.
    const std::vector<int> In = R.QkvFused ? std::vector<int>{SlotQKV} : std::vector<int>{SlotQ, SlotK, SlotV};
    const std::vector<int> MlpIn = R.GateUpFused ? std::vector<int>{SlotGateUp} : std::vector<int>{SlotGate, SlotUp};
    for (auto [Ins, Out, IsAttn] : {std::tuple{In, int(SlotO), true}, std::tuple{MlpIn, int(SlotDown), false}}) {
      bool AllWhole = kind(Out) == PartKind::Replicate, AllSplit = kind(Out) == PartKind::Row;
      for (int Slot : Ins) {
        if (S[size_t(Slot)] < 0) {
          Diags.error("layer " + std::to_string(L) + " lacks a projection the " + D.Family + " training code needs");
          return std::nullopt;
        }
        AllWhole &= kind(Slot) == PartKind::Replicate;
        AllSplit &= kind(Slot) == PartKind::Column;
      }
      if (!AllWhole && !AllSplit) {
        const Param &O = param(Out);
        Diags.error(paramLoc(M, O), "'" + O.Info.Name + "' is " + partKindName(O.Part.Kind) + " but its block's " +
                                        "input projections are not all " +
                                        (O.Part.Kind == PartKind::Row ? "column" : "replicated") +
                                        ": the training code needs column inputs with a row output, or all whole");
        Ok = false;
        continue;
      }
      (IsAttn ? R.AttnSplit : R.MlpSplit) = AllSplit && M.TpSize > 1;
      if (!AllSplit || M.TpSize == 1)
        continue;
      for (int Slot : Ins) {
        std::vector<int64_t> Expect;
        if (Slot == SlotQKV)
          Expect = {Cq, Ck, Ck};
        else if (Slot == SlotGateUp)
          Expect = {R.Ffn, R.Ffn};
        Ok &= evenSplit(M, param(Slot), Expect, Diags);
      }
      Ok &= evenSplit(M, param(Out), {}, Diags);
    }
  }
  if (!Ok)
    return std::nullopt;
  if (R.AttnSplit && (R.Heads % R.Tp || R.KVHeads % R.Tp)) {
    Diags.error("the heads (" + std::to_string(R.Heads) + ") and KV heads (" + std::to_string(R.KVHeads) +
                ") must divide by autotp_size (" + std::to_string(R.Tp) + ") for the training code");
    return std::nullopt;
  }
  if (R.MlpSplit && R.Ffn % R.Tp) {
    Diags.error("the intermediate size (" + std::to_string(R.Ffn) + ") must divide by autotp_size (" +
                std::to_string(R.Tp) + ") for the training code");
    return std::nullopt;
  }
  R.LocalHeads = R.AttnSplit ? R.Heads / R.Tp : R.Heads;
  R.LocalKVHeads = R.AttnSplit ? R.KVHeads / R.Tp : R.KVHeads;
  R.LocalFfn = R.MlpSplit ? R.Ffn / R.Tp : R.Ffn;
  return R;
}

bool autotpc::applyActivationCheckpointing(const ActivationCheckpointingConfig &A, DecoderDesc &D, DiagEngine &Diags) {
  if (!A.Present)
    return true;
  D.Recompute = true;
  if (A.CpuCheckpointing) {
    Diags.error(A.CpuLoc, "'cpu_checkpointing' is not supported by autotpc's trainer: the layer inputs stay in "
                          "device memory; set it to false");
    return false;
  }
  if (A.PartitionActivations)
    Diags.warning(A.PartitionLoc, "ignored-option",
                  "'partition_activations' has no effect: each TP rank keeps the whole layer input it recomputes "
                  "from");
  if (A.ContiguousMemory)
    Diags.warning(A.ContiguousLoc, "ignored-option",
                  "'contiguous_memory_optimization' has no effect: the trainer's activation buffers are allocated "
                  "once, up front");
  if (A.NumberCheckpoints && *A.NumberCheckpoints != D.Layers)
    Diags.warning(A.NumberCheckpointsLoc, "ignored-option",
                  "'number_checkpoints' is " + llvm::Twine(*A.NumberCheckpoints) + ": the trainer checkpoints every "
                  "one of the " + llvm::Twine(D.Layers) + " layers");
  return true;
}
