# amqp_warnings: the project's warning flags, linked PRIVATE by every target.
add_library(amqp_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(amqp_warnings INTERFACE
    -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wold-style-cast
    -Wnon-virtual-dtor -Wimplicit-fallthrough -Wcast-align -Wnull-dereference -Wformat=2
    -Wundef)
  if(AMQP_WERROR)
    target_compile_options(amqp_warnings INTERFACE -Werror)
  endif()
endif()
