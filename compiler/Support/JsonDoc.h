//===- JsonDoc.h - a JSON file with the source range of every value -----===//
//
// nlohmann/json parses and validates the text but keeps no positions, so a
// second pass over the same (already valid) text records, for every JSON
// Pointer, the SMRange of its key and its value, and the member order of every
// object. Diagnostics then point at "/tensor_parallel/autotp_size" exactly.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_SUPPORT_JSONDOC_H
#define AUTOTPC_SUPPORT_JSONDOC_H

#include "Support/Diagnostics.h"

#include "llvm/ADT/StringMap.h"

#include <memory>
#include <nlohmann/json.hpp>

namespace autotpc {

/// A parsed JSON buffer of a SourceMgr, with locations.
class JsonDoc {
public:
  /// Parses buffer BufID of the engine's SourceMgr. Syntax errors and
  /// duplicate keys are reported (DeepSpeed rejects duplicates too); returns
  /// null on error.
  static std::unique_ptr<JsonDoc> parse(DiagEngine &Diags, unsigned BufID);
  /// Loads Path into the SourceMgr under the name DisplayName and parses it.
  static std::unique_ptr<JsonDoc> load(DiagEngine &Diags, llvm::StringRef Path,
                                       llvm::StringRef DisplayName);

  const nlohmann::json &root() const { return Root; }
  /// The value at a JSON Pointer, or null if absent.
  const nlohmann::json *get(llvm::StringRef Pointer) const;
  /// The range of the value at Pointer (the whole buffer start if unknown).
  Loc value(llvm::StringRef Pointer) const;
  /// The range of the key naming the value at Pointer (its value if none).
  Loc key(llvm::StringRef Pointer) const;
  /// Member keys of the object at Pointer, in source order.
  const std::vector<std::string> &keys(llvm::StringRef Pointer) const;
  llvm::StringRef name() const { return Name; }
  unsigned bufferID() const { return BufID; }

  /// Appends a key to a pointer with JSON Pointer escaping.
  static std::string child(llvm::StringRef Pointer, llvm::StringRef Key);
  static std::string child(llvm::StringRef Pointer, size_t Index);

private:
  struct Entry {
    llvm::SMRange Key, Value;
  };
  friend class JsonLocationScanner;

  nlohmann::json Root;
  std::string Name;
  unsigned BufID = 0;
  llvm::SMLoc Start;
  llvm::StringMap<Entry> Index;
  llvm::StringMap<std::vector<std::string>> Members;
};

} // namespace autotpc

#endif // AUTOTPC_SUPPORT_JSONDOC_H
