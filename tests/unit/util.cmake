# The shared helpers (util/), alone.
mm_unit_test(test_util
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_util.c
  LIBS mm_util)
