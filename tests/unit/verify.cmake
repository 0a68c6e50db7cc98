# --verify's decisions: pure, built in alone.
mm_unit_test(test_verify_compare SOURCES unit/test_verify_compare.c
             ${PROJECT_SOURCE_DIR}/daemon/verify_compare.c)
