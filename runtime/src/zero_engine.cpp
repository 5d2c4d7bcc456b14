/* zero_engine.cpp - ZeRO stage 0/1/2 over one TP rank's flat buffers (zero.h says what each stage does).

   All buffer work goes through Ops and all communication through the TP and DP Comms, so the same code
   drives host buffers with MPI and device buffers with NCCL (give both comms the ops' stream).

   Passes over the optimizer's elements at a boundary (stage 1, bf16, DP 1: bytes per element): one
   grad_stats over the working gradients (2: the norm's sum of squares and, in fp16, the overflow check in
   the same pass), one AdamW reading the working gradients directly (28: p, m, v read and written, 2 of
   gradient, 2 of bf16 weights out), one memset of the working gradients (2). At stage 1 fp32 gradients
   would hold nothing but an exact widening of the working ones, so there are none (4 bytes per partition
   element saved; --emit=memory counts the same); at stages 0 and 2 they hold the fp32 sum over
   micro-steps, and the norm and AdamW read them. */
#include "atp/zero.h"

#include "atp/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace atp {

namespace {

DType working_dtype(Precision p) {
  switch (p) {
  case Precision::BF16:
    return DType::BF16;
  case Precision::F16:
    return DType::F16;
  default:
    return DType::F32;
  }
}

std::string param_label(const ModelPlan &m, int i) { return quote(m.params[i].name); }

/// The optimizer updates the flat buffer in segments of about this many elements where it may cut a bucket
/// (no all-gather follows): small enough that the next forward waits for little more than its first layer,
/// large enough that a segment's kernel runs long against its launch.
constexpr std::int64_t kSegmentElements = std::int64_t(1) << 24;

/// A range of one bucket that the optimizer updates at once: [begin, begin + count) relative to the bucket's
/// start (its padded start at stage 0, this rank's piece at stages 1-2).
struct Segment {
  int bucket;
  std::int64_t begin, count;
};

} // namespace

struct ZeroEngine::State {
  const ModelPlan &model;
  const ZeroPlan &zero;
  const FlatLayout &flat;
  int tp_rank;
  Comm &tp, &dp;
  Ops &ops;
  Ops *compute; // the model's queue when it is not ops' (zero.h: "Two queues"), else null
  Ops *tp_side; // the TP comm's queue when it is not ops': the TP queue, else the model's; null when ops'
  PaddedLayout pad;
  DType dtype;
  std::size_t elem;
  bool partitioned;             // stage 1 or 2
  bool separate_fp32;           // master weights and fp32 gradients are buffers of their own
  std::vector<int> slot_of;     // ModelPlan index -> FlatLayout index
  std::vector<int> bucket_of;   // FlatLayout index -> bucket
  bool read_working_grads;      // stage 1: the norm, the overflow check and AdamW read `grads` directly
  std::vector<GradSpan> norm_spans;  // elements of the optimizer's gradients that count in the norm
  std::vector<GradSpan> check_spans; // every element the overflow check reads, norm_spans among them
  std::byte *params = nullptr, *grads = nullptr;
  float *master = nullptr, *grads32 = nullptr, *m = nullptr, *v = nullptr;
  void *scratch = nullptr;
  ZeroLedger ledger;
  LossScaler scaler;
  // progress
  bool first_writes = false;     // use_first_writes(): gradients are marked unwritten instead of zeroed
  std::vector<bool> unwritten;   // per flat parameter: its gradient's bytes are stale (first writes only)
  std::vector<bool> ready;       // per flat parameter, this micro-step
  std::vector<int> ready_count;  // per bucket
  int next_bucket = 0;           // stage 2: the next bucket to reduce
  int micro = 0;
  std::int64_t steps = 0;
  bool master_ready = false;
  // the optimizer's segments and the events between the two queues
  std::vector<Segment> segments; // in flat order; updated from the last
  std::vector<int> segment_of;   // FlatLayout index -> segment
  std::unique_ptr<OpsEvent> compute_mark, engine_mark, tp_mark, grads_free;
  std::vector<std::unique_ptr<OpsEvent>> segment_done;
  std::vector<bool> segment_pending; // the model's queue has not waited for the segment's last update
  bool grads_pending = false;        // ... for the engine's last clearing of gradients

  State(const ModelPlan &m, const ZeroPlan &z, int r, Comm &t, Comm &d, Ops &o, Ops *c, Ops *tq)
      : model(m), zero(z), flat(z.layouts[r]), tp_rank(r), tp(t), dp(d), ops(o), compute(c), tp_side(tq ? tq : c),
        scaler(scaling(z)) {
    if (tp_side == &ops)
      tp_side = nullptr;
  }

  /// fp16 scales the loss as configured; fp32 and bf16 use a fixed scale of 1.
  static LossScaleConfig scaling(const ZeroPlan &z) {
    if (z.precision == Precision::F16)
      return z.loss_scale;
    LossScaleConfig one;
    one.static_scale = 1.0;
    return one;
  }

  ~State() {
    for (void *p : {(void *)params, (void *)grads, (void *)master, (void *)grads32, (void *)m, (void *)v, scratch})
      if (p)
        ops.free(p);
  }

  std::int64_t opt_numel() const { return partitioned ? pad.partition : pad.numel; }
  std::byte *at(std::byte *base, std::int64_t element) const { return base + std::size_t(element) * elem; }
  float *fp32_grads() { return separate_fp32 ? grads32 : reinterpret_cast<float *>(grads); }
  float *master_weights() { return separate_fp32 ? master : reinterpret_cast<float *>(params); }
  /// The gradients the optimizer reads (norm, overflow check, AdamW) and their dtype: the working gradients at
  /// stage 1 (coordinates of the padded flat buffer), else the fp32 ones (optimizer coordinates).
  const void *optimizer_grads() { return read_working_grads ? static_cast<const void *>(grads) : fp32_grads(); }
  DType optimizer_grads_dtype() const { return read_working_grads ? dtype : DType::F32; }

  Status allocate() {
    auto get = [&](std::uint64_t bytes, std::uint64_t &account) -> Result<void *> {
      account += bytes;
      return ops.alloc(std::size_t(bytes));
    };
    const std::uint64_t n = std::uint64_t(pad.numel), o = std::uint64_t(opt_numel());
    ATP_ASSIGN_OR_RETURN(void *p, get(n * elem, ledger.params));
    params = static_cast<std::byte *>(p);
    ATP_ASSIGN_OR_RETURN(void *g, get(n * elem, ledger.grads));
    grads = static_cast<std::byte *>(g);
    if (separate_fp32) {
      ATP_ASSIGN_OR_RETURN(void *w, get(4 * o, ledger.fp32_master));
      master = static_cast<float *>(w);
    }
    if (separate_fp32 && !read_working_grads) { // stage 1 reads the working gradients: no fp32 copy
      ATP_ASSIGN_OR_RETURN(void *g32, get(4 * o, ledger.fp32_grads));
      grads32 = static_cast<float *>(g32);
    }
    ATP_ASSIGN_OR_RETURN(void *mm, get(4 * o, ledger.moments));
    m = static_cast<float *>(mm);
    ATP_ASSIGN_OR_RETURN(void *vv, get(4 * o, ledger.moments));
    v = static_cast<float *>(vv);
    std::uint64_t unused = 0;
    ATP_ASSIGN_OR_RETURN(scratch, get(64, unused));
    return {};
  }

  /// The elements of the optimizer's gradients that the norm counts: DeepSpeed's rule, TP-sharded parameters
  /// on every TP rank and replicated ones on TP rank 0 only; in partition coordinates at stage 2, in the padded
  /// flat buffer's at stages 0 and 1. Then the spans the overflow check reads: everything this rank
  /// optimizes, the norm's spans in place and the rest between them, in the same order (so the norm's sum
  /// is the same whether or not the check rides along).
  void build_grad_spans() {
    const std::int64_t d = dp.rank();
    for (int k = 0; k < flat.num_params; ++k) {
      const FlatParam &f = flat.params[k];
      if (!f.tp_sharded && tp_rank != 0)
        continue;
      const std::int64_t begin = pad.offsets[k], end = begin + f.numel;
      if (!partitioned) {
        norm_spans.push_back({begin, end, true});
        continue;
      }
      const PaddedBucket &b = pad.buckets[bucket_of[k]];
      const std::int64_t lo = std::max(begin, b.begin + d * b.piece), hi = std::min(end, b.begin + (d + 1) * b.piece);
      if (lo >= hi)
        continue;
      if (read_working_grads)
        norm_spans.push_back({lo, hi, true});
      else
        norm_spans.push_back({b.part + lo - (b.begin + d * b.piece), b.part + hi - (b.begin + d * b.piece), true});
    }
    std::vector<Span> regions; // what this rank optimizes, in the same coordinates, in order
    if (read_working_grads)
      for (int b = 0; b < int(pad.buckets.size()); ++b)
        regions.push_back({own_piece(b), own_piece(b) + pad.buckets[b].piece});
    else
      regions.push_back({0, opt_numel()});
    std::size_t next = 0;
    for (const Span &r : regions) {
      std::int64_t at = r.begin;
      for (; next < norm_spans.size() && norm_spans[next].begin < r.end; ++next) {
        if (norm_spans[next].begin > at)
          check_spans.push_back({at, norm_spans[next].begin, false});
        check_spans.push_back(norm_spans[next]);
        at = std::max(at, norm_spans[next].end);
      }
      if (at < r.end)
        check_spans.push_back({at, r.end, false});
    }
  }

  /// Cuts the buckets into the optimizer's segments: whole buckets where an all-gather follows the update
  /// (stages 1-2 over several DP ranks), else runs of whole parameters of about kSegmentElements.
  void build_segments() {
    segment_of.assign(std::size_t(flat.num_params), -1);
    const bool whole_buckets = partitioned && dp.size() > 1;
    for (int b = 0; b < flat.num_buckets; ++b) {
      const PaddedBucket &pb = pad.buckets[b];
      const GradBucket &gb = flat.buckets[b];
      segments.push_back({b, 0, 0}); // the bucket's padding (before and after its parameters) included
      for (int k = gb.first; k < gb.first + gb.count; ++k) {
        const std::int64_t at = pad.offsets[k] - pb.begin;
        if (!whole_buckets && at - segments.back().begin >= kSegmentElements) {
          segments.back().count = at - segments.back().begin;
          segments.push_back({b, at, 0});
        }
        segment_of[std::size_t(k)] = int(segments.size()) - 1;
      }
      const std::int64_t length = partitioned ? pb.piece : pb.piece * dp.size();
      segments.back().count = length - segments.back().begin;
    }
  }

  Status make_events() {
    if (compute || tp_side) {
      ATP_ASSIGN_OR_RETURN(engine_mark, ops.make_event());
    }
    if (tp_side) {
      ATP_ASSIGN_OR_RETURN(tp_mark, tp_side->make_event());
    }
    if (!compute)
      return {};
    ATP_ASSIGN_OR_RETURN(compute_mark, compute->make_event());
    ATP_ASSIGN_OR_RETURN(grads_free, ops.make_event());
    for (std::size_t g = 0; g < segments.size(); ++g) {
      ATP_ASSIGN_OR_RETURN(auto e, ops.make_event());
      segment_done.push_back(std::move(e));
    }
    segment_pending.assign(segments.size(), false);
    return {};
  }

  /// The engine's queue waits for everything the model's queue holds now.
  Status follow_compute() {
    if (!compute)
      return {};
    ATP_TRY(compute->record(*compute_mark));
    return ops.wait(*compute_mark);
  }
  /// The TP comm's queue waits for everything the engine's queue holds now, and back.
  Status hand_to_tp() {
    if (!tp_side)
      return {};
    ATP_TRY(ops.record(*engine_mark));
    return tp_side->wait(*engine_mark);
  }
  Status take_from_tp() {
    if (!tp_side)
      return {};
    ATP_TRY(tp_side->record(*tp_mark));
    return ops.wait(*tp_mark);
  }
  /// Segment g's weights were written on the engine's queue: the model must wait before it reads them.
  Status publish_segment(int g) {
    if (!compute)
      return {};
    ATP_TRY(ops.record(*segment_done[std::size_t(g)]));
    segment_pending[std::size_t(g)] = true;
    return {};
  }
  /// The gradients were cleared on the engine's queue: the model must wait before it adds into them.
  Status publish_grads_free() {
    if (!compute)
      return {};
    ATP_TRY(ops.record(*grads_free));
    grads_pending = true;
    return {};
  }
  /// After a host wait for the engine's queue, nothing it did is pending for the model.
  Status synchronize_engine() {
    ATP_TRY(ops.synchronize());
    segment_pending.assign(segment_pending.size(), false);
    grads_pending = false;
    return {};
  }

  /// This DP rank's piece of bucket b in the padded flat buffer.
  std::int64_t own_piece(int b) const { return pad.buckets[b].begin + dp.rank() * pad.buckets[b].piece; }

  /// First writes: zeroes the gradients of flat parameters [first, end) that nothing wrote since they were
  /// marked unwritten (they hold a zero gradient, and stale bytes), on the engine's queue, before it reads
  /// them. Returns whether it zeroed any: the model must then wait before it adds into them.
  Result<bool> zero_unwritten(int first, int end) {
    if (!first_writes)
      return false;
    bool any = false;
    for (int k = first; k < end; ++k)
      if (unwritten[std::size_t(k)]) {
        ATP_TRY(ops.zero(at(grads, pad.offsets[std::size_t(k)]), std::size_t(flat.params[k].numel) * elem));
        unwritten[std::size_t(k)] = false;
        any = true;
      }
    return any;
  }

  /// Adds n working gradients into fp32 ones; a window's first micro-step writes them instead (the same
  /// values as adding into zeros), so the fp32 gradients are never cleared.
  Status into_fp32_grads(float *dst, const void *src, std::size_t n) {
    return micro == 0 ? ops.cast(dst, DType::F32, src, dtype, n) : ops.accumulate(dst, src, dtype, n);
  }

  /// Stage 2: reduce-scatter bucket b of the working gradients in place, add this rank's piece into the
  /// fp32 gradients and clear the bucket for the next micro-step (first writes: mark it unwritten).
  Status reduce_bucket_into_partition(int b) {
    const PaddedBucket &pb = pad.buckets[b];
    const GradBucket &fb = flat.buckets[b];
    std::byte *bucket = at(grads, pb.begin), *mine = at(grads, own_piece(b));
    ATP_TRY(zero_unwritten(fb.first, fb.first + fb.count).status());
    if (dp.size() > 1)
      ATP_TRY(dp.reduce_scatter(bucket, mine, std::size_t(pb.piece), dtype, ReduceOp::Sum)
                  .with_context("stage 2 gradient bucket " + std::to_string(b)));
    ATP_TRY(into_fp32_grads(grads32 + pb.part, mine, std::size_t(pb.piece)));
    if (!first_writes)
      return ops.zero(bucket, std::size_t(pb.piece * dp.size()) * elem);
    for (int k = fb.first; k < fb.first + fb.count; ++k)
      unwritten[std::size_t(k)] = true;
    return {};
  }

  /// Everything that reaches the fp32 gradients at the boundary (stages 0 and 1).
  Status reduce_at_boundary() {
    for (int b = 0; b < int(pad.buckets.size()); ++b) {
      const PaddedBucket &pb = pad.buckets[b];
      const std::string where = "stage " + std::to_string(zero.stage) + " gradient bucket " + std::to_string(b);
      if (zero.stage == 0) {
        float *g = fp32_grads() + pb.begin;
        if (dp.size() > 1)
          ATP_TRY(dp.all_reduce(g, g, std::size_t(pb.piece * dp.size()), DType::F32, ReduceOp::Sum).with_context(where));
        continue;
      }
      // stage 1: the optimizer reads this rank's piece of the working gradients where it lands
      if (dp.size() > 1)
        ATP_TRY(dp.reduce_scatter(at(grads, pb.begin), at(grads, own_piece(b)), std::size_t(pb.piece), dtype,
                                  ReduceOp::Sum)
                    .with_context(where));
    }
    return {};
  }

  /// One scalar reduced over the DP group (when `over_dp`) and then the TP group.
  Result<double> reduce_scalar(double x, DType t, ReduceOp op, bool over_dp) {
    float f = float(x);
    if (!(over_dp && dp.size() > 1) && tp.size() <= 1) // nothing to reduce: skip the trip through the device
      return t == DType::F64 ? x : double(f);
    const void *host = t == DType::F64 ? static_cast<const void *>(&x) : static_cast<const void *>(&f);
    const std::size_t bytes = dtype_size(t);
    ATP_TRY(ops.copy_from_host(scratch, host, bytes));
    if (over_dp && dp.size() > 1)
      ATP_TRY(dp.all_reduce(scratch, scratch, 1, t, op));
    if (tp.size() > 1) { // the TP comm runs on its own queue
      ATP_TRY(hand_to_tp());
      ATP_TRY(tp.all_reduce(scratch, scratch, 1, t, op));
      ATP_TRY(take_from_tp());
    }
    ATP_TRY(ops.copy_to_host(const_cast<void *>(host), scratch, bytes));
    return t == DType::F64 ? x : double(f);
  }

  Status init_master() {
    if (!separate_fp32)
      return {};
    if (!partitioned)
      return ops.cast(master, DType::F32, params, dtype, std::size_t(pad.numel));
    for (int b = 0; b < int(pad.buckets.size()); ++b)
      ATP_TRY(ops.cast(master + pad.buckets[b].part, DType::F32, at(params, own_piece(b)), dtype,
                       std::size_t(pad.buckets[b].piece)));
    return {};
  }

  /// Every working gradient starts again from zero (first writes: is unwritten; the padding between
  /// parameters is never written and stays zero from allocation): at the end of an accumulation window, and
  /// at stage 0 in 16-bit after each micro-step's gradients went into the fp32 ones.
  Status clear_gradients() {
    if (first_writes)
      unwritten.assign(unwritten.size(), true);
    else
      ATP_TRY(ops.zero(grads, std::size_t(pad.numel) * elem));
    return publish_grads_free();
  }

  /// AdamW over every segment, from the last (the forward's first weights) to the first; at stages 1-2 over
  /// several DP ranks each segment is a bucket, all-gathered right after its update.
  Status apply_adamw(const AdamWStep &st) {
    for (int g = int(segments.size()) - 1; g >= 0; --g) {
      const Segment &sg = segments[std::size_t(g)];
      const PaddedBucket &pb = pad.buckets[sg.bucket];
      if (!partitioned) {
        const std::int64_t at0 = pb.begin + sg.begin;
        ATP_TRY(ops.adamw(master_weights() + at0, fp32_grads() + at0, DType::F32, m + at0, v + at0,
                          std::size_t(sg.count), st, separate_fp32 ? at(params, at0) : nullptr, dtype));
      } else {
        const std::int64_t o = pb.part + sg.begin, w = own_piece(sg.bucket) + sg.begin;
        const void *grad = read_working_grads ? static_cast<const void *>(at(grads, w)) : grads32 + o;
        ATP_TRY(ops.adamw(master + o, grad, optimizer_grads_dtype(), m + o, v + o, std::size_t(sg.count), st,
                          at(params, w), dtype));
        if (dp.size() > 1) // the segment is the whole bucket
          ATP_TRY(dp.all_gather(at(params, own_piece(sg.bucket)), at(params, pb.begin), std::size_t(pb.piece), dtype)
                      .with_context("parameter all-gather of bucket " + std::to_string(sg.bucket)));
      }
      ATP_TRY(publish_segment(g));
    }
    return {};
  }

  Result<StepResult> boundary_step() {
    StepResult r;
    r.boundary = true;
    r.loss_scale = scaler.scale();
    if (zero.stage != 2)
      ATP_TRY(reduce_at_boundary());
    if (!master_ready) {
      ATP_TRY(init_master());
      master_ready = true;
    }
    const bool fp16 = zero.precision == Precision::F16;
    // One pass: the norm's sum of squares, and in fp16 the overflow check over everything this rank optimizes.
    const std::vector<GradSpan> &spans = fp16 ? check_spans : norm_spans;
    ATP_ASSIGN_OR_RETURN(GradStats stats,
                         ops.grad_stats(optimizer_grads(), optimizer_grads_dtype(), spans.data(), spans.size()));
    if (fp16) {
      ATP_ASSIGN_OR_RETURN(double any, reduce_scalar(stats.nonfinite ? 1.0 : 0.0, DType::F32, ReduceOp::Max, true));
      r.overflow = any > 0;
      scaler.update(r.overflow);
      if (r.overflow) {
        ATP_TRY(clear_gradients());
        return r;
      }
    }
    const double inv = 1.0 / (double(zero.gradient_accumulation_steps) * dp.size() * r.loss_scale);
    ATP_ASSIGN_OR_RETURN(double sq, reduce_scalar(stats.sum_squares, DType::F64, ReduceOp::Sum, partitioned));
    r.grad_norm = std::sqrt(sq) * inv;
    double clip = 1.0;
    if (zero.gradient_clipping > 0) {
      const double ratio = (r.grad_norm + 1e-6) / zero.gradient_clipping; // DeepSpeed's clip coefficient
      if (ratio > 1)
        clip = 1.0 / ratio;
    }
    const AdamWConfig &a = zero.adamw;
    r.lr = lr_at_step(zero.scheduler, a.lr, steps);
    const double t = double(steps + 1);
    AdamWStep st{float(r.lr),
                 float(a.beta1),
                 float(a.beta2),
                 float(a.eps),
                 float(a.weight_decay),
                 a.bias_correction ? float(1.0 - std::pow(a.beta1, t)) : 1.0f,
                 a.bias_correction ? float(1.0 - std::pow(a.beta2, t)) : 1.0f,
                 a.adam_w_mode,
                 float(inv * clip)};
    ATP_TRY(apply_adamw(st));
    ATP_TRY(clear_gradients());
    ++steps;
    r.applied = true;
    return r;
  }
};

// ---------------------------------------------------------------------------------------------------------

ZeroEngine::ZeroEngine(std::unique_ptr<State> s) : s_(std::move(s)) {}
ZeroEngine::~ZeroEngine() = default;

Result<std::unique_ptr<ZeroEngine>> ZeroEngine::create(const ModelPlan &model, const ZeroPlan &zero, int tp_rank,
                                                       Comm &tp, Comm &dp, Ops &ops, Ops *compute, Ops *tp_queue) {
  if (zero.stage < 0 || zero.stage > 2)
    return error("zero engine: ZeRO stage " + std::to_string(zero.stage) + " is not supported (0, 1 or 2)");
  if (model.tp_size != zero.tp_size || tp.size() != zero.tp_size || tp_rank < 0 || tp_rank >= zero.tp_size ||
      tp.rank() != tp_rank)
    return error("zero engine: TP rank " + std::to_string(tp_rank) + " of a TP group of " + std::to_string(tp.size()) +
                 " does not fit the plan's tp_size " + std::to_string(zero.tp_size));
  if (zero.dp_size > 0 && dp.size() != zero.dp_size)
    return error("zero engine: the config implies a DP size of " + std::to_string(zero.dp_size) +
                 " but the job was launched with " + std::to_string(dp.size()) +
                 " DP ranks (check the world size against the batch keys)");
  if (zero.gradient_accumulation_steps < 1)
    return error("zero engine: gradient_accumulation_steps must be at least 1");
  auto s = std::make_unique<State>(model, zero, tp_rank, tp, dp, ops, compute == &ops ? nullptr : compute, tp_queue);
  ATP_ASSIGN_OR_RETURN(s->pad, zero_padded_layout(s->flat, dp.size()));
  s->dtype = working_dtype(zero.precision);
  s->elem = dtype_size(s->dtype);
  s->partitioned = zero.stage >= 1;
  s->separate_fp32 = s->partitioned || zero.precision != Precision::F32;
  s->slot_of.assign(std::size_t(model.num_params), -1);
  s->bucket_of.assign(std::size_t(s->flat.num_params), -1);
  for (int b = 0; b < s->flat.num_buckets; ++b)
    for (int k = s->flat.buckets[b].first; k < s->flat.buckets[b].first + s->flat.buckets[b].count; ++k)
      s->bucket_of[std::size_t(k)] = b;
  for (int k = 0; k < s->flat.num_params; ++k) {
    const FlatParam &f = s->flat.params[k];
    if (f.param < 0 || f.param >= model.num_params || s->slot_of[std::size_t(f.param)] != -1 ||
        s->bucket_of[std::size_t(k)] < 0)
      return error("zero engine: flat parameter " + std::to_string(k) + " does not fit the model plan");
    const RankShard &rs = model.params[f.param].ranks[tp_rank];
    if (rs.rows * rs.cols != f.numel)
      return error("zero engine: " + param_label(model, f.param) + " has " + std::to_string(rs.rows * rs.cols) +
                   " local elements in the shard plan but " + std::to_string(f.numel) + " in the ZeRO plan");
    s->slot_of[std::size_t(f.param)] = k;
  }
  for (int i = 0; i < model.num_params; ++i)
    if (s->slot_of[std::size_t(i)] < 0)
      return error("zero engine: " + param_label(model, i) + " is missing from the ZeRO plan");
  s->read_working_grads = zero.stage == 1;
  s->build_grad_spans();
  s->build_segments();
  std::int64_t covered = 0, buckets = 0; // (at stage 0 the alignment gaps between buckets hold no parameter)
  for (const Segment &g : s->segments)
    covered += g.count;
  for (const PaddedBucket &pb : s->pad.buckets)
    buckets += s->partitioned ? pb.piece : pb.piece * dp.size();
  if (covered != buckets)
    return error("zero engine: internal error: the optimizer's segments cover " + std::to_string(covered) +
                 " elements of the buckets' " + std::to_string(buckets));
  s->ready.assign(std::size_t(s->flat.num_params), false);
  s->ready_count.assign(std::size_t(s->flat.num_buckets), 0);
  ATP_TRY(s->allocate());
  ATP_TRY(s->make_events());
  ATP_TRY(s->publish_grads_free()); // alloc zeroes on the engine's queue
  return std::unique_ptr<ZeroEngine>(new ZeroEngine(std::move(s)));
}

DType ZeroEngine::dtype() const { return s_->dtype; }
std::int64_t ZeroEngine::numel(int i) const { return s_->flat.params[s_->slot_of.at(std::size_t(i))].numel; }
void *ZeroEngine::param(int i) { return s_->at(s_->params, s_->pad.offsets[std::size_t(s_->slot_of.at(std::size_t(i)))]); }
void *ZeroEngine::grad(int i) { return s_->at(s_->grads, s_->pad.offsets[std::size_t(s_->slot_of.at(std::size_t(i)))]); }
double ZeroEngine::loss_scale() const { return s_->scaler.scale(); }
std::int64_t ZeroEngine::steps() const { return s_->steps; }
const PaddedLayout &ZeroEngine::layout() const { return s_->pad; }
const ZeroLedger &ZeroEngine::allocated() const { return s_->ledger; }

Status ZeroEngine::load_param(int i, const void *host, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    return error("zero engine: cannot load " + param_label(s_->model, i) + " from " + dtype_name(dtype));
  const std::size_t n = std::size_t(numel(i));
  std::vector<std::byte> narrow(n * s_->elem);
  ATP_TRY(make_cpu_ops()->cast(narrow.data(), s_->dtype, host, dtype, n)); // on the host, then one copy
  s_->master_ready = false;
  ATP_TRY(s_->follow_compute()); // the model may still be reading the old weights
  ATP_TRY(s_->ops.copy_from_host(param(i), narrow.data(), narrow.size()));
  return s_->publish_segment(s_->segment_of[std::size_t(s_->slot_of.at(std::size_t(i)))]);
}

Status ZeroEngine::weights_needed(int i) {
  State &s = *s_;
  if (!s.compute)
    return {};
  if (i < 0 || i >= s.model.num_params)
    return error("zero engine: weights_needed(" + std::to_string(i) + ") names no parameter");
  const std::size_t g = std::size_t(s.segment_of[std::size_t(s.slot_of[std::size_t(i)])]);
  if (!s.segment_pending[g])
    return {};
  s.segment_pending[g] = false;
  return s.compute->wait(*s.segment_done[g]);
}

Status ZeroEngine::grad_needed(int i) {
  State &s = *s_;
  if (!s.compute)
    return {};
  if (i < 0 || i >= s.model.num_params)
    return error("zero engine: grad_needed(" + std::to_string(i) + ") names no parameter");
  if (!s.grads_pending)
    return {};
  s.grads_pending = false;
  return s.compute->wait(*s.grads_free);
}

Status ZeroEngine::read_param(int i, void *host) const {
  const int k = s_->slot_of.at(std::size_t(i));
  return s_->ops.copy_to_host(host, s_->at(s_->params, s_->pad.offsets[std::size_t(k)]),
                              std::size_t(s_->flat.params[k].numel) * s_->elem);
}

Status ZeroEngine::use_first_writes() {
  State &s = *s_;
  if (s.micro != 0 || std::find(s.ready.begin(), s.ready.end(), true) != s.ready.end())
    return error("zero engine: use_first_writes must come before a micro-step, not during an accumulation window");
  s.first_writes = true;
  s.unwritten.assign(std::size_t(s.flat.num_params), true); // they are zero now, and may be overwritten
  return {};
}

Write ZeroEngine::grad_write(int i) {
  State &s = *s_;
  if (!s.first_writes || i < 0 || i >= s.model.num_params)
    return Write::Accumulate;
  const std::size_t k = std::size_t(s.slot_of[std::size_t(i)]);
  if (!s.unwritten[k])
    return Write::Accumulate;
  s.unwritten[k] = false;
  return Write::Overwrite;
}

Status ZeroEngine::grad_ready(int i) {
  if (i < 0 || i >= s_->model.num_params)
    return error("zero engine: grad_ready(" + std::to_string(i) + ") names no parameter");
  const int k = s_->slot_of[std::size_t(i)];
  if (s_->ready[std::size_t(k)])
    return error("zero engine: grad_ready called twice for " + param_label(s_->model, i) + " in one micro-step");
  s_->ready[std::size_t(k)] = true;
  const int b = s_->bucket_of[std::size_t(k)];
  ++s_->ready_count[std::size_t(b)];
  if (s_->zero.stage != 2)
    return {};
  bool followed = false;
  while (s_->next_bucket < s_->flat.num_buckets &&
         s_->ready_count[std::size_t(s_->next_bucket)] == s_->flat.buckets[s_->next_bucket].count) {
    if (!followed) // the bucket's gradients were written on the model's queue
      ATP_TRY(s_->follow_compute());
    followed = true;
    ATP_TRY(s_->reduce_bucket_into_partition(s_->next_bucket++));
  }
  return {};
}

Status ZeroEngine::backward_done() {
  State &s = *s_;
  ATP_TRY(s.follow_compute()); // everything below, and the boundary step, reads the backward's gradients
  if (s.zero.stage == 2) {
    while (s.next_bucket < s.flat.num_buckets) // parameters that got no gradient count as zero
      ATP_TRY(s.reduce_bucket_into_partition(s.next_bucket++));
    ATP_TRY(s.publish_grads_free());
  } else {
    ATP_ASSIGN_OR_RETURN(const bool zeroed, s.zero_unwritten(0, s.flat.num_params)); // no gradient: zero
    if (s.zero.stage == 0 && s.separate_fp32) {
      ATP_TRY(s.into_fp32_grads(s.grads32, s.grads, std::size_t(s.pad.numel)));
      ATP_TRY(s.clear_gradients());
    } else if (zeroed) {
      ATP_TRY(s.publish_grads_free());
    }
  }
  s.ready.assign(s.ready.size(), false);
  s.ready_count.assign(s.ready_count.size(), 0);
  s.next_bucket = 0;
  ++s.micro;
  return {};
}

Result<std::vector<StateBuffer>> ZeroEngine::state_buffers() {
  State &s = *s_;
  if (s.micro != 0)
    return error("zero engine: a checkpoint needs a finished optimizer step, but " + std::to_string(s.micro) +
                 " micro-steps of the next are pending");
  if (!s.master_ready) {
    ATP_TRY(s.init_master());
    s.master_ready = true;
  }
  ATP_TRY(s.synchronize_engine()); // the caller copies them through the model's Ops
  std::vector<StateBuffer> out{{"params", s.params, s.dtype, s.pad.numel}};
  if (s.separate_fp32)
    out.push_back({"master", s.master, DType::F32, s.opt_numel()});
  out.push_back({"exp_avg", s.m, DType::F32, s.opt_numel()});
  out.push_back({"exp_avg_sq", s.v, DType::F32, s.opt_numel()});
  return out;
}

EngineCounters ZeroEngine::counters() const { return {s_->steps, s_->scaler.state()}; }

Status ZeroEngine::restore(const EngineCounters &c) {
  if (c.steps < 0)
    return error("zero engine: a checkpoint cannot hold " + std::to_string(c.steps) + " optimizer steps");
  s_->steps = c.steps;
  s_->scaler.restore(c.scaler);
  s_->master_ready = true;
  s_->micro = 0;
  return s_->clear_gradients();
}

Result<StepResult> ZeroEngine::step() {
  State &s = *s_;
  if (s.micro < s.zero.gradient_accumulation_steps) {
    StepResult r;
    r.loss_scale = s.scaler.scale();
    return r;
  }
  s.micro = 0;
  return s.boundary_step();
}

} // namespace atp
