/* kernels_cuda_bench.cu - device time of each CUDA kernel (make_cuda_kernels, F32 then BF16) on one Llama-3.2-1B layer.

   Shapes of issue 10's benchmark on one GPU: micro-batch 4 x seq 2048 = 8192 token rows, hidden 2048,
   32 query heads and 8 kv heads of 64, ffn 8192, vocab 128256 (the LM head and cross-entropy over a 1024-row
   chunk). Inputs are made on the device (a hash of the index, scaled to [-1, 1), stored as the dtype), ids and
   targets spread over the vocab. Each line: the median of 5 device times (cudaEvents, after 1 warmup) and the
   rate it implies: TFLOP/s for the products (linear: 2 rows in out per product; attention forward 2 B H S^2 D
   for the causal half of QK^T and PV, backward 2.5 times that), GB/s for the rest (bytes read + written at
   the fewest, at the dtype's element size). BF16 GEMM lines also give the share of the H200's dense bf16 peak,
   989 TFLOP/s. The table runs twice: F32 (fp32 without TF32; the baseline) and BF16 (cuBLASLt, fp32
   accumulation). Attention: F32 runs the row-per-warp kernels, BF16 the flash kernels (tensor cores, 64 x 64
   tiles: kernels_cuda_flash.cuh) and, first, cuDNN's fused attention forward and backward (kernels_cuda_sdpa.h);
   its lines give the share of the bf16 peak too. embedding_* and cross_entropy include
   their stream synchronization (they read device data back). A benchmark prints, it does not judge: exit 0
   unless a call fails. */
#include "gpu_check.h"

#include "atp/check_cuda.h"
#include "atp/kernels.h"

#include <cuda_bf16.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

using namespace atp;

namespace {

using i64 = std::int64_t;

constexpr double kBf16PeakTflops = 989.0; // H200 SXM, dense bf16 tensor-core peak

template <class T> __global__ void fill_values(T *x, i64 n, std::uint32_t seed) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
    std::uint32_t h = std::uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    x[i] = T(float(h) * (2.0f / 4294967296.0f) - 1.0f);
  }
}

__global__ void fill_ids(std::int32_t *ids, i64 n, i64 vocab) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x)
    ids[i] = std::int32_t((std::uint64_t(i) * 2654435761u) % std::uint64_t(vocab));
}

cudaStream_t stream = nullptr;
DType dt = DType::F32;
std::vector<void *> allocations;

std::size_t elem_bytes() { return dt == DType::BF16 ? 2 : 4; }

/// n elements of the current dtype, filled.
void *tensor(i64 n, std::uint32_t seed) {
  void *p = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&p, std::size_t(n) * elem_bytes()));
  if (dt == DType::BF16)
    fill_values<<<1024, 256, 0, stream>>>(static_cast<__nv_bfloat16 *>(p), n, seed);
  else
    fill_values<<<1024, 256, 0, stream>>>(static_cast<float *>(p), n, seed);
  ATP_CUDA_CHECK(cudaGetLastError());
  allocations.push_back(p);
  return p;
}

/// n floats (saved statistics: float for every dtype), filled.
float *stats(i64 n, std::uint32_t seed) {
  float *p = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&p, std::size_t(n) * sizeof(float)));
  fill_values<<<1024, 256, 0, stream>>>(p, n, seed);
  ATP_CUDA_CHECK(cudaGetLastError());
  allocations.push_back(p);
  return p;
}

std::int32_t *ids(i64 n, i64 vocab) {
  std::int32_t *p = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&p, std::size_t(n) * sizeof(std::int32_t)));
  fill_ids<<<1024, 256, 0, stream>>>(p, n, vocab);
  ATP_CUDA_CHECK(cudaGetLastError());
  allocations.push_back(p);
  return p;
}

/// Element i of a tensor of the current dtype.
void *at(void *p, i64 i) { return static_cast<char *>(p) + std::size_t(i) * elem_bytes(); }

/// Times `call` and prints its line; `flops` > 0 gives TFLOP/s (and, for BF16, the share of the bf16 peak),
/// else `bytes` gives GB/s.
void bench(const char *name, double flops, double bytes, const std::function<Status()> &call) {
  gpucheck::Timing t;
  t.warmup = 1, t.reps = 5;
  const double ms = ATP_CHECK_OK(gpucheck::median_device_ms(
      stream, [&](int) { ATP_CHECK_OK(call()); }, t));
  if (flops > 0) {
    const double tflops = flops / (ms * 1e-3) / 1e12;
    std::printf("%-4s %-40s %10.3f ms %9.2f TFLOP/s", dtype_name(dt), name, ms, tflops);
    if (dt == DType::BF16)
      std::printf("  %5.1f%% of %.0f", 100.0 * tflops / kBf16PeakTflops, kBf16PeakTflops);
    std::printf("\n");
  } else {
    std::printf("%-4s %-40s %10.3f ms %9.1f GB/s\n", dtype_name(dt), name, ms, bytes / (ms * 1e-3) / 1e9);
  }
  std::fflush(stdout);
}

/// The table for one dtype.
void run(DType dtype) {
  dt = dtype;
  std::unique_ptr<Kernels> kernels = ATP_CHECK_OK(make_cuda_kernels(dtype, stream));
  Kernels &K = *kernels;
  const i64 B = 4, S = 2048, T = B * S, H = 2048, Hq = 32, Hkv = 8, D = 64, F = 8192, V = 128256, CE = 1024;
  const i64 QKV = (Hq + 2 * Hkv) * D; // 3072
  std::printf("kernels_cuda_bench: Llama-3.2-1B layer, T %lld rows (%lld x %lld), %s\n", (long long)T, (long long)B,
              (long long)S, dtype_name(dtype));

  void *x = tensor(T * H, 1), *x2 = tensor(T * H, 2), *w_qkv = tensor(QKV * H, 3), *qkv = tensor(T * QKV, 4);
  void *w_up = tensor(F * H, 5), *up = tensor(T * F, 6), *gate = tensor(T * F, 7), *m = tensor(T * F, 8);
  void *dw = tensor(F * H, 9), *dx = tensor(T * F, 10), *dy = tensor(T * H, 11), *norm_w = tensor(H, 12);
  void *out = tensor(T * Hq * D, 14), *dqkv = tensor(T * QKV, 16), *table = tensor(V * H, 17);
  void *logits = tensor(CE * V, 18), *rope = tensor(S * D, 19), *dnorm_w = tensor(H, 20), *b_qkv = tensor(QKV, 21);
  void *db_qkv = tensor(QKV, 22), *dw_qkv = tensor(QKV * H, 23), *dy_qkv = tensor(T * QKV, 24);
  float *rstd = stats(T, 13), *lse = stats(B * Hq * S, 15);
  std::int32_t *tok = ids(T, V), *targets = ids(CE, V);
  ATP_CUDA_CHECK(cudaStreamSynchronize(stream));

  const double e = double(elem_bytes());
  bench("linear_forward qkv 2048->3072", 2.0 * T * H * QKV, 0,
        [&] { return K.linear_forward(qkv, x, w_qkv, nullptr, T, H, QKV); });
  bench("linear_forward qkv+bias 2048->3072", 2.0 * T * H * QKV, 0,
        [&] { return K.linear_forward(qkv, x, w_qkv, b_qkv, T, H, QKV); });
  bench("linear_forward up 2048->8192", 2.0 * T * H * F, 0,
        [&] { return K.linear_forward(up, x, w_up, nullptr, T, H, F); });
  if (dt == DType::BF16) { // the decoder's fused gate_up projection (one product: two halves measured no faster)
    void *w_gu = tensor(2 * F * H, 25), *gu = tensor(T * 2 * F, 26);
    bench("linear_forward gate_up 2048->16384", 4.0 * T * H * F, 0,
          [&] { return K.linear_forward(gu, x, w_gu, nullptr, T, H, 2 * F); });
  }
  bench("linear_forward down 8192->2048", 2.0 * T * H * F, 0,
        [&] { return K.linear_forward(dy, m, w_up, nullptr, T, F, H); });
  bench("linear_backward down dx+dw", 4.0 * T * H * F, 0,
        [&] { return K.linear_backward(dx, Write::Overwrite, dw, nullptr, Write::Accumulate, dy, m, w_up, T, F, H); });
  bench("linear_backward qkv dx+dw+db", 4.0 * T * H * QKV, 0, [&] {
    return K.linear_backward(x2, Write::Accumulate, dw_qkv, db_qkv, Write::Accumulate, dy_qkv, x, w_qkv, T, H, QKV);
  });
  bench("linear_forward lm_head 1024 x 2048->128256", 2.0 * CE * H * V, 0,
        [&] { return K.linear_forward(logits, x, table, nullptr, CE, H, V); });
  bench("rmsnorm_forward", 0, e * (2.0 * T * H + H) + 4.0 * T,
        [&] { return K.rmsnorm_forward(x2, rstd, x, norm_w, T, H, 1e-5); });
  bench("rmsnorm_backward dx+dw", 0, e * (4.0 * T * H + H) + 4.0 * T, [&] {
    return K.rmsnorm_backward(x2, Write::Accumulate, dnorm_w, Write::Accumulate, dy, x, norm_w, rstd, T, H);
  });
  bench("rope_table (host + copy)", 0, e * S * D, [&] { return K.rope_table(rope, RopeConfig{}, D, S); });
  RopeDims rd;
  rd.batch = B, rd.seq = S, rd.heads = Hq, rd.head_dim = D, rd.row_stride = QKV, rd.rotary_dim = D,
  rd.table_positions = S;
  bench("rope_forward q", 0, e * 2.0 * T * Hq * D, [&] { return K.rope_forward(qkv, rd, rope); });
  bench("swiglu_forward", 0, e * 3.0 * T * F, [&] { return K.swiglu_forward(m, gate, up, T, F, F); });
  bench("swiglu_backward", 0, e * 5.0 * T * F, [&] { return K.swiglu_backward(gate, up, m, gate, up, T, F, F); });
  bench("add residual", 0, e * 3.0 * T * H, [&] { return K.add(x2, x2, x, T * H); });
  AttentionDims ad;
  ad.batch = B, ad.seq = S, ad.q_heads = Hq, ad.kv_heads = Hkv, ad.head_dim = D;
  ad.q_stride = ad.k_stride = ad.v_stride = QKV, ad.scale = 0.125;
  const double attn = 2.0 * B * Hq * double(S) * S * D;
  void *k = at(qkv, Hq * D), *v = at(qkv, (Hq + Hkv) * D);
  const char *attn_path = dt == DType::BF16 ? "flash" : "row per warp";
  auto forward = [&] { return K.attention_forward(out, lse, qkv, k, v, ad); };
  auto backward = [&] {
    return K.attention_backward(dqkv, at(dqkv, Hq * D), at(dqkv, (Hq + Hkv) * D), out, qkv, k, v, out, lse, ad);
  };
  if (dt == DType::BF16) { // cuDNN's fused attention where the runtime has cuDNN (else the flash kernels again)
    bench("attention_forward (cuDNN where built)", attn, 0, forward);
    bench("attention_backward (cuDNN where built)", 2.5 * attn, 0, backward);
  }
  ::setenv("ATP_ATTENTION", "flash", 1);
  bench(("attention_forward (" + std::string(attn_path) + ")").c_str(), attn, 0, forward);
  bench(("attention_backward (" + std::string(attn_path) + ")").c_str(), 2.5 * attn, 0, backward);
  ::unsetenv("ATP_ATTENTION");
  const VocabRange all{V, 0, V};
  bench("embedding_forward", 0, e * 2.0 * T * H, [&] { return K.embedding_forward(x2, table, tok, T, H, all); });
  bench("embedding_backward", 0, e * 3.0 * T * H, [&] { return K.embedding_backward(table, x2, tok, T, H, all); });
  CrossEntropyArgs ce;
  ce.rows = CE, ce.vocab = V, ce.denominator = CE;
  bench("cross_entropy 1024 x 128256", 0, e * 2.0 * CE * V,
        [&] { return K.cross_entropy(logits, targets, ce).status(); });

  ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (void *p : allocations)
    ATP_CUDA_CHECK(cudaFree(p));
  allocations.clear();
}

} // namespace

int main() {
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  run(DType::F32);
  run(DType::BF16);
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}
