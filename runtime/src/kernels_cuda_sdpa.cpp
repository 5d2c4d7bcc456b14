/* kernels_cuda_sdpa.cpp - cuDNN's fused flash attention, forward and backward (kernels_cuda_sdpa.h), through the
   backend graph API: cudnn-frontend is not a Debian package, so the graphs are built here, node for node as
   cudnn-frontend's composite SDPA forward and backward expand (read as facts; the frontend's graphs are the ones
   cuDNN's fused engines are written to match).
   Forward (a standalone probe measured it first, commit 68f6dc9: 0.19 ms against our flash forward's 0.36 on the
   1B benchmark's attention, H200):
     S = Q K^T (K^T: K's descriptor with the last two dims and strides swapped), S * scale (by value), the causal
     mask (row and column GEN_INDEX, row >= column, BINARY_SELECT to -inf), the softmax with its statistics (MAX
     and ADD reductions, stats = max + log(sum) out as our lse), P = exp / sum in bf16, O = P V.
   Engines take it only with a bf16 P and the stats output.
   Backward, with the saved stats (our lse, whichever forward wrote it):
     softmax_sum = rowsum(dO * O) * 1 (fp32, ours to allocate: the frontend makes it non-virtual),
     P = exp(mask(scale Q K^T) - stats), dV = (P^T in bf16) dO,
     dS = scale P (dO V^T * 1 - softmax_sum), dK = (dS^T in bf16) Q, dQ = dS K (K: K^T reshaped back).
   Grouped-query attention: dV and dK come out per query head (virtual bf16 [B, Hq, S, D]) and an ADD reduction
   folds each kv head's group. dQ is written by the product itself, not accumulated through an fp32 buffer with
   atomics: that is the frontend's "deterministic" graph on Hopper (its dP-workspace kernel), and cuDNN then asks
   for 2 bytes of workspace per score; the run goes batch by batch when a whole batch would take more than
   1/32 of the device's memory (ATP_CUDNN_WORKSPACE_LIMIT, bytes, sets another limit). Engines cuDNN notes as
   nondeterministic are never used, forward or backward.
   Q, K, V (and dQ, dK, dV) are strided views of the decoder's rows ([T, heads, D] with row strides q/k/v_stride),
   O and dO are [T, Hq, D] dense and the stats [B, Hq, S]: our layouts, so either forward feeds either backward.
   One handle per device and one plan per shape and direction, built on first use and kept for the process (a
   trainer's shapes are constants of its plan); a shape no engine takes is remembered, named once on stderr with
   cuDNN's reason, and left to our flash kernels. */
#include "kernels_cuda_sdpa.h"

#include "atp/check_cuda.h"

#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace atp::kcuda::cudnn_sdpa {

namespace {

using i64 = std::int64_t;
using Desc = cudnnBackendDescriptor_t;
using Owned = std::shared_ptr<std::remove_pointer_t<Desc>>; // destroyed with its plan

enum Uid : i64 {
  kQ = 1,
  kK,
  kV,
  kO,
  kStats,
  kScale,
  kNegInf,
  kDO,
  kDQ,
  kDK,
  kDV,
  kSoftmaxSum,
  kOne,
  kFirstVirtual = 100
};

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
      return error(std::string("cuDNN attention: ") + #expr + ": " + cudnn_message(s_) +                               \
                   " (ATP_ATTENTION=flash runs our own attention kernels instead)");                                   \
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

  /// A finalized operation of `type` whose descriptor-valued attributes are `links`, set in order (null ones
  /// left unset).
  Result<Desc> operation(cudnnBackendDescriptorType_t type,
                         std::initializer_list<std::pair<cudnnBackendAttributeName_t, Desc>> links) {
    ATP_ASSIGN_OR_RETURN(Desc op, make(type));
    for (auto [name, d] : links)
      if (d)
        ATP_TRY(set(op, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d));
    ATP_TRY(finalize(op));
    return op;
  }

  Result<Desc> matmul(Desc a, Desc b, Desc c) {
    ATP_ASSIGN_OR_RETURN(Desc m, make(CUDNN_BACKEND_MATMUL_DESCRIPTOR));
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    ATP_TRY(set(m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32));
    ATP_TRY(finalize(m));
    return operation(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, {{CUDNN_ATTR_OPERATION_MATMUL_ADESC, a},
                                                                 {CUDNN_ATTR_OPERATION_MATMUL_BDESC, b},
                                                                 {CUDNN_ATTR_OPERATION_MATMUL_CDESC, c},
                                                                 {CUDNN_ATTR_OPERATION_MATMUL_DESC, m}});
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
    return operation(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, {{CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, p},
                                                                    {CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x},
                                                                    {CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b},
                                                                    {CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t},
                                                                    {CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y}});
  }

  Result<Desc> reduction(cudnnReduceTensorOp_t mode, Desc x, Desc y) {
    ATP_ASSIGN_OR_RETURN(Desc r, make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR));
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    ATP_TRY(set(r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode));
    ATP_TRY(set(r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32));
    ATP_TRY(finalize(r));
    return operation(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, {{CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x},
                                                                    {CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y},
                                                                    {CUDNN_ATTR_OPERATION_REDUCTION_DESC, r}});
  }

  Result<Desc> reshape(Desc x, Desc y) {
    return operation(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR,
                     {{CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x}, {CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y}});
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

using Built = std::pair<std::shared_ptr<Plan>, std::string>; // the plan, or null and cuDNN's reason

/// Whether cuDNN notes the config's engine as nondeterministic; its reason when the notes cannot be read.
Result<bool> nondeterministic(Builder &g, Desc config) {
  ATP_ASSIGN_OR_RETURN(Desc engine, g.make(CUDNN_BACKEND_ENGINE_DESCRIPTOR));
  i64 got = 0;
  SDPA_TRY(
      cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &engine));
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  i64 count = 0;
  SDPA_TRY(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                    CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count, notes));
  return std::find(notes, notes + count, CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) != notes + count;
}

/// The graph of `ops`, and the first deterministic plan heuristics mode A offers that finalizes.
Result<Built> plan_graph(Builder &g, const std::vector<Desc> &ops) {
  cudnnHandle_t handle = g.handle();
  ATP_ASSIGN_OR_RETURN(Desc graph, g.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  ATP_TRY(g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
  ATP_TRY(g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, i64(ops.size()), ops.data()));
  if (const cudnnStatus_t s = cudnnBackendFinalize(graph); s != CUDNN_STATUS_SUCCESS)
    return Built{nullptr, "the graph: " + cudnn_message(s)};
  ATP_ASSIGN_OR_RETURN(Desc heuristics, g.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR));
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  ATP_TRY(g.set(heuristics, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph));
  ATP_TRY(g.set(heuristics, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
  if (const cudnnStatus_t s = cudnnBackendFinalize(heuristics); s != CUDNN_STATUS_SUCCESS)
    return Built{nullptr, "heuristics: " + cudnn_message(s)};
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
  std::string why = got ? "" : "heuristics offer no engine";
  for (i64 i = 0; i < got; ++i) {
    Desc config = configs[std::size_t(i)];
    const Result<bool> unsure = nondeterministic(g, config);
    if (!unsure.ok() || *unsure) { // an engine whose notes cannot be read is not taken either
      why = unsure.ok() ? "only nondeterministic engines" : unsure.status().message();
      continue;
    }
    ATP_ASSIGN_OR_RETURN(Desc plan, g.make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR));
    ATP_TRY(g.set(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
    ATP_TRY(g.set(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &config));
    if (const cudnnStatus_t s = cudnnBackendFinalize(plan); s != CUDNN_STATUS_SUCCESS) {
      why = "the plan: " + cudnn_message(s);
      continue;
    }
    auto out = std::make_shared<Plan>();
    SDPA_TRY(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, nullptr,
                                      &out->workspace));
    out->plan = plan;
    out->descriptors = g.release();
    return Built{out, ""};
  }
  return Built{nullptr, why};
}

constexpr cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT, i32 = CUDNN_DATA_INT32,
                          boolean = CUDNN_DATA_BOOLEAN;

/// The tensors both graphs share (K enters as K^T: [B, Hkv, D, S]), and makers for their virtual [B, Hq, S, S] scores
/// and [B, Hq, S, 1] rows.
struct Common {
  Builder &g;
  i64 B, S, Hq, Hkv, D;
  Desc q = nullptr, kt = nullptr, o = nullptr, stats = nullptr, scale = nullptr, neg_inf = nullptr;
  i64 uid = kFirstVirtual;

  Result<Desc> scores(cudnnDataType_t type) {
    return g.tensor(uid++, type, {B, Hq, S, S}, {Hq * S * S, S * S, S, 1}, true);
  }
  Result<Desc> per_row() { return g.tensor(uid++, f32, {B, Hq, S, 1}, {Hq * S, S, 1, 1}, true); }

  /// ops += the causal mask of `x`; returns the masked scores.
  Result<Desc> causal(std::vector<Desc> &ops, Desc x) {
    ATP_ASSIGN_OR_RETURN(Desc rows, scores(i32));
    ATP_ASSIGN_OR_RETURN(Desc cols, scores(i32));
    ATP_ASSIGN_OR_RETURN(Desc keep, scores(boolean));
    ATP_ASSIGN_OR_RETURN(Desc y, scores(f32));
    ATP_ASSIGN_OR_RETURN(Desc r, g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, nullptr, nullptr, rows, i32, 2));
    ATP_ASSIGN_OR_RETURN(Desc c, g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, nullptr, nullptr, cols, i32, 3));
    ATP_ASSIGN_OR_RETURN(Desc ge, g.pointwise(CUDNN_POINTWISE_CMP_GE, rows, cols, nullptr, keep, boolean));
    ATP_ASSIGN_OR_RETURN(Desc sel, g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, x, neg_inf, keep, y));
    ops.insert(ops.end(), {r, c, ge, sel});
    return y;
  }
};

Result<Common> common(Builder &g, const AttentionDims &a) {
  Common c{g, a.batch, a.seq, a.q_heads, a.kv_heads, a.head_dim};
  const i64 B = c.B, S = c.S, Hq = c.Hq, Hkv = c.Hkv, D = c.D;
  ATP_ASSIGN_OR_RETURN(c.q, g.tensor(kQ, bf16, {B, Hq, S, D}, {S * a.q_stride, D, a.q_stride, 1}));
  ATP_ASSIGN_OR_RETURN(c.kt, g.tensor(kK, bf16, {B, Hkv, D, S}, {S * a.k_stride, D, 1, a.k_stride}));
  ATP_ASSIGN_OR_RETURN(c.o, g.tensor(kO, bf16, {B, Hq, S, D}, {S * Hq * D, D, Hq * D, 1}));
  ATP_ASSIGN_OR_RETURN(c.stats, g.tensor(kStats, f32, {B, Hq, S, 1}, {Hq * S, S, 1, 1}));
  ATP_ASSIGN_OR_RETURN(c.scale, g.tensor(kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true));
  ATP_ASSIGN_OR_RETURN(c.neg_inf, g.tensor(kNegInf, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true));
  return c;
}

/// The causal forward graph (no window).
Result<Built> build_forward(cudnnHandle_t handle, const AttentionDims &a) {
  Builder g(handle);
  ATP_ASSIGN_OR_RETURN(Common c, common(g, a));
  // V enters P V untransposed: [B, Hkv, S, D]
  ATP_ASSIGN_OR_RETURN(Desc v, g.tensor(kV, bf16, {c.B, c.Hkv, c.S, c.D}, {c.S * a.v_stride, c.D, a.v_stride, 1}));
  std::vector<Desc> ops;
  auto add = [&](Result<Desc> op) -> Status {
    ATP_ASSIGN_OR_RETURN(Desc d, std::move(op));
    ops.push_back(d);
    return {};
  };
  ATP_ASSIGN_OR_RETURN(Desc s1, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc s2, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc mx, c.per_row());
  ATP_ASSIGN_OR_RETURN(Desc shifted, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc e, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc sum, c.per_row());
  ATP_ASSIGN_OR_RETURN(Desc log_sum, c.per_row());
  ATP_ASSIGN_OR_RETURN(Desc p, c.scores(bf16)); // no engine takes an fp32 P
  ATP_TRY(add(g.matmul(c.q, c.kt, s1)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, s1, c.scale, nullptr, s2)));
  ATP_ASSIGN_OR_RETURN(Desc s3, c.causal(ops, s2));
  ATP_TRY(add(g.reduction(CUDNN_REDUCE_TENSOR_MAX, s3, mx)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_SUB, s3, mx, nullptr, shifted)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, nullptr, e)));
  ATP_TRY(add(g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, sum)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, nullptr, log_sum)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_ADD, mx, log_sum, nullptr, c.stats)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_DIV, e, sum, nullptr, p)));
  ATP_TRY(add(g.matmul(p, v, c.o)));
  return plan_graph(g, ops);
}

/// The causal backward graph (no window), deterministic: dQ straight from dS K.
Result<Built> build_backward(cudnnHandle_t handle, const AttentionDims &a) {
  Builder g(handle);
  ATP_ASSIGN_OR_RETURN(Common c, common(g, a));
  const i64 B = c.B, S = c.S, Hq = c.Hq, Hkv = c.Hkv, D = c.D;
  const bool grouped = Hq != Hkv;
  ATP_ASSIGN_OR_RETURN(Desc d_o, g.tensor(kDO, bf16, {B, Hq, S, D}, {S * Hq * D, D, Hq * D, 1}));
  ATP_ASSIGN_OR_RETURN(Desc dq, g.tensor(kDQ, bf16, {B, Hq, S, D}, {S * a.q_stride, D, a.q_stride, 1}));
  ATP_ASSIGN_OR_RETURN(Desc dk, g.tensor(kDK, bf16, {B, Hkv, S, D}, {S * a.k_stride, D, a.k_stride, 1}));
  ATP_ASSIGN_OR_RETURN(Desc dv, g.tensor(kDV, bf16, {B, Hkv, S, D}, {S * a.v_stride, D, a.v_stride, 1}));
  ATP_ASSIGN_OR_RETURN(Desc softmax_sum, g.tensor(kSoftmaxSum, f32, {B, Hq, S, 1}, {Hq * S, S, 1, 1}));
  ATP_ASSIGN_OR_RETURN(Desc vt, g.tensor(kV, bf16, {B, Hkv, D, S}, {S * a.v_stride, D, 1, a.v_stride}));
  ATP_ASSIGN_OR_RETURN(Desc one, g.tensor(kOne, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true));
  std::vector<Desc> ops;
  auto add = [&](Result<Desc> op) -> Status {
    ATP_ASSIGN_OR_RETURN(Desc d, std::move(op));
    ops.push_back(d);
    return {};
  };
  auto transposed = [&](cudnnDataType_t type) { // [B, Hq, S_kv, S_q] over the scores' memory
    return g.tensor(c.uid++, type, {B, Hq, S, S}, {Hq * S * S, S * S, 1, S}, true);
  };
  auto full_heads = [&] { return g.tensor(c.uid++, bf16, {B, Hq, S, D}, {Hq * S * D, S * D, D, 1}, true); };
  // softmax_sum = rowsum(dO * O) * 1
  ATP_ASSIGN_OR_RETURN(Desc do_o, g.tensor(c.uid++, f32, {B, Hq, S, D}, {Hq * S * D, S * D, Hq * D, 1}, true));
  ATP_ASSIGN_OR_RETURN(Desc row_sum, c.per_row());
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, d_o, c.o, nullptr, do_o)));
  ATP_TRY(add(g.reduction(CUDNN_REDUCE_TENSOR_ADD, do_o, row_sum)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, row_sum, one, nullptr, softmax_sum)));
  // P = exp(mask(scale Q K^T) - stats); dV = P^T dO
  ATP_ASSIGN_OR_RETURN(Desc s1, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc s2, c.scores(f32));
  ATP_TRY(add(g.matmul(c.q, c.kt, s1)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, s1, c.scale, nullptr, s2)));
  ATP_ASSIGN_OR_RETURN(Desc s3, c.causal(ops, s2));
  ATP_ASSIGN_OR_RETURN(Desc shifted, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc p, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc pt, transposed(bf16));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_SUB, s3, c.stats, nullptr, shifted)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, nullptr, p)));
  ATP_TRY(add(g.reshape(p, pt)));
  if (grouped) {
    ATP_ASSIGN_OR_RETURN(Desc dv_full, full_heads());
    ATP_TRY(add(g.matmul(pt, d_o, dv_full)));
    ATP_TRY(add(g.reduction(CUDNN_REDUCE_TENSOR_ADD, dv_full, dv)));
  } else {
    ATP_TRY(add(g.matmul(pt, d_o, dv)));
  }
  // dS = scale P (dO V^T * 1 - softmax_sum); dK = dS^T Q
  ATP_ASSIGN_OR_RETURN(Desc dp, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc dp1, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc dp2, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc ds1, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc ds, c.scores(f32));
  ATP_ASSIGN_OR_RETURN(Desc dst, transposed(bf16));
  ATP_TRY(add(g.matmul(d_o, vt, dp)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, dp, one, nullptr, dp1)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_SUB, dp1, softmax_sum, nullptr, dp2)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, dp2, p, nullptr, ds1)));
  ATP_TRY(add(g.pointwise(CUDNN_POINTWISE_MUL, ds1, c.scale, nullptr, ds)));
  ATP_TRY(add(g.reshape(ds, dst)));
  if (grouped) {
    ATP_ASSIGN_OR_RETURN(Desc dk_full, full_heads());
    ATP_TRY(add(g.matmul(dst, c.q, dk_full)));
    ATP_TRY(add(g.reduction(CUDNN_REDUCE_TENSOR_ADD, dk_full, dk)));
  } else {
    ATP_TRY(add(g.matmul(dst, c.q, dk)));
  }
  // dQ = dS K, K being K^T reshaped back
  ATP_ASSIGN_OR_RETURN(Desc k, g.tensor(c.uid++, bf16, {B, Hkv, S, D}, {S * a.k_stride, D, a.k_stride, 1}, true));
  ATP_TRY(add(g.reshape(c.kt, k)));
  ATP_TRY(add(g.matmul(ds, k, dq)));
  return plan_graph(g, ops);
}

enum class Direction : i64 { kForward, kBackward };
using Key = std::array<i64, 10>;

struct Cache {
  std::mutex mutex;
  std::map<int, cudnnHandle_t> handles;       // by device; kept for the process
  std::map<int, i64> memory;                  // each device's total memory, asked once
  std::map<Key, std::shared_ptr<Plan>> plans; // null: no engine takes the shape
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

/// What both directions need of the dims, whatever the pointers and strides.
bool takes_dims(const AttentionDims &a) {
  return wanted() && a.sliding_window <= 0 && a.head_dim % 8 == 0 && a.head_dim <= 128 && a.scale > 0 &&
         a.kv_heads > 0 && a.q_heads % a.kv_heads == 0;
}

/// cudnn-frontend's notes: 9.10.0 and 9.10.1 have defects in the backward, and up to 9.15 a key length that is
/// not a multiple of 128 needs a padding mask the graph here does not build.
bool backward_takes_seq(i64 seq) {
  const std::size_t version = cudnnGetVersion();
  return seq >= 2 && version != 91000 && version != 91001 && (version > 91500 || seq % 128 == 0);
}

/// What both directions need of the call.
bool takes(const AttentionDims &a, std::initializer_list<const void *> pointers) {
  if (!takes_dims(a) || a.q_stride % 8 != 0 || a.k_stride % 8 != 0 || a.v_stride % 8 != 0)
    return false;
  for (const void *p : pointers)
    if (!aligned(p))
      return false;
  return true;
}

/// The plan for (direction, a) on this device, built on first use; null when no engine takes it. Called with the
/// cache's mutex held.
Result<const Plan *> plan_for(Cache &c, Direction direction, const AttentionDims &a, cudnnHandle_t &handle) {
  int device = 0;
  ATP_CUDA_TRY(cudaGetDevice(&device));
  handle = c.handles[device];
  if (!handle) {
    SDPA_TRY(cudnnCreate(&handle));
    c.handles[device] = handle;
  }
  const Key key{i64(direction), device,     a.batch,    a.seq,      a.q_heads,
                a.kv_heads,     a.head_dim, a.q_stride, a.k_stride, a.v_stride};
  auto found = c.plans.find(key);
  if (found == c.plans.end()) {
    ATP_ASSIGN_OR_RETURN(Built built,
                         direction == Direction::kForward ? build_forward(handle, a) : build_backward(handle, a));
    if (!built.first)
      std::fprintf(
          stderr,
          "attention: cuDNN has no %s plan for batch %lld x seq %lld, %lld/%lld heads of %lld (%s); our kernels "
          "take it\n",
          direction == Direction::kForward ? "forward" : "backward", (long long)a.batch, (long long)a.seq,
          (long long)a.q_heads, (long long)a.kv_heads, (long long)a.head_dim, built.second.c_str());
    found = c.plans.emplace(key, std::move(built.first)).first;
  }
  return found->second.get();
}

/// Runs `plan` on stream st with these tensors (by uid) and a workspace of its own.
Status run(cudaStream_t st, cudnnHandle_t handle, const Plan &plan, std::initializer_list<i64> uid_list,
           std::initializer_list<void *> pointer_list) {
  std::vector<i64> uids(uid_list);
  std::vector<void *> pointers(pointer_list);
  SDPA_TRY(cudnnSetStream(handle, st));
  void *workspace = nullptr;
  if (plan.workspace)
    ATP_CUDA_TRY(cudaMallocAsync(&workspace, std::size_t(plan.workspace), st));
  Desc pack = nullptr;
  Status ran = [&]() -> Status {
    SDPA_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    SDPA_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, i64(uids.size()),
                                      uids.data()));
    SDPA_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                                      i64(pointers.size()), pointers.data()));
    SDPA_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace));
    SDPA_TRY(cudnnBackendFinalize(pack));
    SDPA_TRY(cudnnBackendExecute(handle, plan.plan, pack));
    return {};
  }();
  if (pack)
    cudnnBackendDestroyDescriptor(pack);
  const cudaError_t freed = workspace ? cudaFreeAsync(workspace, st) : cudaSuccess;
  ATP_TRY(std::move(ran));
  ATP_CUDA_TRY(freed);
  return {};
}

template <class T> T *at(T *p, i64 elements, i64 bytes_each) {
  return reinterpret_cast<T *>(reinterpret_cast<std::uintptr_t>(p) + std::uintptr_t(elements * bytes_each));
}

/// The most bytes of dP workspace one backward run may take: ATP_CUDNN_WORKSPACE_LIMIT, else 1/32 of the device's
/// memory (4.4 GB on an H200: the 1B benchmark's 1 GiB in one run, seq 8192 in four). Called with the cache's
/// mutex held.
Result<i64> workspace_limit(Cache &c) {
  if (const char *v = std::getenv("ATP_CUDNN_WORKSPACE_LIMIT")) {
    char *end = nullptr;
    const long long bytes = std::strtoll(v, &end, 10);
    if (end == v || *end != '\0' || bytes < 0)
      return error(std::string("ATP_CUDNN_WORKSPACE_LIMIT='") + v + "' is not a number of bytes");
    return i64(bytes);
  }
  int device = 0;
  ATP_CUDA_TRY(cudaGetDevice(&device));
  auto found = c.memory.find(device);
  if (found == c.memory.end()) {
    std::size_t free_bytes = 0, total = 0;
    ATP_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total));
    found = c.memory.emplace(device, i64(total)).first;
  }
  return found->second / 32;
}

/// How many batch rows one backward run takes: the largest divisor of the batch whose dP workspace (2 bytes a
/// score, the sequence padded to 64, as cudnn-frontend sizes it) fits the limit, and whose later runs' stats
/// start 16-byte aligned like the first's; 0 if none.
Result<i64> backward_batch(Cache &c, const AttentionDims &a) {
  ATP_ASSIGN_OR_RETURN(const i64 limit, workspace_limit(c));
  const i64 padded = (a.seq + 63) / 64 * 64, per_row = a.q_heads * padded * padded * 2;
  for (i64 rows = a.batch; rows > 0; --rows)
    if (a.batch % rows == 0 && rows * per_row <= limit && (rows == a.batch || rows * a.q_heads * a.seq % 4 == 0))
      return rows;
  return i64(0);
}

} // namespace

Result<bool> forward(cudaStream_t st, void *out, float *lse, const void *q, const void *k, const void *v,
                     const AttentionDims &a) {
  if (!takes(a, {out, lse, q, k, v}))
    return false;
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  cudnnHandle_t handle = nullptr;
  ATP_ASSIGN_OR_RETURN(const Plan *plan, plan_for(c, Direction::kForward, a, handle));
  if (!plan)
    return false;
  float scale = float(a.scale), neg_inf = -INFINITY; // by value: read when the call is made
  ATP_TRY(run(st, handle, *plan, {kQ, kK, kV, kO, kStats, kScale, kNegInf},
              {const_cast<void *>(q), const_cast<void *>(k), const_cast<void *>(v), out, lse, &scale, &neg_inf}));
  return true;
}

std::string library(const AttentionDims &a) {
  if (!takes_dims(a) || !backward_takes_seq(a.seq))
    return "";
  const std::size_t v = cudnnGetVersion(); // cuDNN 9: major * 10000 + minor * 100 + patch
  return "cuDNN " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

Result<bool> backward(cudaStream_t st, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                      const void *v, const void *out, const float *lse, const AttentionDims &a) {
  if (!takes(a, {dq, dk, dv, dout, q, k, v, out, lse}) || !backward_takes_seq(a.seq))
    return false;
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  ATP_ASSIGN_OR_RETURN(const i64 rows, backward_batch(c, a));
  if (rows == 0)
    return false;
  AttentionDims part = a;
  part.batch = rows;
  cudnnHandle_t handle = nullptr;
  ATP_ASSIGN_OR_RETURN(const Plan *plan, plan_for(c, Direction::kBackward, part, handle));
  if (!plan)
    return false;
  const i64 S = a.seq, Hq = a.q_heads, od = a.q_heads * a.head_dim, es = 2; // bf16
  float *softmax_sum = nullptr;
  ATP_CUDA_TRY(cudaMallocAsync(&softmax_sum, std::size_t(rows * Hq * S) * sizeof(float), st));
  float scale = float(a.scale), neg_inf = -INFINITY, one = 1.0f;
  Status ran;
  for (i64 b = 0; b < a.batch && ran.ok(); b += rows) {
    const i64 t = b * S; // the part's first token row
    ran = run(st, handle, *plan, {kQ, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV, kSoftmaxSum, kScale, kNegInf, kOne},
              {const_cast<void *>(at(q, t * a.q_stride, es)), const_cast<void *>(at(k, t * a.k_stride, es)),
               const_cast<void *>(at(v, t * a.v_stride, es)), const_cast<void *>(at(out, t * od, es)),
               const_cast<float *>(lse + b * Hq * S), const_cast<void *>(at(dout, t * od, es)),
               at(dq, t * a.q_stride, es), at(dk, t * a.k_stride, es), at(dv, t * a.v_stride, es), softmax_sum, &scale,
               &neg_inf, &one});
  }
  const cudaError_t freed = cudaFreeAsync(softmax_sum, st);
  ATP_TRY(std::move(ran));
  ATP_CUDA_TRY(freed);
  return true;
}

} // namespace atp::kcuda::cudnn_sdpa
