/* Status, Result, ATP_TRY, quote, and fail()'s one-line message, abort
   hooks and exit code (death tests: each runs in a child process, so the
   identity and hooks it sets do not leak into other tests). */
#include "atp/status.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>

using namespace atp;

namespace {

Status fails_with(const std::string &msg) { return error(msg); }
Result<int> int_or(bool ok) {
  if (!ok)
    return error("no int");
  return 42;
}

Status try_status(bool ok, int *reached) {
  ATP_TRY(ok ? Status() : fails_with("inner"));
  *reached = 1;
  return Status();
}

Result<std::string> try_result(bool ok) {
  ATP_TRY(int_or(ok));
  ATP_ASSIGN_OR_RETURN(int v, int_or(ok));
  return std::to_string(v);
}

} // namespace

TEST(Status, OkAndError) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.message(), "");
  Status e = error("disk full");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.message(), "disk full");
  EXPECT_EQ(error("").message(), "unknown error");
  EXPECT_EQ(e.with_context("ckpt/a.safetensors").message(), "ckpt/a.safetensors: disk full");
  EXPECT_TRUE(ok.with_context("x").ok());
}

TEST(Status, ResultHoldsValueOrError) {
  Result<int> v = int_or(true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v.status().ok());
  EXPECT_EQ(*v, 42);
  Result<int> e = int_or(false);
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "no int");

  Result<std::unique_ptr<int>> moved(std::make_unique<int>(7));
  std::unique_ptr<int> p = std::move(moved).value();
  EXPECT_EQ(*p, 7);

  Result<int> from_ok{Status()};
  EXPECT_FALSE(from_ok.ok());
  EXPECT_NE(from_ok.status().message().find("ok Status"), std::string::npos);
}

TEST(Status, TryPropagates) {
  int reached = 0;
  EXPECT_EQ(try_status(false, &reached).message(), "inner");
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(try_status(true, &reached).ok());
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(try_result(false).status().message(), "no int");
  EXPECT_EQ(*try_result(true), "42");
}

TEST(Status, QuoteEscapesAndTruncates) {
  EXPECT_EQ(quote("a.b"), "'a.b'");
  EXPECT_EQ(quote("it's\n\x01"), "'it\\'s\\n\\x01'");
  std::string longname(300, 'x');
  EXPECT_EQ(quote(longname), "'" + std::string(200, 'x') + "...'");
}

// ---------------------------------------------------------------- fail()

TEST(StatusDeathTest, FailPrintsOneLineWithRankAndHost) {
  EXPECT_EXIT(
      {
        set_process_identity(3, 8, "node1");
        fail("NCCL call", "ncclAllReduce(x)", "runtime/src/zero.cuh", 88, "unhandled cuda error");
      },
      testing::ExitedWithCode(1),
      "^atp: error: rank 3/8 \\(host node1\\): NCCL call failed: 'ncclAllReduce\\(x\\)' "
      "at zero.cuh:88: unhandled cuda error\n$");
}

TEST(StatusDeathTest, FailBeforeIdentityIsRankUnknown) {
  EXPECT_EXIT(fail("load", "", "main.cpp", 5, "no checkpoint"), testing::ExitedWithCode(1),
              "^atp: error: rank \\? \\(host [^)]+\\): load failed at main.cpp:5: no checkpoint\n$");
}

TEST(StatusDeathTest, AbortHooksRunNewestFirstAndRemovedOnesDoNot) {
  EXPECT_EXIT(
      {
        add_abort_hook([] { std::fputs("hook A\n", stderr); });
        int gone = add_abort_hook([] { std::fputs("removed hook\n", stderr); });
        add_abort_hook([] { std::fputs("hook B\n", stderr); });
        remove_abort_hook(gone);
        fail("MPI call", "MPI_Allreduce", "comm.cpp", 1, "peer died");
      },
      testing::ExitedWithCode(1), "peer died\nhook B\nhook A\n$");
}

TEST(StatusDeathTest, FailInsideAHookDoesNotLoop) {
  EXPECT_EXIT(
      {
        add_abort_hook([] { fail("ncclCommAbort", "", "comm.cpp", 2, "abort failed"); });
        fail("NCCL call", "ncclBroadcast", "comm.cpp", 1, "first");
      },
      testing::ExitedWithCode(1), "first\n.*ncclCommAbort failed at comm.cpp:2: abort failed\n$");
}

TEST(StatusDeathTest, CheckOkExitsOnErrorAndPassesValues) {
  EXPECT_EQ(ATP_CHECK_OK(int_or(true)), 42);
  ATP_CHECK_OK(Status());
  EXPECT_EXIT(ATP_CHECK_OK(int_or(false)), testing::ExitedWithCode(1),
              "call failed: 'int_or\\(false\\)' at StatusTest.cpp:[0-9]+: no int\n$");
}

TEST(StatusDeathTest, ValueOfAnErrorIsABug) {
  Result<int> e = int_or(false);
  EXPECT_EXIT((void)e.value(), testing::ExitedWithCode(1),
              "Result access failed: 'value\\(\\)' at status.h:[0-9]+: no int\n$");
}
