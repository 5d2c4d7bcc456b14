//===- Model.h - the model's parameter inventory ------------------------===//
//
// What the compiler knows about a model: its parameters (HF names, shapes,
// dtypes, architectural roles) and, when a config.json is available, the
// architectural dimensions that the verifier checks divisibility against.
// Each dimension remembers the JSON pointer it was read from, so diagnostics
// can point at the exact value in the user's file.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_MODEL_MODEL_H
#define AUTOTPC_MODEL_MODEL_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace autotpc {

/// The architectural role of a parameter, where the model family is known.
/// The verifier uses roles for head alignment, fused-weight and column/row
/// pairing checks; a parameter of an unknown model has Role::Unknown.
enum class Role {
  Unknown,
  Embedding,        ///< token embedding [vocab, hidden]
  LmHead,           ///< output projection [vocab, hidden]
  Norm,             ///< layer/RMS norm weight or bias
  AttnQ,            ///< query projection, rows = heads * head_dim
  AttnK,            ///< key projection, rows = kv_heads * head_dim
  AttnV,            ///< value projection, rows = kv_heads * head_dim
  AttnQKV,          ///< fused [q; k; v] blocks (phi3 qkv_proj, chatglm query_key_value)
  AttnQKVInterleaved, ///< fused per-head [q1 k1 v1 q2 k2 v2 ...] (bloom)
  AttnQA,           ///< MLA low-rank query down-projection (deepseek q_a_proj)
  AttnQB,           ///< MLA query up-projection, rows = heads * qk_head_dim
  AttnKVA,          ///< MLA kv down-projection (kv_a_proj_with_mqa)
  AttnKVB,          ///< MLA kv up-projection, rows = heads * (qk_nope + v_head_dim)
  AttnOut,          ///< attention output projection, cols = heads * v_head_dim
  MlpGate,          ///< gate projection (also mixtral w1)
  MlpUp,            ///< up projection (also mixtral w3, bloom dense_h_to_4h)
  MlpGateUp,        ///< fused [gate; up] (phi3 gate_up_proj, chatglm dense_h_to_4h)
  MlpDown,          ///< down projection (also mixtral w2, dense_4h_to_h)
  Router,           ///< MoE router gate [experts, hidden]
  Other,            ///< known family, parameter with no special role (e.g. buffers)
};

/// Stable lower_snake_case name of a role, used in --emit=ir.
const char *roleName(Role R);

/// One parameter (or stored tensor) of the model.
struct ParamInfo {
  std::string Name;            ///< full HF path, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> Shape;  ///< as stored: [out, in] for linear weights
  std::string DType;           ///< safetensors dtype name: "BF16", "F16", "F32", ...
  Role R = Role::Unknown;
  int Layer = -1;              ///< decoder layer index, -1 outside the layers
  /// Which block of the layer the parameter belongs to, for column/row pairing:
  /// "attn", "mlp", "mlp.experts.3", "mlp.shared_experts"; empty when unknown.
  std::string Block;
};

/// A dimension read from a config.json, with the JSON pointer of its value
/// relative to the config object (e.g. "/num_key_value_heads"). Pointer is
/// empty when the value was defaulted or derived; Note then says how.
struct Dim {
  int64_t Value = 0;
  std::string Pointer;
  std::string Key;   ///< the config key as the user wrote it, e.g. "n_head"
  std::string Note;  ///< e.g. "defaults to num_attention_heads", "hidden_size / num_attention_heads"
};

/// Architectural dimensions of a known family, from its HF config.json.
struct ModelDims {
  std::string ModelType;   ///< config "model_type", lower-case
  std::string Family;      ///< one of: llama mistral qwen2 phi3 mixtral deepseek_v2 bloom chatglm
  Dim Hidden, NumLayers, NumHeads, NumKVHeads, HeadDim, Intermediate, Vocab;
  bool TiedEmbeddings = false;
  Dim TieWordEmbeddings;   ///< where tie_word_embeddings was read (Value 0/1)
  // MoE (mixtral, deepseek_v2); Value 0 when absent.
  Dim NumExperts, MoeIntermediate, NumSharedExperts, FirstDenseLayers, MoeLayerFreq;
  // MLA (deepseek_v2); Value 0 when absent.
  Dim QLoraRank, KVLoraRank, QKNopeHeadDim, QKRopeHeadDim, VHeadDim;
};

/// An error found while reading a config.json: the pointer of the offending
/// value (empty for the whole object) and a message.
struct ConfigProblem {
  std::string Pointer;
  std::string Message;
  bool IsWarning = false;
};

} // namespace autotpc

#endif // AUTOTPC_MODEL_MODEL_H
