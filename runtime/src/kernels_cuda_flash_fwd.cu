/* kernels_cuda_flash_fwd.cu - the flash forward (kernels_cuda_flash.cuh), and which calls the flash path takes.

   One CTA per (q tile, q head, batch), heaviest (last) q tiles first. Each warp keeps its 16 query rows'
   Q fragments in registers, and for each kv tile (copied by cp.async one tile ahead into a second buffer) in key order
   (from the sliding window's first key to the causal limit): S = Q K^T (fp32), masked entries -inf, online softmax per
   row (running max m in the log2 domain, running sum l of the fp32 p), P rounded to bf16 for P V, O accumulated in
   fp32. */
#include "atp/check_cuda.h"
#include "kernels_cuda_flash.cuh"

#include <cstdint>

namespace atp::kcuda::flash {

namespace {

template <int D> struct FwdSmem { SmemTile<D> k[2], v[2]; };

template <int D>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  FwdSmem<D> &sm = *reinterpret_cast<FwdSmem<D> *>(smem_raw);
  const i64 S = p.seq;
  const int tile = int(gridDim.x - 1 - blockIdx.x), h = int(blockIdx.y), b = int(blockIdx.z);
  const i64 kvh = h / (p.q_heads / p.kv_heads);
  const int warp = int(threadIdx.x / 32), g = lane_g(), t = lane_t();
  const i64 q0 = i64(tile) * kTile;
  const bf16 *qh = q + b * S * p.q_stride + h * D;
  const bf16 *kh = k + b * S * p.k_stride + kvh * D;
  const bf16 *vh = v + b * S * p.v_stride + kvh * D;
  const i64 first_key = p.window > 0 && q0 - p.window + 1 > 0 ? q0 - p.window + 1 : 0;
  const i64 end_key = q0 + kTile < S ? q0 + kTile : S;
  const i64 j_begin = first_key / kTile * kTile;
  const int tiles = int((end_key - j_begin + kTile - 1) / kTile);

  // Q staged through k[1] into registers, while the first kv tile is copied into k[0], v[0].
  load_tile_async<D>(sm.k[1], qh, p.q_stride, q0, S);
  cp_async_commit();
  load_tile_async<D>(sm.k[0], kh, p.k_stride, j_begin, S);
  load_tile_async<D>(sm.v[0], vh, p.v_stride, j_begin, S);
  cp_async_commit();
  cp_async_wait<1>();
  __syncthreads();
  std::uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    load_a<D>(qa[kk], sm.k[1], warp * 16, kk * 16);
  __syncthreads();

  float o[D / 8][4];
#pragma unroll
  for (int nb = 0; nb < D / 8; ++nb)
    o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const i64 row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

  for (int it = 0; it < tiles; ++it) {
    const i64 j0 = j_begin + i64(it) * kTile;
    const int buf = it & 1;
    if (it + 1 < tiles) {
      load_tile_async<D>(sm.k[buf ^ 1], kh, p.k_stride, j0 + kTile, S);
      load_tile_async<D>(sm.v[buf ^ 1], vh, p.v_stride, j0 + kTile, S);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const SmemTile<D> &ks = sm.k[buf], &vs = sm.v[buf];

    float s[kTile / 8][4];
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
      s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int nb = 0; nb < kTile / 8; nb += 2) {
        std::uint32_t bb[4];
        load_b_rows<D>(bb, ks, nb * 8, kk * 16);
        mma(s[nb], qa[kk], bb[0], bb[1]);
        mma(s[nb + 1], qa[kk], bb[2], bb[3]);
      }

    // A tile wholly inside every row's causal window needs no mask.
    const bool whole = j0 + kTile - 1 <= q0 && j0 + kTile <= S && (p.window <= 0 || q0 + kTile - 1 - j0 < p.window);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const i64 key = j0 + nb * 8 + 2 * t + (e & 1);
        const float x = whole || attends(row[e / 2], key, S, p.window) ? s[nb][e] * p.scale_log2 : -INFINITY;
        s[nb][e] = x;
        mx[e / 2] = fmaxf(mx[e / 2], x);
      }
    float corr[2], base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      base[r] = m_new == -INFINITY ? 0.0f : m_new; // a row with no key yet: exp2(-inf - 0) = 0, not NaN
      corr[r] = exp2f(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = exp2f(s[nb][e] - base[e / 2]);
        s[nb][e] = pe;
        l[e / 2] += pe;
      }
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) {
      o[nb][0] *= corr[0];
      o[nb][1] *= corr[0];
      o[nb][2] *= corr[1];
      o[nb][3] *= corr[1];
    }
#pragma unroll
    for (int kk = 0; kk < kTile / 16; ++kk) {
      const std::uint32_t pa[4] = {pack_f32(s[2 * kk][0], s[2 * kk][1]), pack_f32(s[2 * kk][2], s[2 * kk][3]),
                                   pack_f32(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_f32(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nb = 0; nb < D / 8; nb += 2) {
        std::uint32_t bb[4];
        load_b_cols<D>(bb, vs, kk * 16, nb * 8);
        mma(o[nb], pa, bb[0], bb[1]);
        mma(o[nb + 1], pa, bb[2], bb[3]);
      }
    }
    __syncthreads(); // the next iteration's copy overwrites this buffer's pair, which this one was reading
  }

  // l: each lane summed its own columns; the quad's four partial sums in a fixed butterfly order.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  const i64 out_stride = p.q_heads * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= S)
      continue;
    const float inv = 1.0f / l[r];
    bf16 *orow = out + (b * S + row[r]) * out_stride + h * D;
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
      *reinterpret_cast<std::uint32_t *>(orow + nb * 8 + 2 * t) = pack_f32(o[nb][2 * r] * inv, o[nb][2 * r + 1] * inv);
    if (t == 0)
      lse[(b * p.q_heads + h) * S + row[r]] = (m[r] + log2f(l[r])) / kLog2e;
  }
}

template <int D>
Status launch_forward(cudaStream_t st, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                      const Params &p) {
  const int smem = int(sizeof(FwdSmem<D>));
  ATP_CUDA_TRY(cudaFuncSetAttribute(forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid(unsigned((p.seq + kTile - 1) / kTile), unsigned(p.q_heads), unsigned(p.batch));
  forward_kernel<D><<<grid, kThreads, smem, st>>>(out, lse, q, k, v, p);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

} // namespace

Params params_of(const AttentionDims &a) {
  return Params{a.batch,
                a.seq,
                a.q_heads,
                a.kv_heads,
                a.q_stride,
                a.k_stride,
                a.v_stride,
                a.sliding_window,
                float(a.scale * 1.4426950408889634),
                float(a.scale)};
}

bool supports(const AttentionDims &a, std::initializer_list<const void *> pointers) {
  if (a.head_dim != 64 && a.head_dim != 96 && a.head_dim != 128)
    return false;
  if (a.q_stride % 8 != 0 || a.k_stride % 8 != 0 || a.v_stride % 8 != 0)
    return false;
  if (a.batch > 65535 || a.q_heads > 65535)
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
    return launch_forward<64>(st, out, lse, q, k, v, p);
  case 96:
    return launch_forward<96>(st, out, lse, q, k, v, p);
  default:
    return launch_forward<128>(st, out, lse, q, k, v, p);
  }
}

} // namespace atp::kcuda::flash
