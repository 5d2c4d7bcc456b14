//===- Verifier.cpp - run every check group ------------------------------===//
#include "Verify/Verifier.h"

using namespace autotpc;

void autotpc::noteTpSize(const VerifyContext &Ctx) {
  Ctx.Diags.note(Ctx.C.TP.AutotpSizeLoc, "autotp_size set here");
}

bool autotpc::verifyModule(const VerifyContext &Ctx, Topology &Topo) {
  unsigned Before = Ctx.Diags.errorCount();
  checkSpecs(Ctx);
  checkFusedWeights(Ctx);
  checkDivisibility(Ctx);
  checkPairing(Ctx);
  checkBatch(Ctx, Topo);
  return Ctx.Diags.errorCount() == Before;
}
