# Applies AMQP_SANITIZE and AMQP_NO_EXCEPTIONS to everything built after this point.
if(AMQP_SANITIZE)
  add_compile_options(-fsanitize=${AMQP_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${AMQP_SANITIZE})
endif()
if(AMQP_NO_EXCEPTIONS)
  add_compile_options(-fno-exceptions)
endif()
