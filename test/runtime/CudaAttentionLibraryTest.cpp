//===- CudaAttentionLibraryTest.cpp - cuda_attention_library names the cuDNN loaded ------------------------===//
//
// Where the runtime has cuDNN (ATP_RUNTIME_HAS_CUDNN), the name is "cuDNN M.m.p" of the library loaded, which
// on a machine whose headers and library are one install equals the headers' CUDNN_MAJOR/MINOR/PATCHLEVEL (the
// independent reference). Elsewhere, and with ATP_ATTENTION=flash, it is empty. No GPU needed: cudnnGetVersion
// reads the library only.
//
//===----------------------------------------------------------------------===//
#include "atp/kernels.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#if ATP_RUNTIME_HAS_CUDNN
#include <cudnn_version.h>
#endif

namespace {

TEST(CudaAttentionLibrary, NamesTheCudnnLoaded) {
#if ATP_RUNTIME_HAS_CUDNN
  const std::string headers = "cuDNN " + std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." +
                              std::to_string(CUDNN_PATCHLEVEL);
  EXPECT_EQ(atp::cuda_attention_library(), headers);
#else
  EXPECT_EQ(atp::cuda_attention_library(), "");
#endif
  ::setenv("ATP_ATTENTION", "flash", 1); // attention stays on our kernels: no cuDNN to name
  EXPECT_EQ(atp::cuda_attention_library(), "");
  ::unsetenv("ATP_ATTENTION");
}

} // namespace
