/* zero_padding.h - the ZeRO flat-buffer alignment and padding rule, stated once.

   autotpc lays out each TP rank's flat buffers and prints --emit=memory with it (compiler/Lower/
   ZeroLayout.cpp); the engine pads the emitted tables for the launch DP size with it (runtime/src/
   zero_layout.cpp). One rule in one place is what makes the ledger the compiler prints the memory the
   engine allocates. The header needs the standard library only, so that the compiler includes it without
   linking any runtime code.

   Flat layout: every parameter starts at the first multiple of kFlatAlign at or after the end of the
   previous one (flat_offset_after).
   Padding for a DP size dp >= 1, over the buckets in order, bucket b spanning len_b flat elements:
     piece  s_b  = ceil(len_b / dp)           each DP rank's share; the bucket is padded to dp * s_b
     begin  pb_0 = 0,  pb_{b+1} = align_up(pb_b + dp * s_b, kFlatAlign)
     part   q_b  = s_0 + ... + s_{b-1}        where the piece starts in a DP rank's partition
     N = pb_last + dp * s_last (0 without buckets),   P = s_0 + ... + s_last.
   DP rank d owns [pb_b + d * s_b, pb_b + (d + 1) * s_b) of every bucket.

   Element counts saturate at INT64_MAX instead of overflowing: autotpc runs the rule on hostile configs
   (the fuzzers do), and a saturated size is then refused by whoever tries to allocate it. */
#pragma once

#include <cstdint>
#include <limits>

namespace atp {

/// Every parameter's flat offset and every padded bucket's begin is a multiple of this many elements:
/// 128-byte aligned views in 16-bit, 256-byte in fp32.
inline constexpr std::int64_t kFlatAlign = 64;

/// a + b, or INT64_MAX if that overflows (either way).
constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  if (b > 0 ? a > kMax - b : a < kMin - b)
    return kMax;
  return a + b;
}

/// a * b, or INT64_MAX if that overflows (either way).
constexpr std::int64_t saturating_mul(std::int64_t a, std::int64_t b) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  if (a == 0 || b == 0)
    return 0;
  const bool overflows = a > 0 ? (b > 0 ? a > kMax / b : b < kMin / a)
                               : (b > 0 ? a < kMin / b : b < kMax / a);
  return overflows ? kMax : a * b;
}

/// x rounded up to a multiple of a (a >= 1), or INT64_MAX if that does not fit.
constexpr std::int64_t align_up(std::int64_t x, std::int64_t a) {
  const std::int64_t up = saturating_add(x, a - 1);
  return up == std::numeric_limits<std::int64_t>::max() ? up : up / a * a;
}

/// Where the next parameter of a flat layout starts when the previous one ends at `end`.
constexpr std::int64_t flat_offset_after(std::int64_t end) { return align_up(end, kFlatAlign); }

/// ceil(len / dp): each DP rank's piece of a bucket of len >= 0 elements, for dp >= 1.
constexpr std::int64_t dp_piece(std::int64_t len, std::int64_t dp) { return len / dp + (len % dp != 0); }

/// One bucket of the padded layout.
struct PaddedBucket {
  std::int64_t begin;  ///< first element in the padded flat buffer (a multiple of kFlatAlign)
  std::int64_t piece;  ///< elements of each DP rank's piece; the padded bucket is dp * piece long
  std::int64_t part;   ///< where this bucket's piece starts in a DP rank's partition
};

/// Places the padded buckets of one flat layout, in bucket order: add() each bucket's length, then read
/// N (numel) and P (partition).
class BucketPadder {
public:
  /// dp >= 1 (callers check it).
  constexpr explicit BucketPadder(std::int64_t dp) : dp_(dp) {}

  /// The next bucket, spanning len >= 0 flat elements of the unpadded layout.
  constexpr PaddedBucket add(std::int64_t len) {
    const PaddedBucket b{align_up(end_, kFlatAlign), dp_piece(len, dp_), partition_};
    partition_ = saturating_add(partition_, b.piece);
    end_ = saturating_add(b.begin, saturating_mul(b.piece, dp_));
    return b;
  }
  /// N: the padded flat buffer, the end of the last padded bucket (0 before any).
  constexpr std::int64_t numel() const { return end_; }
  /// P: one DP rank's partition, the sum of the pieces.
  constexpr std::int64_t partition() const { return partition_; }

private:
  std::int64_t dp_;
  std::int64_t end_ = 0;
  std::int64_t partition_ = 0;
};

} // namespace atp
