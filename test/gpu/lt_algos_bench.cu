/* lt_algos_bench.cu - cuBLASLt's candidate algorithms for each bf16 product of a Llama-3.2-1B training step.

   kernels_cuda_lt.cu runs the first algorithm cuBLASLt's heuristic offers. This asks the heuristic for up to
   16 candidates per product (the runtime's settings: CUBLAS_COMPUTE_32F, bf16 A/B/C/D, the 32 MiB workspace,
   reduction schemes NONE or COMPUTE_TYPE only, 256-byte alignments) and, for each candidate, prints its device
   time (median of 5 after 1 warmup, cudaEvents), its TFLOP/s, its tile id, split-K count and reduction scheme,
   and whether its output is the same bytes as the first candidate's on the same inputs (for beta 1, from the
   same initial C). The question it answers: could a plan pick a faster algorithm without changing any result.
   Measured on an H200 (cuBLAS of CUDA 13.0): every candidate of all 15 products gave the first's bytes (split-K
   1 throughout), and a later one was faster in isolation (down dx 17 %, gate_up forward 6 %, down forward 5 %,
   ~2.7 ms a step in all). A runtime that picked the fastest same-bytes candidate on each plan's first call
   (commit 06178df, reverted) gave the same losses bit for bit but no speed in training: 66.1k and 65.6k tokens/s
   against 66.0k and 66.1k alternating in one call. Isolated timings did not carry over to the training step.

   Products (row-major, as the decoder calls them; T = 4 x 2048 token rows): each linear's forward
   y[T, out] = x[T, in] w[out, in]^T, its dx[T, in] = dy[T, out] w and its dw[out, in] += dy^T x (beta 1), for
   qkv 2048->3072, o 2048->2048, gate_up 2048->16384, down 8192->2048 and the LM head 2048->128256. Inputs are
   hashed values in [-1, 1). A benchmark prints, it does not judge: exit 0 unless a call fails. */
#include "gpu_check.h"

#include "atp/check_cuda.h"

#include <cublasLt.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace {

using i64 = std::int64_t;

#define LT_CHECK(expr)                                                                                                 \
  do {                                                                                                                 \
    const cublasStatus_t s_ = (expr);                                                                                  \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                                 \
      std::fprintf(stderr, "%s failed: %d\n", #expr, int(s_));                                                         \
      std::exit(1);                                                                                                    \
    }                                                                                                                  \
  } while (0)

__global__ void fill(__nv_bfloat16 *p, i64 n, std::uint32_t seed) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
    std::uint32_t h = std::uint32_t(i) * 2654435761u ^ seed * 0x9e3779b9u;
    h ^= h >> 15, h *= 0x2c1b3c6du, h ^= h >> 12;
    p[i] = __float2bfloat16(float(h % 2001u) / 1000.0f - 1.0f);
  }
}

struct Product {
  const char *name;
  bool ta, tb; // our A is [m, k] (or [k, m] with ta), our B [k, n] (or [n, k] with tb), C [m, n]: row-major
  i64 m, n, k;
  float beta;
};

cudaStream_t stream;

__nv_bfloat16 *filled(i64 n, std::uint32_t seed) {
  __nv_bfloat16 *p = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&p, std::size_t(n) * 2));
  fill<<<1024, 256, 0, stream>>>(p, n, seed);
  ATP_CUDA_CHECK(cudaGetLastError());
  return p;
}

template <class V> void set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, V v) {
  LT_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof v));
}
template <class V> void set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, V v) {
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof v));
}
template <class V> V algo_attr(const cublasLtMatmulAlgo_t &a, cublasLtMatmulAlgoConfigAttributes_t attr) {
  V v{};
  std::size_t written = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&a, attr, &v, sizeof v, &written);
  return v;
}

void run(cublasLtHandle_t lt, void *workspace, std::size_t workspace_bytes, const Product &p) {
  const i64 lda = p.ta ? p.m : p.k, ldb = p.tb ? p.k : p.n, ldc = p.n;
  __nv_bfloat16 *a = filled(p.m * p.k, 1), *b = filled(p.k * p.n, 2), *c0 = filled(p.m * p.n, 3);
  __nv_bfloat16 *ref = nullptr, *c = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&ref, std::size_t(p.m * p.n) * 2));
  ATP_CUDA_CHECK(cudaMalloc(&c, std::size_t(p.m * p.n) * 2));

  // As kernels_cuda_lt.cu: cuBLASLt's A is our B and its B our A; D is [n, m] column-major.
  cublasLtMatmulDesc_t desc = nullptr;
  LT_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSA, std::int32_t(p.tb ? CUBLAS_OP_T : CUBLAS_OP_N));
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSB, std::int32_t(p.ta ? CUBLAS_OP_T : CUBLAS_OP_N));
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  LT_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, p.tb ? p.k : p.n, p.tb ? p.n : p.k, ldb));
  LT_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, p.ta ? p.m : p.k, p.ta ? p.k : p.m, lda));
  LT_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, p.n, p.m, ldc));
  cublasLtMatmulPreference_t pref = nullptr;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  set_pref(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, std::uint64_t(workspace_bytes));
  set_pref(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, std::uint32_t(CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE));
  cublasLtMatmulHeuristicResult_t results[16];
  int found = 0;
  LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 16, results, &found));
  const float alpha = 1.0f, beta = p.beta;
  auto matmul = [&](const cublasLtMatmulAlgo_t &algo, __nv_bfloat16 *out) {
    LT_CHECK(cublasLtMatmul(lt, desc, &alpha, b, la, a, lb, &beta, out, lc, out, lc, &algo, workspace, workspace_bytes,
                            stream));
  };
  const double flops = 2.0 * double(p.m) * double(p.n) * double(p.k);
  std::printf("%s: m %lld n %lld k %lld beta %g, %d candidates\n", p.name, (long long)p.m, (long long)p.n,
              (long long)p.k, double(p.beta), found);
  double first_us = 0, best_us = 1e30;
  int best = -1;
  for (int i = 0; i < found; ++i) {
    const cublasLtMatmulAlgo_t &algo = results[i].algo;
    __nv_bfloat16 *out = i == 0 ? ref : c;
    ATP_CUDA_CHECK(cudaMemcpyAsync(out, c0, std::size_t(p.m * p.n) * 2, cudaMemcpyDeviceToDevice, stream));
    matmul(algo, out);
    bool same = true;
    if (i > 0)
      same = ATP_CHECK_OK(atp::gpucheck::count_mismatches(ref, c, std::size_t(p.m * p.n) * 2, stream)) == 0;
    atp::gpucheck::Timing t;
    t.warmup = 1, t.reps = 5;
    const double ms = ATP_CHECK_OK(atp::gpucheck::median_device_ms(
        stream, [&](int) { matmul(algo, c); }, t));
    const double us = ms * 1e3;
    if (i == 0)
      first_us = us;
    if (same && us < best_us)
      best_us = us, best = i;
    std::printf("  %2d %9.1f us %7.1f TFLOP/s  tile %3d splitK %2d reduction %d  %s\n", i, us, flops / (us * 1e6),
                algo_attr<int>(algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                algo_attr<int>(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                algo_attr<int>(algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME),
                i == 0 ? "(the heuristic's first)"
                : same ? "same bytes"
                       : "DIFFERENT bytes");
  }
  if (best >= 0)
    std::printf("  fastest with the first's bytes: %d, %.1f us against %.1f (%.1f%%)\n", best, best_us, first_us,
                100.0 * (first_us - best_us) / first_us);
  std::fflush(stdout);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(desc);
  for (void *q : {static_cast<void *>(a), static_cast<void *>(b), static_cast<void *>(c0), static_cast<void *>(ref),
                  static_cast<void *>(c)})
    ATP_CUDA_CHECK(cudaFree(q));
}

} // namespace

int main() {
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasLtHandle_t lt = nullptr;
  LT_CHECK(cublasLtCreate(&lt));
  const std::size_t workspace_bytes = std::size_t(32) << 20;
  void *workspace = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
  const i64 T = 8192;
  struct Linear {
    const char *name;
    i64 in, out;
  };
  const Linear linears[] = {{"qkv", 2048, 3072},
                            {"o", 2048, 2048},
                            {"gate_up", 2048, 16384},
                            {"down", 8192, 2048},
                            {"lm_head", 2048, 128256}};
  for (const Linear &l : linears) {
    char name[3][64];
    std::snprintf(name[0], 64, "%s forward", l.name);
    std::snprintf(name[1], 64, "%s dx", l.name);
    std::snprintf(name[2], 64, "%s dw", l.name);
    run(lt, workspace, workspace_bytes, Product{name[0], false, true, T, l.out, l.in, 0.0f});
    run(lt, workspace, workspace_bytes, Product{name[1], false, false, T, l.in, l.out, 0.0f});
    run(lt, workspace, workspace_bytes, Product{name[2], true, false, l.out, l.in, T, 1.0f});
  }
  ATP_CUDA_CHECK(cudaFree(workspace));
  cublasLtDestroy(lt);
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}
