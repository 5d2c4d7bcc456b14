//===- Verifier.h - the checks that make a spec safe to compile ---------===//
//
// Each group of checks lives in its own file and reports every problem it
// finds (then the driver stops): spec hygiene, divisibility and head
// alignment, fused weights, column/row pairing, and the batch/world
// arithmetic. All of them read the IR and never change it.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_VERIFY_VERIFIER_H
#define AUTOTPC_VERIFY_VERIFIER_H

#include "IR/Module.h"
#include "Model/ModelLoader.h"

namespace autotpc {

/// The parallel layout and batch sizes, as far as they are known.
struct Topology {
  int64_t Tp = 1;
  std::optional<int64_t> Dp, World;   ///< unknown without --world-size or all three batch keys
  bool WorldFromFlag = false;
  std::optional<int64_t> TrainBatch, MicroBatch, GradAccum;
};

/// What the checks need besides the IR.
struct VerifyContext {
  const Module &M;
  const Config &C;
  const LoadedModel &Model;
  DiagEngine &Diags;
  std::optional<int64_t> WorldSizeFlag;  ///< --world-size
};

/// Runs every check; fills Topo. Returns false if any error was reported.
bool verifyModule(const VerifyContext &Ctx, Topology &Topo);

// The check groups (one file each).
void checkSpecs(const VerifyContext &Ctx);
void checkDivisibility(const VerifyContext &Ctx);
void checkFusedWeights(const VerifyContext &Ctx);
void checkPairing(const VerifyContext &Ctx);
void checkBatch(const VerifyContext &Ctx, Topology &Topo);

/// Whether checkFusedWeights reports P's `shape` as wrong (an equal split of
/// unequal q/k/v, sizes that are not the real sub-projections, or a shape on
/// an interleaved qkv); other checks then say nothing more about P.
bool fusedShapeIsWrong(const Module &M, const Param &P);

/// Notes "autotp_size set here" (or where the TP size came from).
void noteTpSize(const VerifyContext &Ctx);

} // namespace autotpc

#endif // AUTOTPC_VERIFY_VERIFIER_H
