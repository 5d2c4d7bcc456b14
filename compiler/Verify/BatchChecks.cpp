//===- BatchChecks.cpp - world = tp x dp, batch = micro x GAS x dp -------===//
//
// DeepSpeed's batch rules (_set_batch_related_parameters): any two of
// train_batch_size, train_micro_batch_size_per_gpu and
// gradient_accumulation_steps give the third, all three must agree, and the
// data-parallel size is world / autotp_size (TP ranks share a batch).
//
//===----------------------------------------------------------------------===//
#include "Verify/Verifier.h"

#include "llvm/Support/MathExtras.h"

using namespace autotpc;

void autotpc::checkBatch(const VerifyContext &Ctx, Topology &Topo) {
  const Config &C = Ctx.C;
  DiagEngine &Diags = Ctx.Diags;
  Topo.Tp = Ctx.M.TpSize;
  if (Ctx.WorldSizeFlag) {
    int64_t W = *Ctx.WorldSizeFlag;
    Topo.WorldFromFlag = true;
    if (W % Topo.Tp) {
      Diags.error(Loc(), "world size " + llvm::Twine(W) + " (from --world-size) is not divisible by autotp_size (" +
                             llvm::Twine(Topo.Tp) + "); the data-parallel size must be a whole number");
      noteTpSize(Ctx);
      return;
    }
    Topo.World = W;
    Topo.Dp = W / Topo.Tp;
  }
  if (C.TrainBatch.Auto || C.MicroBatch.Auto || C.GradAccum.Auto)
    return; // the launcher fills them in (HF Trainer); nothing to check yet
  std::optional<int64_t> TB = C.TrainBatch.Value, MB = C.MicroBatch.Value, GA = C.GradAccum.Value;
  // Every product below is of these and the world size; keep them in range.
  int64_t Prod = 0;
  if (llvm::MulOverflow(Topo.World.value_or(1), Topo.Tp, Prod)) {
    Diags.error(Loc(), "the world size is too large");
    return;
  }
  for (const BatchKey *K : {&C.TrainBatch, &C.MicroBatch, &C.GradAccum})
    if (K->Value && llvm::MulOverflow(Prod, *K->Value, Prod)) {
      Diags.error(K->L, "batch sizes are too large: their product with the world size overflows 64 bits");
      return;
    }
  if (!TB && !MB) {
    Diags.error(Loc::inFile(C.Path), "Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided");
    return;
  }
  auto DpText = [&]() {
    return Topo.WorldFromFlag ? "data-parallel size " + std::to_string(*Topo.Dp) + " = world size " +
                                    std::to_string(*Topo.World) + " / autotp_size " + std::to_string(Topo.Tp)
                              : std::string("the data-parallel size");
  };
  if (!Topo.Dp) {
    if (TB && MB && GA) {
      if (*TB % (*MB * *GA)) {
        Diags.error(C.TrainBatch.L, "train_batch_size (" + llvm::Twine(*TB) +
                                        ") is not a multiple of train_micro_batch_size_per_gpu x "
                                        "gradient_accumulation_steps (" + llvm::Twine(*MB * *GA) +
                                        "): no data-parallel size fits");
        return;
      }
      Topo.Dp = *TB / (*MB * *GA);
      Topo.World = *Topo.Dp * Topo.Tp;
    }
    Topo.TrainBatch = TB;
    Topo.MicroBatch = MB;
    Topo.GradAccum = GA;
    return;
  }
  const int64_t Dp = *Topo.Dp;
  auto Mismatch = [&](int64_t Tb, int64_t Mb, int64_t Ga) {
    Diags.error(C.TrainBatch.L.isValid() ? C.TrainBatch.L : Loc::inFile(C.Path),
                "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
                "gradient_acc_step * world_size (" + llvm::Twine(Tb) + " != " + llvm::Twine(Mb) + " * " +
                    llvm::Twine(Ga) + " * " + llvm::Twine(Dp) + ")");
    Diags.note(Loc(), "world_size here is " + DpText() + "; TP ranks share one batch");
  };
  if (TB && MB && GA) {
    if (*TB != *MB * *GA * Dp)
      return Mismatch(*TB, *MB, *GA);
  } else if (TB && MB) {
    if (*TB % (*MB * Dp))
      return Mismatch(*TB, *MB, std::max<int64_t>(1, *TB / (*MB * Dp)));
    GA = *TB / (*MB * Dp);
  } else if (TB && GA) {
    if (*TB % (*GA * Dp))
      return Mismatch(*TB, std::max<int64_t>(1, *TB / (*GA * Dp)), *GA);
    MB = *TB / (*GA * Dp);
  } else if (MB) {
    GA = GA.value_or(1);
    TB = *MB * *GA * Dp;
  } else {
    GA = 1;
    if (*TB % Dp)
      return Mismatch(*TB, std::max<int64_t>(1, *TB / Dp), 1);
    MB = *TB / Dp;
  }
  Topo.TrainBatch = TB;
  Topo.MicroBatch = MB;
  Topo.GradAccum = GA;
}
