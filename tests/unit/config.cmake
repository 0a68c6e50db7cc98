# Configuration, secrets, the command line and the logger.
mm_unit_test(test_config
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c
  LIBS mm_config)
mm_unit_test(test_secret
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_secret.c
  LIBS mm_config)
mm_unit_test(test_cli
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cli.c
          ${PROJECT_SOURCE_DIR}/daemon/cli.c
  LIBS mm_log mm_shard)
mm_unit_test(test_log
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_log.c
  LIBS mm_log)
# The shipped example must load as it is.
target_compile_definitions(test_config PRIVATE
  MM_EXAMPLE_CONFIG="${PROJECT_SOURCE_DIR}/config/mboxmirror.ini.example")

# The secret worker and the loop share each job across threads: the same
# tests again under ThreadSanitizer, which sees what AddressSanitizer cannot
# (a mutex unlocked inside glibc after the other side freed it).  Built from
# the sources, since ThreadSanitizer excludes the project-wide sanitizers.
if(CMAKE_C_COMPILER_ID MATCHES "Clang|GNU")
  mm_unit_test(test_secret_tsan
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_secret.c
            ${PROJECT_SOURCE_DIR}/daemon/secret.c
            ${PROJECT_SOURCE_DIR}/daemon/config.c
            ${PROJECT_SOURCE_DIR}/daemon/shard.c
            ${PROJECT_SOURCE_DIR}/daemon/util/hash.c
            ${PROJECT_SOURCE_DIR}/daemon/log.c
            ${PROJECT_SOURCE_DIR}/daemon/base64.c
            ${PROJECT_SOURCE_DIR}/daemon/util/num.c
            ${PROJECT_SOURCE_DIR}/daemon/util/nameindex.c
            ${PROJECT_SOURCE_DIR}/daemon/util/hash.c
            ${PROJECT_SOURCE_DIR}/daemon/util/utf8.c
    LIBS mm_libev PkgConfig::INIH Threads::Threads)
  # Nor --coverage: its counters are plain increments, a race to this test.
  get_target_property(tsan_opts test_secret_tsan COMPILE_OPTIONS)
  list(FILTER tsan_opts EXCLUDE REGEX "sanitize|coverage")
  get_target_property(tsan_link test_secret_tsan LINK_OPTIONS)
  if(NOT tsan_link)
    set(tsan_link "")
  endif()
  list(FILTER tsan_link EXCLUDE REGEX "sanitize|coverage")
  set_target_properties(test_secret_tsan PROPERTIES
    COMPILE_OPTIONS "${tsan_opts};-fsanitize=thread;-g"
    LINK_OPTIONS "${tsan_link};-fsanitize=thread")
  set_tests_properties(unit.test_secret_tsan PROPERTIES
    ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1")
endif()

# Every key config.c accepts is in mboxmirror.ini(5), docs/config.md and the
# example, under the section it belongs to (read from config.c's key table).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME unit.config_docs
           COMMAND ${Python3_EXECUTABLE}
                   ${CMAKE_CURRENT_SOURCE_DIR}/unit/config_docs.py
                   ${PROJECT_SOURCE_DIR}/daemon/config.c
                   ${PROJECT_SOURCE_DIR}/docs/mboxmirror.ini.5
                   ${PROJECT_SOURCE_DIR}/docs/config.md
                   ${PROJECT_SOURCE_DIR}/config/mboxmirror.ini.example)
  set_tests_properties(unit.config_docs PROPERTIES LABELS unit TIMEOUT 60)
endif()
