/* The byte-level tokenizer: any byte string round trips, UTF-8 becomes its
   bytes, end of text decodes as asked, and documents split on separator
   lines the way fortune files are written. */
#include "atp/byte_tokenizer.h"

#include "CoreTestUtil.h"

#include <gtest/gtest.h>

using namespace atp;

namespace {
std::vector<std::string> docs(std::string_view text, std::string_view sep) {
  std::vector<std::string> out;
  for_each_document(text, sep, [&](std::string_view d) { out.emplace_back(d); });
  return out;
}
} // namespace

TEST(ByteTokenizer, EveryByteStringRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b)
    all.push_back(char(b));
  std::string text = all + atp_test::value_bytes(11, 5000) + std::string(3, '\0');
  std::vector<std::uint32_t> t = encode_bytes(text);
  ASSERT_EQ(t.size(), text.size());
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(t[std::size_t(b)], std::uint32_t(b));
  Result<std::string> back = decode_tokens(t);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, text);
}

TEST(ByteTokenizer, Utf8IsItsBytes) {
  const std::string text = "h\xC3\xA9llo \xE4\xB8\x96 \xF0\x9F\x99\x82"; // "héllo 世 🙂"
  EXPECT_EQ(encode_bytes(text), (std::vector<std::uint32_t>{'h', 0xC3, 0xA9, 'l', 'l', 'o', ' ', 0xE4, 0xB8, 0x96, ' ',
                                                            0xF0, 0x9F, 0x99, 0x82}));
  EXPECT_EQ(*decode_tokens(encode_bytes(text)), text);
}

TEST(ByteTokenizer, EndOfTextAndBadIds) {
  std::vector<std::uint32_t> t = {'a', kEndOfText, 'b', kEndOfText};
  EXPECT_EQ(*decode_tokens(t), "ab");
  EXPECT_EQ(*decode_tokens(t, "<|eot|>"), "a<|eot|>b<|eot|>");
  t[2] = 257;
  Result<std::string> bad = decode_tokens(t);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "token 2 has id 257, which the byte-level tokenizer cannot "
                                    "decode (ids 0..255 are bytes, 256 is end of text)");
}

TEST(ByteTokenizer, VocabRequirement) {
  EXPECT_EQ(kByteVocabWithEot, 257u);
  EXPECT_TRUE(check_vocab(257, true).ok());
  EXPECT_TRUE(check_vocab(256, false).ok());
  EXPECT_FALSE(check_vocab(255, false).ok());
  Status st = check_vocab(256, true);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("the model's vocab_size is 256, the byte-level tokenizer needs at "
                               "least 257",
                               0),
            0u)
      << st.message();
}

TEST(ByteTokenizer, DocumentsSplitOnSeparatorLines) {
  // A fortune file: entries end with a line "%"; CRLF lines, a leading
  // separator, an empty entry and a last entry without a separator.
  const std::string text = "%\nfirst\nline two\n%\n%\r\nsecond\r\n%\n%x\n% \nthird";
  EXPECT_EQ(docs(text, "%"), (std::vector<std::string>{"first\nline two\n", "second\r\n", "%x\n% \nthird"}));
  EXPECT_EQ(docs(text, ""), (std::vector<std::string>{text}));
  EXPECT_TRUE(docs("", "%").empty());
  EXPECT_TRUE(docs("%\n%\n", "%").empty());
  EXPECT_EQ(docs("a\n%", "%"), (std::vector<std::string>{"a\n"}));

  std::vector<std::uint32_t> out = {7};
  EXPECT_EQ(encode_documents("ab\n%\nc\n%\n", "%", true, out), 2u);
  EXPECT_EQ(out, (std::vector<std::uint32_t>{7, 'a', 'b', '\n', kEndOfText, 'c', '\n', kEndOfText}));
  out.clear();
  EXPECT_EQ(encode_documents("ab\n%\nc\n%\n", "%", false, out), 2u);
  EXPECT_EQ(out, (std::vector<std::uint32_t>{'a', 'b', '\n', 'c', '\n'}));
}

TEST(ByteTokenizer, TextFilesAsTheToolReadsThem) {
  atp_test::TempDir dir;
  atp_test::write_file(dir / "a.txt", "x\n%\ny\n%\n");
  atp_test::write_file(dir / "b.txt", "z");
  Result<std::vector<std::uint32_t>> t = tokenize_text_files({dir / "a.txt", dir / "b.txt"}, "%", true);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t, (std::vector<std::uint32_t>{'x', '\n', kEndOfText, 'y', '\n', kEndOfText, 'z', kEndOfText}));
  Result<std::vector<std::uint32_t>> whole = tokenize_text_files({dir / "a.txt"}, "", false);
  EXPECT_EQ(*whole, encode_bytes("x\n%\ny\n%\n"));
  Result<std::vector<std::uint32_t>> missing = tokenize_text_files({dir / "no.txt"}, "", true);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), dir / "no.txt" + ": cannot open: No such file or directory");
  atp_test::write_file(dir / "seps.txt", "%\n");
  EXPECT_EQ(tokenize_text_files({dir / "seps.txt"}, "%", true).status().message(),
            "no text in 1 input file (2 bytes, first " + dir / "seps.txt" + ")");
}
