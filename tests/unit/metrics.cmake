# The Prometheus text of the metrics file (pure).
mm_unit_test(test_metrics
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics.c
          ${PROJECT_SOURCE_DIR}/daemon/metrics.c)
