/* kernels_cuda.cu - make_cuda_kernels: the Kernels interface over the CUDA launchers of kernels_cuda.h.

   CudaKernels<T> checks every call's arguments with the CPU backend's checks (kernels_check.h, the same words
   for the same bad call), then enqueues the work on its stream; T is the element type, float (F32) or bf16
   (BF16), and saved statistics are float for both. F32 owns one cuBLAS handle bound to the stream, in
   pedantic math mode (no TF32), so GEMMs stay close to the CPU's fp32 results and give the same bits on
   every run. BF16 owns an LtMatmul (cuBLASLt, fp32 accumulation, a cached plan per product shape and a
   32 MiB workspace). Built with AUTOTPC_ENABLE_CUDA (runtime/kernels.cmake); otherwise kernels_cuda_stub.cpp
   defines make_cuda_kernels. */
#include "atp/check_cuda.h"
#include "kernels_check.h"
#include "kernels_cuda.h"
#include "kernels_cuda_sdpa.h"

#include <memory>
#include <string>
#include <type_traits>

namespace atp {

namespace kcuda {

Status cublas_status(cublasStatus_t s, const char *expr) {
  return error(std::string("cuBLAS call failed: '") + expr + "': " + cublasGetStatusName(s) + ": " +
               cublasGetStatusString(s));
}

namespace {

__global__ void first_bad_kernel(const std::int32_t *values, i64 rows, i64 lo, i64 hi, bool use_skip, std::int32_t skip,
                                 unsigned long long *first) {
  for (i64 t = blockIdx.x * i64(blockDim.x) + threadIdx.x; t < rows; t += i64(gridDim.x) * blockDim.x) {
    const std::int32_t v = values[t];
    if ((v < lo || v >= hi) && !(use_skip && v == skip))
      atomicMin(first, static_cast<unsigned long long>(t)); // the minimum: the same answer in any order
  }
}

} // namespace

Result<i64> first_bad_index(const std::int32_t *values, i64 rows, i64 lo, i64 hi, bool use_skip, std::int32_t skip,
                            std::int32_t *value, cudaStream_t stream) {
  unsigned long long *dev = nullptr;
  ATP_CUDA_TRY(cudaMallocAsync(&dev, sizeof(unsigned long long), stream));
  unsigned long long first = ~0ull;
  Status st = [&]() -> Status {
    ATP_CUDA_TRY(cudaMemsetAsync(dev, 0xff, sizeof(unsigned long long), stream));
    first_bad_kernel<<<blocks_for(rows), kBlock, 0, stream>>>(values, rows, lo, hi, use_skip, skip, dev);
    ATP_CUDA_TRY(cudaGetLastError());
    ATP_CUDA_TRY(cudaMemcpyAsync(&first, dev, sizeof first, cudaMemcpyDeviceToHost, stream));
    ATP_CUDA_TRY(cudaStreamSynchronize(stream));
    if (first != ~0ull) {
      ATP_CUDA_TRY(cudaMemcpyAsync(value, values + first, sizeof *value, cudaMemcpyDeviceToHost, stream));
      ATP_CUDA_TRY(cudaStreamSynchronize(stream));
    }
    return {};
  }();
  const cudaError_t freed = cudaFreeAsync(dev, stream);
  ATP_TRY(std::move(st));
  ATP_CUDA_TRY(freed);
  return first == ~0ull ? i64(-1) : i64(first);
}

} // namespace kcuda

namespace {

/// The GEMM engine of a Kernels object, owned: a cuBLAS handle (F32) or a cuBLASLt plan cache (BF16).
struct OwnedGemms {
  cublasHandle_t blas = nullptr;
  std::unique_ptr<kcuda::LtMatmul> lt;
  OwnedGemms() = default;
  OwnedGemms(OwnedGemms &&o) noexcept : blas(o.blas), lt(std::move(o.lt)) { o.blas = nullptr; }
  OwnedGemms(const OwnedGemms &) = delete;
  OwnedGemms &operator=(const OwnedGemms &) = delete;
  ~OwnedGemms() {
    if (blas)
      cublasDestroy(blas);
  }
};

template <class T> class CudaKernels final : public Kernels {
public:
  CudaKernels(cudaStream_t stream, OwnedGemms gemms) : stream_(stream), owned_(std::move(gemms)) {
    gemms_.blas = owned_.blas, gemms_.lt = owned_.lt.get(), gemms_.stream = stream;
  }
  CudaKernels(const CudaKernels &) = delete;
  CudaKernels &operator=(const CudaKernels &) = delete;

  const char *name() const override { return "cuda"; }
  DType dtype() const override { return std::is_same_v<T, float> ? DType::F32 : DType::BF16; }
  DType stat_dtype() const override { return DType::F32; }

  Status gemm(const GemmArgs &g, const void *a, const void *b, void *c) override {
    ATP_TRY(kcheck::gemm(g, a, b, c));
    return kcuda::gemm(gemms_, g, as(a), as(b), as(c));
  }

  Status linear_forward(void *y, const void *x, const void *w, const void *bias, std::int64_t rows, std::int64_t in,
                        std::int64_t out) override {
    ATP_TRY(kcheck::linear_forward(y, x, w, rows, in, out));
    for (std::int64_t v : {rows, in, out})
      ATP_TRY(kcheck::fits_int("linear_forward", "dimension", v));
    return kcuda::linear_forward(gemms_, as(y), as(x), as(w), as(bias), rows, in, out);
  }

  Status linear_backward(void *dx, Write dx_mode, void *dw, void *db, Write dw_mode, const void *dy, const void *x,
                         const void *w, std::int64_t rows, std::int64_t in, std::int64_t out) override {
    ATP_TRY(kcheck::linear_backward(dy, x, w, dx, dw, rows, in, out));
    for (std::int64_t v : {rows, in, out})
      ATP_TRY(kcheck::fits_int("linear_backward", "dimension", v));
    return kcuda::linear_backward(gemms_, as(dx), dx_mode, as(dw), as(db), dw_mode, as(dy), as(x), as(w), rows, in,
                                  out);
  }

  Status embedding_forward(void *out, const void *table, const std::int32_t *ids, std::int64_t rows,
                           std::int64_t hidden, const VocabRange &range) override {
    ATP_TRY(kcheck::embedding("embedding_forward", out, table, ids, rows, hidden, range));
    return kcuda::embedding_forward(stream_, as(out), as(table), ids, rows, hidden, range);
  }

  Status embedding_backward(void *dtable, const void *dout, const std::int32_t *ids, std::int64_t rows,
                            std::int64_t hidden, const VocabRange &range) override {
    ATP_TRY(kcheck::embedding("embedding_backward", dtable, dout, ids, rows, hidden, range));
    return kcuda::embedding_backward(stream_, as(dtable), as(dout), ids, rows, hidden, range);
  }

  Status rmsnorm_forward(void *y, void *rstd, const void *x, const void *w, std::int64_t rows, std::int64_t hidden,
                         double eps) override {
    ATP_TRY(kcheck::rmsnorm_forward(y, rstd, x, w, rows, hidden, eps));
    return kcuda::rmsnorm_forward(stream_, as(y), stat(rstd), as(x), as(w), rows, hidden, eps);
  }

  Status add_rmsnorm_forward(void *sum, void *y, void *rstd, const void *a, const void *b, const void *w,
                             std::int64_t rows, std::int64_t hidden, double eps) override {
    ATP_TRY(kcheck::rmsnorm_forward(y, rstd, sum, w, rows, hidden, eps));
    ATP_TRY(kcheck::elementwise("add_rmsnorm_forward", {sum, a, b}, rows * hidden));
    return kcuda::add_rmsnorm_forward(stream_, as(sum), as(y), stat(rstd), as(a), as(b), as(w), rows, hidden, eps);
  }

  Status rmsnorm_backward(void *dx, Write dx_mode, void *dw, Write dw_mode, const void *dy, const void *x,
                          const void *w, const void *rstd, std::int64_t rows, std::int64_t hidden) override {
    ATP_TRY(kcheck::rmsnorm_backward(dw, dy, x, w, rstd, rows, hidden));
    return kcuda::rmsnorm_backward(stream_, as(dx), dx_mode, as(dw), dw_mode, as(dy), as(x), as(w), stat(rstd), rows,
                                   hidden);
  }

  Status rope_table(void *table, const RopeConfig &cfg, std::int64_t head_dim, std::int64_t positions) override {
    ATP_TRY(kcheck::rope_table(table, head_dim, positions));
    return kcuda::rope_table(stream_, as(table), cfg, head_dim, positions).with_context("rope_table");
  }

  Status rope_forward(void *x, const RopeDims &dims, const void *table) override {
    ATP_TRY(kcheck::rope("rope_forward", x, dims, table));
    return kcuda::rope_apply(stream_, as(x), dims, as(table), false);
  }

  Status rope_backward(void *dx, const RopeDims &dims, const void *table) override {
    ATP_TRY(kcheck::rope("rope_backward", dx, dims, table));
    return kcuda::rope_apply(stream_, as(dx), dims, as(table), true);
  }

  Status swiglu_forward(void *out, const void *gate, const void *up, std::int64_t rows, std::int64_t ffn,
                        std::int64_t in_stride) override {
    ATP_TRY(kcheck::swiglu("swiglu_forward", out, gate, up, gate, up, rows, ffn, in_stride));
    return kcuda::swiglu_forward(stream_, as(out), as(gate), as(up), rows, ffn, in_stride);
  }

  Status swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up, std::int64_t rows,
                         std::int64_t ffn, std::int64_t in_stride) override {
    ATP_TRY(kcheck::swiglu("swiglu_backward", dgate, dup, dout, gate, up, rows, ffn, in_stride));
    return kcuda::swiglu_backward(stream_, as(dgate), as(dup), as(dout), as(gate), as(up), rows, ffn, in_stride);
  }

  Status attention_forward(void *out, void *lse, const void *q, const void *k, const void *v,
                           const AttentionDims &dims) override {
    ATP_TRY(kcheck::attention("attention_forward", dims, {out, lse, q, k, v}));
    return kcuda::attention_forward(stream_, as(out), stat(lse), as(q), as(k), as(v), dims);
  }

  Status attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k, const void *v,
                            const void *out, const void *lse, const AttentionDims &dims) override {
    ATP_TRY(kcheck::attention("attention_backward", dims, {dq, dk, dv, dout, q, k, v, out, lse}));
    return kcuda::attention_backward(stream_, as(dq), as(dk), as(dv), as(dout), as(q), as(k), as(v), as(out), stat(lse),
                                     dims);
  }

  Result<CrossEntropySum> cross_entropy(void *logits, const std::int32_t *targets,
                                        const CrossEntropyArgs &args) override {
    ATP_TRY(kcheck::cross_entropy(logits, targets, args));
    return kcuda::cross_entropy(stream_, as(logits), targets, args);
  }

  Status add(void *out, const void *a, const void *b, std::int64_t n) override {
    ATP_TRY(kcheck::elementwise("add", {out, a, b}, n));
    return kcuda::add(stream_, as(out), as(a), as(b), n);
  }

  Status scale(void *x, double alpha, std::int64_t n) override {
    ATP_TRY(kcheck::elementwise("scale", {x}, n));
    return kcuda::scale(stream_, as(x), alpha, n);
  }

  Status synchronize() override {
    ATP_CUDA_TRY(cudaStreamSynchronize(stream_));
    return {};
  }

private:
  static T *as(void *p) { return static_cast<T *>(p); }
  static const T *as(const void *p) { return static_cast<const T *>(p); }
  static float *stat(void *p) { return static_cast<float *>(p); }
  static const float *stat(const void *p) { return static_cast<const float *>(p); }

  cudaStream_t stream_;
  OwnedGemms owned_;
  kcuda::Gemms gemms_;
};

} // namespace

std::string cuda_attention_library(const AttentionDims &dims) { return kcuda::cudnn_sdpa::library(dims); }

Result<std::unique_ptr<Kernels>> make_cuda_kernels(DType dtype, void *stream) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    return error(std::string("make_cuda_kernels: dtype ") + dtype_name(dtype) +
                 " is not supported on CUDA (F32 or BF16)");
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  Status st = [&]() -> Status {
    int device = 0;
    ATP_CUDA_TRY(cudaGetDevice(&device));
    return {};
  }();
  if (!st.ok())
    return error("make_cuda_kernels: no usable CUDA device: " + st.message());
  OwnedGemms gemms;
  if (dtype == DType::BF16) {
    auto lt = kcuda::LtMatmul::create(cuda_stream);
    if (!lt.ok())
      return error("make_cuda_kernels: " + lt.status().message());
    gemms.lt = std::move(*lt);
    return std::unique_ptr<Kernels>(new CudaKernels<kcuda::bf16>(cuda_stream, std::move(gemms)));
  }
  st = [&]() -> Status {
    ATP_CUBLAS_TRY(cublasCreate(&gemms.blas));
    ATP_CUBLAS_TRY(cublasSetStream(gemms.blas, cuda_stream));
    // fp32 products in fp32 (no TF32 or other reduced-precision shortcuts); no atomics in cuBLAS reductions
    ATP_CUBLAS_TRY(cublasSetMathMode(gemms.blas, CUBLAS_PEDANTIC_MATH));
    ATP_CUBLAS_TRY(cublasSetAtomicsMode(gemms.blas, CUBLAS_ATOMICS_NOT_ALLOWED));
    return {};
  }();
  if (!st.ok())
    return error("make_cuda_kernels: " + st.message()); // gemms' destructor frees the handle
  return std::unique_ptr<Kernels>(new CudaKernels<float>(cuda_stream, std::move(gemms)));
}

} // namespace atp
