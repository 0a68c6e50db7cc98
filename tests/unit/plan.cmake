# The mirror's decisions (what may be committed, when a hole is given up):
# pure, built in alone.
mm_unit_test(test_plan SOURCES unit/test_plan.c
             ${PROJECT_SOURCE_DIR}/daemon/mirror/plan.c)
