/* DataLoader: deterministic micro-batches of token rows for data parallel
   training, with a position that a checkpoint saves and restores.

   Rows. With sequence length S, window w is tokens [w·S, w·S + S + 1) of
   the data (counted from token_begin when only a part is used): S inputs
   and the same S shifted by one as targets (row i's inputs are tokens
   0..S-1, its targets 1..S). Consecutive windows share one token, so
   nothing is skipped; there are W = (N - 1) / S windows in N tokens (the
   tail that does not fill a window is not used). Fewer than S + 1 tokens
   is an error.

   Order. Global rows g = 0, 1, 2, ... run through epochs of W rows: global
   row g is window perm_e(g mod W) of epoch e = g div W, where perm_e is a
   seeded pseudo-random permutation of [0, W) (a 4-round Feistel network
   keyed by (seed, e), cycle-walked into range: O(1) memory and random
   access at any size), or the identity when shuffle is off. An epoch's
   permutation depends only on (seed, e, W).

   Distribution. Micro-batch t (counted from 0 by every rank alike) covers
   global rows [t·B·D, (t+1)·B·D) of a DP world of size D with micro-batch
   B; DP rank r takes rows t·B·D + r·B ... + B - 1. So optimizer step k,
   made of micro-batches kG .. kG+G-1 (G gradient accumulation steps),
   covers exactly global rows [k·B·G·D, (k+1)·B·G·D): the rows of a step
   depend only on the global batch B·G·D, never on how it is split into
   B, G and D; their distribution over ranks is disjoint. The ranks of a TP
   group pass the same DP rank and so read identical micro-batches.

   Validation. A token id >= vocab_size is an error naming the file, the
   token's position and its id. It is checked per micro-batch as rows are
   read (B·(S+1) compares, nothing beside the model's work); at open, when
   the header's id_bound exceeds vocab_size the file is scanned to name the
   first offending token; check_all_ids_at_open scans the whole file
   (O(N)) so a bad id fails before step 0 instead of when reached. The
   caller checks S against the model (check_seq_len). */
#pragma once

#include "atp/status.h"
#include "atp/token_file.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace atp {

struct DataLoaderOptions {
  std::uint64_t seq_len = 0;          ///< S: each row holds S + 1 tokens
  std::uint64_t micro_batch = 0;      ///< B: rows per micro-batch on this rank
  int dp_rank = 0;                    ///< this rank's DP rank (same across a TP group)
  int dp_size = 1;                    ///< D
  std::uint64_t seed = 0;             ///< shuffle seed
  bool shuffle = true;                ///< false: windows in file order every epoch
  std::uint64_t vocab_size = 0;       ///< ids must be below this (0: no check)
  bool check_all_ids_at_open = false; ///< scan the whole file once at open
  /// Use only tokens [token_begin, min(token_end, size)) of the data, e.g.
  /// a held-out tail for evaluation (windows count from token_begin).
  std::uint64_t token_begin = 0;
  std::uint64_t token_end = UINT64_MAX;
};

/// B rows of S + 1 tokens, row-major.
struct TokenBatch {
  std::uint64_t rows = 0, seq_len = 0;
  std::uint64_t index = 0;                ///< t: which micro-batch (0-based)
  std::vector<std::uint32_t> tokens;      ///< rows × (seq_len + 1)
  std::vector<std::uint64_t> global_rows; ///< g of each row
  std::vector<std::uint64_t> windows;     ///< window of each row

  const std::uint32_t *row(std::uint64_t i) const { return tokens.data() + i * (seq_len + 1); }
  /// The S inputs of row i.
  const std::uint32_t *inputs(std::uint64_t i) const { return row(i); }
  /// The S targets of row i (the inputs shifted by one).
  const std::uint32_t *targets(std::uint64_t i) const { return row(i) + 1; }
};

/// Where the loader is, for a checkpoint: small integers, the same on every
/// rank. Restoring checks that it belongs to the same data order.
struct DataPosition {
  std::uint64_t next_row = 0; ///< global rows consumed by the whole DP world
  std::uint64_t seed = 0;
  std::uint64_t seq_len = 0;
  std::uint64_t windows = 0; ///< W
  std::uint64_t shuffle = 1;
  std::uint64_t token_begin = 0;

  static constexpr std::size_t kWords = 6;
  /// The fields in the order above.
  std::array<std::uint64_t, kWords> to_words() const;
  static DataPosition from_words(const std::array<std::uint64_t, kWords> &words);
  bool operator==(const DataPosition &o) const { return to_words() == o.to_words(); }
};

class DataLoader {
public:
  /// Over a token file (mapped, validated).
  static Result<DataLoader> open(const std::string &path, const DataLoaderOptions &options);
  /// Over tokens in memory (e.g. text tokenized at start-up); `name` goes
  /// into messages in place of a file name.
  static Result<DataLoader> from_tokens(std::vector<std::uint32_t> tokens, const std::string &name,
                                        const DataLoaderOptions &options);

  /// The next micro-batch of this rank, into `out` (its buffers reused).
  Status next(TokenBatch &out);

  /// The position before the next micro-batch.
  DataPosition position() const;
  /// Continues from `pos`: the next micro-batch is the one that followed
  /// when `pos` was taken. Fails if pos is of another seed, sequence
  /// length, data size or shuffle setting, or does not start a micro-batch
  /// of this B·D.
  Status restore(const DataPosition &pos);
  /// Back to the first micro-batch (an evaluation pass starts here).
  void rewind() { next_row_ = 0; }

  std::uint64_t windows() const { return windows_; }
  /// Tokens in use: the data, or its [token_begin, token_end) part.
  std::uint64_t tokens() const { return end_ - begin_; }
  /// The epoch of the next micro-batch's first row.
  std::uint64_t epoch() const { return next_row_ / windows_; }
  /// Which window global row g reads.
  std::uint64_t window_of(std::uint64_t g) const;
  const std::string &name() const { return name_; }

private:
  Status init(const DataLoaderOptions &options);
  std::uint32_t token(std::uint64_t i) const;
  Status scan_ids() const;

  std::string name_;
  TokenFile file_;
  std::vector<std::uint32_t> memory_;
  bool in_memory_ = false;
  DataLoaderOptions opt_;
  std::uint64_t count_ = 0, begin_ = 0, end_ = 0, windows_ = 0, next_row_ = 0;
};

/// Fails unless seq_len is between 1 and the model's
/// max_position_embeddings (the message names both).
Status check_seq_len(std::uint64_t seq_len, std::uint64_t max_position_embeddings);

/// The seeded permutation the loader uses: the position of index i (< n)
/// in epoch `epoch`'s order. A bijection on [0, n) for every (seed, epoch).
std::uint64_t shuffle_index(std::uint64_t i, std::uint64_t n, std::uint64_t seed, std::uint64_t epoch);

} // namespace atp
