# Unit tests of the runtime foundation (CPU only): status and fatal errors,
# world and groups, dtypes and host tensors, atomic files, safetensors,
# training data (token files, tokenizer, data loader).
include(GoogleTest)
add_executable(autotpc_runtime_tests
  ${CMAKE_CURRENT_LIST_DIR}/StatusTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/WorldTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/TensorTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/AtomicFileTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/SafetensorsReaderTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/SafetensorsWriterTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/TcpStoreTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/TokenFileTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ByteTokenizerTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/DataLoaderTest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ResolveBatchTest.cpp
)
target_link_libraries(autotpc_runtime_tests PRIVATE autotpc_runtime autotpc_warnings
                      GTest::gtest GTest::gtest_main)
gtest_discover_tests(autotpc_runtime_tests DISCOVERY_TIMEOUT 60)
