//===- Qwen2.cpp - the qwen2 family (Qwen2ForCausalLM) --------------------===//
//
// Qwen2 stores llama's parameters plus a bias on q, k and v (always; o_proj
// and the MLP have none). Its config keys are llama's without the bias
// switches.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {
namespace {

void readQwen2(ConfigReader &R, ModelDims &D, Layout &Lay) {
  readLlamaDims(R, D);
  Lay.QKVBias = true;
  finishLlamaDims(R, D, Lay);
}

} // namespace

const ModelFamily Qwen2Family = {"qwen2", readQwen2, countLlama, emitLlama};

} // namespace hf
} // namespace autotpc
