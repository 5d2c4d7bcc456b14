# Comm tests (runtime/include/atp/comm.h), MPI backend:
#   comm_unit_np2         16-bit float conversions, argument and group errors, settings (GoogleTest, 2 ranks)
#   comm_collectives_np8  every collective over every TP/DP group layout in a world of 8, exact values
#   comm_fault_*_np4      one rank dies, hangs or calls differently: the job ends non-zero, with a message,
#                         well within its limit (ATP_COMM_TIMEOUT_S=3 there)
# comm_nccl_collectives (CUDA builds) runs the same checks on device buffers; it needs GPUs, so it is built
# but not registered: mpirun -np <gpus> test/runtime/comm_nccl_collectives on the GPU machine.
set(ATP_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
set(ATP_MPIRUN_FLAGS --allow-run-as-root --oversubscribe ${MPIEXEC_PREFLAGS})

add_executable(comm_unit_test ${CMAKE_CURRENT_LIST_DIR}/comm_unit_test.cpp)
target_link_libraries(comm_unit_test PRIVATE autotpc_runtime autotpc_warnings GTest::gtest)
add_test(NAME comm_unit_np2
         COMMAND ${ATP_MPIRUN} 2 ${ATP_MPIRUN_FLAGS} $<TARGET_FILE:comm_unit_test> ${MPIEXEC_POSTFLAGS})
set_tests_properties(comm_unit_np2 PROPERTIES TIMEOUT 120)

add_executable(comm_collectives ${CMAKE_CURRENT_LIST_DIR}/comm_collectives.cpp)
target_link_libraries(comm_collectives PRIVATE autotpc_runtime autotpc_warnings)
add_test(NAME comm_collectives_np8
         COMMAND ${ATP_MPIRUN} 8 ${ATP_MPIRUN_FLAGS} $<TARGET_FILE:comm_collectives> ${MPIEXEC_POSTFLAGS})
atp_rank_labels(labels 8) # cmake/tests.cmake
set_tests_properties(comm_collectives_np8 PROPERTIES TIMEOUT 120 LABELS "${labels}")

# The fault tests run mpirun through a script that checks the exit status, the output and the time taken.
add_executable(comm_faults ${CMAKE_CURRENT_LIST_DIR}/comm_faults.cpp)
target_link_libraries(comm_faults PRIVATE autotpc_runtime autotpc_warnings)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/comm_expect_failure.cmake [=[
# cmake -DCMD=a|b|c -DEXPECT=regex -DMAX_S=n -P comm_expect_failure.cmake
string(REPLACE "|" ";" cmd "${CMD}")
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT ${MAX_S})
string(TIMESTAMP t1 "%s")
math(EXPR took "${t1} - ${t0}")
message("${out}")
message("comm_expect_failure: exit '${rc}' after ${took} s (limit ${MAX_S} s)")
if(rc STREQUAL "0")
  message(FATAL_ERROR "comm_expect_failure: the job succeeded; it should have failed")
elseif(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "comm_expect_failure: the job did not end by itself (${rc})")
elseif(out MATCHES "UNEXPECTED")
  message(FATAL_ERROR "comm_expect_failure: a rank got through calls that should have failed")
elseif(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "comm_expect_failure: the output does not match '${EXPECT}'")
endif()
]=])
function(atp_comm_fault_test mode expect)
  set(cmd ${ATP_MPIRUN} 4 ${ATP_MPIRUN_FLAGS} $<TARGET_FILE:comm_faults> ${MPIEXEC_POSTFLAGS} ${mode})
  string(REPLACE ";" "|" cmd "${cmd}")
  add_test(NAME comm_fault_${mode}_np4
           COMMAND ${CMAKE_COMMAND} -DCMD=${cmd} -DEXPECT=${expect} -DMAX_S=60
                   -P ${CMAKE_CURRENT_BINARY_DIR}/comm_expect_failure.cmake)
  set_tests_properties(comm_fault_${mode}_np4 PROPERTIES TIMEOUT 120 ENVIRONMENT ATP_COMM_TIMEOUT_S=3)
endfunction()
atp_comm_fault_test(dead-peer "rank 1 misbehaves: dead-peer")
atp_comm_fault_test(hang "all_reduce\\(4095 x F32, max\\) on group \\[0,1,2,3\\].*did not complete within 3 s")
atp_comm_fault_test(count-mismatch "atp: error: rank [0-9]/4")
atp_comm_fault_test(wrong-collective "atp: error: rank [0-9]/4")

# The TCP backend under a torchrun-style launch (tools/launch-local: no MPI): every collective over every
# layout, and the same faults, whose messages it can make more precise (it checks every call's header).
set(ATP_LAUNCH_LOCAL ${PROJECT_SOURCE_DIR}/tools/launch-local)
add_test(NAME comm_collectives_tcp_8 COMMAND ${ATP_LAUNCH_LOCAL} 8 $<TARGET_FILE:comm_collectives> tcp)
atp_rank_labels(labels 8)
set_tests_properties(comm_collectives_tcp_8 PROPERTIES TIMEOUT 120 LABELS "${labels}")
function(atp_tcp_fault_test mode expect)
  set(cmd ${ATP_LAUNCH_LOCAL} 4 $<TARGET_FILE:comm_faults> ${mode} tcp)
  string(REPLACE ";" "|" cmd "${cmd}")
  add_test(NAME comm_fault_${mode}_tcp_4
           COMMAND ${CMAKE_COMMAND} -DCMD=${cmd} -DEXPECT=${expect} -DMAX_S=60
                   -P ${CMAKE_CURRENT_BINARY_DIR}/comm_expect_failure.cmake)
  set_tests_properties(comm_fault_${mode}_tcp_4 PROPERTIES TIMEOUT 120 ENVIRONMENT "ATP_COMM_TIMEOUT_S=3;LAUNCH_GRACE_S=3")
endfunction()
atp_tcp_fault_test(dead-peer "group rank 1 \\(global rank 1\\) closed its connection")
atp_tcp_fault_test(hang "all_reduce\\(4095 x F32, max\\) on group \\[0,1,2,3\\].*did not complete within 3 s.*still waiting for group rank 1")
atp_tcp_fault_test(count-mismatch "group rank 1 \\(global rank 1\\) called all_reduce\\(4096 x F32, max\\) as call 1 when this rank called all_reduce\\(4095 x F32, max\\) as call 1")
atp_tcp_fault_test(wrong-collective "group rank 1 \\(global rank 1\\) called broadcast\\(4096 x F32, root 0\\) as call 1 when this rank called all_reduce\\(4095 x F32, max\\) as call 1")

if(AUTOTPC_ENABLE_CUDA)
  add_executable(comm_nccl_collectives ${CMAKE_CURRENT_LIST_DIR}/comm_nccl_collectives.cpp)
  target_link_libraries(comm_nccl_collectives PRIVATE autotpc_runtime autotpc_warnings)
endif()
