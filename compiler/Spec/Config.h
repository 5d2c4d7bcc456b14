//===- Config.h - a DeepSpeed config, as plain structs with locations ---===//
//
// Mirrors the JSON keys DeepSpeed reads for AutoTP training (reference §1.2 to
// §1.4) plus the ZeRO, precision, batch, optimizer and scheduler sections that
// later stages consume. Every value that a diagnostic may point at keeps the
// Loc of its JSON value; a Loc is invalid when the value was defaulted.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_SPEC_CONFIG_H
#define AUTOTPC_SPEC_CONFIG_H

#include "Support/Diagnostics.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace autotpc {

class JsonDoc;

enum class PartitionType { Column, Row, Skip };
const char *partitionTypeName(PartitionType T);

/// One entry of `shape`: an int (a size, a sub-parameter count, or -1) or, at
/// partition_dim only, a list of explicit sub-parameter sizes.
struct ShapeEntry {
  bool IsList = false;
  int64_t Value = 0;
  std::vector<int64_t> Sizes;
};

/// One layer spec (reference §1.4).
struct LayerSpec {
  std::vector<std::string> Patterns;
  std::vector<Loc> PatternLocs;
  PartitionType Type = PartitionType::Column;
  Loc TypeLoc;
  std::optional<std::vector<ShapeEntry>> Shape;
  Loc ShapeLoc;
  std::optional<int64_t> PartitionDim;
  Loc PartitionDimLoc;
  std::optional<std::vector<std::string>> ModelTypes;
  Loc ModelTypesLoc;
  bool GatherOutput = false;
  Loc GatherOutputLoc;
  bool GradAllreduce = false;
  Loc GradAllreduceLoc;
  Loc SpecLoc;         ///< the whole spec object
  std::string Origin;  ///< "layer_specs[2]" or "preset 'llama' spec 1"
  bool FromPreset = false;

  /// DeepSpeed's get_partition_dim: the given one, else 0 for column and 1 for row.
  int64_t partitionDim() const {
    return PartitionDim ? *PartitionDim : (Type == PartitionType::Row ? 1 : 0);
  }
  /// Where to point for "this spec decided it": its first pattern, or the spec.
  Loc anchor() const { return PatternLocs.empty() ? SpecLoc : PatternLocs.front(); }
};

/// The `tensor_parallel` section (reference §1.2, §1.3).
struct TensorParallelConfig {
  int64_t AutotpSize = 0;
  Loc AutotpSizeLoc;
  std::optional<std::string> PresetModel;
  Loc PresetModelLoc;
  bool HasPartitionConfig = false;
  Loc PartitionConfigLoc;
  bool UseDefaultSpecs = true;
  bool StrictMode = false;
  Loc StrictModeLoc;
  std::vector<LayerSpec> LayerSpecs;  ///< the user's own specs, in order
  bool TpOverlapComm = false;
  int64_t TpSize = 1;                 ///< tensor_parallel.tp.tp_size
  Loc TpSizeLoc;
  int64_t TpGrainSize = 1;            ///< tensor_parallel.tp.tp_grain_size
  std::string DType = "float16";      ///< tensor_parallel.dtype
  bool KeepModuleOnHost = false;
};

enum class Precision { FP32, FP16, BF16 };
const char *precisionName(Precision P);

/// `zero_optimization` (the keys later stages use; others are carried as is).
struct ZeroConfig {
  int64_t Stage = 0;
  Loc StageLoc;
  int64_t ReduceBucketSize = 500000000;
  Loc ReduceBucketSizeLoc;
  int64_t AllgatherBucketSize = 500000000;
  bool OverlapComm = false;
  bool ContiguousGradients = true;
  bool ReduceScatter = true;
};

/// `fp16` dynamic loss scaling parameters (DeepSpeed's defaults); each Loc
/// is invalid when the value was defaulted.
struct LossScaleConfig {
  double LossScale = 0;  ///< 0 = dynamic
  int64_t InitialScalePower = 16;
  int64_t LossScaleWindow = 1000;
  int64_t Hysteresis = 2;
  double MinLossScale = 1;
  Loc LossScaleLoc, InitialScalePowerLoc, LossScaleWindowLoc, HysteresisLoc, MinLossScaleLoc;
};

/// An `optimizer` or `scheduler` section: a type and its params. Which
/// params a type takes, and their types, is checked where they are used
/// (Lower/ZeroSettings.cpp); here a param is numbers or a string.
struct NamedSection {
  std::string Type;
  Loc TypeLoc;
  Loc SectionLoc;                                     ///< the section's object
  std::map<std::string, std::vector<double>> Params;  ///< numbers and booleans; scalars have one element
  std::map<std::string, std::string> Strings;         ///< string params (e.g. warmup_type), "auto" excluded
  std::map<std::string, bool> IsList;                 ///< whether a numeric param was given as a list
  std::map<std::string, Loc> ParamLocs;               ///< every param's value
};

/// An optional positive integer key of the batch arithmetic.
struct BatchKey {
  std::optional<int64_t> Value;
  bool Auto = false;  ///< given as "auto": left to the launcher
  Loc L;
};

/// The `activation_checkpointing` section. DeepSpeed's model code decides which calls to checkpoint; for
/// autotpc's trainer the section is the switch: present, every decoder layer keeps only its input and is
/// recomputed in backward. The options record what the config asks, for the trainer's diagnostics.
struct ActivationCheckpointingConfig {
  bool Present = false;
  Loc SectionLoc;
  bool PartitionActivations = false, CpuCheckpointing = false, ContiguousMemory = false;
  Loc PartitionLoc, CpuLoc, ContiguousLoc;
  std::optional<int64_t> NumberCheckpoints;
  Loc NumberCheckpointsLoc;
};

/// The whole DeepSpeed config, as far as autotpc reads it.
struct Config {
  std::string Path;  ///< the config file as named on the command line
  TensorParallelConfig TP;
  ZeroConfig Zero;
  Precision Prec = Precision::FP32;
  Loc PrecLoc;
  LossScaleConfig LossScale;
  BatchKey TrainBatch, MicroBatch, GradAccum;
  double GradientClipping = 0;
  Loc GradientClippingLoc;
  ActivationCheckpointingConfig ActivationCheckpointing;
  std::optional<NamedSection> Optimizer, Scheduler;
  /// The "model" key: a path (relative to the config file) or an inline object.
  std::optional<std::string> ModelPath;
  bool ModelInline = false;
  Loc ModelLoc;
};

/// Reads a DeepSpeed config document into Config. Reports unknown, ill-typed
/// and invalid values; returns false if there were errors.
bool parseConfig(const JsonDoc &Doc, DiagEngine &Diags, Config &Out);

/// Parses one layer spec object at Pointer of Doc (shared by user configs and
/// the preset files). Origin names it in messages.
bool parseLayerSpec(const JsonDoc &Doc, llvm::StringRef Pointer, DiagEngine &Diags,
                    llvm::StringRef Origin, LayerSpec &Out);

} // namespace autotpc

#endif // AUTOTPC_SPEC_CONFIG_H
