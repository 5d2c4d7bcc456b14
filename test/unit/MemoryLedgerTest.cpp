//===- MemoryLedgerTest.cpp - tests for --emit=memory's per-GPU bytes ----===//
//
// Model-state bytes of one TP rank on one GPU, against values computed by
// hand. The ZeRO engine keeps a TP rank's Φ parameter elements in a flat
// buffer: each parameter at a multiple of 64 elements, each bucket padded to
// a multiple of the DP size dp; N is that padded size and P = Σ ⌈bucket/dp⌉
// one DP rank's partition. With Adam:
//  - fp32 without ZeRO: 4 (weights) + 4 (grads) + 8 (two moments) = 16 bytes
//    per element of N (the ZeRO paper's accounting, no master copy needed);
//  - 16-bit: 2N weights + 2N grads + per partition element an fp32 master
//    (4), fp32 gradient (4) and two moments (8); stage 0 partitions nothing
//    (P = N). Without gaps and padding (N = Φ, dp divides Φ) this is
//    DeepSpeed's estimate_zero2_model_states_mem_needs, 4Φ + 16Φ/dp;
//  - fp32 under ZeRO 1/2: stage_1_and_2.py still keeps the fp32 partition
//    and its gradient, so 4N + 4N + 16P.
// ZeRO 1 and 2 share stage_1_and_2.py, so their ledgers are the same.
//
//===----------------------------------------------------------------------===//

#include "IR/Builder.h"
#include "IR/Sharding.h"
#include "Report/Reports.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <tuple>

#ifndef AUTOTPC_SPECS_DIR
#error "AUTOTPC_SPECS_DIR must point at the specs/ folder"
#endif

using namespace autotpc;

namespace {

Param param(std::vector<int64_t> Full, PartKind K, int PD) {
  Param P;
  P.Info.Name = "p";
  P.Info.Shape = Full;
  P.Part.Kind = K;
  if (K != PartKind::Replicate) {
    P.Part.Logical = Full;
    P.Part.PartitionDim = PD;
    P.Part.SubSizes = {Full[size_t(PD)]};
  }
  return P;
}

/// tp 3: a column [10, 4] (rows 4, 3, 3 -> 16, 12, 12 elements), a row
/// [4, 6] (2 columns each -> 8), a replicated [5]. Φ = 29 on TP rank 0 and
/// 25 on ranks 1 and 2. Flat layout (backward order, 64-aligned): the
/// replicated [5] at 0, the row at 64, the column at 128; N at dp 1 is 144
/// on rank 0 and 140 on ranks 1 and 2, one bucket (default bucket size).
Module smallModule() {
  Module M;
  M.TpSize = 3;
  M.Params = {param({10, 4}, PartKind::Column, 0), param({4, 6}, PartKind::Row, 1),
              param({5}, PartKind::Replicate, -1)};
  for (Param &P : M.Params)
    computeShards(P, M.TpSize);
  return M;
}

Config config(int64_t Stage, Precision Prec) {
  Config C;
  C.Zero.Stage = Stage;
  C.Prec = Prec;
  return C;
}

struct Bytes {
  int64_t Params, Grads, Master, Fp32Grads, Moments, Total;
};

void expectLedger(const MemoryLedger &L, const Bytes &B) {
  EXPECT_EQ(L.Params, B.Params);
  EXPECT_EQ(L.Grads, B.Grads);
  EXPECT_EQ(L.Fp32Master, B.Master);
  EXPECT_EQ(L.Fp32Grads, B.Fp32Grads);
  EXPECT_EQ(L.Moments, B.Moments);
  EXPECT_EQ(L.total(), B.Total);
}

TEST(MemoryLedgerTest, ElementsPerTpRank) {
  Module M = smallModule();
  Config C = config(0, Precision::FP32);
  EXPECT_EQ(memoryLedger(M, C, 1, 0).Elements, 29);
  EXPECT_EQ(memoryLedger(M, C, 1, 1).Elements, 25);
  EXPECT_EQ(memoryLedger(M, C, 1, 2).Elements, 25);
  // dp 1: N is the flat layout's end, P = N.
  EXPECT_EQ(memoryLedger(M, C, 1, 0).FlatNumel, 144);
  EXPECT_EQ(memoryLedger(M, C, 1, 0).Partition, 144);
  EXPECT_EQ(memoryLedger(M, C, 1, 1).FlatNumel, 140);
  // dp 3, one bucket: rank 0 ⌈144/3⌉ = 48, N = 144; rank 1 ⌈140/3⌉ = 47,
  // N = 141. dp 5, rank 1: 140/5 = 28, N = 140.
  EXPECT_EQ(memoryLedger(M, C, 3, 0).Partition, 48);
  EXPECT_EQ(memoryLedger(M, C, 3, 0).FlatNumel, 144);
  EXPECT_EQ(memoryLedger(M, C, 3, 1).Partition, 47);
  EXPECT_EQ(memoryLedger(M, C, 3, 1).FlatNumel, 141);
  EXPECT_EQ(memoryLedger(M, C, 5, 1).Partition, 28);
  EXPECT_EQ(memoryLedger(M, C, 5, 1).FlatNumel, 140);
}

TEST(MemoryLedgerTest, Zero0) {
  Module M = smallModule();
  for (int64_t Dp : {1, 3}) { // rank 0's N is 144 at both
    SCOPED_TRACE(Dp);
    // fp32: 4*144, 4*144, -, -, 8*144 = 16*144 = 2304.
    expectLedger(memoryLedger(M, config(0, Precision::FP32), Dp, 0), {576, 576, 0, 0, 1152, 2304});
    // bf16: 2*144, 2*144, 4*144, 4*144, 8*144 = 20*144 = 2880.
    expectLedger(memoryLedger(M, config(0, Precision::BF16), Dp, 0), {288, 288, 576, 576, 1152, 2880});
  }
  // fp16 is 16-bit like bf16. Rank 1: N = 140 at dp 1 (20*140 = 2800) and
  // 141 at dp 3 (the engine pads the bucket at every stage; 20*141 = 2820).
  expectLedger(memoryLedger(M, config(0, Precision::FP16), 1, 1), {280, 280, 560, 560, 1120, 2800});
  expectLedger(memoryLedger(M, config(0, Precision::FP16), 3, 1), {282, 282, 564, 564, 1128, 2820});
}

TEST(MemoryLedgerTest, Zero1And2) {
  Module M = smallModule();
  for (int64_t Stage : {1, 2}) {
    SCOPED_TRACE(Stage);
    // Stage 1 reads the working gradients in place: no fp32 gradients (4P fewer bytes); stage 2 has them.
    const int64_t G = Stage == 2 ? 4 : 0; // bytes of fp32 gradient per partition element
    // dp 1: P = N = 144.
    expectLedger(memoryLedger(M, config(Stage, Precision::BF16), 1, 0),
                 {288, 288, 576, G * 144, 1152, 2304 + G * 144});
    expectLedger(memoryLedger(M, config(Stage, Precision::FP32), 1, 0),
                 {576, 576, 576, G * 144, 1152, 2880 + G * 144});
    // dp 3, rank 0: N = 144, P = 48.
    expectLedger(memoryLedger(M, config(Stage, Precision::BF16), 3, 0), {288, 288, 192, G * 48, 384, 1152 + G * 48});
    expectLedger(memoryLedger(M, config(Stage, Precision::FP32), 3, 0), {576, 576, 192, G * 48, 384, 1728 + G * 48});
    // dp 3, rank 1: N = 141, P = 47.
    expectLedger(memoryLedger(M, config(Stage, Precision::BF16), 3, 1), {282, 282, 188, G * 47, 376, 1128 + G * 47});
    expectLedger(memoryLedger(M, config(Stage, Precision::FP32), 3, 1), {564, 564, 188, G * 47, 376, 1692 + G * 47});
  }
}

TEST(MemoryLedgerTest, EveryBucketPaddedOnItsOwn) {
  // reduce_bucket_size 64 on rank 0: [0, 5) alone (the row would make it
  // [0, 72), 72 > 64), [64, 72) alone ([64, 144) is 80), [128, 144). dp 3:
  // pieces 2, 3, 6; padded begins 0, alignUp(6) = 64, alignUp(64 + 9) = 128;
  // N = 128 + 18 = 146, P = 11. bf16 ZeRO 2: 2*146, 2*146, 4*11, 4*11, 8*11.
  Module M = smallModule();
  Config C = config(2, Precision::BF16);
  C.Zero.ReduceBucketSize = 64;
  MemoryLedger L = memoryLedger(M, C, 3, 0);
  EXPECT_EQ(L.FlatNumel, 146);
  EXPECT_EQ(L.Partition, 11);
  expectLedger(L, {292, 292, 44, 44, 88, 760});
}

/// DeepSpeed's estimate_zero2_model_states_mem_needs(total_params=Φ,
/// num_gpus_per_node=N, cpu_offload=False) GPU bytes: 4Φ + int(16Φ/N).
int64_t deepspeedZero2Estimate(int64_t Phi, int64_t N) { return 4 * Phi + 16 * Phi / N; }

TEST(MemoryLedgerTest, SixteenBitZero2IsDeepSpeedEstimateUpToPadding) {
  // tp 2: a column [128, 64] (4096 elements per rank) and a replicated [64]:
  // flat [0, 64) and [64, 4160), no gap, so N = Φ = 4160 (one bucket).
  Module M;
  M.TpSize = 2;
  M.Params = {param({128, 64}, PartKind::Column, 0), param({64}, PartKind::Replicate, -1)};
  for (Param &P : M.Params)
    computeShards(P, M.TpSize);
  for (Precision Prec : {Precision::BF16, Precision::FP16}) {
    // dp divides 4160: exactly DeepSpeed's number. dp 2: 16640 + 33280.
    for (int64_t Dp : {1, 2, 4, 5}) {
      SCOPED_TRACE(Dp);
      MemoryLedger L = memoryLedger(M, config(2, Prec), Dp, 1);
      EXPECT_EQ(L.Elements, 4160);
      EXPECT_EQ(L.total(), deepspeedZero2Estimate(4160, Dp));
    }
    // dp 3 pads the bucket to 4161 (piece 1387): 4*4161 + 16*1387 = 16644 +
    // 22192 = 38836, where DeepSpeed estimates 16640 + 22186 = 38826.
    EXPECT_EQ(memoryLedger(M, config(2, Prec), 3, 1).total(), 38836);
  }
  EXPECT_EQ(deepspeedZero2Estimate(4160, 2), 49920); // 16640 + 33280, by hand
  EXPECT_EQ(deepspeedZero2Estimate(4160, 3), 38826);
}

/// Llama-3.2-1B through the driver's stages (config -> model -> IR). Its
/// published size is 1,235,814,400 parameters (tied embeddings). Per layer:
/// q 2048x2048 and o 2048x2048 (4,194,304 each), k and v 512x2048 (1,048,576
/// each), gate/up/down 8192x2048 (16,777,216 each), two 2048 norms. At tp 2
/// the 60,817,408 matrix elements of a layer halve and the norms, the
/// 128256x2048 embedding (262,668,288) and the final norm stay whole:
/// Φ = 262,668,288 + 2,048 + 16 * (30,408,704 + 4,096) = 749,275,136.
/// Every local tensor is a multiple of 64 elements (so the flat layout has
/// no gaps) and of 2 (so no bucket is padded at dp 2): N = Φ, P = Φ/2.
TEST(MemoryLedgerTest, Llama32_1BAtTp2) {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS(Text);
  DiagEngine Diags(SM, OS);
  std::string Json = std::string(R"({"train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": true},
      "zero_optimization": {"stage": 2}, "model": ")") +
                     AUTOTPC_SPECS_DIR + R"(/models/Llama-3.2-1B.json",
      "tensor_parallel": {"autotp_size": 2, "preset_model": "llama"}})";
  unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Json, "ds.json"), llvm::SMLoc());
  std::vector<std::unique_ptr<JsonDoc>> Docs;
  Docs.push_back(JsonDoc::parse(Diags, ID));
  ASSERT_TRUE(Docs.back()) << OS.str();
  const JsonDoc &Doc = *Docs.back();
  Config C;
  ASSERT_TRUE(parseConfig(Doc, Diags, C)) << OS.str();
  std::optional<LoadedModel> Model = loadModel(C, Doc, "", Diags, Docs);
  ASSERT_TRUE(Model) << OS.str();
  std::optional<Module> M = buildModule(C, *Model, Diags);
  ASSERT_TRUE(M) << OS.str();
  ASSERT_EQ(Diags.errorCount(), 0u) << OS.str();

  int64_t Total = 0;
  for (const Param &P : M->Params) {
    int64_t N = 1;
    for (int64_t D : P.Info.Shape)
      N *= D;
    Total += N;
  }
  EXPECT_EQ(Total, 1235814400);
  const int64_t Phi = 749275136;
  for (size_t Rank : {0, 1}) {
    MemoryLedger L = memoryLedger(*M, C, 1, Rank);
    EXPECT_EQ(L.Elements, Phi);
    EXPECT_EQ(L.FlatNumel, Phi);
    EXPECT_EQ(L.total(), 20 * Phi); // stage 2 at dp 1 = 4Φ + 16Φ
    // dp 2 (world 4): P = Φ/2 exactly; 4Φ + 8Φ = 12Φ = 8,991,301,632 bytes.
    MemoryLedger L2 = memoryLedger(*M, C, 2, Rank);
    EXPECT_EQ(L2.FlatNumel, Phi);
    EXPECT_EQ(L2.Partition, Phi / 2);
    EXPECT_EQ(L2.total(), int64_t(8991301632));
    EXPECT_EQ(L2.total(), deepspeedZero2Estimate(Phi, 2));
  }
}

} // namespace
