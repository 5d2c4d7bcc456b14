//===- Presets.h - DeepSpeed's AutoTP presets, as data -------------------===//
//
// The presets live in specs/presets/*.json and are embedded into the compiler
// at build time. Each is parsed with the same layer-spec parser as user specs,
// from a SourceMgr buffer named after its file. The user cannot edit that
// file, so a diagnostic about a preset spec is reported where the user named
// the preset (their `preset_model` value), with a note pointing at the spec's
// file and line (DiagEngine::addExpansion).
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_SPEC_PRESETS_H
#define AUTOTPC_SPEC_PRESETS_H

#include "Spec/Config.h"

#include <cstddef>

namespace autotpc {

/// One embedded preset file.
struct PresetSource {
  const char *Name;
  const char *FileName;  ///< "specs/presets/llama.json"
  const char *Text;
};
extern const PresetSource PresetSources[];
extern const size_t NumPresetSources;

/// Preset names, sorted, for messages.
std::vector<std::string> presetNames();
/// Whether DeepSpeed itself knows the preset (all but autotpc's additions).
bool isDeepSpeedPreset(llvm::StringRef Name);
/// Parses the preset (lower-cased name, as DeepSpeed does) into specs.
/// Returns std::nullopt if no such preset exists; preset parse errors are
/// internal errors and are reported as such, in the preset file. Later
/// diagnostics located in the preset are reported at \p UsedAt (the user's
/// `preset_model` value) when it has a range.
std::optional<std::vector<LayerSpec>> loadPreset(llvm::StringRef Name, DiagEngine &Diags,
                                                 const Loc &UsedAt = Loc());

} // namespace autotpc

#endif // AUTOTPC_SPEC_PRESETS_H
