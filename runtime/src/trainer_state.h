/* trainer_state.h - what a Trainer holds; shared by trainer.cpp (steps, export, generation) and
   trainer_checkpoint.cpp (save, resume). Internal to the runtime. */
#pragma once

#include "atp/trainer.h"

#include <optional>

namespace atp {

/// The decoder's view of the ZeRO engine's flat buffers.
struct EngineStore : ParamStore {
  ZeroEngine *engine = nullptr;
  void *param(int i) override { return engine->param(i); }
  void *grad(int i) override { return engine->grad(i); }
  Status weights_needed(int i) override { return engine->weights_needed(i); }
  Status grad_needed(int i) override { return engine->grad_needed(i); }
  Write grad_write(int i) override { return engine->grad_write(i); }
  Status grad_ready(int i) override { return engine->grad_ready(i); }
};

struct Trainer::State {
  TrainModel model;
  ZeroPlan zero;             // the plan's, with gradient_accumulation_steps completed for this launch
  TrainerOptions options;
  TrainComms comms;
  Kernels &kernels;
  Ops &ops;
  BatchSizes batch;
  std::unique_ptr<ZeroEngine> engine;
  std::unique_ptr<Decoder> decoder;
  EngineStore store;
  std::optional<DataLoader> train, eval;
  std::int64_t steps = 0;    // optimizer steps run, skipped ones included
  // reused host buffers of one micro-batch
  TokenBatch rows;
  std::vector<std::int32_t> inputs, targets;

  State(const TrainModel &m, const TrainerOptions &o, const TrainComms &c, Kernels &k, Ops &p)
      : model(m), zero(m.zero), options(o), comms(c), kernels(k), ops(p) {}

  /// rows -> the decoder's int32 inputs and targets.
  MicroBatch to_micro_batch(const TokenBatch &b);
  /// One scalar summed over the DP group (TP ranks hold the same values).
  Result<double> sum_over_dp(double x);
  /// Every rank learns whether any rank failed; the failing ranks return their own error, the others one
  /// that says another rank failed.
  Status agree(const Status &mine, const std::string &what);
};

/// Creates `folder` and its parents if missing.
Status make_folder(const std::string &folder);

} // namespace atp
