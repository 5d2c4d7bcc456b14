/* shard_cuda_test.cpp - shard_copy_device / gather_copy_device equal the host copies on a generated plan.

   Built once per generated plan (it links that plan's gen::plan, named ATP_PLAN_NAME; there is no compiler
   on the GPU machine): every parameter, every TP rank, through check_shard_param (shard_cuda_check.h), with
   values from (seed, parameter index, element index). Parameters above 512 MiB (embeddings, lm_head) are
   compared on the host for their first and last TP rank only; the device gather covers every rank.
   Prints one line per failure and a PASS/FAIL summary; exits 1 on any failure. */
#include "plan.h"
#include "shard_cuda_check.h"

#include "atp/check_cuda.h"
#include "atp/shard.h"

#include <algorithm>
#include <cstdio>

using namespace atp;

int main() {
  const ModelPlan &plan = gen::plan;
  int device = 0;
  cudaDeviceProp prop{};
  ATP_CUDA_CHECK(cudaGetDevice(&device));
  ATP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::printf("shard_cuda_test: %s (plan %s), tp %d, %d parameters, on %s\n", ATP_PLAN_NAME, plan.fingerprint,
              plan.tp_size, plan.num_params, prop.name);
  std::fflush(stdout);

  std::size_t most = 0;
  for (int i = 0; i < plan.num_params; ++i) {
    const ParamPlan &p = plan.params[i];
    most = std::max(most, std::size_t(p.rows) * std::size_t(p.cols) * dtype_size(p.dtype));
  }
  cudaStream_t stream;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  gpucheck::ShardCheckStats stats;
  {
    gpucheck::ShardCheckBuffers buffers(most);
    gpucheck::ShardCheckOptions options;
    options.host_check_bytes = std::size_t(512) << 20;
    for (int i = 0; i < plan.num_params; ++i)
      gpucheck::check_shard_param(plan.params[i], std::uint64_t(i), plan.tp_size, options, buffers, stats, stream);
  }
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  gpucheck::print_summary("shard_cuda_test", ATP_PLAN_NAME, stats);
  return stats.failures ? 1 : 0;
}
