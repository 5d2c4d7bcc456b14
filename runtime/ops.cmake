# ops: the ZeRO engine's elementwise backends (include/atp/ops.h): the host one always; the CUDA one with
# AUTOTPC_ENABLE_CUDA (and the CUDA language), else a stub whose make_cuda_ops says it was not built. The
# rank's GPU and stream (include/atp/cuda_device.h) come with the CUDA ops, or as a stub without them.
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/ops_cpu.cpp)
# The CPU AdamW is the reference the CUDA one matches bit for bit: never let the host compiler fuse a*b+c
# (GCC does by default in GNU mode where the target has FMA, e.g. aarch64 or -march=native).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/src/ops_cpu.cpp PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
get_property(_atp_languages GLOBAL PROPERTY ENABLED_LANGUAGES) # CUDA once comm.cmake has enabled it
if(AUTOTPC_ENABLE_CUDA AND "CUDA" IN_LIST _atp_languages AND EXISTS ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda.cu)
  list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda.cu ${CMAKE_CURRENT_LIST_DIR}/src/cuda_device.cu)
elseif(EXISTS ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda_stub.cpp)
  list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/ops_cuda_stub.cpp
                                  ${CMAKE_CURRENT_LIST_DIR}/src/cuda_device_stub.cpp)
endif()
