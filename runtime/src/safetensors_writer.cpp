/* Streaming safetensors writers: one file, and sharded checkpoints.

   SafetensorsWriter keeps a cursor (current tensor, bytes written of it)
   and refuses anything that would not leave the file exactly as its header
   says. ShardedSafetensorsWriter routes each tensor to its planned shard,
   opening shards as the stream reaches them and finishing (not publishing)
   each one it leaves; commit() publishes them all and the index last. */
#include "atp/safetensors_writer.h"

#include "atp/safetensors.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <set>
#include <utility>

namespace atp {

// ---------------------------------------------------------------- header

namespace {

using json = nlohmann::json;

/// Whether `s` is valid UTF-8, which a JSON string must be.
bool valid_utf8(std::string_view s) {
  try {
    (void)json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::strict);
    return true;
  } catch (const json::type_error &) {
    return false;
  }
}

/// Appends `s` (valid UTF-8) as a JSON string literal as serde_json writes
/// it: '"' and '\\' escaped, \b \t \n \f \r by name, other bytes below 0x20
/// as \u00xx, everything else as it is.
void append_json_string(std::string &out, std::string_view s) {
  out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

Status check_decls(const std::vector<TensorDecl> &tensors,
                   std::vector<std::uint64_t> *sizes) {
  std::set<std::string> seen;
  std::uint64_t total = 0;
  for (const TensorDecl &t : tensors) {
    if (t.name == "__metadata__")
      return error("tensor name '__metadata__' is reserved for the metadata");
    if (!seen.insert(t.name).second)
      return error("tensor " + quote(t.name) + " is declared twice");
    if (!valid_utf8(t.name))
      return error("tensor name " + quote(t.name) + " is not valid UTF-8");
    std::optional<std::uint64_t> n = tensor_nbytes(t.dtype, t.shape);
    if (!n)
      return error("tensor " + quote(t.name) + ": shape " + shape_string(t.shape) +
                   " of " + dtype_name(t.dtype) +
                   " has a negative dimension or more than 2^63 bytes");
    if (*n > (std::uint64_t(1) << 63) - total)
      return error("tensor " + quote(t.name) + ": the tensors add up to more than 2^63 bytes");
    total += *n;
    if (sizes)
      sizes->push_back(*n);
  }
  return Status();
}

void append_entry(std::string &out, const TensorDecl &t, std::uint64_t begin,
                  std::uint64_t end) {
  append_json_string(out, t.name);
  out += ":{\"dtype\":\"";
  out += dtype_name(t.dtype);
  out += "\",\"shape\":[";
  for (std::size_t i = 0; i < t.shape.size(); ++i)
    out += (i ? "," : "") + std::to_string(t.shape[i]);
  out += "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

} // namespace

Result<std::string> safetensors_header_bytes(
    const std::vector<TensorDecl> &tensors,
    const std::map<std::string, std::string> &metadata) {
  std::vector<std::uint64_t> sizes;
  ATP_TRY(check_decls(tensors, &sizes));
  for (const auto &[k, v] : metadata)
    if (!valid_utf8(k) || !valid_utf8(v))
      return error("metadata " + quote(k) + " is not valid UTF-8");
  std::string json = "{";
  bool first = true;
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    for (const auto &[k, v] : metadata) {
      if (!first)
        json += ',';
      first = false;
      append_json_string(json, k);
      json += ':';
      append_json_string(json, v);
    }
    json += '}';
  }
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!metadata.empty() || i > 0)
      json += ',';
    append_entry(json, tensors[i], offset, offset + sizes[i]);
    offset += sizes[i];
  }
  json += '}';
  json.append((8 - json.size() % 8) % 8, ' ');
  if (json.size() > kMaxSafetensorsHeaderSize)
    return error("the header would be " + std::to_string(json.size()) +
                 " bytes, more than the safetensors limit of " +
                 std::to_string(kMaxSafetensorsHeaderSize));
  std::string bytes(8, '\0');
  std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i)
    bytes[std::size_t(i)] = char((n >> (8 * i)) & 0xFF);
  return bytes + json;
}

// ---------------------------------------------------------------- one file

Result<SafetensorsWriter> SafetensorsWriter::create(
    const std::string &path, std::vector<TensorDecl> tensors,
    const std::map<std::string, std::string> &metadata) {
  SafetensorsWriter w;
  Result<std::string> header = safetensors_header_bytes(tensors, metadata);
  if (!header.ok())
    return header.status().with_context(path);
  ATP_TRY(check_decls(tensors, &w.sizes_));
  for (std::uint64_t n : w.sizes_)
    w.data_size_ += n;
  w.header_size_ = header->size();
  for (std::size_t i = 0; i < tensors.size(); ++i)
    w.index_of_[tensors[i].name] = i;
  w.tensors_ = std::move(tensors);
  ATP_ASSIGN_OR_RETURN(w.file_, AtomicFile::create(path));
  ATP_TRY(w.file_.write(header->data(), header->size()));
  return w;
}

Status SafetensorsWriter::advance(std::string_view name, std::uint64_t nbytes) {
  auto it = index_of_.find(name);
  if (it == index_of_.end())
    return error(path() + ": tensor " + quote(name) + " is not declared");
  if (it->second < current_)
    return error(path() + ": tensor " + quote(name) +
                 " was written already (tensors go in declared order)");
  // Move past complete tensors until `name` (or an incomplete one).
  while (current_ < tensors_.size() && tensors_[current_].name != name &&
         written_ == sizes_[current_]) {
    ++current_;
    written_ = 0;
  }
  const TensorDecl &t = tensors_[current_];
  if (t.name != name)
    return error(path() + ": tensor " + quote(name) + " written while " + quote(t.name) +
                 " is next (" + std::to_string(written_) + " of its " +
                 std::to_string(sizes_[current_]) + " bytes written)");
  if (nbytes > sizes_[current_] - written_)
    return error(path() + ": tensor " + quote(name) + ": writing " +
                 std::to_string(nbytes) + " bytes after " + std::to_string(written_) +
                 " goes past its " + std::to_string(sizes_[current_]) + " bytes");
  return Status();
}

Status SafetensorsWriter::write(std::string_view name, const void *data,
                                std::size_t nbytes) {
  ATP_TRY(advance(name, nbytes));
  if (nbytes == 0)
    return Status();
  ATP_TRY(file_.write(data, nbytes));
  written_ += nbytes;
  return Status();
}

Status SafetensorsWriter::copy(std::string_view name, int src_fd, const std::string &src_name,
                               std::uint64_t src_offset, std::uint64_t nbytes) {
  ATP_TRY(advance(name, nbytes));
  if (nbytes == 0)
    return Status();
  ATP_TRY(file_.copy_from(src_fd, src_name, src_offset, nbytes));
  written_ += nbytes;
  return Status();
}

Status SafetensorsWriter::finish() {
  for (std::size_t i = current_; i < tensors_.size(); ++i) {
    std::uint64_t done = i == current_ ? written_ : 0;
    if (done != sizes_[i])
      return error(path() + ": tensor " + quote(tensors_[i].name) + ": " +
                   std::to_string(done) + " of its " + std::to_string(sizes_[i]) +
                   " bytes written");
  }
  return file_.finish();
}

Status SafetensorsWriter::commit() {
  ATP_TRY(finish());
  return publish();
}

// ---------------------------------------------------------------- sharded

std::vector<std::size_t> plan_shards(const std::vector<TensorDecl> &tensors,
                                     std::uint64_t max_shard_bytes) {
  std::vector<std::size_t> shard_of;
  std::size_t shard = 0;
  std::uint64_t filled = 0;
  bool empty = true;
  for (const TensorDecl &t : tensors) {
    std::uint64_t n = tensor_nbytes(t.dtype, t.shape).value_or(0);
    if (!empty && (n > max_shard_bytes || filled + n > max_shard_bytes)) {
      ++shard;
      filled = 0;
      empty = true;
    }
    shard_of.push_back(shard);
    filled += n;
    empty = false;
    if (n > max_shard_bytes) { // alone in its shard
      ++shard;
      filled = 0;
      empty = true;
    }
  }
  return shard_of;
}

std::string safetensors_index_json(const std::vector<TensorDecl> &tensors,
                                   const std::vector<std::string> &shard_of_tensor,
                                   std::uint64_t total_size,
                                   const std::map<std::string, std::string> &extra) {
  // Python's json.dumps(index, indent=2, sort_keys=True) + "\n": nlohmann's
  // objects keep their keys sorted by bytes, which for UTF-8 is by code
  // point as Python sorts, and ensure_ascii escapes as Python does.
  json meta = json::object();
  for (const auto &[k, v] : extra)
    meta[k] = v;
  meta["total_size"] = total_size;
  json weights = json::object();
  for (std::size_t i = 0; i < tensors.size(); ++i)
    weights[tensors[i].name] = shard_of_tensor[i];
  json index = {{"metadata", std::move(meta)}, {"weight_map", std::move(weights)}};
  return index.dump(2, ' ', true, json::error_handler_t::replace) + "\n";
}

Result<ShardedSafetensorsWriter> ShardedSafetensorsWriter::create(
    const std::string &folder, std::vector<TensorDecl> tensors,
    const std::map<std::string, std::string> &metadata, ShardOptions options) {
  Status ok = check_decls(tensors, nullptr);
  if (!ok.ok())
    return ok.with_context(folder);
  if (options.max_shard_bytes == 0)
    return error(folder + ": the shard size bound must be at least 1 byte");
  if (options.prefix.empty() || options.prefix.find('/') != std::string::npos)
    return error(folder + ": file name prefix " + quote(options.prefix) +
                 " must be a non-empty name without '/'");
  ShardedSafetensorsWriter w;
  w.folder_ = folder;
  w.metadata_ = metadata;
  w.shard_of_ = plan_shards(tensors, options.max_shard_bytes);
  std::size_t nshards = w.shard_of_.empty() ? 1 : w.shard_of_.back() + 1;
  for (std::size_t s = 0; s < nshards; ++s) {
    if (nshards == 1 && options.single_file_if_fits) {
      w.shard_names_.push_back(options.prefix + ".safetensors");
      break;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", s + 1, nshards);
    w.shard_names_.push_back(options.prefix + buf);
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    w.index_of_[tensors[i].name] = i;
    w.total_size_ += tensor_nbytes(tensors[i].dtype, tensors[i].shape).value_or(0);
  }
  w.tensors_ = std::move(tensors);
  w.options_ = std::move(options);
  // Check up front that the folder takes files, rather than after the
  // caller has produced the first shard's bytes.
  ATP_TRY(w.open_shard(0));
  return w;
}

Status ShardedSafetensorsWriter::open_shard(std::size_t shard) {
  std::vector<TensorDecl> decls;
  for (std::size_t i = 0; i < tensors_.size(); ++i)
    if (shard_of_[i] == shard)
      decls.push_back(tensors_[i]);
  ATP_ASSIGN_OR_RETURN(SafetensorsWriter w,
                       SafetensorsWriter::create(join_path(folder_, shard_names_[shard]),
                                                 std::move(decls), metadata_));
  shards_.push_back(std::move(w));
  return Status();
}

Status ShardedSafetensorsWriter::write(std::string_view name, const void *data,
                                       std::size_t nbytes) {
  auto it = index_of_.find(name);
  if (it == index_of_.end())
    return error(folder_ + ": tensor " + quote(name) + " is not declared");
  std::size_t shard = shard_of_[it->second];
  if (shard + 1 < shards_.size())
    return error(folder_ + ": tensor " + quote(name) + " written after the tensors after it");
  while (shards_.size() <= shard) {
    ATP_TRY(shards_.back().finish());
    ATP_TRY(open_shard(shards_.size()));
  }
  return shards_[shard].write(name, data, nbytes);
}

Status ShardedSafetensorsWriter::commit() {
  while (shards_.size() < shard_names_.size()) {
    ATP_TRY(shards_.back().finish());
    ATP_TRY(open_shard(shards_.size()));
  }
  ATP_TRY(shards_.back().finish());

  bool indexed = !(shard_names_.size() == 1 && options_.single_file_if_fits);
  AtomicFile index;
  if (indexed) {
    std::vector<std::string> shard_of_tensor;
    for (std::size_t s : shard_of_)
      shard_of_tensor.push_back(shard_names_[s]);
    std::string text = safetensors_index_json(tensors_, shard_of_tensor, total_size_,
                                              options_.index_metadata);
    ATP_ASSIGN_OR_RETURN(index, AtomicFile::create(join_path(
                                    folder_, options_.prefix + ".safetensors.index.json")));
    ATP_TRY(index.write(text.data(), text.size()));
    ATP_TRY(index.finish());
  }
  // Everything is on disk under temporary names; now the renames, the
  // index last, so that a reader never finds an index whose shards are
  // missing. If one fails, take back the ones already done.
  std::vector<std::string> done;
  Status st;
  for (SafetensorsWriter &shard : shards_) {
    st = shard.publish();
    if (!st.ok())
      break;
    done.push_back(shard.path());
  }
  if (st.ok() && indexed)
    st = index.publish();
  if (!st.ok())
    for (const std::string &p : done)
      ::unlink(p.c_str());
  return st;
}

std::vector<std::string> ShardedSafetensorsWriter::paths() const {
  std::vector<std::string> out;
  for (const std::string &n : shard_names_)
    out.push_back(join_path(folder_, n));
  if (!(shard_names_.size() == 1 && options_.single_file_if_fits))
    out.push_back(join_path(folder_, options_.prefix + ".safetensors.index.json"));
  return out;
}

} // namespace atp
