/* AtomicFile: the final path holds the old file or the complete new one,
   never a partial one, and no temporary outlives the object. */
#include "atp/atomic_file.h"

#include "CoreTestUtil.h"

#include <gtest/gtest.h>

#include <csignal>
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
