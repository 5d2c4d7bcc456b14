/* lr_schedule.h - the learning rate of each optimizer step (DeepSpeed's lr_schedules.py).

   DeepSpeed builds the scheduler with last_batch_iteration = -1, which sets the
   optimizer's lr once (WarmupLR and WarmupDecayLR: warmup_min_lr; WarmupCosineLR: 0),
   and calls scheduler.step() after every optimizer step that was not skipped. So
   optimizer step k (0-based, skipped steps not counted) runs with the schedule at
   iteration k - 1, and step 0 with that initial value:
     WarmupLR       lr = min + (max - min) * gamma, gamma = log(i + 1) / log(W) (log) or
                    i / W (linear) while i < W, else 1;  W = max(2, warmup_num_steps)
     WarmupDecayLR  the same warmup, then gamma = max(0, (T - i) / max(1, T - W))
     WarmupCosineLR lr = base_lr * ratio: warmup ratio r0 + (1 - r0) * gamma while i < W,
                    then max(0, c + (1 - c) * (1 + cos(pi * (i - W + 1) / (T - W))) / 2)
   where T = total_num_steps, r0 = warmup_min_ratio, c = cos_min_ratio. */
#pragma once

#include "atp/zero_plan.h"

#include <cstdint>

namespace atp {

/// The learning rate of optimizer step `step` (0-based, skipped steps not counted); base_lr is the optimizer's lr.
double lr_at_step(const SchedulerConfig &s, double base_lr, std::int64_t step);

} // namespace atp
