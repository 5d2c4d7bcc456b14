//===- DeepseekV2.cpp - the deepseek_v2 family (DeepseekV2ForCausalLM) ----===//
//
// Multi-head latent attention (queries optionally compressed through
// q_a/q_b, keys and values through kv_a/kv_b) and, past the first dense
// layers, a routed MoE with optional shared experts.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {
namespace {

/// Whether decoder layer L of a deepseek_v2 model has a routed MoE.
bool isMoeLayer(const ModelDims &D, int64_t L) {
  return D.NumExperts.Value > 0 && L >= D.FirstDenseLayers.Value && L % D.MoeLayerFreq.Value == 0;
}

void readDeepseekV2(ConfigReader &R, ModelDims &D, Layout &Lay) {
  D.Hidden = R.reqInt("hidden_size");
  D.NumLayers = R.reqInt("num_hidden_layers");
  D.NumHeads = R.reqInt("num_attention_heads");
  D.Vocab = R.reqInt("vocab_size");
  readKVHeads(R, D);
  // HF's default q_lora_rank (1536) is not what a config without the key is
  // likely to mean, so the key must be written out (null: no compression).
  if (!R.contains("q_lora_rank"))
    R.error("", "missing 'q_lora_rank' (null when queries are not compressed)");
  else
    Lay.QLora = R.optInt("q_lora_rank", 1, D.QLoraRank) == Got::Read;
  D.KVLoraRank = R.reqInt("kv_lora_rank");
  D.QKNopeHeadDim = R.reqInt("qk_nope_head_dim");
  D.QKRopeHeadDim = R.reqInt("qk_rope_head_dim");
  D.VHeadDim = R.reqInt("v_head_dim");
  bool MoE = R.optInt("n_routed_experts", 1, D.NumExperts) == Got::Read;
  if (MoE) {
    D.MoeIntermediate = R.reqInt("moe_intermediate_size");
    R.optInt("n_shared_experts", 1, D.NumSharedExperts);
    if (R.optInt("first_k_dense_replace", 0, D.FirstDenseLayers) == Got::Absent)
      D.FirstDenseLayers = derived(0, "first_k_dense_replace", "defaults to 0");
    if (R.optInt("moe_layer_freq", 1, D.MoeLayerFreq) == Got::Absent)
      D.MoeLayerFreq = derived(1, "moe_layer_freq", "defaults to 1");
  }
  // The dense MLP size matters only when some layer is dense.
  if (!MoE || D.FirstDenseLayers.Value > 0 || D.MoeLayerFreq.Value > 1)
    D.Intermediate = R.reqInt("intermediate_size");
  else
    R.optInt("intermediate_size", 1, D.Intermediate);
  Lay.QKVBias = Lay.OutBias = R.optBool("attention_bias", false);
  Lay.LmHead = !readTie(R, D, false);
  if (!R.ok())
    return;
  D.HeadDim = derived(D.QKNopeHeadDim.Value + D.QKRopeHeadDim.Value, "qk_head_dim",
                      "qk_nope_head_dim + qk_rope_head_dim");
}

void emitDeepseekV2(const ModelDims &D, const Layout &Lay, Emitter &E) {
  const int64_t H = D.Hidden.Value, V = D.Vocab.Value, NH = D.NumHeads.Value;
  const int64_t KVLora = D.KVLoraRank.Value, Rope = D.QKRopeHeadDim.Value;
  const int64_t QRows = NH * D.HeadDim.Value;
  const int64_t MI = D.MoeIntermediate.Value;
  E.linear("", "model.embed_tokens", V, H, false, Role::Embedding, -1, NoBlock);
  for (int L = 0; L < D.NumLayers.Value; ++L) {
    std::string P = layerPrefix("model.layers.", L);
    if (Lay.QLora) {
      const int64_t QLora = D.QLoraRank.Value;
      E.linear(P, "self_attn.q_a_proj", QLora, H, Lay.QKVBias, Role::AttnQA, L, AttnBlock);
      E.norm(P, "self_attn.q_a_layernorm", QLora, false, L);
      E.linear(P, "self_attn.q_b_proj", QRows, QLora, false, Role::AttnQB, L, AttnBlock);
    } else {
      E.linear(P, "self_attn.q_proj", QRows, H, false, Role::AttnQ, L, AttnBlock);
    }
    E.linear(P, "self_attn.kv_a_proj_with_mqa", KVLora + Rope, H, Lay.QKVBias, Role::AttnKVA, L,
             AttnBlock);
    E.norm(P, "self_attn.kv_a_layernorm", KVLora, false, L);
    E.linear(P, "self_attn.kv_b_proj", NH * (D.QKNopeHeadDim.Value + D.VHeadDim.Value), KVLora,
             false, Role::AttnKVB, L, AttnBlock);
    E.linear(P, "self_attn.o_proj", H, NH * D.VHeadDim.Value, Lay.OutBias, Role::AttnOut, L,
             AttnBlock);
    if (isMoeLayer(D, L)) {
      for (int64_t J = 0; J < D.NumExperts.Value; ++J) {
        std::string Block = "mlp.experts." + std::to_string(J);
        emitSwiGLU(E, P, Block + ".", H, MI, false, L, Block);
      }
      E.linear(P, "mlp.gate", D.NumExperts.Value, H, false, Role::Router, L, NoBlock);
      if (D.NumSharedExperts.Value > 0) {
        static const std::string Shared = "mlp.shared_experts";
        emitSwiGLU(E, P, Shared + ".", H, MI * D.NumSharedExperts.Value, false, L, Shared);
      }
    } else {
      emitSwiGLU(E, P, "mlp.", H, D.Intermediate.Value, false, L, MlpBlock);
    }
    E.norm(P, "input_layernorm", H, false, L);
    E.norm(P, "post_attention_layernorm", H, false, L);
  }
  E.norm("", "model.norm", H, false, -1);
  if (Lay.LmHead)
    E.linear("", "lm_head", V, H, false, Role::LmHead, -1, NoBlock);
}

int64_t countDeepseekV2(const ModelDims &D, const Layout &Lay) {
  const int64_t NL = D.NumLayers.Value, NE = D.NumExperts.Value;
  const int64_t QKV = Lay.QKVBias, Out = Lay.OutBias;
  int64_t Attn = (Lay.QLora ? 3 + QKV : 1) + (1 + QKV) + 2 + (1 + Out);
  int64_t N = 2 + Lay.LmHead;
  for (int64_t L = 0; L < NL; ++L)
    N += Attn + 2 + (isMoeLayer(D, L) ? 3 * NE + 1 + 3 * (D.NumSharedExperts.Value > 0) : 3);
  return N;
}

} // namespace

const ModelFamily DeepseekV2Family = {"deepseek_v2", readDeepseekV2, countDeepseekV2,
                                      emitDeepseekV2};

} // namespace hf
} // namespace autotpc
