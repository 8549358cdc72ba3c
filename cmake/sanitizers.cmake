# Applies AMQP_SANITIZE and AMQP_NO_EXCEPTIONS to everything built after this point.
if(AMQP_SANITIZE)
  add_compile_options(-fsanitize=${AMQP_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${AMQP_SANITIZE})
  if(AMQP_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC warns that ThreadSanitizer does not model std::atomic_thread_fence, which Asio's
    # std_fenced_block uses around handler calls. Those fences only back up the mutex of
    # Asio's operation queue, which ThreadSanitizer does see; our own code uses no fences.
    add_compile_options(-Wno-tsan)
  endif()
endif()
if(AMQP_NO_EXCEPTIONS)
  add_compile_options(-fno-exceptions)
endif()
