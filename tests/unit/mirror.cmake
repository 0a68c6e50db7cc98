# The mirror engine and IDLE through their public headers, against a small
# IMAP server on the in-memory transport: the sessions they open are put on
# it by wrapping session_new at link time.
mm_unit_test(test_mirror
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_mirror.c
          ${CMAKE_CURRENT_SOURCE_DIR}/fakes/imapd_mem.c
          ${CMAKE_CURRENT_SOURCE_DIR}/fakes/transport_mem.c
  LIBS mm_mirror)
target_link_options(test_mirror PRIVATE -Wl,--wrap=session_new)
mm_unit_test(test_idle
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_idle.c
          ${CMAKE_CURRENT_SOURCE_DIR}/fakes/imapd_mem.c
          ${CMAKE_CURRENT_SOURCE_DIR}/fakes/transport_mem.c
  LIBS mm_mirror)
target_link_options(test_idle PRIVATE -Wl,--wrap=session_new)

# --list: the same server; list_run() makes its own loop, which the server
# joins when the first session is made and leaves when the loop goes.
mm_unit_test(test_list
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_list.c
          ${CMAKE_CURRENT_SOURCE_DIR}/fakes/imapd_mem.c
          ${CMAKE_CURRENT_SOURCE_DIR}/fakes/transport_mem.c
          ${PROJECT_SOURCE_DIR}/daemon/list.c
          ${PROJECT_SOURCE_DIR}/daemon/cli.c
  LIBS mm_mirror)
target_link_options(test_list PRIVATE -Wl,--wrap=session_new
                    -Wl,--wrap=ev_loop_destroy)
