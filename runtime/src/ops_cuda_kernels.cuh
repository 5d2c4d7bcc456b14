/* ops_cuda_kernels.cuh - the kernels of the CUDA ops (ops_cuda.cu includes it; nothing else should).

   Elementwise kernels walk [0, n) as split(n, arrays) describes it in a Chunks: a head of single elements,
   whole vectors of V elements through 16-byte accesses (every pointer aligned there), a tail of single
   elements; grid-stride loops, so any grid size is right. sum_squares_kernel gives one partial sum per block of its chunk of the
   spans' elements laid end to end, summed in a fixed order; sum_partials_kernel adds them in block order. */
#pragma once

#include "ops_cuda_math.cuh"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

namespace atp {
namespace cuda_ops {
namespace {

constexpr int kThreads = 256;       // per block, every kernel
constexpr int kSumUnroll = 4;       // float4 loads in flight per thread in sum_squares
constexpr int kMaxSumBlocks = 4096; // partial sums at most (a grid the device holds at once is smaller)

/// How a launch splits [0, n): `head` single elements, then `units` whole vectors of V elements starting at
/// `head` (all pointers 16-byte aligned there), then single elements to n.
struct Chunks {
  std::uint64_t n, head, units;
};

/// One array a launch touches: where, and its element size in bytes.
struct Access {
  const void *ptr;
  std::size_t elem;
};

/// The split of [0, n) into a head, units of V elements and a tail (see Chunks) for these arrays: the
/// shortest head (< 8) after which every array is 16-byte aligned, or all of it one by one if none is.
template <int V> Chunks split(std::uint64_t n, std::initializer_list<Access> accesses) {
  for (std::uint64_t head = 0; head < 8; ++head) {
    bool aligned = true;
    for (const Access &a : accesses)
      aligned = aligned && (reinterpret_cast<std::uintptr_t>(a.ptr) + head * a.elem) % 16 == 0;
    if (aligned) {
      head = std::min(head, n);
      return Chunks{n, head, (n - head) / V};
    }
  }
  return Chunks{n, n, 0};
}

/// A non-empty span on the device, with the number of span elements before it.
struct SpanRun {
  std::int64_t begin;
  std::uint64_t offset;
};

struct NoOut {}; // adamw without a 16-bit copy

// ---------------------------------------------------------------------------------------------------------
// kernels

/// Calls vector(i) for each whole unit of V elements at i, and scalar(i) for the other elements.
template <int V, class Scalar, class Vector>
__device__ __forceinline__ void for_each_element(const Chunks &c, Scalar scalar, Vector vector) {
  const std::uint64_t first = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::uint64_t stride = std::uint64_t(gridDim.x) * blockDim.x;
  for (std::uint64_t u = first; u < c.units; u += stride)
    vector(c.head + u * V);
  const std::uint64_t tail = c.head + c.units * V;
  for (std::uint64_t i = first; i < c.head; i += stride)
    scalar(i);
  for (std::uint64_t i = tail + first; i < c.n; i += stride)
    scalar(i);
}

template <int V, class D, class S>
__global__ void __launch_bounds__(kThreads) cast_kernel(D *__restrict__ dst, const S *__restrict__ src, const Chunks c) {
  for_each_element<V>(
      c, [&](std::uint64_t i) { dst[i] = from_float<D>(to_float(src[i])); },
      [&](std::uint64_t i) {
        float x[V];
        load_vec<V>(src + i, x);
        store_vec<V>(dst + i, x);
      });
}

template <int V, class S>
__global__ void __launch_bounds__(kThreads) accumulate_kernel(float *__restrict__ acc, const S *__restrict__ src,
                                                              const Chunks c) {
  for_each_element<V>(
      c, [&](std::uint64_t i) { acc[i] = __fadd_rn(acc[i], to_float(src[i])); },
      [&](std::uint64_t i) {
        float a[V], x[V];
        load_vec<V>(acc + i, a);
        load_vec<V>(src + i, x);
#pragma unroll
        for (int k = 0; k < V; ++k)
          a[k] = __fadd_rn(a[k], x[k]);
        store_vec<V>(acc + i, a);
      });
}

template <int V, class O>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(float *__restrict__ p, const float *__restrict__ g, float *__restrict__ m, float *__restrict__ v,
                 O *__restrict__ out, const AdamWStep s, const Chunks c) {
  for_each_element<V>(
      c,
      [&](std::uint64_t i) {
        float pi = p[i], mi = m[i], vi = v[i];
        adamw_element_device(pi, g[i], mi, vi, s);
        p[i] = pi, m[i] = mi, v[i] = vi;
        if constexpr (!std::is_same_v<O, NoOut>)
          out[i] = from_float<O>(pi);
      },
      [&](std::uint64_t i) {
        float pv[V], gv[V], mv[V], vv[V];
        load_vec<V>(p + i, pv);
        load_vec<V>(g + i, gv);
        load_vec<V>(m + i, mv);
        load_vec<V>(v + i, vv);
#pragma unroll
        for (int k = 0; k < V; ++k)
          adamw_element_device(pv[k], gv[k], mv[k], vv[k], s);
        store_vec<V>(p + i, pv);
        store_vec<V>(m + i, mv);
        store_vec<V>(v + i, vv);
        if constexpr (!std::is_same_v<O, NoOut>)
          store_vec<V>(out + i, pv);
      });
}

__device__ __forceinline__ bool nonfinite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u; }

template <int V>
__global__ void __launch_bounds__(kThreads) any_nonfinite_kernel(const float *__restrict__ x, const Chunks c,
                                                                 unsigned *__restrict__ flag) {
  bool found = false;
  for_each_element<V>(
      c, [&](std::uint64_t i) { found |= nonfinite(x[i]); },
      [&](std::uint64_t i) {
        float xv[V];
        load_vec<V>(x + i, xv);
#pragma unroll
        for (int k = 0; k < V; ++k)
          found |= nonfinite(xv[k]);
      });
  if (__syncthreads_or(found) && threadIdx.x == 0)
    *flag = 1u; // every writer writes the same value
}

/// The block's sum of x, in a fixed order; valid in thread 0.
__device__ double block_sum(double x) {
  __shared__ double warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2)
    x += __shfl_down_sync(0xffffffffu, x, offset);
  if (threadIdx.x % 32 == 0)
    warp_sums[threadIdx.x / 32] = x;
  __syncthreads();
  double sum = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w)
      sum += warp_sums[w];
  return sum;
}

__device__ __forceinline__ std::uint64_t umin64(std::uint64_t a, std::uint64_t b) { return a < b ? a : b; }
__device__ __forceinline__ double square(float x) { return double(x) * double(x); }

/// Adds this thread's share of q[0, len) squared to acc: element t, then float4s t, t + kThreads, ...
__device__ __forceinline__ void add_squares(const float *__restrict__ q, std::uint64_t len, double &acc) {
  const unsigned t = threadIdx.x;
  const std::uint64_t head = umin64(len, ((16 - (reinterpret_cast<std::uintptr_t>(q) & 15)) & 15) / 4);
  if (t < head)
    acc += square(q[t]);
  const float4 *q4 = reinterpret_cast<const float4 *>(q + head);
  const std::uint64_t units = (len - head) / 4;
  std::uint64_t u = t;
  for (; u + (kSumUnroll - 1) * kThreads < units; u += kSumUnroll * kThreads) {
    float4 r[kSumUnroll];
#pragma unroll
    for (int k = 0; k < kSumUnroll; ++k)
      r[k] = q4[u + k * kThreads];
#pragma unroll
    for (int k = 0; k < kSumUnroll; ++k)
      acc += square(r[k].x) + square(r[k].y) + square(r[k].z) + square(r[k].w);
  }
  for (; u < units; u += kThreads) {
    const float4 r = q4[u];
    acc += square(r.x) + square(r.y) + square(r.z) + square(r.w);
  }
  if (head + units * 4 + t < len)
    acc += square(q[head + units * 4 + t]);
}

/// partials[b] = the sum of squares of chunk b of the runs' elements laid end to end.
__global__ void __launch_bounds__(kThreads)
    sum_squares_kernel(const float *__restrict__ x, const SpanRun *__restrict__ runs, int num_runs,
                       std::uint64_t total, std::uint64_t chunk, double *__restrict__ partials) {
  const std::uint64_t first = std::uint64_t(blockIdx.x) * chunk, last = umin64(total, first + chunk);
  double acc = 0.0;
  if (first < last) {
    int r = 0, hi = num_runs - 1; // the run holding `first`: the last one with offset <= first
    while (r < hi) {
      const int mid = (r + hi + 1) / 2;
      if (runs[mid].offset <= first)
        r = mid;
      else
        hi = mid - 1;
    }
    for (std::uint64_t at = first; at < last; ++r) {
      const std::uint64_t run_end = r + 1 < num_runs ? runs[r + 1].offset : total;
      const std::uint64_t end = umin64(last, run_end);
      add_squares(x + runs[r].begin + std::int64_t(at - runs[r].offset), end - at, acc);
      at = end;
    }
  }
  const double sum = block_sum(acc);
  if (threadIdx.x == 0)
    partials[blockIdx.x] = sum;
}

/// *result = partials[0] + ... + partials[n - 1], in a fixed order (one block).
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const double *__restrict__ partials, int n,
                                                                double *__restrict__ result) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads)
    acc += partials[i];
  const double sum = block_sum(acc);
  if (threadIdx.x == 0)
    *result = sum;
}

} // namespace
} // namespace cuda_ops
} // namespace atp
