//===- MemoryLedgerTest.cpp - tests for --emit=memory's per-GPU bytes ----===//
//
// Model-state bytes of one TP rank on one GPU, against values computed by
// hand. With Φ elements per TP rank, N data-parallel ranks, P = ⌈Φ/N⌉ and
// Adam:
//  - fp32 without ZeRO: 4 (weights) + 4 (grads) + 8 (two moments) = 16 bytes
//    per element (the ZeRO paper's accounting, no master copy needed);
//  - 16-bit: DeepSpeed's estimate_zero2_model_states_mem_needs (no offload)
//    is 4Φ + 16Φ/N: 2Φ weights + 2Φ grads + per partition element an fp32
//    master (4), fp32 gradient (4) and two moments (8); stage 0 is N = 1;
//  - fp32 under ZeRO 1/2: stage_1_and_2.py still keeps the fp32 partition
//    and its gradient, so 4Φ + 4Φ + 16P.
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
/// 25 on ranks 1 and 2.
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
  // ⌈29/3⌉ = 10, ⌈25/3⌉ = 9, 25/5 = 5.
  EXPECT_EQ(memoryLedger(M, C, 3, 0).Partition, 10);
  EXPECT_EQ(memoryLedger(M, C, 3, 1).Partition, 9);
  EXPECT_EQ(memoryLedger(M, C, 5, 1).Partition, 5);
  EXPECT_EQ(memoryLedger(M, C, 1, 0).Partition, 29);
}

TEST(MemoryLedgerTest, Zero0) {
  Module M = smallModule();
  for (int64_t Dp : {1, 3}) { // stage 0 partitions nothing: dp does not matter
    SCOPED_TRACE(Dp);
    // fp32, Φ = 29: 4*29, 4*29, -, -, 8*29 = 16*29 = 464.
    expectLedger(memoryLedger(M, config(0, Precision::FP32), Dp, 0), {116, 116, 0, 0, 232, 464});
    // bf16, Φ = 29: 2*29, 2*29, 4*29, 4*29, 8*29 = 20*29 = 580.
    expectLedger(memoryLedger(M, config(0, Precision::BF16), Dp, 0), {58, 58, 116, 116, 232, 580});
    // fp16 is 16-bit like bf16; rank 1 has Φ = 25: 20*25 = 500.
    expectLedger(memoryLedger(M, config(0, Precision::FP16), Dp, 1), {50, 50, 100, 100, 200, 500});
  }
}

TEST(MemoryLedgerTest, Zero1And2) {
  Module M = smallModule();
  for (int64_t Stage : {1, 2}) {
    SCOPED_TRACE(Stage);
    // dp 1: P = Φ = 29.
    expectLedger(memoryLedger(M, config(Stage, Precision::BF16), 1, 0), {58, 58, 116, 116, 232, 580});
    expectLedger(memoryLedger(M, config(Stage, Precision::FP32), 1, 0), {116, 116, 116, 116, 232, 696});
    // dp 3, rank 0: P = ⌈29/3⌉ = 10 (DeepSpeed pads the flat buffer to a multiple of dp).
    expectLedger(memoryLedger(M, config(Stage, Precision::BF16), 3, 0), {58, 58, 40, 40, 80, 276});
    expectLedger(memoryLedger(M, config(Stage, Precision::FP32), 3, 0), {116, 116, 40, 40, 80, 392});
    // dp 3, rank 1: Φ = 25, P = 9.
    expectLedger(memoryLedger(M, config(Stage, Precision::BF16), 3, 1), {50, 50, 36, 36, 72, 244});
    expectLedger(memoryLedger(M, config(Stage, Precision::FP32), 3, 1), {100, 100, 36, 36, 72, 344});
  }
}

/// DeepSpeed's estimate_zero2_model_states_mem_needs(total_params=Φ,
/// num_gpus_per_node=N, cpu_offload=False) GPU bytes.
int64_t deepspeedZero2Estimate(int64_t Phi, int64_t N) { return 4 * Phi + 16 * Phi / N; }

TEST(MemoryLedgerTest, SixteenBitZero2MatchesDeepSpeedEstimate) {
  Module M = smallModule();
  // Only where N divides Φ (otherwise DeepSpeed's int() floors and its
  // buffers are padded up): Φ = 25 on rank 1, Φ = 29 on rank 0.
  for (auto [Rank, Phi, N] :
       {std::tuple<size_t, int64_t, int64_t>{1, 25, 1}, {1, 25, 5}, {1, 25, 25}, {0, 29, 1}, {0, 29, 29}}) {
    SCOPED_TRACE("rank " + std::to_string(Rank) + " N " + std::to_string(N));
    for (Precision Prec : {Precision::BF16, Precision::FP16}) {
      MemoryLedger L = memoryLedger(M, config(2, Prec), N, Rank);
      EXPECT_EQ(L.Elements, Phi);
      EXPECT_EQ(L.total(), deepspeedZero2Estimate(Phi, N));
    }
  }
  EXPECT_EQ(deepspeedZero2Estimate(25, 5), 180); // 100 + 80, by hand
}

/// Llama-3.2-1B through the driver's stages (config -> model -> IR). Its
/// published size is 1,235,814,400 parameters (tied embeddings). Per layer:
/// q 2048x2048 and o 2048x2048 (4,194,304 each), k and v 512x2048 (1,048,576
/// each), gate/up/down 8192x2048 (16,777,216 each), two 2048 norms. At tp 2
/// the 60,817,408 matrix elements of a layer halve and the norms, the
/// 128256x2048 embedding (262,668,288) and the final norm stay whole:
/// Φ = 262,668,288 + 2,048 + 16 * (30,408,704 + 4,096) = 749,275,136.
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
    EXPECT_EQ(L.total(), 20 * Phi); // stage 2 at dp 1 = 4Φ + 16Φ
    // dp 2 (world 4): P = Φ/2 exactly; 4Φ + 8Φ = 12Φ = 8,991,301,632 bytes.
    MemoryLedger L2 = memoryLedger(*M, C, 2, Rank);
    EXPECT_EQ(L2.Partition, Phi / 2);
    EXPECT_EQ(L2.total(), int64_t(8991301632));
    EXPECT_EQ(L2.total(), deepspeedZero2Estimate(Phi, 2));
  }
}

} // namespace
