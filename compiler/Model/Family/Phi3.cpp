//===- Phi3.cpp - the phi3 family (Phi3ForCausalLM) -----------------------===//
//
// Phi-3 is llama's decoder with fused projections: one qkv_proj for the
// queries, keys and values, one gate_up_proj for the MLP; nothing has a bias.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {
namespace {

void emitPhi3Layer(const ModelDims &D, const Layout &, Emitter &E, const std::string &P, int L) {
  const int64_t H = D.Hidden.Value, I = D.Intermediate.Value;
  const int64_t QRows = D.NumHeads.Value * D.HeadDim.Value;
  const int64_t KVRows = D.NumKVHeads.Value * D.HeadDim.Value;
  E.linear(P, "self_attn.o_proj", H, QRows, false, Role::AttnOut, L, AttnBlock);
  E.linear(P, "self_attn.qkv_proj", QRows + 2 * KVRows, H, false, Role::AttnQKV, L, AttnBlock);
  E.linear(P, "mlp.gate_up_proj", 2 * I, H, false, Role::MlpGateUp, L, MlpBlock);
  E.linear(P, "mlp.down_proj", H, I, false, Role::MlpDown, L, MlpBlock);
}

void emitPhi3(const ModelDims &D, const Layout &Lay, Emitter &E) {
  emitLlamaStyle(D, Lay, E, emitPhi3Layer);
}

int64_t countPhi3(const ModelDims &D, const Layout &Lay) { return countLlamaStyle(D, Lay, 4); }

} // namespace

const ModelFamily Phi3Family = {"phi3", readLlamaKeys, countPhi3, emitPhi3};

} // namespace hf
} // namespace autotpc
