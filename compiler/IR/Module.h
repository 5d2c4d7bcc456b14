//===- Module.h - the partition IR ---------------------------------------===//
//
// A Module is the model's ordered parameter inventory and, for each
// parameter, its Partition: replicate / column / row, the logical shape and
// partition dim it was split along, the sub-parameter sizes of fused weights,
// the spec that decided it, and every TP rank's shard as boxes ([start, end)
// per dimension) of the full tensor. Uneven splits are representable: each
// rank has its own length per sub-parameter.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_IR_MODULE_H
#define AUTOTPC_IR_MODULE_H

#include "Model/Model.h"
#include "Spec/Config.h"

namespace autotpc {

enum class PartKind { Replicate, Column, Row };
const char *partKindName(PartKind K);

/// Why a parameter got its partition.
enum class Decision {
  Spec,          ///< a column/row layer spec matched its weight
  Skip,          ///< a skip spec matched
  Unmatched,     ///< a 2-D weight no spec matched: replicated (DeepSpeed since #7827)
  NotMatched,    ///< not a 2-D ".weight" (norms, 3-D experts): never matched, replicated
  BiasFollows,   ///< a bias: follows its weight (column split, row replicated)
  SpecError,     ///< the deciding spec could not be applied (reported); kept whole
  TpOff,         ///< autotp_size <= 1: DeepSpeed partitions nothing
};
const char *decisionName(Decision D);

/// A box of the full tensor: [start, end) along every dimension.
struct Box {
  std::vector<std::pair<int64_t, int64_t>> Ranges;
};

/// One TP rank's piece of a parameter.
struct Shard {
  std::vector<int64_t> Shape;  ///< the local tensor's shape
  std::vector<Box> Boxes;      ///< where its elements come from, in order
};

struct Partition {
  PartKind Kind = PartKind::Replicate;
  Decision Why = Decision::NotMatched;
  int SpecIndex = -1;               ///< into Module::Specs; -1 if none
  std::vector<int64_t> Logical;     ///< logical view the split is defined on
  int PartitionDim = -1;            ///< dim of Logical that is split; -1 if replicated
  std::vector<int64_t> SubSizes;    ///< sub-parameter sizes along PartitionDim (one = not fused)
  std::optional<int> BiasPartitionDim;  ///< for weights with `shape`: where a bias is split
  /// RankSizes[r][i]: how much of sub-parameter i TP rank r holds.
  std::vector<std::vector<int64_t>> RankSizes;
};

struct Param {
  ParamInfo Info;
  Partition Part;
  int WeightIndex = -1;         ///< for a bias: the parameter index of its weight
  std::vector<Shard> Shards;    ///< one per TP rank
  bool isWeight2D() const;
};

/// The IR of one model under one config.
struct Module {
  int64_t TpSize = 1;
  std::string ConfigPath;
  std::string ModelDescription;
  std::string ModelType;                   ///< lower-case; empty when unknown
  std::optional<ModelDims> Dims;
  std::vector<LayerSpec> Specs;            ///< effective order: custom specs, then the preset's
  std::vector<Param> Params;
  /// Per spec and pattern: how many 2-D weights the pattern matches.
  std::vector<std::vector<unsigned>> PatternMatches;
  /// Per spec and pattern: whether the regex compiled (invalid ones were reported).
  std::vector<std::vector<bool>> PatternValid;
  /// Per spec: how many 2-D weights it matches, and how many it decides.
  std::vector<unsigned> SpecMatches, SpecWins;
  /// Per spec: the first parameter name it matches but does not decide.
  std::vector<std::string> SpecFirstShadowed;
  /// Per spec and pattern: a parameter that is never matched (bias, 1-D) but
  /// that the pattern would match; empty if none.
  std::vector<std::vector<std::string>> PatternOnlyOthers;
  /// Per spec and pattern, for patterns matching nothing: a 2-D weight the
  /// pattern finds somewhere inside the name (re.search), which re.match misses.
  std::vector<std::vector<std::string>> PatternSearchHit;
};

} // namespace autotpc

#endif // AUTOTPC_IR_MODULE_H
