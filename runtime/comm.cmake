# comm: collectives over groups of ranks (include/atp/comm.h).
# The MPI backend is always built (it is also the NCCL bootstrap); the NCCL backend only with
# AUTOTPC_ENABLE_CUDA, which defaults to ON when a CUDA compiler and NCCL are found.
find_package(MPI REQUIRED COMPONENTS CXX)
list(APPEND ATP_RUNTIME_SOURCES src/comm_mpi.cpp)
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
  set_source_files_properties(src/comm_mpi.cpp PROPERTIES COMPILE_DEFINITIONS ATP_HAVE_NCCL=1)
else()
  message(STATUS "autotpc runtime: NCCL backend off (no CUDA compiler or no nccl.h; see AUTOTPC_ENABLE_CUDA)")
endif()
