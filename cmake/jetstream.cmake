# rondo::jetstream (include/rondo/jetstream.hpp, src/jetstream/): a disruptor fed by a NATS
# JetStream stream and publishing to another, effectively once (docs/jetstream.md). Built when
# libnats is found through pkg-config (Debian's libnats-dev ships libnats.pc, and a cnats CMake
# package whose imported target names libssl/libprotobuf-c .so files that only their -dev
# packages install, so pkg-config is the dependable way). Its own export set, so the package
# loads without libnats (rondoConfig.cmake includes it only when libnats is found there too).
#
# The header has no libnats type in it, so rondo_header_check compiles it with or without
# libnats. Tests, the pipeline program, the demo's binary and the bench are defined at the end
# of the top directory (cmake_language(DEFER)), after enable_testing() and the options.
set(RONDO_HAS_JETSTREAM OFF)
if(NOT RONDO_HAS_IO)
  message(STATUS "rondo: no rondo::io (liburing), so rondo::jetstream is not built")
  return()
endif()
pkg_check_modules(libnats QUIET IMPORTED_TARGET libnats)
if(NOT libnats_FOUND)
  message(STATUS "rondo: libnats not found, rondo::jetstream (rondo/jetstream.hpp) is not built")
  return()
endif()
set(RONDO_HAS_JETSTREAM ON)
message(STATUS "rondo: libnats ${libnats_VERSION} found, building rondo::jetstream")

add_library(rondo_jetstream STATIC ${PROJECT_SOURCE_DIR}/src/jetstream/jetstream.cpp)
add_library(rondo::jetstream ALIAS rondo_jetstream)
set_target_properties(rondo_jetstream PROPERTIES EXPORT_NAME jetstream
                      POSITION_INDEPENDENT_CODE ON)
target_link_libraries(rondo_jetstream PUBLIC rondo::rondo
                      PRIVATE PkgConfig::libnats $<BUILD_INTERFACE:rondo_warnings>)
install(TARGETS rondo_jetstream EXPORT rondoJetstreamTargets)
install(EXPORT rondoJetstreamTargets NAMESPACE rondo::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/rondo)

# The cluster tests start three nats-server processes and kill them and rondo processes: run
# once per test command (the dev build), not again under every sanitizer and compiler.
set(_rondo_js_cluster_default OFF)
if(NOT RONDO_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set(_rondo_js_cluster_default ON)
endif()
option(RONDO_JETSTREAM_CLUSTER_TESTS "Register the JetStream cluster tests with CTest"
       ${_rondo_js_cluster_default})

function(rondo_jetstream_late_targets)
  if(NOT (RONDO_BUILD_TESTS OR RONDO_BUILD_EXAMPLES OR RONDO_BUILD_BENCH))
    return()
  endif()
  # The sharded pipeline process (source -> compute -> sink -> ack): the tests' and the demo's.
  add_executable(rondo_jetstream_pipeline ${PROJECT_SOURCE_DIR}/examples/jetstream_pipeline.cpp)
  target_link_libraries(rondo_jetstream_pipeline PRIVATE rondo::jetstream rondo_warnings)
  # examples/jetstream_result.hpp: the compute step the pipeline, the bench and the tool share.
  set(rondo_jetstream_demo_include ${PROJECT_SOURCE_DIR}/examples)
  # Producer and verifier of the tests and the demo (libnats directly).
  add_executable(rondo_jetstream_tool ${PROJECT_SOURCE_DIR}/tests/jetstream/js_tool.cpp)
  target_link_libraries(rondo_jetstream_tool PRIVATE rondo::jetstream PkgConfig::libnats
                        rondo_warnings)
  target_include_directories(rondo_jetstream_tool PRIVATE ${rondo_jetstream_demo_include})
  if(RONDO_BUILD_TESTS)
    # The rondo side against fake engines (no cluster): every preset runs it, sanitizers too.
    add_executable(rondo_jetstream_glue_tests ${PROJECT_SOURCE_DIR}/tests/jetstream/glue_test.cpp)
    target_link_libraries(rondo_jetstream_glue_tests PRIVATE rondo::jetstream rondo_warnings)
    add_test(NAME jetstream_glue COMMAND rondo_jetstream_glue_tests)
    set_tests_properties(jetstream_glue PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
  endif()
  if(RONDO_BUILD_TESTS AND RONDO_JETSTREAM_CLUSTER_TESTS)
    add_test(NAME jetstream_cluster
             COMMAND bash ${PROJECT_SOURCE_DIR}/tests/jetstream/cluster_test.sh
                     $<TARGET_FILE_DIR:rondo_jetstream_pipeline>)
    set_tests_properties(jetstream_cluster PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 420
                         RUN_SERIAL TRUE)
  endif()
  if(RONDO_BUILD_BENCH AND EXISTS ${PROJECT_SOURCE_DIR}/bench/jetstream_bench.cpp)
    add_executable(rondo_jetstream_bench ${PROJECT_SOURCE_DIR}/bench/jetstream_bench.cpp)
    target_link_libraries(rondo_jetstream_bench PRIVATE rondo::jetstream PkgConfig::libnats
                          rondo_warnings)
    target_include_directories(rondo_jetstream_bench PRIVATE ${rondo_jetstream_demo_include})
  endif()
endfunction()
cmake_language(DEFER CALL rondo_jetstream_late_targets)
