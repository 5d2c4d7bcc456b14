//===- TrainMpi.cpp - training at any (tp, dp, stage) equals tp=1/dp=1 ----===//
//
// Run as `mpirun -np W train_mpi TP`: DP = W / TP. For the tiny llama, qwen2
// (q/k/v biases, tied embeddings) and phi3 (fused qkv_proj with GQA, fused
// gate_up_proj) of specs/tiny/, in fp32 with AdamW, clipping and small
// reduce buckets, atp::Trainer runs kSteps optimizer steps from the seeded
// init on the same in-memory tokens under ZeRO stages 0, 1 and 2 at this
// layout. Every rank also computes the reference in process: the same model
// at TP 1 / DP 1 / stage 0 on one-rank communicators, with the same global
// batch (micro-batch x GAS x DP: its GAS is kGas x DP), so the data loader
// gives it the same rows per step. Checks, to kTol relative:
//   - every step's loss and global gradient norm equal the reference's;
//   - the consolidated weights (Trainer::gather_weights) equal the
//     reference's, per tensor: max |diff| / max |reference|;
//   - training moved every tensor well beyond kTol (the check can fail);
//   - the decoder issued one forward row all-reduce per o_proj/down_proj and
//     one backward column all-reduce per attention block and per MLP, per
//     micro-batch (2 x layers x micro-batches each at TP > 1, none at TP 1).
// Stage 2 runs once more with activation_checkpointing (each layer recomputed
// in backward): the same bits as without it (losses, grad norms, weights),
// the same column all-reduces, and the recomputed layers' row all-reduces on
// top (2 x (layers - 1) per micro-batch at TP > 1: the last layer is not
// recomputed).
// Every stage runs twice more with the ZeRO engine on a queue of its own
// (LaggingQueues.h: GPU streams made as late as the events allow): once with
// only the engine's queue lagging, once with every queue lagging: the model's
// (kernels, ops), the TP comm's (a third queue, as on CUDA, where backward's
// column all-reduces run under the weight gradients) and the engine's; at TP >
// 1 once more with the TP comm's queue eager (as early as its waits allow, so
// that a wait it lacks shows). All must give the same bits as one queue, and
// each side that waits must have found the other's work still queued. For
// llama, negative controls: the model ignoring its waits (stage 1), the engine
// ignoring its waits (stage 2), the eager TP queue ignoring its waits (stage 0,
// TP > 1): the results must then differ. For llama at stages 1 and 2, a run with every queue lagging saves a
// checkpoint after step 3 and a new trainer resumes it: the same bits as the
// run on one queue (the checkpoint copies the engine's buffers through the
// model's queue).
// Rank 0 prints one line per (family, stage); a failing rank names the
// family, stage, tensor and values. Exit 0 only if every check passes on
// every rank.
//
//===----------------------------------------------------------------------===//
#include "LaggingQueues.h"
#include "PlanLoader.h"

#include "atp/comm.h"
#include "atp/kernels.h"
#include "atp/ops.h"
#include "atp/trainer.h"
#include "atp/world.h"

#include <mpi.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

using namespace autotpc;

namespace {

constexpr int kSteps = 5, kMicro = 2, kGas = 2;
constexpr int64_t kSeq = 16;
constexpr double kTol = 1e-5;
/// Every tensor must move by at least this much (relative to its largest element) over the run, so that
/// agreeing to kTol says something.
constexpr double kMinMove = 100 * kTol;

struct Context {
  atp::World World;
  atp::Groups Groups;
  atp::Comm *Tp = nullptr, *Dp = nullptr, *All = nullptr;
  /// One-rank communicators for the reference (TP, DP and world of this rank alone).
  atp::Comm *SelfTp = nullptr, *SelfDp = nullptr, *SelfAll = nullptr;
  int Passed = 0, Failed = 0;
  /// A folder every rank shares, for the save-and-resume runs.
  std::string CheckpointDir;

  void check(bool Ok, const std::string &What) {
    if (Ok) {
      ++Passed;
      return;
    }
    ++Failed;
    std::fprintf(stderr, "rank %d (tp %d, dp %d): FAILED: %s\n", World.rank, Groups.tp_rank, Groups.dp_rank,
                 What.c_str());
  }
};

/// A value in [0, 1) from a 64-bit key (splitmix64).
double unit(uint64_t Key) {
  Key += 0x9e3779b97f4a7c15ull;
  Key = (Key ^ (Key >> 30)) * 0xbf58476d1ce4e5b9ull;
  Key = (Key ^ (Key >> 27)) * 0x94d049bb133111ebull;
  Key ^= Key >> 31;
  return double(Key >> 11) / double(1ull << 53);
}

/// Enough windows of kSeq + 1 tokens for kSteps steps of the largest global batch without wrapping, below
/// vocab. A skewed distribution (low ids likelier), so training has something to learn.
std::vector<uint32_t> tokens(int64_t Vocab) {
  const size_t N = size_t(kSteps * kMicro * kGas * 8 * kSeq + 1);
  std::vector<uint32_t> T(N);
  for (size_t I = 0; I < N; ++I) {
    const double U = unit(0x5eed0000 + I);
    T[I] = uint32_t(double(Vocab) * U * U) % uint32_t(Vocab);
  }
  return T;
}

/// AdamW's eps is 1e-3, not 1e-8: an element's update g / (|g| + eps) moves by up to lr x (rounding error of
/// g) / eps when |g| is near eps, and the layouts sum g in different orders (fp32, ~1e-7 relative of the
/// summands). With eps 1e-8 and this model's gradients (down to 1e-8 and below after clipping) stage 2 and
/// stage 0 at TP 1 / DP 1 already differ by 3e-5 of phi3's embedding and 1e-3 of qwen2's k_proj.bias; with
/// 1e-3 the worst layout is ~1e-6 and every tensor still moves by over 100 x the tolerance.
nlohmann::json overrides(int Stage, int Gas) {
  return {{"train_micro_batch_size_per_gpu", kMicro},
          {"gradient_accumulation_steps", Gas},
          {"train_batch_size", nullptr},
          {"bf16", {{"enabled", false}}},
          {"fp16", {{"enabled", false}}},
          {"gradient_clipping", 1.0},
          {"zero_optimization", {{"stage", Stage}, {"reduce_bucket_size", 5000}}},
          {"optimizer",
           {{"type", "AdamW"},
            {"params", {{"lr", 1e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-3}, {"weight_decay", 0.1}}}}}};
}

/// Where the ZeRO engine runs: on the model's queue, or on a lagging queue of its own, with the model's queue
/// eager or lagging too; the negative controls make one side ignore its waits.
enum class Queues { One, EngineLags, EveryLags, TpEager, ModelIgnoresWaits, EngineIgnoresWaits, TpIgnoresWaits };

const char *queuesName(Queues Q) {
  switch (Q) {
  case Queues::One:
    return "on one queue";
  case Queues::EngineLags:
    return "with the engine's queue lagging";
  case Queues::EveryLags:
    return "with every queue lagging";
  case Queues::TpEager:
    return "with the model's and the engine's queues lagging, the TP comm's eager";
  case Queues::ModelIgnoresWaits:
    return "with the model ignoring its waits (negative control)";
  case Queues::EngineIgnoresWaits:
    return "with the engine ignoring its waits (negative control)";
  case Queues::TpIgnoresWaits:
    return "with the TP comm's eager queue ignoring its waits (negative control)";
  }
  return "?";
}

/// One training run's results on this rank.
struct Run {
  std::vector<atp::StepStats> Steps;
  std::vector<std::string> Names;                ///< parameter names, plan order
  std::vector<std::vector<float>> Initial, Final; ///< consolidated; empty off DP rank 0
  atp::Decoder::CommCounts Counts;
  int64_t Layers = 0, MicroBatches = 0;
  bool Split = false;                             ///< attention and MLP are TP-split
  /// Waits that ran the other queue's pending work: the model's on the engine's queue, and back.
  int64_t ModelWaitsThatRan = 0, EngineWaitsThatRan = 0, TpWaitsThatRan = 0;
};

/// Compiles Family at TP `Tp` with Overrides and trains kSteps on Comms. Returns false (with a failed check)
/// when the spec does not compile; every rank of Comms compiles alike.
bool train(Context &C, const std::string &Tag, const std::string &Family, int Tp, const nlohmann::json &Overrides,
           const atp::TrainComms &Comms, Run &Out, Queues Q = Queues::One, int ResumeAfter = 0) {
  LoadedPlan P;
  LoadedZero Z;
  LoadedDecoder D;
  const std::string Diag = compileTinyTrain(Family, Tp, Overrides, P, Z, D);
  if (!Diag.empty()) {
    C.check(false, Tag + ": does not compile:\n" + Diag);
    return false;
  }
  // reduce_bucket_size 5000 cuts the flat gradients into several buckets, so stage 2 reduces during backward.
  const int32_t Buckets = Z.FlatLayouts.at(size_t(Comms.tp_rank)).num_buckets;
  C.check(Buckets >= 4, Tag + ": " + std::to_string(Buckets) + " gradient buckets, expected several");
  const atp::TrainModel Model{P.Plan, Z.Plan, D.Shape, D.Params, D.hfConfigJson()};
  atp::TrainerOptions O;
  O.seq = kSeq;
  O.data_tokens = tokens(D.Shape.vocab);
  O.data_name = Family + " test tokens";
  O.data_seed = 11;
  auto Kernels = ATP_CHECK_OK(atp::make_cpu_kernels(atp::DType::F32, 1));
  auto Ops = atp::make_cpu_ops();
  // The queues: the engine's ops and DP comm on EngineQueue; the model's ops (and, when it lags too, its
  // kernels) on ModelQueue; the TP comm on the model's queue, or, when the model lags, on TpQueue of its own
  // (as on CUDA: three streams).
  const bool ModelLags = Q != Queues::EngineLags && Q != Queues::ModelIgnoresWaits;
  const bool TpEager = Q == Queues::TpEager || Q == Queues::TpIgnoresWaits; // it then runs as early as allowed
  LaggingQueue ModelQueue(/*Eager=*/!ModelLags), EngineQueue, TpQueue(TpEager);
  LaggingOps ModelOps(*Ops, ModelQueue), EngineOps(*Ops, EngineQueue), TpOps(*Ops, TpQueue);
  ModelOps.IgnoreWaits = Q == Queues::ModelIgnoresWaits;
  EngineOps.IgnoreWaits = Q == Queues::EngineIgnoresWaits;
  TpOps.IgnoreWaits = Q == Queues::TpIgnoresWaits;
  LaggingKernels ModelKernels(*Kernels, ModelQueue);
  LaggingComm TpComm(Comms.tp, TpQueue), EngineDp(Comms.dp, EngineQueue);
  atp::TrainComms Used = Comms;
  Used.tensor_dp = &EngineDp, Used.dp_queue = &EngineOps;
  if (ModelLags)
    Used.tensor_tp = &TpComm, Used.tp_queue = &TpOps;
  auto Make = [&] {
    return Q == Queues::One
               ? ATP_CHECK_OK(atp::Trainer::create(Model, O, Comms, *Kernels, *Ops))
               : ATP_CHECK_OK(atp::Trainer::create(
                     Model, O, Used, ModelLags ? static_cast<atp::Kernels &>(ModelKernels) : *Kernels, ModelOps));
  };
  auto T = Make();
  Out.Initial = ATP_CHECK_OK(T->gather_weights());
  for (int S = 0; S < kSteps; ++S) {
    if (ResumeAfter > 0 && S == ResumeAfter) { // a checkpoint, and a new trainer that continues from it
      ATP_CHECK_OK(T->save(C.CheckpointDir));
      T.reset();
      T = Make();
      ATP_CHECK_OK(T->resume(C.CheckpointDir));
    }
    Out.Steps.push_back(ATP_CHECK_OK(T->step()));
  }
  Out.Final = ATP_CHECK_OK(T->gather_weights());
  for (int I = 0; I < P.Plan.num_params; ++I)
    Out.Names.push_back(P.Plan.params[I].name);
  Out.Counts = T->decoder().comm_counts();
  Out.ModelWaitsThatRan = ModelOps.WaitsThatRan, Out.EngineWaitsThatRan = EngineOps.WaitsThatRan;
  Out.TpWaitsThatRan = TpOps.WaitsThatRan;
  // The engine's flat layout puts each layer's v, k, q and up, gate back to back: the trainer's decoder runs
  // them as one product each (llama: no biases, no fused weights; test/model checks the math).
  if (Family == "llama")
    C.check(T->decoder().merged_qkv() && T->decoder().merged_gate_up(),
            Tag + ": q/k/v and gate/up not run as one product each");
  Out.Layers = D.Shape.layers;
  Out.MicroBatches = int64_t(kSteps) * T->batch().grad_accum;
  Out.Split = D.Shape.attn_split && D.Shape.mlp_split;
  C.check(T->batch().micro_batch == kMicro && T->batch().train_batch == int64_t(kMicro) * kGas * C.Groups.dp_size,
          Tag + ": batch sizes " + std::to_string(T->batch().micro_batch) + " x " +
              std::to_string(T->batch().grad_accum) + " = " + std::to_string(T->batch().train_batch));
  return true;
}

double relErr(double A, double Ref) { return std::fabs(A - Ref) / std::max(std::fabs(Ref), 1e-30); }

/// max |A - B| / max |B| over a tensor.
double tensorErr(const std::vector<float> &A, const std::vector<float> &B) {
  if (A.size() != B.size())
    return INFINITY;
  double Diff = 0, Scale = 0;
  for (size_t I = 0; I < A.size(); ++I) {
    Diff = std::max(Diff, std::fabs(double(A[I]) - double(B[I])));
    Scale = std::max(Scale, std::fabs(double(B[I])));
  }
  return Diff / std::max(Scale, 1e-30);
}

void compare(Context &C, const std::string &Family, int Stage, const Run &Ref, const Run &Got) {
  const std::string Tag = Family + " stage " + std::to_string(Stage);
  double WorstLoss = 0, WorstNorm = 0, WorstWeight = 0;
  std::string WorstName = "-";
  for (int S = 0; S < kSteps; ++S) {
    const atp::StepStats &A = Got.Steps[size_t(S)], &B = Ref.Steps[size_t(S)];
    const double El = relErr(A.loss, B.loss), En = relErr(A.grad_norm, B.grad_norm);
    WorstLoss = std::max(WorstLoss, El), WorstNorm = std::max(WorstNorm, En);
    char Buf[256];
    std::snprintf(Buf, sizeof Buf, ": step %d: loss %.9g vs reference %.9g (rel %.2e), grad norm %.9g vs %.9g (rel %.2e)",
                  S + 1, A.loss, B.loss, El, A.grad_norm, B.grad_norm, En);
    C.check(El <= kTol && En <= kTol && A.applied, Tag + Buf + (A.applied ? "" : ", not applied"));
  }
  // Weights: on DP rank 0 (gather_weights leaves the other ranks empty).
  if (C.Groups.dp_rank == 0) {
    std::map<std::string, size_t> RefIndex;
    for (size_t I = 0; I < Ref.Names.size(); ++I)
      RefIndex[Ref.Names[I]] = I;
    C.check(Got.Names.size() == Ref.Names.size(), Tag + ": " + std::to_string(Got.Names.size()) +
                                                      " parameters, the reference has " +
                                                      std::to_string(Ref.Names.size()));
    for (size_t I = 0; I < Got.Names.size(); ++I) {
      auto It = RefIndex.find(Got.Names[I]);
      if (It == RefIndex.end()) {
        C.check(false, Tag + ": " + Got.Names[I] + " is not in the reference");
        continue;
      }
      const std::vector<float> &W = Got.Final[I], &R = Ref.Final[It->second];
      const double E = tensorErr(W, R);
      if (E > WorstWeight)
        WorstWeight = E, WorstName = Got.Names[I];
      if (E > kTol) {
        size_t At = 0;
        for (size_t X = 0; X < W.size() && X < R.size(); ++X)
          if (std::fabs(W[X] - R[X]) > std::fabs(W[At] - R[At]))
            At = X;
        char Buf[256];
        std::snprintf(Buf, sizeof Buf, " after %d steps: rel err %.3e (worst element %zu: %.9g vs reference %.9g)",
                      kSteps, E, At, At < W.size() ? double(W[At]) : NAN, At < R.size() ? double(R[At]) : NAN);
        C.check(false, Tag + ": weight " + Got.Names[I] + Buf);
      } else {
        C.check(true, "");
      }
    }
  } else {
    bool Empty = true;
    for (const auto &W : Got.Final)
      Empty = Empty && W.empty();
    C.check(Empty, Tag + ": gather_weights returned tensors off DP rank 0");
  }
  // One column all-reduce per attention block and per MLP per micro-batch, one row all-reduce per o_proj and
  // down_proj output (test/model/DecoderMpi.cpp counts the same for one micro-batch).
  const int64_t Expect = C.Groups.tp_size > 1 ? 2 * Got.Layers * Got.MicroBatches : 0;
  C.check(Got.Split == (C.Groups.tp_size > 1), Tag + ": attention/MLP split " + std::to_string(Got.Split));
  C.check(Got.Counts.backward_column == Expect,
          Tag + ": backward column all-reduces " + std::to_string(Got.Counts.backward_column) + ", expected " +
              std::to_string(Expect) + " (2 x " + std::to_string(Got.Layers) + " layers x " +
              std::to_string(Got.MicroBatches) + " micro-batches)");
  C.check(Got.Counts.forward_row == Expect, Tag + ": forward row all-reduces " +
                                                std::to_string(Got.Counts.forward_row) + ", expected " +
                                                std::to_string(Expect));
  if (C.World.rank == 0)
    std::printf("  %-6s stage %d: loss %.6f -> %.6f; worst rel err: loss %.1e, grad norm %.1e, weights %.1e (%s); "
                "column all-reduces %lld\n",
                Family.c_str(), Stage, Got.Steps.front().loss, Got.Steps.back().loss, WorstLoss, WorstNorm,
                WorstWeight, WorstName.c_str(), (long long)Got.Counts.backward_column);
  std::fflush(stdout);
}

/// Recomputation changes nothing but the row all-reduces: bit-identical steps and weights.
void compareRecompute(Context &C, const std::string &Family, const Run &Plain, const Run &Got) {
  const std::string Tag = Family + " stage 2 with activation_checkpointing";
  bool Same = Got.Steps.size() == Plain.Steps.size() && Got.Final == Plain.Final;
  for (size_t S = 0; Same && S < Got.Steps.size(); ++S)
    Same = Got.Steps[S].loss == Plain.Steps[S].loss && Got.Steps[S].grad_norm == Plain.Steps[S].grad_norm;
  C.check(Same, Tag + ": losses, grad norms or weights differ from the run without it");
  const int64_t Column = C.Groups.tp_size > 1 ? 2 * Got.Layers * Got.MicroBatches : 0;
  const int64_t Row = Column + (C.Groups.tp_size > 1 ? 2 * (Got.Layers - 1) * Got.MicroBatches : 0);
  C.check(Got.Counts.backward_column == Column && Got.Counts.forward_row == Row,
          Tag + ": all-reduces: column " + std::to_string(Got.Counts.backward_column) + " (expected " +
              std::to_string(Column) + "), row " + std::to_string(Got.Counts.forward_row) + " (expected " +
              std::to_string(Row) + ")");
  if (C.World.rank == 0)
    std::printf("  %-6s stage 2 with activation_checkpointing: %s; row all-reduces %lld\n", Family.c_str(),
                Same ? "bit-identical" : "DIFFERENT", (long long)Got.Counts.forward_row);
}

/// The same bits: every step's loss and grad norm, and the final weights.
bool sameBits(const Run &A, const Run &B) {
  bool Same = A.Steps.size() == B.Steps.size() && A.Final == B.Final;
  for (size_t S = 0; Same && S < A.Steps.size(); ++S)
    Same = A.Steps[S].loss == B.Steps[S].loss && A.Steps[S].grad_norm == B.Steps[S].grad_norm;
  return Same;
}

/// Two queues change nothing, and each side that waits found the other's work still queued; a side that
/// ignores its waits must change the results.
void compareQueues(Context &C, const std::string &Family, int Stage, Queues Q, const Run &OneQueue, const Run &Got) {
  const std::string Tag = Family + " stage " + std::to_string(Stage) + " " + queuesName(Q);
  const bool Same = sameBits(Got, OneQueue);
  if (Q == Queues::ModelIgnoresWaits || Q == Queues::EngineIgnoresWaits || Q == Queues::TpIgnoresWaits) {
    C.check(!Same, Tag + ": the same bits as one queue: the lagging queues do not lag");
  } else {
    C.check(Same, Tag + ": losses, grad norms or weights differ from the run on one queue");
    C.check(Got.ModelWaitsThatRan > 0, Tag + ": the model never waited for queued engine work");
    C.check(Q == Queues::EngineLags || Got.EngineWaitsThatRan > 0,
            Tag + ": the engine never waited for queued model work");
    C.check(Q != Queues::TpEager || Got.TpWaitsThatRan > 0, Tag + ": the TP comm's queue never waited for queued "
                                                                  "model work");
  }
  if (C.World.rank == 0)
    std::printf("  %-6s stage %d %s: %s; waits that ran queued work: model %lld, engine %lld, TP %lld\n",
                Family.c_str(), Stage, queuesName(Q), Same ? "bit-identical" : "different",
                (long long)Got.ModelWaitsThatRan, (long long)Got.EngineWaitsThatRan, (long long)Got.TpWaitsThatRan);
}

/// The reference moved every tensor by much more than the tolerance.
void checkMoved(Context &C, const std::string &Family, const Run &Ref) {
  double Least = INFINITY;
  std::string LeastName = "-";
  for (size_t I = 0; I < Ref.Names.size(); ++I) {
    const double Moved = tensorErr(Ref.Initial[I], Ref.Final[I]);
    if (Moved < Least)
      Least = Moved, LeastName = Ref.Names[I];
    C.check(Moved >= kMinMove, Family + " reference: " + Ref.Names[I] + " moved by only " + std::to_string(Moved) +
                                   " of its largest element in " + std::to_string(kSteps) + " steps");
  }
  if (C.World.rank == 0)
    std::printf("  %-6s reference: every tensor moved by >= %.1e of its largest element (least: %s)\n",
                Family.c_str(), Least, LeastName.c_str());
}

void checkFamily(Context &C, const std::string &Family) {
  const int Tp = C.Groups.tp_size, Dp = C.Groups.dp_size;
  Run Ref;
  const atp::TrainComms Self{*C.SelfTp, *C.SelfDp, *C.SelfAll, 0, 0, 0};
  if (!train(C, Family + " reference", Family, 1, overrides(0, kGas * Dp), Self, Ref))
    return;
  checkMoved(C, Family, Ref);
  const atp::TrainComms Comms{*C.Tp, *C.Dp, *C.All, C.Groups.tp_rank, C.Groups.dp_rank, C.World.rank};
  Run Plain;
  for (int Stage = 0; Stage <= 2; ++Stage) {
    Run Got;
    const std::string Tag = Family + " stage " + std::to_string(Stage);
    if (!train(C, Tag, Family, Tp, overrides(Stage, kGas), Comms, Got))
      continue;
    compare(C, Family, Stage, Ref, Got);
    std::vector<Queues> Variants{Queues::EngineLags, Queues::EveryLags};
    if (Tp > 1)
      Variants.push_back(Queues::TpEager);
    if (Family == "llama" && Stage == 1)
      Variants.push_back(Queues::ModelIgnoresWaits);
    if (Family == "llama" && Stage == 2) // where the engine reads gradients during backward
      Variants.push_back(Queues::EngineIgnoresWaits);
    if (Family == "llama" && Stage == 0 && Tp > 1) // the TP all-reduces then read unfinished sums
      Variants.push_back(Queues::TpIgnoresWaits);
    for (Queues Q : Variants) {
      Run Two;
      if (train(C, Tag + " " + queuesName(Q), Family, Tp, overrides(Stage, kGas), Comms, Two, Q))
        compareQueues(C, Family, Stage, Q, Got, Two);
    }
    Run Resumed; // the checkpoint reads and writes the engine's buffers through the model's queue
    if (Family == "llama" && Stage >= 1 &&
        train(C, Tag + " resumed", Family, Tp, overrides(Stage, kGas), Comms, Resumed, Queues::EveryLags, 3)) {
      const bool Same = sameBits(Resumed, Got);
      C.check(Same, Tag + " with every queue lagging, saved after step 3 and resumed by a new trainer: losses, grad "
                          "norms or weights differ from the run on one queue");
      if (C.World.rank == 0)
        std::printf("  %-6s stage %d with every queue lagging, saved after step 3 and resumed: %s\n", Family.c_str(),
                    Stage, Same ? "bit-identical" : "different");
    }
    if (Stage == 2)
      Plain = std::move(Got);
  }
  nlohmann::json WithRecompute = overrides(2, kGas);
  WithRecompute["activation_checkpointing"] = nlohmann::json::object();
  Run Recomputed;
  if (!Plain.Steps.empty() && train(C, Family + " stage 2 recompute", Family, Tp, WithRecompute, Comms, Recomputed))
    compareRecompute(C, Family, Plain, Recomputed);
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mpirun -np W %s TP\n", argv[0]);
    return 2;
  }
  ATP_CHECK_OK(atp::mpi_init(&argc, &argv));
  Context C;
  C.World = ATP_CHECK_OK(atp::World::from_env());
  C.Groups = ATP_CHECK_OK(atp::make_groups(C.World, std::atoi(argv[1])));
  atp::set_process_identity(C.World.rank, C.World.world_size);
  atp::MpiMesh Mesh = ATP_CHECK_OK(atp::make_mpi_mesh(C.World.rank, C.World.world_size, C.Groups.tp_size));
  std::unique_ptr<atp::Comm> All = std::move(Mesh.world), Tp = std::move(Mesh.tp), Dp = std::move(Mesh.dp);
  std::unique_ptr<atp::Comm> SelfTp = ATP_CHECK_OK(atp::make_mpi_comm({C.World.rank})),
                             SelfDp = ATP_CHECK_OK(atp::make_mpi_comm({C.World.rank})),
                             SelfAll = ATP_CHECK_OK(atp::make_mpi_comm({C.World.rank}));
  C.Tp = Tp.get(), C.Dp = Dp.get(), C.All = All.get();
  C.SelfTp = SelfTp.get(), C.SelfDp = SelfDp.get(), C.SelfAll = SelfAll.get();
  char Dir[64] = "/tmp/train_mpi_XXXXXX";
  if (C.World.rank == 0 && !mkdtemp(Dir))
    std::snprintf(Dir, sizeof Dir, "%s", "");
  MPI_Bcast(Dir, sizeof Dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (!*Dir) {
    std::fprintf(stderr, "train_mpi: cannot make a folder under /tmp\n");
    return 1;
  }
  C.CheckpointDir = Dir;
  if (C.World.rank == 0)
    std::printf("train_mpi tp=%d dp=%d: %d steps of %d x %d x %d rows of %lld tokens; reference tp=1 dp=1 GAS %d\n",
                C.Groups.tp_size, C.Groups.dp_size, kSteps, kMicro, kGas, C.Groups.dp_size, (long long)kSeq,
                kGas * C.Groups.dp_size);

  for (const char *Family : {"llama", "qwen2", "phi3"})
    checkFamily(C, Family);

  int Mine[2] = {C.Passed, C.Failed}, Sum[2] = {0, 0};
  MPI_Reduce(Mine, Sum, 2, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (C.World.rank == 0)
    std::printf("train_mpi tp=%d dp=%d: %d passed, %d failed\n", C.Groups.tp_size, C.Groups.dp_size, Sum[0], Sum[1]);
  MPI_Barrier(MPI_COMM_WORLD);
  if (C.World.rank == 0)
    std::filesystem::remove_all(C.CheckpointDir);
  int AnyFailed = C.Failed > 0, Global = 0;
  MPI_Allreduce(&AnyFailed, &Global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  Tp.reset(), Dp.reset(), All.reset(), SelfTp.reset(), SelfDp.reset(), SelfAll.reset();
  ATP_CHECK_OK(atp::mpi_finalize());
  return Global ? 1 : 0;
}
