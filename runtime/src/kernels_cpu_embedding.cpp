/* kernels_cpu_embedding.cpp - the token embedding lookup and its scatter-add backward, on the host.

   The table may be a vocab-parallel slice [begin, end) of the vocabulary: ids outside it read zeros and
   send no gradient (another rank's slice holds them; an all-reduce of the outputs completes the lookup).
   Every id is checked against the full vocabulary before anything is written, so a corrupt token gives an
   error naming its row instead of a read out of bounds. */
#include "kernels_cpu.h"

#include <algorithm>
#include <string>

namespace atp::cpu {

namespace {

Status check_ids(const char *call, const std::int32_t *ids, i64 rows, const VocabRange &r) {
  for (i64 t = 0; t < rows; ++t)
    if (ids[t] < 0 || ids[t] >= r.vocab_size)
      return error(std::string(call) + ": token id " + std::to_string(ids[t]) + " at row " + std::to_string(t) +
                   " is outside the vocabulary [0, " + std::to_string(r.vocab_size) + ")");
  return {};
}

} // namespace

template <class T>
Status embedding_forward(T *out, const T *table, const std::int32_t *ids, i64 rows, i64 hidden,
                         const VocabRange &r) {
  ATP_TRY(check_ids("embedding_forward", ids, rows, r));
  for (i64 t = 0; t < rows; ++t) {
    T *dst = out + t * hidden;
    const i64 id = ids[t];
    if (id >= r.begin && id < r.end)
      std::copy(table + (id - r.begin) * hidden, table + (id - r.begin + 1) * hidden, dst);
    else
      std::fill(dst, dst + hidden, T(0));
  }
  return {};
}

template <class T>
Status embedding_backward(T *dtable, const T *dout, const std::int32_t *ids, i64 rows, i64 hidden,
                          const VocabRange &r) {
  ATP_TRY(check_ids("embedding_backward", ids, rows, r));
  for (i64 t = 0; t < rows; ++t) {
    const i64 id = ids[t];
    if (id < r.begin || id >= r.end)
      continue;
    T *dst = dtable + (id - r.begin) * hidden;
    const T *src = dout + t * hidden;
    for (i64 j = 0; j < hidden; ++j)
      dst[j] += src[j];
  }
  return {};
}

#define ATP_INSTANTIATE(T)                                                                                      \
  template Status embedding_forward<T>(T *, const T *, const std::int32_t *, i64, i64, const VocabRange &);     \
  template Status embedding_backward<T>(T *, const T *, const std::int32_t *, i64, i64, const VocabRange &);
ATP_INSTANTIATE(float)
ATP_INSTANTIATE(double)
#undef ATP_INSTANTIATE

} // namespace atp::cpu
