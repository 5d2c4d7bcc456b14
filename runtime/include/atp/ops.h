/* ops.h - the elementwise work of the ZeRO engine, on the host or a GPU.

   The engine (zero.h) keeps its flat buffers in one place: host memory
   (make_cpu_ops: the CPU backend, driven by the MPI comm) or device memory
   (make_cuda_ops: the GPU backend, driven by the NCCL comm). It never
   touches a buffer itself; everything goes through this interface, so the
   same schedule runs on either backend and the tests can compare them.

   Buffers are raw pointers returned by alloc(). Work on the CUDA backend is
   enqueued on one stream in call order; results that come back to the host
   (grad_stats) synchronize. Every call returns a Status. Two Ops of one device
   (the model's stream and the engine's) order their work with events: work
   enqueued on A after A.wait(e) starts after the work B enqueued before
   B.record(e). On the host every call has finished when it returns, so events
   order nothing there.

   Gradients may be read in their working dtype (F32, BF16 or F16): at ZeRO stage 1 the
   engine's fp32 gradients would only be an exact widening of the working ones, so the
   norm, the overflow check and AdamW read the working gradients directly. */
#pragma once

#include "atp/dtype.h"
#include "atp/status.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace atp {

/// [begin, end) in elements.
struct Span {
  std::int64_t begin, end;
};

/// [begin, end) in elements, and whether those elements count in the gradient norm (all of them are
/// checked for inf and NaN).
struct GradSpan {
  std::int64_t begin, end;
  bool in_norm;
};

/// grad_stats' answer.
struct GradStats {
  double sum_squares = 0.0; ///< sum of x^2 over the spans in the norm (double)
  bool nonfinite = false;   ///< some element of some span is inf or NaN
};

/// One fused AdamW update (DeepSpeed's FusedAdam; bias corrections are
/// 1 - beta^step, or 1 when bias correction is off).
struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1, bias_correction2;
  bool adam_w_mode;  ///< true: decoupled weight decay; false: L2 added to the gradient
  float grad_scale;  ///< the gradient is multiplied by this first (1/(loss scale * GAS * dp) * clip factor)
};

/// A point in one Ops' queue of work (OpsEvent: make_event, record, wait). Owned by whoever made it; it must
/// outlive every wait on it that is still pending.
class OpsEvent {
public:
  virtual ~OpsEvent() = default;
};

class Ops {
public:
  virtual ~Ops() = default;
  /// "cpu" or "cuda".
  virtual const char *name() const = 0;

  /// Zero-filled buffer of `bytes` bytes (aligned for any dtype, 256 bytes on the host).
  virtual Result<void *> alloc(std::size_t bytes) = 0;
  virtual void free(void *p) = 0;
  virtual Status zero(void *p, std::size_t bytes) = 0;
  /// Host <-> backend and backend <-> backend copies.
  virtual Status copy_from_host(void *dst, const void *host_src, std::size_t bytes) = 0;
  virtual Status copy_to_host(void *host_dst, const void *src, std::size_t bytes) = 0;
  virtual Status copy(void *dst, const void *src, std::size_t bytes) = 0;
  /// copy_from_host without waiting for the stream (the decoder's token ids, every micro-batch): host_src may
  /// be reused as soon as the call returns, and the bytes land in stream order, so later work on this Ops'
  /// stream sees them (another stream must wait on an event). CUDA stages small copies through pinned memory;
  /// elsewhere this is copy_from_host.
  virtual Status upload(void *dst, const void *host_src, std::size_t bytes) {
    return copy_from_host(dst, host_src, bytes);
  }

  /// dst[i] = src[i] converted, i < n; F32, BF16 and F16 (round to nearest even).
  virtual Status cast(void *dst, DType dst_dtype, const void *src, DType src_dtype, std::size_t n) = 0;
  /// acc[i] += float(src[i]), i < n; src is F32, BF16 or F16.
  virtual Status accumulate(float *acc, const void *src, DType src_dtype, std::size_t n) = 0;
  /// One pass over the spans of x (F32, BF16 or F16, read as floats): the sum of x[i]^2, accumulated in
  /// double, over the spans marked in_norm (on the host in span order, element by element), and whether any
  /// element of any span is inf or NaN (the sum is then meaningless).
  virtual Result<GradStats> grad_stats(const void *x, DType dtype, const GradSpan *spans, std::size_t num_spans) = 0;
  /// One AdamW step over n elements: master weights p, gradients g (read only, F32, BF16 or F16, widened to
  /// float exactly), moments m and v; when out is not null, the updated weights are also written to out in
  /// out_dtype (the working copy).
  virtual Status adamw(float *p, const void *g, DType g_dtype, float *m, float *v, std::size_t n,
                       const AdamWStep &step, void *out, DType out_dtype) = 0;
  /// Waits for all enqueued work.
  virtual Status synchronize() = 0;

  /// A new event of this backend (CUDA: a cudaEvent_t without timing).
  virtual Result<std::unique_ptr<OpsEvent>> make_event() = 0;
  /// Marks the work enqueued on this Ops so far; recording again moves the mark.
  virtual Status record(OpsEvent &event) = 0;
  /// Work enqueued on this Ops from now on starts after the work `event` marked when it was last recorded
  /// (by any Ops of the same device). Does not block the host.
  virtual Status wait(const OpsEvent &event) = 0;
};

/// Host buffers; work runs on the calling thread.
std::unique_ptr<Ops> make_cpu_ops();
/// Device buffers on the current CUDA device; work is enqueued on `stream` (a cudaStream_t; null: the
/// legacy default stream). Fails in builds without CUDA.
Result<std::unique_ptr<Ops>> make_cuda_ops(void *stream = nullptr);

/// The AdamW update of one element, shared by the CPU backend and the tests' reference.
inline void adamw_element(float &p, float g, float &m, float &v, const AdamWStep &s) {
  g *= s.grad_scale;
  if (!s.adam_w_mode)
    g += s.weight_decay * p;
  m = s.beta1 * m + (1.0f - s.beta1) * g;
  v = s.beta2 * v + (1.0f - s.beta2) * g * g;
  const float denom = std::sqrt(v / s.bias_correction2) + s.eps;
  float update = (m / s.bias_correction1) / denom;
  if (s.adam_w_mode)
    update += s.weight_decay * p;
  p -= s.lr * update;
}

} // namespace atp
