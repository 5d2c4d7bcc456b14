/* kernels_cuda_sdpa_stub.cpp - without cuDNN (runtime/kernels.cmake found none) attention stays on our kernels:
   neither call takes anything. */
#include "kernels_cuda_sdpa.h"

namespace atp::kcuda::cudnn_sdpa {

std::string library(const AttentionDims & /*a*/) { return ""; }

Result<bool> forward(cudaStream_t, void *, float *, const void *, const void *, const void *, const AttentionDims &) {
  return false;
}

Result<bool> backward(cudaStream_t, void *, void *, void *, const void *, const void *, const void *, const void *,
                      const void *, const float *, const AttentionDims &) {
  return false;
}

} // namespace atp::kcuda::cudnn_sdpa
