/* gpu_check.h - verifiable device buffers for the GPU tests and benchmarks (nccl-tests' verifiable/ idea).

   fill_pattern writes values computed from (seed, tag, element index) straight on the device, so a test of
   any size needs no upload; count_mismatches compares two device buffers on the device. Both run on
   `stream`; count_mismatches waits for its answer. busy_wait and median_device_ms time benchmarks on the
   device only (cudaEvents, the GPU held busy while the host queues). Library-style: failures come back as a
   Status. */
#pragma once

#include "atp/status.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace atp::gpucheck {

/// Element e of `nbytes / elem` elements of `elem` bytes (1, 2, 4 or 8) gets the low bytes of
/// splitmix64(key + e), key = splitmix64(seed ^ splitmix64(tag)): reproducible, and different for every
/// (seed, tag, element).
Status fill_pattern(void *data, std::size_t nbytes, std::size_t elem, std::uint64_t seed, std::uint64_t tag,
                    cudaStream_t stream);

/// Keeps the GPU busy on `stream` for `microseconds`: enqueued before timed work, it lets the host queue
/// every timed launch (and its events) before the GPU reaches them, so that host-side launch costs do not
/// show up as idle time between a start event and its copy.
Status busy_wait(double microseconds, cudaStream_t stream);

/// How median_device_ms times: `warmup` untimed calls, then `reps` timed ones. The GPU is held busy
/// (busy_wait) for `busy_once_us` before the first timed rep and for `busy_each_us` before each one, long
/// enough for the host to queue what follows, so that launch costs stay outside the events.
struct Timing {
  int warmup = 3, reps = 25;
  double busy_once_us = 0, busy_each_us = 0;
};

/// The median device time in ms, between cudaEvents recorded on `stream` around each timed call, of
/// enqueue(i): i = 0 .. warmup-1 for the untimed calls, warmup .. warmup+reps-1 for the timed ones (a caller
/// may rotate buffers by i). enqueue must put its work on `stream`.
Result<double> median_device_ms(cudaStream_t stream, const std::function<void(int)> &enqueue,
                                const Timing &timing = {});

/// The number of bytes at which `a` and `b` (device buffers of `nbytes`) differ.
Result<std::uint64_t> count_mismatches(const void *a, const void *b, std::size_t nbytes, cudaStream_t stream);

} // namespace atp::gpucheck
