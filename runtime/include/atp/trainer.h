/* trainer.h - the training loop of a generated model: ZeRO engine + decoder + data, checkpoints, export.

   One Trainer per rank. It completes the batch keys for the launch's DP size (DeepSpeed's rule), loads the
   initial weights (an HF checkpoint, each rank reading only its shards, or the seeded init that is the same
   for every layout), and runs optimizer steps: gradient_accumulation_steps micro-batches of micro_batch rows
   of seq tokens on each DP rank (the TP ranks of a group read the same rows), forward and backward into the
   ZeRO engine's flat gradients (grad-ready hooks in backward order), then the engine's step. The reported
   loss is the mean cross-entropy over every predicted token of the step, all DP ranks together.

   Checkpoints (save / resume) hold everything an exact resume needs: the working weights, this rank's
   optimizer state (fp32 master weights, both moments), the optimizer step count, the loss scaler, the data
   position (which includes the shuffle seed: the data order is the only randomness of training), all under
   the plan fingerprint and the layout (TP, DP, stage, precision, batch, sequence), with a checksum per file.
   A folder holds one safetensors file per rank, rank_tpTT_dpDD.safetensors (the working weights in the DP
   rank 0 files only), and trainer.json, written by global rank 0 last: a checkpoint without it is
   incomplete. Every file is written atomically. Resuming refuses another plan, another layout, an
   incomplete checkpoint and a file whose checksum does not match, naming the file and the reason.

   Everything here is collective: every rank of the job calls the same functions in the same order. */
#pragma once

#include "atp/comm.h"
#include "atp/data_loader.h"
#include "atp/decoder.h"
#include "atp/kernels.h"
#include "atp/ops.h"
#include "atp/plan.h"
#include "atp/zero.h"
#include "atp/zero_plan.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace atp {

/// What a generated project states about its model (plan.h, zero.h, model.h).
struct TrainModel {
  const ModelPlan &plan;
  const ZeroPlan &zero;
  const DecoderShape &shape;
  const DecoderParams &params;
  const char *hf_config_json; ///< the HF config.json text
};

/// The batch keys completed for a DP size.
struct BatchSizes {
  std::int64_t micro_batch = 0, grad_accum = 0, train_batch = 0;
};

/// DeepSpeed's rule (runtime/config.py, _configure_train_batch_size): of train_batch_size (TB),
/// train_micro_batch_size_per_gpu (MB) and gradient_accumulation_steps (GAS), the missing ones follow from
/// TB = MB x GAS x dp; only TB: GAS = 1; only MB: GAS = 1. The result must satisfy TB = MB x GAS x dp with
/// every term at least 1; errors name the keys and the DP size.
Result<BatchSizes> resolve_batch(const BatchConfig &batch, int dp);

/// This rank's place and communicators.
struct TrainComms {
  Comm &tp, &dp, &world;            ///< host buffers (MPI): scalars, agreement, consolidated weights
  int tp_rank = 0, dp_rank = 0, world_rank = 0;
  /// The TP and DP collectives over the kernels' buffers (the decoder's and the ZeRO engine's) when those
  /// are not host memory: NCCL, or MPI staged through the host (backend.h). Null: tp and dp serve them too.
  Comm *tensor_tp = nullptr, *tensor_dp = nullptr;
  /// The queues those two run on when they are not the kernels' (Backend::tp_ops, Backend::engine_ops): the
  /// decoder orders its TP all-reduces with events (decoder.h), and the ZeRO engine runs all its work on the
  /// DP comm's queue (zero.h, "Two queues"). Null: the kernels' queue.
  Ops *tp_queue = nullptr, *dp_queue = nullptr;
};

struct TrainerOptions {
  std::int64_t seq = 0;             ///< tokens per row; at most max_position_embeddings
  std::string init_from;            ///< an HF checkpoint (file, index or folder); empty: the seeded init
  std::uint64_t init_seed = 1234;
  /// Training data: a token file (atp/token_file.h) or a text file (byte-level tokenizer), or, when
  /// data_path is empty, data_tokens (named data_name in messages).
  std::string data_path;
  std::vector<std::uint32_t> data_tokens;
  std::string data_name = "tokens";
  std::uint64_t data_seed = 0;
  bool shuffle = true;
  double eval_fraction = 0.0;       ///< the tail of the data held out for evaluate() (0: none)
};

/// One optimizer step, as every rank sees it.
struct StepStats {
  std::int64_t step = 0;            ///< 1-based count of steps run, skipped ones included
  double loss = 0, lr = 0, grad_norm = 0, loss_scale = 1;
  bool applied = false, overflow = false;
  std::int64_t tokens = 0;          ///< tokens of the step over all DP ranks
};

/// The checkpoint folder `path` names: itself when it holds trainer.json, else the folder its `latest` file
/// names (what `train --save-dir` writes after each complete checkpoint).
Result<std::string> find_checkpoint(const std::string &path);
/// Records save_dir/`step_folder` as the latest complete checkpoint (save_dir/latest, written atomically).
Status write_latest(const std::string &save_dir, const std::string &step_folder);
/// A 64-bit checksum of a file's bytes (corruption detection, not security).
Result<std::uint64_t> file_checksum(const std::string &path);

class Trainer {
public:
  /// kernels and ops: the model's (same backend; ops on the kernels' queue).
  static Result<std::unique_ptr<Trainer>> create(const TrainModel &model, const TrainerOptions &options,
                                                 const TrainComms &comms, Kernels &kernels, Ops &ops);
  ~Trainer();
  Trainer(const Trainer &) = delete;
  Trainer &operator=(const Trainer &) = delete;

  /// One optimizer step: gradient_accumulation_steps micro-batches, then the ZeRO step.
  Result<StepStats> step();
  /// The mean loss over up to `batches` micro-batches of the held-out data on every DP rank (no gradients).
  Result<double> evaluate(std::int64_t batches);

  /// Writes a checkpoint into `folder` (created if missing; files of the same names are replaced atomically).
  Status save(const std::string &folder);
  /// Continues from the checkpoint in `folder`. Every rank fails alike, each printing what it found.
  Status resume(const std::string &folder);

  /// Every parameter's consolidated F32 tensor (full HF shape), in plan order: on the ranks of DP rank 0;
  /// empty vectors elsewhere.
  Result<std::vector<std::vector<float>>> gather_weights();
  /// model.safetensors (F32, HF names) and config.json in `folder`, written by global rank 0.
  Status export_hf(const std::string &folder);

  /// Continues `prompt` by up to max_new tokens: greedy when top_k is 0 or 1, else sampling among the top_k
  /// most likely with a seeded generator (the same tokens on every rank). The context is the last seq tokens.
  Result<std::vector<std::uint32_t>> generate(const std::vector<std::uint32_t> &prompt, std::int64_t max_new,
                                              std::int64_t top_k, double temperature, std::uint64_t seed);

  std::int64_t steps_run() const;
  const BatchSizes &batch() const;
  std::int64_t seq() const;
  /// Training FLOPs per token: 6 N + 12 L (heads x head_dim) seq, N = every parameter of the model.
  double flops_per_token() const;
  /// Parameters of the model (tied weights once).
  std::int64_t num_parameters() const;
  /// The training data; null when the trainer was made without any (generation only).
  const DataLoader *data() const;
  const ZeroEngine &engine() const;
  const Decoder &decoder() const;

  struct State;

private:
  explicit Trainer(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

} // namespace atp
