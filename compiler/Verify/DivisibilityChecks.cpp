//===- DivisibilityChecks.cpp - TP size vs heads, dims and sub-params ----===//
//
// The TP size must divide every dimension it splits: first the model-level
// quantities (attention and KV heads, intermediate sizes, vocabulary, hidden)
// at the config.json value that defines them, then each partitioned weight's
// sub-parameter sizes at the spec that split it, then head alignment (no
// shard boundary inside a head). Messages give both numbers and the TP sizes
// that would work; a closing remark gives the sizes that satisfy everything.
//
//===----------------------------------------------------------------------===//
#include "Verify/Verifier.h"

#include <map>
#include <set>

using namespace autotpc;

namespace {

/// "t divides Size and (Size / t) is a multiple of Unit".
struct Constraint {
  int64_t Size, Unit;
  bool holds(int64_t T) const { return Size % T == 0 && (Size / T) % Unit == 0; }
};

/// Groups of roles that one model-level quantity explains.
enum class Group { Heads, KVHeads, Mlp, Experts, SharedExperts, Vocab, Hidden, None };

Group groupOf(const Param &P) {
  llvm::StringRef Block = P.Info.Block;
  switch (P.Info.R) {
  case Role::AttnQ: case Role::AttnQB: case Role::AttnKVB: case Role::AttnOut: case Role::AttnQKVInterleaved:
    return Group::Heads;
  case Role::AttnK: case Role::AttnV:
    return Group::KVHeads;
  case Role::AttnQKV:
    return Group::Heads; // q part; the kv part is checked as KVHeads too
  case Role::MlpGate: case Role::MlpUp: case Role::MlpGateUp: case Role::MlpDown:
    if (Block.contains("shared_experts"))
      return Group::SharedExperts;
    if (Block.contains("experts"))
      return Group::Experts;
    return Group::Mlp;
  case Role::LmHead:
    return P.Part.Kind == PartKind::Row ? Group::Hidden : Group::Vocab;
  case Role::Embedding:
    return Group::Hidden;
  default:
    return Group::None;
  }
}

/// The TP sizes (at most 128) that satisfy every constraint, or "none".
std::string sizesThatHold(const std::vector<Constraint> &Cs) {
  std::string Ok;
  for (int64_t Cand = 1; Cand <= 128; ++Cand) {
    bool All = true;
    for (const Constraint &C : Cs)
      All = All && C.holds(Cand);
    if (All)
      Ok += (Ok.empty() ? "" : ", ") + std::to_string(Cand);
  }
  return Ok.empty() ? "none" : Ok;
}
std::string sizesThatHold(Constraint C) { return sizesThatHold(std::vector<Constraint>{C}); }

class DivisibilityChecker {
public:
  explicit DivisibilityChecker(const VerifyContext &Ctx) : Ctx(Ctx), T(Ctx.M.TpSize) {}

  void run() {
    collectSplitGroups();
    if (Ctx.M.Dims)
      checkModelQuantities(*Ctx.M.Dims);
    for (const Param &P : Ctx.M.Params)
      if (P.Part.Why == Decision::Spec && P.Part.Kind != PartKind::Replicate)
        checkParam(P);
    reportPerSpec();
    if (Failed)
      remarkWorkingSizes();
  }

private:
  void collectSplitGroups() {
    for (const Param &P : Ctx.M.Params)
      if (P.Part.Why == Decision::Spec && P.Part.Kind != PartKind::Replicate) {
        Group G = groupOf(P);
        if (!SplitBy.count(G))
          SplitBy[G] = &P;
        if (P.Info.R == Role::AttnQKV && !SplitBy.count(Group::KVHeads))
          SplitBy[Group::KVHeads] = &P;
      }
  }

  /// Checks one quantity of the model; Extra (e.g. "x 2 shared experts") is
  /// appended when Value is derived from the dimension D.
  void checkQuantity(Group G, const Dim &D, int64_t Value, const char *Key, const std::string &Extra = "") {
    auto It = SplitBy.find(G);
    if (It == SplitBy.end() || Value <= 0)
      return;
    Constraints.push_back({Value, 1});
    if (Value % T == 0)
      return;
    Failed = true;
    Explained.insert(G);
    Loc At = Ctx.Model.loc(D);
    std::string What = "'" + std::string(D.Key.empty() ? Key : D.Key) + "' (" + std::to_string(D.Value) + ")" + Extra;
    Ctx.Diags.error(At.isValid() ? At : Ctx.C.TP.AutotpSizeLoc,
                    What + " is not divisible by autotp_size (" + std::to_string(T) +
                        "); autotp_size values that divide it: " + divisorList(Value));
    noteTpSize(Ctx);
    const Param &P = *It->second;
    if (P.Part.SpecIndex >= 0)
      Ctx.Diags.note(Ctx.M.Specs[size_t(P.Part.SpecIndex)].anchor(),
                     "'" + P.Info.Name + "' is split by " + Ctx.M.Specs[size_t(P.Part.SpecIndex)].Origin);
  }

  void checkModelQuantities(const ModelDims &D) {
    checkQuantity(Group::Heads, D.NumHeads, D.NumHeads.Value, "num_attention_heads");
    if (D.NumKVHeads.Value == D.NumHeads.Value && Explained.count(Group::Heads))
      Explained.insert(Group::KVHeads); // one head count: one error
    if (D.NumKVHeads.Value != D.NumHeads.Value || !SplitBy.count(Group::Heads))
      checkQuantity(Group::KVHeads, D.NumKVHeads, D.NumKVHeads.Value, "num_key_value_heads");
    checkQuantity(Group::Mlp, D.Intermediate, D.Intermediate.Value, "intermediate_size");
    const Dim &ExpertDim = D.MoeIntermediate.Value ? D.MoeIntermediate : D.Intermediate;
    checkQuantity(Group::Experts, ExpertDim, ExpertDim.Value, "moe_intermediate_size");
    if (D.NumSharedExperts.Value > 0)
      checkQuantity(Group::SharedExperts, D.MoeIntermediate, D.MoeIntermediate.Value * D.NumSharedExperts.Value,
                    "moe_intermediate_size",
                    " x " + std::to_string(D.NumSharedExperts.Value) + " shared experts = " +
                        std::to_string(D.MoeIntermediate.Value * D.NumSharedExperts.Value));
    checkQuantity(Group::Vocab, D.Vocab, D.Vocab.Value, "vocab_size");
    checkQuantity(Group::Hidden, D.Hidden, D.Hidden.Value, "hidden_size");
  }

  /// Elements of one head along the split dim of P, or 0 if not head-structured.
  int64_t headUnit(const Param &P) const {
    if (!Ctx.M.Dims || P.Part.Logical.size() != 2)
      return 0;
    const ModelDims &D = *Ctx.M.Dims;
    switch (P.Info.R) {
    case Role::AttnQ: case Role::AttnK: case Role::AttnV: case Role::AttnQKV: case Role::AttnQB:
      return P.Part.Kind == PartKind::Column ? D.HeadDim.Value : 0;
    case Role::AttnQKVInterleaved:
      return P.Part.Kind == PartKind::Column ? 3 * D.HeadDim.Value : 0;
    case Role::AttnKVB:
      return P.Part.Kind == PartKind::Column ? D.QKNopeHeadDim.Value + D.VHeadDim.Value : 0;
    case Role::AttnOut:
      return P.Part.Kind == PartKind::Row ? (D.VHeadDim.Value ? D.VHeadDim.Value : D.HeadDim.Value) : 0;
    default:
      return 0;
    }
  }

  struct Problem {
    std::string FirstName, Message;
    unsigned Count = 0;
    bool Head = false;
    int64_t Size = 0, Unit = 1;
  };

  void checkParam(const Param &P) {
    if (fusedShapeIsWrong(Ctx.M, P))
      return; // its shape is reported as wrong; its splits mean nothing
    int64_t Unit = headUnit(P);
    bool Explain = Explained.count(groupOf(P)) != 0 ||
                   (P.Info.R == Role::AttnQKV && Explained.count(Group::KVHeads));
    const Partition &Part = P.Part;
    for (size_t I = 0; I < Part.SubSizes.size(); ++I) {
      int64_t S = Part.SubSizes[I];
      Constraints.push_back({S, Unit > 0 ? Unit : 1});
      if (Explain)
        continue;
      std::string Sub = Part.SubSizes.size() > 1 ? "sub-parameter " + std::to_string(I) + " (size " +
                                                       std::to_string(S) + ")"
                                                 : "dim " + std::to_string(Part.PartitionDim) + " (size " +
                                                       std::to_string(S) + ")";
      if (S % T) {
        add(P, I, "the " + Sub + " of '%s' is not divisible by autotp_size (" + std::to_string(T) +
                      "); autotp_size values that divide it: " + divisorList(S),
            false, S, 1);
        continue;
      }
      if (Unit <= 0)
        continue;
      // Every rank's piece must start and end on a head boundary.
      int64_t Offset = 0;
      for (size_t R = 0; R < Part.RankSizes.size(); ++R) {
        int64_t Len = Part.RankSizes[R][I];
        if (Offset % Unit || Len % Unit) {
          add(P, I, "a shard boundary cuts a head: TP rank " + std::to_string(R) + " would hold elements [" +
                        std::to_string(Offset) + ", " + std::to_string(Offset + Len) + ") of the " + Sub +
                        " of '%s', not a multiple of the head size (" + std::to_string(Unit) +
                        "); autotp_size values that keep heads whole: " + sizesThatHold({S, Unit}),
              true, S, Unit);
          break;
        }
        Offset += Len;
      }
    }
  }

  void add(const Param &P, size_t Sub, const std::string &Msg, bool Head, int64_t Size, int64_t Unit) {
    Problem &Pr = Problems[{P.Part.SpecIndex, Msg + "#" + std::to_string(Sub)}];
    if (!Pr.Count++) {
      Pr.FirstName = P.Info.Name;
      Pr.Message = Msg;
      Pr.Head = Head;
      Pr.Size = Size;
      Pr.Unit = Unit;
    }
  }

  void reportPerSpec() {
    for (auto &[Key, Pr] : Problems) {
      Failed = true;
      std::string Msg = Pr.Message;
      size_t At = Msg.find("%s");
      Msg.replace(At, 2, Pr.FirstName);
      if (Pr.Count > 1)
        Msg += " (and " + std::to_string(Pr.Count - 1) + " more parameters)";
      const LayerSpec &S = Ctx.M.Specs[size_t(Key.first)];
      Ctx.Diags.error(S.Shape ? S.ShapeLoc : S.anchor(), Msg);
      noteTpSize(Ctx);
    }
  }

  void remarkWorkingSizes() {
    Ctx.Diags.remark(Ctx.C.TP.AutotpSizeLoc, "autotp_size values that satisfy every divisibility constraint of "
                                             "this model: " + sizesThatHold(Constraints));
  }

  const VerifyContext &Ctx;
  int64_t T;
  bool Failed = false;
  std::map<Group, const Param *> SplitBy;
  std::set<Group> Explained;
  std::vector<Constraint> Constraints;
  std::map<std::pair<int, std::string>, Problem> Problems;
};

} // namespace

void autotpc::checkDivisibility(const VerifyContext &Ctx) {
  if (Ctx.M.TpSize <= 1)
    return;
  DivisibilityChecker(Ctx).run();
}
