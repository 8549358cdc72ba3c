// AMQP_ASSERT: checks a programmer's invariant (never input from a peer). Aborts in debug
// builds; compiled out when NDEBUG is defined.
#pragma once

#include <cstdio>
#include <cstdlib>

#ifdef NDEBUG
#define AMQP_ASSERT(cond) static_cast<void>(0)
#else
#define AMQP_ASSERT(cond)                                                                          \
  ((cond) ? static_cast<void>(0)                                                                   \
          : (std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond),     \
             std::abort()))
#endif
