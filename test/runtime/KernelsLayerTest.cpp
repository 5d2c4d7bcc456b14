/* The kernels composed as kernels.h's header sketches a model: embedding, RMSNorm, q (with bias), k, v
   linears, RoPE in place, GQA attention, o-proj, residual add, RMSNorm, a fused gate_up linear (phi3),
   SwiGLU on its [gate | up] rows, down-proj, residual add, final RMSNorm, an LM head tied to the embedding
   and the mean cross-entropy with an ignored target. The hand-sequenced backward (q/k/v input gradients
   summed with Write::Accumulate, the residual gradient accumulated through the norms, the tied table's
   gradient from both the head and the lookup) must match float64 finite differences of the loss for
   every parameter: the contract holds end to end, not just per kernel. */
#include "KernelsTestUtil.h"

using namespace atp_kt;
using atp::DType;
using atp::Write;

namespace {

constexpr i64 B = 2, S = 6, T = B * S, H = 16, Hq = 4, Hkv = 2, D = 4, F = 12, V = 11;
constexpr i64 QW = Hq * D, KW = Hkv * D;
constexpr double kEps = 1e-6;

struct Params {
  Vec emb = random_vec(V * H, 1), w_in = random_vec(H, 2, 0.5, 1.5), wq = random_vec(QW * H, 3),
      bq = random_vec(QW, 4), wk = random_vec(KW * H, 5), wv = random_vec(KW * H, 6), wo = random_vec(H * QW, 7),
      w_post = random_vec(H, 8, 0.5, 1.5), wgu = random_vec(2 * F * H, 9), wd = random_vec(H * F, 10),
      w_f = random_vec(H, 11, 0.5, 1.5);
};

struct Acts {
  Vec x = Vec(T * H), h = Vec(T * H), r1 = Vec(T), q = Vec(T * QW), k = Vec(T * KW), v = Vec(T * KW),
      a = Vec(T * QW), lse = Vec(B * Hq * S), o = Vec(T * H), x1 = Vec(T * H), h2 = Vec(T * H), r2 = Vec(T),
      gu = Vec(T * 2 * F), m = Vec(T * F), d = Vec(T * H), x2 = Vec(T * H), hf = Vec(T * H), rf = Vec(T),
      logits = Vec(T * V);
};

class Layer {
public:
  Layer() : k_(kernels(DType::F64)), table_(S * D) {
    EXPECT_TRUE(k_->rope_table(table_.data(), {}, D, S).ok());
    for (i64 t = 0; t < T; ++t) {
      ids_.push_back(std::int32_t((t * 7 + 3) % V));
      targets_.push_back(t % 5 == 4 ? -100 : std::int32_t((t * 5 + 1) % V));
    }
    for (auto tg : targets_)
      count_ += tg != -100;
    dims_.batch = B, dims_.seq = S, dims_.q_heads = Hq, dims_.kv_heads = Hkv, dims_.head_dim = D;
    dims_.q_stride = QW, dims_.k_stride = dims_.v_stride = KW, dims_.scale = 1.0 / std::sqrt(double(D));
  }

  double forward(const Params &p, Acts &s) {
    auto &k = *k_;
    EXPECT_TRUE(k.embedding_forward(s.x.data(), p.emb.data(), ids_.data(), T, H, {V, 0, V}).ok());
    EXPECT_TRUE(k.rmsnorm_forward(s.h.data(), s.r1.data(), s.x.data(), p.w_in.data(), T, H, kEps).ok());
    EXPECT_TRUE(k.linear_forward(s.q.data(), s.h.data(), p.wq.data(), p.bq.data(), T, H, QW).ok());
    EXPECT_TRUE(k.linear_forward(s.k.data(), s.h.data(), p.wk.data(), nullptr, T, H, KW).ok());
    EXPECT_TRUE(k.linear_forward(s.v.data(), s.h.data(), p.wv.data(), nullptr, T, H, KW).ok());
    EXPECT_TRUE(k.rope_forward(s.q.data(), {B, S, Hq, D, QW, D, S}, table_.data()).ok());
    EXPECT_TRUE(k.rope_forward(s.k.data(), {B, S, Hkv, D, KW, D, S}, table_.data()).ok());
    EXPECT_TRUE(k.attention_forward(s.a.data(), s.lse.data(), s.q.data(), s.k.data(), s.v.data(), dims_).ok());
    EXPECT_TRUE(k.linear_forward(s.o.data(), s.a.data(), p.wo.data(), nullptr, T, QW, H).ok());
    EXPECT_TRUE(k.add(s.x1.data(), s.x.data(), s.o.data(), T * H).ok());
    EXPECT_TRUE(k.rmsnorm_forward(s.h2.data(), s.r2.data(), s.x1.data(), p.w_post.data(), T, H, kEps).ok());
    EXPECT_TRUE(k.linear_forward(s.gu.data(), s.h2.data(), p.wgu.data(), nullptr, T, H, 2 * F).ok());
    EXPECT_TRUE(k.swiglu_forward(s.m.data(), s.gu.data(), s.gu.data() + F, T, F, 2 * F).ok());
    EXPECT_TRUE(k.linear_forward(s.d.data(), s.m.data(), p.wd.data(), nullptr, T, F, H).ok());
    EXPECT_TRUE(k.add(s.x2.data(), s.x1.data(), s.d.data(), T * H).ok());
    EXPECT_TRUE(k.rmsnorm_forward(s.hf.data(), s.rf.data(), s.x2.data(), p.w_f.data(), T, H, kEps).ok());
    EXPECT_TRUE(k.linear_forward(s.logits.data(), s.hf.data(), p.emb.data(), nullptr, T, H, V).ok()); // tied
    atp::CrossEntropyArgs ce;
    ce.rows = T, ce.vocab = V, ce.denominator = count_, ce.write_grad = false;
    Vec logits = s.logits;
    return k.cross_entropy(logits.data(), targets_.data(), ce)->loss_sum / double(count_);
  }

  Params backward(const Params &p, Acts &s) {
    auto &k = *k_;
    Params g;
    for (Vec *v : {&g.emb, &g.w_in, &g.wq, &g.bq, &g.wk, &g.wv, &g.wo, &g.w_post, &g.wgu, &g.wd, &g.w_f})
      std::fill(v->begin(), v->end(), 0.0); // weight gradients accumulate from zero
    atp::CrossEntropyArgs ce;
    ce.rows = T, ce.vocab = V, ce.denominator = count_;
    EXPECT_TRUE(k.cross_entropy(s.logits.data(), targets_.data(), ce).ok()); // logits -> dlogits
    Vec dhf(T * H), dx(T * H), dm(T * F), dgu(T * 2 * F), dh2(T * H), da(T * QW), dq(T * QW), dk(T * KW),
        dv(T * KW), dh(T * H);
    EXPECT_TRUE(k.linear_backward(dhf.data(), Write::Overwrite, g.emb.data(), nullptr, Write::Accumulate,
                                  s.logits.data(), s.hf.data(), p.emb.data(), T, H, V)
                    .ok());
    EXPECT_TRUE(k.rmsnorm_backward(dx.data(), Write::Overwrite, g.w_f.data(), Write::Accumulate, dhf.data(),
                                   s.x2.data(), p.w_f.data(), s.rf.data(), T, H)
                    .ok()); // dx = d(x2)
    EXPECT_TRUE(k.linear_backward(dm.data(), Write::Overwrite, g.wd.data(), nullptr, Write::Accumulate, dx.data(),
                                  s.m.data(), p.wd.data(), T, F, H)
                    .ok());
    EXPECT_TRUE(k.swiglu_backward(dgu.data(), dgu.data() + F, dm.data(), s.gu.data(), s.gu.data() + F, T, F, 2 * F)
                    .ok());
    EXPECT_TRUE(k.linear_backward(dh2.data(), Write::Overwrite, g.wgu.data(), nullptr, Write::Accumulate, dgu.data(),
                                  s.h2.data(), p.wgu.data(), T, H, 2 * F)
                    .ok());
    EXPECT_TRUE(k.rmsnorm_backward(dx.data(), Write::Accumulate, g.w_post.data(), Write::Accumulate, dh2.data(),
                                   s.x1.data(), p.w_post.data(), s.r2.data(), T, H)
                    .ok()); // dx = d(x1)
    EXPECT_TRUE(k.linear_backward(da.data(), Write::Overwrite, g.wo.data(), nullptr, Write::Accumulate, dx.data(),
                                  s.a.data(), p.wo.data(), T, QW, H)
                    .ok());
    EXPECT_TRUE(k.attention_backward(dq.data(), dk.data(), dv.data(), da.data(), s.q.data(), s.k.data(), s.v.data(),
                                     s.a.data(), s.lse.data(), dims_).ok());
    EXPECT_TRUE(k.rope_backward(dq.data(), {B, S, Hq, D, QW, D, S}, table_.data()).ok());
    EXPECT_TRUE(k.rope_backward(dk.data(), {B, S, Hkv, D, KW, D, S}, table_.data()).ok());
    EXPECT_TRUE(k.linear_backward(dh.data(), Write::Overwrite, g.wq.data(), g.bq.data(), Write::Accumulate, dq.data(),
                                  s.h.data(), p.wq.data(), T, H, QW)
                    .ok());
    EXPECT_TRUE(k.linear_backward(dh.data(), Write::Accumulate, g.wk.data(), nullptr, Write::Accumulate, dk.data(),
                                  s.h.data(), p.wk.data(), T, H, KW)
                    .ok());
    EXPECT_TRUE(k.linear_backward(dh.data(), Write::Accumulate, g.wv.data(), nullptr, Write::Accumulate, dv.data(),
                                  s.h.data(), p.wv.data(), T, H, KW)
                    .ok());
    EXPECT_TRUE(k.rmsnorm_backward(dx.data(), Write::Accumulate, g.w_in.data(), Write::Accumulate, dh.data(),
                                   s.x.data(), p.w_in.data(), s.r1.data(), T, H)
                    .ok()); // dx = d(x)
    EXPECT_TRUE(k.embedding_backward(g.emb.data(), dx.data(), ids_.data(), T, H, {V, 0, V}).ok());
    return g;
  }

private:
  std::unique_ptr<atp::Kernels> k_;
  Vec table_;
  std::vector<std::int32_t> ids_, targets_;
  std::int64_t count_ = 0;
  atp::AttentionDims dims_;
};

TEST(KernelsLayer, HandSequencedBackwardMatchesFiniteDifferencesForEveryParameter) {
  Layer layer;
  Params p;
  Acts s;
  const double loss0 = layer.forward(p, s);
  EXPECT_TRUE(std::isfinite(loss0) && loss0 > 0) << loss0;
  const Params g = layer.backward(p, s);
  auto loss = [&] {
    Acts scratch;
    return layer.forward(p, scratch);
  };
  const std::pair<const char *, std::pair<Vec *, const Vec *>> all[] = {
      {"embed_tokens (tied lm_head)", {&p.emb, &g.emb}}, {"input_layernorm", {&p.w_in, &g.w_in}},
      {"q_proj.weight", {&p.wq, &g.wq}},                 {"q_proj.bias", {&p.bq, &g.bq}},
      {"k_proj", {&p.wk, &g.wk}},                        {"v_proj", {&p.wv, &g.wv}},
      {"o_proj", {&p.wo, &g.wo}},                        {"post_attention_layernorm", {&p.w_post, &g.w_post}},
      {"gate_up_proj", {&p.wgu, &g.wgu}},                {"down_proj", {&p.wd, &g.wd}},
      {"norm", {&p.w_f, &g.w_f}}};
  for (const auto &[name, pg] : all)
    EXPECT_TRUE(grad_check(*pg.first, *pg.second, loss, 1e-6, 100000)) << name;
}

} // namespace
