/* The byte-level tokenizer: text <-> token ids with no vocabulary file.

   Ids 0..255 are the bytes of the text, as they are (UTF-8 or not: a
   multi-byte character becomes several tokens, and any byte string round
   trips). One special id follows them:

     256  end of text (kEndOfText), appended after every document when the
          text is split into documents, so that a model learns where one
          ends; decode() writes it as the caller's `eot_text` (default
          nothing).

   So a token stream with end-of-text ids needs a model whose vocab_size is
   at least 257 (kByteVocabWithEot); one made without them (--no-eot) needs
   256 (kByteVocab). check_vocab() says so in a message. Text split into
   documents: each input file is one document, or, with a separator line,
   the lines between separator lines are (fortune files separate entries by
   a line "%"); empty documents are dropped. */
#pragma once

#include "atp/status.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace atp {

constexpr std::uint32_t kByteVocab = 256;        ///< ids 0..255: bytes
constexpr std::uint32_t kEndOfText = 256;        ///< the end-of-text id
constexpr std::uint32_t kByteVocabWithEot = 257; ///< bytes + end of text

/// The ids of `text`'s bytes, appended to `out`.
void encode_bytes(std::string_view text, std::vector<std::uint32_t> &out);
/// The ids of `text`'s bytes.
std::vector<std::uint32_t> encode_bytes(std::string_view text);

/// The text of tokens[0, n): bytes for 0..255, `eot_text` for 256. Any
/// other id is an error naming its position and id.
Result<std::string> decode_tokens(const std::uint32_t *tokens, std::size_t n, std::string_view eot_text = "");
inline Result<std::string> decode_tokens(const std::vector<std::uint32_t> &tokens, std::string_view eot_text = "") {
  return decode_tokens(tokens.data(), tokens.size(), eot_text);
}

/// Fails unless a model with `model_vocab` ids can take this tokenizer's
/// output (`with_eot`: 257 ids, else 256); the message names both numbers.
Status check_vocab(std::uint64_t model_vocab, bool with_eot);

/// Calls `fn` with each non-empty document of `text`: the whole text when
/// `separator_line` is empty, otherwise the runs of lines between lines
/// equal to `separator_line` (a line's "\n" or "\r\n" is not part of the
/// comparison; the separator lines themselves are dropped; the documents
/// keep their own newlines).
void for_each_document(std::string_view text, std::string_view separator_line,
                       const std::function<void(std::string_view)> &fn);

/// Encodes `text` split as above, each document followed by kEndOfText
/// when `with_eot`; appends to `out` and returns the number of documents.
std::size_t encode_documents(std::string_view text, std::string_view separator_line, bool with_eot,
                             std::vector<std::uint32_t> &out);

/// Reads the text files in order and encodes them as above (a whole file
/// is one document unless `separator_line` is set): what `train` does with
/// plain-text data, and what autotpc-tokenize writes to a token file.
/// Unreadable files and inputs without any text are errors naming them.
Result<std::vector<std::uint32_t>> tokenize_text_files(const std::vector<std::string> &paths,
                                                       std::string_view separator_line, bool with_eot);

} // namespace atp
