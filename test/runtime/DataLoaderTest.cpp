/* DataLoader: rows are the documented windows of the data; the rows of an
   optimizer step are the same set whatever B x GAS x DP split the global
   batch, spread disjointly over DP ranks; TP ranks sharing a DP rank read
   the same; a restored position continues exactly; bad ids and short data
   are errors that name the numbers. */
#include "atp/data_loader.h"

#include "CoreTestUtil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

using namespace atp;
using atp_test::TempDir;

namespace {

std::vector<std::uint32_t> data(std::size_t n, std::uint32_t bound = 257) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = (atp_test::value_byte(5, 2 * i) * 256u + atp_test::value_byte(5, 2 * i + 1)) % bound;
  return v;
}

DataLoaderOptions opts(std::uint64_t s, std::uint64_t b, int rank, int size, std::uint64_t seed = 9) {
  DataLoaderOptions o;
  o.seq_len = s;
  o.micro_batch = b;
  o.dp_rank = rank;
  o.dp_size = size;
  o.seed = seed;
  o.vocab_size = 257;
  return o;
}

/// The rows of `steps` optimizer steps: per step, per DP rank, the global
/// rows and (sorted) windows it read; every row's tokens checked against
/// the data at its window.
struct StepRows {
  std::vector<std::vector<std::uint64_t>> rows_by_rank; // [rank] -> global rows
  std::multiset<std::uint64_t> windows;                 // of all ranks
};

std::vector<StepRows> run(const std::vector<std::uint32_t> &tokens, std::uint64_t s, std::uint64_t b, std::uint64_t gas,
                          int dp, int steps) {
  std::vector<StepRows> out(static_cast<std::size_t>(steps));
  for (int r = 0; r < dp; ++r) {
    Result<DataLoader> d = DataLoader::from_tokens(tokens, "mem", opts(s, b, r, dp));
    EXPECT_TRUE(d.ok()) << d.status().message();
    TokenBatch mb;
    for (int k = 0; k < steps; ++k) {
      out[std::size_t(k)].rows_by_rank.resize(std::size_t(dp));
      for (std::uint64_t m = 0; m < gas; ++m) {
        EXPECT_TRUE(d->next(mb).ok());
        for (std::uint64_t i = 0; i < b; ++i) {
          out[std::size_t(k)].rows_by_rank[std::size_t(r)].push_back(mb.global_rows[i]);
          out[std::size_t(k)].windows.insert(mb.windows[i]);
          std::vector<std::uint32_t> want(tokens.begin() + long(mb.windows[i] * s),
                                          tokens.begin() + long(mb.windows[i] * s + s + 1));
          EXPECT_EQ(std::vector<std::uint32_t>(mb.row(i), mb.row(i) + s + 1), want);
        }
      }
    }
  }
  return out;
}

} // namespace

TEST(DataLoader, ShuffleIsAPermutationPerEpoch) {
  for (std::uint64_t n : {1ull, 2ull, 3ull, 7ull, 64ull, 1000ull, 1025ull}) {
    for (std::uint64_t epoch : {0ull, 1ull}) {
      std::vector<std::uint64_t> seen(n, 0);
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint64_t p = shuffle_index(i, n, 3, epoch);
        ASSERT_LT(p, n);
        ++seen[p];
      }
      EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](std::uint64_t c) { return c == 1; })) << n;
    }
  }
  // Shuffled at all, and differently per epoch and per seed.
  int same_identity = 0, same_epoch = 0, same_seed = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    same_identity += shuffle_index(i, 1000, 3, 0) == i;
    same_epoch += shuffle_index(i, 1000, 3, 0) == shuffle_index(i, 1000, 3, 1);
    same_seed += shuffle_index(i, 1000, 3, 0) == shuffle_index(i, 1000, 4, 0);
  }
  EXPECT_LT(same_identity, 20);
  EXPECT_LT(same_epoch, 20);
  EXPECT_LT(same_seed, 20);
}

TEST(DataLoader, StepRowsDoNotDependOnTheDpSplit) {
  // 1000 tokens, S = 7: 142 windows; a global batch of 8 rows, so steps
  // cross epoch boundaries (142 is not a multiple of 8).
  const std::vector<std::uint32_t> tokens = data(1000);
  const int steps = 40;
  struct Split {
    std::uint64_t b, gas;
    int dp;
  };
  std::vector<StepRows> ref = run(tokens, 7, 8, 1, 1, steps);
  for (Split sp : {Split{2, 4, 1}, Split{2, 2, 2}, Split{2, 1, 4}, Split{1, 8, 1}, Split{1, 2, 4}, Split{4, 1, 2}}) {
    std::vector<StepRows> got = run(tokens, 7, sp.b, sp.gas, sp.dp, steps);
    for (int k = 0; k < steps; ++k) {
      const StepRows &g = got[std::size_t(k)];
      EXPECT_EQ(g.windows, ref[std::size_t(k)].windows) << "step " << k << " dp " << sp.dp;
      // Disjoint over ranks, and together exactly global rows [8k, 8k+8).
      std::set<std::uint64_t> all;
      std::size_t total = 0;
      for (const auto &rows : g.rows_by_rank) {
        EXPECT_EQ(rows.size(), sp.b * sp.gas);
        all.insert(rows.begin(), rows.end());
        total += rows.size();
      }
      EXPECT_EQ(total, 8u);
      ASSERT_EQ(all.size(), 8u) << "rows of two ranks overlap at step " << k;
      EXPECT_EQ(*all.begin(), 8u * std::uint64_t(k));
      EXPECT_EQ(*all.rbegin(), 8u * std::uint64_t(k) + 7);
    }
  }
  // Independently: unshuffled, global row g is window g mod W.
  Result<DataLoader> d = DataLoader::from_tokens(tokens, "mem", [] {
    DataLoaderOptions o = opts(7, 8, 0, 1);
    o.shuffle = false;
    return o;
  }());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->windows(), 142u);
  for (std::uint64_t g : {0ull, 141ull, 142ull, 300ull})
    EXPECT_EQ(d->window_of(g), g % 142);
  // Shuffled, every epoch visits every window once.
  Result<DataLoader> sh = DataLoader::from_tokens(tokens, "mem", opts(7, 1, 0, 1));
  std::set<std::uint64_t> epoch1;
  for (std::uint64_t g = 142; g < 284; ++g)
    epoch1.insert(sh->window_of(g));
  EXPECT_EQ(epoch1.size(), 142u);
  EXPECT_EQ(*epoch1.rbegin(), 141u);
}

TEST(DataLoader, TpRanksOfOneDpRankReadTheSame) {
  TempDir dir;
  const std::vector<std::uint32_t> tokens = data(5000);
  ASSERT_TRUE(write_token_file(dir / "t.bin", tokens, TokenDType::U16).ok());
  Result<DataLoader> tp0 = DataLoader::open(dir / "t.bin", opts(16, 3, 1, 2));
  Result<DataLoader> tp1 = DataLoader::open(dir / "t.bin", opts(16, 3, 1, 2));
  Result<DataLoader> other = DataLoader::open(dir / "t.bin", opts(16, 3, 0, 2));
  ASSERT_TRUE(tp0.ok() && tp1.ok() && other.ok()) << tp0.status().message();
  TokenBatch a, b, c;
  for (int t = 0; t < 10; ++t) {
    ASSERT_TRUE(tp0->next(a).ok() && tp1->next(b).ok() && other->next(c).ok());
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.windows, b.windows);
    EXPECT_NE(a.windows, c.windows);
    EXPECT_EQ(a.index, std::uint64_t(t));
  }
}

TEST(DataLoader, RestoredPositionContinuesExactly) {
  const std::vector<std::uint32_t> tokens = data(3000);
  Result<DataLoader> a = DataLoader::from_tokens(tokens, "mem", opts(10, 4, 1, 2));
  ASSERT_TRUE(a.ok());
  TokenBatch mb;
  for (int t = 0; t < 45; ++t) // past the first epoch (299 windows / 8 rows per micro-batch)
    ASSERT_TRUE(a->next(mb).ok());
  DataPosition saved = DataPosition::from_words(a->position().to_words());
  EXPECT_EQ(saved.next_row, 45u * 8);
  EXPECT_EQ(a->epoch(), 1u);
  std::vector<std::vector<std::uint32_t>> expect;
  for (int t = 0; t < 10; ++t) {
    ASSERT_TRUE(a->next(mb).ok());
    expect.push_back(mb.tokens);
  }
  Result<DataLoader> b = DataLoader::from_tokens(tokens, "mem", opts(10, 4, 1, 2));
  ASSERT_TRUE(b->restore(saved).ok());
  for (int t = 0; t < 10; ++t) {
    ASSERT_TRUE(b->next(mb).ok());
    EXPECT_EQ(mb.tokens, expect[std::size_t(t)]) << t;
    EXPECT_EQ(mb.index, 45u + std::uint64_t(t));
  }
  // The same position at DP 4 x B 2 continues with the same global rows.
  Result<DataLoader> c = DataLoader::from_tokens(tokens, "mem", opts(10, 2, 2, 4));
  ASSERT_TRUE(c->restore(saved).ok());
  ASSERT_TRUE(c->next(mb).ok());
  EXPECT_EQ(mb.global_rows, (std::vector<std::uint64_t>{364, 365}));

  Result<DataLoader> seed = DataLoader::from_tokens(tokens, "mem", opts(10, 4, 1, 2, 10));
  Status st = seed->restore(saved);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "mem: the saved data position is for seed 9, this run has 10");
  Result<DataLoader> seq = DataLoader::from_tokens(tokens, "mem", opts(11, 4, 1, 2));
  EXPECT_EQ(seq->restore(saved).message(), "mem: the saved data position is for sequence length 10, this run has 11");
  Result<DataLoader> odd = DataLoader::from_tokens(tokens, "mem", opts(10, 7, 0, 1));
  EXPECT_EQ(odd->restore(saved).message(), "mem: the saved data position (global row 360) does "
                                           "not start a micro-batch of 7 rows x DP 1");
}

TEST(DataLoader, OutOfVocabIdsAndShortData) {
  TempDir dir;
  std::vector<std::uint32_t> tokens = data(200, 256);
  tokens[123] = 300;
  // The header says so (id_bound 301): refused at open, naming the token.
  ASSERT_TRUE(write_token_file(dir / "t.bin", tokens, TokenDType::U16).ok());
  Result<DataLoader> d = DataLoader::open(dir / "t.bin", opts(10, 2, 0, 1));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), dir / "t.bin" + ": token 123 has id 300, not below the vocab size 257");

  // A header that lies (id_bound 257): caught in the micro-batch that reads it.
  std::vector<unsigned char> head = encode_token_file_header({TokenDType::U16, tokens.size(), 257});
  std::string bytes(head.begin(), head.end());
  for (std::uint32_t t : tokens)
    bytes += std::string{char(t & 0xff), char(t >> 8)};
  atp_test::write_file(dir / "lie.bin", bytes);
  DataLoaderOptions o = opts(10, 2, 0, 1);
  o.shuffle = false;
  Result<DataLoader> lie = DataLoader::open(dir / "lie.bin", o);
  ASSERT_TRUE(lie.ok()) << lie.status().message();
  TokenBatch mb;
  Status st;
  int batches = 0;
  while ((st = lie->next(mb)).ok())
    ++batches;
  EXPECT_EQ(batches, 6); // rows 0..11 cover tokens 0..120; row 12 holds token 123
  EXPECT_EQ(st.message(), dir / "lie.bin" + ": token 123 has id 300, not below the vocab size 257 "
                                            "(micro-batch 6, row 0, window 12)");
  o.check_all_ids_at_open = true;
  EXPECT_EQ(DataLoader::open(dir / "lie.bin", o).status().message(),
            dir / "lie.bin" + ": token 123 has id 300, not below the vocab size 257");

  Result<DataLoader> shortd = DataLoader::from_tokens(data(10), "mem", opts(10, 1, 0, 1));
  ASSERT_FALSE(shortd.ok());
  EXPECT_EQ(shortd.status().message(), "mem: 10 tokens, fewer than one row of 11 (sequence length 10 + 1)");
  EXPECT_TRUE(DataLoader::from_tokens(data(11), "mem", opts(10, 1, 0, 1)).ok());
  ASSERT_TRUE(write_token_file(dir / "empty.bin", {}, TokenDType::U16).ok());
  EXPECT_EQ(DataLoader::open(dir / "empty.bin", opts(4, 1, 0, 1)).status().message(),
            dir / "empty.bin" + ": 0 tokens, fewer than one row of 5 (sequence length 4 + 1)");
  EXPECT_FALSE(DataLoader::from_tokens(data(100), "mem", opts(4, 1, 2, 2)).ok());

  EXPECT_TRUE(check_seq_len(256, 256).ok());
  EXPECT_EQ(check_seq_len(257, 256).message(), "sequence length 257 exceeds the model's max_position_embeddings 256");
}

TEST(DataLoader, PartOfTheDataForEvaluation) {
  // Tokens [900, 1000) of 1000 as a held-out part: 99 / 8 = 12 windows, counted from token 900.
  const std::vector<std::uint32_t> tokens = data(1000);
  DataLoaderOptions o = opts(8, 5, 0, 1);
  o.shuffle = false;
  o.token_begin = 900;
  Result<DataLoader> d = DataLoader::from_tokens(tokens, "mem", o);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->windows(), 12u);
  EXPECT_EQ(d->tokens(), 100u);
  TokenBatch mb;
  for (int pass = 0; pass < 2; ++pass) { // rewind() starts the same pass again
    ASSERT_TRUE(d->next(mb).ok());
    ASSERT_TRUE(d->next(mb).ok()); // rows 5..9: windows 5..9
    EXPECT_EQ(mb.windows, (std::vector<std::uint64_t>{5, 6, 7, 8, 9}));
    EXPECT_EQ(std::vector<std::uint32_t>(mb.row(2), mb.row(2) + 9),
              std::vector<std::uint32_t>(tokens.begin() + 956, tokens.begin() + 965));
    ASSERT_TRUE(d->next(mb).ok()); // rows 10..14: windows 10, 11, then 0, 1, 2 of epoch 1
    EXPECT_EQ(mb.windows, (std::vector<std::uint64_t>{10, 11, 0, 1, 2}));
    EXPECT_EQ(mb.row(4)[0], tokens[916]);
    d->rewind();
  }
  // The training part [0, 900): a position of one part does not restore on the other.
  DataLoaderOptions t = opts(8, 5, 0, 1);
  t.shuffle = false;
  t.token_end = 97; // also 12 windows
  Result<DataLoader> train = DataLoader::from_tokens(tokens, "mem", t);
  ASSERT_TRUE(train.ok());
  EXPECT_EQ(train->restore(d->position()).message(),
            "mem: the saved data position is for data starting at token 900, this run has 0");
  t.token_begin = 95;
  EXPECT_EQ(DataLoader::from_tokens(tokens, "mem", t).status().message(),
            "mem: tokens [95, 97): 2 tokens, fewer than one row of 9 (sequence length 8 + 1)");
  t.token_begin = 2000;
  EXPECT_EQ(DataLoader::from_tokens(tokens, "mem", t).status().message(),
            "mem: token range [2000, 97) holds none of its 1000 tokens");
}
