/* safetensors reading: one file (mmap) and whole checkpoints (a file, a
   sharded model.safetensors.index.json, or a folder).

   The format: an 8-byte little-endian header length N, N bytes of JSON
   (an object: "__metadata__" -> {string: string}, and for each tensor
   name -> {"dtype", "shape", "data_offsets": [begin, end]} relative to the
   data region that follows the header), then the data. Files are untrusted
   input, so opening one validates everything before any tensor is touched:
   N <= 100,000,000 and N <= file size - 8, then the rules of
   atp/safetensors_header.h, which the compiler's header reader shares
   (strict JSON starting with '{' without duplicate keys, known dtypes,
   dimensions and byte sizes in int64, every [begin, end] inside the data
   region spanning exactly the tensor's bytes, no overlaps; gaps between
   tensors are allowed, and other keys of an entry ignored, where the
   safetensors crate rejects gaps). Every error names the file, and the
   tensor where there is one:

     ckpt/model.safetensors: tensor 'lm_head.weight': data_offsets [0, 96]
     end past the data region (64 bytes)

   A file that is truncated or rewritten by someone else while it is mapped
   can still raise SIGBUS on access; read_range (pread) reports it instead. */
#pragma once

#include "atp/dtype.h"
#include "atp/safetensors_format.h"
#include "atp/status.h"
#include "atp/tensor.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace atp {

/// The safetensors format's cap on the JSON header length, in bytes.
constexpr std::uint64_t kMaxSafetensorsHeaderSize = st::kMaxHeaderSize;

/// One tensor of a safetensors file.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t data_begin = 0, data_end = 0; ///< data_offsets, from the data region
  /// The bytes in the file's mapping (nullptr from parse_safetensors_header).
  const std::byte *data = nullptr;

  std::uint64_t nbytes() const { return data_end - data_begin; }
};

/// A validated header: tensors sorted by data offset (the writer's order;
/// names break ties between empty tensors), and the metadata.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

/// Validates header JSON against the size of the data region that follows
/// it. `file` only prefixes messages. Never throws, whatever the input.
Result<SafetensorsHeader> parse_safetensors_header(std::string_view json,
                                                   std::uint64_t data_size,
                                                   const std::string &file);

/// One open, validated, memory-mapped .safetensors file. Move-only.
class SafetensorsFile {
public:
  static Result<SafetensorsFile> open(const std::string &path);

  SafetensorsFile() = default;
  SafetensorsFile(SafetensorsFile &&other) noexcept;
  SafetensorsFile &operator=(SafetensorsFile &&other) noexcept;
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;
  ~SafetensorsFile();

  const std::string &path() const { return path_; }
  /// By data offset. TensorInfo::data points into the mapping, valid while
  /// this object lives (moves keep it valid).
  const std::vector<TensorInfo> &tensors() const { return header_.tensors; }
  /// The tensor named `name`, or nullptr.
  const TensorInfo *find(std::string_view name) const;
  const std::map<std::string, std::string> &metadata() const {
    return header_.metadata;
  }
  std::uint64_t file_size() const { return file_size_; }
  /// Where the data region starts in the file: 8 + header length.
  std::uint64_t data_offset() const { return data_offset_; }
  /// The open file (read-only), for copies that bypass the mapping.
  int fd() const { return fd_; }

  /// Copies bytes [byte_offset, byte_offset + nbytes) of tensor `name` into
  /// dst with pread, touching no other bytes of the file (and not the
  /// mapping). Fails if the range is outside the tensor or the file ended.
  Status read_range(std::string_view name, std::uint64_t byte_offset,
                    std::uint64_t nbytes, void *dst) const;
  /// The whole tensor, copied into a new HostTensor (with pread).
  Result<HostTensor> read(std::string_view name) const;

private:
  void close();
  std::string path_;
  int fd_ = -1;
  void *map_ = nullptr;
  std::size_t map_size_ = 0;
  std::uint64_t file_size_ = 0, data_offset_ = 0;
  SafetensorsHeader header_;
  std::unordered_map<std::string, std::size_t> by_name_;
};

/// A checkpoint: one or more open safetensors files and which holds what.
/// The file a checkpoint path is read from: `path` itself, or for a folder
/// what transformers' from_pretrained reads, its model.safetensors, else its
/// model.safetensors.index.json. Any other .safetensors file in the folder is
/// not part of the model. A folder with neither is an error that lists the
/// .safetensors files it does hold.
Result<std::string> checkpoint_file(const std::string &path);

class Checkpoint {
public:
  /// `path` is a .safetensors file; a .json index (whose weight_map names
  /// shards relative to its folder); or a folder, read through the file
  /// checkpoint_file() picks. With an index, every tensor it maps must be in
  /// the shard it names and every tensor of those shards must be mapped.
  static Result<Checkpoint> open(const std::string &path);

  /// What was opened: the path given.
  const std::string &path() const { return path_; }
  /// The index file read, "" if none.
  const std::string &index_path() const { return index_path_; }
  /// The files, in index / name order.
  const std::vector<SafetensorsFile> &files() const { return files_; }
  /// Every tensor: files in order, each by data offset.
  std::vector<const TensorInfo *> tensors() const;
  std::size_t size() const { return where_.size(); }
  /// The tensor named `name`, or nullptr.
  const TensorInfo *find(std::string_view name) const;
  /// The file that holds `name`, or nullptr.
  const SafetensorsFile *file_of(std::string_view name) const;
  /// The first file's __metadata__ (shards of one checkpoint share theirs).
  const std::map<std::string, std::string> &metadata() const;

  /// SafetensorsFile::read_range on the file holding `name`.
  Status read_range(std::string_view name, std::uint64_t byte_offset,
                    std::uint64_t nbytes, void *dst) const;
  Result<HostTensor> read(std::string_view name) const;

private:
  Status add_file(SafetensorsFile file);
  std::string path_, index_path_;
  std::vector<SafetensorsFile> files_;
  /// tensor name -> (file index, tensor index)
  std::unordered_map<std::string, std::pair<std::size_t, std::size_t>> where_;
};

} // namespace atp
