//===- TcpStoreTest.cpp - the TCP key-value store of the NCCL bootstrap ---===//
//
// On loopback only: a server and clients in one process, then rank 0 serving
// forked processes that exchange keys the way the NCCL bootstrap does, and
// the errors a user sees for a missing key, a dead server and bad variables.
//
//===----------------------------------------------------------------------===//
#include "atp/tcp_store.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

using namespace atp;

namespace {

TEST(TcpStore, SetThenGetAndGetBeforeSet) {
  auto server = TcpStore::connect("127.0.0.1", 0, true, 5.0);
  ASSERT_TRUE(server.ok()) << server.status().message();
  const int port = (*server)->served_port();
  ASSERT_GT(port, 0);
  auto client = TcpStore::connect("127.0.0.1", port, false, 5.0);
  ASSERT_TRUE(client.ok()) << client.status().message();
  ASSERT_TRUE((*server)->set("a", std::string("x\0y", 3)).ok());
  auto a = (*client)->get("a", 5.0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, std::string("x\0y", 3)); // values are bytes, not C strings
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE((*server)->set("b", "late").ok());
  });
  auto b = (*client)->get("b", 5.0); // parked until the set
  later.join();
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(*b, "late");
}

TEST(TcpStore, MissingKeyTimesOutNamingIt) {
  auto server = TcpStore::connect("127.0.0.1", 0, true, 5.0);
  ASSERT_TRUE(server.ok());
  auto r = (*server)->get("never-set", 0.3);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'never-set'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().message();
}

TEST(TcpStore, NoServerIsAClearError) {
  int port;
  { // a port that was just free
    auto s = TcpStore::connect("127.0.0.1", 0, true, 5.0);
    ASSERT_TRUE(s.ok());
    port = (*s)->served_port();
  }
  auto r = TcpStore::connect("127.0.0.1", port, false, 0.3);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot connect to 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.status().message();
}

TEST(TcpStore, RankZeroServesForkedRanks) {
  auto server = TcpStore::connect("127.0.0.1", 0, true, 5.0);
  ASSERT_TRUE(server.ok());
  const int port = (*server)->served_port(), ranks = 4;
  std::vector<pid_t> children;
  for (int r = 1; r < ranks; ++r) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) { // each child publishes its key and reads every other rank's
      auto c = TcpStore::connect("127.0.0.1", port, false, 5.0);
      bool ok = c.ok() && (*c)->set("id/" + std::to_string(r), "value of " + std::to_string(r)).ok();
      for (int o = 0; ok && o < ranks; ++o) {
        auto v = (*c)->get("id/" + std::to_string(o), 10.0);
        ok = v.ok() && *v == "value of " + std::to_string(o);
      }
      _exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  ASSERT_TRUE((*server)->set("id/0", "value of 0").ok());
  for (int o = 1; o < ranks; ++o) {
    auto v = (*server)->get("id/" + std::to_string(o), 10.0);
    ASSERT_TRUE(v.ok()) << v.status().message();
    EXPECT_EQ(*v, "value of " + std::to_string(o));
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

TEST(TcpStore, JobStoreNeedsMasterAddrAndPort) {
  unsetenv("MASTER_ADDR");
  setenv("MASTER_PORT", "29500", 1);
  auto r = tcp_store_for_job(1, 0.2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("MASTER_ADDR and MASTER_PORT"), std::string::npos);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "http", 1);
  r = tcp_store_for_job(1, 0.2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'http' is not a port number"), std::string::npos) << r.status().message();
  unsetenv("MASTER_ADDR");
  unsetenv("MASTER_PORT");
}

} // namespace
