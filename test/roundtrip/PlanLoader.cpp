//===- PlanLoader.cpp - compile a tiny spec in process, as plan tables ---===//
#include "PlanLoader.h"

#include "IR/Builder.h"
#include "Spec/Config.h"
#include "Support/JsonDoc.h"
#include "Verify/Verifier.h"

#include "llvm/Support/MemoryBuffer.h"

#include <fstream>
#include <nlohmann/json.hpp>

using namespace autotpc;

const char *const autotpc::TinyFamilies[8] = {"llama", "mistral", "qwen2", "phi3",
                                              "mixtral", "deepseek_v2", "bloom", "chatglm"};

static std::string tinyDir() { return std::string(AUTOTPC_SPECS_DIR) + "/tiny"; }

std::string autotpc::compileTiny(const std::string &Family, int Tp, LoadedPlan &Out) {
  std::ifstream In(tinyDir() + "/" + Family + ".ds.json");
  nlohmann::json Cfg = nlohmann::json::parse(In);
  Cfg["tensor_parallel"]["autotp_size"] = Tp;
  Cfg["model"] = tinyDir() + "/" + Family + ".json";
  std::string Text = Cfg.dump(2), Diag;
  llvm::raw_string_ostream DiagOS(Diag);
  llvm::SourceMgr SM;
  DiagEngine Diags(SM, DiagOS);
  unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Text, Family + ".ds.json"), llvm::SMLoc());
  std::vector<std::unique_ptr<JsonDoc>> Docs;
  Docs.push_back(JsonDoc::parse(Diags, ID));
  Config C;
  if (!Docs.back() || !parseConfig(*Docs.back(), Diags, C))
    return DiagOS.str();
  std::optional<LoadedModel> Model = loadModel(C, *Docs.back(), "", Diags, Docs);
  if (!Model)
    return DiagOS.str();
  std::optional<Module> M = buildModule(C, *Model, Diags);
  Topology Topo;
  if (!M || !verifyModule(VerifyContext{*M, C, *Model, Diags, std::nullopt}, Topo) || Diags.hasErrors())
    return DiagOS.str();
  Out.Tables = planTables(*M);
  Out.Fingerprint = planFingerprint(*M);
  for (const PlanTableParam &T : Out.Tables) {
    Out.Boxes.emplace_back();
    for (const auto &B : T.Boxes)
      Out.Boxes.back().push_back({{B[0], B[1]}, {B[2], B[3]}});
    Out.Ranks.emplace_back();
    for (const auto &R : T.Ranks)
      Out.Ranks.back().push_back({int32_t(R[0]), int32_t(R[1]), R[2], R[3]});
  }
  for (size_t I = 0; I < Out.Tables.size(); ++I) {
    const PlanTableParam &T = Out.Tables[I];
    atp::Split S = T.Kind == PartKind::Row      ? atp::Split::Row
                   : T.Kind == PartKind::Column ? atp::Split::Column
                                                : atp::Split::Replicate;
    Out.Params.push_back({T.Name.c_str(), *atp::dtype_from_name(T.DType), int32_t(M->Params[I].Info.Shape.size()),
                          T.Shape.data(), T.Rows, T.Cols, S, int32_t(T.ConcatDim), Out.Boxes[I].data(),
                          Out.Ranks[I].data()});
  }
  Out.Plan = {Out.Fingerprint.c_str(), int32_t(M->TpSize), int32_t(Out.Params.size()), Out.Params.data()};
  return "";
}
