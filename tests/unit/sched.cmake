# The scheduler both run modes share: built with its syncs replaced at link
# time by the test's own mirror_start()/mirror_free().
mm_unit_test(test_sched
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sched.c
          ${PROJECT_SOURCE_DIR}/daemon/sched.c
  LIBS mm_log mm_libev)
