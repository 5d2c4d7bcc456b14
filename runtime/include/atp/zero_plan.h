/* The ZeRO plan of one model and config, as generated code states it.

   autotpc emits these tables as constexpr data (generated/<name>/zero.cpp)
   next to the shard plan (plan.h). For every TP rank they give the flat
   layout of the rank's local parameters and the gradient buckets; the
   optimizer, scheduler, precision and loss-scale settings come from the
   DeepSpeed config with DeepSpeed's defaults filled in. The ZeRO engine
   (zero.h) executes them; it never re-derives the layout.

   Flat layout of one TP rank (elements of the training precision):
     - parameters in backward order (the reverse of the plan's order), each
       starting at a multiple of kFlatAlign elements, so that every view is
       128-byte aligned in 16-bit and 256-byte aligned in fp32;
     - buckets: runs of whole consecutive parameters of at most
       reduce_bucket_size elements (a larger parameter is a bucket alone);
       bucket b covers flat elements [begin, end).
   The DP size is read at launch; zero_padded_layout() (zero.h) then pads
   every bucket to a multiple of it. The alignment and padding rule is
   zero_padding.h's, shared with the compiler's --emit=memory, so that its
   ledger is what the engine allocates.

   The generated zero.cpp static_asserts zero_layout_well_formed() (below)
   on every TP rank's tables, so that tables edited by hand, or emitted by an
   autotpc that disagrees with this runtime, do not compile. */
#pragma once

#include "atp/zero_padding.h"

#include <cstdint>

namespace atp {

/// Training precision: the dtype of the working parameters and gradients.
enum class Precision : std::uint8_t { F32, BF16, F16 };

/// One parameter in a TP rank's flat buffers.
struct FlatParam {
  std::int32_t param;  ///< index into ModelPlan::params
  std::int64_t offset; ///< first flat element (a multiple of kFlatAlign)
  std::int64_t numel;  ///< elements of this TP rank's local tensor
  bool tp_sharded;     ///< split over TP: counted in the gradient norm on every TP rank (else on TP rank 0 only)
};

/// A gradient bucket: flat elements [begin, end), holding the flat
/// parameters [first, first + count).
struct GradBucket {
  std::int64_t begin, end;
  std::int32_t first, count;
};

/// What this file promises of one TP rank's tables (params[0, num_params),
/// buckets[0, num_buckets)): the parameters in backward order (plan
/// parameter num_params - 1 first), each at flat_offset_after(the previous
/// one's end), numel >= 0, and `numel` the last one's end; the buckets in
/// order, each holding the next count >= 1 whole parameters and spanning
/// [first one's offset, last one's end), at most `bucket_size` elements
/// unless it holds one parameter; every parameter in a bucket.
constexpr bool zero_layout_well_formed(const FlatParam *params, std::int32_t num_params, const GradBucket *buckets,
                                       std::int32_t num_buckets, std::int64_t numel, std::int64_t bucket_size) {
  std::int64_t end = 0;
  for (std::int32_t k = 0; k < num_params; ++k) {
    const FlatParam &p = params[k];
    if (p.param != num_params - 1 - k || p.offset != flat_offset_after(end) || p.numel < 0)
      return false;
    end = saturating_add(p.offset, p.numel);
  }
  std::int32_t next = 0;
  for (std::int32_t i = 0; i < num_buckets; ++i) {
    const GradBucket &b = buckets[i];
    if (b.first != next || b.count < 1 || b.count > num_params - next)
      return false;
    const FlatParam &last = params[next + b.count - 1];
    if (b.begin != params[next].offset || b.end != saturating_add(last.offset, last.numel) ||
        (b.count > 1 && b.end - b.begin > bucket_size))
      return false;
    next += b.count;
  }
  return next == num_params && end == numel;
}

/// The same on a generated zero.cpp's constexpr arrays, their sizes deduced:
///   static_assert(atp::zero_layout_well_formed(tp0_flat_params, tp0_buckets,
///                                              kTp0FlatNumel, kReduceBucketSize), "...");
template <std::int32_t NumParams, std::int32_t NumBuckets>
constexpr bool zero_layout_well_formed(const FlatParam (&params)[NumParams], const GradBucket (&buckets)[NumBuckets],
                                       std::int64_t numel, std::int64_t bucket_size) {
  return zero_layout_well_formed(params, NumParams, buckets, NumBuckets, numel, bucket_size);
}

/// One TP rank's flat layout.
struct FlatLayout {
  std::int64_t numel; ///< end of the last parameter (alignment gaps included)
  std::int32_t num_params;
  const FlatParam *params; ///< in flat (backward) order
  std::int32_t num_buckets;
  const GradBucket *buckets; ///< in flat order: the order they complete in backward
};

/// DeepSpeed's FusedAdam: "Adam" and "AdamW" both decouple weight decay
/// unless adam_w_mode is false (then weight decay is an L2 term).
struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool adam_w_mode = true;
  bool bias_correction = true;
};

enum class LrSchedule : std::uint8_t { Constant, WarmupLR, WarmupDecayLR, WarmupCosineLR };

/// The `scheduler` section (DeepSpeed's lr_schedules.py keys and defaults).
struct SchedulerConfig {
  LrSchedule type = LrSchedule::Constant;
  double warmup_min_lr = 0.0, warmup_max_lr = 1e-3; ///< WarmupLR, WarmupDecayLR
  std::int64_t warmup_num_steps = 1000;
  bool warmup_log = true;                           ///< warmup_type "log" (else "linear")
  std::int64_t total_num_steps = 0;                 ///< WarmupDecayLR, WarmupCosineLR
  double warmup_min_ratio = 0.0, cos_min_ratio = 1e-4; ///< WarmupCosineLR
};

/// The `fp16` section's loss scaling (DeepSpeed's defaults).
struct LossScaleConfig {
  double static_scale = 0.0; ///< `loss_scale`; 0 = dynamic
  std::int32_t initial_scale_power = 16;
  std::int64_t window = 1000;
  std::int32_t hysteresis = 2;
  double min_scale = 1.0;
};

/// The batch keys as the config gives them (0: absent). The trainer completes them at launch, when the DP
/// size is known, by DeepSpeed's rule (train_batch_size = micro-batch x gradient accumulation x DP).
struct BatchConfig {
  std::int64_t train_batch_size = 0;
  std::int64_t micro_batch_size = 0;            ///< train_micro_batch_size_per_gpu
  std::int64_t gradient_accumulation_steps = 0; ///< as written; ZeroPlan's own field has the default filled in
};

/// The whole ZeRO plan.
struct ZeroPlan {
  std::int32_t stage;     ///< 0, 1 or 2
  Precision precision;
  std::int32_t tp_size;
  std::int32_t dp_size;   ///< the DP size the config implies; 0 = known only at launch
  std::int32_t gradient_accumulation_steps;
  BatchConfig batch;
  double gradient_clipping; ///< max global norm; 0 = no clipping
  std::int64_t reduce_bucket_size;
  AdamWConfig adamw;
  SchedulerConfig scheduler;
  LossScaleConfig loss_scale;
  const FlatLayout *layouts; ///< tp_size entries
};

} // namespace atp
