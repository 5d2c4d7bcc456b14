/* cuda_device_stub.cpp - cuda_device.h in builds without CUDA: no devices. */
#include "atp/cuda_device.h"

namespace atp {

int cuda_device_count() { return 0; }

Result<std::unique_ptr<CudaDevice>> CudaDevice::open(int) {
  return error("this runtime was built without CUDA (AUTOTPC_ENABLE_CUDA=OFF): train on the CPU (--device cpu)");
}

CudaDevice::~CudaDevice() = default;

Result<std::uint64_t> CudaDevice::memory_used() const { return error("no CUDA in this build"); }

} // namespace atp
