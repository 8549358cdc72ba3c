# amqp_warnings: the project's warning flags, linked PRIVATE by every target.
add_library(amqp_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(amqp_warnings INTERFACE
    -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wold-style-cast
    -Wnon-virtual-dtor -Wimplicit-fallthrough -Wcast-align -Wformat=2 -Wundef)
  # GCC 12 runs -Wnull-dereference only when optimizing, and then reports paths inside
  # libstdc++ (streambuf) and Asio (scheduler) inlined into our files; clang checks it in
  # the front end, without those false positives (the fuzz build is clang).
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(amqp_warnings INTERFACE -Wnull-dereference)
  endif()
  if(AMQP_WERROR)
    target_compile_options(amqp_warnings INTERFACE -Werror)
  endif()
endif()

