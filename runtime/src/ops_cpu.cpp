/* ops_cpu.cpp - the ZeRO engine's elementwise work on host buffers (ops.h).

   The reference backend: plain loops on the calling thread, in element order, so that the CUDA backend can be
   checked against it (AdamW and the conversions bit for bit; sums of squares up to summation order). */
#include "atp/comm.h" // defines: float_to_bf16, bf16_to_float, float_to_f16, f16_to_float
#include "atp/ops.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace atp {

namespace {

float load(const void *src, DType dtype, std::size_t i) {
  switch (dtype) {
  case DType::BF16:
    return bf16_to_float(static_cast<const std::uint16_t *>(src)[i]);
  case DType::F16:
    return f16_to_float(static_cast<const std::uint16_t *>(src)[i]);
  default:
    return static_cast<const float *>(src)[i];
  }
}

void store(void *dst, DType dtype, std::size_t i, float x) {
  switch (dtype) {
  case DType::BF16:
    static_cast<std::uint16_t *>(dst)[i] = float_to_bf16(x);
    break;
  case DType::F16:
    static_cast<std::uint16_t *>(dst)[i] = float_to_f16(x);
    break;
  default:
    static_cast<float *>(dst)[i] = x;
  }
}

bool float_like(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

Status check_dtype(const char *call, DType d) {
  if (float_like(d))
    return {};
  return error(std::string(call) + ": dtype " + dtype_name(d) + " is not F32, BF16 or F16");
}

class CpuOps final : public Ops {
public:
  const char *name() const override { return "cpu"; }

  Result<void *> alloc(std::size_t bytes) override {
    const std::size_t rounded = (bytes + 255) / 256 * 256;
    void *p = rounded ? std::aligned_alloc(256, rounded) : nullptr;
    if (rounded && !p)
      return error("cpu ops: out of host memory allocating " + std::to_string(bytes) + " bytes");
    if (p)
      std::memset(p, 0, rounded);
    return p;
  }
  void free(void *p) override { std::free(p); }
  Status zero(void *p, std::size_t bytes) override {
    if (bytes)
      std::memset(p, 0, bytes);
    return {};
  }
  Status copy_from_host(void *dst, const void *src, std::size_t bytes) override { return copy(dst, src, bytes); }
  Status copy_to_host(void *dst, const void *src, std::size_t bytes) override { return copy(dst, src, bytes); }
  Status copy(void *dst, const void *src, std::size_t bytes) override {
    if (bytes)
      std::memmove(dst, src, bytes);
    return {};
  }

  Status cast(void *dst, DType dst_dtype, const void *src, DType src_dtype, std::size_t n) override {
    ATP_TRY(check_dtype("cast", dst_dtype));
    ATP_TRY(check_dtype("cast", src_dtype));
    for (std::size_t i = 0; i < n; ++i)
      store(dst, dst_dtype, i, load(src, src_dtype, i));
    return {};
  }

  Status accumulate(float *acc, const void *src, DType src_dtype, std::size_t n) override {
    ATP_TRY(check_dtype("accumulate", src_dtype));
    for (std::size_t i = 0; i < n; ++i)
      acc[i] += load(src, src_dtype, i);
    return {};
  }

  Result<GradStats> grad_stats(const void *x, DType dtype, const GradSpan *spans, std::size_t num_spans) override {
    ATP_TRY(check_dtype("grad_stats", dtype));
    GradStats r;
    for (std::size_t s = 0; s < num_spans; ++s)
      for (std::int64_t i = spans[s].begin; i < spans[s].end; ++i) {
        const float xi = load(x, dtype, std::size_t(i));
        r.nonfinite = r.nonfinite || !std::isfinite(xi);
        if (spans[s].in_norm)
          r.sum_squares += double(xi) * double(xi);
      }
    return r;
  }

  Status adamw(float *p, const void *g, DType g_dtype, float *m, float *v, std::size_t n, const AdamWStep &step,
               void *out, DType out_dtype) override {
    ATP_TRY(check_dtype("adamw", g_dtype));
    if (out)
      ATP_TRY(check_dtype("adamw", out_dtype));
    for (std::size_t i = 0; i < n; ++i) {
      adamw_element(p[i], load(g, g_dtype, i), m[i], v[i], step);
      if (out)
        store(out, out_dtype, i, p[i]);
    }
    return {};
  }

  Status synchronize() override { return {}; }

  // Every call has finished when it returns: events have nothing to order.
  Result<std::unique_ptr<OpsEvent>> make_event() override { return std::make_unique<OpsEvent>(); }
  Status record(OpsEvent &) override { return {}; }
  Status wait(const OpsEvent &) override { return {}; }
};

} // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

} // namespace atp
