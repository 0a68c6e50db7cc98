# --restore's decisions: names, APPEND arguments, the journal, skips.
mm_unit_test(test_restore_plan SOURCES unit/test_restore_plan.c LIBS mm_state)
