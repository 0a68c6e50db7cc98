# sd_notify protocol: linked with the logger only, no libsystemd.
mm_unit_test(test_notify
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_notify.c
          ${PROJECT_SOURCE_DIR}/daemon/notify.c
  LIBS mm_log mm_util)
