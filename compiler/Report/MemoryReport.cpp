//===- MemoryReport.cpp - --emit=memory: model-state bytes per GPU -------===//
//
// Φ is the number of parameter elements one TP rank holds (its shards plus
// every replicated parameter), N the data-parallel size and P = ⌈Φ/N⌉ one DP
// rank's ZeRO partition (DeepSpeed pads its flat buffers to a multiple of
// N). With b bytes per parameter (2 for bf16/fp16, 4 for fp32):
//
//   item            stage 0        stage 1 and 2
//   parameters      bΦ             bΦ
//   gradients       bΦ             bΦ
//   fp32 master     4Φ if b = 2    4P
//   fp32 gradients  4Φ if b = 2    4P
//   Adam moments    8Φ             8P
//
// For 16-bit training under ZeRO 1/2 this is 4Φ + 16Φ/N, the formula of
// DeepSpeed's estimate_zero2_model_states_mem_needs without offload (which
// DeepSpeed's stage 1 shares: both are stage_1_and_2.py); stage 0 is its
// N = 1 value. Activations and communication buckets are not included.
//
//===----------------------------------------------------------------------===//
#include "Report/Reports.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/MathExtras.h"

using namespace autotpc;

using autotpc::saturatingAdd;
static int64_t mul(int64_t A, int64_t B) { return saturatingMul(A, B); }
static int64_t add(int64_t A, int64_t B) { return saturatingAdd(A, B); }

int64_t MemoryLedger::total() const {
  return add(add(add(add(Params, Grads), Fp32Master), Fp32Grads), Moments);
}

MemoryLedger autotpc::memoryLedger(const Module &M, const Config &C, int64_t Dp, size_t TpRank) {
  MemoryLedger L;
  for (const Param &P : M.Params) {
    int64_t N = 1;
    for (int64_t D : P.Shards[TpRank].Shape)
      N = mul(N, D);
    L.Elements = add(L.Elements, N);
  }
  const int64_t B = C.Prec == Precision::FP32 ? 4 : 2;
  const bool Partitioned = C.Zero.Stage >= 1;
  L.Partition = L.Elements / Dp + (L.Elements % Dp != 0);
  const int64_t Opt = Partitioned ? L.Partition : L.Elements;
  L.Params = mul(B, L.Elements);
  L.Grads = mul(B, L.Elements);
  L.Fp32Master = (Partitioned || B == 2) ? mul(4, Opt) : 0;
  L.Fp32Grads = (Partitioned || B == 2) ? mul(4, Opt) : 0;
  L.Moments = mul(8, Opt);
  return L;
}

static std::string gib(int64_t Bytes) {
  std::string S;
  llvm::raw_string_ostream OS(S);
  OS << llvm::format("%.2f GiB", double(Bytes) / double(1LL << 30));
  return OS.str();
}

void autotpc::printMemory(const Module &M, const Config &C, const Topology &Topo, llvm::raw_ostream &OS) {
  int64_t Dp = Topo.Dp.value_or(1);
  OS << "// autotpc memory report of " << M.ConfigPath << "\n";
  OS << "memory tp_size=" << M.TpSize << " dp=" << Dp;
  if (Topo.World)
    OS << " world=" << *Topo.World << (Topo.WorldFromFlag ? " (--world-size)" : " (from the batch keys)");
  else
    OS << " world=unknown (dp=1 assumed; pass --world-size N)";
  OS << " zero_stage=" << C.Zero.Stage << " precision=" << precisionName(C.Prec)
     << " optimizer=" << (C.Optimizer ? C.Optimizer->Type : std::string("Adam (assumed)")) << "\n";
  OS << "formula: phi = parameter elements of a TP rank, P = ceil(phi / dp), b = "
     << (C.Prec == Precision::FP32 ? 4 : 2) << " bytes\n";
  if (C.Zero.Stage >= 1)
    OS << "  parameters b*phi + gradients b*phi + fp32 master 4*P + fp32 gradients 4*P + Adam moments 8*P\n";
  else if (C.Prec == Precision::FP32)
    OS << "  parameters b*phi + gradients b*phi + Adam moments 8*phi\n";
  else
    OS << "  parameters b*phi + gradients b*phi + fp32 master 4*phi + fp32 gradients 4*phi + Adam moments 8*phi\n";
  OS << "tp_rank  phi  parameters  gradients  fp32_master  fp32_gradients  adam_moments  total_bytes  total\n";
  int64_t Max = 0, Sum = 0;
  for (int64_t R = 0; R < M.TpSize; ++R) {
    MemoryLedger L = memoryLedger(M, C, Dp, size_t(R));
    OS << R << "  " << L.Elements << "  " << L.Params << "  " << L.Grads << "  " << L.Fp32Master << "  "
       << L.Fp32Grads << "  " << L.Moments << "  " << L.total() << "  " << gib(L.total()) << "\n";
    Max = std::max(Max, L.total());
    Sum = add(Sum, L.total());
  }
  OS << "per GPU (largest TP rank): " << Max << " bytes (" << gib(Max) << ")\n";
  OS << "all " << mul(M.TpSize, Dp) << " GPUs: " << mul(Sum, Dp) << " bytes (" << gib(mul(Sum, Dp)) << ")\n";
}
