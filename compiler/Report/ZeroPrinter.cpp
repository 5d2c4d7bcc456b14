//===- ZeroPrinter.cpp - --emit=zero: flat layouts, buckets, DP partitions ===//
//
// One line per setting group, then per TP rank: every flat parameter, every
// bucket, and (DP size known) the padded buckets and how many of each DP
// rank's partition elements are bucket elements and how many padding. The
// text is stable: same input, same bytes.
//
//===----------------------------------------------------------------------===//
#include "Report/Reports.h"

using namespace autotpc;

static const char *yesNo(bool B) { return B ? "yes" : "no"; }

static void printSettings(const ZeroSettings &Z, llvm::raw_ostream &OS) {
  OS << "zero stage=" << Z.Stage.Value << " precision=" << precisionName(Z.Prec.Value) << " tp_size=" << Z.TpSize
     << " dp_size=";
  if (Z.DpSize)
    OS << Z.DpSize;
  else
    OS << "unknown";
  OS << " gradient_accumulation_steps=" << Z.GradAccum.Value << " (" << Z.GradAccum.Why << ")"
     << " gradient_clipping=" << formatDouble(Z.GradientClipping.Value)
     << " reduce_bucket_size=" << Z.ReduceBucketSize.Value << " align=" << FlatAlign << "\n";
  const AdamWSettings &A = Z.AdamW;
  OS << "optimizer " << A.Type << " lr=" << formatDouble(A.Lr.Value) << " betas=" << formatDouble(A.Beta1.Value)
     << "," << formatDouble(A.Beta2.Value) << " eps=" << formatDouble(A.Eps.Value)
     << " weight_decay=" << formatDouble(A.WeightDecay.Value) << " adam_w_mode=" << yesNo(A.AdamWMode.Value)
     << " bias_correction=" << yesNo(A.BiasCorrection.Value) << "\n";
  const SchedulerSettings &S = Z.Scheduler;
  OS << "scheduler " << lrScheduleName(S.Kind);
  const char *Warmup = S.WarmupLog.Value ? "log" : "linear";
  switch (S.Kind) {
  case LrScheduleKind::Constant: break;
  case LrScheduleKind::WarmupLR:
  case LrScheduleKind::WarmupDecayLR:
    OS << " warmup_min_lr=" << formatDouble(S.WarmupMinLr.Value) << " warmup_max_lr="
       << formatDouble(S.WarmupMaxLr.Value) << " warmup_num_steps=" << S.WarmupNumSteps.Value
       << " warmup_type=" << Warmup;
    if (S.Kind == LrScheduleKind::WarmupDecayLR)
      OS << " total_num_steps=" << S.TotalNumSteps.Value;
    break;
  case LrScheduleKind::WarmupCosineLR:
    OS << " total_num_steps=" << S.TotalNumSteps.Value << " warmup_min_ratio="
       << formatDouble(S.WarmupMinRatio.Value) << " warmup_num_steps=" << S.WarmupNumSteps.Value
       << " cos_min_ratio=" << formatDouble(S.CosMinRatio.Value) << " warmup_type=" << Warmup;
    break;
  }
  OS << "\n";
  const LossScaleSettings &L = Z.LossScale;
  OS << "loss_scale ";
  if (L.StaticScale.Value == 0)
    OS << "dynamic";
  else
    OS << "static=" << formatDouble(L.StaticScale.Value);
  OS << " initial_scale_power=" << L.InitialScalePower.Value << " loss_scale_window=" << L.Window.Value
     << " hysteresis=" << L.Hysteresis.Value << " min_loss_scale=" << formatDouble(L.MinScale.Value)
     << (Z.Prec.Value == Precision::FP16 ? "" : " (fp16 only; unused)") << "\n";
}

void autotpc::printZero(const Module &M, const ZeroSettings &Z, llvm::raw_ostream &OS) {
  OS << "// autotpc ZeRO plan of " << M.ConfigPath << "\n";
  printSettings(Z, OS);
  for (int64_t R = 0; R < M.TpSize; ++R) {
    const ZeroRankLayout L = zeroRankLayout(M, Z.ReduceBucketSize.Value, size_t(R));
    OS << "tp_rank " << R << ": params=" << L.Params.size() << " phi=" << L.Phi << " flat_numel=" << L.Numel
       << " buckets=" << L.Buckets.size() << "\n";
    for (size_t K = 0; K < L.Params.size(); ++K) {
      const ZeroFlatParam &F = L.Params[K];
      OS << "  flat " << K << ": param " << F.Param << " offset " << F.Offset << " numel " << F.Numel
         << " tp_sharded=" << yesNo(F.TpSharded) << " \"" << M.Params[size_t(F.Param)].Info.Name << "\"\n";
    }
    for (size_t B = 0; B < L.Buckets.size(); ++B) {
      const ZeroBucket &Bk = L.Buckets[B];
      OS << "  bucket " << B << ": [" << Bk.Begin << ", " << Bk.End << ") len " << Bk.End - Bk.Begin << " flat "
         << Bk.First << ".." << Bk.First + Bk.Count - 1 << " (" << Bk.Count << (Bk.Count == 1 ? " param)\n" : " params)\n");
    }
    if (!Z.DpSize)
      continue;
    const int64_t Dp = Z.DpSize;
    const ZeroPadded P = zeroPadded(L, Dp);
    OS << "  padded dp=" << Dp << ": N=" << P.FlatNumel << " P=" << P.PartitionNumel << "\n";
    std::vector<int64_t> InBucket(size_t(Dp), 0); // per DP rank: partition elements inside a bucket's span
    for (size_t B = 0; B < P.Buckets.size(); ++B) {
      const ZeroPaddedBucket &Pb = P.Buckets[B];
      const int64_t Len = L.Buckets[B].End - L.Buckets[B].Begin;
      const int64_t Padded = saturatingMul(Pb.Piece, Dp);
      OS << "    bucket " << B << ": begin " << Pb.Begin << " piece " << Pb.Piece << " padded " << Padded << " part "
         << Pb.Part << " padding " << Padded - Len << "\n";
      for (int64_t D = 0; D < Dp; ++D) // DP rank D's piece starts D * piece into the bucket
        InBucket[size_t(D)] =
            saturatingAdd(InBucket[size_t(D)], std::clamp<int64_t>(Len - saturatingMul(D, Pb.Piece), 0, Pb.Piece));
    }
    for (int64_t D = 0; D < Dp; ++D)
      OS << "    dp_rank " << D << ": partition " << P.PartitionNumel << " = " << InBucket[size_t(D)]
         << " bucket elements + " << P.PartitionNumel - InBucket[size_t(D)] << " padding\n";
  }
}
