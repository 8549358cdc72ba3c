# All build options of the project, in one place.
option(AMQP_BUILD_TESTS "Build the unit tests" ${PROJECT_IS_TOP_LEVEL})
option(AMQP_BUILD_TOOLS "Build amqp-cli" ${PROJECT_IS_TOP_LEVEL})
option(AMQP_BUILD_TRANSPORT "Build amqp::transport (Asio, OpenSSL)" ON)
option(AMQP_BUILD_FUZZERS "Build the fuzz targets against libFuzzer (clang)" OFF)
option(AMQP_BUILD_CONFORMANCE "Register the conformance tests against real peers" OFF)
option(AMQP_BUILD_BENCH "Build the benchmarks (need Qpid Proton)" OFF)
option(AMQP_INSTALL "Generate the install rules (libraries, headers, CMake package, pkg-config)"
       ${PROJECT_IS_TOP_LEVEL})
option(AMQP_WERROR "Treat warnings as errors" OFF)
option(AMQP_NO_EXCEPTIONS "Build with -fno-exceptions" OFF)
set(AMQP_SANITIZE "" CACHE STRING "Sanitizers: empty, address,undefined, or thread")
