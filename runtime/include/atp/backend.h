/* backend.h - where a rank computes: the kernels, the ops and the collectives over their buffers.

   train and its oracle (--loss-and-grads) run the same decoder on either backend:
     - cpu:  host buffers, the CPU kernels (fp32), MPI collectives;
     - cuda: this rank's GPU (CudaDevice: device local_rank % count), the CUDA kernels in the config's
             dtype, and NCCL collectives: the kernels and their ops on the device's stream, the TP comm on
             its TP stream (tp_ops), the ZeRO engine's ops and the DP comm on its engine stream (engine_ops;
             zero.h "Two queues", decoder.h); when more ranks run on a host than it has GPUs (TP tested on one
             card), NCCL cannot serve them and the collectives go through the host comms, staged through
             host memory (comm_staged.h): correct, slow.
   "auto" is cuda where this runtime has the CUDA kernels and a GPU is visible, else cpu. */
#pragma once

#include "atp/comm.h"
#include "atp/cuda_device.h"
#include "atp/kernels.h"
#include "atp/ops.h"
#include "atp/world.h"

#include <memory>
#include <string>

namespace atp {

enum class DeviceKind { Auto, Cpu, Cuda };

/// "auto", "cpu" or "cuda" -> the kind; anything else is an error listing them.
Result<DeviceKind> parse_device_kind(const std::string &text);

/// One rank's backend. The parts depend on each other (the comms on the ops, everything on the device's
/// stream), so they are freed in that order, and a Backend is never assigned to: a move assignment would
/// replace the device first.
struct Backend {
  Backend() = default;
  Backend(Backend &&) = default;
  Backend &operator=(Backend &&) = delete;
  ~Backend() { reset(); }
  /// Frees the comms, the ops, the kernels, then the device (its streams).
  void reset() {
    dp.reset(), tp.reset(), tp_ops.reset(), engine_ops.reset(), ops.reset(), kernels.reset(), device.reset();
  }

  DeviceKind kind = DeviceKind::Cpu;     ///< Cpu or Cuda (never Auto)
  std::unique_ptr<CudaDevice> device;    ///< null on the CPU
  std::unique_ptr<Kernels> kernels;
  std::unique_ptr<Ops> ops;
  /// The ZeRO engine's own queue (CUDA: the engine stream; the DP comm runs there) and the TP comm's (the TP
  /// stream); null on the CPU, where everything runs in call order.
  std::unique_ptr<Ops> engine_ops, tp_ops;
  /// TP and DP collectives over the kernels' buffers: NCCL or staged MPI on CUDA; null on the CPU, where
  /// the host comms serve both.
  std::unique_ptr<Comm> tp, dp;
  /// "fp32 CPU, 2 BLAS threads" / "bf16 CUDA, NVIDIA H200 (device 0), NCCL"
  std::string description;
};

/// The backend of `kind` computing in `dtype` for this rank; cpu_threads: BLAS threads of the CPU kernels.
/// `host_world` (an MPI comm over every rank) lets the ranks agree on "auto" and find out whether two ranks
/// of a group share a GPU (by its UUID). Every rank calls it at the same point: it creates communicators.
Result<Backend> make_backend(DeviceKind kind, DType dtype, const World &world, const Groups &groups,
                             Comm &host_world, int cpu_threads);

/// The comm over the kernels' buffers: the backend's own, or the host one on the CPU.
inline Comm &tensor_comm(const std::unique_ptr<Comm> &backend_comm, Comm &host) {
  return backend_comm ? *backend_comm : host;
}

} // namespace atp
