# --status from state files: the table and the JSON.
mm_unit_test(test_status
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_status.c
          ${PROJECT_SOURCE_DIR}/daemon/status.c
          ${PROJECT_SOURCE_DIR}/daemon/cli.c
  LIBS mm_state mm_config)
