/* Reading one .safetensors file: header validation, mmap, pread.

   The format's rules live in atp/safetensors_header.h, which the compiler's
   header reader shares; parse_safetensors_header (also the fuzz target)
   applies them and converts the result to TensorInfo. SafetensorsFile::open
   checks the 8-byte length, maps the file read-only and hands the header
   bytes over. Messages are "<file>: tensor '<name>': <what is wrong>". */
#include "atp/safetensors.h"

#include "atp/safetensors_header.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

namespace atp {

Result<SafetensorsHeader> parse_safetensors_header(std::string_view json,
                                                   std::uint64_t data_size,
                                                   const std::string &file) {
  try {
    st::Header parsed;
    if (st::Error e = st::parse_header(json, data_size, parsed); !e.ok())
      return error(file + ": " + e.message);
    SafetensorsHeader h;
    h.metadata = std::move(parsed.metadata);
    h.tensors.reserve(parsed.tensors.size());
    for (st::Tensor &p : parsed.tensors) {
      TensorInfo t;
      t.name = std::move(p.name);
      t.dtype = *dtype_from_name(p.dtype); // the rules admit only known names
      t.shape = std::move(p.shape);
      t.data_begin = p.begin;
      t.data_end = p.end;
      h.tensors.push_back(std::move(t));
    }
    return h;
  } catch (const std::bad_alloc &) {
    return error(file + ": out of memory reading the header");
  }
}

// ---------------------------------------------------------------- SafetensorsFile

Result<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  SafetensorsFile f;
  f.path_ = path;
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd_ < 0)
    return error(path + ": cannot open: " + std::strerror(errno));
  struct stat sb;
  if (::fstat(f.fd_, &sb) != 0)
    return error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return error(path + ": not a regular file");
  f.file_size_ = std::uint64_t(sb.st_size);
  if (st::Error e = st::check_header_length(f.file_size_, 0); !e.ok())
    return error(path + ": " + e.message);
  if (f.file_size_ > std::numeric_limits<std::size_t>::max())
    return error(path + ": file is too large to map");

  f.map_size_ = std::size_t(f.file_size_);
  void *map = ::mmap(nullptr, f.map_size_, PROT_READ, MAP_PRIVATE, f.fd_, 0);
  if (map == MAP_FAILED)
    return error(path + ": cannot mmap: " + std::strerror(errno));
  f.map_ = map;
  const auto *base = static_cast<const unsigned char *>(map);

  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | base[i];
  if (st::Error e = st::check_header_length(f.file_size_, n); !e.ok())
    return error(path + ": " + e.message);
  f.data_offset_ = 8 + n;
  std::string_view json(reinterpret_cast<const char *>(base + 8), std::size_t(n));
  ATP_ASSIGN_OR_RETURN(f.header_,
                       parse_safetensors_header(json, f.file_size_ - f.data_offset_, path));
  const auto *data = reinterpret_cast<const std::byte *>(base + f.data_offset_);
  for (std::size_t i = 0; i < f.header_.tensors.size(); ++i) {
    TensorInfo &t = f.header_.tensors[i];
    t.data = data + t.data_begin;
    f.by_name_.emplace(t.name, i);
  }
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile &&other) noexcept {
  *this = std::move(other);
}

SafetensorsFile &SafetensorsFile::operator=(SafetensorsFile &&other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    map_ = std::exchange(other.map_, nullptr);
    map_size_ = std::exchange(other.map_size_, 0);
    file_size_ = other.file_size_;
    data_offset_ = other.data_offset_;
    header_ = std::move(other.header_);
    by_name_ = std::move(other.by_name_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { close(); }

void SafetensorsFile::close() {
  if (map_)
    ::munmap(map_, map_size_);
  if (fd_ >= 0)
    ::close(fd_);
  map_ = nullptr;
  fd_ = -1;
}

const TensorInfo *SafetensorsFile::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

Status SafetensorsFile::read_range(std::string_view name, std::uint64_t byte_offset,
                                   std::uint64_t nbytes, void *dst) const {
  const TensorInfo *t = find(name);
  if (!t)
    return error(path_ + ": tensor " + quote(name) + " is not in this file");
  if (byte_offset > t->nbytes() || nbytes > t->nbytes() - byte_offset)
    return error(path_ + ": tensor " + quote(name) + ": bytes [" +
                 std::to_string(byte_offset) + ", " + std::to_string(byte_offset) +
                 " + " + std::to_string(nbytes) + ") are outside its " +
                 std::to_string(t->nbytes()) + " bytes");
  auto *out = static_cast<char *>(dst);
  std::uint64_t pos = data_offset_ + t->data_begin + byte_offset;
  while (nbytes > 0) {
    std::size_t chunk = std::size_t(std::min<std::uint64_t>(nbytes, 1u << 30));
    ssize_t got = ::pread(fd_, out, chunk, off_t(pos));
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      return error(path_ + ": tensor " + quote(name) + ": read failed: " +
                   std::strerror(errno));
    if (got == 0)
      return error(path_ + ": tensor " + quote(name) + ": file ended at byte " +
                   std::to_string(pos) + " (was it truncated after it was opened?)");
    out += got;
    pos += std::uint64_t(got);
    nbytes -= std::uint64_t(got);
  }
  return Status();
}

Result<HostTensor> SafetensorsFile::read(std::string_view name) const {
  const TensorInfo *t = find(name);
  if (!t)
    return error(path_ + ": tensor " + quote(name) + " is not in this file");
  ATP_ASSIGN_OR_RETURN(HostTensor h, HostTensor::zeros(t->dtype, t->shape));
  ATP_TRY(read_range(name, 0, t->nbytes(), h.data()));
  return h;
}

} // namespace atp
