/* Token files: the training data `train` reads, in the manner of llm.c's
   .bin shards: a small fixed header, then the tokens.

   Layout (all integers little-endian), 32 bytes of header:

     offset  size  field
          0     8  magic, the ASCII bytes "ATPTOKEN"
          8     4  version, uint32 = 1
         12     4  token_bytes, uint32: 2 (dtype uint16) or 4 (dtype uint32)
         16     8  count, uint64: the number of tokens that follow
         24     4  id_bound, uint32: 1 + the largest id in the file (0 when
                   count is 0), so a reader can compare it with a model's
                   vocab_size without a scan
         28     4  reserved, uint32 = 0
         32     -  count × token_bytes bytes of tokens

   The file is exactly 32 + count × token_bytes bytes; anything else is a
   truncated or overlong file and is refused. The header starts a 4-aligned
   mapping, so tokens are naturally aligned. Writers are atomic (AtomicFile):
   a failed write leaves the old file, or none.

   Also here: the "--loss-and-grads" input, R rows of S+1 raw little-endian
   uint32 tokens with no header (read_token_rows). */
#pragma once

#include "atp/atomic_file.h"
#include "atp/status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace atp {

/// The header's magic, version and size.
constexpr char kTokenFileMagic[8] = {'A', 'T', 'P', 'T', 'O', 'K', 'E', 'N'};
constexpr std::uint32_t kTokenFileVersion = 1;
constexpr std::size_t kTokenFileHeaderSize = 32;

/// How tokens are stored: the value is the byte width.
enum class TokenDType : std::uint32_t { U16 = 2, U32 = 4 };

/// "uint16" / "uint32".
const char *token_dtype_name(TokenDType dtype);
/// Parses "uint16" or "uint32" (the tool's --dtype); anything else is an error.
Result<TokenDType> parse_token_dtype(const std::string &name);

/// The decoded header of a token file.
struct TokenFileHeader {
  TokenDType dtype = TokenDType::U16;
  std::uint64_t count = 0;
  std::uint32_t id_bound = 0; ///< 1 + largest id, 0 for an empty token list
};

/// The 32 header bytes for `header` (version 1).
std::vector<unsigned char> encode_token_file_header(const TokenFileHeader &header);

/// Validates 32 header bytes against the file's size; `file` prefixes
/// messages. Checks magic, version, dtype, reserved and that the size is
/// exactly 32 + count × width.
Result<TokenFileHeader> parse_token_file_header(const unsigned char *bytes, std::uint64_t file_size,
                                                const std::string &file);

// ---------------------------------------------------------------- writing

/// Writes a token file in pieces when the count is known up front (the
/// header comes first): create, append until `count` tokens, commit. Every
/// token must fit the dtype; commit fails, and publishes nothing, unless
/// exactly `count` tokens were appended.
class TokenFileWriter {
public:
  static Result<TokenFileWriter> create(const std::string &path, TokenDType dtype, std::uint64_t count,
                                        std::uint32_t id_bound);

  /// Appends tokens; an id too large for the dtype or for id_bound, or more
  /// than `count` tokens in all, is an error (and the file is abandoned).
  Status append(const std::uint32_t *tokens, std::size_t n);
  /// Checks the count and publishes the file.
  Status commit();

  std::uint64_t written() const { return written_; }
  const std::string &path() const { return file_.path(); }

private:
  AtomicFile file_;
  TokenDType dtype_ = TokenDType::U16;
  std::uint64_t count_ = 0, written_ = 0;
  std::uint32_t id_bound_ = 0;
  std::vector<unsigned char> buf_;
};

/// Writes `tokens` as a whole token file (id_bound computed), atomically.
Status write_token_file(const std::string &path, const std::vector<std::uint32_t> &tokens, TokenDType dtype);

// ---------------------------------------------------------------- reading

/// One open, validated, memory-mapped token file. Move-only.
class TokenFile {
public:
  static Result<TokenFile> open(const std::string &path);

  TokenFile() = default;
  TokenFile(TokenFile &&other) noexcept;
  TokenFile &operator=(TokenFile &&other) noexcept;
  TokenFile(const TokenFile &) = delete;
  TokenFile &operator=(const TokenFile &) = delete;
  ~TokenFile();

  const std::string &path() const { return path_; }
  TokenDType dtype() const { return header_.dtype; }
  std::uint64_t size() const { return header_.count; }
  /// From the header (not re-checked against the tokens; see check_ids).
  std::uint32_t id_bound() const { return header_.id_bound; }

  /// Token i (< size()).
  std::uint32_t at(std::uint64_t i) const;
  /// Tokens [begin, begin + n) as uint32; fails if the range is outside.
  Status read(std::uint64_t begin, std::uint64_t n, std::uint32_t *out) const;
  /// Scans every token once (O(size), a few ms per 100 MB) and fails on the
  /// first id >= vocab_size, naming its position and id.
  Status check_ids(std::uint64_t vocab_size) const;

private:
  void close();
  std::string path_;
  int fd_ = -1;
  void *map_ = nullptr;
  std::size_t map_size_ = 0;
  const unsigned char *tokens_ = nullptr;
  TokenFileHeader header_;
};

// ---------------------------------------------------------------- raw rows

/// Reads the "--loss-and-grads" input: exactly rows × (seq_len + 1) raw
/// little-endian uint32 tokens, no header. A file of any other size is an
/// error naming the file, its size and the expected size; so is an id >=
/// vocab_size (when vocab_size is not 0), naming its row, column and id.
Result<std::vector<std::uint32_t>> read_token_rows(const std::string &path, std::uint64_t rows, std::uint64_t seq_len,
                                                   std::uint64_t vocab_size = 0);

/// Writes such a file (tests, reference scripts), atomically.
Status write_token_rows(const std::string &path, const std::vector<std::uint32_t> &tokens);

} // namespace atp
