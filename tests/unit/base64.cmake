# base64 in both alphabets, alone.
mm_unit_test(test_base64
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_base64.c
  LIBS mm_base64)
