//===- Sarif.h - SARIF 2.1.0 output for CI annotations ------------------===//
#ifndef AUTOTPC_SUPPORT_SARIF_H
#define AUTOTPC_SUPPORT_SARIF_H

#include "Support/Diagnostics.h"

namespace autotpc {

/// Writes the diagnostics as one SARIF 2.1.0 log with a single run. Warning
/// groups become rule ids ("autotpc.unmatched-pattern"); errors are
/// "autotpc.error"; notes become related locations.
void writeSarif(llvm::raw_ostream &OS, const std::vector<DiagRecord> &Records,
                llvm::StringRef ToolName, llvm::StringRef ToolVersion);

} // namespace autotpc

#endif // AUTOTPC_SUPPORT_SARIF_H
