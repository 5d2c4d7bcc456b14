/* train_main.cpp - `train`: options, the rank set-up, the step loop with its progress line, CSV log,
   evaluation and checkpoints, the HF export and generation (train_main.h; the work is atp::Trainer's).

   Nothing is written before the set-up (config, data, weights, checkpoint) has succeeded on every rank, so
   bad input leaves every file as it was. */
#include "atp/train_main.h"

#include "atp/backend.h"
#include "atp/byte_tokenizer.h"
#include "atp/kernels.h"
#include "atp/kernels_profile.h"
#include "atp/loss_and_grads.h"
#include "atp/world.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

namespace atp {

namespace {

const char *kUsage = R"(usage:
  train --data FILE [options]              train (FILE: a token file of autotpc-tokenize, or plain text)
  train --generate PROMPT (--init-from HF_DIR | --resume DIR --seq S) [--max-new-tokens N] [--top-k K]
        [--temperature T] [--seed N]       continue PROMPT (text, byte-level tokens) with the model
  train --loss-and-grads TOKENS --rows R --out FILE.safetensors [--seq S] [--init-from HF_DIR] [--seed N]
                                           one fp32 forward/backward: loss and consolidated gradients
training options:
  --steps N            optimizer steps to reach (default 100; counted from 0, a resumed run continues)
  --seq S              tokens per row (default: max_position_embeddings, at most 1024)
  --init-from HF_DIR   start from an HF checkpoint (default: the seeded init, --seed, default 1234)
  --data-seed N        data shuffle seed (default 0); --no-shuffle: rows in file order
  --eval-every N       evaluate on the held-out tail of the data every N steps (and at the end)
  --eval-fraction F    the held-out fraction (default 0.05 with --eval-every, else 0)
  --eval-batches N     micro-batches per DP rank per evaluation (default 8)
  --save-every N       checkpoint every N steps and at the end, into --save-dir (default checkpoints)
  --resume DIR         continue from a checkpoint folder, or a --save-dir (its 'latest')
  --export DIR         at the end, write DIR/model.safetensors (F32) and DIR/config.json
  --log FILE           CSV log of every step (default train_log.csv; appended to when resuming; '' for none)
  --peak-tflops X      per-rank peak for the MFU column (default: no MFU)
  --profile STEP       time every kernel call of step STEP and print the breakdown (with --peak-tflops and
                       --peak-gbps, each kernel's share of the peak)
  --peak-gbps X        per-rank memory bandwidth for --profile's table (default: not shown)
  --device D           auto (default: cuda where this build has CUDA and every rank sees a GPU), cpu or cuda
  --threads N          BLAS threads per rank on the CPU (default: cores / ranks on this host)
  --log-every N        print every N-th step (default 1)
)";

struct Options {
  std::string data, resume, export_dir, save_dir = "checkpoints", log = "train_log.csv", init_from, generate;
  DeviceKind device = DeviceKind::Auto;
  std::int64_t steps = 100, seq = 0, eval_every = 0, eval_batches = 8, save_every = 0, threads = 0, log_every = 1;
  std::int64_t max_new = 200, top_k = 0, profile = 0;
  double eval_fraction = -1, peak_tflops = 0, peak_gbps = 0, temperature = 1.0;
  std::uint64_t seed = 1234, data_seed = 0;
  bool shuffle = true;
};

/// Parses argv, or prints why not and returns nullopt.
std::optional<Options> parse(int argc, char **argv, bool &help) {
  Options o;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    auto value = [&]() -> std::optional<std::string> {
      if (a + 1 >= argc) {
        std::fprintf(stderr, "train: %s needs a value\n", arg.c_str());
        return std::nullopt;
      }
      return std::string(argv[++a]);
    };
    auto integer = [&](std::int64_t &out, std::int64_t min) -> bool {
      auto v = value();
      if (!v)
        return false;
      char *end = nullptr;
      errno = 0;
      const long long n = std::strtoll(v->c_str(), &end, 10);
      if (v->empty() || *end || errno || n < min) {
        std::fprintf(stderr, "train: %s '%s' is not an integer of at least %lld\n", arg.c_str(), v->c_str(),
                     (long long)min);
        return false;
      }
      out = n;
      return true;
    };
    auto real = [&](double &out) -> bool {
      auto v = value();
      if (!v)
        return false;
      char *end = nullptr;
      out = std::strtod(v->c_str(), &end);
      if (v->empty() || *end || !(out >= 0)) {
        std::fprintf(stderr, "train: %s '%s' is not a non-negative number\n", arg.c_str(), v->c_str());
        return false;
      }
      return true;
    };
    auto text = [&](std::string &out) -> bool {
      auto v = value();
      if (v)
        out = *v;
      return bool(v);
    };
    std::int64_t n = 0;
    bool ok = true;
    if (arg == "--help" || arg == "-h")
      help = true;
    else if (arg == "--data")
      ok = text(o.data);
    else if (arg == "--steps")
      ok = integer(o.steps, 0);
    else if (arg == "--seq")
      ok = integer(o.seq, 1);
    else if (arg == "--init-from")
      ok = text(o.init_from);
    else if (arg == "--seed")
      ok = integer(n, 0), o.seed = std::uint64_t(n);
    else if (arg == "--data-seed")
      ok = integer(n, 0), o.data_seed = std::uint64_t(n);
    else if (arg == "--no-shuffle")
      o.shuffle = false;
    else if (arg == "--eval-every")
      ok = integer(o.eval_every, 1);
    else if (arg == "--eval-fraction")
      ok = real(o.eval_fraction);
    else if (arg == "--eval-batches")
      ok = integer(o.eval_batches, 1);
    else if (arg == "--save-every")
      ok = integer(o.save_every, 1);
    else if (arg == "--save-dir")
      ok = text(o.save_dir);
    else if (arg == "--resume")
      ok = text(o.resume);
    else if (arg == "--export")
      ok = text(o.export_dir);
    else if (arg == "--log")
      ok = text(o.log);
    else if (arg == "--peak-tflops")
      ok = real(o.peak_tflops);
    else if (arg == "--peak-gbps")
      ok = real(o.peak_gbps);
    else if (arg == "--profile")
      ok = integer(o.profile, 1);
    else if (arg == "--threads")
      ok = integer(o.threads, 1);
    else if (arg == "--device") {
      std::string d;
      ok = text(d);
      if (ok) {
        auto kind = parse_device_kind(d);
        if (!kind.ok())
          std::fprintf(stderr, "train: %s\n", kind.status().message().c_str());
        ok = kind.ok();
        if (ok)
          o.device = *kind;
      }
    }
    else if (arg == "--log-every")
      ok = integer(o.log_every, 1);
    else if (arg == "--generate")
      ok = text(o.generate);
    else if (arg == "--max-new-tokens")
      ok = integer(o.max_new, 0);
    else if (arg == "--top-k")
      ok = integer(o.top_k, 0);
    else if (arg == "--temperature")
      ok = real(o.temperature);
    else {
      std::fprintf(stderr, "train: unknown argument '%s' (train --help lists them)\n", arg.c_str());
      return std::nullopt;
    }
    if (!ok)
      return std::nullopt;
  }
  if (help)
    return o;
  if (o.generate.empty() && o.data.empty()) {
    std::fprintf(stderr, "train: --data FILE is required for training (train --help)\n");
    return std::nullopt;
  }
  if (!o.generate.empty() && o.init_from.empty() && o.resume.empty()) {
    std::fprintf(stderr, "train: --generate needs weights: --init-from HF_DIR or --resume CHECKPOINT\n");
    return std::nullopt;
  }
  if (o.eval_fraction < 0)
    o.eval_fraction = o.eval_every > 0 ? 0.05 : 0.0;
  if (o.eval_fraction >= 1) {
    std::fprintf(stderr, "train: --eval-fraction must be below 1\n");
    return std::nullopt;
  }
  return o;
}

/// Peak resident memory of this process, bytes.
std::int64_t peak_rss() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::int64_t(u.ru_maxrss) * 1024;
}

std::string human(double v) {
  char b[32];
  if (v >= 1e6)
    std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else
    std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

std::string step_folder(std::int64_t step) {
  char b[32];
  std::snprintf(b, sizeof b, "step_%08lld", (long long)step);
  return b;
}

/// The run after set-up: returns the exit status.
int run(const TrainModel &model, const Options &o, const World &world, const Groups &g, Comm &tp, Comm &dp,
        Comm &all) {
  const bool lead = world.rank == 0;
  auto say_error = [&](const Status &st) {
    if (world.world_size > 1) // which rank says it: the ranks' lines interleave
      std::fprintf(stderr, "train (rank %d/%d): error: %s\n", world.rank, world.world_size, st.message().c_str());
    else
      std::fprintf(stderr, "train: error: %s\n", st.message().c_str());
    return 1;
  };
  const int threads = o.threads ? int(o.threads)
                                : std::max(1, int(std::thread::hardware_concurrency()) /
                                                  std::max(1, world.local_world_size));
  const DType working = model.zero.precision == Precision::F32    ? DType::F32
                        : model.zero.precision == Precision::BF16 ? DType::BF16
                                                                  : DType::F16;
  auto made = make_backend(o.device, working, world, g, all, threads);
  std::int32_t no_backend = made.ok() ? 0 : 1;
  if (!all.all_reduce(&no_backend, &no_backend, 1, DType::I32, ReduceOp::Max).ok() || no_backend)
    return made.ok() ? 1 : say_error(made.status());
  Backend &backend = *made;
  TrainerOptions to;
  to.seq = o.seq ? o.seq : std::min<std::int64_t>(model.shape.max_positions, 1024);
  to.init_from = o.init_from;
  to.init_seed = o.seed;
  to.data_path = o.data;
  to.data_seed = o.data_seed;
  to.shuffle = o.shuffle;
  to.eval_fraction = o.eval_fraction;
  const TrainComms comms{tp,
                         dp,
                         all,
                         g.tp_rank,
                         g.dp_rank,
                         world.rank,
                         backend.tp.get(),
                         backend.dp.get(),
                         backend.tp_ops.get(),
                         backend.engine_ops.get()};
  ProfilingKernels profiler(*backend.kernels); // forwards only, until --profile's step
  auto created = Trainer::create(model, to, comms, profiler, *backend.ops);
  std::int32_t failed = created.ok() ? 0 : 1;
  if (!all.all_reduce(&failed, &failed, 1, DType::I32, ReduceOp::Max).ok() || failed)
    return created.ok() ? 1 : say_error(created.status());
  Trainer &t = **created;
  if (!o.resume.empty())
    if (Status st = t.resume(o.resume); !st.ok())
      return say_error(st);

  if (!o.generate.empty()) {
    const std::vector<std::uint32_t> prompt = encode_bytes(o.generate);
    auto out = t.generate(prompt, o.max_new, o.top_k, o.temperature, o.seed);
    if (!out.ok())
      return say_error(out.status());
    if (lead) {
      auto text = decode_tokens(*out, "\n");
      std::printf("%s%s\n", o.generate.c_str(), text.ok() ? text->c_str() : "");
    }
    return 0;
  }

  const BatchSizes &b = t.batch();
  std::string description = backend.description;
  if (backend.kind == DeviceKind::Cuda && working == DType::BF16) // which library ran is part of the record
    if (const std::string cudnn = cuda_attention_library(t.decoder().attention_dims(b.micro_batch, t.seq()));
        !cudnn.empty())
      description += ", " + cudnn + " attention";
  char held[64] = "";
  if (o.eval_fraction > 0)
    std::snprintf(held, sizeof held, ", the last %.3g%% held out for evaluation", 100 * o.eval_fraction);
  const std::string held_out = held;
  if (lead) {
    std::printf("train: %s parameters, TP %d x DP %d, ZeRO stage %d, %s\n", human(double(t.num_parameters())).c_str(),
                tp.size(), dp.size(), int(model.zero.stage), description.c_str());
    std::printf("train: %lld rows of %lld tokens per step (micro-batch %lld x accumulation %lld x DP %d); data %s: "
                "%llu tokens, %llu rows%s\n",
                (long long)b.train_batch, (long long)t.seq(), (long long)b.micro_batch, (long long)b.grad_accum,
                dp.size(), t.data()->name().c_str(), (unsigned long long)t.data()->tokens(),
                (unsigned long long)t.data()->windows(),
                held_out.c_str());
    if (t.steps_run())
      std::printf("train: resumed at step %lld from %s\n", (long long)t.steps_run(), o.resume.c_str());
    std::fflush(stdout);
  }
  std::FILE *csv = nullptr;
  if (lead && !o.log.empty()) {
    const bool append = t.steps_run() > 0;
    csv = std::fopen(o.log.c_str(), append ? "a" : "w");
    if (!csv)
      return say_error(error("cannot write the log " + quote(o.log) + ": " + std::strerror(errno)));
    if (!append)
      std::fprintf(csv, "step,loss,eval_loss,lr,grad_norm,loss_scale,tokens_per_s,mfu,peak_mem_bytes,seconds\n");
  }
  auto save = [&](std::int64_t step) -> Status {
    const std::string name = step_folder(step);
    ATP_TRY(t.save(join_path(o.save_dir, name)));
    if (lead)
      ATP_TRY(write_latest(o.save_dir, name));
    if (lead)
      std::printf("train: saved checkpoint %s\n", join_path(o.save_dir, name).c_str());
    return {};
  };
  const auto start = std::chrono::steady_clock::now();
  std::int64_t peak_device = 0;
  while (t.steps_run() < o.steps) {
    const bool profiled = o.profile == t.steps_run() + 1;
    // A profiled step runs alone: the previous optimizer step is waited for first (it would count in the first
    // kernels' times) and its own at the end (it shows in the table's rest of the step).
    Ops *engine = profiled ? backend.engine_ops.get() : nullptr;
    if (Status done = engine ? engine->synchronize() : Status(); !done.ok())
      return say_error(done);
    profiler.enable(profiled);
    const auto t0 = std::chrono::steady_clock::now();
    auto st = t.step();
    if (!st.ok())
      return say_error(st.status());
    // The step's time: its model's kernels. The optimizer's, on the engine's stream, overlap the next step's
    // forward, whose time includes any wait for them (so over many steps the times add up to the wall time).
    if (Status done = backend.ops->synchronize(); !done.ok())
      return say_error(done);
    if (Status done = engine ? engine->synchronize() : Status(); !done.ok())
      return say_error(done);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    profiler.enable(false);
    if (profiled && lead)
      std::printf("train: the kernels of step %lld on rank 0 (%s), each call synchronized:\n%s", (long long)st->step,
                  description.c_str(), profiler.table(secs, o.peak_tflops, o.peak_gbps).c_str());
    const std::int64_t step = st->step;
    std::optional<double> eval;
    if (o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps)) {
      auto e = t.evaluate(o.eval_batches);
      if (!e.ok())
        return say_error(e.status());
      eval = *e;
    }
    // Peak memory: the process's resident set on the CPU; on a GPU the device memory in use after the step
    // (cudaMemGetInfo: the CUDA context and, where ranks share a card, theirs too).
    std::int64_t mem = peak_rss();
    if (backend.device) {
      auto used = backend.device->memory_used();
      peak_device = std::max<std::int64_t>(peak_device, used.ok() ? std::int64_t(*used) : 0);
      mem = peak_device;
    }
    if (!all.all_reduce(&mem, &mem, 1, DType::I64, ReduceOp::Max).ok())
      return 1;
    const double tps = double(st->tokens) / secs;
    const double mfu = o.peak_tflops > 0 ? tps * t.flops_per_token() / (o.peak_tflops * 1e12 * all.size()) : 0;
    if (lead && (step % o.log_every == 0 || step == o.steps || eval)) {
      std::printf("step %5lld/%lld | loss %.4f", (long long)step, (long long)o.steps, st->loss);
      if (eval)
        std::printf(" | eval %.4f", *eval);
      std::printf(" | lr %.3e | grad norm %.3f | %s tok/s", st->lr, st->grad_norm, human(tps).c_str());
      if (o.peak_tflops > 0)
        std::printf(" | MFU %.2f%%", 100 * mfu);
      std::printf(" | peak mem %.0f MiB | %.3f s%s\n", double(mem) / (1 << 20), secs,
                  st->overflow ? " | overflow: step skipped" : "");
      std::fflush(stdout);
    }
    if (csv) {
      std::fprintf(csv, "%lld,%.9g,", (long long)step, st->loss);
      if (eval)
        std::fprintf(csv, "%.9g", *eval);
      std::fprintf(csv, ",%.9g,%.9g,%.9g,%.6g,%.6g,%lld,%.6f\n", st->lr, st->grad_norm, st->loss_scale, tps, mfu,
                   (long long)mem, secs);
      std::fflush(csv);
    }
    if (o.save_every > 0 && (step % o.save_every == 0 || step == o.steps)) {
      if (Status s = save(step); !s.ok())
        return say_error(s);
    }
  }
  if (csv)
    std::fclose(csv);
  if (lead)
    std::printf("train: %lld steps in %.1f s\n", (long long)o.steps,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (!o.export_dir.empty()) {
    if (Status s = t.export_hf(o.export_dir); !s.ok())
      return say_error(s);
    if (lead)
      std::printf("train: exported %s/model.safetensors and config.json\n", o.export_dir.c_str());
  }
  return 0;
}

} // namespace

int train_main(const TrainModel &model, int argc, char **argv) {
  for (int a = 1; a < argc; ++a)
    if (std::string(argv[a]) == "--loss-and-grads")
      return loss_and_grads_main(model.plan, model.shape, model.params, argc, argv);
  bool help = false;
  const std::optional<Options> o = parse(argc, argv, help);
  if (help) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (!o) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  const World world = ATP_CHECK_OK(World::from_env());
  if (launch_uses_mpi(world.launcher)) // torchrun starts plain processes: the host comms go over TCP
    ATP_CHECK_OK(mpi_init(&argc, &argv));
  set_process_identity(world.rank, world.world_size);
  const Groups g = ATP_CHECK_OK(make_groups(world, model.plan.tp_size));
  HostMesh mesh = ATP_CHECK_OK(make_host_mesh(world.rank, world.world_size, model.plan.tp_size));
  const int status = run(model, *o, world, g, *mesh.tp, *mesh.dp, *mesh.world);
  mesh = {};
  (void)mpi_finalize();
  return status;
}

} // namespace atp
