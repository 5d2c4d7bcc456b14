/* ops_cuda_math.cuh - the per-element math of the CUDA ops (ops_cuda.cu), bit for bit the host's.

   The CUDA backend must give the same bits as the CPU one (ops_cpu.cpp), so everything here is a port of the
   host code, not a call to CUDA's own helpers:
     - 16-bit <-> float conversions are the integer code of float_to_bf16 / float_to_f16 and their inverses
       (comm_dtypes.cpp): round to nearest even, and NaN kept as the host keeps it (CUDA's __float2bfloat16_rn
       and __float2half_rn return a canonical NaN; the host keeps the sign and top payload bits);
     - adamw_element_device is atp::adamw_element with every operation an explicitly rounded intrinsic
       (__fmul_rn, __fadd_rn, ...), in the host's order, so that nvcc cannot contract a*b+c into an FMA
       (which it does by default, and the host does not). Denormals must not be flushed: never build this
       with --use_fast_math or -ftz=true (checked below where nvcc tells us).
   Vector access: 8 or 16 consecutive elements as 16-byte loads and stores (uint4 / float4); callers
   guarantee 16-byte alignment. */
#pragma once

#include "atp/ops.h"

#include <cstdint>

#ifdef __USE_FAST_MATH__
#error "ops_cuda: --use_fast_math flushes denormals and changes the AdamW bits; build without it"
#endif

namespace atp::cuda_ops {

/// 16-bit element types on the device, as raw bits (the host stores them as std::uint16_t).
struct Bf16 {
  std::uint16_t bits;
};
struct F16 {
  std::uint16_t bits;
};

// ---------------------------------------------------------------------------------------------------------
// conversions (ports of comm_dtypes.cpp's bf16_to_float, float_to_bf16, f16_to_float, float_to_f16)

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(Bf16 x) { return __uint_as_float(std::uint32_t(x.bits) << 16); }
__device__ __forceinline__ float to_float(F16 x) {
  const std::uint32_t sign = std::uint32_t(x.bits & 0x8000u) << 16;
  const std::uint32_t exp = (x.bits >> 10) & 0x1fu, mant = x.bits & 0x3ffu;
  if (exp == 0) // zero or subnormal: mant * 2^-24, exact; the sign put on as a bit (so -0 stays -0)
    return __uint_as_float(__float_as_uint(__fmul_rn(__uint2float_rn(mant), 5.9604644775390625e-08f)) | sign);
  const std::uint32_t u = exp == 0x1f ? sign | 0x7f800000u | (mant << 13) : sign | ((exp + 112u) << 23) | (mant << 13);
  return __uint_as_float(u);
}

template <class T> __device__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ Bf16 from_float<Bf16>(float x) {
  std::uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep it a (quiet) NaN
    return Bf16{std::uint16_t((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
  return Bf16{std::uint16_t(u >> 16)};
}
template <> __device__ __forceinline__ F16 from_float<F16>(float x) {
  const std::uint32_t u = __float_as_uint(x);
  const auto sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) // inf or NaN
    return F16{std::uint16_t(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u))};
  if (a >= 0x477ff000u) // >= 65520 rounds to inf
    return F16{std::uint16_t(sign | 0x7c00u)};
  if (a < 0x38800000u) // below 2^-14: a subnormal half; x * 2^24 is exact, rint rounds ties to even
    return F16{std::uint16_t(sign | __float2uint_rn(__fmul_rn(__uint_as_float(a), 16777216.0f)))};
  std::uint32_t h = (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu);
  const std::uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h; // a carry into the exponent is the right answer
  return F16{std::uint16_t(sign | h)};
}

// ---------------------------------------------------------------------------------------------------------
// V consecutive elements as floats, through 16-byte accesses (V a multiple of 4 for floats, of 8 for 16-bit
// elements; p 16-byte aligned)

template <int V> __device__ __forceinline__ void load_vec(const float *__restrict__ p, float (&x)[V]) {
#pragma unroll
  for (int k = 0; k < V / 4; ++k) {
    const float4 t = reinterpret_cast<const float4 *>(p)[k];
    x[4 * k] = t.x, x[4 * k + 1] = t.y, x[4 * k + 2] = t.z, x[4 * k + 3] = t.w;
  }
}
template <int V, class T> __device__ __forceinline__ void load_vec(const T *__restrict__ p, float (&x)[V]) {
  static_assert(sizeof(T) == 2 && V % 8 == 0, "16-bit elements, 8 per 16-byte access");
#pragma unroll
  for (int k = 0; k < V / 8; ++k) {
    const uint4 t = reinterpret_cast<const uint4 *>(p)[k];
    const std::uint32_t w[4] = {t.x, t.y, t.z, t.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) { // little endian: the element with the lower index is the low half
      x[8 * k + 2 * j] = to_float(T{std::uint16_t(w[j] & 0xffffu)});
      x[8 * k + 2 * j + 1] = to_float(T{std::uint16_t(w[j] >> 16)});
    }
  }
}

template <int V> __device__ __forceinline__ void store_vec(float *__restrict__ p, const float (&x)[V]) {
#pragma unroll
  for (int k = 0; k < V / 4; ++k)
    reinterpret_cast<float4 *>(p)[k] = make_float4(x[4 * k], x[4 * k + 1], x[4 * k + 2], x[4 * k + 3]);
}
template <int V, class T> __device__ __forceinline__ void store_vec(T *__restrict__ p, const float (&x)[V]) {
  static_assert(sizeof(T) == 2 && V % 8 == 0, "16-bit elements, 8 per 16-byte access");
#pragma unroll
  for (int k = 0; k < V / 8; ++k) {
    std::uint32_t w[4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      w[j] = std::uint32_t(from_float<T>(x[8 * k + 2 * j]).bits) |
             (std::uint32_t(from_float<T>(x[8 * k + 2 * j + 1]).bits) << 16);
    reinterpret_cast<uint4 *>(p)[k] = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// AdamW

/// atp::adamw_element (ops.h), operation for operation; keep the two in step.
__device__ __forceinline__ void adamw_element_device(float &p, float g, float &m, float &v, const AdamWStep &s) {
  g = __fmul_rn(g, s.grad_scale);                             // g *= grad_scale
  if (!s.adam_w_mode)
    g = __fadd_rn(g, __fmul_rn(s.weight_decay, p));           // g += weight_decay * p
  m = __fadd_rn(__fmul_rn(s.beta1, m), __fmul_rn(__fsub_rn(1.0f, s.beta1), g)); // beta1*m + (1-beta1)*g
  v = __fadd_rn(__fmul_rn(s.beta2, v), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, s.beta2), g), g)); // ... *g*g
  const float denom = __fadd_rn(__fsqrt_rn(__fdiv_rn(v, s.bias_correction2)), s.eps);
  float update = __fdiv_rn(__fdiv_rn(m, s.bias_correction1), denom);
  if (s.adam_w_mode)
    update = __fadd_rn(update, __fmul_rn(s.weight_decay, p)); // update += weight_decay * p
  p = __fsub_rn(p, __fmul_rn(s.lr, update));                  // p -= lr * update
}

} // namespace atp::cuda_ops
