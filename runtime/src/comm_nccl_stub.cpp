/* comm_nccl_stub.cpp - the NCCL entry points in a runtime built without NCCL (runtime/comm.cmake picks this
   file or comm_nccl.cpp). make_nccl_comm answers with a Status that says why, not a link failure, so CPU-only
   builds and tests keep working. */
#include "atp/comm.h"

namespace atp {

Result<std::unique_ptr<Comm>> make_nccl_comm(const std::vector<int> &ranks, const NcclCommOptions &) {
  return error("make_nccl_comm on group " + comm_detail::group_string(ranks) +
               ": this runtime was built without NCCL (configure with CUDA and NCCL found: AUTOTPC_ENABLE_CUDA)");
}
void *comm_stream(const Comm &) { return nullptr; }
bool nccl_available() { return false; }

} // namespace atp
