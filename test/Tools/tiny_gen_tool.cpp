//===- tiny_gen_tool.cpp - a generated tool's main for a tiny spec -------===//
//
// The lit tests of test/Tools/ drive the generated `shard` and `consolidate`
// command lines. A generated project (autotpc -o) cannot be added to the
// build at configure time, so this driver compiles specs/tiny/FAMILY.ds.json
// at TP in process (test/roundtrip/PlanLoader.h) and runs the very entry
// point a generated main calls, atp::shard_main / atp::consolidate_main,
// with the remaining arguments:
//
//   tiny-gen-tool FAMILY TP [--override JSON] shard --in HF_CHECKPOINT --out SHARDS/
//   tiny-gen-tool FAMILY TP [--override JSON] consolidate --in SHARDS/ --out HF_CHECKPOINT
//
// --override merges JSON into the tiny DeepSpeed config first (a JSON merge
// patch, as compileTinyZero does), e.g. to add layer_specs.
//
// Exit codes and output are the tool's own.
//
//===----------------------------------------------------------------------===//
#include "PlanLoader.h"

#include "atp/checkpoint_tools.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  int Tool = 3; // argv index of the tool's name
  nlohmann::json Overrides;
  if (argc > 5 && std::string(argv[3]) == "--override") {
    Overrides = nlohmann::json::parse(argv[4], nullptr, /*allow_exceptions=*/false);
    if (Overrides.is_discarded()) {
      std::fprintf(stderr, "%s: --override is not JSON: %s\n", argv[0], argv[4]);
      return 2;
    }
    Tool = 5;
  }
  if (argc <= Tool || (std::string(argv[Tool]) != "shard" && std::string(argv[Tool]) != "consolidate")) {
    std::fprintf(stderr, "usage: %s FAMILY TP [--override JSON] shard|consolidate ARGS...\n", argv[0]);
    return 2;
  }
  autotpc::LoadedPlan Plan;
  autotpc::LoadedZero Zero;
  std::string Diags = Overrides.is_null()
                          ? autotpc::compileTiny(argv[1], std::atoi(argv[2]), Plan)
                          : autotpc::compileTinyZero(argv[1], std::atoi(argv[2]), Overrides, Plan, Zero);
  if (!Diags.empty()) {
    std::fprintf(stderr, "%s: cannot compile specs/tiny/%s.ds.json at TP %s:\n%s", argv[0], argv[1], argv[2],
                 Diags.c_str());
    return 2;
  }
  // argv[0] of the tool is its name, as a generated binary's would be.
  std::vector<char *> ToolArgs(argv + Tool, argv + argc);
  ToolArgs.push_back(nullptr);
  int ToolArgc = argc - Tool;
  return std::string(argv[Tool]) == "shard" ? atp::shard_main(Plan.Plan, ToolArgc, ToolArgs.data())
                                            : atp::consolidate_main(Plan.Plan, ToolArgc, ToolArgs.data());
}
