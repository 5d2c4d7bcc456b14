//===- Diagnostics.h - located errors, warnings and notes ---------------===//
//
// The one place that reports problems to the user. Every diagnostic is
// located at a JSON value through llvm::SourceMgr (file:line:col, the source
// line and a caret), at a whole file, or nowhere (bad flags). Diagnostics are
// printed as text as they arrive, or collected and written as SARIF 2.1.0.
//
// A buffer the user did not write (a shipped preset) can be marked as
// expanded at a place in the user's file, as clang treats a macro: an error
// or warning located inside it is reported at that place, with a note
// pointing into the buffer.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_SUPPORT_DIAGNOSTICS_H
#define AUTOTPC_SUPPORT_DIAGNOSTICS_H

#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SMLoc.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <string>
#include <vector>

namespace autotpc {

/// Where a diagnostic points: a range in a SourceMgr buffer, a whole file,
/// or nothing. A value that came from a flag has no range; its diagnostics
/// say where it came from in their text instead.
struct Loc {
  llvm::SMRange Range;
  std::string File;  ///< used only when Range is invalid

  Loc() = default;
  Loc(llvm::SMRange R) : Range(R) {}
  static Loc inFile(llvm::StringRef Path) {
    Loc L;
    L.File = Path.str();
    return L;
  }
  bool isValid() const { return Range.isValid(); }
};

enum class DiagKind { Error, Warning, Note };

/// A diagnostic resolved to file, line and column, kept for SARIF.
struct DiagRecord {
  DiagKind Kind = DiagKind::Error;
  std::string Message;
  std::string Flag;  ///< warning group, e.g. "unmatched-pattern"; empty for errors
  std::string File;  ///< empty for unlocated diagnostics
  unsigned Line = 0, Column = 0, EndColumn = 0;
  std::vector<DiagRecord> Notes;
};

/// Counts and prints diagnostics. Warnings belong to a named group so that
/// users can silence (-Wno-GROUP) or promote (--Werror) them.
class DiagEngine {
public:
  enum class Format { Text, Sarif };

  DiagEngine(llvm::SourceMgr &SM, llvm::raw_ostream &OS) : SM(SM), OS(OS) {}

  void setFormat(Format F) { Fmt = F; }
  void setWarningsAsErrors(bool On) { Werror = On; }
  void disableWarning(llvm::StringRef Flag) { Disabled.insert(Flag); }
  /// Whether a warning group exists (for validating -Wno-GROUP).
  static bool isKnownWarning(llvm::StringRef Flag);
  /// All warning groups, for --help-style listings.
  static const std::vector<const char *> &warningGroups();
  /// Marks SourceMgr buffer \p BufferID as used at \p At (a preset is used
  /// at the user's `preset_model` value). From then on an error, warning or
  /// remark located inside the buffer is reported at \p At, followed by a
  /// note at its own place, "in <What>, rule defined here", and then its
  /// other notes. Notes located inside the buffer stay there. Ignored when
  /// \p At has no range.
  void addExpansion(unsigned BufferID, const Loc &At, llvm::StringRef What);

  void error(const Loc &L, const llvm::Twine &Msg);
  void warning(const Loc &L, llvm::StringRef Flag, const llvm::Twine &Msg);
  /// A note attaches to the last error or warning (and is dropped with it
  /// when that warning is disabled).
  void note(const Loc &L, const llvm::Twine &Msg);
  /// A note that stands alone (not attached to an error or warning), e.g.
  /// "'train_batch_size' is \"auto\"; left to the launcher".
  void remark(const Loc &L, const llvm::Twine &Msg);
  /// An error with no location, printed as "autotpc: error: ...".
  void error(const llvm::Twine &Msg) { error(Loc(), Msg); }

  unsigned errorCount() const { return NumErrors; }
  unsigned warningCount() const { return NumWarnings; }
  bool hasErrors() const { return NumErrors != 0; }

  /// Prints the closing "N errors generated" line, or the SARIF log.
  void finish(llvm::StringRef ToolName, llvm::StringRef ToolVersion);

  const std::vector<DiagRecord> &records() const { return Records; }
  llvm::SourceMgr &sourceMgr() { return SM; }

private:
  /// Prints one diagnostic and records it; a note attaches to the last
  /// record unless \p Standalone (a remark).
  void emit(DiagKind Kind, const Loc &L, const std::string &Msg, llvm::StringRef Flag, bool Standalone = false);
  /// emit() at the expansion point when L lies in an expanded buffer, then
  /// the note that points into the buffer.
  void emitExpanded(DiagKind Kind, const Loc &L, const std::string &Msg, llvm::StringRef Flag,
                    bool Standalone = false);
  DiagRecord resolve(DiagKind Kind, const Loc &L, const std::string &Msg, llvm::StringRef Flag) const;

  llvm::SourceMgr &SM;
  llvm::raw_ostream &OS;
  Format Fmt = Format::Text;
  bool Werror = false;
  bool LastSuppressed = false;
  llvm::StringSet<> Disabled;
  unsigned NumErrors = 0, NumWarnings = 0;
  std::vector<DiagRecord> Records;
  struct Expansion {
    Loc At;
    std::string What;
  };
  std::map<unsigned, Expansion> Expansions;  ///< buffer ID -> where it is used
};

/// Lists the divisors of N that are at most Limit, as "1, 2, 4, 8".
std::string divisorList(int64_t N, int64_t Limit = 128);

} // namespace autotpc

#endif // AUTOTPC_SUPPORT_DIAGNOSTICS_H
