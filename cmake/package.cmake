# The autotpc package: `cmake --install build --prefix P` installs the compiler (P/bin/autotpc), the runtime's
# sources (P/share/autotpc/runtime) and the CMake package that adds them to a generated project
# (P/lib/cmake/autotpc_runtime, for find_package(autotpc_runtime)). The build tree holds the same package at
# build/lib/cmake/autotpc_runtime, naming the checkout's runtime/, so that build/bin/autotpc and an installed
# autotpc both find their runtime at <their bin>/../lib/cmake (autotpc-paths.cmake of a generated project).
include(GNUInstallDirs)
set(ATP_PACKAGE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/autotpc_runtime")
set(ATP_RUNTIME_INSTALL_DIR "${CMAKE_INSTALL_DATADIR}/autotpc/runtime")

# Build tree: the checkout's runtime/, by absolute path.
set(ATP_CONFIG_KIND "the build tree's package, for ${PROJECT_BINARY_DIR}/bin/autotpc")
set(ATP_RUNTIME_FROM_CONFIG "${PROJECT_SOURCE_DIR}/runtime")
configure_file("${CMAKE_CURRENT_LIST_DIR}/autotpc_runtimeConfig.cmake.in"
               "${PROJECT_BINARY_DIR}/lib/cmake/autotpc_runtime/autotpc_runtimeConfig.cmake" @ONLY)

# Install tree: relative to the config file, so that the prefix can be chosen at install time and moved.
set(ATP_CONFIG_KIND "the installed package")
if(IS_ABSOLUTE "${ATP_RUNTIME_INSTALL_DIR}" OR IS_ABSOLUTE "${ATP_PACKAGE_INSTALL_DIR}")
  set(ATP_RUNTIME_FROM_CONFIG "${ATP_RUNTIME_INSTALL_DIR}")
else()
  file(RELATIVE_PATH ATP_RUNTIME_FROM_CONFIG "/prefix/${ATP_PACKAGE_INSTALL_DIR}" "/prefix/${ATP_RUNTIME_INSTALL_DIR}")
endif()
configure_file("${CMAKE_CURRENT_LIST_DIR}/autotpc_runtimeConfig.cmake.in"
               "${PROJECT_BINARY_DIR}/package/autotpc_runtimeConfig.cmake" @ONLY)

install(TARGETS autotpc RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/runtime/" DESTINATION "${ATP_RUNTIME_INSTALL_DIR}")
install(FILES "${PROJECT_BINARY_DIR}/package/autotpc_runtimeConfig.cmake" DESTINATION "${ATP_PACKAGE_INSTALL_DIR}")
