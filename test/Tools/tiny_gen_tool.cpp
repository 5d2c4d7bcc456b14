//===- tiny_gen_tool.cpp - a generated tool's main for a tiny spec -------===//
//
// The lit tests of test/Tools/ drive the generated `shard` and `consolidate`
// command lines. A generated project (autotpc -o) cannot be added to the
// build at configure time, so this driver compiles specs/tiny/FAMILY.ds.json
// at TP in process (test/roundtrip/PlanLoader.h) and runs the very entry
// point a generated main calls, atp::shard_main / atp::consolidate_main,
// with the remaining arguments:
//
//   tiny-gen-tool FAMILY TP shard --in HF_CHECKPOINT --out SHARDS/
//   tiny-gen-tool FAMILY TP consolidate --in SHARDS/ --out HF_CHECKPOINT
//
// Exit codes and output are the tool's own.
//
//===----------------------------------------------------------------------===//
#include "PlanLoader.h"

#include "atp/checkpoint_tools.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  if (argc < 4 || (std::string(argv[3]) != "shard" && std::string(argv[3]) != "consolidate")) {
    std::fprintf(stderr, "usage: %s FAMILY TP shard|consolidate ARGS...\n", argv[0]);
    return 2;
  }
  autotpc::LoadedPlan Plan;
  std::string Diags = autotpc::compileTiny(argv[1], std::atoi(argv[2]), Plan);
  if (!Diags.empty()) {
    std::fprintf(stderr, "%s: cannot compile specs/tiny/%s.ds.json at TP %s:\n%s", argv[0], argv[1], argv[2],
                 Diags.c_str());
    return 2;
  }
  // argv[0] of the tool is its name, as a generated binary's would be.
  std::vector<char *> ToolArgs(argv + 3, argv + argc);
  ToolArgs.push_back(nullptr);
  int ToolArgc = argc - 3;
  return std::string(argv[3]) == "shard" ? atp::shard_main(Plan.Plan, ToolArgc, ToolArgs.data())
                                         : atp::consolidate_main(Plan.Plan, ToolArgc, ToolArgs.data());
}
