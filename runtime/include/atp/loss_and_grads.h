/* loss_and_grads.h - the trainer's exact oracle (`train --loss-and-grads`), and the seeded initial weights.

   One fp32 forward and backward of the generated decoder over R token rows, no optimizer step; the loss and
   every parameter's consolidated gradient under its HF name go to one safetensors file, the same at any
   TP x DP layout under mpirun. Outside references (transformers, tools/hf_parity.py) check us through it. */
#pragma once

#include "atp/decoder.h"
#include "atp/plan.h"

#include <cstdint>
#include <vector>

namespace atp {

/// Fills w[i] (this TP rank's shard of parameter i, F32, already sized) with the seeded init: a function of
/// (seed, parameter index, element of the full tensor), so every layout starts from the same model. Norm
/// weights are 1, biases 0, the rest uniform with HF's initializer_range (0.02) as standard deviation.
Status seeded_init(const ModelPlan &plan, int tp_rank, std::uint64_t seed, std::vector<std::vector<float>> &w);

/// `train --loss-and-grads TOKENS --rows R --out FILE [--seq S] [--init-from HF_DIR] [--seed N]` (see
/// loss_and_grads.cpp). Returns the exit status.
int loss_and_grads_main(const ModelPlan &plan, const DecoderShape &shape, const DecoderParams &params, int argc,
                        char **argv);

} // namespace atp
