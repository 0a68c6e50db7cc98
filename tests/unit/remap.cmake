# Matching a mailbox's messages after a UIDVALIDITY change: pure, built in
# alone.
mm_unit_test(test_remap SOURCES unit/test_remap.c
             ${PROJECT_SOURCE_DIR}/daemon/mirror/remap.c)
