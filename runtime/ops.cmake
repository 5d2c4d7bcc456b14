# ops: the ZeRO engine's elementwise backends (include/atp/ops.h): the host one always; the CUDA one with
# AUTOTPC_ENABLE_CUDA (and the CUDA language), else a stub whose make_cuda_ops says it was not built.
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/ops_cpu.cpp)
if(AUTOTPC_ENABLE_CUDA AND CMAKE_CUDA_COMPILER AND EXISTS ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda.cu)
  list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda.cu)
elseif(EXISTS ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda_stub.cpp)
  list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda_stub.cpp)
endif()
