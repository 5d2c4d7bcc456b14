//===- Llama.cpp - the llama family (LlamaForCausalLM) --------------------===//
//
// Llama's config keys and parameters, and the decoder that mistral, qwen2,
// phi3 and mixtral build on: embeddings, per layer an attention, an MLP and
// two RMSNorms, a final norm, lm_head unless tied.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {

void readLlamaDims(ConfigReader &R, ModelDims &D) {
  D.Hidden = R.reqInt("hidden_size");
  D.Intermediate = R.reqInt("intermediate_size");
  D.NumLayers = R.reqInt("num_hidden_layers");
  D.NumHeads = R.reqInt("num_attention_heads");
  D.Vocab = R.reqInt("vocab_size");
  readKVHeads(R, D);
  R.optInt("head_dim", 1, D.HeadDim);
}

void finishLlamaDims(ConfigReader &R, ModelDims &D, Layout &Lay) {
  Lay.LmHead = !readTie(R, D, false);
  if (!R.ok())
    return;
  deriveHeadDim(R, D, "head_dim");
  checkGroups(R, D);
}

void readLlamaKeys(ConfigReader &R, ModelDims &D, Layout &Lay) {
  readLlamaDims(R, D);
  finishLlamaDims(R, D, Lay);
}

void emitLlamaStyle(const ModelDims &D, const Layout &Lay, Emitter &E, LayerBodyFn Body) {
  const int64_t H = D.Hidden.Value, V = D.Vocab.Value;
  E.linear("", "model.embed_tokens", V, H, false, Role::Embedding, -1, NoBlock);
  for (int L = 0; L < D.NumLayers.Value; ++L) {
    std::string P = layerPrefix("model.layers.", L);
    Body(D, Lay, E, P, L);
    E.norm(P, "input_layernorm", H, false, L);
    E.norm(P, "post_attention_layernorm", H, false, L);
  }
  E.norm("", "model.norm", H, false, -1);
  if (Lay.LmHead)
    E.linear("", "lm_head", V, H, false, Role::LmHead, -1, NoBlock);
}

int64_t countLlamaStyle(const ModelDims &D, const Layout &Lay, int64_t BodyTensors) {
  return 2 + Lay.LmHead + D.NumLayers.Value * (BodyTensors + 2);
}

void emitLlamaAttention(const ModelDims &D, const Layout &Lay, Emitter &E, const std::string &P,
                        int L) {
  const int64_t H = D.Hidden.Value;
  const int64_t QRows = D.NumHeads.Value * D.HeadDim.Value;
  const int64_t KVRows = D.NumKVHeads.Value * D.HeadDim.Value;
  E.linear(P, "self_attn.q_proj", QRows, H, Lay.QKVBias, Role::AttnQ, L, AttnBlock);
  E.linear(P, "self_attn.k_proj", KVRows, H, Lay.QKVBias, Role::AttnK, L, AttnBlock);
  E.linear(P, "self_attn.v_proj", KVRows, H, Lay.QKVBias, Role::AttnV, L, AttnBlock);
  E.linear(P, "self_attn.o_proj", H, QRows, Lay.OutBias, Role::AttnOut, L, AttnBlock);
}

int64_t countLlamaAttention(const Layout &Lay) { return 4 + 3 * Lay.QKVBias + Lay.OutBias; }

namespace {

void emitLlamaLayer(const ModelDims &D, const Layout &Lay, Emitter &E, const std::string &P,
                    int L) {
  emitLlamaAttention(D, Lay, E, P, L);
  emitSwiGLU(E, P, "mlp.", D.Hidden.Value, D.Intermediate.Value, Lay.MlpBias, L, MlpBlock);
}

void readLlama(ConfigReader &R, ModelDims &D, Layout &Lay) {
  readLlamaDims(R, D);
  Lay.QKVBias = Lay.OutBias = R.optBool("attention_bias", false);
  Lay.MlpBias = R.optBool("mlp_bias", false);
  finishLlamaDims(R, D, Lay);
}

} // namespace

void emitLlama(const ModelDims &D, const Layout &Lay, Emitter &E) {
  emitLlamaStyle(D, Lay, E, emitLlamaLayer);
}

int64_t countLlama(const ModelDims &D, const Layout &Lay) {
  return countLlamaStyle(D, Lay, countLlamaAttention(Lay) + 3 + 3 * Lay.MlpBias);
}

const ModelFamily LlamaFamily = {"llama", readLlama, countLlama, emitLlama};

} // namespace hf
} // namespace autotpc
