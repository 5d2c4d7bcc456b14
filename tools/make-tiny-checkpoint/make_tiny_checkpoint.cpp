//===- make_tiny_checkpoint.cpp - random HF checkpoints for tests --------===//
//
// Writes a Hugging Face checkpoint of random weights for a config.json, so
// that tests never need downloaded weights:
//
//   make-tiny-checkpoint CONFIG.json OUT_DIR [--seed N]
//                        [--max-shard-bytes B] [--dtype BF16|F16|F32|F64]
//
// OUT_DIR gets config.json and model.safetensors, or model-0000i-of-0000N
// shards and model.safetensors.index.json when the tensors exceed B bytes.
// Tensor names, shapes and order come from autotpc::deriveInventory, the
// dtype from the config's torch_dtype unless --dtype says otherwise (the
// copied config.json then says so too, so the folder stays consistent).
//
// Values are reproducible from (seed, tensor index t, element index i):
//   key  = splitmix64(splitmix64(seed) ^ t)
//   bits = splitmix64(key + i)
//   u    = ((bits >> 40) - 2^23) / 2^23                 in [-1, 1)
//   v    = offset + scale * u   (double), rounded to float, then to the
//          dtype with round-to-nearest-even (F64 stores the double)
// where norm weights have offset 1 and scale 1/10, other 1-D tensors
// (biases) offset 0 and scale 1/10, and N-D tensors offset 0 and scale
// 1/sqrt(last dimension).
//
// Streaming: values are generated in pieces of at most 1 MiB, so memory
// stays small whatever the tensor sizes. Nothing appears in OUT_DIR unless
// everything succeeded (the runtime's writers are atomic, config.json is
// published last).
//
//===----------------------------------------------------------------------===//
#include "Model/HFInventory.h"
#include "Support/Diagnostics.h"
#include "Support/JsonDoc.h"

#include "atp/atomic_file.h"
#include "atp/dtype.h"
#include "atp/safetensors_writer.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/WithColor.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <set>

using namespace llvm;

static const char *const ToolName = "make-tiny-checkpoint";

static cl::OptionCategory Category("make-tiny-checkpoint options");
static cl::opt<std::string> ConfigPath(cl::Positional, cl::desc("<HF config.json>"), cl::Required, cl::cat(Category));
static cl::opt<std::string> OutDir(cl::Positional, cl::desc("<output folder>"), cl::Required, cl::cat(Category));
static cl::opt<uint64_t> Seed("seed", cl::desc("seed of the pseudo-random values (default 0)"), cl::init(0),
                              cl::value_desc("N"), cl::cat(Category));
static cl::opt<uint64_t> MaxShardBytes("max-shard-bytes",
                                       cl::desc("split into model-0000i-of-0000N.safetensors files of at most B "
                                                "tensor bytes, with an index, when the tensors exceed B"),
                                       cl::value_desc("B"), cl::init(0), cl::cat(Category));
static cl::opt<std::string> DTypeName("dtype", cl::desc("BF16, F16, F32 or F64 (default: the config's torch_dtype)"),
                                      cl::value_desc("name"), cl::cat(Category));

static int failWith(const Twine &Msg) {
  WithColor::error(errs(), ToolName) << Msg << "\n";
  return 1;
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

static uint64_t splitmix64(uint64_t X) {
  X += 0x9e3779b97f4a7c15ull;
  X = (X ^ (X >> 30)) * 0xbf58476d1ce4e5b9ull;
  X = (X ^ (X >> 27)) * 0x94d049bb133111ebull;
  return X ^ (X >> 31);
}

/// How one tensor's uniform samples in [-1, 1) map to values.
struct ValueRule {
  uint64_t Key = 0;
  double Offset = 0, Scale = 1;
};

static ValueRule ruleFor(const autotpc::ParamInfo &P, uint64_t TensorIndex) {
  ValueRule R;
  R.Key = splitmix64(splitmix64(Seed) ^ TensorIndex);
  if (P.Shape.size() >= 2) {
    R.Scale = 1.0 / std::sqrt(double(P.Shape.back()));
  } else {
    bool NormWeight = P.R == autotpc::Role::Norm && StringRef(P.Name).endswith(".weight");
    R.Offset = NormWeight ? 1.0 : 0.0;
    R.Scale = 0.1;
  }
  return R;
}

static double valueAt(const ValueRule &R, uint64_t Element) {
  uint64_t Bits = splitmix64(R.Key + Element);
  double U = double(int64_t(Bits >> 40) - (int64_t(1) << 23)) / double(1 << 23);
  return R.Offset + R.Scale * U;
}

static uint32_t floatBits(float F) {
  uint32_t U;
  std::memcpy(&U, &F, 4);
  return U;
}

static float bitsFloat(uint32_t U) {
  float F;
  std::memcpy(&F, &U, 4);
  return F;
}

/// bfloat16 of a finite float, rounded to nearest even.
static uint16_t toBF16(float F) {
  uint32_t U = floatBits(F);
  U += 0x7fff + ((U >> 16) & 1);
  return uint16_t(U >> 16);
}

/// IEEE half of a float, rounded to nearest even (subnormals, overflow to
/// infinity and NaN included), after F. Giesen's float_to_half_fast3_rtne.
static uint16_t toF16(float F) {
  const uint32_t F32Inf = 255u << 23, F16Max = (127u + 16) << 23;
  const uint32_t DenormMagic = ((127u - 15) + (23 - 10) + 1) << 23;
  uint32_t U = floatBits(F);
  uint32_t Sign = U & 0x80000000u;
  U ^= Sign;
  uint16_t H;
  if (U >= F16Max) {
    H = U > F32Inf ? 0x7e00 : 0x7c00;
  } else if (U < (113u << 23)) {
    // The FP add aligns the mantissa to the subnormal grid, rounding to even.
    H = uint16_t(floatBits(bitsFloat(U) + bitsFloat(DenormMagic)) - DenormMagic);
  } else {
    uint32_t MantOdd = (U >> 13) & 1;
    U += (uint32_t(15 - 127) << 23) + 0xfff + MantOdd;
    H = uint16_t(U >> 13);
  }
  return uint16_t(H | (Sign >> 16));
}

/// Appends elements [Begin, Begin + N) of a tensor, as Type, to Out.
static void generate(const ValueRule &R, atp::DType Type, uint64_t Begin, uint64_t N, std::vector<char> &Out) {
  size_t Size = atp::dtype_size(Type);
  Out.resize(size_t(N) * Size);
  char *Dst = Out.data();
  for (uint64_t I = 0; I < N; ++I, Dst += Size) {
    double V = valueAt(R, Begin + I);
    float F = float(V);
    if (Type == atp::DType::BF16) {
      uint16_t B = toBF16(F);
      std::memcpy(Dst, &B, 2);
    } else if (Type == atp::DType::F16) {
      uint16_t B = toF16(F);
      std::memcpy(Dst, &B, 2);
    } else if (Type == atp::DType::F32) {
      std::memcpy(Dst, &F, 4);
    } else {
      std::memcpy(Dst, &V, 8);
    }
  }
}

//===----------------------------------------------------------------------===//
// Config and output folder
//===----------------------------------------------------------------------===//

/// The torch_dtype string for a safetensors dtype we generate.
static const char *torchName(atp::DType Type) {
  switch (Type) {
  case atp::DType::BF16:
    return "bfloat16";
  case atp::DType::F16:
    return "float16";
  case atp::DType::F64:
    return "float64";
  default:
    return "float32";
  }
}

/// Text of config.json with its dtype set to Type: the value of the key that
/// deriveInventory reads (torch_dtype, else dtype) is replaced in place, or
/// "torch_dtype" inserted first, so the rest stays byte-identical.
static std::string withDType(const autotpc::JsonDoc &Doc, StringRef Text, atp::DType Type) {
  std::string Value = std::string("\"") + torchName(Type) + "\"";
  const char *Key = nullptr;
  for (const char *K : {"torch_dtype", "dtype"})
    if (!Key && Doc.get(std::string("/") + K) && !Doc.get(std::string("/") + K)->is_null())
      Key = K;
  if (!Key && Doc.get("/torch_dtype"))
    Key = "torch_dtype"; // present but null
  if (Key) {
    SMRange R = Doc.value(std::string("/") + Key).Range;
    size_t Begin = R.Start.getPointer() - Text.data(), End = R.End.getPointer() - Text.data();
    return (Text.take_front(Begin) + Value + Text.drop_front(End)).str();
  }
  size_t Brace = Text.find('{');
  return (Text.take_front(Brace + 1) + "\n  \"torch_dtype\": " + Value + "," + Text.drop_front(Brace + 1)).str();
}

/// Checkpoint files in Dir that a new checkpoint (Keep) replaces: earlier
/// model.safetensors, model-*-of-*.safetensors and index files.
static std::vector<std::string> staleFiles(const std::string &Dir, const std::vector<std::string> &Keep) {
  Regex Pattern("^model(-[0-9]{5}-of-[0-9]{5})?\\.safetensors(\\.index\\.json)?$");
  std::set<std::string> KeepNames;
  for (const std::string &P : Keep)
    KeepNames.insert(sys::path::filename(P).str());
  std::vector<std::string> Stale;
  std::error_code EC;
  for (sys::fs::directory_iterator It(Dir, EC), End; It != End && !EC; It.increment(EC)) {
    StringRef Name = sys::path::filename(It->path());
    if (Pattern.match(Name) && !KeepNames.count(Name.str()))
      Stale.push_back(It->path());
  }
  return Stale;
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

/// Reads and checks the config; reports located errors. Returns the
/// inventory for config text Text (the file, with --dtype applied).
static std::optional<autotpc::HFInventory> readConfig(std::string &Text, std::optional<atp::DType> Override) {
  SourceMgr SM;
  autotpc::DiagEngine Diags(SM, errs());
  std::unique_ptr<autotpc::JsonDoc> Doc = autotpc::JsonDoc::load(Diags, ConfigPath, ConfigPath);
  if (!Doc) {
    Diags.finish(ToolName, "");
    return std::nullopt;
  }
  std::vector<autotpc::ConfigProblem> Problems;
  std::optional<autotpc::HFInventory> Inv = autotpc::deriveInventory(Doc->root(), Problems);
  for (const autotpc::ConfigProblem &P : Problems) {
    if (P.IsWarning)
      Diags.warning(Doc->value(P.Pointer), "model-mismatch", P.Message);
    else
      Diags.error(Doc->value(P.Pointer), P.Message);
  }
  if (Diags.errorCount() || Diags.warningCount())
    Diags.finish(ToolName, "");
  if (!Inv)
    return std::nullopt;
  Text = SM.getMemoryBuffer(Doc->bufferID())->getBuffer().str();
  if (!Override || Inv->Params.empty() || Inv->Params.front().DType == atp::dtype_name(*Override))
    return Inv;
  Text = withDType(*Doc, SM.getMemoryBuffer(Doc->bufferID())->getBuffer(), *Override);
  std::vector<autotpc::ConfigProblem> Ignored;
  Inv = autotpc::deriveInventory(nlohmann::json::parse(Text, nullptr, /*allow_exceptions=*/false), Ignored);
  if (!Inv || Inv->Params.front().DType != atp::dtype_name(*Override)) {
    failWith("internal error: setting the dtype of " + ConfigPath + " failed");
    return std::nullopt;
  }
  return Inv;
}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::HideUnrelatedOptions(Category);
  cl::ParseCommandLineOptions(argc, argv, "make-tiny-checkpoint: random HF safetensors checkpoints for tests\n");

  std::optional<atp::DType> Override;
  if (DTypeName.getNumOccurrences()) {
    Override = atp::dtype_from_name(StringRef(DTypeName).upper());
    if (!Override || (*Override != atp::DType::BF16 && *Override != atp::DType::F16 && *Override != atp::DType::F32 &&
                      *Override != atp::DType::F64))
      return failWith("--dtype must be BF16, F16, F32 or F64 (got '" + DTypeName + "')");
  }
  if (MaxShardBytes.getNumOccurrences() && MaxShardBytes == 0)
    return failWith("--max-shard-bytes must be positive");

  std::string ConfigText;
  std::optional<autotpc::HFInventory> Inv = readConfig(ConfigText, Override);
  if (!Inv)
    return 1;

  std::vector<atp::TensorDecl> Decls;
  for (const autotpc::ParamInfo &P : Inv->Params) {
    std::optional<atp::DType> Type = atp::dtype_from_name(P.DType);
    if (!Type ||
        (*Type != atp::DType::BF16 && *Type != atp::DType::F16 && *Type != atp::DType::F32 && *Type != atp::DType::F64))
      return failWith(ConfigPath + ": cannot generate values of dtype " + P.DType);
    Decls.push_back({P.Name, *Type, P.Shape});
  }

  // The folder: create it if needed, and remove it again if we fail.
  bool Created = !sys::fs::exists(OutDir);
  if (std::error_code EC = sys::fs::create_directories(OutDir, true, sys::fs::all_all))
    return failWith(OutDir + ": cannot create the output folder: " + EC.message());
  auto Fail = [&](const Twine &Msg) {
    if (Created)
      sys::fs::remove(OutDir); // only if still empty
    return failWith(Msg);
  };

  // config.json first, unpublished; then the weights; then config.json.
  std::string ConfigOut = atp::join_path(OutDir, "config.json");
  atp::Result<atp::AtomicFile> Config = atp::AtomicFile::create(ConfigOut);
  if (!Config.ok())
    return Fail(Config.status().message());
  if (atp::Status S = Config->write(ConfigText.data(), ConfigText.size()); !S.ok())
    return Fail(S.message());
  if (atp::Status S = Config->finish(); !S.ok())
    return Fail(S.message());

  atp::ShardOptions Shards;
  if (MaxShardBytes.getNumOccurrences())
    Shards.max_shard_bytes = MaxShardBytes;
  atp::Result<atp::ShardedSafetensorsWriter> Writer =
      atp::ShardedSafetensorsWriter::create(OutDir, Decls, {{"format", "pt"}}, Shards);
  if (!Writer.ok())
    return Fail(Writer.status().message());

  constexpr uint64_t PieceBytes = 1 << 20;
  std::vector<char> Piece;
  uint64_t TotalBytes = 0;
  for (size_t T = 0; T < Decls.size(); ++T) {
    ValueRule R = ruleFor(Inv->Params[T], T);
    uint64_t Numel = uint64_t(*atp::shape_numel(Decls[T].shape));
    uint64_t PerPiece = PieceBytes / atp::dtype_size(Decls[T].dtype);
    for (uint64_t Begin = 0; Begin < Numel; Begin += PerPiece) {
      generate(R, Decls[T].dtype, Begin, std::min(PerPiece, Numel - Begin), Piece);
      if (atp::Status S = Writer->write(Decls[T].name, Piece.data(), Piece.size()); !S.ok())
        return Fail(S.message());
      TotalBytes += Piece.size();
    }
  }
  if (atp::Status S = Writer->commit(); !S.ok())
    return Fail(S.message());
  std::vector<std::string> Written = Writer->paths();
  if (atp::Status S = Config->publish(); !S.ok()) {
    for (const std::string &P : Written)
      sys::fs::remove(P);
    return Fail(S.message());
  }
  for (const std::string &P : staleFiles(OutDir, Written))
    sys::fs::remove(P);

  size_t Files = Written.size() - (Written.size() > 1); // the index is not a weights file
  outs() << OutDir << ": " << Decls.size() << " tensors, " << TotalBytes << " bytes of "
         << atp::dtype_name(Decls.empty() ? atp::DType::F32 : Decls.front().dtype) << " in " << Files
         << (Files == 1 ? " file" : " files") << " (" << Inv->Dims.Family << ", seed " << Seed << ")\n";
  return 0;
}
