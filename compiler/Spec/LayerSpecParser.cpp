//===- LayerSpecParser.cpp - one layer spec, with DeepSpeed's checks ----===//
//
// Parses a layer spec object (reference §1.4) and runs the config-time
// `shape` validation of DeepSpeed's TPLayerSpec.__post_init__ (§3.1). The
// messages keep DeepSpeed's wording as their stem so that users can search
// for them; the value that was wrong follows in parentheses.
//
//===----------------------------------------------------------------------===//
#include "Spec/Config.h"
#include "Spec/JsonReader.h"

#include "llvm/ADT/StringExtras.h"

using namespace autotpc;

const char *autotpc::partitionTypeName(PartitionType T) {
  switch (T) {
  case PartitionType::Column: return "column";
  case PartitionType::Row: return "row";
  case PartitionType::Skip: return "skip";
  }
  return "?";
}

static bool readStringList(JsonReader &R, DiagEngine &Diags, llvm::StringRef Key,
                           std::vector<std::string> &Out, std::vector<Loc> *Locs,
                           llvm::StringRef ExtraHint) {
  const nlohmann::json *V = R.get(Key);
  if (!V)
    return true;
  if (!V->is_array()) {
    Diags.error(R.value(Key), "'" + Key + "' must be a list of strings" + ExtraHint);
    return false;
  }
  bool Ok = true;
  for (size_t I = 0; I < V->size(); ++I) {
    std::string P = JsonDoc::child(R.ptr(Key), I);
    if (!(*V)[I].is_string()) {
      Diags.error(R.doc().value(P), "'" + Key + "' entries must be strings");
      Ok = false;
      continue;
    }
    Out.push_back((*V)[I].get<std::string>());
    if (Locs)
      Locs->push_back(R.doc().value(P));
  }
  return Ok;
}

/// DeepSpeed's _validate_shape_format, with each error at the offending entry.
static bool validateShape(const JsonDoc &Doc, const std::string &ShapePtr, DiagEngine &Diags,
                          LayerSpec &Spec) {
  const nlohmann::json &Shape = *Doc.get(ShapePtr);
  if (!Shape.is_array()) {
    Diags.error(Doc.value(ShapePtr), "AutoTP shape must be a tuple of ints or a tuple at partition_dim");
    return false;
  }
  int64_t PD = Spec.partitionDim();
  int64_t N = int64_t(Shape.size());
  if (PD < 0 || PD >= N) {
    Loc At = Spec.PartitionDim ? Spec.PartitionDimLoc : Doc.value(ShapePtr);
    Diags.error(At, "AutoTP partition_dim " + llvm::Twine(PD) + " is out of range for shape length " +
                        llvm::Twine(N));
    return false;
  }
  bool Ok = true;
  std::vector<ShapeEntry> Entries;
  for (int64_t I = 0; I < N; ++I) {
    const nlohmann::json &E = Shape[size_t(I)];
    Loc At = Doc.value(JsonDoc::child(ShapePtr, size_t(I)));
    ShapeEntry SE;
    if (E.is_array()) {
      SE.IsList = true;
      if (I != PD) {
        Diags.error(At, "AutoTP shape nested tuple only allowed at partition_dim=" + llvm::Twine(PD) +
                            ", got at " + llvm::Twine(I));
        Ok = false;
        continue;
      }
      if (E.empty()) {
        Diags.error(At, "AutoTP shape nested tuple cannot be empty");
        Ok = false;
        continue;
      }
      for (size_t J = 0; J < E.size(); ++J) {
        Loc EAt = Doc.value(JsonDoc::child(JsonDoc::child(ShapePtr, size_t(I)), J));
        if (E[J].is_array()) {
          Diags.error(EAt, "AutoTP shape supports only 1-level nesting at partition_dim");
          Ok = false;
        } else if (!E[J].is_number_integer() || E[J].get<int64_t>() <= 0) {
          Diags.error(EAt, "AutoTP nested sub-parameter sizes must be positive integers (got " +
                               E[J].dump() + ")");
          Ok = false;
        } else {
          SE.Sizes.push_back(E[J].get<int64_t>());
        }
      }
    } else if (E.is_number_integer() && !E.is_boolean()) {
      SE.Value = E.get<int64_t>();
      if (SE.Value <= 0 && SE.Value != -1) {
        Diags.error(At, "AutoTP shape dimensions must be positive integers or -1 (got " +
                            llvm::Twine(SE.Value) + ")");
        Ok = false;
      }
    } else {
      Diags.error(At, "AutoTP shape must contain only integers or a tuple at partition_dim (got " +
                          E.dump() + ")");
      Ok = false;
    }
    Entries.push_back(SE);
  }
  if (Ok)
    Spec.Shape = std::move(Entries);
  return Ok;
}

bool autotpc::parseLayerSpec(const JsonDoc &Doc, llvm::StringRef Pointer, DiagEngine &Diags,
                             llvm::StringRef Origin, LayerSpec &Out) {
  Out.Origin = Origin.str();
  Out.SpecLoc = Doc.value(Pointer);
  JsonReader R(Doc, Diags, Pointer.str(), Origin.str());
  if (!R.requireObject())
    return false;
  static const llvm::StringRef Known[] = {"patterns", "partition_type", "shape", "partition_dim",
                                          "model_types", "gather_output", "grad_allreduce"};
  R.checkKeys(Known, /*AsError=*/false, "DeepSpeed reads only the keys it knows and ignores the rest");

  bool Ok = true;
  if (R.get("patterns") && R.get("patterns")->is_string()) {
    Diags.error(R.value("patterns"), "'patterns' must be a list of regex strings, not a string");
    Diags.note(R.value("patterns"), "DeepSpeed would iterate over the characters of the string");
    Ok = false;
  } else {
    Ok &= readStringList(R, Diags, "patterns", Out.Patterns, &Out.PatternLocs, "");
  }

  std::optional<std::string> Type;
  Ok &= R.readString("partition_type", Type, &Out.TypeLoc);
  if (Type) {
    std::string Lower = llvm::StringRef(*Type).lower();
    if (Lower == "column")
      Out.Type = PartitionType::Column;
    else if (Lower == "row")
      Out.Type = PartitionType::Row;
    else if (Lower == "skip")
      Out.Type = PartitionType::Skip;
    else {
      Diags.error(Out.TypeLoc, "'" + *Type + "' is not a valid PartitionType (expected column, row or skip)");
      Ok = false;
    }
  }

  if (R.has("partition_dim") && !R.get("partition_dim")->is_null()) {
    int64_t PD = 0;
    if (R.readInt("partition_dim", PD, &Out.PartitionDimLoc))
      Out.PartitionDim = PD;
    else
      Ok = false;
  }
  if (R.has("shape") && !R.get("shape")->is_null()) {
    Out.ShapeLoc = R.value("shape");
    Ok &= validateShape(Doc, R.ptr("shape"), Diags, Out);
  }
  if (R.has("model_types") && !R.get("model_types")->is_null()) {
    std::vector<std::string> Types;
    Out.ModelTypesLoc = R.value("model_types");
    if (readStringList(R, Diags, "model_types", Types, nullptr, "")) {
      for (std::string &T : Types)
        T = llvm::StringRef(T).lower();
      Out.ModelTypes = std::move(Types);
    } else {
      Ok = false;
    }
  }
  Ok &= R.readBool("gather_output", Out.GatherOutput, &Out.GatherOutputLoc);
  Ok &= R.readBool("grad_allreduce", Out.GradAllreduce, &Out.GradAllreduceLoc);
  return Ok;
}
