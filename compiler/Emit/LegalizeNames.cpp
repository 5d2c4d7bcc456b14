//===- LegalizeNames.cpp - C++ identifiers for parameters, decided once -===//
#include "Emit/LegalizeNames.h"

#include "llvm/ADT/StringSet.h"

using namespace autotpc;

std::vector<std::string> autotpc::legalizeNames(const Module &M) {
  std::vector<std::string> Names;
  llvm::StringSet<> Used;
  for (const Param &P : M.Params) {
    std::string Id = "p_";
    for (char C : P.Info.Name)
      Id += std::isalnum(static_cast<unsigned char>(C)) ? C : '_';
    std::string Unique = Id;
    for (int N = 2; !Used.insert(Unique).second; ++N)
      Unique = Id + "_" + std::to_string(N);
    Names.push_back(Unique);
  }
  return Names;
}
