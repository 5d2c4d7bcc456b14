/* Token files: header encoding and validation, the atomic writer, the
   mmap reader, and the headerless rows of --loss-and-grads.

   Every size is checked in uint64 before it is multiplied, so a header
   whose count would overflow reads as "does not match the file size", not
   as a wrap-around that passes. */
#include "atp/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

namespace atp {

namespace {

void put_u32(unsigned char *p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char *p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint32_t get_u32(const unsigned char *p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
std::uint64_t get_u64(const unsigned char *p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

std::uint64_t max_id(TokenDType dtype) { return dtype == TokenDType::U16 ? 0xffffu : 0xffffffffu; }

std::string n(std::uint64_t v) { return std::to_string(v); }

/// Opens and maps a whole regular file read-only (a 0-byte file maps nothing).
Status map_file(const std::string &path, int &fd, void *&map, std::size_t &size) {
  fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return error(path + ": not a regular file");
  if (std::uint64_t(st.st_size) > std::numeric_limits<std::size_t>::max())
    return error(path + ": file is too large to map");
  size = std::size_t(st.st_size);
  if (size == 0)
    return Status();
  void *m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED)
    return error(path + ": cannot mmap: " + std::strerror(errno));
  map = m;
  return Status();
}

} // namespace

const char *token_dtype_name(TokenDType dtype) { return dtype == TokenDType::U16 ? "uint16" : "uint32"; }

Result<TokenDType> parse_token_dtype(const std::string &name) {
  if (name == "uint16")
    return TokenDType::U16;
  if (name == "uint32")
    return TokenDType::U32;
  return error("unknown token dtype " + quote(name) + " (expected uint16 or uint32)");
}

// ---------------------------------------------------------------- header

std::vector<unsigned char> encode_token_file_header(const TokenFileHeader &header) {
  std::vector<unsigned char> b(kTokenFileHeaderSize, 0);
  std::memcpy(b.data(), kTokenFileMagic, 8);
  put_u32(b.data() + 8, kTokenFileVersion);
  put_u32(b.data() + 12, static_cast<std::uint32_t>(header.dtype));
  put_u64(b.data() + 16, header.count);
  put_u32(b.data() + 24, header.id_bound);
  return b;
}

Result<TokenFileHeader> parse_token_file_header(const unsigned char *bytes, std::uint64_t file_size,
                                                const std::string &file) {
  if (file_size < kTokenFileHeaderSize)
    return error(file + ": file is " + n(file_size) + " bytes, too short for the " + n(kTokenFileHeaderSize) +
                 "-byte token file header" + (file_size == 0 ? " (empty file)" : ""));
  if (std::memcmp(bytes, kTokenFileMagic, 8) != 0)
    return error(file + ": not a token file: magic " + quote(std::string(reinterpret_cast<const char *>(bytes), 8)) +
                 ", expected 'ATPTOKEN'");
  std::uint32_t version = get_u32(bytes + 8);
  if (version != kTokenFileVersion)
    return error(file + ": token file version " + n(version) + ", this build reads version " + n(kTokenFileVersion));
  std::uint32_t width = get_u32(bytes + 12);
  if (width != 2 && width != 4)
    return error(file + ": token width " + n(width) + " bytes in the header, expected 2 (uint16) or 4 (uint32)");
  std::uint32_t reserved = get_u32(bytes + 28);
  if (reserved != 0)
    return error(file + ": reserved header field is " + n(reserved) + ", expected 0");
  TokenFileHeader h;
  h.dtype = static_cast<TokenDType>(width);
  h.count = get_u64(bytes + 16);
  h.id_bound = get_u32(bytes + 24);
  std::uint64_t data = file_size - kTokenFileHeaderSize;
  if (h.count > data / width || h.count * width != data)
    return error(file + ": header says " + n(h.count) + " tokens of " + n(width) + " bytes, but " + n(data) +
                 " bytes follow the header (file is " + n(file_size) + " bytes" +
                 (h.count > data / width ? ", truncated?" : "") + ")");
  if (std::uint64_t(h.id_bound) > max_id(h.dtype) + 1)
    return error(file + ": id_bound " + n(h.id_bound) + " does not fit dtype " + token_dtype_name(h.dtype));
  if ((h.count == 0) != (h.id_bound == 0))
    return error(file + ": id_bound " + n(h.id_bound) + " is inconsistent with " + n(h.count) + " tokens");
  return h;
}

// ---------------------------------------------------------------- writing

Result<TokenFileWriter> TokenFileWriter::create(const std::string &path, TokenDType dtype, std::uint64_t count,
                                                std::uint32_t id_bound) {
  if (std::uint64_t(id_bound) > max_id(dtype) + 1)
    return error(path + ": id bound " + n(id_bound) + " does not fit dtype " + token_dtype_name(dtype));
  if ((count == 0) != (id_bound == 0))
    return error(path + ": id bound " + n(id_bound) + " is inconsistent with " + n(count) + " tokens");
  TokenFileWriter w;
  ATP_ASSIGN_OR_RETURN(w.file_, AtomicFile::create(path));
  w.dtype_ = dtype;
  w.count_ = count;
  w.id_bound_ = id_bound;
  TokenFileHeader h{dtype, count, id_bound};
  std::vector<unsigned char> head = encode_token_file_header(h);
  ATP_TRY(w.file_.write(head.data(), head.size()));
  return w;
}

Status TokenFileWriter::append(const std::uint32_t *tokens, std::size_t count) {
  if (count > count_ - written_) {
    file_.abandon();
    return error(path() + ": more than the " + n(count_) + " tokens announced in the header");
  }
  const std::size_t width = static_cast<std::size_t>(dtype_);
  buf_.resize(count * width);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint32_t t = tokens[i];
    if (t >= id_bound_) {
      file_.abandon();
      return error(path() + ": token " + n(written_ + i) + " has id " + n(t) + ", not below the file's id bound " +
                   n(id_bound_) + " (dtype " + token_dtype_name(dtype_) + ")");
    }
    if (width == 2) {
      buf_[2 * i] = static_cast<unsigned char>(t);
      buf_[2 * i + 1] = static_cast<unsigned char>(t >> 8);
    } else {
      put_u32(buf_.data() + 4 * i, t);
    }
  }
  ATP_TRY(file_.write(buf_.data(), buf_.size()));
  written_ += count;
  return Status();
}

Status TokenFileWriter::commit() {
  if (written_ != count_) {
    file_.abandon();
    return error(path() + ": " + n(written_) + " tokens written, the header announced " + n(count_) +
                 " (did an input change while it was read?)");
  }
  return file_.commit();
}

Status write_token_file(const std::string &path, const std::vector<std::uint32_t> &tokens, TokenDType dtype) {
  std::uint64_t bound = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] > max_id(dtype))
      return error(path + ": token " + n(i) + " has id " + n(tokens[i]) + ", too large for dtype " +
                   token_dtype_name(dtype));
    bound = std::max<std::uint64_t>(bound, std::uint64_t(tokens[i]) + 1);
  }
  if (bound > 0xffffffffu) // id 2^32-1 in a uint32 file: the bound field cannot say so
    return error(path + ": token id 4294967295 cannot be stored (id_bound would overflow)");
  ATP_ASSIGN_OR_RETURN(TokenFileWriter w,
                       TokenFileWriter::create(path, dtype, tokens.size(), static_cast<std::uint32_t>(bound)));
  ATP_TRY(w.append(tokens.data(), tokens.size()));
  return w.commit();
}

// ---------------------------------------------------------------- reading

Result<TokenFile> TokenFile::open(const std::string &path) {
  TokenFile f;
  f.path_ = path;
  ATP_TRY(map_file(path, f.fd_, f.map_, f.map_size_));
  const auto *base = static_cast<const unsigned char *>(f.map_);
  ATP_ASSIGN_OR_RETURN(f.header_, parse_token_file_header(base, f.map_size_, path));
  f.tokens_ = base + kTokenFileHeaderSize;
  return f;
}

TokenFile::TokenFile(TokenFile &&other) noexcept { *this = std::move(other); }

TokenFile &TokenFile::operator=(TokenFile &&other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    map_ = std::exchange(other.map_, nullptr);
    map_size_ = std::exchange(other.map_size_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    header_ = other.header_;
  }
  return *this;
}

TokenFile::~TokenFile() { close(); }

void TokenFile::close() {
  if (map_)
    ::munmap(map_, map_size_);
  if (fd_ >= 0)
    ::close(fd_);
  map_ = nullptr;
  fd_ = -1;
}

std::uint32_t TokenFile::at(std::uint64_t i) const {
  if (header_.dtype == TokenDType::U16) {
    const unsigned char *p = tokens_ + 2 * i;
    return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8);
  }
  return get_u32(tokens_ + 4 * i);
}

Status TokenFile::read(std::uint64_t begin, std::uint64_t count, std::uint32_t *out) const {
  if (begin > header_.count || count > header_.count - begin)
    return error(path_ + ": tokens [" + n(begin) + ", " + n(begin + count) + ") are outside the file's " +
                 n(header_.count) + " tokens");
  for (std::uint64_t i = 0; i < count; ++i)
    out[i] = at(begin + i);
  return Status();
}

Status TokenFile::check_ids(std::uint64_t vocab_size) const {
  for (std::uint64_t i = 0; i < header_.count; ++i) {
    std::uint32_t t = at(i);
    if (t >= vocab_size)
      return error(path_ + ": token " + n(i) + " has id " + n(t) + ", not below the vocab size " + n(vocab_size));
  }
  return Status();
}

// ---------------------------------------------------------------- raw rows

Result<std::vector<std::uint32_t>> read_token_rows(const std::string &path, std::uint64_t rows, std::uint64_t seq_len,
                                                   std::uint64_t vocab_size) {
  if (rows == 0 || seq_len == 0)
    return error(path + ": need at least one row of at least 2 tokens (rows " + n(rows) + ", seq_len " + n(seq_len) +
                 ")");
  const std::uint64_t row = seq_len + 1;
  if (rows > std::numeric_limits<std::uint64_t>::max() / 4 / row)
    return error(path + ": " + n(rows) + " rows of " + n(row) + " tokens is too large");
  const std::uint64_t want = rows * row * 4;
  int fd = -1;
  void *map = nullptr;
  std::size_t size = 0;
  Status st = map_file(path, fd, map, size);
  auto cleanup = [&] {
    if (map)
      ::munmap(map, size);
    if (fd >= 0)
      ::close(fd);
  };
  if (!st.ok()) {
    cleanup();
    return st;
  }
  if (size != want) {
    cleanup();
    return error(path + ": file is " + n(size) + " bytes, expected " + n(rows) + " rows x " + n(row) +
                 " tokens (seq_len " + n(seq_len) + " + 1) x 4 bytes = " + n(want) +
                 " bytes of raw little-endian uint32");
  }
  std::vector<std::uint32_t> out(rows * row);
  const auto *base = static_cast<const unsigned char *>(map);
  for (std::uint64_t i = 0; i < out.size(); ++i) {
    out[i] = get_u32(base + 4 * i);
    if (vocab_size != 0 && out[i] >= vocab_size) {
      cleanup();
      return error(path + ": row " + n(i / row) + ", column " + n(i % row) + " (token " + n(i) + ") has id " +
                   n(out[i]) + ", not below the vocab size " + n(vocab_size));
    }
  }
  cleanup();
  return out;
}

Status write_token_rows(const std::string &path, const std::vector<std::uint32_t> &tokens) {
  ATP_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(path));
  std::vector<unsigned char> b(tokens.size() * 4);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    put_u32(b.data() + 4 * i, tokens[i]);
  ATP_TRY(f.write(b.data(), b.size()));
  return f.commit();
}

} // namespace atp
