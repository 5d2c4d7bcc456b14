//===- DiagnosticsTest.cpp - tests for the diagnostic engine ------------===//
//
// The exact text of located diagnostics (the LLVM tools' "file:L:C: kind:
// msg", source line, caret and '~' under the rest of the range), how notes
// attach, -Wno-GROUP and --Werror, the closing count line, the SARIF 2.1.0
// log (parsed back), and divisorList. Expected text is written out by hand.
//
//===----------------------------------------------------------------------===//

#include "Support/Diagnostics.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>

using namespace autotpc;

namespace {

// Line 3 is `    "num_attention_heads": 32,`: the value "32" is columns 28-29.
const char *Spec = "{\n"
                   "  \"tensor_parallel\": {\"autotp_size\": 3},\n"
                   "    \"num_attention_heads\": 32,\n"
                   "    \"hidden_size\": 4096\n"
                   "}\n";

struct Engine {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS{Text};
  DiagEngine Diags{SM, OS};
  const char *Buf = nullptr;

  Engine() {
    unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Spec, "spec.json"), llvm::SMLoc());
    Buf = SM.getMemoryBuffer(ID)->getBufferStart();
  }
  /// The range [Offset, Offset + Len) of the buffer.
  Loc at(size_t Offset, size_t Len) const {
    return Loc(
        llvm::SMRange(llvm::SMLoc::getFromPointer(Buf + Offset), llvm::SMLoc::getFromPointer(Buf + Offset + Len)));
  }
  /// The range of the first occurrence of Needle.
  Loc find(llvm::StringRef Needle) const {
    size_t Off = llvm::StringRef(Buf).find(Needle);
    EXPECT_TRUE(Off != llvm::StringRef::npos) << Needle.str();
    return at(Off, Needle.size());
  }
  std::string out() { return OS.str(); }
};

TEST(DiagnosticsTest, ErrorWithCaretAndRange) {
  Engine E;
  E.Diags.error(E.find("32"), "'num_attention_heads' (32) is not divisible by autotp_size (3)");
  EXPECT_EQ(E.out(), "spec.json:3:28: error: 'num_attention_heads' (32) is not divisible by autotp_size (3)\n"
                     "    \"num_attention_heads\": 32,\n" +
                         std::string(27, ' ') + "^~\n");
  EXPECT_EQ(E.Diags.errorCount(), 1u);
  EXPECT_TRUE(E.Diags.hasErrors());
  EXPECT_EQ(E.Diags.warningCount(), 0u);
}

TEST(DiagnosticsTest, NoteAttachesToThePreviousDiagnostic) {
  Engine E;
  // `  "tensor_parallel": {"autotp_size": 3},`: the 3 is column 38 of line 2.
  E.Diags.error(E.find("32"), "bad heads");
  E.Diags.note(E.find("3}"), "autotp_size set here");
  E.Diags.warning(E.find("4096"), "unmatched-pattern", "a warning");
  E.Diags.note(E.find("\"hidden_size\""), "its note");
  E.Diags.note(Loc(), "a second, unlocated note");
  ASSERT_EQ(E.Diags.records().size(), 2u);
  const DiagRecord &Err = E.Diags.records()[0], &Warn = E.Diags.records()[1];
  ASSERT_EQ(Err.Notes.size(), 1u);
  EXPECT_EQ(Err.Notes[0].Message, "autotp_size set here");
  EXPECT_EQ(Err.Notes[0].Line, 2u);
  EXPECT_EQ(Err.Notes[0].Column, 38u);
  EXPECT_EQ(Err.Notes[0].Kind, DiagKind::Note);
  ASSERT_EQ(Warn.Notes.size(), 2u);
  EXPECT_EQ(Warn.Notes[0].Message, "its note");
  EXPECT_EQ(Warn.Notes[0].Line, 4u);
  EXPECT_EQ(Warn.Notes[0].Column, 5u);
  EXPECT_EQ(Warn.Notes[1].File, "");
  // Notes are printed right after their diagnostic, with their own caret line.
  EXPECT_NE(E.out().find("spec.json:2:38: note: autotp_size set here\n"
                         "  \"tensor_parallel\": {\"autotp_size\": 3},\n" +
                         std::string(37, ' ') + "^~\n"),
            std::string::npos)
      << E.out();
  EXPECT_NE(E.out().find("autotpc: note: a second, unlocated note\n"), std::string::npos) << E.out();
  // Notes are not counted.
  EXPECT_EQ(E.Diags.errorCount(), 1u);
  EXPECT_EQ(E.Diags.warningCount(), 1u);
}

TEST(DiagnosticsTest, WarningTextNamesItsGroup) {
  Engine E;
  E.Diags.warning(E.find("4096"), "unmatched-pattern", "pattern 'x' matches no parameter of the model");
  EXPECT_EQ(E.out(), "spec.json:4:20: warning: pattern 'x' matches no parameter of the model [-Wunmatched-pattern]\n"
                     "    \"hidden_size\": 4096\n" +
                         std::string(19, ' ') + "^~~~\n");
  EXPECT_EQ(E.Diags.warningCount(), 1u);
  EXPECT_FALSE(E.Diags.hasErrors());
}

TEST(DiagnosticsTest, DisabledWarningDropsItsNotes) {
  Engine E;
  E.Diags.disableWarning("unmatched-pattern");
  E.Diags.warning(E.find("4096"), "unmatched-pattern", "silenced");
  E.Diags.note(E.find("32"), "note of the silenced warning");
  EXPECT_EQ(E.out(), "");
  EXPECT_EQ(E.Diags.warningCount(), 0u);
  EXPECT_TRUE(E.Diags.records().empty());
  // Another group still reports, and a note after it is kept.
  E.Diags.warning(E.find("4096"), "shadowed-spec", "kept");
  E.Diags.note(E.find("32"), "kept note");
  EXPECT_EQ(E.Diags.warningCount(), 1u);
  ASSERT_EQ(E.Diags.records().size(), 1u);
  EXPECT_EQ(E.Diags.records()[0].Notes.size(), 1u);
  EXPECT_NE(E.out().find("note: kept note"), std::string::npos);
  EXPECT_EQ(E.out().find("silenced"), std::string::npos);
}

TEST(DiagnosticsTest, NoteAfterDisabledWarningThenErrorAttachesToTheError) {
  Engine E;
  E.Diags.error(E.find("32"), "first");
  E.Diags.disableWarning("fused-no-shape");
  E.Diags.warning(E.find("4096"), "fused-no-shape", "silenced");
  E.Diags.note(E.find("32"), "dropped");
  E.Diags.error(E.find("4096"), "second");
  E.Diags.note(E.find("32"), "kept");
  ASSERT_EQ(E.Diags.records().size(), 2u);
  EXPECT_TRUE(E.Diags.records()[0].Notes.empty());
  ASSERT_EQ(E.Diags.records()[1].Notes.size(), 1u);
  EXPECT_EQ(E.Diags.records()[1].Notes[0].Message, "kept");
}

// A second buffer, "preset.json", marked as used at the user's "32": what is
// located in it is reported at "32" (spec.json:3:28), followed by a note at
// its own place (preset.json:2:12, the 6-character "[3,-1]"), then the
// diagnostic's own notes, which stay where they point.
TEST(DiagnosticsTest, DiagnosticInExpandedBufferIsReportedWhereItIsUsed) {
  Engine E;
  const char *Preset = "{\n  \"shape\": [3,-1]\n}\n";
  unsigned ID = E.SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Preset, "preset.json"), llvm::SMLoc());
  const char *P = E.SM.getMemoryBuffer(ID)->getBufferStart();
  Loc Shape(llvm::SMRange(llvm::SMLoc::getFromPointer(P + 13), llvm::SMLoc::getFromPointer(P + 19)));
  // Before the buffer is marked, a diagnostic stays in it.
  E.Diags.remark(Shape, "before");
  EXPECT_EQ(E.out().find("preset.json:2:12: note: before\n"), 0u) << E.out();
  E.Diags.addExpansion(ID, E.find("32"), "preset 'p'");
  E.Diags.error(Shape, "bad shape");
  E.Diags.note(Shape, "use another shape");
  E.Diags.warning(Shape, "unmatched-pattern", "a warning");
  E.Diags.remark(Shape, "a remark");
  EXPECT_NE(E.out().find("spec.json:3:28: error: bad shape\n"
                         "    \"num_attention_heads\": 32,\n" +
                         std::string(27, ' ') + "^~\n"
                         "preset.json:2:12: note: in preset 'p', rule defined here\n"
                         "  \"shape\": [3,-1]\n" +
                         std::string(11, ' ') + "^~~~~~\n"
                         "preset.json:2:12: note: use another shape\n"),
            std::string::npos)
      << E.out();
  EXPECT_NE(E.out().find("spec.json:3:28: warning: a warning [-Wunmatched-pattern]\n"), std::string::npos);
  EXPECT_NE(E.out().find("spec.json:3:28: note: a remark\n"), std::string::npos);
  ASSERT_EQ(E.Diags.records().size(), 4u);
  const DiagRecord &Err = E.Diags.records()[1];
  EXPECT_EQ(Err.File, "spec.json");
  EXPECT_EQ(Err.Line, 3u);
  EXPECT_EQ(Err.Column, 28u);
  ASSERT_EQ(Err.Notes.size(), 2u);
  EXPECT_EQ(Err.Notes[0].File, "preset.json");
  EXPECT_EQ(Err.Notes[0].Line, 2u);
  EXPECT_EQ(Err.Notes[0].Column, 12u);
  EXPECT_EQ(Err.Notes[0].EndColumn, 18u);
  EXPECT_EQ(Err.Notes[0].Message, "in preset 'p', rule defined here");
  EXPECT_EQ(Err.Notes[1].Message, "use another shape");
  EXPECT_EQ(E.Diags.records()[2].Notes.size(), 1u);
  EXPECT_EQ(E.Diags.records()[3].File, "spec.json");
  ASSERT_EQ(E.Diags.records()[3].Notes.size(), 1u);
  EXPECT_EQ(E.Diags.records()[3].Notes[0].File, "preset.json");
  // A silenced warning drops the expansion note with it.
  E.Diags.disableWarning("shadowed-spec");
  E.Diags.warning(Shape, "shadowed-spec", "silenced");
  EXPECT_EQ(E.Diags.records().size(), 4u);
  EXPECT_EQ(E.out().find("silenced"), std::string::npos);
  EXPECT_EQ(E.Diags.errorCount(), 1u);
  EXPECT_EQ(E.Diags.warningCount(), 1u);
}

TEST(DiagnosticsTest, WerrorPromotesWarnings) {
  Engine E;
  E.Diags.setWarningsAsErrors(true);
  E.Diags.warning(E.find("4096"), "shadowed-spec", "spec 2 is shadowed");
  EXPECT_EQ(E.out(), "spec.json:4:20: error: spec 2 is shadowed [-Werror,-Wshadowed-spec]\n"
                     "    \"hidden_size\": 4096\n" +
                         std::string(19, ' ') + "^~~~\n");
  EXPECT_EQ(E.Diags.errorCount(), 1u);
  EXPECT_EQ(E.Diags.warningCount(), 0u);
  ASSERT_EQ(E.Diags.records().size(), 1u);
  EXPECT_EQ(E.Diags.records()[0].Kind, DiagKind::Error);
  EXPECT_EQ(E.Diags.records()[0].Flag, "shadowed-spec");
  // A disabled group stays silent even under --Werror.
  E.Diags.disableWarning("ignored-key");
  E.Diags.warning(E.find("32"), "ignored-key", "quiet");
  EXPECT_EQ(E.Diags.errorCount(), 1u);
}

TEST(DiagnosticsTest, UnlocatedAndFileLevelDiagnostics) {
  Engine E;
  E.Diags.error("unknown flag --frob");
  E.Diags.error(Loc::inFile("model.json"), "cannot read file");
  EXPECT_EQ(E.out(), "autotpc: error: unknown flag --frob\n"
                     "model.json: error: cannot read file\n");
  EXPECT_EQ(E.Diags.errorCount(), 2u);
  ASSERT_EQ(E.Diags.records().size(), 2u);
  EXPECT_EQ(E.Diags.records()[0].File, "");
  EXPECT_EQ(E.Diags.records()[1].File, "model.json");
  EXPECT_EQ(E.Diags.records()[1].Line, 0u);
}

TEST(DiagnosticsTest, RemarkStandsAloneAndIsNotCounted) {
  Engine E;
  E.Diags.error(E.find("32"), "an error");
  E.Diags.remark(E.find("4096"), "'train_batch_size' is \"auto\"");
  ASSERT_EQ(E.Diags.records().size(), 2u);
  EXPECT_TRUE(E.Diags.records()[0].Notes.empty());
  EXPECT_EQ(E.Diags.records()[1].Kind, DiagKind::Note);
  EXPECT_EQ(E.Diags.errorCount(), 1u);
  EXPECT_NE(E.out().find("spec.json:4:20: note: 'train_batch_size' is \"auto\"\n"), std::string::npos);
}

TEST(DiagnosticsTest, ClosingLineCountsErrorsAndWarnings) {
  {
    Engine E;
    E.Diags.error(E.find("32"), "e1");
    E.Diags.finish("autotpc", "0.1.0");
    EXPECT_EQ(llvm::StringRef(E.out()).rsplit('\n').first.rsplit('\n').second, "autotpc: error: 1 error generated");
  }
  {
    Engine E;
    E.Diags.error(E.find("32"), "e1");
    E.Diags.error(E.find("4096"), "e2");
    E.Diags.warning(E.find("4096"), "unmatched-pattern", "w1");
    E.Diags.finish("autotpc", "0.1.0");
    EXPECT_TRUE(llvm::StringRef(E.out()).endswith("\nautotpc: error: 2 errors generated (1 warning)\n")) << E.out();
  }
  {
    Engine E;
    E.Diags.warning(E.find("4096"), "unmatched-pattern", "w1");
    E.Diags.warning(E.find("32"), "shadowed-spec", "w2");
    E.Diags.finish("autotpc", "0.1.0");
    EXPECT_TRUE(llvm::StringRef(E.out()).endswith("\nautotpc: warning: 2 warnings generated\n")) << E.out();
    EXPECT_EQ(E.Diags.warningCount(), 2u);
  }
  {
    Engine E;
    E.Diags.finish("autotpc", "0.1.0");
    EXPECT_EQ(E.out(), "");
  }
}

TEST(DiagnosticsTest, KnownWarningGroups) {
  for (const char *G : {"unmatched-pattern", "shadowed-spec", "fused-no-shape", "unpaired-split", "ignored-key",
                        "ignored-option", "not-deepspeed"})
    EXPECT_TRUE(DiagEngine::isKnownWarning(G)) << G;
  EXPECT_FALSE(DiagEngine::isKnownWarning("error"));
  EXPECT_FALSE(DiagEngine::isKnownWarning(""));
  EXPECT_FALSE(DiagEngine::isKnownWarning("unmatched"));
  for (const char *G : DiagEngine::warningGroups())
    EXPECT_TRUE(DiagEngine::isKnownWarning(G));
}

TEST(DiagnosticsTest, SarifLogParsesBack) {
  Engine E;
  E.Diags.setFormat(DiagEngine::Format::Sarif);
  E.Diags.error(E.find("32"), "heads not divisible");
  E.Diags.note(E.find("3}"), "autotp_size set here");
  E.Diags.warning(E.find("4096"), "unmatched-pattern", "no match");
  E.Diags.error(Loc::inFile("model.json"), "cannot read file");
  // Nothing is printed as text in SARIF mode before finish().
  EXPECT_EQ(E.out(), "");
  E.Diags.finish("autotpc", "9.9.9");

  nlohmann::json Log;
  ASSERT_NO_THROW(Log = nlohmann::json::parse(E.out())) << E.out();
  EXPECT_EQ(Log["version"], "2.1.0");
  ASSERT_EQ(Log["runs"].size(), 1u);
  const nlohmann::json &Run = Log["runs"][0];
  EXPECT_EQ(Run["tool"]["driver"]["name"], "autotpc");
  EXPECT_EQ(Run["tool"]["driver"]["version"], "9.9.9");
  const nlohmann::json &Results = Run["results"];
  ASSERT_EQ(Results.size(), 3u);

  const nlohmann::json &R0 = Results[0];
  EXPECT_EQ(R0["ruleId"], "autotpc.error");
  EXPECT_EQ(R0["level"], "error");
  EXPECT_EQ(R0["message"]["text"], "heads not divisible");
  const nlohmann::json &Phys = R0["locations"][0]["physicalLocation"];
  EXPECT_EQ(Phys["artifactLocation"]["uri"], "spec.json");
  EXPECT_EQ(Phys["region"]["startLine"], 3);
  EXPECT_EQ(Phys["region"]["startColumn"], 28);
  EXPECT_EQ(Phys["region"]["endColumn"], 30); // SARIF: the column after the region ("32" is 28-29)
  ASSERT_EQ(R0["relatedLocations"].size(), 1u);
  EXPECT_EQ(R0["relatedLocations"][0]["message"]["text"], "autotp_size set here");
  EXPECT_EQ(R0["relatedLocations"][0]["physicalLocation"]["region"]["startLine"], 2);
  EXPECT_EQ(R0["relatedLocations"][0]["physicalLocation"]["region"]["startColumn"], 38);

  const nlohmann::json &R1 = Results[1];
  EXPECT_EQ(R1["ruleId"], "autotpc.unmatched-pattern");
  EXPECT_EQ(R1["level"], "warning");
  EXPECT_EQ(R1["locations"][0]["physicalLocation"]["region"]["startLine"], 4);
  EXPECT_FALSE(R1.contains("relatedLocations"));

  const nlohmann::json &R2 = Results[2];
  EXPECT_EQ(R2["level"], "error");
  EXPECT_EQ(R2["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "model.json");
  EXPECT_FALSE(R2["locations"][0]["physicalLocation"].contains("region"));

  // Every ruleId used is declared once among the driver's rules.
  std::set<std::string> Rules;
  for (const nlohmann::json &Rule : Run["tool"]["driver"]["rules"])
    EXPECT_TRUE(Rules.insert(Rule["id"].get<std::string>()).second);
  for (const nlohmann::json &R : Results)
    EXPECT_TRUE(Rules.count(R["ruleId"].get<std::string>())) << R["ruleId"];
  EXPECT_EQ(E.Diags.errorCount(), 2u);
}

TEST(DiagnosticsTest, SarifWerrorKeepsTheGroupAsRuleId) {
  Engine E;
  E.Diags.setFormat(DiagEngine::Format::Sarif);
  E.Diags.setWarningsAsErrors(true);
  E.Diags.warning(E.find("4096"), "ignored-key", "promoted");
  E.Diags.finish("autotpc", "0.1.0");
  nlohmann::json Log = nlohmann::json::parse(E.out());
  const nlohmann::json &R = Log["runs"][0]["results"][0];
  EXPECT_EQ(R["ruleId"], "autotpc.ignored-key");
  EXPECT_EQ(R["level"], "error");
}

TEST(DiagnosticsTest, DivisorList) {
  EXPECT_EQ(divisorList(12), "1, 2, 3, 4, 6, 12");
  EXPECT_EQ(divisorList(1), "1");
  EXPECT_EQ(divisorList(7), "1, 7");
  EXPECT_EQ(divisorList(32), "1, 2, 4, 8, 16, 32");
  EXPECT_EQ(divisorList(12, 4), "1, 2, 3, 4");
  // 14336 = 2^11 * 7; divisors up to the default limit 128.
  EXPECT_EQ(divisorList(14336), "1, 2, 4, 7, 8, 14, 16, 28, 32, 56, 64, 112, 128");
  EXPECT_EQ(divisorList(0, 0), "");
}

} // namespace
