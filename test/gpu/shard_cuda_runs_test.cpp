/* shard_cuda_runs_test.cpp - the device copies' layout, replayed on the CPU, equals shard_copy / gather_copy.

   Runs in the main build (no GPU needed): shard_copy_device and gather_copy_device launch one kernel whose
   every unit goes where device_copy_plan and run_unit say, so replaying those on the host, unit by unit,
   checks the part of the device copy that plans can get wrong (boxes to runs, the local layout, the choice
   of access unit) on every tiny preset family (fused gate_up and GQA qkv, biases, row and column splits,
   replicated norms) at TP 1, 2, 4 and 8, with pointers 0, 1, 2, 4 and 8 bytes past 16-byte alignment. Each
   unit must also be aligned to its size on both sides (the GPU faults on a misaligned vector access) and
   lie inside both tensors. test/gpu/shard_cuda_test runs the kernels themselves on the GPU machine. */
#include "PlanLoader.h"

#include "atp/shard.h"
#include "atp/shard_cuda.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace {

/// A 16-byte aligned buffer of n bytes starting `offset` bytes past alignment.
struct Buffer {
  Buffer(std::size_t n, std::size_t offset) : storage(n + 32), data(aligned() + offset), size(n) {}
  std::byte *aligned() { return storage.data() + (16 - reinterpret_cast<std::uintptr_t>(storage.data()) % 16) % 16; }
  std::vector<std::byte> storage;
  std::byte *data;
  std::size_t size;
};

/// Replays one launch on the host; fails the test on a misaligned or out-of-bounds unit.
void replay(const atp::CopyPlan &plan, const std::byte *src, std::size_t src_size, std::byte *dst,
            std::size_t dst_size, const std::string &what) {
  const std::size_t unit = std::size_t(plan.unit);
  for (const atp::CopyRun &run : plan.runs)
    for (std::uint64_t i = 0; i < run.count; ++i) {
      std::uint64_t from = 0, to = 0;
      atp::run_unit(run, i, from, to);
      const std::byte *s = src + from * unit;
      std::byte *d = dst + to * unit;
      ASSERT_LE((from + 1) * unit, src_size) << what << ": unit " << i << " reads past the source";
      ASSERT_LE((to + 1) * unit, dst_size) << what << ": unit " << i << " writes past the destination";
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(s) % unit, 0u) << what << ": misaligned read";
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(d) % unit, 0u) << what << ": misaligned write";
      std::memcpy(d, s, unit);
    }
}

class ShardCudaRuns : public ::testing::TestWithParam<std::tuple<const char *, int>> {};

TEST_P(ShardCudaRuns, ReplayEqualsHostCopies) {
  auto [Family, Tp] = GetParam();
  autotpc::LoadedPlan Loaded;
  ASSERT_EQ(autotpc::compileTiny(Family, Tp, Loaded), "");
  const atp::ModelPlan &Plan = Loaded.Plan;
  std::mt19937_64 Rng(Tp * 1000 + std::strlen(Family));
  int Vectorized = 0;
  for (std::size_t Offset : {0, 1, 2, 4, 8}) {
    for (int I = 0; I < Plan.num_params; ++I) {
      const atp::ParamPlan &P = Plan.params[I];
      const std::size_t FullBytes = std::size_t(P.rows) * std::size_t(P.cols) * atp::dtype_size(P.dtype);
      Buffer Full(FullBytes, Offset), Gathered(FullBytes, Offset);
      for (std::size_t B = 0; B < FullBytes; ++B)
        Full.data[B] = std::byte(Rng());
      for (std::size_t Poison : {0x00, 0xFF}) {
        std::memset(Gathered.data, int(Poison), FullBytes);
        for (int R = 0; R < Tp; ++R) {
          const std::string What = std::string(P.name) + " rank " + std::to_string(R) + " offset " +
                                   std::to_string(Offset);
          const std::size_t LocalBytes = atp::local_nbytes(P, R);
          Buffer Local(LocalBytes, Offset);
          std::vector<std::byte> Expected(LocalBytes);
          atp::shard_copy(P, R, Full.data, Expected.data());
          for (std::size_t B = 0; B < LocalBytes; ++B)
            Local.data[B] = ~Expected[B];
          atp::CopyPlan Shard = atp::device_copy_plan(P, R, true, Full.data, Local.data);
          ASSERT_NO_FATAL_FAILURE(replay(Shard, Full.data, FullBytes, Local.data, LocalBytes, What));
          ASSERT_EQ(0, std::memcmp(Local.data, Expected.data(), LocalBytes)) << What << ": shard";
          Vectorized += Shard.unit == 16;
          atp::CopyPlan Gather = atp::device_copy_plan(P, R, false, Gathered.data, Local.data);
          ASSERT_EQ(Gather.unit, Shard.unit) << What;
          ASSERT_NO_FATAL_FAILURE(replay(Gather, Local.data, LocalBytes, Gathered.data, FullBytes, What));
        }
        ASSERT_EQ(0, std::memcmp(Gathered.data, Full.data, FullBytes))
            << P.name << " offset " << Offset << ": the gather of every rank over poison " << Poison;
      }
    }
  }
  EXPECT_GT(Vectorized, 0) << "no copy of " << Family << " used 16-byte units";
}

INSTANTIATE_TEST_SUITE_P(Families, ShardCudaRuns,
                         ::testing::Combine(::testing::ValuesIn(autotpc::TinyFamilies), ::testing::Values(1, 2, 4, 8)),
                         [](const auto &Info) {
                           return std::string(std::get<0>(Info.param)) + "_tp" +
                                  std::to_string(std::get<1>(Info.param));
                         });

TEST(ShardCudaRuns, ManyBoxesAndEmptyTensors) {
  // A fused weight of 40 sub-parameters (more than one launch's 32 runs) and an empty one, TP 2.
  std::vector<atp::Box> Boxes;
  std::vector<atp::RankShard> Ranks;
  for (int R = 0; R < 2; ++R) {
    Ranks.push_back({std::int32_t(Boxes.size()), 40, 40 * 4, 64});
    for (int K = 0; K < 40; ++K)
      Boxes.push_back({{K * 8 + R * 4, K * 8 + R * 4 + 4}, {0, 64}});
  }
  const std::int64_t Shape[] = {320, 64};
  const atp::ParamPlan P = {"fused40", atp::DType::BF16, 2, Shape, 320, 64, atp::Split::Column, 0,
                            Boxes.data(), Ranks.data()};
  Buffer Full(320 * 64 * 2, 0), Local(160 * 64 * 2, 0);
  for (std::size_t B = 0; B < Full.size; ++B)
    Full.data[B] = std::byte(B * 7 + 3);
  std::vector<std::byte> Expected(Local.size);
  atp::shard_copy(P, 1, Full.data, Expected.data());
  atp::CopyPlan Shard = atp::device_copy_plan(P, 1, true, Full.data, Local.data);
  EXPECT_EQ(Shard.runs.size(), 40u);
  EXPECT_EQ(Shard.unit, 16);
  ASSERT_NO_FATAL_FAILURE(replay(Shard, Full.data, Full.size, Local.data, Local.size, "fused40"));
  EXPECT_EQ(0, std::memcmp(Local.data, Expected.data(), Local.size));

  const atp::Box EmptyBoxes[] = {{{0, 0}, {0, 64}}, {{0, 0}, {0, 64}}};
  const atp::RankShard EmptyRanks[] = {{0, 1, 0, 64}, {1, 1, 0, 64}};
  const std::int64_t EmptyShape[] = {0, 64};
  const atp::ParamPlan E = {"empty", atp::DType::BF16, 2, EmptyShape, 0, 64, atp::Split::Column, 0,
                            EmptyBoxes, EmptyRanks};
  atp::CopyPlan None = atp::device_copy_plan(E, 0, true, Full.data, Local.data);
  EXPECT_EQ(None.unit, 0);
  EXPECT_TRUE(None.runs.empty());
}

} // namespace
