/* The byte-level tokenizer (ids 0..255 bytes, 256 end of text) and the
   split of text into documents. No state: every function is pure, so the
   trainer's data path and generate's decode agree by construction. */
#include "atp/byte_tokenizer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace atp {

void encode_bytes(std::string_view text, std::vector<std::uint32_t> &out) {
  out.reserve(out.size() + text.size());
  for (char c : text)
    out.push_back(static_cast<unsigned char>(c));
}

std::vector<std::uint32_t> encode_bytes(std::string_view text) {
  std::vector<std::uint32_t> out;
  encode_bytes(text, out);
  return out;
}

Result<std::string> decode_tokens(const std::uint32_t *tokens, std::size_t n, std::string_view eot_text) {
  std::string out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t t = tokens[i];
    if (t < kByteVocab)
      out.push_back(static_cast<char>(static_cast<unsigned char>(t)));
    else if (t == kEndOfText)
      out.append(eot_text);
    else
      return error("token " + std::to_string(i) + " has id " + std::to_string(t) +
                   ", which the byte-level tokenizer cannot decode (ids 0..255 are bytes, 256 "
                   "is end of text)");
  }
  return out;
}

Status check_vocab(std::uint64_t model_vocab, bool with_eot) {
  std::uint64_t need = with_eot ? kByteVocabWithEot : kByteVocab;
  if (model_vocab >= need)
    return Status();
  return error("the model's vocab_size is " + std::to_string(model_vocab) +
               ", the byte-level tokenizer needs at least " + std::to_string(need) +
               (with_eot ? " (256 bytes + end of text; make the data without end-of-text "
                           "ids to fit 256)"
                         : " (256 bytes)"));
}

namespace {
/// `line` without its "\n" or "\r\n".
std::string_view strip_eol(std::string_view line) {
  if (!line.empty() && line.back() == '\n')
    line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  return line;
}
} // namespace

void for_each_document(std::string_view text, std::string_view separator_line,
                       const std::function<void(std::string_view)> &fn) {
  if (separator_line.empty()) {
    if (!text.empty())
      fn(text);
    return;
  }
  std::size_t doc_begin = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    if (strip_eol(text.substr(pos, end - pos)) == separator_line) {
      if (pos > doc_begin)
        fn(text.substr(doc_begin, pos - doc_begin));
      doc_begin = end;
    }
    pos = end;
  }
  if (text.size() > doc_begin)
    fn(text.substr(doc_begin));
}

std::size_t encode_documents(std::string_view text, std::string_view separator_line, bool with_eot,
                             std::vector<std::uint32_t> &out) {
  std::size_t docs = 0;
  for_each_document(text, separator_line, [&](std::string_view doc) {
    encode_bytes(doc, out);
    if (with_eot)
      out.push_back(kEndOfText);
    ++docs;
  });
  return docs;
}

Result<std::vector<std::uint32_t>> tokenize_text_files(const std::vector<std::string> &paths,
                                                       std::string_view separator_line, bool with_eot) {
  std::vector<std::uint32_t> out;
  std::uint64_t bytes = 0;
  for (const std::string &path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      return error(path + ": cannot open: " + std::strerror(errno));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad())
      return error(path + ": read failed");
    bytes += text.size();
    encode_documents(text, separator_line, with_eot, out);
  }
  if (out.empty())
    return error("no text in " + std::to_string(paths.size()) + " input file" + (paths.size() == 1 ? "" : "s") + " (" +
                 std::to_string(bytes) + " bytes" + (paths.empty() ? "" : ", first " + paths.front()) + ")");
  return out;
}

} // namespace atp
