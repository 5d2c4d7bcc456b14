/* kernels.h - the forward and backward kernels that the generated model sequences, on the host or a GPU.

   The generated model (model.cpp) holds its shapes as constants and calls these kernels in order; it never
   touches a buffer itself. One interface, several backends: make_cpu_kernels (host memory, exact, fp32 or
   fp64, GEMMs through a threaded CBLAS) and make_cuda_kernels (device memory, fp32 or bf16). A backend is fixed
   at creation to one activation dtype, dtype(): every "void *" tensor below (activations, weights, weight
   and input gradients, logits) holds elements of that dtype. Saved statistics (RMSNorm's rstd, attention's
   logsumexp) hold stat_dtype() elements: F64 for F64 kernels, F32 otherwise.

   Conventions, for every call:
     - Buffers are raw pointers in the backend's memory, allocated with the atp::Ops of the same backend
       (make_cpu_ops for make_cpu_kernels; a CUDA Ops on the same stream for make_cuda_kernels). Zeroing,
       byte copies, host <-> backend transfers and dtype casts are Ops' (zero, copy, copy_from_host,
       copy_to_host, cast); this interface adds only the math.
     - All layouts are row-major. T is the number of token rows (T = B * S for a batch of B sequences of S
       tokens; row t is token s = t % S of sequence b = t / S). A "row stride" is the number of elements
       from one row to the next; a dense [T, N] matrix has row stride N.
     - Dimensions are int64 and must be positive; a call with a bad dimension, stride, pointer or option
       returns an error naming the call and the numbers, and writes nothing.
     - Weight gradients (dw, db) are written or ACCUMULATED (+=) as the call's dw_mode says: accumulated for
       gradient accumulation and tied embeddings (the LM head's dW added into the embedding's), written by
       the first product of an accumulation window, so that nobody clears the gradients (ParamStore::
       grad_write says which: decoder.h). dtable is always accumulated. Input gradients (dx) are written, or
       accumulated when the call takes Write::Accumulate (q/k/v and gate/up input gradients summed into one
       buffer before ONE tensor-parallel all-reduce; the residual stream's gradient). On the CPU, writing
       gives the bits of accumulating into zeros but for the sign of a zero (0 + -0 is +0); cuBLASLt may
       choose another algorithm for a product that writes (kernels_cuda_lt.cu), deterministic all the same.
     - Outputs must not overlap inputs unless a call says so.
     - Results are deterministic: the same inputs give the same bytes on every run, whatever the thread
       count (no reduction order that depends on threads or timing; on the CPU, GEMMs are cut into blocks
       by their dimensions, not by the thread count: kernels_cpu_gemm.cpp).
     - On the CUDA backend work is enqueued on one stream in call order; calls that return a value to
       the host (cross_entropy) or must read device data to reject bad input (embedding ids and targets,
       unless the caller says it checked them: VocabRange::ids_checked, CrossEntropyArgs::targets_checked)
       synchronize.

   A Llama decoder layer on one TP rank (this rank's heads and ffn columns; x: the layer's input [T, H],
   kept with h, q, k, v, a, lse, x1, h2, g, u, m and the rstds for backward), forward:
     rmsnorm_forward(h, rstd1, x, w_in)                 linear_forward(q|k|v, h, Wq|Wk|Wv, bq|bk|bv)
     rope_forward(q), rope_forward(k)                   attention_forward(a, lse, q, k, v)
     linear_forward(o, a, Wo); all-reduce(o)            add_rmsnorm_forward(x1, h2, rstd2, x, o, w_post)
     linear_forward(g, h2, Wg), linear_forward(u, h2, Wu)   swiglu_forward(m, g, u)
     linear_forward(d, m, Wd); all-reduce(d)            add(x2, x1, d), or with the next layer's input norm (the
                                                        last layer: the final norm) add_rmsnorm_forward(x2, ...)
   backward (dx: the residual stream's gradient, d(x2) on entry, d(x) on exit, accumulated into; every dW
   is written or accumulated as the parameter store says, the argument left out below):
     linear_backward(dm, Overwrite, dWd, -, dx, m, Wd)  swiglu_backward(dg, du, dm, g, u)
     linear_backward(dh2, Overwrite, dWg, -, dg, h2, Wg); linear_backward(dh2, Accumulate, dWu, -, du, h2, Wu)
     all-reduce(dh2) once                               rmsnorm_backward(dx, Accumulate, dw_post, dh2, ...)
     linear_backward(da, Overwrite, dWo, -, dx, a, Wo)  attention_backward(dq, dk, dv, da, ...)
     rope_backward(dq), rope_backward(dk)               linear_backward(dh, Overwrite/Accumulate x3, ...)
     all-reduce(dh) once                                rmsnorm_backward(dx, Accumulate, dw_in, dh, ...)
   Fused projections (phi3) use one linear and the column blocks of its output: attention and RoPE take
   row strides (one RoPE call rotates q and k where they sit side by side), SwiGLU takes [gate | up] rows.
   The LM head is linear_* (tied: W = the embedding table, so its dW lands in the embedding's gradient), then
   cross_entropy over row chunks if [T, V] is too big. */
#pragma once

#include "atp/dtype.h"
#include "atp/status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace atp {

/// Whether a call overwrites its input-gradient output or adds to it.
enum class Write : std::uint8_t {
  Overwrite,  ///< dx = ...
  Accumulate, ///< dx += ...
};

/// C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major; op(X) is X or X^T.
/// A is [m, k] with row stride lda (transposed: stored [k, m]); B is [k, n] with row stride ldb (transposed:
/// stored [n, k]); C is [m, n] with row stride ldc. beta = 0 ignores C's old contents (NaN included).
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  double alpha = 1.0, beta = 0.0;
};

/// The rows [begin, end) of a vocabulary of vocab_size tokens that one embedding table holds: the whole
/// vocabulary {vocab_size, 0, vocab_size}, or a vocab-parallel slice. The table is [end - begin, hidden].
struct VocabRange {
  std::int64_t vocab_size = 0;
  std::int64_t begin = 0, end = 0;
  /// The caller has checked every id against [0, vocab_size) on the host (the decoder does, before it uploads
  /// them): the CUDA backend then skips its device check and the stream synchronize that check costs. An id
  /// outside the range is then undefined behaviour on CUDA; the CPU backend checks regardless (it is free).
  bool ids_checked = false;
};

/// Rotary embedding settings, as HF's config.json states them.
struct RopeConfig {
  double theta = 10000.0;             ///< rope_theta
  double partial_rotary_factor = 1.0; ///< rotary dim = int(head_dim * factor); even, at least 2
  /// rope_scaling.rope_type (or "type"): "default" (no scaling) or "llama3"; others are an error.
  std::string rope_type = "default";
  /// "llama3" only: factor, low_freq_factor, high_freq_factor, original_max_position_embeddings.
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  double original_max_position_embeddings = 8192;
};

/// The rotary dimension of `cfg` for heads of head_dim, or an error (odd, zero, larger than head_dim).
Result<std::int64_t> rope_rotary_dim(const RopeConfig &cfg, std::int64_t head_dim);

/// HF's inv_freq for `cfg` (rotary_dim / 2 values, computed in double on the host): default
/// inv_freq[i] = 1 / theta^(2i / rotary_dim); "llama3" then rescales by wavelength w = 2 pi / inv_freq
/// (HF _compute_llama3_parameters): w < L / high_freq_factor keeps it, w > L / low_freq_factor divides
/// it by factor, between them it becomes (1 - a) * f / factor + a * f with a = (L / w - low) / (high - low),
/// L = original_max_position_embeddings. Both kinds have attention scaling 1.
Result<std::vector<double>> rope_inv_freq(const RopeConfig &cfg, std::int64_t head_dim);

/// A rotary table: `positions` rows of rotary_dim elements of dtype(); row p is
/// [cos(p * f_0) .. cos(p * f_{h-1}), sin(p * f_0) .. sin(p * f_{h-1})], h = rotary_dim / 2.
/// (F32: f and the angle p * f are rounded to float before cos/sin, as HF computes them in fp32.)
struct RopeDims {
  std::int64_t batch = 0, seq = 0;   ///< positions 0..seq-1 in every sequence; seq <= table_positions
  std::int64_t heads = 0, head_dim = 0;
  std::int64_t row_stride = 0;       ///< elements from one token to the next, >= heads * head_dim
  std::int64_t rotary_dim = 0;       ///< the table's; even, <= head_dim (the rest of each head passes through)
  std::int64_t table_positions = 0;  ///< rows in the table
};

/// Causal self-attention with grouped-query heads over this rank's heads.
/// q is [T, q_heads * head_dim] (head h at columns h*head_dim..), k and v [T, kv_heads * head_dim], each
/// with its own row stride (so q, k and v may be column blocks of one fused qkv output: phi3's qkv_proj);
/// T = batch * seq. Query head h reads kv head h / (q_heads / kv_heads) (HF's repeat_kv), so q_heads must
/// be a multiple of kv_heads (any ratio: 1 = MHA, q_heads = MQA). Query s attends keys j with j <= s and,
/// with a sliding window w > 0, s - j < w (HF's Mistral/Qwen2 window rule).
struct AttentionDims {
  std::int64_t batch = 0, seq = 0;
  std::int64_t q_heads = 0, kv_heads = 0, head_dim = 0;
  std::int64_t q_stride = 0, k_stride = 0, v_stride = 0; ///< row strides of q, k, v (and of dq, dk, dv)
  double scale = 0.0;               ///< softmax scale; HF: 1 / sqrt(head_dim). Must be > 0.
  std::int64_t sliding_window = 0;  ///< 0: plain causal
};

/// Token-level cross-entropy over logits [rows, vocab] (row stride vocab) with HF's labels rule.
struct CrossEntropyArgs {
  std::int64_t rows = 0, vocab = 0;
  std::int32_t ignore_index = -100; ///< rows whose target is this contribute no loss and get dlogits 0
  /// The mean's denominator: the count of non-ignored targets over everything that shares this mean (all
  /// micro-batches of a step, all DP ranks), so that the summed per-call gradients equal the mean's.
  std::int64_t denominator = 0;
  double grad_scale = 1.0;          ///< dlogits = grad_scale / denominator * d(sum of losses)/dlogits
  bool write_grad = true;           ///< false: loss only (evaluation), logits left as they are
  bool targets_checked = false;     ///< as VocabRange::ids_checked, for the targets (and the ignore_index)
};

struct CrossEntropySum {
  double loss_sum = 0.0;  ///< sum over non-ignored rows of logsumexp(logits[t]) - logits[t][target]
  std::int64_t count = 0; ///< non-ignored rows in this call
};

class Kernels {
public:
  virtual ~Kernels() = default;
  /// "cpu" or "cuda".
  virtual const char *name() const = 0;
  /// The dtype of every tensor argument: F32 (training), F64 (CPU only: finite-difference checks), BF16
  /// (CUDA only).
  virtual DType dtype() const = 0;
  /// The dtype of saved statistics (rstd, lse): F64 for F64 kernels, else F32.
  virtual DType stat_dtype() const = 0;

  // ---------------------------------------------------------------- matrix products

  /// The general product of GemmArgs. Strides must be at least the stored row length.
  virtual Status gemm(const GemmArgs &args, const void *a, const void *b, void *c) = 0;

  /// y[rows, out] = x[rows, in] @ w[out, in]^T (+ bias[out] on every row; bias may be null). Dense layouts.
  virtual Status linear_forward(void *y, const void *x, const void *w, const void *bias, std::int64_t rows,
                                std::int64_t in, std::int64_t out) = 0;
  /// dx[rows, in] (=|+=) dy @ w by dx_mode; dw[out, in] (=|+=) dy^T @ x and db[out] (=|+=) the sum over rows
  /// of dy, both by dw_mode. dx may be null (not needed), dw may be null (frozen), db is null when the layer
  /// has no bias.
  virtual Status linear_backward(void *dx, Write dx_mode, void *dw, void *db, Write dw_mode, const void *dy,
                                 const void *x, const void *w, std::int64_t rows, std::int64_t in,
                                 std::int64_t out) = 0;

  // ---------------------------------------------------------------- embedding

  /// out[t] = table[ids[t] - range.begin] when ids[t] is in [begin, end), else zeros; out is [rows, hidden].
  /// ids (int32, backend memory) must lie in [0, vocab_size): an id outside it is an error naming the row
  /// (on CUDA only where range.ids_checked is false).
  virtual Status embedding_forward(void *out, const void *table, const std::int32_t *ids, std::int64_t rows,
                                   std::int64_t hidden, const VocabRange &range) = 0;
  /// dtable[ids[t] - begin] += dout[t] for the rows whose id is in [begin, end), in row order.
  virtual Status embedding_backward(void *dtable, const void *dout, const std::int32_t *ids, std::int64_t rows,
                                    std::int64_t hidden, const VocabRange &range) = 0;

  // ---------------------------------------------------------------- RMSNorm

  /// y[t] = w * (x[t] * rstd[t]), rstd[t] = 1 / sqrt(mean_j x[t][j]^2 + eps) (HF LlamaRMSNorm); saves
  /// rstd [rows] (stat_dtype) for backward. x and y are [rows, hidden]; y may equal x.
  virtual Status rmsnorm_forward(void *y, void *rstd, const void *x, const void *w, std::int64_t rows,
                                 std::int64_t hidden, double eps) = 0;
  /// The residual add and the norm after it: sum = a + b (as add), then rmsnorm_forward(y, rstd, sum, w), with
  /// the same bytes as those two calls (this default makes them); a backend may fuse them into one pass.
  /// sum may equal a or b; y must not overlap sum, a or b.
  virtual Status add_rmsnorm_forward(void *sum, void *y, void *rstd, const void *a, const void *b, const void *w,
                                     std::int64_t rows, std::int64_t hidden, double eps) {
    if (rows < 1 || hidden < 1 || rows > INT64_MAX / hidden) // rmsnorm_forward's argument check names the error
      return rmsnorm_forward(y, rstd, sum, w, rows, hidden, eps);
    ATP_TRY(add(sum, a, b, rows * hidden));
    return rmsnorm_forward(y, rstd, sum, w, rows, hidden, eps);
  }
  /// With xhat = x * rstd and g = dy * w: dx (=|+=) rstd * (g - xhat * mean_j(g * xhat)) by dx_mode; dw
  /// (=|+=) the sum over rows of dy * xhat by dw_mode. dx may be null (only dw wanted); it must not overlap
  /// x, dy or w.
  virtual Status rmsnorm_backward(void *dx, Write dx_mode, void *dw, Write dw_mode, const void *dy, const void *x,
                                  const void *w, const void *rstd, std::int64_t rows, std::int64_t hidden) = 0;

  // ---------------------------------------------------------------- rotary embedding

  /// Writes the rotary table of `cfg` for `positions` positions (RopeDims describes its layout) into
  /// `table`, positions * rope_rotary_dim(cfg, head_dim) elements.
  virtual Status rope_table(void *table, const RopeConfig &cfg, std::int64_t head_dim,
                            std::int64_t positions) = 0;
  /// In place, HF's rotate_half convention (halves, not interleaved pairs): for every token at position p
  /// and head, with c = cos(p f_i), s = sin(p f_i), i < rotary_dim / 2, h = rotary_dim / 2:
  /// x[i] <- x[i] c - x[i+h] s, x[i+h] <- x[i+h] c + x[i] s. Apply once to q and once to k.
  virtual Status rope_forward(void *x, const RopeDims &dims, const void *table) = 0;
  /// In place, the transpose rotation (the gradient of rope_forward): dx[i] <- dx[i] c + dx[i+h] s,
  /// dx[i+h] <- dx[i+h] c - dx[i] s.
  virtual Status rope_backward(void *dx, const RopeDims &dims, const void *table) = 0;

  // ---------------------------------------------------------------- SwiGLU

  /// out[rows, ffn] (dense) = silu(gate) * up. gate and up are [rows, ffn] blocks with row stride
  /// in_stride: two buffers (in_stride = ffn), or one fused [rows, 2 ffn] buffer (phi3's gate_up_proj,
  /// whose first half is gate and second half up: gate = buf, up = buf + ffn, in_stride = 2 ffn).
  virtual Status swiglu_forward(void *out, const void *gate, const void *up, std::int64_t rows, std::int64_t ffn,
                                std::int64_t in_stride) = 0;
  /// dgate = dout * up * silu'(gate), dup = dout * silu(gate), written with the same row stride as gate/up
  /// (so into one fused buffer too). In place is allowed: dgate may equal gate and dup equal up.
  virtual Status swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                                 std::int64_t rows, std::int64_t ffn, std::int64_t in_stride) = 0;

  // ---------------------------------------------------------------- attention

  /// out [T, q_heads * head_dim] (dense) = softmax(scale * q k^T + causal mask) v per (sequence, head);
  /// saves lse [batch, q_heads, seq] (stat_dtype), the logsumexp of each softmax row, for backward.
  /// The softmax is computed in the compute precision (fp32 for F32/BF16, fp64 for F64).
  virtual Status attention_forward(void *out, void *lse, const void *q, const void *k, const void *v,
                                   const AttentionDims &dims) = 0;
  /// dq, dk, dv (written, with the row strides of q, k, v) from dout [T, q_heads * head_dim] and the
  /// forward's q, k, v, out and lse. GQA: dk and dv of a kv head sum the contributions of its query heads,
  /// in head order.
  virtual Status attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                                    const void *v, const void *out, const void *lse,
                                    const AttentionDims &dims) = 0;

  // ---------------------------------------------------------------- loss

  /// Cross-entropy of logits [rows, vocab] against targets [rows] (int32, backend memory). Returns the
  /// summed loss and the number of non-ignored rows; with write_grad, overwrites logits in place with
  /// dlogits = grad_scale / denominator * (softmax(logits) - onehot(target)) (zero rows where ignored).
  /// A target outside [0, vocab) that is not ignore_index is an error naming the row (nothing written).
  virtual Result<CrossEntropySum> cross_entropy(void *logits, const std::int32_t *targets,
                                                const CrossEntropyArgs &args) = 0;

  // ---------------------------------------------------------------- elementwise

  /// out[i] = a[i] + b[i], i < n (the residual add); out may equal a or b.
  virtual Status add(void *out, const void *a, const void *b, std::int64_t n) = 0;
  /// x[i] *= alpha, i < n.
  virtual Status scale(void *x, double alpha, std::int64_t n) = 0;

  /// Waits for all enqueued work (a no-op on the CPU).
  virtual Status synchronize() = 0;
};

/// Host kernels: dtype F32 (float, the training path) or F64 (double, for gradient checks); other dtypes
/// are an error. GEMMs run on the CBLAS the runtime was built with (OpenBLAS, kept single-threaded), large
/// ones split into fixed blocks over blas_threads threads (process-wide; 0: every core; e.g. 1 per rank when
/// ranks share the cores), and attention spreads its (sequence, head) blocks over the same threads; the
/// bits do not depend on that count. The elementwise kernels run on the calling thread. Fails in runtimes
/// built without a CBLAS (the CUDA machine's: runtime/kernels.cmake).
Result<std::unique_ptr<Kernels>> make_cpu_kernels(DType dtype = DType::F32, int blas_threads = 0);

/// Device kernels on the current CUDA device, enqueued on `stream` (a cudaStream_t; null: the legacy default
/// stream), dtype F32 or BF16 (others are an error). F32: GEMMs through cuBLAS in fp32 without TF32. BF16:
/// bf16 tensors, fp32 math (bf16 loads widened, fp32 accumulation, one round-to-nearest-even to bf16 per
/// stored value; cross_entropy works on the bf16 logits in place), GEMMs through cuBLASLt (bf16 A/B/C, fp32
/// compute, the bias as an epilogue, one heuristic query per distinct product shape, cached, and a 32 MiB
/// workspace; split-K only with fp32 partials reduced in a separate step). Both deterministic; saved
/// statistics F32 for both. BF16 causal attention runs on cuDNN's fused attention where the runtime has cuDNN 9
/// (kernels_cuda_sdpa.cpp: its deterministic backward) and the shape suits it; else, with head_dim 64, 96 or
/// 128, flash-style on tensor cores (kernels_cuda_flash_*.cu, deterministic: no atomics); F32 and other
/// head_dims keep the memory-linear row-per-warp kernels (runtime/src/kernels_cuda*.cu). Besides cross_entropy,
/// embedding_* (they check every id first, unless VocabRange::ids_checked) and rope_table (computed on the host)
/// synchronize the stream.
/// Built with AUTOTPC_ENABLE_CUDA (runtime/kernels.cmake); elsewhere it fails saying it was not built.
Result<std::unique_ptr<Kernels>> make_cuda_kernels(DType dtype, void *stream = nullptr);

/// The cuDNN that make_cuda_kernels' BF16 attention of these dims runs on, forward and backward, as "cuDNN
/// 9.14.0": the library this process loaded (cudnnGetVersion), which may differ from the headers the runtime was
/// built with. "" where our kernels take it instead: the runtime has no cuDNN or no CUDA kernels,
/// ATP_ATTENTION=flash, or the dims are ones cuDNN is not given (a sliding window, a head_dim over 128 or not a
/// multiple of 8, a sequence this cuDNN's backward does not take). Reads heads, head_dim, scale, seq and
/// sliding_window; whether cuDNN then finds a plan for the shape is only known when it runs (a line on stderr
/// says so if not). Needs no GPU.
std::string cuda_attention_library(const AttentionDims &dims);

} // namespace atp
