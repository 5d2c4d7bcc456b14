/* AtomicFile: temporary name, fsync, rename, fsync of the folder.

   Writes go through a 4 MiB buffer; larger writes bypass it. EINTR and
   short writes are retried. A failure records the error, removes the
   temporary and makes every later call fail with the same message, so a
   caller that ignores one Status still cannot commit a partial file. */
#include "atp/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

namespace atp {

namespace {
constexpr std::size_t kBufferSize = 4u << 20;
std::atomic<unsigned> g_temp_counter{0};

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

Status AtomicFile::fail_with(const std::string &what, int err) {
  Status s = error(path_ + ": " + what + ": " + errno_text(err));
  abandon();
  failed_ = true;
  return s;
}

Status AtomicFile::flush() {
  const char *p = buffer_.data();
  std::size_t left = buffer_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail_with("write failed", errno);
    p += n;
    left -= std::size_t(n);
  }
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
  while (nbytes > 0) {
    ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail_with("write failed", errno);
    p += n;
    nbytes -= std::size_t(n);
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
