# Tests of the CPU kernels (runtime/include/atp/kernels.h): every forward against naive loops in double,
# every backward against float64 finite differences. Built only where the runtime has its CPU kernels
# (OpenBLAS found: runtime/kernels.cmake).
get_property(_atp_have_cpu_kernels GLOBAL PROPERTY ATP_HAVE_CPU_KERNELS)
if(_atp_have_cpu_kernels)
  include(GoogleTest)
  add_executable(autotpc_kernels_tests
    ${CMAKE_CURRENT_LIST_DIR}/KernelsLinearTest.cpp
    ${CMAKE_CURRENT_LIST_DIR}/KernelsNormEmbeddingTest.cpp
    ${CMAKE_CURRENT_LIST_DIR}/KernelsRopeTest.cpp
    ${CMAKE_CURRENT_LIST_DIR}/KernelsAttentionTest.cpp
    ${CMAKE_CURRENT_LIST_DIR}/KernelsLossElementwiseTest.cpp
    ${CMAKE_CURRENT_LIST_DIR}/KernelsLayerTest.cpp
    ${CMAKE_CURRENT_LIST_DIR}/CudaAttentionLibraryTest.cpp
  )
  target_link_libraries(autotpc_kernels_tests PRIVATE autotpc_runtime autotpc_warnings GTest::gtest GTest::gmock
                        GTest::gtest_main)
  get_property(_atp_has_cudnn GLOBAL PROPERTY ATP_RUNTIME_HAS_CUDNN)
  if(_atp_has_cudnn) # CudaAttentionLibraryTest compares with the cuDNN headers the runtime was built with
    target_compile_definitions(autotpc_kernels_tests PRIVATE ATP_RUNTIME_HAS_CUDNN=1)
    target_include_directories(autotpc_kernels_tests PRIVATE ${ATP_RUNTIME_CUDNN_INCLUDE_DIR})
  endif()
  gtest_discover_tests(autotpc_kernels_tests DISCOVERY_TIMEOUT 60)
endif()
