//===- SpecChecks.cpp - layer specs that do nothing or do harm -----------===//
//
// What DeepSpeed does not report (reference §3.4): patterns that match
// nothing, specs shadowed by earlier ones, options that are ignored where
// they are used, and options that would silently compute the wrong thing.
//
//===----------------------------------------------------------------------===//
#include "Verify/Verifier.h"

#include "llvm/ADT/StringMap.h"

using namespace autotpc;

/// A typical matchable name: a 2-D weight inside a layer if there is one.
static std::string exampleName(const Module &M) {
  const Param *Any = nullptr;
  for (const Param &P : M.Params) {
    if (!P.isWeight2D())
      continue;
    if (P.Info.Layer >= 0 || llvm::StringRef(P.Info.Name).contains(".layers."))
      return P.Info.Name;
    Any = Any ? Any : &P;
  }
  return Any ? Any->Info.Name : "model.layers.0.mlp.up_proj.weight";
}

static void checkPatternsUsed(const VerifyContext &Ctx) {
  const Module &M = Ctx.M;
  for (size_t S = 0; S < M.Specs.size(); ++S) {
    const LayerSpec &Spec = M.Specs[S];
    if (Spec.Patterns.empty()) {
      Ctx.Diags.warning(Spec.SpecLoc, "unmatched-pattern", Spec.Origin + " has no patterns and matches nothing");
      continue;
    }
    if (Spec.ModelTypes && !Spec.ModelTypes->empty() && M.SpecMatches[S] == 0 &&
        !llvm::is_contained(*Spec.ModelTypes, M.ModelType)) {
      Ctx.Diags.warning(Spec.ModelTypesLoc, "unmatched-pattern",
                        Spec.Origin + " applies only to model_types that do not include " +
                            (M.ModelType.empty() ? std::string("this model (its type is unknown)")
                                                 : "'" + M.ModelType + "'"));
      continue;
    }
    for (size_t P = 0; P < Spec.Patterns.size(); ++P) {
      if (M.PatternMatches[S][P] != 0 || !M.PatternValid[S][P])
        continue;
      Ctx.Diags.warning(Spec.PatternLocs[P], "unmatched-pattern",
                        "pattern '" + Spec.Patterns[P] + "' matches no parameter of the model");
      if (!M.PatternSearchHit[S][P].empty())
        Ctx.Diags.note(Spec.PatternLocs[P], "patterns are anchored at the start of the name (re.match): it is "
                                            "found inside '" + M.PatternSearchHit[S][P] +
                                                "' but does not match it from the start; add a leading '.*'");
      else if (!M.PatternOnlyOthers[S][P].empty())
        Ctx.Diags.note(Spec.PatternLocs[P], "it matches '" + M.PatternOnlyOthers[S][P] +
                                                "', but only the '.weight' of 2-D weights is matched; a bias "
                                                "follows its weight");
      else if (!llvm::StringRef(Spec.Patterns[P]).contains("weight"))
        Ctx.Diags.note(Spec.PatternLocs[P], "patterns are matched from the start (re.match) against full "
                                            "parameter names such as '" + exampleName(M) + "'");
    }
  }
}

static void checkShadowed(const VerifyContext &Ctx) {
  const Module &M = Ctx.M;
  llvm::StringMap<int> Decider;
  for (const Param &P : M.Params)
    if (P.isWeight2D())
      Decider[P.Info.Name] = P.Part.SpecIndex;
  for (size_t S = 0; S < M.Specs.size(); ++S) {
    if (M.SpecMatches[S] == 0 || M.SpecWins[S] != 0)
      continue;
    const LayerSpec &Spec = M.Specs[S];
    int Earlier = Decider.lookup(M.SpecFirstShadowed[S]);
    // Custom specs come before the preset's so that they can replace its
    // rules (reference §1.5); a preset rule the user replaced is not a mistake.
    if (Spec.FromPreset && Earlier >= 0 && !M.Specs[size_t(Earlier)].FromPreset)
      continue;
    Ctx.Diags.warning(Spec.anchor(), "shadowed-spec",
                      Spec.Origin + " is shadowed: each of the " + std::to_string(M.SpecMatches[S]) +
                          " parameters it matches is taken by an earlier spec (the first match wins)");
    if (Earlier >= 0)
      Ctx.Diags.note(M.Specs[size_t(Earlier)].anchor(),
                     "'" + M.SpecFirstShadowed[S] + "' is taken by " + M.Specs[size_t(Earlier)].Origin + " here");
  }
}

static void checkOptions(const VerifyContext &Ctx) {
  for (const LayerSpec &Spec : Ctx.M.Specs) {
    const char *Type = partitionTypeName(Spec.Type);
    if (Spec.GatherOutput && Spec.Shape && Spec.Type == PartitionType::Column) {
      Ctx.Diags.error(Spec.GatherOutputLoc, "AutoTP gather_output does not yet support shaped sub-parameter layers");
      Ctx.Diags.note(Spec.ShapeLoc, "'shape' given here");
    } else if (Spec.GatherOutput && Spec.Type != PartitionType::Column) {
      Ctx.Diags.warning(Spec.GatherOutputLoc, "ignored-option",
                        llvm::Twine("'gather_output' has no effect on a '") + Type + "' spec");
    }
    if (Spec.GradAllreduce && Spec.Type != PartitionType::Skip) {
      Ctx.Diags.error(Spec.GradAllreduceLoc,
                      llvm::Twine("'grad_allreduce' on a '") + Type +
                          "' spec would sum sharded gradients over the TP group; it is meant for 'skip' specs, "
                          "whose parameters stay replicated");
    }
    if (Spec.PartitionDim && !Spec.Shape)
      Ctx.Diags.warning(Spec.PartitionDimLoc, "ignored-option",
                        "'partition_dim' has no effect without 'shape' (a plain column spec splits dim 0, a row "
                        "spec dim 1)");
    if (Spec.Shape && Spec.Type != PartitionType::Skip) {
      int64_t Last = int64_t(Spec.Shape->size()) - 1;
      if (Spec.Type == PartitionType::Row && Spec.partitionDim() != Last)
        Ctx.Diags.error(Spec.PartitionDimLoc.isValid() ? Spec.PartitionDimLoc : Spec.ShapeLoc,
                        "a row spec must partition the last (input) dimension of 'shape' (partition_dim " +
                            llvm::Twine(Spec.partitionDim()) + ", last dimension " + llvm::Twine(Last) + ")");
      if (Spec.Type == PartitionType::Column && Spec.partitionDim() == Last)
        Ctx.Diags.error(Spec.PartitionDimLoc.isValid() ? Spec.PartitionDimLoc : Spec.ShapeLoc,
                        "a column spec must partition an output dimension of 'shape', not the last (input) one "
                        "(partition_dim " + llvm::Twine(Spec.partitionDim()) + ")");
    }
  }
}

void autotpc::checkSpecs(const VerifyContext &Ctx) {
  const Config &C = Ctx.C;
  if (C.Zero.Stage == 3) {
    Ctx.Diags.error(C.Zero.StageLoc, "ZeRO stage 3 is not supported with AutoTP training");
    Ctx.Diags.note(C.Zero.StageLoc, "DeepSpeed up to v0.19.3 rejects it too ('Currently, the compatibility between "
                                    "'autotp' and 'zero_stage = 3' has not been validated'); use stage 0, 1 or 2");
  }
  if (C.TP.AutotpSize <= 1)
    Ctx.Diags.remark(C.TP.AutotpSizeLoc.isValid() ? C.TP.AutotpSizeLoc : Loc::inFile(C.Path),
                     "tensor parallelism is off (autotp_size " + llvm::Twine(C.TP.AutotpSize) +
                         "): every parameter stays whole");
  for (const Param &P : Ctx.M.Params) {
    if (P.Info.R != Role::Embedding || P.Part.Why != Decision::Spec || C.TP.AutotpSize <= 1)
      continue;
    const LayerSpec &S = Ctx.M.Specs[size_t(P.Part.SpecIndex)];
    Ctx.Diags.warning(S.anchor(), "embedding-split",
                      "'" + P.Info.Name + "' is an embedding: DeepSpeed slices its hidden dimension with no "
                      "collective (_slice_embedding), which is not a usable training layout");
    Ctx.Diags.note(S.anchor(), "use a 'skip' spec to keep the embedding replicated");
  }
  if (C.TP.PresetModel && C.TP.HasPartitionConfig && !C.TP.UseDefaultSpecs && C.TP.LayerSpecs.empty())
    Ctx.Diags.warning(C.TP.PresetModelLoc, "ignored-option",
                      "preset_model '" + *C.TP.PresetModel +
                          "' has no effect: partition_config sets use_default_specs to false and gives no "
                          "layer_specs, so every parameter stays whole");
  checkPatternsUsed(Ctx);
  checkShadowed(Ctx);
  checkOptions(Ctx);
}
