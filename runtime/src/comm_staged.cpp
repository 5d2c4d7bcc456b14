/* comm_staged.cpp - device-buffer collectives staged through a host comm (comm_staged.h). */
#include "atp/comm_staged.h"

#include <cstddef>
#include <vector>

namespace atp {
namespace {

class StagedComm final : public Comm {
public:
  StagedComm(std::unique_ptr<Comm> host, Ops &ops) : Comm(host->ranks(), host->rank()), host_(std::move(host)), ops_(ops) {}

  CommBackend backend() const override { return host_->backend(); }

  Status all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) override {
    ATP_TRY(check_args("all_reduce", send, recv, count, dtype));
    const std::size_t bytes = count * dtype_size(dtype);
    if (send != recv && comm_detail::overlaps(send, bytes, recv, bytes))
      return error(describe_call("all_reduce", count, dtype, reduce_op_name(op)) +
                   ": send and recv overlap without being the same buffer");
    ATP_TRY(stage_in(send, bytes));
    ATP_TRY(host_->all_reduce(in_.data(), in_.data(), count, dtype, op));
    return ops_.copy_from_host(recv, in_.data(), bytes);
  }

  Status reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) override {
    ATP_TRY(check_args("reduce_scatter", send, recv, recv_count, dtype));
    const std::size_t bytes = recv_count * dtype_size(dtype);
    const bool in_place = recv == static_cast<const std::byte *>(send) + std::size_t(rank()) * bytes;
    if (!in_place && comm_detail::overlaps(send, bytes * std::size_t(size()), recv, bytes))
      return error(describe_call("reduce_scatter", recv_count, dtype, reduce_op_name(op)) +
                   ": recv overlaps send without being this rank's slice of it");
    ATP_TRY(stage_in(send, bytes * std::size_t(size())));
    out_.resize(bytes);
    ATP_TRY(host_->reduce_scatter(in_.data(), out_.data(), recv_count, dtype, op));
    return ops_.copy_from_host(recv, out_.data(), bytes);
  }

  Status all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) override {
    ATP_TRY(check_args("all_gather", send, recv, send_count, dtype));
    const std::size_t bytes = send_count * dtype_size(dtype);
    const bool in_place = send == static_cast<const std::byte *>(recv) + std::size_t(rank()) * bytes;
    if (!in_place && comm_detail::overlaps(send, bytes, recv, bytes * std::size_t(size())))
      return error(describe_call("all_gather", send_count, dtype, nullptr) +
                   ": send overlaps recv without being this rank's slice of it");
    ATP_TRY(stage_in(send, bytes));
    out_.resize(bytes * std::size_t(size()));
    ATP_TRY(host_->all_gather(in_.data(), out_.data(), send_count, dtype));
    return ops_.copy_from_host(recv, out_.data(), out_.size());
  }

  Status broadcast(void *buf, std::size_t count, DType dtype, int root) override {
    ATP_TRY(check_args("broadcast", buf, buf, count, dtype));
    const std::size_t bytes = count * dtype_size(dtype);
    ATP_TRY(stage_in(buf, bytes));
    ATP_TRY(host_->broadcast(in_.data(), count, dtype, root));
    return ops_.copy_from_host(buf, in_.data(), bytes);
  }

  Status barrier() override {
    ATP_TRY(ops_.synchronize());
    return host_->barrier();
  }
  Status synchronize() override { return ops_.synchronize(); }
  void abort() override { host_->abort(); }

private:
  /// Copies `bytes` of device memory into in_ (the copy waits for the stream's earlier work).
  Status stage_in(const void *src, std::size_t bytes) {
    in_.resize(bytes);
    return ops_.copy_to_host(in_.data(), src, bytes);
  }

  std::unique_ptr<Comm> host_;
  Ops &ops_;
  std::vector<std::byte> in_, out_;
};

} // namespace

std::unique_ptr<Comm> make_staged_comm(std::unique_ptr<Comm> host, Ops &device_ops) {
  return std::make_unique<StagedComm>(std::move(host), device_ops);
}

} // namespace atp
