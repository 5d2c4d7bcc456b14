/* Reading one .safetensors file: header validation, mmap, pread.

   parse_safetensors_header holds every rule of the format (it is also the
   fuzz target); SafetensorsFile::open checks the 8-byte length against the
   cap and the file size, maps the file read-only and hands the header bytes
   to it. Messages are "<file>: tensor '<name>': <what is wrong>". */
#include "atp/safetensors.h"

#include "atp/json_lite.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <tuple>
#include <utility>

namespace atp {

namespace {

/// JSON nesting a valid header needs is 3 (object, tensor, shape).
constexpr int kMaxHeaderDepth = 16;

std::string range_string(std::uint64_t begin, std::uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

Result<TensorInfo> parse_tensor(const std::string &name, const JsonValue &v,
                                std::uint64_t data_size, const std::string &file) {
  std::string where = file + ": tensor " + quote(name) + ": ";
  auto bad = [&](const std::string &msg) { return error(where + msg); };
  if (!v.is_object())
    return bad("entry is " + v.describe() + ", not an object");
  const JsonValue *dtype = v.find("dtype");
  const JsonValue *shape = v.find("shape");
  const JsonValue *offsets = v.find("data_offsets");
  if (!dtype)
    return bad("missing 'dtype'");
  if (!shape)
    return bad("missing 'shape'");
  if (!offsets)
    return bad("missing 'data_offsets'");

  TensorInfo t;
  t.name = name;
  if (!dtype->is_string())
    return bad("'dtype' is " + dtype->describe() + ", not a string");
  std::optional<DType> dt = dtype_from_name(dtype->as_string());
  if (!dt)
    return bad("unknown dtype " + quote(dtype->as_string()));
  t.dtype = *dt;

  if (!shape->is_array())
    return bad("'shape' is " + shape->describe() + ", not an array");
  for (std::size_t i = 0; i < shape->size(); ++i) {
    const JsonValue &d = (*shape)[i];
    std::optional<std::int64_t> n = d.as_int64();
    if (!d.is_integer() || (d.as_uint64() && !n))
      return bad("'shape' element " + std::to_string(i) + " is " + d.describe() +
                 (d.is_integer() ? ", too large" : ", not an integer"));
    if (*n < 0)
      return bad("'shape' element " + std::to_string(i) + " is " + d.describe() +
                 ", negative");
    t.shape.push_back(*n);
  }
  std::optional<std::uint64_t> nbytes = tensor_nbytes(t.dtype, t.shape);
  if (!nbytes)
    return bad("shape " + shape_string(t.shape) + " of " + dtype_name(t.dtype) +
               " has more than 2^63 bytes");

  std::optional<std::uint64_t> begin, end;
  if (offsets->is_array() && offsets->size() == 2) {
    begin = (*offsets)[0].as_uint64();
    end = (*offsets)[1].as_uint64();
  }
  if (!begin || !end)
    return bad("'data_offsets' must be [begin, end] of non-negative integers");
  t.data_begin = *begin;
  t.data_end = *end;
  std::string range = "data_offsets " + range_string(*begin, *end);
  if (*begin > *end)
    return bad(range + " are reversed");
  if (*end > data_size)
    return bad(range + " end past the data region (" + std::to_string(data_size) +
               " bytes)");
  if (*end - *begin != *nbytes)
    return bad(range + " span " + std::to_string(*end - *begin) + " bytes but shape " +
               shape_string(t.shape) + " of " + dtype_name(t.dtype) + " needs " +
               std::to_string(*nbytes));
  return t;
}

Status parse_metadata(const JsonValue &v, std::map<std::string, std::string> &out,
                      const std::string &file) {
  if (!v.is_object())
    return error(file + ": '__metadata__' is " + v.describe() + ", not an object");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      return error(file + ": '__metadata__' value of " + quote(v.key(i)) + " is " +
                   v[i].describe() + ", not a string");
    out[v.key(i)] = v[i].as_string();
  }
  return Status();
}

Result<SafetensorsHeader> parse_header_impl(std::string_view json,
                                            std::uint64_t data_size,
                                            const std::string &file) {
  if (json.empty() || json[0] != '{')
    return error(file + ": header does not start with '{'");
  Result<JsonValue> doc = parse_json(json, kMaxHeaderDepth);
  if (!doc.ok())
    return error(file + ": header is not valid JSON: " + doc.status().message());
  if (!doc->is_object())
    return error(file + ": header is " + doc->describe() + ", not an object");

  SafetensorsHeader h;
  for (std::size_t i = 0; i < doc->size(); ++i) {
    const std::string &key = doc->key(i);
    if (key == "__metadata__") {
      ATP_TRY(parse_metadata((*doc)[i], h.metadata, file));
      continue;
    }
    ATP_ASSIGN_OR_RETURN(TensorInfo t, parse_tensor(key, (*doc)[i], data_size, file));
    h.tensors.push_back(std::move(t));
  }

  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo &a, const TensorInfo &b) {
    return std::tie(a.data_begin, a.data_end, a.name) <
           std::tie(b.data_begin, b.data_end, b.name);
  });
  // Ranges are half-open, so an empty tensor overlaps nothing. Sorted by
  // begin, a range overlaps an earlier one iff it begins before the
  // furthest end so far, which is that of `last` (there was no overlap yet).
  const TensorInfo *last = nullptr;
  for (const TensorInfo &t : h.tensors) {
    if (t.data_begin == t.data_end)
      continue;
    if (last && t.data_begin < last->data_end)
      return error(file + ": tensors " + quote(last->name) + " " +
                   range_string(last->data_begin, last->data_end) + " and " +
                   quote(t.name) + " " + range_string(t.data_begin, t.data_end) +
                   " overlap");
    last = &t;
  }
  return h;
}

} // namespace

Result<SafetensorsHeader> parse_safetensors_header(std::string_view json,
                                                   std::uint64_t data_size,
                                                   const std::string &file) {
  try {
    return parse_header_impl(json, data_size, file);
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
  struct stat st;
  if (::fstat(f.fd_, &st) != 0)
    return error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return error(path + ": not a regular file");
  f.file_size_ = std::uint64_t(st.st_size);
  if (f.file_size_ < 8)
    return error(path + ": file is " + std::to_string(f.file_size_) +
                 " bytes, too short for a safetensors header");
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
  if (n > kMaxSafetensorsHeaderSize)
    return error(path + ": header length " + std::to_string(n) +
                 " exceeds the safetensors limit of " +
                 std::to_string(kMaxSafetensorsHeaderSize) + " bytes");
  if (n > f.file_size_ - 8)
    return error(path + ": header length " + std::to_string(n) +
                 " runs past the end of the file (" + std::to_string(f.file_size_) +
                 " bytes)");
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
