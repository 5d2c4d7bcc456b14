//===- LaggingQueues.h - GPU streams on the host, each as late as allowed --===//
//
// On a GPU the model's kernels and the ZeRO engine run on two streams (zero.h,
// "Two queues"): the optimizer step overlaps the next forward, stage 2's
// reduce-scatters overlap backward, and events order the two. On the host
// every call has finished when it returns, so a missing event would go unseen.
// These test doubles make it seen: each queue holds its work until something
// forces it, as a stream that is slow to start would.
//   - LaggingQueue: work in call order, run only up to where it is forced. An
//     eager queue runs each piece at once (the CPU as it is).
//   - LaggingOps: Ops on a queue. zero, copy, upload, cast, accumulate and
//     adamw are queued; copy_to_host, grad_stats, synchronize and free run
//     the queue first, as copy_from_host does (it waits for its stream on
//     CUDA too).
//     record() marks the queue's length; wait(e) queues a step that runs e's
//     queue up to that mark: a stream waiting on another's event.
//   - LaggingKernels: the model's kernels on a queue; cross_entropy, which
//     returns to the host, runs it first.
//   - LaggingComm: a comm on a queue (the TP comm on the model's, the DP comm
//     on the engine's, as on CUDA).
// With the engine's queue lagging, a wait missing on the model's side leaves
// the model reading weights the optimizer has not written yet, or adding into
// gradients that a queued clear will wipe; with the model's queue lagging too,
// a wait missing on the engine's side leaves it reducing gradients the
// backward has not written yet. Either changes the results. IgnoreWaits makes
// one side skip its waits: the negative controls.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_TEST_LAGGINGQUEUES_H
#define AUTOTPC_TEST_LAGGINGQUEUES_H

#include "atp/comm.h"
#include "atp/kernels.h"
#include "atp/ops.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

namespace autotpc {

/// Work in call order, run only up to where someone forces it (eager: at once).
class LaggingQueue {
public:
  explicit LaggingQueue(bool Eager = false) : Eager(Eager) {}
  atp::Status push(std::function<atp::Status()> Work) {
    Pending.push_back(std::move(Work));
    ++Enqueued;
    return Eager ? runAll() : atp::Status();
  }
  /// Runs the work enqueued before position Pos (a count of pushes). The position of a piece that is running
  /// counts as run, so a wait inside it on an earlier mark of this queue returns at once.
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
  bool Eager;
  std::deque<std::function<atp::Status()>> Pending;
  int64_t Enqueued = 0, Executed = 0;
};

/// An event of a LaggingOps: a position in its queue.
struct LaggingEvent final : atp::OpsEvent {
  explicit LaggingEvent(LaggingQueue &Q) : Queue(Q) {}
  LaggingQueue &Queue;
  int64_t Position = 0;
};

/// Ops on host buffers (through Inner) whose work waits in a queue.
class LaggingOps final : public atp::Ops {
public:
  LaggingOps(atp::Ops &Inner, LaggingQueue &Q) : Inner(Inner), Queue(Q) {}
  /// The negative controls: waits do nothing, so this side may run ahead of the other.
  bool IgnoreWaits = false;
  /// Waits that found the other queue's work still pending and ran it (so that queue did lag).
  int64_t WaitsThatRan = 0;

  const char *name() const override { return "lagging"; }
  atp::Result<void *> alloc(std::size_t Bytes) override { return Inner.alloc(Bytes); }
  void free(void *P) override {
    (void)Queue.runAll();
    Inner.free(P);
  }
  atp::Status zero(void *P, std::size_t Bytes) override {
    return Queue.push([=] { return Inner.zero(P, Bytes); });
  }
  atp::Status copy_from_host(void *Dst, const void *Src, std::size_t Bytes) override {
    ATP_TRY(Queue.runAll());
    return Inner.copy_from_host(Dst, Src, Bytes);
  }
  /// Queued as CUDA's pinned staging does it: the bytes are taken now, written when the queue gets there.
  atp::Status upload(void *Dst, const void *Src, std::size_t Bytes) override {
    const auto *From = static_cast<const char *>(Src);
    auto Staged = std::make_shared<std::vector<char>>(From, From + Bytes);
    return Queue.push([=] { return Inner.copy_from_host(Dst, Staged->data(), Bytes); });
  }
  atp::Status copy_to_host(void *Dst, const void *Src, std::size_t Bytes) override {
    ATP_TRY(Queue.runAll());
    return Inner.copy_to_host(Dst, Src, Bytes);
  }
  atp::Status copy(void *Dst, const void *Src, std::size_t Bytes) override {
    return Queue.push([=] { return Inner.copy(Dst, Src, Bytes); });
  }
  atp::Status cast(void *Dst, atp::DType DstType, const void *Src, atp::DType SrcType, std::size_t N) override {
    return Queue.push([=] { return Inner.cast(Dst, DstType, Src, SrcType, N); });
  }
  atp::Status accumulate(float *Acc, const void *Src, atp::DType SrcType, std::size_t N) override {
    return Queue.push([=] { return Inner.accumulate(Acc, Src, SrcType, N); });
  }
  atp::Result<atp::GradStats> grad_stats(const void *X, atp::DType T, const atp::GradSpan *Spans,
                                         std::size_t NumSpans) override {
    ATP_TRY(Queue.runAll());
    return Inner.grad_stats(X, T, Spans, NumSpans);
  }
  atp::Status adamw(float *P, const void *G, atp::DType GType, float *M, float *V, std::size_t N,
                    const atp::AdamWStep &Step, void *Out, atp::DType OutType) override {
    return Queue.push([=] { return Inner.adamw(P, G, GType, M, V, N, Step, Out, OutType); });
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
  atp::Status wait(const atp::OpsEvent &E) override {
    const auto *L = dynamic_cast<const LaggingEvent *>(&E);
    if (!L)
      return atp::error("lagging ops: wait on an event made elsewhere");
    if (&L->Queue == &Queue || IgnoreWaits)
      return {};
    LaggingQueue &Other = L->Queue;
    const int64_t Position = L->Position;
    return Queue.push([this, &Other, Position] {
      const int64_t Before = Other.executed();
      ATP_TRY(Other.runTo(Position));
      WaitsThatRan += Other.executed() > Before;
      return atp::Status();
    });
  }

private:
  atp::Ops &Inner;
  LaggingQueue &Queue;
};

/// The model's kernels on a queue.
class LaggingKernels final : public atp::Kernels {
public:
  LaggingKernels(atp::Kernels &Inner, LaggingQueue &Q) : K(Inner), Queue(Q) {}
  const char *name() const override { return K.name(); }
  atp::DType dtype() const override { return K.dtype(); }
  atp::DType stat_dtype() const override { return K.stat_dtype(); }

  atp::Status gemm(const atp::GemmArgs &A, const void *X, const void *Y, void *Z) override {
    return Queue.push([=] { return K.gemm(A, X, Y, Z); });
  }
  atp::Status linear_forward(void *Y, const void *X, const void *W, const void *B, int64_t Rows, int64_t In,
                             int64_t Out) override {
    return Queue.push([=] { return K.linear_forward(Y, X, W, B, Rows, In, Out); });
  }
  atp::Status linear_backward(void *DX, atp::Write Mode, void *DW, void *DB, atp::Write DWMode, const void *DY,
                              const void *X, const void *W, int64_t Rows, int64_t In, int64_t Out) override {
    return Queue.push([=] { return K.linear_backward(DX, Mode, DW, DB, DWMode, DY, X, W, Rows, In, Out); });
  }
  atp::Status embedding_forward(void *Out, const void *Table, const int32_t *Ids, int64_t Rows, int64_t Hidden,
                                const atp::VocabRange &R) override {
    return Queue.push([=] { return K.embedding_forward(Out, Table, Ids, Rows, Hidden, R); });
  }
  atp::Status embedding_backward(void *DTable, const void *DOut, const int32_t *Ids, int64_t Rows, int64_t Hidden,
                                 const atp::VocabRange &R) override {
    return Queue.push([=] { return K.embedding_backward(DTable, DOut, Ids, Rows, Hidden, R); });
  }
  atp::Status rmsnorm_forward(void *Y, void *Rstd, const void *X, const void *W, int64_t Rows, int64_t Hidden,
                              double Eps) override {
    return Queue.push([=] { return K.rmsnorm_forward(Y, Rstd, X, W, Rows, Hidden, Eps); });
  }
  atp::Status add_rmsnorm_forward(void *Sum, void *Y, void *Rstd, const void *A, const void *B, const void *W,
                                  int64_t Rows, int64_t Hidden, double Eps) override {
    return Queue.push([=] { return K.add_rmsnorm_forward(Sum, Y, Rstd, A, B, W, Rows, Hidden, Eps); });
  }
  atp::Status rmsnorm_backward(void *DX, atp::Write Mode, void *DW, atp::Write DWMode, const void *DY, const void *X,
                               const void *W, const void *Rstd, int64_t Rows, int64_t Hidden) override {
    return Queue.push([=] { return K.rmsnorm_backward(DX, Mode, DW, DWMode, DY, X, W, Rstd, Rows, Hidden); });
  }
  atp::Status rope_table(void *Table, const atp::RopeConfig &C, int64_t HeadDim, int64_t Positions) override {
    return Queue.push([=] { return K.rope_table(Table, C, HeadDim, Positions); });
  }
  atp::Status rope_forward(void *X, const atp::RopeDims &D, const void *Table) override {
    return Queue.push([=] { return K.rope_forward(X, D, Table); });
  }
  atp::Status rope_backward(void *DX, const atp::RopeDims &D, const void *Table) override {
    return Queue.push([=] { return K.rope_backward(DX, D, Table); });
  }
  atp::Status swiglu_forward(void *Out, const void *G, const void *U, int64_t Rows, int64_t Ffn,
                             int64_t Stride) override {
    return Queue.push([=] { return K.swiglu_forward(Out, G, U, Rows, Ffn, Stride); });
  }
  atp::Status swiglu_backward(void *DG, void *DU, const void *DOut, const void *G, const void *U, int64_t Rows,
                              int64_t Ffn, int64_t Stride) override {
    return Queue.push([=] { return K.swiglu_backward(DG, DU, DOut, G, U, Rows, Ffn, Stride); });
  }
  atp::Status attention_forward(void *Out, void *Lse, const void *Q, const void *Kx, const void *V,
                                const atp::AttentionDims &D) override {
    return Queue.push([=] { return K.attention_forward(Out, Lse, Q, Kx, V, D); });
  }
  atp::Status attention_backward(void *DQ, void *DK, void *DV, const void *DOut, const void *Q, const void *Kx,
                                 const void *V, const void *Out, const void *Lse,
                                 const atp::AttentionDims &D) override {
    return Queue.push([=] { return K.attention_backward(DQ, DK, DV, DOut, Q, Kx, V, Out, Lse, D); });
  }
  atp::Result<atp::CrossEntropySum> cross_entropy(void *Logits, const int32_t *Targets,
                                                  const atp::CrossEntropyArgs &A) override {
    ATP_TRY(Queue.runAll()); // its sum comes back to the host
    return K.cross_entropy(Logits, Targets, A);
  }
  atp::Status add(void *Out, const void *A, const void *B, int64_t N) override {
    return Queue.push([=] { return K.add(Out, A, B, N); });
  }
  atp::Status scale(void *X, double Alpha, int64_t N) override {
    return Queue.push([=] { return K.scale(X, Alpha, N); });
  }
  atp::Status synchronize() override { return Queue.runAll(); }

private:
  atp::Kernels &K;
  LaggingQueue &Queue;
};

/// A comm whose collectives wait in a queue.
class LaggingComm final : public atp::Comm {
public:
  LaggingComm(atp::Comm &Inner, LaggingQueue &Q) : atp::Comm(Inner.ranks(), Inner.rank()), Inner(Inner), Queue(Q) {}
  atp::CommBackend backend() const override { return Inner.backend(); }
  atp::Status all_reduce(const void *S, void *R, std::size_t N, atp::DType T, atp::ReduceOp Op) override {
    return Queue.push([=] { return Inner.all_reduce(S, R, N, T, Op); });
  }
  atp::Status reduce_scatter(const void *S, void *R, std::size_t N, atp::DType T, atp::ReduceOp Op) override {
    return Queue.push([=] { return Inner.reduce_scatter(S, R, N, T, Op); });
  }
  atp::Status all_gather(const void *S, void *R, std::size_t N, atp::DType T) override {
    return Queue.push([=] { return Inner.all_gather(S, R, N, T); });
  }
  atp::Status broadcast(void *B, std::size_t N, atp::DType T, int Root) override {
    return Queue.push([=] { return Inner.broadcast(B, N, T, Root); });
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

} // namespace autotpc

#endif // AUTOTPC_TEST_LAGGINGQUEUES_H
