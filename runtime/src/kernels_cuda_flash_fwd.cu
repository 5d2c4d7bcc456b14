/* kernels_cuda_flash_fwd.cu - the flash forward (kernels_cuda_flash.cuh), and which calls the flash path takes.

   One CTA per (q tile, q head, batch), heaviest (last) q tiles first; a q tile is 64 M rows, each warp owning
   16 M of them (M = 2 for head_dim 64: each K or V fragment read from shared memory feeds two products, which
   halves the shared-memory traffic per product; M = 1 for 96 and 128, where the registers would not hold two).
   Each warp keeps its rows' Q fragments in registers, and for each kv tile of 64 keys (copied by cp.async one
   tile ahead into a second buffer) in key order, from the sliding window's first key to the causal limit (a
   warp skips tiles its rows do not see): S = Q K^T (fp32), masked entries -inf, online softmax per row
   (running max m in the log2 domain, running sum l of the fp32 p), P rounded to bf16 for P V, O accumulated
   in fp32. */
#include "atp/check_cuda.h"
#include "kernels_cuda_flash.cuh"

#include <cstdint>

namespace atp::kcuda::flash {

namespace {

/// M: 16-row query blocks per warp (a CTA's q tile is 64 M rows); each K or V fragment read from smem then
/// feeds M products.
template <int D, int M> struct FwdSmem {
  SmemTile<D, kTile * M> q;
  SmemTile<D> k[2], v[2];
};

template <int D, int M>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, Params p) {
  constexpr int kRows = kTile * M;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  FwdSmem<D, M> &sm = *reinterpret_cast<FwdSmem<D, M> *>(smem_raw);
  const i64 S = p.seq;
  const int tile = int(gridDim.x - 1 - blockIdx.x), h = int(blockIdx.y), b = int(blockIdx.z);
  const i64 kvh = h / (p.q_heads / p.kv_heads);
  const int warp = int(threadIdx.x / 32), g = lane_g(), t = lane_t();
  const int q0 = tile * kRows, w0 = q0 + warp * 16 * M; // the warp's rows: w0 .. w0 + 16 M - 1
  const int seq = int(S), window = int(p.window);       // (seq <= 2^30: supports)
  const bf16 *qh = q + b * S * p.q_stride + h * D;
  const bf16 *kh = k + b * S * p.k_stride + kvh * D;
  const bf16 *vh = v + b * S * p.v_stride + kvh * D;
  const int first_key = window > 0 && q0 - window + 1 > 0 ? q0 - window + 1 : 0;
  const int end_key = q0 + kRows < seq ? q0 + kRows : seq;
  const int j_begin = first_key / kTile * kTile;
  const int tiles = int((end_key - j_begin + kTile - 1) / kTile);

  load_tile_async(sm.q, qh, p.q_stride, q0, S);
  load_tile_async(sm.k[0], kh, p.k_stride, j_begin, S);
  load_tile_async(sm.v[0], vh, p.v_stride, j_begin, S);
  cp_async_commit();
  std::uint32_t qa[M][D / 16][4];
  float o[M][D / 8][4], m[M][2], l[M][2];
#pragma unroll
  for (int mi = 0; mi < M; ++mi) {
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
      o[mi][nb][0] = o[mi][nb][1] = o[mi][nb][2] = o[mi][nb][3] = 0.0f;
    m[mi][0] = m[mi][1] = -INFINITY;
    l[mi][0] = l[mi][1] = 0.0f;
  }

  for (int it = 0; it < tiles; ++it) {
    const int j0 = j_begin + it * kTile;
    const int buf = it & 1;
    if (it + 1 < tiles) {
      load_tile_async(sm.k[buf ^ 1], kh, p.k_stride, j0 + kTile, S);
      load_tile_async(sm.v[buf ^ 1], vh, p.v_stride, j0 + kTile, S);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (it == 0) {
#pragma unroll
      for (int mi = 0; mi < M; ++mi)
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
          load_a(qa[mi][kk], sm.q, warp * 16 * M + mi * 16, kk * 16);
    }
    // A warp whose rows see no key of this tile (past the causal limit, or before the window) skips it.
    const bool active = j0 <= w0 + 16 * M - 1 && (p.window <= 0 || j0 + kTile - 1 > w0 - p.window);
    if (active) {
      const SmemTile<D> &ks = sm.k[buf], &vs = sm.v[buf];
      float s[M][kTile / 8][4];
#pragma unroll
      for (int mi = 0; mi < M; ++mi)
#pragma unroll
        for (int nb = 0; nb < kTile / 8; ++nb)
          s[mi][nb][0] = s[mi][nb][1] = s[mi][nb][2] = s[mi][nb][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
        for (int nb = 0; nb < kTile / 8; nb += 2) {
          std::uint32_t bb[4];
          load_b_rows(bb, ks, nb * 8, kk * 16);
#pragma unroll
          for (int mi = 0; mi < M; ++mi) {
            mma(s[mi][nb], qa[mi][kk], bb[0], bb[1]);
            mma(s[mi][nb + 1], qa[mi][kk], bb[2], bb[3]);
          }
        }

      // A tile wholly inside every row's causal window needs no mask: only edge tiles pay for it.
      const bool whole = j0 + kTile - 1 <= w0 && j0 + kTile <= S && (p.window <= 0 || w0 + 16 * M - 1 - j0 < p.window);
      if (!whole)
        mask_scores<M, kTile / 8>(s, [&](int row, int key) { return attends_int(row, j0 + key, seq, window); }, w0, g, t);
      // The running max is kept scaled (log2 domain); scale > 0 (supports), so the max of the raw scores
      // scaled is the max of the scaled ones, and p = 2^(s scale_log2 - m) is one FFMA and one EX2.
#pragma unroll
      for (int mi = 0; mi < M; ++mi) {
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            mx[e / 2] = fmaxf(mx[e / 2], s[mi][nb][e]);
        float corr[2], base[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
          mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
          const float m_new = fmaxf(m[mi][r], mx[r] * p.scale_log2);
          base[r] = m_new == -INFINITY ? 0.0f : m_new; // a row with no key yet: 2^(-inf - 0) = 0, not NaN
          corr[r] = fast_exp2(m[mi][r] - base[r]);
          m[mi][r] = m_new;
          l[mi][r] *= corr[r];
        }
#pragma unroll
        for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float pe = fast_exp2(fmaf(s[mi][nb][e], p.scale_log2, -base[e / 2]));
            s[mi][nb][e] = pe;
            l[mi][e / 2] += pe;
          }
#pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
          o[mi][nb][0] *= corr[0];
          o[mi][nb][1] *= corr[0];
          o[mi][nb][2] *= corr[1];
          o[mi][nb][3] *= corr[1];
        }
      }
      accumulate_wy<D, M, kTile / 8>(o, s, vs, 0); // O += P V, P rounded to bf16
    }
    __syncthreads(); // the next iteration's copy overwrites this buffer pair, which this one was reading
  }

  const i64 out_stride = p.q_heads * D;
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // l: each lane summed its own columns; the quad's four partial sums in a fixed butterfly order.
      float lr = l[mi][r];
      lr += __shfl_xor_sync(0xffffffffu, lr, 1);
      lr += __shfl_xor_sync(0xffffffffu, lr, 2);
      const int row = w0 + mi * 16 + g + 8 * r;
      if (row >= seq)
        continue;
      const float inv = 1.0f / lr;
      bf16 *orow = out + (b * S + row) * out_stride + h * D;
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb)
        *reinterpret_cast<std::uint32_t *>(orow + nb * 8 + 2 * t) =
            pack_f32(o[mi][nb][2 * r] * inv, o[mi][nb][2 * r + 1] * inv);
      if (t == 0)
        lse[(b * p.q_heads + h) * S + row] = (m[mi][r] + log2f(lr)) / kLog2e;
    }
}

template <int D, int M>
Status launch_forward(cudaStream_t st, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                      const Params &p) {
  const int smem = int(sizeof(FwdSmem<D, M>));
  ATP_CUDA_TRY(cudaFuncSetAttribute(forward_kernel<D, M>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid(unsigned((p.seq + kTile * M - 1) / (kTile * M)), unsigned(p.q_heads), unsigned(p.batch));
  forward_kernel<D, M><<<grid, kThreads, smem, st>>>(out, lse, q, k, v, p);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

} // namespace

Params params_of(const AttentionDims &a) {
  // A window of seq or more keys is plain causal (s - j < seq always): clamped, it fits an int.
  const i64 window = a.sliding_window < a.seq ? a.sliding_window : a.seq;
  return Params{a.batch,       a.seq,      a.q_heads,
                a.kv_heads,    a.q_stride, a.k_stride,
                a.v_stride,    window,     float(a.scale * 1.4426950408889634),
                float(a.scale)};
}

bool supports(const AttentionDims &a, std::initializer_list<const void *> pointers) {
  if (a.head_dim != 64 && a.head_dim != 96 && a.head_dim != 128)
    return false;
  if (!(a.scale > 0)) // the forward takes the running max of unscaled scores
    return false;
  if (a.q_stride % 8 != 0 || a.k_stride % 8 != 0 || a.v_stride % 8 != 0)
    return false;
  if (a.batch > 65535 || a.q_heads > 65535 || a.seq > (i64(1) << 30)) // grid y/z; int rows and keys
    return false;
  for (const void *ptr : pointers)
    if (reinterpret_cast<std::uintptr_t>(ptr) % 16 != 0)
      return false;
  return true;
}

Status forward(cudaStream_t st, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
               const AttentionDims &a) {
  const Params p = params_of(a);
  switch (a.head_dim) {
  case 64:
    return launch_forward<64, 2>(st, out, lse, q, k, v, p);
  case 96:
    return launch_forward<96, 1>(st, out, lse, q, k, v, p);
  default:
    return launch_forward<128, 1>(st, out, lse, q, k, v, p);
  }
}

} // namespace atp::kcuda::flash
