# comm: collectives over groups of ranks (include/atp/comm.h).
# The MPI backend is always built (it is also the NCCL bootstrap), and the TCP one (host comms for launches
# without MPI: torchrun); the NCCL backend only with
# AUTOTPC_ENABLE_CUDA, which defaults to ON when a CUDA compiler and NCCL are found.
find_package(MPI REQUIRED COMPONENTS CXX)
# The backend-independent parts (element types, group checks, timeout) live beside the MPI backend because
# both backends use MPI to know who this process is; mpi_internal.h is shared by the mpi_* files only.
list(APPEND ATP_RUNTIME_SOURCES src/comm_dtypes.cpp src/comm_common.cpp src/mpi_setup.cpp src/mpi_watchdog.cpp
                                src/comm_mpi.cpp src/comm_staged.cpp src/comm_tcp.cpp)
list(APPEND ATP_RUNTIME_LIBS MPI::MPI_CXX)

set(NCCL_HOME "$ENV{NCCL_HOME}" CACHE PATH "NCCL install prefix (include/nccl.h, lib/libnccl.so)")
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_HOME} PATH_SUFFIXES include PATHS /usr/local/cuda /usr)
find_library(NCCL_LIBRARY nccl HINTS ${NCCL_HOME} PATH_SUFFIXES lib lib64 PATHS /usr/local/cuda /usr)
if(NOT DEFINED AUTOTPC_ENABLE_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  set(_atp_cuda_default OFF)
  if(CMAKE_CUDA_COMPILER AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(_atp_cuda_default ON)
  endif()
  option(AUTOTPC_ENABLE_CUDA "Build the CUDA/NCCL parts of the runtime and their tests" ${_atp_cuda_default})
endif()

if(AUTOTPC_ENABLE_CUDA)
  find_package(CUDAToolkit REQUIRED)
  if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
    message(FATAL_ERROR "AUTOTPC_ENABLE_CUDA is ON but NCCL was not found: set NCCL_HOME")
  endif()
  if(NOT TARGET ATP::nccl)
    add_library(ATP::nccl UNKNOWN IMPORTED GLOBAL)
    set_target_properties(ATP::nccl PROPERTIES IMPORTED_LOCATION "${NCCL_LIBRARY}"
                                               INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
  endif()
  message(STATUS "autotpc runtime: NCCL backend on (${NCCL_LIBRARY})")
  # Host code only (CUDA runtime API and NCCL calls): compiled by the C++ compiler, no CUDA language needed.
  list(APPEND ATP_RUNTIME_SOURCES src/comm_nccl.cpp)
  list(APPEND ATP_RUNTIME_LIBS CUDA::cudart ATP::nccl)

  # Device code (shard_cuda.cu, ops_cuda.cu): the CUDA language, for H100/H200 (sm_90a) unless the caller
  # chose other architectures. The cache entry makes the default visible to every folder of the build.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90a CACHE STRING "CUDA architectures of the runtime's kernels")
  endif()
  enable_language(CUDA)
  # atp_cuda_options(target): for a target with .cu sources. Options the C++ build gives the target (the
  # sanitizers of AUTOTPC_SANITIZE from add_compile_options, the fuzzers' instrumentation that
  # test/fuzz adds to autotpc_runtime) reach only its C/C++ sources, since nvcc and its host compiler
  # reject them; autotpc_warnings' -Wall -Wextra -Werror apply to C/C++ as they are and to .cu files in
  # nvcc's spelling. EDG warning 2810 is suppressed: it fires on every assignment of a [[nodiscard]] class
  # (atp::Status), which g++ and clang accept. The CUDA runtime is the shared one, as CUDA::cudart. Done
  # once the whole project is read, so that options added after this call are covered too.
  function(atp_cuda_options target)
    cmake_language(EVAL CODE
      "cmake_language(DEFER DIRECTORY [[${CMAKE_SOURCE_DIR}]] CALL atp_cuda_options_now [[${target}]])")
  endfunction()
  function(atp_cuda_options_now target)
    get_target_property(inherited ${target} COMPILE_OPTIONS)
    set(host_only "")
    if(inherited)
      foreach(opt IN LISTS inherited)
        list(APPEND host_only "$<$<NOT:$<COMPILE_LANGUAGE:CUDA>>:${opt}>")
      endforeach()
    endif()
    set_property(TARGET ${target} PROPERTY COMPILE_OPTIONS "${host_only}")
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=2810>")
    if(TARGET autotpc_warnings)
      get_target_property(warnings autotpc_warnings INTERFACE_COMPILE_OPTIONS)
      set(nvcc_warnings -Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror)
      target_compile_options(${target} PRIVATE "$<$<NOT:$<COMPILE_LANGUAGE:CUDA>>:${warnings}>"
                                               "$<$<COMPILE_LANGUAGE:CUDA>:${nvcc_warnings}>")
    endif()
    set_property(TARGET ${target} PROPERTY CUDA_RUNTIME_LIBRARY Shared)
  endfunction()
else()
  list(APPEND ATP_RUNTIME_SOURCES src/comm_nccl_stub.cpp) # make_nccl_comm says it was not built
  message(STATUS "autotpc runtime: NCCL backend off (no CUDA compiler or no nccl.h; see AUTOTPC_ENABLE_CUDA)")
endif()
