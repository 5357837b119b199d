/* testkit.h - what the fixture tests share: status checks, a clock, access
 * to the PyTorch fixture files (safetensors with string metadata), the
 * generator cross-check, and a temporary directory holding one generated
 * weights file at a time. Failures go through cmocka's fail_msg, so include
 * this after <cmocka.h>. */
#ifndef KDC_TEST_TESTKIT_H
#define KDC_TEST_TESTKIT_H

#include <stddef.h>
#include <stdint.h>

#include "kdcam.h"
#include "safetensors.h"

/* Fails the test with the status and kdc_last_error() unless expr is OK
 * (or want). */
#define CHECK_OK(expr)                                                                     \
    do {                                                                                   \
        kdc_status s_ = (expr);                                                            \
        if (s_ != KDC_OK)                                                                  \
            fail_msg("%s -> %s: %s", #expr, kdc_status_string(s_), kdc_last_error());     \
    } while (0)

#define CHECK_STATUS(expr, want)                                                           \
    do {                                                                                   \
        kdc_status s_ = (expr);                                                            \
        if (s_ != (want))                                                                  \
            fail_msg("%s -> %s (%s), expected %s", #expr, kdc_status_string(s_),           \
                     kdc_last_error(), kdc_status_string(want));                           \
    } while (0)

/* Monotonic seconds. */
double tk_now(void);

/* Fixture metadata value of key; fails the test if it is missing. */
const char *tk_meta(const kdc__st_file *f, const char *key);
long tk_meta_long(const kdc__st_file *f, const char *key);
/* Splits s at sep into at most max names of fewer than 96 characters
 * (fails the test otherwise); returns the count. */
int tk_split(const char *s, char sep, char names[][96], int max);
/* The tensor named by the printf-style format; fails the test if missing. */
const kdc__st_tensor *tk_need(const kdc__st_file *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A tensor as float32 (malloc'd; free() it). */
float *tk_read_f32(const kdc__st_tensor *t);
/* A one-element F64 or F32 tensor. */
double tk_read_scalar(const kdc__st_tensor *t);
/* Checks the fixture's "weights:NAME/val" samples (what PyTorch loaded)
 * against the C generator for scheme/seed/classes, bit for bit; returns the
 * number of tensors checked. */
int tk_check_generator(const kdc__st_file *f, const char *scheme, uint64_t seed, int classes);

/* A temporary directory for the test program (tag names it in /tmp), and
 * in it one generated weights file at a time: tk_weights_file removes the
 * previous file unless the same one is asked for again, so at most one
 * ResNet152 (240 MB) sits in /tmp. */
int tk_tmpdir_create(const char *tag);
void tk_tmpdir_remove(void);
const char *tk_tmpdir(void);
/* tk_tmpdir_remove removes what the directory holds, then the directory. */
/* name inside the temporary directory (one static buffer). */
const char *tk_tmp_path(const char *name);
/* Entries of dir other than . and .. (-1 if it cannot be read). */
int tk_count_entries(const char *dir);
const char *tk_weights_file(const char *scheme, uint64_t seed, int classes, const char *prefix,
                            int f16);

#endif
