/* cliexec.h - running the kdcam tool from a test and checking its errors.
 *
 * The binary is $KDCAM (set by `make test`), else build/kdcam. Output goes to
 * files in a temporary directory made by cliexec_setup. */
#ifndef KDC_TEST_CLIEXEC_H
#define KDC_TEST_CLIEXEC_H

#include <stddef.h>

/* What the last cliexec_run printed. */
extern char cliexec_out[65536];
extern char cliexec_err[4096];

/* The temporary directory (valid after cliexec_setup). */
const char *cliexec_dir(void);

/* Finds the binary and makes the temporary directory; 0 or -1. */
int cliexec_setup(void);
/* Removes the captured output files and the directory (if empty). */
void cliexec_teardown(void);

/* Runs `kdcam ARGS`, capturing stdout and stderr; returns the exit status
 * (128 if it did not exit normally). */
int cliexec_run(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* A failing command: non-zero exit, exactly one line on stderr starting
 * with "kdcam: " and containing what (a cmocka failure otherwise). */
void cliexec_expect_error(int status, const char *what);

/* The number after "key": in a JSON line (NAN for null; a cmocka failure
 * if the key is missing). */
double cliexec_json_num(const char *line, const char *key);
/* A whole file, '\0'-terminated, freed with free(); *len (may be NULL) gets
 * its size; a cmocka failure if it cannot be read. */
char *cliexec_slurp(const char *path, size_t *len);

#endif
