//===- ModelConfigFuzzer.cpp - libFuzzer target: an inline HF config -----===//
//
// Wraps the input as the inline "model" of a fixed DeepSpeed config (llama
// preset, autotp_size 2), so every input reaches the HF-config frontend
// (family dispatch, dimension derivation, parameter inventory) and, when it
// describes a model, the IR builder and the verifier.
//
//===----------------------------------------------------------------------===//
#include "Driver/Driver.h"

#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  std::string Text = R"({"train_micro_batch_size_per_gpu":1,"model": )";
  Text.append(reinterpret_cast<const char *>(Data), Size);
  Text += R"(, "tensor_parallel":{"autotp_size":2,"preset_model":"llama"}})";
  autotpc::Options Opts;
  Opts.ConfigPath = "model-fuzz.json";
  Opts.ConfigText = std::move(Text);
  Opts.What = autotpc::Options::Emit::IR;
  autotpc::runCompiler(Opts, llvm::nulls(), llvm::nulls());
  return 0;
}
