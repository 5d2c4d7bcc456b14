/* kernels_cuda_flash_bwd.cu - the flash backward (kernels_cuda_flash.cuh), deterministic: no atomics.

   With p_ij = exp(scale q_i.k_j - lse_i) recomputed from the saved lse, dp_ij = dout_i.v_j and
   ds_ij = p_ij (dp_ij - D_i):
     dkv_kernel, one CTA per (kv tile, kv head, batch), each warp owning 16 M keys: for the group's query heads
       in head order, their q tiles of 64 in order (in M passes of 64 / M queries): S^T = K Q^T, dP^T = V dO^T,
       dV += P^T dO, dK += dS^T Q; dk = scale dK, dv = dV, written once.
     dq_kernel, one CTA per (q tile, q head, batch), each warp owning 16 M queries: for its kv tiles of 64 in
       order: S = Q K^T, dP = dO V^T, dQ += dS K; dq = scale dQ, written once.
   M = 2 for head_dim 64 (each fragment of the streamed tiles read from shared memory feeds two products: a
   third less shared-memory traffic per product), 1 for 96 and 128 (registers). The streamed pair of tiles
   (Q and dO with lse and D for dkv; K and V for dq) is copied by cp.async one step ahead into a second
   buffer. P and dS are rounded to bf16 as the A operand of the second product (the products' inputs are
   bf16); every sum is fp32 in registers. A warp skips the blocks its rows do not see. */
#include "atp/check_cuda.h"
#include "kernels_cuda_flash.cuh"

#include <cstdint>

namespace atp::kcuda::flash {

namespace {

/// fixed: the CTA's own two tiles of 64 M rows (dkv: K, V; dq: Q, dO); x, y: the streamed pair of 64 rows,
/// double-buffered (dkv: Q, dO; dq: K, V); lse and delta: dkv's streamed statistics of x's rows.
template <int D, int M> struct BwdSmem {
  SmemTile<D, kTile * M> fixed[2];
  SmemTile<D> x[2], y[2];
  float lse[2][kTile], delta[2][kTile];
};

template <int D, int M> __device__ __forceinline__ void zero(float (&acc)[M][D / 8][4]) {
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
      acc[mi][nb][0] = acc[mi][nb][1] = acc[mi][nb][2] = acc[mi][nb][3] = 0.0f;
}

/// acc[mi] (16 x 8 NB) = X[r0 + 16 mi .., :] Y[c0 .. c0 + 8 NB, :]^T over D; X, Y row-major smem tiles.
template <int D, int M, int NB, int RX, int RY>
__device__ __forceinline__ void product_xyt(float (&acc)[M][NB][4], const SmemTile<D, RX> &x, int r0,
                                            const SmemTile<D, RY> &y, int c0) {
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
      acc[mi][nb][0] = acc[mi][nb][1] = acc[mi][nb][2] = acc[mi][nb][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    std::uint32_t a[M][4];
#pragma unroll
    for (int mi = 0; mi < M; ++mi)
      load_a(a[mi], x, r0 + 16 * mi, kk * 16);
#pragma unroll
    for (int nb = 0; nb < NB; nb += 2) {
      std::uint32_t bb[4];
      load_b_rows(bb, y, c0 + nb * 8, kk * 16);
#pragma unroll
      for (int mi = 0; mi < M; ++mi) {
        mma(acc[mi][nb], a[mi], bb[0], bb[1]);
        mma(acc[mi][nb + 1], a[mi], bb[2], bb[3]);
      }
    }
  }
}

/// Stores a warp's 16 M x D fp32 accumulator times mul as bf16 rows row0.., rows >= seq skipped.
template <int D, int M>
__device__ __forceinline__ void store_rows(bf16 *dst, i64 stride, int row0, int seq, const float (&acc)[M][D / 8][4],
                                           float mul) {
  const int g = lane_g(), t = lane_t();
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + 16 * mi + g + 8 * r;
      if (row >= seq)
        continue;
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb)
        *reinterpret_cast<std::uint32_t *>(dst + row * stride + nb * 8 + 2 * t) =
            pack_f32(acc[mi][nb][2 * r] * mul, acc[mi][nb][2 * r + 1] * mul);
    }
}

template <int D, int M>
__global__ void __launch_bounds__(kThreads)
    dkv_kernel(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
               const float *delta, Params p) {
  constexpr int kRows = kTile * M, kPass = kTile / M; // keys per CTA; queries per pass
  extern __shared__ __align__(16) unsigned char smem_raw[];
  BwdSmem<D, M> &sm = *reinterpret_cast<BwdSmem<D, M> *>(smem_raw);
  const i64 S = p.seq;
  const int seq = int(S), window = int(p.window);
  const int tile = int(blockIdx.x), kvh = int(blockIdx.y), b = int(blockIdx.z);
  const int warp = int(threadIdx.x / 32), g = lane_g(), t = lane_t();
  const int j0 = tile * kRows, w0 = j0 + warp * 16 * M; // the warp's keys: w0 .. w0 + 16 M - 1
  const i64 rep = p.q_heads / p.kv_heads, dout_stride = p.q_heads * D;
  // Queries that see a key of this tile: j0 .. (last key + window - 1), within the sequence.
  int end_query = seq;
  if (window > 0 && j0 + kRows - 1 + window < seq)
    end_query = j0 + kRows - 1 + window;
  const int q_tiles = (end_query - j0 + kTile - 1) / kTile, steps = int(rep) * q_tiles;
  // Step n: query head kvh * rep + n / q_tiles (head order), its q tile j0 + (n % q_tiles) kTile (in order).
  auto issue = [&](int n, int buf) {
    const i64 h = kvh * rep + n / q_tiles;
    const int i0 = j0 + (n % q_tiles) * kTile;
    load_tile_async(sm.x[buf], q + b * S * p.q_stride + h * D, p.q_stride, i0, S);
    load_tile_async(sm.y[buf], dout + b * S * dout_stride + h * D, dout_stride, i0, S);
    load_stats_async(sm.lse[buf], lse + (b * p.q_heads + h) * S, i0, S);
    load_stats_async(sm.delta[buf], delta + (b * p.q_heads + h) * S, i0, S);
    cp_async_commit();
  };
  load_tile_async(sm.fixed[0], k + b * S * p.k_stride + kvh * D, p.k_stride, j0, S);
  load_tile_async(sm.fixed[1], v + b * S * p.v_stride + kvh * D, p.v_stride, j0, S);
  issue(0, 0); // one group with K and V
  float dka[M][D / 8][4], dva[M][D / 8][4];
  zero<D, M>(dka);
  zero<D, M>(dva);
  for (int n = 0; n < steps; ++n) {
    const int buf = n & 1;
    if (n + 1 < steps) {
      issue(n + 1, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
#pragma unroll
    for (int pass = 0; pass < M; ++pass) {
      const int c0 = pass * kPass, i0 = j0 + (n % q_tiles) * kTile + c0; // queries i0 .. i0 + kPass - 1
      const bool active = i0 + kPass - 1 >= w0 && (window <= 0 || i0 - (w0 + 16 * M - 1) < window);
      if (!active)
        continue;
      float st[M][kPass / 8][4], dpt[M][kPass / 8][4]; // [16 M keys x kPass queries]
      product_xyt<D, M, kPass / 8>(st, sm.fixed[0], warp * 16 * M, sm.x[buf], c0);
      product_xyt<D, M, kPass / 8>(dpt, sm.fixed[1], warp * 16 * M, sm.y[buf], c0);
      const bool whole = i0 >= w0 + 16 * M - 1 && i0 + kPass <= seq && (window <= 0 || i0 + kPass - 1 - w0 < window);
      if (!whole) // edge blocks only: masked scores become -inf, so p = 0 there
        mask_scores<M, kPass / 8>(st, [&](int key, int col) { return attends_int(i0 + col, key, seq, window); }, w0, g, t);
#pragma unroll
      for (int mi = 0; mi < M; ++mi)
#pragma unroll
        for (int nb = 0; nb < kPass / 8; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = c0 + nb * 8 + 2 * t + (e & 1);
            const float pe = fast_exp2(fmaf(st[mi][nb][e], p.scale_log2, -sm.lse[buf][col] * kLog2e));
            st[mi][nb][e] = pe;
            dpt[mi][nb][e] = pe * (dpt[mi][nb][e] - sm.delta[buf][col]);
          }
      accumulate_wy<D, M, kPass / 8>(dva, st, sm.y[buf], c0);
      accumulate_wy<D, M, kPass / 8>(dka, dpt, sm.x[buf], c0);
    }
    __syncthreads(); // the next step's copy overwrites this buffer
  }
  store_rows<D, M>(dk + b * S * p.k_stride + kvh * D, p.k_stride, w0, seq, dka, p.scale);
  store_rows<D, M>(dv + b * S * p.v_stride + kvh * D, p.v_stride, w0, seq, dva, 1.0f);
}

template <int D, int M>
__global__ void __launch_bounds__(kThreads) dq_kernel(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k,
                                                      const bf16 *v, const float *lse, const float *delta, Params p) {
  constexpr int kRows = kTile * M;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  BwdSmem<D, M> &sm = *reinterpret_cast<BwdSmem<D, M> *>(smem_raw);
  const i64 S = p.seq;
  const int seq = int(S), window = int(p.window);
  const int tile = int(gridDim.x - 1 - blockIdx.x), h = int(blockIdx.y), b = int(blockIdx.z);
  const i64 kvh = h / (p.q_heads / p.kv_heads), dout_stride = p.q_heads * D;
  const int warp = int(threadIdx.x / 32), g = lane_g(), t = lane_t();
  const int i0 = tile * kRows, w0 = i0 + warp * 16 * M; // the warp's queries: w0 .. w0 + 16 M - 1
  const bf16 *kh = k + b * S * p.k_stride + kvh * D, *vh = v + b * S * p.v_stride + kvh * D;
  const int first_key = window > 0 && i0 - window + 1 > 0 ? i0 - window + 1 : 0;
  const int end_key = i0 + kRows < seq ? i0 + kRows : seq;
  const int j_begin = first_key / kTile * kTile;
  const int tiles = (end_key - j_begin + kTile - 1) / kTile;
  load_tile_async(sm.fixed[0], q + b * S * p.q_stride + h * D, p.q_stride, i0, S);
  load_tile_async(sm.fixed[1], dout + b * S * dout_stride + h * D, dout_stride, i0, S);
  load_tile_async(sm.x[0], kh, p.k_stride, j_begin, S);
  load_tile_async(sm.y[0], vh, p.v_stride, j_begin, S);
  cp_async_commit();
  // The rows' lse (times log2 e) and D, read where used (registers are dear here): sm.lse, sm.delta hold
  // 2 kTile >= kRows floats each, unused otherwise by this kernel.
  float *row_lse2 = &sm.lse[0][0], *row_delta = &sm.delta[0][0];
  for (int r = int(threadIdx.x); r < kRows; r += kThreads) {
    const i64 stat = (b * p.q_heads + h) * S + i0 + r;
    row_lse2[r] = i0 + r < seq ? lse[stat] * kLog2e : 0.0f;
    row_delta[r] = i0 + r < seq ? delta[stat] : 0.0f;
  }
  float dqa[M][D / 8][4];
  zero<D, M>(dqa);
  for (int n = 0; n < tiles; ++n) {
    const int j0 = j_begin + n * kTile;
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
    const bool active = j0 <= w0 + 16 * M - 1 && (window <= 0 || j0 + kTile - 1 > w0 - window);
    if (active) {
      float s[M][kTile / 8][4], dp[M][kTile / 8][4]; // [16 M queries x 64 keys]
      product_xyt<D, M, kTile / 8>(s, sm.fixed[0], warp * 16 * M, sm.x[buf], 0);
      product_xyt<D, M, kTile / 8>(dp, sm.fixed[1], warp * 16 * M, sm.y[buf], 0);
      const bool whole = j0 + kTile - 1 <= w0 && j0 + kTile <= seq && (window <= 0 || w0 + 16 * M - 1 - j0 < window);
      if (!whole) // edge blocks only
        mask_scores<M, kTile / 8>(s, [&](int row, int key) { return attends_int(row, j0 + key, seq, window); }, w0, g, t);
#pragma unroll
      for (int mi = 0; mi < M; ++mi)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = w0 - i0 + 16 * mi + g + 8 * (e / 2);
          const float lse2 = row_lse2[row], d = row_delta[row];
#pragma unroll
          for (int nb = 0; nb < kTile / 8; ++nb) {
            const float pe = fast_exp2(fmaf(s[mi][nb][e], p.scale_log2, -lse2));
            dp[mi][nb][e] = pe * (dp[mi][nb][e] - d);
          }
        }
      accumulate_wy<D, M, kTile / 8>(dqa, dp, sm.x[buf], 0);
    }
    __syncthreads(); // the next step's copy overwrites this buffer
  }
  store_rows<D, M>(dq + b * S * p.q_stride + h * D, p.q_stride, w0, seq, dqa, p.scale);
}

/// D_i = dout_i . out_i for the rows [batch, seq, q_heads] of dout and out (row stride q_heads D), stored as
/// delta [batch, q_heads, seq]. G = the power of two >= D / 8 threads per row, each thread one 16-byte
/// chunk of the row (the rest of a group idle at D 96); fp32 products, summed by a butterfly in the group.
template <int D>
__global__ void __launch_bounds__(256) delta_kernel(float *delta, const bf16 *dout, const bf16 *out, i64 rows,
                                                    i64 seq, i64 q_heads) {
  constexpr int kChunks = D / 8, G = kChunks <= 8 ? 8 : 16;
  const i64 thread = blockIdx.x * i64(blockDim.x) + threadIdx.x, row = thread / G;
  const int chunk = int(thread % G);
  float s = 0.0f;
  if (row < rows && chunk < kChunks) {
    const uint4 a = *reinterpret_cast<const uint4 *>(dout + row * D + chunk * 8);
    const uint4 b = *reinterpret_cast<const uint4 *>(out + row * D + chunk * 8);
    const bf16 *x = reinterpret_cast<const bf16 *>(&a), *y = reinterpret_cast<const bf16 *>(&b);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      s = fmaf(__bfloat162float(x[e]), __bfloat162float(y[e]), s);
  }
#pragma unroll
  for (int o = G / 2; o > 0; o /= 2)
    s += __shfl_xor_sync(0xffffffffu, s, o);
  if (row < rows && chunk == 0) {
    const i64 h = row % q_heads, i = (row / q_heads) % seq, b = row / (q_heads * seq);
    delta[(b * q_heads + h) * seq + i] = s;
  }
}

template <int D, int M>
Status launch_backward(cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                       const bf16 *v, const bf16 *out, const float *lse, float *delta, const Params &p) {
  const i64 rows = p.batch * p.seq * p.q_heads, threads = rows * (D / 8 <= 8 ? 8 : 16);
  delta_kernel<D><<<unsigned((threads + 255) / 256), 256, 0, st>>>(delta, dout, out, rows, p.seq, p.q_heads);
  ATP_CUDA_TRY(cudaGetLastError());
  const int smem = int(sizeof(BwdSmem<D, M>));
  ATP_CUDA_TRY(cudaFuncSetAttribute(dkv_kernel<D, M>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  ATP_CUDA_TRY(cudaFuncSetAttribute(dq_kernel<D, M>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const unsigned tiles = unsigned((p.seq + kTile * M - 1) / (kTile * M));
  dkv_kernel<D, M><<<dim3(tiles, unsigned(p.kv_heads), unsigned(p.batch)), kThreads, smem, st>>>(dk, dv, dout, q, k, v,
                                                                                                 lse, delta, p);
  ATP_CUDA_TRY(cudaGetLastError());
  dq_kernel<D, M>
      <<<dim3(tiles, unsigned(p.q_heads), unsigned(p.batch)), kThreads, smem, st>>>(dq, dout, q, k, v, lse, delta, p);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

} // namespace

Status backward(cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                const bf16 *v, const bf16 *out, const float *lse, float *delta, const AttentionDims &a) {
  const Params p = params_of(a);
  switch (a.head_dim) {
  case 64:
    return launch_backward<64, 2>(st, dq, dk, dv, dout, q, k, v, out, lse, delta, p);
  case 96:
    return launch_backward<96, 1>(st, dq, dk, dv, dout, q, k, v, out, lse, delta, p);
  default:
    return launch_backward<128, 1>(st, dq, dk, dv, dout, q, k, v, out, lse, delta, p);
  }
}

} // namespace atp::kcuda::flash
