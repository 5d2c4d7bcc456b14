/* loss_scaler.h - fp16 loss scaling with DeepSpeed's DynamicLossScaler rules.

   The loss is multiplied by scale() before backward; the engine divides the gradients by it. After each
   optimizer step the engine reports whether any rank saw an inf or NaN (MAX over DP, then TP, so every rank
   takes the same decision):
     overflow:    the step is skipped; if the hysteresis is spent (or was 1) the scale is halved, never below
                  min_scale; otherwise one unit of hysteresis is used up;
     no overflow: every `window` iterations since the last overflow the scale doubles and the hysteresis is
                  restored.
   The initial scale is 2^initial_scale_power. A static scale (loss_scale > 0 in the config) never changes;
   overflowing steps are still skipped. */
#pragma once

#include "atp/zero_plan.h"

#include <cstdint>

namespace atp {

/// What a checkpoint saves of a LossScaler (its configuration comes from the plan).
struct LossScalerState {
  double scale = 1.0;
  std::int32_t cur_hysteresis = 1;
  std::int64_t iter = 0, last_overflow_iter = -1;
};

class LossScaler {
public:
  /// Precision F32/BF16 use scale 1 and never skip (update() is not called for them).
  explicit LossScaler(const LossScaleConfig &config);

  double scale() const { return scale_; }
  bool dynamic() const { return dynamic_; }
  /// Records one optimizer step: whether it overflowed.
  void update(bool overflow);

  LossScalerState state() const { return {scale_, cur_hysteresis_, iter_, last_overflow_iter_}; }
  void restore(const LossScalerState &s) {
    scale_ = s.scale, cur_hysteresis_ = s.cur_hysteresis, iter_ = s.iter, last_overflow_iter_ = s.last_overflow_iter;
  }

private:
  bool dynamic_;
  double scale_, min_scale_;
  std::int64_t window_;
  std::int32_t hysteresis_, cur_hysteresis_;
  std::int64_t iter_ = 0, last_overflow_iter_ = -1;
};

} // namespace atp
