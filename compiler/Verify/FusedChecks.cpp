//===- FusedChecks.cpp - fused q/k/v and gate/up weights -----------------===//
//
// A fused weight stores several projections one after another ([q; k; v],
// [gate; up]). Splitting it as one block gives each rank a contiguous run
// of rows that mixes them; splitting it into equal thirds is only right when
// q, k and v have the same size. DeepSpeed checks neither (reference §2,
// §3.4); both silently shard checkpoints wrong.
//
//===----------------------------------------------------------------------===//
#include "Verify/Verifier.h"

#include <map>

using namespace autotpc;

/// The sub-parameter sizes a fused weight really has, from the model dims.
static std::vector<int64_t> expectedSubSizes(const Param &P, const ModelDims &D) {
  if (P.Info.R == Role::AttnQKV) {
    int64_t Q = D.NumHeads.Value * D.HeadDim.Value, KV = D.NumKVHeads.Value * D.HeadDim.Value;
    if (Q + 2 * KV == P.Info.Shape[0])
      return {Q, KV, KV};
  } else if (P.Info.R == Role::MlpGateUp && P.Info.Shape[0] % 2 == 0) {
    return {P.Info.Shape[0] / 2, P.Info.Shape[0] / 2};
  }
  return {};
}

static bool looksFused(llvm::StringRef Name) {
  for (llvm::StringRef Token : {"qkv", "query_key_value", "gate_up", "W_pack", "c_attn", "Wqkv"})
    if (Name.contains(Token))
      return true;
  return false;
}

static std::string list(const std::vector<int64_t> &V) {
  std::string S = "[";
  for (size_t I = 0; I < V.size(); ++I)
    S += (I ? ", " : "") + std::to_string(V[I]);
  return S + "]";
}

bool autotpc::fusedShapeIsWrong(const Module &M, const Param &P) {
  if (P.Part.Why != Decision::Spec || P.Part.Kind != PartKind::Column || !P.isWeight2D())
    return false;
  const LayerSpec &Spec = M.Specs[size_t(P.Part.SpecIndex)];
  if (!Spec.Shape)
    return false;
  if (P.Info.R == Role::AttnQKVInterleaved)
    return true;
  if (!M.Dims || P.Part.Logical.size() != 2 || P.Part.PartitionDim != 0)
    return false;
  std::vector<int64_t> Want = expectedSubSizes(P, *M.Dims);
  return !Want.empty() && Want != P.Part.SubSizes;
}

/// Whether the spec's entry at partition_dim is a count (an equal split).
static bool equalSplit(const LayerSpec &Spec) {
  const ShapeEntry &E = (*Spec.Shape)[size_t(Spec.partitionDim())];
  return !E.IsList && E.Value > 0;
}

/// Where a fix-it's spec goes when the spec at fault is a preset's, which
/// the user cannot edit (reference §1.5: custom specs come first).
static std::string whereToFix(const LayerSpec &Spec) {
  return Spec.FromPreset ? " in a partition_config.layer_specs entry for the same pattern, which is matched before "
                           "the preset's"
                         : "";
}

void autotpc::checkFusedWeights(const VerifyContext &Ctx) {
  const Module &M = Ctx.M;
  // One report per spec: the same spec matches the same weight in every layer.
  std::map<int, std::pair<const Param *, unsigned>> NoShape, WrongSizes, InterleavedShape;
  for (const Param &P : M.Params) {
    if (P.Part.Why != Decision::Spec || P.Part.Kind != PartKind::Column || !P.isWeight2D())
      continue;
    const LayerSpec &Spec = M.Specs[size_t(P.Part.SpecIndex)];
    bool Fused = P.Info.R == Role::AttnQKV || P.Info.R == Role::MlpGateUp ||
                 (P.Info.R == Role::Unknown && looksFused(P.Info.Name));
    auto Bump = [&](std::map<int, std::pair<const Param *, unsigned>> &Map) {
      auto &E = Map[P.Part.SpecIndex];
      if (!E.second++)
        E.first = &P;
    };
    if (P.Info.R == Role::AttnQKVInterleaved && Spec.Shape)
      Bump(InterleavedShape);
    else if (Fused && !Spec.Shape)
      Bump(NoShape);
    else if (Fused && fusedShapeIsWrong(M, P))
      Bump(WrongSizes);
  }
  auto More = [](unsigned N) { return N > 1 ? " (and " + std::to_string(N - 1) + " more parameters)" : std::string(); };
  for (auto &[SpecIndex, E] : NoShape) {
    const Param &P = *E.first;
    const LayerSpec &Spec = M.Specs[size_t(SpecIndex)];
    Ctx.Diags.warning(Spec.anchor(), "fused-no-shape",
                      "'" + P.Info.Name + "' is a fused weight, but " + Spec.Origin +
                          " splits it as one column block with no 'shape': each rank gets a contiguous run of rows "
                          "that mixes its sub-projections" + More(E.second));
    std::vector<int64_t> Want = M.Dims ? expectedSubSizes(P, *M.Dims) : std::vector<int64_t>();
    if (!Want.empty())
      Ctx.Diags.note(Spec.SpecLoc, "add \"shape\": [" + list(Want) + ", -1]" + whereToFix(Spec) +
                                         " to split each sub-projection on its own");
  }
  for (auto &[SpecIndex, E] : WrongSizes) {
    const Param &P = *E.first;
    const LayerSpec &Spec = M.Specs[size_t(SpecIndex)];
    std::vector<int64_t> Want = expectedSubSizes(P, *M.Dims);
    std::string Why;
    if (P.Info.R == Role::AttnQKV) {
      const ModelDims &D = *M.Dims;
      Why = ": q is " + std::to_string(Want[0]) + " rows (" + std::to_string(D.NumHeads.Value) + " heads x " +
            std::to_string(D.HeadDim.Value) + "), k and v are " + std::to_string(Want[1]) + " rows each (" +
            std::to_string(D.NumKVHeads.Value) + " KV heads x " + std::to_string(D.HeadDim.Value) + ")";
    }
    Ctx.Diags.error(Spec.ShapeLoc, "'shape' splits '" + P.Info.Name + "' into sub-parameters " +
                                       list(P.Part.SubSizes) + ", but its real sub-projections are " + list(Want) +
                                       Why + More(E.second));
    Ctx.Diags.note(Spec.ShapeLoc, "use \"shape\": [" + list(Want) + ", -1]" + whereToFix(Spec) +
                                      (equalSplit(Spec) ? "; DeepSpeed accepts the equal split and silently shards "
                                                          "such checkpoints wrong"
                                                        : ""));
    if (M.Dims && P.Info.R == Role::AttnQKV)
      if (Loc L = Ctx.Model.loc(M.Dims->NumKVHeads); L.isValid())
        Ctx.Diags.note(L, "the KV head count is set here");
  }
  for (auto &[SpecIndex, E] : InterleavedShape) {
    const LayerSpec &Spec = M.Specs[size_t(SpecIndex)];
    Ctx.Diags.error(Spec.ShapeLoc, "'" + E.first->Info.Name +
                                       "' stores q, k and v interleaved per head ([q1, k1, v1, q2, ...]); a 'shape' "
                                       "split treats it as [q; k; v] blocks" + More(E.second));
    Ctx.Diags.note(Spec.SpecLoc, "a plain column spec with no 'shape'" + whereToFix(Spec) +
                                     " keeps each head's q, k and v together");
  }
}
