//===- ZeroCommVolume.cpp - bytes the ZeRO engine communicates per step --===//
//
// A benchmark, not a test: `mpirun -np W zero_comm_volume TP [FAMILY]` runs
// one optimizer step (GAS = 2 micro-steps) of the tiny model at every stage
// in bf16 and fp32, counting what passes through the DP and TP comms, and
// rank 0 prints it next to the theoretical volume of DeepSpeed's algorithm
// for Φ local parameter elements of b bytes and DP size d:
//   stage 0: all-reduce Φ·b           (DeepSpeed reduces bf16 gradients in bf16)
//   stage 1: reduce-scatter Φ·b + all-gather Φ·b
//   stage 2: GAS reduce-scatters Φ·b (one per micro-step) + all-gather Φ·b
// "payload" is the bytes a rank contributes per collective; "ring" the bytes
// a ring algorithm sends per rank (NCCL's bus bytes).
//
//===----------------------------------------------------------------------===//
#include "CountingComm.h"
#include "PlanLoader.h"

#include "atp/world.h"
#include "atp/zero.h"

#include <nlohmann/json.hpp>

#include <cstdio>

using namespace autotpc;

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mpirun -np W %s TP [FAMILY]\n", argv[0]);
    return 2;
  }
  const std::string Family = argc > 2 ? argv[2] : "llama";
  const int Gas = 2;
  ATP_CHECK_OK(atp::mpi_init(&argc, &argv));
  atp::World World = ATP_CHECK_OK(atp::World::from_env());
  atp::Groups G = ATP_CHECK_OK(atp::make_groups(World, std::atoi(argv[1])));
  atp::set_process_identity(World.rank, World.world_size);
  std::unique_ptr<atp::Comm> Tp, Dp;
  for (const auto &Ranks : ATP_CHECK_OK(atp::all_tp_groups(World.world_size, G.tp_size)))
    if (Ranks == G.tp_group)
      Tp = ATP_CHECK_OK(atp::make_mpi_comm(Ranks));
  for (const auto &Ranks : ATP_CHECK_OK(atp::all_dp_groups(World.world_size, G.tp_size)))
    if (Ranks == G.dp_group)
      Dp = ATP_CHECK_OK(atp::make_mpi_comm(Ranks));
  if (World.rank == 0)
    std::printf("zero_comm_volume: tiny %s, tp %d, dp %d, GAS %d; bytes per optimizer step on rank 0 (DP comm)\n"
                "stage  prec  phi  N  P  all_reduce  reduce_scatter  all_gather  payload  theory  payload/theory  "
                "ring_bytes  tp_bytes\n",
                Family.c_str(), G.tp_size, G.dp_size, Gas);
  for (bool Bf16 : {true, false})
    for (int Stage = 0; Stage <= 2; ++Stage) {
      nlohmann::json O = {{"train_batch_size", Gas * G.dp_size},
                          {"train_micro_batch_size_per_gpu", 1},
                          {"gradient_accumulation_steps", Gas},
                          {"zero_optimization", {{"stage", Stage}, {"reduce_bucket_size", 50000}}},
                          {"bf16", {{"enabled", Bf16}}},
                          {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 1e-3}}}}}};
      LoadedPlan P;
      LoadedZero Z;
      std::string Diag = compileTinyZero(Family, G.tp_size, O, P, Z);
      if (!Diag.empty()) {
        std::fprintf(stderr, "%s", Diag.c_str());
        return 1;
      }
      CountingComm CTp(*Tp), CDp(*Dp);
      auto Ops = atp::make_cpu_ops();
      auto E = ATP_CHECK_OK(atp::ZeroEngine::create(P.Plan, Z.Plan, G.tp_rank, CTp, CDp, *Ops));
      int64_t Phi = 0;
      for (int I = 0; I < P.Plan.num_params; ++I)
        Phi += E->numel(I);
      for (int M = 0; M < Gas; ++M) {
        for (int I = P.Plan.num_params - 1; I >= 0; --I)
          ATP_CHECK_OK(E->grad_ready(I));
        ATP_CHECK_OK(E->backward_done());
        ATP_CHECK_OK(E->step());
      }
      const uint64_t B = Bf16 ? 2 : 4;
      const uint64_t Theory = Stage == 0 ? Phi * B : Stage == 1 ? 2 * Phi * B : (Gas + 1) * Phi * B;
      const uint64_t Payload = CDp.AllReduce.Payload + CDp.ReduceScatter.Payload + CDp.AllGather.Payload;
      const uint64_t Ring = CDp.AllReduce.RingBytes + CDp.ReduceScatter.RingBytes + CDp.AllGather.RingBytes;
      const uint64_t TpBytes = CTp.AllReduce.Payload + CTp.ReduceScatter.Payload + CTp.AllGather.Payload;
      if (World.rank == 0)
        std::printf("%d  %s  %lld  %lld  %lld  %llu  %llu  %llu  %llu  %llu  %.4f  %llu  %llu\n", Stage,
                    Bf16 ? "bf16" : "fp32", (long long)Phi, (long long)E->layout().numel,
                    (long long)E->layout().partition, (unsigned long long)CDp.AllReduce.Payload,
                    (unsigned long long)CDp.ReduceScatter.Payload, (unsigned long long)CDp.AllGather.Payload,
                    (unsigned long long)Payload, (unsigned long long)Theory, double(Payload) / double(Theory),
                    (unsigned long long)Ring, (unsigned long long)TpBytes);
    }
  Tp.reset(), Dp.reset();
  ATP_CHECK_OK(atp::mpi_finalize());
  return 0;
}
