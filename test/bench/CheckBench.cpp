//===- CheckBench.cpp - how long `autotpc --check` takes on Llama-3.1-405B -===//
//
// Times the whole pipeline on specs/examples/llama-405b-tp8.json (Llama-3.1-
// 405B, llama preset, autotp_size 8, ZeRO 2, bf16, world 64): once in
// process through runCompiler, and once as a process (posix_spawn of the
// built autotpc --check), so the second number includes process start, the
// dynamic loader and LLVM's static initializers. The goal is under 20 ms.
// Each is repeated 20 times; read the median. Not a test: run it with
// tools/bench-check.sh.
//
//===----------------------------------------------------------------------===//
#include "Driver/Driver.h"

#include "llvm/Support/raw_ostream.h"

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <string>

#if !defined(AUTOTPC_BENCH_CONFIG) || !defined(AUTOTPC_BENCH_AUTOTPC)
#error "AUTOTPC_BENCH_CONFIG and AUTOTPC_BENCH_AUTOTPC must name the config and the autotpc binary"
#endif

extern char **environ;

namespace {

constexpr int64_t WorldSize = 64;

/// runCompiler as `autotpc --check` calls it, the config read from disk.
void BM_CheckInProcess(benchmark::State &State) {
  autotpc::Options Opts;
  Opts.ConfigPath = AUTOTPC_BENCH_CONFIG;
  Opts.WorldSize = WorldSize;
  std::string Summary;
  for (auto _ : State) {
    Summary.clear();
    llvm::raw_string_ostream Out(Summary);
    if (autotpc::runCompiler(Opts, Out, llvm::nulls()) != 0) {
      State.SkipWithError("autotpc reported errors on the benchmark config");
      break;
    }
    benchmark::DoNotOptimize(Summary.data());
  }
}

/// Spawns `autotpc --check CONFIG --world-size=64` with stdout and stderr on
/// /dev/null and waits for it; returns its exit status, or -1.
int spawnCheck() {
  static const std::string World = "--world-size=" + std::to_string(WorldSize);
  const char *Argv[] = {AUTOTPC_BENCH_AUTOTPC, "--check", AUTOTPC_BENCH_CONFIG, World.c_str(), nullptr};
  posix_spawn_file_actions_t Actions;
  posix_spawn_file_actions_init(&Actions);
  posix_spawn_file_actions_addopen(&Actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&Actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t Pid;
  int Err = posix_spawn(&Pid, Argv[0], &Actions, nullptr, const_cast<char **>(Argv), environ);
  posix_spawn_file_actions_destroy(&Actions);
  if (Err != 0)
    return -1;
  int Status = 0;
  if (waitpid(Pid, &Status, 0) != Pid || !WIFEXITED(Status))
    return -1;
  return WEXITSTATUS(Status);
}

/// The whole process, as CI runs it: wall time, start to exit.
void BM_CheckProcess(benchmark::State &State) {
  for (auto _ : State) {
    if (spawnCheck() != 0) {
      State.SkipWithError("autotpc --check failed or could not be started");
      break;
    }
  }
}

} // namespace

BENCHMARK(BM_CheckInProcess)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Repetitions(20)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_CheckProcess)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Repetitions(20)
    ->ReportAggregatesOnly(true);

BENCHMARK_MAIN();
