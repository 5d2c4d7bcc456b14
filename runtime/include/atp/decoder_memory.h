/* decoder_memory.h - the activation memory of the Llama-family decoder, stated once.

   The decoder (runtime/src/decoder.cpp) allocates its activation and scratch buffers once, for the largest
   micro-batch of T = batch x seq tokens, and checks that their bytes equal this ledger; autotpc's
   --emit=memory prints the same ledger for the config's micro-batch (compiler/Report/MemoryReport.cpp). One
   rule in one place is what makes the report the memory the trainer allocates. Standard library only, so
   that the compiler includes it without linking runtime code (like zero_padding.h).

   With e bytes per element (the kernels' dtype), s per statistic (F32, or F64 for F64 kernels), this TP
   rank's q columns cq = local_heads x head_dim, kv columns ckv = local_kv_heads x head_dim and ffn f:
     per layer, kept for backward: the layer input, both norm outputs, the post-attention residual and the
       attention output (4 hidden + cq), q/k/v (cq + 2 ckv), gate/up (2 f) and the SwiGLU output (f), all
       e x T; the two RMSNorm rstds (T) and the attention lse (T x local_heads), s each;
     layers: per layer x layers, plus the last layer's output (e T hidden); with recomputation, every
       layer's input and the last output ((layers + 1) e T hidden) plus one layer's other buffers;
     head: the final norm's output (e T hidden) and rstd (s T), the logits (e T vocab, written over by their
       gradient);
     scratch: backward's working buffers (3 hidden + cq + f + cq + 2 ckv + 2 f, e T each), the token ids
       and targets (4 T bytes each), the rotary table (e x seq x rotary_dim).
   Sizes saturate at INT64_MAX (the compiler runs the rule on hostile configs). */
#pragma once

#include <cstdint>
#include <limits>

namespace atp {

/// What the ledger needs of the model: DecoderShape's sizes for this TP rank.
struct DecoderMemorySizes {
  std::int64_t hidden = 0, layers = 0, vocab = 0;
  std::int64_t local_heads = 0, local_kv_heads = 0, head_dim = 0, local_ffn = 0;
  std::int64_t rotary_dim = 0; ///< head_dim unless a partial rotary factor says less
  bool recompute = false;      ///< activation_checkpointing: only the layer inputs are kept for every layer
};

/// Bytes of each part and their total.
struct DecoderMemory {
  std::int64_t per_layer = 0, layers = 0, head = 0, scratch = 0, total = 0;
};

namespace decoder_memory_detail {
inline std::int64_t mul(std::int64_t a, std::int64_t b) {
  if (a <= 0 || b <= 0)
    return 0;
  return a > std::numeric_limits<std::int64_t>::max() / b ? std::numeric_limits<std::int64_t>::max() : a * b;
}
inline std::int64_t add(std::int64_t a, std::int64_t b) {
  return a > std::numeric_limits<std::int64_t>::max() - b ? std::numeric_limits<std::int64_t>::max() : a + b;
}
} // namespace decoder_memory_detail

/// The ledger for micro-batches of up to `tokens` = batch x seq tokens of up to max_seq positions.
inline DecoderMemory decoder_memory(const DecoderMemorySizes &m, std::int64_t tokens, std::int64_t max_seq,
                                    std::int64_t elem_bytes, std::int64_t stat_bytes) {
  using decoder_memory_detail::add;
  using decoder_memory_detail::mul;
  const std::int64_t t = tokens, e = elem_bytes, s = stat_bytes;
  const std::int64_t cq = mul(m.local_heads, m.head_dim), ckv = mul(m.local_kv_heads, m.head_dim), f = m.local_ffn;
  const std::int64_t hidden_cols = mul(4, m.hidden), qkv_cols = add(cq, mul(2, ckv)), mlp_cols = mul(3, f);
  DecoderMemory r;
  r.per_layer = add(mul(mul(e, t), add(add(add(hidden_cols, cq), qkv_cols), mlp_cols)),
                    mul(mul(s, t), add(2, m.local_heads)));
  const std::int64_t layer_input = mul(mul(e, t), m.hidden);
  r.layers = m.recompute ? add(mul(layer_input, add(m.layers, 1)), r.per_layer - layer_input)
                         : add(mul(r.per_layer, m.layers), layer_input);
  r.head = add(add(mul(mul(e, t), m.hidden), mul(s, t)), mul(mul(e, t), m.vocab));
  const std::int64_t scratch_cols = add(add(add(mul(3, m.hidden), cq), add(f, qkv_cols)), mul(2, f));
  r.scratch = add(add(mul(mul(e, t), scratch_cols), mul(8, t)), mul(mul(e, max_seq), m.rotary_dim));
  r.total = add(add(r.layers, r.head), r.scratch);
  return r;
}

} // namespace atp
