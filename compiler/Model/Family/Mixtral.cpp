//===- Mixtral.cpp - the mixtral family (MixtralForCausalLM) --------------===//
//
// Mixtral is llama's decoder with a sparse MoE in place of the MLP: a router
// (block_sparse_moe.gate) and num_local_experts experts of w1 (gate), w2
// (down) and w3 (up), each of intermediate_size.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {
namespace {

void readMixtral(ConfigReader &R, ModelDims &D, Layout &Lay) {
  readLlamaDims(R, D);
  D.NumExperts = R.reqInt("num_local_experts");
  D.MoeIntermediate = D.Intermediate;
  finishLlamaDims(R, D, Lay);
}

void emitMixtralLayer(const ModelDims &D, const Layout &Lay, Emitter &E, const std::string &P,
                      int L) {
  const int64_t H = D.Hidden.Value, I = D.Intermediate.Value;
  emitLlamaAttention(D, Lay, E, P, L);
  E.linear(P, "block_sparse_moe.gate", D.NumExperts.Value, H, false, Role::Router, L, NoBlock);
  for (int64_t J = 0; J < D.NumExperts.Value; ++J) {
    std::string Block = "block_sparse_moe.experts." + std::to_string(J);
    std::string Path = Block + ".";
    E.linear(P, Path + "w1", I, H, false, Role::MlpGate, L, Block);
    E.linear(P, Path + "w2", H, I, false, Role::MlpDown, L, Block);
    E.linear(P, Path + "w3", I, H, false, Role::MlpUp, L, Block);
  }
}

void emitMixtral(const ModelDims &D, const Layout &Lay, Emitter &E) {
  emitLlamaStyle(D, Lay, E, emitMixtralLayer);
}

int64_t countMixtral(const ModelDims &D, const Layout &Lay) {
  return countLlamaStyle(D, Lay, countLlamaAttention(Lay) + 1 + 3 * D.NumExperts.Value);
}

} // namespace

const ModelFamily MixtralFamily = {"mixtral", readMixtral, countMixtral, emitMixtral};

} // namespace hf
} // namespace autotpc
