/* kernels_cuda_flash_bwd.cu - the flash backward (kernels_cuda_flash.cuh), deterministic: no atomics.

   With p_ij = exp(scale q_i.k_j - lse_i) recomputed from the saved lse, dp_ij = dout_i.v_j and
   ds_ij = p_ij (dp_ij - D_i):
     dkv_kernel, one CTA per (kv tile, kv head, batch), each warp owning 16 keys: for the group's query heads
       in head order, their q tiles in order: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q;
       dk = scale dK, dv = dV, written once.
     dq_kernel, one CTA per (q tile, q head, batch), each warp owning 16 queries: for its kv tiles in order:
       S = Q K^T, dP = dO V^T, dQ += dS K; dq = scale dQ, written once.
   The streamed pair of tiles (Q and dO with lse and D for dkv; K and V for dq) is copied by cp.async one step
   ahead into a second buffer. P and dS are rounded to bf16 as the A operand of the second product (the
   products' inputs are bf16); every sum is fp32 in registers. */
#include "atp/check_cuda.h"
#include "kernels_cuda_flash.cuh"

#include <cstdint>

namespace atp::kcuda::flash {

namespace {

/// fixed: the CTA's own two tiles (dkv: K, V; dq: Q, dO); x, y: the streamed pair, double-buffered (dkv: Q, dO;
/// dq: K, V); lse and delta: dkv's streamed statistics of x's rows.
template <int D> struct BwdSmem {
  SmemTile<D> fixed[2], x[2], y[2];
  float lse[2][kTile], delta[2][kTile];
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
    load_a(a, x, r0, kk * 16);
#pragma unroll
    for (int nb = 0; nb < kTile / 8; nb += 2) {
      std::uint32_t bb[4];
      load_b_rows(bb, y, nb * 8, kk * 16);
      mma(acc[nb], a, bb[0], bb[1]);
      mma(acc[nb + 1], a, bb[2], bb[3]);
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
    for (int nb = 0; nb < D / 8; nb += 2) {
      std::uint32_t bb[4];
      load_b_cols(bb, y, kk * 16, nb * 8);
      mma(acc[nb], a, bb[0], bb[1]);
      mma(acc[nb + 1], a, bb[2], bb[3]);
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
  const i64 j0 = i64(tile) * kTile, rep = p.q_heads / p.kv_heads, dout_stride = p.q_heads * D;
  const i64 key[2] = {j0 + warp * 16 + g, j0 + warp * 16 + g + 8};
  // Queries that see a key of this tile: j0 .. (last key + window - 1), within the sequence.
  i64 end_query = S;
  if (p.window > 0 && j0 + kTile - 1 + p.window < S)
    end_query = j0 + kTile - 1 + p.window;
  const int q_tiles = int((end_query - j0 + kTile - 1) / kTile), steps = int(rep) * q_tiles;
  // Step n: query head kvh * rep + n / q_tiles (head order), its q tile j0 + (n % q_tiles) kTile (in order).
  auto issue = [&](int n, int buf) {
    const i64 h = kvh * rep + n / q_tiles, i0 = j0 + i64(n % q_tiles) * kTile;
    load_tile_async(sm.x[buf], q + b * S * p.q_stride + h * D, p.q_stride, i0, S);
    load_tile_async(sm.y[buf], dout + b * S * dout_stride + h * D, dout_stride, i0, S);
    load_stats_async(sm.lse[buf], lse + (b * p.q_heads + h) * S, i0, S);
    load_stats_async(sm.delta[buf], delta + (b * p.q_heads + h) * S, i0, S);
    cp_async_commit();
  };
  load_tile_async(sm.fixed[0], k + b * S * p.k_stride + kvh * D, p.k_stride, j0, S);
  load_tile_async(sm.fixed[1], v + b * S * p.v_stride + kvh * D, p.v_stride, j0, S);
  issue(0, 0); // one group with K and V
  float dka[D / 8][4], dva[D / 8][4];
  zero<D>(dka);
  zero<D>(dva);
  for (int n = 0; n < steps; ++n) {
    const int buf = n & 1;
    if (n + 1 < steps) {
      issue(n + 1, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const i64 i0 = j0 + i64(n % q_tiles) * kTile;
    float st[kTile / 8][4], dpt[kTile / 8][4]; // [16 keys x 64 queries]
    product_xyt<D>(st, sm.fixed[0], warp * 16, sm.x[buf]);
    product_xyt<D>(dpt, sm.fixed[1], warp * 16, sm.y[buf]);
    const bool whole = i0 >= j0 + kTile - 1 && i0 + kTile <= S && (p.window <= 0 || i0 + kTile - 1 - j0 < p.window);
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nb * 8 + 2 * t + (e & 1);
        const float pe = whole || attends(i0 + col, key[e / 2], S, p.window)
                             ? exp2f(st[nb][e] * p.scale_log2 - sm.lse[buf][col] * kLog2e)
                             : 0.0f;
        st[nb][e] = pe;
        dpt[nb][e] = pe * (dpt[nb][e] - sm.delta[buf][col]);
      }
    accumulate_wy<D>(dva, st, sm.y[buf]);
    accumulate_wy<D>(dka, dpt, sm.x[buf]);
    __syncthreads(); // the next step's copy overwrites this buffer
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
  const bf16 *kh = k + b * S * p.k_stride + kvh * D, *vh = v + b * S * p.v_stride + kvh * D;
  const i64 first_key = p.window > 0 && i0 - p.window + 1 > 0 ? i0 - p.window + 1 : 0;
  const i64 end_key = i0 + kTile < S ? i0 + kTile : S;
  const i64 j_begin = first_key / kTile * kTile;
  const int tiles = int((end_key - j_begin + kTile - 1) / kTile);
  load_tile_async(sm.fixed[0], q + b * S * p.q_stride + h * D, p.q_stride, i0, S);
  load_tile_async(sm.fixed[1], dout + b * S * dout_stride + h * D, dout_stride, i0, S);
  load_tile_async(sm.x[0], kh, p.k_stride, j_begin, S);
  load_tile_async(sm.y[0], vh, p.v_stride, j_begin, S);
  cp_async_commit();
  const i64 row[2] = {i0 + warp * 16 + g, i0 + warp * 16 + g + 8};
  float lse2[2], dl[2];
  for (int r = 0; r < 2; ++r) {
    const i64 stat = (b * p.q_heads + h) * S + row[r];
    lse2[r] = row[r] < S ? lse[stat] * kLog2e : 0.0f;
    dl[r] = row[r] < S ? delta[stat] : 0.0f;
  }
  float dqa[D / 8][4];
  zero<D>(dqa);
  for (int n = 0; n < tiles; ++n) {
    const i64 j0 = j_begin + i64(n) * kTile;
    const int buf = n & 1;
    if (n + 1 < tiles) {
      load_tile_async(sm.x[buf ^ 1], kh, p.k_stride, j0 + kTile, S);
      load_tile_async(sm.y[buf ^ 1], vh, p.v_stride, j0 + kTile, S);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    float s[kTile / 8][4], dp[kTile / 8][4]; // [16 queries x 64 keys]
    product_xyt<D>(s, sm.fixed[0], warp * 16, sm.x[buf]);
    product_xyt<D>(dp, sm.fixed[1], warp * 16, sm.y[buf]);
    const bool whole = j0 + kTile - 1 <= i0 && j0 + kTile <= S && (p.window <= 0 || i0 + kTile - 1 - j0 < p.window);
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const i64 key = j0 + nb * 8 + 2 * t + (e & 1);
        const float pe =
            whole || attends(row[e / 2], key, S, p.window) ? exp2f(s[nb][e] * p.scale_log2 - lse2[e / 2]) : 0.0f;
        dp[nb][e] = pe * (dp[nb][e] - dl[e / 2]);
      }
    accumulate_wy<D>(dqa, dp, sm.x[buf]);
    __syncthreads(); // the next step's copy overwrites this buffer
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
