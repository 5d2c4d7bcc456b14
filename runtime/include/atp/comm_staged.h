/* comm_staged.h - collectives over device buffers through a host communicator.

   NCCL refuses two ranks of one communicator on the same GPU, yet testing TP on a single card needs just
   that (several ranks sharing the GPU). A staged comm serves device buffers with an MPI comm: each call
   copies its input to host memory (waiting for the stream, so it follows the kernels enqueued before it),
   runs the host collective, and copies the result back. It is slow by design, for tests and small runs;
   one process per GPU uses NCCL. */
#pragma once

#include "atp/comm.h"
#include "atp/ops.h"

#include <memory>

namespace atp {

/// A comm over the same ranks as `host` (a host-buffer comm, e.g. MPI) for buffers in `device_ops`' memory.
/// device_ops must outlive the comm.
std::unique_ptr<Comm> make_staged_comm(std::unique_ptr<Comm> host, Ops &device_ops);

} // namespace atp
