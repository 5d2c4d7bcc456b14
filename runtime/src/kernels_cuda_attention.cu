/* kernels_cuda_attention.cu - causal grouped-query attention, forward and backward, on the GPU.

   A first, correct version, memory-linear in the sequence (no [seq, seq] block anywhere), not yet fast
   (flash-style tiling is issue 10's next step). One warp per output row; each lane holds head_dim / 32 of
   the row's elements in registers (head_dim <= 256), and a dot product is a warp butterfly (the same bits
   in every lane, since float addition commutes). Forward: per query row, an online softmax over its keys
   in key order (running max m, running sum l, rescaled accumulator), out = acc / l, lse = m + log(l).
   Backward recomputes the probabilities from q, k and the saved lse, p = exp(scale q.k - lse), with
   D_i = dout_i . out_i (a first kernel, in double):
     dq_i = scale * sum_j p_ij (dout_i . v_j - D_i) k_j                     one warp per query row
     dv_j = sum_(h, i) p_ij dout_i,  dk_j = scale * sum_(h, i) ds_ij q_i      one warp per key row,
   the (h, i) sums running over the kv group's query heads in head order, then its queries in order. Each
   output row has one owner that adds in a fixed order: no atomics, the same bits on every run. BF16: q, k,
   v, dout and out are widened to float as they are read (registers hold floats), every output row is
   rounded once to bf16 as it is stored; lse and D stay float.
   BF16 calls with head_dim 64, 96 or 128 and 16-byte aligned rows take the flash kernels instead
   (kernels_cuda_flash.cuh: tensor cores, tiles of 64 x 64, and a D kernel of their own); before them, BF16
   attention goes to cuDNN's fused attention, forward and backward, where cuDNN is built in and takes the shape
   (kernels_cuda_sdpa.h: no sliding window; ATP_ATTENTION=flash keeps it on ours). */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"
#include "kernels_cuda_flash.cuh"
#include "kernels_cuda_sdpa.h"

#include <string>
#include <type_traits>

namespace atp::kcuda {

namespace {

constexpr int kPerLane = 8; // head_dim <= 32 * kPerLane
constexpr int kWarpsPerBlock = 4;

struct Shape {
  i64 batch, seq, q_heads, kv_heads, head_dim, q_stride, k_stride, v_stride, window;
  float scale;
};

__device__ i64 global_warp() { return (blockIdx.x * i64(blockDim.x) + threadIdx.x) / 32; }
__device__ int lane() { return int(threadIdx.x % 32); }

template <class T> __device__ T warp_sum(T v) {
  for (int o = 16; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// The dot of a row held in registers (a[r] = row[lane + 32 r]) with a row in memory.
template <class T> __device__ float dot_row(const float (&a)[kPerLane], const T *row, i64 D) {
  float s = 0.0f;
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) {
    const i64 c = lane() + 32 * r;
    if (c < D)
      s += a[r] * to_f32(row[c]);
  }
  return warp_sum(s);
}

template <class T> __device__ void load_row(float (&a)[kPerLane], const T *row, i64 D) {
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) {
    const i64 c = lane() + 32 * r;
    a[r] = c < D ? to_f32(row[c]) : 0.0f;
  }
}

template <class T> __device__ void store_row(T *row, const float (&a)[kPerLane], i64 D, float mul) {
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) {
    const i64 c = lane() + 32 * r;
    if (c < D)
      row[c] = round_to<T>(a[r] * mul);
  }
}

__device__ i64 first_key(i64 i, i64 window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

template <class T> __global__ void forward_kernel(T *out, float *lse, const T *q, const T *k, const T *v, Shape d) {
  const i64 w = global_warp();
  if (w >= d.batch * d.q_heads * d.seq)
    return;
  const i64 S = d.seq, D = d.head_dim, i = w % S, h = (w / S) % d.q_heads, b = w / (S * d.q_heads);
  const i64 g = h / (d.q_heads / d.kv_heads);
  float qv[kPerLane], acc[kPerLane];
  load_row(qv, q + (b * S + i) * d.q_stride + h * D, D);
#pragma unroll
  for (int r = 0; r < kPerLane; ++r)
    acc[r] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (i64 j = first_key(i, d.window); j <= i; ++j) {
    const float s = dot_row(qv, k + (b * S + j) * d.k_stride + g * D, D) * d.scale;
    const float m_new = fmaxf(m, s), corr = expf(m - m_new), p = expf(s - m_new);
    l = l * corr + p;
    const T *vr = v + (b * S + j) * d.v_stride + g * D;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      const i64 c = lane() + 32 * r;
      if (c < D)
        acc[r] = acc[r] * corr + p * to_f32(vr[c]);
    }
    m = m_new;
  }
  store_row(out + (b * S + i) * (d.q_heads * D) + h * D, acc, D, 1.0f / l);
  if (lane() == 0)
    lse[(b * d.q_heads + h) * S + i] = m + logf(l);
}

/// D_i = dout_i . out_i, [batch, q_heads, seq] like lse.
template <class T> __global__ void delta_kernel(float *delta, const T *dout, const T *out, Shape d) {
  const i64 w = global_warp();
  if (w >= d.batch * d.q_heads * d.seq)
    return;
  const i64 S = d.seq, D = d.head_dim, i = w % S, h = (w / S) % d.q_heads, b = w / (S * d.q_heads);
  const i64 at = (b * S + i) * (d.q_heads * D) + h * D;
  double s = 0.0;
  for (i64 c = lane(); c < D; c += 32)
    s += double(to_f32(dout[at + c])) * double(to_f32(out[at + c]));
  s = warp_sum(s);
  if (lane() == 0)
    delta[(b * d.q_heads + h) * S + i] = float(s);
}

template <class T>
__global__ void dq_kernel(T *dq, const T *dout, const T *q, const T *k, const T *v, const float *lse,
                          const float *delta, Shape d) {
  const i64 w = global_warp();
  if (w >= d.batch * d.q_heads * d.seq)
    return;
  const i64 S = d.seq, D = d.head_dim, i = w % S, h = (w / S) % d.q_heads, b = w / (S * d.q_heads);
  const i64 g = h / (d.q_heads / d.kv_heads), stat = (b * d.q_heads + h) * S + i;
  float qv[kPerLane], dov[kPerLane], acc[kPerLane];
  load_row(qv, q + (b * S + i) * d.q_stride + h * D, D);
  load_row(dov, dout + (b * S + i) * (d.q_heads * D) + h * D, D);
#pragma unroll
  for (int r = 0; r < kPerLane; ++r)
    acc[r] = 0.0f;
  const float li = lse[stat], di = delta[stat];
  for (i64 j = first_key(i, d.window); j <= i; ++j) {
    const T *kr = k + (b * S + j) * d.k_stride + g * D;
    const float p = expf(dot_row(qv, kr, D) * d.scale - li);
    const float ds = p * (dot_row(dov, v + (b * S + j) * d.v_stride + g * D, D) - di);
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      const i64 c = lane() + 32 * r;
      if (c < D)
        acc[r] += ds * to_f32(kr[c]);
    }
  }
  store_row(dq + (b * S + i) * d.q_stride + h * D, acc, D, d.scale);
}

template <class T>
__global__ void dkv_kernel(T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v, const float *lse,
                           const float *delta, Shape d) {
  const i64 w = global_warp();
  if (w >= d.batch * d.kv_heads * d.seq)
    return;
  const i64 S = d.seq, D = d.head_dim, j = w % S, g = (w / S) % d.kv_heads, b = w / (S * d.kv_heads);
  const i64 rep = d.q_heads / d.kv_heads;
  const i64 last = d.window > 0 && j + d.window - 1 < S - 1 ? j + d.window - 1 : S - 1;
  float kv[kPerLane], vv[kPerLane], dka[kPerLane], dva[kPerLane];
  load_row(kv, k + (b * S + j) * d.k_stride + g * D, D);
  load_row(vv, v + (b * S + j) * d.v_stride + g * D, D);
#pragma unroll
  for (int r = 0; r < kPerLane; ++r)
    dka[r] = dva[r] = 0.0f;
  for (i64 hr = 0; hr < rep; ++hr) {
    const i64 h = g * rep + hr;
    for (i64 i = j; i <= last; ++i) {
      const i64 stat = (b * d.q_heads + h) * S + i;
      const T *qr = q + (b * S + i) * d.q_stride + h * D;
      const T *dor = dout + (b * S + i) * (d.q_heads * D) + h * D;
      const float p = expf(dot_row(kv, qr, D) * d.scale - lse[stat]);
      const float ds = p * (dot_row(vv, dor, D) - delta[stat]);
#pragma unroll
      for (int r = 0; r < kPerLane; ++r) {
        const i64 c = lane() + 32 * r;
        if (c < D) {
          dva[r] += p * to_f32(dor[c]);
          dka[r] += ds * to_f32(qr[c]);
        }
      }
    }
  }
  store_row(dk + (b * S + j) * d.k_stride + g * D, dka, D, d.scale);
  store_row(dv + (b * S + j) * d.v_stride + g * D, dva, D, 1.0f);
}

Shape shape_of(const AttentionDims &a) {
  return Shape{a.batch,    a.seq,      a.q_heads,  a.kv_heads,       a.head_dim,
               a.q_stride, a.k_stride, a.v_stride, a.sliding_window, float(a.scale)};
}

Status check_head_dim(const char *call, const AttentionDims &a) {
  if (a.head_dim <= 32 * kPerLane)
    return {};
  return error(std::string(call) + ": head_dim " + std::to_string(a.head_dim) +
               " is larger than the CUDA kernel's limit " + std::to_string(32 * kPerLane));
}

unsigned warp_blocks(i64 warps) { return unsigned((warps + kWarpsPerBlock - 1) / kWarpsPerBlock); }

} // namespace

template <class T>
Status attention_forward(cudaStream_t st, T *out, float *lse, const T *q, const T *k, const T *v,
                         const AttentionDims &a) {
  ATP_TRY(check_head_dim("attention_forward", a));
  if constexpr (std::is_same_v<T, bf16>) {
    ATP_ASSIGN_OR_RETURN(bool by_cudnn, cudnn_sdpa::forward(st, out, lse, q, k, v, a));
    if (by_cudnn)
      return {};
    if (flash::supports(a, {out, q, k, v}))
      return flash::forward(st, out, lse, q, k, v, a);
  }
  const Shape d = shape_of(a);
  forward_kernel<<<warp_blocks(d.batch * d.q_heads * d.seq), 32 * kWarpsPerBlock, 0, st>>>(out, lse, q, k, v, d);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T>
Status attention_backward(cudaStream_t st, T *dq, T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v,
                          const T *out, const float *lse, const AttentionDims &a) {
  ATP_TRY(check_head_dim("attention_backward", a));
  if constexpr (std::is_same_v<T, bf16>) {
    ATP_ASSIGN_OR_RETURN(bool by_cudnn, cudnn_sdpa::backward(st, dq, dk, dv, dout, q, k, v, out, lse, a));
    if (by_cudnn)
      return {};
  }
  const Shape d = shape_of(a);
  const i64 q_rows = d.batch * d.q_heads * d.seq;
  float *delta = nullptr;
  ATP_CUDA_TRY(cudaMallocAsync(&delta, std::size_t(q_rows) * sizeof(float), st));
  Status run = [&]() -> Status {
    if constexpr (std::is_same_v<T, bf16>)
      if (flash::supports(a, {dq, dk, dv, dout, q, k, v, out}))
        return flash::backward(st, dq, dk, dv, dout, q, k, v, out, lse, delta, a);
    delta_kernel<<<warp_blocks(q_rows), 32 * kWarpsPerBlock, 0, st>>>(delta, dout, out, d);
    ATP_CUDA_TRY(cudaGetLastError());
    dq_kernel<<<warp_blocks(q_rows), 32 * kWarpsPerBlock, 0, st>>>(dq, dout, q, k, v, lse, delta, d);
    ATP_CUDA_TRY(cudaGetLastError());
    dkv_kernel<<<warp_blocks(d.batch * d.kv_heads * d.seq), 32 * kWarpsPerBlock, 0, st>>>(dk, dv, dout, q, k, v, lse,
                                                                                          delta, d);
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }();
  const cudaError_t freed = cudaFreeAsync(delta, st);
  ATP_TRY(std::move(run));
  ATP_CUDA_TRY(freed);
  return {};
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template Status attention_forward<T>(cudaStream_t, T *, float *, const T *, const T *, const T *,                    \
                                       const AttentionDims &);                                                         \
  template Status attention_backward<T>(cudaStream_t, T *, T *, T *, const T *, const T *, const T *, const T *,       \
                                        const T *, const float *, const AttentionDims &);
ATP_KCUDA_FOR_EACH_ELEMENT(ATP_INSTANTIATE)
#undef ATP_INSTANTIATE

} // namespace atp::kcuda
