/* kernels_cuda_sdpa.cpp - cuDNN's fused flash-attention forward (kernels_cuda_sdpa.h), through the backend graph
   API: cudnn-frontend is not a Debian package, so the graph is built here, as cudnn-frontend's composite SDPA
   forward documents its nodes (a standalone probe measured it first, commit 68f6dc9: 0.19 ms against our flash
   forward's 0.36 on the 1B benchmark's attention, H200):
     S = Q K^T (K^T: K's descriptor with the last two dims and strides swapped), S * scale (by value), the causal
     mask (row and column GEN_INDEX, row >= column, BINARY_SELECT to -inf), the softmax with its statistics (MAX
     and ADD reductions, stats = max + log(sum) out as our lse), P = exp / sum in bf16, O = P V.
   Engines take the graph only with a bf16 P and the stats output. Q, K, V are strided views of the decoder's
   rows ([T, heads, D] with row strides q/k/v_stride), O is [T, Hq, D] dense and the stats [B, Hq, S]: our
   layouts, so the flash backward reads them as its own. cuDNN's forward is deterministic (no atomics).
   One handle per device and one plan per shape, built on first use and kept for the process (a trainer's
   shapes are constants of its plan); a shape no engine takes is remembered and left to the flash kernels. */
#include "kernels_cuda_sdpa.h"

#include "atp/check_cuda.h"

#include <cudnn.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace atp::kcuda::cudnn_sdpa {

namespace {

using i64 = std::int64_t;
using Desc = cudnnBackendDescriptor_t;
using Owned = std::shared_ptr<std::remove_pointer_t<Desc>>; // destroyed with its plan

enum Uid : i64 { kQ = 1, kK, kV, kO, kStats, kScale, kNegInf, kFirstVirtual = 100 };

std::string cudnn_message(cudnnStatus_t s) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  return std::string(cudnnGetErrorString(s)) + (detail[0] ? std::string(": ") + detail : "");
}

// The way out rides with every error: a cuDNN that cannot run here need not stop training.
#define SDPA_TRY(expr)                                                                                                 \
  do {                                                                                                                 \
    const cudnnStatus_t s_ = (expr);                                                                                   \
    if (s_ != CUDNN_STATUS_SUCCESS)                                                                                    \
      return error(std::string("cuDNN attention: ") + #expr + ": " + cudnn_message(s_) +                             \
                   " (ATP_ATTENTION=flash runs our own attention forward instead)");                                  \
  } while (0)

/// A graph's descriptors, kept alive together (the plan refers to the graph, the graph to its operations).
class Builder {
public:
  explicit Builder(cudnnHandle_t h) : handle_(h) {}

  Result<Desc> make(cudnnBackendDescriptorType_t type) {
    Desc d = nullptr;
    SDPA_TRY(cudnnBackendCreateDescriptor(type, &d));
    owned_.emplace_back(d, cudnnBackendDestroyDescriptor);
    return d;
  }
  Status set(Desc d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, i64 n, const void *values) {
    SDPA_TRY(cudnnBackendSetAttribute(d, name, type, n, values));
    return {};
  }
  Status finalize(Desc d) {
    SDPA_TRY(cudnnBackendFinalize(d));
    return {};
  }

  Result<Desc> tensor(i64 uid, cudnnDataType_t type, std::array<i64, 4> dims, std::array<i64, 4> strides,
                      bool is_virtual = false, bool by_value = false) {
    ATP_ASSIGN_OR_RETURN(Desc d, make(CUDNN_BACKEND_TENSOR_DESCRIPTOR));
    const i64 alignment = 16;
    ATP_TRY(set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    ATP_TRY(set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type));
    ATP_TRY(set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment));
    ATP_TRY(set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data()));
    ATP_TRY(set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data()));
    ATP_TRY(set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual));
    if (by_value)
      ATP_TRY(set(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value));
    ATP_TRY(finalize(d));
    return d;
  }

  Result<Desc> matmul(Desc a, Desc b, Desc c) {
    ATP_ASSIGN_OR_RETURN(Desc m, make(CUDNN_BACKEND_MATMUL_DESCRIPTOR));
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    ATP_TRY(set(m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32));
    ATP_TRY(finalize(m));
    ATP_ASSIGN_OR_RETURN(Desc op, make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m));
    ATP_TRY(finalize(op));
    return op;
  }

  /// y = mode(x[, b[, t]]); axis >= 0 for GEN_INDEX.
  Result<Desc> pointwise(cudnnPointwiseMode_t mode, Desc x, Desc b, Desc t, Desc y,
                         cudnnDataType_t precision = CUDNN_DATA_FLOAT, i64 axis = -1) {
    ATP_ASSIGN_OR_RETURN(Desc p, make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
    ATP_TRY(set(p, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode));
    ATP_TRY(set(p, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision));
    if (axis >= 0)
      ATP_TRY(set(p, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis));
    ATP_TRY(finalize(p));
    ATP_ASSIGN_OR_RETURN(Desc op, make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
    if (b)
      ATP_TRY(set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b));
    if (t)
      ATP_TRY(set(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
    ATP_TRY(finalize(op));
    return op;
  }

  Result<Desc> reduction(cudnnReduceTensorOp_t mode, Desc x, Desc y) {
    ATP_ASSIGN_OR_RETURN(Desc r, make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR));
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    ATP_TRY(set(r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode));
    ATP_TRY(set(r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32));
    ATP_TRY(finalize(r));
    ATP_ASSIGN_OR_RETURN(Desc op, make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
    ATP_TRY(set(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &r));
    ATP_TRY(finalize(op));
    return op;
  }

  cudnnHandle_t handle() const { return handle_; }
  std::vector<Owned> release() { return std::move(owned_); }

private:
  cudnnHandle_t handle_;
  std::vector<Owned> owned_;
};

struct Plan {
  std::vector<Owned> descriptors; // the graph's, the plan last
  Desc plan = nullptr;
  i64 workspace = 0;
};

/// The causal forward graph for these dims (no window), and the first plan heuristics mode A offers that
/// finalizes; null when no engine takes it.
Result<std::shared_ptr<Plan>> build(cudnnHandle_t handle, const AttentionDims &a) {
  const i64 B = a.batch, S = a.seq, Hq = a.q_heads, Hkv = a.kv_heads, D = a.head_dim;
  const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT, i32 = CUDNN_DATA_INT32,
                        boolean = CUDNN_DATA_BOOLEAN;
  Builder g(handle);
  ATP_ASSIGN_OR_RETURN(Desc q, g.tensor(kQ, bf16, {B, Hq, S, D}, {S * a.q_stride, D, a.q_stride, 1}));
  ATP_ASSIGN_OR_RETURN(Desc kt, g.tensor(kK, bf16, {B, Hkv, D, S}, {S * a.k_stride, D, 1, a.k_stride}));
  ATP_ASSIGN_OR_RETURN(Desc v, g.tensor(kV, bf16, {B, Hkv, S, D}, {S * a.v_stride, D, a.v_stride, 1}));
  ATP_ASSIGN_OR_RETURN(Desc o, g.tensor(kO, bf16, {B, Hq, S, D}, {S * Hq * D, D, Hq * D, 1}));
  ATP_ASSIGN_OR_RETURN(Desc stats, g.tensor(kStats, f32, {B, Hq, S, 1}, {Hq * S, S, 1, 1}));
  ATP_ASSIGN_OR_RETURN(Desc scale, g.tensor(kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true));
  ATP_ASSIGN_OR_RETURN(Desc neg_inf, g.tensor(kNegInf, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true));
  i64 uid = kFirstVirtual;
  auto scores = [&](cudnnDataType_t type) {
    return g.tensor(uid++, type, {B, Hq, S, S}, {Hq * S * S, S * S, S, 1}, true);
  };
  auto per_row = [&] { return g.tensor(uid++, f32, {B, Hq, S, 1}, {Hq * S, S, 1, 1}, true); };
  ATP_ASSIGN_OR_RETURN(Desc s1, scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc s2, scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc rows, scores(i32));
  ATP_ASSIGN_OR_RETURN(Desc cols, scores(i32));
  ATP_ASSIGN_OR_RETURN(Desc keep, scores(boolean));
  ATP_ASSIGN_OR_RETURN(Desc s3, scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc mx, per_row());
  ATP_ASSIGN_OR_RETURN(Desc shifted, scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc e, scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc sum, per_row());
  ATP_ASSIGN_OR_RETURN(Desc log_sum, per_row());
  ATP_ASSIGN_OR_RETURN(Desc p, scores(bf16)); // no engine takes an fp32 P
  std::vector<Desc> ops;
  auto add = [&](Result<Desc> op) -> Status {
    ATP_ASSIGN_OR_RETURN(Desc d, std::move(op));
    ops.push_back(d);
    return {};
  };
  ATP_TRY(add(g.matmul(q, kt, s1)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, s1, scale, nullptr, s2)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s2, nullptr, nullptr, rows, i32, 2)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s2, nullptr, nullptr, cols, i32, 3)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_CMP_GE, rows, cols, nullptr, keep, boolean)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, s2, neg_inf, keep, s3)));
  ATP_TRY(add(g.reduction(CUDNN_REDUCE_TENSOR_MAX, s3, mx)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_SUB, s3, mx, nullptr, shifted)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, nullptr, e)));
  ATP_TRY(add(g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, sum)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, nullptr, log_sum)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_ADD, mx, log_sum, nullptr, stats)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_DIV, e, sum, nullptr, p)));
  ATP_TRY(add(g.matmul(p, v, o)));
  ATP_ASSIGN_OR_RETURN(Desc graph, g.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  ATP_TRY(g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
  ATP_TRY(g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, i64(ops.size()), ops.data()));
  if (cudnnBackendFinalize(graph) != CUDNN_STATUS_SUCCESS)
    return std::shared_ptr<Plan>();
  ATP_ASSIGN_OR_RETURN(Desc heuristics, g.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR));
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  ATP_TRY(g.set(heuristics, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph));
  ATP_TRY(g.set(heuristics, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
  ATP_TRY(g.finalize(heuristics));
  i64 offered = 0, got = 0;
  SDPA_TRY(cudnnBackendGetAttribute(heuristics, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                    &offered, nullptr));
  std::vector<Desc> configs;
  for (i64 i = 0; i < offered; ++i) {
    ATP_ASSIGN_OR_RETURN(Desc c, g.make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    configs.push_back(c);
  }
  SDPA_TRY(cudnnBackendGetAttribute(heuristics, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, offered,
                                    &got, configs.data()));
  for (i64 i = 0; i < got; ++i) {
    ATP_ASSIGN_OR_RETURN(Desc plan, g.make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR));
    ATP_TRY(g.set(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
    ATP_TRY(g.set(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &configs[std::size_t(i)]));
    if (cudnnBackendFinalize(plan) != CUDNN_STATUS_SUCCESS)
      continue;
    auto out = std::make_shared<Plan>();
    SDPA_TRY(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, nullptr,
                                      &out->workspace));
    out->plan = plan;
    out->descriptors = g.release();
    return out;
  }
  return std::shared_ptr<Plan>();
}

using Key = std::array<i64, 9>;

struct Cache {
  std::mutex mutex;
  std::map<int, cudnnHandle_t> handles;              // by device; kept for the process
  std::map<Key, std::shared_ptr<Plan>> plans;        // null: no engine takes the shape
};

Cache &cache() {
  static Cache *c = new Cache(); // never destroyed: cuDNN may be unloaded before static destructors run
  return *c;
}

bool wanted() {
  const char *v = std::getenv("ATP_ATTENTION");
  return !(v && std::strcmp(v, "flash") == 0);
}

bool aligned(const void *p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

} // namespace

Result<bool> forward(cudaStream_t st, void *out, float *lse, const void *q, const void *k, const void *v,
                     const AttentionDims &a) {
  if (!wanted() || a.sliding_window > 0 || a.head_dim % 8 != 0 || a.head_dim > 128 || !(a.scale > 0) ||
      a.q_stride % 8 != 0 || a.k_stride % 8 != 0 || a.v_stride % 8 != 0 || a.q_heads % a.kv_heads != 0 ||
      !aligned(out) || !aligned(lse) || !aligned(q) || !aligned(k) || !aligned(v))
    return false;
  int device = 0;
  ATP_CUDA_TRY(cudaGetDevice(&device));
  const Key key{device, a.batch, a.seq, a.q_heads, a.kv_heads, a.head_dim, a.q_stride, a.k_stride, a.v_stride};
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  cudnnHandle_t &handle = c.handles[device];
  if (!handle)
    SDPA_TRY(cudnnCreate(&handle));
  auto found = c.plans.find(key);
  if (found == c.plans.end()) {
    ATP_ASSIGN_OR_RETURN(std::shared_ptr<Plan> plan, build(handle, a));
    if (!plan)
      std::fprintf(stderr, "attention: cuDNN has no plan for batch %lld x seq %lld, %lld/%lld heads of %lld; the flash "
                           "kernels take it\n",
                   (long long)a.batch, (long long)a.seq, (long long)a.q_heads, (long long)a.kv_heads,
                   (long long)a.head_dim);
    found = c.plans.emplace(key, std::move(plan)).first;
  }
  const Plan *plan = found->second.get();
  if (!plan)
    return false;
  SDPA_TRY(cudnnSetStream(handle, st));
  void *workspace = nullptr;
  if (plan->workspace)
    ATP_CUDA_TRY(cudaMallocAsync(&workspace, std::size_t(plan->workspace), st));
  float scale = float(a.scale), neg_inf = -INFINITY; // by value: read when the call is made
  i64 uids[] = {kQ, kK, kV, kO, kStats, kScale, kNegInf};
  void *pointers[] = {const_cast<void *>(q), const_cast<void *>(k), const_cast<void *>(v), out, lse, &scale,
                      &neg_inf};
  Desc pack = nullptr;
  Status run = [&]() -> Status {
    SDPA_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    SDPA_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 7, uids));
    SDPA_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 7, pointers));
    SDPA_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace));
    SDPA_TRY(cudnnBackendFinalize(pack));
    SDPA_TRY(cudnnBackendExecute(handle, plan->plan, pack));
    return {};
  }();
  if (pack)
    cudnnBackendDestroyDescriptor(pack);
  const cudaError_t freed = workspace ? cudaFreeAsync(workspace, st) : cudaSuccess;
  ATP_TRY(std::move(run));
  ATP_CUDA_TRY(freed);
  return true;
}

} // namespace atp::kcuda::cudnn_sdpa
