//===- DecoderMpi.cpp - the decoder at TP t equals TP 1; finite differences -===//
//
// Run as `mpirun -np T decoder_mpi`. For four tiny Llama-family variants
// (llama with an explicit head_dim and Llama-3 rope scaling; qwen2 with q/k/v
// biases and tied embeddings; phi3 with fused qkv_proj and gate_up_proj and
// GQA; mistral with a sliding window), every rank builds the full model from
// a seed, runs one forward and backward on the whole model alone (a TP group
// of itself) and one on its TP shards (the world as the TP group), and checks
// that the losses agree and that every local gradient equals the matching
// slice of the full gradient: in float64 to 1e-11 relative, in float32 to
// 1e-5. The shards are cut here by hand from the families' layouts (rows of
// q/k/v/gate/up blocks, columns of o/down), independently of the compiler's
// plan. It also counts the TP all-reduces: one per row-parallel output in
// forward and one per attention block and per MLP in backward. With one rank,
// a float64 central finite-difference check of elements of every kind of
// parameter against the analytic gradient. Merged products: the sharded
// weights again, but in one buffer where each layer's v, k, q and up, gate
// lie back to back (the ZeRO flat layout's order); the decoder, given that
// store as its layout, runs q/k/v and gate/up as one product each (llama and
// mistral: no biases, no fused weights) and must give the same loss and
// gradients as with separate buffers. First writes: a store whose gradients
// start as NaN and which answers grad_write with Overwrite once per parameter
// and window (as the ZeRO engine's first writes do) must end a window of two
// micro-batches with the very gradients of zeroed buffers that are added into,
// separate and merged; a store that has written only some of one product's
// gradients is an error. A token id or target outside the vocabulary is the
// decoder's own error, found on the host, with nothing written.
//
// Rank 0 prints "decoder_mpi tp=T: N passed, M failed"; exit 0 only if every
// check passes on every rank.
//
//===----------------------------------------------------------------------===//
#include "atp/comm.h"
#include "atp/decoder.h"
#include "atp/kernels.h"
#include "atp/ops.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using namespace atp;

namespace {

int Passed = 0, Failed = 0, Rank = 0, World = 1;

void check(bool Ok, const std::string &What) {
  if (Ok) {
    ++Passed;
  } else {
    ++Failed;
    std::fprintf(stderr, "rank %d: FAILED: %s\n", Rank, What.c_str());
  }
}

double unitValue(uint64_t Key) {
  Key += 0x9e3779b97f4a7c15ull;
  Key = (Key ^ (Key >> 30)) * 0xbf58476d1ce4e5b9ull;
  Key = (Key ^ (Key >> 27)) * 0x94d049bb133111ebull;
  Key ^= Key >> 31;
  return double(Key >> 11) / double(1ull << 52) - 1.0;
}

/// One test model: its shape at TP 1 and which families' features it uses.
struct Variant {
  const char *Name;
  DecoderShape Shape;
};

DecoderShape baseShape() {
  DecoderShape S{};
  S.hidden = 32, S.layers = 2, S.vocab = 37, S.heads = 8, S.kv_heads = 4, S.head_dim = 4, S.ffn = 40;
  S.max_positions = 64, S.tp_size = 1, S.attn_split = true, S.mlp_split = true;
  S.rms_eps = 1e-5, S.rope_theta = 10000.0, S.rope_type = "default";
  S.rope_factor = 1, S.rope_low_freq_factor = 1, S.rope_high_freq_factor = 4, S.rope_original_max_positions = 8192;
  return S;
}

std::vector<Variant> variants() {
  std::vector<Variant> V;
  DecoderShape L = baseShape();
  L.head_dim = 6; // heads * head_dim != hidden, as mistral's explicit head_dim allows
  L.rope_type = "llama3", L.rope_factor = 8, L.rope_low_freq_factor = 1, L.rope_high_freq_factor = 4;
  L.rope_original_max_positions = 16, L.rope_theta = 500000.0;
  V.push_back({"llama", L});
  DecoderShape Q = baseShape();
  Q.qkv_bias = true, Q.tied_embeddings = true, Q.rope_theta = 1000000.0, Q.rms_eps = 1e-6;
  V.push_back({"qwen2", Q});
  DecoderShape P = baseShape();
  P.qkv_fused = true, P.gate_up_fused = true, P.ffn = 24;
  V.push_back({"phi3", P});
  DecoderShape M = baseShape();
  M.sliding_window = 3;
  V.push_back({"mistral", M});
  return V;
}

/// The parameters of a variant, in HF order, with how each is split over TP.
enum class Cut { Replicate, Rows, Cols, Rows3, Rows2 };
struct PInfo {
  std::string Name;
  int64_t Rows, Cols;  // full 2-D shape (a vector is [n, 1])
  Cut C;
  int64_t Block[3];    // Rows/Cols: the full block size; Rows3: q, kv, kv rows; Rows2: gate/up rows each
  bool Norm = false;
};

struct Layout {
  std::vector<PInfo> P;
  DecoderParams Dp{};
  std::vector<DecoderLayerParams> Layers;
};

Layout layout(const DecoderShape &S) {
  Layout L;
  auto add = [&](PInfo I) {
    L.P.push_back(I);
    return int(L.P.size()) - 1;
  };
  const int64_t H = S.hidden, Cq = S.heads * S.head_dim, Ck = S.kv_heads * S.head_dim, F = S.ffn;
  L.Dp.embed = add({"embed", S.vocab, H, Cut::Replicate, {}});
  for (int64_t l = 0; l < S.layers; ++l) {
    DecoderLayerParams Lp{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    std::string Pre = "layers." + std::to_string(l) + ".";
    Lp.input_norm = add({Pre + "input_norm", H, 1, Cut::Replicate, {}, true});
    if (S.qkv_fused) {
      Lp.qkv = add({Pre + "qkv", Cq + 2 * Ck, H, Cut::Rows3, {Cq, Ck, Ck}});
    } else {
      Lp.q = add({Pre + "q", Cq, H, Cut::Rows, {Cq}});
      if (S.qkv_bias)
        Lp.q_bias = add({Pre + "q_bias", Cq, 1, Cut::Rows, {Cq}});
      Lp.k = add({Pre + "k", Ck, H, Cut::Rows, {Ck}});
      if (S.qkv_bias)
        Lp.k_bias = add({Pre + "k_bias", Ck, 1, Cut::Rows, {Ck}});
      Lp.v = add({Pre + "v", Ck, H, Cut::Rows, {Ck}});
      if (S.qkv_bias)
        Lp.v_bias = add({Pre + "v_bias", Ck, 1, Cut::Rows, {Ck}});
    }
    Lp.o = add({Pre + "o", H, Cq, Cut::Cols, {Cq}});
    Lp.post_norm = add({Pre + "post_norm", H, 1, Cut::Replicate, {}, true});
    if (S.gate_up_fused) {
      Lp.gate_up = add({Pre + "gate_up", 2 * F, H, Cut::Rows2, {F, F}});
    } else {
      Lp.gate = add({Pre + "gate", F, H, Cut::Rows, {F}});
      Lp.up = add({Pre + "up", F, H, Cut::Rows, {F}});
    }
    Lp.down = add({Pre + "down", H, F, Cut::Cols, {F}});
    L.Layers.push_back(Lp);
  }
  L.Dp.final_norm = add({"final_norm", H, 1, Cut::Replicate, {}, true});
  L.Dp.lm_head = S.tied_embeddings ? -1 : add({"lm_head", S.vocab, H, Cut::Replicate, {}});
  return L;
}

/// The local shard of a full [Rows, Cols] tensor for TP rank r of t (row-major).
template <class T> std::vector<T> shardOf(const PInfo &I, const std::vector<T> &Full, int R, int Tp) {
  std::vector<T> Out;
  auto rows = [&](int64_t Begin, int64_t N) {
    for (int64_t i = Begin; i < Begin + N; ++i)
      for (int64_t j = 0; j < I.Cols; ++j)
        Out.push_back(Full[size_t(i * I.Cols + j)]);
  };
  switch (I.C) {
  case Cut::Replicate:
    return Full;
  case Cut::Rows:
    rows(R * I.Block[0] / Tp, I.Block[0] / Tp);
    return Out;
  case Cut::Rows3: {
    int64_t Off = 0;
    for (int b = 0; b < 3; ++b) {
      rows(Off + R * I.Block[b] / Tp, I.Block[b] / Tp);
      Off += I.Block[b];
    }
    return Out;
  }
  case Cut::Rows2:
    rows(R * I.Block[0] / Tp, I.Block[0] / Tp);
    rows(I.Block[0] + R * I.Block[1] / Tp, I.Block[1] / Tp);
    return Out;
  case Cut::Cols: {
    const int64_t N = I.Block[0] / Tp;
    for (int64_t i = 0; i < I.Rows; ++i)
      for (int64_t j = R * N; j < (R + 1) * N; ++j)
        Out.push_back(Full[size_t(i * I.Cols + j)]);
    return Out;
  }
  }
  return Out;
}

/// Weights and gradients in host vectors; counts grad_ready calls.
template <class T> struct HostStore : ParamStore {
  std::vector<std::vector<T>> W, G;
  std::vector<int> Ready;
  void *param(int I) override { return W[size_t(I)].data(); }
  void *grad(int I) override { return G[size_t(I)].data(); }
  Status grad_ready(int I) override {
    ++Ready[size_t(I)];
    return {};
  }
  void zeroGrads() {
    for (auto &g : G)
      std::fill(g.begin(), g.end(), T(0));
    std::fill(Ready.begin(), Ready.end(), 0);
  }
};

template <class T> HostStore<T> fullStore(const Layout &L, uint64_t Seed) {
  HostStore<T> St;
  for (size_t p = 0; p < L.P.size(); ++p) {
    const PInfo &I = L.P[p];
    std::vector<T> W(size_t(I.Rows * I.Cols));
    for (size_t e = 0; e < W.size(); ++e) {
      double U = unitValue(Seed * 1000003 + p * 100003 + e);
      W[e] = T(I.Norm ? 1.0 + 0.2 * U : 0.4 * U);
    }
    St.W.push_back(W);
    St.G.push_back(std::vector<T>(W.size(), T(0)));
  }
  St.Ready.assign(L.P.size(), 0);
  return St;
}

DecoderShape localShape(DecoderShape S, int Tp) {
  S.tp_size = Tp;
  S.local_heads = S.heads / Tp, S.local_kv_heads = S.kv_heads / Tp, S.local_ffn = S.ffn / Tp;
  return S;
}

struct Batch {
  std::vector<int32_t> In, Tgt;
  int64_t B = 2, S = 8;
};

Batch makeBatch(const DecoderShape &Sh, uint64_t Seed) {
  Batch b;
  for (int64_t i = 0; i < b.B * b.S; ++i) {
    b.In.push_back(int32_t((unitValue(Seed * 7 + i) + 1.0) * 0.5 * double(Sh.vocab)) % int32_t(Sh.vocab));
    b.Tgt.push_back(int32_t((unitValue(Seed * 11 + i) + 1.0) * 0.5 * double(Sh.vocab)) % int32_t(Sh.vocab));
  }
  b.Tgt[3] = -100; // an ignored position, as HF's labels allow
  return b;
}

template <class T>
Result<CrossEntropySum> runOnce(const DecoderShape &S, const Layout &L, ParamStore &St, Comm &Tp, const Batch &B,
                                Decoder::CommCounts *Counts = nullptr, bool GiveLayout = false,
                                bool *Merged = nullptr) {
  ATP_ASSIGN_OR_RETURN(auto K, make_cpu_kernels(sizeof(T) == 8 ? DType::F64 : DType::F32, 1));
  auto Ops = make_cpu_ops();
  DecoderParams Dp = L.Dp;
  Dp.layers = L.Layers.data();
  ATP_ASSIGN_OR_RETURN(auto D, Decoder::create(S, Dp, *K, *Ops, Tp, B.B, B.S, GiveLayout ? &St : nullptr));
  if (Merged)
    *Merged = D->merged_qkv() && D->merged_gate_up();
  MicroBatch Mb;
  Mb.inputs = B.In.data(), Mb.targets = B.Tgt.data(), Mb.batch = B.B, Mb.seq = B.S;
  auto R = D->forward_backward(St, Mb);
  if (Counts)
    *Counts = D->comm_counts();
  return R;
}

double relErr(double A, double B) { return std::fabs(A - B) / std::max(1e-30, std::max(std::fabs(A), std::fabs(B))); }

template <class T> double maxAbs(const std::vector<T> &A) {
  double M = 0;
  for (T X : A)
    M = std::max(M, std::fabs(double(X)));
  return M;
}

/// Largest |a - b| over a shard, relative to the largest element of the whole (unsharded) gradient: a shard
/// of a few elements may hold only values that cancel, whose relative error says nothing of the layout.
template <class T> double vecRelErr(const std::vector<T> &A, const std::vector<T> &B, double Scale) {
  double Num = 0;
  for (size_t i = 0; i < A.size() && i < B.size(); ++i)
    Num = std::max(Num, std::fabs(double(A[i]) - double(B[i])));
  return A.size() != B.size() ? 1e30 : Num / std::max(Scale, 1e-30);
}

template <class T> void tpEquivalence(const Variant &V, Comm &Self, Comm &WorldComm, double Tol) {
  const std::string Tag = std::string(V.Name) + (sizeof(T) == 8 ? " f64" : " f32");
  const Layout L = layout(V.Shape);
  HostStore<T> Full = fullStore<T>(L, 5);
  const Batch B = makeBatch(V.Shape, 3);
  auto Ref = runOnce<T>(localShape(V.Shape, 1), L, Full, Self, B);
  check(Ref.ok(), Tag + ": reference run: " + Ref.status().message());
  if (!Ref.ok())
    return;
  HostStore<T> Local;
  for (size_t p = 0; p < L.P.size(); ++p) {
    Local.W.push_back(shardOf(L.P[p], Full.W[p], Rank, World));
    Local.G.push_back(std::vector<T>(Local.W.back().size(), T(0)));
  }
  Local.Ready.assign(L.P.size(), 0);
  Decoder::CommCounts Counts;
  auto Got = runOnce<T>(localShape(V.Shape, World), L, Local, WorldComm, B, &Counts);
  check(Got.ok(), Tag + ": sharded run: " + Got.status().message());
  if (!Got.ok())
    return;
  check(Got->count == Ref->count && Got->count == B.B * B.S - 1, Tag + ": predicted-token count");
  check(relErr(Got->loss_sum, Ref->loss_sum) <= Tol,
        Tag + ": loss " + std::to_string(Got->loss_sum) + " vs " + std::to_string(Ref->loss_sum));
  for (size_t p = 0; p < L.P.size(); ++p) {
    const double E = vecRelErr(Local.G[p], shardOf(L.P[p], Full.G[p], Rank, World), maxAbs(Full.G[p]));
    check(E <= Tol, Tag + ": gradient of " + L.P[p].Name + " differs by " + std::to_string(E));
    check(Local.Ready[p] == 1 && Full.Ready[p] == 1, Tag + ": grad_ready of " + L.P[p].Name + " once");
  }
  const int64_t Expect = World > 1 ? 2 * V.Shape.layers : 0;
  check(Counts.forward_row == Expect, Tag + ": forward row all-reduces " + std::to_string(Counts.forward_row));
  check(Counts.backward_column == Expect,
        Tag + ": backward column all-reduces " + std::to_string(Counts.backward_column) + " (one per block)");
}

/// Every parameter in one buffer; each layer's v, k, q and then up, gate back to back, the rest after them.
template <class T> struct OneBufferStore : ParamStore {
  std::vector<T> Buf;
  std::vector<size_t> Off, Len;
  std::vector<T> GradBuf;
  OneBufferStore(const Layout &L, const HostStore<T> &From) {
    std::vector<int> Order;
    for (const DecoderLayerParams &Lp : L.Layers)
      for (int I : {Lp.v, Lp.k, Lp.q, Lp.up, Lp.gate})
        if (I >= 0)
          Order.push_back(I);
    for (int I = 0; I < int(L.P.size()); ++I)
      if (std::find(Order.begin(), Order.end(), I) == Order.end())
        Order.push_back(I);
    Off.assign(L.P.size(), 0), Len.assign(L.P.size(), 0);
    size_t At = 0;
    for (int I : Order)
      Off[size_t(I)] = At, Len[size_t(I)] = From.W[size_t(I)].size(), At += From.W[size_t(I)].size();
    Buf.resize(At), GradBuf.assign(At, T(0));
    for (size_t I = 0; I < L.P.size(); ++I)
      std::copy(From.W[I].begin(), From.W[I].end(), Buf.begin() + std::ptrdiff_t(Off[I]));
  }
  void *param(int I) override { return Buf.data() + Off[size_t(I)]; }
  void *grad(int I) override { return GradBuf.data() + Off[size_t(I)]; }
  Status grad_ready(int) override { return {}; }
  std::vector<T> gradOf(int I) const {
    return std::vector<T>(GradBuf.begin() + std::ptrdiff_t(Off[size_t(I)]),
                          GradBuf.begin() + std::ptrdiff_t(Off[size_t(I)] + Len[size_t(I)]));
  }
};

template <class T> void mergedEquivalence(const Variant &V, Comm &WorldComm, double Tol) {
  const std::string Tag = std::string(V.Name) + (sizeof(T) == 8 ? " f64" : " f32") + " merged products";
  const Layout L = layout(V.Shape);
  HostStore<T> Full = fullStore<T>(L, 5), Local;
  for (size_t p = 0; p < L.P.size(); ++p) {
    Local.W.push_back(shardOf(L.P[p], Full.W[p], Rank, World));
    Local.G.push_back(std::vector<T>(Local.W.back().size(), T(0)));
  }
  Local.Ready.assign(L.P.size(), 0);
  OneBufferStore<T> One(L, Local);
  const Batch B = makeBatch(V.Shape, 3);
  const DecoderShape S = localShape(V.Shape, World);
  auto Ref = runOnce<T>(S, L, Local, WorldComm, B, nullptr, /*GiveLayout=*/true);
  bool Merged = false;
  auto Got = runOnce<T>(S, L, One, WorldComm, B, nullptr, true, &Merged);
  check(Ref.ok() && Got.ok(), Tag + ": runs");
  if (!Ref.ok() || !Got.ok())
    return;
  const bool Expect = !V.Shape.qkv_fused && !V.Shape.qkv_bias && !V.Shape.gate_up_fused;
  check(Merged == Expect, Tag + ": merged " + std::to_string(Merged) + ", expected " + std::to_string(Expect));
  check(relErr(Got->loss_sum, Ref->loss_sum) <= Tol,
        Tag + ": loss " + std::to_string(Got->loss_sum) + " vs " + std::to_string(Ref->loss_sum));
  for (size_t p = 0; p < L.P.size(); ++p) {
    const double E = vecRelErr(One.gradOf(int(p)), Local.G[p], maxAbs(Local.G[p]));
    check(E <= Tol, Tag + ": gradient of " + L.P[p].Name + " differs by " + std::to_string(E));
  }
}

/// Another store's buffers, with first writes (ParamStore::grad_write): its gradients are set to NaN, and the
/// first ask for each parameter in a window answers Overwrite.
struct FirstWriteStore : ParamStore {
  ParamStore &Inner;
  std::vector<bool> Written;
  std::vector<int> Overwrites;
  FirstWriteStore(ParamStore &In, const std::vector<size_t> &Sizes, bool F64)
      : Inner(In), Written(Sizes.size(), false), Overwrites(Sizes.size(), 0) {
    for (size_t I = 0; I < Sizes.size(); ++I) {
      if (F64)
        std::fill_n(static_cast<double *>(In.grad(int(I))), Sizes[I], NAN);
      else
        std::fill_n(static_cast<float *>(In.grad(int(I))), Sizes[I], NAN);
    }
  }
  void *param(int I) override { return Inner.param(I); }
  void *grad(int I) override { return Inner.grad(I); }
  Status grad_ready(int I) override { return Inner.grad_ready(I); }
  Write grad_write(int I) override {
    if (Written[size_t(I)])
      return Write::Accumulate;
    Written[size_t(I)] = true;
    ++Overwrites[size_t(I)];
    return Write::Overwrite;
  }
};

/// Two micro-batches into one window: the gradients of first writes into NaN equal, bit for bit, those added
/// into zeros, with separate buffers and with merged q/k/v and gate/up products; a product whose gradients
/// the store has only partly written is refused.
template <class T> void firstWrites(const Variant &V, Comm &WorldComm) {
  const std::string Tag = std::string(V.Name) + (sizeof(T) == 8 ? " f64" : " f32") + " first writes";
  const Layout L = layout(V.Shape);
  const DecoderShape S = localShape(V.Shape, World);
  const Batch B1 = makeBatch(V.Shape, 3), B2 = makeBatch(V.Shape, 8);
  HostStore<T> Full = fullStore<T>(L, 5), Added, Written;
  std::vector<size_t> Sizes;
  for (size_t p = 0; p < L.P.size(); ++p) {
    Added.W.push_back(shardOf(L.P[p], Full.W[p], Rank, World));
    Added.G.push_back(std::vector<T>(Added.W.back().size(), T(0)));
    Sizes.push_back(Added.W.back().size());
  }
  Added.Ready.assign(L.P.size(), 0);
  Written = Added;
  OneBufferStore<T> OneAdded(L, Added), OneWritten(L, Added);
  FirstWriteStore First(Written, Sizes, sizeof(T) == 8), OneFirst(OneWritten, Sizes, sizeof(T) == 8);
  struct Case {
    const char *Name;
    ParamStore &Ref, &Got;
    std::function<std::vector<T>(int)> RefGrad, GotGrad;
    FirstWriteStore &Counted;
  };
  const Case Cases[] = {
      {"separate", Added, First, [&](int I) { return Added.G[size_t(I)]; },
       [&](int I) { return Written.G[size_t(I)]; }, First},
      {"merged", OneAdded, OneFirst, [&](int I) { return OneAdded.gradOf(I); },
       [&](int I) { return OneWritten.gradOf(I); }, OneFirst},
  };
  for (const Case &C : Cases) {
    const bool Merge = std::string(C.Name) == "merged";
    bool Ok = true;
    for (const Batch *B : {&B1, &B2}) {
      auto Ref = runOnce<T>(S, L, C.Ref, WorldComm, *B, nullptr, Merge);
      auto Got = runOnce<T>(S, L, C.Got, WorldComm, *B, nullptr, Merge);
      check(Ref.ok() && Got.ok(), Tag + " " + C.Name + ": runs");
      Ok = Ok && Ref.ok() && Got.ok() && Ref->loss_sum == Got->loss_sum;
    }
    check(Ok, Tag + " " + C.Name + ": the same losses");
    for (size_t p = 0; p < L.P.size(); ++p) {
      check(C.RefGrad(int(p)) == C.GotGrad(int(p)), Tag + " " + C.Name + ": gradient of " + L.P[p].Name);
      check(C.Counted.Overwrites[p] == 1, Tag + " " + C.Name + ": one overwrite of " + L.P[p].Name + ", not " +
                                              std::to_string(C.Counted.Overwrites[p]));
    }
  }
  if (V.Shape.qkv_fused || V.Shape.qkv_bias || V.Shape.gate_up_fused)
    return; // merged products only where q/k/v and gate/up are separate weights without biases
  OneFirst.Written.assign(OneFirst.Written.size(), false);
  OneFirst.Written[size_t(L.Layers[0].k)] = true; // k written, v and q not: their one product cannot write
  auto Bad = runOnce<T>(S, L, OneFirst, WorldComm, B1, nullptr, true);
  check(!Bad.ok() && Bad.status().message().find("one product writes the gradients of parameters") !=
                         std::string::npos,
        Tag + ": a product whose gradients are partly written is an error: " + Bad.status().message());
}

/// A token id or a target outside the vocabulary is the decoder's own error, found on the host before anything
/// is uploaded or computed (the CUDA kernels skip their device checks because of it), and nothing is written.
void badTokens(const Variant &V, Comm &Self) {
  const Layout L = layout(V.Shape);
  HostStore<float> St = fullStore<float>(L, 5);
  const auto Grads = St.G;
  const std::string Vocab = std::to_string(V.Shape.vocab);
  Batch BadId = makeBatch(V.Shape, 3), BadTarget = BadId, Ignored = BadId;
  BadId.In[BadId.S + 1] = int32_t(V.Shape.vocab); // row 1, position 1
  BadTarget.Tgt[5] = -1;                          // row 0, position 5
  Ignored.Tgt[6] = -100;
  const struct {
    const char *What;
    const Batch &B;
    std::string Message;
  } Cases[] = {
      {"an id of the vocabulary's size", BadId,
       "decoder: token id " + Vocab + " at position 1 of row 1 is outside the vocabulary [0, " + Vocab + ")"},
      {"a target of -1", BadTarget,
       "decoder: target -1 at position 5 of row 0 is outside the vocabulary [0, " + Vocab +
           ") and is not the ignore_index -100"},
  };
  for (const auto &C : Cases) {
    auto R = runOnce<float>(localShape(V.Shape, 1), L, St, Self, C.B);
    check(!R.ok() && R.status().message() == C.Message,
          std::string(V.Name) + ": " + C.What +
              " is the decoder's error: " + (R.ok() ? std::string("no error") : R.status().message()));
    check(St.G == Grads, std::string(V.Name) + ": " + C.What + " writes no gradient");
  }
  auto R = runOnce<float>(localShape(V.Shape, 1), L, St, Self, Ignored);
  check(R.ok(), std::string(V.Name) + ": the ignore_index is a valid target: " + R.status().message());
}

/// Central differences in float64 on a few elements of every parameter.
void finiteDifferences(const Variant &V, Comm &Self) {
  const Layout L = layout(V.Shape);
  const DecoderShape S = localShape(V.Shape, 1);
  HostStore<double> St = fullStore<double>(L, 9);
  const Batch B = makeBatch(V.Shape, 4);
  auto Base = runOnce<double>(S, L, St, Self, B);
  check(Base.ok(), std::string(V.Name) + ": fd base run");
  if (!Base.ok())
    return;
  const auto Analytic = St.G;
  auto lossAt = [&]() {
    St.zeroGrads();
    auto R = runOnce<double>(S, L, St, Self, B);
    return R.ok() ? R->loss_sum / double(R->count) : NAN;
  };
  for (size_t p = 0; p < L.P.size(); ++p) {
    const size_t N = St.W[p].size();
    double Worst = 0;
    const double Scale = maxAbs(Analytic[p]);
    for (size_t k = 0; k < 3; ++k) {
      const size_t e = (k * 7919 + p * 104729) % N;
      const double W0 = St.W[p][e], Eps = 1e-5;
      St.W[p][e] = W0 + Eps;
      const double Up = lossAt();
      St.W[p][e] = W0 - Eps;
      const double Down = lossAt();
      St.W[p][e] = W0;
      const double Fd = (Up - Down) / (2 * Eps), An = Analytic[p][e];
      // Relative to the element, or to a thousandth of the tensor's largest gradient, or to 1e-3: float64 central
      // differences of a loss of a few units with Eps 1e-5 carry ~1e-10 of rounding (and the libm's exp/log
      // differ by an ulp between CPUs), so an element whose gradient is ~1e-5 is checked to 1e-9 absolute.
      Worst = std::max(Worst, std::fabs(Fd - An) / std::max({std::fabs(An), 1e-3 * Scale, 1e-3}));
    }
    check(Worst <= 1e-6, std::string(V.Name) + ": finite differences of " + L.P[p].Name + " off by " +
                             std::to_string(Worst));
  }
}

} // namespace

int main(int argc, char **argv) {
  if (!mpi_init(&argc, &argv).ok())
    return 2;
  MPI_Comm_rank(MPI_COMM_WORLD, &Rank);
  MPI_Comm_size(MPI_COMM_WORLD, &World);
  {
    std::vector<int> All;
    for (int r = 0; r < World; ++r)
      All.push_back(r);
    auto WorldComm = make_mpi_comm(All);
    auto Self = make_mpi_comm({Rank});
    if (!WorldComm.ok() || !Self.ok()) {
      std::fprintf(stderr, "decoder_mpi: no communicator\n");
      return 2;
    }
    for (const Variant &V : variants()) {
      tpEquivalence<double>(V, **Self, **WorldComm, 1e-11);
      tpEquivalence<float>(V, **Self, **WorldComm, 1e-5);
      mergedEquivalence<double>(V, **WorldComm, 1e-11);
      mergedEquivalence<float>(V, **WorldComm, 1e-5);
      firstWrites<double>(V, **WorldComm);
      firstWrites<float>(V, **WorldComm);
      if (World == 1)
        finiteDifferences(V, **Self);
      badTokens(V, **Self);
    }
  }
  int Totals[2] = {Passed, Failed}, Sum[2] = {0, 0};
  MPI_Reduce(Totals, Sum, 2, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (Rank == 0)
    std::printf("decoder_mpi tp=%d: %d passed, %d failed\n", World, Sum[0], Sum[1]);
  int AnyFailed = Failed > 0, Global = 0;
  MPI_Allreduce(&AnyFailed, &Global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  (void)mpi_finalize();
  return Global ? 1 : 0;
}
