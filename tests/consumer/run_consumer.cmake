# Driver for the consumer.* tests (see CMakeLists.txt here); run as `cmake -D... -P run_consumer.cmake`.
# Inputs (-D): MODE (find_package | add_subdirectory), TOKENMIX_SOURCE_DIR, TOKENMIX_BINARY_DIR,
# TOKENMIX_VERSION, INSTALL_DATADIR, INSTALL_INCLUDEDIR, CONSUMER_SOURCE_DIR, WORK_DIR, GENERATOR,
# MAKE_PROGRAM, CXX_COMPILER, BUILD_TYPE.
cmake_minimum_required(VERSION 3.25)

foreach(_var IN ITEMS MODE TOKENMIX_SOURCE_DIR TOKENMIX_BINARY_DIR TOKENMIX_VERSION INSTALL_DATADIR
                      INSTALL_INCLUDEDIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if("${${_var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${_var}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|add_subdirectory)$")
  message(FATAL_ERROR "run_consumer.cmake: MODE must be find_package or add_subdirectory, not '${MODE}'")
endif()

set(_tag "consumer.${MODE}")
set(_build "${WORK_DIR}/build")
set(_prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs a command, echoing it; any failure fails the test.
function(consumer_run)
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT COMMAND_ERROR_IS_FATAL ANY)
endfunction()

# No -march / -m<isa> may reach the consumer's compile lines: they would come from tokenmix's
# exported usage requirements (an ABI hazard with Eigen, DESIGN §5).
function(consumer_check_plain_flags compile_line what)
  if(compile_line MATCHES "(^| )(-march=|-mtune=|-mavx|-mfma|-msse[0-9])")
    message(FATAL_ERROR "${_tag}: ${what} has an architecture flag (${CMAKE_MATCH_2}...): ${compile_line}")
  endif()
endfunction()

set(_config_args)  # --config for multi-config generators; an empty value is an error
if(BUILD_TYPE)
  set(_config_args --config "${BUILD_TYPE}")
endif()

set(_configure_args
  -S "${CONSUMER_SOURCE_DIR}" -B "${_build}" -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  "-DTOKENMIX_CONSUMER_MODE=${MODE}"
  "-DTOKENMIX_CONSUMER_EXPECTED_VERSION=${TOKENMIX_VERSION}")
if(MAKE_PROGRAM)
  list(APPEND _configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()

if(MODE STREQUAL "find_package")
  # 1. Install the current build tree (header-only: nothing needs to be built first).
  consumer_run(${CMAKE_COMMAND} --install "${TOKENMIX_BINARY_DIR}" --prefix "${_prefix}" ${_config_args})
  # The installed CMake package must be relocatable: no absolute path into our source or build tree.
  file(GLOB_RECURSE _cmake_files "${_prefix}/*.cmake")
  if(NOT _cmake_files)
    message(FATAL_ERROR "${_tag}: no CMake package files installed under ${_prefix}")
  endif()
  foreach(_f IN LISTS _cmake_files)
    file(READ "${_f}" _text)
    foreach(_dir IN ITEMS "${TOKENMIX_SOURCE_DIR}" "${TOKENMIX_BINARY_DIR}")
      string(FIND "${_text}" "${_dir}" _pos)
      if(NOT _pos EQUAL -1)
        message(FATAL_ERROR "${_tag}: installed ${_f} refers to ${_dir} (package not relocatable)")
      endif()
    endforeach()
  endforeach()
  list(APPEND _configure_args "-DCMAKE_PREFIX_PATH=${_prefix}" "-DTOKENMIX_CONSUMER_EXPECTED_PREFIX=${_prefix}")
else()
  list(APPEND _configure_args "-DTOKENMIX_SOURCE_DIR=${TOKENMIX_SOURCE_DIR}")
endif()

# 2. Configure, build and run the consumer project.
consumer_run(${CMAKE_COMMAND} ${_configure_args})
if(MODE STREQUAL "add_subdirectory")
  # Belt and braces to the checks in project/CMakeLists.txt: nothing of tokenmix's own was configured.
  foreach(_sub IN ITEMS tests bench examples)
    if(EXISTS "${_build}/tokenmix_build/${_sub}")
      message(FATAL_ERROR "${_tag}: tokenmix's ${_sub}/ was configured although tokenmix is not top level")
    endif()
  endforeach()
endif()
consumer_run(${CMAKE_COMMAND} --build "${_build}" ${_config_args})
if(EXISTS "${_build}/compile_commands.json")
  file(READ "${_build}/compile_commands.json" _commands)
  consumer_check_plain_flags("${_commands}" "compile_commands.json")
endif()
find_program(_app NAMES tokenmix_consumer PATHS "${_build}" "${_build}/${BUILD_TYPE}" NO_DEFAULT_PATH NO_CACHE REQUIRED)
consumer_run("${_app}")

# 3. find_package mode only: the installed pkg-config file.
if(MODE STREQUAL "find_package")
  find_program(_pkg_config NAMES pkg-config pkgconf NO_CACHE)
  if(NOT _pkg_config)
    message(STATUS "${_tag}: SKIPPED the pkg-config check: pkg-config is not installed "
                   "(scripts/install-deps installs it)")
    return()
  endif()
  set(_pc_dir "${_prefix}/${INSTALL_DATADIR}/pkgconfig")
  if(NOT EXISTS "${_pc_dir}/tokenmix.pc")
    message(FATAL_ERROR "${_tag}: ${_pc_dir}/tokenmix.pc was not installed")
  endif()
  set(ENV{PKG_CONFIG_PATH} "${_pc_dir}")
  consumer_run("${_pkg_config}" --print-errors --exists tokenmix)
  execute_process(COMMAND "${_pkg_config}" --modversion tokenmix OUTPUT_VARIABLE _pc_version
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  if(NOT _pc_version STREQUAL TOKENMIX_VERSION)
    message(FATAL_ERROR "${_tag}: pkg-config --modversion tokenmix is '${_pc_version}', expected ${TOKENMIX_VERSION}")
  endif()
  execute_process(COMMAND "${_pkg_config}" --cflags tokenmix OUTPUT_VARIABLE _pc_cflags
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  execute_process(COMMAND "${_pkg_config}" --libs tokenmix OUTPUT_VARIABLE _pc_libs
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  message(STATUS "${_tag}: pkg-config --cflags tokenmix: ${_pc_cflags}")
  message(STATUS "${_tag}: pkg-config --libs tokenmix: ${_pc_libs}")
  consumer_check_plain_flags("${_pc_cflags}" "pkg-config --cflags tokenmix")
  # The -I must point into the prefix we installed to (not the configure-time CMAKE_INSTALL_PREFIX).
  separate_arguments(_pc_cflags_list UNIX_COMMAND "${_pc_cflags}")
  separate_arguments(_pc_libs_list UNIX_COMMAND "${_pc_libs}")
  file(REAL_PATH "${_prefix}/${INSTALL_INCLUDEDIR}" _want_include)
  set(_include_ok FALSE)
  foreach(_flag IN LISTS _pc_cflags_list)
    if(_flag MATCHES "^-I(.+)$")
      set(_dir "${CMAKE_MATCH_1}")
      if(EXISTS "${_dir}")
        file(REAL_PATH "${_dir}" _have_include)
        if(_have_include STREQUAL _want_include)
          set(_include_ok TRUE)
        endif()
      endif()
    endif()
  endforeach()
  if(NOT _include_ok)
    message(FATAL_ERROR "${_tag}: pkg-config --cflags tokenmix lacks -I${_want_include}: ${_pc_cflags}")
  endif()
  # g++ $(pkg-config --cflags --libs tokenmix) main.cpp, with no other flags.
  set(_pc_app "${WORK_DIR}/tokenmix_consumer_pkgconfig")
  consumer_run("${CXX_COMPILER}" ${_pc_cflags_list} "${CONSUMER_SOURCE_DIR}/main.cpp" -o "${_pc_app}" ${_pc_libs_list})
  consumer_run("${_pc_app}")
endif()
message(STATUS "${_tag}: OK")
