# The descriptors a configuration needs, and raising RLIMIT_NOFILE.
mm_unit_test(test_fdlimit
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_fdlimit.c
          ${PROJECT_SOURCE_DIR}/daemon/fdlimit.c
  LIBS mm_util)
