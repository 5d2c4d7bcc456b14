/* comm_check.h - verifiable collective checks, shared by the MPI and the NCCL test programs.

   Inputs are computed from (seed, global rank, index), nccl-tests style, so every rank computes the exact
   expected output of every collective itself. Values are small integers (-8..8, or 0..15 for unsigned types):
   every partial sum over 8 ranks is at most 128 in magnitude, so it is exact in every dtype (bf16 included)
   whatever order the backend adds in, and averages over 1, 2, 4 or 8 ranks are exact in floating point.
   The Checker runs every collective x dtype x op x count x in/out of place over one comm; a Memory says where
   the buffers live (host for MPI, device for NCCL). Out-of-place calls also check that send is unchanged;
   every output buffer starts as 0xA5 bytes, a pattern no expected value has. */
#pragma once

#include "atp/comm.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace atp::test {

// ---------------------------------------------------------------------------------------------------------
// values

inline std::uint32_t mix(std::uint32_t seed, int rank, std::size_t i) {
  std::uint64_t h = (std::uint64_t(seed) * 0x9E3779B97F4A7C15ull) ^ (std::uint64_t(rank) << 32) ^ i;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb3f97f4a7c15ull;
  return static_cast<std::uint32_t>(h ^ (h >> 33));
}

inline bool is_unsigned(DType d) { return d == DType::U8 || d == DType::U32 || d == DType::U64; }
inline bool is_float(DType d) { return d == DType::F32 || d == DType::F64 || d == DType::BF16 || d == DType::F16; }

/// Element i of global rank `rank`'s input for `seed`.
inline double value(std::uint32_t seed, int rank, std::size_t i, DType d) {
  std::uint32_t h = mix(seed, rank, i);
  return is_unsigned(d) ? double(h % 16) : double(int(h % 17) - 8);
}

inline void store(void *buf, std::size_t i, DType d, double v) {
  switch (d) {
  case DType::F32:
    static_cast<float *>(buf)[i] = float(v);
    break;
  case DType::F64:
    static_cast<double *>(buf)[i] = v;
    break;
  case DType::BF16:
    static_cast<std::uint16_t *>(buf)[i] = float_to_bf16(float(v));
    break;
  case DType::F16:
    static_cast<std::uint16_t *>(buf)[i] = float_to_f16(float(v));
    break;
  case DType::I32:
    static_cast<std::int32_t *>(buf)[i] = std::int32_t(v);
    break;
  case DType::U32:
    static_cast<std::uint32_t *>(buf)[i] = std::uint32_t(v);
    break;
  case DType::I64:
    static_cast<std::int64_t *>(buf)[i] = std::int64_t(v);
    break;
  case DType::U64:
    static_cast<std::uint64_t *>(buf)[i] = std::uint64_t(v);
    break;
  case DType::I8:
    static_cast<std::int8_t *>(buf)[i] = std::int8_t(v);
    break;
  default:
    static_cast<std::uint8_t *>(buf)[i] = std::uint8_t(v);
    break;
  }
}

inline double load(const void *buf, std::size_t i, DType d) {
  switch (d) {
  case DType::F32:
    return static_cast<const float *>(buf)[i];
  case DType::F64:
    return static_cast<const double *>(buf)[i];
  case DType::BF16:
    return bf16_to_float(static_cast<const std::uint16_t *>(buf)[i]);
  case DType::F16:
    return f16_to_float(static_cast<const std::uint16_t *>(buf)[i]);
  case DType::I32:
    return static_cast<const std::int32_t *>(buf)[i];
  case DType::U32:
    return static_cast<const std::uint32_t *>(buf)[i];
  case DType::I64:
    return double(static_cast<const std::int64_t *>(buf)[i]);
  case DType::U64:
    return double(static_cast<const std::uint64_t *>(buf)[i]);
  case DType::I8:
    return static_cast<const std::int8_t *>(buf)[i];
  default:
    return static_cast<const std::uint8_t *>(buf)[i];
  }
}

inline double reduce(double a, double b, ReduceOp op) {
  switch (op) {
  case ReduceOp::Max:
    return a > b ? a : b;
  case ReduceOp::Min:
    return a < b ? a : b;
  default:
    return a + b; // Sum, Avg (divided at the end)
  }
}

// ---------------------------------------------------------------------------------------------------------
// where buffers live

struct Memory {
  virtual ~Memory() = default;
  virtual void *alloc(std::size_t bytes) = 0;
  virtual void release(void *p) = 0;
  virtual void upload(void *dst, const void *src, std::size_t bytes) = 0;
  virtual void download(void *dst, const void *src, std::size_t bytes) = 0;
};

struct HostMemory final : Memory {
  void *alloc(std::size_t bytes) override { return ::operator new(bytes ? bytes : 1); }
  void release(void *p) override { ::operator delete(p); }
  // memcpy of 0 bytes from an empty vector's null data() is UB: skip it.
  void upload(void *dst, const void *src, std::size_t bytes) override {
    if (bytes)
      std::memcpy(dst, src, bytes);
  }
  void download(void *dst, const void *src, std::size_t bytes) override {
    if (bytes)
      std::memcpy(dst, src, bytes);
  }
};

// ---------------------------------------------------------------------------------------------------------
// results

struct Report {
  long checks = 0, elements = 0, mismatches = 0, errors = 0;
  std::vector<std::string> first; ///< the first few failures, for printing

  void note(const std::string &line) {
    if (first.size() < 12)
      first.push_back(line);
  }
  bool ok() const { return mismatches == 0 && errors == 0; }
};

// ---------------------------------------------------------------------------------------------------------
// the checks over one comm

/// Every dtype comms move, and the ops tried on each (avg only on float types: integer averages truncate,
/// and how is the backend's business).
inline const std::vector<DType> &comm_dtypes() {
  static const std::vector<DType> all = {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32,
                                         DType::U32, DType::I64,  DType::U64, DType::I8,  DType::U8};
  return all;
}
inline std::vector<ReduceOp> comm_ops(DType d) {
  std::vector<ReduceOp> ops = {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min};
  if (is_float(d))
    ops.push_back(ReduceOp::Avg);
  return ops;
}

class Checker {
public:
  /// `layout` names the comm in messages ("tp=2 dp-group [0,2,4,6]"); `counts` are the element counts tried
  /// on every dtype, `big_count` the one tried on f32 and bf16 only.
  Checker(Comm &comm, Memory &mem, std::string layout, Report &report, std::vector<std::size_t> counts,
          std::size_t big_count)
      : comm_(comm), mem_(mem), layout_(std::move(layout)), report_(report), counts_(std::move(counts)),
        big_count_(big_count) {}

  void run_all() {
    for (DType d : comm_dtypes()) {
      std::vector<std::size_t> counts = counts_;
      if (d == DType::F32 || d == DType::BF16)
        counts.push_back(big_count_);
      for (std::size_t count : counts) {
        for (ReduceOp op : comm_ops(d))
          for (bool in_place : {false, true}) {
            all_reduce(d, op, count, in_place);
            reduce_scatter(d, op, count, in_place);
          }
        for (bool in_place : {false, true})
          all_gather(d, count, in_place);
        for (int root = 0; root < comm_.size(); ++root)
          broadcast(d, count, root);
      }
    }
    barrier();
  }

  void all_reduce(DType d, ReduceOp op, std::size_t count, bool in_place) {
    std::uint32_t seed = seed_++;
    std::string w = what("all_reduce", d, reduce_op_name(op), count, in_place);
    std::vector<char> in = input(seed, me(), 0, count, d);
    std::vector<double> want(count);
    for (std::size_t i = 0; i < count; ++i)
      want[i] = expected(seed, i, d, op);
    Buffer send(mem_, in), recv_own(mem_, in_place ? 0 : bytes(count, d), true);
    void *recv = in_place ? send.ptr : recv_own.ptr;
    if (!call_ok(comm_.all_reduce(send.ptr, recv, count, d, op), w))
      return;
    compare(w, download(recv, bytes(count, d)), want, d);
    if (!in_place)
      unchanged(w, send.ptr, in);
  }

  void reduce_scatter(DType d, ReduceOp op, std::size_t recv_count, bool in_place) {
    std::uint32_t seed = seed_++;
    std::string w = what("reduce_scatter", d, reduce_op_name(op), recv_count, in_place);
    std::size_t n = std::size_t(comm_.size()), mine = std::size_t(comm_.rank()) * recv_count;
    std::vector<char> in = input(seed, me(), 0, n * recv_count, d);
    std::vector<double> want(recv_count);
    for (std::size_t i = 0; i < recv_count; ++i)
      want[i] = expected(seed, mine + i, d, op);
    Buffer send(mem_, in), recv_own(mem_, in_place ? 0 : bytes(recv_count, d), true);
    void *recv = in_place ? static_cast<char *>(send.ptr) + bytes(mine, d) : recv_own.ptr;
    if (!call_ok(comm_.reduce_scatter(send.ptr, recv, recv_count, d, op), w))
      return;
    compare(w, download(recv, bytes(recv_count, d)), want, d);
    if (!in_place)
      unchanged(w, send.ptr, in);
  }

  void all_gather(DType d, std::size_t send_count, bool in_place) {
    std::uint32_t seed = seed_++;
    std::string w = what("all_gather", d, nullptr, send_count, in_place);
    std::size_t n = std::size_t(comm_.size());
    std::vector<char> in = input(seed, me(), 0, send_count, d);
    std::vector<double> want(n * send_count);
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t i = 0; i < send_count; ++i)
        want[r * send_count + i] = value(seed, comm_.ranks()[r], i, d);
    Buffer recv(mem_, bytes(n * send_count, d), true), send_own(mem_, in_place ? std::vector<char>() : in);
    void *send = send_own.ptr;
    if (in_place) {
      send = static_cast<char *>(recv.ptr) + bytes(std::size_t(comm_.rank()) * send_count, d);
      mem_.upload(send, in.data(), in.size());
    }
    if (!call_ok(comm_.all_gather(send, recv.ptr, send_count, d), w))
      return;
    compare(w, download(recv.ptr, bytes(n * send_count, d)), want, d);
    if (!in_place)
      unchanged(w, send, in);
  }

  void broadcast(DType d, std::size_t count, int root) {
    std::uint32_t seed = seed_++;
    std::string w = what("broadcast", d, nullptr, count, false) + " root " + std::to_string(root);
    std::vector<double> want(count);
    for (std::size_t i = 0; i < count; ++i)
      want[i] = value(seed, comm_.ranks()[std::size_t(root)], i, d);
    Buffer buf(mem_, input(seed, me(), 0, count, d));
    if (!call_ok(comm_.broadcast(buf.ptr, count, d, root), w))
      return;
    compare(w, download(buf.ptr, bytes(count, d)), want, d);
  }

  void barrier() { call_ok(comm_.barrier(), layout_ + ": barrier"); }

private:
  /// A buffer in the comm's memory, filled from `init` or with the 0xA5 pattern.
  struct Buffer {
    Memory &mem;
    void *ptr = nullptr;
    Buffer(Memory &m, const std::vector<char> &init) : mem(m), ptr(m.alloc(init.size())) {
      mem.upload(ptr, init.data(), init.size());
    }
    Buffer(Memory &m, std::size_t n, bool) : Buffer(m, std::vector<char>(n, char(0xA5))) {}
    ~Buffer() { mem.release(ptr); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
  };

  int me() const { return comm_.ranks()[std::size_t(comm_.rank())]; }
  static std::size_t bytes(std::size_t count, DType d) { return count * dtype_size(d); }

  std::vector<char> input(std::uint32_t seed, int rank, std::size_t first, std::size_t count, DType d) const {
    std::vector<char> v(bytes(count, d));
    for (std::size_t i = 0; i < count; ++i)
      store(v.data(), i, d, value(seed, rank, first + i, d));
    return v;
  }
  /// op over the group's ranks of element i, as the group's members computed their inputs.
  double expected(std::uint32_t seed, std::size_t i, DType d, ReduceOp op) const {
    double acc = value(seed, comm_.ranks()[0], i, d);
    for (std::size_t r = 1; r < comm_.ranks().size(); ++r)
      acc = reduce(acc, value(seed, comm_.ranks()[r], i, d), op);
    return op == ReduceOp::Avg ? acc / comm_.size() : acc;
  }
  std::vector<char> download(const void *p, std::size_t n) {
    std::vector<char> v(n);
    mem_.download(v.data(), p, n);
    return v;
  }

  std::string what(const char *call, DType d, const char *op, std::size_t count, bool in_place) const {
    return layout_ + ": " + call + "(" + std::to_string(count) + " x " + dtype_name(d) + (op ? ", " : "") +
           (op ? op : "") + ")" + (in_place ? " in place" : "");
  }

  bool call_ok(const Status &s, const std::string &w) {
    ++report_.checks;
    Status done = s.ok() ? comm_.synchronize() : s;
    if (done.ok())
      return true;
    ++report_.errors;
    report_.note(w + ": returned an error: " + done.message());
    return false;
  }

  void compare(const std::string &w, const std::vector<char> &got, const std::vector<double> &want, DType d) {
    report_.elements += long(want.size());
    int shown = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      double g = load(got.data(), i, d);
      if (g == want[i])
        continue;
      ++report_.mismatches;
      if (shown++ < 3) {
        char line[160];
        std::snprintf(line, sizeof line, ": [%zu] = %.9g, expected %.9g", i, g, want[i]);
        report_.note(w + line);
      }
    }
  }

  void unchanged(const std::string &w, const void *send, const std::vector<char> &in) {
    if (download(send, in.size()) != in) {
      ++report_.mismatches;
      report_.note(w + ": the send buffer was modified");
    }
  }

  Comm &comm_;
  Memory &mem_;
  std::string layout_;
  Report &report_;
  std::vector<std::size_t> counts_;
  std::size_t big_count_;
  std::uint32_t seed_ = 1;
};

} // namespace atp::test
