/* json_lite: a small, strict JSON reader and writer for file headers.

   The runtime reads JSON only from safetensors headers and index files,
   which are untrusted input, so the parser is strict: RFC 8259 syntax,
   UTF-8 checked, no duplicate object keys, a nesting depth limit, integers
   exact in [-2^63, 2^64) (anything else is an error), no exceptions. Numbers
   with a fraction or exponent parse as Kind::real and keep their source
   text; nothing in the runtime needs their value, and readers that want an
   integer reject them. The writers produce the exact byte forms of the two
   producers whose files we must reproduce: serde_json's compact form (the
   safetensors header) and Python's json.dumps(indent=2, sort_keys=True)
   with ensure_ascii (transformers' index.json). */
#pragma once

#include "atp/status.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atp {

class JsonValue {
public:
  enum class Kind { null, boolean, integer, real, string, array, object };

  JsonValue() = default; ///< null

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_integer() const { return kind_ == Kind::integer; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }

  bool as_bool() const { return bool_; }
  /// The integer if it is one and fits in uint64 (i.e. is not negative).
  std::optional<std::uint64_t> as_uint64() const;
  /// The integer if it is one and fits in int64.
  std::optional<std::int64_t> as_int64() const;
  /// The string's (unescaped, UTF-8) text; for reals, the source text.
  const std::string &as_string() const { return text_; }

  /// Elements of an array, or members of an object (in source order).
  std::size_t size() const { return items_.size(); }
  const JsonValue &operator[](std::size_t i) const { return items_[i]; }
  /// The i-th member's key (objects only).
  const std::string &key(std::size_t i) const { return keys_[i]; }
  /// The member named `key`, or nullptr (objects only; linear search).
  const JsonValue *find(std::string_view key) const;

  /// "an object", "the string 'x'", "-3", ...: this value, for messages.
  std::string describe() const;

private:
  friend class JsonParser;
  Kind kind_ = Kind::null;
  bool bool_ = false;
  bool negative_ = false;       // integers: sign
  std::uint64_t magnitude_ = 0; // integers: absolute value
  std::string text_;            // strings and reals
  std::vector<std::string> keys_;
  std::vector<JsonValue> items_;
};

/// Parses one JSON document (surrounded by optional whitespace). Errors
/// give the byte offset and what was expected, e.g. "malformed JSON at
/// byte 17: expected ',' or '}' after an object member".
Result<JsonValue> parse_json(std::string_view text, int max_depth = 64);

/// Appends `s` as a JSON string literal as serde_json writes it: '"' and
/// '\\' backslash-escaped, \b \t \n \f \r by name, other bytes below 0x20 as
/// \u00xx, all other bytes (non-ASCII UTF-8 included) as they are.
void append_json_string(std::string &out, std::string_view s);

/// Appends `s` (UTF-8) as Python's json.dumps(ensure_ascii=True) writes it:
/// as above, and 0x7f and every non-ASCII character as \uxxxx (a surrogate pair
/// above U+FFFF). Invalid UTF-8 bytes are written as U+FFFD.
void append_json_string_ascii(std::string &out, std::string_view s);

} // namespace atp
