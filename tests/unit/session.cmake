# The session state machine over the in-memory transport: scripted server
# bytes in, the client's exact bytes checked.
mm_unit_test(test_session
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_session.c
          ${CMAKE_CURRENT_SOURCE_DIR}/fakes/transport_mem.c
  LIBS mm_session)
