/* kernels_cuda_embedding.cu - the token embedding lookup and its deterministic scatter-add, on the GPU.

   Every id is checked against the full vocabulary first (first_bad_index: one small kernel, then a stream
   synchronize to read the answer), so a corrupt token gives the CPU backend's error naming its row and
   nothing is written. Backward has no atomics: one block per token row t, and only the block of an id's
   FIRST row works; it walks every later row in row order and adds the rows of the same id into a register
   per column, then adds that to the table once. So each table element has one writer that sums in row order,
   in float as the CPU does: the same bits as the CPU backend, on every run (BF16: the same float sum from the
   widened table element, rounded once to bf16). Cost: a scan over the ids per
   row (O(rows^2) int compares, from cache), fine for a first version; a sort by id would make it linear. */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"
#include "kernels_cuda_reduce.cuh"

#include <string>

namespace atp::kcuda {

namespace {

Status check_ids(const char *call, const std::int32_t *ids, i64 rows, const VocabRange &r, cudaStream_t st) {
  std::int32_t bad = 0;
  ATP_ASSIGN_OR_RETURN(const i64 row, first_bad_index(ids, rows, 0, r.vocab_size, false, 0, &bad, st));
  if (row < 0)
    return {};
  return error(std::string(call) + ": token id " + std::to_string(bad) + " at row " + std::to_string(row) +
               " is outside the vocabulary [0, " + std::to_string(r.vocab_size) + ")");
}

template <class T>
__global__ void embedding_forward_kernel(T *out, const T *table, const std::int32_t *ids, i64 rows, i64 hidden,
                                         i64 begin, i64 end) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < rows * hidden; i += i64(gridDim.x) * blockDim.x) {
    const i64 t = i / hidden, j = i % hidden, id = ids[t];
    out[i] = id >= begin && id < end ? table[(id - begin) * hidden + j] : round_to<T>(0.0f);
  }
}

/// One block per row (grid-stride over rows); blockDim.x == kBlock.
template <class T>
__global__ void embedding_backward_kernel(T *dtable, const T *dout, const std::int32_t *ids, i64 rows, i64 hidden,
                                          i64 begin, i64 end) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const std::int32_t id = ids[t];
    if (id < begin || id >= end)
      continue; // uniform across the block: every thread reads the same id
    int earlier = 0;
    for (i64 u = threadIdx.x; u < t; u += blockDim.x)
      earlier |= ids[u] == id;
    if (block_sum(earlier) != 0)
      continue; // an earlier row of this id owns it
    T *dst = dtable + (id - begin) * hidden;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x) {
      float acc = to_f32(dst[j]);
      for (i64 u = t; u < rows; ++u)
        if (ids[u] == id)
          acc += to_f32(dout[u * hidden + j]);
      dst[j] = round_to<T>(acc);
    }
  }
}

} // namespace

template <class T>
Status embedding_forward(cudaStream_t st, T *out, const T *table, const std::int32_t *ids, i64 rows, i64 hidden,
                         const VocabRange &r) {
  ATP_TRY(check_ids("embedding_forward", ids, rows, r, st));
  embedding_forward_kernel<<<blocks_for(rows * hidden), kBlock, 0, st>>>(out, table, ids, rows, hidden, r.begin, r.end);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T>
Status embedding_backward(cudaStream_t st, T *dtable, const T *dout, const std::int32_t *ids, i64 rows, i64 hidden,
                          const VocabRange &r) {
  ATP_TRY(check_ids("embedding_backward", ids, rows, r, st));
  const unsigned grid = unsigned(rows < 65535 * 4 ? rows : 65535 * 4);
  embedding_backward_kernel<<<grid, kBlock, 0, st>>>(dtable, dout, ids, rows, hidden, r.begin, r.end);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template Status embedding_forward<T>(cudaStream_t, T *, const T *, const std::int32_t *, i64, i64,                   \
                                       const VocabRange &);                                                            \
  template Status embedding_backward<T>(cudaStream_t, T *, const T *, const std::int32_t *, i64, i64,                  \
                                        const VocabRange &);
ATP_KCUDA_FOR_EACH_ELEMENT(ATP_INSTANTIATE)
#undef ATP_INSTANTIATE

} // namespace atp::kcuda
