//===- Matcher.h - DeepSpeed's layer-spec matching with RE2 -------------===//
//
// Patterns are Python regexes applied with re.match: anchored at the start of
// the name only. RE2 accepts Python's syntax (including (?P<name>...)) and
// matches in linear time, so no config can make the compiler hang; what it
// cannot do in linear time (backreferences, lookaround) is a compile error.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_IR_MATCHER_H
#define AUTOTPC_IR_MATCHER_H

#include "Spec/Config.h"

#include <memory>

namespace re2 {
class RE2;
}

namespace autotpc {

/// The compiled patterns of an ordered list of layer specs.
class SpecMatcher {
public:
  /// Compiles every pattern; reports invalid ones at their JSON value.
  SpecMatcher(const std::vector<LayerSpec> &Specs, DiagEngine &Diags);
  ~SpecMatcher();

  /// Whether spec I matches Name (any pattern, re.match semantics, model_types).
  bool matches(size_t SpecIndex, llvm::StringRef Name, llvm::StringRef ModelType) const;
  /// Whether any pattern of spec I matches Name, ignoring model_types.
  bool patternMatches(size_t SpecIndex, llvm::StringRef Name) const;
  /// Whether pattern P of spec I matches Name.
  bool patternMatches(size_t SpecIndex, size_t Pattern, llvm::StringRef Name) const;
  /// Whether pattern P of spec I is found anywhere in Name (re.search).
  bool patternSearches(size_t SpecIndex, size_t Pattern, llvm::StringRef Name) const;
  /// Whether spec I applies to the model type (model_types unset, or listed).
  bool appliesTo(size_t SpecIndex, llvm::StringRef ModelType) const;
  bool ok() const { return Ok; }
  /// Whether pattern P of spec I compiled.
  bool valid(size_t SpecIndex, size_t Pattern) const;

private:
  const std::vector<LayerSpec> &Specs;
  std::vector<std::vector<std::unique_ptr<re2::RE2>>> Compiled;
  bool Ok = true;
};

} // namespace autotpc

#endif // AUTOTPC_IR_MATCHER_H
