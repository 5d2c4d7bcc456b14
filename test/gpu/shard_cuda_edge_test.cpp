/* shard_cuda_edge_test.cpp - the device shard/gather copies on hand-made plans the generated ones lack.

   The generated plans (shard_cuda_test) are bf16 weights of friendly sizes, so they take the 16-byte path
   and have no biases. Here, each plan stated as generated code would state it, and each checked by
   check_shard_param against the host copies: 1-D biases (plain, and fused GQA qkv [[q, kv, kv]] with
   sub-blocks of odd lengths), a replicated norm of odd length, row bands of 3, 5 and 7 bytes, a row split
   fused along dim 1, dtypes of 1, 2, 4 and 8 bytes, pointers 1, 2, 4 and 8 bytes past alignment, a fused
   weight of 40 sub-parameters (more boxes than one launch takes), an empty tensor, and a row split whose
   local tensor has more than 2^32 one-byte units (the 64-bit index path). Each case also states the access
   unit it must use. Prints a PASS/FAIL summary; exits 1 on any failure. */
#include "shard_cuda_check.h"

#include "atp/check_cuda.h"
#include "atp/shard.h"
#include "atp/shard_cuda.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

using namespace atp;

namespace {

/// A parameter's plan tables, owned.
struct Synth {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<Box> boxes;
  std::vector<RankShard> ranks;
  ParamPlan p{};
};

/// The tables autotpc emits: a column split takes rank r's share of each sub-parameter (sizes along rows,
/// in order) and stacks them; a row split does the same along columns, side by side; replicated is one box.
std::unique_ptr<Synth> make(const std::string &name, DType dtype, std::vector<std::int64_t> shape, Split split,
                            std::vector<std::int64_t> subs, int tp) {
  auto s = std::make_unique<Synth>();
  s->name = name;
  s->shape = std::move(shape);
  const std::int64_t rows = s->shape[0], cols = s->shape.size() == 2 ? s->shape[1] : 1;
  if (split == Split::Replicate) {
    s->boxes.push_back({{0, rows}, {0, cols}});
    s->ranks.assign(std::size_t(tp), {0, 1, rows, cols});
  }
  for (int r = 0; split != Split::Replicate && r < tp; ++r) {
    const std::int32_t first = std::int32_t(s->boxes.size());
    std::int64_t off = 0;
    for (std::int64_t sub : subs) {
      const Range part = {off + r * (sub / tp), off + (r + 1) * (sub / tp)};
      s->boxes.push_back(split == Split::Column ? Box{part, {0, cols}} : Box{{0, rows}, part});
      off += sub;
    }
    s->ranks.push_back(split == Split::Column ? RankShard{first, std::int32_t(subs.size()), rows / tp, cols}
                                              : RankShard{first, std::int32_t(subs.size()), rows, cols / tp});
  }
  s->p = {s->name.c_str(), dtype,          std::int32_t(s->shape.size()), s->shape.data(), rows, cols, split,
          split == Split::Row ? 1 : 0, s->boxes.data(), s->ranks.data()};
  return s;
}

struct Case {
  std::unique_ptr<Synth> param;
  int tp;
  std::size_t offset; ///< added to both device pointers
  int unit;           ///< the access unit the copy must use
};

std::vector<std::int64_t> repeat(std::int64_t size, int n) { return std::vector<std::int64_t>(std::size_t(n), size); }

} // namespace

int main() {
  const Split C = Split::Column, R = Split::Row, X = Split::Replicate;
  std::vector<Case> cases;
  auto add = [&](std::unique_ptr<Synth> p, int tp, std::size_t offset, int unit) {
    cases.push_back({std::move(p), tp, offset, unit});
  };
  add(make("q_proj.bias", DType::BF16, {4096}, C, {4096}, 4), 4, 0, 16);
  add(make("qkv_proj.bias (GQA [[6, 2, 2]])", DType::BF16, {10}, C, {6, 2, 2}, 2), 2, 0, 2);
  add(make("qkv_proj.bias (GQA [[64, 16, 16]])", DType::F32, {96}, C, {64, 16, 16}, 4), 4, 0, 16);
  add(make("o_proj.bias (replicated)", DType::BF16, {4096}, X, {}, 2), 2, 0, 16);
  add(make("norm.weight (odd length)", DType::F32, {1001}, X, {}, 2), 2, 0, 4);
  add(make("gate_up_proj [2, -1]", DType::BF16, {2000, 512}, C, {1000, 1000}, 4), 4, 0, 16);
  add(make("qkv_proj [[q, kv, kv]] fp64", DType::F64, {96, 40}, C, {64, 16, 16}, 2), 2, 0, 16);
  add(make("row band of 3 bf16", DType::BF16, {64, 6}, R, {6}, 2), 2, 0, 2);
  add(make("row band of 5 f32", DType::F32, {40, 10}, R, {10}, 2), 2, 0, 4);
  add(make("row band of 7 u8", DType::U8, {33, 14}, R, {14}, 2), 2, 0, 1);
  add(make("row split fused along dim 1 [[4, 8]]", DType::F64, {16, 12}, R, {4, 8}, 2), 2, 0, 16);
  add(make("down_proj (row)", DType::BF16, {1024, 4096}, R, {4096}, 4), 4, 0, 16);
  add(make("down_proj, pointers +4", DType::BF16, {1024, 4096}, R, {4096}, 4), 4, 4, 4);
  add(make("q_proj, pointers +2", DType::BF16, {4096, 1000}, C, {4096}, 4), 4, 2, 2);
  add(make("q_proj, pointers +8", DType::BF16, {4096, 1000}, C, {4096}, 4), 4, 8, 8);
  add(make("int8 column, pointers +1", DType::I8, {4096, 1000}, C, {4096}, 4), 4, 1, 1);
  add(make("40 sub-parameters", DType::BF16, {40 * 8, 64}, C, repeat(8, 40), 2), 2, 0, 16);
  add(make("empty", DType::BF16, {0, 64}, C, {0}, 2), 2, 0, 0);

  cudaStream_t stream;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  gpucheck::ShardCheckStats stats;
  auto run = [&](const std::vector<Case> &list, std::size_t capacity) {
    gpucheck::ShardCheckBuffers buffers(capacity);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Case &c = list[i];
      gpucheck::ShardCheckOptions options;
      options.full_offset = options.local_offset = c.offset;
      const int unit =
          device_copy_plan(c.param->p, 0, true, buffers.full + c.offset, buffers.local + c.offset).unit;
      std::printf("  %-40s %-6s tp %d, pointers +%zu: %d-byte units\n", c.param->name.c_str(),
                  dtype_name(c.param->p.dtype), c.tp, c.offset, unit);
      std::fflush(stdout);
      if (unit != c.unit) {
        std::printf("FAIL %s: access unit %d, expected %d\n", c.param->name.c_str(), unit, c.unit);
        ++stats.failures;
      }
      gpucheck::check_shard_param(c.param->p, i, c.tp, options, buffers, stats, stream);
    }
  };
  run(cases, std::size_t(16) << 20);

  // More than 2^32 units in one run: a u8 row split whose local tensor is 65537 x 65538 bytes, at 1-byte
  // units (pointers +1). Needs about 26 GB of device memory and 17 GB of pinned host memory.
  std::vector<Case> huge;
  huge.push_back({make("u8 row split, 2^32+ units", DType::U8, {65537, 2 * 65538}, R, {2 * 65538}, 2), 2, 1, 1});
  std::size_t free_bytes = 0, total_bytes = 0;
  ATP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < (std::size_t(28) << 30)) {
    std::printf("FAIL the 2^32-unit case needs 28 GiB of free device memory, %zu MiB are free\n", free_bytes >> 20);
    ++stats.failures;
  } else {
    run(huge, std::size_t(65537) * 2 * 65538);
  }
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  gpucheck::print_summary("shard_cuda_edge_test", "hand-made plans", stats);
  return stats.failures ? 1 : 0;
}
