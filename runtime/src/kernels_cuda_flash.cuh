/* kernels_cuda_flash.cuh - FlashAttention-2-style causal grouped-query attention for BF16 on tensor cores.

   The BF16 path of kernels_cuda_attention.cu for head_dim 64, 96 and 128 with 16-byte aligned rows (every
   other case keeps the row-per-warp kernels there). Tiles of 64 queries by 64 keys; a CTA of 4 warps, each
   warp owning 16 rows of its tile; products through mma.sync m16n8k16 (bf16 in, fp32 accumulate).
     forward  one CTA per (batch, q head, q tile): S = Q K^T, online softmax in fp32 registers, P rounded to
              bf16, O += P V in fp32, out = O / l rounded once, lse = m + log l in fp32.
     backward D_i = dout_i . out_i (kernels_cuda_attention.cu's delta kernel), then
              dkv: one CTA per (batch, kv head, kv tile) over the group's query heads in head order and their
                   q tiles in order: dV += P^T dO, dK += dS^T Q (P, dS recomputed, rounded to bf16);
              dq:  one CTA per (batch, q head, q tile) over its kv tiles in order: dQ += dS K.
   Every output element has one owner (one thread's register) adding in a fixed order: no atomics, the same
   bits on every run. */
#pragma once

#include "atp/kernels.h"
#include "kernels_cuda.h"

namespace atp::kcuda::flash {

/// Whether the flash kernels take this call: head_dim 64, 96 or 128, and 16-byte aligned rows (every
/// pointer and every row stride a multiple of 8 elements).
bool supports(const AttentionDims &a, std::initializer_list<const void *> pointers);

Status forward(cudaStream_t st, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
               const AttentionDims &a);

/// delta: D_i = dout_i . out_i, [batch, q_heads, seq] like lse.
Status backward(cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                const bf16 *v, const float *lse, const float *delta, const AttentionDims &a);

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

/// A tile of kTile rows of D bf16 in shared memory, rows padded.
template <int D> struct SmemTile { bf16 e[kTile][D + kPad]; };

__device__ __forceinline__ std::uint32_t ld32(const bf16 *p) { return *reinterpret_cast<const std::uint32_t *>(p); }

__device__ __forceinline__ std::uint32_t pack2(bf16 lo, bf16 hi) {
  return std::uint32_t(__bfloat16_as_ushort(lo)) | (std::uint32_t(__bfloat16_as_ushort(hi)) << 16);
}

/// Two floats rounded to bf16 (to nearest even) in one register, lo in the low half (the lower column).
__device__ __forceinline__ std::uint32_t pack_f32(float lo, float hi) {
  return pack2(__float2bfloat16_rn(lo), __float2bfloat16_rn(hi));
}

/// c += a b for a 16x16 row-major bf16 A, a 16x8 column-major bf16 B, a 16x8 fp32 C (PTX ISA's m16n8k16
/// fragment layouts: lane = 4 g + t holds A rows g, g+8, columns 2t, 2t+1, 2t+8, 2t+9; B column g, rows
/// 2t, 2t+1, 2t+8, 2t+9; C rows g, g+8, columns 2t, 2t+1).
__device__ __forceinline__ void mma(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ int lane_g() { return int(threadIdx.x % 32) / 4; }
__device__ __forceinline__ int lane_t() { return int(threadIdx.x % 4); }

/// The A fragment of rows r0.., columns k0.. of a row-major smem tile.
template <int D> __device__ __forceinline__ void load_a(std::uint32_t (&a)[4], const SmemTile<D> &s, int r0, int k0) {
  const int g = lane_g(), t = lane_t();
  a[0] = ld32(&s.e[r0 + g][k0 + 2 * t]);
  a[1] = ld32(&s.e[r0 + g + 8][k0 + 2 * t]);
  a[2] = ld32(&s.e[r0 + g][k0 + 2 * t + 8]);
  a[3] = ld32(&s.e[r0 + g + 8][k0 + 2 * t + 8]);
}

/// The B fragment B[k][n] = s[n0 + n][k0 + k] (B^T stored row-major: K for Q K^T).
template <int D>
__device__ __forceinline__ void load_b_rows(std::uint32_t &b0, std::uint32_t &b1, const SmemTile<D> &s, int n0,
                                            int k0) {
  const int g = lane_g(), t = lane_t();
  b0 = ld32(&s.e[n0 + g][k0 + 2 * t]);
  b1 = ld32(&s.e[n0 + g][k0 + 2 * t + 8]);
}

/// The B fragment B[k][n] = s[k0 + k][n0 + n] (B stored row-major: V for P V).
template <int D>
__device__ __forceinline__ void load_b_cols(std::uint32_t &b0, std::uint32_t &b1, const SmemTile<D> &s, int k0,
                                            int n0) {
  const int g = lane_g(), t = lane_t();
  b0 = pack2(s.e[k0 + 2 * t][n0 + g], s.e[k0 + 2 * t + 1][n0 + g]);
  b1 = pack2(s.e[k0 + 2 * t + 8][n0 + g], s.e[k0 + 2 * t + 9][n0 + g]);
}

/// Rows row0..row0+kTile-1 (of a sequence; rows >= seq read as zeros) of one head's D columns, with 16-byte
/// loads by the whole CTA. src points at row 0, column 0 of the head.
template <int D>
__device__ __forceinline__ void load_tile(SmemTile<D> &s, const bf16 *src, i64 stride, i64 row0, i64 seq) {
  constexpr int kChunks = D / 8;
  for (int c = int(threadIdx.x); c < kTile * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (row0 + r < seq)
      v = *reinterpret_cast<const uint4 *>(src + (row0 + r) * stride + col);
    *reinterpret_cast<uint4 *>(&s.e[r][col]) = v;
  }
}

Params params_of(const AttentionDims &a);

/// Whether query i attends key j.
__device__ __forceinline__ bool attends(i64 i, i64 j, i64 seq, i64 window) {
  return j <= i && i < seq && (window <= 0 || i - j < window);
}

} // namespace atp::kcuda::flash
