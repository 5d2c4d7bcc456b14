/* kernels_cuda_linear.cu - GEMM and the linear layer, forward and backward, on the GPU (kernels.h).

   Every product is one cublasGemmEx in fp32 with CUBLAS_COMPUTE_32F_PEDANTIC (the handle is in pedantic
   math mode too: no TF32), which cuBLAS documents as bitwise reproducible for a given toolkit, GPU model and
   shape. cuBLAS is column-major: the row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T,
   so A and B swap places and keep their own transposes. As on the CPU: y = x w^T with the bias copied into
   y first (beta 1), dx = dy w (beta 0, or 1 for Write::Accumulate), dw += dy^T x (beta 1), and db += the
   column sums of dy (column_sums_add: fixed row chunks, then the chunks in order, in double). */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_reduce.cuh"

namespace atp::kcuda {

namespace {

Status gemm_rm(cublasHandle_t h, bool ta, bool tb, i64 m, i64 n, i64 k, float alpha, const float *a, i64 lda,
               const float *b, i64 ldb, float beta, float *c, i64 ldc) {
  ATP_CUBLAS_TRY(cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k),
                              &alpha, b, CUDA_R_32F, int(ldb), a, CUDA_R_32F, int(lda), &beta, c, CUDA_R_32F, int(ldc),
                              CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
  return {};
}

__global__ void broadcast_bias(float *y, const float *bias, i64 rows, i64 out) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < rows * out; i += i64(gridDim.x) * blockDim.x)
    y[i] = bias[i % out];
}

/// dy itself, for db's column sums.
struct DbTerm {
  const float *dy;
  i64 out;
  __device__ double operator()(i64 t, i64 o) const { return double(dy[t * out + o]); }
};

} // namespace

Status gemm(cublasHandle_t h, const GemmArgs &g, const float *a, const float *b, float *c) {
  return gemm_rm(h, g.trans_a, g.trans_b, g.m, g.n, g.k, float(g.alpha), a, g.lda, b, g.ldb, float(g.beta), c, g.ldc);
}

Status linear_forward(cublasHandle_t h, cudaStream_t st, float *y, const float *x, const float *w, const float *bias,
                      i64 rows, i64 in, i64 out) {
  float beta = 0.0f;
  if (bias) {
    broadcast_bias<<<blocks_for(rows * out), kBlock, 0, st>>>(y, bias, rows, out);
    ATP_CUDA_TRY(cudaGetLastError());
    beta = 1.0f;
  }
  return gemm_rm(h, false, true, rows, out, in, 1.0f, x, in, w, in, beta, y, out);
}

Status linear_backward(cublasHandle_t h, cudaStream_t st, float *dx, Write mode, float *dw, float *db, const float *dy,
                       const float *x, const float *w, i64 rows, i64 in, i64 out) {
  if (dx)
    ATP_TRY(
        gemm_rm(h, false, false, rows, in, out, 1.0f, dy, out, w, in, mode == Write::Accumulate ? 1.0f : 0.0f, dx, in));
  if (dw)
    ATP_TRY(gemm_rm(h, true, false, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, in));
  if (db)
    ATP_TRY(column_sums_add(st, db, rows, out, DbTerm{dy, out}));
  return {};
}

} // namespace atp::kcuda
