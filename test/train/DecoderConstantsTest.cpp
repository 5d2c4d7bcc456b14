//===- DecoderConstantsTest.cpp - compileTinyTrain equals a generated model.cpp -===//
//
// train_mpi trusts PlanLoader's compileTinyTrain to give the decoder the same
// constants a generated project's model.cpp states. This test holds it to
// the real thing: generated/tiny-qwen2-train (specs/train/tiny-qwen2.ds.json:
// specs/tiny/qwen2.json with the qwen2 preset at TP 2, as
// specs/tiny/qwen2.ds.json) is compiled into this build, and every field of
// its gen::decoder_shape, gen::decoder_params and gen::hf_config_json must
// equal what compileTinyTrain("qwen2", 2, ...) loads; the parameter indices
// must name the same parameters of the two plans. And a moved LoadedDecoder
// still points into itself.
//
//===----------------------------------------------------------------------===//
#include "PlanLoader.h"

#include "model.h"
#include "plan.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

using namespace autotpc;

namespace {

void expectSameLayer(const atp::DecoderLayerParams &A, const atp::DecoderLayerParams &B, int L) {
  SCOPED_TRACE("layer " + std::to_string(L));
  EXPECT_EQ(A.input_norm, B.input_norm);
  EXPECT_EQ(A.q, B.q);
  EXPECT_EQ(A.k, B.k);
  EXPECT_EQ(A.v, B.v);
  EXPECT_EQ(A.q_bias, B.q_bias);
  EXPECT_EQ(A.k_bias, B.k_bias);
  EXPECT_EQ(A.v_bias, B.v_bias);
  EXPECT_EQ(A.qkv, B.qkv);
  EXPECT_EQ(A.o, B.o);
  EXPECT_EQ(A.post_norm, B.post_norm);
  EXPECT_EQ(A.gate, B.gate);
  EXPECT_EQ(A.up, B.up);
  EXPECT_EQ(A.gate_up, B.gate_up);
  EXPECT_EQ(A.down, B.down);
}

} // namespace

TEST(DecoderConstants, CompileTinyTrainEqualsGeneratedModelCpp) {
  LoadedPlan P;
  LoadedZero Z;
  LoadedDecoder D;
  ASSERT_EQ(compileTinyTrain("qwen2", 2, {{"bf16", {{"enabled", false}}}}, P, Z, D), "");
  const atp::DecoderShape &A = D.Shape, &G = gen::decoder_shape;
  EXPECT_EQ(A.hidden, G.hidden);
  EXPECT_EQ(A.layers, G.layers);
  EXPECT_EQ(A.vocab, G.vocab);
  EXPECT_EQ(A.heads, G.heads);
  EXPECT_EQ(A.kv_heads, G.kv_heads);
  EXPECT_EQ(A.head_dim, G.head_dim);
  EXPECT_EQ(A.ffn, G.ffn);
  EXPECT_EQ(A.max_positions, G.max_positions);
  EXPECT_EQ(A.tp_size, G.tp_size);
  EXPECT_EQ(A.attn_split, G.attn_split);
  EXPECT_EQ(A.mlp_split, G.mlp_split);
  EXPECT_EQ(A.local_heads, G.local_heads);
  EXPECT_EQ(A.local_kv_heads, G.local_kv_heads);
  EXPECT_EQ(A.local_ffn, G.local_ffn);
  EXPECT_EQ(A.qkv_fused, G.qkv_fused);
  EXPECT_EQ(A.qkv_bias, G.qkv_bias);
  EXPECT_EQ(A.gate_up_fused, G.gate_up_fused);
  EXPECT_EQ(A.tied_embeddings, G.tied_embeddings);
  EXPECT_EQ(A.rms_eps, G.rms_eps);
  EXPECT_EQ(A.sliding_window, G.sliding_window);
  EXPECT_EQ(A.rope_theta, G.rope_theta);
  EXPECT_STREQ(A.rope_type, G.rope_type);
  EXPECT_EQ(A.rope_factor, G.rope_factor);
  EXPECT_EQ(A.rope_low_freq_factor, G.rope_low_freq_factor);
  EXPECT_EQ(A.rope_high_freq_factor, G.rope_high_freq_factor);
  EXPECT_EQ(A.rope_original_max_positions, G.rope_original_max_positions);
  EXPECT_EQ(A.recompute, G.recompute);
  // The features this family must have, so a test of all-default shapes cannot pass by accident.
  EXPECT_TRUE(A.qkv_bias && A.tied_embeddings && A.attn_split && A.mlp_split);
  EXPECT_EQ(A.local_heads * 2, A.heads);

  EXPECT_EQ(D.Params.embed, gen::decoder_params.embed);
  EXPECT_EQ(D.Params.final_norm, gen::decoder_params.final_norm);
  EXPECT_EQ(D.Params.lm_head, gen::decoder_params.lm_head);
  ASSERT_EQ(int64_t(D.Layers.size()), G.layers);
  for (int L = 0; L < int(G.layers); ++L)
    expectSameLayer(D.Params.layers[L], gen::decoder_params.layers[L], L);
  EXPECT_EQ(std::string(D.hfConfigJson()), std::string(gen::hf_config_json));

  // The indices name the same parameters in both plans.
  ASSERT_EQ(P.Plan.num_params, gen::plan.num_params);
  for (int I = 0; I < P.Plan.num_params; ++I)
    EXPECT_STREQ(P.Plan.params[I].name, gen::plan.params[I].name) << "parameter " << I;
}

TEST(DecoderConstants, MovedLoadedDecoderPointsIntoItself) {
  LoadedPlan P;
  LoadedZero Z;
  LoadedDecoder D;
  ASSERT_EQ(compileTinyTrain("phi3", 4, {{"bf16", {{"enabled", false}}}}, P, Z, D), "");
  LoadedDecoder Moved(std::move(D));
  LoadedDecoder Assigned;
  Assigned = std::move(Moved);
  EXPECT_EQ(Assigned.Shape.rope_type, Assigned.Desc.RopeType.c_str());
  EXPECT_STREQ(Assigned.Shape.rope_type, "default");
  EXPECT_EQ(Assigned.Params.layers, Assigned.Layers.data());
  EXPECT_TRUE(Assigned.Shape.qkv_fused && Assigned.Shape.gate_up_fused);
  EXPECT_EQ(Assigned.Shape.local_kv_heads, 2); // 8 KV heads over TP 4
  EXPECT_GE(Assigned.Params.layers[1].qkv, 0);
}

TEST(DecoderConstants, FamilyWithoutTrainingCodeIsAnError) {
  LoadedPlan P;
  LoadedZero Z;
  LoadedDecoder D;
  const std::string Diag = compileTinyTrain("bloom", 2, {{"bf16", {{"enabled", false}}}}, P, Z, D);
  EXPECT_NE(Diag.find("no training code"), std::string::npos) << Diag;
}
