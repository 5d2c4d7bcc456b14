/* kernels_cpu_gemm.cpp - the CPU kernels' GEMMs, split over threads in a way that fixes the result bits.

   OpenBLAS's own threading changes the last bits of sgemm with the thread count (1, 2, 3, 4 and 8
   threads all differ on a 192x160x256 product here), so a run would not repeat bit for bit on another
   core count or with another blas_threads. Instead OpenBLAS runs single-threaded and a product is cut
   into blocks of kBlock rows (or columns, when C is wider than tall) by its dimensions alone; the blocks
   go to the threads round-robin. Each block is the same OpenBLAS call whichever thread runs it, so the
   bits depend on the dimensions only. Small products are one call on the calling thread. */
#include "kernels_cpu.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int num_threads); // OpenBLAS's, not part of CBLAS proper

namespace atp::cpu {

namespace {

constexpr i64 kBlock = 64;             // rows (or columns) of C per block
constexpr i64 kSplitMacs = i64(1) << 21; // below this many multiply-adds a product is one call

std::atomic<int> g_threads{1};

} // namespace

void set_gemm_threads(int threads) {
  openblas_set_num_threads(1);
  g_threads = threads > 0 ? threads : std::max(1, int(std::thread::hardware_concurrency()));
}

int gemm_threads() { return g_threads; }

template <class T>
void par_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, const T *a, i64 lda, const T *b, i64 ldb, T beta,
              T *c, i64 ldc) {
  if (double(m) * double(n) * double(k) < double(kSplitMacs) || std::max(m, n) <= kBlock) {
    blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool by_rows = m >= n;
  const i64 extent = by_rows ? m : n, blocks = (extent + kBlock - 1) / kBlock;
  auto run_block = [&](i64 blk) {
    const i64 lo = blk * kBlock, len = std::min(kBlock, extent - lo);
    if (by_rows) // rows lo.. of op(A) and C
      blas_gemm(ta, tb, len, n, k, alpha, ta ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
    else // columns lo.. of op(B) and C
      blas_gemm(ta, tb, m, len, k, alpha, a, lda, tb ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
  };
  const int threads = int(std::min<i64>(g_threads, blocks));
  if (threads <= 1) {
    for (i64 blk = 0; blk < blocks; ++blk)
      run_block(blk);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(std::size_t(threads - 1));
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (i64 blk = t; blk < blocks; blk += threads)
        run_block(blk);
    });
  for (i64 blk = 0; blk < blocks; blk += threads)
    run_block(blk);
  for (auto &th : pool)
    th.join();
}

template void par_gemm<float>(bool, bool, i64, i64, i64, float, const float *, i64, const float *, i64, float,
                              float *, i64);
template void par_gemm<double>(bool, bool, i64, i64, i64, double, const double *, i64, const double *, i64, double,
                               double *, i64);

} // namespace atp::cpu
