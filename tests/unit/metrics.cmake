# The Prometheus text of the metrics file (pure).
mm_unit_test(test_metrics
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics.c
          ${PROJECT_SOURCE_DIR}/daemon/metrics.c)
# Writing it: whole, 0644, a failure logged once, the gap between writes,
# the figures from the state.
mm_unit_test(test_metrics_file
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics_file.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/capture.c
          ${PROJECT_SOURCE_DIR}/daemon/metrics.c
          ${PROJECT_SOURCE_DIR}/daemon/metrics_file.c
  LIBS mm_state mm_log mm_libev)
