/* safetensors_format: the format's constants, the header-length cap and
   the dtype names with their element sizes.

   Dependency-free, for the runtime's DType (which follows the table's
   order), for the header rules in safetensors_header.h, and for the
   compiler, which includes both. */
#pragma once

#include <cstdint>
#include <string_view>

namespace atp::st {

/// The format's cap on the JSON header length, in bytes.
constexpr std::uint64_t kMaxHeaderSize = 100000000;

/// A safetensors dtype name and its element size in bytes.
struct DTypeName {
  const char *name;
  unsigned size;
};

/// The safetensors dtypes, in the order of the format's documentation (the
/// runtime's DType enum follows it). Names are case-sensitive.
inline constexpr DTypeName kDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8},
};

/// Bytes of one element of the dtype named `name`; 0 if it is unknown.
inline unsigned dtype_size(std::string_view name) {
  for (const DTypeName &d : kDTypes)
    if (name == d.name)
      return d.size;
  return 0;
}

} // namespace atp::st
