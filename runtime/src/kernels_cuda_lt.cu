/* kernels_cuda_lt.cu - bf16 products through cuBLASLt with a per-shape plan cache (LtMatmul, kernels_cuda.h).

   Row-major to cuBLASLt's column-major: a row-major C[m, n] = op(A) op(B) is the column-major
   C^T[n, m] = op(B)^T op(A)^T, so cuBLASLt's "A" is our B and its "B" our A, each keeping its own transpose,
   and D is [n, m] with leading dimension ldc. The bias epilogue (CUBLASLT_EPILOGUE_BIAS) adds a vector over
   D's rows, i.e. our n: bias[o] on every row of y = x w^T, added in fp32 before the one rounding to bf16.

   Types: A, B, C, D and the bias bf16; CUBLAS_COMPUTE_32F, fp32 alpha and beta. C and D are the same buffer
   (beta 1 accumulates: dw += dy^T x).

   Plans: a product's descriptors and algorithm depend on its shape, transposes, strides, beta = 0 or not,
   epilogue and pointer alignments (cuBLASLt picks algorithms assuming the alignments it is told; we tell it
   the actual ones, up to 256 bytes), so each distinct combination gets one cublasLtMatmulAlgoGetHeuristic
   call the first time and is cached. The model's shapes are constants: the cache stays small.

   Determinism: cuBLAS documents bitwise reproducible results for a given toolkit, GPU architecture and SM
   count, atomics aside; cuBLASLt has no atomics mode of its own, but the heuristic may choose a split-K
   algorithm whose partial sums are combined by one of cublasLtReductionScheme_t's schemes. We allow only
   CUBLASLT_REDUCTION_SCHEME_NONE and _COMPUTE_TYPE (mask CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK):
   COMPUTE_TYPE keeps the partials in fp32 in the workspace and adds them in a separate step (a fixed order,
   and still one rounding to bf16); INPLACE and OUTPUT_TYPE would add bf16-rounded partials (more than one
   rounding), so they are excluded. With the algorithm fixed per plan, the same inputs give the same bytes;
   kernels_cuda_test checks it. */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"

#include <cstdint>
#include <string>

namespace atp::kcuda {

namespace {

/// The largest power of two (at most 256) dividing the address: the alignment cuBLASLt may assume.
unsigned alignment_of(const void *p) {
  const auto u = reinterpret_cast<std::uintptr_t>(p);
  unsigned a = 256;
  while (a > 1 && (u % a) != 0)
    a /= 2;
  return a;
}

template <class V> Status set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const V &v) {
  ATP_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof v));
  return {};
}

template <class V>
Status set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, const V &v) {
  ATP_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof v));
  return {};
}

/// A column-major bf16 layout of rows x cols with leading dimension ld.
Status make_layout(cublasLtMatrixLayout_t *out, i64 rows, i64 cols, i64 ld) {
  ATP_CUBLAS_TRY(cublasLtMatrixLayoutCreate(out, CUDA_R_16BF, std::uint64_t(rows), std::uint64_t(cols), ld));
  return {};
}

} // namespace

void LtMatmul::destroy(Plan &plan) {
  for (cublasLtMatrixLayout_t l : {plan.a, plan.b, plan.c})
    if (l)
      cublasLtMatrixLayoutDestroy(l);
  if (plan.desc)
    cublasLtMatmulDescDestroy(plan.desc);
}

Result<std::unique_ptr<LtMatmul>> LtMatmul::create(cudaStream_t stream) {
  cublasLtHandle_t handle = nullptr;
  ATP_CUBLAS_TRY(cublasLtCreate(&handle));
  void *workspace = nullptr;
  const cudaError_t e = cudaMallocAsync(&workspace, kWorkspaceBytes, stream);
  if (e != cudaSuccess) {
    cublasLtDestroy(handle);
    ATP_CUDA_TRY(e);
  }
  return std::unique_ptr<LtMatmul>(new LtMatmul(stream, handle, workspace));
}

LtMatmul::~LtMatmul() {
  for (auto &entry : plans_)
    destroy(entry.second);
  cudaFreeAsync(workspace_, stream_);
  cublasLtDestroy(handle_);
}

Result<const LtMatmul::Plan *> LtMatmul::plan_for(const LtProduct &p) {
  const Key key{p.trans_a,
                p.trans_b,
                p.m,
                p.n,
                p.k,
                p.lda,
                p.ldb,
                p.ldc,
                p.beta == 0.0f,
                p.bias != nullptr,
                alignment_of(p.a),
                alignment_of(p.b),
                alignment_of(p.c),
                p.bias ? alignment_of(p.bias) : 0u};
  if (auto it = plans_.find(key); it != plans_.end())
    return &it->second;

  Plan plan;
  cublasLtMatmulPreference_t pref = nullptr;
  Status st = [&]() -> Status {
    ATP_CUBLAS_TRY(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    // cuBLASLt's A is our B, its B our A (see the top of this file)
    const cublasOperation_t op_a = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    ATP_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, std::int32_t(op_a)));
    ATP_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, std::int32_t(op_b)));
    if (p.bias) {
      ATP_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, std::uint32_t(CUBLASLT_EPILOGUE_BIAS)));
      ATP_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, std::int32_t(CUDA_R_16BF)));
      ATP_TRY(set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void *>(p.bias)));
    }
    // stored shapes, column-major: our B is [k, n] (or [n, k] transposed) row-major = [n, k] (or [k, n]) here
    ATP_TRY(make_layout(&plan.a, p.trans_b ? p.k : p.n, p.trans_b ? p.n : p.k, p.ldb));
    ATP_TRY(make_layout(&plan.b, p.trans_a ? p.m : p.k, p.trans_a ? p.k : p.m, p.lda));
    ATP_TRY(make_layout(&plan.c, p.n, p.m, p.ldc));

    ATP_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
    ATP_TRY(set_pref(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, std::uint64_t(kWorkspaceBytes)));
    ATP_TRY(set_pref(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                     std::uint32_t(CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE))); // and NONE: see the top of this file
    // the alignments we have, so that the algorithm never assumes more (cuBLASLt's A is our B)
    ATP_TRY(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, std::uint32_t(key.align_b)));
    ATP_TRY(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, std::uint32_t(key.align_a)));
    ATP_TRY(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, std::uint32_t(key.align_c)));
    ATP_TRY(set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, std::uint32_t(key.align_c)));

    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    ATP_CUBLAS_TRY(
        cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &found));
    if (found < 1 || result.state != CUBLAS_STATUS_SUCCESS)
      return error("cuBLASLt has no algorithm for the bf16 product m " + std::to_string(p.m) + " n " +
                   std::to_string(p.n) + " k " + std::to_string(p.k) + " (lda " + std::to_string(p.lda) + ", ldb " +
                   std::to_string(p.ldb) + ", ldc " + std::to_string(p.ldc) + ")");
    plan.algo = result.algo;
    return {};
  }();
  if (pref)
    cublasLtMatmulPreferenceDestroy(pref);
  if (!st.ok()) {
    destroy(plan);
    return st;
  }
  return &plans_.emplace(key, plan).first->second;
}

Status LtMatmul::run(const LtProduct &p) {
  ATP_ASSIGN_OR_RETURN(const Plan *plan, plan_for(p));
  if (p.bias) // the pointer is the call's; the plan was made for its alignment
    ATP_TRY(set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void *>(p.bias)));
  ATP_CUBLAS_TRY(cublasLtMatmul(handle_, plan->desc, &p.alpha, p.b, plan->a, p.a, plan->b, &p.beta, p.c, plan->c, p.c,
                                plan->c, &plan->algo, workspace_, kWorkspaceBytes, stream_));
  return {};
}

} // namespace atp::kcuda
