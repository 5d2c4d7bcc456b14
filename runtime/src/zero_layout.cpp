/* zero_layout.cpp - a TP rank's flat layout padded for a DP size (zero.h).

   Every bucket is padded to a multiple of dp so that it reduce-scatters and all-gathers in place; padded
   buckets start at multiples of kFlatAlign so that every parameter view stays aligned. The compiler's
   --emit=memory applies the same rule (compiler/Lower/ZeroLayout.cpp), so the ledger it prints is what
   the engine allocates. */
#include "atp/zero.h"

#include <string>

namespace atp {

namespace {
std::int64_t align_up(std::int64_t x, std::int64_t a) { return (x + a - 1) / a * a; }
} // namespace

Result<PaddedLayout> zero_padded_layout(const FlatLayout &layout, int dp) {
  if (dp < 1)
    return error("zero layout: the DP size must be at least 1, not " + std::to_string(dp));
  PaddedLayout out;
  out.dp = dp;
  out.offsets.assign(std::size_t(layout.num_params), 0);
  std::int64_t next = 0;
  for (int b = 0; b < layout.num_buckets; ++b) {
    const GradBucket &g = layout.buckets[b];
    if (g.end < g.begin || g.first < 0 || g.count < 1 || g.first + g.count > layout.num_params)
      return error("zero layout: bucket " + std::to_string(b) + " is malformed");
    PaddedBucket p;
    p.begin = align_up(next, kFlatAlign);
    p.piece = (g.end - g.begin + dp - 1) / dp;
    p.part = out.partition;
    for (int k = g.first; k < g.first + g.count; ++k)
      out.offsets[std::size_t(k)] = p.begin + (layout.params[k].offset - g.begin);
    out.partition += p.piece;
    next = p.begin + p.piece * dp;
    out.buckets.push_back(p);
  }
  out.numel = next;
  return out;
}

} // namespace atp
