/* AtomicFile: a file that appears at its final path complete or not at all.

   Bytes go to a temporary file in the destination's folder (".NAME.tmp-PID-N",
   so the final rename stays on one filesystem); commit() flushes, fsyncs,
   closes, renames it over the final path and fsyncs the folder. Destroying
   the object, or any failure, before that removes the temporary, so a crash
   or an error leaves either the old file or the new one, never a partial
   file (DESIGN.md invariant 3). commit() is finish() + publish(); writers of
   several files finish each as it completes and publish them together.

   Bytes already in another file go with copy_from(): copy_file_range copies
   them inside the kernel (no pass through this process) and falls back to
   pread/write where the kernel refuses (another filesystem, an old kernel).
   Every 16 MiB handed to the kernel starts its writeback (sync_file_range),
   so that the final fsync finds most of the file already on its way. */
#pragma once

#include "atp/status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace atp {

class AtomicFile {
public:
  /// Creates the temporary for `path`; fails if its folder is missing or not
  /// writable. The file gets mode 0666 less the umask, as open() would.
  static Result<AtomicFile> create(const std::string &path);

  AtomicFile() = default;
  AtomicFile(AtomicFile &&other) noexcept;
  AtomicFile &operator=(AtomicFile &&other) noexcept;
  AtomicFile(const AtomicFile &) = delete;
  AtomicFile &operator=(const AtomicFile &) = delete;
  ~AtomicFile(); ///< abandon() unless published

  /// Appends bytes (buffered). After a failure every later call fails.
  Status write(const void *data, std::size_t nbytes);
  /// Appends bytes [src_offset, src_offset + nbytes) of the file open for
  /// reading as `src_fd` (`src_name` names it in messages), with
  /// copy_file_range where the kernel allows it, else read and written
  /// through the buffer. Fails, as write() does, if the source ends early.
  Status copy_from(int src_fd, const std::string &src_name, std::uint64_t src_offset,
                   std::uint64_t nbytes);
  /// Flushes, fsyncs and closes the temporary; the final path is untouched.
  Status finish();
  /// Renames the finished temporary to the final path and fsyncs the folder.
  Status publish();
  /// finish() then publish().
  Status commit();
  /// Closes and removes the temporary (nothing if already published).
  void abandon();

  const std::string &path() const { return path_; }
  const std::string &temp_path() const { return temp_; }
  std::uint64_t bytes_written() const { return written_; }
  /// Of bytes_written(), those copied inside the kernel by copy_from().
  std::uint64_t bytes_copied_in_kernel() const { return kernel_copied_; }

  /// Tests only: false makes every copy_from() take the read/write path, as
  /// when the kernel refuses copy_file_range. Process-wide; default true.
  static void set_kernel_copy(bool enabled);

private:
  Status flush();
  Status fail(const std::string &what);
  Status fail_with(const std::string &what, int err);
  Status write_out(const char *p, std::size_t n);
  Status copy_through_buffer(int src_fd, const std::string &src_name, std::uint64_t src_offset,
                             std::uint64_t nbytes);
  void start_writeback();

  std::string path_, temp_;
  int fd_ = -1;
  bool finished_ = false, published_ = false, failed_ = false;
  std::vector<char> buffer_;
  std::uint64_t written_ = 0;
  std::uint64_t handed_ = 0;        // bytes passed to the kernel (the fd's offset)
  std::uint64_t writeback_from_ = 0; // handed bytes whose writeback is not started yet
  std::uint64_t kernel_copied_ = 0;
  bool kernel_refused_ = false; // copy_file_range refused once: read/write from then on
};

/// "dir/name" -> "dir" ("." for a bare name, "/" for "/name").
std::string parent_folder(const std::string &path);
/// "dir/name" -> "name".
std::string file_name(const std::string &path);
/// Joins a folder and a relative path with one '/'.
std::string join_path(const std::string &folder, const std::string &name);

} // namespace atp
