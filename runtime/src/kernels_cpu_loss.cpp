/* kernels_cpu_loss.cpp - token cross-entropy with the softmax backward fused in, on the host.

   Per row: lse = max + log(sum exp(x - max)) with the sum in double; loss = lse - x[target]. The loss is
   returned summed (the caller divides by the global count), and the gradient of the mean is written over
   the logits: (softmax - onehot) * grad_scale / denominator, zero on ignored rows. All targets are
   checked first, so a bad one leaves the logits untouched. */
#include "kernels_cpu.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace atp::cpu {

template <class T>
Result<CrossEntropySum> cross_entropy(T *logits, const std::int32_t *targets, const CrossEntropyArgs &a) {
  for (i64 t = 0; t < a.rows; ++t)
    if (targets[t] != a.ignore_index && (targets[t] < 0 || targets[t] >= a.vocab))
      return error("cross_entropy: target " + std::to_string(targets[t]) + " at row " + std::to_string(t) +
                   " is outside the vocabulary [0, " + std::to_string(a.vocab) + ") and is not the ignore_index " +
                   std::to_string(a.ignore_index));
  CrossEntropySum result;
  const double g = a.write_grad ? a.grad_scale / double(a.denominator) : 0.0;
  for (i64 t = 0; t < a.rows; ++t) {
    T *row = logits + t * a.vocab;
    if (targets[t] == a.ignore_index) {
      if (a.write_grad)
        std::fill(row, row + a.vocab, T(0));
      continue;
    }
    const T m = *std::max_element(row, row + a.vocab);
    double sum = 0.0;
    for (i64 j = 0; j < a.vocab; ++j)
      sum += double(std::exp(row[j] - m));
    const double lse = double(m) + std::log(sum);
    result.loss_sum += lse - double(row[targets[t]]);
    ++result.count;
    if (!a.write_grad)
      continue;
    for (i64 j = 0; j < a.vocab; ++j)
      row[j] = T(double(std::exp(T(double(row[j]) - lse))) * g);
    row[targets[t]] = T(double(row[targets[t]]) - g);
  }
  return result;
}

#define ATP_INSTANTIATE(T)                                                                                      \
  template Result<CrossEntropySum> cross_entropy<T>(T *, const std::int32_t *, const CrossEntropyArgs &);
ATP_INSTANTIATE(float)
ATP_INSTANTIATE(double)
#undef ATP_INSTANTIATE

} // namespace atp::cpu
