/* Element types, as safetensors names them.

   The runtime stores tensors as bytes plus a DType; these helpers give an
   element's size, convert to and from the safetensors dtype names, and
   compute a tensor's byte size with overflow checks (shapes come from
   untrusted file headers). */
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atp {

/// The safetensors dtypes, in the order of the format's documentation.
enum class DType : std::uint8_t {
  BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64,
};

/// Every DType, in declaration order.
const std::vector<DType> &all_dtypes();

/// Bytes of one element: 1, 2, 4 or 8.
std::size_t dtype_size(DType dtype);

/// The safetensors name ("BF16", "F8_E4M3", ...).
const char *dtype_name(DType dtype);

/// The DType a safetensors name stands for; nullopt for unknown names
/// (names are case-sensitive, as in the format).
std::optional<DType> dtype_from_name(std::string_view name);

/// Number of elements of `shape`, or nullopt if a dimension is negative or
/// the product overflows int64.
std::optional<std::int64_t> shape_numel(const std::vector<std::int64_t> &shape);

/// Bytes of a tensor (numel × element size), or nullopt if a dimension is
/// negative or the product overflows int64.
std::optional<std::uint64_t> tensor_nbytes(DType dtype,
                                           const std::vector<std::int64_t> &shape);

/// "[2, 3, 4]", for messages.
std::string shape_string(const std::vector<std::int64_t> &shape);

} // namespace atp
