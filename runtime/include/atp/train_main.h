/* train_main.h - the command line of a generated project's `train` (train --help prints it).

     train --data FILE [--steps N] [--seq S] [--eval-every N] [--save-every N] [--resume DIR] [--export DIR] ...
     train --generate PROMPT (--init-from HF_DIR | --resume DIR) [--max-new-tokens N] [--top-k K] ...
     train --loss-and-grads TOKENS --rows R --out FILE.safetensors ...   (the exact oracle: loss_and_grads.h)

   Launched by mpirun, srun, torchrun or alone (world.h reads the launcher's environment); world size /
   autotp_size is the DP size. Global rank 0 prints one progress line per step and writes the CSV log. */
#pragma once

#include "atp/trainer.h"

namespace atp {

/// Runs `train` with argv; returns the exit status (0 ok, 1 error, 2 bad command line).
int train_main(const TrainModel &model, int argc, char **argv);

} // namespace atp
