/* shard_cuda_bench.cpp - shard_copy_device / gather_copy_device against cudaMemcpyAsync, on a generated plan.

   Built once per generated plan (gen::plan, named ATP_PLAN_NAME). For the big parameters (every 2-D one of
   layer 0, the embedding and lm_head), TP rank 0: the median time of kReps copies, after kWarmup, of
     shard   full -> local (shard_copy_device),
     gather  local -> full (gather_copy_device),
     memcpy  cudaMemcpyAsync device to device of the same local_nbytes,
   all in the same run. Bandwidth counts bytes read + bytes written (2 x local_nbytes) for all three, so the
   ratio ours / memcpy is a ratio of times (goal >= 0.9). Each rep uses the next of several buffer sets that
   together span kRotateBytes, so no rep finds its bytes in L2. Per-rep cudaEvents, with the GPU held busy
   (busy_wait) while the host queues every rep, so that only device time is measured. Then the whole
   model's shard of rank 0, one launch per parameter, against one memcpy of its total bytes, when the
   model fits in device memory. Prints a table; benchmarks print, they do not judge (exit 0). */
#include "gpu_check.h"
#include "plan.h"

#include "atp/check_cuda.h"
#include "atp/shard.h"
#include "atp/shard_cuda.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace atp;

namespace {

constexpr int kWarmup = 3, kReps = 25;
constexpr std::size_t kRotateBytes = std::size_t(1) << 30;
constexpr std::size_t kAlign = 256;

std::size_t aligned(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
std::size_t full_nbytes(const ParamPlan &p) { return std::size_t(p.rows) * std::size_t(p.cols) * dtype_size(p.dtype); }

/// Median device time in ms of enqueue(rep) for kReps reps, after kWarmup; the GPU held busy for 50 ms while
/// the host queues every rep.
double median_ms(cudaStream_t stream, const std::function<void(int)> &enqueue) {
  return ATP_CHECK_OK(gpucheck::median_device_ms(stream, enqueue, {kWarmup, kReps, 50000, 0}));
}

double worst_ratio = 1e9;

void print_row(const std::string &what, const char *op, int unit, std::size_t bytes, double ours_ms,
               double memcpy_ms) {
  const double gb = 2.0 * double(bytes) / 1e9, ratio = memcpy_ms / ours_ms;
  worst_ratio = std::min(worst_ratio, ratio);
  std::printf("%-46s %-7s %4d %10.1f %10.1f %12.1f %7.3f\n", what.c_str(), op, unit, double(bytes) / (1 << 20),
              gb / (ours_ms / 1e3), gb / (memcpy_ms / 1e3), ratio);
  std::fflush(stdout);
}

/// One parameter, TP rank 0, over rotating buffer sets.
void bench_param(const ParamPlan &p, cudaStream_t stream) {
  const std::size_t full = aligned(full_nbytes(p)), local = aligned(local_nbytes(p, 0)), bytes = local_nbytes(p, 0);
  const std::size_t sets = std::max<std::size_t>(1, std::min<std::size_t>(64, kRotateBytes / (full + local)));
  std::byte *arena = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&arena, sets * (full + local)));
  ATP_CUDA_CHECK(cudaMemsetAsync(arena, 0x3C, sets * (full + local), stream));
  auto full_at = [&](int i) { return arena + std::size_t(i) % sets * (full + local); };
  auto local_at = [&](int i) { return full_at(i) + full; };
  const double shard = median_ms(stream, [&](int i) {
    ATP_CHECK_OK(shard_copy_device(p, 0, full_at(i), local_at(i), stream));
  });
  const double gather = median_ms(stream, [&](int i) {
    ATP_CHECK_OK(gather_copy_device(p, 0, local_at(i), full_at(i), stream));
  });
  const double memcpy = median_ms(stream, [&](int i) {
    ATP_CUDA_CHECK(cudaMemcpyAsync(local_at(i), full_at(i), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  const int unit = device_copy_plan(p, 0, true, full_at(0), local_at(0)).unit;
  print_row(p.name, "shard", unit, bytes, shard, memcpy);
  print_row(p.name, "gather", unit, bytes, gather, memcpy);
  ATP_CUDA_CHECK(cudaFree(arena));
}

/// Every parameter's shard of TP rank 0 (one launch each), against one memcpy of as many bytes.
void bench_model(const ModelPlan &plan, cudaStream_t stream) {
  std::vector<std::size_t> full_at, local_at;
  std::size_t full = 0, local = 0, bytes = 0;
  for (int i = 0; i < plan.num_params; ++i) {
    full_at.push_back(full);
    local_at.push_back(local);
    full += aligned(full_nbytes(plan.params[i]));
    local += aligned(local_nbytes(plan.params[i], 0));
    bytes += local_nbytes(plan.params[i], 0);
  }
  std::size_t free_bytes = 0, total_bytes = 0;
  ATP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (full + local > free_bytes / 10 * 9) {
    std::printf("whole model: %.1f GiB do not fit in %.1f GiB of free device memory; skipped\n",
                double(full + local) / (1 << 30), double(free_bytes) / (1 << 30));
    return;
  }
  std::byte *f = nullptr, *l = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&f, full));
  ATP_CUDA_CHECK(cudaMalloc(&l, local));
  ATP_CUDA_CHECK(cudaMemsetAsync(f, 0x3C, full, stream));
  ATP_CUDA_CHECK(cudaMemsetAsync(l, 0x3C, local, stream));
  const double shard = median_ms(stream, [&](int) {
    for (int i = 0; i < plan.num_params; ++i)
      ATP_CHECK_OK(shard_copy_device(plan.params[i], 0, f + full_at[std::size_t(i)], l + local_at[std::size_t(i)],
                                     stream));
  });
  const double gather = median_ms(stream, [&](int) {
    for (int i = 0; i < plan.num_params; ++i)
      ATP_CHECK_OK(gather_copy_device(plan.params[i], 0, l + local_at[std::size_t(i)], f + full_at[std::size_t(i)],
                                      stream));
  });
  const double memcpy = median_ms(stream, [&](int) {
    ATP_CUDA_CHECK(cudaMemcpyAsync(l, f, bytes, cudaMemcpyDeviceToDevice, stream));
  });
  const std::string what = "whole model, " + std::to_string(plan.num_params) + " launches";
  print_row(what, "shard", 0, bytes, shard, memcpy);
  print_row(what, "gather", 0, bytes, gather, memcpy);
  ATP_CUDA_CHECK(cudaFree(f));
  ATP_CUDA_CHECK(cudaFree(l));
}

bool is_big(const ParamPlan &p) {
  const std::string name = p.name;
  return p.ndim == 2 && (name.find("layers.0.") != std::string::npos || name.find("layers.") == std::string::npos);
}

} // namespace

int main() {
  const ModelPlan &plan = gen::plan;
  int device = 0;
  cudaDeviceProp prop{};
  ATP_CUDA_CHECK(cudaGetDevice(&device));
  ATP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  cudaStream_t stream;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::printf("shard_cuda_bench: %s (tp %d) on %s, TP rank 0, median of %d, buffers rotating over %zu MiB\n",
              ATP_PLAN_NAME, plan.tp_size, prop.name, kReps, kRotateBytes >> 20);
  std::printf("%-46s %-7s %4s %10s %10s %12s %7s\n", "param", "op", "unit", "MiB", "ours GB/s", "memcpy GB/s",
              "ratio");
  for (int i = 0; i < plan.num_params; ++i)
    if (is_big(plan.params[i]))
      bench_param(plan.params[i], stream);
  bench_model(plan, stream);
  std::printf("shard_cuda_bench: %s: lowest ratio ours/memcpy %.3f (goal >= 0.9); GB/s count bytes read + "
              "written\n",
              ATP_PLAN_NAME, worst_ratio);
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}
