/* kernels_cuda_sdpa_stub.cpp - without cuDNN (runtime/kernels.cmake found none) the attention forward stays on
   our kernels: forward() takes nothing. */
#include "kernels_cuda_sdpa.h"

namespace atp::kcuda::cudnn_sdpa {

Result<bool> forward(cudaStream_t, void *, float *, const void *, const void *, const void *, const AttentionDims &) {
  return false;
}

} // namespace atp::kcuda::cudnn_sdpa
