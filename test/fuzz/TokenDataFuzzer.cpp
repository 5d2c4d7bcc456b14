//===- TokenDataFuzzer.cpp - libFuzzer: token files, loader, documents -----===//
//
// The training-data path on arbitrary bytes. Input: 4 bytes of loader
// settings (sequence length 1..64, micro-batch 1..8, DP size 1..4 and rank,
// seed and shuffle), then a token file. The header parser must return a
// value or a Status; for a valid file the loader must either refuse it with
// a Status or give micro-batches whose rows are exactly their windows of the
// data, and the same rows again after restoring a saved position. The bytes
// also go through the document splitter, whose documents must be pieces of
// the text in order. Any violation traps.
//
//===----------------------------------------------------------------------===//
#include "atp/byte_tokenizer.h"
#include "atp/data_loader.h"
#include "atp/token_file.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

static void check(bool OK) {
  if (!OK)
    __builtin_trap();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  if (Size < 4)
    return 0;
  std::string_view Text(reinterpret_cast<const char *>(Data), Size);
  std::size_t Next = 0;
  atp::for_each_document(Text, "%", [&](std::string_view Doc) {
    check(!Doc.empty() && Doc.data() >= Text.data() + Next && Doc.data() + Doc.size() <= Text.data() + Size);
    Next = std::size_t(Doc.data() + Doc.size() - Text.data());
  });

  atp::DataLoaderOptions O;
  O.seq_len = 1 + Data[0] % 64;
  O.micro_batch = 1 + Data[1] % 8;
  O.dp_size = 1 + Data[2] % 4;
  O.dp_rank = (Data[2] >> 2) % O.dp_size;
  O.seed = Data[3] >> 1;
  O.shuffle = Data[3] & 1;
  O.vocab_size = 257;
  const uint8_t *File = Data + 4;
  const std::size_t FileSize = Size - 4;
  if (FileSize < atp::kTokenFileHeaderSize)
    return 0;
  atp::Result<atp::TokenFileHeader> H = atp::parse_token_file_header(File, FileSize, "fuzz.bin");
  if (!H.ok())
    return 0;
  const std::size_t Width = std::size_t(H->dtype);
  check(atp::kTokenFileHeaderSize + H->count * Width == FileSize);
  std::vector<uint32_t> Tokens(H->count);
  for (std::size_t I = 0; I < Tokens.size(); ++I) {
    const uint8_t *P = File + atp::kTokenFileHeaderSize + I * Width;
    uint32_t V = 0;
    for (std::size_t B = Width; B-- > 0;)
      V = (V << 8) | P[B];
    Tokens[I] = V;
  }
  atp::Result<atp::DataLoader> L = atp::DataLoader::from_tokens(Tokens, "fuzz.bin", O);
  if (!L.ok())
    return 0;
  check(L->windows() == (Tokens.size() - 1) / O.seq_len);
  atp::TokenBatch MB, Again;
  atp::DataPosition Saved;
  std::vector<uint32_t> After;
  for (int T = 0; T < 4; ++T) {
    if (T == 2)
      Saved = L->position();
    if (!L->next(MB).ok())
      return 0; // an id >= 257: refused with a Status
    for (uint64_t R = 0; R < MB.rows; ++R) {
      check(MB.windows[R] < L->windows());
      check(std::memcmp(MB.row(R), Tokens.data() + MB.windows[R] * O.seq_len, (O.seq_len + 1) * 4) == 0);
    }
    if (T == 2)
      After = MB.tokens;
  }
  check(L->restore(Saved).ok());
  check(L->next(Again).ok() && Again.tokens == After);
  return 0;
}
