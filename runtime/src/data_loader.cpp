/* DataLoader: windows, the seeded Feistel shuffle, the DP row split, the
   saved position, and the per-batch vocab check (see data_loader.h for the
   order and why the rows of a step do not depend on the DP size). */
#include "atp/data_loader.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace atp {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string n(std::uint64_t v) { return std::to_string(v); }

} // namespace

// ---------------------------------------------------------------- shuffle

std::uint64_t shuffle_index(std::uint64_t i, std::uint64_t count, std::uint64_t seed, std::uint64_t epoch) {
  if (count <= 1)
    return i;
  // Smallest even number of bits 2h with 2^(2h) >= count; a Feistel network
  // over two h-bit halves is a bijection of [0, 2^(2h)), and walking the
  // cycle until the value lands below count makes it one of [0, count).
  unsigned bits = 0;
  while (bits < 64 && (std::uint64_t(1) << bits) < count)
    ++bits;
  unsigned half = (bits + 1) / 2;
  const std::uint64_t mask = (std::uint64_t(1) << half) - 1;
  const std::uint64_t key = splitmix64(splitmix64(seed) + epoch);
  std::uint64_t x = i;
  do {
    std::uint64_t l = x >> half, r = x & mask;
    for (std::uint64_t round = 0; round < 4; ++round) {
      std::uint64_t f = splitmix64(splitmix64(key + round) ^ r) & mask;
      std::uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half) | r;
  } while (x >= count);
  return x;
}

// ---------------------------------------------------------------- position

std::array<std::uint64_t, DataPosition::kWords> DataPosition::to_words() const {
  return {next_row, seed, seq_len, windows, shuffle, token_begin};
}

DataPosition DataPosition::from_words(const std::array<std::uint64_t, kWords> &w) {
  DataPosition p;
  p.next_row = w[0];
  p.seed = w[1];
  p.seq_len = w[2];
  p.windows = w[3];
  p.shuffle = w[4];
  p.token_begin = w[5];
  return p;
}

// ---------------------------------------------------------------- loader

Result<DataLoader> DataLoader::open(const std::string &path, const DataLoaderOptions &options) {
  DataLoader d;
  d.name_ = path;
  ATP_ASSIGN_OR_RETURN(d.file_, TokenFile::open(path));
  d.count_ = d.file_.size();
  if (options.vocab_size != 0 && d.file_.id_bound() > options.vocab_size)
    ATP_TRY(d.file_.check_ids(options.vocab_size)); // names the first bad token
  ATP_TRY(d.init(options));
  return d;
}

Result<DataLoader> DataLoader::from_tokens(std::vector<std::uint32_t> tokens, const std::string &name,
                                           const DataLoaderOptions &options) {
  DataLoader d;
  d.name_ = name;
  d.memory_ = std::move(tokens);
  d.in_memory_ = true;
  d.count_ = d.memory_.size();
  ATP_TRY(d.init(options));
  return d;
}

Status DataLoader::init(const DataLoaderOptions &o) {
  if (o.seq_len == 0)
    return error(name_ + ": sequence length must be at least 1");
  if (o.micro_batch == 0)
    return error(name_ + ": micro-batch size must be at least 1");
  if (o.dp_size < 1 || o.dp_rank < 0 || o.dp_rank >= o.dp_size)
    return error(name_ + ": DP rank " + std::to_string(o.dp_rank) + " is not in a DP world of " +
                 std::to_string(o.dp_size));
  if (o.seq_len > std::numeric_limits<std::uint64_t>::max() / 4 ||
      o.micro_batch > std::numeric_limits<std::uint64_t>::max() / 4 / std::uint64_t(o.dp_size))
    return error(name_ + ": sequence length or batch size too large");
  begin_ = o.token_begin;
  end_ = std::min(o.token_end, count_);
  if (begin_ > end_ || (begin_ == end_ && count_ > 0))
    return error(name_ + ": token range [" + n(o.token_begin) + ", " + n(o.token_end) + ") holds none of its " +
                 n(count_) + " tokens");
  const bool whole = begin_ == 0 && end_ == count_;
  if (end_ - begin_ < o.seq_len + 1)
    return error(name_ + ": " + (whole ? "" : "tokens [" + n(begin_) + ", " + n(end_) + "): ") + n(end_ - begin_) +
                 " tokens, fewer than one row of " + n(o.seq_len + 1) + " (sequence length " + n(o.seq_len) + " + 1)");
  opt_ = o;
  windows_ = (end_ - begin_ - 1) / o.seq_len;
  next_row_ = 0;
  if (o.check_all_ids_at_open && o.vocab_size != 0)
    ATP_TRY(scan_ids());
  return Status();
}

std::uint32_t DataLoader::token(std::uint64_t i) const { return in_memory_ ? memory_[i] : file_.at(i); }

Status DataLoader::scan_ids() const {
  for (std::uint64_t i = begin_; i < end_; ++i)
    if (token(i) >= opt_.vocab_size)
      return error(name_ + ": token " + n(i) + " has id " + n(token(i)) + ", not below the vocab size " +
                   n(opt_.vocab_size));
  return Status();
}

std::uint64_t DataLoader::window_of(std::uint64_t g) const {
  std::uint64_t e = g / windows_, j = g % windows_;
  return opt_.shuffle ? shuffle_index(j, windows_, opt_.seed, e) : j;
}

Status DataLoader::next(TokenBatch &out) {
  const std::uint64_t b = opt_.micro_batch, s = opt_.seq_len, row = s + 1;
  const std::uint64_t per_step = b * std::uint64_t(opt_.dp_size);
  const std::uint64_t first = next_row_ + b * std::uint64_t(opt_.dp_rank);
  out.rows = b;
  out.seq_len = s;
  out.index = next_row_ / per_step;
  out.tokens.resize(b * row);
  out.global_rows.resize(b);
  out.windows.resize(b);
  for (std::uint64_t i = 0; i < b; ++i) {
    const std::uint64_t g = first + i, w = window_of(g), begin = begin_ + w * s;
    out.global_rows[i] = g;
    out.windows[i] = w;
    std::uint32_t *dst = out.tokens.data() + i * row;
    for (std::uint64_t k = 0; k < row; ++k) {
      std::uint32_t t = token(begin + k);
      if (opt_.vocab_size != 0 && t >= opt_.vocab_size)
        return error(name_ + ": token " + n(begin + k) + " has id " + n(t) + ", not below the vocab size " +
                     n(opt_.vocab_size) + " (micro-batch " + n(out.index) + ", row " + n(i) + ", window " + n(w) + ")");
      dst[k] = t;
    }
  }
  next_row_ += per_step;
  return Status();
}

DataPosition DataLoader::position() const {
  DataPosition p;
  p.next_row = next_row_;
  p.seed = opt_.seed;
  p.seq_len = opt_.seq_len;
  p.windows = windows_;
  p.shuffle = opt_.shuffle ? 1 : 0;
  p.token_begin = begin_;
  return p;
}

Status DataLoader::restore(const DataPosition &pos) {
  DataPosition here = position();
  auto mismatch = [&](const char *what, std::uint64_t saved, std::uint64_t now) {
    return error(name_ + ": the saved data position is for " + what + " " + n(saved) + ", this run has " + n(now));
  };
  if (pos.seed != here.seed)
    return mismatch("seed", pos.seed, here.seed);
  if (pos.seq_len != here.seq_len)
    return mismatch("sequence length", pos.seq_len, here.seq_len);
  if (pos.windows != here.windows)
    return mismatch("a data size of windows", pos.windows, here.windows);
  if (pos.shuffle != here.shuffle)
    return mismatch("shuffle", pos.shuffle, here.shuffle);
  if (pos.token_begin != here.token_begin)
    return mismatch("data starting at token", pos.token_begin, here.token_begin);
  const std::uint64_t per_step = opt_.micro_batch * std::uint64_t(opt_.dp_size);
  if (pos.next_row % per_step != 0)
    return error(name_ + ": the saved data position (global row " + n(pos.next_row) +
                 ") does not start a micro-batch of " + n(opt_.micro_batch) + " rows x DP " +
                 std::to_string(opt_.dp_size));
  next_row_ = pos.next_row;
  return Status();
}

Status check_seq_len(std::uint64_t seq_len, std::uint64_t max_position_embeddings) {
  if (seq_len == 0)
    return error("sequence length must be at least 1");
  if (seq_len > max_position_embeddings)
    return error("sequence length " + n(seq_len) + " exceeds the model's max_position_embeddings " +
                 n(max_position_embeddings));
  return Status();
}

} // namespace atp
