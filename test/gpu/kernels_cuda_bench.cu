/* kernels_cuda_bench.cu - device time of each CUDA kernel (make_cuda_kernels, F32) on one Llama-3.2-1B layer.

   Shapes of issue 10's benchmark on one GPU: micro-batch 4 x seq 2048 = 8192 token rows, hidden 2048,
   32 query heads and 8 kv heads of 64, ffn 8192, vocab 128256 (cross-entropy over a 1024-row chunk). Inputs
   are made on the device (a hash of the index, scaled to [-1, 1)), ids and targets spread over the vocab.
   Each line: the median of 5 device times (cudaEvents, after 1 warmup) and the rate it implies: TFLOP/s for
   the products (linear: 2 rows in out per product; attention forward 2 B H S^2 D for the causal half of
   QK^T and PV, backward 2.5 times that), GB/s for the rest (bytes read + written at the fewest). fp32 without
   TF32, and a first attention that is memory-linear but not flash-tiled: the baseline issue 10 improves on.
   embedding_* and cross_entropy include their stream synchronization (they read device data back). A
   benchmark prints, it does not judge: exit 0 unless a call fails. */
#include "gpu_check.h"

#include "atp/check_cuda.h"
#include "atp/kernels.h"

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using namespace atp;

namespace {

using i64 = std::int64_t;

__global__ void fill_floats(float *x, i64 n, std::uint32_t seed) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
    std::uint32_t h = std::uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    x[i] = float(h) * (2.0f / 4294967296.0f) - 1.0f;
  }
}

__global__ void fill_ids(std::int32_t *ids, i64 n, i64 vocab) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x)
    ids[i] = std::int32_t((std::uint64_t(i) * 2654435761u) % std::uint64_t(vocab));
}

cudaStream_t stream = nullptr;

float *floats(i64 n, std::uint32_t seed) {
  float *p = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&p, std::size_t(n) * sizeof(float)));
  fill_floats<<<1024, 256, 0, stream>>>(p, n, seed);
  ATP_CUDA_CHECK(cudaGetLastError());
  return p;
}

std::int32_t *ids(i64 n, i64 vocab) {
  std::int32_t *p = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&p, std::size_t(n) * sizeof(std::int32_t)));
  fill_ids<<<1024, 256, 0, stream>>>(p, n, vocab);
  ATP_CUDA_CHECK(cudaGetLastError());
  return p;
}

/// Times `call` and prints its line; `flops` > 0 gives TFLOP/s, else `bytes` gives GB/s.
void bench(const char *name, double flops, double bytes, const std::function<Status()> &call) {
  gpucheck::Timing t;
  t.warmup = 1, t.reps = 5;
  const double ms = ATP_CHECK_OK(gpucheck::median_device_ms(
      stream, [&](int) { ATP_CHECK_OK(call()); }, t));
  if (flops > 0)
    std::printf("%-34s %10.3f ms %9.2f TFLOP/s\n", name, ms, flops / (ms * 1e-3) / 1e12);
  else
    std::printf("%-34s %10.3f ms %9.1f GB/s\n", name, ms, bytes / (ms * 1e-3) / 1e9);
  std::fflush(stdout);
}

} // namespace

int main() {
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::unique_ptr<Kernels> kernels = ATP_CHECK_OK(make_cuda_kernels(DType::F32, stream));
  Kernels &K = *kernels;
  const i64 B = 4, S = 2048, T = B * S, H = 2048, Hq = 32, Hkv = 8, D = 64, F = 8192, V = 128256, CE = 1024;
  const i64 QKV = (Hq + 2 * Hkv) * D; // 3072
  std::printf("kernels_cuda_bench: Llama-3.2-1B layer, T %lld rows (%lld x %lld), fp32\n", (long long)T, (long long)B,
              (long long)S);

  float *x = floats(T * H, 1), *x2 = floats(T * H, 2), *w_qkv = floats(QKV * H, 3), *qkv = floats(T * QKV, 4);
  float *w_up = floats(F * H, 5), *up = floats(T * F, 6), *gate = floats(T * F, 7), *m = floats(T * F, 8);
  float *dw = floats(F * H, 9), *dx = floats(T * F, 10), *dy = floats(T * H, 11), *norm_w = floats(H, 12);
  float *rstd = floats(T, 13), *out = floats(T * Hq * D, 14), *lse = floats(B * Hq * S, 15);
  float *dqkv = floats(T * QKV, 16), *table = floats(V * H, 17), *logits = floats(CE * V, 18);
  float *rope = floats(S * D, 19), *dnorm_w = floats(H, 20);
  std::int32_t *tok = ids(T, V), *targets = ids(CE, V);
  ATP_CUDA_CHECK(cudaStreamSynchronize(stream));

  const double f4 = 4.0;
  bench("linear_forward qkv 2048->3072", 2.0 * T * H * QKV, 0,
        [&] { return K.linear_forward(qkv, x, w_qkv, nullptr, T, H, QKV); });
  bench("linear_forward up 2048->8192", 2.0 * T * H * F, 0,
        [&] { return K.linear_forward(up, x, w_up, nullptr, T, H, F); });
  bench("linear_backward down dx+dw", 4.0 * T * H * F, 0,
        [&] { return K.linear_backward(dx, Write::Overwrite, dw, nullptr, dy, m, w_up, T, F, H); });
  bench("rmsnorm_forward", 0, f4 * (2.0 * T * H + H + T),
        [&] { return K.rmsnorm_forward(x2, rstd, x, norm_w, T, H, 1e-5); });
  bench("rmsnorm_backward dx+dw", 0, f4 * (4.0 * T * H + H + T),
        [&] { return K.rmsnorm_backward(x2, Write::Accumulate, dnorm_w, dy, x, norm_w, rstd, T, H); });
  bench("rope_table (host + copy)", 0, f4 * S * D, [&] { return K.rope_table(rope, RopeConfig{}, D, S); });
  RopeDims rd;
  rd.batch = B, rd.seq = S, rd.heads = Hq, rd.head_dim = D, rd.row_stride = QKV, rd.rotary_dim = D,
  rd.table_positions = S;
  bench("rope_forward q", 0, f4 * 2.0 * T * Hq * D, [&] { return K.rope_forward(qkv, rd, rope); });
  bench("swiglu_forward", 0, f4 * 3.0 * T * F, [&] { return K.swiglu_forward(m, gate, up, T, F, F); });
  bench("swiglu_backward", 0, f4 * 5.0 * T * F, [&] { return K.swiglu_backward(gate, up, m, gate, up, T, F, F); });
  bench("add residual", 0, f4 * 3.0 * T * H, [&] { return K.add(x2, x2, x, T * H); });
  AttentionDims ad;
  ad.batch = B, ad.seq = S, ad.q_heads = Hq, ad.kv_heads = Hkv, ad.head_dim = D;
  ad.q_stride = ad.k_stride = ad.v_stride = QKV, ad.scale = 0.125;
  const double attn = 2.0 * B * Hq * double(S) * S * D;
  bench("attention_forward (naive)", attn, 0,
        [&] { return K.attention_forward(out, lse, qkv, qkv + Hq * D, qkv + (Hq + Hkv) * D, ad); });
  bench("attention_backward (naive)", 2.5 * attn, 0, [&] {
    return K.attention_backward(dqkv, dqkv + Hq * D, dqkv + (Hq + Hkv) * D, out, qkv, qkv + Hq * D,
                                qkv + (Hq + Hkv) * D, out, lse, ad);
  });
  const VocabRange all{V, 0, V};
  bench("embedding_forward", 0, f4 * 2.0 * T * H, [&] { return K.embedding_forward(x2, table, tok, T, H, all); });
  bench("embedding_backward", 0, f4 * 3.0 * T * H, [&] { return K.embedding_backward(table, x2, tok, T, H, all); });
  CrossEntropyArgs ce;
  ce.rows = CE, ce.vocab = V, ce.denominator = CE;
  bench("cross_entropy 1024 x 128256", 0, f4 * 2.0 * CE * V,
        [&] { return K.cross_entropy(logits, targets, ce).status(); });

  for (void *p : {(void *)x,    (void *)x2,      (void *)w_qkv, (void *)qkv,    (void *)w_up,  (void *)up,
                  (void *)gate, (void *)m,       (void *)dw,    (void *)dx,     (void *)dy,    (void *)norm_w,
                  (void *)rstd, (void *)out,     (void *)lse,   (void *)dqkv,   (void *)table, (void *)logits,
                  (void *)rope, (void *)dnorm_w, (void *)tok,   (void *)targets})
    ATP_CUDA_CHECK(cudaFree(p));
  kernels.reset();
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}
