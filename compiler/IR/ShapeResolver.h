//===- ShapeResolver.h - DeepSpeed's `shape` / `partition_dim` rules ----===//
//
// Resolves a spec's logical view of a 2-D weight [out, in] (reference §1.10):
// infers the -1 and count entries, checks products against the weight, and
// yields the sub-parameter sizes along the partition dim and the dim a bias
// is split along. Errors use DeepSpeed's message text.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_IR_SHAPERESOLVER_H
#define AUTOTPC_IR_SHAPERESOLVER_H

#include "Spec/Config.h"

namespace autotpc {

struct ResolvedShape {
  std::vector<int64_t> Logical;
  int PartitionDim = 0;
  std::vector<int64_t> SubSizes;
  std::vector<int64_t> OutputShape;    ///< Logical without its last (input) dim
  std::optional<int> BiasPartitionDim; ///< PartitionDim if it indexes OutputShape
  bool FromCount = false;              ///< sub-sizes came from an equal-split count
};

/// Resolves Spec's shape against a weight of shape [Out, In]. On failure
/// returns std::nullopt and sets Error to DeepSpeed's message without its
/// "AutoTP layer 'NAME' " prefix (the caller adds it, once per spec).
std::optional<ResolvedShape> resolveShape(const LayerSpec &Spec, int64_t Out, int64_t In,
                                          llvm::StringRef Name, std::string &Error);

/// The plain (no `shape`) view: column splits dim 0 of [out, in], row dim 1.
ResolvedShape plainShape(PartitionType Type, int64_t Out, int64_t In);

} // namespace autotpc

#endif // AUTOTPC_IR_SHAPERESOLVER_H
