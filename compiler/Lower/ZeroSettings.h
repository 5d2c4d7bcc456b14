//===- ZeroSettings.h - the ZeRO engine's settings, from the config -----===//
//
// What zero.cpp states besides the flat layouts (runtime/include/atp/
// zero_plan.h's ZeroPlan): ZeRO stage, precision, TP and DP sizes, gradient
// accumulation, clipping, bucket size, and the optimizer, LR scheduler and
// fp16 loss-scale sections with DeepSpeed's defaults filled in. Each value
// remembers the JSON value it came from, for origin comments.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_LOWER_ZEROSETTINGS_H
#define AUTOTPC_LOWER_ZEROSETTINGS_H

#include "Verify/Verifier.h"

namespace autotpc {

/// A setting and where it came from: the JSON value, or (invalid Loc) a
/// default, with Why saying which.
template <class T> struct Setting {
  Setting() = default;
  /// A default value (Why "default", no location).
  Setting(T Default) : Value(Default) {}
  T Value{};
  Loc From;                    ///< the JSON value it came from; invalid for defaults
  std::string Why = "default"; ///< "config", "default", or how it was derived
  /// Takes V from the config value at L.
  void set(T V, const Loc &L) { Value = V, From = L, Why = "config"; }
};

enum class LrScheduleKind { Constant, WarmupLR, WarmupDecayLR, WarmupCosineLR };
const char *lrScheduleName(LrScheduleKind K);

/// DeepSpeed's FusedAdam settings (atp::AdamWConfig).
struct AdamWSettings {
  std::string Type = "Adam"; ///< as written; "Adam" when there is no optimizer section
  bool Given = false;        ///< there is an optimizer section
  Setting<double> Lr{1e-3}, Beta1{0.9}, Beta2{0.999}, Eps{1e-8}, WeightDecay{0.0};
  Setting<bool> AdamWMode{true}, BiasCorrection{true};
};

/// An LR schedule of DeepSpeed's lr_schedules.py (atp::SchedulerConfig).
struct SchedulerSettings {
  LrScheduleKind Kind = LrScheduleKind::Constant;
  Setting<double> WarmupMinLr{0.0}, WarmupMaxLr{1e-3};
  Setting<int64_t> WarmupNumSteps{1000};
  Setting<bool> WarmupLog{true}; ///< warmup_type "log" (else "linear")
  Setting<int64_t> TotalNumSteps{0};
  Setting<double> WarmupMinRatio{0.0}, CosMinRatio{1e-4};
};

/// The `fp16` section's loss scaling (atp::LossScaleConfig).
struct LossScaleSettings {
  Setting<double> StaticScale{0.0};
  Setting<int64_t> InitialScalePower{16}, Window{1000}, Hysteresis{2};
  Setting<double> MinScale{1.0};
};

/// Everything of atp::ZeroPlan but the layouts.
struct ZeroSettings {
  Setting<int64_t> Stage{0};
  Setting<Precision> Prec{Precision::FP32};
  int64_t TpSize = 1;
  int64_t DpSize = 0; ///< 0: known only at launch
  std::string DpWhy;  ///< where DpSize came from
  Setting<int64_t> GradAccum{1};
  /// The batch keys as written (0: absent), for the trainer to complete at launch (atp::BatchConfig).
  Setting<int64_t> TrainBatch{0}, MicroBatch{0}, GradAccumGiven{0};
  Setting<double> GradientClipping{0.0};
  Setting<int64_t> ReduceBucketSize{500000000};
  AdamWSettings AdamW;
  SchedulerSettings Scheduler;
  LossScaleSettings LossScale;
};

/// The shortest decimal text that reads back as exactly D ("%.Ng" with the
/// smallest N <= 17 that round-trips, ".0" appended to integers, so 1e-3 is
/// "0.001" and 1 is "1.0"): deterministic, and a C++ double literal for
/// every finite D (the lowering rejects non-finite settings).
std::string formatDouble(double D);

/// Reads the settings out of C. Values DeepSpeed itself rejects (a
/// WarmupDecayLR or WarmupCosineLR without total_num_steps, betas that are
/// not two numbers, a non-numeric lr) are errors. An optimizer or scheduler
/// type that DeepSpeed may know but the engine does not run (anything but
/// Adam/AdamW and the three Warmup schedules) is an error when ForCodegen
/// (-o, --emit=cpp, --emit=zero) and a warning of group
/// "unsupported-optimizer" otherwise (--check, --emit=ir|plan|memory).
/// Returns nullopt if an error was reported.
std::optional<ZeroSettings> lowerZeroSettings(const Config &C, const Topology &Topo, int64_t TpSize,
                                              DiagEngine &Diags, bool ForCodegen);

} // namespace autotpc

#endif // AUTOTPC_LOWER_ZEROSETTINGS_H
