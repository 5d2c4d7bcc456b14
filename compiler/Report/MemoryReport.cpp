//===- MemoryReport.cpp - --emit=memory: model-state bytes per GPU -------===//
//
// Φ is the number of parameter elements one TP rank holds (its shards plus
// every replicated parameter). The ZeRO engine keeps them in flat buffers
// (Lower/ZeroLayout.h): every parameter starts at a multiple of 64 elements
// and every gradient bucket is padded to a multiple of the data-parallel
// size dp. N is that padded flat size and P = Σ_b ⌈len_b / dp⌉ one DP rank's
// partition. With b bytes per element (2 for bf16/fp16, 4 for fp32):
//
//   item            stage 0               stage 1 and 2
//   parameters      bN                    bN
//   gradients       bN                    bN
//   fp32 master     4N if b = 2, else 0   4P
//   fp32 gradients  4N if b = 2, else 0   0 (stage 1), 4P (stage 2)
//   Adam moments    8N                    8P
//
// These are the bytes the engine allocates (atp::ZeroEngine::allocated()).
// Up to alignment and padding (N ≈ Φ, P ≈ Φ/dp), 16-bit training under ZeRO
// 2 is 4Φ + 16Φ/dp, the formula of DeepSpeed's
// estimate_zero2_model_states_mem_needs without offload (which DeepSpeed's
// stage 1 shares: both are stage_1_and_2.py); stage 0 is its dp = 1 value.
// Our stage 1 is 4P less: its optimizer reads the working gradients in place
// (an exact widening), so it keeps no fp32 gradients.
// With the decoder's constants, the activations of one micro-batch follow
// (runtime/include/atp/decoder_memory.h, the rule the trainer's decoder
// allocates by): per layer, all layers, the LM head's logits, backward's
// scratch. Communication scratch is not included.
//
//===----------------------------------------------------------------------===//
#include "Report/Reports.h"

#include "atp/decoder_memory.h"

#include "llvm/Support/Format.h"

using namespace autotpc;

static int64_t mul(int64_t A, int64_t B) { return saturatingMul(A, B); }
static int64_t add(int64_t A, int64_t B) { return saturatingAdd(A, B); }

int64_t MemoryLedger::total() const {
  return add(add(add(add(Params, Grads), Fp32Master), Fp32Grads), Moments);
}

MemoryLedger autotpc::memoryLedger(const ZeroRankLayout &Layout, const Config &C, int64_t Dp) {
  MemoryLedger L;
  const ZeroPadded Pad = zeroPadded(Layout, Dp);
  L.Elements = Layout.Phi;
  L.FlatNumel = Pad.FlatNumel;
  L.Partition = Pad.PartitionNumel;
  const int64_t B = C.Prec == Precision::FP32 ? 4 : 2;
  const bool Partitioned = C.Zero.Stage >= 1;
  const int64_t Opt = Partitioned ? L.Partition : L.FlatNumel;
  const bool SeparateFp32 = Partitioned || B == 2; // fp32 at stage 0 updates the working buffers in place
  L.Params = mul(B, L.FlatNumel);
  L.Grads = mul(B, L.FlatNumel);
  L.Fp32Master = SeparateFp32 ? mul(4, Opt) : 0;
  // Stage 1 reads the working gradients in place (zero_engine.cpp): fp32 gradients only at stages 0 and 2.
  L.Fp32Grads = SeparateFp32 && C.Zero.Stage != 1 ? mul(4, Opt) : 0;
  L.Moments = mul(8, Opt);
  return L;
}

MemoryLedger autotpc::memoryLedger(const Module &M, const Config &C, int64_t Dp, size_t TpRank) {
  return memoryLedger(zeroRankLayout(M, C.Zero.ReduceBucketSize, TpRank), C, Dp);
}

static std::string gib(int64_t Bytes) {
  std::string S;
  llvm::raw_string_ostream OS(S);
  OS << llvm::format("%.2f GiB", double(Bytes) / double(1LL << 30));
  return OS.str();
}

/// The activations of one micro-batch on the largest TP rank (every rank has the same shares: the decoder
/// needs even splits); returns their total bytes.
static int64_t printActivations(const Config &C, const DecoderDesc &D, int64_t Seq, llvm::raw_ostream &OS) {
  const int64_t Mb = C.MicroBatch.Value.value_or(1);
  const int64_t E = C.Prec == Precision::FP32 ? 4 : 2, Tokens = saturatingMul(Mb, Seq);
  atp::DecoderMemorySizes Sizes;
  Sizes.hidden = D.Hidden, Sizes.layers = D.Layers, Sizes.vocab = D.Vocab;
  Sizes.local_heads = D.LocalHeads, Sizes.local_kv_heads = D.LocalKVHeads, Sizes.head_dim = D.HeadDim;
  Sizes.local_ffn = D.LocalFfn, Sizes.rotary_dim = D.HeadDim;
  Sizes.recompute = D.Recompute;
  const atp::DecoderMemory A = atp::decoder_memory(Sizes, Tokens, Seq, E, 4);
  OS << "activations of one micro-batch: " << Mb << " x " << Seq << " tokens"
     << (C.MicroBatch.Value ? "" : " (train_micro_batch_size_per_gpu not set: 1 assumed)")
     << " (--seq; train's default: max_position_embeddings, at most 1024), " << E << "-byte elements, kept for "
     << "backward (runtime/include/atp/decoder_memory.h)"
     << (D.Recompute ? "; activation_checkpointing: every layer's input, one layer's buffers" : "") << "\n";
  OS << "  per_layer  layers  lm_head_and_final_norm  backward_scratch  total_bytes  total\n";
  OS << "  " << A.per_layer << "  " << A.layers << "  " << A.head << "  " << A.scratch << "  " << A.total << "  "
     << gib(A.total) << "\n";
  return A.total;
}

/// BF16 attention on CUDA runs its backward on cuDNN where it can (runtime/src/kernels_cuda_sdpa.cpp: head_dim a
/// multiple of 8 up to 128, no sliding window), whose deterministic graph asks for a transient workspace of 2
/// bytes a score, the sequence padded to 64 as cudnn-frontend sizes it. It is not a decoder buffer, so it stays out
/// of the totals; the runtime runs it in whole batch rows within 1/32 of the device's memory.
static void printCudnnWorkspace(const Config &C, const DecoderDesc &D, int64_t Seq, llvm::raw_ostream &OS) {
  if (C.Prec != Precision::BF16 || D.HeadDim % 8 != 0 || D.HeadDim > 128 || D.SlidingWindow > 0)
    return;
  const int64_t Mb = C.MicroBatch.Value.value_or(1), Padded = (Seq + 63) / 64 * 64;
  const int64_t Bytes = mul(mul(mul(Mb, D.LocalHeads), mul(Padded, Padded)), 2);
  OS << "on CUDA with cuDNN: the attention backward also takes a transient workspace of 2 bytes a score, " << Mb
     << " x " << D.LocalHeads << " heads x " << Padded << "^2 = " << Bytes << " bytes (" << gib(Bytes)
     << "), not in the totals; it runs in whole batch rows of at most 1/32 of the device's memory "
     << "(ATP_CUDNN_WORKSPACE_LIMIT sets another limit)\n";
}

void autotpc::printMemory(const Module &M, const Config &C, const Topology &Topo, const DecoderDesc *Dec, int64_t Seq,
                          llvm::raw_ostream &OS) {
  int64_t Dp = Topo.Dp.value_or(1);
  const bool SixteenBit = C.Prec != Precision::FP32;
  OS << "// autotpc memory report of " << M.ConfigPath << "\n";
  OS << "memory tp_size=" << M.TpSize << " dp=" << Dp;
  if (Topo.World)
    OS << " world=" << *Topo.World << (Topo.WorldFromFlag ? " (--world-size)" : " (from the batch keys)");
  else
    OS << " world=unknown (dp=1 assumed; pass --world-size N)";
  OS << " zero_stage=" << C.Zero.Stage << " precision=" << precisionName(C.Prec)
     << " optimizer=" << (C.Optimizer ? C.Optimizer->Type : std::string("Adam (assumed)")) << "\n";
  OS << "formula: phi = parameter elements of a TP rank; N = its flat buffer (each parameter aligned to "
     << FlatAlign << " elements, each bucket padded to a multiple of dp); P = one DP rank's partition (the sum "
     << "over buckets of ceil(bucket / dp)); b = " << (SixteenBit ? 2 : 4) << " bytes\n";
  if (C.Zero.Stage == 1) // the optimizer reads the working gradients in place
    OS << "  parameters b*N + gradients b*N + fp32 master 4*P + Adam moments 8*P (stage 1: no fp32 gradients)\n";
  else if (C.Zero.Stage >= 2)
    OS << "  parameters b*N + gradients b*N + fp32 master 4*P + fp32 gradients 4*P + Adam moments 8*P\n";
  else if (!SixteenBit)
    OS << "  parameters b*N + gradients b*N + Adam moments 8*N\n";
  else
    OS << "  parameters b*N + gradients b*N + fp32 master 4*N + fp32 gradients 4*N + Adam moments 8*N\n";
  if (SixteenBit && C.Zero.Stage == 1)
    OS << "  = 4*phi + 12*phi/dp up to alignment and padding: DeepSpeed's estimate_zero2_model_states_mem_needs "
          "(4*phi + 16*phi/dp) less the fp32 gradients\n";
  else if (SixteenBit)
    OS << "  = 4*phi + 16*phi/" << (C.Zero.Stage >= 1 ? "dp" : "1")
       << " up to alignment and padding: DeepSpeed's estimate_zero2_model_states_mem_needs"
       << (C.Zero.Stage >= 1 ? "" : " at dp = 1") << "\n";
  OS << "tp_rank  phi  N  P  parameters  gradients  fp32_master  fp32_gradients  adam_moments  total_bytes  total\n";
  int64_t Max = 0, Sum = 0;
  for (int64_t R = 0; R < M.TpSize; ++R) {
    MemoryLedger L = memoryLedger(M, C, Dp, size_t(R));
    OS << R << "  " << L.Elements << "  " << L.FlatNumel << "  " << L.Partition << "  " << L.Params << "  "
       << L.Grads << "  " << L.Fp32Master << "  " << L.Fp32Grads << "  " << L.Moments << "  " << L.total() << "  "
       << gib(L.total()) << "\n";
    Max = std::max(Max, L.total());
    Sum = add(Sum, L.total());
  }
  OS << "per GPU (largest TP rank): " << Max << " bytes (" << gib(Max) << ")\n";
  OS << "all " << mul(M.TpSize, Dp) << " GPUs: " << mul(Sum, Dp) << " bytes (" << gib(mul(Sum, Dp)) << ")\n";
  if (Dec) {
    const int64_t Act = printActivations(C, *Dec, Seq, OS);
    OS << "per GPU with activations (largest TP rank): " << add(Max, Act) << " bytes (" << gib(add(Max, Act))
       << ")\n";
    printCudnnWorkspace(C, *Dec, Seq, OS);
  }
}
