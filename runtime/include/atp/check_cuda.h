/* check_cuda.h - CUDA and NCCL error checks (STYLE.md B7).

   Two forms of each check. Library code returns the error to its caller:
     ATP_CUDA_TRY(cudaMalloc(&p, n));   // returns an error Status from the enclosing function
     ATP_NCCL_TRY(ncclGroupEnd());
   and top-level code (a tool's main, a test, the generated main) ends the process through fail(), which runs
   the abort hooks (every live NCCL comm is aborted there, so that peers do not hang):
     ATP_CUDA_CHECK(cudaDeviceSynchronize());
   Messages name the call, file and line and carry the CUDA error name or NCCL's last error; fail() puts the
   rank and host in front:
     atp: error: rank 3/8 (host node1): CUDA call failed: 'cudaMalloc(&p, n)' at comm_nccl.cpp:88:
     cudaErrorMemoryAllocation: out of memory
   Include it only from CUDA builds (it includes cuda_runtime.h and nccl.h). */
#pragma once

#include "atp/status.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <string>

namespace atp {

// ---------------------------------------------------------------------------------------------------------
// details of an error

inline std::string cuda_error_detail(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

/// NCCL's error string plus its last error message (comm may be null, as nccl-tests passes it).
inline std::string nccl_error_detail(ncclResult_t r, ncclComm_t comm = nullptr) {
  std::string s = ncclGetErrorString(r);
  const char *last = ncclGetLastError(comm);
  if (last && *last)
    s += std::string(" (last error: ") + last + ")";
  return s;
}

inline std::string check_place(const char *what, const char *expr, const char *file, int line) {
  const char *slash = std::strrchr(file, '/');
  return std::string(what) + " failed: '" + expr + "' at " + (slash ? slash + 1 : file) + ":" + std::to_string(line);
}

// ---------------------------------------------------------------------------------------------------------
// checks

inline Status cuda_status(cudaError_t e, const char *expr, const char *file, int line) {
  return error(check_place("CUDA call", expr, file, line) + ": " + cuda_error_detail(e));
}
inline Status nccl_status(ncclResult_t r, const char *expr, const char *file, int line) {
  return error(check_place("NCCL call", expr, file, line) + ": " + nccl_error_detail(r));
}
inline void cuda_check(cudaError_t e, const char *expr, const char *file, int line) {
  if (e != cudaSuccess)
    fail("CUDA call", expr, file, line, cuda_error_detail(e));
}
inline void nccl_check(ncclResult_t r, const char *expr, const char *file, int line) {
  if (r != ncclSuccess && r != ncclInProgress)
    fail("NCCL call", expr, file, line, nccl_error_detail(r));
}

} // namespace atp

/// Returns an error Status from the enclosing function when a CUDA call fails.
#define ATP_CUDA_TRY(expr)                                                                                             \
  do {                                                                                                                 \
    cudaError_t atp_cuda_e_ = (expr);                                                                                  \
    if (atp_cuda_e_ != cudaSuccess)                                                                                    \
      return ::atp::cuda_status(atp_cuda_e_, #expr, __FILE__, __LINE__);                                               \
  } while (0)

/// Returns an error Status from the enclosing function when an NCCL call fails (ncclInProgress, the answer
/// of a non-blocking communicator, is not a failure).
#define ATP_NCCL_TRY(expr)                                                                                             \
  do {                                                                                                                 \
    ncclResult_t atp_nccl_r_ = (expr);                                                                                 \
    if (atp_nccl_r_ != ncclSuccess && atp_nccl_r_ != ncclInProgress)                                                   \
      return ::atp::nccl_status(atp_nccl_r_, #expr, __FILE__, __LINE__);                                               \
  } while (0)

/// Ends the process through fail() when a CUDA / NCCL call fails. For top-level code only.
#define ATP_CUDA_CHECK(expr) ::atp::cuda_check((expr), #expr, __FILE__, __LINE__)
#define ATP_NCCL_CHECK(expr) ::atp::nccl_check((expr), #expr, __FILE__, __LINE__)
