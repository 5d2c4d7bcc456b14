/* decoder.cpp - the Llama-family forward and backward (decoder.h): kernel calls in order, TP collectives
   where DeepSpeed puts them, saved activations for backward.

   Buffers are allocated once for max_batch x max_seq tokens; a micro-batch of T <= that many tokens uses
   their first T rows. Per layer l the forward keeps its input x[l], the normed inputs n1/n2 and their rstd,
   the projections (q, k, v after RoPE, or the fused qkv), the attention output and its logsumexp, the
   residual h after attention, gate/up and the SwiGLU output; x[layers] is the final norm's input. */
#include "atp/decoder.h"
#include "atp/decoder_memory.h"

#include <array>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

namespace atp {

namespace {

/// A run of elements of the kernels' dtype in backend memory, allocated by Ops.
struct Buf {
  void *p = nullptr;
  std::uint64_t bytes = 0;
};

/// q, k, v (or gate, up) inside one fused buffer or three (two) separate ones: base pointers and row stride.
struct Split3 {
  Buf fused;
  Buf part[3];
};

/// A micro-batch's token ids (and targets: in range or the ignore_index) against the vocabulary, on the host
/// before they are uploaded, so the kernels can skip their device checks: each of those is a stream
/// synchronize, three per micro-batch (VocabRange::ids_checked).
Status check_tokens(const MicroBatch &mb, std::int64_t vocab, std::int32_t ignore_index) {
  auto where = [&](std::int64_t i) {
    return " at position " + std::to_string(i % mb.seq) + " of row " + std::to_string(i / mb.seq) +
           " is outside the vocabulary [0, " + std::to_string(vocab) + ")";
  };
  if (!mb.inputs)
    return error("decoder: a micro-batch without token ids");
  for (std::int64_t i = 0; i < mb.batch * mb.seq; ++i) {
    if (mb.inputs[i] < 0 || mb.inputs[i] >= vocab)
      return error("decoder: token id " + std::to_string(mb.inputs[i]) + where(i));
    if (mb.targets && mb.targets[i] != ignore_index && (mb.targets[i] < 0 || mb.targets[i] >= vocab))
      return error("decoder: target " + std::to_string(mb.targets[i]) + where(i) + " and is not the ignore_index " +
                   std::to_string(ignore_index));
  }
  return {};
}

} // namespace

struct Decoder::State {
  DecoderShape shape;
  DecoderParams params;
  std::vector<DecoderLayerParams> layers;
  Kernels *k = nullptr;
  Ops *ops = nullptr;
  Comm *tp = nullptr;
  // The TP comm's queue when it is not the kernels' (decoder.h): each all-reduce starts after the kernels
  // enqueued before it (to_tp), and the kernels wait for its result (from_tp) only where they read it.
  Ops *tp_queue = nullptr;
  std::unique_ptr<OpsEvent> to_tp, from_tp;
  bool tp_pending = false;
  std::int64_t max_batch = 0, max_seq = 0, max_tokens = 0;
  std::size_t es = 4, ss = 4;  // element and statistic sizes in bytes
  std::int64_t cq = 0, ckv = 0, cqkv = 0, f = 0, rotary = 0;
  // One product for q/k/v (and one for gate/up): the model's fused weight (phi3), or separate weights that
  // lie back to back in the store in the ZeRO flat layout's order ([v; k; q], [up; gate]: backward order),
  // which act as one fused weight. Column offsets of each part in the fused output.
  bool qkv_one = false, gu_one = false;
  bool qkv_merged = false, gu_merged = false; // the separate weights, back to back
  std::int64_t q_off = 0, k_off = 0, v_off = 0, g_off = 0, u_off = 0;
  std::vector<Buf> owned;
  CommCounts counts;

  // saved activations
  std::vector<Buf> x, n1, rstd1, qkv, q, kk, v, attn, lse, h, n2, rstd2, gu, gate, up, act;
  Buf nf, rstdf, logits, ids, targets, rope;
  // backward scratch
  Buf dx, dn, tmp, dqkv, dq, dk, dv, dattn, dact, dgu, dgate, dup;

  ~State() {
    for (Buf &b : owned)
      ops->free(b.p);
  }

  Result<Buf> alloc(std::uint64_t bytes) {
    ATP_ASSIGN_OR_RETURN(void *p, ops->alloc(bytes));
    owned.push_back({p, bytes});
    return owned.back();
  }
  Result<Buf> elems(std::int64_t n) { return alloc(std::uint64_t(n) * es); }
  Result<Buf> stats(std::int64_t n) { return alloc(std::uint64_t(n) * ss); }

  /// Element e of buffer b (element offsets inside fused buffers).
  void *at(const Buf &b, std::int64_t e) const { return static_cast<char *>(b.p) + std::uint64_t(e) * es; }

  void *w(ParamStore &s, int i) const { return i < 0 ? nullptr : s.param(i); }
  void *g(ParamStore &s, int i) const { return i < 0 ? nullptr : s.grad(i); }
  Status ready(ParamStore &s, int i) const { return i < 0 ? Status() : s.grad_ready(i); }
  /// The store's hooks before the kernels read weights or add into gradients (ParamStore).
  Status need_weights(ParamStore &s, int i) const { return i < 0 ? Status() : s.weights_needed(i); }
  Status need_grad(ParamStore &s, int i) const { return i < 0 ? Status() : s.grad_needed(i); }
  /// How the next product writes the gradients of `ids` (the parameters it completes; -1 skipped): the store's
  /// grad_write, which must be the same for all of them.
  Result<Write> grad_mode(ParamStore &s, std::initializer_list<int> ids) const {
    std::optional<Write> mode;
    int first = -1;
    for (int i : ids) {
      if (i < 0)
        continue;
      const Write m = s.grad_write(i);
      if (mode && *mode != m)
        return error("decoder: one product writes the gradients of parameters " + std::to_string(first) + " and " +
                     std::to_string(i) + ", but the store has written " +
                     std::to_string(m == Write::Overwrite ? first : i) + "'s and not the other's");
      mode = m;
      first = first < 0 ? i : first;
    }
    return mode.value_or(Write::Accumulate);
  }
  Status need_layer(ParamStore &s, const DecoderLayerParams &p, bool grads) const {
    for (int i : {p.input_norm, p.q, p.k, p.v, p.q_bias, p.k_bias, p.v_bias, p.qkv, p.o, p.post_norm, p.gate, p.up,
                  p.gate_up, p.down})
      ATP_TRY(grads ? need_grad(s, i) : need_weights(s, i));
    return {};
  }
  /// Which set of per-layer buffers layer l uses: its own, or with recomputation the one shared set.
  int slot(int l) const { return shape.recompute ? 0 : l; }

  /// Sums b over TP in place. On a TP queue of its own the kernels wait for the sum at once, or with
  /// `later` only at finish_all_reduce (what they do in between must not touch b).
  Status all_reduce(const Buf &b, std::int64_t n, std::int64_t &counter, bool later = false) {
    if (shape.tp_size == 1)
      return {};
    ++counter;
    if (!tp_queue)
      return tp->all_reduce(b.p, b.p, std::size_t(n), k->dtype(), ReduceOp::Sum);
    ATP_TRY(ops->record(*to_tp));
    ATP_TRY(tp_queue->wait(*to_tp));
    ATP_TRY(tp->all_reduce(b.p, b.p, std::size_t(n), k->dtype(), ReduceOp::Sum));
    ATP_TRY(tp_queue->record(*from_tp));
    tp_pending = true;
    return later ? Status() : finish_all_reduce();
  }
  Status finish_all_reduce() {
    if (!tp_pending)
      return {};
    tp_pending = false;
    return ops->wait(*from_tp);
  }

  /// One product of a column-parallel group (q/k/v or gate/up): weight w (bias b) on input gradient dy of
  /// `out` columns; `ready` the parameters whose gradients it completes.
  struct ColumnProduct {
    int w, b;
    const void *dy;
    std::int64_t out;
    std::array<int, 3> ready; ///< -1: none
  };
  /// The backward of a column-parallel group over input x [t, hidden]: the products' input gradients summed
  /// into dn (one TP all-reduce when `split`), their weight gradients added into the store. With a TP queue
  /// of its own the input gradients come first and the all-reduce runs under the weight gradients, which do
  /// not read dn.
  Status column_backward(ParamStore &s, std::initializer_list<ColumnProduct> products, const void *x, std::int64_t t,
                         bool split) {
    const std::int64_t hd = shape.hidden;
    const bool overlap = split && tp_queue && shape.tp_size > 1;
    Write mode = Write::Overwrite;
    for (const ColumnProduct &c : products) {
      Write dw_mode = Write::Accumulate;
      if (!overlap) {
        ATP_ASSIGN_OR_RETURN(dw_mode, grad_mode(s, {c.ready[0], c.ready[1], c.ready[2]}));
      }
      ATP_TRY(k->linear_backward(dn.p, mode, overlap ? nullptr : g(s, c.w), overlap ? nullptr : g(s, c.b), dw_mode,
                                 c.dy, x, w(s, c.w), t, hd, c.out));
      mode = Write::Accumulate;
      if (!overlap)
        for (int i : c.ready)
          ATP_TRY(ready(s, i));
    }
    if (split)
      ATP_TRY(all_reduce(dn, t * hd, counts.backward_column, /*later=*/overlap));
    if (overlap)
      for (const ColumnProduct &c : products) {
        ATP_ASSIGN_OR_RETURN(const Write dw_mode, grad_mode(s, {c.ready[0], c.ready[1], c.ready[2]}));
        ATP_TRY(k->linear_backward(nullptr, Write::Overwrite, g(s, c.w), g(s, c.b), dw_mode, c.dy, x, w(s, c.w), t, hd,
                                   c.out));
        for (int i : c.ready)
          ATP_TRY(ready(s, i));
      }
    return finish_all_reduce();
  }

  // q, k, v of layer l: pointers and strides
  void *qp(int l) const { return qkv_one ? at(qkv[slot(l)], q_off) : q[slot(l)].p; }
  void *kp(int l) const { return qkv_one ? at(qkv[slot(l)], k_off) : kk[slot(l)].p; }
  void *vp(int l) const { return qkv_one ? at(qkv[slot(l)], v_off) : v[slot(l)].p; }
  /// The parameter whose weight (and gradient) starts the fused q/k/v or gate/up product.
  int qkv_param(const DecoderLayerParams &p) const { return qkv_merged ? p.v : p.qkv; }
  int gu_param(const DecoderLayerParams &p) const { return gu_merged ? p.up : p.gate_up; }
  AttentionDims attn_dims(std::int64_t batch, std::int64_t seq) const {
    AttentionDims d;
    d.batch = batch;
    d.seq = seq;
    d.q_heads = shape.local_heads;
    d.kv_heads = shape.local_kv_heads;
    d.head_dim = shape.head_dim;
    d.q_stride = qkv_one ? cqkv : cq;
    d.k_stride = d.v_stride = qkv_one ? cqkv : ckv;
    d.scale = 1.0 / std::sqrt(double(shape.head_dim));
    d.sliding_window = shape.sliding_window;
    return d;
  }
  RopeDims rope_dims(std::int64_t batch, std::int64_t seq, std::int64_t heads, std::int64_t stride) const {
    RopeDims d;
    d.batch = batch;
    d.seq = seq;
    d.heads = heads;
    d.head_dim = shape.head_dim;
    d.row_stride = stride;
    d.rotary_dim = rotary;
    d.table_positions = max_seq;
    return d;
  }

  /// RoPE in place over q and k (backward: over their gradients). In the one q/k/v buffer they sit side by
  /// side (k after q, or q after k) with one row stride, so one call covers both: every head is rotated alike.
  Status rope_qk(void *qbuf, void *kbuf, std::int64_t batch, std::int64_t seq, bool backward) {
    auto apply = [&](void *x, std::int64_t heads, std::int64_t stride) {
      const RopeDims d = rope_dims(batch, seq, heads, stride);
      return backward ? k->rope_backward(x, d, rope.p) : k->rope_forward(x, d, rope.p);
    };
    if (qkv_one)
      return apply(q_off < k_off ? qbuf : kbuf, shape.local_heads + shape.local_kv_heads, cqkv);
    ATP_TRY(apply(qbuf, shape.local_heads, cq));
    return apply(kbuf, shape.local_kv_heads, ckv);
  }

  /// input_normed: n1 and rstd1 of layer l are already there (the previous layer's fused add + norm);
  /// norm_out: end with the next layer's input norm (or the final norm) fused into the residual add.
  Status layer_forward(ParamStore &s, int l, std::int64_t batch, std::int64_t seq, bool input_normed, bool norm_out);
  Status layer_backward(ParamStore &s, int l, std::int64_t batch, std::int64_t seq);
  Result<CrossEntropySum> forward(ParamStore &s, const MicroBatch &mb, bool write_grad);
  Status head_backward(ParamStore &s, std::int64_t tokens);
};

// ---------------------------------------------------------------------------------------------------------
// forward

Status Decoder::State::layer_forward(ParamStore &s, int l, std::int64_t batch, std::int64_t seq, bool input_normed,
                                     bool norm_out) {
  const DecoderLayerParams &p = layers[l];
  const std::int64_t t = batch * seq, hd = shape.hidden;
  ATP_TRY(need_layer(s, p, /*grads=*/false));
  if (norm_out) // the residual add ends with the next norm
    ATP_TRY(need_weights(s, l + 1 == int(shape.layers) ? params.final_norm : layers[l + 1].input_norm));
  if (!input_normed)
    ATP_TRY(k->rmsnorm_forward(n1[slot(l)].p, rstd1[slot(l)].p, x[l].p, w(s, p.input_norm), t, hd, shape.rms_eps));
  if (qkv_one) {
    ATP_TRY(k->linear_forward(qkv[slot(l)].p, n1[slot(l)].p, w(s, qkv_param(p)), nullptr, t, hd, cqkv));
  } else {
    ATP_TRY(k->linear_forward(q[slot(l)].p, n1[slot(l)].p, w(s, p.q), w(s, p.q_bias), t, hd, cq));
    ATP_TRY(k->linear_forward(kk[slot(l)].p, n1[slot(l)].p, w(s, p.k), w(s, p.k_bias), t, hd, ckv));
    ATP_TRY(k->linear_forward(v[slot(l)].p, n1[slot(l)].p, w(s, p.v), w(s, p.v_bias), t, hd, ckv));
  }
  const AttentionDims ad = attn_dims(batch, seq);
  ATP_TRY(rope_qk(qp(l), kp(l), batch, seq, /*backward=*/false));
  ATP_TRY(k->attention_forward(attn[slot(l)].p, lse[slot(l)].p, qp(l), kp(l), vp(l), ad));
  ATP_TRY(k->linear_forward(tmp.p, attn[slot(l)].p, w(s, p.o), nullptr, t, cq, hd));
  if (shape.attn_split)
    ATP_TRY(all_reduce(tmp, t * hd, counts.forward_row));
  ATP_TRY(k->add_rmsnorm_forward(h[slot(l)].p, n2[slot(l)].p, rstd2[slot(l)].p, x[l].p, tmp.p, w(s, p.post_norm), t,
                                 hd, shape.rms_eps));
  void *gp, *up_p;
  std::int64_t stride;
  if (gu_one) {
    ATP_TRY(k->linear_forward(gu[slot(l)].p, n2[slot(l)].p, w(s, gu_param(p)), nullptr, t, hd, 2 * f));
    gp = at(gu[slot(l)], g_off), up_p = at(gu[slot(l)], u_off), stride = 2 * f;
  } else {
    ATP_TRY(k->linear_forward(gate[slot(l)].p, n2[slot(l)].p, w(s, p.gate), nullptr, t, hd, f));
    ATP_TRY(k->linear_forward(up[slot(l)].p, n2[slot(l)].p, w(s, p.up), nullptr, t, hd, f));
    gp = gate[slot(l)].p, up_p = up[slot(l)].p, stride = f;
  }
  ATP_TRY(k->swiglu_forward(act[slot(l)].p, gp, up_p, t, f, stride));
  ATP_TRY(k->linear_forward(tmp.p, act[slot(l)].p, w(s, p.down), nullptr, t, f, hd));
  if (shape.mlp_split)
    ATP_TRY(all_reduce(tmp, t * hd, counts.forward_row));
  if (!norm_out)
    return k->add(x[l + 1].p, h[slot(l)].p, tmp.p, t * hd);
  // Layer l's own n1 is spent (the projections read it), so with recomputation's shared slot it may be
  // overwritten here; the final norm's output is nf.
  const bool last = l + 1 == int(shape.layers);
  void *next_n = last ? nf.p : n1[slot(l + 1)].p, *next_rstd = last ? rstdf.p : rstd1[slot(l + 1)].p;
  const void *next_w = w(s, last ? params.final_norm : layers[l + 1].input_norm);
  return k->add_rmsnorm_forward(x[l + 1].p, next_n, next_rstd, h[slot(l)].p, tmp.p, next_w, t, hd, shape.rms_eps);
}

Result<CrossEntropySum> Decoder::State::forward(ParamStore &s, const MicroBatch &mb, bool write_grad) {
  if (mb.batch < 1 || mb.seq < 1 || mb.batch > max_batch || mb.seq > max_seq)
    return error("decoder: a micro-batch of " + std::to_string(mb.batch) + " x " + std::to_string(mb.seq) +
                 " tokens does not fit the decoder's " + std::to_string(max_batch) + " x " +
                 std::to_string(max_seq));
  const std::int64_t t = mb.batch * mb.seq, hd = shape.hidden;
  CrossEntropyArgs ce;
  ATP_TRY(check_tokens(mb, shape.vocab, ce.ignore_index));
  ATP_TRY(ops->upload(ids.p, mb.inputs, std::size_t(t) * 4));
  const VocabRange full{shape.vocab, 0, shape.vocab, /*ids_checked=*/true};
  ATP_TRY(need_weights(s, params.embed));
  ATP_TRY(k->embedding_forward(x[0].p, w(s, params.embed), static_cast<const std::int32_t *>(ids.p), t, hd, full));
  for (int l = 0; l < int(shape.layers); ++l) // each layer ends with the next one's input norm (the last: nf)
    ATP_TRY(layer_forward(s, l, mb.batch, mb.seq, /*input_normed=*/l > 0, /*norm_out=*/true));
  const int head = shape.tied_embeddings ? params.embed : params.lm_head;
  ATP_TRY(need_weights(s, head));
  ATP_TRY(k->linear_forward(logits.p, nf.p, w(s, head), nullptr, t, hd, shape.vocab));
  if (!mb.targets)
    return CrossEntropySum{};
  ATP_TRY(ops->upload(targets.p, mb.targets, std::size_t(t) * 4));
  ce.rows = t;
  ce.targets_checked = true;
  ce.vocab = shape.vocab;
  ce.write_grad = write_grad;
  ce.grad_scale = mb.grad_scale;
  ce.denominator = mb.denominator;
  if (ce.denominator == 0) {  // the micro-batch's own mean over its predicted tokens
    for (std::int64_t i = 0; i < t; ++i)
      ce.denominator += mb.targets[i] != ce.ignore_index;
    if (ce.denominator == 0)
      ce.denominator = 1;
  }
  return k->cross_entropy(logits.p, static_cast<std::int32_t *>(targets.p), ce);
}

// ---------------------------------------------------------------------------------------------------------
// backward: dx carries dL/d(residual stream) from the top down

Status Decoder::State::layer_backward(ParamStore &s, int l, std::int64_t batch, std::int64_t seq) {
  const DecoderLayerParams &p = layers[l];
  const std::int64_t t = batch * seq, hd = shape.hidden;
  ATP_TRY(need_layer(s, p, /*grads=*/true));
  // MLP: x[l+1] = h + down(swiglu(gate, up)(norm(h)))
  ATP_ASSIGN_OR_RETURN(Write dw_mode, grad_mode(s, {p.down}));
  ATP_TRY(k->linear_backward(dact.p, Write::Overwrite, g(s, p.down), nullptr, dw_mode, dx.p, act[slot(l)].p,
                             w(s, p.down), t, f, hd));
  ATP_TRY(ready(s, p.down));
  if (gu_one) {
    ATP_TRY(k->swiglu_backward(at(dgu, g_off), at(dgu, u_off), dact.p, at(gu[slot(l)], g_off), at(gu[slot(l)], u_off),
                               t, f, 2 * f));
    if (gu_merged)
      ATP_TRY(
          column_backward(s, {{gu_param(p), -1, dgu.p, 2 * f, {p.gate, p.up, -1}}}, n2[slot(l)].p, t, shape.mlp_split));
    else
      ATP_TRY(
          column_backward(s, {{p.gate_up, -1, dgu.p, 2 * f, {p.gate_up, -1, -1}}}, n2[slot(l)].p, t, shape.mlp_split));
  } else {
    ATP_TRY(k->swiglu_backward(dgate.p, dup.p, dact.p, gate[slot(l)].p, up[slot(l)].p, t, f, f));
    ATP_TRY(column_backward(s, {{p.gate, -1, dgate.p, f, {p.gate, -1, -1}}, {p.up, -1, dup.p, f, {p.up, -1, -1}}},
                            n2[slot(l)].p, t,
                            shape.mlp_split)); // one all-reduce of the summed gate and up input gradients
  }
  ATP_ASSIGN_OR_RETURN(dw_mode, grad_mode(s, {p.post_norm}));
  ATP_TRY(k->rmsnorm_backward(dx.p, Write::Accumulate, g(s, p.post_norm), dw_mode, dn.p, h[slot(l)].p,
                              w(s, p.post_norm), rstd2[slot(l)].p, t, hd));
  ATP_TRY(ready(s, p.post_norm));

  // attention: h = x[l] + o(attention(rope(q), rope(k), v)(norm(x[l])))
  ATP_ASSIGN_OR_RETURN(dw_mode, grad_mode(s, {p.o}));
  ATP_TRY(k->linear_backward(dattn.p, Write::Overwrite, g(s, p.o), nullptr, dw_mode, dx.p, attn[slot(l)].p, w(s, p.o),
                             t, cq, hd));
  ATP_TRY(ready(s, p.o));
  const AttentionDims ad = attn_dims(batch, seq);
  void *dqp = qkv_one ? at(dqkv, q_off) : dq.p;
  void *dkp = qkv_one ? at(dqkv, k_off) : dk.p;
  void *dvp = qkv_one ? at(dqkv, v_off) : dv.p;
  ATP_TRY(k->attention_backward(dqp, dkp, dvp, dattn.p, qp(l), kp(l), vp(l), attn[slot(l)].p, lse[slot(l)].p, ad));
  ATP_TRY(rope_qk(dqp, dkp, batch, seq, /*backward=*/true));
  if (qkv_merged)
    ATP_TRY(
        column_backward(s, {{qkv_param(p), -1, dqkv.p, cqkv, {p.q, p.k, p.v}}}, n1[slot(l)].p, t, shape.attn_split));
  else if (qkv_one)
    ATP_TRY(column_backward(s, {{p.qkv, -1, dqkv.p, cqkv, {p.qkv, -1, -1}}}, n1[slot(l)].p, t, shape.attn_split));
  else // one all-reduce of the summed q, k and v input gradients
    ATP_TRY(column_backward(s,
                            {{p.q, p.q_bias, dq.p, cq, {p.q, p.q_bias, -1}},
                             {p.k, p.k_bias, dk.p, ckv, {p.k, p.k_bias, -1}},
                             {p.v, p.v_bias, dv.p, ckv, {p.v, p.v_bias, -1}}},
                            n1[slot(l)].p, t, shape.attn_split));
  ATP_ASSIGN_OR_RETURN(dw_mode, grad_mode(s, {p.input_norm}));
  ATP_TRY(k->rmsnorm_backward(dx.p, Write::Accumulate, g(s, p.input_norm), dw_mode, dn.p, x[l].p, w(s, p.input_norm),
                              rstd1[slot(l)].p, t, hd));
  return ready(s, p.input_norm);
}

Status Decoder::State::head_backward(ParamStore &s, std::int64_t t) {
  const std::int64_t hd = shape.hidden;
  const int head = shape.tied_embeddings ? params.embed : params.lm_head;
  ATP_TRY(need_grad(s, head));
  ATP_TRY(need_grad(s, params.final_norm));
  // logits now hold dL/dlogits
  ATP_ASSIGN_OR_RETURN(Write dw_mode, grad_mode(s, {head}));
  ATP_TRY(k->linear_backward(dn.p, Write::Overwrite, g(s, head), nullptr, dw_mode, logits.p, nf.p, w(s, head), t, hd,
                             shape.vocab));
  if (!shape.tied_embeddings)
    ATP_TRY(ready(s, params.lm_head));
  ATP_ASSIGN_OR_RETURN(dw_mode, grad_mode(s, {params.final_norm}));
  ATP_TRY(k->rmsnorm_backward(dx.p, Write::Overwrite, g(s, params.final_norm), dw_mode, dn.p, x[shape.layers].p,
                              w(s, params.final_norm), rstdf.p, t, hd));
  return ready(s, params.final_norm);
}

// ---------------------------------------------------------------------------------------------------------
// the public face

namespace {

/// True when, in every layer, the weights and gradients of parameters `first`, `second`, ... lie back to back
/// in the store (rows x cols elements of `es` bytes each, in that order).
bool back_to_back(ParamStore &store, const std::vector<DecoderLayerParams> &layers,
                  std::initializer_list<std::pair<int DecoderLayerParams::*, std::int64_t>> parts, std::size_t es) {
  for (const DecoderLayerParams &p : layers) {
    const char *w = nullptr, *g = nullptr;
    for (const auto &[member, elems] : parts) {
      const int i = p.*member;
      if (i < 0)
        return false;
      const char *wi = static_cast<const char *>(store.param(i)), *gi = static_cast<const char *>(store.grad(i));
      if ((w && wi != w) || (g && gi != g) || !wi || !gi)
        return false;
      w = wi + std::size_t(elems) * es, g = gi + std::size_t(elems) * es;
    }
  }
  return true;
}

} // namespace

Result<std::unique_ptr<Decoder>> Decoder::create(const DecoderShape &shape, const DecoderParams &params,
                                                 Kernels &kernels, Ops &ops, Comm &tp, std::int64_t max_batch,
                                                 std::int64_t max_seq, ParamStore *layout, Ops *tp_queue) {
  if (tp.size() != shape.tp_size)
    return error("decoder: the TP group has " + std::to_string(tp.size()) + " ranks, the model was compiled for " +
                 std::to_string(shape.tp_size));
  if (max_batch < 1 || max_seq < 1)
    return error("decoder: micro-batch " + std::to_string(max_batch) + " x " + std::to_string(max_seq) +
                 " must be at least 1 x 1");
  if (max_seq > shape.max_positions)
    return error("decoder: sequence length " + std::to_string(max_seq) + " exceeds max_position_embeddings (" +
                 std::to_string(shape.max_positions) + ")");
  if (shape.layers < 1 || !params.layers)
    return error("decoder: the model has no layers");
  auto st = std::make_unique<State>();
  State &s = *st;
  s.shape = shape;
  s.params = params;
  s.layers.assign(params.layers, params.layers + shape.layers);
  s.k = &kernels;
  s.ops = &ops;
  s.tp = &tp;
  if (tp_queue && tp_queue != &ops) {
    s.tp_queue = tp_queue;
    ATP_ASSIGN_OR_RETURN(s.to_tp, ops.make_event());
    ATP_ASSIGN_OR_RETURN(s.from_tp, tp_queue->make_event());
  }
  s.max_batch = max_batch;
  s.max_seq = max_seq;
  s.max_tokens = max_batch * max_seq;
  s.es = dtype_size(kernels.dtype());
  s.ss = dtype_size(kernels.stat_dtype());
  s.cq = shape.local_heads * shape.head_dim;
  s.ckv = shape.local_kv_heads * shape.head_dim;
  s.cqkv = s.cq + 2 * s.ckv;
  s.f = shape.local_ffn;
  const std::int64_t hd0 = shape.hidden;
  if (shape.qkv_fused) {
    s.qkv_one = true, s.q_off = 0, s.k_off = s.cq, s.v_off = s.cq + s.ckv;
  } else if (layout && !shape.qkv_bias &&
             back_to_back(*layout, s.layers,
                          {{&DecoderLayerParams::v, s.ckv * hd0}, {&DecoderLayerParams::k, s.ckv * hd0},
                           {&DecoderLayerParams::q, s.cq * hd0}},
                          s.es)) {
    s.qkv_one = s.qkv_merged = true, s.v_off = 0, s.k_off = s.ckv, s.q_off = 2 * s.ckv;
  }
  if (s.qkv_one && (s.q_off < s.k_off ? s.k_off - s.q_off != s.cq : s.q_off - s.k_off != s.ckv))
    return error("decoder: internal error: q and k are not side by side in the fused q/k/v buffer (rope_qk)");
  if (shape.gate_up_fused) {
    s.gu_one = true, s.g_off = 0, s.u_off = s.f;
  } else if (layout && back_to_back(*layout, s.layers,
                                    {{&DecoderLayerParams::up, s.f * hd0}, {&DecoderLayerParams::gate, s.f * hd0}},
                                    s.es)) {
    s.gu_one = s.gu_merged = true, s.u_off = 0, s.g_off = s.f;
  }

  RopeConfig rc;
  rc.theta = shape.rope_theta;
  rc.rope_type = shape.rope_type ? shape.rope_type : "default";
  rc.factor = shape.rope_factor;
  rc.low_freq_factor = shape.rope_low_freq_factor;
  rc.high_freq_factor = shape.rope_high_freq_factor;
  rc.original_max_position_embeddings = shape.rope_original_max_positions;
  ATP_ASSIGN_OR_RETURN(s.rotary, rope_rotary_dim(rc, shape.head_dim));

  const std::int64_t t = s.max_tokens, hd = shape.hidden, L = shape.layers;
  const std::int64_t per_layer_sets = shape.recompute ? 1 : L; // the layer inputs x are kept for every layer
  auto each = [&](std::vector<Buf> &v, std::int64_t n, bool stat, std::int64_t count) -> Status {
    v.resize(std::size_t(count));
    for (Buf &b : v) {
      auto r = stat ? s.stats(n) : s.elems(n);
      ATP_TRY(r);
      b = *r;
    }
    return {};
  };
  ATP_TRY(each(s.x, t * hd, false, L + 1));
  ATP_TRY(each(s.n1, t * hd, false, per_layer_sets));
  ATP_TRY(each(s.rstd1, t, true, per_layer_sets));
  ATP_TRY(each(s.n2, t * hd, false, per_layer_sets));
  ATP_TRY(each(s.rstd2, t, true, per_layer_sets));
  ATP_TRY(each(s.h, t * hd, false, per_layer_sets));
  ATP_TRY(each(s.attn, t * s.cq, false, per_layer_sets));
  ATP_TRY(each(s.lse, t * shape.local_heads, true, per_layer_sets));
  ATP_TRY(each(s.act, t * s.f, false, per_layer_sets));
  if (s.qkv_one) {
    ATP_TRY(each(s.qkv, t * s.cqkv, false, per_layer_sets));
  } else {
    ATP_TRY(each(s.q, t * s.cq, false, per_layer_sets));
    ATP_TRY(each(s.kk, t * s.ckv, false, per_layer_sets));
    ATP_TRY(each(s.v, t * s.ckv, false, per_layer_sets));
  }
  if (s.gu_one) {
    ATP_TRY(each(s.gu, t * 2 * s.f, false, per_layer_sets));
  } else {
    ATP_TRY(each(s.gate, t * s.f, false, per_layer_sets));
    ATP_TRY(each(s.up, t * s.f, false, per_layer_sets));
  }
  auto one = [&](Buf &b, std::int64_t n, bool stat = false) -> Status {
    auto r = stat ? s.stats(n) : s.elems(n);
    ATP_TRY(r);
    b = *r;
    return {};
  };
  ATP_TRY(one(s.nf, t * hd));
  ATP_TRY(one(s.rstdf, t, true));
  ATP_TRY(one(s.logits, t * shape.vocab));
  ATP_ASSIGN_OR_RETURN(s.ids, s.alloc(std::uint64_t(t) * 4));
  ATP_ASSIGN_OR_RETURN(s.targets, s.alloc(std::uint64_t(t) * 4));
  ATP_TRY(one(s.rope, max_seq * s.rotary));
  ATP_TRY(kernels.rope_table(s.rope.p, rc, shape.head_dim, max_seq));
  ATP_TRY(one(s.dx, t * hd));
  ATP_TRY(one(s.dn, t * hd));
  ATP_TRY(one(s.tmp, t * hd));
  ATP_TRY(one(s.dattn, t * s.cq));
  ATP_TRY(one(s.dact, t * s.f));
  if (s.qkv_one) {
    ATP_TRY(one(s.dqkv, t * s.cqkv));
  } else {
    ATP_TRY(one(s.dq, t * s.cq));
    ATP_TRY(one(s.dk, t * s.ckv));
    ATP_TRY(one(s.dv, t * s.ckv));
  }
  if (s.gu_one) {
    ATP_TRY(one(s.dgu, t * 2 * s.f));
  } else {
    ATP_TRY(one(s.dgate, t * s.f));
    ATP_TRY(one(s.dup, t * s.f));
  }
  // The buffers are the ledger that autotpc --emit=memory prints (decoder_memory.h): keep them equal.
  DecoderMemorySizes sizes;
  sizes.hidden = hd, sizes.layers = L, sizes.vocab = shape.vocab;
  sizes.local_heads = shape.local_heads, sizes.local_kv_heads = shape.local_kv_heads;
  sizes.head_dim = shape.head_dim, sizes.local_ffn = shape.local_ffn, sizes.rotary_dim = s.rotary;
  sizes.recompute = shape.recompute;
  const DecoderMemory ledger = decoder_memory(sizes, t, max_seq, std::int64_t(s.es), std::int64_t(s.ss));
  std::uint64_t allocated = 0;
  for (const Buf &b : s.owned)
    allocated += b.bytes;
  if (allocated != std::uint64_t(ledger.total))
    return error("decoder: internal error: " + std::to_string(allocated) + " bytes of activations allocated, but "
                 "decoder_memory.h's ledger says " + std::to_string(ledger.total));
  return std::unique_ptr<Decoder>(new Decoder(std::move(st)));
}

Decoder::Decoder(std::unique_ptr<State> s) : s_(std::move(s)) {}
Decoder::~Decoder() = default;

Result<CrossEntropySum> Decoder::forward_backward(ParamStore &store, const MicroBatch &mb) {
  if (!mb.targets)
    return error("decoder: forward_backward needs targets");
  ATP_ASSIGN_OR_RETURN(CrossEntropySum loss, s_->forward(store, mb, /*write_grad=*/true));
  const std::int64_t t = mb.batch * mb.seq;
  ATP_TRY(s_->head_backward(store, t));
  for (int l = int(s_->shape.layers) - 1; l >= 0; --l) {
    // Recomputation: the shared buffers hold the last layer's activations after the forward; every other
    // layer is recomputed from its kept input (the forward rewrites x[l + 1] with the same bits).
    if (s_->shape.recompute && l + 1 < int(s_->shape.layers))
      ATP_TRY(s_->layer_forward(store, l, mb.batch, mb.seq, /*input_normed=*/false, /*norm_out=*/false));
    ATP_TRY(s_->layer_backward(store, l, mb.batch, mb.seq));
  }
  const VocabRange full{s_->shape.vocab, 0, s_->shape.vocab, /*ids_checked=*/true}; // forward checked them
  ATP_TRY(s_->need_grad(store, s_->params.embed));
  ATP_ASSIGN_OR_RETURN(const Write table_mode, s_->grad_mode(store, {s_->params.embed}));
  if (table_mode == Write::Overwrite) // untied: the scatter adds into the rows it hits, and the rest are zero
    ATP_TRY(s_->ops->zero(s_->g(store, s_->params.embed), std::size_t(s_->shape.vocab * s_->shape.hidden) * s_->es));
  ATP_TRY(s_->k->embedding_backward(s_->g(store, s_->params.embed), s_->dx.p,
                                    static_cast<const std::int32_t *>(s_->ids.p), t, s_->shape.hidden, full));
  ATP_TRY(s_->ready(store, s_->params.embed));
  return loss;
}

Result<CrossEntropySum> Decoder::forward_loss(ParamStore &store, const MicroBatch &mb) {
  if (!mb.targets)
    return error("decoder: forward_loss needs targets");
  return s_->forward(store, mb, /*write_grad=*/false);
}

Status Decoder::forward_logits(ParamStore &store, const MicroBatch &mb, std::int64_t first, std::int64_t count,
                               void *host) {
  if (first < 0 || count < 0 || first + count > mb.batch * mb.seq)
    return error("decoder: tokens [" + std::to_string(first) + ", " + std::to_string(first + count) +
                 ") are outside the micro-batch of " + std::to_string(mb.batch * mb.seq));
  MicroBatch no_targets = mb;
  no_targets.targets = nullptr;
  ATP_TRY(s_->forward(store, no_targets, /*write_grad=*/false).status());
  const std::size_t elem = dtype_size(s_->k->dtype()), n = std::size_t(s_->shape.vocab);
  return s_->ops->copy_to_host(host, static_cast<const std::byte *>(s_->logits.p) + std::size_t(first) * n * elem,
                               std::size_t(count) * n * elem);
}

std::uint64_t Decoder::activation_bytes() const {
  std::uint64_t n = 0;
  for (const Buf &b : s_->owned)
    n += b.bytes;
  return n;
}

const Decoder::CommCounts &Decoder::comm_counts() const { return s_->counts; }
bool Decoder::merged_qkv() const { return s_->qkv_merged; }
bool Decoder::merged_gate_up() const { return s_->gu_merged; }

AttentionDims Decoder::attention_dims(std::int64_t batch, std::int64_t seq) const { return s_->attn_dims(batch, seq); }

} // namespace atp
