# model: the Llama-family decoder's forward and backward (include/atp/decoder.h) over the kernels of
# kernels.h and the TP comm; backend-neutral, always built.
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/decoder.cpp)
# The trainer's entry points; the CPU kernels they call are a stub without OpenBLAS (kernels.cmake).
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/loss_and_grads.cpp)
# The training loop (include/atp/trainer.h: steps, checkpoints, export, generation) and `train`'s command line.
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/trainer.cpp
                                ${CMAKE_CURRENT_LIST_DIR}/src/trainer_checkpoint.cpp
                                ${CMAKE_CURRENT_LIST_DIR}/src/train_main.cpp)
# Where a rank computes (include/atp/backend.h): CPU, or its GPU with NCCL or staged MPI collectives.
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/backend.cpp)
# The per-kernel time breakdown of `train --profile` (include/atp/kernels_profile.h).
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/kernels_profile.cpp)
