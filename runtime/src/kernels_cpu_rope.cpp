/* kernels_cpu_rope.cpp - the rotary table and the rotation (HF's rotate_half convention), on the host.

   The table holds cos and sin per position, [cos f_0..f_{h-1} | sin f_0..f_{h-1}] (h = rotary_dim / 2),
   from rope_inv_freq (kernels_rope.cpp). In float the frequency and the angle p * f are rounded to float
   before cos/sin, which is what HF's fp32 computation does; in double everything stays double. The
   rotation pairs element i with element i + h of the first rotary_dim elements of each head (halves, not
   interleaved pairs); backward applies the transpose (the inverse) rotation. */
#include "kernels_cpu.h"

#include <cmath>

namespace atp::cpu {

template <class T> Status rope_table(T *table, const RopeConfig &cfg, i64 head_dim, i64 positions) {
  ATP_ASSIGN_OR_RETURN(const std::vector<double> inv, rope_inv_freq(cfg, head_dim));
  const i64 half = static_cast<i64>(inv.size());
  for (i64 p = 0; p < positions; ++p) {
    T *row = table + p * 2 * half;
    for (i64 i = 0; i < half; ++i) {
      const T angle = T(p) * T(inv[static_cast<std::size_t>(i)]); // rounded to T, as HF's fp32 product
      row[i] = T(std::cos(double(angle)));
      row[half + i] = T(std::sin(double(angle)));
    }
  }
  return {};
}

template <class T> void rope_apply(T *x, const RopeDims &d, const T *table, bool transpose) {
  const i64 half = d.rotary_dim / 2;
  for (i64 b = 0; b < d.batch; ++b)
    for (i64 s = 0; s < d.seq; ++s) {
      const T *cs = table + s * d.rotary_dim, *sn = cs + half;
      T *row = x + (b * d.seq + s) * d.row_stride;
      for (i64 h = 0; h < d.heads; ++h) {
        T *e = row + h * d.head_dim;
        for (i64 i = 0; i < half; ++i) {
          const T x1 = e[i], x2 = e[i + half], c = cs[i], si = transpose ? -sn[i] : sn[i];
          e[i] = x1 * c - x2 * si;
          e[i + half] = x2 * c + x1 * si;
        }
      }
    }
}

#define ATP_INSTANTIATE(T)                                                                                      \
  template Status rope_table<T>(T *, const RopeConfig &, i64, i64);                                             \
  template void rope_apply<T>(T *, const RopeDims &, const T *, bool);
ATP_INSTANTIATE(float)
ATP_INSTANTIATE(double)
#undef ATP_INSTANTIATE

} // namespace atp::cpu
