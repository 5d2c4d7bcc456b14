/* zero.h - the ZeRO stage 0/1/2 engine over one TP rank's flat buffers.

   The generated ZeroPlan (zero_plan.h) gives this TP rank's flat layout and buckets; the DP size, read at
   launch, pads every bucket to a multiple of it (zero_padded_layout). DP rank d owns piece d of every
   bucket; its ZeRO partition is those pieces, concatenated in bucket order.

   A training step, as DeepSpeed runs it (reference deepspeed-autotp.md §4.4-4.5):
     for each of gradient_accumulation_steps micro-steps:
       backward adds every local gradient into grad(i) (scaled by loss_scale() in fp16), calling
       grad_ready(i) as each one is complete, then backward_done();
       step()  -- a no-op except at the accumulation boundary.
   By stage, with N the padded flat size and P the partition size:
     0: at the boundary every bucket is all-reduced (SUM) over DP; AdamW updates all N elements.
        16-bit: each micro-step's gradients are accumulated into fp32 gradients (4N).
     1: gradients accumulate in the working buffer; at the boundary every bucket is reduce-scattered over
        DP in place, and the norm, the overflow check and AdamW read this rank's pieces there, widened to
        fp32 exactly (no fp32 gradients at this stage); AdamW updates the P elements of fp32 master
        weights; the updated pieces are all-gathered over DP, bucket by bucket.
     2: as soon as a bucket's parameters are all ready (and every earlier bucket was reduced) it is
        reduce-scattered in place and this rank's piece is added into fp32 gradients (4P); the
        working gradients of the bucket are zeroed for the next micro-step. The rest as stage 1.
   The fp32 gradients are never cleared: a window's first micro-step writes them (a cast) and the others
   add into them. "Zeroed" above: by default the engine clears the working gradients (a memset of 2 or 4
   bytes a parameter). With first writes (use_first_writes, what the trainer runs), it only marks them
   unwritten; the backward asks grad_write(i) before each product into gradient i and writes it
   (Overwrite) where the engine holds no gradient yet, so no clearing pass runs and the first product
   reads no old gradient (PyTorch's zero_grad(set_to_none=True)). Any gradient nothing wrote is zeroed
   before the engine reads it.
   Buckets are reduced strictly in bucket order, so the sequence of collectives is the same on every rank.
   Gradients are averaged over GAS x DP micro-batches (summed, then scaled inside AdamW). The global norm
   follows DeepSpeed: TP-sharded parameters counted on every TP rank, replicated ones on TP rank 0 only;
   SUM over DP (stages 1-2, where each rank holds a partition), then over TP. fp16: an inf or NaN on any
   rank (MAX over DP, then TP) skips the step on every rank and the loss scaler reacts.

   The engine allocates exactly the ledger of `autotpc --emit=memory` (allocated()); a small scratch buffer
   for scalars is not part of it.

   Two queues (CUDA: two streams). The engine may run on its own Ops, `ops`, while the model's kernels run on
   another, `compute`; the DP comm must then run on the engine's queue. The engine orders the two with
   events, so that neither waits for more than it needs (and its scalar all-reduces over TP with the TP
   comm's queue, `tp_queue`, when that is a third):
     - work on gradients (stage 2's bucket reduces in grad_ready, backward_done, the boundary) first waits for
       the model's queue as it stands, so it sees every gradient the backward wrote;
     - the optimizer updates (and at stages 1-2 all-gathers) the flat buffer in segments, in the order the
       forward reads them (the flat layout is in backward order, so from its end); the model's queue waits
       for a segment only when the forward first needs one of its weights (weights_needed), so the update of
       one step overlaps the next step's forward;
     - the model's queue waits for the engine's clearing of the gradients only before backward first adds
       into one (grad_needed), so stage 2's reduce-scatters overlap the rest of the backward.
   With one queue (compute null) there is nothing to order, and the hooks do nothing. */
#pragma once

#include "atp/comm.h"
#include "atp/kernels.h"
#include "atp/loss_scaler.h"
#include "atp/ops.h"
#include "atp/plan.h"
#include "atp/zero_padding.h"
#include "atp/zero_plan.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace atp {

// ---------------------------------------------------------------------------------------------------------
// the padded layout for a DP size

/// A flat layout padded for a DP size (PaddedBucket: zero_padding.h).
struct PaddedLayout {
  int dp = 1;
  std::int64_t numel = 0;      ///< N: the padded flat buffer
  std::int64_t partition = 0;  ///< P: one DP rank's partition
  std::vector<PaddedBucket> buckets;
  std::vector<std::int64_t> offsets; ///< per flat parameter (FlatLayout order), its padded offset
};

/// Pads every bucket of `layout` to a multiple of dp by the rule of zero_padding.h (BucketPadder), the one
/// autotpc's --emit=memory uses.
Result<PaddedLayout> zero_padded_layout(const FlatLayout &layout, int dp);

// ---------------------------------------------------------------------------------------------------------
// the engine

/// Bytes the engine holds, by the categories of `autotpc --emit=memory`.
struct ZeroLedger {
  std::uint64_t params = 0, grads = 0, fp32_master = 0, fp32_grads = 0, moments = 0;
  std::uint64_t total() const { return params + grads + fp32_master + fp32_grads + moments; }
};

/// What step() did.
struct StepResult {
  bool boundary = false;   ///< this call ended an accumulation cycle
  bool applied = false;    ///< the weights were updated (false: not a boundary, or an fp16 overflow)
  bool overflow = false;   ///< fp16: some rank saw an inf or NaN; the step was skipped everywhere
  double grad_norm = 0.0;  ///< the global L2 norm of the averaged gradients, before clipping
  double lr = 0.0;         ///< the learning rate used
  double loss_scale = 1.0; ///< the scale these gradients carried
};

/// One buffer of the engine's state, for checkpoints: in ops' memory.
struct StateBuffer {
  const char *name;  ///< "params" (working weights, padded flat layout), "master", "exp_avg", "exp_avg_sq"
  void *data;
  DType dtype;
  std::int64_t numel;
};

/// The engine's scalar state, for checkpoints.
struct EngineCounters {
  std::int64_t steps = 0;
  LossScalerState scaler;
};

class ZeroEngine {
public:
  /// An engine for TP rank `tp_rank` of `model` under `zero`. tp and dp are this process's TP and DP
  /// communicators (their sizes must be zero.tp_size and the launch DP size); ops owns the buffers and runs
  /// the engine's work (its backend must match the comms': host buffers with MPI, device buffers with NCCL).
  /// compute: the Ops of the model's kernels when they run on another queue (see "Two queues" above); dp
  /// must then run on ops' queue. tp_queue: the Ops of the queue the tp comm runs on when it is neither
  /// (null: compute's, or ops' when compute is null). Parameters start at 0.
  static Result<std::unique_ptr<ZeroEngine>> create(const ModelPlan &model, const ZeroPlan &zero, int tp_rank, Comm &tp,
                                                    Comm &dp, Ops &ops, Ops *compute = nullptr,
                                                    Ops *tp_queue = nullptr);
  ~ZeroEngine();
  ZeroEngine(const ZeroEngine &) = delete;
  ZeroEngine &operator=(const ZeroEngine &) = delete;

  /// The working dtype (F32, BF16 or F16).
  DType dtype() const;
  /// Elements of parameter i's local tensor (i indexes ModelPlan::params).
  std::int64_t numel(int i) const;
  /// Parameter i's working weights and gradient: views into the flat buffers, in ops' memory.
  void *param(int i);
  void *grad(int i);

  /// Sets parameter i's weights from host memory (its local shard, any of F32/BF16/F16; converted).
  Status load_param(int i, const void *host, DType dtype);
  /// Copies parameter i's working weights to host memory (numel(i) elements of dtype()).
  Status read_param(int i, void *host) const;

  /// The factor the loss must be multiplied by before backward (fp16; 1 otherwise).
  double loss_scale() const;
  /// Forward hook: the model's kernels are about to read parameter i's weights.
  Status weights_needed(int i);
  /// Backward hook: the model's kernels are about to add into parameter i's gradient.
  Status grad_needed(int i);
  /// First writes (see the top): the engine stops clearing the working gradients; the backward must ask
  /// grad_write before each product into a gradient, and overwrite it when told to. Call it before a
  /// micro-step (an error during an accumulation window).
  Status use_first_writes();
  /// Backward hook, first writes only: Overwrite when parameter i's gradient is unwritten (the engine holds
  /// none for it yet; it is then counted as written), else Accumulate. Always Accumulate without first writes.
  Write grad_write(int i);
  /// Backward hook: parameter i's gradient for this micro-step is complete.
  Status grad_ready(int i);
  /// End of a micro-step's backward.
  Status backward_done();
  /// The optimizer step at the accumulation boundary; a no-op on the other micro-steps.
  Result<StepResult> step();

  /// Optimizer steps taken (skipped ones not counted).
  std::int64_t steps() const;

  /// Checkpoints, between optimizer steps only (no micro-step pending). state_buffers: what a checkpoint
  /// must hold for an exact resume: the working weights (identical on every DP rank) and this rank's
  /// optimizer state (fp32 master weights when they are a buffer of their own, and both moments); the fp32
  /// master weights are brought up to date from the working weights first if no step has done it. It waits
  /// for the engine's queue, so the buffers may then be copied through the model's Ops too.
  Result<std::vector<StateBuffer>> state_buffers();
  EngineCounters counters() const;
  /// After writing state_buffers' memory from a checkpoint: takes the counters and treats the master
  /// weights as current.
  Status restore(const EngineCounters &c);
  const PaddedLayout &layout() const;
  /// The bytes allocated, by category.
  const ZeroLedger &allocated() const;

  struct State;

private:
  explicit ZeroEngine(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

} // namespace atp
