/* HostTensor allocation: aligned_alloc with the size rounded up to the
   alignment (as aligned_alloc requires), never a null buffer. */
#include "atp/tensor.h"

#include <cstring>
#include <new>
#include <string>

namespace atp {

HostTensor::Buffer HostTensor::allocate(std::size_t nbytes) {
  std::size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0)
    rounded = kAlignment;
  return Buffer(static_cast<std::byte *>(std::aligned_alloc(kAlignment, rounded)));
}

HostTensor::HostTensor() : data_(allocate(0)) {}

Result<HostTensor> HostTensor::zeros(DType dtype, std::vector<std::int64_t> shape) {
  std::optional<std::uint64_t> nbytes = tensor_nbytes(dtype, shape);
  if (!nbytes)
    return error("tensor of shape " + shape_string(shape) + " and dtype " +
                 dtype_name(dtype) + " has a negative dimension or too many bytes");
  if (*nbytes > SIZE_MAX - kAlignment)
    return error("tensor of " + std::to_string(*nbytes) + " bytes is too large");
  HostTensor t;
  t.data_ = allocate(static_cast<std::size_t>(*nbytes));
  if (!t.data_)
    return error("out of memory allocating " + std::to_string(*nbytes) +
                 " bytes for a tensor of shape " + shape_string(shape));
  std::memset(t.data_.get(), 0, static_cast<std::size_t>(*nbytes));
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.nbytes_ = static_cast<std::size_t>(*nbytes);
  return t;
}

HostTensor::HostTensor(const HostTensor &other)
    : dtype_(other.dtype_), shape_(other.shape_), nbytes_(other.nbytes_),
      data_(allocate(other.nbytes_)) {
  if (!data_)
    throw std::bad_alloc();
  std::memcpy(data_.get(), other.data_.get(), nbytes_);
}

HostTensor &HostTensor::operator=(const HostTensor &other) {
  if (this != &other)
    *this = HostTensor(other);
  return *this;
}

std::int64_t HostTensor::numel() const {
  return shape_numel(shape_).value_or(0);
}

} // namespace atp
