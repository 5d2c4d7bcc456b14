//===- autotpc.cpp - the autotpc command-line driver --------------------===//
//
// Thin: parses flags into autotpc::Options and runs the pipeline.
//
//   autotpc CONFIG.json [--model PATH] [--world-size N] [--check]
//           [--emit=ir|plan|memory|zero|cpp] [-o DIR] [--Werror] [-Wno-GROUP]
//           [--diagnostics-format=text|sarif]
//
//===----------------------------------------------------------------------===//
#include "Driver/Driver.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

static cl::OptionCategory Category("autotpc options");

static cl::opt<std::string> ConfigPath(cl::Positional, cl::desc("<DeepSpeed config.json>"), cl::Required,
                                       cl::cat(Category));
static cl::opt<std::string> ModelPath("model",
                                      cl::desc("HF config.json, model.safetensors, model.safetensors.index.json "
                                               "or a folder; overrides the config's \"model\" key"),
                                      cl::value_desc("path"), cl::cat(Category));
static cl::opt<int64_t> WorldSize("world-size", cl::desc("number of ranks (tp x dp) the job will run on"),
                                  cl::value_desc("N"), cl::init(0), cl::cat(Category));
static cl::opt<int64_t> Seq("seq", cl::desc("tokens per row for --emit=memory's activations (default: "
                                             "max_position_embeddings, at most 1024, as train's --seq)"),
                            cl::value_desc("S"), cl::init(0), cl::cat(Category));
static cl::opt<bool> Check("check", cl::desc("verify the spec and print a one-line summary (the default)"),
                           cl::cat(Category));
static cl::opt<autotpc::Options::Emit> Emit(
    "emit", cl::desc("what to print"), cl::init(autotpc::Options::Emit::Summary),
    cl::values(clEnumValN(autotpc::Options::Emit::IR, "ir", "the partition IR"),
               clEnumValN(autotpc::Options::Emit::Plan, "plan", "each TP rank's shards and their ranges"),
               clEnumValN(autotpc::Options::Emit::Memory, "memory", "per-GPU bytes of the model states"),
               clEnumValN(autotpc::Options::Emit::Zero, "zero",
                          "each TP rank's ZeRO flat layout, buckets, padded DP partitions and settings"),
               clEnumValN(autotpc::Options::Emit::Cpp, "cpp", "the generated project's files, to stdout")),
    cl::cat(Category));
static cl::opt<bool> Werror("Werror", cl::desc("treat warnings as errors"), cl::cat(Category));
static cl::list<std::string> Warnings("W", cl::Prefix, cl::desc("-Wno-GROUP silences a warning group"),
                                      cl::value_desc("no-GROUP"), cl::cat(Category));
static cl::opt<autotpc::DiagEngine::Format> DiagFormat(
    "diagnostics-format", cl::desc("how diagnostics are written to stderr"),
    cl::init(autotpc::DiagEngine::Format::Text),
    cl::values(clEnumValN(autotpc::DiagEngine::Format::Text, "text", "file:line:col: error: ... with a caret"),
               clEnumValN(autotpc::DiagEngine::Format::Sarif, "sarif", "a SARIF 2.1.0 log for CI annotations")),
    cl::cat(Category));
static cl::opt<std::string> OutputDir("o", cl::desc("write the generated C++ project (shard plan, shard and "
                                                    "consolidate tools) into this folder"),
                                      cl::value_desc("dir"), cl::cat(Category));
static cl::opt<bool> NoOriginComments("no-origin-comments",
                                      cl::desc("leave out the spec locations in generated code"), cl::cat(Category));

/// An address inside this executable, for getMainExecutable where argv[0] is all it has.
static void anchor() {}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::HideUnrelatedOptions(Category);
  cl::SetVersionPrinter([](raw_ostream &OS) { OS << "autotpc " << autotpc::Version << "\n"; });
  cl::ParseCommandLineOptions(argc, argv,
                              "autotpc: an ahead-of-time compiler for DeepSpeed AutoTP training configs\n");
  autotpc::Options Opts;
  Opts.ConfigPath = ConfigPath;
  Opts.ModelPath = ModelPath;
  if (WorldSize.getNumOccurrences()) {
    if (WorldSize <= 0) {
      WithColor::error(errs(), "autotpc") << "--world-size must be positive (got " << WorldSize << ")\n";
      return 1;
    }
    Opts.WorldSize = WorldSize;
  }
  if (Seq.getNumOccurrences()) {
    if (Seq <= 0) {
      WithColor::error(errs(), "autotpc") << "--seq must be positive (got " << Seq << ")\n";
      return 1;
    }
    Opts.Seq = Seq;
  }
  Opts.What = Emit;
  Opts.WarningsAsErrors = Werror;
  Opts.DiagFormat = DiagFormat;
  for (const std::string &W : Warnings) {
    StringRef Group(W);
    if (!Group.consume_front("no-") || !autotpc::DiagEngine::isKnownWarning(Group)) {
      WithColor::error(errs(), "autotpc") << "unknown warning option '-W" << W << "'; groups:";
      for (const char *G : autotpc::DiagEngine::warningGroups())
        errs() << " " << G;
      errs() << "\n";
      return 1;
    }
    Opts.DisabledWarnings.push_back(Group.str());
  }
  Opts.OutputDir = OutputDir;
  Opts.OriginComments = !NoOriginComments;
  // The build tree (build/bin/autotpc) and an install (P/bin/autotpc) both
  // hold their runtime's CMake package under the folder above bin/.
  std::string Exe = sys::fs::getMainExecutable(argv[0], reinterpret_cast<void *>(&anchor));
  if (!Exe.empty())
    Opts.GeneratorPrefix = sys::path::parent_path(sys::path::parent_path(Exe)).str();
  (void)Check; // --check is the default action; the flag documents intent in CI scripts
  return autotpc::runCompiler(Opts, outs(), errs());
}
