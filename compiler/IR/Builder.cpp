//===- Builder.cpp - config + model -> partition IR ----------------------===//
//
// Follows DeepSpeed's partition_config path (reference §1.5 to §1.9) step by
// step. Shape errors repeat for every layer, so each distinct message is
// reported once per spec with the number of parameters it affects.
//
//===----------------------------------------------------------------------===//
#include "IR/Builder.h"
#include "IR/Matcher.h"
#include "IR/ShapeResolver.h"
#include "IR/Sharding.h"
#include "Spec/Presets.h"

#include "llvm/ADT/StringMap.h"

#include <map>

using namespace autotpc;

const char *autotpc::partKindName(PartKind K) {
  switch (K) {
  case PartKind::Replicate: return "replicate";
  case PartKind::Column: return "column";
  case PartKind::Row: return "row";
  }
  return "?";
}

const char *autotpc::decisionName(Decision D) {
  switch (D) {
  case Decision::Spec: return "spec";
  case Decision::Skip: return "skip";
  case Decision::Unmatched: return "unmatched";
  case Decision::NotMatched: return "not-a-matrix";
  case Decision::BiasFollows: return "bias-follows-weight";
  case Decision::SpecError: return "spec-error";
  case Decision::TpOff: return "tp-off";
  }
  return "?";
}

bool Param::isWeight2D() const {
  return Info.Shape.size() == 2 && llvm::StringRef(Info.Name).endswith(".weight");
}

/// The effective spec list of reference §1.5.
static std::vector<LayerSpec> effectiveSpecs(const Config &C, DiagEngine &Diags) {
  const TensorParallelConfig &TP = C.TP;
  std::optional<std::vector<LayerSpec>> Preset;
  if (TP.PresetModel) {
    Preset = loadPreset(*TP.PresetModel, Diags, TP.PresetModelLoc);
    if (!Preset) {
      std::string Known;
      for (const std::string &N : presetNames())
        Known += (Known.empty() ? "" : ", ") + N;
      Diags.error(TP.PresetModelLoc, "unknown preset_model '" + *TP.PresetModel + "' (known presets: " + Known + ")");
      Diags.note(TP.PresetModelLoc, "DeepSpeed silently ignores an unknown preset and falls back to the model's "
                                    "HF tp_plan or its heuristics");
    } else if (!isDeepSpeedPreset(llvm::StringRef(*TP.PresetModel).lower())) {
      Diags.warning(TP.PresetModelLoc, "not-deepspeed",
                    "preset_model '" + *TP.PresetModel + "' is an autotpc preset; DeepSpeed does not know it "
                                                         "and would silently ignore it");
    }
  }
  std::vector<LayerSpec> Specs;
  if (TP.HasPartitionConfig) {
    Specs = TP.LayerSpecs;
    if (Preset && TP.UseDefaultSpecs)
      Specs.insert(Specs.end(), Preset->begin(), Preset->end());
  } else if (Preset) {
    Specs = *Preset;
  }
  return Specs;
}

namespace {
/// Shape errors, grouped by (spec, message).
struct ShapeErrors {
  struct Entry {
    std::string FirstName;
    unsigned Count = 0;
  };
  std::map<std::pair<int, std::string>, Entry> Map;
  void add(int Spec, const std::string &Msg, const std::string &Name) {
    Entry &E = Map[{Spec, Msg}];
    if (!E.Count++)
      E.FirstName = Name;
  }
  void report(const std::vector<LayerSpec> &Specs, DiagEngine &Diags) {
    for (auto &[Key, E] : Map) {
      const LayerSpec &S = Specs[size_t(Key.first)];
      std::string Msg = "AutoTP layer '" + E.FirstName + "' " + Key.second;
      if (E.Count > 1)
        Msg += " (and " + std::to_string(E.Count - 1) + " more parameters this spec matches)";
      Diags.error(S.Shape ? S.ShapeLoc : S.anchor(), Msg);
      if (S.Shape)
        Diags.note(S.anchor(), "'" + E.FirstName + "' is matched by this pattern (" + S.Origin + ")");
    }
  }
};
} // namespace

std::optional<Module> autotpc::buildModule(const Config &C, const LoadedModel &M, DiagEngine &Diags) {
  Module Mod;
  Mod.TpSize = C.TP.AutotpSize > 1 ? C.TP.AutotpSize : 1;
  Mod.ConfigPath = C.Path;
  Mod.ModelDescription = M.Description;
  Mod.Dims = M.Dims;
  if (M.Dims)
    Mod.ModelType = M.Dims->ModelType;
  Mod.Specs = effectiveSpecs(C, Diags);
  const size_t NumSpecs = Mod.Specs.size();
  Mod.SpecMatches.assign(NumSpecs, 0);
  Mod.SpecWins.assign(NumSpecs, 0);
  Mod.SpecFirstShadowed.assign(NumSpecs, "");
  for (const LayerSpec &S : Mod.Specs) {
    Mod.PatternMatches.emplace_back(S.Patterns.size(), 0);
    Mod.PatternOnlyOthers.emplace_back(S.Patterns.size());
    Mod.PatternSearchHit.emplace_back(S.Patterns.size());
  }
  if (C.TP.AutotpSize > 1 && NumSpecs == 0 && !C.TP.PresetModel) {
    Diags.error(C.TP.AutotpSizeLoc, "autotp_size is " + llvm::Twine(C.TP.AutotpSize) +
                                        " but nothing says how to partition: give 'preset_model' or "
                                        "'partition_config.layer_specs'");
    Diags.note(C.TP.AutotpSizeLoc, "DeepSpeed would fall back to the model's HF tp_plan or its heuristic parser, "
                                   "which autotpc does not reproduce");
  }
  SpecMatcher Matcher(Mod.Specs, Diags);
  for (size_t S = 0; S < NumSpecs; ++S) {
    Mod.PatternValid.emplace_back();
    for (size_t P = 0; P < Mod.Specs[S].Patterns.size(); ++P)
      Mod.PatternValid.back().push_back(Matcher.valid(S, P));
  }

  ShapeErrors ShapeErrs;
  std::vector<std::string> StrictUnmatched;
  llvm::StringMap<size_t> WeightIndex;
  Mod.Params.reserve(M.Params.size());
  for (const ParamInfo &Info : M.Params) {
    Param P;
    P.Info = Info;
    Partition &Part = P.Part;
    if (!P.isWeight2D()) {
      // Never matched for partitioning. grad_allreduce hooks do see every
      // parameter (reference §1.6), so there it counts as a match; otherwise
      // remember it for the "only a bias matches" note.
      for (size_t S = 0; S < NumSpecs; ++S)
        for (size_t Pat = 0; Pat < Mod.Specs[S].Patterns.size(); ++Pat) {
          if (!Matcher.patternMatches(S, Pat, Info.Name))
            continue;
          if (Mod.Specs[S].GradAllreduce)
            ++Mod.PatternMatches[S][Pat];
          else if (Mod.PatternOnlyOthers[S][Pat].empty())
            Mod.PatternOnlyOthers[S][Pat] = Info.Name;
        }
      Mod.Params.push_back(std::move(P));
      continue;
    }
    WeightIndex[llvm::StringRef(Info.Name).drop_back(strlen(".weight"))] = Mod.Params.size();
    int First = -1;
    for (size_t S = 0; S < NumSpecs; ++S) {
      if (!Matcher.appliesTo(S, Mod.ModelType))
        continue;
      bool Any = false;
      for (size_t Pat = 0; Pat < Mod.Specs[S].Patterns.size(); ++Pat)
        if (Matcher.patternMatches(S, Pat, Info.Name)) {
          ++Mod.PatternMatches[S][Pat];
          Any = true;
        }
      if (!Any)
        continue;
      ++Mod.SpecMatches[S];
      if (First < 0) {
        First = int(S);
        ++Mod.SpecWins[S];
      } else if (Mod.SpecFirstShadowed[S].empty()) {
        Mod.SpecFirstShadowed[S] = Info.Name;
      }
    }
    Part.SpecIndex = First;
    const int64_t Out = Info.Shape[0], In = Info.Shape[1];
    if (First < 0) {
      Part.Why = Decision::Unmatched;
      if (C.TP.StrictMode)
        StrictUnmatched.push_back(Info.Name);
    } else if (Mod.Specs[size_t(First)].Type == PartitionType::Skip) {
      Part.Why = Decision::Skip;
    } else {
      const LayerSpec &Spec = Mod.Specs[size_t(First)];
      std::optional<ResolvedShape> RS;
      if (Info.R == Role::Embedding) {
        // DeepSpeed's _slice_embedding: the hidden dim (1) is split, no collective.
        RS = plainShape(PartitionType::Row, Out, In);
        RS->BiasPartitionDim.reset();
      } else if (Spec.Shape) {
        std::string Err;
        RS = resolveShape(Spec, Out, In, Info.Name, Err);
        if (!RS)
          ShapeErrs.add(First, Err, Info.Name);
      } else {
        RS = plainShape(Spec.Type, Out, In);
      }
      if (RS) {
        Part.Why = Decision::Spec;
        Part.Kind = Spec.Type == PartitionType::Row ? PartKind::Row : PartKind::Column;
        Part.Logical = RS->Logical;
        Part.PartitionDim = RS->PartitionDim;
        Part.SubSizes = RS->SubSizes;
        if (Spec.Type == PartitionType::Column)
          Part.BiasPartitionDim = RS->BiasPartitionDim;
      } else {
        Part.Why = Decision::SpecError; // unresolvable: reported; keep it whole
      }
    }
    Mod.Params.push_back(std::move(P));
  }

  // A bias follows its weight: column biases split like the weight's output
  // view, row biases stay replicated (added after the all-reduce).
  for (size_t I = 0; I < Mod.Params.size(); ++I) {
    Param &B = Mod.Params[I];
    llvm::StringRef Name = B.Info.Name;
    if (!Name.endswith(".bias") || B.Info.Shape.size() != 1)
      continue;
    auto It = WeightIndex.find(Name.drop_back(strlen(".bias")));
    if (It == WeightIndex.end())
      continue;
    const Param &W = Mod.Params[It->second];
    B.WeightIndex = int(It->second);
    B.Part.Why = Decision::BiasFollows;
    B.Part.SpecIndex = W.Part.SpecIndex;
    if (W.Part.Kind != PartKind::Column || !W.Part.BiasPartitionDim)
      continue;
    std::vector<int64_t> OutShape(W.Part.Logical.begin(), W.Part.Logical.end() - 1);
    int64_t Elems = 1;
    for (int64_t D : OutShape)
      Elems *= D;
    if (Elems != B.Info.Shape[0]) {
      ShapeErrs.add(W.Part.SpecIndex,
                    "bias size " + std::to_string(B.Info.Shape[0]) + " does not match output shape " +
                        std::to_string(Elems),
                    W.Info.Name);
      B.Part.Why = Decision::SpecError;
      continue;
    }
    B.Part.Kind = PartKind::Column;
    B.Part.Logical = OutShape;
    B.Part.PartitionDim = *W.Part.BiasPartitionDim;
    B.Part.SubSizes = W.Part.SubSizes;
  }

  ShapeErrs.report(Mod.Specs, Diags);
  // For patterns that match nothing: would re.search have found something?
  for (size_t S = 0; S < NumSpecs; ++S)
    for (size_t Pat = 0; Pat < Mod.Specs[S].Patterns.size(); ++Pat) {
      if (Mod.PatternMatches[S][Pat] || !Matcher.valid(S, Pat))
        continue;
      for (const Param &P : Mod.Params)
        if (P.isWeight2D() && Matcher.patternSearches(S, Pat, P.Info.Name)) {
          Mod.PatternSearchHit[S][Pat] = P.Info.Name;
          break;
        }
    }
  if (!StrictUnmatched.empty()) {
    std::string Msg = "No matching spec for " + StrictUnmatched.front();
    if (StrictUnmatched.size() > 1)
      Msg += " (and " + std::to_string(StrictUnmatched.size() - 1) + " more 2-D weights)";
    Diags.error(C.TP.StrictModeLoc, Msg);
    Diags.note(C.TP.StrictModeLoc, "strict_mode requires a spec for every 2-D weight; use a 'skip' spec to keep "
                                   "one replicated");
  }
  // DeepSpeed partitions only when autotp_size > 1 (reference §1.2); the
  // matching above still ran, so that the specs are checked all the same.
  if (C.TP.AutotpSize <= 1)
    for (Param &P : Mod.Params)
      if (P.Part.Kind != PartKind::Replicate) {
        P.Part.Kind = PartKind::Replicate;
        P.Part.Why = Decision::TpOff;
      }
  for (Param &P : Mod.Params)
    computeShards(P, Mod.TpSize);
  return Mod;
}
