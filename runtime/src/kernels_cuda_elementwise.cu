/* kernels_cuda_elementwise.cu - the rotary table and rotation, SwiGLU, the residual add and scale, on the GPU.

   One thread per output element (grid-stride loops), nothing summed, so every run gives the same bits. The
   rotary table is computed on the host exactly as the CPU backend computes it (rope_inv_freq; frequency and
   angle rounded to float before cos/sin, as HF's fp32) and copied over, so both backends hold the same
   table; that copy waits for the stream (a start-up call). The rotation pairs element i with i + h of the
   first rotary_dim elements of each head (HF's rotate_half); backward applies the transpose. SwiGLU, with
   s = sigmoid(g): out = g * s * u; dg = dout * u * s * (1 + g * (1 - s)), du = dout * g * s (both inputs
   read before the gradients are written, which may overwrite them). BF16: the same float arithmetic on
   widened elements, each output rounded once to bf16; the rotary table is the float table rounded to bf16
   (as HF casts its fp32 cos/sin to the activations' dtype). The rotation, SwiGLU and the add move 16 bytes per load
   and store (8 bf16 or 4 floats per thread) when every row and pointer allows it, else one element: the same
   arithmetic per element either way, so the same bits. */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

namespace atp::kcuda {

namespace {

#define ATP_GRID_STRIDE(i, n)                                                                                          \
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < (n); i += i64(gridDim.x) * blockDim.x)

template <class T>
__global__ void rope_kernel(T *x, i64 batch, i64 seq, i64 heads, i64 head_dim, i64 row_stride, i64 rotary_dim,
                            const T *table, bool transpose) {
  const i64 half = rotary_dim / 2;
  ATP_GRID_STRIDE(n, batch * seq * heads * half) {
    const i64 i = n % half, h = (n / half) % heads, t = n / (half * heads), s = t % seq;
    const float c = to_f32(table[s * rotary_dim + i]), sn = to_f32(table[s * rotary_dim + half + i]);
    const float si = transpose ? -sn : sn;
    T *e = x + t * row_stride + h * head_dim;
    const float x1 = to_f32(e[i]), x2 = to_f32(e[i + half]);
    e[i] = round_to<T>(x1 * c - x2 * si);
    e[i + half] = round_to<T>(x2 * c + x1 * si);
  }
}

__device__ float sigmoidf(float g) { return 1.0f / (1.0f + expf(-g)); }

template <class T>
__global__ void swiglu_forward_kernel(T *out, const T *gate, const T *up, i64 rows, i64 ffn, i64 in_stride) {
  ATP_GRID_STRIDE(n, rows * ffn) {
    const i64 t = n / ffn, j = n % ffn;
    const float g = to_f32(gate[t * in_stride + j]);
    out[n] = round_to<T>(g * sigmoidf(g) * to_f32(up[t * in_stride + j]));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(T *dgate, T *dup, const T *dout, const T *gate, const T *up, i64 rows, i64 ffn,
                                       i64 in_stride) {
  ATP_GRID_STRIDE(n, rows * ffn) {
    const i64 t = n / ffn, j = n % ffn, at = t * in_stride + j;
    const float g = to_f32(gate[at]), u = to_f32(up[at]), s = sigmoidf(g), d = to_f32(dout[n]);
    dup[at] = round_to<T>(d * (g * s));
    dgate[at] = round_to<T>(d * u * s * (1.0f + g * (1.0f - s)));
  }
}

template <class T> __global__ void add_kernel(T *out, const T *a, const T *b, i64 n) {
  ATP_GRID_STRIDE(i, n) out[i] = round_to<T>(to_f32(a[i]) + to_f32(b[i]));
}

template <class T> __global__ void scale_kernel(T *x, float alpha, i64 n) {
  ATP_GRID_STRIDE(i, n) x[i] = round_to<T>(to_f32(x[i]) * alpha);
}

/// The vectorized kernels over `vecs` 16-byte units; a row of `cols` elements is cols / kN units.
template <class T> __global__ void add_vec_kernel(T *out, const T *a, const T *b, i64 vecs) {
  constexpr int kN = Vec<T>::kN;
  ATP_GRID_STRIDE(i, vecs) {
    const Vec<T> x = load16(a + i * kN), y = load16(b + i * kN);
    Vec<T> r;
#pragma unroll
    for (int e = 0; e < kN; ++e)
      r.v[e] = round_to<T>(to_f32(x.v[e]) + to_f32(y.v[e]));
    store16(out + i * kN, r);
  }
}

/// The vectorized SwiGLU kernels walk a 2-D grid, y over rows and x over a row's 16-byte units, so no thread
/// divides a flat index by the row length (a 64-bit division per unit); rows past gridDim.y loop.
#define ATP_ROW_UNITS(t, u, rows, row_vecs)                                                                            \
  for (i64 t = blockIdx.y; t < (rows); t += gridDim.y)                                                                 \
    for (i64 u = blockIdx.x * i64(blockDim.x) + threadIdx.x; u < (row_vecs); u += i64(gridDim.x) * blockDim.x)

template <class T>
__global__ void swiglu_forward_vec_kernel(T *out, const T *gate, const T *up, i64 rows, i64 row_vecs, i64 in_stride) {
  constexpr int kN = Vec<T>::kN;
  ATP_ROW_UNITS(t, u, rows, row_vecs) {
    const i64 at = t * in_stride + u * kN;
    const Vec<T> g = load16(gate + at), v = load16(up + at);
    Vec<T> r;
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const float ge = to_f32(g.v[e]);
      r.v[e] = round_to<T>(ge * sigmoidf(ge) * to_f32(v.v[e]));
    }
    store16(out + (t * row_vecs + u) * kN, r);
  }
}

template <class T>
__global__ void swiglu_backward_vec_kernel(T *dgate, T *dup, const T *dout, const T *gate, const T *up, i64 rows,
                                           i64 row_vecs, i64 in_stride) {
  constexpr int kN = Vec<T>::kN;
  ATP_ROW_UNITS(t, u, rows, row_vecs) {
    const i64 at = t * in_stride + u * kN;
    const Vec<T> g = load16(gate + at), v = load16(up + at), d = load16(dout + (t * row_vecs + u) * kN);
    Vec<T> rg, ru;
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const float ge = to_f32(g.v[e]), ue = to_f32(v.v[e]), se = sigmoidf(ge), de = to_f32(d.v[e]);
      ru.v[e] = round_to<T>(de * (ge * se));
      rg.v[e] = round_to<T>(de * ue * se * (1.0f + ge * (1.0f - se)));
    }
    store16(dup + at, ru);
    store16(dgate + at, rg);
  }
}

#undef ATP_ROW_UNITS

/// The rotation with 16-byte loads: each thread rotates kN consecutive pairs (i, i + half) of one head.
template <class T>
__global__ void rope_vec_kernel(T *x, i64 batch, i64 seq, i64 heads, i64 head_dim, i64 row_stride, i64 rotary_dim,
                                const T *table, bool transpose) {
  constexpr int kN = Vec<T>::kN;
  const i64 half = rotary_dim / 2, groups = half / kN;
  ATP_GRID_STRIDE(n, batch * seq * heads * groups) {
    const i64 i = (n % groups) * kN, h = (n / groups) % heads, t = n / (groups * heads), s = t % seq;
    const Vec<T> c = load16(table + s * rotary_dim + i), sn = load16(table + s * rotary_dim + half + i);
    T *e = x + t * row_stride + h * head_dim;
    const Vec<T> a = load16(e + i), b = load16(e + i + half);
    Vec<T> ra, rb;
#pragma unroll
    for (int k = 0; k < kN; ++k) {
      const float ck = to_f32(c.v[k]), sk = transpose ? -to_f32(sn.v[k]) : to_f32(sn.v[k]);
      const float x1 = to_f32(a.v[k]), x2 = to_f32(b.v[k]);
      ra.v[k] = round_to<T>(x1 * ck - x2 * sk);
      rb.v[k] = round_to<T>(x2 * ck + x1 * sk);
    }
    store16(e + i, ra);
    store16(e + i + half, rb);
  }
}


#undef ATP_GRID_STRIDE

} // namespace

template <class T> Status rope_table(cudaStream_t st, T *table, const RopeConfig &cfg, i64 head_dim, i64 positions) {
  ATP_ASSIGN_OR_RETURN(const std::vector<double> inv, rope_inv_freq(cfg, head_dim));
  const i64 half = static_cast<i64>(inv.size());
  std::vector<T> host(static_cast<std::size_t>(positions * 2 * half));
  for (i64 p = 0; p < positions; ++p) {
    T *row = host.data() + p * 2 * half;
    for (i64 i = 0; i < half; ++i) {
      const float angle = float(p) * float(inv[static_cast<std::size_t>(i)]); // as the CPU backend's
      const float c = float(std::cos(double(angle))), s = float(std::sin(double(angle)));
      if constexpr (std::is_same_v<T, float>)
        row[i] = c, row[half + i] = s;
      else // HF: fp32 cos/sin, then cast to the activations' dtype
        row[i] = __float2bfloat16_rn(c), row[half + i] = __float2bfloat16_rn(s);
    }
  }
  ATP_CUDA_TRY(cudaMemcpyAsync(table, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, st));
  ATP_CUDA_TRY(cudaStreamSynchronize(st)); // `host` dies on return
  return {};
}

template <class T> Status rope_apply(cudaStream_t st, T *x, const RopeDims &d, const T *table, bool transpose) {
  if (vectorizable<T>({x, table}, {d.rotary_dim / 2, d.head_dim, d.row_stride})) {
    const i64 groups = d.rotary_dim / 2 / Vec<T>::kN;
    rope_vec_kernel<<<blocks_for(d.batch * d.seq * d.heads * groups), kBlock, 0, st>>>(
        x, d.batch, d.seq, d.heads, d.head_dim, d.row_stride, d.rotary_dim, table, transpose);
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }
  rope_kernel<<<blocks_for(d.batch * d.seq * d.heads * (d.rotary_dim / 2)), kBlock, 0, st>>>(
      x, d.batch, d.seq, d.heads, d.head_dim, d.row_stride, d.rotary_dim, table, transpose);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

/// The 2-D grid of ATP_ROW_UNITS: enough x blocks for a row's units, one y block a row (65535 at most).
static dim3 row_units_grid(i64 rows, i64 row_vecs) {
  return dim3(blocks_for(row_vecs), unsigned(rows < 65535 ? (rows < 1 ? 1 : rows) : 65535));
}

template <class T>
Status swiglu_forward(cudaStream_t st, T *out, const T *gate, const T *up, i64 rows, i64 ffn, i64 in_stride) {
  if (vectorizable<T>({out, gate, up}, {ffn, in_stride})) {
    const i64 row_vecs = ffn / Vec<T>::kN;
    swiglu_forward_vec_kernel<<<row_units_grid(rows, row_vecs), kBlock, 0, st>>>(out, gate, up, rows, row_vecs,
                                                                                 in_stride);
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }
  swiglu_forward_kernel<<<blocks_for(rows * ffn), kBlock, 0, st>>>(out, gate, up, rows, ffn, in_stride);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T>
Status swiglu_backward(cudaStream_t st, T *dgate, T *dup, const T *dout, const T *gate, const T *up, i64 rows, i64 ffn,
                       i64 in_stride) {
  if (vectorizable<T>({dgate, dup, dout, gate, up}, {ffn, in_stride})) {
    const i64 row_vecs = ffn / Vec<T>::kN;
    swiglu_backward_vec_kernel<<<row_units_grid(rows, row_vecs), kBlock, 0, st>>>(dgate, dup, dout, gate, up, rows,
                                                                                  row_vecs, in_stride);
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }
  swiglu_backward_kernel<<<blocks_for(rows * ffn), kBlock, 0, st>>>(dgate, dup, dout, gate, up, rows, ffn, in_stride);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T> Status add(cudaStream_t st, T *out, const T *a, const T *b, i64 n) {
  if (vectorizable<T>({out, a, b}, {n})) {
    add_vec_kernel<<<blocks_for(n / Vec<T>::kN), kBlock, 0, st>>>(out, a, b, n / Vec<T>::kN);
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }
  add_kernel<<<blocks_for(n), kBlock, 0, st>>>(out, a, b, n);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T> Status scale(cudaStream_t st, T *x, double alpha, i64 n) {
  scale_kernel<<<blocks_for(n), kBlock, 0, st>>>(x, float(alpha), n);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template Status rope_table<T>(cudaStream_t, T *, const RopeConfig &, i64, i64);                                      \
  template Status rope_apply<T>(cudaStream_t, T *, const RopeDims &, const T *, bool);                                 \
  template Status swiglu_forward<T>(cudaStream_t, T *, const T *, const T *, i64, i64, i64);                           \
  template Status swiglu_backward<T>(cudaStream_t, T *, T *, const T *, const T *, const T *, i64, i64, i64);          \
  template Status add<T>(cudaStream_t, T *, const T *, const T *, i64);                                                \
  template Status scale<T>(cudaStream_t, T *, double, i64);
ATP_KCUDA_FOR_EACH_ELEMENT(ATP_INSTANTIATE)
#undef ATP_INSTANTIATE

} // namespace atp::kcuda
