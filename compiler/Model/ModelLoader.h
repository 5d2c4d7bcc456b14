//===- ModelLoader.h - find and read the model description --------------===//
//
// The model comes from the config's "model" key (a path relative to the
// config file, or an inline HF config object) or from --model: an HF
// config.json, a model.safetensors, a model.safetensors.index.json (headers
// only), or a folder holding them. With both a config.json and safetensors
// headers, the inventory is taken as stored and cross-checked against the one
// the config implies.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_MODEL_MODELLOADER_H
#define AUTOTPC_MODEL_MODELLOADER_H

#include "Model/Model.h"
#include "Spec/Config.h"
#include "Support/JsonDoc.h"

#include <memory>

namespace autotpc {

/// The model as the rest of the compiler sees it.
struct LoadedModel {
  std::optional<ModelDims> Dims;    ///< present when a config.json of a known family was read
  std::vector<ParamInfo> Params;
  std::string Description;          ///< e.g. "HF config.json (llama)", for --emit headers
  const JsonDoc *ConfigDoc = nullptr;  ///< the document holding the HF config, if any
  std::string Prefix;               ///< pointer of the HF config object inside ConfigDoc

  /// Location of a dimension's value in the user's file (invalid if defaulted).
  Loc loc(const Dim &D) const;
  /// "'num_key_value_heads' (8)", or "num_key_value_heads (8, defaults to ...)".
  static std::string describe(const Dim &D);
};

/// Loads the model named by ModelFlag, else by the config's "model" key.
/// Keeps the JSON documents it reads alive in Docs. Returns std::nullopt
/// after reporting an error.
std::optional<LoadedModel> loadModel(const Config &C, const JsonDoc &ConfigDoc, llvm::StringRef ModelFlag,
                                     DiagEngine &Diags, std::vector<std::unique_ptr<JsonDoc>> &Docs);

} // namespace autotpc

#endif // AUTOTPC_MODEL_MODELLOADER_H
