/* DType sizes and names (from the format's table, safetensors_format.h), and
   overflow-checked tensor sizes. */
#include "atp/dtype.h"

#include "atp/safetensors_format.h"

#include <limits>

namespace atp {

namespace {
constexpr std::size_t kNumDTypes = sizeof st::kDTypes / sizeof st::kDTypes[0];
static_assert(static_cast<std::size_t>(DType::F64) + 1 == kNumDTypes,
              "DType lists the safetensors dtypes of st::kDTypes, in its order");

const st::DTypeName &info(DType dtype) {
  return st::kDTypes[static_cast<std::size_t>(dtype)];
}
} // namespace

const std::vector<DType> &all_dtypes() {
  static const std::vector<DType> all = [] {
    std::vector<DType> v;
    for (std::size_t i = 0; i < kNumDTypes; ++i)
      v.push_back(static_cast<DType>(i));
    return v;
  }();
  return all;
}

std::size_t dtype_size(DType dtype) { return info(dtype).size; }

const char *dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kNumDTypes; ++i)
    if (name == st::kDTypes[i].name)
      return static_cast<DType>(i);
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
