/* kernels_cuda_linear.cu - GEMM and the linear layer, forward and backward, on the GPU (kernels.h).

   F32: every product is one cublasGemmEx in fp32 with CUBLAS_COMPUTE_32F_PEDANTIC (the handle is in pedantic
   math mode too: no TF32), which cuBLAS documents as bitwise reproducible for a given toolkit, GPU model and
   shape. cuBLAS is column-major: the row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T,
   so A and B swap places and keep their own transposes. As on the CPU: y = x w^T with the bias copied into
   y first (beta 1), dx = dy w and dw = dy^T x (beta 0, or 1 for Write::Accumulate).

   BF16: the same products through LtMatmul (cuBLASLt, fp32 accumulation, one rounding to bf16; the mapping
   is kernels_cuda_lt.cu's), and the forward bias is cuBLASLt's bias epilogue (no broadcast pass).

   db (=|+=) the column sums of dy, for both, through column_sums (fixed row chunks, then the chunks in
   order, in double, one rounding). cuBLASLt's CUBLASLT_EPILOGUE_BGRADB would fold db into the dw product
   (our dy is its B, the sum runs over k = rows), but it only OVERWRITES its output, while kernels.h may
   accumulate db: that would need a scratch vector and an add (two bf16 roundings instead of one), and
   cuBLASLt documents no summation order for it. db exists only for biased layers (Qwen2's qkv) and costs
   one read of dy. */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"
#include "kernels_cuda_reduce.cuh"

#include <type_traits>

namespace atp::kcuda {

namespace {

Status gemm_rm(const Gemms &g, bool ta, bool tb, i64 m, i64 n, i64 k, float alpha, const float *a, i64 lda,
               const float *b, i64 ldb, float beta, float *c, i64 ldc, const float * /*bias: F32 copies it first*/) {
  ATP_CUBLAS_TRY(cublasGemmEx(g.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m),
                              int(k), &alpha, b, CUDA_R_32F, int(ldb), a, CUDA_R_32F, int(lda), &beta, c, CUDA_R_32F,
                              int(ldc), CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
  return {};
}

Status gemm_rm(const Gemms &g, bool ta, bool tb, i64 m, i64 n, i64 k, float alpha, const bf16 *a, i64 lda,
               const bf16 *b, i64 ldb, float beta, bf16 *c, i64 ldc, const bf16 *bias) {
  LtProduct p;
  p.trans_a = ta, p.trans_b = tb, p.m = m, p.n = n, p.k = k, p.lda = lda, p.ldb = ldb, p.ldc = ldc;
  p.alpha = alpha, p.beta = beta, p.a = a, p.b = b, p.c = c, p.bias = bias;
  return g.lt->run(p);
}

__global__ void broadcast_bias(float *y, const float *bias, i64 rows, i64 out) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < rows * out; i += i64(gridDim.x) * blockDim.x)
    y[i] = bias[i % out];
}

/// dy itself, for db's column sums.
template <class T> struct DbTerm {
  const T *dy;
  i64 out;
  __device__ double operator()(i64 t, i64 o) const { return double(to_f32(dy[t * out + o])); }
};

} // namespace

Status gemm(const Gemms &g, const GemmArgs &a, const float *pa, const float *pb, float *pc) {
  return gemm_rm(g, a.trans_a, a.trans_b, a.m, a.n, a.k, float(a.alpha), pa, a.lda, pb, a.ldb, float(a.beta), pc, a.ldc,
                 nullptr);
}

Status gemm(const Gemms &g, const GemmArgs &a, const bf16 *pa, const bf16 *pb, bf16 *pc) {
  return gemm_rm(g, a.trans_a, a.trans_b, a.m, a.n, a.k, float(a.alpha), pa, a.lda, pb, a.ldb, float(a.beta), pc, a.ldc,
                 nullptr);
}

template <class T>
Status linear_forward(const Gemms &g, T *y, const T *x, const T *w, const T *bias, i64 rows, i64 in, i64 out) {
  if constexpr (std::is_same_v<T, float>) {
    float beta = 0.0f;
    if (bias) {
      broadcast_bias<<<blocks_for(rows * out), kBlock, 0, g.stream>>>(y, bias, rows, out);
      ATP_CUDA_TRY(cudaGetLastError());
      beta = 1.0f;
    }
    return gemm_rm(g, false, true, rows, out, in, 1.0f, x, in, w, in, beta, y, out, nullptr);
  } else {
    return gemm_rm(g, false, true, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out, bias); // bias: the epilogue
  }
}

template <class T>
Status linear_backward(const Gemms &g, T *dx, Write mode, T *dw, T *db, Write dw_mode, const T *dy, const T *x,
                       const T *w, i64 rows, i64 in, i64 out) {
  const bool add = dw_mode == Write::Accumulate;
  if (dx)
    ATP_TRY(gemm_rm(g, false, false, rows, in, out, 1.0f, dy, out, w, in, mode == Write::Accumulate ? 1.0f : 0.0f, dx,
                    in, static_cast<const T *>(nullptr)));
  if (dw)
    ATP_TRY(gemm_rm(g, true, false, out, in, rows, 1.0f, dy, out, x, in, add ? 1.0f : 0.0f, dw, in,
                    static_cast<const T *>(nullptr)));
  if (db)
    ATP_TRY(column_sums(g.stream, db, dw_mode, rows, out, DbTerm<T>{dy, out}));
  return {};
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template Status linear_forward<T>(const Gemms &, T *, const T *, const T *, const T *, i64, i64, i64);               \
  template Status linear_backward<T>(const Gemms &, T *, Write, T *, T *, Write, const T *, const T *, const T *, i64, \
                                     i64, i64);
ATP_KCUDA_FOR_EACH_ELEMENT(ATP_INSTANTIATE)
#undef ATP_INSTANTIATE

} // namespace atp::kcuda
