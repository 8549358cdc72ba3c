# End-to-end tests of amqp-cli, run with cmake -P. Arguments: CLI (the executable), MODE,
# WORK (a scratch directory), INPUT (for roundtrip and message).

function(check_lines text expected_count what)
  # Count newlines rather than split into a list: JSON's brackets confuse CMake lists.
  string(REGEX MATCHALL "\n" newlines "${text}")
  list(LENGTH newlines n)
  if(NOT n EQUAL expected_count)
    message(FATAL_ERROR "${what}: expected ${expected_count} lines, got ${n}:\n${text}")
  endif()
endfunction()

if(MODE STREQUAL "roundtrip")
  # encode --hex, then decode --hex of that output, must reproduce the input lines exactly.
  execute_process(COMMAND ${CLI} encode --hex ${INPUT}
    RESULT_VARIABLE rc OUTPUT_VARIABLE hex ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "encode --hex failed (${rc}): ${err}")
  endif()
  file(WRITE ${WORK}/roundtrip.hex "${hex}")
  execute_process(COMMAND ${CLI} decode --hex ${WORK}/roundtrip.hex
    RESULT_VARIABLE rc OUTPUT_VARIABLE json ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "decode --hex failed (${rc}): ${err}")
  endif()
  file(READ ${INPUT} expected)
  if(NOT json STREQUAL expected)
    file(WRITE ${WORK}/roundtrip.out.jsonl "${json}")
    message(FATAL_ERROR "round trip differs: compare ${INPUT} with ${WORK}/roundtrip.out.jsonl")
  endif()
  # The raw form: the same bytes as the hex lines.
  execute_process(COMMAND ${CLI} encode ${INPUT} RESULT_VARIABLE rc
    OUTPUT_FILE ${WORK}/roundtrip.bin ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "encode failed (${rc}): ${err}")
  endif()
  file(READ ${WORK}/roundtrip.bin raw HEX)
  string(REPLACE "\n" "" hex "${hex}")
  if(NOT raw STREQUAL hex)
    message(FATAL_ERROR "raw encoding differs from the hex lines")
  endif()
  execute_process(COMMAND ${CLI} decode ${WORK}/roundtrip.bin
    RESULT_VARIABLE rc OUTPUT_VARIABLE json ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT json STREQUAL expected)
    message(FATAL_ERROR "decode of the raw encoding differs (${rc}): ${err}")
  endif()

elseif(MODE STREQUAL "decode_error")
  # uint 1, uint 2, then a str8 claiming 5 bytes with 1 present at offset 4.
  file(WRITE ${WORK}/malformed.hex "52 01 52 02\n a1 05 41\n")
  execute_process(COMMAND ${CLI} decode --hex ${WORK}/malformed.hex
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 1)
    message(FATAL_ERROR "expected exit status 1, got ${rc}")
  endif()
  check_lines("${out}" 2 "values before the error")
  if(NOT err MATCHES "byte offset 4: ")
    message(FATAL_ERROR "stderr does not name byte offset 4: ${err}")
  endif()
  file(WRITE ${WORK}/bad.hex "5 2 1")
  execute_process(COMMAND ${CLI} decode --hex ${WORK}/bad.hex
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "odd number of hex digits")
    message(FATAL_ERROR "odd hex: expected exit status 1 and a message, got ${rc}: ${err}")
  endif()

elseif(MODE STREQUAL "encode_error")
  file(WRITE ${WORK}/bad.jsonl
    "{\"type\":\"uint\",\"value\":1}\n\n{\"type\":\"ubyte\",\"value\":256}\n{\"type\":\"null\"}\n")
  execute_process(COMMAND ${CLI} encode --hex ${WORK}/bad.jsonl
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 1)
    message(FATAL_ERROR "expected exit status 1, got ${rc}")
  endif()
  check_lines("${out}" 1 "documents before the error")
  if(NOT err MATCHES "line 3: .*out of range")
    message(FATAL_ERROR "stderr does not name line 3: ${err}")
  endif()
  file(WRITE ${WORK}/bad.jsonl "{\"type\":\"uint\",\"value\":1,}\n")
  execute_process(COMMAND ${CLI} encode --hex ${WORK}/bad.jsonl
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "line 1: invalid JSON")
    message(FATAL_ERROR "bad JSON: expected exit status 1 and line 1, got ${rc}: ${err}")
  endif()

elseif(MODE STREQUAL "message")
  execute_process(COMMAND ${CLI} decode --message ${INPUT}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "decode --message failed (${rc}): ${err}")
  endif()
  check_lines("${out}" 5 "sections")
  string(REGEX MATCHALL "\"section\":\"[a-z-]+\"" names "${out}")
  set(expected "\"section\":\"header\";\"section\":\"message-annotations\";\"section\":\"properties\";\"section\":\"application-properties\";\"section\":\"data\"")
  if(NOT names STREQUAL expected)
    message(FATAL_ERROR "sections: ${names}")
  endif()

elseif(MODE STREQUAL "help")
  # The typed JSON appendix is in the help of the commands that read or write typed JSON,
  # and only there; the message form in send's and receive's.
  foreach(cmd "" decode encode send receive broker)
    execute_process(COMMAND ${CLI} ${cmd} --help RESULT_VARIABLE rc OUTPUT_VARIABLE out)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "'${cmd} --help' failed (${rc})")
    endif()
    string(FIND "${out}" "Typed JSON: every value is" typed)
    string(FIND "${out}" "Messages as JSON" messages)
    if(cmd STREQUAL "" OR cmd STREQUAL "broker")
      set(want_typed FALSE)
    else()
      set(want_typed TRUE)
    endif()
    if(cmd STREQUAL "send" OR cmd STREQUAL "receive")
      set(want_messages TRUE)
    else()
      set(want_messages FALSE)
    endif()
    if(want_typed AND typed EQUAL -1 OR NOT want_typed AND NOT typed EQUAL -1)
      message(FATAL_ERROR "'${cmd} --help': typed JSON appendix at ${typed}, wanted ${want_typed}")
    endif()
    if(want_messages AND messages EQUAL -1 OR NOT want_messages AND NOT messages EQUAL -1)
      message(FATAL_ERROR "'${cmd} --help': message form at ${messages}, wanted ${want_messages}")
    endif()
  endforeach()

else()
  message(FATAL_ERROR "unknown MODE ${MODE}")
endif()
