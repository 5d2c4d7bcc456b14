//===- PairingChecks.cpp - column output must reach a row layer ----------===//
//
// Megatron-style TP works only as column -> (local heads / elementwise) ->
// row: the column layer leaves its output sharded, the row layer consumes the
// shard and all-reduces. Within each attention or MLP block of a known
// architecture, a column-split producer whose consumer is not row-split, or a
// row-split consumer fed by a producer that is not column-split, computes on
// mismatched shards. DeepSpeed does not check this (reference §3.4).
//
//===----------------------------------------------------------------------===//
#include "Verify/Verifier.h"

#include <map>
#include <tuple>

using namespace autotpc;

static bool isProducer(Role R) {
  switch (R) {
  case Role::AttnQ: case Role::AttnK: case Role::AttnV: case Role::AttnQKV: case Role::AttnQKVInterleaved:
  case Role::AttnQB: case Role::AttnKVB: case Role::MlpGate: case Role::MlpUp: case Role::MlpGateUp:
    return true;
  default:
    return false;
  }
}

static bool isConsumer(Role R) { return R == Role::AttnOut || R == Role::MlpDown; }

/// How a weight's output leaves it: sharded (column without gather) or whole.
static bool outputSharded(const Module &M, const Param &P) {
  return P.Part.Kind == PartKind::Column && !(P.Part.SpecIndex >= 0 && M.Specs[size_t(P.Part.SpecIndex)].GatherOutput);
}

static std::string how(const Param &P) {
  if (P.Part.Kind == PartKind::Replicate)
    return P.Part.Why == Decision::Skip ? "kept whole by a skip spec" : "replicated (no spec matches it)";
  return std::string(partKindName(P.Part.Kind)) + "-split";
}

void autotpc::checkPairing(const VerifyContext &Ctx) {
  const Module &M = Ctx.M;
  if (M.TpSize <= 1)
    return;
  // (layer, block) -> producers and the consumer.
  std::map<std::pair<int, std::string>, std::pair<std::vector<const Param *>, const Param *>> Blocks;
  for (const Param &P : M.Params) {
    if (!P.isWeight2D() || P.Info.Layer < 0 || P.Info.Block.empty() || P.Part.Why == Decision::SpecError)
      continue;
    auto &B = Blocks[{P.Info.Layer, P.Info.Block}];
    if (isProducer(P.Info.R))
      B.first.push_back(&P);
    else if (isConsumer(P.Info.R))
      B.second = &P;
  }
  // Deduplicate across layers: (producer role, consumer role, producer spec, consumer spec, kind of mismatch).
  using Key = std::tuple<Role, Role, int, int, bool>;
  std::map<Key, std::pair<std::pair<const Param *, const Param *>, unsigned>> Found;
  for (auto &[Where, B] : Blocks) {
    const Param *Cons = B.second;
    if (!Cons)
      continue;
    bool ConsRow = Cons->Part.Kind == PartKind::Row;
    for (const Param *Prod : B.first) {
      bool Sharded = outputSharded(M, *Prod);
      if (Sharded == ConsRow)
        continue;
      auto &E = Found[{Prod->Info.R, Cons->Info.R, Prod->Part.SpecIndex, Cons->Part.SpecIndex, Sharded}];
      if (!E.second++)
        E.first = {Prod, Cons};
    }
  }
  for (auto &[K, E] : Found) {
    const Param &Prod = *E.first.first, &Cons = *E.first.second;
    bool Sharded = std::get<4>(K);
    std::string Layers = E.second > 1 ? " (in " + std::to_string(E.second) + " blocks)" : "";
    if (Sharded) {
      const LayerSpec &S = M.Specs[size_t(Prod.Part.SpecIndex)];
      Ctx.Diags.warning(S.anchor(), "unpaired-split",
                        "column-split '" + Prod.Info.Name + "' feeds '" + Cons.Info.Name + "', which is " + how(Cons) +
                            ": its sharded output never reaches a row-parallel layer" + Layers);
    } else {
      Loc At = Cons.Part.SpecIndex >= 0 ? M.Specs[size_t(Cons.Part.SpecIndex)].anchor() : Loc();
      Ctx.Diags.warning(At, "unpaired-split",
                        "row-split '" + Cons.Info.Name + "' consumes the output of '" + Prod.Info.Name +
                            "', which is " + (Prod.Part.Kind == PartKind::Column ? "gathered (gather_output)" : how(Prod)) +
                            ": a row layer needs its input sharded by a column layer" + Layers);
    }
  }
}
