//===- check_tiny_checkpoint.cpp - verify a make-tiny-checkpoint folder ---===//
//
// Re-reads a checkpoint written by make-tiny-checkpoint with the runtime's
// reader and checks it against an independent restatement of what the tool
// promises:
//
//   check-tiny-checkpoint DIR [--seed N] [--dtype NAME] [--files N]
//
// - the tensors of DIR (atp::Checkpoint::open) are exactly the inventory of
//   DIR/config.json (autotpc::deriveInventory): names, order, shapes, dtypes;
// - --dtype: that dtype is the one stored (and the one config.json names);
// - --files: that many weights files, with an index iff more than one;
// - --seed: every element is the documented value for that seed, rounded
//   to nearest even into the stored dtype (checked against the neighbouring
//   representable values, so no converter is shared with the tool).
//
//===----------------------------------------------------------------------===//
#include "Model/HFInventory.h"

#include "atp/safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

namespace {

int fail(const std::string &Msg) {
  std::cerr << "check-tiny-checkpoint: error: " << Msg << "\n";
  return 1;
}

uint64_t splitmix64(uint64_t X) {
  X += 0x9e3779b97f4a7c15ull;
  X = (X ^ (X >> 30)) * 0xbf58476d1ce4e5b9ull;
  X = (X ^ (X >> 27)) * 0x94d049bb133111ebull;
  return X ^ (X >> 31);
}

/// The documented value of element I of tensor T (see make_tiny_checkpoint.cpp).
double expected(const autotpc::ParamInfo &P, uint64_t Seed, uint64_t T, uint64_t I) {
  double Offset = 0, Scale = 0.1;
  if (P.Shape.size() >= 2)
    Scale = 1.0 / std::sqrt(double(P.Shape.back()));
  else if (P.R == autotpc::Role::Norm && P.Name.size() > 7 && P.Name.compare(P.Name.size() - 7, 7, ".weight") == 0)
    Offset = 1.0;
  uint64_t Bits = splitmix64(splitmix64(splitmix64(Seed) ^ T) + I);
  return Offset + Scale * (double(int64_t(Bits >> 40) - (int64_t(1) << 23)) / double(1 << 23));
}

/// Value of a 16-bit float: bfloat16 or IEEE half; nullopt for inf/NaN.
std::optional<double> decode16(uint16_t B, bool BF16) {
  int ExpBits = BF16 ? 8 : 5, FracBits = BF16 ? 7 : 10;
  int Bias = (1 << (ExpBits - 1)) - 1;
  unsigned E = (B >> FracBits) & ((1u << ExpBits) - 1), F = B & ((1u << FracBits) - 1);
  if (E == (1u << ExpBits) - 1)
    return std::nullopt;
  double Mag = E == 0 ? std::ldexp(double(F), 1 - Bias - FracBits)
                      : std::ldexp(double(F + (1u << FracBits)), int(E) - Bias - FracBits);
  return (B & 0x8000) ? -Mag : Mag;
}

/// Whether B is X rounded to nearest even: no representable neighbour is
/// closer, and a tie goes to the even encoding.
bool isNearestEven(float X, uint16_t B, bool BF16) {
  std::optional<double> V = decode16(B, BF16);
  if (!V || (*V != 0 && ((*V < 0) != (X < 0))))
    return false;
  double Dist = std::fabs(double(X) - *V);
  uint16_t Mag = B & 0x7fff, Sign = B & 0x8000;
  for (int Step : {-1, 1}) {
    if ((Mag == 0 && Step < 0))
      continue;
    std::optional<double> N = decode16(uint16_t(Sign | (Mag + Step)), BF16);
    if (!N)
      continue;
    double D = std::fabs(double(X) - *N);
    if (D < Dist || (D == Dist && (Mag & 1)))
      return false;
  }
  return true;
}

/// Checks every element of one tensor against the formula.
std::string checkValues(const autotpc::ParamInfo &P, const atp::HostTensor &H, uint64_t Seed, uint64_t T) {
  const char *Data = reinterpret_cast<const char *>(H.data());
  atp::DType Type = *atp::dtype_from_name(P.DType);
  uint64_t N = H.nbytes() / atp::dtype_size(Type);
  for (uint64_t I = 0; I < N; ++I) {
    double V = expected(P, Seed, T, I);
    float F = float(V);
    bool Ok;
    if (Type == atp::DType::F64) {
      double S;
      std::memcpy(&S, Data + 8 * I, 8);
      Ok = S == V;
    } else if (Type == atp::DType::F32) {
      float S;
      std::memcpy(&S, Data + 4 * I, 4);
      Ok = S == F;
    } else {
      uint16_t S;
      std::memcpy(&S, Data + 2 * I, 2);
      Ok = isNearestEven(F, S, Type == atp::DType::BF16);
    }
    if (!Ok)
      return "tensor '" + P.Name + "' element " + std::to_string(I) + " is not the value for seed " +
             std::to_string(Seed) + " (" + std::to_string(F) + ")";
  }
  return "";
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2)
    return fail("usage: check-tiny-checkpoint DIR [--seed N] [--dtype NAME] [--files N]");
  std::string Dir = argv[1];
  std::optional<uint64_t> Seed;
  std::string DType;
  long Files = -1;
  for (int I = 2; I + 1 < argc; I += 2) {
    std::string Flag = argv[I], Value = argv[I + 1];
    if (Flag == "--seed")
      Seed = std::stoull(Value);
    else if (Flag == "--dtype")
      DType = Value;
    else if (Flag == "--files")
      Files = std::stol(Value);
    else
      return fail("unknown flag " + Flag);
  }

  std::ifstream In(Dir + "/config.json");
  std::stringstream Text;
  Text << In.rdbuf();
  if (!In)
    return fail(Dir + "/config.json: cannot read");
  std::vector<autotpc::ConfigProblem> Problems;
  std::optional<autotpc::HFInventory> Inv = autotpc::deriveInventory(nlohmann::json::parse(Text.str()), Problems);
  if (!Inv)
    return fail(Dir + "/config.json: no inventory: " + (Problems.empty() ? "" : Problems.front().Message));

  atp::Result<atp::Checkpoint> Ckpt = atp::Checkpoint::open(Dir);
  if (!Ckpt.ok())
    return fail(Ckpt.status().message());
  std::vector<const atp::TensorInfo *> Stored = Ckpt->tensors();
  if (Stored.size() != Inv->Params.size())
    return fail(Dir + ": " + std::to_string(Stored.size()) + " tensors, the inventory has " +
                std::to_string(Inv->Params.size()));
  for (size_t T = 0; T < Stored.size(); ++T) {
    const autotpc::ParamInfo &P = Inv->Params[T];
    const atp::TensorInfo &S = *Stored[T];
    if (S.name != P.Name)
      return fail(Dir + ": tensor " + std::to_string(T) + " is '" + S.name + "', expected '" + P.Name + "'");
    if (S.shape != P.Shape)
      return fail(Dir + ": '" + P.Name + "' has shape " + atp::shape_string(S.shape) + ", expected " +
                  atp::shape_string(P.Shape));
    if (atp::dtype_name(S.dtype) != P.DType || (!DType.empty() && P.DType != DType))
      return fail(Dir + ": '" + P.Name + "' is " + atp::dtype_name(S.dtype) + ", config.json says " + P.DType +
                  (DType.empty() ? "" : ", expected " + DType));
    if (Seed) {
      atp::Result<atp::HostTensor> H = Ckpt->read(P.Name);
      if (!H.ok())
        return fail(H.status().message());
      if (std::string Err = checkValues(P, *H, *Seed, T); !Err.empty())
        return fail(Dir + ": " + Err);
    }
  }
  auto Meta = Ckpt->metadata().find("format");
  if (Meta == Ckpt->metadata().end() || Meta->second != "pt")
    return fail(Dir + ": __metadata__ lacks \"format\": \"pt\"");
  long NumFiles = long(Ckpt->files().size());
  if (Files >= 0 && (NumFiles != Files || Ckpt->index_path().empty() != (Files == 1)))
    return fail(Dir + ": " + std::to_string(NumFiles) + " files" + (Ckpt->index_path().empty() ? " without" : " with") +
                " an index, expected " + std::to_string(Files));
  std::cout << Dir << ": ok: " << Stored.size() << " tensors in " << NumFiles << " file(s)"
            << (Seed ? ", values match seed " + std::to_string(*Seed) : "") << "\n";
  return 0;
}
