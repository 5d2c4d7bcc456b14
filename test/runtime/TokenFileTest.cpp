/* Token files: the bytes on disk are the documented layout, both dtypes
   round trip, every malformed file is refused with a message that names
   the file and the numbers, and a failed write leaves the old file. Also
   the headerless rows of --loss-and-grads. */
#include "atp/token_file.h"

#include "CoreTestUtil.h"

#include <gtest/gtest.h>

using namespace atp;
using atp_test::TempDir;

namespace {

/// n ids below `bound` from (seed, index).
std::vector<std::uint32_t> ids(std::uint64_t seed, std::size_t n, std::uint32_t bound) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t x = 0;
    for (int k = 0; k < 4; ++k)
      x = (x << 8) | atp_test::value_byte(seed, 4 * i + std::size_t(k));
    v[i] = x % bound;
  }
  return v;
}

std::uint64_t le(const std::string &s, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(s[at + std::size_t(i)]);
  return v;
}

std::string le_bytes(std::uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i)
    s.push_back(char((v >> (8 * i)) & 0xff));
  return s;
}

/// A header by hand, independent of encode_token_file_header.
std::string header(std::uint64_t count, std::uint32_t width, std::uint32_t id_bound,
                   const std::string &magic = "ATPTOKEN", std::uint32_t version = 1) {
  return magic + le_bytes(version, 4) + le_bytes(width, 4) + le_bytes(count, 8) + le_bytes(id_bound, 4) +
         le_bytes(0, 4);
}

std::string open_error(const std::string &path) {
  Result<TokenFile> f = TokenFile::open(path);
  EXPECT_FALSE(f.ok()) << path;
  return f.ok() ? "" : f.status().message();
}

} // namespace

TEST(TokenFile, BothDtypesRoundTripInTheDocumentedLayout) {
  TempDir dir;
  for (TokenDType dtype : {TokenDType::U16, TokenDType::U32}) {
    const std::uint32_t width = dtype == TokenDType::U16 ? 2 : 4;
    const std::uint32_t bound = dtype == TokenDType::U16 ? 65536 : 0xfffffff0u;
    std::vector<std::uint32_t> tokens = ids(width, 1001, bound);
    tokens[7] = bound - 1; // the largest id the dtype holds
    const std::string path = dir / (std::string(token_dtype_name(dtype)) + ".bin");
    ASSERT_TRUE(write_token_file(path, tokens, dtype).ok());

    std::string bytes = atp_test::read_file(path);
    ASSERT_EQ(bytes.size(), 32 + tokens.size() * width);
    EXPECT_EQ(bytes.substr(0, 8), "ATPTOKEN");
    EXPECT_EQ(le(bytes, 8, 4), 1u);
    EXPECT_EQ(le(bytes, 12, 4), width);
    EXPECT_EQ(le(bytes, 16, 8), tokens.size());
    EXPECT_EQ(le(bytes, 24, 4), std::uint64_t(bound)); // 1 + the largest id
    EXPECT_EQ(le(bytes, 28, 4), 0u);
    for (std::size_t i = 0; i < tokens.size(); ++i)
      ASSERT_EQ(le(bytes, 32 + i * width, int(width)), tokens[i]) << i;

    Result<TokenFile> f = TokenFile::open(path);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(f->dtype(), dtype);
    EXPECT_EQ(f->size(), tokens.size());
    EXPECT_EQ(f->id_bound(), bound);
    std::vector<std::uint32_t> back(tokens.size());
    ASSERT_TRUE(f->read(0, back.size(), back.data()).ok());
    EXPECT_EQ(back, tokens);
    EXPECT_EQ(f->at(1000), tokens[1000]);
    EXPECT_FALSE(f->read(1000, 2, back.data()).ok());
    EXPECT_TRUE(f->check_ids(bound).ok());
    Status bad = f->check_ids(bound - 1);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.message(), path + ": token 7 has id " + std::to_string(bound - 1) + ", not below the vocab size " +
                                 std::to_string(bound - 1));
  }
}

TEST(TokenFile, BadFilesAreRefusedWithTheNumbers) {
  TempDir dir;
  const std::string p = dir / "t.bin";
  const std::string data4 = le_bytes(1, 2) + le_bytes(2, 2) + le_bytes(3, 2) + le_bytes(4, 2);

  atp_test::write_file(p, "");
  EXPECT_EQ(open_error(p), p + ": file is 0 bytes, too short for the 32-byte token file header "
                               "(empty file)");
  atp_test::write_file(p, header(4, 2, 5).substr(0, 20));
  EXPECT_EQ(open_error(p), p + ": file is 20 bytes, too short for the 32-byte token file header");

  atp_test::write_file(p, header(4, 2, 5) + data4.substr(0, 5)); // truncated
  EXPECT_EQ(open_error(p), p + ": header says 4 tokens of 2 bytes, but 5 bytes follow the header "
                               "(file is 37 bytes, truncated?)");
  atp_test::write_file(p, header(3, 2, 5) + data4); // count lies low
  EXPECT_EQ(open_error(p), p + ": header says 3 tokens of 2 bytes, but 8 bytes follow the header "
                               "(file is 40 bytes)");
  atp_test::write_file(p, header(~0ull / 2 + 5, 2, 5) + data4); // count * 2 would wrap to 8
  EXPECT_NE(open_error(p).find("but 8 bytes follow the header"), std::string::npos);

  atp_test::write_file(p, header(4, 2, 5, "LLMCTOKS") + data4);
  EXPECT_EQ(open_error(p), p + ": not a token file: magic 'LLMCTOKS', expected 'ATPTOKEN'");
  atp_test::write_file(p, header(4, 2, 5, "ATPTOKEN", 2) + data4);
  EXPECT_EQ(open_error(p), p + ": token file version 2, this build reads version 1");
  atp_test::write_file(p, header(2, 3, 5) + data4.substr(0, 6));
  EXPECT_EQ(open_error(p), p + ": token width 3 bytes in the header, expected 2 (uint16) or 4 "
                               "(uint32)");
  atp_test::write_file(p, header(4, 2, 70000) + data4);
  EXPECT_EQ(open_error(p), p + ": id_bound 70000 does not fit dtype uint16");
  EXPECT_EQ(open_error(dir / "missing.bin"), dir / "missing.bin" + ": cannot open: No such file or directory");

  atp_test::write_file(p, header(4, 2, 5) + data4); // the same bytes, well formed, open
  EXPECT_TRUE(TokenFile::open(p).ok());
}

TEST(TokenFile, FailedWritesLeaveTheOldFile) {
  TempDir dir;
  const std::string p = dir / "t.bin";
  atp_test::write_file(p, "old");
  Status st = write_token_file(p, {1, 2, 70000}, TokenDType::U16);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), p + ": token 2 has id 70000, too large for dtype uint16");
  EXPECT_EQ(atp_test::read_file(p), "old");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"t.bin"}));

  { // fewer tokens than announced: commit refuses, nothing published
    Result<TokenFileWriter> w = TokenFileWriter::create(p, TokenDType::U32, 3, 10);
    ASSERT_TRUE(w.ok());
    std::uint32_t two[2] = {1, 2};
    ASSERT_TRUE(w->append(two, 2).ok());
    Status c = w->commit();
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.message(), p + ": 2 tokens written, the header announced 3 (did an input change "
                               "while it was read?)");
  }
  { // an id past the announced bound
    Result<TokenFileWriter> w = TokenFileWriter::create(p, TokenDType::U32, 3, 10);
    ASSERT_TRUE(w.ok());
    std::uint32_t three[3] = {1, 10, 2};
    Status a = w->append(three, 3);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.message(), p + ": token 1 has id 10, not below the file's id bound 10 (dtype "
                               "uint32)");
    EXPECT_FALSE(w->commit().ok());
  }
  EXPECT_EQ(atp_test::read_file(p), "old");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"t.bin"}));
  EXPECT_FALSE(write_token_file(dir / "no/such/t.bin", {1}, TokenDType::U16).ok());
}

TEST(TokenFile, EmptyTokenListIsAValidFile) {
  TempDir dir;
  ASSERT_TRUE(write_token_file(dir / "e.bin", {}, TokenDType::U16).ok());
  EXPECT_EQ(atp_test::read_file(dir / "e.bin"), header(0, 2, 0));
  Result<TokenFile> f = TokenFile::open(dir / "e.bin");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->size(), 0u);
}

TEST(TokenRows, ExactSizeRawUint32) {
  TempDir dir;
  const std::string p = dir / "rows.bin";
  std::vector<std::uint32_t> tokens = ids(3, 2 * 9, 257);
  std::string raw;
  for (std::uint32_t t : tokens)
    raw += le_bytes(t, 4);
  atp_test::write_file(p, raw);
  Result<std::vector<std::uint32_t>> r = read_token_rows(p, 2, 8);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, tokens);

  ASSERT_TRUE(write_token_rows(dir / "again.bin", tokens).ok());
  EXPECT_EQ(atp_test::read_file(dir / "again.bin"), raw);

  Result<std::vector<std::uint32_t>> wrong = read_token_rows(p, 2, 9);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(),
            p + ": file is 72 bytes, expected 2 rows x 10 tokens (seq_len 9 + 1) x 4 bytes = 80 "
                "bytes of raw little-endian uint32");
  atp_test::write_file(p, raw.substr(0, 71));
  EXPECT_NE(read_token_rows(p, 2, 8).status().message().find("file is 71 bytes, expected"), std::string::npos);
  atp_test::write_file(p, "");
  EXPECT_NE(read_token_rows(p, 2, 8).status().message().find("file is 0 bytes"), std::string::npos);

  tokens[12] = 257; // row 1, column 3
  raw.clear();
  for (std::uint32_t t : tokens)
    raw += le_bytes(t, 4);
  atp_test::write_file(p, raw);
  EXPECT_TRUE(read_token_rows(p, 2, 8, 258).ok());
  Result<std::vector<std::uint32_t>> oov = read_token_rows(p, 2, 8, 257);
  ASSERT_FALSE(oov.ok());
  EXPECT_EQ(oov.status().message(), p + ": row 1, column 3 (token 12) has id 257, not below the vocab size 257");
}
