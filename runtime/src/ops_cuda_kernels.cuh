/* ops_cuda_kernels.cuh - the kernels of the CUDA ops (ops_cuda.cu includes it; nothing else should).

   Elementwise kernels walk [0, n) as split(n, arrays) describes it in a Chunks: a head of single elements,
   whole vectors of V elements through 16-byte accesses (every pointer aligned there), a tail of single
   elements; grid-stride loops, so any grid size is right. grad_stats_kernel gives one partial sum of squares
   (and one nonfinite flag) per block for its chunk of the spans' elements laid end to end, summed in a fixed
   order; grad_stats_total_kernel adds them in block order (one block): deterministic, one pass over the data
   and a small final reduce. */
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
constexpr int kSumUnroll = 4;       // 16-byte loads in flight per thread in grad_stats
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
  int in_norm; // 1: its squares count in the sum
};

/// grad_stats' answer on the device.
struct DeviceStats {
  double sum_squares;
  unsigned nonfinite;
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

/// AdamW with gradients of type G (float, Bf16 or F16, widened exactly) and the weights' copy in O (or NoOut).
template <int V, class G, class O>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(float *__restrict__ p, const G *__restrict__ g, float *__restrict__ m, float *__restrict__ v,
                 O *__restrict__ out, const AdamWStep s, const Chunks c) {
  for_each_element<V>(
      c,
      [&](std::uint64_t i) {
        float pi = p[i], mi = m[i], vi = v[i];
        adamw_element_device(pi, to_float(g[i]), mi, vi, s);
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

/// Element x of a span: flags it if inf or NaN, adds its square (in double) if the span is in the norm.
__device__ __forceinline__ void visit(float x, bool in_norm, double &acc, bool &bad) {
  bad |= nonfinite(x);
  if (in_norm)
    acc += double(x) * double(x);
}

/// This thread's share of q[0, len): element t of the unaligned head, then 16-byte vectors t, t + kThreads, ...
/// (kSumUnroll in flight), then element t of the tail.
template <class T>
__device__ __forceinline__ void add_stats(const T *__restrict__ q, std::uint64_t len, bool in_norm, double &acc,
                                          bool &bad) {
  constexpr int kPer = 16 / int(sizeof(T)); // elements per 16-byte load
  const unsigned t = threadIdx.x;
  const std::uint64_t head = umin64(len, ((16 - (reinterpret_cast<std::uintptr_t>(q) & 15)) & 15) / sizeof(T));
  if (t < head)
    visit(to_float(q[t]), in_norm, acc, bad);
  const T *body = q + head;
  const std::uint64_t units = (len - head) / kPer;
  std::uint64_t u = t;
  for (; u + (kSumUnroll - 1) * kThreads < units; u += kSumUnroll * kThreads) {
    float x[kSumUnroll][kPer];
#pragma unroll
    for (int k = 0; k < kSumUnroll; ++k)
      load_vec<kPer>(body + (u + k * kThreads) * kPer, x[k]);
#pragma unroll
    for (int k = 0; k < kSumUnroll; ++k)
#pragma unroll
      for (int j = 0; j < kPer; ++j)
        visit(x[k][j], in_norm, acc, bad);
  }
  for (; u < units; u += kThreads) {
    float x[kPer];
    load_vec<kPer>(body + u * kPer, x);
#pragma unroll
    for (int j = 0; j < kPer; ++j)
      visit(x[j], in_norm, acc, bad);
  }
  if (units * kPer + t < len - head) // the tail is shorter than kPer <= kThreads
    visit(to_float(body[units * kPer + t]), in_norm, acc, bad);
}

/// partials[b], flags[b] = the sum of squares (over spans in the norm) and the nonfinite flag of chunk b of
/// the runs' elements laid end to end.
template <class T>
__global__ void __launch_bounds__(kThreads)
    grad_stats_kernel(const T *__restrict__ x, const SpanRun *__restrict__ runs, int num_runs, std::uint64_t total,
                      std::uint64_t chunk, double *__restrict__ partials, unsigned *__restrict__ flags) {
  const std::uint64_t first = std::uint64_t(blockIdx.x) * chunk, last = umin64(total, first + chunk);
  double acc = 0.0;
  bool bad = false;
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
      add_stats(x + runs[r].begin + std::int64_t(at - runs[r].offset), end - at, runs[r].in_norm != 0, acc, bad);
      at = end;
    }
  }
  const bool any_bad = __syncthreads_or(bad);
  const double sum = block_sum(acc);
  if (threadIdx.x == 0)
    partials[blockIdx.x] = sum, flags[blockIdx.x] = any_bad ? 1u : 0u;
}

/// result = the sum of partials[0, n) in a fixed order, and the OR of flags[0, n) (one block).
__global__ void __launch_bounds__(kThreads)
    grad_stats_total_kernel(const double *__restrict__ partials, const unsigned *__restrict__ flags, int n,
                            DeviceStats *__restrict__ result) {
  double acc = 0.0;
  bool bad = false;
  for (int i = threadIdx.x; i < n; i += kThreads)
    acc += partials[i], bad |= flags[i] != 0;
  const bool any_bad = __syncthreads_or(bad);
  const double sum = block_sum(acc);
  if (threadIdx.x == 0)
    *result = DeviceStats{sum, any_bad ? 1u : 0u};
}

} // namespace
} // namespace cuda_ops
} // namespace atp
