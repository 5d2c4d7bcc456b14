/* mpi_internal.h - what the MPI backend's files share (comm_mpi.cpp, mpi_setup.cpp, mpi_watchdog.cpp).

   Internal to the runtime, not installed: it names MPI types, which the public headers never do, so that
   code linking the runtime needs no mpi.h of its own. */
#pragma once

#include "atp/comm.h"

#include <mpi.h>

#include <cstdint>
#include <string>

namespace atp {
namespace mpi_detail {

/// MPI's text for an error code ("MPI error N" when MPI cannot say).
std::string mpi_error_string(int rc);

/// The MPI type a dtype travels as: its own, or MPI_UINT16_T for bf16 and f16.
MPI_Datatype mpi_type(DType dtype);

/// The MPI reduction for op on dtype: MPI's built-in ones, or mpi_init's float-rounding ops for bf16 and f16.
/// Avg reduces as Sum (the caller divides).
MPI_Op mpi_op(DType dtype, ReduceOp op);

/// Arms the watchdog for the lifetime of a call (nothing when the timeout is 0): past comm_timeout_s()
/// seconds, fail() names `what` and `mpi_call` and ends the job (mpi_watchdog.cpp).
class WatchdogScope {
public:
  WatchdogScope(const std::string &what, const char *mpi_call);
  ~WatchdogScope();
  WatchdogScope(const WatchdogScope &) = delete;
  WatchdogScope &operator=(const WatchdogScope &) = delete;

private:
  std::uint64_t id_ = 0;
};

} // namespace mpi_detail
} // namespace atp
