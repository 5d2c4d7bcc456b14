//===- SafetensorsHeaderTest.cpp - tests for SafetensorsHeader ------------===//
//
// Writes tiny .safetensors files (8-byte length, JSON header, zero data) and
// index files to a temporary folder and checks the inventory and every error.
//
//===----------------------------------------------------------------------===//

#include "Model/SafetensorsHeader.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <string>

using namespace llvm;
using namespace autotpc;

namespace {

/// The message of an Expected that should have failed, or "<success>".
template <typename T> std::string errorOf(Expected<T> E) {
  if (E)
    return "<success>";
  return toString(E.takeError());
}

std::vector<std::string> namesOf(const SafetensorsInventory &Inv) {
  std::vector<std::string> Names;
  for (const StoredTensor &T : Inv.Tensors)
    Names.push_back(T.Name);
  return Names;
}

/// A header entry: {"dtype": .., "shape": .., "data_offsets": [B, E]}.
std::string entry(StringRef Name, StringRef DType, StringRef Shape, int B,
                  int E) {
  return ("\"" + Name + "\":{\"dtype\":\"" + DType + "\",\"shape\":" + Shape +
          ",\"data_offsets\":[" + Twine(B) + "," + Twine(E) + "]}")
      .str();
}

class SafetensorsHeaderTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(sys::fs::createUniqueDirectory("autotpc-st", Dir));
  }
  void TearDown() override { sys::fs::remove_directories(Dir); }

  std::string path(StringRef Name) {
    SmallString<128> P(Dir);
    sys::path::append(P, Name);
    return std::string(P);
  }

  /// Writes Bytes verbatim to Dir/Name and returns its path.
  std::string writeRaw(StringRef Name, StringRef Bytes) {
    std::error_code EC;
    raw_fd_ostream OS(path(Name), EC);
    EXPECT_FALSE(EC);
    OS << Bytes;
    return path(Name);
  }

  /// Writes a .safetensors file: header length, header, DataSize zeros.
  std::string writeFile(StringRef Name, StringRef Header, uint64_t DataSize) {
    char Len[8];
    support::endian::write64le(Len, Header.size());
    return writeRaw(
        Name, (StringRef(Len, 8) + Header + std::string(DataSize, '\0')).str());
  }

  SmallString<128> Dir;
};

/// The file name used for header-only tests.
constexpr const char *Shard2 = "model-00002-of-00004.safetensors";

std::string parseError(StringRef Header, uint64_t DataSize = 64) {
  return errorOf(parseSafetensorsHeader(Header, DataSize, Shard2));
}

TEST_F(SafetensorsHeaderTest, GoodFile) {
  // Keys are name-sorted in JSON; the inventory follows the data offsets.
  std::string File =
      writeFile("model.safetensors",
                "{\"__metadata__\":{\"format\":\"pt\"}," +
                    entry("a.weight", "BF16", "[2,3]", 12, 24) + "," +
                    entry("b.empty", "F32", "[0,5]", 4, 4) + "," +
                    entry("c.bias", "F32", "[1]", 0, 4) + "}   ",
                24);
  Expected<SafetensorsInventory> Inv = readSafetensorsFile(File);
  ASSERT_TRUE(bool(Inv)) << toString(Inv.takeError());
  EXPECT_EQ(namesOf(*Inv),
            (std::vector<std::string>{"c.bias", "b.empty", "a.weight"}));
  EXPECT_EQ(Inv->Tensors[2].DType, "BF16");
  EXPECT_EQ(Inv->Tensors[2].Shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Inv->Tensors[1].Shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(Inv->Tensors[0].File, File);
  EXPECT_EQ(Inv->Files, std::vector<std::string>{File});
  EXPECT_EQ(Inv->Metadata.at("format"), "pt");
}

TEST_F(SafetensorsHeaderTest, DTypeSizes) {
  EXPECT_EQ(dtypeSize("BOOL"), 1u);
  EXPECT_EQ(dtypeSize("F8_E4M3"), 1u);
  EXPECT_EQ(dtypeSize("BF16"), 2u);
  EXPECT_EQ(dtypeSize("U32"), 4u);
  EXPECT_EQ(dtypeSize("F64"), 8u);
  EXPECT_EQ(dtypeSize("bf16"), 0u);
}

class ShardedTest : public SafetensorsHeaderTest {
protected:
  void SetUp() override {
    SafetensorsHeaderTest::SetUp();
    writeFile("model-00001-of-00002.safetensors",
              "{" + entry("z.embed", "F16", "[4]", 0, 8) + "," +
                  entry("y.norm", "F16", "[2]", 8, 12) + "}",
              12);
    writeFile("model-00002-of-00002.safetensors",
              "{\"__metadata__\":{\"format\":\"pt\"}," +
                  entry("a.head", "F32", "[2]", 0, 8) + "}",
              8);
  }
  std::string writeIndex(StringRef WeightMap) {
    return writeRaw("model.safetensors.index.json",
                    ("{\"metadata\":{\"total_size\":28},\"weight_map\":{" +
                     WeightMap + "}}")
                        .str());
  }
  std::string goodIndex() {
    return writeIndex("\"a.head\":\"model-00002-of-00002.safetensors\","
                      "\"y.norm\":\"model-00001-of-00002.safetensors\","
                      "\"z.embed\":\"./model-00001-of-00002.safetensors\"");
  }
};

TEST_F(ShardedTest, GoodIndexAndFolder) {
  std::string Index = goodIndex();
  // A stray consolidated file must be ignored when the folder has an index.
  writeFile("consolidated.safetensors",
            "{" + entry("a.head", "F32", "[2]", 0, 8) + "}", 8);
  for (const std::string &P : {Index, std::string(Dir)}) {
    Expected<SafetensorsInventory> Inv = readSafetensorsInventory(P);
    ASSERT_TRUE(bool(Inv)) << toString(Inv.takeError());
    EXPECT_EQ(namesOf(*Inv),
              (std::vector<std::string>{"z.embed", "y.norm", "a.head"}));
    EXPECT_EQ(Inv->Files, (std::vector<std::string>{
                              path("model-00001-of-00002.safetensors"),
                              path("model-00002-of-00002.safetensors")}));
    EXPECT_EQ(Inv->Tensors[2].File, path("model-00002-of-00002.safetensors"));
    EXPECT_TRUE(Inv->Metadata.empty()); // the first shard has none
  }
}

TEST_F(ShardedTest, FolderWithoutIndexReadsAllSorted) {
  Expected<SafetensorsInventory> Inv = readSafetensorsInventory(Dir);
  ASSERT_TRUE(bool(Inv)) << toString(Inv.takeError());
  EXPECT_EQ(namesOf(*Inv),
            (std::vector<std::string>{"z.embed", "y.norm", "a.head"}));
}

TEST_F(ShardedTest, FolderFollowsSymlinks) {
  SmallString<128> Link(Dir);
  Link += "-link";
  sys::fs::remove(Link);
  ASSERT_FALSE(sys::fs::create_link(Dir, Link));
  Expected<SafetensorsInventory> Inv = readSafetensorsInventory(Link);
  sys::fs::remove(Link);
  ASSERT_TRUE(bool(Inv)) << toString(Inv.takeError());
  EXPECT_EQ(Inv->Tensors.size(), 3u);
}

TEST_F(ShardedTest, IndexShardMissing) {
  writeIndex("\"a.head\":\"model-00003-of-00002.safetensors\"");
  std::string Msg = errorOf(readSafetensorsInventory(Dir));
  EXPECT_NE(Msg.find("model.safetensors.index.json: shard "
                     "'model-00003-of-00002.safetensors' (holding 'a.head') "
                     "does not exist"),
            std::string::npos)
      << Msg;
}

TEST_F(ShardedTest, IndexTensorNotInItsShard) {
  writeIndex("\"a.head\":\"model-00001-of-00002.safetensors\","
             "\"y.norm\":\"model-00001-of-00002.safetensors\","
             "\"z.embed\":\"model-00002-of-00002.safetensors\"");
  std::string Msg = errorOf(readSafetensorsInventory(Dir));
  EXPECT_NE(Msg.find("index.json: tensor 'a.head' is mapped to shard "
                     "'model-00001-of-00002.safetensors', which does not "
                     "contain it (it is in "),
            std::string::npos)
      << Msg;
}

TEST_F(ShardedTest, IndexTensorNotListed) {
  writeIndex("\"y.norm\":\"model-00001-of-00002.safetensors\"");
  std::string Msg = errorOf(readSafetensorsInventory(Dir));
  EXPECT_NE(Msg.find("model-00001-of-00002.safetensors: tensor 'z.embed' is "
                     "not listed in the weight_map"),
            std::string::npos)
      << Msg;
}

TEST_F(ShardedTest, DuplicateAcrossShards) {
  writeFile("model-00002-of-00002.safetensors",
            "{" + entry("y.norm", "F16", "[2]", 0, 4) + "}", 4);
  std::string Msg = errorOf(readSafetensorsInventory(Dir));
  EXPECT_NE(Msg.find("model-00002-of-00002.safetensors: tensor 'y.norm' is "
                     "also stored in"),
            std::string::npos)
      << Msg;
}

TEST_F(ShardedTest, IndexWithoutWeightMap) {
  std::string Index = writeRaw("model.safetensors.index.json", "{\"x\":1}");
  EXPECT_NE(
      errorOf(readSafetensorsIndex(Index))
          .find("model.safetensors.index.json: index has no 'weight_map'"),
      std::string::npos);
  writeRaw("model.safetensors.index.json", "{\"weight_map\":{\"a\":3}}");
  EXPECT_NE(errorOf(readSafetensorsIndex(Index))
                .find("'weight_map' value of 'a' is 3, not a string"),
            std::string::npos);
  writeRaw("model.safetensors.index.json", "{\"weight_map\":[");
  EXPECT_NE(
      errorOf(readSafetensorsIndex(Index)).find("index is not valid JSON"),
      std::string::npos);
}

TEST_F(SafetensorsHeaderTest, EmptyFolderAndMissingPath) {
  EXPECT_NE(errorOf(readSafetensorsInventory(Dir))
                .find("contains no *.safetensors file"),
            std::string::npos);
  std::string Missing = path("nope.safetensors");
  EXPECT_EQ(errorOf(readSafetensorsInventory(Missing)).find(Missing + ": "),
            0u);
}

TEST_F(SafetensorsHeaderTest, FileTooShort) {
  std::string File = writeRaw("t.safetensors", StringRef("\x02\0\0", 3));
  std::string Msg = errorOf(readSafetensorsFile(File));
  EXPECT_NE(Msg.find("t.safetensors: file is 3 bytes, too short"),
            std::string::npos)
      << Msg;
}

TEST_F(SafetensorsHeaderTest, HeaderLengthOverCap) {
  char Len[8];
  support::endian::write64le(Len, 100000001);
  std::string File = writeRaw("t.safetensors", StringRef(Len, 8).str() + "{}");
  std::string Msg = errorOf(readSafetensorsFile(File));
  EXPECT_NE(Msg.find("t.safetensors: header length 100000001 exceeds the "
                     "safetensors limit of 100000000 bytes"),
            std::string::npos)
      << Msg;
}

TEST_F(SafetensorsHeaderTest, HeaderLengthPastEnd) {
  char Len[8];
  support::endian::write64le(Len, 50);
  std::string File = writeRaw("t.safetensors", StringRef(Len, 8).str() + "{}");
  std::string Msg = errorOf(readSafetensorsFile(File));
  EXPECT_NE(Msg.find("t.safetensors: header length 50 runs past the end of "
                     "the file (10 bytes)"),
            std::string::npos)
      << Msg;
}

TEST(SafetensorsHeaderParse, NotJson) {
  std::string Msg = parseError("{\"a\":");
  EXPECT_NE(Msg.find(std::string(Shard2) + ": header is not valid JSON: "
                                           "parse error"),
            std::string::npos)
      << Msg;
  EXPECT_EQ(Msg.find("[json.exception"), std::string::npos) << Msg;
  EXPECT_NE(parseError("{\"a\":1e999}").find("not valid JSON"),
            std::string::npos);
}

TEST(SafetensorsHeaderParse, NotAnObjectOrNotUtf8) {
  EXPECT_NE(parseError("[]").find(": header does not start with '{'"),
            std::string::npos);
  EXPECT_NE(parseError(" {}").find(": header does not start with '{'"),
            std::string::npos);
  EXPECT_NE(parseError("").find(": header does not start with '{'"),
            std::string::npos);
  std::string Msg = parseError("{\"\xff\":{}}");
  EXPECT_NE(Msg.find("not valid JSON"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("UTF-8"), std::string::npos) << Msg;
}

TEST(SafetensorsHeaderParse, DuplicateKey) {
  std::string E = entry("w", "U8", "[1]", 0, 1);
  EXPECT_NE(
      parseError("{" + E + "," + E + "}").find("header has duplicate key 'w'"),
      std::string::npos);
}

TEST(SafetensorsHeaderParse, EntryNotObjectOrMissingKey) {
  EXPECT_NE(parseError("{\"w\":[1]}")
                .find("tensor 'w': entry is an array, not an object"),
            std::string::npos);
  EXPECT_NE(parseError("{\"w\":{\"dtype\":\"F32\",\"shape\":[]}}")
                .find("tensor 'w': missing 'data_offsets'"),
            std::string::npos);
}

TEST(SafetensorsHeaderParse, BadDType) {
  EXPECT_NE(parseError("{" + entry("w", "Q4", "[1]", 0, 1) + "}")
                .find("tensor 'w': unknown dtype 'Q4'"),
            std::string::npos);
  EXPECT_NE(parseError("{\"w\":{\"dtype\":7,\"shape\":[],\"data_offsets\":[0,"
                       "0]}}")
                .find("'dtype' is 7, not a string"),
            std::string::npos);
}

TEST(SafetensorsHeaderParse, BadShape) {
  EXPECT_NE(parseError("{" + entry("w", "U8", "[2,-1]", 0, 1) + "}")
                .find("tensor 'w': 'shape' element 1 is -1, not a "
                      "non-negative integer"),
            std::string::npos);
  EXPECT_NE(parseError("{" + entry("w", "U8", "[1.5]", 0, 1) + "}")
                .find("'shape' element 0 is 1.5"),
            std::string::npos);
  EXPECT_NE(parseError("{" + entry("w", "U8", "{}", 0, 1) + "}")
                .find("'shape' is an object, not an array"),
            std::string::npos);
  EXPECT_NE(
      parseError("{" + entry("w", "U8", "[9223372036854775808,0]", 0, 0) + "}")
          .find("'shape' element 0 (9223372036854775808) is too large"),
      std::string::npos);
}

TEST(SafetensorsHeaderParse, ShapeOverflow) {
  std::string Msg = parseError(
      "{" + entry("w", "F32", "[4294967296,4294967296,0]", 0, 0) + "}");
  EXPECT_NE(Msg.find(std::string(Shard2) +
                     ": tensor 'w': shape [4294967296, 4294967296, 0] of F32 "
                     "overflows int64 when multiplied out"),
            std::string::npos)
      << Msg;
}

TEST(SafetensorsHeaderParse, OffsetsReversed) {
  EXPECT_EQ(parseError(
                "{" +
                entry("model.layers.3.mlp.up_proj.weight", "U8", "[6]", 10, 4) +
                "}"),
            "model-00002-of-00004.safetensors: tensor "
            "'model.layers.3.mlp.up_proj.weight': data_offsets [10, 4] are "
            "reversed");
}

TEST(SafetensorsHeaderParse, OffsetsMalformed) {
  EXPECT_NE(parseError("{\"w\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":"
                       "[0]}}")
                .find("'data_offsets' must be [begin, end] of non-negative "
                      "integers"),
            std::string::npos);
  EXPECT_NE(parseError("{" + entry("w", "U8", "[1]", -1, 0) + "}")
                .find("'data_offsets' must be [begin, end]"),
            std::string::npos);
}

TEST(SafetensorsHeaderParse, OffsetsPastData) {
  std::string Msg = parseError("{" + entry("w", "U8", "[4]", 8, 12) + "}", 10);
  EXPECT_NE(Msg.find("tensor 'w': data_offsets [8, 12] end past the data "
                     "region (10 bytes)"),
            std::string::npos)
      << Msg;
}

TEST(SafetensorsHeaderParse, SizeMismatch) {
  std::string Msg = parseError("{" + entry("w", "BF16", "[2,3]", 0, 8) + "}");
  EXPECT_NE(Msg.find("tensor 'w': data_offsets [0, 8] span 8 bytes but shape "
                     "[2, 3] of BF16 needs 12"),
            std::string::npos)
      << Msg;
}

TEST(SafetensorsHeaderParse, Overlap) {
  std::string Msg = parseError("{" + entry("a", "U8", "[8]", 4, 12) + "," +
                               entry("b", "U8", "[8]", 0, 8) + "," +
                               entry("e", "U8", "[0]", 2, 2) + "}");
  EXPECT_NE(Msg.find(std::string(Shard2) +
                     ": tensors 'b' [0, 8] and 'a' [4, 12] overlap"),
            std::string::npos)
      << Msg;
}

TEST(SafetensorsHeaderParse, BadMetadata) {
  EXPECT_NE(parseError("{\"__metadata__\":[]}")
                .find(": '__metadata__' is an array, not an object"),
            std::string::npos);
  EXPECT_NE(parseError("{\"__metadata__\":{\"n\":1}}")
                .find(": '__metadata__' value of 'n' is 1, not a string"),
            std::string::npos);
}

TEST(SafetensorsHeaderParse, DeepNestingIsAnErrorNotACrash) {
  std::string Deep =
      "{\"w\":{\"dtype\":\"U8\",\"shape\":" + std::string(100000, '[') +
      std::string(100000, ']') + ",\"data_offsets\":[0,0]}}";
  EXPECT_NE(parseError(Deep).find(
                ": header is not valid JSON: nesting deeper than 16 levels"),
            std::string::npos);
  // Within the limit, the shape's rule speaks.
  std::string Nested = "{\"w\":{\"dtype\":\"U8\",\"shape\":[[[[1]]]],"
                       "\"data_offsets\":[0,0]}}";
  EXPECT_NE(parseError(Nested).find("'shape' element 0 is an array"),
            std::string::npos);
}

} // namespace
