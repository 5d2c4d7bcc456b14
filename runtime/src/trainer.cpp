/* trainer.cpp - set-up, optimizer steps, evaluation, consolidated weights, HF export and generation of
   atp::Trainer (trainer.h says what each does; checkpoints are trainer_checkpoint.cpp). */
#include "atp/trainer.h"

#include "atp/byte_tokenizer.h"
#include "atp/checkpoint_tools.h"
#include "atp/loss_and_grads.h"
#include "atp/safetensors_writer.h"
#include "atp/shard.h"

#include "trainer_state.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

namespace atp {

// ---------------------------------------------------------------------------------------------------------
// batch keys

Result<BatchSizes> resolve_batch(const BatchConfig &b, int dp) {
  if (dp < 1)
    return error("train: the DP size must be at least 1, not " + std::to_string(dp));
  std::int64_t tb = b.train_batch_size, mb = b.micro_batch_size, gas = b.gradient_accumulation_steps;
  if (tb < 0 || mb < 0 || gas < 0)
    return error("train: batch keys must be positive");
  if (tb && mb && !gas)
    gas = tb / (mb * dp);
  else if (tb && gas && !mb)
    mb = tb / (gas * dp);
  else if (mb && gas && !tb)
    tb = mb * gas * dp;
  else if (tb && !mb && !gas)
    gas = 1, mb = tb / dp;
  else if (mb && !tb && !gas)
    gas = 1, tb = mb * dp;
  else if (!tb && !mb)
    return error("train: the config gives neither train_batch_size nor train_micro_batch_size_per_gpu");
  if (mb < 1 || gas < 1 || tb != mb * gas * dp)
    return error("train: train_batch_size (" + std::to_string(b.train_batch_size) +
                 (b.train_batch_size ? "" : ", not given") + ") must equal train_micro_batch_size_per_gpu (" +
                 std::to_string(b.micro_batch_size) + (b.micro_batch_size ? "" : ", not given") +
                 ") x gradient_accumulation_steps (" + std::to_string(b.gradient_accumulation_steps) +
                 (b.gradient_accumulation_steps ? "" : ", not given") + ") x the DP size (" + std::to_string(dp) +
                 " = world size / autotp_size); no positive integers do");
  return BatchSizes{mb, gas, tb};
}

// ---------------------------------------------------------------------------------------------------------
// State helpers

MicroBatch Trainer::State::to_micro_batch(const TokenBatch &b) {
  const std::size_t s = std::size_t(b.seq_len);
  inputs.resize(std::size_t(b.rows) * s);
  targets.resize(inputs.size());
  for (std::size_t r = 0; r < b.rows; ++r)
    for (std::size_t t = 0; t < s; ++t) {
      inputs[r * s + t] = std::int32_t(b.inputs(r)[t]);
      targets[r * s + t] = std::int32_t(b.targets(r)[t]);
    }
  MicroBatch mb;
  mb.inputs = inputs.data(), mb.targets = targets.data();
  mb.batch = std::int64_t(b.rows), mb.seq = std::int64_t(b.seq_len);
  return mb;
}

Result<double> Trainer::State::sum_over_dp(double x) {
  if (comms.dp.size() > 1)
    ATP_TRY(comms.dp.all_reduce(&x, &x, 1, DType::F64, ReduceOp::Sum));
  return x;
}

Status Trainer::State::agree(const Status &mine, const std::string &what) {
  std::int32_t failed = mine.ok() ? 0 : 1;
  ATP_TRY(comms.world.all_reduce(&failed, &failed, 1, DType::I32, ReduceOp::Max));
  if (!mine.ok())
    return mine;
  if (failed)
    return error(what + ": another rank failed (its message says why)");
  return {};
}

// ---------------------------------------------------------------------------------------------------------
// set-up

namespace {

bool is_token_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  return in.read(magic, 8) && std::memcmp(magic, "ATPTOKEN", 8) == 0;
}

/// The training and evaluation loaders over the options' data.
Status open_data(Trainer::State &s) {
  const TrainerOptions &o = s.options;
  if (o.data_path.empty() && o.data_tokens.empty())
    return {}; // generation only
  const std::uint64_t vocab = std::uint64_t(s.model.shape.vocab);
  DataLoaderOptions d;
  d.seq_len = std::uint64_t(o.seq);
  d.micro_batch = std::uint64_t(s.batch.micro_batch);
  d.dp_rank = s.comms.dp_rank, d.dp_size = s.comms.dp.size();
  d.seed = o.data_seed, d.shuffle = o.shuffle;
  std::vector<std::uint32_t> tokens = o.data_tokens;
  std::string name = o.data_name;
  const bool file = !o.data_path.empty() && is_token_file(o.data_path);
  if (!o.data_path.empty() && !file) { // plain text: bytes, and an end-of-text token if the vocabulary has one
    const bool eot = vocab > kByteVocab;
    ATP_TRY(check_vocab(vocab, eot));
    ATP_ASSIGN_OR_RETURN(tokens, tokenize_text_files({o.data_path}, "", eot));
    name = o.data_path;
  }
  auto open = [&](const DataLoaderOptions &opt) -> Result<DataLoader> {
    if (file)
      return DataLoader::open(o.data_path, opt);
    return DataLoader::from_tokens(tokens, name, opt);
  };
  std::uint64_t total = tokens.size();
  if (file) {
    DataLoaderOptions count = d;
    count.vocab_size = 0;
    ATP_ASSIGN_OR_RETURN(DataLoader probe, open(count));
    total = probe.tokens();
  }
  d.vocab_size = vocab;
  d.check_all_ids_at_open = true; // a bad id fails before step 0, not when reached
  if (o.eval_fraction < 0 || o.eval_fraction >= 1)
    return error("train: the evaluation fraction must be in [0, 1), not " + std::to_string(o.eval_fraction));
  const std::uint64_t held = std::uint64_t(double(total) * o.eval_fraction);
  if (held > 0) {
    DataLoaderOptions e = d;
    e.token_begin = total - held;
    e.shuffle = false;
    d.token_end = total - held;
    auto ev = open(e);
    if (!ev.ok())
      return ev.status().with_context("train: the held-out " + std::to_string(held) + " tokens (" +
                                      std::to_string(o.eval_fraction) + " of the data) for evaluation");
    s.eval.emplace(std::move(ev).value());
  }
  ATP_ASSIGN_OR_RETURN(DataLoader tr, open(d));
  s.train.emplace(std::move(tr));
  return {};
}

Status load_initial_weights(Trainer::State &s) {
  const ModelPlan &plan = s.model.plan;
  const int r = s.comms.tp_rank;
  if (s.options.init_from.empty()) {
    std::vector<std::vector<float>> w(std::size_t(plan.num_params));
    for (int i = 0; i < plan.num_params; ++i)
      w[std::size_t(i)].resize(std::size_t(s.engine->numel(i)));
    ATP_TRY(seeded_init(plan, r, s.options.init_seed, w));
    for (int i = 0; i < plan.num_params; ++i)
      ATP_TRY(s.engine->load_param(i, w[std::size_t(i)].data(), DType::F32));
    return {};
  }
  ATP_ASSIGN_OR_RETURN(std::vector<HostTensor> shards, load_sharded_any_float(plan, r, s.options.init_from));
  for (int i = 0; i < plan.num_params; ++i)
    ATP_TRY(s.engine->load_param(i, shards[std::size_t(i)].data(), shards[std::size_t(i)].dtype()));
  return {};
}

} // namespace

Trainer::Trainer(std::unique_ptr<State> s) : s_(std::move(s)) {}
Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::create(const TrainModel &model, const TrainerOptions &options,
                                                 const TrainComms &comms, Kernels &kernels, Ops &ops) {
  auto s = std::make_unique<State>(model, options, comms, kernels, ops);
  const DType working = model.zero.precision == Precision::F32    ? DType::F32
                        : model.zero.precision == Precision::BF16 ? DType::BF16
                                                                  : DType::F16;
  if (working != kernels.dtype())
    return error(std::string("train: the config trains in ") + dtype_name(working) + " but the " + kernels.name() +
                 " kernels compute in " + dtype_name(kernels.dtype()) +
                 (std::string(kernels.name()) == "cpu"
                      ? ": the CPU backend trains in fp32 only; set bf16.enabled / fp16.enabled to false"
                      : ""));
  ATP_TRY(check_seq_len(std::uint64_t(std::max<std::int64_t>(options.seq, 0)),
                        std::uint64_t(model.shape.max_positions)));
  ATP_ASSIGN_OR_RETURN(s->batch, resolve_batch(model.zero.batch, comms.dp.size()));
  s->zero.gradient_accumulation_steps = std::int32_t(s->batch.grad_accum);
  ATP_TRY(open_data(*s));
  Comm &tensor_tp = comms.tensor_tp ? *comms.tensor_tp : comms.tp;
  Comm &tensor_dp = comms.tensor_dp ? *comms.tensor_dp : comms.dp;
  // The engine runs on the DP comm's queue; it and the decoder order their TP all-reduces with the TP comm's.
  ATP_ASSIGN_OR_RETURN(s->engine, comms.dp_queue ? ZeroEngine::create(model.plan, s->zero, comms.tp_rank, tensor_tp,
                                                                      tensor_dp, *comms.dp_queue, &ops, comms.tp_queue)
                                                 : ZeroEngine::create(model.plan, s->zero, comms.tp_rank, tensor_tp,
                                                                      tensor_dp, ops, nullptr, comms.tp_queue));
  ATP_TRY(s->engine->use_first_writes()); // the decoder asks grad_write: no clearing pass over the gradients
  s->store.engine = s->engine.get();
  ATP_ASSIGN_OR_RETURN(s->decoder, Decoder::create(model.shape, model.params, kernels, ops, tensor_tp,
                                                   s->batch.micro_batch, options.seq, &s->store, comms.tp_queue));
  ATP_TRY(load_initial_weights(*s));
  return std::unique_ptr<Trainer>(new Trainer(std::move(s)));
}

// ---------------------------------------------------------------------------------------------------------
// steps

Result<StepStats> Trainer::step() {
  State &s = *s_;
  if (!s.train)
    return error("train: no training data (--data)");
  double loss_sum = 0;
  StepResult r;
  for (std::int64_t g = 0; g < s.batch.grad_accum; ++g) {
    ATP_TRY(s.train->next(s.rows));
    MicroBatch mb = s.to_micro_batch(s.rows);
    mb.grad_scale = s.engine->loss_scale();
    ATP_ASSIGN_OR_RETURN(CrossEntropySum ce, s.decoder->forward_backward(s.store, mb));
    loss_sum += ce.loss_sum;
    ATP_TRY(s.engine->backward_done());
    ATP_ASSIGN_OR_RETURN(r, s.engine->step());
  }
  ATP_ASSIGN_OR_RETURN(const double total, s.sum_over_dp(loss_sum));
  StepStats st;
  st.step = ++s.steps;
  st.tokens = s.batch.train_batch * s.options.seq;
  st.loss = total / double(st.tokens);
  st.lr = r.lr, st.grad_norm = r.grad_norm, st.loss_scale = r.loss_scale;
  st.applied = r.applied, st.overflow = r.overflow;
  return st;
}

Result<double> Trainer::evaluate(std::int64_t batches) {
  State &s = *s_;
  if (!s.eval)
    return error("train: evaluation needs held-out data (an evaluation fraction above 0)");
  const std::uint64_t per_pass = std::uint64_t(s.batch.micro_batch) * std::uint64_t(s.comms.dp.size());
  const std::int64_t n = std::max<std::int64_t>(1, std::min<std::int64_t>(batches, std::int64_t(s.eval->windows() / per_pass)));
  s.eval->rewind();
  double sum = 0, count = 0;
  for (std::int64_t b = 0; b < n; ++b) {
    ATP_TRY(s.eval->next(s.rows));
    ATP_ASSIGN_OR_RETURN(CrossEntropySum ce, s.decoder->forward_loss(s.store, s.to_micro_batch(s.rows)));
    sum += ce.loss_sum, count += double(ce.count);
  }
  ATP_ASSIGN_OR_RETURN(sum, s.sum_over_dp(sum));
  ATP_ASSIGN_OR_RETURN(count, s.sum_over_dp(count));
  return sum / count;
}

// ---------------------------------------------------------------------------------------------------------
// consolidated weights and the HF export

Result<std::vector<std::vector<float>>> Trainer::gather_weights() {
  State &s = *s_;
  const ModelPlan &plan = s.model.plan;
  std::vector<std::vector<float>> full(std::size_t(plan.num_params));
  if (s.comms.dp_rank != 0)
    return full;
  auto host_ops = make_cpu_ops();
  for (int i = 0; i < plan.num_params; ++i) {
    const std::size_t n = std::size_t(s.engine->numel(i));
    std::vector<std::byte> raw(n * dtype_size(s.engine->dtype()));
    ATP_TRY(s.engine->read_param(i, raw.data()));
    std::vector<float> local(n);
    ATP_TRY(host_ops->cast(local.data(), DType::F32, raw.data(), s.engine->dtype(), n));
    std::vector<float> all(n * std::size_t(plan.tp_size));
    if (plan.tp_size > 1)
      ATP_TRY(s.comms.tp.all_gather(local.data(), all.data(), n, DType::F32));
    else
      all = local;
    const ParamPlan &p = plan.params[i];
    ParamPlan f32 = p; // the same boxes over F32 elements
    f32.dtype = DType::F32;
    full[std::size_t(i)].resize(std::size_t(p.rows * p.cols));
    for (int r = 0; r < plan.tp_size; ++r)
      gather_copy(f32, r, reinterpret_cast<const std::byte *>(all.data() + std::size_t(r) * n),
                  reinterpret_cast<std::byte *>(full[std::size_t(i)].data()));
  }
  return full;
}

Status make_folder(const std::string &folder) {
  struct stat st {};
  if (::stat(folder.c_str(), &st) == 0)
    return S_ISDIR(st.st_mode) ? Status{} : error("train: " + quote(folder) + " exists and is not a folder");
  const std::string parent = parent_folder(folder);
  if (!parent.empty() && parent != folder)
    ATP_TRY(make_folder(parent));
  if (::mkdir(folder.c_str(), 0755) != 0 && errno != EEXIST)
    return error("train: cannot create the folder " + quote(folder) + ": " + std::strerror(errno));
  return {};
}

namespace {

/// The HF config for an F32 export: the model's config.json with its dtype keys saying float32.
Result<std::string> export_config(const char *hf_config_json) {
  nlohmann::json c = nlohmann::json::parse(hf_config_json ? hf_config_json : "", nullptr, false);
  if (!c.is_object())
    return error("train: the generated model states no HF config object (regenerate the project with autotpc)");
  c["torch_dtype"] = "float32"; // transformers 4
  if (c.contains("dtype"))
    c["dtype"] = "float32";     // transformers 5
  return c.dump(2) + "\n";
}

} // namespace

Status Trainer::export_hf(const std::string &folder) {
  State &s = *s_;
  Status mine;
  if (s.comms.world_rank == 0)
    mine = make_folder(folder);
  ATP_TRY(s.agree(mine, "train: export"));
  ATP_ASSIGN_OR_RETURN(std::vector<std::vector<float>> full, gather_weights());
  if (s.comms.world_rank == 0) {
    mine = [&]() -> Status {
      const ModelPlan &plan = s.model.plan;
      std::vector<TensorDecl> decls;
      for (int i = 0; i < plan.num_params; ++i) {
        const ParamPlan &p = plan.params[i];
        decls.push_back({p.name, DType::F32, std::vector<std::int64_t>(p.shape, p.shape + p.ndim)});
      }
      ATP_ASSIGN_OR_RETURN(SafetensorsWriter w,
                           SafetensorsWriter::create(join_path(folder, "model.safetensors"), decls, {{"format", "pt"}}));
      for (int i = 0; i < plan.num_params; ++i)
        ATP_TRY(w.write(decls[std::size_t(i)].name, full[std::size_t(i)].data(), full[std::size_t(i)].size() * 4));
      ATP_TRY(w.commit());
      ATP_ASSIGN_OR_RETURN(std::string config, export_config(s.model.hf_config_json));
      ATP_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(join_path(folder, "config.json")));
      ATP_TRY(f.write(config.data(), config.size()));
      return f.commit();
    }();
  }
  return s.agree(mine, "train: export");
}

// ---------------------------------------------------------------------------------------------------------
// generation

Result<std::vector<std::uint32_t>> Trainer::generate(const std::vector<std::uint32_t> &prompt, std::int64_t max_new,
                                                     std::int64_t top_k, double temperature, std::uint64_t seed) {
  State &s = *s_;
  const std::int64_t vocab = s.model.shape.vocab;
  if (prompt.empty())
    return error("train: generation needs a prompt of at least one token");
  for (std::uint32_t t : prompt)
    if (std::int64_t(t) >= vocab)
      return error("train: the prompt holds token " + std::to_string(t) + ", not below the vocabulary size " +
                   std::to_string(vocab));
  if (s.kernels.dtype() != DType::F32)
    return error("train: generation runs on F32 kernels");
  std::vector<std::uint32_t> text = prompt;
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::vector<std::int32_t> ids;
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  auto uniform = [&]() { // splitmix64: the same draws on every rank
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return double((z ^ (z >> 31)) >> 11) / double(1ull << 53);
  };
  for (std::int64_t n = 0; n < max_new; ++n) {
    const std::size_t ctx = std::min<std::size_t>(text.size(), std::size_t(s.options.seq));
    ids.assign(text.end() - std::ptrdiff_t(ctx), text.end());
    MicroBatch mb;
    mb.inputs = ids.data(), mb.batch = 1, mb.seq = std::int64_t(ctx);
    ATP_TRY(s.decoder->forward_logits(s.store, mb, std::int64_t(ctx) - 1, 1, logits.data()));
    std::vector<std::int64_t> order(static_cast<std::size_t>(vocab));
    for (std::int64_t v = 0; v < vocab; ++v)
      order[std::size_t(v)] = v;
    const std::int64_t k = std::max<std::int64_t>(1, std::min(top_k, vocab));
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int64_t a, std::int64_t b) {
      return logits[std::size_t(a)] > logits[std::size_t(b)] || (logits[std::size_t(a)] == logits[std::size_t(b)] && a < b);
    });
    std::int64_t pick = order[0];
    if (k > 1) {
      const double t = temperature > 0 ? temperature : 1.0, top = logits[std::size_t(order[0])];
      std::vector<double> p(static_cast<std::size_t>(k));
      double z = 0;
      for (std::int64_t i = 0; i < k; ++i)
        z += p[std::size_t(i)] = std::exp((logits[std::size_t(order[std::size_t(i)])] - top) / t);
      double u = uniform() * z;
      for (std::int64_t i = 0; i < k; ++i)
        if ((u -= p[std::size_t(i)]) <= 0 || i == k - 1) {
          pick = order[std::size_t(i)];
          break;
        }
    }
    text.push_back(std::uint32_t(pick));
  }
  return std::vector<std::uint32_t>(text.begin() + std::ptrdiff_t(prompt.size()), text.end());
}

// ---------------------------------------------------------------------------------------------------------
// accessors

std::int64_t Trainer::steps_run() const { return s_->steps; }
const BatchSizes &Trainer::batch() const { return s_->batch; }
std::int64_t Trainer::seq() const { return s_->options.seq; }
const DataLoader *Trainer::data() const { return s_->train ? &*s_->train : nullptr; }
const ZeroEngine &Trainer::engine() const { return *s_->engine; }
const Decoder &Trainer::decoder() const { return *s_->decoder; }

std::int64_t Trainer::num_parameters() const {
  std::int64_t n = 0;
  for (int i = 0; i < s_->model.plan.num_params; ++i)
    n += s_->model.plan.params[i].rows * s_->model.plan.params[i].cols;
  return n;
}

double Trainer::flops_per_token() const {
  const DecoderShape &d = s_->model.shape;
  return 6.0 * double(num_parameters()) + 12.0 * double(d.layers) * double(d.heads * d.head_dim) * double(seq());
}

} // namespace atp
