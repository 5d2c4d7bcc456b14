/* kernels_cuda_norm.cu - RMSNorm forward and backward, on the GPU (kernels.h).

   rstd = 1 / sqrt(mean(x^2) + eps), y = w * (x * rstd). Backward, with xhat = x * rstd and g = dy * w:
   dx = rstd * (g - xhat * mean(g * xhat)), dw += sum over rows of dy * xhat.
   Rows of up to 8192 bf16 (4096 floats) with 16-byte aligned pointers (every model's hidden size) take the
   vectorized kernels, which read each row from memory once into registers: 256 threads over a row, several
   rows per block at once, sums in fp32 through a fixed tree (block_sum_rows). The backward is one pass: block
   b owns kRowsPerBlock rows, writes their dx and its own fp32 partial of dw (each column owned by one thread,
   added in row order); a small second kernel adds the partials in block order. No atomics, and the row split
   is a constant: the same bits on every run and device. Outputs are rounded once to T (bf16 or float).
   Other rows take the scalar kernels (sums in double, dw through column_sums). */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"
#include "kernels_cuda_reduce.cuh"

#include <type_traits>

namespace atp::kcuda {

namespace {

unsigned row_grid(i64 rows) { return unsigned(rows < 65535 * 4 ? rows : 65535 * 4); }

template <class T>
__global__ void rmsnorm_forward_kernel(T *y, float *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const T *xr = x + t * hidden;
    double ss = 0.0;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      ss += double(to_f32(xr[j])) * double(to_f32(xr[j]));
    ss = block_sum(ss);
    const float r = float(1.0 / sqrt(ss / double(hidden) + eps));
    if (threadIdx.x == 0)
      rstd[t] = r;
    T *yr = y + t * hidden; // y may equal x: each element is read before its own write
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      yr[j] = round_to<T>(to_f32(w[j]) * (to_f32(xr[j]) * r));
  }
}

template <class T>
__global__ void rmsnorm_dx_kernel(T *dx, bool accumulate, const T *dy, const T *x, const T *w, const float *rstd,
                                  i64 rows, i64 hidden) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const T *xr = x + t * hidden, *dyr = dy + t * hidden;
    const double r = double(rstd[t]);
    double dot = 0.0;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      dot += double(to_f32(dyr[j])) * double(to_f32(w[j])) * (double(to_f32(xr[j])) * r);
    const double mean = block_sum(dot) / double(hidden);
    T *dxr = dx + t * hidden;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x) {
      const double v = r * (double(to_f32(dyr[j])) * double(to_f32(w[j])) - double(to_f32(xr[j])) * r * mean);
      dxr[j] = accumulate ? round_to<T>(double(to_f32(dxr[j])) + v) : round_to<T>(v);
    }
  }
}

/// Vectors of a row one thread holds in registers in the vectorized kernels: rows up to kMaxVecs x kBlock x
/// (16 / sizeof(T)) elements (8192 bf16, 4096 floats) are read from memory once.
constexpr int kMaxVecs = 4;
constexpr int kWarps = kBlock / 32;

/// Rows of a block of the fused backward, summed in row order into the block's partial of dw (a constant: the
/// partials, hence dw's bits, depend on the shape only, never on the device). 16 measured the same on the 1B
/// model (H200) and doubles the partials.
constexpr int kRowsPerBlock = 32;

/// Rows a block of the vectorized kernels works on at once, R (one block reduction, one __syncthreads, for
/// them all): the forward keeps kMaxVecs 16-byte vectors of x in flight per thread, the backward (x, dy and
/// dx's old values, and twice the registers for each) half as many rows (as many ran 14 % slower on the 1B
/// model's 2048-wide rows, H200).
template <int V> constexpr int kForwardRows = V >= kMaxVecs ? 1 : kMaxVecs / V;
template <int V> constexpr int kBackwardRows = 2 * V >= kMaxVecs ? 1 : kMaxVecs / (2 * V);
/// Blocks of the backward per SM its registers allow: two while a thread's row fits in 128 registers.
template <int V> constexpr int kBackwardBlocksPerSm = V <= 2 ? 2 : 1;

/// v[r] <- the sum of v[r] over the block, for each r, in a fixed order: a butterfly in each warp (every lane
/// gets the same bits: a + b == b + a), then the warps' sums in warp order. buf alternates between calls
/// (parity) so one __syncthreads suffices: a warp can rewrite one half only after every warp has passed the
/// barrier of the call that used the other.
template <int R> __device__ __forceinline__ void block_sum_rows(float (&v)[R], float (&buf)[2][kWarps][R], int parity) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int lane_bit = 16; lane_bit > 0; lane_bit /= 2)
      v[r] += __shfl_xor_sync(0xffffffffu, v[r], lane_bit);
  if (threadIdx.x % 32 == 0)
#pragma unroll
    for (int r = 0; r < R; ++r)
      buf[parity][threadIdx.x / 32][r] = v[r];
  __syncthreads();
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float s = buf[parity][0][r];
#pragma unroll
    for (int k = 1; k < kWarps; ++k)
      s += buf[parity][k][r];
    v[r] = s;
  }
}

/// The forward with 16-byte loads: each block takes R rows at a time, each thread keeping its V vectors of
/// each row in registers between the sum of squares (fp32) and the output. kAdd: the row is the residual add
/// x + b, rounded to T as add() rounds it and stored to sum, then normalized (add_rmsnorm_forward: the same
/// bits as add followed by this kernel, one pass over memory fewer).
template <class T, int V, bool kAdd = false>
__global__ void __launch_bounds__(kBlock)
    rmsnorm_forward_vec_kernel(T *y, float *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps,
                               T *sum = nullptr, const T *b = nullptr) {
  constexpr int kN = Vec<T>::kN, R = kForwardRows<V>;
  __shared__ float buf[2][kWarps][R];
  const i64 vecs = hidden / kN;
  int parity = 0;
  for (i64 t0 = blockIdx.x * i64(R); t0 < rows; t0 += i64(gridDim.x) * R, parity ^= 1) {
    Vec<T> xv[R][V];
    float ss[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      ss[r] = 0.0f;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const i64 j = threadIdx.x + i64(k) * kBlock;
        if (t0 + r < rows && j < vecs) {
          xv[r][k] = load16(x + (t0 + r) * hidden + j * kN);
          if constexpr (kAdd) {
            const Vec<T> bv = load16(b + (t0 + r) * hidden + j * kN);
#pragma unroll
            for (int e = 0; e < kN; ++e)
              xv[r][k].v[e] = round_to<T>(to_f32(xv[r][k].v[e]) + to_f32(bv.v[e]));
            store16(sum + (t0 + r) * hidden + j * kN, xv[r][k]); // sum may be x or b: read just above
          }
#pragma unroll
          for (int e = 0; e < kN; ++e)
            ss[r] += to_f32(xv[r][k].v[e]) * to_f32(xv[r][k].v[e]);
        }
      }
    }
    block_sum_rows(ss, buf, parity);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (t0 + r >= rows)
        continue;
      const float rs = float(1.0 / sqrt(double(ss[r]) / double(hidden) + eps));
      if (threadIdx.x == 0)
        rstd[t0 + r] = rs;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const i64 j = threadIdx.x + i64(k) * kBlock;
        if (j < vecs) {
          const Vec<T> wv = load16(w + j * kN);
          Vec<T> out;
#pragma unroll
          for (int e = 0; e < kN; ++e)
            out.v[e] = round_to<T>(to_f32(wv.v[e]) * (to_f32(xv[r][k].v[e]) * rs));
          store16(y + (t0 + r) * hidden + j * kN, out); // y may equal x: this thread read these elements above
        }
      }
    }
  }
}

/// dx and dw's partial sums in one pass, 16-byte loads. Block b owns rows [b kRowsPerBlock, +kRowsPerBlock),
/// R at a time: each thread keeps x, dy (and dx's old values) of its V vectors of each row in registers
/// between the row's dot (fp32, block_sum_rows) and dx, and adds dy * xhat into its columns' fp32 sums, in row
/// order; partial[b][j] gets them at the end (every column has one owner thread: no reduction across threads).
/// dx may be null (only dw wanted).
template <class T, int V>
__global__ void __launch_bounds__(kBlock, kBackwardBlocksPerSm<V>)
    rmsnorm_backward_vec_kernel(T *dx, bool accumulate, float *partial, const T *dy, const T *x, const T *w,
                                const float *rstd, i64 rows, i64 hidden) {
  constexpr int kN = Vec<T>::kN, R = kBackwardRows<V>;
  __shared__ float buf[2][kWarps][R];
  const i64 vecs = hidden / kN, first = blockIdx.x * i64(kRowsPerBlock);
  const i64 end = first + kRowsPerBlock < rows ? first + kRowsPerBlock : rows;
  Vec<T> wv[V];
  float dw[V][kN];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const i64 j = threadIdx.x + i64(k) * kBlock;
    if (j < vecs)
      wv[k] = load16(w + j * kN);
#pragma unroll
    for (int e = 0; e < kN; ++e)
      dw[k][e] = 0.0f;
  }
  int parity = 0;
  for (i64 t0 = first; t0 < end; t0 += R, parity ^= 1) {
    Vec<T> xv[R][V], dyv[R][V], old[R][V];
    float rs[R], dot[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const bool row = t0 + r < end;
      rs[r] = row ? rstd[t0 + r] : 0.0f;
      dot[r] = 0.0f;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const i64 j = threadIdx.x + i64(k) * kBlock;
        if (row && j < vecs) {
          const i64 at = (t0 + r) * hidden + j * kN;
          xv[r][k] = load16(x + at);
          dyv[r][k] = load16(dy + at);
          if (dx && accumulate)
            old[r][k] = load16(dx + at);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const i64 j = threadIdx.x + i64(k) * kBlock;
        if (t0 + r < end && j < vecs)
#pragma unroll
          for (int e = 0; e < kN; ++e) {
            const float xe = to_f32(xv[r][k].v[e]), dye = to_f32(dyv[r][k].v[e]);
            dot[r] += dye * to_f32(wv[k].v[e]) * xe;
            dw[k][e] += dye * (xe * rs[r]);
          }
      }
    if (!dx)
      continue;
    block_sum_rows(dot, buf, parity);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      // mean_j(g xhat) = rstd sum_j(g x) / hidden
      const float mean = rs[r] * dot[r] / float(hidden);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const i64 j = threadIdx.x + i64(k) * kBlock;
        if (t0 + r < end && j < vecs) {
          Vec<T> out;
#pragma unroll
          for (int e = 0; e < kN; ++e) {
            const float xe = to_f32(xv[r][k].v[e]);
            const float v = rs[r] * (to_f32(dyv[r][k].v[e]) * to_f32(wv[k].v[e]) - xe * rs[r] * mean);
            out.v[e] = round_to<T>(accumulate ? to_f32(old[r][k].v[e]) + v : v);
          }
          store16(dx + (t0 + r) * hidden + j * kN, out);
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const i64 j = threadIdx.x + i64(k) * kBlock;
    if (j < vecs) {
      float *dst = partial + blockIdx.x * hidden + j * kN;
#pragma unroll
      for (int e = 0; e < kN; e += 4)
        *reinterpret_cast<float4 *>(dst + e) = make_float4(dw[k][e], dw[k][e + 1], dw[k][e + 2], dw[k][e + 3]);
    }
  }
}

/// dw[j] (=|+=) the sum over b of partial[b][j], in a fixed order: 32 columns a block, its warp s adding the
/// blocks b = s, s + kWarps, ... in order, then the warps' sums in warp order (fp32), rounded once.
template <class T>
__global__ void __launch_bounds__(kBlock)
    rmsnorm_dw_finish_kernel(T *dw, bool accumulate, const float *partial, i64 blocks, i64 hidden) {
  __shared__ float sums[kWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const i64 j = blockIdx.x * i64(32) + lane;
  float s = 0.0f;
  if (j < hidden) {
#pragma unroll 8
    for (i64 b = warp; b < blocks; b += kWarps)
      s += partial[b * hidden + j];
  }
  sums[warp][lane] = s;
  __syncthreads();
  if (warp == 0 && j < hidden) {
    float total = sums[0][lane];
#pragma unroll
    for (int k = 1; k < kWarps; ++k)
      total += sums[k][lane];
    dw[j] = round_to<T>(accumulate ? to_f32(dw[j]) + total : total);
  }
}

/// dy * xhat of one element, for dw's column sums.
template <class T> struct DwTerm {
  const T *dy, *x;
  const float *rstd;
  i64 hidden;
  __device__ double operator()(i64 t, i64 j) const {
    return double(to_f32(dy[t * hidden + j])) * (double(to_f32(x[t * hidden + j])) * double(rstd[t]));
  }
};

} // namespace

/// Rows short enough to stay in registers, every pointer 16-byte aligned.
template <class T> bool row_in_registers(std::initializer_list<const void *> ptrs, i64 hidden) {
  return vectorizable<T>(ptrs, {hidden}) && hidden / Vec<T>::kN <= i64(kMaxVecs) * kBlock;
}

template <int V> using VecsPerThread = std::integral_constant<int, V>;

/// Calls launch(VecsPerThread<V>{}) with V, the vectors of a row each thread holds (1..kMaxVecs).
template <class T, class Launch> void with_vecs_per_thread(i64 hidden, Launch launch) {
  const i64 vecs = hidden / Vec<T>::kN, v = (vecs + kBlock - 1) / kBlock;
  static_assert(kMaxVecs == 4, "one case per V");
  if (v <= 1)
    launch(VecsPerThread<1>{});
  else if (v == 2)
    launch(VecsPerThread<2>{});
  else if (v == 3)
    launch(VecsPerThread<3>{});
  else
    launch(VecsPerThread<4>{});
}

template <class T>
Status rmsnorm_forward(cudaStream_t st, T *y, float *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps) {
  if (row_in_registers<T>({y, x, w}, hidden)) {
    with_vecs_per_thread<T>(hidden, [&](auto vecs_per_thread) {
      constexpr int V = decltype(vecs_per_thread)::value;
      const i64 groups = (rows + kForwardRows<V> - 1) / kForwardRows<V>;
      rmsnorm_forward_vec_kernel<T, V><<<row_grid(groups), kBlock, 0, st>>>(y, rstd, x, w, rows, hidden, eps);
    });
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }
  rmsnorm_forward_kernel<<<row_grid(rows), kBlock, 0, st>>>(y, rstd, x, w, rows, hidden, eps);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T>
Status add_rmsnorm_forward(cudaStream_t st, T *sum, T *y, float *rstd, const T *a, const T *b, const T *w, i64 rows,
                           i64 hidden, double eps) {
  if (!row_in_registers<T>({sum, y, a, b, w}, hidden)) { // the unfused pair, whose bits the fused kernel matches
    ATP_TRY(add(st, sum, a, b, rows * hidden));
    return rmsnorm_forward(st, y, rstd, sum, w, rows, hidden, eps);
  }
  with_vecs_per_thread<T>(hidden, [&](auto vecs_per_thread) {
    constexpr int V = decltype(vecs_per_thread)::value;
    const i64 groups = (rows + kForwardRows<V> - 1) / kForwardRows<V>;
    rmsnorm_forward_vec_kernel<T, V, true>
        <<<row_grid(groups), kBlock, 0, st>>>(y, rstd, a, w, rows, hidden, eps, sum, b);
  });
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T>
Status rmsnorm_backward(cudaStream_t st, T *dx, Write mode, T *dw, Write dw_mode, const T *dy, const T *x, const T *w,
                        const float *rstd, i64 rows, i64 hidden) {
  const i64 blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  if (row_in_registers<T>({dx, dy, x, w}, hidden) && blocks <= 0x7fffffff) {
    // The fused pass writes dx and one fp32 partial of dw per block; a second, small kernel adds them up.
    float *partial = nullptr;
    ATP_CUDA_TRY(cudaMallocAsync(&partial, std::size_t(blocks * hidden) * sizeof(float), st));
    with_vecs_per_thread<T>(hidden, [&](auto vecs_per_thread) {
      constexpr int V = decltype(vecs_per_thread)::value;
      rmsnorm_backward_vec_kernel<T, V>
          <<<unsigned(blocks), kBlock, 0, st>>>(dx, mode == Write::Accumulate, partial, dy, x, w, rstd, rows, hidden);
    });
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
      rmsnorm_dw_finish_kernel<<<unsigned((hidden + 31) / 32), kBlock, 0, st>>>(dw, dw_mode == Write::Accumulate,
                                                                                partial, blocks, hidden);
      e = cudaGetLastError();
    }
    const cudaError_t freed = cudaFreeAsync(partial, st);
    ATP_CUDA_TRY(e);
    ATP_CUDA_TRY(freed);
    return {};
  }
  if (dx)
    rmsnorm_dx_kernel<<<row_grid(rows), kBlock, 0, st>>>(dx, mode == Write::Accumulate, dy, x, w, rstd, rows, hidden);
  ATP_CUDA_TRY(cudaGetLastError());
  return column_sums(st, dw, dw_mode, rows, hidden, DwTerm<T>{dy, x, rstd, hidden});
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template Status rmsnorm_forward<T>(cudaStream_t, T *, float *, const T *, const T *, i64, i64, double);              \
  template Status add_rmsnorm_forward<T>(cudaStream_t, T *, T *, float *, const T *, const T *, const T *, i64, i64,   \
                                         double);                                                                      \
  template Status rmsnorm_backward<T>(cudaStream_t, T *, Write, T *, Write, const T *, const T *, const T *,           \
                                      const float *, i64, i64);
ATP_KCUDA_FOR_EACH_ELEMENT(ATP_INSTANTIATE)
#undef ATP_INSTANTIATE

} // namespace atp::kcuda
