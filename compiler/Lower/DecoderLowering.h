//===- DecoderLowering.h - IR -> the generated model's constants ---------===//
//
// The training code of the Llama family (llama, mistral, qwen2, phi3) is one
// runtime decoder (runtime/include/atp/decoder.h) specialised by constants:
// sizes, this TP size's per-rank head and ffn counts, family features, RoPE
// settings and every parameter's index in the plan. This pass computes them
// from the IR and the HF config, and refuses what the decoder cannot run
// exactly: another architecture's features, or a partition other than
// DeepSpeed's column q/k/v (gate/up) + row o (down), whole or even.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_LOWER_DECODERLOWERING_H
#define AUTOTPC_LOWER_DECODERLOWERING_H

#include "IR/Module.h"
#include "Model/ModelLoader.h"
#include "Spec/Config.h"
#include "Support/Diagnostics.h"

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace autotpc {

/// One layer's parameter indices (into Module::Params), -1 where absent, in
/// the order of atp::DecoderLayerParams.
enum DecoderSlot {
  SlotInputNorm, SlotQ, SlotK, SlotV, SlotQBias, SlotKBias, SlotVBias, SlotQKV, SlotO,
  SlotPostNorm, SlotGate, SlotUp, SlotGateUp, SlotDown, NumDecoderSlots
};

/// What the generated model.cpp states: atp::DecoderShape and DecoderParams.
struct DecoderDesc {
  std::string Family;
  int64_t Hidden = 0, Layers = 0, Vocab = 0, Heads = 0, KVHeads = 0, HeadDim = 0, Ffn = 0, MaxPositions = 0;
  int64_t Tp = 1;
  bool AttnSplit = false, MlpSplit = false;
  int64_t LocalHeads = 0, LocalKVHeads = 0, LocalFfn = 0;
  bool QkvFused = false, QkvBias = false, GateUpFused = false, Tied = false;
  double RmsEps = 1e-6;
  int64_t SlidingWindow = 0;
  double RopeTheta = 10000.0;
  std::string RopeType = "default";
  double RopeFactor = 1, RopeLowFreqFactor = 1, RopeHighFreqFactor = 4, RopeOriginalMaxPositions = 8192;
  int Embed = -1, FinalNorm = -1, LmHead = -1;
  std::vector<std::array<int, NumDecoderSlots>> LayerParams;
  std::string HFConfigJson; ///< the model's HF config object, as JSON text (config.json of an HF export)
  bool Recompute = false;   ///< activation_checkpointing: recompute each layer in backward
};

/// True when the family has training code (llama, mistral, qwen2, phi3).
bool hasDecoderCode(llvm::StringRef Family);

/// The decoder's constants for M, or std::nullopt with errors reported (each
/// naming the parameter or config key the decoder cannot execute). Call only
/// for a family with training code and a config.json (Model.Dims).
std::optional<DecoderDesc> lowerDecoder(const Module &M, const LoadedModel &Model, DiagEngine &Diags);

/// The config's activation_checkpointing section on the decoder: present, D.Recompute (every layer). Options
/// the trainer cannot honour are an error (cpu_checkpointing) or an ignored-option warning (partitioning,
/// contiguous buffers, a checkpoint count other than the layer count). Returns false on errors.
bool applyActivationCheckpointing(const ActivationCheckpointingConfig &A, DecoderDesc &D, DiagEngine &Diags);

} // namespace autotpc

#endif // AUTOTPC_LOWER_DECODERLOWERING_H
