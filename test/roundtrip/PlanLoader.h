//===- PlanLoader.h - compile a tiny spec in process, as plan tables -----===//
//
// Tests of the runtime's plan-driven routines need an atp::ModelPlan for
// many (model, TP) pairs; building a generated project for each would be
// slow, so they load the same tables plan.cpp states (autotpc::planTables)
// in process.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_TEST_PLANLOADER_H
#define AUTOTPC_TEST_PLANLOADER_H

#include "Emit/Emitter.h"

#include "atp/plan.h"

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

} // namespace autotpc

#endif // AUTOTPC_TEST_PLANLOADER_H
