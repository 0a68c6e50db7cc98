# The IMAP protocol layer: parser and typed response views.  These link
# mm_imap only: no sockets, no libev.
mm_unit_test(test_imap_parser
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_imap_parser.c
  LIBS mm_imap)
target_compile_definitions(test_imap_parser PRIVATE
  MM_FIXTURES_DIR="${PROJECT_SOURCE_DIR}/tests/fixtures")

mm_unit_test(test_imap_response
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_imap_response.c
  LIBS mm_imap)

# Parse throughput; run by hand, not a test.
add_executable(parser_bench ${PROJECT_SOURCE_DIR}/bench/parser_bench.c)
target_link_libraries(parser_bench PRIVATE mm_imap)
