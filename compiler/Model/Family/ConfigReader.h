//===- ConfigReader.h - typed, collecting reads of HF config keys ---------===//
//
// Typed access to the top-level keys of a Hugging Face config.json object.
// Every family's reader goes through it, so that every problem is reported at
// the JSON pointer of its value, and all of them at once.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_MODEL_FAMILY_CONFIGREADER_H
#define AUTOTPC_MODEL_FAMILY_CONFIGREADER_H

#include "Model/Model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace autotpc {
namespace hf {

/// Largest integer accepted for any config value. Real configs stay far
/// below it (vocabularies are ~2^18); the cap keeps every derived shape
/// dimension well inside int64_t.
constexpr int64_t MaxConfigInt = int64_t(1) << 24;

/// ASCII lower case of \p S.
std::string lower(std::string_view S);

/// JSON pointer of a top-level key (RFC 6901 escaping).
std::string pointerTo(std::string_view Key);

/// "'Key'", for messages.
std::string quoteKey(std::string_view Key);

/// A short rendering of a JSON value for messages.
std::string show(const nlohmann::json &V);

/// A dimension that no key states directly: \p Value derived as \p Note says,
/// named \p Key in messages.
Dim derived(int64_t Value, std::string Key, std::string Note);

/// Outcome of reading an optional value.
enum class Got { Absent, Read, Bad };

/// Typed access to the top-level keys of one config object; collects every
/// problem instead of stopping at the first.
class ConfigReader {
public:
  ConfigReader(const nlohmann::json &Obj, std::vector<ConfigProblem> &Problems)
      : Obj(Obj), Problems(Problems) {}

  /// Records an error at \p Pointer.
  void error(std::string Pointer, std::string Message) {
    Problems.push_back({std::move(Pointer), std::move(Message), false});
    ++Errors;
  }
  /// Records a warning at \p Pointer.
  void warning(std::string Pointer, std::string Message) {
    Problems.push_back({std::move(Pointer), std::move(Message), true});
  }
  /// True while no error has been recorded.
  bool ok() const { return Errors == 0; }

  /// True if \p Key is present (null included).
  bool contains(const char *Key) const { return Obj.contains(Key); }

  /// The value of Key, or nullptr when it is absent or null (HF's None).
  const nlohmann::json *find(const char *Key) const {
    auto It = Obj.find(Key);
    if (It == Obj.end() || It->is_null())
      return nullptr;
    return &*It;
  }

  /// Reads Key as an integer in [Min, MaxConfigInt] into Out.
  Got optInt(const char *Key, int64_t Min, Dim &Out) {
    const nlohmann::json *V = find(Key);
    if (!V)
      return Got::Absent;
    return checkInt(Key, *V, Min, Out) ? Got::Read : Got::Bad;
  }

  /// A required integer; a missing or null key is an error.
  Dim reqInt(const char *Key, int64_t Min = 1);

  /// A required integer under any of Keys, which are aliases in order of
  /// precedence; a lower-precedence alias with another value is a warning.
  Dim reqIntAny(std::initializer_list<const char *> Keys, int64_t Min = 1);

  /// Reads Key as a boolean; Out (if given) records where it came from.
  bool optBool(const char *Key, bool Default, Dim *Out = nullptr);

private:
  void missing(std::initializer_list<const char *> Keys);
  bool checkInt(const char *Key, const nlohmann::json &V, int64_t Min, Dim &Out);

  const nlohmann::json &Obj;
  std::vector<ConfigProblem> &Problems;
  unsigned Errors = 0;
};

} // namespace hf
} // namespace autotpc

#endif // AUTOTPC_MODEL_FAMILY_CONFIGREADER_H
