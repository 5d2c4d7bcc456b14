//===- LegalizeNames.h - C++ identifiers for parameters, decided once ---===//
#ifndef AUTOTPC_EMIT_LEGALIZENAMES_H
#define AUTOTPC_EMIT_LEGALIZENAMES_H

#include "IR/Module.h"

namespace autotpc {

/// One identifier per parameter, in parameter order: the name with every
/// character outside [A-Za-z0-9_] turned into '_', "p_" in front, and a
/// numeric suffix only where two names would collide.
std::vector<std::string> legalizeNames(const Module &M);

} // namespace autotpc

#endif // AUTOTPC_EMIT_LEGALIZENAMES_H
