/* kernels_cuda_flash_bwd.cu - the flash backward (kernels_cuda_flash.cuh), deterministic: no atomics.

   With p_ij = exp(scale q_i.k_j - lse_i) recomputed from the saved lse, dp_ij = dout_i.v_j and
   ds_ij = p_ij (dp_ij - D_i):
     dkv_kernel, one CTA per (kv tile, kv head, batch), each warp owning 16 keys: for the group's query heads
       in head order, their q tiles in order: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q;
       dk = scale dK, dv = dV, written once.
     dq_kernel, one CTA per (q tile, q head, batch), each warp owning 16 queries: for its kv tiles in order:
       S = Q K^T, dP = dO V^T, dQ += dS K; dq = scale dQ, written once.
   P and dS are rounded to bf16 as the A operand of the second product (the products' inputs are bf16);
   every sum is fp32 in registers. */
#include "atp/check_cuda.h"
#include "kernels_cuda_flash.cuh"

#include <cstdint>

namespace atp::kcuda::flash {

namespace {

template <int D> struct BwdSmem {
  SmemTile<D> a, b, c, d; // dkv: K, V, Q, dO; dq: Q, dO, K, V
  float lse2[kTile], delta[kTile];
};

template <int D> __device__ __forceinline__ void zero(float (&acc)[D / 8][4]) {
#pragma unroll
  for (int nb = 0; nb < D / 8; ++nb)
    acc[nb][0] = acc[nb][1] = acc[nb][2] = acc[nb][3] = 0.0f;
}

/// acc[16 x kTile] = X[r0.., :] Y^T over D, X and Y row-major smem tiles (rows of Y are acc's columns).
template <int D>
__device__ __forceinline__ void product_xyt(float (&acc)[kTile / 8][4], const SmemTile<D> &x, int r0,
                                            const SmemTile<D> &y) {
#pragma unroll
  for (int nb = 0; nb < kTile / 8; ++nb)
    acc[nb][0] = acc[nb][1] = acc[nb][2] = acc[nb][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    std::uint32_t a[4];
    load_a<D>(a, x, r0, kk * 16);
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb) {
      std::uint32_t b0, b1;
      load_b_rows<D>(b0, b1, y, nb * 8, kk * 16);
      mma(acc[nb], a, b0, b1);
    }
  }
}

/// acc[16 x D] += W[16 x kTile] Y, W in C-fragment registers (rounded to bf16 here), Y a row-major smem tile.
template <int D>
__device__ __forceinline__ void accumulate_wy(float (&acc)[D / 8][4], const float (&w)[kTile / 8][4],
                                              const SmemTile<D> &y) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    const std::uint32_t a[4] = {pack_f32(w[2 * kk][0], w[2 * kk][1]), pack_f32(w[2 * kk][2], w[2 * kk][3]),
                                pack_f32(w[2 * kk + 1][0], w[2 * kk + 1][1]),
                                pack_f32(w[2 * kk + 1][2], w[2 * kk + 1][3])};
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) {
      std::uint32_t b0, b1;
      load_b_cols<D>(b0, b1, y, kk * 16, nb * 8);
      mma(acc[nb], a, b0, b1);
    }
  }
}

/// Stores a warp's 16 x D fp32 accumulator times mul as bf16 rows row0.., rows >= seq skipped.
template <int D>
__device__ __forceinline__ void store_rows(bf16 *dst, i64 stride, i64 row0, i64 seq, const float (&acc)[D / 8][4],
                                           float mul) {
  const int g = lane_g(), t = lane_t();
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const i64 row = row0 + g + 8 * r;
    if (row >= seq)
      continue;
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
      *reinterpret_cast<std::uint32_t *>(dst + row * stride + nb * 8 + 2 * t) =
          pack_f32(acc[nb][2 * r] * mul, acc[nb][2 * r + 1] * mul);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    dkv_kernel(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
               const float *delta, Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  BwdSmem<D> &sm = *reinterpret_cast<BwdSmem<D> *>(smem_raw);
  const i64 S = p.seq;
  const int tile = int(blockIdx.x), kvh = int(blockIdx.y), b = int(blockIdx.z);
  const int warp = int(threadIdx.x / 32), g = lane_g(), t = lane_t();
  const i64 j0 = i64(tile) * kTile, rep = p.q_heads / p.kv_heads;
  load_tile<D>(sm.a, k + b * S * p.k_stride + kvh * D, p.k_stride, j0, S);
  load_tile<D>(sm.b, v + b * S * p.v_stride + kvh * D, p.v_stride, j0, S);
  float dka[D / 8][4], dva[D / 8][4];
  zero<D>(dka);
  zero<D>(dva);
  const i64 key[2] = {j0 + warp * 16 + g, j0 + warp * 16 + g + 8};
  // Queries that see a key of this tile: j0 .. (last key + window - 1), within the sequence.
  i64 end_query = S;
  if (p.window > 0 && j0 + kTile - 1 + p.window < S)
    end_query = j0 + kTile - 1 + p.window;
  const i64 dout_stride = p.q_heads * D;
  for (i64 hr = 0; hr < rep; ++hr) {
    const i64 h = kvh * rep + hr;
    const float *lse_h = lse + (b * p.q_heads + h) * S, *delta_h = delta + (b * p.q_heads + h) * S;
    for (i64 i0 = j0; i0 < end_query; i0 += kTile) {
      __syncthreads();
      load_tile<D>(sm.c, q + b * S * p.q_stride + h * D, p.q_stride, i0, S);
      load_tile<D>(sm.d, dout + b * S * dout_stride + h * D, dout_stride, i0, S);
      for (int r = int(threadIdx.x); r < kTile; r += kThreads) {
        sm.lse2[r] = i0 + r < S ? lse_h[i0 + r] * kLog2e : 0.0f;
        sm.delta[r] = i0 + r < S ? delta_h[i0 + r] : 0.0f;
      }
      __syncthreads();
      float st[kTile / 8][4], dpt[kTile / 8][4]; // [16 keys x 64 queries]
      product_xyt<D>(st, sm.a, warp * 16, sm.c);
      product_xyt<D>(dpt, sm.b, warp * 16, sm.d);
#pragma unroll
      for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nb * 8 + 2 * t + (e & 1);
          const float pe =
              attends(i0 + col, key[e / 2], S, p.window) ? exp2f(st[nb][e] * p.scale_log2 - sm.lse2[col]) : 0.0f;
          st[nb][e] = pe;
          dpt[nb][e] = pe * (dpt[nb][e] - sm.delta[col]);
        }
      accumulate_wy<D>(dva, st, sm.d);
      accumulate_wy<D>(dka, dpt, sm.c);
    }
  }
  store_rows<D>(dk + b * S * p.k_stride + kvh * D, p.k_stride, j0 + warp * 16, S, dka, p.scale);
  store_rows<D>(dv + b * S * p.v_stride + kvh * D, p.v_stride, j0 + warp * 16, S, dva, 1.0f);
}

template <int D>
__global__ void __launch_bounds__(kThreads) dq_kernel(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k,
                                                      const bf16 *v, const float *lse, const float *delta, Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  BwdSmem<D> &sm = *reinterpret_cast<BwdSmem<D> *>(smem_raw);
  const i64 S = p.seq;
  const int tile = int(gridDim.x - 1 - blockIdx.x), h = int(blockIdx.y), b = int(blockIdx.z);
  const i64 kvh = h / (p.q_heads / p.kv_heads);
  const int warp = int(threadIdx.x / 32), g = lane_g(), t = lane_t();
  const i64 i0 = i64(tile) * kTile, dout_stride = p.q_heads * D;
  load_tile<D>(sm.a, q + b * S * p.q_stride + h * D, p.q_stride, i0, S);
  load_tile<D>(sm.b, dout + b * S * dout_stride + h * D, dout_stride, i0, S);
  const i64 row[2] = {i0 + warp * 16 + g, i0 + warp * 16 + g + 8};
  float lse2[2], dl[2];
  for (int r = 0; r < 2; ++r) {
    const i64 stat = (b * p.q_heads + h) * S + row[r];
    lse2[r] = row[r] < S ? lse[stat] * kLog2e : 0.0f;
    dl[r] = row[r] < S ? delta[stat] : 0.0f;
  }
  float dqa[D / 8][4];
  zero<D>(dqa);
  const i64 first_key = p.window > 0 && i0 - p.window + 1 > 0 ? i0 - p.window + 1 : 0;
  const i64 end_key = i0 + kTile < S ? i0 + kTile : S;
  for (i64 j0 = first_key / kTile * kTile; j0 < end_key; j0 += kTile) {
    __syncthreads();
    load_tile<D>(sm.c, k + b * S * p.k_stride + kvh * D, p.k_stride, j0, S);
    load_tile<D>(sm.d, v + b * S * p.v_stride + kvh * D, p.v_stride, j0, S);
    __syncthreads();
    float s[kTile / 8][4], dp[kTile / 8][4]; // [16 queries x 64 keys]
    product_xyt<D>(s, sm.a, warp * 16, sm.c);
    product_xyt<D>(dp, sm.b, warp * 16, sm.d);
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const i64 key = j0 + nb * 8 + 2 * t + (e & 1);
        const float pe = attends(row[e / 2], key, S, p.window) ? exp2f(s[nb][e] * p.scale_log2 - lse2[e / 2]) : 0.0f;
        dp[nb][e] = pe * (dp[nb][e] - dl[e / 2]);
      }
    accumulate_wy<D>(dqa, dp, sm.c);
  }
  store_rows<D>(dq + b * S * p.q_stride + h * D, p.q_stride, i0 + warp * 16, S, dqa, p.scale);
}

template <int D>
Status launch_backward(cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                       const bf16 *v, const float *lse, const float *delta, const Params &p) {
  const int smem = int(sizeof(BwdSmem<D>));
  ATP_CUDA_TRY(cudaFuncSetAttribute(dkv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  ATP_CUDA_TRY(cudaFuncSetAttribute(dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const unsigned tiles = unsigned((p.seq + kTile - 1) / kTile);
  dkv_kernel<D><<<dim3(tiles, unsigned(p.kv_heads), unsigned(p.batch)), kThreads, smem, st>>>(dk, dv, dout, q, k, v,
                                                                                              lse, delta, p);
  ATP_CUDA_TRY(cudaGetLastError());
  dq_kernel<D>
      <<<dim3(tiles, unsigned(p.q_heads), unsigned(p.batch)), kThreads, smem, st>>>(dq, dout, q, k, v, lse, delta, p);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

} // namespace

Status backward(cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                const bf16 *v, const float *lse, const float *delta, const AttentionDims &a) {
  const Params p = params_of(a);
  switch (a.head_dim) {
  case 64:
    return launch_backward<64>(st, dq, dk, dv, dout, q, k, v, lse, delta, p);
  case 96:
    return launch_backward<96>(st, dq, dk, dv, dout, q, k, v, lse, delta, p);
  default:
    return launch_backward<128>(st, dq, dk, dv, dout, q, k, v, lse, delta, p);
  }
}

} // namespace atp::kcuda::flash
