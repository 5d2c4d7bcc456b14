//===- Presets.cpp - DeepSpeed's AutoTP presets, as data -----------------===//
#include "Spec/Presets.h"
#include "Spec/JsonReader.h"

#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>

using namespace autotpc;

std::vector<std::string> autotpc::presetNames() {
  std::vector<std::string> Names;
  for (size_t I = 0; I < NumPresetSources; ++I)
    Names.push_back(PresetSources[I].Name);
  std::sort(Names.begin(), Names.end());
  return Names;
}

bool autotpc::isDeepSpeedPreset(llvm::StringRef Name) { return Name != "mistral"; }

std::optional<std::vector<LayerSpec>> autotpc::loadPreset(llvm::StringRef Name, DiagEngine &Diags,
                                                          const Loc &UsedAt) {
  std::string Lower = Name.lower();
  const PresetSource *Src = nullptr;
  for (size_t I = 0; I < NumPresetSources; ++I)
    if (Lower == PresetSources[I].Name)
      Src = &PresetSources[I];
  if (!Src)
    return std::nullopt;
  auto Buf = llvm::MemoryBuffer::getMemBuffer(Src->Text, Src->FileName, /*RequiresNullTerminator=*/true);
  unsigned ID = Diags.sourceMgr().AddNewSourceBuffer(std::move(Buf), llvm::SMLoc());
  std::unique_ptr<JsonDoc> Doc = JsonDoc::parse(Diags, ID);
  std::vector<LayerSpec> Specs;
  const nlohmann::json *List = Doc ? Doc->get("/layer_specs") : nullptr;
  if (!List || !List->is_array()) {
    Diags.error(Loc::inFile(Src->FileName), "internal error: preset file has no 'layer_specs' list");
    return Specs;
  }
  for (size_t I = 0; I < List->size(); ++I) {
    LayerSpec S;
    std::string Origin = "preset '" + Lower + "' spec " + std::to_string(I);
    if (parseLayerSpec(*Doc, JsonDoc::child("/layer_specs", I), Diags, Origin, S)) {
      S.FromPreset = true;
      Specs.push_back(std::move(S));
    }
  }
  // Parse problems above are ours and stay in the preset; what the checks
  // find later is about the user's model, so it is reported at their file.
  Diags.addExpansion(ID, UsedAt, "preset '" + Lower + "'");
  return Specs;
}
