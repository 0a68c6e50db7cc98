# The per-mailbox message index: its file, cuts, rebuilds and rewrites.
mm_unit_test(test_msgindex SOURCES unit/test_msgindex.c
             ${PROJECT_SOURCE_DIR}/daemon/mirror/msgindex.c
             LIBS mm_mbox mm_log mm_util)
