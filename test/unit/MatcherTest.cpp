//===- MatcherTest.cpp - tests for layer-spec matching with RE2 ---------===//
//
// DeepSpeed matches with Python's re.match (reference §1.4, §1.6): anchored
// at the start of the name only, Python syntax. model_types compare
// case-insensitively. Invalid regexes are reported at their JSON value;
// lookaround (which RE2 cannot run in linear time) is rejected with a note.
// Specs are parsed from JSON text so that locations are real.
//
//===----------------------------------------------------------------------===//

#include "IR/Matcher.h"
#include "Support/JsonDoc.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

using namespace autotpc;

namespace {

/// A JSON list of layer specs, parsed; the matcher over them.
struct Specs {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS{Text};
  DiagEngine Diags{SM, OS};
  std::unique_ptr<JsonDoc> Doc;
  std::vector<LayerSpec> List;
  std::unique_ptr<SpecMatcher> M;

  explicit Specs(llvm::StringRef Json) {
    unsigned ID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Json, "specs.json"), llvm::SMLoc());
    Doc = JsonDoc::parse(Diags, ID);
    EXPECT_TRUE(Doc) << OS.str();
    if (!Doc)
      return;
    for (size_t I = 0; I < Doc->root().size(); ++I) {
      LayerSpec S;
      EXPECT_TRUE(parseLayerSpec(*Doc, JsonDoc::child("", I), Diags, "layer_specs[" + std::to_string(I) + "]", S))
          << OS.str();
      List.push_back(std::move(S));
    }
    M = std::make_unique<SpecMatcher>(List, Diags);
  }
  bool match(size_t Spec, llvm::StringRef Name, llvm::StringRef Type = "") { return M->matches(Spec, Name, Type); }
  std::string out() { return OS.str(); }
};

TEST(MatcherTest, StartAnchoredNotEndAnchored) {
  Specs S(R"([
    {"patterns": [".*\\.q_proj"]},
    {"patterns": ["q_proj"]},
    {"patterns": ["model\\.layers"]}
  ])");
  ASSERT_TRUE(S.M->ok()) << S.out();
  // re.match(r".*\.q_proj", "x.q_proj_extra.weight") matches: no end anchor.
  EXPECT_TRUE(S.match(0, "x.q_proj_extra.weight"));
  EXPECT_TRUE(S.match(0, "model.layers.0.self_attn.q_proj.weight"));
  // re.match("q_proj", ...) only looks at the start of the name.
  EXPECT_FALSE(S.match(1, "model.layers.0.q_proj.weight"));
  EXPECT_TRUE(S.match(1, "q_proj.weight"));
  EXPECT_TRUE(S.match(2, "model.layers.0.mlp.up_proj.weight"));
  EXPECT_FALSE(S.match(2, "lm_head.model.layers"));
}

TEST(MatcherTest, DollarAnchorsTheEnd) {
  Specs S(R"([
    {"patterns": [".*\\.q_proj$"]},
    {"patterns": [".*\\.q_proj\\.weight$"]}
  ])");
  ASSERT_TRUE(S.M->ok()) << S.out();
  // Reference §1.6: a pattern ending in \.q_proj$ never matches (names end in .weight).
  EXPECT_FALSE(S.match(0, "model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(S.match(1, "model.layers.0.self_attn.q_proj.weight"));
  EXPECT_FALSE(S.match(1, "model.layers.0.self_attn.q_proj.weight_scale"));
  EXPECT_FALSE(S.match(1, "model.layers.0.self_attn.q_proj.bias"));
}

TEST(MatcherTest, PythonSyntax) {
  Specs S(R"([
    {"patterns": [".*\\.(?P<proj>q|k)_proj\\.weight$"]},
    {"patterns": [".*\\.block_sparse_moe\\.experts\\.\\d+\\.w[13]\\.weight$"]},
    {"patterns": [".*\\.mlp\\.(up|gate)_proj\\.weight$"]},
    {"patterns": [".*\\.self_attn\\.[qkv]_proj\\.weight$"]}
  ])");
  ASSERT_TRUE(S.M->ok()) << S.out();
  EXPECT_TRUE(S.match(0, "a.q_proj.weight"));
  EXPECT_TRUE(S.match(0, "a.k_proj.weight"));
  EXPECT_FALSE(S.match(0, "a.v_proj.weight"));
  EXPECT_TRUE(S.match(1, "model.layers.31.block_sparse_moe.experts.7.w1.weight"));
  EXPECT_TRUE(S.match(1, "model.layers.0.block_sparse_moe.experts.12.w3.weight"));
  EXPECT_FALSE(S.match(1, "model.layers.0.block_sparse_moe.experts.7.w2.weight"));
  EXPECT_FALSE(S.match(1, "model.layers.0.block_sparse_moe.experts.x.w1.weight"));
  EXPECT_FALSE(S.match(1, "model.layers.0.block_sparse_moe.experts..w1.weight"));
  EXPECT_TRUE(S.match(2, "model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(S.match(2, "model.layers.0.mlp.down_proj.weight"));
  EXPECT_FALSE(S.match(2, "model.layers.0.mlp.gate_up_proj.weight"));
  EXPECT_TRUE(S.match(3, "model.layers.0.self_attn.v_proj.weight"));
  EXPECT_FALSE(S.match(3, "model.layers.0.self_attn.o_proj.weight"));
  EXPECT_FALSE(S.match(3, "model.layers.0.self_attn.qkv_proj.weight"));
}

TEST(MatcherTest, AnyPatternOfASpecMatches) {
  Specs S(R"([{"patterns": ["^a\\.", "b\\.w"]}])");
  ASSERT_TRUE(S.M->ok());
  EXPECT_TRUE(S.match(0, "a.x"));
  EXPECT_TRUE(S.match(0, "b.weight"));
  EXPECT_FALSE(S.match(0, "c.b.weight"));
  EXPECT_TRUE(S.M->patternMatches(0, 0, "a.x"));
  EXPECT_FALSE(S.M->patternMatches(0, 1, "a.x"));
  EXPECT_TRUE(S.M->patternMatches(0, 1, "b.w"));
}

TEST(MatcherTest, ModelTypesAreCaseInsensitive) {
  Specs S(R"([
    {"patterns": [".*"], "model_types": ["LLaMA", "Mistral"]},
    {"patterns": [".*"]}
  ])");
  ASSERT_TRUE(S.M->ok()) << S.out();
  EXPECT_TRUE(S.match(0, "x.weight", "llama"));
  EXPECT_TRUE(S.match(0, "x.weight", "Llama"));
  EXPECT_TRUE(S.match(0, "x.weight", "MISTRAL"));
  EXPECT_FALSE(S.match(0, "x.weight", "qwen2"));
  EXPECT_FALSE(S.match(0, "x.weight", ""));
  // model_types only filters; patternMatches ignores it.
  EXPECT_TRUE(S.M->patternMatches(0, "x.weight"));
  EXPECT_FALSE(S.M->appliesTo(0, "phi3"));
  // No model_types: applies to every model, even an unknown one.
  EXPECT_TRUE(S.match(1, "x.weight", ""));
  EXPECT_TRUE(S.match(1, "x.weight", "anything"));
}

TEST(MatcherTest, EmptyModelTypesListIsNoConstraint) {
  // DeepSpeed's TPLayerSpec.matches tests `if self.model_types:`; an empty
  // Python list is falsy, so "model_types": [] filters nothing (same as null).
  Specs S(R"([{"patterns": [".*"], "model_types": []}])");
  EXPECT_TRUE(S.match(0, "x.weight", "llama"));
  EXPECT_TRUE(S.match(0, "x.weight", ""));
}

TEST(MatcherTest, InvalidRegexIsReportedAtItsValue) {
  // Line 2, `    {"patterns": ["ok", "(unclosed"]}`: the bad pattern's quote is column 25.
  Specs S("[\n    {\"patterns\": [\"ok\", \"(unclosed\"]}\n]");
  EXPECT_FALSE(S.M->ok());
  EXPECT_EQ(S.Diags.errorCount(), 1u);
  EXPECT_NE(S.out().find("specs.json:2:25: error: invalid regex '(unclosed'"), std::string::npos) << S.out();
  EXPECT_TRUE(S.M->valid(0, 0));
  EXPECT_FALSE(S.M->valid(0, 1));
  // The invalid pattern matches nothing, the valid one still works.
  EXPECT_FALSE(S.M->patternMatches(0, 1, "(unclosed"));
  EXPECT_TRUE(S.match(0, "ok.weight"));
}

TEST(MatcherTest, LookaroundAndBackreferencesAreRejected) {
  Specs S(R"j([
    {"patterns": [".*(?=\\.weight)"]},
    {"patterns": [".*(?<!bias)$"]},
    {"patterns": ["(?P<x>a)(?P=x)"]},
    {"patterns": ["(a)\\1"]}
  ])j");
  EXPECT_FALSE(S.M->ok());
  EXPECT_EQ(S.Diags.errorCount(), 4u) << S.out();
  for (size_t I = 0; I < 4; ++I)
    EXPECT_FALSE(S.M->valid(I, 0)) << I;
  // Python accepts these; the note says why autotpc does not.
  EXPECT_NE(S.out().find("note: autotpc matches with RE2 (linear time): lookaround and backreferences are not "
                         "supported"),
            std::string::npos)
      << S.out();
  ASSERT_EQ(S.Diags.records().size(), 4u);
  EXPECT_EQ(S.Diags.records()[0].Notes.size(), 1u); // the lookahead gets the note
}

TEST(MatcherTest, MatchIsLinearTime) {
  // A catastrophic-backtracking pattern for a backtracking engine.
  Specs S(R"([{"patterns": ["(a+)+b"]}])");
  ASSERT_TRUE(S.M->ok());
  EXPECT_FALSE(S.match(0, std::string(5000, 'a')));
}

} // namespace
