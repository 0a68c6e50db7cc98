# --verify's decisions: pure, built in alone.
mm_unit_test(test_verify_compare SOURCES unit/test_verify_compare.c
             ${PROJECT_SOURCE_DIR}/daemon/verify_compare.c)
# --verify's shell against the in-memory server, after a --once made the
# mirror (both make their own loop).
mm_unit_test(test_verify
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_verify.c
          ${PROJECT_SOURCE_DIR}/daemon/verify.c
          ${PROJECT_SOURCE_DIR}/daemon/verify_deep.c
          ${PROJECT_SOURCE_DIR}/daemon/verify_file.c
          ${PROJECT_SOURCE_DIR}/daemon/verify_report.c
          ${PROJECT_SOURCE_DIR}/daemon/verify_compare.c
          ${PROJECT_SOURCE_DIR}/daemon/run.c
          ${PROJECT_SOURCE_DIR}/daemon/scheduler.c ${MM_OWN_LOOP_SOURCES}
          ${MM_METRICS_SOURCES}
  LIBS mm_mirror)
# mbox_scan_open and state_daemon_running_in wrapped: a sync's work on a
# file just as --verify reads it.
target_link_options(test_verify PRIVATE ${MM_OWN_LOOP_WRAP}
                    -Wl,--wrap=mbox_scan_open
                    -Wl,--wrap=state_daemon_running_in)
# Size queries of two indexed UIDs: INBOX's three take two of them.
target_compile_definitions(test_verify PRIVATE VERIFY_SIZES_CHUNK=2)
