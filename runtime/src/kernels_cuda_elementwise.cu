/* kernels_cuda_elementwise.cu - the rotary table and rotation, SwiGLU, the residual add and scale, on the GPU.

   One thread per output element (grid-stride loops), nothing summed, so every run gives the same bits. The
   rotary table is computed on the host exactly as the CPU backend computes it (rope_inv_freq; frequency and
   angle rounded to float before cos/sin, as HF's fp32) and copied over, so both backends hold the same
   table; that copy waits for the stream (a start-up call). The rotation pairs element i with i + h of the
   first rotary_dim elements of each head (HF's rotate_half); backward applies the transpose. SwiGLU, with
   s = sigmoid(g): out = g * s * u; dg = dout * u * s * (1 + g * (1 - s)), du = dout * g * s (both inputs
   read before the gradients are written, which may overwrite them). */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"

#include <cmath>
#include <vector>

namespace atp::kcuda {

namespace {

#define ATP_GRID_STRIDE(i, n)                                                                                          \
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < (n); i += i64(gridDim.x) * blockDim.x)

__global__ void rope_kernel(float *x, i64 batch, i64 seq, i64 heads, i64 head_dim, i64 row_stride, i64 rotary_dim,
                            const float *table, bool transpose) {
  const i64 half = rotary_dim / 2;
  ATP_GRID_STRIDE(n, batch * seq * heads * half) {
    const i64 i = n % half, h = (n / half) % heads, t = n / (half * heads), s = t % seq;
    const float c = table[s * rotary_dim + i], sn = table[s * rotary_dim + half + i];
    const float si = transpose ? -sn : sn;
    float *e = x + t * row_stride + h * head_dim;
    const float x1 = e[i], x2 = e[i + half];
    e[i] = x1 * c - x2 * si;
    e[i + half] = x2 * c + x1 * si;
  }
}

__device__ float sigmoidf(float g) { return 1.0f / (1.0f + expf(-g)); }

__global__ void swiglu_forward_kernel(float *out, const float *gate, const float *up, i64 rows, i64 ffn,
                                      i64 in_stride) {
  ATP_GRID_STRIDE(n, rows * ffn) {
    const i64 t = n / ffn, j = n % ffn;
    const float g = gate[t * in_stride + j];
    out[n] = g * sigmoidf(g) * up[t * in_stride + j];
  }
}

__global__ void swiglu_backward_kernel(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                       i64 rows, i64 ffn, i64 in_stride) {
  ATP_GRID_STRIDE(n, rows * ffn) {
    const i64 t = n / ffn, j = n % ffn, at = t * in_stride + j;
    const float g = gate[at], u = up[at], s = sigmoidf(g), d = dout[n];
    dup[at] = d * (g * s);
    dgate[at] = d * u * s * (1.0f + g * (1.0f - s));
  }
}

__global__ void add_kernel(float *out, const float *a, const float *b, i64 n) {
  ATP_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float *x, float alpha, i64 n) { ATP_GRID_STRIDE(i, n) x[i] *= alpha; }

#undef ATP_GRID_STRIDE

} // namespace

Status rope_table(cudaStream_t st, float *table, const RopeConfig &cfg, i64 head_dim, i64 positions) {
  ATP_ASSIGN_OR_RETURN(const std::vector<double> inv, rope_inv_freq(cfg, head_dim));
  const i64 half = static_cast<i64>(inv.size());
  std::vector<float> host(static_cast<std::size_t>(positions * 2 * half));
  for (i64 p = 0; p < positions; ++p) {
    float *row = host.data() + p * 2 * half;
    for (i64 i = 0; i < half; ++i) {
      const float angle = float(p) * float(inv[static_cast<std::size_t>(i)]); // as the CPU backend's
      row[i] = float(std::cos(double(angle)));
      row[half + i] = float(std::sin(double(angle)));
    }
  }
  ATP_CUDA_TRY(cudaMemcpyAsync(table, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice, st));
  ATP_CUDA_TRY(cudaStreamSynchronize(st)); // `host` dies on return
  return {};
}

Status rope_apply(cudaStream_t st, float *x, const RopeDims &d, const float *table, bool transpose) {
  rope_kernel<<<blocks_for(d.batch * d.seq * d.heads * (d.rotary_dim / 2)), kBlock, 0, st>>>(
      x, d.batch, d.seq, d.heads, d.head_dim, d.row_stride, d.rotary_dim, table, transpose);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

Status swiglu_forward(cudaStream_t st, float *out, const float *gate, const float *up, i64 rows, i64 ffn,
                      i64 in_stride) {
  swiglu_forward_kernel<<<blocks_for(rows * ffn), kBlock, 0, st>>>(out, gate, up, rows, ffn, in_stride);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

Status swiglu_backward(cudaStream_t st, float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                       i64 rows, i64 ffn, i64 in_stride) {
  swiglu_backward_kernel<<<blocks_for(rows * ffn), kBlock, 0, st>>>(dgate, dup, dout, gate, up, rows, ffn, in_stride);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

Status add(cudaStream_t st, float *out, const float *a, const float *b, i64 n) {
  add_kernel<<<blocks_for(n), kBlock, 0, st>>>(out, a, b, n);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

Status scale(cudaStream_t st, float *x, double alpha, i64 n) {
  scale_kernel<<<blocks_for(n), kBlock, 0, st>>>(x, float(alpha), n);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

} // namespace atp::kcuda
