//===- Driver.cpp - the autotpc pipeline behind the command line --------===//
#include "Driver/Driver.h"
#include "Emit/Emitter.h"
#include "IR/Builder.h"
#include "IR/IRPrinter.h"
#include "Lower/ZeroSettings.h"
#include "Report/Reports.h"
#include "Spec/Config.h"
#include "Verify/Verifier.h"

#include "llvm/Support/MemoryBuffer.h"

using namespace autotpc;

const char *const autotpc::Version = "0.1.0";

/// "ok: 147 parameters (96 column, 32 row, 19 replicated), tp 4, dp 2, ZeRO 2, bf16".
static void printSummary(const Module &M, const Config &C, const Topology &Topo, const DiagEngine &Diags,
                         llvm::raw_ostream &OS) {
  unsigned Col = 0, Row = 0, Rep = 0;
  for (const Param &P : M.Params)
    (P.Part.Kind == PartKind::Column ? Col : P.Part.Kind == PartKind::Row ? Row : Rep)++;
  OS << C.Path << ": ok: " << M.Params.size() << " parameters (" << Col << " column, " << Row << " row, " << Rep
     << " replicated), tp " << M.TpSize << ", dp ";
  if (Topo.Dp)
    OS << *Topo.Dp;
  else
    OS << "?";
  OS << ", ZeRO " << C.Zero.Stage << ", " << precisionName(C.Prec);
  if (Diags.warningCount())
    OS << ", " << Diags.warningCount() << " warning" << (Diags.warningCount() == 1 ? "" : "s");
  OS << "\n";
}

int autotpc::runCompiler(const Options &Opts, llvm::raw_ostream &Out, llvm::raw_ostream &Diag) {
  llvm::SourceMgr SM;
  DiagEngine Diags(SM, Diag);
  Diags.setFormat(Opts.DiagFormat);
  Diags.setWarningsAsErrors(Opts.WarningsAsErrors);
  for (const std::string &W : Opts.DisabledWarnings)
    Diags.disableWarning(W);
  auto Finish = [&]() {
    Diags.finish("autotpc", Version);
    return Diags.hasErrors() ? 1 : 0;
  };

  std::vector<std::unique_ptr<JsonDoc>> Docs;
  if (Opts.ConfigText) {
    unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(*Opts.ConfigText, Opts.ConfigPath),
                                        llvm::SMLoc());
    Docs.push_back(JsonDoc::parse(Diags, ID));
  } else {
    Docs.push_back(JsonDoc::load(Diags, Opts.ConfigPath, Opts.ConfigPath));
  }
  if (!Docs.back())
    return Finish();
  const JsonDoc &ConfigDoc = *Docs.back();
  Config C;
  if (!parseConfig(ConfigDoc, Diags, C) || Diags.hasErrors())
    return Finish();
  std::optional<LoadedModel> Model = loadModel(C, ConfigDoc, Opts.ModelPath, Diags, Docs);
  if (!Model || Diags.hasErrors())
    return Finish();
  std::optional<Module> M = buildModule(C, *Model, Diags);
  if (!M)
    return Finish();
  Topology Topo;
  verifyModule(VerifyContext{*M, C, *Model, Diags, Opts.WorldSize}, Topo);
  // The engine's settings: unsupported optimizer/scheduler types are errors
  // only where the ZeRO plan is generated (Lower/ZeroSettings.h).
  const bool Codegen = Opts.What == Options::Emit::Cpp || Opts.What == Options::Emit::Zero || !Opts.OutputDir.empty();
  std::optional<ZeroSettings> Zero = lowerZeroSettings(C, Topo, M->TpSize, Diags, Codegen);
  if (Diags.hasErrors() || !Zero)
    return Finish();
  // The training code: for a family that has it, its constants or errors naming what it cannot run.
  std::optional<DecoderDesc> Decoder;
  const bool WantsDecoder = Codegen || Opts.What == Options::Emit::Memory;
  if (WantsDecoder && M->Dims && hasDecoderCode(M->Dims->Family)) {
    Decoder = lowerDecoder(*M, *Model, Diags);
    if (!Decoder || !applyActivationCheckpointing(C.ActivationCheckpointing, *Decoder, Diags))
      return Finish();
  }
  const DecoderDesc *Dec = Decoder ? &*Decoder : nullptr;
  switch (Opts.What) {
  case Options::Emit::Summary: printSummary(*M, C, Topo, Diags, Out); break;
  case Options::Emit::IR: printIR(*M, SM, Out); break;
  case Options::Emit::Plan: printPlan(*M, Out); break;
  case Options::Emit::Memory:
    printMemory(*M, C, Topo, Dec, Opts.Seq.value_or(Dec ? std::min<int64_t>(Dec->MaxPositions, 1024) : 1024), Out);
    break;
  case Options::Emit::Zero: printZero(*M, *Zero, Out); break;
  case Options::Emit::Cpp:
    for (const EmittedFile &F : emitProject(*M, *Zero, SM, EmitOptions{Opts.OriginComments}, Dec))
      Out << "// ===== " << F.Name << " =====\n" << F.Text;
    break;
  }
  if (!Opts.OutputDir.empty()) {
    std::vector<EmittedFile> Files = emitProject(*M, *Zero, SM, EmitOptions{Opts.OriginComments}, Dec);
    if (!Opts.GeneratorPrefix.empty())
      Files.push_back(emitGeneratorPaths(Opts.GeneratorPrefix));
    writeOutputDir(Opts.OutputDir, Files, Diags);
  }
  return Finish();
}
