/* kernels_cpu.cpp - make_cpu_kernels: the Kernels interface over the host templates of kernels_cpu.h.

   CpuKernels<T> checks every call's arguments (kernels_check.h) and only then casts the void pointers to T
   and runs the template; T is float for DType::F32 and double for DType::F64. Built only when the runtime
   found a CBLAS (runtime/kernels.cmake); otherwise kernels_cpu_stub.cpp defines make_cpu_kernels. */
#include "kernels_check.h"
#include "kernels_cpu.h"

#include <string>
#include <type_traits>

namespace atp {

namespace {

template <class T> T *as(void *p) { return static_cast<T *>(p); }
template <class T> const T *as(const void *p) { return static_cast<const T *>(p); }

template <class T> class CpuKernels final : public Kernels {
public:
  const char *name() const override { return "cpu"; }
  DType dtype() const override { return std::is_same_v<T, float> ? DType::F32 : DType::F64; }
  DType stat_dtype() const override { return dtype(); }

  Status gemm(const GemmArgs &g, const void *a, const void *b, void *c) override {
    ATP_TRY(kcheck::gemm(g, a, b, c));
    cpu::gemm<T>(g, as<T>(a), as<T>(b), as<T>(c));
    return {};
  }

  Status linear_forward(void *y, const void *x, const void *w, const void *bias, std::int64_t rows,
                        std::int64_t in, std::int64_t out) override {
    ATP_TRY(kcheck::linear_forward(y, x, w, rows, in, out));
    cpu::linear_forward<T>(as<T>(y), as<T>(x), as<T>(w), as<T>(bias), rows, in, out);
    return {};
  }

  Status linear_backward(void *dx, Write dx_mode, void *dw, void *db, Write dw_mode, const void *dy, const void *x,
                         const void *w, std::int64_t rows, std::int64_t in, std::int64_t out) override {
    ATP_TRY(kcheck::linear_backward(dy, x, w, dx, dw, rows, in, out));
    cpu::linear_backward<T>(as<T>(dx), dx_mode, as<T>(dw), as<T>(db), dw_mode, as<T>(dy), as<T>(x), as<T>(w), rows, in,
                            out);
    return {};
  }

  Status embedding_forward(void *out, const void *table, const std::int32_t *ids, std::int64_t rows,
                           std::int64_t hidden, const VocabRange &range) override {
    ATP_TRY(kcheck::embedding("embedding_forward", out, table, ids, rows, hidden, range));
    return cpu::embedding_forward<T>(as<T>(out), as<T>(table), ids, rows, hidden, range);
  }

  Status embedding_backward(void *dtable, const void *dout, const std::int32_t *ids, std::int64_t rows,
                            std::int64_t hidden, const VocabRange &range) override {
    ATP_TRY(kcheck::embedding("embedding_backward", dtable, dout, ids, rows, hidden, range));
    return cpu::embedding_backward<T>(as<T>(dtable), as<T>(dout), ids, rows, hidden, range);
  }

  Status rmsnorm_forward(void *y, void *rstd, const void *x, const void *w, std::int64_t rows,
                         std::int64_t hidden, double eps) override {
    ATP_TRY(kcheck::rmsnorm_forward(y, rstd, x, w, rows, hidden, eps));
    cpu::rmsnorm_forward<T>(as<T>(y), as<T>(rstd), as<T>(x), as<T>(w), rows, hidden, eps);
    return {};
  }

  Status rmsnorm_backward(void *dx, Write dx_mode, void *dw, Write dw_mode, const void *dy, const void *x,
                          const void *w, const void *rstd, std::int64_t rows, std::int64_t hidden) override {
    ATP_TRY(kcheck::rmsnorm_backward(dw, dy, x, w, rstd, rows, hidden));
    cpu::rmsnorm_backward<T>(as<T>(dx), dx_mode, as<T>(dw), dw_mode, as<T>(dy), as<T>(x), as<T>(w), as<T>(rstd), rows,
                             hidden);
    return {};
  }

  Status rope_table(void *table, const RopeConfig &cfg, std::int64_t head_dim, std::int64_t positions) override {
    ATP_TRY(kcheck::rope_table(table, head_dim, positions));
    return cpu::rope_table<T>(as<T>(table), cfg, head_dim, positions).with_context("rope_table");
  }

  Status rope_forward(void *x, const RopeDims &dims, const void *table) override {
    ATP_TRY(kcheck::rope("rope_forward", x, dims, table));
    cpu::rope_apply<T>(as<T>(x), dims, as<T>(table), false);
    return {};
  }

  Status rope_backward(void *dx, const RopeDims &dims, const void *table) override {
    ATP_TRY(kcheck::rope("rope_backward", dx, dims, table));
    cpu::rope_apply<T>(as<T>(dx), dims, as<T>(table), true);
    return {};
  }

  Status swiglu_forward(void *out, const void *gate, const void *up, std::int64_t rows, std::int64_t ffn,
                        std::int64_t in_stride) override {
    ATP_TRY(kcheck::swiglu("swiglu_forward", out, gate, up, gate, up, rows, ffn, in_stride));
    cpu::swiglu_forward<T>(as<T>(out), as<T>(gate), as<T>(up), rows, ffn, in_stride);
    return {};
  }

  Status swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                         std::int64_t rows, std::int64_t ffn, std::int64_t in_stride) override {
    ATP_TRY(kcheck::swiglu("swiglu_backward", dgate, dup, dout, gate, up, rows, ffn, in_stride));
    cpu::swiglu_backward<T>(as<T>(dgate), as<T>(dup), as<T>(dout), as<T>(gate), as<T>(up), rows, ffn, in_stride);
    return {};
  }

  Status attention_forward(void *out, void *lse, const void *q, const void *k, const void *v,
                           const AttentionDims &dims) override {
    ATP_TRY(kcheck::attention("attention_forward", dims, {out, lse, q, k, v}));
    cpu::attention_forward<T>(as<T>(out), as<T>(lse), as<T>(q), as<T>(k), as<T>(v), dims);
    return {};
  }

  Status attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                            const void *v, const void *out, const void *lse, const AttentionDims &dims) override {
    ATP_TRY(kcheck::attention("attention_backward", dims, {dq, dk, dv, dout, q, k, v, out, lse}));
    cpu::attention_backward<T>(as<T>(dq), as<T>(dk), as<T>(dv), as<T>(dout), as<T>(q), as<T>(k), as<T>(v),
                               as<T>(out), as<T>(lse), dims);
    return {};
  }

  Result<CrossEntropySum> cross_entropy(void *logits, const std::int32_t *targets,
                                        const CrossEntropyArgs &args) override {
    ATP_TRY(kcheck::cross_entropy(logits, targets, args));
    return cpu::cross_entropy<T>(as<T>(logits), targets, args);
  }

  Status add(void *out, const void *a, const void *b, std::int64_t n) override {
    ATP_TRY(kcheck::elementwise("add", {out, a, b}, n));
    cpu::add<T>(as<T>(out), as<T>(a), as<T>(b), n);
    return {};
  }

  Status scale(void *x, double alpha, std::int64_t n) override {
    ATP_TRY(kcheck::elementwise("scale", {x}, n));
    cpu::scale<T>(as<T>(x), alpha, n);
    return {};
  }

  Status synchronize() override { return {}; }
};

} // namespace

Result<std::unique_ptr<Kernels>> make_cpu_kernels(DType dtype, int blas_threads) {
  if (blas_threads < 0)
    return error("make_cpu_kernels: blas_threads " + std::to_string(blas_threads) + " must be >= 0");
  cpu::set_gemm_threads(blas_threads);
  switch (dtype) {
  case DType::F32:
    return std::unique_ptr<Kernels>(new CpuKernels<float>());
  case DType::F64:
    return std::unique_ptr<Kernels>(new CpuKernels<double>());
  default:
    return error(std::string("make_cpu_kernels: dtype ") + dtype_name(dtype) +
                 " is not supported on the CPU (F32, or F64 for gradient checks)");
  }
}

} // namespace atp
