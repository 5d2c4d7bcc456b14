/* cuda_device.h - one rank's GPU: which device it runs on, its stream, how much memory is in use.

   The trainer picks device local_rank % count (one process per GPU under mpirun / srun / torchrun, or
   several ranks sharing one card for tests), makes it current and creates three non-blocking streams: the
   model's (its kernels and their ops) and the TP comm's, at the device's highest priority, and the ZeRO
   engine's (its optimizer work and the DP comm), at the lowest, so that the engine's work fills the gaps of
   the model's. Events order them where data flows between them (zero.h "Two queues", decoder.h). Builds
   without CUDA get a stub: cuda_device_count() is 0 and open_cuda_device says CUDA was not built. */
#pragma once

#include "atp/status.h"

#include <cstdint>
#include <memory>
#include <string>

namespace atp {

class CudaDevice {
public:
  ~CudaDevice();
  CudaDevice(const CudaDevice &) = delete;
  CudaDevice &operator=(const CudaDevice &) = delete;

  int index() const { return index_; }
  /// The model's cudaStream_t (non-blocking, highest priority), owned.
  void *stream() const { return stream_; }
  /// The ZeRO engine's cudaStream_t (non-blocking, lowest priority), owned.
  void *engine_stream() const { return engine_stream_; }
  /// The TP comm's cudaStream_t (non-blocking, highest priority), owned.
  void *tp_stream() const { return tp_stream_; }
  /// "NVIDIA H200"
  const std::string &name() const { return name_; }
  /// The GPU's 16-byte UUID (the same GPU seen from two processes has the same one).
  const std::string &uuid() const { return uuid_; }
  /// Bytes in use on the device now (total - free: every process's, the CUDA context included).
  Result<std::uint64_t> memory_used() const;

  /// Device `local_rank % cuda_device_count()`, made current, with new streams.
  static Result<std::unique_ptr<CudaDevice>> open(int local_rank);

private:
  CudaDevice(int index, void *stream, void *engine_stream, void *tp_stream, std::string name, std::string uuid)
      : index_(index), stream_(stream), engine_stream_(engine_stream), tp_stream_(tp_stream), name_(std::move(name)),
        uuid_(std::move(uuid)) {}
  int index_;
  void *stream_, *engine_stream_, *tp_stream_;
  std::string name_, uuid_;
};

/// GPUs this process can see; 0 in builds without CUDA or when the driver reports none.
int cuda_device_count();

} // namespace atp
