/* kernels_cuda_loss.cu - token cross-entropy with the softmax backward fused in, on the GPU (kernels.h).

   The CPU backend's math per row: lse = max + log(sum exp(x - max)), the sum in double; loss = lse -
   x[target]; with write_grad the logits become (softmax - onehot) * grad_scale / denominator, zero on
   ignored rows. One block per row: one read of the row for its max and sum (online softmax, each thread's
   partial sum rescaled to the row max; block_max and block_sum: fixed trees), each row's loss into a scratch
   array, then ONE block adds the rows' losses in a fixed order: no atomics, the same sum every run. All
   targets are checked first (first_bad_index), so a bad one leaves the logits untouched (unless the caller
   checked them on the host: CrossEntropyArgs::targets_checked). The call returns
   the sum to the host, so it synchronizes the stream. BF16: the logits are widened as they are read and the
   dlogits rounded once to bf16 as they are written, in place (no fp32 [rows, vocab] copy); the target's
   element is computed whole, (softmax - 1) * scale, from the target logit kept in a register, rather than
   corrected after the store as F32 does (that would round twice). */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"
#include "kernels_cuda_reduce.cuh"

#include <cstdint>
#include <string>
#include <type_traits>

namespace atp::kcuda {

namespace {

struct Totals {
  double loss_sum;
  long long count;
};

template <class T>
__global__ void ce_row_kernel(T *logits, const std::int32_t *targets, i64 rows, i64 vocab, std::int32_t ignore,
                              double g, bool write_grad, double *row_loss) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    T *row = logits + t * vocab;
    const std::int32_t target = targets[t];
    if (target == ignore) {
      if (write_grad)
        for (i64 j = threadIdx.x; j < vocab; j += blockDim.x)
          row[j] = round_to<T>(0.0f);
      if (threadIdx.x == 0)
        row_loss[t] = 0.0;
      continue;
    }
    // One pass for the max and the sum (online softmax): each thread keeps its running max mt and its sum
    // st of exp(x - mt), rescaled when the max grows; then the block's max and the rescaled sums, through
    // fixed trees. Reads go 16 bytes at a time when the row allows.
    float mt = -INFINITY;
    double st = 0.0, poison = 0.0; // poison: NaN once the thread reads a NaN (st alone can lose it, below)
    auto take = [&](float x) {
      if (x != x)
        poison = double(NAN);
      if (x > mt) {
        st = st * double(expf(mt - x)) + 1.0;
        mt = x;
      } else if (x != -INFINITY) { // a -inf logit adds nothing (and -inf - -inf would be NaN)
        st += double(expf(x - mt));
      }
    };
    constexpr int kN = 16 / int(sizeof(T));
    struct alignas(16) V {
      T v[kN];
    };
    const bool vec = vocab % kN == 0 && reinterpret_cast<std::uintptr_t>(row) % 16 == 0;
    if (vec) {
      // A vector at a time: its max first, one rescale at most, then kN independent exponentials (the
      // element-at-a-time update is a serial chain through mt and st).
      const V *rv = reinterpret_cast<const V *>(row);
      for (i64 j = threadIdx.x; j < vocab / kN; j += blockDim.x) {
        const V x = rv[j];
        float xf[kN], mx = -INFINITY;
#pragma unroll
        for (int e = 0; e < kN; ++e)
          xf[e] = to_f32(x.v[e]), mx = fmaxf(mx, xf[e]);
        if (mx == -INFINITY) { // all -inf adds nothing; fmaxf skips NaN, which must still poison the sum
#pragma unroll
          for (int e = 0; e < kN; ++e)
            if (xf[e] != xf[e])
              poison = double(NAN); // not st: the next larger max resets st while mt is still -inf
          continue;
        }
        if (mx > mt) {
          st = mt == -INFINITY ? 0.0 : st * double(expf(mt - mx));
          mt = mx;
        }
        float part = 0.0f;
#pragma unroll
        for (int e = 0; e < kN; ++e)
          part += expf(xf[e] - mt);
        st += double(part);
      }
    } else {
      for (i64 j = threadIdx.x; j < vocab; j += blockDim.x)
        take(to_f32(row[j]));
    }
    const float m = block_max(mt);
    const float xt = to_f32(row[target]); // read by every thread before any write below (block_sum syncs)
    // A thread whose values were all -inf (or NaN) adds nothing but its poison.
    const double sum = block_sum((mt == -INFINITY ? 0.0 : st * double(expf(mt - m))) + poison);
    const double lse = double(m) + log(sum);
    if (threadIdx.x == 0)
      row_loss[t] = lse - double(xt);
    if (!write_grad)
      continue;
    if (vec) {
      V *rv = reinterpret_cast<V *>(row);
      // BF16 in float: the result keeps 8 bits, and rounding lse and g to float (2^-24 relative: an absolute
      // 2^-24 |lse| in the exponent) moves it far less unless |lse| nears 2^15. Double conversions bounded this
      // pass (2.2 ms for 8192 rows of 128256 on an H200, ~1.4x the time its memory traffic needs). F32 keeps
      // double.
      const float lse_f = float(lse), g_f = float(g);
      for (i64 j = threadIdx.x; j < vocab / kN; j += blockDim.x) {
        V x = rv[j];
#pragma unroll
        for (int e = 0; e < kN; ++e)
          if constexpr (std::is_same_v<T, float>)
            x.v[e] = round_to<T>(double(expf(float(double(to_f32(x.v[e])) - lse))) * g);
          else
            x.v[e] = round_to<T>(expf(to_f32(x.v[e]) - lse_f) * g_f);
        rv[j] = x;
      }
    } else {
      for (i64 j = threadIdx.x; j < vocab; j += blockDim.x)
        row[j] = round_to<T>(double(expf(float(double(to_f32(row[j])) - lse))) * g);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      if constexpr (std::is_same_v<T, float>)
        row[target] = float(double(row[target]) - g);
      else
        row[target] = round_to<T>(double(expf(float(double(xt) - lse))) * g - g);
    }
  }
}

/// One block: the rows' losses and the non-ignored count, each thread's share in row order, then the tree.
__global__ void ce_total_kernel(const double *row_loss, const std::int32_t *targets, i64 rows, std::int32_t ignore,
                                Totals *out) {
  double s = 0.0;
  long long c = 0;
  for (i64 t = threadIdx.x; t < rows; t += blockDim.x) {
    s += row_loss[t];
    c += targets[t] != ignore;
  }
  s = block_sum(s);
  c = block_sum(c);
  if (threadIdx.x == 0)
    *out = Totals{s, c};
}

} // namespace

template <class T>
Result<CrossEntropySum> cross_entropy(cudaStream_t st, T *logits, const std::int32_t *targets,
                                      const CrossEntropyArgs &a) {
  if (!a.targets_checked) {
    std::int32_t bad = 0;
    ATP_ASSIGN_OR_RETURN(const i64 row, first_bad_index(targets, a.rows, 0, a.vocab, true, a.ignore_index, &bad, st));
    if (row >= 0)
      return error("cross_entropy: target " + std::to_string(bad) + " at row " + std::to_string(row) +
                   " is outside the vocabulary [0, " + std::to_string(a.vocab) + ") and is not the ignore_index " +
                   std::to_string(a.ignore_index));
  }
  const double g = a.write_grad ? a.grad_scale / double(a.denominator) : 0.0;
  double *row_loss = nullptr;
  Totals *dev_totals = nullptr;
  ATP_CUDA_TRY(cudaMallocAsync(&row_loss, std::size_t(a.rows) * sizeof(double) + sizeof(Totals), st));
  dev_totals = reinterpret_cast<Totals *>(row_loss + a.rows); // 8-byte aligned: after whole doubles
  Totals host{0.0, 0};
  Status run = [&]() -> Status {
    const unsigned grid = unsigned(a.rows < 65535 * 4 ? a.rows : 65535 * 4);
    ce_row_kernel<<<grid, kBlock, 0, st>>>(logits, targets, a.rows, a.vocab, a.ignore_index, g, a.write_grad, row_loss);
    ATP_CUDA_TRY(cudaGetLastError());
    ce_total_kernel<<<1, kBlock, 0, st>>>(row_loss, targets, a.rows, a.ignore_index, dev_totals);
    ATP_CUDA_TRY(cudaGetLastError());
    ATP_CUDA_TRY(cudaMemcpyAsync(&host, dev_totals, sizeof host, cudaMemcpyDeviceToHost, st));
    ATP_CUDA_TRY(cudaStreamSynchronize(st));
    return {};
  }();
  const cudaError_t freed = cudaFreeAsync(row_loss, st);
  ATP_TRY(std::move(run));
  ATP_CUDA_TRY(freed);
  CrossEntropySum result;
  result.loss_sum = host.loss_sum;
  result.count = host.count;
  return result;
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template Result<CrossEntropySum> cross_entropy<T>(cudaStream_t, T *, const std::int32_t *, const CrossEntropyArgs &);
ATP_KCUDA_FOR_EACH_ELEMENT(ATP_INSTANTIATE)
#undef ATP_INSTANTIATE

} // namespace atp::kcuda
