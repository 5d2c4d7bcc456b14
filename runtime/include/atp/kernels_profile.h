/* kernels_profile.h - a per-kernel time breakdown of training steps (`train --profile STEP`).

   ProfilingKernels wraps any Kernels: while enabled, each call waits for the work before it, runs, waits for
   itself (synchronize), and adds its wall time to a row keyed by the call and its shape ("linear_forward
   8192x2048->3072"). Each row also gets the call's nominal FLOPs (products and attention; causal attention
   counts half the square) and the bytes it must move at least (its inputs read and outputs written once),
   so the table can set achieved TFLOP/s and GB/s against the card's peaks: which kernels cost the most
   against their roofline. The synchronizations cost a few microseconds per call and keep kernels from
   overlapping, so a profiled step is a little slower than a plain one; it is a breakdown, not a benchmark.
   Disabled, the wrapper only forwards. */
#pragma once

#include "atp/kernels.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace atp {

struct KernelProfileRow {
  std::int64_t calls = 0;
  double seconds = 0, flops = 0, bytes = 0;
};

class ProfilingKernels : public Kernels {
public:
  explicit ProfilingKernels(Kernels &inner) : k_(inner) {}

  void enable(bool on) { on_ = on; }
  void clear() { rows_.clear(); }
  const std::map<std::string, KernelProfileRow> &rows() const { return rows_; }
  /// The table, slowest first: calls, ms, share of `step_seconds`, and TFLOP/s or GB/s with their share of
  /// the peaks (0: not shown). The last lines: the kernels' sum and the rest of the step (optimizer,
  /// collectives, host work).
  std::string table(double step_seconds, double peak_tflops, double peak_gbps) const;

  const char *name() const override { return k_.name(); }
  DType dtype() const override { return k_.dtype(); }
  DType stat_dtype() const override { return k_.stat_dtype(); }
  Status gemm(const GemmArgs &args, const void *a, const void *b, void *c) override;
  Status linear_forward(void *y, const void *x, const void *w, const void *bias, std::int64_t rows, std::int64_t in,
                        std::int64_t out) override;
  Status linear_backward(void *dx, Write dx_mode, void *dw, void *db, Write dw_mode, const void *dy, const void *x,
                         const void *w, std::int64_t rows, std::int64_t in, std::int64_t out) override;
  Status embedding_forward(void *out, const void *table, const std::int32_t *ids, std::int64_t rows,
                           std::int64_t hidden, const VocabRange &range) override;
  Status embedding_backward(void *dtable, const void *dout, const std::int32_t *ids, std::int64_t rows,
                            std::int64_t hidden, const VocabRange &range) override;
  Status rmsnorm_forward(void *y, void *rstd, const void *x, const void *w, std::int64_t rows, std::int64_t hidden,
                         double eps) override;
  Status add_rmsnorm_forward(void *sum, void *y, void *rstd, const void *a, const void *b, const void *w,
                             std::int64_t rows, std::int64_t hidden, double eps) override;
  Status rmsnorm_backward(void *dx, Write dx_mode, void *dw, Write dw_mode, const void *dy, const void *x,
                          const void *w, const void *rstd, std::int64_t rows, std::int64_t hidden) override;
  Status rope_table(void *table, const RopeConfig &cfg, std::int64_t head_dim, std::int64_t positions) override;
  Status rope_forward(void *x, const RopeDims &dims, const void *table) override;
  Status rope_backward(void *dx, const RopeDims &dims, const void *table) override;
  Status swiglu_forward(void *out, const void *gate, const void *up, std::int64_t rows, std::int64_t ffn,
                        std::int64_t in_stride) override;
  Status swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                         std::int64_t rows, std::int64_t ffn, std::int64_t in_stride) override;
  Status attention_forward(void *out, void *lse, const void *q, const void *k, const void *v,
                           const AttentionDims &dims) override;
  Status attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                            const void *v, const void *out, const void *lse, const AttentionDims &dims) override;
  Result<CrossEntropySum> cross_entropy(void *logits, const std::int32_t *targets,
                                        const CrossEntropyArgs &args) override;
  Status add(void *out, const void *a, const void *b, std::int64_t n) override;
  Status scale(void *x, double alpha, std::int64_t n) override;
  Status synchronize() override { return k_.synchronize(); }

private:
  /// Runs `call` timed under `key` when enabled.
  template <class F> auto timed(const std::string &key, double flops, double bytes, F &&call) -> decltype(call());

  Kernels &k_;
  bool on_ = false;
  std::map<std::string, KernelProfileRow> rows_;
};

} // namespace atp
