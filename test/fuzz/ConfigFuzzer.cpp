//===- ConfigFuzzer.cpp - libFuzzer target: a whole DeepSpeed config -----===//
//
// Feeds the input as the DeepSpeed config text through runCompiler, so the
// JSON reader, config parser, layer specs, presets, model frontend (inline
// "model" objects and model paths), IR builder, verifier and emitters all
// see it. Output and diagnostics are dropped; only crashes, sanitizer
// reports, leaks, hangs and OOMs count.
//
//===----------------------------------------------------------------------===//
#include "Driver/Driver.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>

#ifndef AUTOTPC_FUZZ_CONFIG_PATH
#error "AUTOTPC_FUZZ_CONFIG_PATH must name a path in specs/examples/"
#endif

/// A "model" path may name any file; keep the fuzzer off files that never
/// end (/dev/zero, /dev/stdin) or that change under it (/proc, /sys).
static bool namesSpecialFile(llvm::StringRef Text) {
  return Text.contains("/dev") || Text.contains("/proc") || Text.contains("/sys");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  llvm::StringRef Text(reinterpret_cast<const char *>(Data), Size);
  if (namesSpecialFile(Text))
    return 0;
  autotpc::Options Opts;
  // Relative "model" paths resolve against specs/examples/, so seeds can say
  // "../models/Llama-3.1-8B.json" as the examples do.
  Opts.ConfigPath = AUTOTPC_FUZZ_CONFIG_PATH;
  Opts.ConfigText = Text.str();
  Opts.What = autotpc::Options::Emit::IR;
  // JSON allows trailing whitespace, so the last byte picks the other
  // emitters and SARIF diagnostics without making the text invalid; the
  // same input always takes the same path.
  switch (Size ? Data[Size - 1] : 0) {
  case ' ': Opts.What = autotpc::Options::Emit::Plan; break;
  case '\t': Opts.What = autotpc::Options::Emit::Memory; break;
  case '\r': Opts.DiagFormat = autotpc::DiagEngine::Format::Sarif; break;
  default: break;
  }
  autotpc::runCompiler(Opts, llvm::nulls(), llvm::nulls());
  return 0;
}
