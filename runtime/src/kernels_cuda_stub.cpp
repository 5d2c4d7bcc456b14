/* kernels_cuda_stub.cpp - make_cuda_kernels in a runtime built without the CUDA kernels (runtime/kernels.cmake).
   Callers get an error Status, so generated code can ask for the CUDA backend and report why it is missing. */
#include "atp/kernels.h"

namespace atp {

Result<std::unique_ptr<Kernels>> make_cuda_kernels(DType /*dtype*/, void * /*stream*/) {
  return error("make_cuda_kernels: the CUDA kernels are not built in this autotpc runtime");
}

std::string cuda_attention_library(const AttentionDims & /*dims*/) { return ""; }

} // namespace atp
