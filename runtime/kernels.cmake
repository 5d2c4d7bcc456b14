# kernels: the forward/backward kernels of the generated model (include/atp/kernels.h).
# The argument checks and the rotary frequencies are backend-neutral and always built. The CPU kernels need
# a CBLAS: OpenBLAS (Debian libopenblas-dev, threaded), found with pkg-config. Without it (the GPU machine's
# runtime) make_cpu_kernels is a stub that says so, and the rest of the runtime builds as before.
# AUTOTPC_CPU_KERNELS: unset = use OpenBLAS when found; ON = require it; OFF = never.
# The CUDA kernels (kernels_cuda*.cu, F32 and BF16; GEMMs through cuBLAS for F32, cuBLASLt for BF16) are
# built as ops_cuda.cu is (runtime/ops.cmake): with AUTOTPC_ENABLE_CUDA and the CUDA language enabled
# (comm.cmake); otherwise kernels_cuda_stub.cpp's make_cuda_kernels says they were not built.
list(APPEND ATP_RUNTIME_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/src/kernels_check.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/kernels_rope.cpp
)
get_property(_atp_kernel_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
if(AUTOTPC_ENABLE_CUDA AND "CUDA" IN_LIST _atp_kernel_languages)
  message(STATUS "autotpc runtime: CUDA kernels on (F32 through cuBLAS, BF16 through cuBLASLt)")
  foreach(part "" _lt _linear _embedding _norm _elementwise _attention _flash_fwd _flash_bwd _loss)
    list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cuda${part}.cu)
  endforeach()
  list(APPEND ATP_RUNTIME_LIBS CUDA::cublas CUDA::cublasLt)
  # cuDNN 9 (the CUDA toolkit's or the system's) for BF16 attention, forward and backward (kernels_cuda_sdpa.cpp);
  # without it attention stays on our flash kernels. AUTOTPC_CUDNN=OFF leaves it out. The global property
  # ATP_RUNTIME_HAS_CUDNN tells the GPU tests which paths to expect.
  set(_atp_cudnn FALSE)
  if(NOT DEFINED AUTOTPC_CUDNN OR AUTOTPC_CUDNN)
    find_library(ATP_RUNTIME_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_BIN_DIR}/../lib
                 ${CUDAToolkit_BIN_DIR}/../lib64)
    find_path(ATP_RUNTIME_CUDNN_INCLUDE_DIR cudnn_graph.h HINTS ${CUDAToolkit_INCLUDE_DIRS}
              ${CUDAToolkit_BIN_DIR}/../include)
    if(ATP_RUNTIME_CUDNN_LIBRARY AND ATP_RUNTIME_CUDNN_INCLUDE_DIR)
      set(_atp_cudnn TRUE)
    endif()
  endif()
  if(_atp_cudnn)
    message(STATUS "autotpc runtime: cuDNN attention on (${ATP_RUNTIME_CUDNN_LIBRARY})")
    list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cuda_sdpa.cpp)
    list(APPEND ATP_RUNTIME_LIBS ${ATP_RUNTIME_CUDNN_LIBRARY})
    set(ATP_RUNTIME_PRIVATE_INCLUDES ${ATP_RUNTIME_CUDNN_INCLUDE_DIR})
  else()
    message(STATUS "autotpc runtime: cuDNN attention off (no cuDNN 9 found, or AUTOTPC_CUDNN=OFF)")
    list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cuda_sdpa_stub.cpp)
  endif()
  set_property(GLOBAL PROPERTY ATP_RUNTIME_HAS_CUDNN ${_atp_cudnn})
else()
  list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cuda_stub.cpp)
endif()
set(_atp_openblas_found FALSE)
if(NOT DEFINED AUTOTPC_CPU_KERNELS OR AUTOTPC_CPU_KERNELS)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(ATP_OPENBLAS QUIET IMPORTED_TARGET GLOBAL openblas)
    set(_atp_openblas_found ${ATP_OPENBLAS_FOUND})
  endif()
  if(AUTOTPC_CPU_KERNELS AND NOT _atp_openblas_found)
    message(FATAL_ERROR "AUTOTPC_CPU_KERNELS is ON but OpenBLAS was not found (pkg-config openblas): "
                        "install libopenblas-dev")
  endif()
endif()
if(_atp_openblas_found)
  message(STATUS "autotpc runtime: CPU kernels on (OpenBLAS ${ATP_OPENBLAS_VERSION})")
  list(APPEND ATP_RUNTIME_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_gemm.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_linear.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_embedding.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_norm.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_rope.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_elementwise.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_attention.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_loss.cpp
  )
  list(APPEND ATP_RUNTIME_LIBS PkgConfig::ATP_OPENBLAS)
  # The tests of the CPU kernels (test/runtime/kernels.cmake) are built only where the kernels are.
  set_property(GLOBAL PROPERTY ATP_HAVE_CPU_KERNELS TRUE)
else()
  message(STATUS "autotpc runtime: CPU kernels off (no OpenBLAS; see runtime/kernels.cmake)")
  list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/kernels_cpu_stub.cpp)
endif()
