# The mbox writer and the state store: the two halves of the commit protocol.
mm_unit_test(test_mbox SOURCES unit/test_mbox.c LIBS mm_mbox)

# state.c is built in directly: this test needs none of mm_state's other
# objects (names.c, and the protocol layer they link).
mm_unit_test(test_state SOURCES unit/test_state.c
             ${PROJECT_SOURCE_DIR}/daemon/mirror/state.c
             LIBS mm_log mm_util)

# An mbox written by the writer, read back by Python's mailbox module and an
# independent mboxrd reader.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME unit.mbox_python_read
           COMMAND ${Python3_EXECUTABLE}
                   ${CMAKE_CURRENT_SOURCE_DIR}/unit/mbox_read.py
                   $<TARGET_FILE:test_mbox>)
  set_tests_properties(unit.mbox_python_read PROPERTIES LABELS unit TIMEOUT 60)
endif()

# Reading entries back (--restore): round trips through the writer's encoder.
mm_unit_test(test_mbox_decode SOURCES unit/test_mbox_decode.c LIBS mm_mbox)

# What the message index is built on: entry digests from the writer, from
# raw bytes, and from an mbox file's scan.
mm_unit_test(test_mbox_digest SOURCES unit/test_mbox_digest.c LIBS mm_mbox)
