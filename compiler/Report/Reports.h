//===- Reports.h - --emit=plan, --emit=memory and --emit=zero ------------===//
#ifndef AUTOTPC_REPORT_REPORTS_H
#define AUTOTPC_REPORT_REPORTS_H

#include "IR/Module.h"
#include "Lower/DecoderLowering.h"
#include "Lower/ZeroLayout.h"
#include "Lower/ZeroSettings.h"
#include "Verify/Verifier.h"

#include "Support/Saturating.h"

namespace autotpc {

/// For every TP rank, each parameter's shard shape and the [start, end)
/// ranges of the full tensor it holds.
void printPlan(const Module &M, llvm::raw_ostream &OS);

/// One TP rank's model-state bytes on one GPU, by item: what the ZeRO
/// engine (runtime/include/atp/zero.h) allocates for the padded layout.
struct MemoryLedger {
  int64_t Elements = 0;   ///< Φ: parameter elements this TP rank holds (no padding)
  int64_t FlatNumel = 0;  ///< N: the padded flat buffer (Lower/ZeroLayout.h)
  int64_t Partition = 0;  ///< P: this DP rank's ZeRO partition of it
  int64_t Params = 0, Grads = 0, Fp32Master = 0, Fp32Grads = 0, Moments = 0;
  /// The sum, saturating at INT64_MAX (see MemoryReport.cpp).
  int64_t total() const;
};

/// The per-GPU bytes of a TP rank with flat layout L, DP size Dp >= 1, and
/// the ZeRO stage and precision of C (formula in MemoryReport.cpp and in
/// --emit=memory's header).
MemoryLedger memoryLedger(const ZeroRankLayout &L, const Config &C, int64_t Dp);
/// The same for TP rank R of M (its layout with C's reduce_bucket_size).
MemoryLedger memoryLedger(const Module &M, const Config &C, int64_t Dp, size_t TpRank);

/// Prints the ledger of every TP rank with the formula and totals; with the
/// model's decoder constants (a family with training code), also the
/// activations of one micro-batch of Seq tokens per row (atp/decoder_memory.h:
/// what the trainer's decoder allocates).
void printMemory(const Module &M, const Config &C, const Topology &Topo, const DecoderDesc *Dec, int64_t Seq,
                 llvm::raw_ostream &OS);

/// --emit=zero: the ZeRO settings, then for every TP rank its flat layout
/// and buckets and, when the DP size is known, the padded layout with each
/// DP rank's share of every bucket.
void printZero(const Module &M, const ZeroSettings &Z, llvm::raw_ostream &OS);

} // namespace autotpc

#endif // AUTOTPC_REPORT_REPORTS_H
