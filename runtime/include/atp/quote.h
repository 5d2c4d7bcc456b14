/* quote: a name taken from an input file, made safe to print in a message.

   Header-only and dependency-free so that code outside the runtime library
   (the safetensors header rules, which the compiler also includes) quotes
   names exactly as the runtime does. */
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace atp {

/// `s` quoted for a message: in single quotes, control bytes escaped, cut
/// after 200 bytes ("'model.w\\n...'"). Names from input files go through it.
inline std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 200;
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  if (s.size() > kMax)
    out += "...";
  return out + "'";
}

} // namespace atp
