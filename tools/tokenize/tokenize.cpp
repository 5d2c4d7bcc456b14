//===- tokenize.cpp - text files -> a token file for train ---------------===//
//
//   autotpc-tokenize --in TEXT... --out FILE.bin [--dtype uint16|uint32]
//                    [--doc-sep LINE] [--no-eot]
//   autotpc-tokenize --decode FILE.bin [--eot-text TEXT]
//
// Encodes the inputs, in order, with the byte-level tokenizer
// (atp/byte_tokenizer.h): each input is one document, or with --doc-sep
// the lines between lines equal to LINE are (`--doc-sep %` for fortune
// files); every document is followed by the end-of-text id 256 unless
// --no-eot (then the ids fit a vocabulary of 256). Writes a token file
// (atp/token_file.h), uint16 by default, atomically: on any error the
// output path keeps what it had. Two passes over the mapped inputs (so they
// must be regular files, not pipes): the first counts the tokens (the header
// comes first), the second writes them in 1 MiB pieces, with progress on
// stderr every 64 MiB when the inputs exceed that. The summary line goes to
// stdout. --decode prints a token file's text to
// stdout (end of text as TEXT, default nothing; "\n", "\t" and "\\" in TEXT
// are escapes, so `--eot-text '%\n'` gives a fortune file back byte for byte).
// Exit status 1 on any error.
//
//===----------------------------------------------------------------------===//
#include "atp/byte_tokenizer.h"
#include "atp/status.h"
#include "atp/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

const char *const kTool = "autotpc-tokenize";
constexpr std::uint64_t kProgressBytes = 64ull << 20;
constexpr std::size_t kPiece = 1u << 20;

int fail_with(const std::string &msg) {
  std::fprintf(stderr, "%s: error: %s\n", kTool, msg.c_str());
  return 1;
}

void usage(std::FILE *to) {
  std::fprintf(to,
               "usage: %s --in TEXT... --out FILE.bin [--dtype uint16|uint32] [--doc-sep LINE] "
               "[--no-eot]\n"
               "       %s --decode FILE.bin [--eot-text TEXT]\n"
               "  Byte-level tokens of the text files (ids 0..255 bytes, 256 end of text after\n"
               "  each document), written as a token file for train.\n"
               "  --doc-sep LINE  a line equal to LINE separates documents (fortune files: %%)\n"
               "  --no-eot        no end-of-text ids (the ids then fit a vocab_size of 256)\n"
               "  --decode        print the text of a token file (end of text as --eot-text,\n"
               "                  where \\n, \\t and \\\\ are escapes)\n",
               kTool, kTool);
}

/// A read-only mapping of a whole input file.
class MappedText {
public:
  ~MappedText() {
    if (map_)
      ::munmap(map_, size_);
    if (fd_ >= 0)
      ::close(fd_);
  }
  atp::Status open(const std::string &path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      return atp::error(path + ": cannot open: " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0)
      return atp::error(path + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      return atp::error(path + ": not a regular file");
    size_ = std::size_t(st.st_size);
    if (size_ == 0)
      return atp::Status();
    void *m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (m == MAP_FAILED)
      return atp::error(path + ": cannot mmap: " + std::strerror(errno));
    map_ = m;
    return atp::Status();
  }
  std::string_view text() const {
    return map_ ? std::string_view(static_cast<const char *>(map_), size_) : std::string_view();
  }

private:
  int fd_ = -1;
  void *map_ = nullptr;
  std::size_t size_ = 0;
};

struct Options {
  std::vector<std::string> inputs;
  std::string out, doc_sep, dtype = "uint16", decode, eot_text;
  bool eot = true;
};

/// Parses argv; returns false (after printing) on a usage error.
bool parse_args(int argc, char **argv, Options &o, int &exit_code) {
  exit_code = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string &dst) {
      if (i + 1 >= argc) {
        fail_with("option " + a + " needs a value");
        return false;
      }
      dst = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      exit_code = 0;
      return false;
    } else if (a == "--in") {
      while (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0)
        o.inputs.push_back(argv[++i]);
    } else if (a == "--out") {
      if (!value(o.out))
        return false;
    } else if (a == "--dtype") {
      if (!value(o.dtype))
        return false;
    } else if (a == "--doc-sep") {
      if (!value(o.doc_sep))
        return false;
      if (o.doc_sep.empty()) {
        fail_with("--doc-sep needs a non-empty line");
        return false;
      }
    } else if (a == "--decode") {
      if (!value(o.decode))
        return false;
    } else if (a == "--eot-text") {
      if (!value(o.eot_text))
        return false;
    } else if (a == "--no-eot") {
      o.eot = false;
    } else {
      fail_with("unknown argument " + atp::quote(a) + " (see --help)");
      return false;
    }
  }
  if (!o.decode.empty()) {
    if (!o.inputs.empty() || !o.out.empty()) {
      fail_with("--decode takes no --in or --out");
      return false;
    }
    return true;
  }
  if (o.inputs.empty()) {
    fail_with("no input files (--in TEXT...)");
    return false;
  }
  if (o.out.empty()) {
    fail_with("no output file (--out FILE.bin)");
    return false;
  }
  return true;
}

std::string mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(1 << 20));
  return buf;
}

/// TEXT with "\n", "\t" and "\\" replaced; other backslashes stay.
std::string unescape(const std::string &text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      char e = text[i + 1];
      if (e == 'n' || e == 't' || e == '\\') {
        out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : '\\');
        ++i;
        continue;
      }
    }
    out.push_back(c);
  }
  return out;
}

/// --decode: the text of a token file on stdout, a million tokens at a time.
int decode_file(const Options &o) {
  atp::Result<atp::TokenFile> f = atp::TokenFile::open(o.decode);
  if (!f.ok())
    return fail_with(f.status().message());
  std::vector<std::uint32_t> buf;
  for (std::uint64_t at = 0; at < f->size();) {
    std::uint64_t n = std::min<std::uint64_t>(f->size() - at, 1u << 20);
    buf.resize(n);
    atp::Status st = f->read(at, n, buf.data());
    if (!st.ok())
      return fail_with(st.message());
    atp::Result<std::string> text = atp::decode_tokens(buf, unescape(o.eot_text));
    if (!text.ok())
      return fail_with(o.decode + ": from token " + std::to_string(at) + ": " + text.status().message());
    std::fwrite(text->data(), 1, text->size(), stdout);
    at += n;
  }
  return std::fflush(stdout) == 0 ? 0 : fail_with("cannot write to stdout");
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  int exit_code = 0;
  if (!parse_args(argc, argv, o, exit_code))
    return exit_code;
  if (!o.decode.empty())
    return decode_file(o);
  atp::Result<atp::TokenDType> dtype = atp::parse_token_dtype(o.dtype);
  if (!dtype.ok())
    return fail_with("--dtype: " + dtype.status().message());

  // Pass 1: map every input, count documents, tokens and the largest id.
  std::vector<MappedText> files(o.inputs.size());
  std::uint64_t tokens = 0, docs = 0, total_bytes = 0;
  std::uint32_t id_bound = 0;
  for (std::size_t f = 0; f < files.size(); ++f) {
    atp::Status st = files[f].open(o.inputs[f]);
    if (!st.ok())
      return fail_with(st.message());
    total_bytes += files[f].text().size();
    atp::for_each_document(files[f].text(), o.doc_sep, [&](std::string_view doc) {
      ++docs;
      tokens += doc.size() + (o.eot ? 1 : 0);
      if (o.eot) {
        id_bound = atp::kByteVocabWithEot;
      } else {
        for (unsigned char c : doc)
          id_bound = std::max<std::uint32_t>(id_bound, std::uint32_t(c) + 1);
      }
    });
  }
  if (tokens == 0)
    return fail_with("the inputs hold no text (" + std::to_string(total_bytes) +
                     " bytes, 0 documents); nothing written to " + o.out);

  // Pass 2: encode and write, one document at a time.
  atp::Result<atp::TokenFileWriter> w = atp::TokenFileWriter::create(o.out, *dtype, tokens, id_bound);
  if (!w.ok())
    return fail_with(w.status().message());
  std::vector<std::uint32_t> buf;
  std::uint64_t done_bytes = 0, next_report = kProgressBytes;
  for (std::size_t f = 0; f < files.size(); ++f) {
    atp::Status st;
    const char *base = files[f].text().data();
    atp::for_each_document(files[f].text(), o.doc_sep, [&](std::string_view doc) {
      if (!st.ok())
        return;
      // In pieces of at most 1 MiB, so memory stays small and progress
      // moves inside one huge document too.
      for (std::size_t off = 0; st.ok() && off < doc.size(); off += kPiece) {
        std::string_view piece = doc.substr(off, kPiece);
        buf.clear();
        atp::encode_bytes(piece, buf);
        st = w->append(buf.data(), buf.size());
        std::uint64_t at = done_bytes + std::uint64_t(piece.data() + piece.size() - base);
        if (total_bytes > kProgressBytes && at >= next_report) {
          std::fprintf(stderr, "%s: %s of %s read\n", kTool, mib(at).c_str(), mib(total_bytes).c_str());
          next_report = (at / kProgressBytes + 1) * kProgressBytes;
        }
      }
      if (st.ok() && o.eot)
        st = w->append(&atp::kEndOfText, 1);
    });
    if (!st.ok())
      return fail_with(st.message());
    done_bytes += files[f].text().size();
  }
  atp::Status st = w->commit();
  if (!st.ok())
    return fail_with(st.message());
  std::printf("%s: wrote %llu tokens (%llu documents from %zu files, %s, ids below %u) to %s\n", kTool,
              (unsigned long long)tokens, (unsigned long long)docs, files.size(), atp::token_dtype_name(*dtype),
              id_bound, o.out.c_str());
  return 0;
}
