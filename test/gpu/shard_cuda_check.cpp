/* shard_cuda_check.cpp - one parameter's device shard and gather copies against the host ones (see
   shard_cuda_check.h). Test code: CUDA failures end the process through ATP_CUDA_CHECK. */
#include "shard_cuda_check.h"

#include "gpu_check.h"

#include "atp/check_cuda.h"
#include "atp/shard.h"
#include "atp/shard_cuda.h"

#include <cstdio>
#include <cstring>

namespace atp::gpucheck {

namespace {

constexpr std::uint64_t kSeed = 20250;
constexpr std::size_t kSlack = 16;  // room for pointer offsets
constexpr std::size_t kGuard = 256; // bytes after each buffer that nothing may write
constexpr unsigned char kGuardByte = 0x5A;

bool guard_intact(const std::byte *device_guard, cudaStream_t stream) {
  unsigned char g[kGuard];
  ATP_CUDA_CHECK(cudaMemcpyAsync(g, device_guard, kGuard, cudaMemcpyDeviceToHost, stream));
  ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (unsigned char c : g)
    if (c != kGuardByte)
      return false;
  return true;
}

} // namespace

ShardCheckBuffers::ShardCheckBuffers(std::size_t bytes) : capacity(bytes) {
  const std::size_t n = bytes + kSlack + kGuard;
  ATP_CUDA_CHECK(cudaMalloc(&full, n));
  ATP_CUDA_CHECK(cudaMalloc(&gathered, n));
  ATP_CUDA_CHECK(cudaMalloc(&local, n));
  ATP_CUDA_CHECK(cudaMallocHost(&host_full, n));
  ATP_CUDA_CHECK(cudaMallocHost(&host_local, n));
}

ShardCheckBuffers::~ShardCheckBuffers() {
  ATP_CUDA_CHECK(cudaFree(full));
  ATP_CUDA_CHECK(cudaFree(gathered));
  ATP_CUDA_CHECK(cudaFree(local));
  ATP_CUDA_CHECK(cudaFreeHost(host_full));
  ATP_CUDA_CHECK(cudaFreeHost(host_local));
}

std::string split_kind(const ParamPlan &p) {
  if (p.split == Split::Replicate)
    return "replicated";
  std::string kind = p.split == Split::Row ? "row" : "column";
  return p.ranks[0].count > 1 ? kind + " (fused)" : kind;
}

void check_shard_param(const ParamPlan &p, std::uint64_t tag, int tp, const ShardCheckOptions &options,
                       ShardCheckBuffers &b, ShardCheckStats &stats, cudaStream_t stream) {
  const std::size_t full_bytes = std::size_t(p.rows) * std::size_t(p.cols) * dtype_size(p.dtype);
  if (full_bytes > b.capacity)
    fail("check_shard_param", "", __FILE__, __LINE__, std::string(p.name) + " is larger than the buffers");
  std::byte *full = b.full + options.full_offset, *gathered = b.gathered + options.full_offset;
  std::byte *local = b.local + options.local_offset;
  ++stats.params;
  ++stats.splits[split_kind(p)];
  auto failed = [&](int rank, const std::string &what) {
    std::printf("FAIL %s (%s, %s) %s%s\n", p.name, split_kind(p).c_str(), dtype_name(p.dtype),
                rank >= 0 ? ("TP rank " + std::to_string(rank) + ": ").c_str() : "", what.c_str());
    ++stats.failures;
  };
  ATP_CHECK_OK(fill_pattern(full, full_bytes, dtype_size(p.dtype), kSeed, tag, stream));
  ATP_CUDA_CHECK(cudaMemcpyAsync(b.host_full, full, full_bytes, cudaMemcpyDeviceToHost, stream));
  ATP_CUDA_CHECK(cudaMemsetAsync(gathered + full_bytes, kGuardByte, kGuard, stream));
  ATP_CUDA_CHECK(cudaStreamSynchronize(stream));

  // Each rank's shard, checked on the host.
  for (int r = 0; r < tp; ++r) {
    if (full_bytes > options.host_check_bytes && r != 0 && r != tp - 1)
      continue;
    const std::size_t n = local_nbytes(p, r);
    b.expected.resize(n);
    shard_copy(p, r, b.host_full, b.expected.data());
    for (std::size_t i = 0; i < n; ++i)
      b.host_local[i] = ~b.expected[i];
    std::memset(b.host_local + n, kGuardByte, kGuard);
    ATP_CUDA_CHECK(cudaMemcpyAsync(local, b.host_local, n + kGuard, cudaMemcpyHostToDevice, stream));
    ATP_CHECK_OK(shard_copy_device(p, r, full, local, stream));
    ATP_CUDA_CHECK(cudaMemcpyAsync(b.host_local, local, n + kGuard, cudaMemcpyDeviceToHost, stream));
    ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
    ++stats.units[device_copy_plan(p, r, true, full, local).unit];
    if (std::memcmp(b.host_local, b.expected.data(), n) != 0) {
      std::size_t at = 0;
      while (b.host_local[at] == b.expected[at])
        ++at;
      failed(r, "shard differs from shard_copy's, first at local byte " + std::to_string(at) + " of " +
                    std::to_string(n));
    }
    for (std::size_t i = 0; i < kGuard; ++i)
      if (static_cast<unsigned char>(b.host_local[n + i]) != kGuardByte) {
        failed(r, "shard wrote past the local tensor, at guard byte " + std::to_string(i));
        break;
      }
  }

  // Every rank's shard gathered back, checked on the device, over two poisons.
  for (int poison : {0x00, 0xFF}) {
    ATP_CUDA_CHECK(cudaMemsetAsync(gathered, poison, full_bytes, stream));
    for (int r = 0; r < tp; ++r) {
      ATP_CHECK_OK(shard_copy_device(p, r, full, local, stream));
      ATP_CHECK_OK(gather_copy_device(p, r, local, gathered, stream));
    }
    const std::uint64_t bad = ATP_CHECK_OK(count_mismatches(gathered, full, full_bytes, stream));
    if (bad != 0)
      failed(-1, "the gather of every rank over poison " + std::to_string(poison) + " differs from the full "
                 "tensor in " + std::to_string(bad) + " of " + std::to_string(full_bytes) + " bytes");
  }
  if (!guard_intact(gathered + full_bytes, stream))
    failed(-1, "gather wrote past the full tensor");
}

void print_summary(const char *test, const char *what, const ShardCheckStats &stats) {
  std::printf("%s: parameters by split:", test);
  for (const auto &[kind, n] : stats.splits)
    std::printf(" %s %d;", kind.c_str(), n);
  std::printf(" shard copies by access unit:");
  for (const auto &[unit, n] : stats.units)
    std::printf(" %d B %d;", unit, n);
  std::printf("\n%s: %s: %s, %d parameters, %d failures\n", test, stats.failures ? "FAIL" : "PASS", what,
              stats.params, stats.failures);
  std::fflush(stdout);
}

} // namespace atp::gpucheck
