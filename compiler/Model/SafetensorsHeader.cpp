//===- SafetensorsHeader.cpp - tensor inventory from safetensors headers --===//
//
// Reads and validates safetensors headers (8-byte little-endian length, then
// that many bytes of JSON) and sharded-checkpoint index files. Only the
// header bytes are ever read; the input is untrusted and fuzzed.
//
//===----------------------------------------------------------------------===//

#include "Model/SafetensorsHeader.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <optional>
#include <set>

using namespace llvm;
using json = nlohmann::json;

namespace autotpc {
namespace {

/// Largest index.json we are willing to read whole.
constexpr uint64_t MaxIndexSize = 256u << 20;
/// Longest name or message fragment from an input file that we quote.
constexpr size_t MaxQuoted = 200;

Error fail(StringRef File, const Twine &Msg) {
  return createStringError(inconvertibleErrorCode(), File + ": " + Msg);
}

/// Quotes text taken from an input file: escaped, and truncated if long.
std::string quoteName(StringRef S) {
  std::string Out;
  raw_string_ostream OS(Out);
  OS << '\'';
  printEscapedString(S.take_front(MaxQuoted), OS);
  if (S.size() > MaxQuoted)
    OS << "...";
  OS << '\'';
  return OS.str();
}

/// Describes a JSON value for a message without dumping containers.
std::string describe(const json &V) {
  if (V.is_number() || V.is_boolean() || V.is_null())
    return V.dump();
  if (V.is_string())
    return "the string " + quoteName(V.get_ref<const std::string &>());
  return std::string("an ") + V.type_name();
}

std::string formatDims(ArrayRef<uint64_t> Dims) {
  std::string Out = "[";
  for (size_t I = 0; I < Dims.size(); ++I) {
    if (I == 8) {
      Out += ", ...";
      break;
    }
    Out += (I ? ", " : "") + std::to_string(Dims[I]);
  }
  return Out + "]";
}

/// Parses JSON text, rejecting duplicate keys in any object (nlohmann would
/// silently keep the last one). \p What names the text in messages.
Expected<json> parseJson(StringRef Text, StringRef File, StringRef What) {
  std::vector<std::set<std::string>> Keys;
  std::optional<std::string> Dup;
  auto Callback = [&](int, json::parse_event_t Event, json &Parsed) {
    if (Event == json::parse_event_t::object_start)
      Keys.emplace_back();
    else if (Event == json::parse_event_t::object_end && !Keys.empty())
      Keys.pop_back();
    else if (Event == json::parse_event_t::key && !Dup && !Keys.empty() &&
             !Keys.back().insert(Parsed.get_ref<const std::string &>()).second)
      Dup = Parsed.get_ref<const std::string &>();
    return true;
  };
  try {
    json Doc = json::parse(Text.begin(), Text.end(), Callback);
    if (Dup)
      return fail(File, What + " has duplicate key " + quoteName(*Dup));
    return Doc;
  } catch (const json::exception &E) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    StringRef Msg = E.what();
    if (Msg.startswith("[json.exception."))
      Msg = Msg.split("] ").second;
    // The message may quote raw input bytes; keep it printable ASCII.
    std::string Reason;
    for (char C : Msg.take_front(MaxQuoted)) {
      if (C >= 0x20 && C < 0x7f)
        Reason += C;
      else
        Reason += "\\x" + utohexstr(uint8_t(C), /*LowerCase=*/false, 2);
    }
    if (Msg.size() > MaxQuoted)
      Reason += "...";
    return fail(File, What + " is not valid JSON: " + Reason);
  }
}

/// Reads a non-negative JSON integer; None for anything else.
std::optional<uint64_t> readUInt(const json &V) {
  if (!V.is_number_unsigned())
    return std::nullopt;
  return V.get<uint64_t>();
}

/// A tensor of one header with the data range it occupies.
struct Entry {
  StoredTensor T;
  uint64_t Begin, End;
};

/// Validates one header entry other than "__metadata__".
Expected<Entry> parseTensor(const std::string &Name, const json &V,
                            uint64_t DataSize, StringRef File) {
  std::string Where = "tensor " + quoteName(Name) + ": ";
  auto Bad = [&](const Twine &Msg) { return fail(File, Where + Msg); };
  if (!V.is_object())
    return Bad("entry is " + describe(V) + ", not an object");
  for (const char *Key : {"dtype", "shape", "data_offsets"})
    if (!V.contains(Key))
      return Bad(Twine("missing '") + Key + "'");

  Entry E;
  E.T.Name = Name;
  E.T.File = File.str();
  const json &DType = V["dtype"];
  if (!DType.is_string())
    return Bad("'dtype' is " + describe(DType) + ", not a string");
  E.T.DType = DType.get<std::string>();
  unsigned ElemSize = dtypeSize(E.T.DType);
  if (ElemSize == 0)
    return Bad("unknown dtype " + quoteName(E.T.DType));

  const json &Shape = V["shape"];
  if (!Shape.is_array())
    return Bad("'shape' is " + describe(Shape) + ", not an array");
  std::vector<uint64_t> Dims;
  uint64_t Bytes = ElemSize;
  bool Overflow = false;
  for (size_t I = 0; I < Shape.size(); ++I) {
    std::optional<uint64_t> D = readUInt(Shape[I]);
    if (!D)
      return Bad("'shape' element " + Twine(I) + " is " + describe(Shape[I]) +
                 ", not a non-negative integer");
    if (*D > uint64_t(std::numeric_limits<int64_t>::max()))
      return Bad("'shape' element " + Twine(I) + " (" + Twine(*D) +
                 ") is too large");
    Dims.push_back(*D);
    bool O = false;
    Bytes = SaturatingMultiply(Bytes, *D, &O);
    Overflow |= O;
  }
  if (Overflow)
    return Bad("shape " + formatDims(Dims) + " of " + E.T.DType +
               " overflows 64 bits of bytes");
  E.T.Shape.assign(Dims.begin(), Dims.end());

  const json &Offs = V["data_offsets"];
  std::optional<uint64_t> Begin, End;
  if (Offs.is_array() && Offs.size() == 2) {
    Begin = readUInt(Offs[0]);
    End = readUInt(Offs[1]);
  }
  if (!Begin || !End)
    return Bad("'data_offsets' must be [begin, end] of non-negative integers");
  E.Begin = *Begin;
  E.End = *End;
  std::string Range = formatDims({E.Begin, E.End});
  if (E.Begin > E.End)
    return Bad("data_offsets " + Range + " are reversed");
  if (E.End > DataSize)
    return Bad("data_offsets " + Range + " end past the data region (" +
               Twine(DataSize) + " bytes)");
  if (E.End - E.Begin != Bytes)
    return Bad("data_offsets " + Range + " span " + Twine(E.End - E.Begin) +
               " bytes but shape " + formatDims(Dims) + " of " + E.T.DType +
               " needs " + Twine(Bytes));
  return E;
}

Error parseMetadata(const json &V, SafetensorsInventory &Inv, StringRef File) {
  if (!V.is_object())
    return fail(File, "'__metadata__' is " + describe(V) + ", not an object");
  for (auto It = V.begin(); It != V.end(); ++It) {
    if (!It.value().is_string())
      return fail(File, "'__metadata__' value of " + quoteName(It.key()) +
                            " is " + describe(It.value()) + ", not a string");
    Inv.Metadata[It.key()] = It.value().get<std::string>();
  }
  return Error::success();
}

/// Reads Buf.size() bytes at Offset, or fails.
Error readExactly(sys::fs::file_t FD, MutableArrayRef<char> Buf,
                  uint64_t Offset, StringRef File) {
  while (!Buf.empty()) {
    Expected<size_t> N = sys::fs::readNativeFileSlice(FD, Buf, Offset);
    if (!N)
      return fail(File, toString(N.takeError()));
    if (*N == 0)
      return fail(File, "file ended while reading its header");
    Buf = Buf.drop_front(*N);
    Offset += *N;
  }
  return Error::success();
}

/// Reads several .safetensors headers, in the given order, into one
/// inventory; a tensor name stored twice is an error.
Expected<SafetensorsInventory> readShards(ArrayRef<std::string> Paths) {
  SafetensorsInventory All;
  std::map<std::string, std::string> StoredIn;
  for (const std::string &P : Paths) {
    Expected<SafetensorsInventory> One = readSafetensorsFile(P);
    if (!One)
      return One.takeError();
    if (All.Files.empty())
      All.Metadata = std::move(One->Metadata);
    for (StoredTensor &T : One->Tensors) {
      auto [It, New] = StoredIn.emplace(T.Name, P);
      if (!New)
        return fail(P, "tensor " + quoteName(T.Name) + " is also stored in " +
                           quoteName(It->second));
      All.Tensors.push_back(std::move(T));
    }
    All.Files.push_back(P);
  }
  return All;
}

Expected<SafetensorsInventory> readFolder(StringRef Dir) {
  std::vector<std::string> Shards, Indexes;
  std::error_code EC;
  for (sys::fs::directory_iterator It(Dir, EC), End; It != End && !EC;
       It.increment(EC)) {
    StringRef P = It->path();
    // Follows symlinks: Hugging Face cache snapshots link to blobs.
    if (!sys::fs::is_regular_file(P))
      continue;
    if (P.endswith(".safetensors.index.json"))
      Indexes.push_back(P.str());
    else if (P.endswith(".safetensors"))
      Shards.push_back(P.str());
  }
  if (EC)
    return fail(Dir, EC.message());
  llvm::sort(Indexes);
  llvm::sort(Shards);
  for (const std::string &I : Indexes)
    if (sys::path::filename(I) == "model.safetensors.index.json")
      return readSafetensorsIndex(I);
  if (Indexes.size() == 1)
    return readSafetensorsIndex(Indexes.front());
  if (Indexes.size() > 1)
    return fail(Dir, "has several safetensors index files (" +
                         quoteName(sys::path::filename(Indexes[0])) + ", " +
                         quoteName(sys::path::filename(Indexes[1])) +
                         ", ...); name one");
  if (Shards.empty())
    return fail(Dir, "contains no *.safetensors file and no "
                     "model.safetensors.index.json");
  return readShards(Shards);
}

} // namespace

unsigned dtypeSize(StringRef DType) {
  return StringSwitch<unsigned>(DType)
      .Cases("BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", 1)
      .Cases("I16", "U16", "F16", "BF16", 2)
      .Cases("I32", "U32", "F32", 4)
      .Cases("I64", "U64", "F64", 8)
      .Default(0);
}

Expected<SafetensorsInventory> parseSafetensorsHeader(StringRef HeaderJson,
                                                      uint64_t DataSize,
                                                      StringRef FileName) {
  if (!HeaderJson.startswith("{"))
    return fail(FileName, "header does not start with '{'");
  Expected<json> Doc = parseJson(HeaderJson, FileName, "header");
  if (!Doc)
    return Doc.takeError();
  if (!Doc->is_object())
    return fail(FileName, "header is " + describe(*Doc) + ", not an object");

  SafetensorsInventory Inv;
  std::vector<Entry> Entries;
  try {
    for (auto It = Doc->begin(); It != Doc->end(); ++It) {
      if (It.key() == "__metadata__") {
        if (Error E = parseMetadata(It.value(), Inv, FileName))
          return {std::move(E)};
        continue;
      }
      Expected<Entry> E = parseTensor(It.key(), It.value(), DataSize, FileName);
      if (!E)
        return E.takeError();
      Entries.push_back(std::move(*E));
    }
  } catch (const json::exception &E) {
    // Not reached: every access above is type-checked first.
    return fail(FileName, Twine("malformed header: ") + E.what());
  }

  // Writer's order; the name breaks ties between empty tensors.
  llvm::sort(Entries, [](const Entry &A, const Entry &B) {
    return std::tie(A.Begin, A.End, A.T.Name) <
           std::tie(B.Begin, B.End, B.T.Name);
  });
  // Ranges are half-open, so an empty tensor overlaps nothing. Sorted by
  // begin, a range overlaps some earlier one iff it begins before the
  // furthest end so far, which belongs to Last (there is no earlier overlap).
  const Entry *Last = nullptr;
  for (const Entry &E : Entries) {
    if (E.Begin == E.End)
      continue;
    if (Last && E.Begin < Last->End)
      return fail(FileName, "tensors " + quoteName(Last->T.Name) + " " +
                                formatDims({Last->Begin, Last->End}) + " and " +
                                quoteName(E.T.Name) + " " +
                                formatDims({E.Begin, E.End}) + " overlap");
    Last = &E;
  }
  for (Entry &E : Entries)
    Inv.Tensors.push_back(std::move(E.T));
  Inv.Files.push_back(FileName.str());
  return Inv;
}

Expected<SafetensorsInventory> readSafetensorsFile(StringRef Path) {
  Expected<sys::fs::file_t> FD = sys::fs::openNativeFileForRead(Path);
  if (!FD)
    return fail(Path, toString(FD.takeError()));
  auto Close = make_scope_exit([&] { sys::fs::closeFile(*FD); });

  sys::fs::file_status Status;
  if (std::error_code EC = sys::fs::status(*FD, Status))
    return fail(Path, EC.message());
  if (!sys::fs::is_regular_file(Status))
    return fail(Path, "not a regular file");
  uint64_t Size = Status.getSize();
  if (Size < 8)
    return fail(Path, "file is " + Twine(Size) +
                          " bytes, too short for a safetensors header");

  char LenBytes[8];
  if (Error E = readExactly(*FD, LenBytes, 0, Path))
    return {std::move(E)};
  uint64_t N = support::endian::read64le(LenBytes);
  if (N > MaxSafetensorsHeaderSize)
    return fail(Path, "header length " + Twine(N) +
                          " exceeds the safetensors limit of " +
                          Twine(MaxSafetensorsHeaderSize) + " bytes");
  if (N > Size - 8)
    return fail(Path, "header length " + Twine(N) +
                          " runs past the end of the file (" + Twine(Size) +
                          " bytes)");

  std::string Header(N, '\0');
  if (Error E = readExactly(*FD, {Header.data(), Header.size()}, 8, Path))
    return {std::move(E)};
  return parseSafetensorsHeader(Header, Size - 8 - N, Path);
}

Expected<SafetensorsInventory> readSafetensorsIndex(StringRef Path) {
  uint64_t Size = 0;
  if (std::error_code EC = sys::fs::file_size(Path, Size))
    return fail(Path, EC.message());
  if (Size > MaxIndexSize)
    return fail(Path, "index is " + Twine(Size) + " bytes, more than the " +
                          Twine(MaxIndexSize) + " we read");
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf =
      MemoryBuffer::getFile(Path, /*IsText=*/false,
                            /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fail(Path, Buf.getError().message());
  Expected<json> Doc = parseJson((*Buf)->getBuffer(), Path, "index");
  if (!Doc)
    return Doc.takeError();
  if (!Doc->is_object())
    return fail(Path, "index is " + describe(*Doc) + ", not an object");
  auto WM = Doc->find("weight_map");
  if (WM == Doc->end())
    return fail(Path, "index has no 'weight_map'");
  if (!WM->is_object())
    return fail(Path, "'weight_map' is " + describe(*WM) + ", not an object");

  // Shard path -> (shard name as written, a tensor mapped to it), and
  // tensor -> shard path.
  StringRef Dir = sys::path::parent_path(Path);
  std::map<std::string, std::pair<std::string, std::string>> Shards;
  std::map<std::string, std::string> Mapped;
  for (auto It = WM->begin(); It != WM->end(); ++It) {
    if (!It.value().is_string())
      return fail(Path, "'weight_map' value of " + quoteName(It.key()) +
                            " is " + describe(It.value()) + ", not a string");
    const std::string &Shard = It.value().get_ref<const std::string &>();
    SmallString<256> P(Dir);
    sys::path::append(P, Shard);
    sys::path::remove_dots(P, /*remove_dot_dot=*/false);
    Shards.emplace(std::string(P), std::make_pair(Shard, It.key()));
    Mapped[It.key()] = std::string(P);
  }

  std::vector<std::string> Paths;
  for (const auto &[P, ShardAndTensor] : Shards) {
    if (!sys::fs::exists(P))
      return fail(Path, "shard " + quoteName(ShardAndTensor.first) +
                            " (holding " + quoteName(ShardAndTensor.second) +
                            ") does not exist");
    Paths.push_back(P);
  }
  Expected<SafetensorsInventory> Inv = readShards(Paths);
  if (!Inv)
    return Inv.takeError();

  std::map<std::string, std::string> StoredIn;
  for (const StoredTensor &T : Inv->Tensors) {
    auto It = Mapped.find(T.Name);
    if (It == Mapped.end())
      return fail(T.File, "tensor " + quoteName(T.Name) +
                              " is not listed in the weight_map of " +
                              quoteName(Path));
    StoredIn[T.Name] = T.File;
  }
  for (const auto &[Name, P] : Mapped) {
    auto It = StoredIn.find(Name);
    if (It != StoredIn.end() && It->second == P)
      continue;
    std::string Where =
        It == StoredIn.end() ? "" : " (it is in " + quoteName(It->second) + ")";
    return fail(Path, "tensor " + quoteName(Name) + " is mapped to shard " +
                          quoteName(Shards[P].first) +
                          ", which does not contain it" + Where);
  }
  return Inv;
}

Expected<SafetensorsInventory> readSafetensorsInventory(StringRef Path) {
  sys::fs::file_status Status;
  if (std::error_code EC = sys::fs::status(Path, Status))
    return fail(Path, EC.message());
  if (sys::fs::is_directory(Status))
    return readFolder(Path);
  if (Path.endswith(".json"))
    return readSafetensorsIndex(Path);
  return readSafetensorsFile(Path);
}

} // namespace autotpc
