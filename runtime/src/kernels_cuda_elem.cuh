/* kernels_cuda_elem.cuh - loads and stores of the CUDA kernels' element types (kernels_cuda.h), float and bf16.

   Every kernel computes in fp32 (or fp64) whatever it stores: to_f32 widens an element exactly, and
   round_to<T> rounds a float or a double result ONCE to T, to nearest even (for bf16: __float2bfloat16_rn,
   __double2bfloat16, never through an intermediate float from a double, which could round twice). For
   T = float these are the identity and float(double): the F32 kernels' arithmetic, hence their bits, are
   what they were before the templates. */
#pragma once

#include "kernels_cuda.h"

namespace atp::kcuda {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }

template <class T> __device__ T round_to(float x);
template <> __device__ __forceinline__ float round_to<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 round_to<bf16>(float x) { return __float2bfloat16_rn(x); }

template <class T> __device__ T round_to(double x);
template <> __device__ __forceinline__ float round_to<float>(double x) { return float(x); }
template <> __device__ __forceinline__ bf16 round_to<bf16>(double x) { return __double2bfloat16(x); }

} // namespace atp::kcuda
