/* AtomicFile: a file that appears at its final path complete or not at all.

   Bytes go to a temporary file in the destination's folder (".NAME.tmp-PID-N",
   so the final rename stays on one filesystem); commit() flushes, fsyncs,
   closes, renames it over the final path and fsyncs the folder. Destroying
   the object, or any failure, before that removes the temporary, so a crash
   or an error leaves either the old file or the new one, never a partial
   file (DESIGN.md invariant 3). commit() is finish() + publish(); writers of
   several files finish each as it completes and publish them together. */
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

private:
  Status flush();
  Status fail_with(const std::string &what, int err);

  std::string path_, temp_;
  int fd_ = -1;
  bool finished_ = false, published_ = false, failed_ = false;
  std::vector<char> buffer_;
  std::uint64_t written_ = 0;
};

/// "dir/name" -> "dir" ("." for a bare name, "/" for "/name").
std::string parent_folder(const std::string &path);
/// "dir/name" -> "name".
std::string file_name(const std::string &path);
/// Joins a folder and a relative path with one '/'.
std::string join_path(const std::string &folder, const std::string &name);

} // namespace atp
