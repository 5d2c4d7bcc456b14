//===- ShapeResolver.cpp - DeepSpeed's `shape` / `partition_dim` rules --===//
#include "IR/ShapeResolver.h"

#include "llvm/Support/MathExtras.h"

using namespace autotpc;

/// Product with overflow detection; returns false on overflow.
static bool product(const std::vector<int64_t> &V, size_t Begin, size_t End, int64_t &Out) {
  Out = 1;
  for (size_t I = Begin; I < End; ++I)
    if (llvm::MulOverflow(Out, V[I], Out))
      return false;
  return true;
}

std::optional<ResolvedShape> autotpc::resolveShape(const LayerSpec &Spec, int64_t Out, int64_t In,
                                                   llvm::StringRef Name, std::string &Error) {
  const std::vector<ShapeEntry> &Shape = *Spec.Shape;
  (void)Name;
  auto Fail = [&](const std::string &Msg) -> std::optional<ResolvedShape> {
    Error = Msg;
    return std::nullopt;
  };
  ResolvedShape R;
  R.PartitionDim = int(Spec.partitionDim());
  int64_t Numel = 0;
  if (llvm::MulOverflow(Out, In, Numel))
    return Fail("weight is too large");
  const size_t N = Shape.size();
  std::vector<int64_t> Dims(N, -1);
  int64_t Count = 0;
  for (size_t I = 0; I < N; ++I) {
    const ShapeEntry &E = Shape[I];
    if (E.IsList) {
      R.SubSizes = E.Sizes;
      int64_t Sum = 0;
      for (int64_t S : E.Sizes)
        if (llvm::AddOverflow(Sum, S, Sum))
          return Fail("sub-parameter sizes overflow");
      Dims[I] = Sum;
    } else if (int(I) == R.PartitionDim && E.Value > 0) {
      Count = E.Value; // k equal sub-parameters; the size itself is inferred
    } else if (E.Value > 0) {
      Dims[I] = E.Value;
    }
  }
  std::vector<size_t> Unknown;
  int64_t Known = 1;
  for (size_t I = 0; I < N; ++I) {
    if (Dims[I] < 0)
      Unknown.push_back(I);
    else if (llvm::MulOverflow(Known, Dims[I], Known))
      return Fail("shape product overflows");
  }
  if (Unknown.size() == 1) {
    if (Known == 0 || Numel % Known)
      return Fail("cannot infer shape for weight with numel " + std::to_string(Numel));
    Dims[Unknown[0]] = Numel / Known;
  } else if (Unknown.size() > 1) {
    if (N != 2)
      return Fail("shape has multiple inferred dims and is ambiguous for weight");
    const int64_t Weight[2] = {Out, In};
    for (size_t I : Unknown)
      Dims[I] = Weight[I];
  }
  int64_t Prod = 0;
  if (!product(Dims, 0, N, Prod))
    return Fail("shape product overflows");
  if (Prod != Numel)
    return Fail("shape product " + std::to_string(Prod) + " != weight numel " + std::to_string(Numel));
  if (N < 2)
    return Fail("shape must include at least one output dimension");
  if (Dims[N - 1] != In)
    return Fail("shape last dim " + std::to_string(Dims[N - 1]) + " must match weight input dim " +
                std::to_string(In));
  int64_t OutProd = 0;
  product(Dims, 0, N - 1, OutProd);
  if (OutProd != Out)
    return Fail("output shape product " + std::to_string(OutProd) + " != weight output dim " + std::to_string(Out));
  int64_t PDSize = Dims[R.PartitionDim];
  if (PDSize <= 0)
    return Fail("partition_dim size must be a positive integer");
  if (Count) {
    if (PDSize % Count)
      return Fail("partition_dim size " + std::to_string(PDSize) + " not divisible by sub-param count " +
                  std::to_string(Count));
    R.SubSizes.assign(size_t(Count), PDSize / Count);
    R.FromCount = true;
  } else if (R.SubSizes.empty()) {
    R.SubSizes = {PDSize};
  }
  R.Logical = Dims;
  R.OutputShape.assign(Dims.begin(), Dims.end() - 1);
  if (R.PartitionDim < int(R.OutputShape.size()))
    R.BiasPartitionDim = R.PartitionDim;
  return R;
}

ResolvedShape autotpc::plainShape(PartitionType Type, int64_t Out, int64_t In) {
  ResolvedShape R;
  R.Logical = {Out, In};
  R.PartitionDim = Type == PartitionType::Row ? 1 : 0;
  R.SubSizes = {R.Logical[size_t(R.PartitionDim)]};
  R.OutputShape = {Out};
  if (Type != PartitionType::Row)
    R.BiasPartitionDim = 0;
  return R;
}
