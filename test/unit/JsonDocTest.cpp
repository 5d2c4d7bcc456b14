//===- JsonDocTest.cpp - tests for JSON pointer -> source range ---------===//
//
// Every expected line:column below is counted by hand from the literal JSON
// text in the test (1-based, as SourceMgr counts), never read back from the
// code under test.
//
//===----------------------------------------------------------------------===//

#include "Support/JsonDoc.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

using namespace autotpc;

namespace {

/// A SourceMgr, an engine printing into a string, and one parsed buffer.
struct Parsed {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS{Text};
  DiagEngine Diags{SM, OS};
  std::unique_ptr<JsonDoc> Doc;
  unsigned BufID = 0;

  explicit Parsed(llvm::StringRef Json, llvm::StringRef Name = "doc.json") {
    BufID = SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(Json, Name), llvm::SMLoc());
    Doc = JsonDoc::parse(Diags, BufID);
  }
  std::string out() { return OS.str(); }
  /// Line and column of the start of L.
  std::pair<unsigned, unsigned> start(const Loc &L) {
    EXPECT_TRUE(L.isValid());
    return SM.getLineAndColumn(L.Range.Start, BufID);
  }
  std::pair<unsigned, unsigned> end(const Loc &L) { return SM.getLineAndColumn(L.Range.End, BufID); }
};

using LC = std::pair<unsigned, unsigned>;

// Columns:         1234567890123456789012345
const char *Sample = "{\n"
                     "  \"zeta\": 1,\n"                             // line 2
                     "  \"tensor_parallel\": {\n"                   // line 3
                     "    \"autotp_size\": 32,\n"                   // line 4
                     "    \"preset_model\": \"llama\"\n"            // line 5
                     "  },\n"                                       // line 6
                     "  \"alpha\": [10, [20, 30], {\"k\": true}]\n" // line 7
                     "}\n";

TEST(JsonDocTest, ValueLocationsOfNestedPointers) {
  Parsed P(Sample);
  ASSERT_TRUE(P.Doc) << P.out();
  // "    \"autotp_size\": 32": the key's quote is column 5, the value column 20.
  EXPECT_EQ(P.start(P.Doc->value("/tensor_parallel/autotp_size")), LC(4, 20));
  EXPECT_EQ(P.end(P.Doc->value("/tensor_parallel/autotp_size")), LC(4, 22)); // one past "32"
  EXPECT_EQ(P.start(P.Doc->key("/tensor_parallel/autotp_size")), LC(4, 5));
  EXPECT_EQ(P.end(P.Doc->key("/tensor_parallel/autotp_size")), LC(4, 18)); // one past the closing quote
  // The string value starts at its opening quote: 4 spaces + "preset_model" (14) + ": " -> column 21.
  EXPECT_EQ(P.start(P.Doc->value("/tensor_parallel/preset_model")), LC(5, 21));
  EXPECT_EQ(P.end(P.Doc->value("/tensor_parallel/preset_model")), LC(5, 28));
  // An object value spans from '{' on line 3 to one past '}' on line 6.
  EXPECT_EQ(P.start(P.Doc->value("/tensor_parallel")), LC(3, 22));
  EXPECT_EQ(P.end(P.Doc->value("/tensor_parallel")), LC(6, 4));
  EXPECT_EQ(P.start(P.Doc->key("/tensor_parallel")), LC(3, 3));
  EXPECT_EQ(P.start(P.Doc->value("/zeta")), LC(2, 11));
  EXPECT_EQ(P.start(P.Doc->value("")), LC(1, 1));
  EXPECT_EQ(P.Diags.errorCount(), 0u);
}

TEST(JsonDocTest, ArrayElementLocations) {
  Parsed P(Sample);
  ASSERT_TRUE(P.Doc);
  // Line 7: `  "alpha": [10, [20, 30], {"k": true}]`; '[' is column 12.
  EXPECT_EQ(P.start(P.Doc->value("/alpha")), LC(7, 12));
  EXPECT_EQ(P.start(P.Doc->value("/alpha/0")), LC(7, 13));
  EXPECT_EQ(P.end(P.Doc->value("/alpha/0")), LC(7, 15));
  EXPECT_EQ(P.start(P.Doc->value("/alpha/1")), LC(7, 17));
  EXPECT_EQ(P.start(P.Doc->value("/alpha/1/1")), LC(7, 22));
  EXPECT_EQ(P.start(P.Doc->value("/alpha/2")), LC(7, 27));
  EXPECT_EQ(P.start(P.Doc->value("/alpha/2/k")), LC(7, 33));
  EXPECT_EQ(P.start(P.Doc->key("/alpha/2/k")), LC(7, 28));
  // An array element has no key: key() falls back to the value.
  EXPECT_EQ(P.start(P.Doc->key("/alpha/1")), LC(7, 17));
  ASSERT_NE(P.Doc->get("/alpha/1/1"), nullptr);
  EXPECT_EQ(*P.Doc->get("/alpha/1/1"), 30);
}

TEST(JsonDocTest, UnknownPointerFallsBackToBufferStartAndGetIsNull) {
  Parsed P(Sample);
  ASSERT_TRUE(P.Doc);
  EXPECT_EQ(P.Doc->get("/nope"), nullptr);
  EXPECT_EQ(P.Doc->get("/alpha/9"), nullptr);
  EXPECT_EQ(P.start(P.Doc->value("/nope")), LC(1, 1));
  EXPECT_EQ(P.Doc->name(), "doc.json");
}

TEST(JsonDocTest, MemberOrderIsSourceOrder) {
  Parsed P(Sample);
  ASSERT_TRUE(P.Doc);
  // nlohmann::json sorts keys ("alpha" < "tensor_parallel" < "zeta"); the index must not.
  EXPECT_EQ(P.Doc->keys(""), (std::vector<std::string>{"zeta", "tensor_parallel", "alpha"}));
  EXPECT_EQ(P.Doc->keys("/tensor_parallel"), (std::vector<std::string>{"autotp_size", "preset_model"}));
  EXPECT_EQ(P.Doc->keys("/alpha/2"), (std::vector<std::string>{"k"}));
  EXPECT_TRUE(P.Doc->keys("/alpha").empty()); // an array has no members
  EXPECT_TRUE(P.Doc->keys("/missing").empty());
}

TEST(JsonDocTest, EscapedKeysUseJsonPointerEscaping) {
  // RFC 6901: '~' -> "~0", '/' -> "~1". "\u00e9" decodes to UTF-8 C3 A9 and
  // "\/" to '/'. Line 2: `{"a~b": 1, "c/d": 2, "caf\u00e9": 3, "x\/y": 4}` after one newline.
  Parsed P("\n{\"a~b\": 1, \"c/d\": 2, \"caf\\u00e9\": 3, \"x\\/y\": 4}");
  ASSERT_TRUE(P.Doc) << P.out();
  EXPECT_EQ(JsonDoc::child("", "a~b"), "/a~0b");
  EXPECT_EQ(JsonDoc::child("/p", "c/d"), "/p/c~1d");
  EXPECT_EQ(JsonDoc::child("/p", size_t(3)), "/p/3");
  EXPECT_EQ(JsonDoc::child("", "~/"), "/~0~1");

  ASSERT_NE(P.Doc->get("/a~0b"), nullptr);
  EXPECT_EQ(*P.Doc->get("/a~0b"), 1);
  EXPECT_EQ(P.start(P.Doc->value("/a~0b")), LC(2, 9));
  EXPECT_EQ(P.start(P.Doc->key("/c~1d")), LC(2, 12));
  EXPECT_EQ(P.start(P.Doc->value("/c~1d")), LC(2, 19));
  const std::string Cafe = "/caf\xc3\xa9";
  ASSERT_NE(P.Doc->get(Cafe), nullptr);
  EXPECT_EQ(*P.Doc->get(Cafe), 3);
  // `"caf\u00e9"` is 11 characters from column 22; ": " then the value at 35.
  EXPECT_EQ(P.start(P.Doc->key(Cafe)), LC(2, 22));
  EXPECT_EQ(P.start(P.Doc->value(Cafe)), LC(2, 35));
  EXPECT_EQ(P.start(P.Doc->value("/x~1y")), LC(2, 46));
  EXPECT_EQ(P.Doc->keys(""), (std::vector<std::string>{"a~b", "c/d", "caf\xc3\xa9", "x/y"}));
}

TEST(JsonDocTest, SurrogatePairKeyDecodesToOneCodePoint) {
  // U+1F600 is \ud83d\ude00, UTF-8 F0 9F 98 80.
  Parsed P("{\"\\ud83d\\ude00\": 7}");
  ASSERT_TRUE(P.Doc);
  EXPECT_EQ(P.Doc->keys(""), (std::vector<std::string>{"\xf0\x9f\x98\x80"}));
  EXPECT_EQ(P.start(P.Doc->value("/\xf0\x9f\x98\x80")), LC(1, 18));
}

TEST(JsonDocTest, DuplicateKeysAreErrorsOnePerDuplicate) {
  // nlohmann silently keeps the last value; DeepSpeed's loader rejects duplicates.
  Parsed P("{\"a\": 1, \"b\": 2,\n \"a\": 3, \"b\": 4, \"c\": {\"d\": 1, \"d\": 2}}");
  EXPECT_EQ(P.Doc, nullptr);
  EXPECT_EQ(P.Diags.errorCount(), 3u) << P.out();
  const std::string Out = P.out();
  EXPECT_NE(Out.find("doc.json:2:2: error: duplicate key 'a'"), std::string::npos) << Out;
  EXPECT_NE(Out.find("doc.json:1:2: note: first defined here"), std::string::npos) << Out;
  EXPECT_NE(Out.find("doc.json:2:10: error: duplicate key 'b'"), std::string::npos) << Out;
  EXPECT_NE(Out.find("error: duplicate key 'd'"), std::string::npos) << Out;
  // Each error carries its note.
  ASSERT_EQ(P.Diags.records().size(), 3u);
  for (const DiagRecord &R : P.Diags.records())
    EXPECT_EQ(R.Notes.size(), 1u);
}

TEST(JsonDocTest, SyntaxErrorIsReportedAtTheOffendingToken) {
  // The trailing comma is fine until '}' arrives where a key must be: line 3, column 1.
  std::unique_ptr<Parsed> P;
  EXPECT_NO_THROW(P = std::make_unique<Parsed>("{\n  \"a\": 1,\n}\n"));
  EXPECT_EQ(P->Doc, nullptr);
  EXPECT_EQ(P->Diags.errorCount(), 1u);
  const std::string Out = P->out();
  EXPECT_EQ(Out.rfind("doc.json:3:1: error: invalid JSON: syntax error", 0), 0u) << Out;
  // Users never see nlohmann's exception ids (STYLE B4).
  EXPECT_EQ(Out.find("json.exception"), std::string::npos) << Out;
  ASSERT_EQ(P->Diags.records().size(), 1u);
  EXPECT_EQ(P->Diags.records()[0].Line, 3u);
}

TEST(JsonDocTest, EmptyAndTruncatedInputsAreErrorsNotExceptions) {
  for (const char *Text : {"", "   ", "{", "[1, 2", "{\"a\": }", "nul", "{\"a\" 1}", "\"unterminated"}) {
    std::unique_ptr<Parsed> P;
    EXPECT_NO_THROW(P = std::make_unique<Parsed>(Text)) << Text;
    EXPECT_EQ(P->Doc, nullptr) << Text;
    EXPECT_EQ(P->Diags.errorCount(), 1u) << Text;
    EXPECT_NE(P->out().find("error: invalid JSON"), std::string::npos) << P->out();
  }
}

TEST(JsonDocTest, ScalarRootIsIndexed) {
  Parsed P("  42 ");
  ASSERT_TRUE(P.Doc);
  EXPECT_EQ(P.Doc->root(), 42);
  EXPECT_EQ(P.start(P.Doc->value("")), LC(1, 3));
}

std::string nestedArrays(unsigned Depth) { return std::string(Depth, '[') + "1" + std::string(Depth, ']'); }

TEST(JsonDocTest, NestingDeeperThan512IsAnError) {
  {
    std::unique_ptr<Parsed> P;
    EXPECT_NO_THROW(P = std::make_unique<Parsed>(nestedArrays(2000)));
    EXPECT_EQ(P->Doc, nullptr);
    EXPECT_EQ(P->Diags.errorCount(), 1u);
    EXPECT_NE(P->out().find("error: JSON nesting is deeper than 512 levels"), std::string::npos) << P->out();
  }
  {
    // 513 levels of arrays: one too many.
    Parsed P(nestedArrays(513));
    EXPECT_EQ(P.Doc, nullptr);
    EXPECT_EQ(P.Diags.errorCount(), 1u);
  }
  {
    // 512 levels are allowed, and so is anything shallow.
    Parsed P(nestedArrays(512));
    EXPECT_TRUE(P.Doc) << P.out().substr(0, 200);
    EXPECT_EQ(P.Diags.errorCount(), 0u);
  }
  {
    std::string Objects;
    for (int I = 0; I < 600; ++I)
      Objects += "{\"k\":";
    Objects += "0" + std::string(600, '}');
    Parsed P(Objects);
    EXPECT_EQ(P.Doc, nullptr);
    EXPECT_EQ(P.Diags.errorCount(), 1u);
  }
}

TEST(JsonDocTest, LoadReportsUnreadableFile) {
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS(Text);
  DiagEngine Diags(SM, OS);
  EXPECT_EQ(JsonDoc::load(Diags, "/nonexistent/dir/config.json", "config.json"), nullptr);
  EXPECT_EQ(Diags.errorCount(), 1u);
  EXPECT_EQ(OS.str().rfind("config.json: error: cannot read file", 0), 0u) << OS.str();
}

} // namespace
