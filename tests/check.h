/* A minimal test harness: CHECK records a failure with its location and goes
 * on; TEST_MAIN_END prints the summary line and returns the exit status. */
#ifndef AMPC_TEST_CHECK_H
#define AMPC_TEST_CHECK_H

#include <stdio.h>

static int check_passed_, check_failed_;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (cond) {                                                                                    \
      check_passed_++;                                                                             \
    } else {                                                                                       \
      check_failed_++;                                                                             \
      if (check_failed_ <= 50) {                                                                   \
        fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                   \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
      }                                                                                            \
    }                                                                                              \
  } while (0)

#define TEST_MAIN_END()                                                                            \
  do {                                                                                             \
    printf("%d passed, %d failed\n", check_passed_, check_failed_);                                \
    return check_failed_ ? 1 : 0;                                                                  \
  } while (0)

#endif
