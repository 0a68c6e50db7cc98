# Which accounts a shard takes (pure).
mm_unit_test(test_shard
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_shard.c
  LIBS mm_shard)
