# Runtime foundation, CPU side: status and fatal errors, world and groups,
# dtypes and host tensors, atomic files, safetensors IO (JSON through the
# header-only nlohmann/json, which runtime/CMakeLists.txt finds), training data
# (token files, the byte-level tokenizer, the data loader). Plain C++17 and
# POSIX otherwise.
list(APPEND ATP_RUNTIME_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/src/status.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/world.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/dtype.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tensor.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/atomic_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/safetensors_reader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/checkpoint.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/safetensors_writer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tcp_socket.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tcp_store.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/token_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/byte_tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/data_loader.cpp
)
