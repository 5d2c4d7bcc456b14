/* json_lite: a recursive-descent JSON parser with a depth limit, and the two
   string escapers the safetensors writers need.

   The parser never throws to its caller: syntax errors are reported through
   the first error message recorded, and an allocation failure (the only
   exception the standard library may raise here) is caught in parse_json. */
#include "atp/json_lite.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <new>

namespace atp {

// ---------------------------------------------------------------- values

std::optional<std::uint64_t> JsonValue::as_uint64() const {
  if (kind_ != Kind::integer || negative_)
    return std::nullopt;
  return magnitude_;
}

std::optional<std::int64_t> JsonValue::as_int64() const {
  if (kind_ != Kind::integer)
    return std::nullopt;
  constexpr std::uint64_t max = std::numeric_limits<std::int64_t>::max();
  if (!negative_)
    return magnitude_ <= max ? std::optional<std::int64_t>(std::int64_t(magnitude_))
                             : std::nullopt;
  if (magnitude_ <= max)
    return -std::int64_t(magnitude_);
  if (magnitude_ == max + 1)
    return std::numeric_limits<std::int64_t>::min();
  return std::nullopt;
}

const JsonValue *JsonValue::find(std::string_view key) const {
  for (std::size_t i = 0; i < keys_.size(); ++i)
    if (keys_[i] == key)
      return &items_[i];
  return nullptr;
}

std::string JsonValue::describe() const {
  switch (kind_) {
  case Kind::null:
    return "null";
  case Kind::boolean:
    return bool_ ? "true" : "false";
  case Kind::integer:
    return (negative_ ? "-" : "") + std::to_string(magnitude_);
  case Kind::real:
    return text_.size() <= 40 ? text_ : text_.substr(0, 40) + "...";
  case Kind::string:
    return "the string " + quote(text_);
  case Kind::array:
    return "an array";
  case Kind::object:
    return "an object";
  }
  return "a value";
}

// ---------------------------------------------------------------- parser

class JsonParser {
public:
  JsonParser(std::string_view text, int max_depth)
      : text_(text), max_depth_(max_depth) {}

  Result<JsonValue> run() {
    JsonValue root;
    skip_space();
    if (!parse_value(root, 0))
      return error(error_);
    skip_space();
    if (pos_ != text_.size()) {
      fail_at(pos_, "unexpected " + what_is_here() + " after the JSON value");
      return error(error_);
    }
    return root;
  }

private:
  bool fail_at(std::size_t at, const std::string &msg) {
    if (error_.empty())
      error_ = "malformed JSON at byte " + std::to_string(at) + ": " + msg;
    return false;
  }
  bool fail(const std::string &msg) { return fail_at(pos_, msg); }

  std::string what_is_here() const {
    if (pos_ >= text_.size())
      return "end of text";
    unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c >= 0x21 && c < 0x7f)
      return std::string("'") + char(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    return buf;
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  bool consume_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word)
      return fail("expected a JSON value, found " + what_is_here());
    pos_ += word.size();
    return true;
  }

  bool parse_value(JsonValue &v, int depth) {
    if (pos_ >= text_.size())
      return fail("expected a JSON value, found end of text");
    char c = text_[pos_];
    switch (c) {
    case '{':
      return parse_object(v, depth + 1);
    case '[':
      return parse_array(v, depth + 1);
    case '"':
      v.kind_ = JsonValue::Kind::string;
      return parse_string(v.text_);
    case 't':
      v.kind_ = JsonValue::Kind::boolean;
      v.bool_ = true;
      return consume_word("true");
    case 'f':
      v.kind_ = JsonValue::Kind::boolean;
      return consume_word("false");
    case 'n':
      return consume_word("null");
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(v);
      return fail("expected a JSON value, found " + what_is_here());
    }
  }

  bool parse_object(JsonValue &v, int depth) {
    if (depth > max_depth_)
      return fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
    std::size_t start = pos_++;
    v.kind_ = JsonValue::Kind::object;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"')
        return fail("expected a string key, found " + what_is_here());
      v.keys_.emplace_back();
      if (!parse_string(v.keys_.back()))
        return false;
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ':')
        return fail("expected ':' after an object key, found " + what_is_here());
      ++pos_;
      skip_space();
      v.items_.emplace_back();
      if (!parse_value(v.items_.back(), depth))
        return false;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        break;
      }
      return fail("expected ',' or '}' after an object member, found " +
                  what_is_here());
    }
    return check_unique_keys(v, start);
  }

  bool check_unique_keys(const JsonValue &v, std::size_t start) {
    std::vector<std::size_t> order(v.keys_.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return v.keys_[a] < v.keys_[b] || (v.keys_[a] == v.keys_[b] && a < b);
    });
    for (std::size_t i = 1; i < order.size(); ++i)
      if (v.keys_[order[i]] == v.keys_[order[i - 1]])
        return fail_at(start, "duplicate key " + quote(v.keys_[order[i]]) +
                                  " in the object starting here");
    return true;
  }

  bool parse_array(JsonValue &v, int depth) {
    if (depth > max_depth_)
      return fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
    ++pos_;
    v.kind_ = JsonValue::Kind::array;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_space();
      v.items_.emplace_back();
      if (!parse_value(v.items_.back(), depth))
        return false;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']' after an array element, found " +
                  what_is_here());
    }
  }

  bool parse_number(JsonValue &v) {
    std::size_t start = pos_;
    bool negative = text_[pos_] == '-';
    if (negative)
      ++pos_;
    auto digit = [&] { return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; };
    if (!digit())
      return fail("expected a digit, found " + what_is_here());
    std::uint64_t magnitude = 0;
    bool overflow = false;
    if (text_[pos_] == '0') {
      ++pos_;
      if (digit())
        return fail("a number must not have leading zeros");
    } else {
      while (digit()) {
        unsigned d = unsigned(text_[pos_++] - '0');
        if (magnitude > (std::numeric_limits<std::uint64_t>::max() - d) / 10)
          overflow = true;
        else
          magnitude = magnitude * 10 + d;
      }
    }
    bool real = false;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      real = true;
      ++pos_;
      if (!digit())
        return fail("expected a digit after '.', found " + what_is_here());
      while (digit())
        ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      real = true;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-'))
        ++pos_;
      if (!digit())
        return fail("expected a digit in the exponent, found " + what_is_here());
      while (digit())
        ++pos_;
    }
    if (real) {
      v.kind_ = JsonValue::Kind::real;
      v.text_ = std::string(text_.substr(start, pos_ - start));
      return true;
    }
    constexpr std::uint64_t min_magnitude =
        std::uint64_t(std::numeric_limits<std::int64_t>::max()) + 1;
    if (overflow || (negative && magnitude > min_magnitude))
      return fail_at(start, "integer " +
                                std::string(text_.substr(start, std::min<std::size_t>(pos_ - start, 40))) +
                                " is out of range");
    v.kind_ = JsonValue::Kind::integer;
    v.negative_ = negative && magnitude != 0;
    v.magnitude_ = magnitude;
    return true;
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  }

  bool parse_hex4(unsigned &out) {
    if (text_.size() - pos_ < 4)
      return fail("expected 4 hex digits after \\u");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex_value(text_[pos_ + i]);
      if (h < 0)
        return fail("expected 4 hex digits after \\u");
      out = out * 16 + unsigned(h);
    }
    pos_ += 4;
    return true;
  }

  static void append_utf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  // Length of the valid UTF-8 sequence starting at pos_ (a non-ASCII lead
  // byte), or 0: no overlong forms, no surrogates, nothing above U+10FFFF.
  std::size_t utf8_length() const {
    auto byte = [&](std::size_t i) -> unsigned {
      return pos_ + i < text_.size() ? static_cast<unsigned char>(text_[pos_ + i]) : 0u;
    };
    auto cont = [&](std::size_t i) { return (byte(i) & 0xC0) == 0x80; };
    unsigned b0 = byte(0);
    if (b0 >= 0xC2 && b0 <= 0xDF)
      return cont(1) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
      unsigned b1 = byte(1);
      if (b0 == 0xE0 && b1 < 0xA0)
        return 0; // overlong
      if (b0 == 0xED && b1 >= 0xA0)
        return 0; // surrogate
      return cont(1) && cont(2) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
      unsigned b1 = byte(1);
      if (b0 == 0xF0 && b1 < 0x90)
        return 0; // overlong
      if (b0 == 0xF4 && b1 >= 0x90)
        return 0; // above U+10FFFF
      return cont(1) && cont(2) && cont(3) ? 4 : 0;
    }
    return 0;
  }

  bool parse_string(std::string &out) {
    ++pos_; // opening quote
    for (;;) {
      if (pos_ >= text_.size())
        return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20)
        return fail("unescaped control character in a string");
      if (c >= 0x80) {
        std::size_t n = utf8_length();
        if (n == 0)
          return fail("invalid UTF-8 in a string");
        out.append(text_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (c != '\\') {
        out += char(c);
        ++pos_;
        continue;
      }
      if (++pos_ >= text_.size())
        return fail("unterminated string");
      char e = text_[pos_++];
      switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        std::size_t at = pos_ - 2;
        unsigned cp = 0;
        if (!parse_hex4(cp))
          return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return fail_at(at, "unpaired low surrogate \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned lo = 0;
          if (text_.substr(pos_, 2) != "\\u")
            return fail_at(at, "unpaired high surrogate \\u escape");
          pos_ += 2;
          if (!parse_hex4(lo))
            return false;
          if (lo < 0xDC00 || lo > 0xDFFF)
            return fail_at(at, "unpaired high surrogate \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        append_utf8(out, cp);
        break;
      }
      default:
        pos_ -= 2;
        return fail("invalid escape '\\" + std::string(1, e) + "'");
      }
    }
  }

  std::string_view text_;
  int max_depth_;
  std::size_t pos_ = 0;
  std::string error_;
};

Result<JsonValue> parse_json(std::string_view text, int max_depth) {
  try {
    return JsonParser(text, max_depth).run();
  } catch (const std::bad_alloc &) {
    return error("out of memory parsing " + std::to_string(text.size()) +
                 " bytes of JSON");
  }
}

// ---------------------------------------------------------------- writers

namespace {

void append_u_escape(std::string &out, unsigned unit) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", unit);
  out += buf;
}

// Appends an escape for an ASCII byte if JSON needs one; false if not.
bool append_ascii_escape(std::string &out, unsigned char c) {
  switch (c) {
  case '"': out += "\\\""; return true;
  case '\\': out += "\\\\"; return true;
  case '\b': out += "\\b"; return true;
  case '\f': out += "\\f"; return true;
  case '\n': out += "\\n"; return true;
  case '\r': out += "\\r"; return true;
  case '\t': out += "\\t"; return true;
  default:
    if (c < 0x20) {
      append_u_escape(out, c);
      return true;
    }
    return false;
  }
}

// Decodes one UTF-8 character at s[i]; advances i. U+FFFD on invalid input.
unsigned decode_utf8(std::string_view s, std::size_t &i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned c = b(i);
  std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (n == 0 || i + n > s.size() || c > 0xF4) {
    ++i;
    return 0xFFFD;
  }
  unsigned cp = c & (0x3F >> (n - 1));
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static const unsigned min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
  i += n;
  if (cp < min_for_length[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0xFFFD;
  return cp;
}

} // namespace

void append_json_string(std::string &out, std::string_view s) {
  out += '"';
  for (char ch : s)
    if (!append_ascii_escape(out, static_cast<unsigned char>(ch)))
      out += ch;
  out += '"';
}

void append_json_string_ascii(std::string &out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      if (c == 0x7f)
        append_u_escape(out, c);
      else if (!append_ascii_escape(out, c))
        out += char(c);
      continue;
    }
    unsigned cp = decode_utf8(s, i);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      append_u_escape(out, 0xD800 + (cp >> 10));
      append_u_escape(out, 0xDC00 + (cp & 0x3FF));
    } else {
      append_u_escape(out, cp);
    }
  }
  out += '"';
}

} // namespace atp
