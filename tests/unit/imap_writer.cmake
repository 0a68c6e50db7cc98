# The command writer, modified UTF-7 and the mailbox name mapping.  Built from
# the sources under test alone, so they link without the rest of mm_imap.
mm_unit_test(test_imap_writer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_imap_writer.c
          ${PROJECT_SOURCE_DIR}/daemon/imap/writer.c
  LIBS mm_base64 mm_util)
mm_unit_test(test_utf7
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_utf7.c
          ${PROJECT_SOURCE_DIR}/daemon/imap/writer.c
  LIBS mm_base64 mm_util)
mm_unit_test(test_names
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_names.c
          ${PROJECT_SOURCE_DIR}/daemon/mirror/names.c
          ${PROJECT_SOURCE_DIR}/daemon/imap/writer.c
  LIBS mm_base64 mm_util)
