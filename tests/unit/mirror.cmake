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

# The modes that make their own loop (--list, --once, --probe, the daemon):
# the same server joins that loop (fakes/imapd_wrap.c, which wraps
# session_new and ev_loop_destroy); stdout and the log are captured.
set(MM_OWN_LOOP_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/capture.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fakes/imapd_wrap.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fakes/imapd_mem.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fakes/transport_mem.c
    ${PROJECT_SOURCE_DIR}/daemon/cli.c)
set(MM_METRICS_SOURCES ${PROJECT_SOURCE_DIR}/daemon/metrics.c
    ${PROJECT_SOURCE_DIR}/daemon/metrics_file.c)
set(MM_OWN_LOOP_WRAP -Wl,--wrap=session_new -Wl,--wrap=ev_loop_destroy)
mm_unit_test(test_list
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_list.c
          ${PROJECT_SOURCE_DIR}/daemon/list.c ${MM_OWN_LOOP_SOURCES}
  LIBS mm_mirror)
target_link_options(test_list PRIVATE ${MM_OWN_LOOP_WRAP})
mm_unit_test(test_run
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_run.c
          ${PROJECT_SOURCE_DIR}/daemon/run.c
          ${PROJECT_SOURCE_DIR}/daemon/scheduler.c ${MM_OWN_LOOP_SOURCES}
          ${MM_METRICS_SOURCES}
  LIBS mm_mirror)
target_link_options(test_run PRIVATE ${MM_OWN_LOOP_WRAP})
mm_unit_test(test_daemon
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_daemon.c
          ${PROJECT_SOURCE_DIR}/daemon/daemon.c
          ${PROJECT_SOURCE_DIR}/daemon/scheduler.c
          ${PROJECT_SOURCE_DIR}/daemon/notify.c ${MM_OWN_LOOP_SOURCES}
          ${MM_METRICS_SOURCES}
  LIBS mm_mirror)
target_link_options(test_daemon PRIVATE ${MM_OWN_LOOP_WRAP})
target_sources(test_daemon PRIVATE ${PROJECT_SOURCE_DIR}/daemon/fdlimit.c)
