/* Reading safetensors files and checkpoints: every bad input gives a
   Status that names the file (and the tensor, where there is one) and
   nothing crashes; read_range reads exactly the bytes asked for. */
#include "atp/safetensors.h"
#include "atp/safetensors_header.h"

#include "CoreTestUtil.h"

#include <gtest/gtest.h>

#include <unistd.h>

using namespace atp;
using atp_test::raw_safetensors;
using atp_test::TempDir;
using atp_test::write_file;

namespace {

/// Writes `bytes` to dir/name and returns SafetensorsFile::open's error.
std::string open_error(const TempDir &dir, const std::string &bytes,
                       const std::string &name = "bad.safetensors") {
  write_file(dir / name, bytes);
  Result<SafetensorsFile> f = SafetensorsFile::open(dir / name);
  EXPECT_FALSE(f.ok()) << "opened " << name;
  return f.ok() ? "" : f.status().message();
}

std::string entry(const std::string &name, const std::string &dtype, const std::string &shape,
                  std::uint64_t begin, std::uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

/// Two F32 tensors 'a' [2,2] and 'b' [4] back to back (32 data bytes).
std::string two_tensors() {
  return raw_safetensors("{\"__metadata__\":{\"format\":\"pt\"}," + entry("a", "F32", "[2,2]", 0, 16) +
                             "," + entry("b", "F32", "[4]", 16, 32) + "}",
                         atp_test::value_bytes(7, 32));
}

} // namespace

TEST(SafetensorsReader, OpensAValidFile) {
  TempDir dir;
  write_file(dir / "ok.safetensors", two_tensors());
  Result<SafetensorsFile> f = SafetensorsFile::open(dir / "ok.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo *b = f->find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::F32);
  EXPECT_EQ(b->shape, (std::vector<std::int64_t>{4}));
  EXPECT_EQ(b->nbytes(), 16u);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(b->data), 16),
            atp_test::value_bytes(7, 32).substr(16));
  EXPECT_EQ(f->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(f->find("c"), nullptr);
  EXPECT_EQ(f->data_offset() + 32, f->file_size());
}

TEST(SafetensorsReader, ReadsTheReferenceImplementationsBytes) {
  // safetensors' own test vector (tensor.rs, test_serialization_forced_alignement):
  // "attn0", F32 [1,1,2,3] holding 0..5, a 72-byte header padded with spaces.
  TempDir dir;
  std::string header = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ";
  std::string data;
  for (float v : {0.f, 1.f, 2.f, 3.f, 4.f, 5.f})
    data.append(reinterpret_cast<const char *>(&v), 4);
  write_file(dir / "ref.safetensors", raw_safetensors(header, data));
  Result<SafetensorsFile> f = SafetensorsFile::open(dir / "ref.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().message();
  Result<HostTensor> t = f->read("attn0");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->shape(), (std::vector<std::int64_t>{1, 1, 2, 3}));
  EXPECT_EQ(t->data_as<float>()[5], 5.f);
}

TEST(SafetensorsReader, EmptyTensorsAndGapsAreAllowed) {
  TempDir dir;
  std::string h = "{" + entry("e1", "BF16", "[0,4]", 8, 8) + "," + entry("e2", "I8", "[3,0]", 8, 8) +
                  "," + entry("x", "U8", "[4]", 12, 16) + "," + entry("s", "F64", "[]", 0, 8) + "}";
  write_file(dir / "ok.safetensors", raw_safetensors(h, std::string(20, 'z')));
  Result<SafetensorsFile> f = SafetensorsFile::open(dir / "ok.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->tensors()[0].name, "s"); // by offset, then name
  EXPECT_EQ(f->tensors()[1].name, "e1");
  EXPECT_EQ(f->tensors()[2].name, "e2");
  EXPECT_EQ(f->tensors()[3].name, "x");
}

TEST(SafetensorsReader, FileLevelErrorsNameTheFile) {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  EXPECT_EQ(open_error(dir, "abc"), p + ": file is 3 bytes, too short for a safetensors header");
  EXPECT_EQ(open_error(dir, raw_safetensors("{}", "", 1000)),
            p + ": header length 1000 runs past the end of the file (10 bytes)");
  EXPECT_EQ(open_error(dir, raw_safetensors("{}", "", 100000001)),
            p + ": header length 100000001 exceeds the safetensors limit of 100000000 bytes");
  EXPECT_EQ(open_error(dir, raw_safetensors("{}", "", UINT64_MAX - 1)),
            p + ": header length 18446744073709551614 exceeds the safetensors limit of 100000000 bytes");
  EXPECT_EQ(open_error(dir, raw_safetensors(" {}")), p + ": header does not start with '{'");
  EXPECT_EQ(open_error(dir, raw_safetensors("")), p + ": header does not start with '{'");
  EXPECT_EQ(open_error(dir, raw_safetensors("{\"a\":")),
            p + ": header is not valid JSON: parse error at line 1, column 6: syntax error while parsing value - "
                "unexpected end of input; expected '[', '{', or a literal");
  EXPECT_EQ(open_error(dir, raw_safetensors("{} trailing")),
            p + ": header is not valid JSON: parse error at line 1, column 6: syntax error while parsing value - "
                "invalid literal; last read: '{} tra'; expected end of input");
  EXPECT_EQ(open_error(dir, raw_safetensors("{\"__metadata__\":[]}")),
            p + ": '__metadata__' is an array, not an object");
  EXPECT_EQ(open_error(dir, raw_safetensors("{\"__metadata__\":{\"step\":3}}")),
            p + ": '__metadata__' value of 'step' is 3, not a string");
  EXPECT_EQ(SafetensorsFile::open(dir / "missing.safetensors").status().message(),
            dir / "missing.safetensors: cannot open: No such file or directory");
  EXPECT_EQ(SafetensorsFile::open(dir.path()).status().message(), dir.path() + ": not a regular file");
}

TEST(SafetensorsReader, TensorErrorsNameTheFileAndTheTensor) {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  const std::string data(64, '\0');
  auto err = [&](const std::string &entries) {
    return open_error(dir, raw_safetensors("{" + entries + "}", data));
  };
  const std::string w = p + ": tensor 'w': ";
  EXPECT_EQ(err(entry("w", "F17", "[2]", 0, 8)), w + "unknown dtype 'F17'");
  EXPECT_EQ(err(entry("w", "f32", "[2]", 0, 8)), w + "unknown dtype 'f32'");
  EXPECT_EQ(err(entry("w", "F32", "[3]", 0, 8)),
            w + "data_offsets [0, 8] span 8 bytes but shape [3] of F32 needs 12");
  EXPECT_EQ(err(entry("w", "F32", "[4,4]", 8, 72)),
            w + "data_offsets [8, 72] end past the data region (64 bytes)");
  EXPECT_EQ(err(entry("w", "U8", "[0]", 99, 99)),
            w + "data_offsets [99, 99] end past the data region (64 bytes)");
  EXPECT_EQ(err(entry("w", "F32", "[2]", 8, 0)), w + "data_offsets [8, 0] are reversed");
  EXPECT_EQ(err(entry("w", "F32", "[-2]", 0, 8)), w + "'shape' element 0 is -2, not a non-negative integer");
  EXPECT_EQ(err(entry("w", "F32", "[2.0]", 0, 8)), w + "'shape' element 0 is 2.0, not a non-negative integer");
  EXPECT_EQ(err(entry("w", "F32", "[9223372036854775808]", 0, 8)),
            w + "'shape' element 0 (9223372036854775808) is too large");
  EXPECT_EQ(err(entry("w", "F32", "[4294967296,4294967296]", 0, 8)),
            w + "shape [4294967296, 4294967296] of F32 overflows int64 when multiplied out");
  // Multiplied in order, as the safetensors crate does: a later 0 does not undo the overflow.
  EXPECT_EQ(err(entry("w", "U8", "[4294967296,4294967296,0]", 0, 0)),
            w + "shape [4294967296, 4294967296, 0] of U8 overflows int64 when multiplied out");
  EXPECT_TRUE(parse_safetensors_header("{" + entry("w", "U8", "[0,4294967296,4294967296]", 0, 0) + "}", 0, "x").ok());
  EXPECT_EQ(err(entry("w", "F32", "{}", 0, 8)), w + "'shape' is an object, not an array");
  EXPECT_EQ(err("\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}"),
            w + "'data_offsets' must be [begin, end] of non-negative integers");
  EXPECT_EQ(err("\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}"),
            w + "'data_offsets' must be [begin, end] of non-negative integers");
  EXPECT_EQ(err("\"w\":{\"dtype\":\"F32\",\"shape\":[2]}"), w + "missing 'data_offsets'");
  EXPECT_EQ(err("\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}"), w + "missing 'dtype'");
  EXPECT_EQ(err("\"w\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}"),
            w + "'dtype' is 7, not a string");
  EXPECT_EQ(err("\"w\":\"F32\""), w + "entry is the string 'F32', not an object");
  EXPECT_EQ(err(entry("a", "F32", "[4]", 0, 16) + "," + entry("w", "F32", "[4]", 8, 24)),
            p + ": tensors 'a' [0, 16] and 'w' [8, 24] overlap");
  EXPECT_EQ(err(entry("w", "F32", "[8]", 0, 32) + "," + entry("inner", "F32", "[2]", 8, 16)),
            p + ": tensors 'w' [0, 32] and 'inner' [8, 16] overlap");
  EXPECT_EQ(err(entry("w", "F32", "[2]", 0, 8) + "," + entry("w", "F32", "[2]", 8, 16)),
            p + ": header has duplicate key 'w'");
  EXPECT_EQ(err("\"w\":{\"dtype\":\"F32\",\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,8]}"),
            p + ": header has duplicate key 'dtype'");
  EXPECT_EQ(err("\"w\":{\"dtype\":\"F32\",\"shape\":[[[[[[[[[[[[[[[[2]]]]]]]]]]]]]]]],\"data_offsets\":[0,8]}"),
            p + ": header is not valid JSON: nesting deeper than 16 levels");
}

TEST(SafetensorsReader, TruncatedFileNamesTheTensor) {
  TempDir dir;
  std::string full = two_tensors();
  EXPECT_EQ(open_error(dir, full.substr(0, full.size() - 3)),
            dir / "bad.safetensors: tensor 'b': data_offsets [16, 32] end past the data region (29 bytes)");
  // Cut inside the header.
  EXPECT_EQ(open_error(dir, full.substr(0, 40)),
            dir / "bad.safetensors: header length " + std::to_string(full.size() - 40) +
                " runs past the end of the file (40 bytes)");
}

TEST(SafetensorsRules, ErrorsSayWhichRuleTensorAndNumbers) {
  // What the compiler turns into its own diagnostics: the rule, the tensor
  // and the offsets, besides the message.
  st::Header h;
  st::Error e = st::parse_header("{" + entry("a", "U8", "[8]", 4, 12) + "," + entry("b", "U8", "[8]", 0, 8) + "}", 16, h);
  EXPECT_EQ(e.rule, st::Rule::overlap);
  EXPECT_EQ(e.tensor, "a");
  EXPECT_EQ(e.other, "b");
  EXPECT_EQ(e.begin, 4u);
  EXPECT_EQ(e.end, 12u);
  EXPECT_EQ(e.message, "tensors 'b' [0, 8] and 'a' [4, 12] overlap");
  e = st::parse_header("{" + entry("w", "U8", "[8]", 4, 12) + "}", 10, h);
  EXPECT_EQ(e.rule, st::Rule::past_data);
  EXPECT_EQ(e.tensor, "w");
  EXPECT_EQ(e.end, 12u);
  e = st::parse_header("{" + entry("w", "Q4", "[8]", 0, 8) + "}", 10, h);
  EXPECT_EQ(e.rule, st::Rule::unknown_dtype);
  e = st::parse_header("{\"x\":1,\"x\":2}", 0, h);
  EXPECT_EQ(e.rule, st::Rule::not_json);
  EXPECT_EQ(e.message, "header has duplicate key 'x'");
  EXPECT_TRUE(st::parse_header("{" + entry("w", "F8_E5M2", "[2,4]", 0, 8) + "}", 8, h).ok());
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors[0].shape, (std::vector<std::int64_t>{2, 4}));
  EXPECT_EQ(st::check_header_length(100, 93).message, "header length 93 runs past the end of the file (100 bytes)");
  EXPECT_TRUE(st::check_header_length(100, 92).ok());
  // The rules' dtype table is the runtime's DType, in order.
  for (DType d : all_dtypes())
    EXPECT_EQ(st::dtype_size(dtype_name(d)), dtype_size(d)) << dtype_name(d);
  EXPECT_EQ(st::dtype_size("bf16"), 0u);
}

TEST(SafetensorsReader, MalformedHeadersNeverCrash) {
  // Every prefix of a valid header, and every single-byte corruption of it,
  // opens or fails with a message naming the file; none crashes.
  TempDir dir;
  std::string full = two_tensors();
  std::size_t header_end = full.size() - 32;
  for (std::size_t cut = 8; cut < header_end; ++cut) {
    std::string bytes = full.substr(0, 8) + full.substr(8, cut - 8) + std::string(32, '\0');
    bytes[0] = char(cut - 8);
    write_file(dir / "x.safetensors", bytes);
    Result<SafetensorsFile> f = SafetensorsFile::open(dir / "x.safetensors");
    if (!f.ok()) {
      EXPECT_EQ(f.status().message().rfind(dir / "x.safetensors: ", 0), 0u) << f.status().message();
    }
  }
  for (std::size_t i = 8; i < header_end; ++i) {
    for (char c : {'\0', '"', '}', '9', '\xff', ','}) {
      std::string bytes = full;
      bytes[i] = c;
      write_file(dir / "x.safetensors", bytes);
      Result<SafetensorsFile> f = SafetensorsFile::open(dir / "x.safetensors");
      if (!f.ok()) {
        EXPECT_EQ(f.status().message().rfind(dir / "x.safetensors: ", 0), 0u) << f.status().message();
      }
    }
  }
}

TEST(SafetensorsReader, ReadRange) {
  TempDir dir;
  write_file(dir / "ok.safetensors", two_tensors());
  Result<SafetensorsFile> f = SafetensorsFile::open(dir / "ok.safetensors");
  ASSERT_TRUE(f.ok());
  const std::string data = atp_test::value_bytes(7, 32);
  std::string buf(16, '#');
  ASSERT_TRUE(f->read_range("b", 4, 8, &buf[4]).ok());
  EXPECT_EQ(buf, "####" + data.substr(20, 8) + "####"); // nothing outside the range written
  ASSERT_TRUE(f->read_range("a", 0, 16, buf.data()).ok());
  EXPECT_EQ(buf, data.substr(0, 16));
  EXPECT_TRUE(f->read_range("a", 16, 0, buf.data()).ok());

  const std::string p = dir / "ok.safetensors";
  EXPECT_EQ(f->read_range("a", 8, 9, buf.data()).message(),
            p + ": tensor 'a': bytes [8, 8 + 9) are outside its 16 bytes");
  EXPECT_EQ(f->read_range("a", 17, 0, buf.data()).message(),
            p + ": tensor 'a': bytes [17, 17 + 0) are outside its 16 bytes");
  EXPECT_EQ(f->read_range("a", 8, UINT64_MAX, buf.data()).message(),
            p + ": tensor 'a': bytes [8, 8 + 18446744073709551615) are outside its 16 bytes");
  EXPECT_EQ(f->read_range("zz", 0, 1, buf.data()).message(), p + ": tensor 'zz' is not in this file");

  // Truncated after it was opened: pread reports it (the mapping would SIGBUS).
  ASSERT_EQ(truncate(p.c_str(), std::int64_t(f->data_offset() + 20)), 0);
  EXPECT_EQ(f->read_range("b", 0, 16, buf.data()).message(),
            p + ": tensor 'b': file ended at byte " + std::to_string(f->data_offset() + 20) +
                " (was it truncated after it was opened?)");
}

// ---------------------------------------------------------------- checkpoints

namespace {
/// shard1: a, b; shard2: c (F32 [2]).
void write_two_shards(const TempDir &dir) {
  write_file(dir / "model-00001-of-00002.safetensors",
             raw_safetensors("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 8, 16) + "}",
                             atp_test::value_bytes(1, 16)));
  write_file(dir / "model-00002-of-00002.safetensors",
             raw_safetensors("{" + entry("c", "F32", "[2]", 0, 8) + "}", atp_test::value_bytes(2, 8)));
}
std::string index_json(const std::string &weight_map) {
  return "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {" + weight_map + "}}";
}
const std::string kGoodMap = "\"a\": \"model-00001-of-00002.safetensors\", "
                             "\"b\": \"model-00001-of-00002.safetensors\", "
                             "\"c\": \"model-00002-of-00002.safetensors\"";
std::string checkpoint_error(const std::string &path) {
  Result<Checkpoint> c = Checkpoint::open(path);
  EXPECT_FALSE(c.ok()) << path;
  return c.ok() ? "" : c.status().message();
}
} // namespace

TEST(Checkpoint, OpensAFileAnIndexOrAFolder) {
  TempDir dir;
  write_two_shards(dir);
  write_file(dir / "model.safetensors.index.json", index_json(kGoodMap));
  for (const std::string &path : {dir / "model.safetensors.index.json", dir.path()}) {
    Result<Checkpoint> c = Checkpoint::open(path);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->index_path(), dir / "model.safetensors.index.json");
    EXPECT_EQ(c->files().size(), 2u);
    ASSERT_EQ(c->size(), 3u);
    std::vector<std::string> names;
    for (const TensorInfo *t : c->tensors())
      names.push_back(t->name);
    EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(c->file_of("c")->path(), dir / "model-00002-of-00002.safetensors");
    std::string buf(8, '\0');
    ASSERT_TRUE(c->read_range("c", 0, 8, buf.data()).ok());
    EXPECT_EQ(buf, atp_test::value_bytes(2, 8));
    Result<HostTensor> b = c->read("b");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(b->data()), 8), atp_test::value_bytes(1, 16).substr(8));
    EXPECT_EQ(c->read_range("zz", 0, 1, buf.data()).message(), path + ": tensor 'zz' is not in this checkpoint");
  }
  Result<Checkpoint> one = Checkpoint::open(dir / "model-00002-of-00002.safetensors");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  EXPECT_EQ(one->index_path(), "");
}

// A folder is read as transformers reads it: model.safetensors, else the
// files model.safetensors.index.json names; other .safetensors files are not
// the model's, and shards with no index are not a checkpoint transformers loads.
TEST(Checkpoint, FolderReadsOnlyWhatTransformersReads) {
  TempDir dir;
  write_two_shards(dir);
  EXPECT_EQ(checkpoint_error(dir.path()),
            dir.path() + ": has no model.safetensors and no model.safetensors.index.json, only "
                         "'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', which "
                         "transformers' from_pretrained would not load either; name the file or index to read");
  // With the index, a stray file (here holding 'a' again) is left alone.
  write_file(dir / "tokens.safetensors",
             raw_safetensors("{" + entry("a", "F32", "[2]", 0, 8) + "}", std::string(8, '\0')));
  write_file(dir / "model.safetensors.index.json", index_json(kGoodMap));
  Result<Checkpoint> c = Checkpoint::open(dir.path());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->size(), 3u);
  EXPECT_EQ(c->files().size(), 2u);
  EXPECT_EQ(c->file_of("a")->path(), dir / "model-00001-of-00002.safetensors");
  EXPECT_EQ(*checkpoint_file(dir.path()), dir / "model.safetensors.index.json");
  // model.safetensors comes first, as in from_pretrained: the index is not read.
  write_file(dir / "model.safetensors",
             raw_safetensors("{" + entry("w", "F32", "[2]", 0, 8) + "}", atp_test::value_bytes(3, 8)));
  c = Checkpoint::open(dir.path());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->size(), 1u);
  EXPECT_EQ(c->index_path(), "");
  ASSERT_NE(c->find("w"), nullptr);
  EXPECT_EQ(*checkpoint_file(dir.path()), dir / "model.safetensors");
  // A file is read as given.
  EXPECT_EQ(*checkpoint_file(dir / "tokens.safetensors"), dir / "tokens.safetensors");
}

TEST(Checkpoint, IndexErrorsNameTheIndexAndTheTensor) {
  TempDir dir;
  write_two_shards(dir);
  const std::string idx = dir / "model.safetensors.index.json";
  auto with_map = [&](const std::string &map) {
    write_file(idx, index_json(map));
    return checkpoint_error(idx);
  };
  EXPECT_EQ(with_map(kGoodMap + ", \"d\": \"model-00003-of-00003.safetensors\""),
            idx + ": shard 'model-00003-of-00003.safetensors' (holding 'd'): " +
                dir / "model-00003-of-00003.safetensors: cannot open: No such file or directory");
  EXPECT_EQ(with_map(kGoodMap + ", \"d\": \"model-00002-of-00002.safetensors\""),
            idx + ": tensor 'd' is mapped to shard 'model-00002-of-00002.safetensors', which does not contain it");
  EXPECT_EQ(with_map("\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\", "
                     "\"c\": \"model-00002-of-00002.safetensors\""),
            idx + ": tensor 'b' is mapped to shard 'model-00002-of-00002.safetensors', which does not contain it "
                  "(it is in '" + dir / "model-00001-of-00002.safetensors')");
  EXPECT_EQ(with_map("\"a\": \"model-00001-of-00002.safetensors\", \"c\": \"model-00002-of-00002.safetensors\""),
            dir / "model-00001-of-00002.safetensors: tensor 'b' is not listed in the weight_map of '" + idx + "'");
  EXPECT_EQ(with_map("\"a\": \"/etc/passwd\""),
            idx + ": tensor 'a' is mapped to '/etc/passwd', which is not a file name relative to the index's folder");
  EXPECT_EQ(with_map("\"a\": \"../x.safetensors\""),
            idx + ": tensor 'a' is mapped to '../x.safetensors', which is not a file name relative to the index's folder");
  EXPECT_EQ(with_map("\"a\": 3"), idx + ": 'weight_map' value of 'a' is 3, not a string");
  write_file(idx, "{\"metadata\": {}}");
  EXPECT_EQ(checkpoint_error(idx), idx + ": index has no 'weight_map'");
  write_file(idx, "{\"weight_map\": []}");
  EXPECT_EQ(checkpoint_error(idx), idx + ": 'weight_map' is an array, not an object");
  write_file(idx, "{\"weight_map\": {}, \"metadata\": 5}");
  EXPECT_EQ(checkpoint_error(idx), idx + ": 'metadata' is 5, not an object");
  write_file(idx, "{\"weight_map\": {");
  EXPECT_EQ(checkpoint_error(idx),
            idx + ": index is not valid JSON: parse error at line 1, column 17: syntax error while parsing object key - "
                  "unexpected end of input; expected string literal");
  write_file(idx, "{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}");
  EXPECT_EQ(checkpoint_error(idx), idx + ": index has duplicate key 'a'");
  // A bad shard is reported through the index.
  write_file(dir / "model-00002-of-00002.safetensors", "short");
  write_file(idx, index_json(kGoodMap));
  EXPECT_EQ(checkpoint_error(idx),
            idx + ": shard 'model-00002-of-00002.safetensors' (holding 'c'): " + dir /
                "model-00002-of-00002.safetensors: file is 5 bytes, too short for a safetensors header");
}

TEST(Checkpoint, FolderErrors) {
  TempDir dir;
  EXPECT_EQ(checkpoint_error(dir.path()),
            dir.path() + ": has no model.safetensors and no model.safetensors.index.json");
  write_file(dir / "a.safetensors.index.json", "{}");
  write_file(dir / "b.safetensors.index.json", "{}");
  EXPECT_EQ(checkpoint_error(dir.path()),
            dir.path() + ": has no model.safetensors and no model.safetensors.index.json, only "
                         "'a.safetensors.index.json', 'b.safetensors.index.json', which transformers' "
                         "from_pretrained would not load either; name the file or index to read");
  EXPECT_EQ(checkpoint_error(dir / "nothing"), dir / "nothing: cannot open: No such file or directory");
}
