//===- Emitter.h - the generated C++ project for one model and config ---===//
//
// `autotpc CONFIG -o DIR` writes a small CMake project: the shard plan as
// constexpr tables (plan.h / plan.cpp), the ZeRO plan (zero.h / zero.cpp:
// flat layouts, buckets and training settings), the `shard` and
// `consolidate` tools and a library, all built against runtime/ alone
// (found by find_package(autotpc_runtime), see emitGeneratorPaths). Names
// and order are decided before anything is printed; the text is
// deterministic (no time, no absolute path, no version), so goldens in
// generated/ stay byte-stable.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_EMIT_EMITTER_H
#define AUTOTPC_EMIT_EMITTER_H

#include "IR/Module.h"
#include "Lower/DecoderLowering.h"
#include "Lower/ZeroSettings.h"

#include <array>

namespace autotpc {

struct EmittedFile {
  std::string Name;  ///< relative to the output folder
  std::string Text;
};

struct EmitOptions {
  bool OriginComments = true;  ///< "// [file:line:col, spec]" above each parameter
};

/// A stable 64-bit hash of the shard plan (FNV-1a over names, dtypes, shapes
/// and every rank's boxes), as 16 hex digits. Shards carry it; consolidate
/// refuses shards whose fingerprint differs.
std::string planFingerprint(const Module &M);

/// One parameter of the shard plan as plan.cpp states it (runtime/include/
/// atp/plan.h's ParamPlan): the 2-D view, the split, and the boxes
/// {row_begin, row_end, col_begin, col_end} and rank shards {first, count,
/// rows, cols}. Replicated parameters have one box that every rank shares.
struct PlanTableParam {
  std::string Name, DType;
  std::vector<int64_t> Shape;
  int64_t Rows = 1, Cols = 1;
  PartKind Kind = PartKind::Replicate;
  int ConcatDim = 0;
  std::vector<std::array<int64_t, 4>> Boxes, Ranks;
};

/// The plan tables of M, in parameter order: the single source of what
/// plan.cpp prints (and what tests load in process).
std::vector<PlanTableParam> planTables(const Module &M);

/// plan.h: the plan's declaration and its sizes as constants.
std::string emitPlanHeader(const Module &M);
/// plan.cpp: the plan's tables, with static_asserts and origin comments.
std::string emitPlanSource(const Module &M, const llvm::SourceMgr &SM, const EmitOptions &Opts);

/// zero.h: the ZeRO plan's declaration and its stage and bucket size.
std::string emitZeroHeader(const Module &M, const ZeroSettings &Z);
/// zero.cpp: each TP rank's flat layout and buckets (Lower/ZeroLayout) and
/// the settings Z, as runtime/include/atp/zero_plan.h's tables, with
/// static_asserts of zero_plan.h's zero_layout_well_formed and origin comments.
std::string emitZeroSource(const Module &M, const ZeroSettings &Z, const llvm::SourceMgr &SM, const EmitOptions &Opts);

/// model.h: the decoder's constants, declared.
std::string emitModelHeader(const Module &M);
/// model.cpp: the decoder's constants (Lower/DecoderLowering) and each
/// layer's parameter indices, with static_asserts against plan.h.
std::string emitModelSource(const Module &M, const DecoderDesc &D);

/// The files of the generated project, in a fixed order: CMakeLists.txt,
/// plan.h, plan.cpp, zero.h, zero.cpp, shard.cpp, consolidate.cpp, and with
/// a decoder (a family with training code) model.h and model.cpp.
std::vector<EmittedFile> emitProject(const Module &M, const ZeroSettings &Z, const llvm::SourceMgr &SM,
                                     const EmitOptions &Opts, const DecoderDesc *Decoder = nullptr);

/// The name of the one machine-specific file of an output folder.
inline constexpr const char *GeneratorPathsFile = "autotpc-paths.cmake";

/// autotpc-paths.cmake: where the autotpc that ran lives (Prefix: the folder
/// above its bin/), a hint for the generated CMakeLists.txt's
/// find_package(autotpc_runtime). Written with -o only, never printed by
/// --emit=cpp; the goldens leave it out, as it names a path of this machine.
EmittedFile emitGeneratorPaths(llvm::StringRef Prefix);

/// Writes Files into Dir atomically: everything goes to a temporary sibling
/// folder first, which then replaces Dir. On failure nothing is left behind.
bool writeOutputDir(llvm::StringRef Dir, const std::vector<EmittedFile> &Files, DiagEngine &Diags);

} // namespace autotpc

#endif // AUTOTPC_EMIT_EMITTER_H
