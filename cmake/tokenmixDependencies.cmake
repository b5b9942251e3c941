# Dependencies of tokenmix::tokenmix, found the same way in our build tree and in the installed
# package (tokenmixConfig.cmake includes this file).
include(CMakeFindDependencyMacro)

find_dependency(Eigen3 3.3 NO_MODULE)
find_dependency(Threads)

# xsimd: Debian 12's xsimdTargets.cmake links a library "xtl" that its package does not depend on,
# so linking the upstream `xsimd` target fails with "cannot find -lxtl" (xsimd#869). We only need its
# headers: wrap its include directory in our own imported target. No version is requested because
# xsimd's version file is SameMajorVersion (8.x would reject 9+); the headers check the major.
if(NOT TARGET tokenmix::xsimd)
  find_path(TOKENMIX_XSIMD_INCLUDE_DIR NAMES xsimd/xsimd.hpp
    HINTS ${xsimd_DIR}/../../../../include ${CMAKE_PREFIX_PATH})
  if(NOT TOKENMIX_XSIMD_INCLUDE_DIR)
    message(FATAL_ERROR "tokenmix: xsimd headers (xsimd/xsimd.hpp) not found; on Debian: apt-get install libxsimd-dev")
  endif()
  add_library(tokenmix::xsimd INTERFACE IMPORTED)
  set_target_properties(tokenmix::xsimd PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${TOKENMIX_XSIMD_INCLUDE_DIR}")
endif()
