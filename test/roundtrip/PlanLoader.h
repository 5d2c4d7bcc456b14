//===- PlanLoader.h - compile a tiny spec in process, as plan tables -----===//
//
// Tests of the runtime's plan-driven routines need an atp::ModelPlan for
// many (model, TP) pairs; building a generated project for each would be
// slow, so they load the same tables plan.cpp states (autotpc::planTables)
// in process. compileTinyZero adds the atp::ZeroPlan that zero.cpp states
// (the same ZeroLayout pass and ZeroSettings lowering) and the ledger of
// --emit=memory, for the ZeRO engine's tests; compileTinyTrain adds the
// decoder constants that model.cpp states (lowerDecoder), for the trainer's.
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_TEST_PLANLOADER_H
#define AUTOTPC_TEST_PLANLOADER_H

#include "Emit/Emitter.h"
#include "Lower/DecoderLowering.h"
#include "Lower/ZeroLayout.h"
#include "Lower/ZeroSettings.h"
#include "Report/Reports.h"

#include "atp/decoder.h"
#include "atp/plan.h"
#include "atp/zero_plan.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace autotpc {

/// The preset families of specs/tiny/.
extern const char *const TinyFamilies[8];

/// Owns the arrays an atp::ModelPlan points into.
struct LoadedPlan {
  std::vector<PlanTableParam> Tables;
  std::vector<std::vector<atp::Box>> Boxes;
  std::vector<std::vector<atp::RankShard>> Ranks;
  std::vector<atp::ParamPlan> Params;
  std::string Fingerprint;
  atp::ModelPlan Plan{};
};

/// Compiles specs/tiny/<Family>.ds.json at TP `Tp` into Out; returns the
/// diagnostics text on failure and "" on success.
std::string compileTiny(const std::string &Family, int Tp, LoadedPlan &Out);

/// --emit=memory's bytes of one TP rank (MemoryLedger), unsigned like the
/// engine's atp::ZeroLedger: what the ZeRO engine must allocate.
struct LedgerBytes {
  uint64_t Params = 0, Grads = 0, Fp32Master = 0, Fp32Grads = 0, Moments = 0;
  uint64_t total() const { return Params + Grads + Fp32Master + Fp32Grads + Moments; }
};

/// Owns the arrays an atp::ZeroPlan points into (movable, not copyable:
/// Plan points into the vectors).
struct LoadedZero {
  ZeroSettings Settings;
  std::vector<ZeroRankLayout> Layouts;                ///< per TP rank
  std::vector<std::vector<atp::FlatParam>> Params;    ///< per TP rank, in flat order
  std::vector<std::vector<atp::GradBucket>> Buckets;  ///< per TP rank
  std::vector<atp::FlatLayout> FlatLayouts;           ///< per TP rank
  /// Per TP rank, the --emit=memory ledger at LedgerDp: the DP size the
  /// config implies (Plan.dp_size), or 1 when it is unknown.
  std::vector<LedgerBytes> Ledgers;
  int64_t LedgerDp = 1;
  atp::ZeroPlan Plan{};

  LoadedZero() = default;
  LoadedZero(LoadedZero &&) = default;
  LoadedZero &operator=(LoadedZero &&) = default;
  LoadedZero(const LoadedZero &) = delete;
  LoadedZero &operator=(const LoadedZero &) = delete;
};

/// compileTiny, with Overrides merged into the tiny DeepSpeed config first
/// (a JSON merge patch, RFC 7386: objects merge key by key, anything else
/// replaces, null deletes), e.g. {"zero_optimization": {"stage": 2},
/// "optimizer": {...}, "scheduler": {...}, "fp16": {"enabled": true},
/// "train_batch_size": 8, "gradient_accumulation_steps": 2}; then lowers the
/// ZeRO settings as code generation does (an unsupported optimizer or
/// scheduler type is an error) into Zero. Returns the diagnostics text on
/// failure and "" on success.
std::string compileTinyZero(const std::string &Family, int Tp, const nlohmann::json &Overrides, LoadedPlan &Out,
                            LoadedZero &Zero);

/// Owns what the generated model.cpp states (gen::decoder_shape,
/// gen::decoder_params, gen::hf_config_json) for one compiled spec. Shape
/// points into RopeType and Params into Layers, so moves re-point them;
/// copies are not allowed.
struct LoadedDecoder {
  DecoderDesc Desc;
  std::vector<atp::DecoderLayerParams> Layers;
  atp::DecoderShape Shape{};
  atp::DecoderParams Params{};

  /// The HF config.json text (gen::hf_config_json).
  const char *hfConfigJson() const { return Desc.HFConfigJson.c_str(); }
  /// Fills Layers, Shape and Params from Desc, as EmitModel.cpp writes them.
  void load(DecoderDesc D);

  LoadedDecoder() = default;
  LoadedDecoder(LoadedDecoder &&O) noexcept { *this = std::move(O); }
  LoadedDecoder &operator=(LoadedDecoder &&O) noexcept;
  LoadedDecoder(const LoadedDecoder &) = delete;
  LoadedDecoder &operator=(const LoadedDecoder &) = delete;

private:
  void bind();
};

/// compileTinyZero, and the decoder constants of the generated model.cpp
/// (the same lowerDecoder pass code generation runs) into Decoder. The
/// family must have training code (llama, mistral, qwen2, phi3). Returns the
/// diagnostics text on failure and "" on success.
std::string compileTinyTrain(const std::string &Family, int Tp, const nlohmann::json &Overrides, LoadedPlan &Out,
                             LoadedZero &Zero, LoadedDecoder &Decoder);

} // namespace autotpc

#endif // AUTOTPC_TEST_PLANLOADER_H
