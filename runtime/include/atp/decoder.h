/* decoder.h - forward and backward of a Llama-family decoder over one TP rank's shards.

   The families llama, mistral, qwen2 and phi3 share one computation (HF's LlamaForCausalLM and its
   derivatives): token embedding; per layer RMSNorm -> q/k/v projections (separate, with optional biases,
   or one fused qkv_proj) -> RoPE -> causal GQA attention -> o_proj -> residual add -> RMSNorm -> gate/up
   projections (separate or one fused gate_up_proj) -> SwiGLU -> down_proj -> residual add; final RMSNorm;
   LM head (its own weight, or the embedding's when tied); cross-entropy.

   autotpc states every size as a constant of the generated model.cpp (DecoderShape, with this TP rank's
   head and ffn counts already divided) and the index of every parameter in the plan (DecoderParams); this
   class sequences the kernels of kernels.h with them and adds DeepSpeed's tensor-parallel collectives:
     - row-parallel o_proj and down_proj: their partial outputs are all-reduced (SUM) over TP in forward;
     - column-parallel q/k/v (or qkv) and gate/up (or gate_up): their input gradients are summed locally
       first and all-reduced over TP ONCE per attention block and once per MLP in backward; with the TP comm
       on a queue of its own, that all-reduce runs while the same products' weight gradients are computed.
   Replicated parameters (embedding, norms, LM head) get the same gradient on every TP rank.

   Weights and gradients live in a ParamStore (the ZeRO engine's flat buffers in training, plain buffers in
   tests); backward writes or accumulates into grad(i) as grad_write(i) says and calls grad_ready(i) as soon
   as parameter i's gradient of this micro-batch is complete, in backward order, so ZeRO stage 2 can reduce
   buckets while backward runs.
   A layer's forward first calls weights_needed for the weights it reads, its backward grad_needed for the
   gradients it adds into, so the engine's optimizer step may still be running on its own queue when the
   forward starts.
   Activations for backward are kept in buffers allocated once, for the largest micro-batch, for every layer
   or, with recomputation (DecoderShape::recompute), for one: their bytes are decoder_memory.h's ledger. */
#pragma once

#include "atp/comm.h"
#include "atp/kernels.h"
#include "atp/ops.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace atp {

/// The model's sizes, as the generated model.cpp states them.
struct DecoderShape {
  std::int64_t hidden, layers, vocab, heads, kv_heads, head_dim, ffn;
  std::int64_t max_positions;        ///< max_position_embeddings: the longest sequence the model accepts
  std::int32_t tp_size;
  bool attn_split;                   ///< q/k/v column- and o_proj row-parallel (else all four replicated)
  bool mlp_split;                    ///< gate/up column- and down_proj row-parallel (else all replicated)
  std::int64_t local_heads, local_kv_heads, local_ffn; ///< this rank's share (heads / tp when split, ...)
  bool qkv_fused;                    ///< one qkv_proj [q; k; v] (phi3) instead of q_proj, k_proj, v_proj
  bool qkv_bias;                     ///< q/k/v projections have biases (qwen2)
  bool gate_up_fused;                ///< one gate_up_proj [gate; up] (phi3)
  bool tied_embeddings;              ///< the LM head is the embedding's weight
  double rms_eps;
  std::int64_t sliding_window;       ///< 0: plain causal
  double rope_theta;
  const char *rope_type;             ///< "default" or "llama3"
  double rope_factor, rope_low_freq_factor, rope_high_freq_factor, rope_original_max_positions;
  /// The config's activation_checkpointing: keep only each layer's input and recompute the layer's forward
  /// (its row all-reduces included) just before its backward. The same bits as without (the kernels are
  /// deterministic); one layer's activations instead of all (decoder_memory.h).
  bool recompute;
};

/// Indices into ModelPlan::params of one layer's parameters; -1 where the family has none.
struct DecoderLayerParams {
  int input_norm, q, k, v, q_bias, k_bias, v_bias, qkv, o;
  int post_norm, gate, up, gate_up, down;
};

/// Indices of the parameters outside the layers; lm_head is -1 when tied.
struct DecoderParams {
  int embed, final_norm, lm_head;
  const DecoderLayerParams *layers;  ///< DecoderShape::layers entries
};

/// Where the decoder finds weights and gradients (in the kernels' memory, of the kernels' dtype).
class ParamStore {
public:
  virtual ~ParamStore() = default;
  virtual void *param(int i) = 0;
  virtual void *grad(int i) = 0;
  /// The kernels are about to read parameter i's weights (forward) or add into its gradient (backward): a
  /// store that writes them on another queue orders the kernels' queue after that work here (zero.h).
  virtual Status weights_needed(int) { return {}; }
  virtual Status grad_needed(int) { return {}; }
  /// Asked just before each product into parameter i's gradient: Overwrite when the store holds no gradient
  /// for it yet (its bytes are stale; the store then counts it as written), else Accumulate. The
  /// default suits a store whose gradients are zero at the start of an accumulation window. A store answers
  /// alike for the parameters of one product (q, k and v back to back; a weight and its bias).
  virtual Write grad_write(int) { return Write::Accumulate; }
  /// Parameter i's gradient of this micro-batch is complete.
  virtual Status grad_ready(int i) = 0;
};

/// One micro-batch: batch rows of seq tokens, host memory. targets may hold -100 (ignored positions).
struct MicroBatch {
  const std::int32_t *inputs = nullptr;
  const std::int32_t *targets = nullptr;
  std::int64_t batch = 0, seq = 0;
  /// The loss mean's denominator over everything the gradients will be summed over (see CrossEntropyArgs);
  /// 0: this micro-batch's own count of predicted tokens.
  std::int64_t denominator = 0;
  double grad_scale = 1.0;           ///< the loss is multiplied by this before backward (fp16 loss scale)
};

class Decoder {
public:
  /// A decoder for micro-batches of up to max_batch x max_seq tokens. `tp` is this rank's TP group (its
  /// size must be shape.tp_size); kernels and ops must be of the same backend. `layout`, when given, is the
  /// store every later call will pass (its buffers must not move): where a layer's q, k and v weights (and
  /// gradients) lie back to back in it as [v; k; q], and gate and up as [up; gate] (the ZeRO flat layout's
  /// backward order), each group is one product with the concatenated weight, as a fused qkv_proj /
  /// gate_up_proj is: fewer, larger GEMMs.
  /// tp_queue: the Ops of the queue the tp comm runs on when it is not ops' (CUDA: its own stream); each
  /// all-reduce then starts after the kernels before it, and the kernels wait for it only where they read its
  /// result: in backward, the column products' weight gradients run under it.
  static Result<std::unique_ptr<Decoder>> create(const DecoderShape &shape, const DecoderParams &params,
                                                 Kernels &kernels, Ops &ops, Comm &tp, std::int64_t max_batch,
                                                 std::int64_t max_seq, ParamStore *layout = nullptr,
                                                 Ops *tp_queue = nullptr);
  /// Whether separate q/k/v (gate/up) weights run as one product because they lie back to back in `layout`.
  bool merged_qkv() const;
  bool merged_gate_up() const;
  ~Decoder();
  Decoder(const Decoder &) = delete;
  Decoder &operator=(const Decoder &) = delete;

  /// Forward and backward of one micro-batch: gradients are written or added into the store's grad buffers
  /// as its grad_write says (by default added: the caller zeroes them once per accumulation cycle) and
  /// grad_ready fires for every parameter. Returns the summed loss over the micro-batch's predicted tokens
  /// and their count.
  Result<CrossEntropySum> forward_backward(ParamStore &store, const MicroBatch &mb);
  /// Forward only (evaluation): the summed loss and count; gradients untouched.
  Result<CrossEntropySum> forward_loss(ParamStore &store, const MicroBatch &mb);
  /// Forward only, without targets (generation, parity checks): copies the logits of tokens [first, first +
  /// count) (of batch x seq, row-major over batch and sequence) to host memory, count x vocab elements of the
  /// kernels' dtype.
  Status forward_logits(ParamStore &store, const MicroBatch &mb, std::int64_t first, std::int64_t count, void *host);
  /// Bytes of activation and scratch buffers this decoder holds.
  std::uint64_t activation_bytes() const;
  /// The attention calls' dims for micro-batches of batch x seq tokens (which kernels take them:
  /// cuda_attention_library).
  AttentionDims attention_dims(std::int64_t batch, std::int64_t seq) const;
  /// TP all-reduces issued so far, by kind (tests check one input-gradient all-reduce per block).
  struct CommCounts {
    std::int64_t forward_row = 0;      ///< o_proj and down_proj outputs (recomputed layers again)
    std::int64_t backward_column = 0;  ///< the summed input gradients of q/k/v and gate/up
  };
  const CommCounts &comm_counts() const;

  struct State;

private:
  explicit Decoder(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

} // namespace atp
