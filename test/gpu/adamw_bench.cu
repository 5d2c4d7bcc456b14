/* adamw_bench.cu - the CUDA ops (make_cuda_ops) on a large ZeRO partition against cudaMemcpyAsync.

   N fp32 elements (default 2^28 = 256M, a 1 GiB master partition; `adamw_bench N` for another size), values
   like a real optimizer state (weights ~0.05, gradients ~1, m ~1e-3, v ~1e-6, v >= 0), made on the device.
   Each op: the median of kReps device times (cudaEvents) after kWarmup, the GPU held busy (busy_wait) while
   the host queues each rep, so launch costs stay outside the events; grad_stats includes its answer's trip
   back to the host, as the engine sees it. Bandwidth counts bytes read + bytes written at the fewest a
   kernel could move:
     copy D2D (cudaMemcpyAsync, 4N bytes)  8 B/element   the ceiling, measured in the same run
     adamw + bf16 copy                      30 B          reads p, g, m, v (16), writes p, m, v (12) + 2
     adamw, no copy                         28 B
     adamw + bf16, arrays 1 element off     30 B          the head-peel path (misaligned partition start)
     adamw, bf16 grads + bf16 copy          28 B          stage 1: the working gradients read directly
     grad_stats f32, 1 span / 4096 spans    4 B
     grad_stats bf16, 1 span / 4096 spans   2 B           the norm (and fp16's overflow check) at stage 1
     cast f32 -> bf16, bf16 -> f32          6 B
     accumulate bf16 into f32               10 B
     boundary, stage 1 bf16, old           46 B          cast bf16 -> f32 grads (6), sum_squares f32 (4),
                                                          adamw f32 grads (30), zero bf16 + f32 grads (6)
     boundary, stage 1 bf16, new           32 B          grad_stats bf16 (2), adamw bf16 grads (28),
                                                          zero bf16 grads (2)
   and the table gives GB/s and the ratio to the copy's GB/s (goal for AdamW: >= 0.85). Benchmarks print,
   they do not judge: exit 0 unless a call fails.

   Predicted on an H200 (HBM3e, 4.8 TB/s peak) before any run, N = 2^28:
     copy D2D ~4.0 TB/s read+write (8 B x 2^28 = 2.15 GB in ~0.54 ms);
     adamw + bf16 ~3.6-3.8 TB/s, ratio 0.90-0.95 (8.05 GB in ~2.2 ms): 7 streams at once instead of 2, and
       about 60 instructions an element (2 IEEE divisions, 1 IEEE square root), well under the issue rate;
     adamw no copy ~ the same GB/s (7.5 GB in ~2.0 ms);
     misaligned adamw ~ the same: only a 7-element head differs;
     sum_squares ~4.0-4.4 TB/s, ratio ~1.0-1.1 (read-only streams run a little faster than copies), 1.07 GB
       in ~0.26 ms including ~15 us of launch, span upload and the 8-byte answer; 4096 spans the same;
     cast and accumulate ~3.6-3.9 TB/s, ratio ~0.9-0.95 (1.6 GB in ~0.43 ms, 2.7 GB in ~0.72 ms).
   Predicted for the stage-1 rows (before a run): adamw with bf16 grads ~ the f32-grads GB/s, so ~7% less
   time; grad_stats bf16 ~ half the f32 time plus the same ~15 us; the boundary new/old ~ 32/46 = 0.70 of the
   time (the engine's optimizer step for 1.236 B elements: ~15.5 ms -> ~10.5 ms at ~3.7 TB/s). */
#include "gpu_check.h"

#include "atp/check_cuda.h"
#include "atp/ops.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

using namespace atp;

namespace {

constexpr int kWarmup = 3, kReps = 25;

// ---------------------------------------------------------------------------------------------------------
// kernels

/// x[i] = (u * scale)^(square ? 2 : 1), u uniform in [-1, 1) from a hash of (seed, i).
__global__ void init_kernel(float *x, std::size_t n, std::uint64_t seed, float scale, bool square) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    std::uint64_t h = seed + i * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    const float v = (float(h >> 40) * 0x1p-23f - 1.0f) * scale;
    x[i] = square ? v * v : v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// launchers

void init(float *x, std::size_t n, std::uint64_t seed, float scale, bool square, cudaStream_t stream) {
  init_kernel<<<1024, 256, 0, stream>>>(x, n, seed, scale, square);
  ATP_CUDA_CHECK(cudaGetLastError());
}

struct Row {
  std::string name;
  double bytes_per_element, ms;
};

} // namespace

int main(int argc, char **argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : std::size_t(1) << 28;
  cudaStream_t stream = nullptr;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::unique_ptr<Ops> ops = ATP_CHECK_OK(make_cuda_ops(stream));
  cudaDeviceProp prop{};
  ATP_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));

  // One element more than n, so that the misaligned run can start 1 element in.
  auto alloc = [&](std::size_t bytes) { return ATP_CHECK_OK(ops->alloc(bytes)); };
  float *p = static_cast<float *>(alloc((n + 1) * 4)), *g = static_cast<float *>(alloc((n + 1) * 4));
  float *m = static_cast<float *>(alloc((n + 1) * 4)), *v = static_cast<float *>(alloc((n + 1) * 4));
  void *out = alloc((n + 1) * 2), *copy_src = alloc(n * 4), *copy_dst = alloc(n * 4), *g16 = alloc(n * 2);
  init(p, n + 1, 1, 0.05f, false, stream);
  init(g, n + 1, 2, 1.0f, false, stream);
  init(m, n + 1, 3, 1e-3f, false, stream);
  init(v, n + 1, 4, 1e-3f, true, stream);
  init(static_cast<float *>(copy_src), n, 5, 1.0f, false, stream);
  ATP_CHECK_OK(ops->cast(g16, DType::BF16, g, DType::F32, n));

  AdamWStep step{};
  step.lr = 1e-4f, step.beta1 = 0.9f, step.beta2 = 0.999f, step.eps = 1e-8f, step.weight_decay = 0.01f;
  step.bias_correction1 = 0.1f, step.bias_correction2 = 0.001f; // step 1
  step.adam_w_mode = true, step.grad_scale = 1.0f / 1024.0f;
  std::vector<GradSpan> one = {{0, std::int64_t(n), true}}, many;
  for (std::int64_t s = 0; s < 4096; ++s) // parameter-like pieces of uneven size covering [0, n)
    many.push_back({std::int64_t(n) * s / 4096, std::int64_t(n) * (s + 1) / 4096, true});

  std::vector<Row> rows;
  auto time = [&](const char *name, double bpe, const std::function<void()> &op) {
    // busy_wait before each rep covers the host's queueing of that rep
    const double ms = ATP_CHECK_OK(gpucheck::median_device_ms(stream, [&](int) { op(); }, {kWarmup, kReps, 0, 200}));
    rows.push_back({name, bpe, ms});
  };
  time("copy D2D (cudaMemcpyAsync)", 8, [&] {
    ATP_CUDA_CHECK(cudaMemcpyAsync(copy_dst, copy_src, n * 4, cudaMemcpyDeviceToDevice, stream));
  });
  const DType f32 = DType::F32, bf16 = DType::BF16;
  time("adamw + bf16 copy", 30, [&] { ATP_CHECK_OK(ops->adamw(p, g, f32, m, v, n, step, out, bf16)); });
  time("adamw, no copy", 28, [&] { ATP_CHECK_OK(ops->adamw(p, g, f32, m, v, n, step, nullptr, bf16)); });
  time("adamw + bf16, 1 element off", 30, [&] {
    ATP_CHECK_OK(ops->adamw(p + 1, g + 1, f32, m + 1, v + 1, n, step, static_cast<std::uint16_t *>(out) + 1, bf16));
  });
  time("adamw, bf16 grads + bf16 copy", 28, [&] { ATP_CHECK_OK(ops->adamw(p, g16, bf16, m, v, n, step, out, bf16)); });
  time("grad_stats f32, 1 span", 4, [&] { (void)ATP_CHECK_OK(ops->grad_stats(g, f32, one.data(), one.size())); });
  time("grad_stats f32, 4096 spans", 4,
       [&] { (void)ATP_CHECK_OK(ops->grad_stats(g, f32, many.data(), many.size())); });
  time("grad_stats bf16, 1 span", 2, [&] { (void)ATP_CHECK_OK(ops->grad_stats(g16, bf16, one.data(), one.size())); });
  time("grad_stats bf16, 4096 spans", 2,
       [&] { (void)ATP_CHECK_OK(ops->grad_stats(g16, bf16, many.data(), many.size())); });
  time("cast f32 -> bf16", 6, [&] { ATP_CHECK_OK(ops->cast(out, DType::BF16, g, DType::F32, n)); });
  time("cast bf16 -> f32", 6, [&] { ATP_CHECK_OK(ops->cast(copy_dst, DType::F32, out, DType::BF16, n)); });
  time("accumulate bf16 into f32", 10, [&] { ATP_CHECK_OK(ops->accumulate(static_cast<float *>(copy_dst), out,
                                                                          DType::BF16, n)); });
  // The optimizer's passes at a stage-1 bf16 boundary (DP 1), before and after reading the working gradients
  // directly; copy_dst stands in for the fp32 gradients. The gradients are zeroed after each step, as in the
  // engine, so later reps run on zero gradients: the same bytes.
  time("boundary, stage 1 bf16, old", 46, [&] {
    ATP_CHECK_OK(ops->cast(copy_dst, f32, g16, bf16, n));
    (void)ATP_CHECK_OK(ops->grad_stats(copy_dst, f32, many.data(), many.size()));
    ATP_CHECK_OK(ops->adamw(p, copy_dst, f32, m, v, n, step, out, bf16));
    ATP_CHECK_OK(ops->zero(g16, n * 2));
    ATP_CHECK_OK(ops->zero(copy_dst, n * 4));
  });
  time("boundary, stage 1 bf16, new", 32, [&] {
    (void)ATP_CHECK_OK(ops->grad_stats(g16, bf16, many.data(), many.size()));
    ATP_CHECK_OK(ops->adamw(p, g16, bf16, m, v, n, step, out, bf16));
    ATP_CHECK_OK(ops->zero(g16, n * 2));
  });
  const std::vector<GradSpan> all_p = {{0, std::int64_t(n), false}};
  const bool finite = !ATP_CHECK_OK(ops->grad_stats(p, f32, all_p.data(), 1)).nonfinite &&
                      !ATP_CHECK_OK(ops->grad_stats(v, f32, all_p.data(), 1)).nonfinite;

  std::printf("adamw_bench: %s, %d SMs, N = %zu fp32 elements, median of %d reps\n", prop.name,
              prop.multiProcessorCount, n, kReps);
  std::printf("%-30s %8s %10s %10s %8s\n", "op", "B/elem", "ms", "GB/s", "vs copy");
  const double copy_gbs = 8.0 * double(n) / (rows[0].ms * 1e6);
  for (const Row &r : rows) {
    const double gbs = r.bytes_per_element * double(n) / (r.ms * 1e6);
    std::printf("%-30s %8.0f %10.3f %10.1f %8.2f\n", r.name.c_str(), r.bytes_per_element, r.ms, gbs, gbs / copy_gbs);
  }
  std::printf("adamw + bf16 copy: %.2f of the copy's bandwidth (goal >= 0.85)%s\n",
              30.0 * double(n) / (rows[1].ms * 1e6) / copy_gbs, finite ? "" : "; WARNING: weights went non-finite");
  const double old_ms = rows[rows.size() - 2].ms, new_ms = rows.back().ms;
  std::printf("stage-1 bf16 boundary: new/old time %.2f; for 1.236e9 elements ~%.1f ms -> ~%.1f ms\n",
              new_ms / old_ms, old_ms * 1.236e9 / double(n), new_ms * 1.236e9 / double(n));

  for (void *b : {static_cast<void *>(p), static_cast<void *>(g), static_cast<void *>(m), static_cast<void *>(v),
                  out, copy_src, copy_dst, g16})
    ops->free(b);
  ops.reset();
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}
