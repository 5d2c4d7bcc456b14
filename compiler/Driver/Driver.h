//===- Driver.h - the autotpc pipeline behind the command line ----------===//
//
// Parse the DeepSpeed config, load the model, build the IR, verify, emit.
// The command-line tool only fills Options; benchmarks and the fuzzer call
// runCompiler directly.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_DRIVER_DRIVER_H
#define AUTOTPC_DRIVER_DRIVER_H

#include "Support/Diagnostics.h"

#include <optional>
#include <string>
#include <vector>

namespace autotpc {

/// The version printed by --version and written into SARIF logs.
extern const char *const Version;

struct Options {
  enum class Emit { Summary, IR, Plan, Memory, Zero, Cpp };
  std::string ConfigPath;
  /// When set, the config's text (ConfigPath only names it in messages);
  /// lets the fuzzer and benchmarks run without files.
  std::optional<std::string> ConfigText;
  std::string ModelPath;                  ///< --model; overrides the config's "model" key
  std::optional<int64_t> WorldSize;       ///< --world-size
  /// --seq: tokens per row for --emit=memory's activations (default: max_position_embeddings, at most 1024,
  /// as train's --seq)
  std::optional<int64_t> Seq;
  Emit What = Emit::Summary;
  bool WarningsAsErrors = false;
  std::vector<std::string> DisabledWarnings;
  DiagEngine::Format DiagFormat = DiagEngine::Format::Text;
  std::string OutputDir;                  ///< -o: write the generated project here
  bool OriginComments = true;             ///< --no-origin-comments clears it
  /// The folder above the running autotpc's bin/ (its build tree or install
  /// prefix); with -o it goes into autotpc-paths.cmake, where the generated
  /// project looks for its runtime. Empty: no such file.
  std::string GeneratorPrefix;
};

/// Runs the pipeline; the emitted text goes to Out, diagnostics to Diag.
/// Returns the process exit code: 0 clean, 1 if any error was reported.
int runCompiler(const Options &Opts, llvm::raw_ostream &Out, llvm::raw_ostream &Diag);

} // namespace autotpc

#endif // AUTOTPC_DRIVER_DRIVER_H
