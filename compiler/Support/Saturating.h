//===- Saturating.h - int64 arithmetic that saturates instead of overflowing -===//
//
// A hostile config can describe a model too large to count in 64 bits; the
// passes that count elements and bytes saturate at INT64_MAX rather than
// overflow (the fuzzers run them).
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_SUPPORT_SATURATING_H
#define AUTOTPC_SUPPORT_SATURATING_H

#include "llvm/Support/MathExtras.h"

#include <cstdint>

namespace autotpc {

/// A * B, or INT64_MAX if it overflows.
inline int64_t saturatingMul(int64_t A, int64_t B) {
  int64_t R;
  return llvm::MulOverflow(A, B, R) ? INT64_MAX : R;
}
/// A + B, or INT64_MAX if it overflows.
inline int64_t saturatingAdd(int64_t A, int64_t B) {
  int64_t R;
  return llvm::AddOverflow(A, B, R) ? INT64_MAX : R;
}

} // namespace autotpc

#endif // AUTOTPC_SUPPORT_SATURATING_H
