/* loss_and_grads.cpp - the trainer's exact oracle: one forward and backward, the consolidated gradients.

   train --loss-and-grads TOKENS --rows R --out FILE.safetensors [--seq S] [--init-from HF_DIR] [--seed N]
         [--logits] [--device auto|cpu|cuda] [--dtype f32|bf16]

   TOKENS holds R rows of S+1 raw little-endian uint32 tokens (no header); S is --seq, or what the file size
   gives. DP rank d takes a contiguous block of rows; the TP ranks of a group take the same rows. The loss is
   the mean cross-entropy over all R x S predictions (HF's labels rule), so every rank's gradients are of
   that mean and summing them over DP gives the full gradient. FILE gets `loss` ([1], F32) and
   `grad.<HF name>` for every parameter, consolidated over TP (the plan's boxes), F32; with tied embeddings
   the embedding's gradient includes the LM head's. Weights come from an HF checkpoint (each rank reads only
   its shards) or from the seeded init (seeded_init), which is the same for every layout. --logits adds
   `logits` ([R, S, vocab], F32): what an HF export is checked against in transformers. Written by global
   rank 0, atomically. It runs on the CPU (fp32) or the GPU (backend.h; fp32 or bf16 weights and activations,
   the file F32 either way): outside references check both backends through it. */
#include "atp/loss_and_grads.h"

#include "atp/backend.h"
#include "atp/checkpoint_tools.h"
#include "atp/comm.h"
#include "atp/kernels.h"
#include "atp/ops.h"
#include "atp/safetensors_writer.h"
#include "atp/shard.h"
#include "atp/token_file.h"
#include "atp/world.h"

#include <sys/stat.h>

#include <cstdio>
#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace atp {

namespace {

/// Host weights and gradients of this TP rank's shards, F32.
struct HostParams {
  std::vector<std::vector<float>> w, g;
};

/// The same weights in the backend's memory and dtype, with zeroed gradients there.
class BackendParams : public ParamStore {
public:
  BackendParams(Ops &ops, DType dtype) : ops_(ops), dtype_(dtype) {}
  ~BackendParams() override {
    for (void *p : w_)
      ops_.free(p);
    for (void *p : g_)
      ops_.free(p);
  }
  Status upload(const HostParams &hp) {
    auto host = make_cpu_ops();
    for (const std::vector<float> &w : hp.w) {
      const std::size_t bytes = w.size() * dtype_size(dtype_);
      std::vector<std::byte> staged(bytes);
      ATP_TRY(host->cast(staged.data(), dtype_, w.data(), DType::F32, w.size()));
      ATP_ASSIGN_OR_RETURN(void *dw, ops_.alloc(bytes));
      w_.push_back(dw);
      ATP_ASSIGN_OR_RETURN(void *dg, ops_.alloc(bytes)); // zero-filled
      g_.push_back(dg);
      ATP_TRY(ops_.copy_from_host(dw, staged.data(), bytes));
    }
    return {};
  }
  /// The gradients as F32 host vectors (hp.g, sized like hp.w).
  Status download(HostParams &hp) {
    auto host = make_cpu_ops();
    for (std::size_t i = 0; i < g_.size(); ++i) {
      const std::size_t n = hp.w[i].size();
      std::vector<std::byte> staged(n * dtype_size(dtype_));
      ATP_TRY(ops_.copy_to_host(staged.data(), g_[i], staged.size()));
      ATP_TRY(host->cast(hp.g[i].data(), DType::F32, staged.data(), dtype_, n));
    }
    return {};
  }
  void *param(int i) override { return w_[std::size_t(i)]; }
  void *grad(int i) override { return g_[std::size_t(i)]; }
  Status grad_ready(int) override { return {}; }

private:
  Ops &ops_;
  DType dtype_;
  std::vector<void *> w_, g_;
};

/// S from the file size when --seq is not given: the file is rows x (S + 1) uint32 tokens.
std::int64_t seq_from_size(const std::string &path, std::int64_t rows) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || rows < 1)
    return 0;  // read_token_rows names the problem
  return std::int64_t(st.st_size) / 4 / rows - 1;
}

/// A non-negative integer argument, or nullopt.
std::optional<std::uint64_t> parse_count(const std::string &text) {
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(text);
}

Status load_weights(const ModelPlan &plan, int tp_rank, const std::string &init_from, std::uint64_t seed,
                    HostParams &hp) {
  for (int i = 0; i < plan.num_params; ++i) {
    const std::size_t n = local_nbytes(plan.params[i], tp_rank) / dtype_size(plan.params[i].dtype);
    hp.w.emplace_back(n);
    hp.g.emplace_back(n, 0.0f);
  }
  if (init_from.empty())
    return seeded_init(plan, tp_rank, seed, hp.w);
  ATP_ASSIGN_OR_RETURN(std::vector<HostTensor> shards, load_sharded_any_float(plan, tp_rank, init_from));
  auto ops = make_cpu_ops();
  for (int i = 0; i < plan.num_params; ++i) {
    const HostTensor &t = shards[std::size_t(i)];
    if (std::size_t(t.numel()) != hp.w[std::size_t(i)].size())
      return error("shard of " + quote(plan.params[i].name) + " has " + std::to_string(t.numel()) + " elements");
    ATP_TRY(ops->cast(hp.w[std::size_t(i)].data(), DType::F32, t.data(), t.dtype(), std::size_t(t.numel())));
  }
  return {};
}

const char *kUsage = "usage: train --loss-and-grads TOKENS --rows R --out FILE.safetensors [--seq S] "
                     "[--init-from HF_DIR] [--seed N] [--logits] [--device auto|cpu|cuda] [--dtype f32|bf16]";

} // namespace

/// The same value for a parameter element whatever the layout: a function of (seed, parameter, element of
/// the full tensor). Norm weights start at 1 as HF initialises them; the rest is uniform in [-a, a) with
/// a = 0.02 * sqrt(3) (HF's initializer_range as a standard deviation).
Status seeded_init(const ModelPlan &plan, int tp_rank, std::uint64_t seed, std::vector<std::vector<float>> &w) {
  for (int i = 0; i < plan.num_params; ++i) {
    const ParamPlan &p = plan.params[i];
    const std::string name = p.name;
    const bool norm = p.ndim == 1 && name.find("norm") != std::string::npos;
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    std::vector<float> full(std::size_t(p.rows * p.cols));
    for (std::size_t e = 0; e < full.size(); ++e) {
      std::uint64_t k = seed * 0x9e3779b97f4a7c15ull + std::uint64_t(i) * 0xbf58476d1ce4e5b9ull + e;
      k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9ull;
      k = (k ^ (k >> 27)) * 0x94d049bb133111ebull;
      k ^= k >> 31;
      const double u = double(k >> 11) / double(1ull << 53) * 2.0 - 1.0;
      full[e] = norm ? 1.0f : bias ? 0.0f : float(0.0346410161513775 * u);
    }
    ParamPlan f32 = p;  // the same boxes over F32 elements
    f32.dtype = DType::F32;
    shard_copy(f32, tp_rank, reinterpret_cast<const std::byte *>(full.data()),
               reinterpret_cast<std::byte *>(w[std::size_t(i)].data()));
  }
  return {};
}

int loss_and_grads_main(const ModelPlan &plan, const DecoderShape &shape, const DecoderParams &params, int argc,
                        char **argv) {
  std::string tokens, out, init_from;
  std::int64_t rows = 0, seq = 0;
  std::uint64_t seed = 1234;
  bool with_logits = false;
  DeviceKind device = DeviceKind::Auto;
  DType dtype = DType::F32;
  for (int a = 1; a < argc; ++a) {
    std::string arg = argv[a];
    auto value = [&]() -> std::string {
      if (a + 1 >= argc) {
        std::fprintf(stderr, "train: %s needs a value\n%s\n", arg.c_str(), kUsage);
        std::exit(2);
      }
      return argv[++a];
    };
    auto count = [&]() -> std::uint64_t {
      const std::string text = value();
      const std::optional<std::uint64_t> n = parse_count(text);
      if (!n) {
        std::fprintf(stderr, "train: %s '%s' is not a non-negative integer\n%s\n", arg.c_str(), text.c_str(), kUsage);
        std::exit(2);
      }
      return *n;
    };
    if (arg == "--loss-and-grads")
      tokens = value();
    else if (arg == "--rows")
      rows = std::int64_t(count());
    else if (arg == "--seq")
      seq = std::int64_t(count());
    else if (arg == "--out")
      out = value();
    else if (arg == "--init-from")
      init_from = value();
    else if (arg == "--seed")
      seed = count();
    else if (arg == "--logits")
      with_logits = true;
    else if (arg == "--device") {
      auto kind = parse_device_kind(value());
      if (!kind.ok()) {
        std::fprintf(stderr, "train: %s\n%s\n", kind.status().message().c_str(), kUsage);
        return 2;
      }
      device = *kind;
    } else if (arg == "--dtype") {
      const std::string d = value();
      if (d != "f32" && d != "bf16") {
        std::fprintf(stderr, "train: --dtype %s: expected f32 or bf16\n%s\n", d.c_str(), kUsage);
        return 2;
      }
      dtype = d == "f32" ? DType::F32 : DType::BF16;
    }
    else {
      std::fprintf(stderr, "train: unknown argument '%s'\n%s\n", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (tokens.empty() || out.empty() || rows < 1) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  }
  World world = ATP_CHECK_OK(World::from_env());
  if (launch_uses_mpi(world.launcher)) // torchrun starts plain processes: the host comms go over TCP
    ATP_CHECK_OK(mpi_init(&argc, &argv));
  set_process_identity(world.rank, world.world_size);
  Groups groups = ATP_CHECK_OK(make_groups(world, plan.tp_size));
  HostMesh mesh = ATP_CHECK_OK(make_host_mesh(world.rank, world.world_size, plan.tp_size));
  Comm *tp = mesh.tp.get(), *dp = mesh.dp.get();
  // Every rank makes the backend, also a DP rank without rows: it creates communicators.
  const int threads = std::max(1, int(std::thread::hardware_concurrency()) / std::max(1, world.local_world_size));
  Backend backend = ATP_CHECK_OK(make_backend(device, dtype, world, groups, *mesh.world, threads));
  if (seq == 0)
    seq = seq_from_size(tokens, rows);
  if (seq > shape.max_positions) {
    std::fprintf(stderr, "train: error: rows of %lld tokens are longer than max_position_embeddings (%lld)\n",
                 (long long)seq, (long long)shape.max_positions);
    return 1;
  }
  // Exactly rows x (seq + 1) tokens, each below the vocabulary size: errors name the file, the sizes, or
  // the row, column and id.
  const std::vector<std::uint32_t> all =
      ATP_CHECK_OK(read_token_rows(tokens, std::uint64_t(rows), std::uint64_t(std::max<std::int64_t>(seq, 1)),
                                   std::uint64_t(shape.vocab)));
  // This DP rank's rows: a contiguous block.
  const std::int64_t begin = rows * groups.dp_rank / groups.dp_size, end = rows * (groups.dp_rank + 1) / groups.dp_size;
  std::vector<std::int32_t> in, tgt;
  for (std::int64_t r = begin; r < end; ++r)
    for (std::int64_t s = 0; s < seq; ++s) {
      in.push_back(std::int32_t(all[std::size_t(r * (seq + 1) + s)]));
      tgt.push_back(std::int32_t(all[std::size_t(r * (seq + 1) + s + 1)]));
    }

  HostParams hp;
  ATP_CHECK_OK(load_weights(plan, groups.tp_rank, init_from, seed, hp));
  CrossEntropySum local{};
  // --logits: this DP rank's rows at their place in [R, S, vocab], the rest zero, summed over DP.
  std::vector<float> logits(with_logits ? std::size_t(rows * seq * shape.vocab) : 0);
  if (end > begin) {
    BackendParams bp(*backend.ops, dtype);
    ATP_CHECK_OK(bp.upload(hp));
    Comm &tensor_tp = tensor_comm(backend.tp, *tp);
    auto dec = ATP_CHECK_OK(Decoder::create(shape, params, *backend.kernels, *backend.ops, tensor_tp, end - begin, seq,
                                            nullptr, backend.tp_ops.get()));
    MicroBatch mb;
    mb.inputs = in.data(), mb.targets = tgt.data(), mb.batch = end - begin, mb.seq = seq;
    mb.denominator = rows * seq;
    if (with_logits) {
      const std::size_t n = std::size_t((end - begin) * seq * shape.vocab);
      std::vector<std::byte> raw(n * dtype_size(dtype));
      ATP_CHECK_OK(dec->forward_logits(bp, mb, 0, (end - begin) * seq, raw.data()));
      ATP_CHECK_OK(make_cpu_ops()->cast(logits.data() + std::size_t(begin * seq * shape.vocab), DType::F32, raw.data(),
                                        dtype, n));
    }
    local = ATP_CHECK_OK(dec->forward_backward(bp, mb));
    ATP_CHECK_OK(bp.download(hp));
  }
  if (with_logits)
    ATP_CHECK_OK(dp->all_reduce(logits.data(), logits.data(), logits.size(), DType::F32, ReduceOp::Sum));
  // Sum over DP: the loss and every gradient; then gather each parameter over TP on TP rank 0.
  double loss = local.loss_sum;
  ATP_CHECK_OK(dp->all_reduce(&loss, &loss, 1, DType::F64, ReduceOp::Sum));
  loss /= double(rows * seq);
  std::vector<TensorDecl> decls{{"loss", DType::F32, {1}}};
  std::vector<std::vector<float>> full(std::size_t(plan.num_params));
  for (int i = 0; i < plan.num_params; ++i) {
    const ParamPlan &p = plan.params[i];
    std::vector<float> &g = hp.g[std::size_t(i)];
    ATP_CHECK_OK(dp->all_reduce(g.data(), g.data(), g.size(), DType::F32, ReduceOp::Sum));
    std::vector<float> gathered(g.size() * std::size_t(plan.tp_size));
    ATP_CHECK_OK(tp->all_gather(g.data(), gathered.data(), g.size(), DType::F32));
    full[std::size_t(i)].resize(std::size_t(p.rows * p.cols));
    ParamPlan f32 = p;
    f32.dtype = DType::F32;
    for (int r = 0; r < plan.tp_size; ++r)
      gather_copy(f32, r, reinterpret_cast<const std::byte *>(gathered.data() + std::size_t(r) * g.size()),
                  reinterpret_cast<std::byte *>(full[std::size_t(i)].data()));
    decls.push_back({std::string("grad.") + p.name, DType::F32, std::vector<std::int64_t>(p.shape, p.shape + p.ndim)});
  }
  if (with_logits)
    decls.push_back({"logits", DType::F32, {rows, seq, shape.vocab}});
  if (world.rank == 0) {
    auto w = ATP_CHECK_OK(SafetensorsWriter::create(out, decls, {{"format", "pt"}}));
    const float l = float(loss);
    ATP_CHECK_OK(w.write("loss", &l, sizeof l));
    for (int i = 0; i < plan.num_params; ++i)
      ATP_CHECK_OK(w.write(decls[std::size_t(i) + 1].name, full[std::size_t(i)].data(), full[std::size_t(i)].size() * 4));
    if (with_logits) // declared last
      ATP_CHECK_OK(w.write("logits", logits.data(), logits.size() * 4));
    ATP_CHECK_OK(w.commit());
    std::printf("loss %.9g over %lld x %lld tokens; %d gradients -> %s\n", loss, (long long)rows, (long long)seq,
                plan.num_params, out.c_str());
  }
  backend.reset();
  mesh = {};
  (void)mpi_finalize();
  return 0;
}

} // namespace atp
