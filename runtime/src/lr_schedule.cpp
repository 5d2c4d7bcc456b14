/* lr_schedule.cpp - DeepSpeed's WarmupLR, WarmupDecayLR and WarmupCosineLR (see lr_schedule.h). */
#include "atp/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace atp {

namespace {

/// The warmup fraction at iteration i < W.
double warmup_gamma(const SchedulerConfig &s, std::int64_t i, std::int64_t w) {
  if (s.warmup_log)
    return std::log(double(i + 1)) / std::log(double(w));
  return double(i) / double(w);
}

} // namespace

double lr_at_step(const SchedulerConfig &s, double base_lr, std::int64_t step) {
  const std::int64_t i = step - 1; // the scheduler's last_batch_iteration
  const std::int64_t w = std::max<std::int64_t>(2, s.warmup_num_steps);
  switch (s.type) {
  case LrSchedule::Constant:
    return base_lr;
  case LrSchedule::WarmupLR:
  case LrSchedule::WarmupDecayLR: {
    if (i < 0)
      return s.warmup_min_lr;
    double gamma = 1.0;
    if (i < w)
      gamma = warmup_gamma(s, i, w);
    else if (s.type == LrSchedule::WarmupDecayLR)
      gamma = std::max(0.0, double(s.total_num_steps - i) / std::max<double>(1.0, double(s.total_num_steps - w)));
    return s.warmup_min_lr + (s.warmup_max_lr - s.warmup_min_lr) * gamma;
  }
  case LrSchedule::WarmupCosineLR: {
    if (i < 0)
      return 0.0;
    if (i < w)
      return base_lr * (s.warmup_min_ratio + warmup_gamma(s, i, w) * (1.0 - s.warmup_min_ratio));
    // DeepSpeed divides by zero when T <= W; past the warmup the schedule is then at its end.
    const double span = double(s.total_num_steps - w);
    const double progress = span > 0 ? double(i - w + 1) / span : 1.0;
    const double cosine = (1.0 + std::cos(M_PI * progress)) / 2.0;
    return base_lr * std::max(0.0, s.cos_min_ratio + (1.0 - s.cos_min_ratio) * cosine);
  }
  }
  return base_lr;
}

} // namespace atp
