# The scheduler both run modes share: built with its syncs replaced at link
# time by the test's own mirror_start()/mirror_free().
mm_unit_test(test_scheduler
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_scheduler.c
          ${PROJECT_SOURCE_DIR}/daemon/scheduler.c
  LIBS mm_log mm_libev)
