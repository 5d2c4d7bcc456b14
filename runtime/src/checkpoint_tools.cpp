/* HF checkpoint <-> TP shards, driven by a generated ModelPlan (see
   atp/checkpoint_tools.h). */
#include "atp/checkpoint_tools.h"

#include "atp/safetensors.h"
#include "atp/safetensors_writer.h"
#include "atp/shard.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>
#include <sys/stat.h>
#include <system_error>
#include <thread>

namespace atp {

namespace {

const char *const kFingerprintKey = "autotpc_plan_fingerprint";

std::vector<std::int64_t> full_shape(const ParamPlan &p) { return {p.shape, p.shape + p.ndim}; }

std::vector<std::int64_t> local_shape(const ParamPlan &p, int rank) {
  if (p.split == Split::Replicate)
    return full_shape(p);
  if (p.ndim == 1)
    return {p.ranks[rank].rows};
  return {p.ranks[rank].rows, p.ranks[rank].cols};
}

std::string join(const std::string &dir, const std::string &name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool is_dir(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// The value after `flag` in argv, or "" if absent.
std::string arg(int argc, char **argv, std::string_view flag) {
  for (int i = 1; i + 1 < argc; ++i)
    if (flag == argv[i])
      return argv[i + 1];
  return "";
}

} // namespace

// ---- checks ----------------------------------------------------------------

std::string shard_file_name(int rank, int tp_size) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "tp_rank_%02d_of_%02d.safetensors", rank, tp_size);
  return buf;
}

static Status check_tensors(const ModelPlan &plan, const Checkpoint &ckpt) {
  for (int i = 0; i < plan.num_params; ++i) {
    const ParamPlan &p = plan.params[i];
    const TensorInfo *t = ckpt.find(p.name);
    if (!t)
      return error(ckpt.path() + ": tensor '" + p.name + "' of the plan is missing");
    if (t->dtype != p.dtype || t->shape != full_shape(p))
      return error(ckpt.path() + ": tensor '" + p.name + "' is " + dtype_name(t->dtype) + shape_string(t->shape) +
                   " but the plan expects " + dtype_name(p.dtype) + shape_string(full_shape(p)));
  }
  if (ckpt.size() != std::size_t(plan.num_params)) {
    // Every plan parameter is there, so some tensor is not in the plan.
    std::string extra;
    for (const TensorInfo *t : ckpt.tensors()) {
      bool known = false;
      for (int i = 0; i < plan.num_params && !known; ++i)
        known = t->name == plan.params[i].name;
      if (!known) {
        extra = t->name;
        break;
      }
    }
    return error(ckpt.path() + ": tensor '" + extra + "' is not a parameter of the plan (the checkpoint holds " +
                 std::to_string(ckpt.size()) + " tensors, the plan " + std::to_string(plan.num_params) + ")");
  }
  return Status();
}

Status check_against_plan(const ModelPlan &plan, const std::string &hf_checkpoint) {
  Result<Checkpoint> ckpt = Checkpoint::open(hf_checkpoint);
  ATP_TRY(ckpt);
  return check_tensors(plan, *ckpt);
}

// ---- shard -----------------------------------------------------------------

/// Runs job(slot) for every slot in [0, slots), each on its own thread (this one takes slot 0, and any
/// slot whose thread cannot be started), and returns when all are done.
template <class F> void run_slots(int slots, const F &job) {
  std::vector<std::thread> pool;
  std::vector<int> here = {0};
  for (int slot = 1; slot < slots; ++slot) {
    try {
      pool.emplace_back(job, slot);
    } catch (const std::system_error &) {
      here.push_back(slot);
    }
  }
  for (int slot : here)
    job(slot);
  for (std::thread &t : pool)
    t.join();
}

/// Runs of at least this many bytes are copied inside the kernel (copy_file_range); shorter ones (a row's
/// band of a row split, norms, biases) gather in the writer's buffer, one syscall per 4 MiB, where one
/// copy_file_range each would cost more than it saves.
std::atomic<std::size_t> g_kernel_copy_min{256u << 10};

void set_kernel_copy_min_bytes(std::size_t nbytes) { g_kernel_copy_min = nbytes; }

/// Appends TP rank `rank`'s local tensor of `p` to its file, run by run (for_each_shard_run walks a
/// local tensor in order): a contiguous run of the checkpoint (a replicated tensor, a split along dim 0)
/// is copied file to file by the kernel, shorter runs go from the checkpoint's mapping to the writer.
/// A row split of several boxes, whose column bands interleave row by row, is assembled in `local`.
static Status write_shard(const ParamPlan &p, const SafetensorsFile &file, const TensorInfo &t, int rank,
                          SafetensorsWriter &w, std::vector<std::byte> &local) {
  const std::uint64_t base = file.data_offset() + t.data_begin;
  const std::size_t kernel_min = g_kernel_copy_min;
  if (p.split == Split::Replicate)
    return t.nbytes() >= kernel_min ? w.copy(p.name, file.fd(), file.path(), base, t.nbytes())
                                    : w.write(p.name, t.data, t.nbytes());
  if (p.concat_dim == 1 && p.ranks[rank].count > 1) {
    local.resize(local_nbytes(p, rank));
    shard_copy(p, rank, t.data, local.data());
    return w.write(p.name, local.data(), local.size());
  }
  Status s;
  for_each_shard_run(p, rank, [&](std::size_t full_off, std::size_t, std::size_t n) {
    if (s.ok())
      s = n >= kernel_min ? w.copy(p.name, file.fd(), file.path(), base + full_off, n)
                          : w.write(p.name, t.data + full_off, n);
  });
  return s;
}

Status shard_checkpoint(const ModelPlan &plan, const std::string &hf_checkpoint, const std::string &out_dir) {
  Result<Checkpoint> opened = Checkpoint::open(hf_checkpoint);
  ATP_TRY(opened);
  const Checkpoint &ckpt = *opened;
  ATP_TRY(check_tensors(plan, ckpt));
  if (!is_dir(out_dir) && ::mkdir(out_dir.c_str(), 0777) != 0)
    return error(out_dir + ": cannot create the folder: " + std::strerror(errno));

  std::vector<SafetensorsWriter> writers;
  for (int r = 0; r < plan.tp_size; ++r) {
    std::vector<TensorDecl> decls;
    for (int i = 0; i < plan.num_params; ++i)
      decls.push_back({plan.params[i].name, plan.params[i].dtype, local_shape(plan.params[i], r)});
    std::map<std::string, std::string> meta = {{kFingerprintKey, plan.fingerprint},
                                               {"tp_rank", std::to_string(r)},
                                               {"tp_size", std::to_string(plan.tp_size)}};
    Result<SafetensorsWriter> w = SafetensorsWriter::create(join(out_dir, shard_file_name(r, plan.tp_size)),
                                                            std::move(decls), meta);
    ATP_TRY(w);
    writers.push_back(std::move(*w));
  }
  // Ranks are independent files: threads (at most one per core) write their shares of a parameter side by
  // side, so that copying into the page cache uses every core, then finish (fsync) their files side by side.
  // Parameter by parameter, so that each one's pages are read from disk once, for every rank.
  const int threads = std::max(1, std::min(plan.tp_size, int(std::thread::hardware_concurrency())));
  std::vector<Status> status(std::size_t(plan.tp_size));
  std::vector<std::vector<std::byte>> locals(static_cast<std::size_t>(threads));
  for (int i = 0; i < plan.num_params; ++i) {
    const TensorInfo &t = *ckpt.find(plan.params[i].name);
    const SafetensorsFile &file = *ckpt.file_of(plan.params[i].name);
    run_slots(threads, [&](int slot) {
      for (int r = slot; r < plan.tp_size; r += threads)
        status[std::size_t(r)] =
            write_shard(plan.params[i], file, t, r, writers[std::size_t(r)], locals[std::size_t(slot)]);
    });
    for (const Status &st : status)
      ATP_TRY(st);
  }
  run_slots(threads, [&](int slot) {
    for (int r = slot; r < plan.tp_size; r += threads)
      status[std::size_t(r)] = writers[std::size_t(r)].finish();
  });
  for (const Status &st : status)
    ATP_TRY(st);
  // Publish only once every file is complete.
  for (SafetensorsWriter &w : writers)
    ATP_TRY(w.publish());
  return Status();
}

// ---- consolidate -----------------------------------------------------------

Status consolidate_checkpoint(const ModelPlan &plan, const std::string &shards_dir, const std::string &out,
                              std::uint64_t max_shard_bytes) {
  std::vector<SafetensorsFile> shards;
  for (int r = 0; r < plan.tp_size; ++r) {
    std::string path = join(shards_dir, shard_file_name(r, plan.tp_size));
    Result<SafetensorsFile> f = SafetensorsFile::open(path);
    ATP_TRY(f);
    auto it = f->metadata().find(kFingerprintKey);
    std::string found = it == f->metadata().end() ? "none" : it->second;
    if (found != plan.fingerprint)
      return error(path + ": shard of another plan (fingerprint " + found + ", this tool's plan is " +
                   plan.fingerprint + "); consolidate it with the tool generated for its config");
    auto rank = f->metadata().find("tp_rank");
    if (rank == f->metadata().end() || rank->second != std::to_string(r))
      return error(path + ": its metadata do not say tp_rank " + std::to_string(r));
    for (int i = 0; i < plan.num_params; ++i) {
      const TensorInfo *t = f->find(plan.params[i].name);
      if (!t || t->shape != local_shape(plan.params[i], r) || t->dtype != plan.params[i].dtype)
        return error(path + ": tensor '" + plan.params[i].name + "' is missing or shaped unlike the plan");
    }
    shards.push_back(std::move(*f));
  }
  std::vector<TensorDecl> decls;
  for (int i = 0; i < plan.num_params; ++i)
    decls.push_back({plan.params[i].name, plan.params[i].dtype, full_shape(plan.params[i])});

  const bool single = out.size() > 12 && out.compare(out.size() - 12, 12, ".safetensors") == 0;
  SafetensorsWriter one;
  ShardedSafetensorsWriter many;
  if (single) {
    Result<SafetensorsWriter> w = SafetensorsWriter::create(out, decls);
    ATP_TRY(w);
    one = std::move(*w);
  } else {
    if (!is_dir(out) && ::mkdir(out.c_str(), 0777) != 0)
      return error(out + ": cannot create the folder: " + std::strerror(errno));
    ShardOptions opts;
    opts.max_shard_bytes = max_shard_bytes;
    Result<ShardedSafetensorsWriter> w = ShardedSafetensorsWriter::create(out, decls, {}, opts);
    ATP_TRY(w);
    many = std::move(*w);
  }
  std::vector<std::byte> full;
  for (int i = 0; i < plan.num_params; ++i) {
    const ParamPlan &p = plan.params[i];
    const std::byte *src = nullptr;
    std::size_t n = 0;
    if (p.split == Split::Replicate) {
      const TensorInfo *t = shards[0].find(p.name);
      src = t->data;
      n = t->nbytes();
    } else {
      full.assign(std::size_t(p.rows) * std::size_t(p.cols) * dtype_size(p.dtype), std::byte{0});
      for (int r = 0; r < plan.tp_size; ++r)
        gather_copy(p, r, shards[r].find(p.name)->data, full.data());
      src = full.data();
      n = full.size();
    }
    ATP_TRY(single ? one.write(p.name, src, n) : many.write(p.name, src, n));
  }
  return single ? one.commit() : many.commit();
}

// ---- load ------------------------------------------------------------------

Result<std::vector<HostTensor>> load_sharded(const ModelPlan &plan, int tp_rank, const std::string &hf_checkpoint) {
  if (tp_rank < 0 || tp_rank >= plan.tp_size)
    return error("load_sharded: TP rank " + std::to_string(tp_rank) + " is outside the plan's tp_size " +
                 std::to_string(plan.tp_size));
  Result<Checkpoint> opened = Checkpoint::open(hf_checkpoint);
  ATP_TRY(opened);
  const Checkpoint &ckpt = *opened;
  ATP_TRY(check_tensors(plan, ckpt));
  std::vector<HostTensor> out;
  for (int i = 0; i < plan.num_params; ++i) {
    const ParamPlan &p = plan.params[i];
    Result<HostTensor> t = HostTensor::zeros(p.dtype, local_shape(p, tp_rank));
    ATP_TRY(t);
    std::byte *dst = t->data();
    // The walk of shard_copy, with a pread of each run instead of a memcpy.
    Status read;
    for_each_shard_run(p, tp_rank, [&](std::size_t full_off, std::size_t local_off, std::size_t n) {
      if (read.ok())
        read = ckpt.read_range(p.name, full_off, n, dst + local_off);
    });
    ATP_TRY(read);
    out.push_back(std::move(*t));
  }
  return out;
}

// ---- command lines ---------------------------------------------------------

int shard_main(const ModelPlan &plan, int argc, char **argv) {
  std::string in = arg(argc, argv, "--in"), out = arg(argc, argv, "--out");
  if (in.empty() || out.empty()) {
    std::fprintf(stderr, "usage: %s --in HF_CHECKPOINT --out SHARDS_DIR\n", argv[0]);
    return 2;
  }
  Status s = shard_checkpoint(plan, in, out);
  if (!s.ok()) {
    std::fprintf(stderr, "shard: error: %s\n", s.message().c_str()); // names the file read
    return 1;
  }
  // A folder may hold more than the model; say which file was the model.
  if (Result<std::string> file = checkpoint_file(in); file.ok() && *file != in)
    std::printf("shard: read %s\n", file->c_str());
  std::printf("shard: wrote %d files (tp_size %d, %d parameters, plan %s) to %s\n", plan.tp_size, plan.tp_size,
              plan.num_params, plan.fingerprint, out.c_str());
  return 0;
}

int consolidate_main(const ModelPlan &plan, int argc, char **argv) {
  std::string in = arg(argc, argv, "--in"), out = arg(argc, argv, "--out"),
              max = arg(argc, argv, "--max-shard-bytes");
  if (in.empty() || out.empty()) {
    std::fprintf(stderr, "usage: %s --in SHARDS_DIR --out HF_CHECKPOINT [--max-shard-bytes N]\n", argv[0]);
    return 2;
  }
  std::uint64_t bound = max.empty() ? 5000000000ull : std::strtoull(max.c_str(), nullptr, 10);
  if (bound == 0) {
    std::fprintf(stderr, "consolidate: error: --max-shard-bytes must be a positive number\n");
    return 2;
  }
  Status s = consolidate_checkpoint(plan, in, out, bound);
  if (!s.ok()) {
    std::fprintf(stderr, "consolidate: error: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("consolidate: wrote %s (%d parameters)\n", out.c_str(), plan.num_params);
  return 0;
}

} // namespace atp

namespace atp {

Result<std::vector<HostTensor>> load_sharded_any_float(const ModelPlan &plan, int tp_rank,
                                                       const std::string &hf_checkpoint) {
  ATP_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::open(hf_checkpoint));
  std::vector<ParamPlan> retyped(plan.params, plan.params + plan.num_params);
  auto is_float = [](DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; };
  for (ParamPlan &p : retyped) // the same boxes over the stored element size
    if (const TensorInfo *t = ckpt.find(p.name); t && t->dtype != p.dtype && is_float(t->dtype) && is_float(p.dtype))
      p.dtype = t->dtype;
  ModelPlan as_stored = plan;
  as_stored.params = retyped.data();
  return load_sharded(as_stored, tp_rank, hf_checkpoint);
}

} // namespace atp
