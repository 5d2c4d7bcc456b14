//===- RoundTripTest.cpp - HF -> TP shards -> HF, exact, for every family -===//
//
// For each tiny model of specs/tiny/ (every preset family) at TP 1, 2, 4 and
// 8: compile the spec in process, load the plan tables that plan.cpp would
// state, write a random HF checkpoint of the model's inventory, shard it,
// consolidate it and compare every tensor byte for byte; load_sharded of
// every rank must equal that rank's shard file. Bad inputs get a clear error
// and leave no output. Shard files are the same bytes whether the kernel
// copies every run (copy_file_range), none, or only the long ones.
//
//===----------------------------------------------------------------------===//
#include "PlanLoader.h"

#include "atp/atomic_file.h"
#include "atp/checkpoint_tools.h"
#include "atp/safetensors.h"
#include "atp/safetensors_writer.h"

#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>

using namespace autotpc;

namespace {

/// A fresh temporary folder.
std::string tempDir(const std::string &Tag) {
  llvm::SmallString<128> Path;
  EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("autotpc-roundtrip-" + Tag, Path));
  return std::string(Path.str());
}

/// Writes a checkpoint of the plan's full tensors with seeded random bytes.
void writeCheckpoint(const atp::ModelPlan &Plan, const std::string &Path, uint64_t Seed,
                     const std::string &Skip = "") {
  std::vector<atp::TensorDecl> Decls;
  for (int I = 0; I < Plan.num_params; ++I)
    if (Skip != Plan.params[I].name)
      Decls.push_back({Plan.params[I].name, Plan.params[I].dtype,
                       {Plan.params[I].shape, Plan.params[I].shape + Plan.params[I].ndim}});
  auto W = atp::SafetensorsWriter::create(Path, Decls);
  ASSERT_TRUE(W.ok()) << W.status().message();
  std::mt19937_64 Rng(Seed);
  for (const atp::TensorDecl &D : Decls) {
    std::vector<std::byte> Bytes(*atp::tensor_nbytes(D.dtype, D.shape));
    for (std::byte &B : Bytes)
      B = std::byte(Rng());
    ASSERT_TRUE(W->write(D.name, Bytes.data(), Bytes.size()).ok());
  }
  ASSERT_TRUE(W->commit().ok());
}

void expectSameTensors(const std::string &A, const std::string &B) {
  auto CA = atp::Checkpoint::open(A), CB = atp::Checkpoint::open(B);
  ASSERT_TRUE(CA.ok()) << CA.status().message();
  ASSERT_TRUE(CB.ok()) << CB.status().message();
  ASSERT_EQ(CA->size(), CB->size());
  for (const atp::TensorInfo *T : CA->tensors()) {
    const atp::TensorInfo *U = CB->find(T->name);
    ASSERT_NE(U, nullptr) << T->name;
    ASSERT_EQ(T->shape, U->shape) << T->name;
    ASSERT_EQ(T->dtype, U->dtype) << T->name;
    ASSERT_EQ(T->nbytes(), U->nbytes()) << T->name;
    ASSERT_EQ(0, std::memcmp(T->data, U->data, T->nbytes())) << T->name << " differs after the round trip";
  }
}

class RoundTrip : public ::testing::TestWithParam<std::tuple<const char *, int>> {};

TEST_P(RoundTrip, ShardConsolidateIsExactAndLoadShardedMatches) {
  auto [Family, Tp] = GetParam();
  LoadedPlan P;
  ASSERT_EQ(compileTiny(Family, Tp, P), "");
  std::string Dir = tempDir(std::string(Family) + "-tp" + std::to_string(Tp));
  std::string Hf = Dir + "/model.safetensors", Shards = Dir + "/shards", Back = Dir + "/back";
  writeCheckpoint(P.Plan, Hf, 1234 + Tp);
  atp::Status S = atp::shard_checkpoint(P.Plan, Hf, Shards);
  ASSERT_TRUE(S.ok()) << S.message();
  // A small shard bound makes consolidate write an index and several files.
  S = atp::consolidate_checkpoint(P.Plan, Shards, Back, 4096);
  ASSERT_TRUE(S.ok()) << S.message();
  expectSameTensors(Hf, Back);
  for (int R = 0; R < Tp; ++R) {
    auto Local = atp::load_sharded(P.Plan, R, Hf);
    ASSERT_TRUE(Local.ok()) << Local.status().message();
    auto File = atp::SafetensorsFile::open(Shards + "/" + atp::shard_file_name(R, Tp));
    ASSERT_TRUE(File.ok());
    for (int I = 0; I < P.Plan.num_params; ++I) {
      const atp::TensorInfo *T = File->find(P.Plan.params[I].name);
      ASSERT_NE(T, nullptr);
      ASSERT_EQ((*Local)[size_t(I)].nbytes(), T->nbytes());
      ASSERT_EQ(0, std::memcmp((*Local)[size_t(I)].data(), T->data, T->nbytes()))
          << P.Plan.params[I].name << " rank " << R;
    }
  }
  llvm::sys::fs::remove_directories(Dir);
}

INSTANTIATE_TEST_SUITE_P(Families, RoundTrip,
                         ::testing::Combine(::testing::ValuesIn(TinyFamilies), ::testing::Values(1, 2, 4, 8)),
                         [](const auto &Info) {
                           return std::string(std::get<0>(Info.param)) + "_tp" +
                                  std::to_string(std::get<1>(Info.param));
                         });

std::string fileBytes(const std::string &Path) {
  std::ifstream In(Path, std::ios::binary);
  EXPECT_TRUE(In.good()) << Path;
  return std::string(std::istreambuf_iterator<char>(In), std::istreambuf_iterator<char>());
}

TEST(RoundTripKernelCopy, EveryRunCopiedInTheKernelOrReadAndWrittenGivesTheSameShards) {
  // Tiny tensors are all below the 256 KiB from which shard copies in the kernel; a bound of 1 byte
  // sends every run (row splits' bands, biases, norms) through copy_file_range, and with the kernel
  // copy switched off through its read/write fallback.
  for (const char *Family : TinyFamilies) {
    for (int Tp : {2, 4}) {
      LoadedPlan P;
      ASSERT_EQ(compileTiny(Family, Tp, P), "");
      std::string Dir = tempDir(std::string("kcopy-") + Family + "-tp" + std::to_string(Tp));
      writeCheckpoint(P.Plan, Dir + "/model.safetensors", 77 + Tp);
      ASSERT_TRUE(atp::shard_checkpoint(P.Plan, Dir + "/model.safetensors", Dir + "/default").ok());
      atp::set_kernel_copy_min_bytes(1);
      atp::Status Kernel = atp::shard_checkpoint(P.Plan, Dir + "/model.safetensors", Dir + "/kernel");
      atp::AtomicFile::set_kernel_copy(false);
      atp::Status Fallback = atp::shard_checkpoint(P.Plan, Dir + "/model.safetensors", Dir + "/fallback");
      atp::AtomicFile::set_kernel_copy(true);
      atp::set_kernel_copy_min_bytes(256u << 10);
      ASSERT_TRUE(Kernel.ok()) << Kernel.message();
      ASSERT_TRUE(Fallback.ok()) << Fallback.message();
      for (int R = 0; R < Tp; ++R) {
        std::string Name = "/" + atp::shard_file_name(R, Tp);
        std::string Expect = fileBytes(Dir + "/default" + Name);
        ASSERT_GT(Expect.size(), 8u);
        EXPECT_TRUE(fileBytes(Dir + "/kernel" + Name) == Expect) << Family << " TP " << Tp << Name;
        EXPECT_TRUE(fileBytes(Dir + "/fallback" + Name) == Expect) << Family << " TP " << Tp << Name;
      }
      llvm::sys::fs::remove_directories(Dir);
    }
  }
}

TEST(RoundTripErrors, MissingTensorIsNamedAndNothingIsWritten) {
  LoadedPlan P;
  ASSERT_EQ(compileTiny("llama", 2, P), "");
  std::string Dir = tempDir("missing");
  writeCheckpoint(P.Plan, Dir + "/model.safetensors", 7, "model.norm.weight");
  atp::Status S = atp::shard_checkpoint(P.Plan, Dir + "/model.safetensors", Dir + "/shards");
  ASSERT_FALSE(S.ok());
  EXPECT_NE(S.message().find("model.norm.weight"), std::string::npos) << S.message();
  EXPECT_FALSE(llvm::sys::fs::exists(Dir + "/shards/" + atp::shard_file_name(0, 2)));
  llvm::sys::fs::remove_directories(Dir);
}

TEST(RoundTripErrors, ShardsOfAnotherPlanAreRefused) {
  LoadedPlan Two, Four;
  ASSERT_EQ(compileTiny("llama", 2, Two), "");
  ASSERT_EQ(compileTiny("llama", 4, Four), "");
  std::string Dir = tempDir("fingerprint");
  writeCheckpoint(Two.Plan, Dir + "/model.safetensors", 9);
  ASSERT_TRUE(atp::shard_checkpoint(Two.Plan, Dir + "/model.safetensors", Dir + "/shards").ok());
  // Same TP size, another plan: rename nothing, just use a different fingerprint.
  std::string Other = "0123456789abcdef";
  atp::ModelPlan Forged = Two.Plan;
  Forged.fingerprint = Other.c_str();
  atp::Status S = atp::consolidate_checkpoint(Forged, Dir + "/shards", Dir + "/back.safetensors");
  ASSERT_FALSE(S.ok());
  EXPECT_NE(S.message().find("tp_rank_00_of_02.safetensors"), std::string::npos) << S.message();
  EXPECT_NE(S.message().find(Two.Fingerprint), std::string::npos) << S.message();
  EXPECT_FALSE(llvm::sys::fs::exists(Dir + "/back.safetensors"));
  EXPECT_NE(Two.Fingerprint, Four.Fingerprint);
  llvm::sys::fs::remove_directories(Dir);
}

} // namespace
