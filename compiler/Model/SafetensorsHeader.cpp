//===- SafetensorsHeader.cpp - tensor inventory from safetensors headers --===//
//
// Reads safetensors headers (8-byte little-endian length, then that many
// bytes of JSON) and sharded-checkpoint index files. Only the header bytes
// are ever read; the input is untrusted and fuzzed. The format's rules are
// the runtime's, shared header-only (atp/safetensors_header.h): this file
// reads the bytes, names the file and checks what spans files.
//
//===----------------------------------------------------------------------===//

#include "Model/SafetensorsHeader.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "atp/safetensors_header.h"

#include <algorithm>

using namespace llvm;

namespace autotpc {

static_assert(MaxSafetensorsHeaderSize == atp::st::kMaxHeaderSize,
              "the compiler states the format's header cap as the runtime does");

namespace {

/// Largest index.json we are willing to read whole.
constexpr uint64_t MaxIndexSize = 256u << 20;

Error fail(StringRef File, const Twine &Msg) {
  return createStringError(inconvertibleErrorCode(), File + ": " + Msg);
}

/// Quotes text taken from an input file as the shared rules' messages do:
/// escaped, and truncated if long.
std::string quoteName(StringRef S) {
  return atp::quote(std::string_view(S.data(), S.size()));
}

/// The shared rules' error, after the file's name.
Error fail(StringRef File, const atp::st::Error &E) { return fail(File, E.message); }

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
  return atp::st::dtype_size(std::string_view(DType.data(), DType.size()));
}

Expected<SafetensorsInventory> parseSafetensorsHeader(StringRef HeaderJson,
                                                      uint64_t DataSize,
                                                      StringRef FileName) {
  atp::st::Header H;
  atp::st::Error E = atp::st::parse_header(
      std::string_view(HeaderJson.data(), HeaderJson.size()), DataSize, H);
  if (!E.ok())
    return fail(FileName, E);
  SafetensorsInventory Inv;
  Inv.Metadata = std::move(H.metadata);
  for (atp::st::Tensor &T : H.tensors)
    Inv.Tensors.push_back(
        {std::move(T.name), std::move(T.dtype), std::move(T.shape), FileName.str()});
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
  if (atp::st::Error E = atp::st::check_header_length(Size, 0); !E.ok())
    return fail(Path, E);

  char LenBytes[8];
  if (Error E = readExactly(*FD, LenBytes, 0, Path))
    return {std::move(E)};
  uint64_t N = support::endian::read64le(LenBytes);
  if (atp::st::Error E = atp::st::check_header_length(Size, N); !E.ok())
    return fail(Path, E);

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
  StringRef Text = (*Buf)->getBuffer();
  atp::st::Index Index;
  if (atp::st::Error E = atp::st::parse_index(
          std::string_view(Text.data(), Text.size()), Index);
      !E.ok())
    return fail(Path, E);

  // Shard path -> (shard name as written, a tensor mapped to it), and
  // tensor -> shard path.
  StringRef Dir = sys::path::parent_path(Path);
  std::map<std::string, std::pair<std::string, std::string>> Shards;
  std::map<std::string, std::string> Mapped;
  for (const auto &[Tensor, Shard] : Index.weight_map) {
    SmallString<256> P(Dir);
    sys::path::append(P, Shard);
    sys::path::remove_dots(P, /*remove_dot_dot=*/false);
    Shards.emplace(std::string(P), std::make_pair(Shard, Tensor));
    Mapped[Tensor] = std::string(P);
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
