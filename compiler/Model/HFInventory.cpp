//===- HFInventory.cpp - HF config.json -> parameter inventory ------------===//
//
// Finds the family of a config's model_type, lets the family's reader turn
// config keys into ModelDims (reporting every problem at the JSON pointer of
// its value), then lets its emitter list the parameters in module
// registration order. The families live in Family/, one file each.
//
//===----------------------------------------------------------------------===//

#include "Model/HFInventory.h"
#include "Model/Family/Family.h"

#include <nlohmann/json.hpp>

#include <cassert>
#include <limits>

using nlohmann::json;

namespace autotpc {
namespace {

using namespace hf;

/// Most parameter tensors we enumerate; stops num_hidden_layers = 10^7 from
/// allocating gigabytes. DeepSeek-V3 has about 47k.
constexpr int64_t MaxParams = int64_t(1) << 20;

const ModelFamily *familyOf(std::string_view ModelType) {
  std::string L = lower(ModelType);
  for (const ModelFamily *F : modelFamilies())
    if (L == F->Name)
      return F;
  return nullptr;
}

std::string familyList() {
  std::string S;
  for (const ModelFamily *F : modelFamilies()) {
    if (!S.empty())
      S += ", ";
    S += F->Name;
  }
  return S;
}

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

bool isKnownFamily(std::string_view ModelType) { return familyOf(ModelType) != nullptr; }

const std::vector<std::string> &knownFamilies() {
  static const std::vector<std::string> Names = [] {
    std::vector<std::string> N;
    for (const ModelFamily *F : modelFamilies())
      N.push_back(F->Name);
    return N;
  }();
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
  const ModelFamily *F = familyOf(TypeName);
  if (!F) {
    R.error("/model_type",
            "unknown model_type '" + TypeName + "'; known families: " + familyList());
    return std::nullopt;
  }

  HFInventory Inv;
  ModelDims &D = Inv.Dims;
  D.ModelType = lower(TypeName);
  D.Family = F->Name;
  Layout Lay;
  std::string DType = readDType(R);
  F->Read(R, D, Lay);
  if (!R.ok())
    return std::nullopt;

  const int64_t Count = F->Count(D, Lay);
  if (Count > MaxParams) {
    R.error(D.NumLayers.Pointer,
            quoteKey(D.NumLayers.Key) + " (" + std::to_string(D.NumLayers.Value) + ") gives " +
                std::to_string(Count) + " parameter tensors, more than the supported maximum (" +
                std::to_string(MaxParams) + ")");
    return std::nullopt;
  }
  Inv.Params.reserve(size_t(Count));
  Emitter E(Inv.Params, std::move(DType));
  F->Emit(D, Lay, E);
  assert(Inv.Params.size() == size_t(Count) && "the family's Count disagrees with its Emit");
  checkTotal(R, Inv.Params);
  if (!R.ok())
    return std::nullopt;
  return Inv;
}

} // namespace autotpc
