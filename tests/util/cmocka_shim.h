/* cmocka_shim.h - the small part of cmocka's API the kernel tests use, for
 * builds where cmocka is not available: the aarch64 cross build of
 * tests/test_kernels.c run under qemu-user (tools/test_neon.sh).
 *
 * Why: Debian packages cmocka for arm64, but this machine's apt refuses
 * multiarch (:arm64) packages, so there is no aarch64 libcmocka to link.
 * The native build always uses the real cmocka; a test selects this header
 * with -DKDC_TEST_CMOCKA_SHIM. Header-only (static functions), one test
 * program per translation unit.
 *
 * Covered: struct CMUnitTest, cmocka_unit_test, cmocka_run_group_tests(_name),
 * assert_true, assert_false, assert_non_null, assert_null, assert_int_equal,
 * fail, fail_msg, print_message, print_error. A failed assertion prints
 * file:line and ends the test (longjmp), the next test runs, and the run
 * returns the number of failed tests, as cmocka does. Output lines follow
 * cmocka's format. Group setup and teardown functions are not supported
 * (pass NULL). */
#ifndef KDC_CMOCKA_SHIM_H
#define KDC_CMOCKA_SHIM_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*CMUnitTestFunction)(void **state);
typedef int (*CMFixtureFunction)(void **state);

struct CMUnitTest {
    const char *name;
    CMUnitTestFunction test_func;
    CMFixtureFunction setup_func;
    CMFixtureFunction teardown_func;
    void *initial_state;
};

#define cmocka_unit_test(f) {#f, f, NULL, NULL, NULL}

static jmp_buf kdc__shim_jmp;

static inline void print_message(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static inline void print_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

_Noreturn static inline void kdc__shim_fail(const char *file, int line, const char *what)
{
    print_error("%s:%d: error: Failure! %s\n", file, line, what);
    longjmp(kdc__shim_jmp, 1);
}

#define fail() kdc__shim_fail(__FILE__, __LINE__, "fail()")
#define fail_msg(msg, ...)                                                                     \
    do {                                                                                       \
        print_error("ERROR: " msg "\n", ##__VA_ARGS__);                                        \
        fail();                                                                                \
    } while (0)
#define assert_true(c)                                                                         \
    do {                                                                                       \
        if (!(c))                                                                              \
            kdc__shim_fail(__FILE__, __LINE__, #c);                                            \
    } while (0)
#define assert_false(c) assert_true(!(c))
#define assert_non_null(p) assert_true((p) != NULL)
#define assert_null(p) assert_true((p) == NULL)
#define assert_int_equal(a, b)                                                                 \
    do {                                                                                       \
        const intmax_t kdc__a = (intmax_t)(a), kdc__b = (intmax_t)(b);                         \
        if (kdc__a != kdc__b) {                                                                \
            print_error("%jd != %jd\n", kdc__a, kdc__b);                                       \
            kdc__shim_fail(__FILE__, __LINE__, #a " == " #b);                                  \
        }                                                                                      \
    } while (0)

static inline int kdc__shim_run(const char *group, const struct CMUnitTest *tests, size_t n)
{
    volatile int failed = 0; /* changed between setjmp and longjmp */
    print_message("[==========] %s: Running %zu test(s).\n", group, n);
    for (size_t i = 0; i < n; i++) {
        /* volatile: read after longjmp */
        void *volatile state = tests[i].initial_state;
        print_message("[ RUN      ] %s\n", tests[i].name);
        if (setjmp(kdc__shim_jmp) == 0) {
            void *s = state;
            if (tests[i].setup_func && tests[i].setup_func(&s) != 0)
                kdc__shim_fail(__FILE__, __LINE__, "setup failed");
            tests[i].test_func(&s);
            if (tests[i].teardown_func)
                tests[i].teardown_func(&s);
            print_message("[       OK ] %s\n", tests[i].name);
        } else {
            failed++;
            print_message("[  FAILED  ] %s\n", tests[i].name);
        }
    }
    print_message("[==========] %s: %zu test(s) run.\n", group, n);
    print_message("[  PASSED  ] %zu test(s).\n", n - (size_t)failed);
    if (failed)
        print_message("[  FAILED  ] %s: %d test(s).\n", group, failed);
    return failed;
}

#define cmocka_run_group_tests_name(name, group, setup, teardown)                              \
    kdc__shim_run(name, group, sizeof(group) / sizeof((group)[0]))
#define cmocka_run_group_tests(group, setup, teardown)                                         \
    kdc__shim_run(#group, group, sizeof(group) / sizeof((group)[0]))

#endif /* KDC_CMOCKA_SHIM_H */
