//===- Mistral.cpp - the mistral family (MistralForCausalLM) --------------===//
//
// Mistral stores exactly llama's parameters; its config has no bias switches
// (attention_bias, mlp_bias), so every projection is bias-free. It is its own
// family because its model differs (sliding-window attention), which the
// family's model emission will add here.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {

const ModelFamily MistralFamily = {"mistral", readLlamaKeys, countLlama, emitLlama};

} // namespace hf
} // namespace autotpc
