//===- RoundTripTest.cpp - HF -> TP shards -> HF, exact, for every family -===//
//
// For each tiny model of specs/tiny/ (every preset family) at TP 1, 2, 4 and
// 8: compile the spec in process, load the plan tables that plan.cpp would
// state, write a random HF checkpoint of the model's inventory, shard it,
// consolidate it and compare every tensor byte for byte; load_sharded of
// every rank must equal that rank's shard file. Bad inputs get a clear error
// and leave no output.
//
//===----------------------------------------------------------------------===//
#include "Emit/Emitter.h"
#include "IR/Builder.h"
#include "Spec/Config.h"
#include "Support/JsonDoc.h"
#include "Verify/Verifier.h"

#include "atp/checkpoint_tools.h"
#include "atp/safetensors.h"
#include "atp/safetensors_writer.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

using namespace autotpc;

namespace {

const char *const Families[] = {"llama", "mistral", "qwen2", "phi3", "mixtral", "deepseek_v2", "bloom", "chatglm"};

std::string tinyDir() { return std::string(AUTOTPC_SPECS_DIR) + "/tiny"; }

/// Owns the arrays an atp::ModelPlan points into.
struct LoadedPlan {
  std::vector<PlanTableParam> Tables;
  std::vector<std::vector<atp::Box>> Boxes;
  std::vector<std::vector<atp::RankShard>> Ranks;
  std::vector<atp::ParamPlan> Params;
  std::string Fingerprint;
  atp::ModelPlan Plan{};
  std::vector<std::string> Names; // stable storage for ParamPlan::name
};

/// Compiles specs/tiny/<family>.ds.json at TP `Tp`; fills Out. Returns the
/// diagnostics text on failure.
std::string compile(const std::string &Family, int Tp, LoadedPlan &Out) {
  std::ifstream In(tinyDir() + "/" + Family + ".ds.json");
  nlohmann::json Cfg = nlohmann::json::parse(In);
  Cfg["tensor_parallel"]["autotp_size"] = Tp;
  Cfg["model"] = tinyDir() + "/" + Family + ".json";
  std::string Text = Cfg.dump(2), Diag;
  llvm::raw_string_ostream DiagOS(Diag);
  llvm::SourceMgr SM;
  DiagEngine Diags(SM, DiagOS);
  unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Text, Family + ".ds.json"), llvm::SMLoc());
  std::vector<std::unique_ptr<JsonDoc>> Docs;
  Docs.push_back(JsonDoc::parse(Diags, ID));
  Config C;
  if (!Docs.back() || !parseConfig(*Docs.back(), Diags, C))
    return DiagOS.str();
  std::optional<LoadedModel> Model = loadModel(C, *Docs.back(), "", Diags, Docs);
  if (!Model)
    return DiagOS.str();
  std::optional<Module> M = buildModule(C, *Model, Diags);
  Topology Topo;
  if (!M || !verifyModule(VerifyContext{*M, C, *Model, Diags, std::nullopt}, Topo) || Diags.hasErrors())
    return DiagOS.str();
  Out.Tables = planTables(*M);
  Out.Fingerprint = planFingerprint(*M);
  for (const PlanTableParam &T : Out.Tables) {
    Out.Boxes.emplace_back();
    for (const auto &B : T.Boxes)
      Out.Boxes.back().push_back({{B[0], B[1]}, {B[2], B[3]}});
    Out.Ranks.emplace_back();
    for (const auto &R : T.Ranks)
      Out.Ranks.back().push_back({int32_t(R[0]), int32_t(R[1]), R[2], R[3]});
  }
  for (size_t I = 0; I < Out.Tables.size(); ++I) {
    const PlanTableParam &T = Out.Tables[I];
    atp::Split S = T.Kind == PartKind::Row      ? atp::Split::Row
                   : T.Kind == PartKind::Column ? atp::Split::Column
                                                : atp::Split::Replicate;
    Out.Params.push_back({T.Name.c_str(), *atp::dtype_from_name(T.DType), int32_t(M->Params[I].Info.Shape.size()),
                          T.Shape.data(), T.Rows, T.Cols, S, int32_t(T.ConcatDim), Out.Boxes[I].data(),
                          Out.Ranks[I].data()});
  }
  Out.Plan = {Out.Fingerprint.c_str(), int32_t(M->TpSize), int32_t(Out.Params.size()), Out.Params.data()};
  return "";
}

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
  ASSERT_EQ(compile(Family, Tp, P), "");
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
                         ::testing::Combine(::testing::ValuesIn(Families), ::testing::Values(1, 2, 4, 8)),
                         [](const auto &Info) {
                           return std::string(std::get<0>(Info.param)) + "_tp" +
                                  std::to_string(std::get<1>(Info.param));
                         });

TEST(RoundTripErrors, MissingTensorIsNamedAndNothingIsWritten) {
  LoadedPlan P;
  ASSERT_EQ(compile("llama", 2, P), "");
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
  ASSERT_EQ(compile("llama", 2, Two), "");
  ASSERT_EQ(compile("llama", 4, Four), "");
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
