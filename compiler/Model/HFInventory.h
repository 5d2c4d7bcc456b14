//===- HFInventory.h - HF config.json -> parameter inventory --------------===//
//
// Reads the architectural dimensions of a known model family from a parsed
// Hugging Face config.json and derives the exact parameter inventory of its
// *ForCausalLM model: names, shapes and order of the checkpoint keys.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_MODEL_HFINVENTORY_H
#define AUTOTPC_MODEL_HFINVENTORY_H

#include "Model/Model.h"

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace autotpc {

/// Result of reading an HF config.json object.
struct HFInventory {
  /// The dimensions read, each with the JSON pointer of its value.
  ModelDims Dims;
  /// Every stored parameter, in module registration order (the order of
  /// model.named_parameters()); lm_head is absent when embeddings are tied.
  std::vector<ParamInfo> Params;
};

/// True if \p ModelType (compared case-insensitively) names a family we
/// derive inventories for.
bool isKnownFamily(std::string_view ModelType);

/// The supported families in a stable order, for messages: llama mistral
/// qwen2 phi3 mixtral deepseek_v2 bloom chatglm.
const std::vector<std::string> &knownFamilies();

/// Reads dims and derives the exact HF parameter inventory from a parsed
/// config.json object. Every problem found (missing or ill-typed keys,
/// non-positive or oversized values, inconsistent values) is appended to
/// \p Problems with the JSON pointer of the offending value, relative to
/// \p Config ("" for the object itself). Returns std::nullopt when at least
/// one error (not warning) was found. A "text_config" sub-object is ignored.
///
/// On success every shape dimension is positive and the total element count
/// of all parameters fits in int64_t.
std::optional<HFInventory> deriveInventory(const nlohmann::json &Config,
                                           std::vector<ConfigProblem> &Problems);

} // namespace autotpc

#endif // AUTOTPC_MODEL_HFINVENTORY_H
