//===- CudaAttentionLibraryTest.cpp - cuda_attention_library names the cuDNN loaded ------------------------===//
//
// Where the runtime has cuDNN (ATP_RUNTIME_HAS_CUDNN), the name for attention dims that cuDNN is given is
// "cuDNN M.m.p" of the library loaded, which on a machine whose headers and library are one install equals the
// headers' CUDNN_MAJOR/MINOR/PATCHLEVEL (the independent reference). It is empty for dims our kernels take
// instead (a sliding window, a head_dim over 128 or not a multiple of 8; a sequence that is not a multiple of
// 128 up to cuDNN 9.15), elsewhere, and with ATP_ATTENTION=flash. No GPU needed: cudnnGetVersion reads the
// library only.
//
//===----------------------------------------------------------------------===//
#include "atp/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#if ATP_RUNTIME_HAS_CUDNN
#include <cudnn_version.h>
#endif

namespace {

/// Llama-3.2-1B's attention at seq 2048.
atp::AttentionDims llama() {
  atp::AttentionDims d;
  d.batch = 4, d.seq = 2048, d.q_heads = 32, d.kv_heads = 8, d.head_dim = 64;
  d.q_stride = d.k_stride = d.v_stride = (32 + 2 * 8) * 64;
  d.scale = 1.0 / std::sqrt(64.0);
  return d;
}

atp::AttentionDims with_head_dim(std::int64_t head_dim) {
  atp::AttentionDims d = llama();
  d.head_dim = head_dim;
  d.q_stride = d.k_stride = d.v_stride = (32 + 2 * 8) * head_dim;
  d.scale = 1.0 / std::sqrt(double(head_dim));
  return d;
}

TEST(CudaAttentionLibrary, NamesTheCudnnLoaded) {
#if ATP_RUNTIME_HAS_CUDNN
  const std::string headers = "cuDNN " + std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." +
                              std::to_string(CUDNN_PATCHLEVEL);
  const bool odd_seq = CUDNN_VERSION > 91500; // earlier, the backward needs seq % 128 == 0
#else
  const std::string headers;
  const bool odd_seq = false;
#endif
  EXPECT_EQ(atp::cuda_attention_library(llama()), headers);
  EXPECT_EQ(atp::cuda_attention_library(with_head_dim(128)), headers);
  EXPECT_EQ(atp::cuda_attention_library(with_head_dim(72)), headers);
  atp::AttentionDims seq = llama();
  seq.seq = 2000;
  EXPECT_EQ(atp::cuda_attention_library(seq), odd_seq ? headers : "");
  ::setenv("ATP_ATTENTION", "flash", 1); // attention stays on our kernels: no cuDNN to name
  EXPECT_EQ(atp::cuda_attention_library(llama()), "");
  ::unsetenv("ATP_ATTENTION");
}

TEST(CudaAttentionLibrary, EmptyForDimsOurKernelsTake) {
  atp::AttentionDims window = llama();
  window.sliding_window = 4096;
  EXPECT_EQ(atp::cuda_attention_library(window), "");
  EXPECT_EQ(atp::cuda_attention_library(with_head_dim(256)), "");
  EXPECT_EQ(atp::cuda_attention_library(with_head_dim(100)), "");
}

} // namespace
