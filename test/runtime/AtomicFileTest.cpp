/* AtomicFile: the final path holds the old file or the complete new one,
   never a partial one, and no temporary outlives the object; copy_from()
   gives the source's bytes whether the kernel copies them or not. */
#include "atp/atomic_file.h"

#include "CoreTestUtil.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace atp;
using atp_test::TempDir;

TEST(AtomicFile, CommitPublishesTheWholeFile) {
  TempDir dir;
  const std::string path = dir / "out.bin";
  atp_test::write_file(path, "old contents");
  Result<AtomicFile> f = AtomicFile::create(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  std::string big = atp_test::value_bytes(1, 9u << 20); // past the buffer
  ASSERT_TRUE(f->write("head", 4).ok());
  ASSERT_TRUE(f->write(big.data(), big.size()).ok());
  ASSERT_TRUE(f->write("tail", 4).ok());
  EXPECT_EQ(f->bytes_written(), big.size() + 8);
  EXPECT_EQ(atp_test::read_file(path), "old contents"); // untouched until commit
  EXPECT_EQ(dir.entries().size(), 2u);                  // out.bin and the temporary
  ASSERT_TRUE(f->commit().ok());
  EXPECT_EQ(atp_test::read_file(path), "head" + big + "tail");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"out.bin"}));
  EXPECT_FALSE(f->write("x", 1).ok());
}

TEST(AtomicFile, AbandonedBeforeCommitLeavesNothing) {
  TempDir dir;
  {
    Result<AtomicFile> f = AtomicFile::create(dir / "out.bin");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write("partial", 7).ok());
    ASSERT_TRUE(f->finish().ok()); // even finished, not published
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, MissingFolderIsAnError) {
  TempDir dir;
  Result<AtomicFile> f = AtomicFile::create(dir / "no/such/out.bin");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find(dir / "no/such/out.bin: cannot create the temporary file"),
            std::string::npos)
      << f.status().message();
  EXPECT_NE(f.status().message().find("No such file or directory"), std::string::npos);
  // A parent that is a file (fails even for root).
  atp_test::write_file(dir / "file", "x");
  EXPECT_FALSE(AtomicFile::create(dir / "file/out.bin").ok());
  EXPECT_FALSE(AtomicFile::create(dir.path() + "/").ok());
}

TEST(AtomicFile, ReadOnlyFolderIsAnError) {
  if (geteuid() == 0)
    GTEST_SKIP() << "root ignores folder permissions";
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0555), 0);
  Result<AtomicFile> f = AtomicFile::create(dir / "out.bin");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("Permission denied"), std::string::npos);
  chmod(dir.path().c_str(), 0755);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, WriteFailureRemovesTheTemporary) {
  // A file size limit makes write() fail part-way (EFBIG), as a full disk
  // would. In a child process, so that the limit does not reach the test
  // runner's own output.
  TempDir dir;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{1u << 20, 1u << 20};
    setrlimit(RLIMIT_FSIZE, &lim);
    Result<AtomicFile> f = AtomicFile::create(dir / "out.bin");
    if (!f.ok())
      _exit(10);
    std::string big(8u << 20, 'x');
    Status st = f->write(big.data(), big.size());
    if (st.ok() || st.message().find("write failed") == std::string::npos)
      _exit(11);
    if (f->commit().ok() || f->write("x", 1).ok())
      _exit(12);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, PathHelpers) {
  EXPECT_EQ(parent_folder("a/b/c.json"), "a/b");
  EXPECT_EQ(parent_folder("c.json"), ".");
  EXPECT_EQ(parent_folder("/c.json"), "/");
  EXPECT_EQ(file_name("a/b/c.json"), "c.json");
  EXPECT_EQ(join_path("a/", "b"), "a/b");
  EXPECT_EQ(join_path("a", "b"), "a/b");
  EXPECT_EQ(join_path(".", "b"), "b");
}

// ---- copy_from: copy_file_range, and the read/write path it falls back to ----

namespace {

/// Forces the read/write path for one scope.
struct NoKernelCopy {
  NoKernelCopy() { AtomicFile::set_kernel_copy(false); }
  ~NoKernelCopy() { AtomicFile::set_kernel_copy(true); }
};

/// Whether this kernel copies between two files of `dir` (asked directly, not through AtomicFile).
bool kernel_copies_in(const TempDir &dir) {
  atp_test::write_file(dir / "probe-in", "x");
  int in = ::open((dir / "probe-in").c_str(), O_RDONLY | O_CLOEXEC);
  int out = ::open((dir / "probe-out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  bool ok = in >= 0 && out >= 0 && ::copy_file_range(in, nullptr, out, nullptr, 1, 0) == 1;
  ::close(in);
  ::close(out);
  ::unlink((dir / "probe-in").c_str());
  ::unlink((dir / "probe-out").c_str());
  return ok;
}

/// Writes a file of header, three pieces of `src` (one of `big` bytes, one small, one past the buffer)
/// and small writes between them; returns the bytes it should hold.
std::string copy_pieces(AtomicFile &f, int src_fd, const std::string &src_name, const std::string &src,
                        std::uint64_t big) {
  const std::uint64_t pieces[][2] = {{17, big}, {5, 100}, {(1u << 20) + 3, (5u << 20) + 1}};
  std::string expect = "head";
  EXPECT_TRUE(f.write("head", 4).ok());
  for (const auto &pc : pieces) {
    Status st = f.copy_from(src_fd, src_name, pc[0], pc[1]);
    EXPECT_TRUE(st.ok()) << st.message();
    EXPECT_TRUE(f.write("|", 1).ok());
    expect += src.substr(pc[0], pc[1]) + "|";
  }
  return expect;
}

} // namespace

TEST(AtomicFile, CopyFromCopiesTheSourceRangesInTheKernel) {
  TempDir dir;
  const std::string src = atp_test::value_bytes(7, (20u << 20) + 11);
  atp_test::write_file(dir / "src.bin", src);
  const bool kernel = kernel_copies_in(dir);
  int fd = ::open((dir / "src.bin").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  Result<AtomicFile> f = AtomicFile::create(dir / "out.bin");
  ASSERT_TRUE(f.ok());
  std::string expect = copy_pieces(*f, fd, dir / "src.bin", src, 18u << 20); // past the 16 MiB writeback step
  ::close(fd);
  EXPECT_EQ(f->bytes_written(), expect.size());
  const std::uint64_t copied = (18u << 20) + 100 + (5u << 20) + 1;
  if (kernel)
    EXPECT_EQ(f->bytes_copied_in_kernel(), copied);
  else
    std::printf("note: copy_file_range refused in %s; the read/write path was taken\n", dir.path().c_str());
  EXPECT_EQ(atp_test::read_file(dir / "src.bin"), src); // the source untouched
  ASSERT_TRUE(f->commit().ok());
  EXPECT_EQ(atp_test::read_file(dir / "out.bin"), expect);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"out.bin", "src.bin"}));
}

TEST(AtomicFile, CopyFromFallsBackToReadAndWrite) {
  TempDir dir;
  const std::string src = atp_test::value_bytes(8, (8u << 20) + 11);
  atp_test::write_file(dir / "src.bin", src);
  NoKernelCopy forced;
  int fd = ::open((dir / "src.bin").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  Result<AtomicFile> f = AtomicFile::create(dir / "out.bin");
  ASSERT_TRUE(f.ok());
  std::string expect = copy_pieces(*f, fd, dir / "src.bin", src, 6u << 20);
  ::close(fd);
  EXPECT_EQ(f->bytes_copied_in_kernel(), 0u);
  ASSERT_TRUE(f->commit().ok());
  EXPECT_EQ(atp_test::read_file(dir / "out.bin"), expect);
}

TEST(AtomicFile, CopyFromAnotherFilesystem) {
  // /dev/shm (tmpfs) to $TMPDIR: the kernel refuses to copy across (EXDEV) and the copy goes through
  // read/write; where it does copy, the bytes must be the same.
  TempDir dir;
  struct stat shm, tmp;
  if (::stat("/dev/shm", &shm) != 0 || ::stat(dir.path().c_str(), &tmp) != 0 || shm.st_dev == tmp.st_dev)
    GTEST_SKIP() << "no /dev/shm on another filesystem than " << dir.path();
  const std::string src_path = "/dev/shm/atp-copy-src-" + std::to_string(getpid());
  const std::string src = atp_test::value_bytes(9, (8u << 20) + 11);
  atp_test::write_file(src_path, src);
  int fd = ::open(src_path.c_str(), O_RDONLY | O_CLOEXEC);
  ::unlink(src_path.c_str()); // the open file stays readable
  ASSERT_GE(fd, 0);
  Result<AtomicFile> f = AtomicFile::create(dir / "out.bin");
  ASSERT_TRUE(f.ok());
  std::string expect = copy_pieces(*f, fd, src_path, src, 6u << 20);
  ::close(fd);
  ASSERT_TRUE(f->commit().ok());
  EXPECT_EQ(atp_test::read_file(dir / "out.bin"), expect);
}

TEST(AtomicFile, CopyFromASourceThatEndsEarlyFailsAndLeavesNothing) {
  for (bool kernel : {true, false}) {
    TempDir dir;
    atp_test::write_file(dir / "src.bin", atp_test::value_bytes(10, 1000));
    AtomicFile::set_kernel_copy(kernel);
    int fd = ::open((dir / "src.bin").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    Result<AtomicFile> f = AtomicFile::create(dir / "out.bin");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->copy_from(fd, dir / "src.bin", 0, 900).ok());
    Status st = f->copy_from(fd, dir / "src.bin", 900, 200);
    ::close(fd);
    AtomicFile::set_kernel_copy(true);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.message(), dir / "out.bin" + ": copying bytes [900, 1100) of '" + dir / "src.bin" +
                                "': it ended at byte 1000 (was it truncated after it was opened?)")
        << (kernel ? "kernel copy" : "read/write");
    EXPECT_FALSE(f->commit().ok());
    EXPECT_EQ(dir.entries(), (std::vector<std::string>{"src.bin"}));
  }
}
