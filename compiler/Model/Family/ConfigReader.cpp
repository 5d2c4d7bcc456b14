//===- ConfigReader.cpp - typed, collecting reads of HF config keys -------===//
//
// The checks behind ConfigReader: integers in range, booleans, aliases in
// order of precedence, and one message for a key that is missing or null.
//
//===----------------------------------------------------------------------===//

#include "Model/Family/ConfigReader.h"
#include "Support/JsonDoc.h"

using nlohmann::json;

namespace autotpc {
namespace hf {

std::string lower(std::string_view S) {
  std::string L(S);
  for (char &C : L)
    if (C >= 'A' && C <= 'Z')
      C = char(C - 'A' + 'a');
  return L;
}

std::string pointerTo(std::string_view Key) {
  return JsonDoc::child("", llvm::StringRef(Key.data(), Key.size()));
}

std::string quoteKey(std::string_view Key) { return "'" + std::string(Key) + "'"; }

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

Dim ConfigReader::reqInt(const char *Key, int64_t Min) {
  Dim D;
  D.Key = Key;
  if (optInt(Key, Min, D) == Got::Absent)
    missing({Key});
  return D;
}

Dim ConfigReader::reqIntAny(std::initializer_list<const char *> Keys, int64_t Min) {
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
      warning(pointerTo(Key), quoteKey(Key) + " (" + show(*V) + ") is ignored; " + quoteKey(Used) +
                                  " (" + show(*find(Used)) + ") takes precedence");
    }
  }
  if (!Used)
    missing(Keys);
  return D;
}

bool ConfigReader::optBool(const char *Key, bool Default, Dim *Out) {
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

void ConfigReader::missing(std::initializer_list<const char *> Keys) {
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

bool ConfigReader::checkInt(const char *Key, const json &V, int64_t Min, Dim &Out) {
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
    error(std::move(P), quoteKey(Key) + " (" + show(V) + ") is larger than the supported maximum (" +
                            std::to_string(MaxConfigInt) + ")");
    return false;
  }
  Out.Value = X;
  Out.Pointer = std::move(P);
  Out.Key = Key;
  Out.Note.clear();
  return true;
}

} // namespace hf
} // namespace autotpc
