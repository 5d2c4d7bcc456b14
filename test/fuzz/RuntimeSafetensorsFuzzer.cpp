//===- RuntimeSafetensorsFuzzer.cpp - libFuzzer: the runtime's header parser -===//
//
// The runtime's reader: the shared header rules (atp/safetensors_header.h,
// strict JSON through nlohmann) and the conversion to TensorInfo. Same input
// layout as SafetensorsHeaderFuzzer, which reaches the same rules through
// the compiler: 8 bytes of data-region size (little endian), then the
// header JSON. It must return a value or a Status for any input, never
// crash or throw.
//
//===----------------------------------------------------------------------===//
#include "atp/safetensors.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  if (Size < 8)
    return 0;
  uint64_t DataSize = 0;
  for (int I = 7; I >= 0; --I)
    DataSize = (DataSize << 8) | Data[I];
  std::string_view Header(reinterpret_cast<const char *>(Data) + 8, Size - 8);
  atp::Result<atp::SafetensorsHeader> H = atp::parse_safetensors_header(Header, DataSize, "fuzz.safetensors");
  if (!H.ok())
    return 0;
  static volatile size_t Sink;
  for (const atp::TensorInfo &T : H->tensors)
    Sink = Sink + T.shape.size() + T.name.size() + size_t(T.data_end - T.data_begin);
  return 0;
}
