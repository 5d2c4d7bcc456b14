//===- IRPrinter.h - --emit=ir, the textual form of the IR ---------------===//
#ifndef AUTOTPC_IR_IRPRINTER_H
#define AUTOTPC_IR_IRPRINTER_H

#include "IR/Module.h"

namespace autotpc {

/// "file:line:col" of a location, or "<none>"; the file as it was named.
std::string locString(const llvm::SourceMgr &SM, const Loc &L);
/// "[6144, 4096]".
std::string shapeString(const std::vector<int64_t> &Shape);
/// "[0:512, 0:2048]".
std::string boxString(const Box &B);

/// Prints the module: header, the effective spec list with where each spec
/// came from and how many weights it matched and decided, then one entry per
/// parameter with its partition and every TP rank's extents along the
/// partition dim (offset+length of each sub-parameter). Deterministic: the
/// same input gives the same bytes.
void printIR(const Module &M, const llvm::SourceMgr &SM, llvm::raw_ostream &OS);

} // namespace autotpc

#endif // AUTOTPC_IR_IRPRINTER_H
