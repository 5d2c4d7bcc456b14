//===- LoadShardedMpi.cpp - load_sharded on every rank equals the shards --===//
//
// Run as `mpirun -np N LoadShardedMpi DIR TP`: the tiny llama is compiled at
// TP; rank 0 writes a random HF checkpoint and the offline shards (shard
// tool path) into DIR; then every rank loads its TP rank's tensors straight
// from the HF checkpoint (load_sharded) and compares them with the offline
// shard file. DP replicas (world / TP of them) each load their own copy.
// Exit 0 only if every rank matches; rank 0 prints a one-line summary.
//
//===----------------------------------------------------------------------===//
#include "PlanLoader.h"

#include "atp/checkpoint_tools.h"
#include "atp/comm.h"
#include "atp/safetensors.h"
#include "atp/safetensors_writer.h"
#include "atp/world.h"

#include <cstdio>
#include <cstring>
#include <random>

using namespace autotpc;

static atp::Status writeCheckpoint(const atp::ModelPlan &Plan, const std::string &Path) {
  std::vector<atp::TensorDecl> Decls;
  for (int I = 0; I < Plan.num_params; ++I)
    Decls.push_back({Plan.params[I].name, Plan.params[I].dtype,
                     {Plan.params[I].shape, Plan.params[I].shape + Plan.params[I].ndim}});
  auto W = atp::SafetensorsWriter::create(Path, Decls);
  ATP_TRY(W);
  std::mt19937_64 Rng(42);
  for (const atp::TensorDecl &D : Decls) {
    std::vector<std::byte> Bytes(*atp::tensor_nbytes(D.dtype, D.shape));
    for (std::byte &B : Bytes)
      B = std::byte(Rng());
    ATP_TRY(W->write(D.name, Bytes.data(), Bytes.size()));
  }
  return W->commit();
}

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: mpirun -np N %s DIR TP\n", argv[0]);
    return 2;
  }
  std::string Dir = argv[1];
  int Tp = std::atoi(argv[2]);
  ATP_CHECK_OK(atp::mpi_init(&argc, &argv));
  atp::World World = ATP_CHECK_OK(atp::World::from_env());
  atp::Groups Groups = ATP_CHECK_OK(atp::make_groups(World, Tp));
  std::vector<int> All;
  for (int R = 0; R < World.world_size; ++R)
    All.push_back(R);
  std::unique_ptr<atp::Comm> Comm = ATP_CHECK_OK(atp::make_mpi_comm(All));

  LoadedPlan P;
  std::string Diag = compileTiny("llama", Tp, P);
  if (!Diag.empty()) {
    std::fprintf(stderr, "rank %d: the tiny llama does not compile at TP %d:\n%s", World.rank, Tp, Diag.c_str());
    return 1;
  }
  std::string Hf = Dir + "/model.safetensors", Shards = Dir + "/shards";
  if (World.rank == 0) {
    ATP_CHECK_OK(writeCheckpoint(P.Plan, Hf));
    ATP_CHECK_OK(atp::shard_checkpoint(P.Plan, Hf, Shards));
  }
  ATP_CHECK_OK(Comm->barrier());

  int Bad = 0;
  std::vector<atp::HostTensor> Local = ATP_CHECK_OK(atp::load_sharded(P.Plan, Groups.tp_rank, Hf));
  atp::SafetensorsFile File =
      ATP_CHECK_OK(atp::SafetensorsFile::open(Shards + "/" + atp::shard_file_name(Groups.tp_rank, Tp)));
  for (int I = 0; I < P.Plan.num_params; ++I) {
    const atp::TensorInfo *T = File.find(P.Plan.params[I].name);
    if (!T || T->nbytes() != Local[size_t(I)].nbytes() ||
        std::memcmp(T->data, Local[size_t(I)].data(), T->nbytes()) != 0) {
      if (Bad++ < 3)
        std::fprintf(stderr, "rank %d (tp_rank %d): '%s' differs from the offline shard\n", World.rank,
                     Groups.tp_rank, P.Plan.params[I].name);
    }
  }
  int AnyBad = 0;
  ATP_CHECK_OK(Comm->all_reduce(&Bad, &AnyBad, 1, atp::DType::I32, atp::ReduceOp::Max));
  if (World.rank == 0)
    std::printf("load_sharded: %d ranks, tp %d, dp %d, %d parameters: %s\n", World.world_size, Tp, Groups.dp_size,
                P.Plan.num_params, AnyBad ? "MISMATCH" : "every rank equals the offline shards");
  Comm.reset(); // comms go before MPI_Finalize
  ATP_CHECK_OK(atp::mpi_finalize());
  return AnyBad ? 1 : 0;
}
