/* cuda_device.cu - one rank's GPU and stream (cuda_device.h). */
#include "atp/check_cuda.h"
#include "atp/cuda_device.h"

#include <cstdint>

namespace atp {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError(); // no driver or no device: not an error for a caller that only asks
    return 0;
  }
  return n;
}

Result<std::unique_ptr<CudaDevice>> CudaDevice::open(int local_rank) {
  const int n = cuda_device_count();
  if (n == 0)
    return error("no CUDA device is visible (CUDA_VISIBLE_DEVICES, driver)");
  const int index = (local_rank < 0 ? 0 : local_rank) % n;
  ATP_CUDA_TRY(cudaSetDevice(index));
  cudaDeviceProp prop{};
  ATP_CUDA_TRY(cudaGetDeviceProperties(&prop, index));
  // The kernels' stream-ordered scratch (cudaMallocAsync) comes from the device's default pool, which by
  // default hands its memory back to the driver at every synchronization: the next scratch after a sync (the
  // loss read-back, the norm, every call under train --profile) would be a fresh driver allocation. Keep it.
  cudaMemPool_t pool = nullptr;
  ATP_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, index));
  std::uint64_t keep = UINT64_MAX;
  ATP_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  int lowest = 0, highest = 0; // numerically: the lowest priority is the greatest number
  ATP_CUDA_TRY(cudaDeviceGetStreamPriorityRange(&lowest, &highest));
  cudaStream_t streams[3] = {}; // the model's, the engine's, the TP comm's
  const int priorities[3] = {highest, lowest, highest};
  for (int i = 0; i < 3; ++i)
    if (cudaError_t e = cudaStreamCreateWithPriority(&streams[i], cudaStreamNonBlocking, priorities[i]);
        e != cudaSuccess) {
      for (int j = 0; j < i; ++j)
        (void)cudaStreamDestroy(streams[j]);
      return cuda_status(e, "cudaStreamCreateWithPriority", __FILE__, __LINE__);
    }
  return std::unique_ptr<CudaDevice>(new CudaDevice(index, streams[0], streams[1], streams[2], prop.name,
                                                    std::string(prop.uuid.bytes, sizeof prop.uuid.bytes)));
}

CudaDevice::~CudaDevice() {
  for (void *s : {stream_, engine_stream_, tp_stream_})
    if (s) {
      (void)cudaStreamSynchronize(static_cast<cudaStream_t>(s));
      (void)cudaStreamDestroy(static_cast<cudaStream_t>(s));
    }
}

Result<std::uint64_t> CudaDevice::memory_used() const {
  std::size_t free_bytes = 0, total = 0;
  ATP_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total));
  return std::uint64_t(total - free_bytes);
}

} // namespace atp
