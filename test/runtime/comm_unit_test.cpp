/* comm_unit_test.cpp - the parts of atp/comm.h that a single rank can check: 16-bit float conversions,
   argument and group errors (each names the call and the numbers), the timeout setting, and an aborted comm.
   Run under mpirun -np 2 (ctest), so that groups that leave a rank out can be tried; MPI is initialised once
   in main, GoogleTest runs (and prints) on every rank, and any rank's failure fails the job. */
#include "atp/comm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace atp;

namespace {

int world_rank() {
  int rank = -1, size = 0;
  EXPECT_TRUE(comm_detail::global_rank_and_size(&rank, &size).ok());
  return rank;
}
int world_size() {
  int rank = -1, size = 0;
  EXPECT_TRUE(comm_detail::global_rank_and_size(&rank, &size).ok());
  return size;
}

float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---------------------------------------------------------------------------------------------------------
// 16-bit floats

TEST(CommDType, Bf16RoundTripsEveryValue) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    float f = bf16_to_float(std::uint16_t(b));
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f)))) << b;
    else
      EXPECT_EQ(float_to_bf16(f), b) << b;
  }
}

TEST(CommDType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(bits_float(0x3f808000)), 0x3f80); // 1 + 2^-8: a tie, to the even 1.0
  EXPECT_EQ(float_to_bf16(bits_float(0x3f818000)), 0x3f82); // 1 + 3*2^-8: a tie, to the even 1 + 2^-6
  EXPECT_EQ(float_to_bf16(bits_float(0x3f808001)), 0x3f81); // just above the tie
  EXPECT_EQ(float_to_bf16(bits_float(0x7f7fffff)), 0x7f80); // FLT_MAX rounds to inf
  std::mt19937 gen(7);
  for (int k = 0; k < 200000; ++k) {
    std::uint32_t u = gen() & 0x7f7fffffu; // finite, positive
    float f = bits_float(u);
    std::uint16_t lo = std::uint16_t(u >> 16), hi = std::uint16_t(lo + 1);
    // Above the largest bf16, the next value up is 2^128 (IEEE rounds there to inf).
    double up = hi == 0x7f80 ? std::ldexp(1.0, 128) : double(bf16_to_float(hi));
    double dlo = std::fabs(double(f) - bf16_to_float(lo)), dhi = std::fabs(double(f) - up);
    std::uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1) ? hi : lo;
    ASSERT_EQ(float_to_bf16(f), want) << std::hex << u;
  }
}

TEST(CommDType, F16RoundTripsEveryValue) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    float f = f16_to_float(std::uint16_t(b));
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f)))) << b;
    else
      EXPECT_EQ(float_to_f16(f), b) << b;
  }
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
  EXPECT_EQ(f16_to_float(0x7bff), 65504.0f);
}

#if defined(__FLT16_MAX__)
TEST(CommDType, F16MatchesTheCompiler) { // _Float16 conversions round to nearest even
  std::mt19937 gen(11);
  for (int k = 0; k < 400000; ++k) {
    // Exponents around the half range: subnormals, normals, overflow to inf.
    std::uint32_t u = (gen() & 0x807fffffu) | ((100u + gen() % 50u) << 23);
    float f = bits_float(u);
    _Float16 h = static_cast<_Float16>(f);
    std::uint16_t want;
    std::memcpy(&want, &h, sizeof want);
    ASSERT_EQ(float_to_f16(f), want) << std::hex << u;
  }
}
#endif

TEST(CommDType, SupportedDTypes) {
  for (DType d : all_dtypes()) {
    bool want = d == DType::F32 || d == DType::BF16 || d == DType::F16 || d == DType::F64 || d == DType::I32 ||
                d == DType::U32 || d == DType::I64 || d == DType::U64 || d == DType::I8 || d == DType::U8;
    EXPECT_EQ(comm_supports(d), want) << dtype_name(d);
  }
}

// ---------------------------------------------------------------------------------------------------------
// settings and names

TEST(CommSettings, Timeout) {
  ::unsetenv("ATP_COMM_TIMEOUT_S");
  EXPECT_EQ(comm_timeout_s(), 300);
  ::setenv("ATP_COMM_TIMEOUT_S", "2.5", 1);
  EXPECT_EQ(comm_timeout_s(), 2.5);
  ::setenv("ATP_COMM_TIMEOUT_S", "0", 1);
  EXPECT_EQ(comm_timeout_s(), 0);
  ::setenv("ATP_COMM_TIMEOUT_S", "soon", 1);
  EXPECT_EQ(comm_timeout_s(), 300);
  ::unsetenv("ATP_COMM_TIMEOUT_S");
}

TEST(CommSettings, Names) {
  EXPECT_EQ(comm_detail::group_string({0, 2, 4}), "[0,2,4]");
  std::vector<int> many(40);
  for (int i = 0; i < 40; ++i)
    many[std::size_t(i)] = 8 * i;
  EXPECT_EQ(comm_detail::group_string(many), "[0,8,16,24,...,312] (40 ranks)");
  EXPECT_NE(process_label().find("rank " + std::to_string(world_rank()) + "/"), std::string::npos);
  EXPECT_STREQ(reduce_op_name(ReduceOp::Avg), "avg");
}

// ---------------------------------------------------------------------------------------------------------
// group and argument errors

void expect_error(const Status &s, const std::string &part) {
  ASSERT_FALSE(s.ok()) << "expected an error containing '" << part << "'";
  EXPECT_NE(s.message().find(part), std::string::npos) << s.message();
}

TEST(CommErrors, BadGroups) {
  int me = world_rank(), n = world_size();
  expect_error(make_mpi_comm({}).status(), "the group is empty");
  expect_error(make_mpi_comm({me, me}).status(), "lists rank " + std::to_string(me) + " twice");
  expect_error(make_mpi_comm({me, n + 5}).status(), "has rank " + std::to_string(n + 5) + ", outside the world of");
  if (n > 1)
    expect_error(make_mpi_comm({(me + 1) % n}).status(), "does not hold this process");
  MpiCommOptions zero;
  zero.max_chunk = 0;
  expect_error(make_mpi_comm({me}, zero).status(), "max_chunk 0");
}

TEST(CommErrors, BadArguments) {
  std::unique_ptr<Comm> c = make_mpi_comm({world_rank()}).value(); // a group of one: no peer involved
  std::vector<float> a(16, 1.0f), b(16, 0.0f);
  expect_error(c->all_reduce(nullptr, b.data(), 4, DType::F32, ReduceOp::Sum), "all_reduce: null buffer");
  expect_error(c->all_reduce(a.data(), b.data(), 4, DType::BOOL, ReduceOp::Sum), "dtype BOOL is not supported");
  expect_error(c->all_reduce(a.data(), a.data() + 1, 4, DType::F32, ReduceOp::Sum), "overlap");
  expect_error(c->broadcast(a.data(), 4, DType::F32, 1), "root 1 is not a group rank");
  expect_error(c->broadcast(a.data(), 4, DType::F32, -1), "root -1 is not a group rank");
  expect_error(c->reduce_scatter(a.data(), a.data() + 2, 4, DType::F32, ReduceOp::Sum), "recv overlaps send");
  expect_error(c->all_gather(a.data() + 2, a.data(), 4, DType::F32), "send overlaps recv");
  // Count 0 with null buffers is allowed and does nothing.
  EXPECT_TRUE(c->all_reduce(nullptr, nullptr, 0, DType::F32, ReduceOp::Sum).ok());
}

TEST(CommErrors, GroupOfOneCopies) {
  std::unique_ptr<Comm> c = make_mpi_comm({world_rank()}).value();
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->backend(), CommBackend::Mpi);
  std::vector<std::int32_t> a = {1, -2, 3}, b(3, 0);
  ASSERT_TRUE(c->all_reduce(a.data(), b.data(), 3, DType::I32, ReduceOp::Max).ok());
  EXPECT_EQ(b, a);
  ASSERT_TRUE(c->reduce_scatter(a.data(), a.data(), 3, DType::I32, ReduceOp::Sum).ok()); // in place
  EXPECT_EQ(a, (std::vector<std::int32_t>{1, -2, 3}));
  ASSERT_TRUE(c->barrier().ok());
  EXPECT_EQ(comm_stream(*c), nullptr);
}

TEST(CommErrors, AbortedCommFails) {
  std::unique_ptr<Comm> c = make_mpi_comm({world_rank()}).value();
  c->abort();
  float x = 1;
  expect_error(c->all_reduce(&x, &x, 1, DType::F32, ReduceOp::Sum), "the comm was aborted");
  expect_error(c->barrier(), "the comm was aborted");
  expect_error(c->synchronize(), "the comm was aborted");
}

// The TCP backend checks groups and arguments as the MPI one does; a group of one needs no store and no peer.
TEST(CommTcp, BadGroupsAndArguments) {
  int me = world_rank(), n = world_size();
  expect_error(make_tcp_comm({}).status(), "the group is empty");
  expect_error(make_tcp_comm({me, me}).status(), "lists rank " + std::to_string(me) + " twice");
  expect_error(make_tcp_comm({me, n + 5}).status(), "outside the world of");
  if (n > 1)
    expect_error(make_tcp_comm({(me + 1) % n}).status(), "does not hold this process");
  std::unique_ptr<Comm> c = make_tcp_comm({me}).value();
  EXPECT_EQ(c->backend(), CommBackend::Tcp);
  std::vector<float> a(16, 1.0f), b(16, 0.0f);
  expect_error(c->all_reduce(nullptr, b.data(), 4, DType::F32, ReduceOp::Sum), "all_reduce: null buffer");
  expect_error(c->all_reduce(a.data(), b.data(), 4, DType::BOOL, ReduceOp::Sum), "dtype BOOL is not supported");
  expect_error(c->all_reduce(a.data(), a.data() + 1, 4, DType::F32, ReduceOp::Sum), "overlap");
  expect_error(c->broadcast(a.data(), 4, DType::F32, 1), "root 1 is not a group rank");
  expect_error(c->reduce_scatter(a.data(), a.data() + 2, 4, DType::F32, ReduceOp::Sum), "recv overlaps send");
  expect_error(c->all_gather(a.data() + 2, a.data(), 4, DType::F32), "send overlaps recv");
  std::vector<std::int32_t> x = {1, -2, 3}, y(3, 0);
  ASSERT_TRUE(c->all_reduce(x.data(), y.data(), 3, DType::I32, ReduceOp::Max).ok());
  EXPECT_EQ(y, x);
  ASSERT_TRUE(c->barrier().ok());
  c->abort();
  expect_error(c->all_reduce(x.data(), y.data(), 3, DType::I32, ReduceOp::Max), "an earlier call on this comm failed");
}

TEST(CommTcp, PeersNeedTheStore) {
  if (world_size() < 2)
    GTEST_SKIP() << "needs 2 ranks";
  ASSERT_EQ(std::getenv("MASTER_ADDR"), nullptr) << "this test expects a launch without MASTER_ADDR";
  expect_error(make_tcp_comm({0, 1}).status(), "MASTER_ADDR and MASTER_PORT must both be set");
}

TEST(CommErrors, NcclWithoutNccl) {
  if (nccl_available())
    GTEST_SKIP() << "this build has NCCL";
  expect_error(make_nccl_comm({world_rank()}).status(), "built without NCCL");
}

} // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  Status s = mpi_init(&argc, &argv);
  if (!s.ok()) {
    std::fprintf(stderr, "comm_unit_test: %s\n", s.message().c_str());
    return 1;
  }
  int rc = RUN_ALL_TESTS();
  if (!mpi_finalize().ok())
    rc = 1;
  return rc;
}
