/* kernels_check.cpp - the argument checks of kernels.h (kernels_check.h), shared by every backend.

   Messages name the call, the argument and its value: "attention_forward: q_heads 6 is not a multiple of
   kv_heads 4". Sizes are checked for int64 overflow, since model code multiplies them into byte counts. */
#include "kernels_check.h"

#include <climits>
#include <cmath>
#include <string>

namespace atp::kcheck {

namespace {

std::string s(std::int64_t v) { return std::to_string(v); }

Status positive(const char *call, const char *what, std::int64_t v) {
  if (v > 0)
    return {};
  return error(std::string(call) + ": " + what + " " + s(v) + " must be positive");
}

/// a * b elements must fit well inside int64 (byte counts of 8-byte elements too).
Status product(const char *call, const char *what, std::int64_t a, std::int64_t b) {
  if (a > 0 && b > 0 && a > (INT64_MAX / 8) / b)
    return error(std::string(call) + ": " + what + " " + s(a) + " x " + s(b) + " overflows");
  return {};
}

Status non_null(const char *call, std::initializer_list<const void *> pointers) {
  int i = 0;
  for (const void *p : pointers) {
    if (!p)
      return error(std::string(call) + ": pointer argument " + s(i) + " is null");
    ++i;
  }
  return {};
}

Status stride_at_least(const char *call, const char *what, std::int64_t stride, std::int64_t width) {
  if (stride >= width)
    return {};
  return error(std::string(call) + ": " + what + " " + s(stride) + " is less than the row length " + s(width));
}

} // namespace

Status fits_int(const char *call, const char *what, std::int64_t v) {
  if (v <= INT_MAX)
    return {};
  return error(std::string(call) + ": " + what + " " + s(v) + " exceeds the BLAS index limit " + s(INT_MAX));
}

Status gemm(const GemmArgs &a, const void *pa, const void *pb, const void *pc) {
  const char *c = "gemm";
  ATP_TRY(non_null(c, {pa, pb, pc}));
  ATP_TRY(positive(c, "m", a.m));
  ATP_TRY(positive(c, "n", a.n));
  ATP_TRY(positive(c, "k", a.k));
  // stored shapes: A is [m, k] or [k, m], B is [k, n] or [n, k]
  const std::int64_t a_rows = a.trans_a ? a.k : a.m, a_cols = a.trans_a ? a.m : a.k;
  const std::int64_t b_rows = a.trans_b ? a.n : a.k, b_cols = a.trans_b ? a.k : a.n;
  ATP_TRY(stride_at_least(c, "lda", a.lda, a_cols));
  ATP_TRY(stride_at_least(c, "ldb", a.ldb, b_cols));
  ATP_TRY(stride_at_least(c, "ldc", a.ldc, a.n));
  ATP_TRY(product(c, "A rows x lda", a_rows, a.lda));
  ATP_TRY(product(c, "B rows x ldb", b_rows, a.ldb));
  ATP_TRY(product(c, "m x ldc", a.m, a.ldc));
  if (!std::isfinite(a.alpha) || !std::isfinite(a.beta))
    return error("gemm: alpha and beta must be finite");
  for (std::int64_t v : {a.m, a.n, a.k, a.lda, a.ldb, a.ldc})
    ATP_TRY(fits_int(c, "dimension", v));
  return {};
}

Status linear_forward(const void *y, const void *x, const void *w, std::int64_t rows, std::int64_t in,
                      std::int64_t out) {
  const char *c = "linear_forward";
  ATP_TRY(non_null(c, {y, x, w}));
  ATP_TRY(positive(c, "rows", rows));
  ATP_TRY(positive(c, "in", in));
  ATP_TRY(positive(c, "out", out));
  ATP_TRY(product(c, "rows x in", rows, in));
  ATP_TRY(product(c, "rows x out", rows, out));
  ATP_TRY(product(c, "out x in", out, in));
  for (std::int64_t v : {rows, in, out})
    ATP_TRY(fits_int(c, "dimension", v));
  return {};
}

Status linear_backward(const void *dy, const void *x, const void *w, const void *dx, const void *dw,
                       std::int64_t rows, std::int64_t in, std::int64_t out) {
  const char *c = "linear_backward";
  ATP_TRY(non_null(c, {dy}));
  if (dx && !w)
    return error("linear_backward: dx requested but the weight w is null");
  if (dw && !x)
    return error("linear_backward: dw requested but the input x is null");
  ATP_TRY(positive(c, "rows", rows));
  ATP_TRY(positive(c, "in", in));
  ATP_TRY(positive(c, "out", out));
  ATP_TRY(product(c, "rows x in", rows, in));
  ATP_TRY(product(c, "rows x out", rows, out));
  ATP_TRY(product(c, "out x in", out, in));
  for (std::int64_t v : {rows, in, out})
    ATP_TRY(fits_int(c, "dimension", v));
  return {};
}

Status embedding(const char *call, const void *a, const void *b, const void *ids, std::int64_t rows,
                 std::int64_t hidden, const VocabRange &r) {
  ATP_TRY(non_null(call, {a, b, ids}));
  ATP_TRY(positive(call, "rows", rows));
  ATP_TRY(positive(call, "hidden", hidden));
  ATP_TRY(positive(call, "vocab_size", r.vocab_size));
  if (r.begin < 0 || r.end <= r.begin || r.end > r.vocab_size)
    return error(std::string(call) + ": vocab range [" + s(r.begin) + ", " + s(r.end) +
                 ") is not a non-empty part of [0, " + s(r.vocab_size) + ")");
  ATP_TRY(product(call, "rows x hidden", rows, hidden));
  ATP_TRY(product(call, "table rows x hidden", r.end - r.begin, hidden));
  return {};
}

Status rmsnorm_forward(const void *y, const void *rstd, const void *x, const void *w, std::int64_t rows,
                       std::int64_t hidden, double eps) {
  const char *c = "rmsnorm_forward";
  ATP_TRY(non_null(c, {y, rstd, x, w}));
  ATP_TRY(positive(c, "rows", rows));
  ATP_TRY(positive(c, "hidden", hidden));
  ATP_TRY(product(c, "rows x hidden", rows, hidden));
  if (!(eps >= 0.0) || !std::isfinite(eps))
    return error("rmsnorm_forward: eps " + std::to_string(eps) + " must be finite and >= 0");
  return {};
}

Status rmsnorm_backward(const void *dw, const void *dy, const void *x, const void *w, const void *rstd,
                        std::int64_t rows, std::int64_t hidden) {
  const char *c = "rmsnorm_backward";
  ATP_TRY(non_null(c, {dw, dy, x, w, rstd}));
  ATP_TRY(positive(c, "rows", rows));
  ATP_TRY(positive(c, "hidden", hidden));
  ATP_TRY(product(c, "rows x hidden", rows, hidden));
  return {};
}

Status rope(const char *call, const void *x, const RopeDims &d, const void *table) {
  ATP_TRY(non_null(call, {x, table}));
  ATP_TRY(positive(call, "batch", d.batch));
  ATP_TRY(positive(call, "seq", d.seq));
  ATP_TRY(positive(call, "heads", d.heads));
  ATP_TRY(positive(call, "head_dim", d.head_dim));
  ATP_TRY(positive(call, "rotary_dim", d.rotary_dim));
  ATP_TRY(positive(call, "table_positions", d.table_positions));
  if (d.rotary_dim % 2 != 0 || d.rotary_dim > d.head_dim)
    return error(std::string(call) + ": rotary_dim " + s(d.rotary_dim) + " must be even and at most head_dim " +
                 s(d.head_dim));
  if (d.seq > d.table_positions)
    return error(std::string(call) + ": seq " + s(d.seq) + " exceeds the rotary table's " + s(d.table_positions) +
                 " positions");
  ATP_TRY(product(call, "heads x head_dim", d.heads, d.head_dim));
  ATP_TRY(stride_at_least(call, "row_stride", d.row_stride, d.heads * d.head_dim));
  ATP_TRY(product(call, "batch x seq", d.batch, d.seq));
  ATP_TRY(product(call, "rows x row_stride", d.batch * d.seq, d.row_stride));
  return {};
}

Status rope_table(const void *table, std::int64_t head_dim, std::int64_t positions) {
  ATP_TRY(non_null("rope_table", {table}));
  ATP_TRY(positive("rope_table", "head_dim", head_dim));
  ATP_TRY(positive("rope_table", "positions", positions));
  ATP_TRY(product("rope_table", "positions x head_dim", positions, head_dim));
  return {};
}

Status swiglu(const char *call, const void *a, const void *b, const void *c, const void *d, const void *e,
              std::int64_t rows, std::int64_t ffn, std::int64_t in_stride) {
  ATP_TRY(non_null(call, {a, b, c, d, e}));
  ATP_TRY(positive(call, "rows", rows));
  ATP_TRY(positive(call, "ffn", ffn));
  ATP_TRY(stride_at_least(call, "in_stride", in_stride, ffn));
  ATP_TRY(product(call, "rows x in_stride", rows, in_stride));
  return {};
}

Status attention(const char *call, const AttentionDims &d, std::initializer_list<const void *> pointers) {
  ATP_TRY(non_null(call, pointers));
  ATP_TRY(positive(call, "batch", d.batch));
  ATP_TRY(positive(call, "seq", d.seq));
  ATP_TRY(positive(call, "q_heads", d.q_heads));
  ATP_TRY(positive(call, "kv_heads", d.kv_heads));
  ATP_TRY(positive(call, "head_dim", d.head_dim));
  if (d.q_heads % d.kv_heads != 0)
    return error(std::string(call) + ": q_heads " + s(d.q_heads) + " is not a multiple of kv_heads " +
                 s(d.kv_heads));
  ATP_TRY(product(call, "q_heads x head_dim", d.q_heads, d.head_dim));
  ATP_TRY(stride_at_least(call, "q_stride", d.q_stride, d.q_heads * d.head_dim));
  ATP_TRY(stride_at_least(call, "k_stride", d.k_stride, d.kv_heads * d.head_dim));
  ATP_TRY(stride_at_least(call, "v_stride", d.v_stride, d.kv_heads * d.head_dim));
  ATP_TRY(product(call, "batch x seq", d.batch, d.seq));
  ATP_TRY(product(call, "seq x seq", d.seq, d.seq));
  for (std::int64_t st : {d.q_stride, d.k_stride, d.v_stride, d.q_heads * d.head_dim})
    ATP_TRY(product(call, "rows x row stride", d.batch * d.seq, st));
  if (!(d.scale > 0.0) || !std::isfinite(d.scale))
    return error(std::string(call) + ": scale " + std::to_string(d.scale) + " must be finite and positive");
  if (d.sliding_window < 0)
    return error(std::string(call) + ": sliding_window " + s(d.sliding_window) + " must be >= 0 (0: none)");
  for (std::int64_t v : {d.seq, d.head_dim, d.q_stride, d.k_stride, d.v_stride, d.q_heads * d.head_dim})
    ATP_TRY(fits_int(call, "dimension", v));
  return {};
}

Status cross_entropy(const void *logits, const void *targets, const CrossEntropyArgs &a) {
  const char *c = "cross_entropy";
  ATP_TRY(non_null(c, {logits, targets}));
  ATP_TRY(positive(c, "rows", a.rows));
  ATP_TRY(positive(c, "vocab", a.vocab));
  ATP_TRY(product(c, "rows x vocab", a.rows, a.vocab));
  if (a.write_grad) {
    ATP_TRY(positive(c, "denominator", a.denominator));
    if (!std::isfinite(a.grad_scale))
      return error("cross_entropy: grad_scale must be finite");
  }
  return {};
}

Status elementwise(const char *call, std::initializer_list<const void *> pointers, std::int64_t n) {
  ATP_TRY(non_null(call, pointers));
  ATP_TRY(positive(call, "n", n));
  return {};
}

} // namespace atp::kcheck
