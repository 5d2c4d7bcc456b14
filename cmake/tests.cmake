# ctest runs with -j (tools/run-tests.sh). GoogleTest cases are one process each, write only under mkdtemp
# folders and may run side by side; every other test (mpirun and launch-local jobs, lit, the package
# builds, the checkpoint fixture) starts several processes or builds with -j of its own, and some measure
# how long a failure takes, so it runs alone.
#
# atp_tests_run_alone(): marks every test that add_test() has created so far in the calling directory
# RUN_SERIAL. Call it at the end of each CMakeLists.txt that calls add_test() (CMake 3.25 cannot set a
# test's properties from another directory).
function(atp_tests_run_alone)
  get_property(tests DIRECTORY PROPERTY TESTS)
  if(tests)
    set_tests_properties(${tests} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# atp_rank_labels(VAR NP LABEL...): VAR = the LABELs, plus np8 when the test starts NP >= 8 processes
# (tools/run-tests.sh leaves those out of the sanitizer stage, where two cores make them 5-6x slower).
function(atp_rank_labels var np)
  set(labels ${ARGN})
  if(np GREATER_EQUAL 8)
    list(APPEND labels np8)
  endif()
  set(${var} "${labels}" PARENT_SCOPE)
endfunction()
