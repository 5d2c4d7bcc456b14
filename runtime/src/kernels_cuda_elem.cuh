/* kernels_cuda_elem.cuh - loads and stores of the CUDA kernels' element types (kernels_cuda.h), float and bf16.

   Every kernel computes in fp32 (or fp64) whatever it stores: to_f32 widens an element exactly, and
   round_to<T> rounds a float or a double result ONCE to T, to nearest even (for bf16: __float2bfloat16_rn,
   __double2bfloat16, never through an intermediate float from a double, which could round twice). For
   T = float these are the identity and float(double): the F32 kernels' arithmetic, hence their bits, are
   what they were before the templates. */
#pragma once

#include "kernels_cuda.h"

#include <cstdint>
#include <initializer_list>

namespace atp::kcuda {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }

template <class T> __device__ T round_to(float x);
template <> __device__ __forceinline__ float round_to<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 round_to<bf16>(float x) { return __float2bfloat16_rn(x); }

template <class T> __device__ T round_to(double x);
template <> __device__ __forceinline__ float round_to<float>(double x) { return float(x); }
template <> __device__ __forceinline__ bf16 round_to<bf16>(double x) { return __double2bfloat16(x); }

/// 16 bytes of T: the unit of the vectorized kernels (8 bf16 or 4 floats per load and store).
template <class T> struct alignas(16) Vec {
  static constexpr int kN = 16 / int(sizeof(T));
  T v[kN];
};

template <class T> __device__ __forceinline__ Vec<T> load16(const T *p) { return *reinterpret_cast<const Vec<T> *>(p); }
template <class T> __device__ __forceinline__ void store16(T *p, const Vec<T> &x) { *reinterpret_cast<Vec<T> *>(p) = x; }

/// True when every pointer is 16-byte aligned and every count a whole number of 16-byte units of T.
template <class T> bool vectorizable(std::initializer_list<const void *> ptrs, std::initializer_list<i64> counts) {
  for (const void *p : ptrs)
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0)
      return false;
  for (i64 c : counts)
    if (c % Vec<T>::kN != 0)
      return false;
  return true;
}

} // namespace atp::kcuda
