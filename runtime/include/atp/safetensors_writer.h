/* safetensors writing: one file, or a sharded checkpoint with its index.

   Streaming: the caller declares every tensor (name, dtype, shape) up
   front, the header is written at once, and the tensors' bytes follow in
   the declared order, in as many pieces as the caller likes, so only one
   tensor (or one piece of it) needs to be in memory. Files appear
   atomically (AtomicFile): nothing exists at the final path until commit()
   succeeds, and an error or destruction before that removes the temporary.

   The bytes match the reference implementations for the same tensor order:
   the header is serde_json's compact form, {"__metadata__":{...},"name":
   {"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},...} (metadata keys
   sorted, left out when empty), padded with spaces to a multiple of 8 bytes
   as the safetensors crate does; the sharded layout follows transformers'
   save_pretrained: model-00001-of-00003.safetensors files and a
   model.safetensors.index.json written as json.dumps(indent=2,
   sort_keys=True) + "\n", or a single model.safetensors when everything
   fits in one shard. */
#pragma once

#include "atp/atomic_file.h"
#include "atp/dtype.h"
#include "atp/status.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace atp {

/// A tensor to be written.
struct TensorDecl {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
};

/// The first bytes of a safetensors file holding `tensors` in this order:
/// the 8-byte length and the padded header. Fails on duplicate or reserved
/// ("__metadata__") names and on invalid shapes.
Result<std::string> safetensors_header_bytes(
    const std::vector<TensorDecl> &tensors,
    const std::map<std::string, std::string> &metadata);

/// Writes one .safetensors file.
class SafetensorsWriter {
public:
  static Result<SafetensorsWriter> create(
      const std::string &path, std::vector<TensorDecl> tensors,
      const std::map<std::string, std::string> &metadata = {});

  SafetensorsWriter() = default;
  SafetensorsWriter(SafetensorsWriter &&) noexcept = default;
  SafetensorsWriter &operator=(SafetensorsWriter &&) noexcept = default;

  /// Appends `nbytes` of tensor `name`'s data. `name` must be the tensor
  /// being written, or the next declared one once that is complete
  /// (tensors of 0 bytes need no call). Writing past a tensor's size, or
  /// out of order, fails without writing anything.
  Status write(std::string_view name, const void *data, std::size_t nbytes);
  /// As write(), with the bytes [src_offset, src_offset + nbytes) of the
  /// file open as `src_fd` (AtomicFile::copy_from: copied inside the kernel
  /// where it can).
  Status copy(std::string_view name, int src_fd, const std::string &src_name,
              std::uint64_t src_offset, std::uint64_t nbytes);
  /// Checks that every tensor is complete and closes the temporary
  /// (fsynced) without publishing it.
  Status finish();
  /// Renames a finished file into place.
  Status publish() { return file_.publish(); }
  /// finish() then publish().
  Status commit();

  const std::string &path() const { return file_.path(); }
  /// Of the tensor bytes, those the kernel copied (see copy()).
  std::uint64_t bytes_copied_in_kernel() const { return file_.bytes_copied_in_kernel(); }
  /// Bytes of the whole file (header included).
  std::uint64_t file_size() const { return header_size_ + data_size_; }

private:
  /// Checks that `nbytes` of `name` may come next and moves the cursor to it.
  Status advance(std::string_view name, std::uint64_t nbytes);

  std::vector<TensorDecl> tensors_;
  std::vector<std::uint64_t> sizes_;
  std::map<std::string, std::size_t, std::less<>> index_of_; // name -> position
  std::size_t current_ = 0;    // the tensor being written
  std::uint64_t written_ = 0;  // bytes of it written so far
  std::uint64_t header_size_ = 0, data_size_ = 0;
  AtomicFile file_;
};

/// How ShardedSafetensorsWriter splits and names files.
struct ShardOptions {
  /// Most tensor bytes per shard (transformers' default max_shard_size is
  /// "5GB"). A tensor larger than this gets a shard of its own.
  std::uint64_t max_shard_bytes = 5000000000ull;
  /// File names: PREFIX-00001-of-00002.safetensors, PREFIX.safetensors,
  /// PREFIX.safetensors.index.json.
  std::string prefix = "model";
  /// Write PREFIX.safetensors and no index when there is one shard.
  bool single_file_if_fits = true;
  /// Entries added to the index's "metadata" beside "total_size".
  std::map<std::string, std::string> index_metadata;
};

/// Shard number of each tensor, in declared order: a new shard starts
/// when the next tensor would take the current one past max_shard_bytes,
/// and a tensor larger than the bound is alone in its shard. (transformers
/// puts such a tensor's shard before the one being filled; keeping the
/// declared order here is what makes streaming possible.)
std::vector<std::size_t> plan_shards(const std::vector<TensorDecl> &tensors,
                                     std::uint64_t max_shard_bytes);

/// The index.json text for tensors placed in shard files as given.
std::string safetensors_index_json(const std::vector<TensorDecl> &tensors,
                                   const std::vector<std::string> &shard_of_tensor,
                                   std::uint64_t total_size,
                                   const std::map<std::string, std::string> &extra);

/// Writes a sharded checkpoint into an existing folder.
class ShardedSafetensorsWriter {
public:
  static Result<ShardedSafetensorsWriter> create(
      const std::string &folder, std::vector<TensorDecl> tensors,
      const std::map<std::string, std::string> &metadata = {},
      ShardOptions options = {});

  ShardedSafetensorsWriter() = default;
  ShardedSafetensorsWriter(ShardedSafetensorsWriter &&) noexcept = default;
  ShardedSafetensorsWriter &operator=(ShardedSafetensorsWriter &&) noexcept = default;

  /// As SafetensorsWriter::write, over all tensors in declared order.
  Status write(std::string_view name, const void *data, std::size_t nbytes);
  /// Finishes every shard, then publishes them and the index last. If a
  /// step fails, the files published so far are removed again.
  Status commit();

  /// The final paths of the shard files, then of the index if there is one.
  std::vector<std::string> paths() const;

private:
  Status open_shard(std::size_t shard);

  std::string folder_;
  ShardOptions options_;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorDecl> tensors_;
  std::vector<std::size_t> shard_of_;     // per tensor
  std::vector<std::string> shard_names_;  // per shard
  std::vector<SafetensorsWriter> shards_; // opened so far, in order
  std::map<std::string, std::size_t, std::less<>> index_of_; // tensor name -> position
  std::uint64_t total_size_ = 0;
};

} // namespace atp
