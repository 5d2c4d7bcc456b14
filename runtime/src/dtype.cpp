/* DType sizes and names, and overflow-checked tensor sizes. */
#include "atp/dtype.h"

#include <limits>

namespace atp {

namespace {
struct DTypeInfo {
  DType dtype;
  const char *name;
  std::size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1},       {DType::U8, "U8", 1},
    {DType::I8, "I8", 1},           {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},         {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},       {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},         {DType::F32, "F32", 4},
    {DType::I64, "I64", 8},         {DType::U64, "U64", 8},
    {DType::F64, "F64", 8},
};
constexpr std::size_t kNumDTypes = sizeof kDTypes / sizeof kDTypes[0];
static_assert(static_cast<std::size_t>(DType::F64) + 1 == kNumDTypes,
              "kDTypes lists every DType in declaration order");

const DTypeInfo &info(DType dtype) {
  return kDTypes[static_cast<std::size_t>(dtype)];
}
} // namespace

const std::vector<DType> &all_dtypes() {
  static const std::vector<DType> all = [] {
    std::vector<DType> v;
    for (const DTypeInfo &d : kDTypes)
      v.push_back(d.dtype);
    return v;
  }();
  return all;
}

std::size_t dtype_size(DType dtype) { return info(dtype).size; }

const char *dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const DTypeInfo &d : kDTypes)
    if (name == d.name)
      return d.dtype;
  return std::nullopt;
}

std::optional<std::int64_t> shape_numel(const std::vector<std::int64_t> &shape) {
  // A 0 dimension makes the tensor empty whatever the other dimensions are,
  // so it is looked for before the product can overflow.
  bool empty = false;
  for (std::int64_t d : shape) {
    if (d < 0)
      return std::nullopt;
    empty |= d == 0;
  }
  if (empty)
    return std::int64_t{0};
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (n > std::numeric_limits<std::int64_t>::max() / d)
      return std::nullopt;
    n *= d;
  }
  return n;
}

std::optional<std::uint64_t> tensor_nbytes(DType dtype,
                                           const std::vector<std::int64_t> &shape) {
  std::optional<std::int64_t> n = shape_numel(shape);
  if (!n)
    return std::nullopt;
  auto size = static_cast<std::int64_t>(dtype_size(dtype));
  if (*n > std::numeric_limits<std::int64_t>::max() / size)
    return std::nullopt;
  return static_cast<std::uint64_t>(*n * size);
}

std::string shape_string(const std::vector<std::int64_t> &shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

} // namespace atp
