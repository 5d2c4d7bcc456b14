/* kernels_profile.cpp - the per-kernel time breakdown (kernels_profile.h). */
#include "atp/kernels_profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace atp {

namespace {

std::string dims(std::initializer_list<std::int64_t> v, const char *sep = "x") {
  std::string s;
  for (std::int64_t x : v)
    s += (s.empty() ? "" : sep) + std::to_string(x);
  return s;
}

/// Nominal FLOPs of causal attention's two products (QK^T and PV) over the lower triangle.
double attention_flops(const AttentionDims &d) {
  const double s = double(d.seq), kept = d.sliding_window > 0 && d.sliding_window < d.seq
                                             ? double(d.sliding_window) * s - 0.5 * double(d.sliding_window) * double(d.sliding_window)
                                             : 0.5 * s * s;
  return 4.0 * double(d.batch) * double(d.q_heads) * kept * double(d.head_dim);
}

} // namespace

template <class F>
auto ProfilingKernels::timed(const std::string &key, double flops, double bytes, F &&call) -> decltype(call()) {
  if (!on_)
    return call();
  if (Status before = k_.synchronize(); !before.ok())
    return before;
  const auto t0 = std::chrono::steady_clock::now();
  auto result = call();
  if (Status after = k_.synchronize(); !after.ok())
    return after;
  KernelProfileRow &r = rows_[key];
  ++r.calls;
  r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.flops += flops;
  r.bytes += bytes;
  return result;
}

Status ProfilingKernels::gemm(const GemmArgs &g, const void *a, const void *b, void *c) {
  const double es = double(dtype_size(dtype()));
  return timed("gemm " + dims({g.m, g.n, g.k}), 2.0 * double(g.m) * double(g.n) * double(g.k),
               es * double(g.m * g.k + g.k * g.n + g.m * g.n * (g.beta != 0 ? 2 : 1)),
               [&] { return k_.gemm(g, a, b, c); });
}

Status ProfilingKernels::linear_forward(void *y, const void *x, const void *w, const void *bias, std::int64_t rows,
                                        std::int64_t in, std::int64_t out) {
  const double es = double(dtype_size(dtype()));
  return timed("linear_forward " + dims({rows, in}) + "->" + std::to_string(out) + (bias ? "+bias" : ""),
               2.0 * double(rows) * double(in) * double(out), es * double(rows * in + out * in + rows * out),
               [&] { return k_.linear_forward(y, x, w, bias, rows, in, out); });
}

Status ProfilingKernels::linear_backward(void *dx, Write dx_mode, void *dw, void *db, Write dw_mode, const void *dy,
                                         const void *x, const void *w, std::int64_t rows, std::int64_t in,
                                         std::int64_t out) {
  const double dw_passes = dw_mode == Write::Accumulate ? 2.0 : 1.0; // read and write, or write
  const double es = double(dtype_size(dtype()));
  const double products = (dx ? 1.0 : 0.0) + (dw ? 1.0 : 0.0);
  return timed("linear_backward " + dims({rows, in}) + "->" + std::to_string(out) + (dx ? " dx" : "") +
                   (dw ? " dw" : "") + (db ? " db" : ""),
               products * 2.0 * double(rows) * double(in) * double(out),
               es * (double(rows * out) + (dx ? 2.0 * double(rows * in) : 0.0) +
                     (dw ? double(rows * in) + dw_passes * double(out * in) : 0.0)),
               [&] { return k_.linear_backward(dx, dx_mode, dw, db, dw_mode, dy, x, w, rows, in, out); });
}

Status ProfilingKernels::embedding_forward(void *out, const void *table, const std::int32_t *ids, std::int64_t rows,
                                           std::int64_t hidden, const VocabRange &range) {
  return timed("embedding_forward " + dims({rows, hidden}), 0,
               2.0 * double(dtype_size(dtype())) * double(rows * hidden),
               [&] { return k_.embedding_forward(out, table, ids, rows, hidden, range); });
}

Status ProfilingKernels::embedding_backward(void *dtable, const void *dout, const std::int32_t *ids,
                                            std::int64_t rows, std::int64_t hidden, const VocabRange &range) {
  return timed("embedding_backward " + dims({rows, hidden}), 0,
               2.0 * double(dtype_size(dtype())) * double(rows * hidden),
               [&] { return k_.embedding_backward(dtable, dout, ids, rows, hidden, range); });
}

Status ProfilingKernels::rmsnorm_forward(void *y, void *rstd, const void *x, const void *w, std::int64_t rows,
                                         std::int64_t hidden, double eps) {
  return timed("rmsnorm_forward " + dims({rows, hidden}), 0,
               2.0 * double(dtype_size(dtype())) * double(rows * hidden),
               [&] { return k_.rmsnorm_forward(y, rstd, x, w, rows, hidden, eps); });
}

Status ProfilingKernels::add_rmsnorm_forward(void *sum, void *y, void *rstd, const void *a, const void *b,
                                             const void *w, std::int64_t rows, std::int64_t hidden, double eps) {
  return timed("add_rmsnorm_forward " + dims({rows, hidden}), 0,
               4.0 * double(dtype_size(dtype())) * double(rows * hidden),
               [&] { return k_.add_rmsnorm_forward(sum, y, rstd, a, b, w, rows, hidden, eps); });
}

Status ProfilingKernels::rmsnorm_backward(void *dx, Write dx_mode, void *dw, Write dw_mode, const void *dy,
                                          const void *x, const void *w, const void *rstd, std::int64_t rows,
                                          std::int64_t hidden) {
  return timed("rmsnorm_backward " + dims({rows, hidden}), 0, 3.0 * double(dtype_size(dtype())) * double(rows * hidden),
               [&] { return k_.rmsnorm_backward(dx, dx_mode, dw, dw_mode, dy, x, w, rstd, rows, hidden); });
}

Status ProfilingKernels::rope_table(void *table, const RopeConfig &cfg, std::int64_t head_dim,
                                    std::int64_t positions) {
  return timed("rope_table " + std::to_string(positions), 0, 0,
               [&] { return k_.rope_table(table, cfg, head_dim, positions); });
}

Status ProfilingKernels::rope_forward(void *x, const RopeDims &d, const void *table) {
  return timed("rope_forward " + dims({d.batch * d.seq, d.heads, d.head_dim}), 0,
               2.0 * double(dtype_size(dtype())) * double(d.batch * d.seq * d.heads * d.rotary_dim),
               [&] { return k_.rope_forward(x, d, table); });
}

Status ProfilingKernels::rope_backward(void *dx, const RopeDims &d, const void *table) {
  return timed("rope_backward " + dims({d.batch * d.seq, d.heads, d.head_dim}), 0,
               2.0 * double(dtype_size(dtype())) * double(d.batch * d.seq * d.heads * d.rotary_dim),
               [&] { return k_.rope_backward(dx, d, table); });
}

Status ProfilingKernels::swiglu_forward(void *out, const void *gate, const void *up, std::int64_t rows,
                                        std::int64_t ffn, std::int64_t in_stride) {
  return timed("swiglu_forward " + dims({rows, ffn}), 0, 3.0 * double(dtype_size(dtype())) * double(rows * ffn),
               [&] { return k_.swiglu_forward(out, gate, up, rows, ffn, in_stride); });
}

Status ProfilingKernels::swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                                         std::int64_t rows, std::int64_t ffn, std::int64_t in_stride) {
  return timed("swiglu_backward " + dims({rows, ffn}), 0, 5.0 * double(dtype_size(dtype())) * double(rows * ffn),
               [&] { return k_.swiglu_backward(dgate, dup, dout, gate, up, rows, ffn, in_stride); });
}

Status ProfilingKernels::attention_forward(void *out, void *lse, const void *q, const void *k, const void *v,
                                           const AttentionDims &d) {
  const double t = double(d.batch * d.seq), es = double(dtype_size(dtype()));
  return timed("attention_forward " + dims({d.batch, d.seq, d.q_heads, d.kv_heads, d.head_dim}), attention_flops(d),
               es * t * double(d.head_dim) * double(2 * d.q_heads + 2 * d.kv_heads),
               [&] { return k_.attention_forward(out, lse, q, k, v, d); });
}

Status ProfilingKernels::attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *q,
                                            const void *k, const void *v, const void *out, const void *lse,
                                            const AttentionDims &d) {
  const double t = double(d.batch * d.seq), es = double(dtype_size(dtype()));
  // Five products (S, dP, dV, dK, dQ) against the forward's two.
  return timed("attention_backward " + dims({d.batch, d.seq, d.q_heads, d.kv_heads, d.head_dim}),
               2.5 * attention_flops(d), es * t * double(d.head_dim) * double(4 * d.q_heads + 4 * d.kv_heads),
               [&] { return k_.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, d); });
}

Result<CrossEntropySum> ProfilingKernels::cross_entropy(void *logits, const std::int32_t *targets,
                                                        const CrossEntropyArgs &args) {
  return timed("cross_entropy " + dims({args.rows, args.vocab}), 0,
               (args.write_grad ? 2.0 : 1.0) * double(dtype_size(dtype())) * double(args.rows * args.vocab),
               [&] { return k_.cross_entropy(logits, targets, args); });
}

Status ProfilingKernels::add(void *out, const void *a, const void *b, std::int64_t n) {
  return timed("add " + std::to_string(n), 0, 3.0 * double(dtype_size(dtype())) * double(n),
               [&] { return k_.add(out, a, b, n); });
}

Status ProfilingKernels::scale(void *x, double alpha, std::int64_t n) {
  return timed("scale " + std::to_string(n), 0, 2.0 * double(dtype_size(dtype())) * double(n),
               [&] { return k_.scale(x, alpha, n); });
}

std::string ProfilingKernels::table(double step_seconds, double peak_tflops, double peak_gbps) const {
  std::vector<std::pair<std::string, KernelProfileRow>> v(rows_.begin(), rows_.end());
  std::sort(v.begin(), v.end(), [](const auto &a, const auto &b) { return a.second.seconds > b.second.seconds; });
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-58s %6s %10s %7s %12s %8s\n", "kernel (shape)", "calls", "ms", "step", "rate",
                "of peak");
  out += line;
  double sum = 0;
  for (const auto &[key, r] : v) {
    sum += r.seconds;
    char rate[32] = "", share[32] = "";
    if (r.flops > 0) {
      const double tf = r.flops / r.seconds / 1e12;
      std::snprintf(rate, sizeof rate, "%.3g TFLOP/s", tf);
      if (peak_tflops > 0)
        std::snprintf(share, sizeof share, "%.1f%%", 100 * tf / peak_tflops);
    } else if (r.bytes > 0) {
      const double gb = r.bytes / r.seconds / 1e9;
      std::snprintf(rate, sizeof rate, "%.3g GB/s", gb);
      if (peak_gbps > 0)
        std::snprintf(share, sizeof share, "%.1f%%", 100 * gb / peak_gbps);
    }
    std::snprintf(line, sizeof line, "%-58s %6lld %10.3f %6.1f%% %12s %8s\n", key.c_str(), (long long)r.calls,
                  1e3 * r.seconds, step_seconds > 0 ? 100 * r.seconds / step_seconds : 0.0, rate, share);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-58s %6s %10.3f %6.1f%%\n", "all kernels", "", 1e3 * sum,
                step_seconds > 0 ? 100 * sum / step_seconds : 0.0);
  out += line;
  std::snprintf(line, sizeof line, "%-58s %6s %10.3f %6.1f%%\n", "the rest (optimizer, collectives, host)", "",
                1e3 * (step_seconds - sum), step_seconds > 0 ? 100 * (step_seconds - sum) / step_seconds : 0.0);
  out += line;
  return out;
}

} // namespace atp
