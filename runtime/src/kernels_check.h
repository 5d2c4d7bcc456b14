/* kernels_check.h - the argument checks of kernels.h, shared by every backend.

   Each check returns the error a kernel call must give for bad dimensions, strides, pointers or options
   (naming the call and the numbers) before it writes anything, so the CPU and CUDA backends reject the same
   calls with the same words. Host-only arithmetic; no backend memory is read. */
#pragma once

#include "atp/kernels.h"

namespace atp::kcheck {

Status gemm(const GemmArgs &a, const void *pa, const void *pb, const void *pc);
Status linear_forward(const void *y, const void *x, const void *w, std::int64_t rows, std::int64_t in,
                      std::int64_t out);
Status linear_backward(const void *dy, const void *x, const void *w, const void *dx, const void *dw,
                       std::int64_t rows, std::int64_t in, std::int64_t out);
Status embedding(const char *call, const void *a, const void *b, const void *ids, std::int64_t rows,
                 std::int64_t hidden, const VocabRange &range);
Status rmsnorm_forward(const void *y, const void *rstd, const void *x, const void *w, std::int64_t rows,
                       std::int64_t hidden, double eps);
Status rmsnorm_backward(const void *dw, const void *dy, const void *x, const void *w, const void *rstd,
                        std::int64_t rows, std::int64_t hidden);
Status rope(const char *call, const void *x, const RopeDims &d, const void *table);
Status rope_table(const void *table, std::int64_t head_dim, std::int64_t positions);
Status swiglu(const char *call, const void *a, const void *b, const void *c, const void *d, const void *e,
              std::int64_t rows, std::int64_t ffn, std::int64_t in_stride);
Status attention(const char *call, const AttentionDims &d, std::initializer_list<const void *> pointers);
Status cross_entropy(const void *logits, const void *targets, const CrossEntropyArgs &a);
Status elementwise(const char *call, std::initializer_list<const void *> pointers, std::int64_t n);

/// Checks that cast to int (CBLAS's index type) is exact.
Status fits_int(const char *call, const char *what, std::int64_t v);

} // namespace atp::kcheck
