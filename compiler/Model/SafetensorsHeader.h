//===- SafetensorsHeader.h - parameter inventory from safetensors headers -===//
//
// Reads the tensor names, dtypes and shapes of a checkpoint from the JSON
// headers of its .safetensors files, never touching the tensor data: a 405B
// checkpoint is about 800 GB, its headers a few KB per shard.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_MODEL_SAFETENSORSHEADER_H
#define AUTOTPC_MODEL_SAFETENSORSHEADER_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace autotpc {

/// The safetensors format's cap on the JSON header length, in bytes.
constexpr uint64_t MaxSafetensorsHeaderSize = 100000000;

/// One tensor as a safetensors header describes it.
struct StoredTensor {
  std::string Name;           ///< e.g. "model.layers.0.self_attn.q_proj.weight"
  std::string DType;          ///< safetensors dtype name: "BF16", "F32", ...
  std::vector<int64_t> Shape; ///< as stored, e.g. [out, in] for linear weights
  std::string File;           ///< the file holding it, an entry of Files
};

/// What the headers of a checkpoint say about its tensors.
struct SafetensorsInventory {
  /// The tensors in a stable order: files in sorted file-name order, and
  /// within a file by data offset, which reproduces the writer's order.
  std::vector<StoredTensor> Tensors;
  /// The "__metadata__" map of the first file (e.g. "format" -> "pt").
  std::map<std::string, std::string> Metadata;
  /// The .safetensors files whose headers were read, in the order read.
  std::vector<std::string> Files;
};

/// Bytes of one element of a safetensors dtype (BOOL U8 I8 F8_E4M3 F8_E5M2
/// I16 U16 F16 BF16 I32 U32 F32 I64 U64 F64), 0 if unknown.
unsigned dtypeSize(llvm::StringRef DType);

/// Validates one header's JSON text against the size of the data region that
/// follows it, by the rules the runtime's reader applies (shared, header-only:
/// runtime/include/atp/safetensors_header.h), and returns its tensors, sorted
/// by data offset. \p FileName
/// only prefixes error messages and fills StoredTensor::File and Files.
/// Never throws, whatever the input.
llvm::Expected<SafetensorsInventory>
parseSafetensorsHeader(llvm::StringRef HeaderJson, uint64_t DataSize,
                       llvm::StringRef FileName);

/// Reads the header of one .safetensors file (only the first 8 + N bytes).
llvm::Expected<SafetensorsInventory> readSafetensorsFile(llvm::StringRef Path);

/// Reads a model.safetensors.index.json and every shard header it names,
/// each shard once. Shard names are relative to the index's folder. Checks
/// that the weight_map and the shard headers list the same tensors.
llvm::Expected<SafetensorsInventory> readSafetensorsIndex(llvm::StringRef Path);

/// Dispatches on what \p Path is: a .json file is read as an index, a folder
/// by its model.safetensors.index.json (or its one *.safetensors.index.json)
/// if it has one and otherwise by all its *.safetensors files in sorted
/// order, and any other file as a .safetensors file.
llvm::Expected<SafetensorsInventory>
readSafetensorsInventory(llvm::StringRef Path);

} // namespace autotpc

#endif // AUTOTPC_MODEL_SAFETENSORSHEADER_H
