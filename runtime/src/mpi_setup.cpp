/* mpi_setup.cpp - MPI for the runtime: init and finalize, atp's types and reductions as MPI sees them.

   mpi_init asks for MPI_THREAD_MULTIPLE (so the watchdog thread may call MPI_Abort), sets MPI_ERRORS_RETURN
   on MPI_COMM_WORLD, creates the user-defined ops that reduce bf16 and f16 in float and round to nearest even
   at every step (they travel as MPI_UINT16_T), and registers the abort hook through which fail() ends the
   whole job. The state lives for the whole process: the watchdog and hooks may run during exit. */
#include "mpi_internal.h"

#include "atp/world.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>

namespace atp {

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

} // namespace

namespace mpi_detail {

std::string mpi_error_string(int rc) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
    return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<std::size_t>(len));
}

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

} // namespace mpi_detail

using mpi_detail::mpi_error_string;

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

} // namespace atp
