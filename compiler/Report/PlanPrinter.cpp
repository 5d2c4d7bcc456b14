//===- PlanPrinter.cpp - --emit=plan: each TP rank's shards --------------===//
#include "IR/IRPrinter.h"
#include "Report/Reports.h"

using namespace autotpc;

void autotpc::printPlan(const Module &M, llvm::raw_ostream &OS) {
  OS << "// autotpc shard plan of " << M.ConfigPath << "\n";
  OS << "plan tp_size=" << M.TpSize << " params=" << M.Params.size() << " model=\"" << M.ModelDescription << "\"\n";
  for (int64_t R = 0; R < M.TpSize; ++R) {
    int64_t Elems = 0;
    OS << "tp_rank " << R << ":\n";
    for (const Param &P : M.Params) {
      const Shard &S = P.Shards[size_t(R)];
      int64_t N = 1;
      for (int64_t D : S.Shape)
        N = saturatingMul(N, D);
      Elems = saturatingAdd(Elems, N);
      OS << "  " << P.Info.Name << " " << shapeString(S.Shape) << " " << partKindName(P.Part.Kind);
      if (S.Boxes.empty())
        OS << " (empty)";
      for (const Box &B : S.Boxes)
        OS << " " << boxString(B);
      OS << "\n";
    }
    OS << "tp_rank " << R << " holds " << Elems << " elements\n";
  }
}
