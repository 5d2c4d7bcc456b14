/* ops_cuda.cu - the ZeRO engine's elementwise work on device buffers (ops.h), enqueued on one stream.

   Launchers and the Ops object; the kernels are in ops_cuda_kernels.cuh and their per-element math, bit for
   bit the CPU backend's, in ops_cuda_math.cuh.

   Elementwise launches (cast, accumulate, AdamW) use a grid no larger than the device
   holds at once. Pointers from the engine may sit at any element offset, so each launch first looks for a
   head of fewer than 8 elements after which every pointer it touches is 16-byte aligned; then whole units
   of 8 or 16 elements go through 16-byte loads and stores. Pointers that no head aligns together (say a
   float at 4 bytes past alignment and a bf16 at 2) go one element per thread, still coalesced.

   grad_stats (the norm's sum of squares and the overflow check, one pass over the gradients in any of the
   three dtypes) is deterministic: the grid size depends only on the device, the dtype and the element
   count, and every sum is taken in a fixed order (ops_cuda_kernels.cuh); two launches for any number of
   spans.

   Memory: alloc is cudaMalloc (not the stream-ordered pool: plain allocations work with everything NCCL
   may do to a user buffer) zero-filled on the stream; free is cudaFree, which waits for the device. Host
   copies wait for the stream, so the host buffer may be reused or read as soon as the call returns; so does
   grad_stats, whose answer comes back through a small pinned buffer. upload (the token ids of every
   micro-batch) does not wait: it copies into a pinned slot and lets the DMA run in stream order. */
#include "atp/check_cuda.h"
#include "atp/ops.h"
#include "ops_cuda_kernels.cuh"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace atp {

namespace cuda_ops {
namespace {

// ---------------------------------------------------------------------------------------------------------
// launchers

/// Blocks of `kernel` (kThreads each) for `items` threads' worth of work, at most what the device holds at
/// once (asked once per device and kernel), at least 1.
Result<unsigned> grid_for(const void *kernel, std::uint64_t items) {
  static std::mutex mutex;
  static std::map<std::pair<int, const void *>, std::uint64_t> resident;
  int device = 0;
  ATP_CUDA_TRY(cudaGetDevice(&device));
  std::uint64_t most = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = resident.find({device, kernel});
    if (it == resident.end()) {
      int sms = 0, per_sm = 0;
      ATP_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
      ATP_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0));
      it = resident.emplace(std::make_pair(device, kernel), std::uint64_t(std::max(sms, 1)) * std::max(per_sm, 1))
               .first;
    }
    most = it->second;
  }
  return unsigned(std::clamp<std::uint64_t>((items + kThreads - 1) / kThreads, 1, most));
}

/// Launches `kernel` over c's elements on `stream`.
template <int V, class... Params, class... Args>
Status launch(void (*kernel)(Params...), const Chunks &c, cudaStream_t stream, Args... args) {
  const std::uint64_t items = std::max(c.units, c.n - c.units * V); // threads that find work at once
  ATP_ASSIGN_OR_RETURN(unsigned blocks, grid_for(reinterpret_cast<const void *>(kernel), items));
  kernel<<<blocks, kThreads, 0, stream>>>(args...);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

Status check_dtype(const char *call, DType d) {
  if (d == DType::F32 || d == DType::BF16 || d == DType::F16)
    return {};
  return error(std::string(call) + ": dtype " + dtype_name(d) + " is not F32, BF16 or F16");
}

/// f(T{}) for the element type T of a dtype already checked by check_dtype.
template <class F> Status with_type(DType d, F f) {
  if (d == DType::BF16)
    return f(Bf16{});
  if (d == DType::F16)
    return f(F16{});
  return f(float{});
}

Status cast(void *dst, DType dst_dtype, const void *src, DType src_dtype, std::size_t n, cudaStream_t stream) {
  ATP_TRY(check_dtype("cast", dst_dtype));
  ATP_TRY(check_dtype("cast", src_dtype));
  if (n == 0 || (dst == src && dst_dtype == DType::F32 && src_dtype == DType::F32))
    return {};
  if (dst_dtype == DType::F32 && src_dtype == DType::F32) { // the host's float copy keeps every bit too
    ATP_CUDA_TRY(cudaMemcpyAsync(dst, src, n * 4, cudaMemcpyDefault, stream));
    return {};
  }
  return with_type(dst_dtype, [&](auto d) {
    return with_type(src_dtype, [&](auto s) {
      using D = decltype(d);
      using S = decltype(s);
      const Chunks c = split<16>(n, {{dst, sizeof(D)}, {src, sizeof(S)}});
      return launch<16>(cast_kernel<16, D, S>, c, stream, static_cast<D *>(dst), static_cast<const S *>(src), c);
    });
  });
}

Status accumulate(float *acc, const void *src, DType src_dtype, std::size_t n, cudaStream_t stream) {
  ATP_TRY(check_dtype("accumulate", src_dtype));
  if (n == 0)
    return {};
  return with_type(src_dtype, [&](auto s) {
    using S = decltype(s);
    const Chunks c = split<16>(n, {{acc, 4}, {src, sizeof(S)}});
    return launch<16>(accumulate_kernel<16, S>, c, stream, acc, static_cast<const S *>(src), c);
  });
}

Status adamw(float *p, const void *g, DType g_dtype, float *m, float *v, std::size_t n, const AdamWStep &step,
             void *out, DType out_dtype, cudaStream_t stream) {
  ATP_TRY(check_dtype("adamw", g_dtype));
  if (out)
    ATP_TRY(check_dtype("adamw", out_dtype));
  if (n == 0)
    return {};
  return with_type(g_dtype, [&](auto gt) {
    using G = decltype(gt);
    const G *grad = static_cast<const G *>(g);
    if (!out) {
      const Chunks c = split<8>(n, {{p, 4}, {g, sizeof(G)}, {m, 4}, {v, 4}});
      return launch<8>(adamw_kernel<8, G, NoOut>, c, stream, p, grad, m, v, static_cast<NoOut *>(nullptr), step, c);
    }
    return with_type(out_dtype, [&](auto o) {
      using O = decltype(o);
      const Chunks c = split<8>(n, {{p, 4}, {g, sizeof(G)}, {m, 4}, {v, 4}, {out, sizeof(O)}});
      return launch<8>(adamw_kernel<8, G, O>, c, stream, p, grad, m, v, static_cast<O *>(out), step, c);
    });
  });
}

/// Device and pinned host memory for the answers that come back to the host, and the span list.
struct Scratch {
  double *partials = nullptr;    // kMaxSumBlocks partial sums
  unsigned *flags = nullptr;     // kMaxSumBlocks nonfinite flags (after the partial sums)
  DeviceStats *total = nullptr;  // the answer (after the flags)
  SpanRun *runs = nullptr;       // grad_stats' span list
  std::size_t runs_capacity = 0;
  void *host = nullptr;          // pinned, one DeviceStats

  Status init() {
    void *dev = nullptr;
    static_assert(kMaxSumBlocks * sizeof(unsigned) % alignof(DeviceStats) == 0, "the answer stays aligned");
    ATP_CUDA_TRY(cudaMalloc(&dev, kMaxSumBlocks * (sizeof(double) + sizeof(unsigned)) + sizeof(DeviceStats)));
    partials = static_cast<double *>(dev);
    flags = reinterpret_cast<unsigned *>(partials + kMaxSumBlocks);
    total = reinterpret_cast<DeviceStats *>(flags + kMaxSumBlocks);
    ATP_CUDA_TRY(cudaMallocHost(&host, sizeof(DeviceStats)));
    return {};
  }
  Status reserve_runs(std::size_t n) {
    if (n <= runs_capacity)
      return {};
    const std::size_t capacity = std::max(n, 2 * runs_capacity);
    ATP_CUDA_TRY(cudaFree(runs)); // waits for the device: nothing still reads the old list
    runs = nullptr, runs_capacity = 0;
    ATP_CUDA_TRY(cudaMalloc(reinterpret_cast<void **>(&runs), capacity * sizeof(SpanRun)));
    runs_capacity = capacity;
    return {};
  }
  void release() {
    (void)cudaFree(partials);
    (void)cudaFree(runs);
    (void)cudaFreeHost(host);
  }
};

Result<GradStats> grad_stats(const void *x, DType dtype, const GradSpan *spans, std::size_t num_spans,
                             Scratch &scratch, cudaStream_t stream) {
  ATP_TRY(check_dtype("grad_stats", dtype));
  std::vector<SpanRun> runs;
  std::uint64_t total = 0;
  for (std::size_t s = 0; s < num_spans; ++s)
    if (spans[s].end > spans[s].begin) {
      runs.push_back(SpanRun{spans[s].begin, total, spans[s].in_norm ? 1 : 0});
      total += std::uint64_t(spans[s].end - spans[s].begin);
    }
  if (total == 0)
    return GradStats{};
  if (runs.size() > std::size_t(INT32_MAX))
    return error("grad_stats: " + std::to_string(runs.size()) + " spans is too many");
  ATP_TRY(scratch.reserve_runs(runs.size()));
  ATP_CUDA_TRY(cudaMemcpyAsync(scratch.runs, runs.data(), runs.size() * sizeof(SpanRun), cudaMemcpyHostToDevice,
                               stream));
  ATP_TRY(with_type(dtype, [&](auto t) -> Status {
    using T = decltype(t);
    // A fixed function of (device, dtype, total): the same grid, so the same sums in the same order, every run.
    const std::uint64_t per_block = std::uint64_t(kThreads) * (16 / sizeof(T)) * kSumUnroll;
    ATP_ASSIGN_OR_RETURN(unsigned grid, grid_for(reinterpret_cast<const void *>(grad_stats_kernel<T>),
                                                 (total + per_block - 1) / per_block * kThreads));
    const std::uint64_t blocks = std::min<std::uint64_t>(grid, kMaxSumBlocks);
    const std::uint64_t chunk = (total + blocks - 1) / blocks;
    grad_stats_kernel<T><<<unsigned(blocks), kThreads, 0, stream>>>(
        static_cast<const T *>(x), scratch.runs, int(runs.size()), total, chunk, scratch.partials, scratch.flags);
    ATP_CUDA_TRY(cudaGetLastError());
    grad_stats_total_kernel<<<1, kThreads, 0, stream>>>(scratch.partials, scratch.flags, int(blocks), scratch.total);
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }));
  ATP_CUDA_TRY(cudaMemcpyAsync(scratch.host, scratch.total, sizeof(DeviceStats), cudaMemcpyDeviceToHost, stream));
  ATP_CUDA_TRY(cudaStreamSynchronize(stream));
  const DeviceStats &got = *static_cast<const DeviceStats *>(scratch.host);
  return GradStats{got.sum_squares, got.nonfinite != 0};
}

/// Pinned staging for upload(): kSlots slots used in turn. A slot is refilled only after the copy out of it
/// has completed (the event recorded behind that copy), which a few calls later it long has; the pinned
/// memory is taken at the first upload, so Ops that never upload pin nothing.
struct UploadRing {
  static constexpr int kSlots = 4;
  static constexpr std::size_t kSlotBytes = std::size_t(1) << 20; // a micro-batch of 256k token ids
  char *host = nullptr;
  cudaEvent_t copied[kSlots] = {};
  int next = 0;

  Status init() {
    if (host)
      return {};
    for (cudaEvent_t &e : copied)
      if (!e) // a failed init leaves what it made for the next try
        ATP_CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    ATP_CUDA_TRY(cudaMallocHost(reinterpret_cast<void **>(&host), kSlots * kSlotBytes));
    return {};
  }
  void release() {
    for (cudaEvent_t e : copied)
      if (e) {
        (void)cudaEventSynchronize(e); // no copy still reads the slot
        (void)cudaEventDestroy(e);
      }
    if (host)
      (void)cudaFreeHost(host);
  }
};

// ---------------------------------------------------------------------------------------------------------
// the Ops object

class CudaEvent final : public OpsEvent {
public:
  ~CudaEvent() override {
    if (event)
      (void)cudaEventDestroy(event);
  }
  cudaEvent_t event = nullptr;
};

class CudaOps final : public Ops {
public:
  explicit CudaOps(cudaStream_t stream) : stream_(stream) {}
  ~CudaOps() override {
    ring_.release();
    scratch_.release();
  }
  Status init() { return scratch_.init(); }

  const char *name() const override { return "cuda"; }

  Result<void *> alloc(std::size_t bytes) override {
    void *p = nullptr;
    if (bytes == 0)
      return p;
    ATP_CUDA_TRY(cudaMalloc(&p, bytes));
    if (cudaError_t e = cudaMemsetAsync(p, 0, bytes, stream_); e != cudaSuccess) {
      (void)cudaFree(p);
      return cuda_status(e, "cudaMemsetAsync(p, 0, bytes, stream_)", __FILE__, __LINE__);
    }
    return p;
  }
  void free(void *p) override { (void)cudaFree(p); }
  Status zero(void *p, std::size_t bytes) override {
    if (bytes)
      ATP_CUDA_TRY(cudaMemsetAsync(p, 0, bytes, stream_));
    return {};
  }
  Status copy_from_host(void *dst, const void *host_src, std::size_t bytes) override {
    return copy_and_wait(dst, host_src, bytes);
  }
  Status upload(void *dst, const void *host_src, std::size_t bytes) override {
    if (bytes == 0)
      return {};
    if (bytes > UploadRing::kSlotBytes)
      return copy_and_wait(dst, host_src, bytes);
    ATP_TRY(ring_.init());
    const int s = ring_.next;
    ring_.next = (s + 1) % UploadRing::kSlots;
    ATP_CUDA_TRY(cudaEventSynchronize(ring_.copied[s])); // at once unless the slot's last copy is still pending
    char *slot = ring_.host + std::size_t(s) * UploadRing::kSlotBytes;
    std::memcpy(slot, host_src, bytes);
    ATP_CUDA_TRY(cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, stream_));
    ATP_CUDA_TRY(cudaEventRecord(ring_.copied[s], stream_));
    return {};
  }
  Status copy_to_host(void *host_dst, const void *src, std::size_t bytes) override {
    return copy_and_wait(host_dst, src, bytes);
  }
  Status copy(void *dst, const void *src, std::size_t bytes) override {
    if (bytes == 0 || dst == src)
      return {};
    const auto *d = static_cast<const char *>(dst), *s = static_cast<const char *>(src);
    if (d < s + bytes && s < d + bytes)
      return error("cuda ops: copy between overlapping ranges");
    ATP_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
    return {};
  }

  Status cast(void *dst, DType dst_dtype, const void *src, DType src_dtype, std::size_t n) override {
    return cuda_ops::cast(dst, dst_dtype, src, src_dtype, n, stream_);
  }
  Status accumulate(float *acc, const void *src, DType src_dtype, std::size_t n) override {
    return cuda_ops::accumulate(acc, src, src_dtype, n, stream_);
  }
  Result<GradStats> grad_stats(const void *x, DType dtype, const GradSpan *spans, std::size_t num_spans) override {
    return cuda_ops::grad_stats(x, dtype, spans, num_spans, scratch_, stream_);
  }
  Status adamw(float *p, const void *g, DType g_dtype, float *m, float *v, std::size_t n, const AdamWStep &step,
               void *out, DType out_dtype) override {
    return cuda_ops::adamw(p, g, g_dtype, m, v, n, step, out, out_dtype, stream_);
  }
  Status synchronize() override {
    ATP_CUDA_TRY(cudaStreamSynchronize(stream_));
    return {};
  }

  Result<std::unique_ptr<OpsEvent>> make_event() override {
    auto e = std::make_unique<CudaEvent>();
    ATP_CUDA_TRY(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming));
    return std::unique_ptr<OpsEvent>(std::move(e));
  }
  Status record(OpsEvent &event) override {
    const auto *e = dynamic_cast<const CudaEvent *>(&event);
    if (!e)
      return error("cuda ops: record needs an event from a CUDA Ops' make_event");
    ATP_CUDA_TRY(cudaEventRecord(e->event, stream_));
    return {};
  }
  Status wait(const OpsEvent &event) override {
    const auto *e = dynamic_cast<const CudaEvent *>(&event);
    if (!e)
      return error("cuda ops: wait needs an event from a CUDA Ops' make_event");
    ATP_CUDA_TRY(cudaStreamWaitEvent(stream_, e->event, 0));
    return {};
  }

private:
  Status copy_and_wait(void *dst, const void *src, std::size_t bytes) {
    if (bytes == 0)
      return {};
    ATP_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
    ATP_CUDA_TRY(cudaStreamSynchronize(stream_));
    return {};
  }

  cudaStream_t stream_;
  Scratch scratch_;
  UploadRing ring_;
};

} // namespace
} // namespace cuda_ops

Result<std::unique_ptr<Ops>> make_cuda_ops(void *stream) {
  auto ops = std::make_unique<cuda_ops::CudaOps>(static_cast<cudaStream_t>(stream));
  ATP_TRY(ops->init().with_context("make_cuda_ops"));
  return std::unique_ptr<Ops>(std::move(ops));
}

} // namespace atp
