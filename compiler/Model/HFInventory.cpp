//===- HFInventory.cpp - HF config.json -> parameter inventory ------------===//
//
// One reader per family turns config keys into ModelDims, reporting every
// problem at the JSON pointer of its value; one emitter per family then lists
// the parameters in module registration order, as the HF modeling code (or
// the model's remote code) registers them.
//
//===----------------------------------------------------------------------===//

#include "Model/HFInventory.h"

#include <nlohmann/json.hpp>

#include <cassert>
#include <initializer_list>
#include <limits>

using nlohmann::json;

namespace autotpc {
namespace {

/// Largest integer accepted for any config value. Real configs stay far
/// below it (vocabularies are ~2^18); the cap keeps every derived shape
/// dimension well inside int64_t.
constexpr int64_t MaxConfigInt = int64_t(1) << 24;

/// Most parameter tensors we enumerate; stops num_hidden_layers = 10^7 from
/// allocating gigabytes. DeepSeek-V3 has about 47k.
constexpr int64_t MaxParams = int64_t(1) << 20;

enum class Family { Llama, Mistral, Qwen2, Phi3, Mixtral, DeepseekV2, Bloom, ChatGLM };

/// Family names, indexed by Family.
constexpr const char *FamilyNames[] = {"llama",   "mistral",     "qwen2", "phi3",
                                       "mixtral", "deepseek_v2", "bloom", "chatglm"};
constexpr size_t NumFamilies = sizeof(FamilyNames) / sizeof(FamilyNames[0]);

std::string lower(std::string_view S) {
  std::string L(S);
  for (char &C : L)
    if (C >= 'A' && C <= 'Z')
      C = char(C - 'A' + 'a');
  return L;
}

std::optional<Family> familyOf(std::string_view ModelType) {
  std::string L = lower(ModelType);
  for (size_t I = 0; I < NumFamilies; ++I)
    if (L == FamilyNames[I])
      return Family(I);
  return std::nullopt;
}

std::string familyList() {
  std::string S;
  for (size_t I = 0; I < NumFamilies; ++I) {
    if (I)
      S += ", ";
    S += FamilyNames[I];
  }
  return S;
}

/// JSON pointer of a top-level key (RFC 6901 escaping).
std::string pointerTo(std::string_view Key) {
  std::string P = "/";
  for (char C : Key) {
    if (C == '~')
      P += "~0";
    else if (C == '/')
      P += "~1";
    else
      P += C;
  }
  return P;
}

std::string quoteKey(std::string_view Key) { return "'" + std::string(Key) + "'"; }

/// A short rendering of a JSON value for messages.
std::string show(const json &V) {
  std::string S = V.dump(-1, ' ', false, json::error_handler_t::replace);
  if (S.size() > 40) {
    S.resize(37);
    S += "...";
  }
  return S;
}

Dim derived(int64_t Value, std::string Key, std::string Note) {
  Dim D;
  D.Value = Value;
  D.Key = std::move(Key);
  D.Note = std::move(Note);
  return D;
}

/// Outcome of reading an optional value.
enum class Got { Absent, Read, Bad };

/// Typed access to the top-level keys of one config object; collects every
/// problem instead of stopping at the first.
class ConfigReader {
public:
  ConfigReader(const json &Obj, std::vector<ConfigProblem> &Problems)
      : Obj(Obj), Problems(Problems) {}

  void error(std::string Pointer, std::string Message) {
    Problems.push_back({std::move(Pointer), std::move(Message), false});
    ++Errors;
  }
  void warning(std::string Pointer, std::string Message) {
    Problems.push_back({std::move(Pointer), std::move(Message), true});
  }
  bool ok() const { return Errors == 0; }

  bool contains(const char *Key) const { return Obj.contains(Key); }

  /// The value of Key, or nullptr when it is absent or null (HF's None).
  const json *find(const char *Key) const {
    auto It = Obj.find(Key);
    if (It == Obj.end() || It->is_null())
      return nullptr;
    return &*It;
  }

  /// Reads Key as an integer in [Min, MaxConfigInt] into Out.
  Got optInt(const char *Key, int64_t Min, Dim &Out) {
    const json *V = find(Key);
    if (!V)
      return Got::Absent;
    return checkInt(Key, *V, Min, Out) ? Got::Read : Got::Bad;
  }

  /// A required integer; a missing or null key is an error.
  Dim reqInt(const char *Key, int64_t Min = 1) {
    Dim D;
    D.Key = Key;
    if (optInt(Key, Min, D) == Got::Absent)
      missing({Key});
    return D;
  }

  /// A required integer under any of Keys, which are aliases in order of
  /// precedence; a lower-precedence alias with another value is a warning.
  Dim reqIntAny(std::initializer_list<const char *> Keys, int64_t Min = 1) {
    Dim D;
    const char *Used = nullptr;
    for (const char *Key : Keys) {
      const json *V = find(Key);
      if (!V)
        continue;
      if (!Used) {
        Used = Key;
        checkInt(Key, *V, Min, D);
      } else if (*V != *find(Used)) {
        warning(pointerTo(Key), quoteKey(Key) + " (" + show(*V) + ") is ignored; " +
                                    quoteKey(Used) + " (" + show(*find(Used)) +
                                    ") takes precedence");
      }
    }
    if (!Used)
      missing(Keys);
    return D;
  }

  /// Reads Key as a boolean; Out (if given) records where it came from.
  bool optBool(const char *Key, bool Default, Dim *Out = nullptr) {
    const json *V = find(Key);
    bool Value = Default;
    std::string Pointer;
    if (V && !V->is_boolean()) {
      error(pointerTo(Key), quoteKey(Key) + " (" + show(*V) + ") is not a boolean");
    } else if (V) {
      Value = V->get<bool>();
      Pointer = pointerTo(Key);
    }
    if (Out) {
      *Out = derived(Value, Key, V ? "" : Default ? "defaults to true" : "defaults to false");
      Out->Pointer = std::move(Pointer);
    }
    return Value;
  }

private:
  void missing(std::initializer_list<const char *> Keys) {
    std::string Names;
    for (const char *Key : Keys) {
      if (contains(Key)) {
        error(pointerTo(Key), quoteKey(Key) + " is null; expected an integer");
        return;
      }
      Names += Names.empty() ? quoteKey(Key) : " or " + quoteKey(Key);
    }
    error("", "missing " + Names);
  }

  bool checkInt(const char *Key, const json &V, int64_t Min, Dim &Out) {
    std::string P = pointerTo(Key);
    if (!V.is_number_integer()) {
      error(std::move(P), quoteKey(Key) + " (" + show(V) + ") is not an integer");
      return false;
    }
    int64_t X = V.is_number_unsigned() && V.get<uint64_t>() > uint64_t(MaxConfigInt)
                    ? MaxConfigInt + 1
                    : V.get<int64_t>();
    if (X < Min) {
      error(std::move(P), quoteKey(Key) + " (" + std::to_string(X) + ") must be " +
                              (Min > 0 ? "positive" : "non-negative"));
      return false;
    }
    if (X > MaxConfigInt) {
      error(std::move(P), quoteKey(Key) + " (" + show(V) +
                              ") is larger than the supported maximum (" +
                              std::to_string(MaxConfigInt) + ")");
      return false;
    }
    Out.Value = X;
    Out.Pointer = std::move(P);
    Out.Key = Key;
    Out.Note.clear();
    return true;
  }

  const json &Obj;
  std::vector<ConfigProblem> &Problems;
  unsigned Errors = 0;
};

/// Family switches that decide which parameters exist.
struct Layout {
  Family F = Family::Llama;
  bool QKVBias = false;  ///< q/k/v (deepseek: q_a, kv_a; chatglm: query_key_value)
  bool OutBias = false;  ///< o_proj / dense
  bool MlpBias = false;  ///< every dense MLP projection
  bool NormBias = false; ///< LayerNorm (weight and bias) instead of RMSNorm
  bool FinalNorm = true; ///< chatglm post_layer_norm
  bool QLora = false;    ///< deepseek q_a_proj/q_b_proj instead of q_proj
  bool LmHead = true;    ///< an untied output projection is stored
};

/// Safetensors dtype name from "torch_dtype" (or the newer "dtype").
std::string readDType(ConfigReader &R) {
  for (const char *Key : {"torch_dtype", "dtype"}) {
    const json *V = R.find(Key);
    if (!V)
      continue;
    if (!V->is_string()) {
      R.error(pointerTo(Key), quoteKey(Key) + " (" + show(*V) + ") is not a string");
      return "F32";
    }
    std::string S = lower(V->get_ref<const std::string &>());
    if (S.rfind("torch.", 0) == 0)
      S.erase(0, 6);
    if (S == "bfloat16")
      return "BF16";
    if (S == "float16" || S == "half")
      return "F16";
    if (S == "float32" || S == "float")
      return "F32";
    if (S == "float64" || S == "double")
      return "F64";
    R.warning(pointerTo(Key),
              quoteKey(Key) + " (" + show(*V) + ") is not a known dtype; assuming float32");
    return "F32";
  }
  return "F32";
}

/// num_key_value_heads, defaulting to the attention head count.
void readKVHeads(ConfigReader &R, ModelDims &D) {
  if (R.optInt("num_key_value_heads", 1, D.NumKVHeads) == Got::Absent)
    D.NumKVHeads =
        derived(D.NumHeads.Value, "num_key_value_heads", "defaults to " + D.NumHeads.Key);
}

/// tie_word_embeddings; returns whether embeddings are tied.
bool readTie(ConfigReader &R, ModelDims &D, bool Default) {
  D.TiedEmbeddings = R.optBool("tie_word_embeddings", Default, &D.TieWordEmbeddings);
  return D.TiedEmbeddings;
}

/// Sets HeadDim to hidden / heads unless the config gave it; reports an
/// uneven split.
void deriveHeadDim(ConfigReader &R, ModelDims &D, const char *HeadDimKey) {
  if (!D.HeadDim.Pointer.empty())
    return;
  const Dim &H = D.Hidden, &NH = D.NumHeads;
  if (H.Value % NH.Value != 0) {
    R.error(H.Pointer, quoteKey(H.Key) + " (" + std::to_string(H.Value) + ") is not divisible by " +
                           quoteKey(NH.Key) + " (" + std::to_string(NH.Value) + ") and " +
                           quoteKey(HeadDimKey) + " is not set");
    return;
  }
  D.HeadDim = derived(H.Value / NH.Value, HeadDimKey, H.Key + " / " + NH.Key);
}

/// Query heads must split evenly into key/value groups.
void checkGroups(ConfigReader &R, const ModelDims &D) {
  const Dim &NH = D.NumHeads, &KV = D.NumKVHeads;
  if (NH.Value % KV.Value != 0)
    R.error(KV.Pointer.empty() ? NH.Pointer : KV.Pointer,
            quoteKey(NH.Key) + " (" + std::to_string(NH.Value) + ") is not divisible by " +
                quoteKey(KV.Key) + " (" + std::to_string(KV.Value) + ")");
}

//===----------------------------------------------------------------------===//
// Readers
//===----------------------------------------------------------------------===//

/// llama, mistral, qwen2, phi3 and mixtral share their config keys.
void readLlamaLike(ConfigReader &R, ModelDims &D, Layout &Lay) {
  D.Hidden = R.reqInt("hidden_size");
  D.Intermediate = R.reqInt("intermediate_size");
  D.NumLayers = R.reqInt("num_hidden_layers");
  D.NumHeads = R.reqInt("num_attention_heads");
  D.Vocab = R.reqInt("vocab_size");
  readKVHeads(R, D);
  R.optInt("head_dim", 1, D.HeadDim);
  if (Lay.F == Family::Mixtral) {
    D.NumExperts = R.reqInt("num_local_experts");
    D.MoeIntermediate = D.Intermediate;
  }
  if (Lay.F == Family::Llama) {
    Lay.QKVBias = Lay.OutBias = R.optBool("attention_bias", false);
    Lay.MlpBias = R.optBool("mlp_bias", false);
  }
  Lay.QKVBias |= Lay.F == Family::Qwen2;
  Lay.LmHead = !readTie(R, D, false);
  if (!R.ok())
    return;
  deriveHeadDim(R, D, "head_dim");
  checkGroups(R, D);
}

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

//===----------------------------------------------------------------------===//
// Emitters
//===----------------------------------------------------------------------===//

const std::string NoBlock, AttnBlock = "attn", MlpBlock = "mlp";

/// Appends parameters with one dtype.
class Emitter {
public:
  Emitter(std::vector<ParamInfo> &Out, std::string DType) : Out(Out), DType(std::move(DType)) {}

  /// Prefix + Path + ".weight" of Shape, and when Bias, ".bias" of
  /// [Shape[0]] with the same role.
  void module(const std::string &Prefix, std::string_view Path, std::vector<int64_t> Shape,
              bool Bias, Role R, int Layer, const std::string &Block) {
    int64_t Rows = Shape[0];
    add(name(Prefix, Path, ".weight"), std::move(Shape), R, Layer, Block);
    if (Bias)
      add(name(Prefix, Path, ".bias"), {Rows}, R, Layer, Block);
  }
  void linear(const std::string &Prefix, std::string_view Path, int64_t OutF, int64_t InF,
              bool Bias, Role R, int Layer, const std::string &Block) {
    module(Prefix, Path, {OutF, InF}, Bias, R, Layer, Block);
  }
  void norm(const std::string &Prefix, std::string_view Path, int64_t N, bool Bias, int Layer) {
    module(Prefix, Path, {N}, Bias, Role::Norm, Layer, NoBlock);
  }

private:
  static std::string name(const std::string &Prefix, std::string_view Path, std::string_view Leaf) {
    std::string S;
    S.reserve(Prefix.size() + Path.size() + Leaf.size());
    S.append(Prefix).append(Path).append(Leaf);
    return S;
  }
  void add(std::string Name, std::vector<int64_t> Shape, Role R, int Layer,
           const std::string &Block) {
    ParamInfo &P = Out.emplace_back();
    P.Name = std::move(Name);
    P.Shape = std::move(Shape);
    P.DType = DType;
    P.R = R;
    P.Layer = Layer;
    P.Block = Block;
  }

  std::vector<ParamInfo> &Out;
  std::string DType;
};

std::string layerPrefix(const char *Stem, int64_t L) { return Stem + std::to_string(L) + "."; }

/// Three gate/up/down projections of a SwiGLU MLP.
void emitSwiGLU(Emitter &E, const std::string &P, const std::string &Path, int64_t H, int64_t I,
                bool Bias, int L, const std::string &Block) {
  E.linear(P, Path + "gate_proj", I, H, Bias, Role::MlpGate, L, Block);
  E.linear(P, Path + "up_proj", I, H, Bias, Role::MlpUp, L, Block);
  E.linear(P, Path + "down_proj", H, I, Bias, Role::MlpDown, L, Block);
}

void emitLlamaLike(const ModelDims &D, const Layout &Lay, Emitter &E) {
  const int64_t H = D.Hidden.Value, I = D.Intermediate.Value, V = D.Vocab.Value;
  const int64_t QRows = D.NumHeads.Value * D.HeadDim.Value;
  const int64_t KVRows = D.NumKVHeads.Value * D.HeadDim.Value;
  E.linear("", "model.embed_tokens", V, H, false, Role::Embedding, -1, NoBlock);
  for (int L = 0; L < D.NumLayers.Value; ++L) {
    std::string P = layerPrefix("model.layers.", L);
    if (Lay.F == Family::Phi3) {
      E.linear(P, "self_attn.o_proj", H, QRows, false, Role::AttnOut, L, AttnBlock);
      E.linear(P, "self_attn.qkv_proj", QRows + 2 * KVRows, H, false, Role::AttnQKV, L, AttnBlock);
      E.linear(P, "mlp.gate_up_proj", 2 * I, H, false, Role::MlpGateUp, L, MlpBlock);
      E.linear(P, "mlp.down_proj", H, I, false, Role::MlpDown, L, MlpBlock);
    } else {
      E.linear(P, "self_attn.q_proj", QRows, H, Lay.QKVBias, Role::AttnQ, L, AttnBlock);
      E.linear(P, "self_attn.k_proj", KVRows, H, Lay.QKVBias, Role::AttnK, L, AttnBlock);
      E.linear(P, "self_attn.v_proj", KVRows, H, Lay.QKVBias, Role::AttnV, L, AttnBlock);
      E.linear(P, "self_attn.o_proj", H, QRows, Lay.OutBias, Role::AttnOut, L, AttnBlock);
      if (Lay.F == Family::Mixtral) {
        E.linear(P, "block_sparse_moe.gate", D.NumExperts.Value, H, false, Role::Router, L,
                 NoBlock);
        for (int64_t J = 0; J < D.NumExperts.Value; ++J) {
          std::string Block = "block_sparse_moe.experts." + std::to_string(J);
          std::string Path = Block + ".";
          E.linear(P, Path + "w1", I, H, false, Role::MlpGate, L, Block);
          E.linear(P, Path + "w2", H, I, false, Role::MlpDown, L, Block);
          E.linear(P, Path + "w3", I, H, false, Role::MlpUp, L, Block);
        }
      } else {
        emitSwiGLU(E, P, "mlp.", H, I, Lay.MlpBias, L, MlpBlock);
      }
    }
    E.norm(P, "input_layernorm", H, false, L);
    E.norm(P, "post_attention_layernorm", H, false, L);
  }
  E.norm("", "model.norm", H, false, -1);
  if (Lay.LmHead)
    E.linear("", "lm_head", V, H, false, Role::LmHead, -1, NoBlock);
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

/// Exact number of tensors the emitter for Lay.F will produce.
int64_t countParams(const ModelDims &D, const Layout &Lay) {
  const int64_t NL = D.NumLayers.Value, NE = D.NumExperts.Value;
  const int64_t QKV = Lay.QKVBias, Out = Lay.OutBias, Mlp = Lay.MlpBias, NB = Lay.NormBias;
  switch (Lay.F) {
  case Family::Llama:
  case Family::Mistral:
  case Family::Qwen2:
  case Family::Phi3:
  case Family::Mixtral: {
    int64_t PerLayer = Lay.F == Family::Phi3 ? 4 : 4 + 3 * QKV + Out;
    if (Lay.F == Family::Mixtral)
      PerLayer += 1 + 3 * NE;
    else if (Lay.F != Family::Phi3)
      PerLayer += 3 + 3 * Mlp;
    return 2 + Lay.LmHead + NL * (PerLayer + 2);
  }
  case Family::DeepseekV2: {
    int64_t Attn = (Lay.QLora ? 3 + QKV : 1) + (1 + QKV) + 2 + (1 + Out);
    int64_t N = 2 + Lay.LmHead;
    for (int64_t L = 0; L < NL; ++L)
      N += Attn + 2 + (isMoeLayer(D, L) ? 3 * NE + 1 + 3 * (D.NumSharedExperts.Value > 0) : 3);
    return N;
  }
  case Family::Bloom:
    return 5 + Lay.LmHead + 12 * NL;
  case Family::ChatGLM:
    return 2 + Lay.FinalNorm * (1 + NB) +
           NL * (2 * (1 + NB) + (1 + QKV) + (1 + Out) + 2 * (1 + Mlp));
  }
  return 0;
}

/// Checks that every tensor's element count, and their sum, fit in int64_t.
void checkTotal(ConfigReader &R, const std::vector<ParamInfo> &Params) {
  constexpr int64_t Max = std::numeric_limits<int64_t>::max();
  int64_t Total = 0;
  for (const ParamInfo &P : Params) {
    int64_t N = 1;
    for (int64_t Extent : P.Shape) {
      if (N > Max / Extent) {
        R.error("", "parameter '" + P.Name + "' has more elements than int64_t can count");
        return;
      }
      N *= Extent;
    }
    if (Total > Max - N) {
      R.error("", "the model has more parameters than int64_t can count");
      return;
    }
    Total += N;
  }
}

} // namespace

bool isKnownFamily(std::string_view ModelType) { return familyOf(ModelType).has_value(); }

const std::vector<std::string> &knownFamilies() {
  static const std::vector<std::string> Names(FamilyNames, FamilyNames + NumFamilies);
  return Names;
}

std::optional<HFInventory> deriveInventory(const json &Config,
                                           std::vector<ConfigProblem> &Problems) {
  ConfigReader R(Config, Problems);
  if (!Config.is_object()) {
    R.error("", "config is not a JSON object");
    return std::nullopt;
  }
  auto MT = Config.find("model_type");
  if (MT == Config.end()) {
    R.error("", "missing 'model_type'; known families: " + familyList());
    return std::nullopt;
  }
  if (!MT->is_string()) {
    R.error("/model_type", "'model_type' (" + show(*MT) + ") is not a string");
    return std::nullopt;
  }
  const std::string &TypeName = MT->get_ref<const std::string &>();
  std::optional<Family> F = familyOf(TypeName);
  if (!F) {
    R.error("/model_type",
            "unknown model_type '" + TypeName + "'; known families: " + familyList());
    return std::nullopt;
  }

  HFInventory Inv;
  ModelDims &D = Inv.Dims;
  D.ModelType = lower(TypeName);
  D.Family = FamilyNames[size_t(*F)];
  Layout Lay;
  Lay.F = *F;
  std::string DType = readDType(R);
  switch (*F) {
  case Family::Llama:
  case Family::Mistral:
  case Family::Qwen2:
  case Family::Phi3:
  case Family::Mixtral:
    readLlamaLike(R, D, Lay);
    break;
  case Family::DeepseekV2:
    readDeepseekV2(R, D, Lay);
    break;
  case Family::Bloom:
    readBloom(R, D, Lay);
    break;
  case Family::ChatGLM:
    readChatGLM(R, D, Lay);
    break;
  }
  if (!R.ok())
    return std::nullopt;

  const int64_t Count = countParams(D, Lay);
  if (Count > MaxParams) {
    R.error(D.NumLayers.Pointer,
            quoteKey(D.NumLayers.Key) + " (" + std::to_string(D.NumLayers.Value) + ") gives " +
                std::to_string(Count) + " parameter tensors, more than the supported maximum (" +
                std::to_string(MaxParams) + ")");
    return std::nullopt;
  }
  Inv.Params.reserve(size_t(Count));
  Emitter E(Inv.Params, std::move(DType));
  switch (*F) {
  case Family::Llama:
  case Family::Mistral:
  case Family::Qwen2:
  case Family::Phi3:
  case Family::Mixtral:
    emitLlamaLike(D, Lay, E);
    break;
  case Family::DeepseekV2:
    emitDeepseekV2(D, Lay, E);
    break;
  case Family::Bloom:
    emitBloom(D, Lay, E);
    break;
  case Family::ChatGLM:
    emitChatGLM(D, Lay, E);
    break;
  }
  assert(Inv.Params.size() == size_t(Count) && "countParams disagrees with the emitter");
  checkTotal(R, Inv.Params);
  if (!R.ok())
    return std::nullopt;
  return Inv;
}

} // namespace autotpc
