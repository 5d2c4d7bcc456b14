//===- ConfigParser.cpp - DeepSpeed config JSON -> Config ---------------===//
//
// Same keys, defaults and strictness as DeepSpeed: `tensor_parallel` and its
// `tp` object are pydantic models with extra="forbid" (unknown keys are
// errors); `partition_config` and layer specs are plain dicts read with .get
// (unknown keys are ignored, so we warn); "auto" means the default.
//
//===----------------------------------------------------------------------===//
#include "Spec/Config.h"
#include "Spec/JsonReader.h"

#include "llvm/ADT/StringExtras.h"

using namespace autotpc;

const char *autotpc::precisionName(Precision P) {
  switch (P) {
  case Precision::FP32: return "fp32";
  case Precision::FP16: return "fp16";
  case Precision::BF16: return "bf16";
  }
  return "?";
}

static bool parsePartitionConfig(const JsonDoc &Doc, DiagEngine &Diags, TensorParallelConfig &TP) {
  const std::string Ptr = "/tensor_parallel/partition_config";
  JsonReader R(Doc, Diags, Ptr, "partition_config");
  if (!R.requireObject())
    return false;
  static const llvm::StringRef Known[] = {"use_default_specs", "layer_specs", "strict_mode", "tp_size",
                                          "embedding_partition_dim", "lm_head_patterns"};
  R.checkKeys(Known, /*AsError=*/false, "DeepSpeed reads only the keys it knows and ignores the rest");
  for (llvm::StringRef Dead : {"tp_size", "embedding_partition_dim", "lm_head_patterns"}) {
    if (!R.has(Dead))
      continue;
    Diags.warning(R.key(Dead), "ignored-key",
                  "'" + Dead + "' in partition_config is accepted but has no effect");
    Diags.note(R.key(Dead), Dead == "tp_size" ? "DeepSpeed overwrites it with tensor_parallel.autotp_size"
                                              : "DeepSpeed parses it but never reads it");
  }
  bool Ok = R.readBool("use_default_specs", TP.UseDefaultSpecs);
  Ok &= R.readBool("strict_mode", TP.StrictMode, &TP.StrictModeLoc);
  const nlohmann::json *Specs = R.get("layer_specs");
  if (!Specs || Specs->is_null())
    return Ok;
  if (!Specs->is_array()) {
    Diags.error(R.value("layer_specs"), "'layer_specs' must be a list of layer spec objects");
    return false;
  }
  for (size_t I = 0; I < Specs->size(); ++I) {
    LayerSpec S;
    if (parseLayerSpec(Doc, JsonDoc::child(R.ptr("layer_specs"), I), Diags,
                       "layer_specs[" + std::to_string(I) + "]", S))
      TP.LayerSpecs.push_back(std::move(S));
    else
      Ok = false;
  }
  return Ok;
}

static bool parseTpObject(const JsonDoc &Doc, DiagEngine &Diags, llvm::StringRef Key, TensorParallelConfig &TP) {
  JsonReader R(Doc, Diags, JsonDoc::child("/tensor_parallel", Key), "tensor_parallel." + Key.str());
  if (!R.requireObject())
    return false;
  static const llvm::StringRef Known[] = {"tp_size", "tp_grain_size", "mpu", "tp_group"};
  bool Ok = R.checkKeys(Known, /*AsError=*/true, "DeepSpeed's TPConfig forbids extra inputs");
  Ok &= R.readInt("tp_size", TP.TpSize, &TP.TpSizeLoc);
  bool GrainOk = R.readInt("tp_grain_size", TP.TpGrainSize);
  Ok &= GrainOk;
  for (llvm::StringRef Obj : {"mpu", "tp_group"})
    if (R.has(Obj) && !R.get(Obj)->is_null()) {
      Diags.error(R.value(Obj), "'" + Obj + "' is a process-group object set by tp_model_init; it cannot come "
                                            "from a JSON config");
      Ok = false;
    }
  if (GrainOk && TP.TpGrainSize <= 0) {
    Diags.error(R.value("tp_grain_size"), "'tp_grain_size' must be positive (got " + llvm::Twine(TP.TpGrainSize) + ")");
    Ok = false;
  }
  return Ok;
}

static bool parseTensorParallel(const JsonDoc &Doc, DiagEngine &Diags, TensorParallelConfig &TP) {
  JsonReader R(Doc, Diags, "/tensor_parallel", "tensor_parallel");
  if (!R.requireObject())
    return false;
  static const llvm::StringRef Known[] = {
      "autotp_size", "preset_model", "partition_config", "tp_overlap_comm", "tp", "tensor_parallel", "dtype",
      "keep_module_on_host", "replace_with_kernel_inject", "kernel_inject", "injection_policy_tuple"};
  bool Ok = R.checkKeys(Known, /*AsError=*/true, "DeepSpeed's TPTrainingConfig forbids extra inputs");
  bool SizeOk = R.readInt("autotp_size", TP.AutotpSize, &TP.AutotpSizeLoc);
  if (SizeOk && TP.AutotpSize < 0) {
    Diags.error(TP.AutotpSizeLoc, "'autotp_size' must not be negative (got " + llvm::Twine(TP.AutotpSize) + ")");
    SizeOk = false;
  }
  // Each TP rank gets its own shard list; a size past any GPU count is a typo.
  constexpr int64_t MaxTp = 65536;
  if (SizeOk && TP.AutotpSize > MaxTp) {
    Diags.error(TP.AutotpSizeLoc, "'autotp_size' (" + llvm::Twine(TP.AutotpSize) + ") is larger than " +
                                      llvm::Twine(MaxTp) + ", the largest TP size autotpc supports");
    SizeOk = false;
  }
  Ok &= SizeOk;
  Ok &= R.readString("preset_model", TP.PresetModel, &TP.PresetModelLoc);
  Ok &= R.readBool("tp_overlap_comm", TP.TpOverlapComm);
  Ok &= R.readBool("keep_module_on_host", TP.KeepModuleOnHost);
  std::optional<std::string> DType;
  Loc DTypeLoc;
  Ok &= R.readString("dtype", DType, &DTypeLoc);
  if (DType) {
    static const llvm::StringRef Dtypes[] = {"float16", "fp16", "half", "torch.float16", "bfloat16", "bf16",
                                             "torch.bfloat16", "float32", "fp32", "float", "torch.float32"};
    if (!llvm::is_contained(Dtypes, llvm::StringRef(*DType))) {
      Diags.error(DTypeLoc, "'dtype' must name a floating-point torch dtype (float16, bfloat16, float32), got '" +
                                *DType + "'");
      Ok = false;
    }
    TP.DType = *DType;
  }
  for (llvm::StringRef Leftover : {"replace_with_kernel_inject", "kernel_inject", "injection_policy_tuple"})
    if (R.has(Leftover))
      Diags.warning(R.key(Leftover), "ignored-key",
                    "'" + Leftover + "' is an inference option; AutoTP training ignores it");
  if (R.has("tp") && R.has("tensor_parallel")) {
    Diags.error(R.key("tensor_parallel"), "'tp' and 'tensor_parallel' name the same field; give only one");
    Diags.note(R.key("tp"), "'tp' given here");
    Ok = false;
  }
  // Both names set the same field; after the error above, read only one.
  if (R.has("tp"))
    Ok &= parseTpObject(Doc, Diags, "tp", TP);
  else if (R.has("tensor_parallel"))
    Ok &= parseTpObject(Doc, Diags, "tensor_parallel", TP);
  if (R.has("partition_config") && !R.get("partition_config")->is_null()) {
    TP.HasPartitionConfig = true;
    TP.PartitionConfigLoc = R.key("partition_config");
    Ok &= parsePartitionConfig(Doc, Diags, TP);
  }
  if (SizeOk && TP.TpSize != 1 && TP.TpSize != TP.AutotpSize) {
    Diags.error(TP.TpSizeLoc, "tensor_parallel.tp.tp_size (" + llvm::Twine(TP.TpSize) +
                                  ") does not match tensor_parallel.autotp_size (" + llvm::Twine(TP.AutotpSize) + ")");
    Ok = false;
  }
  return Ok;
}

static bool parseBatchKey(JsonReader &R, DiagEngine &Diags, llvm::StringRef Key, BatchKey &Out) {
  const nlohmann::json *V = R.get(Key);
  if (!V || V->is_null())
    return true;
  Out.L = R.value(Key);
  if (V->is_string() && V->get<std::string>() == "auto") {
    Out.Auto = true;
    Diags.remark(Out.L, "'" + Key + "' is \"auto\"; it is left to the launcher and not checked");
    return true;
  }
  int64_t X = 0;
  if (!R.readInt(Key, X))
    return false;
  if (X <= 0) {
    Diags.error(Out.L, "'" + Key + "' must be positive (got " + llvm::Twine(X) + ")");
    return false;
  }
  Out.Value = X;
  return true;
}

static bool parseNamedSection(const JsonDoc &Doc, DiagEngine &Diags, llvm::StringRef Key,
                              std::optional<NamedSection> &Out) {
  JsonReader R(Doc, Diags, JsonDoc::child("", Key), Key.str());
  if (!R.requireObject())
    return false;
  NamedSection S;
  S.SectionLoc = Doc.value(JsonDoc::child("", Key));
  std::optional<std::string> Type;
  bool Ok = R.readString("type", Type, &S.TypeLoc);
  if (!Type) {
    Diags.error(Doc.value(JsonDoc::child("", Key)), "'" + Key + "' needs a 'type'");
    return false;
  }
  S.Type = *Type;
  if (const nlohmann::json *P = R.get("params")) {
    if (!P->is_object()) {
      Diags.error(R.value("params"), "'" + Key + ".params' must be an object");
      return false;
    }
    for (const auto &[Name, V] : P->items()) {
      std::vector<double> Values;
      const Loc At = Doc.value(JsonDoc::child(R.ptr("params"), Name));
      if (V.is_number())
        Values.push_back(V.get<double>());
      else if (V.is_boolean())
        Values.push_back(V.get<bool>() ? 1 : 0);
      else if (V.is_array() && std::all_of(V.begin(), V.end(), [](const nlohmann::json &E) { return E.is_number(); }))
        for (const auto &E : V)
          Values.push_back(E.get<double>());
      else if (V.is_string() && V.get<std::string>() == "auto")
        continue; // left to the launcher, as DeepSpeed's HF integration does
      else if (V.is_string()) {
        S.Strings[Name] = V.get<std::string>();
        S.ParamLocs[Name] = At;
        continue;
      } else {
        Diags.error(Doc.value(JsonDoc::child(R.ptr("params"), Name)),
                    "'" + Key + ".params." + Name + "' must be a number, a string or a list of numbers");
        Ok = false;
        continue;
      }
      S.IsList[Name] = V.is_array();
      S.ParamLocs[Name] = At;
      S.Params[Name] = std::move(Values);
    }
  }
  Out = std::move(S);
  return Ok;
}

static bool parsePrecision(const JsonDoc &Doc, DiagEngine &Diags, Config &C) {
  bool Ok = true;
  bool Fp16 = false, Bf16 = false;
  Loc Fp16Loc, Bf16Loc;
  if (Doc.get("/fp16")) {
    JsonReader R(Doc, Diags, "/fp16", "fp16");
    if (!R.requireObject())
      return false;
    Ok &= R.readBool("enabled", Fp16, &Fp16Loc);
    LossScaleConfig &LS = C.LossScale;
    Ok &= R.readNumber("loss_scale", LS.LossScale, &LS.LossScaleLoc);
    Ok &= R.readInt("initial_scale_power", LS.InitialScalePower, &LS.InitialScalePowerLoc);
    Ok &= R.readInt("loss_scale_window", LS.LossScaleWindow, &LS.LossScaleWindowLoc);
    Ok &= R.readInt("hysteresis", LS.Hysteresis, &LS.HysteresisLoc);
    Ok &= R.readNumber("min_loss_scale", LS.MinLossScale, &LS.MinLossScaleLoc);
  }
  for (llvm::StringRef Key : {"bf16", "bfloat16"}) { // "bfloat16" is DeepSpeed's legacy name
    if (!Doc.get(JsonDoc::child("", Key)))
      continue;
    JsonReader R(Doc, Diags, JsonDoc::child("", Key), Key.str());
    if (!R.requireObject())
      return false;
    bool On = false;
    Ok &= R.readBool("enabled", On, &Bf16Loc);
    Bf16 |= On;
  }
  if (Fp16 && Bf16) {
    Diags.error(Bf16Loc, "bfloat16 and fp16 modes cannot be simultaneously enabled");
    Diags.note(Fp16Loc, "fp16 enabled here");
    return false;
  }
  C.Prec = Fp16 ? Precision::FP16 : Bf16 ? Precision::BF16 : Precision::FP32;
  C.PrecLoc = Fp16 ? Fp16Loc : Bf16Loc;
  return Ok;
}

bool autotpc::parseConfig(const JsonDoc &Doc, DiagEngine &Diags, Config &C) {
  C.Path = Doc.name().str();
  if (!Doc.root().is_object()) {
    Diags.error(Doc.value(""), "a DeepSpeed config must be a JSON object");
    return false;
  }
  bool Ok = true;
  if (Doc.get("/tensor_parallel"))
    Ok &= parseTensorParallel(Doc, Diags, C.TP);

  if (Doc.get("/zero_optimization")) {
    JsonReader Z(Doc, Diags, "/zero_optimization", "zero_optimization");
    if (Z.requireObject()) {
      Ok &= Z.readInt("stage", C.Zero.Stage, &C.Zero.StageLoc);
      bool BucketOk = Z.readInt("reduce_bucket_size", C.Zero.ReduceBucketSize, &C.Zero.ReduceBucketSizeLoc);
      if (BucketOk && C.Zero.ReduceBucketSize < 0) { // DeepSpeed's pydantic field: ge=0
        Diags.error(C.Zero.ReduceBucketSizeLoc,
                    "'reduce_bucket_size' must not be negative (got " + llvm::Twine(C.Zero.ReduceBucketSize) + ")");
        BucketOk = false;
      }
      Ok &= BucketOk;
      Ok &= Z.readInt("allgather_bucket_size", C.Zero.AllgatherBucketSize);
      Ok &= Z.readBool("overlap_comm", C.Zero.OverlapComm);
      Ok &= Z.readBool("contiguous_gradients", C.Zero.ContiguousGradients);
      Ok &= Z.readBool("reduce_scatter", C.Zero.ReduceScatter);
      if (C.Zero.Stage < 0 || C.Zero.Stage > 3) {
        Diags.error(C.Zero.StageLoc, "'stage' must be 0, 1, 2 or 3 (got " + llvm::Twine(C.Zero.Stage) + ")");
        Ok = false;
      }
    } else {
      Ok = false;
    }
  }
  Ok &= parsePrecision(Doc, Diags, C);

  JsonReader Top(Doc, Diags, "", "the config");
  Ok &= parseBatchKey(Top, Diags, "train_batch_size", C.TrainBatch);
  Ok &= parseBatchKey(Top, Diags, "train_micro_batch_size_per_gpu", C.MicroBatch);
  Ok &= parseBatchKey(Top, Diags, "gradient_accumulation_steps", C.GradAccum);
  Ok &= Top.readNumber("gradient_clipping", C.GradientClipping, &C.GradientClippingLoc);
  if (Doc.get("/activation_checkpointing")) {
    ActivationCheckpointingConfig &A = C.ActivationCheckpointing;
    JsonReader R(Doc, Diags, "/activation_checkpointing", "activation_checkpointing");
    if (R.requireObject()) {
      A.Present = true;
      A.SectionLoc = Doc.value("/activation_checkpointing");
      Ok &= R.readBool("partition_activations", A.PartitionActivations, &A.PartitionLoc);
      Ok &= R.readBool("cpu_checkpointing", A.CpuCheckpointing, &A.CpuLoc);
      Ok &= R.readBool("contiguous_memory_optimization", A.ContiguousMemory, &A.ContiguousLoc);
      const nlohmann::json *N = Doc.get("/activation_checkpointing/number_checkpoints");
      if (N && !N->is_null()) { // DeepSpeed's default is null
        int64_t Value = 0;
        Ok &= R.readInt("number_checkpoints", Value, &A.NumberCheckpointsLoc);
        A.NumberCheckpoints = Value;
      }
    } else {
      Ok = false;
    }
  }
  if (Doc.get("/optimizer"))
    Ok &= parseNamedSection(Doc, Diags, "optimizer", C.Optimizer);
  if (Doc.get("/scheduler"))
    Ok &= parseNamedSection(Doc, Diags, "scheduler", C.Scheduler);

  if (const nlohmann::json *M = Doc.get("/model")) {
    C.ModelLoc = Doc.value("/model");
    if (M->is_string())
      C.ModelPath = M->get<std::string>();
    else if (M->is_object())
      C.ModelInline = true;
    else {
      Diags.error(C.ModelLoc, "'model' must be a path (relative to this config) or an HF config object");
      Ok = false;
    }
  }
  return Ok;
}
