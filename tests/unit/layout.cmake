# Where mbox files go below output: the walk, directory fsyncs, file names.
mm_unit_test(test_layout
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_layout.c
  LIBS mm_layout)
