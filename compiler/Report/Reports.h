//===- Reports.h - --emit=plan and --emit=memory -------------------------===//
#ifndef AUTOTPC_REPORT_REPORTS_H
#define AUTOTPC_REPORT_REPORTS_H

#include "IR/Module.h"
#include "Verify/Verifier.h"

#include "llvm/Support/MathExtras.h"

namespace autotpc {

/// Products and sums that saturate at INT64_MAX instead of overflowing: a
/// hostile config can describe a model too large to count in 64 bits.
inline int64_t saturatingMul(int64_t A, int64_t B) {
  int64_t R;
  return llvm::MulOverflow(A, B, R) ? INT64_MAX : R;
}
inline int64_t saturatingAdd(int64_t A, int64_t B) {
  int64_t R;
  return llvm::AddOverflow(A, B, R) ? INT64_MAX : R;
}

/// For every TP rank, each parameter's shard shape and the [start, end)
/// ranges of the full tensor it holds.
void printPlan(const Module &M, llvm::raw_ostream &OS);

/// One TP rank's model-state bytes on one GPU, by item.
struct MemoryLedger {
  int64_t Elements = 0;        ///< Φ: parameter elements this TP rank holds
  int64_t Partition = 0;       ///< ⌈Φ / dp⌉ elements: this DP rank's ZeRO partition
  int64_t Params = 0, Grads = 0, Fp32Master = 0, Fp32Grads = 0, Moments = 0;
  /// The sum, saturating at INT64_MAX (see MemoryReport.cpp).
  int64_t total() const;
};

/// The per-GPU bytes for TP rank R under Topo, the ZeRO stage and precision
/// of C (formula in MemoryReport.cpp and in --emit=memory's header).
MemoryLedger memoryLedger(const Module &M, const Config &C, int64_t Dp, size_t TpRank);

/// Prints the ledger of every TP rank with the formula and totals.
void printMemory(const Module &M, const Config &C, const Topology &Topo, llvm::raw_ostream &OS);

} // namespace autotpc

#endif // AUTOTPC_REPORT_REPORTS_H
