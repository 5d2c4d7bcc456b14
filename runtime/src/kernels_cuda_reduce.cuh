/* kernels_cuda_reduce.cuh - deterministic block reductions for the CUDA kernels (kernels_cuda.h).

   A fixed tree over shared memory for a block of exactly kBlock threads: the bits depend on the values and
   on kBlock only, never on timing. The result is returned to every thread. Column sums over many rows (the
   weight gradients of RMSNorm and of a bias) go in two passes with no atomics: fixed chunks of kRowChunk
   rows, each (chunk, column) summed in row order by one thread, then the chunks in chunk order per column,
   in double, and rounded once into the output's element type (float or bf16). */
#pragma once

#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"

namespace atp::kcuda {

/// Sum of `v` over the block (every thread must call it; blockDim.x == kBlock).
template <class T> __device__ T block_sum(T v) {
  __shared__ T buf[kBlock];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half)
      buf[threadIdx.x] += buf[threadIdx.x + half];
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads(); // buf may be reused by the next call
  return r;
}

/// Maximum of `v` over the block (every thread must call it; blockDim.x == kBlock).
template <class T> __device__ T block_max(T v) {
  __shared__ T buf[kBlock];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half)
      buf[threadIdx.x] = buf[threadIdx.x] > buf[threadIdx.x + half] ? buf[threadIdx.x] : buf[threadIdx.x + half];
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads();
  return r;
}

/// Rows per chunk of the column sums (a constant: the bits must not depend on the device).
constexpr i64 kRowChunk = 128;

/// partial[c * cols + j] = the sum over rows t of chunk c, in row order, of term(t, j), in double.
template <class Term> __global__ void column_partials(double *partial, i64 rows, i64 cols, Term term) {
  const i64 chunks = (rows + kRowChunk - 1) / kRowChunk;
  for (i64 n = blockIdx.x * i64(blockDim.x) + threadIdx.x; n < chunks * cols; n += i64(gridDim.x) * blockDim.x) {
    const i64 c = n / cols, j = n % cols, end = (c + 1) * kRowChunk < rows ? (c + 1) * kRowChunk : rows;
    double s = 0.0;
    for (i64 t = c * kRowChunk; t < end; ++t)
      s += term(t, j);
    partial[n] = s;
  }
}

/// out[j] (=|+=) the chunks' partial sums of column j, added in chunk order (in double, rounded once).
template <class T> __global__ void column_finish(T *out, bool accumulate, const double *partial, i64 chunks, i64 cols) {
  for (i64 j = blockIdx.x * i64(blockDim.x) + threadIdx.x; j < cols; j += i64(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (i64 c = 0; c < chunks; ++c)
      s += partial[c * cols + j];
    out[j] = round_to<T>(accumulate ? double(to_f32(out[j])) + s : s);
  }
}

/// out[j] (=|+=) the sum over rows t < rows of term(t, j) (a __device__ functor returning double), by mode;
/// deterministic.
template <class T, class Term> Status column_sums(cudaStream_t st, T *out, Write mode, i64 rows, i64 cols, Term term) {
  const i64 chunks = (rows + kRowChunk - 1) / kRowChunk;
  double *partial = nullptr;
  ATP_CUDA_TRY(cudaMallocAsync(&partial, std::size_t(chunks * cols) * sizeof(double), st));
  column_partials<<<blocks_for(chunks * cols), kBlock, 0, st>>>(partial, rows, cols, term);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    column_finish<<<blocks_for(cols), kBlock, 0, st>>>(out, mode == Write::Accumulate, partial, chunks, cols);
    e = cudaGetLastError();
  }
  const cudaError_t freed = cudaFreeAsync(partial, st);
  ATP_CUDA_TRY(e);
  ATP_CUDA_TRY(freed);
  return {};
}

} // namespace atp::kcuda
