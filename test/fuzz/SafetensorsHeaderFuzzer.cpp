//===- SafetensorsHeaderFuzzer.cpp - libFuzzer target: one header --------===//
//
// The first 8 bytes of the input are the size of the data region (little
// endian, as in the file), the rest is the header's JSON text. The parser
// must return a value or an Error for any input, never crash or throw.
//
//===----------------------------------------------------------------------===//
#include "Model/SafetensorsHeader.h"

#include "llvm/Support/Endian.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  if (Size < 8)
    return 0;
  uint64_t DataSize = llvm::support::endian::read64le(Data);
  llvm::StringRef Header(reinterpret_cast<const char *>(Data) + 8, Size - 8);
  llvm::Expected<autotpc::SafetensorsInventory> Inv =
      autotpc::parseSafetensorsHeader(Header, DataSize, "fuzz.safetensors");
  if (!Inv) {
    llvm::consumeError(Inv.takeError());
    return 0;
  }
  // Read back what the loader reads, so the sanitizers check it.
  static volatile size_t Sink;
  for (const autotpc::StoredTensor &T : Inv->Tensors)
    Sink = Sink + T.Shape.size() + T.Name.size() + T.DType.size() + T.File.size();
  return 0;
}
