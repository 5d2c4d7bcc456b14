/* HostTensor: a dtype, a shape and a 64-byte-aligned buffer in host memory.

   The smallest tensor the CPU side needs: what a safetensors read fills and
   a write takes. Row-major, contiguous; no views, strides or ops (those
   belong to the ops layer). The buffer is 64-byte aligned so that any dtype
   and any SIMD width can read it in place. */
#pragma once

#include "atp/dtype.h"
#include "atp/status.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

namespace atp {

class HostTensor {
public:
  /// Alignment of every buffer, in bytes.
  static constexpr std::size_t kAlignment = 64;

  /// An empty F32 tensor of shape [0].
  HostTensor();
  /// A zero-filled tensor; fails on a negative dimension, a size that
  /// overflows, or an allocation failure.
  static Result<HostTensor> zeros(DType dtype, std::vector<std::int64_t> shape);

  HostTensor(const HostTensor &other); ///< deep copy
  HostTensor &operator=(const HostTensor &other);
  HostTensor(HostTensor &&) noexcept = default;
  HostTensor &operator=(HostTensor &&) noexcept = default;

  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t> &shape() const { return shape_; }
  std::int64_t numel() const;
  std::size_t nbytes() const { return nbytes_; }

  std::byte *data() { return data_.get(); }
  const std::byte *data() const { return data_.get(); }
  /// The buffer as elements of T; the caller picks a T of the dtype's size.
  template <class T> T *data_as() { return reinterpret_cast<T *>(data()); }
  template <class T> const T *data_as() const {
    return reinterpret_cast<const T *>(data());
  }

private:
  struct Free {
    void operator()(std::byte *p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<std::byte[], Free>;
  static Buffer allocate(std::size_t nbytes);

  DType dtype_ = DType::F32;
  std::vector<std::int64_t> shape_{0};
  std::size_t nbytes_ = 0;
  Buffer data_;
};

} // namespace atp
