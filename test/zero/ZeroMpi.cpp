//===- ZeroMpi.cpp - ZeRO at any (tp, dp, stage) equals one-rank AdamW ----===//
//
// Run as `mpirun -np W ZeroMpi TP`: DP = W / TP. For the tiny Llama and the
// tiny fused gate_up / GQA qkv model (specs/tiny/phi3.ds.json, the seed's
// custom layer specs), under ZeRO stages 0, 1 and 2 in fp32, K optimizer
// steps on a fixed global batch of 4 micro-batches (DP rank d takes
// micro-batches [d*GAS, (d+1)*GAS), GAS = 4 / DP, so one DP rank accumulates
// 4 micro-steps) give, on every rank, local weights equal to the
// corresponding shard of a one-rank AdamW reference computed here in double
// on full tensors, and the global gradient norm of the unsharded model.
// The engine's allocation equals the compiler's --emit=memory ledger.
// Then an fp16 run where one rank's gradient overflows: every rank skips the
// step, keeps its weights and halves the loss scale. First writes: an engine
// whose backward writes each gradient when grad_write says Overwrite (over the
// previous window's bytes, never cleared) and skips some gradients entirely
// ends with the very weights and norms of one that clears and is added into.
// 16 bits: a bf16 and an fp16 engine at each stage, fed gradients that 16 bits
// hold exactly, end with the fp32 engine's norms and its weights rounded to 16
// bits, bit for bit.
//
// Gradients and initial weights are functions of (seed, step, micro-batch,
// parameter, element), so the expected result is independent of the layout.
// Exit 0 only if every check passes on every rank; rank 0 prints
// "zero_mpi tp=T dp=D: N passed, M failed".
//
//===----------------------------------------------------------------------===//
#include "PlanLoader.h"

#include "atp/comm.h"
#include "atp/lr_schedule.h"
#include "atp/shard.h"
#include "atp/world.h"
#include "atp/zero.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using namespace autotpc;

namespace {

constexpr int kSteps = 3, kGlobalMicro = 4;

/// A value in [-1, 1) from a 64-bit key (splitmix64).
double unitValue(uint64_t Key) {
  Key += 0x9e3779b97f4a7c15ull;
  Key = (Key ^ (Key >> 30)) * 0xbf58476d1ce4e5b9ull;
  Key = (Key ^ (Key >> 27)) * 0x94d049bb133111ebull;
  Key ^= Key >> 31;
  return double(Key >> 11) / double(1ull << 52) - 1.0;
}
uint64_t key(uint64_t A, uint64_t B, uint64_t C, uint64_t D) { return ((A * 131 + B) * 1031 + C) * 1000003 + D; }
float initialWeight(int Param, int64_t I) { return float(0.5 * unitValue(key(7, 0, uint64_t(Param), uint64_t(I)))); }
/// Multiples of 2^-12: any sum of a few of them is exact in fp32, so the reference's mean gradient is the
/// engine's whatever the order of summation, and what remains is the optimizer's own rounding. (With full
/// 24-bit values, cancelling sums lose ~1e-7 absolute, and elements whose mean is near AdamW's eps after
/// clipping then differ by ~1e-6.)
float gradient(int Step, int Micro, int Param, int64_t I) {
  double U = unitValue(key(uint64_t(Step + 1), uint64_t(Micro + 1), uint64_t(Param), uint64_t(I)));
  return float(std::round(U * 4096.0) / 4096.0);
}

/// Multiples of 2^-5 in [-1, 1): a sum of four (an accumulation window), times fp16's power-of-two loss scale,
/// is exact in bf16 and fp16, so 16-bit working gradients hold exactly what fp32 ones do.
float coarseGradient(int Step, int Micro, int Param, int64_t I) {
  double U = unitValue(key(uint64_t(Step + 1), uint64_t(Micro + 1), uint64_t(Param), uint64_t(I)));
  return float(std::round(U * 32.0) / 32.0);
}

using GradientFn = float (*)(int Step, int Micro, int Param, int64_t I);

int64_t fullNumel(const atp::ParamPlan &P) { return P.rows * P.cols; }

/// This TP rank's shard of a full fp32 tensor given elementwise.
template <class F> std::vector<float> shardOf(const atp::ParamPlan &P, int TpRank, F &&Full) {
  std::vector<float> All(size_t(fullNumel(P)));
  for (int64_t I = 0; I < fullNumel(P); ++I)
    All[size_t(I)] = Full(I);
  atp::ParamPlan F32 = P;
  F32.dtype = atp::DType::F32;
  std::vector<float> Local(atp::local_nbytes(F32, TpRank) / 4);
  atp::shard_copy(F32, TpRank, reinterpret_cast<const std::byte *>(All.data()),
                  reinterpret_cast<std::byte *>(Local.data()));
  return Local;
}

/// One-rank AdamW in double on full tensors: DeepSpeed's averaging, global norm, clipping, schedule.
struct Reference {
  std::vector<std::vector<double>> W, M, V;
  std::vector<double> Norms;

  Reference(const atp::ModelPlan &Plan, const atp::ZeroPlan &Z) {
    for (int P = 0; P < Plan.num_params; ++P) {
      size_t N = size_t(fullNumel(Plan.params[P]));
      W.emplace_back(N);
      M.emplace_back(N, 0.0);
      V.emplace_back(N, 0.0);
      for (size_t I = 0; I < N; ++I)
        W.back()[I] = initialWeight(P, int64_t(I));
    }
    const atp::AdamWConfig &A = Z.adamw;
    for (int S = 0; S < kSteps; ++S) {
      std::vector<std::vector<double>> G(W.size());
      double Sq = 0;
      for (size_t P = 0; P < W.size(); ++P) {
        G[P].assign(W[P].size(), 0.0);
        for (size_t I = 0; I < W[P].size(); ++I) {
          for (int Mi = 0; Mi < kGlobalMicro; ++Mi)
            G[P][I] += gradient(S, Mi, int(P), int64_t(I));
          G[P][I] /= kGlobalMicro;
          Sq += G[P][I] * G[P][I];
        }
      }
      double Norm = std::sqrt(Sq), Clip = 1.0;
      Norms.push_back(Norm);
      if (Z.gradient_clipping > 0 && (Norm + 1e-6) / Z.gradient_clipping > 1)
        Clip = Z.gradient_clipping / (Norm + 1e-6);
      double Lr = atp::lr_at_step(Z.scheduler, A.lr, S);
      double Bc1 = 1 - std::pow(A.beta1, S + 1), Bc2 = 1 - std::pow(A.beta2, S + 1);
      for (size_t P = 0; P < W.size(); ++P)
        for (size_t I = 0; I < W[P].size(); ++I) {
          double Gi = G[P][I] * Clip;
          double &Mi = M[P][I], &Vi = V[P][I], &Wi = W[P][I];
          Mi = A.beta1 * Mi + (1 - A.beta1) * Gi;
          Vi = A.beta2 * Vi + (1 - A.beta2) * Gi * Gi;
          Wi -= Lr * ((Mi / Bc1) / (std::sqrt(Vi / Bc2) + A.eps) + A.weight_decay * Wi);
        }
    }
  }
};

/// Half: "" (fp32), "fp16" or "bf16".
nlohmann::json overrides(int Dp, int Stage, const std::string &Half = "") {
  nlohmann::json O = {
      {"train_batch_size", kGlobalMicro},
      {"train_micro_batch_size_per_gpu", 1},
      {"gradient_accumulation_steps", kGlobalMicro / Dp},
      {"zero_optimization", {{"stage", Stage}, {"reduce_bucket_size", 50000}}},
      {"bf16", {{"enabled", false}}},
      {"gradient_clipping", 1.0},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.01}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}}}}},
      {"scheduler",
       {{"type", "WarmupDecayLR"},
        {"params",
         {{"warmup_min_lr", 0.001}, {"warmup_max_lr", 0.01}, {"warmup_num_steps", 2}, {"total_num_steps", 10},
          {"warmup_type", "linear"}}}}}};
  if (Half == "fp16")
    O["fp16"] = {{"enabled", true}, {"initial_scale_power", 4}, {"hysteresis", 1}};
  if (Half == "bf16")
    O["bf16"] = {{"enabled", true}};
  return O;
}

struct Context {
  atp::World World;
  atp::Groups Groups;
  atp::Comm *Tp, *Dp, *All;
  int Passed = 0, Failed = 0;

  /// Records a check that must hold on every rank; prints the first failures.
  void expect(bool Ok, const std::string &What) {
    float Mine = Ok ? 1.f : 0.f, Every = 0;
    ATP_CHECK_OK(All->all_reduce(&Mine, &Every, 1, atp::DType::F32, atp::ReduceOp::Min));
    if (!Ok)
      std::fprintf(stderr, "rank %d (tp %d, dp %d): FAILED: %s\n", World.rank, Groups.tp_rank, Groups.dp_rank,
                   What.c_str());
    (Every > 0 ? Passed : Failed) += 1;
  }
};

/// An engine holding initialWeight, each value first passed through Round (default: as it is).
std::unique_ptr<atp::ZeroEngine> makeEngine(Context &C, LoadedPlan &P, LoadedZero &Z, atp::Ops &Ops,
                                            float (*Round)(float) = nullptr) {
  auto E = ATP_CHECK_OK(atp::ZeroEngine::create(P.Plan, Z.Plan, C.Groups.tp_rank, *C.Tp, *C.Dp, Ops));
  for (int I = 0; I < P.Plan.num_params; ++I) {
    std::vector<float> W = shardOf(P.Plan.params[I], C.Groups.tp_rank, [&](int64_t E) {
      const float X = initialWeight(I, E);
      return Round ? Round(X) : X;
    });
    ATP_CHECK_OK(E->load_param(I, W.data(), atp::DType::F32));
  }
  return E;
}

uint16_t to16(bool F16, float X) { return F16 ? atp::float_to_f16(X) : atp::float_to_bf16(X); }
float from16(bool F16, uint16_t X) { return F16 ? atp::f16_to_float(X) : atp::bf16_to_float(X); }

/// One micro-step's backward: every local gradient, in backward order, with its hook. With first writes it
/// asks grad_write and writes or adds as told; SkipParam's gradient is left out (zero), its hook still called.
void backward(atp::ZeroEngine &E, const atp::ModelPlan &Plan, int TpRank, int Step, int Micro, double Scale,
              int PoisonParam = -1, bool FirstWrites = false, int SkipParam = -1, GradientFn Grad = gradient) {
  for (int I = Plan.num_params - 1; I >= 0; --I) {
    if (I == SkipParam) {
      ATP_CHECK_OK(E.grad_ready(I));
      continue;
    }
    const bool Write = FirstWrites && E.grad_write(I) == atp::Write::Overwrite;
    std::vector<float> G = shardOf(Plan.params[I], TpRank, [&](int64_t X) { return Grad(Step, Micro, I, X); });
    if (E.dtype() == atp::DType::F16 || E.dtype() == atp::DType::BF16) { // the host backend's 16-bit gradients
      const bool F16 = E.dtype() == atp::DType::F16;
      auto *Dst = static_cast<uint16_t *>(E.grad(I));
      for (size_t X = 0; X < G.size(); ++X)
        Dst[X] = to16(F16, from16(F16, Dst[X]) + float(G[X] * Scale));
      if (I == PoisonParam)
        Dst[0] = F16 ? 0x7C00 : 0x7F80; // +inf
    } else {
      auto *Dst = static_cast<float *>(E.grad(I));
      for (size_t X = 0; X < G.size(); ++X)
        Dst[X] = Write ? float(G[X] * Scale) : Dst[X] + float(G[X] * Scale);
    }
    ATP_CHECK_OK(E.grad_ready(I));
  }
  ATP_CHECK_OK(E.backward_done());
}

void checkEquivalence(Context &C, const std::string &Family, int Stage) {
  const int TpSize = C.Groups.tp_size, DpSize = C.Groups.dp_size, Gas = kGlobalMicro / DpSize;
  const std::string Tag = Family + " stage " + std::to_string(Stage);
  LoadedPlan P;
  LoadedZero Z;
  std::string Diag = compileTinyZero(Family, TpSize, overrides(DpSize, Stage), P, Z);
  if (!Diag.empty()) {
    C.expect(false, Tag + ": does not compile:\n" + Diag);
    return;
  }
  auto Ops = atp::make_cpu_ops();
  auto E = makeEngine(C, P, Z, *Ops);

  const atp::ZeroLedger &L = E->allocated();
  const LedgerBytes Want = Z.Ledgers.at(size_t(C.Groups.tp_rank));
  C.expect(L.params == Want.Params && L.grads == Want.Grads && L.fp32_master == Want.Fp32Master &&
               L.fp32_grads == Want.Fp32Grads && L.moments == Want.Moments,
           Tag + ": allocated " + std::to_string(L.total()) + " bytes, --emit=memory says " +
               std::to_string(Want.total()));

  Reference Ref(P.Plan, Z.Plan);
  for (int S = 0; S < kSteps; ++S)
    for (int Mi = 0; Mi < Gas; ++Mi) {
      backward(*E, P.Plan, C.Groups.tp_rank, S, C.Groups.dp_rank * Gas + Mi, 1.0);
      atp::StepResult R = ATP_CHECK_OK(E->step());
      if (Mi + 1 < Gas) {
        C.expect(!R.boundary, Tag + ": micro-step " + std::to_string(Mi) + " is not a boundary");
        continue;
      }
      C.expect(R.boundary && R.applied, Tag + ": step " + std::to_string(S) + " applied");
      const double Rel = std::fabs(R.grad_norm - Ref.Norms[size_t(S)]) / Ref.Norms[size_t(S)];
      C.expect(Rel <= 1e-6, Tag + ": step " + std::to_string(S) + " grad norm " + std::to_string(R.grad_norm) +
                                " vs unsharded " + std::to_string(Ref.Norms[size_t(S)]));
    }

  double WorstRel = 0, WorstAbs = 0;
  std::string WorstName;
  for (int I = 0; I < P.Plan.num_params; ++I) {
    std::vector<float> Got(size_t(E->numel(I)));
    ATP_CHECK_OK(E->read_param(I, Got.data()));
    std::vector<float> Want =
        shardOf(P.Plan.params[I], C.Groups.tp_rank, [&](int64_t X) { return float(Ref.W[size_t(I)][size_t(X)]); });
    double Diff = 0, Norm = 0, Abs = 0;
    for (size_t X = 0; X < Got.size(); ++X) {
      Diff += (double(Got[X]) - Want[X]) * (double(Got[X]) - Want[X]);
      Norm += double(Want[X]) * Want[X];
      Abs = std::max(Abs, std::fabs(double(Got[X]) - Want[X]));
    }
    double Rel = Norm > 0 ? std::sqrt(Diff / Norm) : std::sqrt(Diff);
    if (Rel > WorstRel)
      WorstRel = Rel, WorstName = P.Plan.params[I].name;
    WorstAbs = std::max(WorstAbs, Abs);
  }
  C.expect(WorstRel <= 1e-6 && WorstAbs <= 1e-6, Tag + ": weights after " + std::to_string(kSteps) +
                                                     " steps: worst relative error " + std::to_string(WorstRel) +
                                                     " (" + WorstName + "), max abs " + std::to_string(WorstAbs));
  if (C.World.rank == 0)
    std::printf("  %-6s stage %d: worst relative weight error %.2e, max abs %.2e\n", Family.c_str(), Stage, WorstRel,
                WorstAbs);
}

void checkFirstWrites(Context &C, const std::string &Family, int Stage) {
  const int DpSize = C.Groups.dp_size, Gas = kGlobalMicro / DpSize;
  const std::string Tag = Family + " stage " + std::to_string(Stage) + " first writes";
  LoadedPlan P;
  LoadedZero Z;
  std::string Diag = compileTinyZero(Family, C.Groups.tp_size, overrides(DpSize, Stage), P, Z);
  if (!Diag.empty()) {
    C.expect(false, Tag + ": does not compile:\n" + Diag);
    return;
  }
  auto Ops = atp::make_cpu_ops();
  auto Cleared = makeEngine(C, P, Z, *Ops), Written = makeEngine(C, P, Z, *Ops);
  ATP_CHECK_OK(Written->use_first_writes());
  const int N = P.Plan.num_params;
  bool SameNorms = true, Asked = true;
  for (int S = 0; S < kSteps; ++S)
    for (int Mi = 0; Mi < Gas; ++Mi) {
      // no gradient for one parameter in the first micro-step of step 1, and none for another in all of step 2
      const int Skip = S == 1 && Mi == 0 ? 1 : S == 2 ? N - 2 : -1;
      const int Micro = C.Groups.dp_rank * Gas + Mi;
      backward(*Cleared, P.Plan, C.Groups.tp_rank, S, Micro, 1.0, -1, false, Skip);
      backward(*Written, P.Plan, C.Groups.tp_rank, S, Micro, 1.0, -1, true, Skip);
      Asked = Asked && Cleared->grad_write(0) == atp::Write::Accumulate; // without first writes: always
      const atp::StepResult A = ATP_CHECK_OK(Cleared->step()), B = ATP_CHECK_OK(Written->step());
      SameNorms = SameNorms && A.boundary == B.boundary && A.grad_norm == B.grad_norm;
    }
  C.expect(Asked, Tag + ": grad_write is Accumulate without first writes");
  C.expect(SameNorms, Tag + ": the same gradient norms");
  for (int I = 0; I < N; ++I) {
    std::vector<float> A(size_t(Cleared->numel(I))), B(A.size());
    ATP_CHECK_OK(Cleared->read_param(I, A.data()));
    ATP_CHECK_OK(Written->read_param(I, B.data()));
    C.expect(A == B, Tag + ": the same weights of " + P.Plan.params[I].name + " after " + std::to_string(kSteps) +
                         " steps");
  }
  if (Gas > 1) { // switching in the middle of a window is refused
    backward(*Cleared, P.Plan, C.Groups.tp_rank, 0, 0, 1.0);
    ATP_CHECK_OK(Cleared->step());
    const atp::Status Mid = Cleared->use_first_writes();
    C.expect(!Mid.ok() && Mid.message().find("not during an accumulation window") != std::string::npos,
             Tag + ": use_first_writes in a window is an error: " + Mid.message());
  }
}

float roundBf16(float X) { return from16(false, to16(false, X)); }
float roundF16(float X) { return from16(true, to16(true, X)); }

/// A 16-bit engine (bf16, or fp16 with its loss scale) against an fp32 one: from the same 16-bit initial
/// weights and gradients that 16-bit buffers hold exactly (coarseGradient), every step's norm is the same and
/// the fp32 master weights take the same values, so the 16-bit weights are the fp32 engine's rounded to 16 bits,
/// bit for bit. This covers the 16-bit paths of each stage: the fp32 gradients (stage 0: each micro-step's
/// working gradients written or added into them; stage 2: the reduced partition), the working gradients read
/// directly (stage 1), the loss scale's division and the master's copy back to 16 bits.
void checkSixteenBit(Context &C, const std::string &Family, int Stage, const std::string &Half) {
  const int DpSize = C.Groups.dp_size, Gas = kGlobalMicro / DpSize;
  const std::string Tag = Family + " stage " + std::to_string(Stage) + " " + Half;
  LoadedPlan P32, P16;
  LoadedZero Z32, Z16;
  std::string Diag = compileTinyZero(Family, C.Groups.tp_size, overrides(DpSize, Stage), P32, Z32);
  Diag += compileTinyZero(Family, C.Groups.tp_size, overrides(DpSize, Stage, Half), P16, Z16);
  if (!Diag.empty()) {
    C.expect(false, Tag + ": does not compile:\n" + Diag);
    return;
  }
  const bool F16 = Half == "fp16";
  float (*Round)(float) = F16 ? roundF16 : roundBf16;
  auto Ops = atp::make_cpu_ops();
  auto Full = makeEngine(C, P32, Z32, *Ops, Round), Half16 = makeEngine(C, P16, Z16, *Ops, Round);
  const atp::DType Want = F16 ? atp::DType::F16 : atp::DType::BF16;
  C.expect(Full->dtype() == atp::DType::F32 && Half16->dtype() == Want, Tag + ": the engines' dtypes");
  bool SameNorms = true, Applied = true;
  for (int S = 0; S < kSteps; ++S)
    for (int Mi = 0; Mi < Gas; ++Mi) {
      const int Micro = C.Groups.dp_rank * Gas + Mi;
      backward(*Full, P32.Plan, C.Groups.tp_rank, S, Micro, 1.0, -1, false, -1, coarseGradient);
      backward(*Half16, P16.Plan, C.Groups.tp_rank, S, Micro, Half16->loss_scale(), -1, false, -1, coarseGradient);
      const atp::StepResult A = ATP_CHECK_OK(Full->step()), B = ATP_CHECK_OK(Half16->step());
      SameNorms = SameNorms && A.boundary == B.boundary && A.grad_norm == B.grad_norm;
      Applied = Applied && A.applied == B.applied && A.applied == (Mi + 1 == Gas);
    }
  C.expect(Applied, Tag + ": every window's step applied by both");
  C.expect(SameNorms, Tag + ": the same gradient norms");
  for (int I = 0; I < P32.Plan.num_params; ++I) {
    std::vector<float> A(size_t(Full->numel(I)));
    std::vector<uint16_t> B(A.size());
    ATP_CHECK_OK(Full->read_param(I, A.data()));
    ATP_CHECK_OK(Half16->read_param(I, B.data()));
    const std::vector<float> Initial =
        shardOf(P32.Plan.params[I], C.Groups.tp_rank, [&](int64_t X) { return Round(initialWeight(I, X)); });
    size_t Differ = 0, Moved = 0, MovedHalf = 0;
    for (size_t X = 0; X < A.size(); ++X) {
      const uint16_t Rounded = to16(F16, A[X]);
      Differ += B[X] != Rounded;
      Moved += A[X] != Initial[X];
      MovedHalf += Rounded != to16(F16, Initial[X]);
    }
    // the steps moved the weights, and enough to show in 16 bits: the comparison below compares updates
    C.expect(2 * Moved > A.size() && MovedHalf > 0, Tag + ": " + P32.Plan.params[I].name + ": " +
                                                        std::to_string(Moved) + " fp32 and " +
                                                        std::to_string(MovedHalf) + " 16-bit weights moved");
    C.expect(Differ == 0, Tag + ": " + P32.Plan.params[I].name + " after " + std::to_string(kSteps) +
                              " steps: " + std::to_string(Differ) + " of " + std::to_string(A.size()) +
                              " 16-bit weights differ from the fp32 engine's rounded");
  }
}

void checkOverflowSkip(Context &C, int Stage) {
  const int DpSize = C.Groups.dp_size, Gas = kGlobalMicro / DpSize;
  const std::string Tag = "fp16 overflow, stage " + std::to_string(Stage);
  LoadedPlan P;
  LoadedZero Z;
  std::string Diag = compileTinyZero("llama", C.Groups.tp_size, overrides(DpSize, Stage, "fp16"), P, Z);
  if (!Diag.empty()) {
    C.expect(false, Tag + ": does not compile:\n" + Diag);
    return;
  }
  auto Ops = atp::make_cpu_ops();
  auto E = makeEngine(C, P, Z, *Ops);
  C.expect(E->loss_scale() == 16.0, Tag + ": initial scale 2^4");
  std::vector<uint16_t> Before(size_t(E->numel(0))), After(Before.size());
  const int Last = C.World.world_size - 1;
  for (int S = 0; S < 2; ++S) {
    if (S == 1)
      ATP_CHECK_OK(E->read_param(0, Before.data()));
    for (int Mi = 0; Mi < Gas; ++Mi) {
      // step 1: the last rank's last micro-step puts an inf into its gradient of parameter 0
      int Poison = (S == 1 && C.World.rank == Last && Mi + 1 == Gas) ? 0 : -1;
      const double Scale = E->loss_scale() / 64.0; // fp16 gradients of order 1/4 after scaling
      backward(*E, P.Plan, C.Groups.tp_rank, S, C.Groups.dp_rank * Gas + Mi, Scale, Poison);
      atp::StepResult R = ATP_CHECK_OK(E->step());
      if (Mi + 1 == Gas)
        C.expect(R.applied == (S == 0) && R.overflow == (S == 1),
                 Tag + ": step " + std::to_string(S) + (S == 1 ? " skipped on every rank" : " applied"));
    }
  }
  ATP_CHECK_OK(E->read_param(0, After.data()));
  C.expect(Before == After, Tag + ": weights unchanged by the skipped step");
  C.expect(E->loss_scale() == 8.0 && E->steps() == 1, Tag + ": scale halved to 8, one step counted");
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
  C.Tp = Tp.get(), C.Dp = Dp.get(), C.All = All.get();
  if (C.World.rank == 0)
    std::printf("zero_mpi tp=%d dp=%d (GAS %d)\n", C.Groups.tp_size, C.Groups.dp_size, kGlobalMicro / C.Groups.dp_size);

  for (const char *Family : {"llama", "phi3"})
    for (int Stage = 0; Stage <= 2; ++Stage)
      checkEquivalence(C, Family, Stage);
  for (const char *Family : {"llama", "phi3"})
    for (int Stage = 0; Stage <= 2; ++Stage)
      checkFirstWrites(C, Family, Stage);
  for (const char *Half : {"bf16", "fp16"})
    for (int Stage = 0; Stage <= 2; ++Stage)
      checkSixteenBit(C, "llama", Stage, Half);
  for (int Stage = 0; Stage <= 2; ++Stage)
    checkOverflowSkip(C, Stage);

  if (C.World.rank == 0)
    std::printf("zero_mpi tp=%d dp=%d: %d passed, %d failed\n", C.Groups.tp_size, C.Groups.dp_size, C.Passed, C.Failed);
  int Failed = C.Failed;
  Tp.reset(), Dp.reset(), All.reset();
  ATP_CHECK_OK(atp::mpi_finalize());
  return Failed ? 1 : 0;
}
