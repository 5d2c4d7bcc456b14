//===- PlanLoader.h - compile a tiny spec in process, as plan tables -----===//
//
// Tests of the runtime's plan-driven routines need an atp::ModelPlan for
// many (model, TP) pairs; building a generated project for each would be
// slow, so they load the same tables plan.cpp states (autotpc::planTables)
// in process. compileTinyZero adds the atp::ZeroPlan that zero.cpp states
// (the same ZeroLayout pass and ZeroSettings lowering) and the ledger of
// --emit=memory, for the ZeRO engine's tests.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_TEST_PLANLOADER_H
#define AUTOTPC_TEST_PLANLOADER_H

#include "Emit/Emitter.h"
#include "Lower/ZeroLayout.h"
#include "Lower/ZeroSettings.h"
#include "Report/Reports.h"

#include "atp/plan.h"
#include "atp/zero_plan.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace autotpc {

/// The preset families of specs/tiny/.
extern const char *const TinyFamilies[8];

/// Owns the arrays an atp::ModelPlan points into.
struct LoadedPlan {
  std::vector<PlanTableParam> Tables;
  std::vector<std::vector<atp::Box>> Boxes;
  std::vector<std::vector<atp::RankShard>> Ranks;
  std::vector<atp::ParamPlan> Params;
  std::string Fingerprint;
  atp::ModelPlan Plan{};
};

/// Compiles specs/tiny/<Family>.ds.json at TP `Tp` into Out; returns the
/// diagnostics text on failure and "" on success.
std::string compileTiny(const std::string &Family, int Tp, LoadedPlan &Out);

/// --emit=memory's bytes of one TP rank (MemoryLedger), unsigned like the
/// engine's atp::ZeroLedger: what the ZeRO engine must allocate.
struct LedgerBytes {
  uint64_t Params = 0, Grads = 0, Fp32Master = 0, Fp32Grads = 0, Moments = 0;
  uint64_t total() const { return Params + Grads + Fp32Master + Fp32Grads + Moments; }
};

/// Owns the arrays an atp::ZeroPlan points into (movable, not copyable:
/// Plan points into the vectors).
struct LoadedZero {
  ZeroSettings Settings;
  std::vector<ZeroRankLayout> Layouts;                ///< per TP rank
  std::vector<std::vector<atp::FlatParam>> Params;    ///< per TP rank, in flat order
  std::vector<std::vector<atp::GradBucket>> Buckets;  ///< per TP rank
  std::vector<atp::FlatLayout> FlatLayouts;           ///< per TP rank
  /// Per TP rank, the --emit=memory ledger at LedgerDp: the DP size the
  /// config implies (Plan.dp_size), or 1 when it is unknown.
  std::vector<LedgerBytes> Ledgers;
  int64_t LedgerDp = 1;
  atp::ZeroPlan Plan{};

  LoadedZero() = default;
  LoadedZero(LoadedZero &&) = default;
  LoadedZero &operator=(LoadedZero &&) = default;
  LoadedZero(const LoadedZero &) = delete;
  LoadedZero &operator=(const LoadedZero &) = delete;
};

/// compileTiny, with Overrides merged into the tiny DeepSpeed config first
/// (a JSON merge patch, RFC 7386: objects merge key by key, anything else
/// replaces, null deletes), e.g. {"zero_optimization": {"stage": 2},
/// "optimizer": {...}, "scheduler": {...}, "fp16": {"enabled": true},
/// "train_batch_size": 8, "gradient_accumulation_steps": 2}; then lowers the
/// ZeRO settings as code generation does (an unsupported optimizer or
/// scheduler type is an error) into Zero. Returns the diagnostics text on
/// failure and "" on success.
std::string compileTinyZero(const std::string &Family, int Tp, const nlohmann::json &Overrides, LoadedPlan &Out,
                            LoadedZero &Zero);

} // namespace autotpc

#endif // AUTOTPC_TEST_PLANLOADER_H
