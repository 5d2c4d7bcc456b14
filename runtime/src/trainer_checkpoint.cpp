/* trainer_checkpoint.cpp - Trainer::save / resume: exact-resume checkpoints (layout in trainer.h).

   Order of a save: global rank 0 creates the folder; every rank writes its own safetensors file
   atomically and checksums it; the sizes and checksums are gathered on global rank 0, which writes
   trainer.json last (atomically), itself protected by a checksum of its other fields. So a folder with a
   trainer.json is a complete checkpoint; a crash before that leaves one that resume calls incomplete.

   A resume reads trainer.json on every rank, checks it against this trainer (plan fingerprint, layout,
   batch, sequence), checks the size and checksum of the files the rank reads (its own, and its TP rank's DP
   rank 0 file for the working weights), and only then copies the tensors in. All ranks agree before
   returning, so either every rank resumed or every rank fails. */
#include "atp/safetensors.h"
#include "atp/safetensors_writer.h"

#include "trainer_state.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace atp {

namespace {

constexpr int kVersion = 1;
constexpr const char *kFormat = "autotpc-checkpoint";

std::string two_digits(int v) {
  char b[16];
  std::snprintf(b, sizeof b, "%02d", v);
  return b;
}

std::string rank_file(int tp_rank, int dp_rank) {
  return "rank_tp" + two_digits(tp_rank) + "_dp" + two_digits(dp_rank) + ".safetensors";
}

std::string hex(std::uint64_t v) {
  char b[20];
  std::snprintf(b, sizeof b, "%016llx", (unsigned long long)v);
  return b;
}

/// FNV-1a over 64-bit words (and the tail bytes), then a final mix: fast, and any flipped bit changes it.
struct Checksum {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const unsigned char *p, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    for (; i < n; ++i)
      h = (h ^ p[i]) * 0x100000001b3ull;
  }
  std::uint64_t done(std::uint64_t length) const {
    std::uint64_t z = h ^ length;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

std::string json_checksum(const nlohmann::json &body) {
  const std::string text = body.dump();
  Checksum c;
  c.add(reinterpret_cast<const unsigned char *>(text.data()), text.size());
  return hex(c.done(text.size()));
}

Result<nlohmann::json> read_manifest(const std::string &folder) {
  const std::string path = join_path(folder, "trainer.json");
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return error("checkpoint " + quote(folder) + " has no trainer.json: it is incomplete (its save did not finish) "
                 "or not a checkpoint");
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;)
    text.append(buf, n);
  std::fclose(f);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("checksum") || !j["checksum"].is_string())
    return error("checkpoint " + quote(path) + " is corrupt: it is not the JSON object a save writes");
  const std::string recorded = j["checksum"];
  j.erase("checksum");
  if (json_checksum(j) != recorded)
    return error("checkpoint " + quote(path) + " is corrupt: its contents do not match its checksum " + recorded);
  if (j.value("format", "") != kFormat || j.value("version", 0) != kVersion)
    return error("checkpoint " + quote(path) + " is not an autotpc checkpoint of version " + std::to_string(kVersion));
  return j;
}

} // namespace

Result<std::uint64_t> file_checksum(const std::string &path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return error("cannot open " + quote(path) + ": " + std::strerror(errno));
  Checksum c;
  std::vector<unsigned char> buf(std::size_t(1) << 22);
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return error("cannot read " + quote(path) + ": " + std::strerror(err));
    }
    if (n == 0)
      break;
    c.add(buf.data(), std::size_t(n)); // 4 MiB reads: a multiple of 8, so the words line up across reads
    total += std::uint64_t(n);
  }
  ::close(fd);
  return c.done(total);
}

Result<std::string> find_checkpoint(const std::string &path) {
  struct stat st {};
  if (::stat(join_path(path, "trainer.json").c_str(), &st) == 0)
    return path;
  std::FILE *f = std::fopen(join_path(path, "latest").c_str(), "rb");
  if (!f)
    return error("no checkpoint at " + quote(path) + ": it holds neither trainer.json nor a 'latest' file "
                 "(an incomplete checkpoint, or the wrong folder)");
  char name[256] = {};
  const std::size_t n = std::fread(name, 1, sizeof name - 1, f);
  std::fclose(f);
  std::string step(name, n);
  while (!step.empty() && (step.back() == '\n' || step.back() == ' '))
    step.pop_back();
  if (step.empty() || step.find('/') != std::string::npos)
    return error(quote(join_path(path, "latest")) + " does not name a checkpoint folder");
  return join_path(path, step);
}

Status write_latest(const std::string &save_dir, const std::string &step_folder) {
  ATP_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(join_path(save_dir, "latest")));
  const std::string line = step_folder + "\n";
  ATP_TRY(f.write(line.data(), line.size()));
  return f.commit();
}

Status Trainer::save(const std::string &folder) {
  State &s = *s_;
  const TrainComms &c = s.comms;
  ATP_TRY(s.agree(c.world_rank == 0 ? make_folder(folder) : Status{}, "train: checkpoint"));
  const std::string mine = rank_file(c.tp_rank, c.dp_rank);
  std::uint64_t sum[2] = {0, 0}; // bytes, checksum
  Status wrote = [&]() -> Status {
    ATP_ASSIGN_OR_RETURN(std::vector<StateBuffer> buffers, s.engine->state_buffers());
    std::vector<TensorDecl> decls;
    for (const StateBuffer &b : buffers)
      if (c.dp_rank == 0 || std::string(b.name) != "params")
        decls.push_back({b.name, b.dtype, {b.numel}});
    std::map<std::string, std::string> meta{{"format", kFormat},
                                            {"fingerprint", s.model.plan.fingerprint},
                                            {"tp_rank", std::to_string(c.tp_rank)},
                                            {"dp_rank", std::to_string(c.dp_rank)}};
    const std::string path = join_path(folder, mine);
    ATP_ASSIGN_OR_RETURN(SafetensorsWriter w, SafetensorsWriter::create(path, decls, meta));
    std::vector<std::byte> host;
    for (const StateBuffer &b : buffers) {
      if (c.dp_rank != 0 && std::string(b.name) == "params")
        continue;
      host.resize(std::size_t(b.numel) * dtype_size(b.dtype));
      ATP_TRY(s.ops.copy_to_host(host.data(), b.data, host.size()));
      ATP_TRY(w.write(b.name, host.data(), host.size()));
    }
    ATP_TRY(w.commit());
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return error("train: checkpoint file " + quote(path) + " vanished after writing");
    sum[0] = std::uint64_t(st.st_size);
    ATP_ASSIGN_OR_RETURN(sum[1], file_checksum(path));
    return {};
  }();
  ATP_TRY(s.agree(wrote, "train: checkpoint"));
  std::vector<std::uint64_t> all(std::size_t(c.world.size()) * 2);
  ATP_TRY(c.world.all_gather(sum, all.data(), 2, DType::U64));
  Status manifest;
  if (c.world_rank == 0) {
    manifest = [&]() -> Status {
      const EngineCounters k = s.engine->counters();
      nlohmann::json j;
      j["format"] = kFormat;
      j["version"] = kVersion;
      j["fingerprint"] = s.model.plan.fingerprint;
      j["tp_size"] = c.tp.size();
      j["dp_size"] = c.dp.size();
      j["stage"] = s.zero.stage;
      j["precision"] = dtype_name(s.engine->dtype());
      j["micro_batch"] = s.batch.micro_batch;
      j["gradient_accumulation_steps"] = s.batch.grad_accum;
      j["seq"] = s.options.seq;
      j["step"] = s.steps;
      j["optimizer_steps"] = k.steps;
      j["loss_scaler"] = {{"scale", k.scaler.scale},
                          {"cur_hysteresis", k.scaler.cur_hysteresis},
                          {"iter", k.scaler.iter},
                          {"last_overflow_iter", k.scaler.last_overflow_iter}};
      if (!s.train)
        return error("train: a checkpoint needs the training data's position, and this trainer has no data");
      const auto words = s.train->position().to_words();
      j["data"] = {{"name", s.train->name()}, {"position", std::vector<std::uint64_t>(words.begin(), words.end())}};
      nlohmann::json files = nlohmann::json::object();
      // world rank w is TP rank w % tp, DP rank w / tp (world.h's mesh)
      for (int w = 0; w < c.world.size(); ++w)
        files[rank_file(w % c.tp.size(), w / c.tp.size())] = {{"bytes", all[std::size_t(w) * 2]},
                                                               {"checksum", hex(all[std::size_t(w) * 2 + 1])}};
      j["files"] = files;
      j["checksum"] = json_checksum(j);
      const std::string text = j.dump(2) + "\n";
      ATP_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(join_path(folder, "trainer.json")));
      ATP_TRY(f.write(text.data(), text.size()));
      return f.commit();
    }();
  }
  return s.agree(manifest, "train: checkpoint");
}

Status Trainer::resume(const std::string &path) {
  State &s = *s_;
  const TrainComms &c = s.comms;
  EngineCounters counters;
  DataPosition position;
  std::int64_t steps = 0;
  Status loaded = [&]() -> Status {
    ATP_ASSIGN_OR_RETURN(const std::string folder, find_checkpoint(path));
    ATP_ASSIGN_OR_RETURN(const nlohmann::json j, read_manifest(folder));
    const std::string where = "checkpoint " + quote(folder);
    try {
      const std::string fp = j.at("fingerprint");
      if (fp != s.model.plan.fingerprint)
        return error(where + " belongs to another plan: it was written for plan " + fp + ", this trainer's plan is " +
                     s.model.plan.fingerprint + " (another model, TP size or layer specs)");
      const std::pair<const char *, std::int64_t> layout[] = {
          {"tp_size", c.tp.size()},         {"dp_size", c.dp.size()},
          {"stage", s.zero.stage},          {"micro_batch", s.batch.micro_batch},
          {"gradient_accumulation_steps", s.batch.grad_accum}, {"seq", s.options.seq}};
      for (const auto &[key, now] : layout)
        if (j.at(key).get<std::int64_t>() != now)
          return error(where + " was written with " + key + " " + std::to_string(j.at(key).get<std::int64_t>()) +
                       ", this run has " + std::to_string(now) + ": resume with the layout it was saved with");
      if (j.at("precision").get<std::string>() != dtype_name(s.engine->dtype()))
        return error(where + " was written in " + j.at("precision").get<std::string>() + ", this run trains in " +
                     dtype_name(s.engine->dtype()));
      steps = j.at("step");
      counters.steps = j.at("optimizer_steps");
      const nlohmann::json &ls = j.at("loss_scaler");
      counters.scaler = {ls.at("scale"), ls.at("cur_hysteresis"), ls.at("iter"), ls.at("last_overflow_iter")};
      const std::vector<std::uint64_t> words = j.at("data").at("position");
      if (words.size() != DataPosition::kWords)
        return error(where + " has a data position of " + std::to_string(words.size()) + " numbers");
      std::array<std::uint64_t, DataPosition::kWords> w{};
      std::copy(words.begin(), words.end(), w.begin());
      position = DataPosition::from_words(w);
      // the files this rank reads: checked whole before anything is copied in
      const std::string own = rank_file(c.tp_rank, c.dp_rank), weights = rank_file(c.tp_rank, 0);
      for (const std::string &name : {own, weights}) {
        const std::string file = join_path(folder, name);
        if (!j.at("files").contains(name))
          return error(where + " lists no file " + name);
        const nlohmann::json &rec = j.at("files").at(name);
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0)
          return error(where + " is missing " + name);
        if (std::uint64_t(st.st_size) != rec.at("bytes").get<std::uint64_t>())
          return error("checkpoint file " + quote(file) + " is corrupt: it has " + std::to_string(st.st_size) +
                       " bytes, trainer.json records " + std::to_string(rec.at("bytes").get<std::uint64_t>()));
        ATP_ASSIGN_OR_RETURN(const std::uint64_t sum, file_checksum(file));
        if (hex(sum) != rec.at("checksum").get<std::string>())
          return error("checkpoint file " + quote(file) + " is corrupt: its checksum is " + hex(sum) +
                       ", trainer.json records " + rec.at("checksum").get<std::string>());
      }
      ATP_ASSIGN_OR_RETURN(std::vector<StateBuffer> buffers, s.engine->state_buffers());
      ATP_ASSIGN_OR_RETURN(SafetensorsFile mine, SafetensorsFile::open(join_path(folder, own)));
      ATP_ASSIGN_OR_RETURN(SafetensorsFile first, SafetensorsFile::open(join_path(folder, weights)));
      for (const StateBuffer &b : buffers) {
        const SafetensorsFile &f = std::string(b.name) == "params" ? first : mine;
        const TensorInfo *t = f.find(b.name);
        const std::uint64_t bytes = std::uint64_t(b.numel) * dtype_size(b.dtype);
        if (!t || t->dtype != b.dtype || t->nbytes() != bytes)
          return error("checkpoint file " + quote(f.path()) + " has no " + dtype_name(b.dtype) + " tensor " +
                       quote(b.name) + " of " + std::to_string(b.numel) + " elements");
        std::vector<std::byte> host(bytes);
        ATP_TRY(f.read_range(b.name, 0, host.size(), host.data()));
        ATP_TRY(s.ops.copy_from_host(b.data, host.data(), host.size()));
      }
    } catch (const nlohmann::json::exception &e) {
      return error(where + ": trainer.json lacks a field or has one of the wrong type (" + e.what() + ")");
    }
    if (!s.train) // generation: the data position does not matter
      return {};
    return s.train->restore(position).with_context(
        where + " (resume with the data options it was saved with: --data, --data-seed, --no-shuffle, --eval-fraction)");
  }();
  ATP_TRY(s.agree(loaded, "train: resume"));
  ATP_TRY(s.engine->restore(counters));
  s.steps = steps;
  return {};
}

} // namespace atp
