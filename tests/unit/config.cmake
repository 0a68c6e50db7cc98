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
  LIBS mm_log)
mm_unit_test(test_log
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_log.c
  LIBS mm_log)
# The shipped example must load as it is.
target_compile_definitions(test_config PRIVATE
  MM_EXAMPLE_CONFIG="${PROJECT_SOURCE_DIR}/config/mboxmirror.ini.example")
