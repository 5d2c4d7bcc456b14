/* AtomicFile: temporary name, fsync, rename, fsync of the folder.

   Writes go through a 4 MiB buffer; larger writes bypass it. EINTR and
   short writes are retried. copy_from() flushes the buffer and lets the
   kernel copy at the file's offset (copy_file_range), or reads the source
   into the buffer where the kernel refuses. Every 16 MiB handed to the
   kernel get their writeback started (sync_file_range, a hint: its errors
   are left to the fsync of finish()). A failure records the error, removes
   the temporary and makes every later call fail with the same message, so
   a caller that ignores one Status still cannot commit a partial file. */
#include "atp/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

namespace atp {

namespace {
constexpr std::size_t kBufferSize = 4u << 20;
constexpr std::uint64_t kWritebackChunk = 16u << 20;
constexpr std::uint64_t kMaxSyscallBytes = 1u << 30;
std::atomic<unsigned> g_temp_counter{0};
std::atomic<bool> g_kernel_copy{true};

std::string errno_text(int err) { return std::strerror(err); }
} // namespace

std::string parent_folder(const std::string &path) {
  std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

std::string file_name(const std::string &path) {
  std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join_path(const std::string &folder, const std::string &name) {
  if (folder.empty() || folder == ".")
    return name;
  if (folder.back() == '/')
    return folder + name;
  return folder + "/" + name;
}

Result<AtomicFile> AtomicFile::create(const std::string &path) {
  std::string base = file_name(path);
  if (base.empty() || base == "." || base == "..")
    return error(path + ": not a file name");
  AtomicFile f;
  f.path_ = path;
  f.temp_ = join_path(path.find('/') == std::string::npos ? "" : parent_folder(path),
                      "." + base + ".tmp-" + std::to_string(getpid()) + "-" +
                          std::to_string(g_temp_counter++));
  f.fd_ = ::open(f.temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (f.fd_ < 0)
    return error(path + ": cannot create the temporary file " + quote(f.temp_) +
                 ": " + errno_text(errno));
  f.buffer_.reserve(kBufferSize);
  return f;
}

AtomicFile::AtomicFile(AtomicFile &&other) noexcept { *this = std::move(other); }

AtomicFile &AtomicFile::operator=(AtomicFile &&other) noexcept {
  if (this != &other) {
    abandon();
    path_ = std::move(other.path_);
    temp_ = std::move(other.temp_);
    fd_ = std::exchange(other.fd_, -1);
    finished_ = other.finished_;
    published_ = std::exchange(other.published_, true); // other owns nothing now
    failed_ = other.failed_;
    buffer_ = std::move(other.buffer_);
    written_ = other.written_;
    handed_ = other.handed_;
    writeback_from_ = other.writeback_from_;
    kernel_copied_ = other.kernel_copied_;
    kernel_refused_ = other.kernel_refused_;
  }
  return *this;
}

AtomicFile::~AtomicFile() { abandon(); }

void AtomicFile::abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!published_ && !temp_.empty())
    ::unlink(temp_.c_str());
  published_ = true; // nothing left to remove
}

void AtomicFile::set_kernel_copy(bool enabled) { g_kernel_copy = enabled; }

Status AtomicFile::fail(const std::string &what) {
  Status s = error(path_ + ": " + what);
  abandon();
  failed_ = true;
  return s;
}

Status AtomicFile::fail_with(const std::string &what, int err) {
  return fail(what + ": " + errno_text(err));
}

void AtomicFile::start_writeback() {
  if (handed_ - writeback_from_ < kWritebackChunk)
    return;
  (void)::sync_file_range(fd_, off64_t(writeback_from_), off64_t(handed_ - writeback_from_),
                          SYNC_FILE_RANGE_WRITE);
  writeback_from_ = handed_;
}

Status AtomicFile::write_out(const char *p, std::size_t left) {
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail_with("write failed", errno);
    p += n;
    left -= std::size_t(n);
    handed_ += std::uint64_t(n);
  }
  start_writeback();
  return Status();
}

Status AtomicFile::flush() {
  ATP_TRY(write_out(buffer_.data(), buffer_.size()));
  buffer_.clear();
  return Status();
}

Status AtomicFile::write(const void *data, std::size_t nbytes) {
  if (failed_ || published_ || finished_ || fd_ < 0)
    return error(path_ + ": write after the file was " +
                 (failed_ ? "abandoned after an error" : "closed"));
  const char *p = static_cast<const char *>(data);
  written_ += nbytes;
  if (buffer_.size() + nbytes <= kBufferSize) {
    buffer_.insert(buffer_.end(), p, p + nbytes);
    return Status();
  }
  ATP_TRY(flush());
  if (nbytes <= kBufferSize) {
    buffer_.insert(buffer_.end(), p, p + nbytes);
    return Status();
  }
  return write_out(p, nbytes);
}

namespace {
/// copy_file_range's answers that mean "not between these files": fall back to read/write, which
/// reports any real error itself (EPERM also comes from a seccomp filter that does not know it).
bool kernel_refused(int err) {
  return err == EXDEV || err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == EPERM;
}

std::string source_range(const std::string &src_name, std::uint64_t offset, std::uint64_t nbytes) {
  return "copying bytes [" + std::to_string(offset) + ", " + std::to_string(offset + nbytes) + ") of " +
         quote(src_name);
}
} // namespace

Status AtomicFile::copy_from(int src_fd, const std::string &src_name, std::uint64_t src_offset,
                             std::uint64_t nbytes) {
  if (failed_ || published_ || finished_ || fd_ < 0)
    return error(path_ + ": write after the file was " +
                 (failed_ ? "abandoned after an error" : "closed"));
  written_ += nbytes;
  if (nbytes == 0 || !g_kernel_copy || kernel_refused_)
    return copy_through_buffer(src_fd, src_name, src_offset, nbytes);
  ATP_TRY(flush()); // the kernel copies to the file's offset, so the buffered bytes go first
  loff_t in = loff_t(src_offset);
  std::uint64_t left = nbytes;
  while (left > 0) {
    ssize_t n = ::copy_file_range(src_fd, &in, fd_, nullptr, std::size_t(std::min(left, kMaxSyscallBytes)), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && kernel_refused(errno)) {
      kernel_refused_ = true; // for this file: the next copies go straight to the buffer
      break;
    }
    if (n < 0)
      return fail_with(source_range(src_name, src_offset, nbytes) + " failed", errno);
    if (n == 0)
      return fail(source_range(src_name, src_offset, nbytes) + ": it ended at byte " + std::to_string(in) +
                  " (was it truncated after it was opened?)");
    left -= std::uint64_t(n);
    handed_ += std::uint64_t(n);
    kernel_copied_ += std::uint64_t(n);
    start_writeback();
  }
  return copy_through_buffer(src_fd, src_name, std::uint64_t(in), left);
}

Status AtomicFile::copy_through_buffer(int src_fd, const std::string &src_name, std::uint64_t src_offset,
                                       std::uint64_t nbytes) {
  const std::uint64_t total = nbytes;
  std::uint64_t pos = src_offset;
  while (nbytes > 0) {
    if (buffer_.size() == kBufferSize)
      ATP_TRY(flush());
    const std::size_t old = buffer_.size();
    const std::size_t chunk = std::size_t(std::min<std::uint64_t>(nbytes, kBufferSize - old));
    buffer_.resize(old + chunk);
    ssize_t got = ::pread(src_fd, buffer_.data() + old, chunk, off_t(pos));
    const int err = errno;
    buffer_.resize(old + (got > 0 ? std::size_t(got) : 0));
    if (got < 0 && err == EINTR)
      continue;
    if (got < 0)
      return fail_with(source_range(src_name, src_offset, total) + ": read failed", err);
    if (got == 0)
      return fail(source_range(src_name, src_offset, total) + ": it ended at byte " + std::to_string(pos) +
                  " (was it truncated after it was opened?)");
    pos += std::uint64_t(got);
    nbytes -= std::uint64_t(got);
  }
  return Status();
}

Status AtomicFile::finish() {
  if (failed_ || published_ || fd_ < 0)
    return error(path_ + ": cannot finish a file that was " +
                 (failed_ ? "abandoned after an error" : "closed"));
  if (finished_)
    return Status();
  ATP_TRY(flush());
  if (::fsync(fd_) != 0)
    return fail_with("fsync failed", errno);
  int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(temp_.c_str());
    published_ = true;
    failed_ = true;
    return error(path_ + ": close failed: " + errno_text(err));
  }
  finished_ = true;
  return Status();
}

Status AtomicFile::publish() {
  if (failed_ || published_ || !finished_)
    return error(path_ + ": cannot publish a file that was " +
                 (failed_ ? "abandoned after an error"
                          : !finished_ ? "not finished" : "already published"));
  if (::rename(temp_.c_str(), path_.c_str()) != 0)
    return fail_with("cannot rename " + quote(temp_) + " to it", errno);
  published_ = true;
  // Make the rename durable. Some filesystems cannot fsync a folder
  // (EINVAL); the file itself is already on disk.
  int dir = ::open(parent_folder(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    int rc = ::fsync(dir);
    int err = errno;
    ::close(dir);
    if (rc != 0 && err != EINVAL)
      return error(path_ + ": fsync of its folder failed: " + errno_text(err));
  }
  return Status();
}

Status AtomicFile::commit() {
  ATP_TRY(finish());
  return publish();
}

} // namespace atp
