# The transport against loopback servers with a generated test PKI.
mm_unit_test(test_transport
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_transport.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/net_fixture.c
  LIBS mm_net)

# COMPRESS=DEFLATE stream transform.
mm_unit_test(test_compress
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_compress.c
  LIBS mm_net)
