/* Checkpoint: a single .safetensors file, a sharded index, or a folder.

   A folder is read as transformers' from_pretrained reads it: its
   model.safetensors, else its model.safetensors.index.json. Other
   .safetensors files there (an adapter, optimizer state, a reference dump)
   are not part of the model and are left alone.

   The index (transformers' model.safetensors.index.json) is
   {"metadata": {...}, "weight_map": {tensor: shard file name}}; its rules
   (atp/safetensors_header.h, shared with the compiler) make shard names
   relative to the index's folder, never absolute or through "..". Each
   shard is opened once; the index and the shards must agree exactly on
   which tensor is where. */
#include "atp/safetensors.h"

#include "atp/atomic_file.h"
#include "atp/safetensors_header.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace atp {

namespace {

/// Largest index.json read whole.
constexpr std::uint64_t kMaxIndexSize = 256u << 20;

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<std::string> read_small_file(const std::string &path, std::uint64_t cap) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return error(path + ": not a regular file");
  }
  if (std::uint64_t(st.st_size) > cap) {
    ::close(fd);
    return error(path + ": is " + std::to_string(st.st_size) +
                 " bytes, more than the " + std::to_string(cap) + " read");
  }
  std::string text(std::size_t(st.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, &text[got], text.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      return error(path + ": read failed: " + (n == 0 ? "file shrank" : std::strerror(err)));
    }
    got += std::size_t(n);
  }
  ::close(fd);
  return text;
}

bool is_folder(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode); // follows links
}

/// Names of the regular files in `folder` (links followed), sorted.
Result<std::vector<std::string>> list_files(const std::string &folder) {
  DIR *dir = ::opendir(folder.c_str());
  if (!dir)
    return error(folder + ": cannot list: " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent *e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != ".." && is_regular(join_path(folder, name)))
      names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

} // namespace

Result<std::string> checkpoint_file(const std::string &path) {
  if (!is_folder(path))
    return path;
  // transformers' from_pretrained: the single file first, then the index.
  for (const char *name : {"model.safetensors", "model.safetensors.index.json"})
    if (is_regular(join_path(path, name)))
      return join_path(path, name);
  ATP_ASSIGN_OR_RETURN(std::vector<std::string> names, list_files(path));
  std::string found;
  std::size_t n = 0;
  for (const std::string &name : names)
    if (ends_with(name, ".safetensors") || ends_with(name, ".safetensors.index.json"))
      found += (n++ ? ", " : "") + quote(name);
  if (n == 0)
    return error(path + ": has no model.safetensors and no model.safetensors.index.json");
  return error(path + ": has no model.safetensors and no model.safetensors.index.json, only " + found +
               ", which transformers' from_pretrained would not load either; name the file or index to read");
}

Status Checkpoint::add_file(SafetensorsFile file) {
  std::size_t fi = files_.size();
  for (std::size_t ti = 0; ti < file.tensors().size(); ++ti) {
    const std::string &name = file.tensors()[ti].name;
    auto [it, fresh] = where_.emplace(name, std::make_pair(fi, ti));
    if (!fresh)
      return error(file.path() + ": tensor " + quote(name) + " is also stored in " +
                   quote(files_[it->second.first].path()));
  }
  files_.push_back(std::move(file));
  return Status();
}

Result<Checkpoint> Checkpoint::open(const std::string &path) {
  Checkpoint c;
  c.path_ = path;
  ATP_ASSIGN_OR_RETURN(std::string file, checkpoint_file(path));
  std::string index;
  if (ends_with(file, ".json")) {
    index = file;
  } else {
    ATP_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(file));
    ATP_TRY(c.add_file(std::move(f)));
    return c;
  }

  // An index.
  c.index_path_ = index;
  ATP_ASSIGN_OR_RETURN(std::string text, read_small_file(index, kMaxIndexSize));
  st::Index parsed;
  if (st::Error e = st::parse_index(text, parsed); !e.ok())
    return error(index + ": " + e.message);

  // Shard name -> first tensor mapped to it; tensor -> shard name.
  std::map<std::string, std::string> shards;
  std::map<std::string, std::string> mapped;
  for (const auto &[tensor, shard] : parsed.weight_map) {
    shards.emplace(shard, tensor);
    mapped[tensor] = shard;
  }
  std::string folder = parent_folder(index);
  std::map<std::string, std::size_t> shard_file; // shard name -> file index
  for (const auto &[shard, tensor] : shards) {
    Result<SafetensorsFile> f = SafetensorsFile::open(join_path(folder, shard));
    if (!f.ok())
      return error(index + ": shard " + quote(shard) + " (holding " + quote(tensor) +
                   "): " + f.status().message());
    shard_file[shard] = c.files_.size();
    ATP_TRY(c.add_file(std::move(f).value()));
  }
  for (const auto &[tensor, shard] : mapped) {
    auto it = c.where_.find(tensor);
    if (it != c.where_.end() && it->second.first == shard_file[shard])
      continue;
    std::string actual =
        it == c.where_.end() ? "" : " (it is in " + quote(c.files_[it->second.first].path()) + ")";
    return error(index + ": tensor " + quote(tensor) + " is mapped to shard " +
                 quote(shard) + ", which does not contain it" + actual);
  }
  for (const auto &[tensor, loc] : c.where_)
    if (!mapped.count(tensor))
      return error(c.files_[loc.first].path() + ": tensor " + quote(tensor) +
                   " is not listed in the weight_map of " + quote(index));
  return c;
}

std::vector<const TensorInfo *> Checkpoint::tensors() const {
  std::vector<const TensorInfo *> all;
  for (const SafetensorsFile &f : files_)
    for (const TensorInfo &t : f.tensors())
      all.push_back(&t);
  return all;
}

const TensorInfo *Checkpoint::find(std::string_view name) const {
  auto it = where_.find(std::string(name));
  if (it == where_.end())
    return nullptr;
  return &files_[it->second.first].tensors()[it->second.second];
}

const SafetensorsFile *Checkpoint::file_of(std::string_view name) const {
  auto it = where_.find(std::string(name));
  return it == where_.end() ? nullptr : &files_[it->second.first];
}

const std::map<std::string, std::string> &Checkpoint::metadata() const {
  static const std::map<std::string, std::string> empty;
  return files_.empty() ? empty : files_.front().metadata();
}

Status Checkpoint::read_range(std::string_view name, std::uint64_t byte_offset,
                              std::uint64_t nbytes, void *dst) const {
  const SafetensorsFile *f = file_of(name);
  if (!f)
    return error(path_ + ": tensor " + quote(name) + " is not in this checkpoint");
  return f->read_range(name, byte_offset, nbytes, dst);
}

Result<HostTensor> Checkpoint::read(std::string_view name) const {
  const SafetensorsFile *f = file_of(name);
  if (!f)
    return error(path_ + ": tensor " + quote(name) + " is not in this checkpoint");
  return f->read(name);
}

} // namespace atp
