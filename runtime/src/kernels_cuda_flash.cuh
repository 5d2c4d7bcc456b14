/* kernels_cuda_flash.cuh - FlashAttention-2-style causal grouped-query attention for BF16 on tensor cores.

   The BF16 path of kernels_cuda_attention.cu for head_dim 64, 96 and 128 with 16-byte aligned rows (every
   other case keeps the row-per-warp kernels there). Tiles of 64 queries by 64 keys; a CTA of 4 warps, each
   warp owning 16 rows of its tile; products through mma.sync m16n8k16 (bf16 in, fp32 accumulate), fragments
   through ldmatrix from padded smem tiles, the tiles streamed by cp.async into two buffers (the next tile's
   copy overlaps this tile's math).
     forward  one CTA per (batch, q head, q tile): S = Q K^T, online softmax in fp32 registers, P rounded to
              bf16, O += P V in fp32, out = O / l rounded once, lse = m + log l in fp32.
     backward D_i = dout_i . out_i (a kernel of its own: 16-byte loads, fp32 sums), then
              dkv: one CTA per (batch, kv head, kv tile) over the group's query heads in head order and their
                   q tiles in order: dV += P^T dO, dK += dS^T Q (P, dS recomputed, rounded to bf16);
              dq:  one CTA per (batch, q head, q tile) over its kv tiles in order: dQ += dS K.
   Every output element has one owner (one thread's register) adding in a fixed order: no atomics, the same
   bits on every run. Masks cost only on the tiles that cross the causal diagonal or the window's edge; the
   softmax scale rides in the exponent's FFMA and 2^x is the SFU's ex2.approx (these three halved the time at
   the benchmark's shape; tools/bench_sdpa.py times torch's SDPA backends on it). */
#pragma once

#include "atp/kernels.h"
#include "kernels_cuda.h"

namespace atp::kcuda::flash {

/// Whether the flash kernels take this call: head_dim 64, 96 or 128, and 16-byte aligned rows (every
/// pointer and every row stride a multiple of 8 elements).
bool supports(const AttentionDims &a, std::initializer_list<const void *> pointers);

Status forward(cudaStream_t st, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
               const AttentionDims &a);

/// out: the forward's output, rows of q_heads x head_dim (contiguous heads). delta: scratch of batch x q_heads
/// x seq floats for D_i = dout_i . out_i (laid out like lse), computed here first.
Status backward(cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                const bf16 *v, const bf16 *out, const float *lse, float *delta, const AttentionDims &a);

// ------------------------------------------------------------------ device pieces shared by the kernels

constexpr int kTile = 64; // queries and keys per tile
constexpr int kWarps = 4; // 16 rows of a tile per warp
constexpr int kThreads = 32 * kWarps;
constexpr int kPad = 8; // smem row padding (elements): fragment loads hit distinct banks
constexpr float kLog2e = 1.4426950408889634f;

struct Params {
  i64 batch, seq, q_heads, kv_heads, q_stride, k_stride, v_stride, window;
  float scale_log2; // scale * log2(e): exponentials are exp2
  float scale;
};

/// A tile of kTile rows of D bf16 in shared memory, rows padded (16-byte aligned rows at distinct banks).
template <int D, int R = kTile> struct SmemTile { bf16 e[R][D + kPad]; };

/// c += a b for a 16x16 row-major bf16 A, a 16x8 column-major bf16 B, a 16x8 fp32 C (PTX ISA's m16n8k16
/// fragment layouts: lane = 4 g + t holds A rows g, g+8, columns 2t, 2t+1, 2t+8, 2t+9; B column g, rows
/// 2t, 2t+1, 2t+8, 2t+9; C rows g, g+8, columns 2t, 2t+1).
__device__ __forceinline__ void mma(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Two floats rounded to bf16 (to nearest even) in one register, lo in the low half (the lower column).
__device__ __forceinline__ std::uint32_t pack_f32(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t *>(&v);
}

/// 2^x by the SFU's approximation (relative error ~2^-22, far below P's bf16 rounding; -inf gives +0):
/// one instruction, where exp2f handles denormal results in several.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ int lane_id() { return int(threadIdx.x % 32); }
__device__ __forceinline__ int lane_g() { return lane_id() / 4; }
__device__ __forceinline__ int lane_t() { return lane_id() % 4; }

__device__ __forceinline__ unsigned smem_addr(const void *p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

/// Four 8x8 b16 matrices from shared memory (lanes 8i..8i+7 give the row addresses of matrix i); .trans
/// hands each lane column elements instead of row elements.
__device__ __forceinline__ void ldsm_x4(std::uint32_t (&r)[4], const bf16 *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(std::uint32_t (&r)[4], const bf16 *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

/// The A fragment of rows r0.., columns k0.. of a row-major smem tile.
template <int D, int R>
__device__ __forceinline__ void load_a(std::uint32_t (&a)[4], const SmemTile<D, R> &s, int r0, int k0) {
  const int l = lane_id();
  ldsm_x4(a, &s.e[r0 + (l & 15)][k0 + (l >> 4) * 8]);
}

/// The B fragments of n-blocks n0 and n0 + 8 for B[k][n] = s[n0 + n][k0 + k] (B^T stored row-major: K for
/// Q K^T): b[0], b[1] for n0; b[2], b[3] for n0 + 8.
template <int D, int R>
__device__ __forceinline__ void load_b_rows(std::uint32_t (&b)[4], const SmemTile<D, R> &s, int n0, int k0) {
  const int l = lane_id();
  ldsm_x4(b, &s.e[n0 + (l & 7) + (l >> 4) * 8][k0 + ((l >> 3) & 1) * 8]);
}

/// The B fragments of n-blocks n0 and n0 + 8 for B[k][n] = s[k0 + k][n0 + n] (B stored row-major: V for P V).
template <int D, int R>
__device__ __forceinline__ void load_b_cols(std::uint32_t (&b)[4], const SmemTile<D, R> &s, int k0, int n0) {
  const int l = lane_id();
  ldsm_x4_trans(b, &s.e[k0 + (l & 7) + ((l >> 3) & 1) * 8][n0 + (l >> 4) * 8]);
}

/// Asynchronous copies global -> shared (cp.async): 16 or 4 bytes, zero-filled where !valid (nothing read).
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(void *dst, const void *src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/// Waits until at most `pending` committed groups are still in flight (this thread's); then __syncthreads.
template <int pending> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
}

/// Starts copying rows row0..row0+R-1 (of a sequence; rows >= seq become zeros) of one head's D columns,
/// 16 bytes per copy, by the whole CTA. src points at row 0, column 0 of the head.
template <int D, int R>
__device__ __forceinline__ void load_tile_async(SmemTile<D, R> &s, const bf16 *src, i64 stride, i64 row0, i64 seq) {
  constexpr int kChunks = D / 8;
  for (int c = int(threadIdx.x); c < R * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = row0 + r < seq;
    cp_async16(&s.e[r][col], valid ? src + (row0 + r) * stride + col : src, valid);
  }
}

/// Starts copying kTile floats of a [seq] row of statistics from index row0 (zeros past seq).
__device__ __forceinline__ void load_stats_async(float *dst, const float *src, i64 row0, i64 seq) {
  for (int r = int(threadIdx.x); r < kTile; r += kThreads) {
    const bool valid = row0 + r < seq;
    cp_async4(dst + r, valid ? src + row0 + r : src, valid);
  }
}

/// acc[mi] (16 x D) += W[mi] (16 x 8 NB) Y[k0 .. k0 + 8 NB, :], W in C-fragment registers (rounded to bf16
/// here), Y a row-major smem tile.
template <int D, int M, int NB>
__device__ __forceinline__ void accumulate_wy(float (&acc)[M][D / 8][4], const float (&w)[M][NB][4],
                                              const SmemTile<D> &y, int k0) {
#pragma unroll
  for (int kk = 0; kk < NB / 2; ++kk) {
    std::uint32_t a[M][4];
#pragma unroll
    for (int mi = 0; mi < M; ++mi) {
      a[mi][0] = pack_f32(w[mi][2 * kk][0], w[mi][2 * kk][1]);
      a[mi][1] = pack_f32(w[mi][2 * kk][2], w[mi][2 * kk][3]);
      a[mi][2] = pack_f32(w[mi][2 * kk + 1][0], w[mi][2 * kk + 1][1]);
      a[mi][3] = pack_f32(w[mi][2 * kk + 1][2], w[mi][2 * kk + 1][3]);
    }
#pragma unroll
    for (int nb = 0; nb < D / 8; nb += 2) {
      std::uint32_t bb[4];
      load_b_cols(bb, y, k0 + kk * 16, nb * 8);
#pragma unroll
      for (int mi = 0; mi < M; ++mi) {
        mma(acc[mi][nb], a[mi], bb[0], bb[1]);
        mma(acc[mi][nb + 1], a[mi], bb[2], bb[3]);
      }
    }
  }
}

/// Sets the scores of a warp's 16 M x 8 NB C fragments that attend(r, c) rejects to -inf, where r is the
/// fragment row (16 mi + g + 8 (e / 2)) offset by r0 and c the column (8 nb + 2 t + (e & 1)).
template <int M, int NB, class Attend>
__device__ __forceinline__ void mask_scores(float (&s)[M][NB][4], Attend attend, int r0, int g, int t) {
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (!attend(r0 + 16 * mi + g + 8 * (e / 2), nb * 8 + 2 * t + (e & 1)))
          s[mi][nb][e] = -INFINITY;
}

Params params_of(const AttentionDims &a);

/// Whether query i attends key j.
__device__ __forceinline__ bool attends(i64 i, i64 j, i64 seq, i64 window) {
  return j <= i && i < seq && (window <= 0 || i - j < window);
}

__device__ __forceinline__ bool attends_int(int i, int j, int seq, int window) {
  return j <= i && i < seq && (window <= 0 || i - j < window);
}

} // namespace atp::kcuda::flash
