/* json_lite: what it accepts, what it rejects (with the byte offset), and
   the two string escapers' exact output. */
#include "atp/json_lite.h"

#include <gtest/gtest.h>

using namespace atp;

namespace {
JsonValue parse_ok(std::string_view text) {
  Result<JsonValue> v = parse_json(text);
  EXPECT_TRUE(v.ok()) << text << ": " << v.status().message();
  return v.ok() ? *v : JsonValue();
}
std::string parse_error(std::string_view text, int depth = 64) {
  Result<JsonValue> v = parse_json(text, depth);
  EXPECT_FALSE(v.ok()) << text;
  return v.ok() ? "" : v.status().message();
}
} // namespace

TEST(JsonLite, ParsesDocuments) {
  JsonValue v = parse_ok(R"( {"a": [1, -2, 0, true, false, null, "s", {}], "b": {"c": []}} )");
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v.key(0), "a");
  const JsonValue *a = v.find("a");
  ASSERT_TRUE(a && a->is_array());
  ASSERT_EQ(a->size(), 8u);
  EXPECT_EQ((*a)[0].as_uint64(), 1u);
  EXPECT_FALSE((*a)[1].as_uint64());
  EXPECT_EQ((*a)[1].as_int64(), -2);
  EXPECT_EQ((*a)[2].as_int64(), 0);
  EXPECT_TRUE((*a)[3].is_bool() && (*a)[3].as_bool());
  EXPECT_TRUE((*a)[4].is_bool() && !(*a)[4].as_bool());
  EXPECT_TRUE((*a)[5].is_null());
  EXPECT_EQ((*a)[6].as_string(), "s");
  EXPECT_TRUE((*a)[7].is_object());
  EXPECT_EQ(v.find("b")->find("c")->size(), 0u);
  EXPECT_EQ(v.find("zzz"), nullptr);
}

TEST(JsonLite, IntegersAreExact) {
  EXPECT_EQ(parse_ok("18446744073709551615").as_uint64(), 18446744073709551615ull);
  EXPECT_FALSE(parse_ok("18446744073709551615").as_int64());
  EXPECT_EQ(parse_ok("-9223372036854775808").as_int64(), INT64_MIN);
  EXPECT_EQ(parse_ok("9223372036854775807").as_int64(), INT64_MAX);
  EXPECT_EQ(parse_ok("-0").as_uint64(), 0u);
  EXPECT_EQ(parse_error("18446744073709551616"),
            "malformed JSON at byte 0: integer 18446744073709551616 is out of range");
  EXPECT_EQ(parse_error("-9223372036854775809"),
            "malformed JSON at byte 0: integer -9223372036854775809 is out of range");
  // Reals parse (keeping their text) but are not integers.
  JsonValue r = parse_ok("1.5e3");
  EXPECT_EQ(r.kind(), JsonValue::Kind::real);
  EXPECT_FALSE(r.as_uint64());
  EXPECT_EQ(r.describe(), "1.5e3");
}

TEST(JsonLite, StringsAndEscapes) {
  EXPECT_EQ(parse_ok(R"("a\"b\\c\/d\b\f\n\r\t")").as_string(), "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(parse_ok(R"("\u0041\u00e9\u20ac\ud83d\ude00")").as_string(),
            "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(parse_ok("\"\xC3\xA9\xF0\x9F\x98\x80\"").as_string(), "\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(parse_error(R"("\ud83d")"), "malformed JSON at byte 1: unpaired high surrogate \\u escape");
  EXPECT_EQ(parse_error(R"("\ude00")"), "malformed JSON at byte 1: unpaired low surrogate \\u escape");
  EXPECT_EQ(parse_error(R"("\x")"), "malformed JSON at byte 1: invalid escape '\\x'");
  EXPECT_EQ(parse_error(R"("\u12G4")"), "malformed JSON at byte 3: expected 4 hex digits after \\u");
  EXPECT_EQ(parse_error("\"a\nb\""), "malformed JSON at byte 2: unescaped control character in a string");
  EXPECT_EQ(parse_error("\"\xC0\xAF\""), "malformed JSON at byte 1: invalid UTF-8 in a string");
  EXPECT_EQ(parse_error("\"\xED\xA0\x80\""), "malformed JSON at byte 1: invalid UTF-8 in a string");
  EXPECT_EQ(parse_error("\"\xF4\x90\x80\x80\""), "malformed JSON at byte 1: invalid UTF-8 in a string");
  EXPECT_EQ(parse_error("\"\xE2\x82\""), "malformed JSON at byte 1: invalid UTF-8 in a string");
  EXPECT_EQ(parse_error("\"abc"), "malformed JSON at byte 4: unterminated string");
}

TEST(JsonLite, SyntaxErrorsNameTheByte) {
  EXPECT_EQ(parse_error(""), "malformed JSON at byte 0: expected a JSON value, found end of text");
  EXPECT_EQ(parse_error("{\"a\":1,}"), "malformed JSON at byte 7: expected a string key, found '}'");
  EXPECT_EQ(parse_error("{\"a\" 1}"), "malformed JSON at byte 5: expected ':' after an object key, found '1'");
  EXPECT_EQ(parse_error("{\"a\":1 \"b\":2}"),
            "malformed JSON at byte 7: expected ',' or '}' after an object member, found '\"'");
  EXPECT_EQ(parse_error("[1,]"), "malformed JSON at byte 3: expected a JSON value, found ']'");
  EXPECT_EQ(parse_error("[1 2]"), "malformed JSON at byte 3: expected ',' or ']' after an array element, found '2'");
  EXPECT_EQ(parse_error("{} x"), "malformed JSON at byte 3: unexpected 'x' after the JSON value");
  EXPECT_EQ(parse_error("{}\x01"), "malformed JSON at byte 2: unexpected byte 0x01 after the JSON value");
  EXPECT_EQ(parse_error("01"), "malformed JSON at byte 1: a number must not have leading zeros");
  EXPECT_EQ(parse_error("1."), "malformed JSON at byte 2: expected a digit after '.', found end of text");
  EXPECT_EQ(parse_error("-"), "malformed JSON at byte 1: expected a digit, found end of text");
  EXPECT_EQ(parse_error("tru"), "malformed JSON at byte 0: expected a JSON value, found 't'");
  EXPECT_EQ(parse_error("NaN"), "malformed JSON at byte 0: expected a JSON value, found 'N'");
  EXPECT_EQ(parse_error("{'a':1}"), "malformed JSON at byte 1: expected a string key, found '''");
  EXPECT_EQ(parse_error(R"({"k":1,"j":2,"k":3})"),
            "malformed JSON at byte 0: duplicate key 'k' in the object starting here");
}

TEST(JsonLite, DepthIsLimited) {
  EXPECT_TRUE(parse_json("[[[1]]]", 3).ok());
  EXPECT_EQ(parse_error("[[[[1]]]]", 3), "malformed JSON at byte 3: nesting deeper than 3 levels");
  // Deep enough to overflow the stack without the limit.
  std::string deep(1000000, '[');
  EXPECT_EQ(parse_error(deep), "malformed JSON at byte 64: nesting deeper than 64 levels");
}

TEST(JsonLite, SerdeStyleEscaping) {
  std::string out;
  append_json_string(out, "a\"\\/\b\f\n\r\t\x01\x1f\x7f\xC3\xA9");
  EXPECT_EQ(out, "\"a\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xC3\xA9\"");
}

TEST(JsonLite, PythonEnsureAsciiEscaping) {
  std::string out;
  append_json_string_ascii(out, "a\"\\\n\x01\x7f\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xFF");
  EXPECT_EQ(out, "\"a\\\"\\\\\\n\\u0001\\u007f\\u00e9\\u20ac\\ud83d\\ude00\\ufffd\"");
}
