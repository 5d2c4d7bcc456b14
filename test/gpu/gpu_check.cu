/* gpu_check.cu - verifiable device buffers for the GPU tests and benchmarks (see gpu_check.h). */
#include "gpu_check.h"

#include "atp/check_cuda.h"

#include <algorithm>
#include <vector>

namespace atp::gpucheck {

namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 4096;

__host__ __device__ inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

unsigned blocks_for(std::uint64_t n) {
  const std::uint64_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < kMaxBlocks ? (b > 0 ? b : 1) : kMaxBlocks);
}

// ---------------------------------------------------------------------------------------------------------
// kernels

template <class T> __global__ void fill_pattern_kernel(T *data, std::uint64_t n, std::uint64_t key) {
  const std::uint64_t stride = std::uint64_t(gridDim.x) * blockDim.x;
  for (std::uint64_t e = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride)
    data[e] = T(splitmix64(key + e));
}

__global__ void count_mismatches_kernel(const unsigned char *a, const unsigned char *b, std::uint64_t n,
                                        unsigned long long *count) {
  const std::uint64_t stride = std::uint64_t(gridDim.x) * blockDim.x;
  unsigned long long mine = 0;
  for (std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    mine += a[i] != b[i];
  if (mine)
    atomicAdd(count, mine);
}

__global__ void busy_wait_kernel(std::uint64_t ns) {
  std::uint64_t start = 0, now = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    __nanosleep(1000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}

} // namespace

// ---------------------------------------------------------------------------------------------------------
// launchers

Status fill_pattern(void *data, std::size_t nbytes, std::size_t elem, std::uint64_t seed, std::uint64_t tag,
                    cudaStream_t stream) {
  const std::uint64_t key = splitmix64(seed ^ splitmix64(tag)), n = nbytes / elem;
  if (n == 0)
    return Status();
  switch (elem) {
  case 1:
    fill_pattern_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<std::uint8_t *>(data), n, key);
    break;
  case 2:
    fill_pattern_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<std::uint16_t *>(data), n, key);
    break;
  case 4:
    fill_pattern_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<std::uint32_t *>(data), n, key);
    break;
  case 8:
    fill_pattern_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<std::uint64_t *>(data), n, key);
    break;
  default:
    return error("fill_pattern: element size " + std::to_string(elem) + " is not 1, 2, 4 or 8");
  }
  ATP_CUDA_TRY(cudaGetLastError());
  return Status();
}

Status busy_wait(double microseconds, cudaStream_t stream) {
  busy_wait_kernel<<<1, 1, 0, stream>>>(std::uint64_t(microseconds * 1000.0));
  ATP_CUDA_TRY(cudaGetLastError());
  return Status();
}

Result<double> median_device_ms(cudaStream_t stream, const std::function<void(int)> &enqueue,
                                const Timing &timing) {
  if (timing.reps < 1 || timing.warmup < 0)
    return error("median_device_ms: " + std::to_string(timing.reps) + " reps after " +
                 std::to_string(timing.warmup) + " warm-up calls; need reps >= 1 and warmup >= 0");
  for (int i = 0; i < timing.warmup; ++i)
    enqueue(i);
  ATP_CUDA_TRY(cudaStreamSynchronize(stream));
  const std::size_t reps = std::size_t(timing.reps);
  std::vector<cudaEvent_t> start(reps, nullptr), stop(reps, nullptr);
  struct Destroy { // the events go on every path out
    std::vector<cudaEvent_t> &a, &b;
    ~Destroy() {
      for (auto *v : {&a, &b})
        for (cudaEvent_t e : *v)
          if (e)
            cudaEventDestroy(e);
    }
  } destroy{start, stop};
  for (std::size_t i = 0; i < reps; ++i) {
    ATP_CUDA_TRY(cudaEventCreate(&start[i]));
    ATP_CUDA_TRY(cudaEventCreate(&stop[i]));
  }
  if (timing.busy_once_us > 0)
    ATP_TRY(busy_wait(timing.busy_once_us, stream));
  for (std::size_t i = 0; i < reps; ++i) {
    if (timing.busy_each_us > 0)
      ATP_TRY(busy_wait(timing.busy_each_us, stream)); // covers the host's queueing of this rep
    ATP_CUDA_TRY(cudaEventRecord(start[i], stream));
    enqueue(timing.warmup + int(i));
    ATP_CUDA_TRY(cudaEventRecord(stop[i], stream));
  }
  ATP_CUDA_TRY(cudaStreamSynchronize(stream));
  std::vector<double> ms(reps);
  for (std::size_t i = 0; i < reps; ++i) {
    float t = 0;
    ATP_CUDA_TRY(cudaEventElapsedTime(&t, start[i], stop[i]));
    ms[i] = t;
  }
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2];
}

Result<std::uint64_t> count_mismatches(const void *a, const void *b, std::size_t nbytes, cudaStream_t stream) {
  unsigned long long *count = nullptr, host = 0;
  ATP_CUDA_TRY(cudaMallocAsync(&count, sizeof *count, stream));
  ATP_CUDA_TRY(cudaMemsetAsync(count, 0, sizeof *count, stream));
  if (nbytes > 0) {
    count_mismatches_kernel<<<blocks_for(nbytes / 16), kThreads, 0, stream>>>(
        static_cast<const unsigned char *>(a), static_cast<const unsigned char *>(b), nbytes, count);
    ATP_CUDA_TRY(cudaGetLastError());
  }
  ATP_CUDA_TRY(cudaMemcpyAsync(&host, count, sizeof host, cudaMemcpyDeviceToHost, stream));
  ATP_CUDA_TRY(cudaFreeAsync(count, stream));
  ATP_CUDA_TRY(cudaStreamSynchronize(stream));
  return std::uint64_t(host);
}

} // namespace atp::gpucheck
