/* comm_mpi.cpp - the MPI backend of Comm (host buffers), and the pieces both backends share.

   Groups are made with MPI_Comm_create_group, so only a group's members take part in making it. Every
   communicator has MPI_ERRORS_RETURN, and a failed call becomes a Status that names the rank, host, group and
   call with MPI's error string. bf16 and f16 have no MPI type: they travel as MPI_UINT16_T and are reduced by
   user-defined ops that compute in float and round to nearest even at every step, as NCCL does.

   What the MPI backend guarantees about failures, and what it does not:
     - A peer that dies: mpirun (Open MPI) sees a process exit without MPI_Finalize and kills the job. Under
       other launchers that depends on the launcher (srun needs --kill-on-bad-exit); the watchdog below is the
       backstop either way.
     - A call that blocks (a dead, hung or diverged peer): MPI calls cannot be interrupted, so a process-wide
       watchdog thread ends the job through fail() (MPI_Abort of MPI_COMM_WORLD via the abort hook) once a call
       has run comm_timeout_s() seconds. This is the one place where the runtime exits on its own.
     - Ranks that call with different counts or collectives: MPI detects some cases (MPI_ERR_TRUNCATE on the
       rank that receives too much) and returns them as a Status; others block (the watchdog ends them); MPI
       checks no counts, so a mismatch whose messages happen to fit can go unnoticed.
     - An error Status does not stop the peers by itself: top-level code passes it to fail(), whose abort hook
       (registered by mpi_init) calls MPI_Abort so that the whole job ends. */
#include "atp/comm.h"
#include "atp/world.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace atp {

// ---------------------------------------------------------------------------------------------------------
// element types

bool comm_supports(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::BF16:
  case DType::F16:
  case DType::F64:
  case DType::I32:
  case DType::U32:
  case DType::I64:
  case DType::U64:
  case DType::I8:
  case DType::U8:
    return true;
  default:
    return false;
  }
}

const char *reduce_op_name(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return "sum";
  case ReduceOp::Max:
    return "max";
  case ReduceOp::Min:
    return "min";
  case ReduceOp::Avg:
    return "avg";
  }
  return "?";
}

float bf16_to_float(std::uint16_t bits) {
  std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::uint16_t float_to_bf16(float value) {
  std::uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep it a (quiet) NaN
    return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
  return static_cast<std::uint16_t>(u >> 16);
}

float f16_to_float(std::uint16_t bits) {
  std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  std::uint32_t exp = (bits >> 10) & 0x1fu, mant = bits & 0x3ffu;
  float f;
  if (exp == 0) { // zero or subnormal: mant * 2^-24
    f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  }
  std::uint32_t u = exp == 0x1f ? sign | 0x7f800000u | (mant << 13) : sign | ((exp + 112u) << 23) | (mant << 13);
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::uint16_t float_to_f16(float value) {
  std::uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  std::uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) // inf or NaN
    return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (a >= 0x477ff000u) // >= 65520 rounds to inf
    return sign | 0x7c00u;
  if (a < 0x38800000u) { // below 2^-14: a subnormal half; x * 2^24 is exact, rint rounds ties to even
    float f;
    std::memcpy(&f, &a, sizeof f);
    return sign | static_cast<std::uint16_t>(std::nearbyint(f * 16777216.0f));
  }
  std::uint32_t h = (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu), rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h; // a carry into the exponent is the right answer
  return sign | static_cast<std::uint16_t>(h);
}

// ---------------------------------------------------------------------------------------------------------
// who we are, the timeout, group checks

namespace comm_detail {

Status global_rank_and_size(int *rank, int *world_size) {
  if (mpi_active()) {
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, world_size);
    return {};
  }
  Result<World> world = World::from_env();
  if (!world.ok())
    return world.status();
  *rank = world->rank;
  *world_size = world->world_size;
  return {};
}

std::string group_string(const std::vector<int> &ranks) {
  std::string s = "[";
  std::size_t n = ranks.size(), shown = n <= 16 ? n : 4;
  for (std::size_t i = 0; i < shown; ++i)
    s += (i ? "," : "") + std::to_string(ranks[i]);
  if (shown < n)
    s += ",...," + std::to_string(ranks.back()) + "] (" + std::to_string(n) + " ranks)";
  else
    s += "]";
  return s;
}

Status check_group(const char *call, const std::vector<int> &ranks, int global_rank, int world_size) {
  std::string where = std::string(call) + ": group " + group_string(ranks);
  if (ranks.empty())
    return error(std::string(call) + ": the group is empty");
  std::vector<int> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  if (sorted.front() < 0 || sorted.back() >= world_size)
    return error(where + " has rank " + std::to_string(sorted.front() < 0 ? sorted.front() : sorted.back()) +
                 ", outside the world of " + std::to_string(world_size) + " ranks");
  auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end())
    return error(where + " lists rank " + std::to_string(*dup) + " twice");
  if (!std::binary_search(sorted.begin(), sorted.end(), global_rank))
    return error(where + " does not hold this process (global rank " + std::to_string(global_rank) +
                 "); only a group's members create its communicator");
  return {};
}

bool overlaps(const void *a, std::size_t an, const void *b, std::size_t bn) {
  auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  return an && bn && pa < pb + bn && pb < pa + an;
}

} // namespace comm_detail

double comm_timeout_s() {
  const char *v = std::getenv("ATP_COMM_TIMEOUT_S");
  if (!v || !*v)
    return 300;
  char *end = nullptr;
  double t = std::strtod(v, &end);
  if (*end != '\0' || !std::isfinite(t) || t < 0) {
    static bool warned = false;
    if (!warned)
      std::fprintf(stderr, "atp: warning: ATP_COMM_TIMEOUT_S='%s' is not a number of seconds >= 0; using 300\n", v);
    warned = true;
    return 300;
  }
  return t;
}

std::string process_label() {
  int rank = -1, size = 0;
  std::string r =
      comm_detail::global_rank_and_size(&rank, &size).ok() ? std::to_string(rank) + "/" + std::to_string(size) : "?";
  return "rank " + r + " (host " + host_name() + ")";
}

Status Comm::check_args(const char *call, const void *send, const void *recv, std::size_t count, DType dtype) const {
  if (!comm_supports(dtype))
    return error(std::string(call) + ": dtype " + dtype_name(dtype) + " is not supported by comms");
  if (count > 0 && (!send || !recv))
    return error(std::string(call) + ": null buffer for " + std::to_string(count) + " elements");
  return {};
}

// ---------------------------------------------------------------------------------------------------------
// MPI setup: init, the 16-bit float ops, the abort hook

namespace {

struct MpiState {
  std::mutex mu;
  bool set_up = false, we_initialized = false;
  int thread_level = MPI_THREAD_SINGLE;
  MPI_Op ops16[2][3] = {}; // [bf16, f16][sum, max, min]
  int abort_hook = -1;
};

MpiState &mpi_state() {
  static MpiState *state = new MpiState; // never destroyed: the watchdog and hooks may run during exit
  return *state;
}

template <bool Bf16, int Kind> // Kind: 0 sum, 1 max, 2 min
void reduce16(void *in, void *inout, int *len, MPI_Datatype *) {
  auto *a = static_cast<const std::uint16_t *>(in);
  auto *b = static_cast<std::uint16_t *>(inout);
  for (int i = 0; i < *len; ++i) {
    float x = Bf16 ? bf16_to_float(a[i]) : f16_to_float(a[i]);
    float y = Bf16 ? bf16_to_float(b[i]) : f16_to_float(b[i]);
    if (Kind == 0)
      b[i] = Bf16 ? float_to_bf16(x + y) : float_to_f16(x + y);
    else if (Kind == 1 ? x > y : x < y)
      b[i] = a[i];
  }
}

using ReduceFn = void (*)(void *, void *, int *, MPI_Datatype *);
constexpr ReduceFn kReduce16[2][3] = {{reduce16<true, 0>, reduce16<true, 1>, reduce16<true, 2>},
                                      {reduce16<false, 0>, reduce16<false, 1>, reduce16<false, 2>}};

std::string mpi_error_string(int rc) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
    return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<std::size_t>(len));
}

} // namespace

bool mpi_active() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

Status mpi_init(int *argc, char ***argv) {
  MpiState &st = mpi_state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.set_up)
    return {};
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    return error("mpi_init: MPI has already been finalized in this process");
  if (!initialized) {
    int provided = MPI_THREAD_SINGLE;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS)
      return error("mpi_init: MPI_Init_thread failed: " + mpi_error_string(rc));
    st.we_initialized = true;
  }
  MPI_Query_thread(&st.thread_level);
  int rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  for (int t = 0; t < 2 && rc == MPI_SUCCESS; ++t)
    for (int k = 0; k < 3 && rc == MPI_SUCCESS; ++k)
      rc = MPI_Op_create(kReduce16[t][k], /*commute=*/1, &st.ops16[t][k]);
  if (rc != MPI_SUCCESS)
    return error("mpi_init: setting up MPI failed: " + mpi_error_string(rc));
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  set_process_identity(rank, size);
  // fail() ends the whole job, not just this rank, so that no peer waits on it.
  st.abort_hook = add_abort_hook([] {
    if (!mpi_active())
      return;
    int main_thread = 0;
    MPI_Is_thread_main(&main_thread);
    if (mpi_state().thread_level == MPI_THREAD_MULTIPLE || main_thread)
      MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1); // another thread may be inside MPI, which then forbids calls here: leave it to the launcher
  });
  st.set_up = true;
  return {};
}

Status mpi_finalize() {
  MpiState &st = mpi_state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (!st.set_up)
    return {};
  for (auto &row : st.ops16)
    for (MPI_Op &op : row)
      if (op != MPI_OP_NULL)
        MPI_Op_free(&op);
  remove_abort_hook(st.abort_hook);
  st.set_up = false;
  if (st.we_initialized) {
    int rc = MPI_Finalize();
    if (rc != MPI_SUCCESS)
      return error("mpi_finalize: MPI_Finalize failed: " + mpi_error_string(rc));
  }
  return {};
}

// ---------------------------------------------------------------------------------------------------------
// the watchdog: one thread per process that ends the job when an MPI call runs past the timeout

namespace {

class Watchdog {
public:
  static Watchdog &get() {
    static Watchdog *w = new Watchdog; // never destroyed: its thread outlives main
    return *w;
  }
  std::uint64_t arm(double timeout_s, std::string what, const char *mpi_call) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) {
      std::thread([this] { loop(); }).detach();
      started_ = true;
    }
    auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    armed_.emplace(next_id_, Entry{deadline, timeout_s, std::move(what), mpi_call});
    cv_.notify_one();
    return next_id_++;
  }
  void disarm(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    armed_.erase(id);
  }

private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Clock::time_point deadline;
    double timeout_s;
    std::string what;
    const char *mpi_call;
  };
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (armed_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = std::min_element(armed_.begin(), armed_.end(),
                                    [](const auto &a, const auto &b) { return a.second.deadline < b.second.deadline; });
      if (Clock::now() < first->second.deadline) {
        // Copy: disarm() may erase the entry while the lock is released.
        const Clock::time_point deadline = first->second.deadline;
        cv_.wait_until(lock, deadline);
        continue;
      }
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", first->second.timeout_s);
      std::string detail = first->second.what + " did not complete within " + secs +
                           " s (ATP_COMM_TIMEOUT_S): a peer is dead, hung, or called a different collective; "
                           "aborting the job";
      const char *call = first->second.mpi_call;
      lock.unlock();
      fail(call, "", __FILE__, __LINE__, detail); // prints "rank R/W (host H): <call> failed at ...: <detail>"
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint64_t, Entry> armed_;
  std::uint64_t next_id_ = 1;
  bool started_ = false;
};

/// Arms the watchdog for the lifetime of a call (nothing when the timeout is 0).
class WatchdogScope {
public:
  WatchdogScope(const std::string &what, const char *mpi_call) {
    double t = comm_timeout_s();
    if (t > 0)
      id_ = Watchdog::get().arm(t, what, mpi_call);
  }
  ~WatchdogScope() {
    if (id_)
      Watchdog::get().disarm(id_);
  }
  WatchdogScope(const WatchdogScope &) = delete;
  WatchdogScope &operator=(const WatchdogScope &) = delete;

private:
  std::uint64_t id_ = 0;
};

} // namespace

// ---------------------------------------------------------------------------------------------------------
// MpiComm

namespace {

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return MPI_FLOAT;
  case DType::F64:
    return MPI_DOUBLE;
  case DType::I32:
    return MPI_INT32_T;
  case DType::U32:
    return MPI_UINT32_T;
  case DType::I64:
    return MPI_INT64_T;
  case DType::U64:
    return MPI_UINT64_T;
  case DType::I8:
    return MPI_INT8_T;
  case DType::U8:
    return MPI_UINT8_T;
  default:
    return MPI_UINT16_T; // BF16, F16 (check_args refused the rest)
  }
}

MPI_Op mpi_op(DType dtype, ReduceOp op) {
  int kind = op == ReduceOp::Max ? 1 : op == ReduceOp::Min ? 2 : 0;
  if (dtype == DType::BF16 || dtype == DType::F16)
    return mpi_state().ops16[dtype == DType::BF16 ? 0 : 1][kind];
  return kind == 1 ? MPI_MAX : kind == 2 ? MPI_MIN : MPI_SUM;
}

template <class T> void divide_as(void *buf, std::size_t count, int n) {
  T *p = static_cast<T *>(buf);
  for (std::size_t i = 0; i < count; ++i)
    p[i] = static_cast<T>(p[i] / static_cast<T>(n));
}

/// Avg = sum / n, in the element type (integers truncate; bf16/f16 divide in float and round once).
void divide(void *buf, std::size_t count, DType dtype, int n) {
  auto *h = static_cast<std::uint16_t *>(buf);
  switch (dtype) {
  case DType::F32:
    return divide_as<float>(buf, count, n);
  case DType::F64:
    return divide_as<double>(buf, count, n);
  case DType::I32:
    return divide_as<std::int32_t>(buf, count, n);
  case DType::U32:
    return divide_as<std::uint32_t>(buf, count, n);
  case DType::I64:
    return divide_as<std::int64_t>(buf, count, n);
  case DType::U64:
    return divide_as<std::uint64_t>(buf, count, n);
  case DType::I8:
    return divide_as<std::int8_t>(buf, count, n);
  case DType::U8:
    return divide_as<std::uint8_t>(buf, count, n);
  case DType::BF16:
    for (std::size_t i = 0; i < count; ++i)
      h[i] = float_to_bf16(bf16_to_float(h[i]) / static_cast<float>(n));
    return;
  case DType::F16:
    for (std::size_t i = 0; i < count; ++i)
      h[i] = float_to_f16(f16_to_float(h[i]) / static_cast<float>(n));
    return;
  default:
    return;
  }
}

const char *cbytes(const void *p) { return static_cast<const char *>(p); }
char *bytes(void *p) { return static_cast<char *>(p); }

class MpiComm final : public Comm {
public:
  MpiComm(std::vector<int> ranks, int rank, MPI_Comm comm, std::size_t max_chunk)
      : Comm(std::move(ranks), rank), comm_(comm), max_chunk_(max_chunk) {}
  ~MpiComm() override {
    if (comm_ != MPI_COMM_NULL && mpi_active())
      MPI_Comm_free(&comm_);
  }
  CommBackend backend() const override { return CommBackend::Mpi; }
  Status all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) override;
  Status reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) override;
  Status all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) override;
  Status broadcast(void *buf, std::size_t count, DType dtype, int root) override;
  Status barrier() override;
  Status synchronize() override {
    return aborted_ ? error(describe("synchronize") + ": the comm was aborted") : Status{};
  }
  /// MPI cannot abort one communicator without the job: later calls fail; ending the job is fail()'s hook.
  void abort() override { aborted_ = true; }

private:
  std::string describe(const char *call, std::size_t count = 0, DType dtype = DType::U8,
                       const char *op = nullptr) const {
    std::string s = call;
    if (count)
      s += std::string("(") + std::to_string(count) + " x " + dtype_name(dtype) + (op ? std::string(", ") + op : "") +
           ")";
    return s + " on group " + comm_detail::group_string(ranks()) + " (group rank " + std::to_string(rank()) + "/" +
           std::to_string(size()) + ")";
  }
  Status start(const char *call, const void *send, const void *recv, std::size_t count, DType dtype) const {
    if (aborted_)
      return error(describe(call) + ": the comm was aborted");
    return check_args(call, send, recv, count, dtype);
  }
  /// Runs one MPI call under the watchdog; an error names `what` and the MPI function.
  template <class F> Status run(const std::string &what, const char *mpi_call, F &&f) {
    WatchdogScope guard(what, mpi_call);
    int rc = f();
    if (rc != MPI_SUCCESS)
      return error(what + ": " + mpi_call + " failed: " + mpi_error_string(rc));
    return {};
  }
  int chunk(std::size_t left) const { return static_cast<int>(std::min(left, max_chunk_)); }

  MPI_Comm comm_;
  std::size_t max_chunk_;
  bool aborted_ = false;
};

Status MpiComm::all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) {
  ATP_TRY(start("all_reduce", send, recv, count, dtype));
  std::size_t es = dtype_size(dtype);
  std::string what = describe("all_reduce", count, dtype, reduce_op_name(op));
  bool in_place = send == recv;
  if (!in_place && comm_detail::overlaps(send, count * es, recv, count * es))
    return error(what + ": send and recv overlap without being the same buffer");
  for (std::size_t off = 0; off < count; off += max_chunk_) {
    const void *s = in_place ? MPI_IN_PLACE : cbytes(send) + off * es;
    ATP_TRY(run(what, "MPI_Allreduce", [&] {
      return MPI_Allreduce(s, bytes(recv) + off * es, chunk(count - off), mpi_type(dtype), mpi_op(dtype, op), comm_);
    }));
  }
  if (op == ReduceOp::Avg)
    divide(recv, count, dtype, size());
  return {};
}

Status MpiComm::reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) {
  ATP_TRY(start("reduce_scatter", send, recv, recv_count, dtype));
  std::size_t es = dtype_size(dtype), n = static_cast<std::size_t>(size()), rbytes = recv_count * es;
  std::string what = describe("reduce_scatter", recv_count, dtype, reduce_op_name(op));
  bool in_place = recv == cbytes(send) + rank() * rbytes;
  if (!in_place && comm_detail::overlaps(send, n * rbytes, recv, rbytes))
    return error(what + ": recv overlaps send without being this rank's slice of it");
  if (recv_count <= max_chunk_ && !in_place) {
    ATP_TRY(run(what, "MPI_Reduce_scatter_block", [&] {
      return MPI_Reduce_scatter_block(send, recv, chunk(recv_count), mpi_type(dtype), mpi_op(dtype, op), comm_);
    }));
  } else {
    // In place (MPI's in-place layout differs from NCCL's) or too big for one call: pack each chunk of every
    // rank's slice into a staging buffer first, so send is only read and recv only written.
    std::size_t c0 = std::min(recv_count, max_chunk_);
    std::vector<char> staged(n * c0 * es), out(c0 * es);
    for (std::size_t off = 0; off < recv_count; off += max_chunk_) {
      std::size_t c = std::min(recv_count - off, max_chunk_);
      for (std::size_t r = 0; r < n; ++r)
        std::memcpy(staged.data() + r * c * es, cbytes(send) + (r * recv_count + off) * es, c * es);
      ATP_TRY(run(what, "MPI_Reduce_scatter_block", [&] {
        return MPI_Reduce_scatter_block(staged.data(), out.data(), static_cast<int>(c), mpi_type(dtype),
                                        mpi_op(dtype, op), comm_);
      }));
      std::memcpy(bytes(recv) + off * es, out.data(), c * es);
    }
  }
  if (op == ReduceOp::Avg)
    divide(recv, recv_count, dtype, size());
  return {};
}

Status MpiComm::all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) {
  ATP_TRY(start("all_gather", send, recv, send_count, dtype));
  std::size_t es = dtype_size(dtype), n = static_cast<std::size_t>(size()), sbytes = send_count * es;
  std::string what = describe("all_gather", send_count, dtype);
  bool in_place = send == cbytes(recv) + rank() * sbytes;
  if (!in_place && comm_detail::overlaps(send, sbytes, recv, n * sbytes))
    return error(what + ": send overlaps recv without being this rank's slice of it");
  if (send_count <= max_chunk_) {
    const void *s = in_place ? MPI_IN_PLACE : send;
    return run(what, "MPI_Allgather", [&] {
      return MPI_Allgather(s, chunk(send_count), mpi_type(dtype), recv, chunk(send_count), mpi_type(dtype), comm_);
    });
  }
  std::vector<char> staged(n * max_chunk_ * es);
  for (std::size_t off = 0; off < send_count; off += max_chunk_) {
    std::size_t c = std::min(send_count - off, max_chunk_);
    ATP_TRY(run(what, "MPI_Allgather", [&] {
      return MPI_Allgather(cbytes(send) + off * es, static_cast<int>(c), mpi_type(dtype), staged.data(),
                           static_cast<int>(c), mpi_type(dtype), comm_);
    }));
    for (std::size_t r = 0; r < n; ++r) // in place, our own slice gets the bytes it already holds
      std::memmove(bytes(recv) + (r * send_count + off) * es, staged.data() + r * c * es, c * es);
  }
  return {};
}

Status MpiComm::broadcast(void *buf, std::size_t count, DType dtype, int root) {
  ATP_TRY(start("broadcast", buf, buf, count, dtype));
  std::string what = describe("broadcast", count, dtype);
  if (root < 0 || root >= size())
    return error(what + ": root " + std::to_string(root) + " is not a group rank");
  std::size_t es = dtype_size(dtype);
  for (std::size_t off = 0; off < count; off += max_chunk_)
    ATP_TRY(run(what, "MPI_Bcast",
                [&] { return MPI_Bcast(bytes(buf) + off * es, chunk(count - off), mpi_type(dtype), root, comm_); }));
  return {};
}

Status MpiComm::barrier() {
  if (aborted_)
    return error(describe("barrier") + ": the comm was aborted");
  return run(describe("barrier"), "MPI_Barrier", [&] { return MPI_Barrier(comm_); });
}

/// A tag that differs between groups, so that concurrent creations of different groups never mix.
int group_tag(const std::vector<int> &ranks) {
  std::uint32_t h = 2166136261u; // FNV-1a
  for (int r : ranks)
    h = (h ^ static_cast<std::uint32_t>(r)) * 16777619u;
  return static_cast<int>(h % 32768u); // MPI_TAG_UB is at least 32767
}

} // namespace

Result<std::unique_ptr<Comm>> make_mpi_comm(const std::vector<int> &ranks, const MpiCommOptions &options) {
  ATP_TRY(mpi_init());
  int world_rank = 0, world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  std::string who = "make_mpi_comm";
  ATP_TRY(comm_detail::check_group(who.c_str(), ranks, world_rank, world_size));
  if (options.max_chunk == 0 || options.max_chunk > static_cast<std::size_t>(INT_MAX))
    return error(who + ": max_chunk " + std::to_string(options.max_chunk) + " is not in [1, INT_MAX]");
  std::string what = who + " on group " + comm_detail::group_string(ranks);

  MPI_Group world_group = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
  MPI_Comm comm = MPI_COMM_NULL;
  int rc = MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  if (rc == MPI_SUCCESS)
    rc = MPI_Group_incl(world_group, static_cast<int>(ranks.size()), ranks.data(), &group);
  if (rc == MPI_SUCCESS) {
    WatchdogScope guard(what, "MPI_Comm_create_group");
    rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, group_tag(ranks), &comm);
  }
  if (group != MPI_GROUP_NULL)
    MPI_Group_free(&group);
  if (world_group != MPI_GROUP_NULL)
    MPI_Group_free(&world_group);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    if (comm != MPI_COMM_NULL)
      MPI_Comm_free(&comm);
    return error(what + ": making the communicator failed: " + mpi_error_string(rc));
  }
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return std::unique_ptr<Comm>(new MpiComm(ranks, rank, comm, options.max_chunk));
}

// ---------------------------------------------------------------------------------------------------------
// builds without NCCL

#ifndef ATP_HAVE_NCCL
Result<std::unique_ptr<Comm>> make_nccl_comm(const std::vector<int> &ranks, const NcclCommOptions &) {
  return error("make_nccl_comm on group " + comm_detail::group_string(ranks) +
               ": this runtime was built without NCCL (configure with CUDA and NCCL found: AUTOTPC_ENABLE_CUDA)");
}
void *comm_stream(const Comm &) { return nullptr; }
bool nccl_available() { return false; }
#endif

} // namespace atp
