//===- CountingComm.h - a Comm that counts what passes through it --------===//
//
// Wraps another Comm and records, per collective, the payload (the bytes a
// rank contributes: all-reduce and reduce-scatter send buffers, all-gather
// receive buffers) and the bytes a ring algorithm sends per rank (NCCL's
// "bus bytes": all-reduce 2(d-1)/d of the payload, reduce-scatter and
// all-gather (d-1)/d of it). For the ZeRO communication-volume benchmark.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_TEST_COUNTINGCOMM_H
#define AUTOTPC_TEST_COUNTINGCOMM_H

#include "atp/comm.h"

namespace autotpc {

struct CommCount {
  uint64_t Calls = 0, Payload = 0, RingBytes = 0;
};

class CountingComm final : public atp::Comm {
public:
  explicit CountingComm(atp::Comm &Inner) : atp::Comm(Inner.ranks(), Inner.rank()), Inner(Inner) {}
  CommCount AllReduce, ReduceScatter, AllGather, Other;

  atp::CommBackend backend() const override { return Inner.backend(); }
  atp::Status all_reduce(const void *S, void *R, std::size_t N, atp::DType T, atp::ReduceOp Op) override {
    add(AllReduce, N * atp::dtype_size(T), 2.0 * (size() - 1) / size());
    return Inner.all_reduce(S, R, N, T, Op);
  }
  atp::Status reduce_scatter(const void *S, void *R, std::size_t N, atp::DType T, atp::ReduceOp Op) override {
    add(ReduceScatter, N * size() * atp::dtype_size(T), double(size() - 1) / size());
    return Inner.reduce_scatter(S, R, N, T, Op);
  }
  atp::Status all_gather(const void *S, void *R, std::size_t N, atp::DType T) override {
    add(AllGather, N * size() * atp::dtype_size(T), double(size() - 1) / size());
    return Inner.all_gather(S, R, N, T);
  }
  atp::Status broadcast(void *B, std::size_t N, atp::DType T, int Root) override {
    add(Other, N * atp::dtype_size(T), 1.0);
    return Inner.broadcast(B, N, T, Root);
  }
  atp::Status barrier() override { return Inner.barrier(); }
  atp::Status synchronize() override { return Inner.synchronize(); }
  void abort() override { Inner.abort(); }

private:
  static void add(CommCount &C, uint64_t Payload, double RingFactor) {
    ++C.Calls;
    C.Payload += Payload;
    C.RingBytes += uint64_t(double(Payload) * RingFactor + 0.5);
  }
  atp::Comm &Inner;
};

} // namespace autotpc

#endif // AUTOTPC_TEST_COUNTINGCOMM_H
