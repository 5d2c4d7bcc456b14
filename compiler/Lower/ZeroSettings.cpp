//===- ZeroSettings.cpp - the ZeRO engine's settings, from the config ---===//
//
// DeepSpeed builds the optimizer and the LR scheduler by passing a section's
// `params` as keyword arguments (engine.py _configure_basic_optimizer,
// lr_schedules.py), so a key the class does not take, or a missing required
// one, fails deepspeed.initialize: those are errors here too. A type that
// DeepSpeed may know but the engine does not run is an error only where code
// is generated (see ZeroSettings.h). Defaults are DeepSpeed's: FusedAdam's
// for Adam/AdamW, lr_schedules.py's for the schedules, the fp16 section's.
//
//===----------------------------------------------------------------------===//
#include "Lower/ZeroSettings.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace autotpc;

const char *autotpc::lrScheduleName(LrScheduleKind K) {
  switch (K) {
  case LrScheduleKind::Constant: return "Constant";
  case LrScheduleKind::WarmupLR: return "WarmupLR";
  case LrScheduleKind::WarmupDecayLR: return "WarmupDecayLR";
  case LrScheduleKind::WarmupCosineLR: return "WarmupCosineLR";
  }
  return "?";
}

std::string autotpc::formatDouble(double D) {
  char Buf[64];
  for (int Prec = 1; Prec <= 17; ++Prec) {
    std::snprintf(Buf, sizeof(Buf), "%.*g", Prec, D);
    if (std::strtod(Buf, nullptr) == D)
      break;
  }
  std::string S = Buf;
  if (S.find_first_of(".eEn") == std::string::npos) // "1" -> "1.0": reads as a double, also in C++
    S += ".0";
  return S;
}

namespace {

/// Typed reads of one optimizer/scheduler section's params.
class ParamsReader {
public:
  ParamsReader(const NamedSection &S, llvm::StringRef Section, DiagEngine &Diags)
      : S(S), Section(Section.str()), Diags(Diags) {}

  bool ok() const { return Ok; }
  bool isList(llvm::StringRef Name) const {
    auto It = S.IsList.find(Name.str());
    return It != S.IsList.end() && It->second;
  }
  bool has(llvm::StringRef Name) const { return S.Params.count(Name.str()) || S.Strings.count(Name.str()); }
  std::string path(llvm::StringRef Name) const { return "'" + Section + ".params." + Name.str() + "'"; }
  Loc loc(llvm::StringRef Name) const {
    auto It = S.ParamLocs.find(Name.str());
    return It == S.ParamLocs.end() ? S.TypeLoc : It->second;
  }

  /// Errors for every param that Known does not list (DeepSpeed passes them
  /// as keyword arguments, which fails), with the closest known name.
  void onlyKnown(llvm::ArrayRef<llvm::StringRef> Known, llvm::StringRef Callee) {
    std::vector<std::string> Names;
    for (const auto &KV : S.ParamLocs)
      Names.push_back(KV.first);
    for (const std::string &Name : Names) {
      if (llvm::is_contained(Known, llvm::StringRef(Name)))
        continue;
      std::string Msg = "unknown key '" + Name + "' in " + Section + ".params of " + S.Type;
      llvm::StringRef Best;
      unsigned BestDist = 3;
      for (llvm::StringRef K : Known)
        if (unsigned D = llvm::StringRef(Name).edit_distance(K, true, BestDist); D < BestDist)
          Best = K, BestDist = D;
      if (!Best.empty())
        Msg += "; did you mean '" + Best.str() + "'?";
      Diags.error(loc(Name), Msg);
      Diags.note(loc(Name), "DeepSpeed passes the params to " + Callee + " as keyword arguments, which rejects it");
      Ok = false;
    }
  }

  /// A scalar number; a string or a list is an error.
  bool scalar(llvm::StringRef Name, double &Out) {
    if (auto It = S.Strings.find(Name.str()); It != S.Strings.end()) {
      Diags.error(loc(Name), path(Name) + " must be a number (got \"" + It->second + "\")");
      return Ok = false;
    }
    auto It = S.Params.find(Name.str());
    if (It == S.Params.end())
      return false;
    if (isList(Name) || It->second.size() != 1) {
      Diags.error(loc(Name), path(Name) + " must be a number, not a list");
      return Ok = false;
    }
    Out = It->second[0];
    return true;
  }
  void number(llvm::StringRef Name, Setting<double> &Out) {
    double V;
    if (scalar(Name, V))
      Out.set(V, loc(Name));
  }
  void integer(llvm::StringRef Name, Setting<int64_t> &Out) {
    double V;
    if (!scalar(Name, V))
      return;
    if (V != std::floor(V) || std::fabs(V) > 9.0e15) {
      Diags.error(loc(Name), path(Name) + " must be an integer");
      Ok = false;
      return;
    }
    Out.set(int64_t(V), loc(Name));
  }
  void boolean(llvm::StringRef Name, Setting<bool> &Out) {
    double V;
    if (scalar(Name, V))
      Out.set(V != 0, loc(Name)); // Python truthiness of a JSON number
  }
  const std::string *string(llvm::StringRef Name) {
    auto It = S.Strings.find(Name.str());
    if (It != S.Strings.end())
      return &It->second;
    if (S.Params.count(Name.str())) {
      Diags.error(loc(Name), path(Name) + " must be a string");
      Ok = false;
    }
    return nullptr;
  }

private:
  const NamedSection &S;
  std::string Section;
  DiagEngine &Diags;
  bool Ok = true;
};

/// An error when generating code, else a warning (see ZeroSettings.h).
void unsupported(DiagEngine &Diags, bool ForCodegen, const Loc &L, const std::string &Msg, const std::string &Why) {
  if (ForCodegen) {
    Diags.error(L, Msg);
    Diags.note(L, Why);
  } else {
    Diags.warning(L, "unsupported-optimizer", Msg);
    Diags.note(L, Why + "; generating code (-o, --emit=cpp, --emit=zero) is an error");
  }
}

bool lowerOptimizer(const Config &C, DiagEngine &Diags, bool ForCodegen, AdamWSettings &A) {
  if (!C.Optimizer)
    return true;
  const NamedSection &S = *C.Optimizer;
  A.Type = S.Type;
  A.Given = true;
  const std::string Lower = llvm::StringRef(S.Type).lower(); // DeepSpeed lower-cases its own optimizer names
  if (Lower != "adam" && Lower != "adamw") {
    unsupported(Diags, ForCodegen, S.TypeLoc,
                "optimizer type '" + S.Type + "' is not supported by autotpc's ZeRO engine; supported types: Adam, "
                "AdamW",
                "the engine runs DeepSpeed's FusedAdam (Adam and AdamW) only");
    return !ForCodegen;
  }
  ParamsReader R(S, "optimizer", Diags);
  // FusedAdam's keyword arguments, plus the two engine.py pops first.
  static const llvm::StringRef Known[] = {"lr",      "betas",        "eps",       "weight_decay", "adam_w_mode",
                                          "bias_correction", "amsgrad", "set_grad_none", "torch_adam"};
  R.onlyKnown(Known, "FusedAdam(...)");
  R.number("lr", A.Lr);
  R.number("eps", A.Eps);
  R.number("weight_decay", A.WeightDecay);
  R.boolean("bias_correction", A.BiasCorrection);
  if (R.has("betas")) {
    auto It = C.Optimizer->Params.find("betas");
    if (It == C.Optimizer->Params.end() || It->second.size() != 2 || !R.isList("betas")) {
      Diags.error(R.loc("betas"), "'optimizer.params.betas' must be a list of two numbers [beta1, beta2]");
      return false;
    }
    A.Beta1.set(It->second[0], R.loc("betas"));
    A.Beta2.set(It->second[1], R.loc("betas"));
  }
  Setting<bool> AmsGrad{false};
  R.boolean("amsgrad", AmsGrad);
  if (AmsGrad.Value) {
    Diags.error(AmsGrad.From, "'amsgrad' is not supported: FusedAdam does not support the AMSGrad variant");
    return false;
  }
  // engine.py: effective_adam_w_mode = name == "adamw" or adam_w_mode (default true).
  Setting<bool> Mode{true};
  R.boolean("adam_w_mode", Mode);
  if (Lower == "adamw" && Mode.From.isValid() && !Mode.Value) {
    Diags.warning(Mode.From, "ignored-option",
                  "'adam_w_mode' false has no effect with optimizer type '" + S.Type + "'");
    Diags.note(S.TypeLoc, "DeepSpeed always decouples weight decay for AdamW; use type Adam for an L2 term");
    Mode.Value = true;
  }
  A.AdamWMode = Mode;
  return R.ok();
}

bool lowerScheduler(const Config &C, DiagEngine &Diags, bool ForCodegen, SchedulerSettings &Sch) {
  if (!C.Scheduler)
    return true;
  const NamedSection &S = *C.Scheduler;
  const std::pair<llvm::StringRef, LrScheduleKind> Kinds[] = {{"WarmupLR", LrScheduleKind::WarmupLR},
                                                             {"WarmupDecayLR", LrScheduleKind::WarmupDecayLR},
                                                             {"WarmupCosineLR", LrScheduleKind::WarmupCosineLR}};
  auto It = llvm::find_if(Kinds, [&](const auto &K) { return K.first == S.Type; });
  if (It == std::end(Kinds)) {
    unsupported(Diags, ForCodegen, S.TypeLoc,
                "scheduler type '" + S.Type + "' is not supported by autotpc's ZeRO engine; supported types: "
                "WarmupLR, WarmupDecayLR, WarmupCosineLR",
                "without a 'scheduler' section the learning rate is constant");
    return !ForCodegen;
  }
  Sch.Kind = It->second;
  ParamsReader R(S, "scheduler", Diags);
  const bool Cosine = Sch.Kind == LrScheduleKind::WarmupCosineLR;
  const bool NeedsTotal = Sch.Kind != LrScheduleKind::WarmupLR;
  std::vector<llvm::StringRef> Known = {"warmup_num_steps", "warmup_type", "last_batch_iteration"};
  if (Cosine)
    Known.insert(Known.end(), {"warmup_min_ratio", "cos_min_ratio"});
  else
    Known.insert(Known.end(), {"warmup_min_lr", "warmup_max_lr"});
  if (NeedsTotal)
    Known.push_back("total_num_steps");
  R.onlyKnown(Known, S.Type + "(...)");
  if (Cosine) {
    R.number("warmup_min_ratio", Sch.WarmupMinRatio);
    R.number("cos_min_ratio", Sch.CosMinRatio);
  } else {
    R.number("warmup_min_lr", Sch.WarmupMinLr);
    R.number("warmup_max_lr", Sch.WarmupMaxLr);
  }
  R.integer("warmup_num_steps", Sch.WarmupNumSteps);
  if (NeedsTotal) {
    if (!R.has("total_num_steps")) {
      Diags.error(S.TypeLoc, "scheduler " + S.Type + " needs 'total_num_steps' in scheduler.params");
      Diags.note(S.TypeLoc, "it is a required argument of DeepSpeed's " + S.Type + "; there is no default");
      return false;
    }
    R.integer("total_num_steps", Sch.TotalNumSteps);
  }
  if (const std::string *Type = R.string("warmup_type")) {
    if (*Type == "log" || *Type == "linear") {
      Sch.WarmupLog.set(*Type == "log", R.loc("warmup_type"));
    } else {
      Diags.warning(R.loc("warmup_type"), "ignored-option",
                    "'warmup_type' \"" + *Type + "\" is neither \"log\" nor \"linear\"; using \"log\"");
      Diags.note(R.loc("warmup_type"), "DeepSpeed logs a warning and warms up logarithmically");
    }
  }
  Setting<int64_t> Last{-1};
  R.integer("last_batch_iteration", Last);
  if (Last.Value != -1)
    Diags.warning(Last.From, "ignored-option",
                  "'last_batch_iteration' (" + llvm::Twine(Last.Value) +
                      ") is ignored; the engine starts the schedule at step 0");
  return R.ok();
}

} // namespace

std::optional<ZeroSettings> autotpc::lowerZeroSettings(const Config &C, const Topology &Topo, int64_t TpSize,
                                                       DiagEngine &Diags, bool ForCodegen) {
  ZeroSettings Z;
  if (C.Zero.StageLoc.isValid())
    Z.Stage.set(C.Zero.Stage, C.Zero.StageLoc);
  Z.Prec.Value = C.Prec;
  if (C.Prec != Precision::FP32)
    Z.Prec.set(C.Prec, C.PrecLoc);
  Z.TpSize = TpSize;
  Z.DpSize = Topo.Dp.value_or(0);
  Z.DpWhy = !Topo.Dp             ? "known only at launch"
            : Topo.WorldFromFlag ? "--world-size / autotp_size"
                                 : "train_batch_size / (train_micro_batch_size_per_gpu x gradient_accumulation_steps)";
  if (C.GradAccum.Value) {
    Z.GradAccum.set(*C.GradAccum.Value, C.GradAccum.L);
  } else if (C.TrainBatch.Value && C.MicroBatch.Value && Topo.Dp && *Topo.Dp > 0 &&
             *C.TrainBatch.Value % (*C.MicroBatch.Value * *Topo.Dp) == 0) {
    Z.GradAccum.set(*C.TrainBatch.Value / (*C.MicroBatch.Value * *Topo.Dp), C.TrainBatch.L);
    Z.GradAccum.Why = "train_batch_size / (train_micro_batch_size_per_gpu x dp)";
  }
  if (C.TrainBatch.Value)
    Z.TrainBatch.set(*C.TrainBatch.Value, C.TrainBatch.L);
  if (C.MicroBatch.Value)
    Z.MicroBatch.set(*C.MicroBatch.Value, C.MicroBatch.L);
  if (C.GradAccum.Value)
    Z.GradAccumGiven.set(*C.GradAccum.Value, C.GradAccum.L);
  if (C.GradientClippingLoc.isValid())
    Z.GradientClipping.set(C.GradientClipping, C.GradientClippingLoc);
  if (C.Zero.ReduceBucketSizeLoc.isValid())
    Z.ReduceBucketSize.set(C.Zero.ReduceBucketSize, C.Zero.ReduceBucketSizeLoc);
  const LossScaleConfig &LS = C.LossScale;
  auto Take = [](auto &Out, auto V, const Loc &L) {
    if (L.isValid())
      Out.set(V, L);
  };
  Take(Z.LossScale.StaticScale, LS.LossScale, LS.LossScaleLoc);
  Take(Z.LossScale.InitialScalePower, LS.InitialScalePower, LS.InitialScalePowerLoc);
  Take(Z.LossScale.Window, LS.LossScaleWindow, LS.LossScaleWindowLoc);
  Take(Z.LossScale.Hysteresis, LS.Hysteresis, LS.HysteresisLoc);
  Take(Z.LossScale.MinScale, LS.MinLossScale, LS.MinLossScaleLoc);
  bool Ok = lowerOptimizer(C, Diags, ForCodegen, Z.AdamW);
  Ok &= lowerScheduler(C, Diags, ForCodegen, Z.Scheduler);
  // JSON numbers beyond the double range parse as infinities; no setting can be one.
  const std::pair<const char *, const Setting<double> *> Doubles[] = {
      {"gradient_clipping", &Z.GradientClipping},   {"lr", &Z.AdamW.Lr},
      {"betas", &Z.AdamW.Beta1},                    {"betas", &Z.AdamW.Beta2},
      {"eps", &Z.AdamW.Eps},                        {"weight_decay", &Z.AdamW.WeightDecay},
      {"warmup_min_lr", &Z.Scheduler.WarmupMinLr},  {"warmup_max_lr", &Z.Scheduler.WarmupMaxLr},
      {"warmup_min_ratio", &Z.Scheduler.WarmupMinRatio}, {"cos_min_ratio", &Z.Scheduler.CosMinRatio},
      {"loss_scale", &Z.LossScale.StaticScale},     {"min_loss_scale", &Z.LossScale.MinScale}};
  for (const auto &[Name, S] : Doubles)
    if (!std::isfinite(S->Value)) {
      Diags.error(S->From, "'" + llvm::Twine(Name) + "' must be a finite number");
      Ok = false;
    }
  if (!Ok)
    return std::nullopt;
  return Z;
}
