/* kernels_cpu_stub.cpp - make_cpu_kernels in a runtime built without a CBLAS (runtime/kernels.cmake picks
   this file or the kernels_cpu_*.cpp files). Callers get an error Status that says why, not a link failure,
   so the CUDA machine's runtime (which has no OpenBLAS) still builds and links everything else. */
#include "atp/kernels.h"

namespace atp {

Result<std::unique_ptr<Kernels>> make_cpu_kernels(DType /*dtype*/, int /*blas_threads*/) {
  return error("make_cpu_kernels: the autotpc runtime was built without a CBLAS (install libopenblas-dev and "
               "reconfigure; see runtime/kernels.cmake)");
}

} // namespace atp
