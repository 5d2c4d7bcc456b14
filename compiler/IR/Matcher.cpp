//===- Matcher.cpp - DeepSpeed's layer-spec matching with RE2 -----------===//
#include "IR/Matcher.h"

#include <re2/re2.h>

using namespace autotpc;

SpecMatcher::SpecMatcher(const std::vector<LayerSpec> &Specs, DiagEngine &Diags) : Specs(Specs) {
  RE2::Options Opts;
  Opts.set_log_errors(false);
  Opts.set_encoding(RE2::Options::EncodingUTF8);
  Compiled.resize(Specs.size());
  for (size_t S = 0; S < Specs.size(); ++S) {
    for (size_t P = 0; P < Specs[S].Patterns.size(); ++P) {
      auto Re = std::make_unique<RE2>(Specs[S].Patterns[P], Opts);
      if (!Re->ok()) {
        Diags.error(Specs[S].PatternLocs[P], "invalid regex '" + Specs[S].Patterns[P] + "': " + Re->error());
        llvm::StringRef Err = Re->error();
        if (Err.contains("(?=") || Err.contains("(?!") || Err.contains("(?<") || Err.contains("\\1") ||
            Err.contains("invalid escape") || Err.contains("invalid named capture") ||
            Err.contains("invalid perl operator"))
          Diags.note(Specs[S].PatternLocs[P],
                     "autotpc matches with RE2 (linear time): lookaround and backreferences are not supported");
        Ok = false;
      }
      Compiled[S].push_back(std::move(Re));
    }
  }
}

SpecMatcher::~SpecMatcher() = default;

bool SpecMatcher::patternMatches(size_t I, llvm::StringRef Name) const {
  re2::StringPiece Text(Name.data(), Name.size());
  for (const auto &Re : Compiled[I])
    if (Re->ok() && Re->Match(Text, 0, Text.size(), RE2::ANCHOR_START, nullptr, 0))
      return true;
  return false;
}

bool SpecMatcher::patternMatches(size_t I, size_t P, llvm::StringRef Name) const {
  const auto &Re = Compiled[I][P];
  re2::StringPiece Text(Name.data(), Name.size());
  return Re->ok() && Re->Match(Text, 0, Text.size(), RE2::ANCHOR_START, nullptr, 0);
}

bool SpecMatcher::patternSearches(size_t I, size_t P, llvm::StringRef Name) const {
  const auto &Re = Compiled[I][P];
  re2::StringPiece Text(Name.data(), Name.size());
  return Re->ok() && Re->Match(Text, 0, Text.size(), RE2::UNANCHORED, nullptr, 0);
}

bool SpecMatcher::valid(size_t I, size_t P) const { return Compiled[I][P]->ok(); }

bool SpecMatcher::appliesTo(size_t I, llvm::StringRef ModelType) const {
  const LayerSpec &S = Specs[I];
  // DeepSpeed tests `if self.model_types:`, so an empty list is no filter.
  return !S.ModelTypes || S.ModelTypes->empty() || llvm::is_contained(*S.ModelTypes, ModelType.lower());
}

bool SpecMatcher::matches(size_t I, llvm::StringRef Name, llvm::StringRef ModelType) const {
  return appliesTo(I, ModelType) && patternMatches(I, Name);
}
