//===- Bloom.cpp - the bloom family (BloomForCausalLM) --------------------===//
//
// Bloom: LayerNorms with biases (one right after the embeddings too), an
// interleaved query_key_value, a 4 * hidden GeLU MLP, biases everywhere but
// lm_head, which is tied by default. Its config keys have aliases.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {
namespace {

void readBloom(ConfigReader &R, ModelDims &D, Layout &Lay) {
  // Precedence follows BloomConfig: n_embed overrides hidden_size, and the
  // attribute_map aliases overwrite n_layer and n_head.
  D.Hidden = R.reqIntAny({"n_embed", "hidden_size"});
  D.NumLayers = R.reqIntAny({"num_hidden_layers", "n_layer"});
  D.NumHeads = R.reqIntAny({"num_attention_heads", "n_head"});
  D.Vocab = R.reqInt("vocab_size");
  Lay.QKVBias = Lay.OutBias = Lay.MlpBias = Lay.NormBias = true;
  Lay.LmHead = !readTie(R, D, true);
  if (!R.ok())
    return;
  D.NumKVHeads = derived(D.NumHeads.Value, "num_key_value_heads",
                         "bloom has no grouped-query attention; equals " + D.NumHeads.Key);
  D.Intermediate = derived(4 * D.Hidden.Value, "intermediate_size", "4 * " + D.Hidden.Key);
  deriveHeadDim(R, D, "head_dim");
}

void emitBloom(const ModelDims &D, const Layout &Lay, Emitter &E) {
  const int64_t H = D.Hidden.Value, V = D.Vocab.Value, I = D.Intermediate.Value;
  E.linear("", "transformer.word_embeddings", V, H, false, Role::Embedding, -1, NoBlock);
  E.norm("", "transformer.word_embeddings_layernorm", H, true, -1);
  for (int L = 0; L < D.NumLayers.Value; ++L) {
    std::string P = layerPrefix("transformer.h.", L);
    E.norm(P, "input_layernorm", H, true, L);
    E.linear(P, "self_attention.query_key_value", 3 * H, H, true, Role::AttnQKVInterleaved, L,
             AttnBlock);
    E.linear(P, "self_attention.dense", H, H, true, Role::AttnOut, L, AttnBlock);
    E.norm(P, "post_attention_layernorm", H, true, L);
    E.linear(P, "mlp.dense_h_to_4h", I, H, true, Role::MlpUp, L, MlpBlock);
    E.linear(P, "mlp.dense_4h_to_h", H, I, true, Role::MlpDown, L, MlpBlock);
  }
  E.norm("", "transformer.ln_f", H, true, -1);
  if (Lay.LmHead)
    E.linear("", "lm_head", V, H, false, Role::LmHead, -1, NoBlock);
}

int64_t countBloom(const ModelDims &D, const Layout &Lay) {
  return 5 + Lay.LmHead + 12 * D.NumLayers.Value;
}

} // namespace

const ModelFamily BloomFamily = {"bloom", readBloom, countBloom, emitBloom};

} // namespace hf
} // namespace autotpc
