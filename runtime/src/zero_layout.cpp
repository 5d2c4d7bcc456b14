/* zero_layout.cpp - a TP rank's flat layout padded for a DP size (zero.h).

   Every bucket is padded to a multiple of dp so that it reduce-scatters and all-gathers in place; padded
   buckets start at multiples of kFlatAlign so that every parameter view stays aligned. The rule itself is
   zero_padding.h's, which the compiler's --emit=memory includes too (compiler/Lower/ZeroLayout.cpp), so
   the ledger it prints is what the engine allocates; here the tables are checked and each parameter's
   padded offset is found. */
#include "atp/zero.h"

#include <string>

namespace atp {

Result<PaddedLayout> zero_padded_layout(const FlatLayout &layout, int dp) {
  if (dp < 1)
    return error("zero layout: the DP size must be at least 1, not " + std::to_string(dp));
  PaddedLayout out;
  out.dp = dp;
  out.offsets.assign(std::size_t(layout.num_params), 0);
  BucketPadder padder(dp);
  for (int b = 0; b < layout.num_buckets; ++b) {
    const GradBucket &g = layout.buckets[b];
    if (g.end < g.begin || g.first < 0 || g.count < 1 || g.first + g.count > layout.num_params)
      return error("zero layout: bucket " + std::to_string(b) + " is malformed");
    const PaddedBucket p = padder.add(g.end - g.begin);
    for (int k = g.first; k < g.first + g.count; ++k)
      out.offsets[std::size_t(k)] = p.begin + (layout.params[k].offset - g.begin);
    out.buckets.push_back(p);
  }
  out.numel = padder.numel();
  out.partition = padder.partition();
  return out;
}

} // namespace atp
