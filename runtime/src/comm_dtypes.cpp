/* comm_dtypes.cpp - the element types comms move, and the 16-bit float conversions.

   Both backends refuse the same dtypes (comm_supports). bf16 and f16 have no MPI type: the MPI backend reduces
   them in float through these conversions, which round to nearest even as NCCL does; the CPU ops use them
   too, and the CUDA kernels port them (ops_cuda_math.cuh), so every path rounds the same way. */
#include "atp/comm.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace atp {

bool comm_supports(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::BF16:
  case DType::F16:
  case DType::F64:
  case DType::I32:
  case DType::U32:
  case DType::I64:
  case DType::U64:
  case DType::I8:
  case DType::U8:
    return true;
  default:
    return false;
  }
}

const char *reduce_op_name(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return "sum";
  case ReduceOp::Max:
    return "max";
  case ReduceOp::Min:
    return "min";
  case ReduceOp::Avg:
    return "avg";
  }
  return "?";
}

float bf16_to_float(std::uint16_t bits) {
  std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::uint16_t float_to_bf16(float value) {
  std::uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep it a (quiet) NaN
    return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
  return static_cast<std::uint16_t>(u >> 16);
}

float f16_to_float(std::uint16_t bits) {
  std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  std::uint32_t exp = (bits >> 10) & 0x1fu, mant = bits & 0x3ffu;
  float f;
  if (exp == 0) { // zero or subnormal: mant * 2^-24
    f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  }
  std::uint32_t u = exp == 0x1f ? sign | 0x7f800000u | (mant << 13) : sign | ((exp + 112u) << 23) | (mant << 13);
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::uint16_t float_to_f16(float value) {
  std::uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  std::uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) // inf or NaN
    return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (a >= 0x477ff000u) // >= 65520 rounds to inf
    return sign | 0x7c00u;
  if (a < 0x38800000u) { // below 2^-14: a subnormal half; x * 2^24 is exact, rint rounds ties to even
    float f;
    std::memcpy(&f, &a, sizeof f);
    return sign | static_cast<std::uint16_t>(std::nearbyint(f * 16777216.0f));
  }
  std::uint32_t h = (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu), rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h; // a carry into the exponent is the right answer
  return sign | static_cast<std::uint16_t>(h);
}

} // namespace atp
