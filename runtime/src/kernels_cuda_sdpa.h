/* kernels_cuda_sdpa.h - BF16 causal attention, forward and backward, through cuDNN's fused flash attention, built
   with cuDNN's backend graph API (kernels_cuda_sdpa.cpp). Built where cuDNN 9 is found (runtime/kernels.cmake);
   elsewhere both calls take nothing (kernels_cuda_sdpa_stub.cpp). */
#pragma once

#include "atp/kernels.h"

#include <cuda_runtime.h>

#include <string>

namespace atp::kcuda::cudnn_sdpa {

/// "cuDNN MAJOR.MINOR.PATCH" of the cuDNN loaded at run time when forward and backward below would take dims
/// of this kind (the rules that need no pointers, strides or plan); "" otherwise, and without cuDNN (the stub).
std::string library(const AttentionDims &a);

/// out [T, q_heads, head_dim] (dense) and lse [batch, q_heads, seq] of causal GQA attention, as the flash
/// forward writes them, when cuDNN takes the call: BF16, no sliding window, head_dim a multiple of 8 up to 128,
/// 16-byte aligned rows, and ATP_ATTENTION is not "flash". Returns false (nothing written) when it does not; the
/// caller runs its own kernels then. A shape's plan is built once, on first use (kernels_cuda_sdpa.cpp).
Result<bool> forward(cudaStream_t st, void *out, float *lse, const void *q, const void *k, const void *v,
                     const AttentionDims &a);

/// dq, dk, dv (the q, k, v row layouts) of the same attention from dout, the forward's out and lse, on cuDNN's
/// deterministic backward, under the forward's conditions and three more: seq >= 2, the cuDNN in use has no
/// known defect for the shape, and its scratch (the dP workspace, 2 bytes per score) fits the limit of
/// kernels_cuda_sdpa.cpp, batch by batch if need be. Returns false (nothing written) when cuDNN does not take it.
Result<bool> backward(cudaStream_t st, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                      const void *v, const void *out, const float *lse, const AttentionDims &a);

} // namespace atp::kcuda::cudnn_sdpa
