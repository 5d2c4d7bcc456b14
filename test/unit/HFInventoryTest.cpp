//===- HFInventoryTest.cpp - tests for HF config -> inventory -------------===//
//
// Parameter counts of well-known checkpoints (published figures, not values
// computed by the code under test), name order and shapes per family, and
// the problems reported for bad configs.
//
//===----------------------------------------------------------------------===//

#include "Model/HFInventory.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>


using namespace autotpc;
using nlohmann::json;

namespace {

/// Derives an inventory that must succeed without errors.
HFInventory derive(const json &Config) {
  std::vector<ConfigProblem> Problems;
  std::optional<HFInventory> Inv = deriveInventory(Config, Problems);
  for (const ConfigProblem &P : Problems)
    ADD_FAILURE() << (P.IsWarning ? "warning at '" : "error at '") << P.Pointer
                  << "': " << P.Message;
  if (!Inv) {
    ADD_FAILURE() << "derivation failed";
    return {};
  }
  return *Inv;
}

/// Derives an inventory that must fail; returns the problems.
std::vector<ConfigProblem> failures(const json &Config) {
  std::vector<ConfigProblem> Problems;
  EXPECT_FALSE(deriveInventory(Config, Problems).has_value());
  EXPECT_FALSE(Problems.empty());
  return Problems;
}

int64_t totalElements(const HFInventory &Inv) {
  int64_t Total = 0;
  for (const ParamInfo &P : Inv.Params) {
    int64_t N = 1;
    for (int64_t Extent : P.Shape)
      N *= Extent;
    Total += N;
  }
  return Total;
}

const ParamInfo *findParam(const HFInventory &Inv, const std::string &Name) {
  for (const ParamInfo &P : Inv.Params)
    if (P.Name == Name)
      return &P;
  return nullptr;
}

using Shape = std::vector<int64_t>;

json llama32_1B() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "vocab_size": 128256, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "attention_bias": false, "mlp_bias": false, "rope_theta": 500000.0})");
}

json llama31_8B() {
  return json::parse(R"({
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "vocab_size": 128256, "tie_word_embeddings": false, "torch_dtype": "bfloat16"})");
}

json llama31_405B() {
  return json::parse(R"({
    "model_type": "llama", "hidden_size": 16384, "intermediate_size": 53248,
    "num_hidden_layers": 126, "num_attention_heads": 128, "num_key_value_heads": 8,
    "vocab_size": 128256, "tie_word_embeddings": false, "torch_dtype": "bfloat16"})");
}

json qwen2_05B() {
  return json::parse(R"({
    "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "vocab_size": 151936, "tie_word_embeddings": true, "torch_dtype": "bfloat16"})");
}

json mixtral8x7B() {
  return json::parse(R"({
    "model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16"})");
}

json phi3Mini() {
  return json::parse(R"({
    "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "vocab_size": 32064, "tie_word_embeddings": false, "torch_dtype": "bfloat16"})");
}

json bloom560m() {
  return json::parse(R"({
    "model_type": "bloom", "n_embed": 1024, "n_layer": 24, "num_attention_heads": 16,
    "vocab_size": 250880, "n_inner": null})");
}

json deepseekV2Lite() {
  return json::parse(R"({
    "model_type": "deepseek_v2", "hidden_size": 2048, "intermediate_size": 10944,
    "moe_intermediate_size": 1408, "num_hidden_layers": 27, "num_attention_heads": 16,
    "num_key_value_heads": 16, "n_shared_experts": 2, "n_routed_experts": 64,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": null,
    "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "vocab_size": 102400, "tie_word_embeddings": false,
    "attention_bias": false, "torch_dtype": "bfloat16"})");
}

json chatglm3_6B() {
  return json::parse(R"({
    "model_type": "chatglm", "hidden_size": 4096, "num_layers": 28,
    "num_attention_heads": 32, "kv_channels": 128, "multi_query_attention": true,
    "multi_query_group_num": 2, "ffn_hidden_size": 13696, "padded_vocab_size": 65024,
    "add_qkv_bias": true, "add_bias_linear": false, "post_layer_norm": true,
    "rmsnorm": true, "torch_dtype": "float16"})");
}

//===----------------------------------------------------------------------===//
// Published parameter counts
//===----------------------------------------------------------------------===//

TEST(HFInventoryTest, Llama32_1B) {
  HFInventory Inv = derive(llama32_1B());
  // embed + 16 * (4 attn + 3 mlp + 2 norms) + final norm; lm_head is tied.
  EXPECT_EQ(Inv.Params.size(), 1u + 16 * 9 + 1);
  EXPECT_EQ(totalElements(Inv), 1'235'814'400);
  EXPECT_TRUE(Inv.Dims.TiedEmbeddings);
  EXPECT_EQ(Inv.Params.front().Name, "model.embed_tokens.weight");
  EXPECT_EQ(Inv.Params.back().Name, "model.norm.weight");
  EXPECT_EQ(findParam(Inv, "lm_head.weight"), nullptr);
  EXPECT_EQ(Inv.Params.front().DType, "BF16");
  // head_dim is honoured and located.
  EXPECT_EQ(Inv.Dims.HeadDim.Value, 64);
  EXPECT_EQ(Inv.Dims.HeadDim.Pointer, "/head_dim");
  EXPECT_EQ(Inv.Dims.NumKVHeads.Pointer, "/num_key_value_heads");
  EXPECT_EQ(Inv.Dims.TieWordEmbeddings.Pointer, "/tie_word_embeddings");
  EXPECT_EQ(Inv.Dims.TieWordEmbeddings.Value, 1);
}

TEST(HFInventoryTest, Llama31_8B) {
  HFInventory Inv = derive(llama31_8B());
  EXPECT_EQ(Inv.Params.size(), 1u + 32 * 9 + 1 + 1);
  EXPECT_EQ(totalElements(Inv), 8'030'261'248);
  EXPECT_FALSE(Inv.Dims.TiedEmbeddings);
  EXPECT_EQ(Inv.Params.front().Name, "model.embed_tokens.weight");
  EXPECT_EQ(Inv.Params.back().Name, "lm_head.weight");
  EXPECT_EQ(Inv.Params.back().Shape, (Shape{128256, 4096}));
  EXPECT_EQ(Inv.Params.back().R, Role::LmHead);
  EXPECT_EQ(Inv.Params[Inv.Params.size() - 2].Name, "model.norm.weight");
  // head_dim derived from hidden_size / num_attention_heads.
  EXPECT_EQ(Inv.Dims.HeadDim.Value, 128);
  EXPECT_EQ(Inv.Dims.HeadDim.Pointer, "");
  EXPECT_EQ(Inv.Dims.HeadDim.Note, "hidden_size / num_attention_heads");
  const ParamInfo *K = findParam(Inv, "model.layers.31.self_attn.k_proj.weight");
  ASSERT_NE(K, nullptr);
  EXPECT_EQ(K->Shape, (Shape{1024, 4096}));
  EXPECT_EQ(K->R, Role::AttnK);
  EXPECT_EQ(K->Layer, 31);
  EXPECT_EQ(K->Block, "attn");
  const ParamInfo *Down = findParam(Inv, "model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(Down, nullptr);
  EXPECT_EQ(Down->Shape, (Shape{4096, 14336}));
  EXPECT_EQ(Down->R, Role::MlpDown);
  EXPECT_EQ(Down->Block, "mlp");
}

TEST(HFInventoryTest, Llama31_405B) {
  // Speed is measured by test/bench/CheckBench.cpp, never asserted in a test.
  json Config = llama31_405B();
  HFInventory Inv = derive(Config);
  EXPECT_EQ(Inv.Params.size(), 1u + 126 * 9 + 1 + 1);
  EXPECT_EQ(totalElements(Inv), 405'853'388'800);
}

TEST(HFInventoryTest, Qwen2_05B) {
  HFInventory Inv = derive(qwen2_05B());
  // q, k, v each have a bias: 4 + 3 attn tensors per layer.
  EXPECT_EQ(Inv.Params.size(), 1u + 24 * 12 + 1);
  EXPECT_EQ(totalElements(Inv), 494'032'768);
  const ParamInfo *QB = findParam(Inv, "model.layers.0.self_attn.q_proj.bias");
  ASSERT_NE(QB, nullptr);
  EXPECT_EQ(QB->Shape, (Shape{896}));
  EXPECT_EQ(QB->R, Role::AttnQ);
  EXPECT_EQ(findParam(Inv, "model.layers.0.self_attn.o_proj.bias"), nullptr);
  EXPECT_EQ(Inv.Params[1].Name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(Inv.Params[2].Name, "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(Inv.Params[3].Name, "model.layers.0.self_attn.k_proj.weight");
}

TEST(HFInventoryTest, Mixtral8x7B) {
  HFInventory Inv = derive(mixtral8x7B());
  EXPECT_EQ(Inv.Params.size(), 1u + 32 * (4 + 1 + 8 * 3 + 2) + 1 + 1);
  EXPECT_EQ(totalElements(Inv), 46'702'792'704);
  EXPECT_EQ(Inv.Dims.NumExperts.Value, 8);
  EXPECT_EQ(Inv.Dims.NumExperts.Pointer, "/num_local_experts");
  // Layer 0: embed, q, k, v, o, then the router and the experts.
  EXPECT_EQ(Inv.Params[5].Name, "model.layers.0.block_sparse_moe.gate.weight");
  EXPECT_EQ(Inv.Params[5].R, Role::Router);
  EXPECT_EQ(Inv.Params[5].Block, "");
  EXPECT_EQ(Inv.Params[5].Shape, (Shape{8, 4096}));
  EXPECT_EQ(Inv.Params[6].Name, "model.layers.0.block_sparse_moe.experts.0.w1.weight");
  EXPECT_EQ(Inv.Params[7].Name, "model.layers.0.block_sparse_moe.experts.0.w2.weight");
  EXPECT_EQ(Inv.Params[8].Name, "model.layers.0.block_sparse_moe.experts.0.w3.weight");
  const ParamInfo *W2 = findParam(Inv, "model.layers.3.block_sparse_moe.experts.3.w2.weight");
  ASSERT_NE(W2, nullptr);
  EXPECT_EQ(W2->R, Role::MlpDown);
  EXPECT_EQ(W2->Shape, (Shape{4096, 14336}));
  EXPECT_EQ(W2->Block, "block_sparse_moe.experts.3");
  EXPECT_EQ(W2->Layer, 3);
}

TEST(HFInventoryTest, Phi3Mini) {
  HFInventory Inv = derive(phi3Mini());
  EXPECT_EQ(Inv.Params.size(), 1u + 32 * 6 + 1 + 1);
  EXPECT_EQ(totalElements(Inv), 3'821'079'552);
}

TEST(HFInventoryTest, Phi3LayerOrder) {
  HFInventory Inv = derive(phi3Mini());
  const char *Expected[] = {
      "model.layers.0.self_attn.o_proj.weight", "model.layers.0.self_attn.qkv_proj.weight",
      "model.layers.0.mlp.gate_up_proj.weight", "model.layers.0.mlp.down_proj.weight",
      "model.layers.0.input_layernorm.weight",  "model.layers.0.post_attention_layernorm.weight"};
  Shape Shapes[] = {{3072, 3072}, {9216, 3072}, {16384, 3072}, {3072, 8192}, {3072}, {3072}};
  Role Roles[] = {Role::AttnOut, Role::AttnQKV, Role::MlpGateUp,
                  Role::MlpDown, Role::Norm,    Role::Norm};
  ASSERT_GE(Inv.Params.size(), 7u);
  for (size_t I = 0; I < 6; ++I) {
    EXPECT_EQ(Inv.Params[I + 1].Name, Expected[I]);
    EXPECT_EQ(Inv.Params[I + 1].Shape, Shapes[I]);
    EXPECT_EQ(Inv.Params[I + 1].R, Roles[I]);
  }
  EXPECT_EQ(Inv.Params[7].Name, "model.layers.1.self_attn.o_proj.weight");
}

TEST(HFInventoryTest, Bloom560m) {
  HFInventory Inv = derive(bloom560m());
  EXPECT_EQ(Inv.Params.size(), 1u + 2 + 24 * 12 + 2);
  EXPECT_EQ(totalElements(Inv), 559'214'592);
  EXPECT_TRUE(Inv.Dims.TiedEmbeddings);
  EXPECT_EQ(Inv.Dims.TieWordEmbeddings.Note, "defaults to true");
  EXPECT_EQ(Inv.Dims.Hidden.Key, "n_embed");
  EXPECT_EQ(Inv.Dims.Hidden.Pointer, "/n_embed");
  EXPECT_EQ(Inv.Dims.NumLayers.Key, "n_layer");
  EXPECT_EQ(Inv.Dims.Intermediate.Value, 4096);
  EXPECT_EQ(Inv.Dims.NumKVHeads.Value, 16);
  EXPECT_EQ(Inv.Params.front().Name, "transformer.word_embeddings.weight");
  EXPECT_EQ(Inv.Params.back().Name, "transformer.ln_f.bias");
  EXPECT_EQ(Inv.Params.front().DType, "F32"); // no torch_dtype
  const ParamInfo *QKV = findParam(Inv, "transformer.h.5.self_attention.query_key_value.bias");
  ASSERT_NE(QKV, nullptr);
  EXPECT_EQ(QKV->Shape, (Shape{3072}));
  EXPECT_EQ(QKV->R, Role::AttnQKVInterleaved);
}

TEST(HFInventoryTest, DeepseekV2Lite) {
  HFInventory Inv = derive(deepseekV2Lite());
  // Layer 0 dense: q, kv_a, kv_a_ln, kv_b, o, 3 mlp, 2 norms = 10.
  // Layers 1..26 MoE: 5 attn + 64 * 3 experts + router + 3 shared + 2 norms = 203.
  EXPECT_EQ(Inv.Params.size(), 1u + 10 + 26 * 203 + 1 + 1);
  EXPECT_EQ(totalElements(Inv), 15'706'484'224);
  const ModelDims &D = Inv.Dims;
  EXPECT_EQ(D.HeadDim.Value, 192);
  EXPECT_EQ(D.HeadDim.Note, "qk_nope_head_dim + qk_rope_head_dim");
  EXPECT_EQ(D.QLoraRank.Value, 0);
  EXPECT_EQ(D.KVLoraRank.Value, 512);
  EXPECT_EQ(D.NumExperts.Value, 64);
  EXPECT_EQ(D.NumSharedExperts.Value, 2);
  EXPECT_EQ(D.FirstDenseLayers.Value, 1);
  EXPECT_EQ(D.MoeIntermediate.Pointer, "/moe_intermediate_size");

  const char *Layer0[] = {"model.layers.0.self_attn.q_proj.weight",
                          "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
                          "model.layers.0.self_attn.kv_a_layernorm.weight",
                          "model.layers.0.self_attn.kv_b_proj.weight",
                          "model.layers.0.self_attn.o_proj.weight",
                          "model.layers.0.mlp.gate_proj.weight",
                          "model.layers.0.mlp.up_proj.weight",
                          "model.layers.0.mlp.down_proj.weight"};
  for (size_t I = 0; I < 8; ++I)
    EXPECT_EQ(Inv.Params[I + 1].Name, Layer0[I]);
  EXPECT_EQ(Inv.Params[1].Shape, (Shape{16 * 192, 2048}));
  EXPECT_EQ(Inv.Params[2].Shape, (Shape{576, 2048}));
  EXPECT_EQ(Inv.Params[2].R, Role::AttnKVA);
  EXPECT_EQ(Inv.Params[4].Shape, (Shape{16 * 256, 512}));
  EXPECT_EQ(Inv.Params[4].R, Role::AttnKVB);
  EXPECT_EQ(Inv.Params[5].Shape, (Shape{2048, 2048}));

  const ParamInfo *Gate = findParam(Inv, "model.layers.1.mlp.gate.weight");
  ASSERT_NE(Gate, nullptr);
  EXPECT_EQ(Gate->R, Role::Router);
  EXPECT_EQ(Gate->Shape, (Shape{64, 2048}));
  // The router follows the last routed expert.
  EXPECT_EQ((Gate - 1)->Name, "model.layers.1.mlp.experts.63.down_proj.weight");
  const ParamInfo *E3 = findParam(Inv, "model.layers.2.mlp.experts.3.up_proj.weight");
  ASSERT_NE(E3, nullptr);
  EXPECT_EQ(E3->Block, "mlp.experts.3");
  EXPECT_EQ(E3->Shape, (Shape{1408, 2048}));
  const ParamInfo *Shared = findParam(Inv, "model.layers.26.mlp.shared_experts.down_proj.weight");
  ASSERT_NE(Shared, nullptr);
  EXPECT_EQ(Shared->Block, "mlp.shared_experts");
  EXPECT_EQ(Shared->Shape, (Shape{2048, 2816}));
  EXPECT_EQ(Inv.Params.back().Name, "lm_head.weight");
}

TEST(HFInventoryTest, DeepseekV2QLoraAndBias) {
  json Config = deepseekV2Lite();
  Config["q_lora_rank"] = 1536;
  Config["attention_bias"] = true;
  Config["n_routed_experts"] = nullptr; // dense everywhere
  HFInventory Inv = derive(Config);
  const char *Expected[] = {"model.layers.0.self_attn.q_a_proj.weight",
                            "model.layers.0.self_attn.q_a_proj.bias",
                            "model.layers.0.self_attn.q_a_layernorm.weight",
                            "model.layers.0.self_attn.q_b_proj.weight",
                            "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
                            "model.layers.0.self_attn.kv_a_proj_with_mqa.bias",
                            "model.layers.0.self_attn.kv_a_layernorm.weight",
                            "model.layers.0.self_attn.kv_b_proj.weight",
                            "model.layers.0.self_attn.o_proj.weight",
                            "model.layers.0.self_attn.o_proj.bias",
                            "model.layers.0.mlp.gate_proj.weight"};
  for (size_t I = 0; I < 11; ++I)
    EXPECT_EQ(Inv.Params[I + 1].Name, Expected[I]);
  EXPECT_EQ(Inv.Params[1].R, Role::AttnQA);
  EXPECT_EQ(Inv.Params[3].R, Role::Norm);
  EXPECT_EQ(Inv.Params[4].R, Role::AttnQB);
  EXPECT_EQ(Inv.Params[4].Shape, (Shape{16 * 192, 1536}));
  EXPECT_EQ(Inv.Dims.NumExperts.Value, 0);
  EXPECT_EQ(findParam(Inv, "model.layers.26.mlp.gate.weight"), nullptr);
}

TEST(HFInventoryTest, ChatGLM3_6B) {
  HFInventory Inv = derive(chatglm3_6B());
  // Per layer: ln, qkv weight + bias, dense, ln, h_to_4h, 4h_to_h.
  EXPECT_EQ(Inv.Params.size(), 1u + 28 * 7 + 1 + 1);
  EXPECT_EQ(totalElements(Inv), 6'243'584'000);
  EXPECT_EQ(Inv.Dims.NumKVHeads.Value, 2);
  EXPECT_EQ(Inv.Dims.NumKVHeads.Pointer, "/multi_query_group_num");
  EXPECT_EQ(Inv.Dims.HeadDim.Pointer, "/kv_channels");
  EXPECT_EQ(Inv.Params.front().Name, "transformer.embedding.word_embeddings.weight");
  EXPECT_EQ(Inv.Params.back().Name, "transformer.output_layer.weight");
  EXPECT_EQ(Inv.Params.back().R, Role::LmHead);
  EXPECT_EQ(Inv.Params[Inv.Params.size() - 2].Name, "transformer.encoder.final_layernorm.weight");
  EXPECT_EQ(Inv.Params.front().DType, "F16");
  const ParamInfo *QKV =
      findParam(Inv, "transformer.encoder.layers.0.self_attention.query_key_value.weight");
  ASSERT_NE(QKV, nullptr);
  EXPECT_EQ(QKV->Shape, (Shape{4608, 4096}));
  EXPECT_EQ(QKV->R, Role::AttnQKV);
  const ParamInfo *Up = findParam(Inv, "transformer.encoder.layers.27.mlp.dense_h_to_4h.weight");
  ASSERT_NE(Up, nullptr);
  EXPECT_EQ(Up->Shape, (Shape{27392, 4096}));
  EXPECT_EQ(Up->R, Role::MlpGateUp);
}

TEST(HFInventoryTest, ChatGLMTieIsAWarning) {
  json Config = chatglm3_6B();
  Config["tie_word_embeddings"] = true;
  std::vector<ConfigProblem> Problems;
  std::optional<HFInventory> Inv = deriveInventory(Config, Problems);
  ASSERT_TRUE(Inv.has_value());
  ASSERT_EQ(Problems.size(), 1u);
  EXPECT_TRUE(Problems[0].IsWarning);
  EXPECT_EQ(Problems[0].Pointer, "/tie_word_embeddings");
  EXPECT_EQ(Inv->Params.back().Name, "transformer.output_layer.weight");
}

//===----------------------------------------------------------------------===//
// Dimensions
//===----------------------------------------------------------------------===//

TEST(HFInventoryTest, MistralHeadDimHonoured) {
  // Mistral-Nemo: head_dim 128 although 5120 / 32 = 160.
  HFInventory Inv = derive(json::parse(R"({
    "model_type": "mistral", "hidden_size": 5120, "intermediate_size": 14336,
    "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "vocab_size": 131072})"));
  const ParamInfo *Q = findParam(Inv, "model.layers.0.self_attn.q_proj.weight");
  const ParamInfo *K = findParam(Inv, "model.layers.0.self_attn.k_proj.weight");
  const ParamInfo *O = findParam(Inv, "model.layers.0.self_attn.o_proj.weight");
  ASSERT_TRUE(Q && K && O);
  EXPECT_EQ(Q->Shape, (Shape{4096, 5120}));
  EXPECT_EQ(K->Shape, (Shape{1024, 5120}));
  EXPECT_EQ(O->Shape, (Shape{5120, 4096}));
  EXPECT_EQ(Inv.Dims.Family, "mistral");
}

TEST(HFInventoryTest, DefaultsAreNoted) {
  HFInventory Inv = derive(json::parse(R"({
    "model_type": "LLaMA", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
    "head_dim": null, "torch_dtype": "float16"})"));
  const ModelDims &D = Inv.Dims;
  EXPECT_EQ(D.ModelType, "llama");
  EXPECT_EQ(D.Family, "llama");
  EXPECT_EQ(D.NumKVHeads.Value, 4);
  EXPECT_EQ(D.NumKVHeads.Pointer, "");
  EXPECT_EQ(D.NumKVHeads.Key, "num_key_value_heads");
  EXPECT_EQ(D.NumKVHeads.Note, "defaults to num_attention_heads");
  EXPECT_EQ(D.HeadDim.Value, 16);
  EXPECT_EQ(D.TieWordEmbeddings.Note, "defaults to false");
  EXPECT_EQ(D.Hidden.Pointer, "/hidden_size");
  EXPECT_EQ(D.Hidden.Key, "hidden_size");
  EXPECT_EQ(D.Hidden.Note, "");
  EXPECT_EQ(Inv.Params.front().DType, "F16");
  EXPECT_NE(findParam(Inv, "lm_head.weight"), nullptr);
}

TEST(HFInventoryTest, LlamaBiases) {
  json Config = llama31_8B();
  Config["num_hidden_layers"] = 1;
  Config["attention_bias"] = true;
  Config["mlp_bias"] = true;
  HFInventory Inv = derive(Config);
  EXPECT_EQ(Inv.Params.size(), 1u + 8 + 6 + 2 + 1 + 1);
  EXPECT_NE(findParam(Inv, "model.layers.0.self_attn.o_proj.bias"), nullptr);
  EXPECT_NE(findParam(Inv, "model.layers.0.mlp.down_proj.bias"), nullptr);
}

TEST(HFInventoryTest, TextConfigIgnored) {
  json Config = llama31_8B();
  Config["text_config"] = {{"hidden_size", "nonsense"}};
  EXPECT_EQ(totalElements(derive(Config)), 8'030'261'248);
}

TEST(HFInventoryTest, KnownFamilies) {
  std::vector<std::string> Expected = {"llama",   "mistral",     "qwen2", "phi3",
                                       "mixtral", "deepseek_v2", "bloom", "chatglm"};
  EXPECT_EQ(knownFamilies(), Expected);
  EXPECT_TRUE(isKnownFamily("Qwen2"));
  EXPECT_TRUE(isKnownFamily("deepseek_v2"));
  EXPECT_FALSE(isKnownFamily("gpt2"));
  EXPECT_FALSE(isKnownFamily(""));
}

TEST(HFInventoryTest, RoleNames) {
  EXPECT_STREQ(roleName(Role::Unknown), "unknown");
  EXPECT_STREQ(roleName(Role::LmHead), "lm_head");
  EXPECT_STREQ(roleName(Role::AttnQKVInterleaved), "attn_qkv_interleaved");
  EXPECT_STREQ(roleName(Role::AttnKVB), "attn_kv_b");
  EXPECT_STREQ(roleName(Role::MlpGateUp), "mlp_gate_up");
  EXPECT_STREQ(roleName(Role::Router), "router");
  EXPECT_STREQ(roleName(Role::Other), "other");
}

//===----------------------------------------------------------------------===//
// Problems
//===----------------------------------------------------------------------===//

TEST(HFInventoryTest, MissingModelType) {
  json Config = llama31_8B();
  Config.erase("model_type");
  std::vector<ConfigProblem> P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "");
  EXPECT_NE(P[0].Message.find("model_type"), std::string::npos);
  EXPECT_FALSE(P[0].IsWarning);
}

TEST(HFInventoryTest, UnknownFamily) {
  json Config = llama31_8B();
  Config["model_type"] = "gpt2";
  std::vector<ConfigProblem> P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "/model_type");
  EXPECT_NE(P[0].Message.find("'gpt2'"), std::string::npos);
  EXPECT_NE(P[0].Message.find("llama, mistral, qwen2, phi3, mixtral, deepseek_v2, bloom, chatglm"),
            std::string::npos);
}

TEST(HFInventoryTest, NonIntegerHiddenSize) {
  json Config = llama31_8B();
  Config["hidden_size"] = 4096.0;
  std::vector<ConfigProblem> P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "/hidden_size");
  EXPECT_EQ(P[0].Message, "'hidden_size' (4096.0) is not an integer");

  Config["hidden_size"] = "4096";
  P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "/hidden_size");
}

TEST(HFInventoryTest, AllProblemsReported) {
  json Config = llama31_8B();
  Config["vocab_size"] = -5;
  Config["num_hidden_layers"] = 0;
  Config.erase("intermediate_size");
  Config["tie_word_embeddings"] = 1;
  std::vector<ConfigProblem> P = failures(Config);
  std::vector<std::string> Pointers;
  for (const ConfigProblem &Problem : P)
    Pointers.push_back(Problem.Pointer);
  std::vector<std::string> Expected = {"", "/num_hidden_layers", "/vocab_size",
                                       "/tie_word_embeddings"};
  EXPECT_EQ(Pointers, Expected);
  EXPECT_EQ(P[0].Message, "missing 'intermediate_size'");
  EXPECT_EQ(P[2].Message, "'vocab_size' (-5) must be positive");
}

TEST(HFInventoryTest, ProblemPointers) {
  json Config = llama31_8B();
  Config["num_key_value_heads"] = 6;
  std::vector<ConfigProblem> P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "/num_key_value_heads");
  EXPECT_EQ(P[0].Message,
            "'num_attention_heads' (32) is not divisible by 'num_key_value_heads' (6)");

  Config = llama31_8B();
  Config["num_attention_heads"] = 48; // 4096 % 48 != 0, and no head_dim
  Config["num_key_value_heads"] = 8;
  P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "/hidden_size");

  Config = llama31_8B();
  Config["num_key_value_heads"] = nullptr; // null means "default"
  EXPECT_EQ(derive(Config).Dims.NumKVHeads.Value, 32);

  Config = bloom560m();
  Config["n_embed"] = nullptr;
  Config.erase("n_embed");
  P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Message, "missing 'n_embed' or 'hidden_size'");

  Config = deepseekV2Lite();
  Config.erase("q_lora_rank");
  Config["kv_lora_rank"] = nullptr;
  P = failures(Config);
  ASSERT_EQ(P.size(), 2u);
  EXPECT_EQ(P[0].Pointer, "");
  EXPECT_EQ(P[1].Pointer, "/kv_lora_rank");
}

TEST(HFInventoryTest, OversizedValues) {
  json Config = llama31_8B();
  Config["vocab_size"] = 1ull << 40;
  std::vector<ConfigProblem> P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "/vocab_size");

  Config = llama31_8B();
  Config["num_hidden_layers"] = 1000000; // 9M tensors
  P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "/num_hidden_layers");

  // Values under the cap whose products overflow int64_t.
  Config = llama31_8B();
  Config["hidden_size"] = 1 << 24;
  Config["intermediate_size"] = 1 << 24;
  Config["num_attention_heads"] = 1 << 24;
  Config["num_key_value_heads"] = 1 << 24;
  Config["head_dim"] = 1 << 24;
  P = failures(Config);
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "");
}

TEST(HFInventoryTest, NotAnObject) {
  std::vector<ConfigProblem> P = failures(json::array({1, 2}));
  ASSERT_EQ(P.size(), 1u);
  EXPECT_EQ(P[0].Pointer, "");
}

TEST(HFInventoryTest, BloomAliasConflictWarns) {
  json Config = bloom560m();
  Config["hidden_size"] = 64; // n_embed wins, as in BloomConfig
  std::vector<ConfigProblem> Problems;
  std::optional<HFInventory> Inv = deriveInventory(Config, Problems);
  ASSERT_TRUE(Inv.has_value());
  EXPECT_EQ(Inv->Dims.Hidden.Value, 1024);
  ASSERT_EQ(Problems.size(), 1u);
  EXPECT_TRUE(Problems[0].IsWarning);
  EXPECT_EQ(Problems[0].Pointer, "/hidden_size");
}

} // namespace
