//===- Family.h - the model families and what they share ------------------===//
//
// One file per model family (as transformers keeps one modeling_<family>):
// each states how its config keys become ModelDims, how many parameter tensors
// its model stores, and their names and shapes in registration order. This
// header is the registry of families and the pieces several of them share.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_MODEL_FAMILY_FAMILY_H
#define AUTOTPC_MODEL_FAMILY_FAMILY_H

#include "Model/Family/ConfigReader.h"

#include <string>
#include <string_view>
#include <vector>

namespace autotpc {
namespace hf {

/// Family switches that decide which parameters exist.
struct Layout {
  bool QKVBias = false;  ///< q/k/v (deepseek: q_a, kv_a; chatglm: query_key_value)
  bool OutBias = false;  ///< o_proj / dense
  bool MlpBias = false;  ///< every dense MLP projection
  bool NormBias = false; ///< LayerNorm (weight and bias) instead of RMSNorm
  bool FinalNorm = true; ///< chatglm post_layer_norm
  bool QLora = false;    ///< deepseek q_a_proj/q_b_proj instead of q_proj
  bool LmHead = true;    ///< an untied output projection is stored
};

/// Block names of ParamInfo::Block: none, the attention, the dense MLP.
inline const std::string NoBlock, AttnBlock = "attn", MlpBlock = "mlp";

/// Appends parameters with one dtype.
class Emitter {
public:
  Emitter(std::vector<ParamInfo> &Out, std::string DType) : Out(Out), DType(std::move(DType)) {}

  /// Prefix + Path + ".weight" of Shape, and when Bias, ".bias" of
  /// [Shape[0]] with the same role.
  void module(const std::string &Prefix, std::string_view Path, std::vector<int64_t> Shape,
              bool Bias, Role R, int Layer, const std::string &Block);
  /// A linear layer: weight [OutF, InF], bias [OutF].
  void linear(const std::string &Prefix, std::string_view Path, int64_t OutF, int64_t InF,
              bool Bias, Role R, int Layer, const std::string &Block) {
    module(Prefix, Path, {OutF, InF}, Bias, R, Layer, Block);
  }
  /// A norm: weight [N] (and bias [N] for a LayerNorm).
  void norm(const std::string &Prefix, std::string_view Path, int64_t N, bool Bias, int Layer) {
    module(Prefix, Path, {N}, Bias, Role::Norm, Layer, NoBlock);
  }

private:
  static std::string name(const std::string &Prefix, std::string_view Path, std::string_view Leaf);
  void add(std::string Name, std::vector<int64_t> Shape, Role R, int Layer,
           const std::string &Block);

  std::vector<ParamInfo> &Out;
  std::string DType;
};

/// What one family provides. Read fills the dims and the layout from the
/// config (reporting through the reader); Count gives the exact number of
/// tensors Emit then appends. The family's model emission will join here.
struct ModelFamily {
  const char *Name; ///< config "model_type", lower-case
  void (*Read)(ConfigReader &R, ModelDims &D, Layout &Lay);
  int64_t (*Count)(const ModelDims &D, const Layout &Lay);
  void (*Emit)(const ModelDims &D, const Layout &Lay, Emitter &E);
};

/// Every family, in the stable order of knownFamilies().
const std::vector<const ModelFamily *> &modelFamilies();

/// The families, one per file.
extern const ModelFamily LlamaFamily, MistralFamily, Qwen2Family, Phi3Family, MixtralFamily,
    DeepseekV2Family, BloomFamily, ChatGLMFamily;

//===----------------------------------------------------------------------===//
// Shared by several families (Family.cpp)
//===----------------------------------------------------------------------===//

/// num_key_value_heads, defaulting to the attention head count.
void readKVHeads(ConfigReader &R, ModelDims &D);

/// tie_word_embeddings; returns whether embeddings are tied.
bool readTie(ConfigReader &R, ModelDims &D, bool Default);

/// Sets HeadDim to hidden / heads unless the config gave it; reports an
/// uneven split.
void deriveHeadDim(ConfigReader &R, ModelDims &D, const char *HeadDimKey);

/// Query heads must split evenly into key/value groups.
void checkGroups(ConfigReader &R, const ModelDims &D);

/// "<Stem><L>.", the name prefix of decoder layer L.
std::string layerPrefix(const char *Stem, int64_t L);

/// Three gate/up/down projections of a SwiGLU MLP.
void emitSwiGLU(Emitter &E, const std::string &P, const std::string &Path, int64_t H, int64_t I,
                bool Bias, int L, const std::string &Block);

//===----------------------------------------------------------------------===//
// The llama decoder, which mistral, qwen2, phi3 and mixtral build on (Llama.cpp)
//===----------------------------------------------------------------------===//

/// The config keys llama, mistral, qwen2, phi3 and mixtral share, read before
/// any family-specific key: sizes, heads, key/value heads, head_dim.
void readLlamaDims(ConfigReader &R, ModelDims &D);

/// readLlamaDims, then finishLlamaDims: the keys of a llama decoder that
/// reads no key of its own (mistral, phi3).
void readLlamaKeys(ConfigReader &R, ModelDims &D, Layout &Lay);

/// Read after the family-specific keys: tie_word_embeddings, then (when all
/// is well so far) the head dimension and the key/value grouping.
void finishLlamaDims(ConfigReader &R, ModelDims &D, Layout &Lay);

/// Emits the body of decoder layer \p L (attention and MLP) under prefix \p P.
using LayerBodyFn = void (*)(const ModelDims &D, const Layout &Lay, Emitter &E,
                             const std::string &P, int L);

/// The llama model around \p Body: embeddings, per layer the body and its two
/// RMSNorms, the final norm, lm_head unless tied.
void emitLlamaStyle(const ModelDims &D, const Layout &Lay, Emitter &E, LayerBodyFn Body);

/// The tensor count of emitLlamaStyle when each body emits \p BodyTensors.
int64_t countLlamaStyle(const ModelDims &D, const Layout &Lay, int64_t BodyTensors);

/// Separate q/k/v/o projections (q/k/v biases with QKVBias, o with OutBias).
void emitLlamaAttention(const ModelDims &D, const Layout &Lay, Emitter &E, const std::string &P,
                        int L);

/// The tensor count of emitLlamaAttention.
int64_t countLlamaAttention(const Layout &Lay);

/// The llama model itself (attention and SwiGLU MLP), which mistral and qwen2
/// store too.
void emitLlama(const ModelDims &D, const Layout &Lay, Emitter &E);
/// The tensor count of emitLlama.
int64_t countLlama(const ModelDims &D, const Layout &Lay);

} // namespace hf
} // namespace autotpc

#endif // AUTOTPC_MODEL_FAMILY_FAMILY_H
