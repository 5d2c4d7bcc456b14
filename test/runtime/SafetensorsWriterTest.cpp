/* Writing safetensors: bytes identical to the reference implementation's,
   write -> read round trips byte-identical (single file and sharded), the
   index text as transformers writes it, and refusals that leave no file. */
#include "atp/safetensors.h"
#include "atp/safetensors_writer.h"

#include "CoreTestUtil.h"

#include <gtest/gtest.h>

using namespace atp;
using atp_test::TempDir;

namespace {

/// A mix of dtypes and shapes: scalars, empty tensors, odd sizes.
std::vector<TensorDecl> sample_decls() {
  return {
      {"model.embed_tokens.weight", DType::BF16, {37, 16}},
      {"model.layers.0.self_attn.q_proj.weight", DType::F32, {16, 16}},
      {"model.layers.0.self_attn.q_proj.bias", DType::F32, {16}},
      {"model.layers.0.mlp.gate_up_proj.weight", DType::F16, {2, 24, 16}},
      {"empty", DType::I64, {0, 5}},
      {"step", DType::I64, {}},
      {"mask", DType::BOOL, {3, 3}},
      {"scale_fp8", DType::F8_E4M3, {7}},
      {"ids", DType::U16, {5}},
      {"double", DType::F64, {3}},
  };
}

/// Tensor i's bytes: value_bytes(seed = 1000 + i, its size).
std::string tensor_bytes(const std::vector<TensorDecl> &decls, std::size_t i) {
  return atp_test::value_bytes(1000 + i, tensor_nbytes(decls[i].dtype, decls[i].shape).value());
}

/// Writes every tensor in pieces of at most `piece` bytes.
template <class Writer>
void write_all(Writer &w, const std::vector<TensorDecl> &decls, std::size_t piece) {
  for (std::size_t i = 0; i < decls.size(); ++i) {
    std::string bytes = tensor_bytes(decls, i);
    for (std::size_t off = 0; off < bytes.size(); off += piece) {
      Status st = w.write(decls[i].name, bytes.data() + off, std::min(piece, bytes.size() - off));
      ASSERT_TRUE(st.ok()) << st.message();
    }
  }
}

void expect_checkpoint_holds(const Checkpoint &c, const std::vector<TensorDecl> &decls) {
  ASSERT_EQ(c.size(), decls.size());
  for (std::size_t i = 0; i < decls.size(); ++i) {
    SCOPED_TRACE(decls[i].name);
    const TensorInfo *t = c.find(decls[i].name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, decls[i].dtype);
    EXPECT_EQ(t->shape, decls[i].shape);
    std::string expected = tensor_bytes(decls, i);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(t->data), t->nbytes()), expected);
    std::string viaread(expected.size(), '\0');
    ASSERT_TRUE(c.read_range(decls[i].name, 0, viaread.size(), viaread.data()).ok());
    EXPECT_EQ(viaread, expected);
  }
}

} // namespace

// ---------------------------------------------------------------- header bytes

TEST(SafetensorsWriter, HeaderMatchesTheReferenceImplementation) {
  // Test vectors of the safetensors crate (tensor.rs: test_empty and
  // test_serialization_forced_alignement).
  Result<std::string> empty = safetensors_header_bytes({}, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  Result<std::string> meta = safetensors_header_bytes({}, {{"framework", "pt"}});
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(*meta, std::string("\x28\0\0\0\0\0\0\0", 8) + "{\"__metadata__\":{\"framework\":\"pt\"}}     ");
  Result<std::string> attn = safetensors_header_bytes({{"attn0", DType::F32, {1, 1, 2, 3}}}, {});
  ASSERT_TRUE(attn.ok());
  EXPECT_EQ(*attn, std::string("\x48\0\0\0\0\0\0\0", 8) +
                       "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ");
}

TEST(SafetensorsWriter, HeaderEscapesNamesAndMetadata) {
  Result<std::string> h = safetensors_header_bytes({{"a\"b\\c\n\xC3\xA9", DType::U8, {1}}},
                                                   {{"z", "1"}, {"a", "tab\there"}});
  ASSERT_TRUE(h.ok());
  const std::string json = "{\"__metadata__\":{\"a\":\"tab\\there\",\"z\":\"1\"},"
                           "\"a\\\"b\\\\c\\n\xC3\xA9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  EXPECT_EQ(h->substr(8), json + std::string((8 - json.size() % 8) % 8, ' '));
  EXPECT_EQ(h->size() % 8, 0u);
}

TEST(SafetensorsWriter, HeaderEscapesAsSerdeJson) {
  // serde_json's compact form: '"' and '\\' escaped, \b \f \n \r \t by name,
  // other bytes below 0x20 as \u00xx, '/', 0x7f and UTF-8 as they are.
  Result<std::string> h = safetensors_header_bytes({{"a\"\\/\b\f\n\r\t\x01\x1f\x7f\xC3\xA9", DType::U8, {1}}}, {});
  ASSERT_TRUE(h.ok()) << h.status().message();
  const std::string want = "{\"a\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xC3\xA9\":{";
  EXPECT_EQ(h->substr(8, want.size()), want);
  EXPECT_EQ(safetensors_header_bytes({{"bad\xFF", DType::U8, {1}}}, {}).status().message(),
            "tensor name 'bad\xFF' is not valid UTF-8");
  EXPECT_EQ(safetensors_header_bytes({}, {{"k", "\xC3"}}).status().message(), "metadata 'k' is not valid UTF-8");
}

TEST(SafetensorsWriter, BadDeclarationsAreRefused) {
  EXPECT_EQ(safetensors_header_bytes({{"a", DType::F32, {1}}, {"a", DType::F32, {2}}}, {}).status().message(),
            "tensor 'a' is declared twice");
  EXPECT_EQ(safetensors_header_bytes({{"__metadata__", DType::F32, {1}}}, {}).status().message(),
            "tensor name '__metadata__' is reserved for the metadata");
  EXPECT_EQ(safetensors_header_bytes({{"w", DType::F32, {-1}}}, {}).status().message(),
            "tensor 'w': shape [-1] of F32 has a negative dimension or more than 2^63 bytes");
  const std::int64_t big = std::int64_t(1) << 60;
  EXPECT_EQ(safetensors_header_bytes({{"a", DType::U8, {big}}, {"b", DType::U8, {big}}, {"c", DType::U8, {big}},
                                      {"d", DType::U8, {big}}, {"e", DType::U8, {big}}, {"f", DType::U8, {big}},
                                      {"g", DType::U8, {big}}, {"h", DType::U8, {big}}, {"i", DType::U8, {big}}},
                                     {})
                .status()
                .message(),
            "tensor 'i': the tensors add up to more than 2^63 bytes");
}

// ---------------------------------------------------------------- one file

TEST(SafetensorsWriter, RoundTripIsByteIdentical) {
  TempDir dir;
  const std::vector<TensorDecl> decls = sample_decls();
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"atp.tp_rank", "1"}};
  const std::string path = dir / "model.safetensors";
  {
    Result<SafetensorsWriter> w = SafetensorsWriter::create(path, decls, meta);
    ASSERT_TRUE(w.ok()) << w.status().message();
    write_all(*w, decls, 100);
    EXPECT_TRUE(dir.entries().size() == 1 && dir.entries()[0] != "model.safetensors");
    ASSERT_TRUE(w->commit().ok());
  }
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"model.safetensors"}));

  // The file is the header followed by the tensors in declared order.
  std::string expected = *safetensors_header_bytes(decls, meta);
  for (std::size_t i = 0; i < decls.size(); ++i)
    expected += tensor_bytes(decls, i);
  EXPECT_EQ(atp_test::read_file(path), expected);

  Result<Checkpoint> c = Checkpoint::open(path);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->metadata(), meta);
  expect_checkpoint_holds(*c, decls);

  // Read -> write again gives the same bytes.
  const std::string again = dir / "again.safetensors";
  std::vector<TensorDecl> read_decls;
  for (const TensorInfo *t : c->tensors())
    read_decls.push_back({t->name, t->dtype, t->shape});
  Result<SafetensorsWriter> w2 = SafetensorsWriter::create(again, read_decls, c->metadata());
  ASSERT_TRUE(w2.ok());
  for (const TensorInfo *t : c->tensors())
    ASSERT_TRUE(w2->write(t->name, t->data, t->nbytes()).ok());
  ASSERT_TRUE(w2->commit().ok());
  EXPECT_EQ(atp_test::read_file(again), expected);
}

TEST(SafetensorsWriter, OrderAndSizeAreEnforced) {
  TempDir dir;
  const std::string path = dir / "x.safetensors";
  Result<SafetensorsWriter> w =
      SafetensorsWriter::create(path, {{"a", DType::U8, {4}}, {"z", DType::U8, {0}}, {"b", DType::U8, {2}}});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->write("b", "xx", 2).message(),
            path + ": tensor 'b' written while 'a' is next (0 of its 4 bytes written)");
  ASSERT_TRUE(w->write("a", "123", 3).ok());
  EXPECT_EQ(w->write("a", "45", 2).message(),
            path + ": tensor 'a': writing 2 bytes after 3 goes past its 4 bytes");
  EXPECT_EQ(w->commit().message(), path + ": tensor 'a': 3 of its 4 bytes written");
  ASSERT_TRUE(w->write("a", "4", 1).ok());
  EXPECT_EQ(w->write("q", "4", 1).message(), path + ": tensor 'q' is not declared");
  EXPECT_EQ(w->commit().message(), path + ": tensor 'b': 0 of its 2 bytes written");
  ASSERT_TRUE(w->write("b", "56", 2).ok()); // 'z' has no bytes and needs no call
  EXPECT_EQ(w->write("a", "", 0).message(),
            path + ": tensor 'a' was written already (tensors go in declared order)");
  ASSERT_TRUE(w->commit().ok());
  Result<SafetensorsFile> f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(f->find("a")->data), 4), "1234");
}

TEST(SafetensorsWriter, AbandonedOrFailedWritesLeaveNoFile) {
  TempDir dir;
  atp_test::write_file(dir / "keep.safetensors", "previous");
  {
    Result<SafetensorsWriter> w = SafetensorsWriter::create(dir / "keep.safetensors", {{"a", DType::U8, {4}}});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->write("a", "12", 2).ok());
    EXPECT_FALSE(w->commit().ok()); // incomplete
  } // destroyed before a successful commit
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"keep.safetensors"}));
  EXPECT_EQ(atp_test::read_file(dir / "keep.safetensors"), "previous");

  Result<SafetensorsWriter> bad = SafetensorsWriter::create(dir / "no/such/x.safetensors", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(dir / "no/such/x.safetensors: cannot create"), std::string::npos);
  Result<SafetensorsWriter> dup =
      SafetensorsWriter::create(dir / "d.safetensors", {{"a", DType::U8, {1}}, {"a", DType::U8, {1}}});
  EXPECT_EQ(dup.status().message(), dir / "d.safetensors: tensor 'a' is declared twice");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"keep.safetensors"}));
}

// ---------------------------------------------------------------- sharded

TEST(ShardedWriter, PlanKeepsOrderAndBound) {
  auto decl = [](std::int64_t n) { return TensorDecl{"t", DType::U8, {n}}; };
  EXPECT_EQ(plan_shards({decl(4), decl(4), decl(4), decl(9), decl(1), decl(10), decl(0)}, 8),
            (std::vector<std::size_t>{0, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(plan_shards({decl(20), decl(1)}, 8), (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(plan_shards({decl(1), decl(20), decl(1)}, 8), (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_TRUE(plan_shards({}, 8).empty());
}

TEST(ShardedWriter, IndexTextIsTransformersFormat) {
  std::vector<TensorDecl> decls = {{"b", DType::U8, {1}}, {"a", DType::U8, {2}}, {"\xC3\xA9", DType::U8, {3}}};
  EXPECT_EQ(safetensors_index_json(decls, {"m-2.safetensors", "m-1.safetensors", "m-2.safetensors"}, 6,
                                   {{"fingerprint", "abc"}}),
            "{\n"
            "  \"metadata\": {\n"
            "    \"fingerprint\": \"abc\",\n"
            "    \"total_size\": 6\n"
            "  },\n"
            "  \"weight_map\": {\n"
            "    \"a\": \"m-1.safetensors\",\n"
            "    \"b\": \"m-2.safetensors\",\n"
            "    \"\\u00e9\": \"m-2.safetensors\"\n"
            "  }\n"
            "}\n");
  EXPECT_EQ(safetensors_index_json({}, {}, 0, {}),
            "{\n  \"metadata\": {\n    \"total_size\": 0\n  },\n  \"weight_map\": {}\n}\n");
}

TEST(ShardedWriter, IndexEscapesAsPythonEnsureAscii) {
  // json.dumps(ensure_ascii=True): 0x7f and non-ASCII as \uxxxx, a surrogate
  // pair above U+FFFF, lower-case hex.
  std::vector<TensorDecl> decls = {{"a\"\\\n\x01\x7f\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", DType::U8, {1}}};
  EXPECT_EQ(safetensors_index_json(decls, {"m.safetensors"}, 1, {}),
            "{\n  \"metadata\": {\n    \"total_size\": 1\n  },\n  \"weight_map\": {\n"
            "    \"a\\\"\\\\\\n\\u0001\\u007f\\u00e9\\u20ac\\ud83d\\ude00\": \"m.safetensors\"\n  }\n}\n");
}

TEST(ShardedWriter, RoundTripIsByteIdentical) {
  TempDir dir;
  const std::vector<TensorDecl> decls = sample_decls();
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  ShardOptions opt;
  opt.max_shard_bytes = 1100; // the 1184-byte embedding is alone; the rest split
  std::vector<std::size_t> plan = plan_shards(decls, opt.max_shard_bytes);
  const std::size_t nshards = plan.back() + 1;
  ASSERT_GE(nshards, 3u);
  {
    Result<ShardedSafetensorsWriter> w = ShardedSafetensorsWriter::create(dir.path(), decls, meta, opt);
    ASSERT_TRUE(w.ok()) << w.status().message();
    write_all(*w, decls, 333);
    for (const std::string &name : dir.entries())
      EXPECT_EQ(name[0], '.') << "only temporaries before commit: " << name;
    ASSERT_TRUE(w->commit().ok());
    EXPECT_EQ(w->paths().size(), nshards + 1);
  }
  std::vector<std::string> expected_files;
  for (std::size_t s = 1; s <= nshards; ++s)
    expected_files.push_back("model-0000" + std::to_string(s) + "-of-0000" + std::to_string(nshards) +
                             ".safetensors");
  expected_files.push_back("model.safetensors.index.json");
  EXPECT_EQ(dir.entries(), expected_files);

  // Each shard holds its planned tensors, byte for byte, in declared order.
  std::uint64_t total = 0;
  std::vector<std::string> shard_of_tensor;
  for (std::size_t s = 0; s < nshards; ++s) {
    std::vector<TensorDecl> mine;
    std::string data;
    for (std::size_t i = 0; i < decls.size(); ++i)
      if (plan[i] == s) {
        mine.push_back(decls[i]);
        data += tensor_bytes(decls, i);
      }
    EXPECT_EQ(atp_test::read_file(dir / expected_files[s]), *safetensors_header_bytes(mine, meta) + data);
    total += data.size();
  }
  for (std::size_t i = 0; i < decls.size(); ++i)
    shard_of_tensor.push_back(expected_files[plan[i]]);
  EXPECT_EQ(atp_test::read_file(dir / "model.safetensors.index.json"),
            safetensors_index_json(decls, shard_of_tensor, total, {}));

  for (const std::string &path : {dir.path(), dir / "model.safetensors.index.json"}) {
    Result<Checkpoint> c = Checkpoint::open(path);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->metadata(), meta);
    expect_checkpoint_holds(*c, decls);
  }
}

TEST(ShardedWriter, OneShardIsASingleFile) {
  TempDir dir;
  const std::vector<TensorDecl> decls = sample_decls();
  Result<ShardedSafetensorsWriter> w = ShardedSafetensorsWriter::create(dir.path(), decls);
  ASSERT_TRUE(w.ok());
  write_all(*w, decls, 1 << 20);
  ASSERT_TRUE(w->commit().ok());
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"model.safetensors"}));
  Result<Checkpoint> c = Checkpoint::open(dir.path());
  ASSERT_TRUE(c.ok());
  expect_checkpoint_holds(*c, decls);

  TempDir dir2;
  ShardOptions opt;
  opt.single_file_if_fits = false;
  opt.prefix = "pytorch_model";
  Result<ShardedSafetensorsWriter> w2 = ShardedSafetensorsWriter::create(dir2.path(), decls, {}, opt);
  ASSERT_TRUE(w2.ok());
  write_all(*w2, decls, 1 << 20);
  ASSERT_TRUE(w2->commit().ok());
  EXPECT_EQ(dir2.entries(), (std::vector<std::string>{"pytorch_model-00001-of-00001.safetensors",
                                                      "pytorch_model.safetensors.index.json"}));
  // transformers reads only model.safetensors[.index.json] from a folder; the index is opened by name.
  ASSERT_TRUE(Checkpoint::open(dir2 / "pytorch_model.safetensors.index.json").ok());
}

TEST(ShardedWriter, AbandonedOrOutOfOrderLeavesNoFile) {
  TempDir dir;
  const std::vector<TensorDecl> decls = sample_decls();
  ShardOptions opt;
  opt.max_shard_bytes = 1100;
  {
    Result<ShardedSafetensorsWriter> w = ShardedSafetensorsWriter::create(dir.path(), decls, {}, opt);
    ASSERT_TRUE(w.ok());
    std::string emb = tensor_bytes(decls, 0);
    ASSERT_TRUE(w->write(decls[0].name, emb.data(), emb.size()).ok());
    std::string q = tensor_bytes(decls, 1);
    ASSERT_TRUE(w->write(decls[1].name, q.data(), q.size()).ok()); // second shard opened
    EXPECT_EQ(w->write(decls[0].name, "", 0).message(),
              dir.path() + ": tensor 'model.embed_tokens.weight' written after the tensors after it");
    EXPECT_EQ(w->write("nope", "", 0).message(), dir.path() + ": tensor 'nope' is not declared");
    std::string skipped = tensor_bytes(decls, 6);
    EXPECT_FALSE(w->write(decls[6].name, skipped.data(), skipped.size()).ok());
    EXPECT_FALSE(w->commit().ok()); // incomplete
  }
  EXPECT_TRUE(dir.entries().empty());

  Result<ShardedSafetensorsWriter> missing =
      ShardedSafetensorsWriter::create(dir / "no/such", decls, {}, opt);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot create the temporary file"), std::string::npos);
  opt.prefix = "a/b";
  EXPECT_EQ(ShardedSafetensorsWriter::create(dir.path(), decls, {}, opt).status().message(),
            dir.path() + ": file name prefix 'a/b' must be a non-empty name without '/'");
  EXPECT_TRUE(dir.entries().empty());
}
