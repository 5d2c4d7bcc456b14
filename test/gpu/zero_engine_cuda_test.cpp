/* zero_engine_cuda_test.cpp - the ZeRO engine on the GPU (CUDA ops + NCCL) equals it on the CPU (CPU ops + MPI).

   One process, one GPU: a world of one rank, so TP = DP = 1 and the collectives are NCCL's and MPI's
   single-rank paths; what differs between the two runs is every buffer operation (cast, accumulate, the
   norm's sum of squares, the overflow check, the fused AdamW) and the device-side comm calls. A synthetic
   model (no compiler on the GPU machine): parameters of awkward sizes, some TP-sharded for the norm, in
   several buckets. For stages 0, 1 and 2, fp32, bf16 and fp16 (loss scale 2^10, dynamic), GAS 2, 3 steps:
     - without clipping the weights are bit-identical (AdamW and the casts are exact ports of the CPU math),
     - with clipping they agree to 1e-6 relative in fp32 and to one 16-bit ulp otherwise (the norm's summation
       order differs, so the clip factor may differ in its last bit); the norms agree to 1e-12.
   Prints "zero_engine_cuda_test: N passed, M failed"; exit 1 on any failure. Run with no arguments (MPI is
   initialised as a singleton; mpirun -np 1 works too). */
#include "atp/check_cuda.h"
#include "atp/comm.h"
#include "atp/zero.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace atp;

namespace {

// ---------------------------------------------------------------------------------------------------------
// a synthetic model: plan tables as generated code would state them, for TP = 1

struct Model {
  std::vector<std::vector<std::int64_t>> shapes;
  std::vector<Box> boxes;
  std::vector<RankShard> ranks;
  std::vector<ParamPlan> params;
  std::vector<std::string> names;
  std::vector<FlatParam> flat;
  std::vector<GradBucket> buckets;
  FlatLayout layout{};
  ModelPlan plan{};

  explicit Model(const std::vector<std::int64_t> &rows, std::int64_t cols, std::int64_t bucket_size) {
    const std::size_t n = rows.size();
    shapes.resize(n);
    boxes.resize(n);
    ranks.resize(n);
    names.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      shapes[i] = {rows[i], cols};
      boxes[i] = {{0, rows[i]}, {0, cols}};
      ranks[i] = {0, 1, rows[i], cols};
      names[i] = "p" + std::to_string(i);
    }
    for (std::size_t i = 0; i < n; ++i)
      params.push_back({names[i].c_str(), DType::F32, 2, shapes[i].data(), rows[i], cols, Split::Replicate, 0,
                        &boxes[i], &ranks[i]});
    std::int64_t offset = 0; // backward order, aligned, greedy buckets
    for (std::size_t k = 0; k < n; ++k) {
      const int i = int(n - 1 - k);
      offset = (offset + kFlatAlign - 1) / kFlatAlign * kFlatAlign;
      const std::int64_t numel = rows[std::size_t(i)] * cols;
      if (buckets.empty() || offset + numel - buckets.back().begin > bucket_size)
        buckets.push_back({offset, offset, int(k), 0});
      buckets.back().end = offset + numel;
      ++buckets.back().count;
      flat.push_back({i, offset, numel, i % 2 == 0});
      offset += numel;
    }
    layout = {offset, int(n), flat.data(), int(buckets.size()), buckets.data()};
    plan = {"synthetic", 1, int(n), params.data()};
  }
};

float value(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  std::uint64_t x = ((a * 1000003 + b) * 998244353 + c) + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return float(double((x ^ (x >> 31)) >> 11) / double(1ull << 52) - 1.0);
}

struct Run {
  std::vector<std::vector<std::uint16_t>> w16;
  std::vector<std::vector<float>> w32;
  std::vector<double> norms;
  bool overflowed = false;
};

/// Three optimizer steps of GAS 2 on one backend; gradients written through host staging buffers.
Run train(const Model &m, const ZeroPlan &z, Comm &comm, Ops &ops) {
  Run out;
  auto e = ATP_CHECK_OK(ZeroEngine::create(m.plan, z, 0, comm, comm, ops));
  const DType t = e->dtype();
  const std::size_t elem = dtype_size(t);
  auto to_working = [&](float x, void *dst, std::size_t i) {
    if (t == DType::F32)
      static_cast<float *>(dst)[i] = x;
    else
      static_cast<std::uint16_t *>(dst)[i] = t == DType::BF16 ? float_to_bf16(x) : float_to_f16(x);
  };
  for (int i = 0; i < m.plan.num_params; ++i) {
    std::vector<float> w(std::size_t(e->numel(i)));
    for (std::size_t x = 0; x < w.size(); ++x)
      w[x] = 0.5f * value(1, std::uint64_t(i), x);
    ATP_CHECK_OK(e->load_param(i, w.data(), DType::F32));
  }
  for (int s = 0; s < 3; ++s)
    for (int micro = 0; micro < 2; ++micro) {
      for (int i = m.plan.num_params - 1; i >= 0; --i) {
        // backward adds into grad(i): read, add, write back through the host
        std::vector<std::byte> g(std::size_t(e->numel(i)) * elem), add(g.size());
        ATP_CHECK_OK(ops.copy_to_host(g.data(), e->grad(i), g.size()));
        for (std::size_t x = 0; x < std::size_t(e->numel(i)); ++x)
          to_working(float(e->loss_scale()) * 0.25f * value(std::uint64_t(10 + s), std::uint64_t(micro * 1000 + i), x),
                     add.data(), x);
        auto cpu = make_cpu_ops();
        std::vector<float> acc(std::size_t(e->numel(i)));
        ATP_CHECK_OK(cpu->cast(acc.data(), DType::F32, g.data(), t, acc.size()));
        ATP_CHECK_OK(cpu->accumulate(acc.data(), add.data(), t, acc.size()));
        ATP_CHECK_OK(cpu->cast(g.data(), t, acc.data(), DType::F32, acc.size()));
        ATP_CHECK_OK(ops.copy_from_host(e->grad(i), g.data(), g.size()));
        ATP_CHECK_OK(e->grad_ready(i));
      }
      ATP_CHECK_OK(e->backward_done());
      StepResult r = ATP_CHECK_OK(e->step());
      if (r.boundary)
        out.norms.push_back(r.grad_norm);
      out.overflowed |= r.overflow;
    }
  for (int i = 0; i < m.plan.num_params; ++i) {
    if (t == DType::F32) {
      out.w32.emplace_back(std::size_t(e->numel(i)));
      ATP_CHECK_OK(e->read_param(i, out.w32.back().data()));
    } else {
      out.w16.emplace_back(std::size_t(e->numel(i)));
      ATP_CHECK_OK(e->read_param(i, out.w16.back().data()));
    }
  }
  return out;
}

double as_float(const Run &r, std::size_t p, std::size_t x, DType t) {
  if (t == DType::F32)
    return r.w32[p][x];
  return t == DType::BF16 ? bf16_to_float(r.w16[p][x]) : f16_to_float(r.w16[p][x]);
}

} // namespace

int main(int argc, char **argv) {
  ATP_CHECK_OK(mpi_init(&argc, &argv));
  set_process_identity(0, 1);
  ATP_CUDA_CHECK(cudaSetDevice(0));
  cudaStream_t stream;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  auto mpi = ATP_CHECK_OK(make_mpi_comm({0}));
  NcclCommOptions options;
  options.stream = stream; // the ops and the comm share one stream, so they are ordered
  options.bootstrap = Bootstrap::Mpi;
  auto nccl = ATP_CHECK_OK(make_nccl_comm({0}, options));
  auto cpu_ops = make_cpu_ops();
  auto cuda_ops = ATP_CHECK_OK(make_cuda_ops(stream));

  // 7 parameters, 4.3M elements, uneven row counts; buckets of at most 1M elements.
  Model m({1023, 64, 1, 4097, 333, 2048, 77}, 512, 1 << 20);
  int passed = 0, failed = 0;
  for (int stage = 0; stage <= 2; ++stage)
    for (Precision prec : {Precision::F32, Precision::BF16, Precision::F16})
      for (double clipping : {0.0, 1.0}) {
        ZeroPlan z{};
        z.stage = stage;
        z.precision = prec;
        z.tp_size = 1;
        z.dp_size = 1;
        z.gradient_accumulation_steps = 2;
        z.gradient_clipping = clipping;
        z.reduce_bucket_size = 1 << 20;
        z.adamw.lr = 1e-2;
        z.adamw.weight_decay = 0.1;
        z.loss_scale.initial_scale_power = 10;
        z.layouts = &m.layout;
        Run a = train(m, z, *mpi, *cpu_ops), b = train(m, z, *nccl, *cuda_ops);
        const DType t = prec == Precision::F32 ? DType::F32 : prec == Precision::BF16 ? DType::BF16 : DType::F16;
        // with clipping the fp32 masters may differ in the last bit, which can move a 16-bit weight by an ulp
        const double tolerance = t == DType::F32 ? 1e-6 : t == DType::BF16 ? 1.0 / 128 : 1.0 / 1024;
        double worst = 0, norm_err = 0;
        std::size_t differing = 0;
        for (std::size_t p = 0; p < m.params.size(); ++p)
          for (std::size_t x = 0; x < std::size_t(m.flat[m.params.size() - 1 - p].numel); ++x) {
            const double u = as_float(a, p, x, t), v = as_float(b, p, x, t);
            differing += u != v;
            worst = std::max(worst, std::fabs(u - v) / std::max(std::fabs(u), 1e-3));
          }
        for (std::size_t k = 0; k < a.norms.size() && k < b.norms.size(); ++k)
          norm_err = std::max(norm_err, std::fabs(a.norms[k] - b.norms[k]) / a.norms[k]);
        const bool ok = a.norms.size() == 3 && b.norms.size() == 3 && !a.overflowed && !b.overflowed &&
                        norm_err <= 1e-12 && (clipping > 0 ? worst <= tolerance : differing == 0);
        std::printf("stage %d %-4s clip %.0f: %zu weights differ, worst rel %.2e, norm rel %.2e: %s\n", stage,
                    dtype_name(t), clipping, differing, worst, norm_err, ok ? "ok" : "FAILED");
        (ok ? passed : failed) += 1;
      }
  std::printf("zero_engine_cuda_test: %d passed, %d failed\n", passed, failed);
  nccl.reset();
  mpi.reset();
  ATP_CHECK_OK(mpi_finalize());
  return failed ? 1 : 0;
}
