//===- PresetsTest.cpp - tests for the embedded AutoTP presets ----------===//
//
// Every preset against the table of reference §2 (AutoTPPresets in
// deepspeed/module_inject/autotp_config.py), copied by hand: the exact
// pattern strings (Python raw strings, so single backslashes here inside
// C++ raw literals), partition types, and shapes. No preset has
// model_types; partition_dim is 0 where a shape is given.
//
//===----------------------------------------------------------------------===//

#include "Spec/Presets.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <map>

using namespace autotpc;

namespace {

/// One expected spec: a pattern, a type and, for shaped specs, the shape as
/// a list of ints (all the presets' shapes are flat: (3, -1) or (2, -1)).
struct Want {
  const char *Pattern;
  PartitionType Type;
  std::vector<int64_t> Shape;
};

constexpr PartitionType Col = PartitionType::Column, Row = PartitionType::Row, Skip = PartitionType::Skip;

const std::vector<Want> Llama = {
    {R"(.*\.self_attn\.o_proj\.weight$)", Row, {}},
    {R"(.*\.self_attn\.[qkv]_proj\.weight$)", Col, {}},
    {R"(.*\.mlp\.down_proj\.weight$)", Row, {}},
    {R"(.*\.mlp\.(up|gate)_proj\.weight$)", Col, {}},
};

const std::map<std::string, std::vector<Want>> &table() {
  static const std::map<std::string, std::vector<Want>> T = {
      {"llama", Llama},
      {"qwen2", Llama}, // "1-4: identical to llama"
      // autotpc's addition: Mistral's HF module names are Llama's
      // (MistralDecoderLayer: self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj).
      {"mistral", Llama},
      {"bloom",
       {
           {R"(.*\.self_attention\.dense\.weight$)", Row, {}},
           {R"(.*\.self_attention\.query_key_value\.weight$)", Col, {}}, // interleaved: no shape
           {R"(.*\.mlp\.dense_4h_to_h\.weight$)", Row, {}},
           {R"(.*\.mlp\.dense_h_to_4h\.weight$)", Col, {}},
       }},
      {"chatglm",
       {
           {R"(.*\.self_attention\.dense\.weight$)", Row, {}},
           {R"(.*\.self_attention\.query_key_value\.weight$)", Col, {3, -1}},
           {R"(.*\.mlp\.dense_4h_to_h\.weight$)", Row, {}},
           {R"(.*\.mlp\.dense_h_to_4h\.weight$)", Col, {2, -1}},
       }},
      {"mixtral",
       {
           {R"(.*\.self_attn\.o_proj\.weight$)", Row, {}},
           {R"(.*\.self_attn\.[qkv]_proj\.weight$)", Col, {}},
           {R"(.*\.block_sparse_moe\.experts\.\d+\.w2\.weight$)", Row, {}},
           {R"(.*\.block_sparse_moe\.experts\.\d+\.w[13]\.weight$)", Col, {}},
           {R"(.*\.block_sparse_moe\.gate\.weight$)", Skip, {}},
       }},
      {"deepseek_v2",
       {
           {R"(.*\.self_attn\.o_proj\.weight$)", Row, {}},
           {R"(.*\.self_attn\.(q_a_proj|kv_a_proj_with_mqa)\.weight$)", Skip, {}},
           {R"(.*\.self_attn\.(q_b_proj|kv_b_proj)\.weight$)", Col, {}},
           {R"(.*\.mlp\.experts\.\d+\.down_proj\.weight$)", Row, {}},
           {R"(.*\.mlp\.experts\.\d+\.(up|gate)_proj\.weight$)", Col, {}},
           {R"(.*\.mlp\.gate\.weight$)", Skip, {}},
           {R"(.*\.mlp\.shared_experts\.down_proj\.weight$)", Row, {}},
           {R"(.*\.mlp\.shared_experts\.(up|gate)_proj\.weight$)", Col, {}},
       }},
      {"phi3",
       {
           {R"(.*\.self_attn\.o_proj\.weight$)", Row, {}},
           {R"(.*\.self_attn\.qkv_proj\.weight$)", Col, {3, -1}},
           {R"(.*\.mlp\.down_proj\.weight$)", Row, {}},
           {R"(.*\.mlp\.gate_up_proj\.weight$)", Col, {2, -1}},
       }},
  };
  return T;
}

struct Engine {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS{Text};
  DiagEngine Diags{SM, OS};
};

TEST(PresetsTest, NamesAreTheReferenceSevenPlusMistralSorted) {
  EXPECT_EQ(presetNames(), (std::vector<std::string>{"bloom", "chatglm", "deepseek_v2", "llama", "mistral", "mixtral",
                                                     "phi3", "qwen2"}));
}

TEST(PresetsTest, DeepSpeedKnowsAllButMistral) {
  // Reference §1.2: valid names are llama, bloom, chatglm, mixtral, deepseek_v2, qwen2, phi3.
  for (const char *N : {"llama", "bloom", "chatglm", "mixtral", "deepseek_v2", "qwen2", "phi3"})
    EXPECT_TRUE(isDeepSpeedPreset(N)) << N;
  EXPECT_FALSE(isDeepSpeedPreset("mistral"));
}

TEST(PresetsTest, EveryPresetMatchesTheReferenceTable) {
  for (const std::string &Name : presetNames()) {
    SCOPED_TRACE(Name);
    auto It = table().find(Name);
    ASSERT_NE(It, table().end()) << "preset '" << Name << "' is not in the reference table";
    Engine E;
    std::optional<std::vector<LayerSpec>> Specs = loadPreset(Name, E.Diags);
    ASSERT_TRUE(Specs.has_value());
    EXPECT_EQ(E.Diags.errorCount(), 0u) << E.OS.str();
    EXPECT_EQ(E.Diags.warningCount(), 0u) << E.OS.str();
    const std::vector<Want> &W = It->second;
    ASSERT_EQ(Specs->size(), W.size());
    for (size_t I = 0; I < W.size(); ++I) {
      SCOPED_TRACE("spec " + std::to_string(I));
      const LayerSpec &S = (*Specs)[I];
      ASSERT_EQ(S.Patterns.size(), 1u);
      EXPECT_EQ(S.Patterns[0], W[I].Pattern);
      EXPECT_EQ(S.Type, W[I].Type);
      EXPECT_FALSE(S.ModelTypes.has_value());
      EXPECT_FALSE(S.GatherOutput);
      EXPECT_FALSE(S.GradAllreduce);
      EXPECT_TRUE(S.FromPreset);
      EXPECT_EQ(S.Origin, "preset '" + Name + "' spec " + std::to_string(I));
      ASSERT_EQ(S.PatternLocs.size(), 1u);
      EXPECT_TRUE(S.PatternLocs[0].isValid());
      if (W[I].Shape.empty()) {
        EXPECT_FALSE(S.Shape.has_value());
        continue;
      }
      ASSERT_TRUE(S.Shape.has_value());
      ASSERT_EQ(S.Shape->size(), W[I].Shape.size());
      for (size_t J = 0; J < W[I].Shape.size(); ++J) {
        EXPECT_FALSE((*S.Shape)[J].IsList);
        EXPECT_EQ((*S.Shape)[J].Value, W[I].Shape[J]);
      }
      EXPECT_EQ(S.PartitionDim, std::optional<int64_t>(0));
    }
  }
}

TEST(PresetsTest, TableCoversExactlyThePresets) {
  std::vector<std::string> Names;
  for (const auto &KV : table())
    Names.push_back(KV.first);
  EXPECT_EQ(Names, presetNames()); // std::map iterates sorted
}

TEST(PresetsTest, LookupIsCaseInsensitive) {
  // Reference §1.2: the name is lower-cased before lookup.
  Engine E;
  auto Specs = loadPreset("LLaMA", E.Diags);
  ASSERT_TRUE(Specs.has_value());
  EXPECT_EQ(Specs->size(), 4u);
  EXPECT_EQ((*Specs)[0].Origin, "preset 'llama' spec 0");
  EXPECT_TRUE(loadPreset("Phi3", E.Diags).has_value());
  EXPECT_EQ(E.Diags.errorCount(), 0u);
}

TEST(PresetsTest, UnknownPresetIsNullopt) {
  Engine E;
  EXPECT_FALSE(loadPreset("gpt2", E.Diags).has_value());
  EXPECT_FALSE(loadPreset("", E.Diags).has_value());
  EXPECT_FALSE(loadPreset("llama_gqa", E.Diags).has_value()); // not reachable from preset_model (§2)
  EXPECT_FALSE(loadPreset("llama ", E.Diags).has_value());
  EXPECT_EQ(E.Diags.errorCount(), 0u); // reporting is the caller's job
  EXPECT_EQ(E.OS.str(), "");
}

TEST(PresetsTest, PresetDiagnosticsPointAtThePresetFile) {
  Engine E;
  auto Specs = loadPreset("phi3", E.Diags);
  ASSERT_TRUE(Specs.has_value());
  const LayerSpec &Qkv = (*Specs)[1];
  ASSERT_TRUE(Qkv.ShapeLoc.isValid());
  unsigned Buf = E.SM.FindBufferContainingLoc(Qkv.ShapeLoc.Range.Start);
  EXPECT_EQ(E.SM.getMemoryBuffer(Buf)->getBufferIdentifier(), "specs/presets/phi3.json");
}

} // namespace
