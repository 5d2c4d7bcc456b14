# zero: the ZeRO stage 0/1/2 engine (include/atp/zero.h), its padded layout, the learning-rate schedules
# and the fp16 loss scaler. Backend-neutral C++: buffers through ops.h, collectives through comm.h.
list(APPEND ATP_RUNTIME_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/src/lr_schedule.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/loss_scaler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/zero_layout.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/zero_engine.cpp
)
