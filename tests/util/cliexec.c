/* cliexec.c - running the kdcam tool from a test (see cliexec.h). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cliexec.h"

char cliexec_out[65536];
char cliexec_err[4096];
static char tmp[64];
static const char *kdcam;

const char *cliexec_dir(void)
{
    return tmp;
}

int cliexec_setup(void)
{
    kdcam = getenv("KDCAM");
    if (!kdcam)
        kdcam = "build/kdcam";
    snprintf(tmp, sizeof tmp, "/tmp/kdcam-cli-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

void cliexec_teardown(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/stdout", tmp);
    remove(p);
    snprintf(p, sizeof p, "%s/stderr", tmp);
    remove(p);
    rmdir(tmp);
}

int cliexec_run(const char *fmt, ...)
{
    char args[8192], cmd[9000], path[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >%s/stdout 2>%s/stderr", kdcam, args, tmp, tmp);
    int st = system(cmd);
    for (int k = 0; k < 2; k++) {
        char *dst = k ? cliexec_err : cliexec_out;
        size_t cap = k ? sizeof cliexec_err : sizeof cliexec_out;
        snprintf(path, sizeof path, "%s/%s", tmp, k ? "stderr" : "stdout");
        FILE *f = fopen(path, "rb");
        size_t n = f ? fread(dst, 1, cap - 1, f) : 0;
        dst[n] = '\0';
        if (f)
            fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void cliexec_expect_error(int status, const char *what)
{
    if (status == 0)
        fail_msg("expected failure mentioning '%s', got exit 0", what);
    if (strncmp(cliexec_err, "kdcam: ", 7) || !strstr(cliexec_err, what))
        fail_msg("stderr '%s' does not mention '%s'", cliexec_err, what);
    char *nl = strchr(cliexec_err, '\n');
    if (!nl || nl[1] != '\0')
        fail_msg("stderr is not one line: '%s'", cliexec_err);
    if (status >= 128)
        fail_msg("kdcam crashed (status %d): %s", status, cliexec_err);
}

double cliexec_json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        fail_msg("no %s in '%s'", key, line);
    p += strlen(pat);
    if (!strncmp(p, "null", 4))
        return NAN;
    return strtod(p, NULL);
}

char *cliexec_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}
