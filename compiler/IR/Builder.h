//===- Builder.h - config + model -> partition IR ------------------------===//
#ifndef AUTOTPC_IR_BUILDER_H
#define AUTOTPC_IR_BUILDER_H

#include "IR/Module.h"
#include "Model/ModelLoader.h"

namespace autotpc {

/// Builds the IR: effective spec list (custom specs first, then the preset's
/// when use_default_specs), DeepSpeed's matching (full names, re.match, first
/// match wins, bias follows weight, unmatched replicated), shape resolution
/// and every rank's shards. Reports invalid patterns, unknown presets and
/// shape errors; returns std::nullopt only if no IR can be built at all.
std::optional<Module> buildModule(const Config &C, const LoadedModel &M, DiagEngine &Diags);

} // namespace autotpc

#endif // AUTOTPC_IR_BUILDER_H
