/* ops_cuda_stub.cpp - make_cuda_ops in a runtime built without CUDA (runtime/ops.cmake picks this file or
   ops_cuda.cu). The engine's callers see an error Status, not a link failure, so CPU-only builds and tests
   keep working and say why there is no GPU backend. */
#include "atp/ops.h"

namespace atp {

Result<std::unique_ptr<Ops>> make_cuda_ops(void * /*stream*/) {
  return error("make_cuda_ops: the autotpc runtime was built without CUDA (AUTOTPC_ENABLE_CUDA is off)");
}

} // namespace atp
