//===- Diagnostics.cpp - located errors, warnings and notes -------------===//
//
// Text output goes through SourceMgr::PrintMessage so that it has exactly the
// LLVM tools' shape; SARIF output is assembled from the same records.
//
//===----------------------------------------------------------------------===//
#include "Support/Diagnostics.h"
#include "Support/Sarif.h"

#include "llvm/Support/WithColor.h"

#include <algorithm>

using namespace autotpc;

static const std::vector<const char *> KnownWarnings = {
    "unmatched-pattern",   // a layer-spec pattern matches no parameter
    "shadowed-spec",       // every parameter a spec matches is taken by an earlier spec
    "fused-no-shape",      // a fused weight split as a plain column mixes its sub-blocks
    "unpaired-split",      // column output not consumed by a row layer, or the reverse
    "ignored-key",         // a key DeepSpeed accepts but never reads, or does not know
    "ignored-option",      // an option that has no effect where it is used
    "model-mismatch",      // config.json and safetensors headers disagree on extras
    "embedding-split",     // DeepSpeed's embedding slicing is not a training layout
    "not-deepspeed",       // an autotpc extension DeepSpeed would not understand
    "unsupported-optimizer", // an optimizer/scheduler type the ZeRO engine does not run (--check only)
};

bool DiagEngine::isKnownWarning(llvm::StringRef Flag) {
  return std::any_of(KnownWarnings.begin(), KnownWarnings.end(),
                     [&](const char *W) { return Flag == W; });
}

const std::vector<const char *> &DiagEngine::warningGroups() { return KnownWarnings; }

DiagRecord DiagEngine::resolve(DiagKind Kind, const Loc &L, const std::string &Msg,
                               llvm::StringRef Flag) const {
  DiagRecord R;
  R.Kind = Kind;
  R.Message = Msg;
  R.Flag = Flag.str();
  if (L.isValid()) {
    unsigned Buf = SM.FindBufferContainingLoc(L.Range.Start);
    R.File = SM.getMemoryBuffer(Buf)->getBufferIdentifier().str();
    auto LC = SM.getLineAndColumn(L.Range.Start, Buf);
    R.Line = LC.first;
    R.Column = LC.second;
    auto End = SM.getLineAndColumn(L.Range.End, Buf);
    R.EndColumn = End.first == LC.first ? End.second : LC.second + 1;
  } else {
    R.File = L.File;
  }
  return R;
}

void DiagEngine::emit(DiagKind Kind, const Loc &L, const std::string &Msg, llvm::StringRef Flag,
                      bool Standalone) {
  DiagRecord R = resolve(Kind, L, Msg, Flag);
  if (Kind == DiagKind::Note && !Standalone) {
    if (!Records.empty())
      Records.back().Notes.push_back(R);
  } else {
    Records.push_back(R);
  }
  if (Fmt != Format::Text)
    return;
  std::string Text = Msg;
  if (!Flag.empty())
    Text += Kind == DiagKind::Error ? " [-Werror,-W" + Flag.str() + "]" : " [-W" + Flag.str() + "]";
  llvm::SourceMgr::DiagKind SK = Kind == DiagKind::Error     ? llvm::SourceMgr::DK_Error
                                 : Kind == DiagKind::Warning ? llvm::SourceMgr::DK_Warning
                                                             : llvm::SourceMgr::DK_Note;
  if (L.isValid()) {
    SM.PrintMessage(OS, L.Range.Start, SK, Text, {L.Range}, {}, OS.has_colors());
  } else {
    llvm::SMDiagnostic D(L.File.empty() ? "autotpc" : L.File, SK, Text);
    D.print(nullptr, OS, OS.has_colors());
  }
}

void DiagEngine::addExpansion(unsigned BufferID, const Loc &At, llvm::StringRef What) {
  if (At.isValid())
    Expansions[BufferID] = Expansion{At, What.str()};
}

void DiagEngine::emitExpanded(DiagKind Kind, const Loc &L, const std::string &Msg, llvm::StringRef Flag,
                              bool Standalone) {
  auto It = L.isValid() ? Expansions.find(SM.FindBufferContainingLoc(L.Range.Start)) : Expansions.end();
  if (It == Expansions.end()) {
    emit(Kind, L, Msg, Flag, Standalone);
    return;
  }
  const Expansion &E = It->second;
  emit(Kind, E.At, Msg, Flag, Standalone);
  emit(DiagKind::Note, L, "in " + E.What + ", rule defined here", "");
}

void DiagEngine::error(const Loc &L, const llvm::Twine &Msg) {
  LastSuppressed = false;
  ++NumErrors;
  emitExpanded(DiagKind::Error, L, Msg.str(), "");
}

void DiagEngine::warning(const Loc &L, llvm::StringRef Flag, const llvm::Twine &Msg) {
  assert(isKnownWarning(Flag) && "unregistered warning group");
  LastSuppressed = Disabled.count(Flag) != 0;
  if (LastSuppressed)
    return;
  if (Werror) {
    ++NumErrors;
    emitExpanded(DiagKind::Error, L, Msg.str(), Flag);
    return;
  }
  ++NumWarnings;
  emitExpanded(DiagKind::Warning, L, Msg.str(), Flag);
}

void DiagEngine::note(const Loc &L, const llvm::Twine &Msg) {
  if (LastSuppressed)
    return;
  emit(DiagKind::Note, L, Msg.str(), "");
}

void DiagEngine::remark(const Loc &L, const llvm::Twine &Msg) {
  LastSuppressed = false;
  emitExpanded(DiagKind::Note, L, Msg.str(), "", /*Standalone=*/true);
}

void DiagEngine::finish(llvm::StringRef ToolName, llvm::StringRef ToolVersion) {
  if (Fmt == Format::Sarif) {
    writeSarif(OS, Records, ToolName, ToolVersion);
    return;
  }
  auto Plural = [](unsigned N, const char *What) {
    return std::to_string(N) + " " + What + (N == 1 ? "" : "s");
  };
  if (NumErrors) {
    llvm::WithColor::error(OS, ToolName, !OS.has_colors())
        << Plural(NumErrors, "error") << " generated"
        << (NumWarnings ? " (" + Plural(NumWarnings, "warning") + ")" : std::string()) << "\n";
  } else if (NumWarnings) {
    llvm::WithColor::warning(OS, ToolName, !OS.has_colors())
        << Plural(NumWarnings, "warning") << " generated\n";
  }
}

std::string autotpc::divisorList(int64_t N, int64_t Limit) {
  std::string S;
  for (int64_t D = 1; D <= N && D <= Limit; ++D) {
    if (N % D)
      continue;
    if (!S.empty())
      S += ", ";
    S += std::to_string(D);
  }
  return S;
}
