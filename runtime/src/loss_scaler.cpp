/* loss_scaler.cpp - DeepSpeed's DynamicLossScaler.update_scale (see loss_scaler.h). */
#include "atp/loss_scaler.h"

#include <algorithm>
#include <cmath>

namespace atp {

LossScaler::LossScaler(const LossScaleConfig &c)
    : dynamic_(c.static_scale <= 0), scale_(c.static_scale > 0 ? c.static_scale : std::ldexp(1.0, c.initial_scale_power)),
      min_scale_(c.min_scale), window_(std::max<std::int64_t>(1, c.window)), hysteresis_(std::max(1, c.hysteresis)),
      cur_hysteresis_(hysteresis_) {}

void LossScaler::update(bool overflow) {
  if (!dynamic_)
    return;
  if (overflow) {
    if (hysteresis_ == 1 || cur_hysteresis_ == 1)
      scale_ = std::max(scale_ / 2.0, min_scale_);
    else
      --cur_hysteresis_;
    last_overflow_iter_ = iter_;
  } else if ((iter_ - last_overflow_iter_) % window_ == 0) {
    cur_hysteresis_ = hysteresis_;
    scale_ *= 2.0;
  }
  ++iter_;
}

} // namespace atp
