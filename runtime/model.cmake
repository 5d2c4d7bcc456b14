# model: the Llama-family decoder's forward and backward (include/atp/decoder.h) over the kernels of
# kernels.h and the TP comm; backend-neutral, always built.
list(APPEND ATP_RUNTIME_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/decoder.cpp)
