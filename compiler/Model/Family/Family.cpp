//===- Family.cpp - the model families and what they share ----------------===//
//
// The registry of families, the parameter Emitter, and the reading and
// emitting steps that several families share.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/Family.h"

namespace autotpc {
namespace hf {

const std::vector<const ModelFamily *> &modelFamilies() {
  static const std::vector<const ModelFamily *> All = {
      &LlamaFamily,   &MistralFamily,    &Qwen2Family, &Phi3Family,
      &MixtralFamily, &DeepseekV2Family, &BloomFamily, &ChatGLMFamily};
  return All;
}

void Emitter::module(const std::string &Prefix, std::string_view Path, std::vector<int64_t> Shape,
                     bool Bias, Role R, int Layer, const std::string &Block) {
  int64_t Rows = Shape[0];
  add(name(Prefix, Path, ".weight"), std::move(Shape), R, Layer, Block);
  if (Bias)
    add(name(Prefix, Path, ".bias"), {Rows}, R, Layer, Block);
}

std::string Emitter::name(const std::string &Prefix, std::string_view Path, std::string_view Leaf) {
  std::string S;
  S.reserve(Prefix.size() + Path.size() + Leaf.size());
  S.append(Prefix).append(Path).append(Leaf);
  return S;
}

void Emitter::add(std::string Name, std::vector<int64_t> Shape, Role R, int Layer,
                  const std::string &Block) {
  ParamInfo &P = Out.emplace_back();
  P.Name = std::move(Name);
  P.Shape = std::move(Shape);
  P.DType = DType;
  P.R = R;
  P.Layer = Layer;
  P.Block = Block;
}

void readKVHeads(ConfigReader &R, ModelDims &D) {
  if (R.optInt("num_key_value_heads", 1, D.NumKVHeads) == Got::Absent)
    D.NumKVHeads =
        derived(D.NumHeads.Value, "num_key_value_heads", "defaults to " + D.NumHeads.Key);
}

bool readTie(ConfigReader &R, ModelDims &D, bool Default) {
  D.TiedEmbeddings = R.optBool("tie_word_embeddings", Default, &D.TieWordEmbeddings);
  return D.TiedEmbeddings;
}

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

void checkGroups(ConfigReader &R, const ModelDims &D) {
  const Dim &NH = D.NumHeads, &KV = D.NumKVHeads;
  if (NH.Value % KV.Value != 0)
    R.error(KV.Pointer.empty() ? NH.Pointer : KV.Pointer,
            quoteKey(NH.Key) + " (" + std::to_string(NH.Value) + ") is not divisible by " +
                quoteKey(KV.Key) + " (" + std::to_string(KV.Value) + ")");
}

std::string layerPrefix(const char *Stem, int64_t L) { return Stem + std::to_string(L) + "."; }

void emitSwiGLU(Emitter &E, const std::string &P, const std::string &Path, int64_t H, int64_t I,
                bool Bias, int L, const std::string &Block) {
  E.linear(P, Path + "gate_proj", I, H, Bias, Role::MlpGate, L, Block);
  E.linear(P, Path + "up_proj", I, H, Bias, Role::MlpUp, L, Block);
  E.linear(P, Path + "down_proj", H, I, Bias, Role::MlpDown, L, Block);
}

} // namespace hf
} // namespace autotpc
