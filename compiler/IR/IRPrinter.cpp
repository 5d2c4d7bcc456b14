//===- IRPrinter.cpp - --emit=ir, the textual form of the IR -------------===//
//
// One line per fact, greppable keys, no addresses or timestamps:
//
//   spec #1 column ".*\.self_attn\.[qkv]_proj\.weight$" (preset 'llama' spec 1) at specs/presets/llama.json:6:19 matches=96 decides=96
//   param "model.layers.0.self_attn.q_proj.weight" BF16[2048, 2048] role=attn_q layer=0
//     column dim=0 logical=[2048, 2048] sub=[2048] spec=#1
//     rank 0: 0+512
//
//===----------------------------------------------------------------------===//
#include "IR/IRPrinter.h"

using namespace autotpc;

std::string autotpc::locString(const llvm::SourceMgr &SM, const Loc &L) {
  if (!L.isValid())
    return L.File.empty() ? "<none>" : L.File;
  unsigned Buf = SM.FindBufferContainingLoc(L.Range.Start);
  auto LC = SM.getLineAndColumn(L.Range.Start, Buf);
  return SM.getMemoryBuffer(Buf)->getBufferIdentifier().str() + ":" + std::to_string(LC.first) + ":" +
         std::to_string(LC.second);
}

std::string autotpc::shapeString(const std::vector<int64_t> &Shape) {
  std::string S = "[";
  for (size_t I = 0; I < Shape.size(); ++I)
    S += (I ? ", " : "") + std::to_string(Shape[I]);
  return S + "]";
}

std::string autotpc::boxString(const Box &B) {
  std::string S = "[";
  for (size_t I = 0; I < B.Ranges.size(); ++I)
    S += (I ? ", " : "") + std::to_string(B.Ranges[I].first) + ":" + std::to_string(B.Ranges[I].second);
  return S + "]";
}

static void printSpec(const Module &M, size_t I, const llvm::SourceMgr &SM, llvm::raw_ostream &OS) {
  const LayerSpec &S = M.Specs[I];
  OS << "spec #" << I << " " << partitionTypeName(S.Type);
  for (const std::string &P : S.Patterns)
    OS << " \"" << P << "\"";
  if (S.Shape) {
    OS << " shape=[";
    for (size_t J = 0; J < S.Shape->size(); ++J) {
      const ShapeEntry &E = (*S.Shape)[J];
      OS << (J ? ", " : "");
      if (E.IsList)
        OS << shapeString(E.Sizes);
      else
        OS << E.Value;
    }
    OS << "] partition_dim=" << S.partitionDim();
  }
  if (S.GatherOutput)
    OS << " gather_output";
  if (S.GradAllreduce)
    OS << " grad_allreduce";
  OS << " (" << S.Origin << ") at " << locString(SM, S.anchor()) << " matches=" << M.SpecMatches[I]
     << " decides=" << M.SpecWins[I] << "\n";
}

void autotpc::printIR(const Module &M, const llvm::SourceMgr &SM, llvm::raw_ostream &OS) {
  OS << "// autotpc IR of " << M.ConfigPath << "\n";
  OS << "module tp_size=" << M.TpSize << " model=\"" << M.ModelDescription << "\""
     << " model_type=" << (M.ModelType.empty() ? "unknown" : M.ModelType) << " params=" << M.Params.size() << "\n";
  if (M.Dims) {
    const ModelDims &D = *M.Dims;
    OS << "dims hidden=" << D.Hidden.Value << " layers=" << D.NumLayers.Value << " heads=" << D.NumHeads.Value
       << " kv_heads=" << D.NumKVHeads.Value << " head_dim=" << D.HeadDim.Value
       << " intermediate=" << D.Intermediate.Value << " vocab=" << D.Vocab.Value
       << " tied=" << (D.TiedEmbeddings ? "true" : "false");
    if (D.NumExperts.Value)
      OS << " experts=" << D.NumExperts.Value << " moe_intermediate=" << D.MoeIntermediate.Value;
    OS << "\n";
  }
  for (size_t I = 0; I < M.Specs.size(); ++I)
    printSpec(M, I, SM, OS);
  for (const Param &P : M.Params) {
    OS << "param \"" << P.Info.Name << "\" " << P.Info.DType << shapeString(P.Info.Shape)
       << " role=" << roleName(P.Info.R);
    if (P.Info.Layer >= 0)
      OS << " layer=" << P.Info.Layer;
    OS << "\n  " << partKindName(P.Part.Kind) << " (" << decisionName(P.Part.Why) << ")";
    if (P.Part.Kind != PartKind::Replicate)
      OS << " dim=" << P.Part.PartitionDim << " logical=" << shapeString(P.Part.Logical)
         << " sub=" << shapeString(P.Part.SubSizes);
    if (P.Part.Kind == PartKind::Column && P.isWeight2D())
      OS << " bias_dim=" << (P.Part.BiasPartitionDim ? std::to_string(*P.Part.BiasPartitionDim) : "none");
    if (P.Part.SpecIndex >= 0)
      OS << " spec=#" << P.Part.SpecIndex;
    if (P.WeightIndex >= 0)
      OS << " weight=\"" << M.Params[size_t(P.WeightIndex)].Info.Name << "\"";
    OS << "\n";
    if (P.Part.Kind == PartKind::Replicate)
      continue;
    for (size_t R = 0; R < P.Part.RankSizes.size(); ++R) {
      OS << "  rank " << R << ":";
      int64_t SubStart = 0;
      for (size_t I = 0; I < P.Part.SubSizes.size(); ++I) {
        int64_t Before = 0;
        for (size_t Q = 0; Q < R; ++Q)
          Before += P.Part.RankSizes[Q][I];
        OS << " " << SubStart + Before << "+" << P.Part.RankSizes[R][I];
        SubStart += P.Part.SubSizes[I];
      }
      OS << "\n";
    }
  }
}
