//===- ModelLoader.cpp - find and read the model description ------------===//
//
// A config.json gives the exact HF inventory of a known family; safetensors
// headers give the inventory as stored, for any model. With both, the stored
// one wins and the two are cross-checked, so that a config that lies about
// the checkpoint (8 KV heads in config.json, 4 in the k_proj rows) is caught
// before anything is sharded.
//
//===----------------------------------------------------------------------===//
#include "Model/ModelLoader.h"
#include "Model/HFInventory.h"
#include "Model/SafetensorsHeader.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace autotpc;

Loc LoadedModel::loc(const Dim &D) const {
  if (!ConfigDoc || D.Pointer.empty())
    return Loc();
  return ConfigDoc->value(Prefix + D.Pointer);
}

std::string LoadedModel::describe(const Dim &D) {
  if (!D.Pointer.empty())
    return "'" + D.Key + "' (" + std::to_string(D.Value) + ")";
  return D.Key + " (" + std::to_string(D.Value) + (D.Note.empty() ? "" : ", " + D.Note) + ")";
}

/// Reads the HF config object at Prefix of Doc into M.
static bool readHFConfig(const JsonDoc &Doc, const std::string &Prefix, DiagEngine &Diags, LoadedModel &M) {
  const nlohmann::json *Obj = Doc.get(Prefix);
  if (!Obj || !Obj->is_object()) {
    Diags.error(Doc.value(Prefix), "an HF model config must be a JSON object");
    return false;
  }
  std::vector<ConfigProblem> Problems;
  std::optional<HFInventory> Inv = deriveInventory(*Obj, Problems);
  for (const ConfigProblem &P : Problems) {
    Loc At = Doc.value(Prefix + P.Pointer);
    if (P.IsWarning)
      Diags.warning(At, "model-mismatch", P.Message);
    else
      Diags.error(At, P.Message);
  }
  if (!Inv)
    return false;
  M.Dims = Inv->Dims;
  M.Params = std::move(Inv->Params);
  M.ConfigDoc = &Doc;
  M.Prefix = Prefix;
  M.Description = "HF config (" + Inv->Dims.Family + ")";
  return true;
}

static std::string shapeText(const std::vector<int64_t> &S) {
  std::string T = "[";
  for (size_t I = 0; I < S.size(); ++I)
    T += (I ? ", " : "") + std::to_string(S[I]);
  return T + "]";
}

/// Replaces M.Params (from config.json) with the stored inventory St, keeping
/// roles, and reports where the two disagree.
static void crossCheck(const SafetensorsInventory &St, llvm::StringRef StName, DiagEngine &Diags, LoadedModel &M) {
  llvm::StringMap<const ParamInfo *> FromConfig;
  for (const ParamInfo &P : M.Params)
    FromConfig[P.Name] = &P;
  // Checkpoints of a base model may store names without the head model's
  // prefix ("h.0..." for "transformer.h.0..."); pick the prefix that fits best.
  std::string Prefix;
  size_t Best = 0;
  for (const char *Cand : {"", "transformer.", "model."}) {
    size_t Hits = 0;
    for (const StoredTensor &T : St.Tensors)
      Hits += FromConfig.count(Cand + T.Name);
    if (Hits > Best) {
      Best = Hits;
      Prefix = Cand;
    }
  }
  if (!Prefix.empty())
    Diags.remark(Loc::inFile(StName), "the checkpoint stores names without the '" + Prefix +
                                          "' prefix of the model's modules; names are matched with it");
  std::vector<ParamInfo> Stored;
  llvm::StringMap<bool> Seen;
  std::vector<std::string> Extra;
  struct Mismatch {
    const ParamInfo *Cfg;
    const StoredTensor *St;
    unsigned Count = 0;
  };
  std::map<Role, Mismatch> Mismatches;
  for (const StoredTensor &T : St.Tensors) {
    ParamInfo P;
    P.Name = Prefix + T.Name;
    P.Shape = T.Shape;
    P.DType = T.DType;
    auto It = FromConfig.find(P.Name);
    if (It == FromConfig.end()) {
      Extra.push_back(P.Name);
    } else {
      const ParamInfo &C = *It->second;
      Seen[P.Name] = true;
      P.R = C.R;
      P.Layer = C.Layer;
      P.Block = C.Block;
      if (C.Shape != T.Shape) {
        Mismatch &Mm = Mismatches[C.R];
        if (!Mm.Count++) {
          Mm.Cfg = &C;
          Mm.St = &T;
        }
      }
    }
    Stored.push_back(std::move(P));
  }
  const ModelDims &D = *M.Dims;
  for (auto &[R, Mm] : Mismatches) {
    std::string More = Mm.Count > 1 ? " (and " + std::to_string(Mm.Count - 1) + " more tensors of this kind)" : "";
    const std::vector<int64_t> &S = Mm.St->Shape;
    if ((R == Role::AttnK || R == Role::AttnV || R == Role::AttnQ) && S.size() == 2 && D.HeadDim.Value > 0 &&
        S[0] % D.HeadDim.Value == 0) {
      const Dim &Heads = R == Role::AttnQ ? D.NumHeads : D.NumKVHeads;
      Loc At = M.loc(Heads);
      Diags.error(At.isValid() ? At : Loc::inFile(StName),
                  "the config says " + LoadedModel::describe(Heads) + ", but '" + Mm.Cfg->Name + "' in " +
                      Mm.St->File + " has " + std::to_string(S[0]) + " rows, which is " +
                      std::to_string(S[0] / D.HeadDim.Value) + (R == Role::AttnQ ? "" : " KV") +
                      " heads of head_dim " + std::to_string(D.HeadDim.Value) + More);
      continue;
    }
    Diags.error(Loc::inFile(Mm.St->File), "'" + Mm.Cfg->Name + "' is " + shapeText(S) +
                                              " in the checkpoint but the model config implies " +
                                              shapeText(Mm.Cfg->Shape) + More);
  }
  std::vector<std::string> Missing;
  for (const ParamInfo &P : M.Params)
    if (!Seen.count(P.Name))
      Missing.push_back(P.Name);
  if (!Extra.empty())
    Diags.warning(Loc::inFile(StName), "model-mismatch",
                  std::to_string(Extra.size()) + " stored tensors are not parameters the model config implies, "
                                                 "e.g. '" + Extra.front() + "'");
  if (!Missing.empty())
    Diags.warning(Loc::inFile(StName), "model-mismatch",
                  std::to_string(Missing.size()) + " parameters the model config implies are not stored, e.g. '" +
                      Missing.front() + "'");
  M.Params = std::move(Stored);
}

/// Names of a folder's regular files (links followed) that look like
/// weights: *.safetensors and *.safetensors.index.json, sorted.
static std::vector<std::string> weightFiles(llvm::StringRef Dir) {
  std::vector<std::string> Names;
  std::error_code EC;
  for (llvm::sys::fs::directory_iterator It(Dir, EC), End; It != End && !EC; It.increment(EC)) {
    llvm::StringRef P = It->path();
    if ((P.endswith(".safetensors") || P.endswith(".safetensors.index.json")) && llvm::sys::fs::is_regular_file(P))
      Names.push_back(llvm::sys::path::filename(P).str());
  }
  llvm::sort(Names);
  return Names;
}

/// "'a', 'b' and 2 more".
static std::string quotedList(const std::vector<std::string> &Names) {
  std::string S;
  const size_t Shown = std::min<size_t>(Names.size(), 4);
  for (size_t I = 0; I < Shown; ++I)
    S += (I ? I + 1 == Shown && Shown == Names.size() ? " and " : ", " : "") + ("'" + Names[I] + "'");
  if (Names.size() > Shown)
    S += " and " + std::to_string(Names.size() - Shown) + " more";
  return S;
}

/// The weights of a model folder, found as transformers' from_pretrained
/// finds them: model.safetensors, else model.safetensors.index.json (whose
/// weight_map names the shards). Any other .safetensors file there (an
/// adapter, optimizer state, a reference dump) is not the model's. Returns
/// "" when the folder has no weights at all, std::nullopt after an error.
static std::optional<std::string> folderWeights(llvm::StringRef Dir, const Loc &Where, DiagEngine &Diags) {
  std::vector<std::string> Names = weightFiles(Dir);
  for (const char *Name : {"model.safetensors", "model.safetensors.index.json"})
    if (llvm::is_contained(Names, Name)) {
      llvm::SmallString<256> P(Dir);
      llvm::sys::path::append(P, Name);
      return std::string(P.str());
    }
  if (Names.empty())
    return std::string();
  Diags.error(Where.isValid() ? Where : Loc::inFile(Dir),
              "model folder '" + Dir + "' has no model.safetensors or model.safetensors.index.json, only " +
                  quotedList(Names) + ", which transformers' from_pretrained would not load either");
  Diags.note(Where.isValid() ? Where : Loc::inFile(Dir),
             "name the checkpoint file or index itself instead of the folder");
  return std::nullopt;
}

std::optional<LoadedModel> autotpc::loadModel(const Config &C, const JsonDoc &ConfigDoc, llvm::StringRef ModelFlag,
                                              DiagEngine &Diags, std::vector<std::unique_ptr<JsonDoc>> &Docs) {
  LoadedModel M;
  std::string Path;
  Loc Where;
  if (!ModelFlag.empty()) {
    Path = ModelFlag.str();
  } else if (C.ModelInline) {
    if (!readHFConfig(ConfigDoc, "/model", Diags, M))
      return std::nullopt;
    M.Description = "inline " + M.Description;
    return M;
  } else if (C.ModelPath) {
    Where = C.ModelLoc;
    llvm::SmallString<256> P(*C.ModelPath);
    if (!llvm::sys::path::is_absolute(P)) {
      P = llvm::sys::path::parent_path(C.Path);
      llvm::sys::path::append(P, *C.ModelPath);
    }
    llvm::sys::path::remove_dots(P, /*remove_dot_dot=*/true);
    if (P.empty())
      P = ".";
    Path = std::string(P.str());
  } else {
    Diags.error(Loc::inFile(C.Path), "no model: add a \"model\" key (a path to an HF config.json, safetensors "
                                     "file, index or folder, or an inline HF config) or pass --model PATH");
    return std::nullopt;
  }

  std::string ConfigJson, Safetensors;
  bool FromFolder = false;
  llvm::StringRef Ext = llvm::sys::path::extension(Path);
  if (llvm::sys::fs::is_directory(Path)) {
    llvm::SmallString<256> Cfg(Path);
    llvm::sys::path::append(Cfg, "config.json");
    if (llvm::sys::fs::exists(Cfg))
      ConfigJson = std::string(Cfg.str());
    std::optional<std::string> Weights = folderWeights(Path, Where, Diags);
    if (!Weights)
      return std::nullopt;
    Safetensors = *Weights;
    FromFolder = true;
    if (ConfigJson.empty() && Safetensors.empty()) {
      Diags.error(Where.isValid() ? Where : Loc::inFile(Path),
                  "model folder '" + Path + "' holds neither a config.json nor safetensors files");
      return std::nullopt;
    }
  } else if (!llvm::sys::fs::exists(Path)) {
    Diags.error(Where.isValid() ? Where : Loc::inFile(Path), "cannot find model '" + Path + "'");
    return std::nullopt;
  } else if (Ext == ".safetensors" || llvm::StringRef(Path).endswith(".index.json")) {
    Safetensors = Path;
    llvm::SmallString<256> Cfg(llvm::sys::path::parent_path(Path));
    llvm::sys::path::append(Cfg, "config.json");
    if (llvm::sys::fs::exists(Cfg))
      ConfigJson = std::string(Cfg.str());
  } else {
    ConfigJson = Path;
  }

  if (!ConfigJson.empty()) {
    Docs.push_back(JsonDoc::load(Diags, ConfigJson, ConfigJson));
    if (!Docs.back() || !readHFConfig(*Docs.back(), "", Diags, M))
      return std::nullopt;
    M.Description = ConfigJson + " (" + M.Dims->Family + ")";
  }
  if (Safetensors.empty())
    return M;
  llvm::Expected<SafetensorsInventory> St = readSafetensorsInventory(Safetensors);
  if (!St) {
    Diags.error(llvm::toString(St.takeError())); // the message names the file and tensor
    return std::nullopt;
  }
  std::string What = "safetensors headers of " + Safetensors + " (" + std::to_string(St->Files.size()) + " file" +
                     (St->Files.size() == 1 ? "" : "s") + ")";
  if (FromFolder) {
    // Say which files were read when others were left alone, so that a
    // stray file is not mistaken for part of the model.
    std::vector<std::string> Ignored;
    for (const std::string &N : weightFiles(llvm::sys::path::parent_path(Safetensors))) {
      llvm::SmallString<256> P(llvm::sys::path::parent_path(Safetensors));
      llvm::sys::path::append(P, N);
      if (P != Safetensors && !llvm::is_contained(St->Files, std::string(P.str())))
        Ignored.push_back(N);
    }
    if (!Ignored.empty())
      Diags.remark(Loc::inFile(Safetensors),
                   "the model's weights are read from '" + llvm::sys::path::filename(Safetensors) +
                       "', as transformers reads a model folder; " + quotedList(Ignored) +
                       (Ignored.size() == 1 ? " is" : " are") + " not part of the model and ignored");
  }
  if (M.Dims) {
    crossCheck(*St, Safetensors, Diags, M);
    M.Description = What + ", checked against " + M.Description;
    return M;
  }
  for (const StoredTensor &T : St->Tensors) {
    ParamInfo P;
    P.Name = T.Name;
    P.Shape = T.Shape;
    P.DType = T.DType;
    M.Params.push_back(std::move(P));
  }
  M.Description = What;
  return M;
}
