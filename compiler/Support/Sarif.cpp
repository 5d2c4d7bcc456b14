//===- Sarif.cpp - SARIF 2.1.0 output for CI annotations ----------------===//
//
// The subset of SARIF that GitHub code scanning and other CI viewers read:
// tool.driver with rules, results with level, message, ruleId, one physical
// location and related locations for notes.
//
//===----------------------------------------------------------------------===//
#include "Support/Sarif.h"

#include <nlohmann/json.hpp>

using namespace autotpc;
using nlohmann::ordered_json;

static ordered_json location(const DiagRecord &R) {
  ordered_json Phys;
  Phys["artifactLocation"] = {{"uri", R.File}};
  if (R.Line) {
    Phys["region"] = {{"startLine", R.Line}, {"startColumn", R.Column}};
    if (R.EndColumn > R.Column)
      Phys["region"]["endColumn"] = R.EndColumn;
  }
  return ordered_json{{"physicalLocation", Phys}};
}

static std::string ruleId(const DiagRecord &R) {
  if (!R.Flag.empty())
    return "autotpc." + R.Flag;
  return R.Kind == DiagKind::Note ? "autotpc.note" : "autotpc.error";
}

void autotpc::writeSarif(llvm::raw_ostream &OS, const std::vector<DiagRecord> &Records,
                         llvm::StringRef ToolName, llvm::StringRef ToolVersion) {
  ordered_json Rules = ordered_json::array();
  std::vector<std::string> Seen;
  ordered_json Results = ordered_json::array();
  for (const DiagRecord &R : Records) {
    std::string Id = ruleId(R);
    if (std::find(Seen.begin(), Seen.end(), Id) == Seen.end()) {
      Seen.push_back(Id);
      Rules.push_back({{"id", Id}});
    }
    ordered_json Res;
    Res["ruleId"] = Id;
    Res["level"] = R.Kind == DiagKind::Error ? "error" : R.Kind == DiagKind::Warning ? "warning" : "note";
    Res["message"] = {{"text", R.Message}};
    Res["locations"] = ordered_json::array();
    if (!R.File.empty())
      Res["locations"].push_back(location(R));
    if (!R.Notes.empty()) {
      ordered_json Related = ordered_json::array();
      int Id2 = 0;
      for (const DiagRecord &N : R.Notes) {
        ordered_json Rel = N.File.empty() ? ordered_json::object() : location(N);
        Rel["id"] = Id2++;
        Rel["message"] = {{"text", N.Message}};
        Related.push_back(Rel);
      }
      Res["relatedLocations"] = Related;
    }
    Results.push_back(Res);
  }
  ordered_json Log;
  Log["$schema"] = "https://json.schemastore.org/sarif-2.1.0.json";
  Log["version"] = "2.1.0";
  ordered_json Driver = {{"name", ToolName.str()},
                         {"version", ToolVersion.str()},
                         {"rules", Rules}};
  Log["runs"] = ordered_json::array({{{"tool", {{"driver", Driver}}}, {"results", Results}}});
  // Messages may quote bytes of a malformed input: replace invalid UTF-8.
  OS << Log.dump(2, ' ', false, ordered_json::error_handler_t::replace) << "\n";
}
