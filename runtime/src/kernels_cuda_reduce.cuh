/* kernels_cuda_reduce.cuh - deterministic block reductions for the CUDA kernels (kernels_cuda.h).

   A fixed tree over shared memory for a block of exactly kBlock threads: the bits depend on the values and
   on kBlock only, never on timing. The result is returned to every thread. */
#pragma once

#include "kernels_cuda.h"

namespace atp::kcuda {

/// Sum of `v` over the block (every thread must call it; blockDim.x == kBlock).
template <class T> __device__ T block_sum(T v) {
  __shared__ T buf[kBlock];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half)
      buf[threadIdx.x] += buf[threadIdx.x + half];
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads(); // buf may be reused by the next call
  return r;
}

/// Maximum of `v` over the block (every thread must call it; blockDim.x == kBlock).
template <class T> __device__ T block_max(T v) {
  __shared__ T buf[kBlock];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half)
      buf[threadIdx.x] = buf[threadIdx.x] > buf[threadIdx.x + half] ? buf[threadIdx.x] : buf[threadIdx.x + half];
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads();
  return r;
}

} // namespace atp::kcuda
