//===- Reports.h - --emit=plan and --emit=memory -------------------------===//
#ifndef AUTOTPC_REPORT_REPORTS_H
#define AUTOTPC_REPORT_REPORTS_H

#include "IR/Module.h"
#include "Verify/Verifier.h"

namespace autotpc {

/// For every TP rank, each parameter's shard shape and the [start, end)
/// ranges of the full tensor it holds.
void printPlan(const Module &M, llvm::raw_ostream &OS);

/// One TP rank's model-state bytes on one GPU, by item.
struct MemoryLedger {
  int64_t Elements = 0;        ///< Φ: parameter elements this TP rank holds
  int64_t Partition = 0;       ///< ⌈Φ / dp⌉ elements: this DP rank's ZeRO partition
  int64_t Params = 0, Grads = 0, Fp32Master = 0, Fp32Grads = 0, Moments = 0;
  int64_t total() const { return Params + Grads + Fp32Master + Fp32Grads + Moments; }
};

/// The per-GPU bytes for TP rank R under Topo, the ZeRO stage and precision
/// of C (formula in MemoryReport.cpp and in --emit=memory's header).
MemoryLedger memoryLedger(const Module &M, const Config &C, int64_t Dp, size_t TpRank);

/// Prints the ledger of every TP rank with the formula and totals.
void printMemory(const Module &M, const Config &C, const Topology &Topo, llvm::raw_ostream &OS);

} // namespace autotpc

#endif // AUTOTPC_REPORT_REPORTS_H
