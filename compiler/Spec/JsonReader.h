//===- JsonReader.h - typed reads of JSON values with diagnostics -------===//
//
// Small helpers shared by the config and layer-spec parsers: read a key of
// the expected JSON type or report an error at its value; treat "auto" as
// "use the default" the way DeepSpeed's non-strict models do.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_SPEC_JSONREADER_H
#define AUTOTPC_SPEC_JSONREADER_H

#include "Support/JsonDoc.h"

#include <optional>

namespace autotpc {

/// Reads values below one object of a JsonDoc.
class JsonReader {
public:
  JsonReader(const JsonDoc &Doc, DiagEngine &Diags, std::string Object, std::string Where)
      : Doc(Doc), Diags(Diags), Object(std::move(Object)), Where(std::move(Where)) {}

  std::string ptr(llvm::StringRef Key) const { return JsonDoc::child(Object, Key); }
  const nlohmann::json *get(llvm::StringRef Key) const { return Doc.get(ptr(Key)); }
  bool has(llvm::StringRef Key) const { return get(Key) != nullptr; }
  Loc value(llvm::StringRef Key) const { return Doc.value(ptr(Key)); }
  Loc key(llvm::StringRef Key) const { return Doc.key(ptr(Key)); }
  const JsonDoc &doc() const { return Doc; }

  /// True when the key holds the string "auto"; remarks that the default is used.
  bool isAuto(llvm::StringRef Key, llvm::StringRef DefaultText) {
    const nlohmann::json *V = get(Key);
    if (!V || !V->is_string() || V->get<std::string>() != "auto")
      return false;
    Diags.remark(value(Key), "'" + Key + "' is \"auto\"; using its default (" + DefaultText + ")");
    return true;
  }

  /// Reads an integer. Absent (or "auto"): Out keeps its default, returns true.
  bool readInt(llvm::StringRef Key, int64_t &Out, Loc *L = nullptr) {
    const nlohmann::json *V = get(Key);
    if (!V || isAuto(Key, std::to_string(Out)))
      return true;
    if (L)
      *L = value(Key);
    if (!V->is_number_integer()) {
      Diags.error(value(Key), "'" + Key + "' in " + Where + " must be an integer");
      return false;
    }
    if (V->is_number_unsigned() && V->get<uint64_t>() > uint64_t(INT64_MAX)) {
      Diags.error(value(Key), "'" + Key + "' in " + Where + " is too large");
      return false;
    }
    Out = V->get<int64_t>();
    return true;
  }

  bool readBool(llvm::StringRef Key, bool &Out, Loc *L = nullptr) {
    const nlohmann::json *V = get(Key);
    if (!V || isAuto(Key, Out ? "true" : "false"))
      return true;
    if (L)
      *L = value(Key);
    if (!V->is_boolean()) {
      Diags.error(value(Key), "'" + Key + "' in " + Where + " must be true or false");
      return false;
    }
    Out = V->get<bool>();
    return true;
  }

  bool readNumber(llvm::StringRef Key, double &Out, Loc *L = nullptr) {
    const nlohmann::json *V = get(Key);
    if (!V || isAuto(Key, std::to_string(Out)))
      return true;
    if (L)
      *L = value(Key);
    if (!V->is_number()) {
      Diags.error(value(Key), "'" + Key + "' in " + Where + " must be a number");
      return false;
    }
    Out = V->get<double>();
    return true;
  }

  /// Reads a string or null; null leaves Out empty.
  bool readString(llvm::StringRef Key, std::optional<std::string> &Out, Loc *L = nullptr) {
    const nlohmann::json *V = get(Key);
    if (!V || V->is_null())
      return true;
    if (L)
      *L = value(Key);
    if (!V->is_string()) {
      Diags.error(value(Key), "'" + Key + "' in " + Where + " must be a string");
      return false;
    }
    Out = V->get<std::string>();
    return true;
  }

  /// Checks that the value at the object itself is a JSON object.
  bool requireObject() {
    const nlohmann::json *V = Doc.get(Object);
    if (V && V->is_object())
      return true;
    Diags.error(Doc.value(Object), "'" + Where + "' must be an object");
    return false;
  }

  /// Reports each member key that is not in Known: as an error (Unknown is
  /// empty) or as a warning of group "ignored-key".
  bool checkKeys(llvm::ArrayRef<llvm::StringRef> Known, bool AsError, llvm::StringRef Why) {
    bool Ok = true;
    for (const std::string &K : Doc.keys(Object)) {
      if (llvm::is_contained(Known, llvm::StringRef(K)))
        continue;
      std::string Msg = "unknown key '" + K + "' in " + Where;
      llvm::StringRef Best;
      unsigned BestDist = 3;
      for (llvm::StringRef C : Known) {
        unsigned D = llvm::StringRef(K).edit_distance(C, true, BestDist);
        if (D < BestDist) {
          BestDist = D;
          Best = C;
        }
      }
      if (!Best.empty())
        Msg += "; did you mean '" + Best.str() + "'?";
      if (AsError) {
        Diags.error(key(K), Msg);
        Ok = false;
      } else {
        Diags.warning(key(K), "ignored-key", Msg);
      }
      if (!Why.empty())
        Diags.note(key(K), Why);
    }
    return Ok;
  }

private:
  const JsonDoc &Doc;
  DiagEngine &Diags;
  std::string Object, Where;
};

} // namespace autotpc

#endif // AUTOTPC_SPEC_JSONREADER_H
