//===- ChatGLM.cpp - the chatglm family (ChatGLM's remote code) -----------===//
//
// ChatGLM as its remote code (model_type "chatglm") builds it: a fused
// query_key_value with multi-query groups, a fused dense_h_to_4h (gate and up),
// RMSNorm or LayerNorm, an optional final norm, an output_layer never tied.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {
namespace {

void readChatGLM(ConfigReader &R, ModelDims &D, Layout &Lay) {
  D.Hidden = R.reqInt("hidden_size");
  D.NumLayers = R.reqInt("num_layers");
  D.NumHeads = R.reqInt("num_attention_heads");
  D.Intermediate = R.reqInt("ffn_hidden_size");
  D.Vocab = R.reqInt("padded_vocab_size");
  R.optInt("kv_channels", 1, D.HeadDim);
  if (R.optBool("multi_query_attention", false))
    D.NumKVHeads = R.reqInt("multi_query_group_num");
  else
    D.NumKVHeads = derived(D.NumHeads.Value, "multi_query_group_num",
                           "multi_query_attention is off; equals " + D.NumHeads.Key);
  bool LinearBias = R.optBool("add_bias_linear", false);
  Lay.QKVBias = R.optBool("add_qkv_bias", false) || LinearBias;
  Lay.OutBias = Lay.MlpBias = LinearBias;
  Lay.FinalNorm = R.optBool("post_layer_norm", true);
  Lay.NormBias = !R.optBool("rmsnorm", true);
  // ChatGLM's remote code never ties: output_layer is always stored.
  if (R.optBool("tie_word_embeddings", false, &D.TieWordEmbeddings))
    R.warning(D.TieWordEmbeddings.Pointer, "'tie_word_embeddings' (true) has no effect on chatglm; "
                                           "transformer.output_layer.weight is stored regardless");
  if (!R.ok())
    return;
  deriveHeadDim(R, D, "kv_channels");
  checkGroups(R, D);
}

void emitChatGLM(const ModelDims &D, const Layout &Lay, Emitter &E) {
  const int64_t H = D.Hidden.Value, V = D.Vocab.Value, I = D.Intermediate.Value;
  const int64_t QRows = D.NumHeads.Value * D.HeadDim.Value;
  const int64_t KVRows = D.NumKVHeads.Value * D.HeadDim.Value;
  E.linear("", "transformer.embedding.word_embeddings", V, H, false, Role::Embedding, -1, NoBlock);
  for (int L = 0; L < D.NumLayers.Value; ++L) {
    std::string P = layerPrefix("transformer.encoder.layers.", L);
    E.norm(P, "input_layernorm", H, Lay.NormBias, L);
    E.linear(P, "self_attention.query_key_value", QRows + 2 * KVRows, H, Lay.QKVBias, Role::AttnQKV,
             L, AttnBlock);
    E.linear(P, "self_attention.dense", H, QRows, Lay.OutBias, Role::AttnOut, L, AttnBlock);
    E.norm(P, "post_attention_layernorm", H, Lay.NormBias, L);
    E.linear(P, "mlp.dense_h_to_4h", 2 * I, H, Lay.MlpBias, Role::MlpGateUp, L, MlpBlock);
    E.linear(P, "mlp.dense_4h_to_h", H, I, Lay.MlpBias, Role::MlpDown, L, MlpBlock);
  }
  if (Lay.FinalNorm)
    E.norm("", "transformer.encoder.final_layernorm", H, Lay.NormBias, -1);
  E.linear("", "transformer.output_layer", V, H, false, Role::LmHead, -1, NoBlock);
}

int64_t countChatGLM(const ModelDims &D, const Layout &Lay) {
  const int64_t NL = D.NumLayers.Value;
  const int64_t QKV = Lay.QKVBias, Out = Lay.OutBias, Mlp = Lay.MlpBias, NB = Lay.NormBias;
  return 2 + Lay.FinalNorm * (1 + NB) +
         NL * (2 * (1 + NB) + (1 + QKV) + (1 + Out) + 2 * (1 + Mlp));
}

} // namespace

const ModelFamily ChatGLMFamily = {"chatglm", readChatGLM, countChatGLM, emitChatGLM};

} // namespace hf
} // namespace autotpc
