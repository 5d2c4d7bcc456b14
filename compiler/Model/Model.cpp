//===- Model.cpp - the model's parameter inventory ------------------------===//
//
// Stable names of parameter roles, as printed by --emit=ir.
//
//===----------------------------------------------------------------------===//

#include "Model/Model.h"

namespace autotpc {

const char *roleName(Role R) {
  switch (R) {
  case Role::Unknown:
    return "unknown";
  case Role::Embedding:
    return "embedding";
  case Role::LmHead:
    return "lm_head";
  case Role::Norm:
    return "norm";
  case Role::AttnQ:
    return "attn_q";
  case Role::AttnK:
    return "attn_k";
  case Role::AttnV:
    return "attn_v";
  case Role::AttnQKV:
    return "attn_qkv";
  case Role::AttnQKVInterleaved:
    return "attn_qkv_interleaved";
  case Role::AttnQA:
    return "attn_q_a";
  case Role::AttnQB:
    return "attn_q_b";
  case Role::AttnKVA:
    return "attn_kv_a";
  case Role::AttnKVB:
    return "attn_kv_b";
  case Role::AttnOut:
    return "attn_out";
  case Role::MlpGate:
    return "mlp_gate";
  case Role::MlpUp:
    return "mlp_up";
  case Role::MlpGateUp:
    return "mlp_gate_up";
  case Role::MlpDown:
    return "mlp_down";
  case Role::Router:
    return "router";
  case Role::Other:
    return "other";
  }
  // Only reachable for a value outside the enumeration.
  return "unknown";
}

} // namespace autotpc
