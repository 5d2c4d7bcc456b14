//===- LaggingQueues.h - a second queue that runs its work as late as allowed --===//
//
// On a GPU the ZeRO engine runs on its own stream (zero.h, "Two queues"): its
// optimizer step overlaps the next forward, and the model waits for it only
// through events. On the host every Ops call has finished when it returns, so
// a missing wait would go unseen. These test doubles make it seen:
//   - LaggingOps: the engine's Ops. Work that a stream would only enqueue
//     (zero, copy, cast, accumulate, adamw) is queued and runs only when
//     something forces it: a wait on one of its events, a call that returns
//     data to the host (copy_to_host, grad_stats), synchronize, free, and
//     copy_from_host (which waits for its stream on CUDA too).
//   - LaggingComm: the DP comm, whose collectives join the same queue (on CUDA
//     it runs on the engine's stream).
//   - ModelOps: the model's Ops, immediate like the CPU kernels beside it; its
//     wait() on a LaggingOps event runs the queue up to that event, unless
//     made to ignore waits (the negative control: results must then differ).
// A missing wait on the model's side leaves the model reading weights the
// optimizer has not written yet, or adding into gradients that a queued clear
// will wipe. (The other direction, the engine reading gradients the model has
// not written yet, cannot show here: the model's side never lags.)
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_TEST_LAGGINGQUEUES_H
#define AUTOTPC_TEST_LAGGINGQUEUES_H

#include "atp/comm.h"
#include "atp/ops.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

namespace autotpc {

/// Work in call order, run only up to where someone forces it.
class LaggingQueue {
public:
  void push(std::function<atp::Status()> Work) {
    Pending.push_back(std::move(Work));
    ++Enqueued;
  }
  /// Runs the work enqueued before position Pos (a count of pushes).
  atp::Status runTo(int64_t Pos) {
    while (Executed < Pos && !Pending.empty()) {
      auto Work = std::move(Pending.front());
      Pending.pop_front();
      ++Executed;
      ATP_TRY(Work());
    }
    return {};
  }
  atp::Status runAll() { return runTo(Enqueued); }
  int64_t enqueued() const { return Enqueued; }
  int64_t executed() const { return Executed; }

private:
  std::deque<std::function<atp::Status()>> Pending;
  int64_t Enqueued = 0, Executed = 0;
};

/// An event of a LaggingOps: a position in its queue.
struct LaggingEvent final : atp::OpsEvent {
  explicit LaggingEvent(LaggingQueue &Q) : Queue(Q) {}
  LaggingQueue &Queue;
  int64_t Position = 0;
};

/// The engine's Ops: host buffers (through Inner), work queued until forced.
class LaggingOps final : public atp::Ops {
public:
  LaggingOps(atp::Ops &Inner, LaggingQueue &Q) : Inner(Inner), Queue(Q) {}
  const char *name() const override { return "lagging"; }

  atp::Result<void *> alloc(std::size_t Bytes) override { return Inner.alloc(Bytes); }
  void free(void *P) override {
    (void)Queue.runAll();
    Inner.free(P);
  }
  atp::Status zero(void *P, std::size_t Bytes) override {
    return later([=] { return Inner.zero(P, Bytes); });
  }
  atp::Status copy_from_host(void *Dst, const void *Src, std::size_t Bytes) override {
    ATP_TRY(Queue.runAll());
    return Inner.copy_from_host(Dst, Src, Bytes);
  }
  atp::Status copy_to_host(void *Dst, const void *Src, std::size_t Bytes) override {
    ATP_TRY(Queue.runAll());
    return Inner.copy_to_host(Dst, Src, Bytes);
  }
  atp::Status copy(void *Dst, const void *Src, std::size_t Bytes) override {
    return later([=] { return Inner.copy(Dst, Src, Bytes); });
  }
  atp::Status cast(void *Dst, atp::DType DstType, const void *Src, atp::DType SrcType, std::size_t N) override {
    return later([=] { return Inner.cast(Dst, DstType, Src, SrcType, N); });
  }
  atp::Status accumulate(float *Acc, const void *Src, atp::DType SrcType, std::size_t N) override {
    return later([=] { return Inner.accumulate(Acc, Src, SrcType, N); });
  }
  atp::Result<atp::GradStats> grad_stats(const void *X, atp::DType T, const atp::GradSpan *Spans,
                                         std::size_t NumSpans) override {
    ATP_TRY(Queue.runAll());
    return Inner.grad_stats(X, T, Spans, NumSpans);
  }
  atp::Status adamw(float *P, const void *G, atp::DType GType, float *M, float *V, std::size_t N,
                    const atp::AdamWStep &Step, void *Out, atp::DType OutType) override {
    return later([=] { return Inner.adamw(P, G, GType, M, V, N, Step, Out, OutType); });
  }
  atp::Status synchronize() override { return Queue.runAll(); }

  atp::Result<std::unique_ptr<atp::OpsEvent>> make_event() override {
    return std::unique_ptr<atp::OpsEvent>(new LaggingEvent(Queue));
  }
  atp::Status record(atp::OpsEvent &E) override {
    auto *L = dynamic_cast<LaggingEvent *>(&E);
    if (!L || &L->Queue != &Queue)
      return atp::error("lagging ops: record of an event made elsewhere");
    L->Position = Queue.enqueued();
    return {};
  }
  /// The model's side never lags: nothing to wait for.
  atp::Status wait(const atp::OpsEvent &) override { return {}; }

private:
  atp::Status later(std::function<atp::Status()> Work) {
    Queue.push(std::move(Work));
    return {};
  }
  atp::Ops &Inner;
  LaggingQueue &Queue;
};

/// The DP comm on the engine's queue.
class LaggingComm final : public atp::Comm {
public:
  LaggingComm(atp::Comm &Inner, LaggingQueue &Q) : atp::Comm(Inner.ranks(), Inner.rank()), Inner(Inner), Queue(Q) {}
  atp::CommBackend backend() const override { return Inner.backend(); }
  atp::Status all_reduce(const void *S, void *R, std::size_t N, atp::DType T, atp::ReduceOp Op) override {
    Queue.push([=] { return Inner.all_reduce(S, R, N, T, Op); });
    return {};
  }
  atp::Status reduce_scatter(const void *S, void *R, std::size_t N, atp::DType T, atp::ReduceOp Op) override {
    Queue.push([=] { return Inner.reduce_scatter(S, R, N, T, Op); });
    return {};
  }
  atp::Status all_gather(const void *S, void *R, std::size_t N, atp::DType T) override {
    Queue.push([=] { return Inner.all_gather(S, R, N, T); });
    return {};
  }
  atp::Status broadcast(void *B, std::size_t N, atp::DType T, int Root) override {
    Queue.push([=] { return Inner.broadcast(B, N, T, Root); });
    return {};
  }
  atp::Status barrier() override {
    ATP_TRY(Queue.runAll());
    return Inner.barrier();
  }
  atp::Status synchronize() override { return Queue.runAll(); }
  void abort() override { Inner.abort(); }

private:
  atp::Comm &Inner;
  LaggingQueue &Queue;
};

/// The model's Ops: immediate; a wait on a LaggingOps event runs that queue up to it.
class ModelOps final : public atp::Ops {
public:
  explicit ModelOps(atp::Ops &Inner) : Inner(Inner) {}
  /// The negative control: waits do nothing, so the model runs ahead of the engine.
  bool IgnoreWaits = false;
  /// Waits that found the engine's work still queued and ran it (so the queue did lag).
  int64_t WaitsThatRan = 0;

  const char *name() const override { return Inner.name(); }
  atp::Result<void *> alloc(std::size_t Bytes) override { return Inner.alloc(Bytes); }
  void free(void *P) override { Inner.free(P); }
  atp::Status zero(void *P, std::size_t Bytes) override { return Inner.zero(P, Bytes); }
  atp::Status copy_from_host(void *D, const void *S, std::size_t B) override { return Inner.copy_from_host(D, S, B); }
  atp::Status copy_to_host(void *D, const void *S, std::size_t B) override { return Inner.copy_to_host(D, S, B); }
  atp::Status copy(void *D, const void *S, std::size_t B) override { return Inner.copy(D, S, B); }
  atp::Status cast(void *D, atp::DType DT, const void *S, atp::DType ST, std::size_t N) override {
    return Inner.cast(D, DT, S, ST, N);
  }
  atp::Status accumulate(float *A, const void *S, atp::DType ST, std::size_t N) override {
    return Inner.accumulate(A, S, ST, N);
  }
  atp::Result<atp::GradStats> grad_stats(const void *X, atp::DType T, const atp::GradSpan *Sp, std::size_t N) override {
    return Inner.grad_stats(X, T, Sp, N);
  }
  atp::Status adamw(float *P, const void *G, atp::DType GT, float *M, float *V, std::size_t N, const atp::AdamWStep &St,
                    void *O, atp::DType OT) override {
    return Inner.adamw(P, G, GT, M, V, N, St, O, OT);
  }
  atp::Status synchronize() override { return Inner.synchronize(); }
  atp::Result<std::unique_ptr<atp::OpsEvent>> make_event() override { return Inner.make_event(); }
  atp::Status record(atp::OpsEvent &) override { return {}; }
  atp::Status wait(const atp::OpsEvent &E) override {
    const auto *L = dynamic_cast<const LaggingEvent *>(&E);
    if (!L || IgnoreWaits)
      return {};
    const int64_t Before = L->Queue.executed();
    ATP_TRY(L->Queue.runTo(L->Position));
    WaitsThatRan += L->Queue.executed() > Before;
    return {};
  }

private:
  atp::Ops &Inner;
};

} // namespace autotpc

#endif // AUTOTPC_TEST_LAGGINGQUEUES_H
