/* kernels_cuda.h - the CUDA kernels of kernels.h (F32 and BF16), as launchers over device pointers on one stream.

   kernels_cuda.cu wraps them in the Kernels interface after kernels_check.h has accepted the arguments, so
   these functions assume valid dimensions. Each family lives in its own kernels_cuda_<family>.cu, as the
   CPU backend's do. Every launcher is a template over the element type T of the tensors, float or bf16
   (__nv_bfloat16), instantiated for both in its .cu: the kernels load T, compute in fp32 (or fp64 where the
   F32 kernels do) and round once to T at the store (kernels_cuda_elem.cuh), so F32 keeps its exact bits.
   Saved statistics (rstd, lse) are float for both. GEMMs: F32 through cuBLAS in pedantic fp32, BF16
   through cuBLASLt (LtMatmul, kernels_cuda_lt.cu). Determinism: no atomics in any sum; every reduction has
   one owner per output element (a thread, a warp or a block) that adds its terms in a fixed order, and
   block reductions use a fixed tree over a fixed block size, so the bits depend on the shapes only. Calls
   that must check device data before writing (token ids, targets) synchronize the stream to read the
   answer. */
#pragma once

#include "atp/kernels.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

namespace atp::kcuda {

using i64 = std::int64_t;
using bf16 = __nv_bfloat16;

/// Instantiates MACRO for both element types (at the end of each kernels_cuda_<family>.cu).
#define ATP_KCUDA_FOR_EACH_ELEMENT(MACRO) MACRO(float) MACRO(::atp::kcuda::bf16)

/// Threads per block of the row kernels (a power of two: the block reductions assume it).
constexpr int kBlock = 256;

/// Blocks for `n` threads' work in a grid-stride loop (capped; the loops cover the rest).
inline unsigned blocks_for(i64 n) {
  const i64 b = (n + kBlock - 1) / kBlock;
  return unsigned(b < 1 ? 1 : (b > 65535 * 4 ? 65535 * 4 : b));
}

/// The error of a failed cuBLAS or cuBLASLt call, naming it.
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

// ------------------------------------------------------------------------------------------ cuBLASLt (BF16)

/// One row-major bf16 product D = alpha op(A) op(B) + beta C (+ bias[n] on every row when bias is set), C and
/// D the same buffer, shapes and strides as GemmArgs'.
struct LtProduct {
  bool trans_a = false, trans_b = false;
  i64 m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  const bf16 *a = nullptr, *b = nullptr, *bias = nullptr;
  bf16 *c = nullptr;
};

/// bf16 products through cuBLASLt (kernels_cuda_lt.cu): bf16 A, B, C, fp32 compute and scale, one workspace
/// allocated at creation, and a plan (descriptors + the heuristic's algorithm) cached per distinct
/// (shape, transposes, strides, beta = 0 or not, bias epilogue, pointer alignments): the model's shapes are
/// constants, so the cache holds a few dozen plans and the heuristic runs once per plan.
class LtMatmul {
public:
  static Result<std::unique_ptr<LtMatmul>> create(cudaStream_t stream);
  ~LtMatmul();
  LtMatmul(const LtMatmul &) = delete;
  LtMatmul &operator=(const LtMatmul &) = delete;

  Status run(const LtProduct &p);
  /// The number of cached plans (for tests).
  std::size_t plans() const { return plans_.size(); }

  /// Workspace bytes (the heuristic may pick algorithms that use up to this much).
  static constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;

private:
  /// What a plan depends on (alignments: of the pointers, in bytes, at most 256).
  struct Key {
    bool trans_a, trans_b;
    i64 m, n, k, lda, ldb, ldc;
    bool beta_zero, bias;
    unsigned align_a, align_b, align_c, align_bias;
    auto fields() const {
      return std::tie(trans_a, trans_b, m, n, k, lda, ldb, ldc, beta_zero, bias, align_a, align_b, align_c, align_bias);
    }
    bool operator<(const Key &o) const { return fields() < o.fields(); }
  };
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  LtMatmul(cudaStream_t stream, cublasLtHandle_t handle, void *workspace)
      : stream_(stream), handle_(handle), workspace_(workspace) {}
  Result<const Plan *> plan_for(const LtProduct &p);
  static void destroy(Plan &plan);

  cudaStream_t stream_;
  cublasLtHandle_t handle_;
  void *workspace_;
  std::map<Key, Plan> plans_;
};

/// The GEMM engine of one Kernels object: a cuBLAS handle (F32) or a cuBLASLt plan cache (BF16).
struct Gemms {
  cublasHandle_t blas = nullptr;
  LtMatmul *lt = nullptr;
  cudaStream_t stream = nullptr;
};

// kernels_cuda_linear.cu (F32: fp32 cuBLAS, pedantic math, no TF32; BF16: cuBLASLt, fp32 accumulation)
Status gemm(const Gemms &g, const GemmArgs &a, const float *pa, const float *pb, float *pc);
Status gemm(const Gemms &g, const GemmArgs &a, const bf16 *pa, const bf16 *pb, bf16 *pc);
template <class T>
Status linear_forward(const Gemms &g, T *y, const T *x, const T *w, const T *bias, i64 rows, i64 in, i64 out);
template <class T>
Status linear_backward(const Gemms &g, T *dx, Write mode, T *dw, T *db, Write dw_mode, const T *dy, const T *x,
                       const T *w, i64 rows, i64 in, i64 out);

// kernels_cuda_embedding.cu
template <class T>
Status embedding_forward(cudaStream_t st, T *out, const T *table, const std::int32_t *ids, i64 rows, i64 hidden,
                         const VocabRange &r);
template <class T>
Status embedding_backward(cudaStream_t st, T *dtable, const T *dout, const std::int32_t *ids, i64 rows, i64 hidden,
                          const VocabRange &r);

// kernels_cuda_norm.cu
template <class T>
Status rmsnorm_forward(cudaStream_t st, T *y, float *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps);
/// sum = a + b (as add), then rmsnorm_forward of sum: one kernel where the rows fit the vectorized forward.
template <class T>
Status add_rmsnorm_forward(cudaStream_t st, T *sum, T *y, float *rstd, const T *a, const T *b, const T *w, i64 rows,
                           i64 hidden, double eps);
template <class T>
Status rmsnorm_backward(cudaStream_t st, T *dx, Write mode, T *dw, Write dw_mode, const T *dy, const T *x, const T *w,
                        const float *rstd, i64 rows, i64 hidden);

// kernels_cuda_elementwise.cu (rope, swiglu, add, scale)
template <class T> Status rope_table(cudaStream_t st, T *table, const RopeConfig &cfg, i64 head_dim, i64 positions);
template <class T> Status rope_apply(cudaStream_t st, T *x, const RopeDims &d, const T *table, bool transpose);
template <class T>
Status swiglu_forward(cudaStream_t st, T *out, const T *gate, const T *up, i64 rows, i64 ffn, i64 in_stride);
template <class T>
Status swiglu_backward(cudaStream_t st, T *dgate, T *dup, const T *dout, const T *gate, const T *up, i64 rows, i64 ffn,
                       i64 in_stride);
template <class T> Status add(cudaStream_t st, T *out, const T *a, const T *b, i64 n);
template <class T> Status scale(cudaStream_t st, T *x, double alpha, i64 n);

// kernels_cuda_attention.cu
template <class T>
Status attention_forward(cudaStream_t st, T *out, float *lse, const T *q, const T *k, const T *v,
                         const AttentionDims &d);
template <class T>
Status attention_backward(cudaStream_t st, T *dq, T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v,
                          const T *out, const float *lse, const AttentionDims &d);

// kernels_cuda_loss.cu (synchronizes: the loss comes back to the host)
template <class T>
Result<CrossEntropySum> cross_entropy(cudaStream_t st, T *logits, const std::int32_t *targets,
                                      const CrossEntropyArgs &a);

} // namespace atp::kcuda
