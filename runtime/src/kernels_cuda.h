/* kernels_cuda.h - the CUDA kernels of kernels.h (F32), as launchers over device pointers on one stream.

   kernels_cuda.cu wraps them in the Kernels interface after kernels_check.h has accepted the arguments, so
   these functions assume valid dimensions. Each family lives in its own kernels_cuda_<family>.cu, as the
   CPU backend's do. Determinism: no atomics in any sum; every reduction has one owner per output element
   (a thread, a warp or a block) that adds its terms in a fixed order, and block reductions use a fixed
   tree over a fixed block size, so the bits depend on the shapes only. Calls that must check device data
   before writing (token ids, targets) synchronize the stream to read the answer. */
#pragma once

#include "atp/kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace atp::kcuda {

using i64 = std::int64_t;

/// Threads per block of the row kernels (a power of two: the block reductions assume it).
constexpr int kBlock = 256;

/// Blocks for `n` threads' work in a grid-stride loop (capped; the loops cover the rest).
inline unsigned blocks_for(i64 n) {
  const i64 b = (n + kBlock - 1) / kBlock;
  return unsigned(b < 1 ? 1 : (b > 65535 * 4 ? 65535 * 4 : b));
}

/// The error of a failed cuBLAS call, naming it.
Status cublas_status(cublasStatus_t s, const char *expr);
#define ATP_CUBLAS_TRY(expr)                                                                                           \
  do {                                                                                                                 \
    const cublasStatus_t atp_cublas_s_ = (expr);                                                                       \
    if (atp_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                                        \
      return ::atp::kcuda::cublas_status(atp_cublas_s_, #expr);                                                        \
  } while (0)

/// Finds the first row t of `rows` int32 values whose value v is bad (v < lo or v >= hi, and v != skip when
/// use_skip): returns -1 when none, else the row, and its value in *value. Synchronizes `stream`.
Result<i64> first_bad_index(const std::int32_t *values, i64 rows, i64 lo, i64 hi, bool use_skip, std::int32_t skip,
                            std::int32_t *value, cudaStream_t stream);

// kernels_cuda_linear.cu (fp32 cuBLAS, pedantic math: no TF32)
Status gemm(cublasHandle_t h, const GemmArgs &g, const float *a, const float *b, float *c);
Status linear_forward(cublasHandle_t h, cudaStream_t st, float *y, const float *x, const float *w, const float *bias,
                      i64 rows, i64 in, i64 out);
Status linear_backward(cublasHandle_t h, cudaStream_t st, float *dx, Write mode, float *dw, float *db, const float *dy,
                       const float *x, const float *w, i64 rows, i64 in, i64 out);

// kernels_cuda_embedding.cu
Status embedding_forward(cudaStream_t st, float *out, const float *table, const std::int32_t *ids, i64 rows, i64 hidden,
                         const VocabRange &r);
Status embedding_backward(cudaStream_t st, float *dtable, const float *dout, const std::int32_t *ids, i64 rows,
                          i64 hidden, const VocabRange &r);

// kernels_cuda_norm.cu
Status rmsnorm_forward(cudaStream_t st, float *y, float *rstd, const float *x, const float *w, i64 rows, i64 hidden,
                       double eps);
Status rmsnorm_backward(cudaStream_t st, float *dx, Write mode, float *dw, const float *dy, const float *x,
                        const float *w, const float *rstd, i64 rows, i64 hidden);

// kernels_cuda_elementwise.cu (rope, swiglu, add, scale)
Status rope_table(cudaStream_t st, float *table, const RopeConfig &cfg, i64 head_dim, i64 positions);
Status rope_apply(cudaStream_t st, float *x, const RopeDims &d, const float *table, bool transpose);
Status swiglu_forward(cudaStream_t st, float *out, const float *gate, const float *up, i64 rows, i64 ffn,
                      i64 in_stride);
Status swiglu_backward(cudaStream_t st, float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                       i64 rows, i64 ffn, i64 in_stride);
Status add(cudaStream_t st, float *out, const float *a, const float *b, i64 n);
Status scale(cudaStream_t st, float *x, double alpha, i64 n);

// kernels_cuda_attention.cu
Status attention_forward(cudaStream_t st, float *out, float *lse, const float *q, const float *k, const float *v,
                         const AttentionDims &d);
Status attention_backward(cudaStream_t st, float *dq, float *dk, float *dv, const float *dout, const float *q,
                          const float *k, const float *v, const float *out, const float *lse, const AttentionDims &d);

// kernels_cuda_loss.cu (synchronizes: the loss comes back to the host)
Result<CrossEntropySum> cross_entropy(cudaStream_t st, float *logits, const std::int32_t *targets,
                                      const CrossEntropyArgs &a);

} // namespace atp::kcuda
