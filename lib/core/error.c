/* error.c - status names and the per-thread error message. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* One message per thread, so that concurrent runs on a shared model do not
 * overwrite each other's errors. */
static _Thread_local char kdc__error_msg[1024];

const char *kdc_status_string(kdc_status status)
{
    switch (status) {
    case KDC_OK: return "KDC_OK";
    case KDC_ERR_INVALID_ARGUMENT: return "KDC_ERR_INVALID_ARGUMENT";
    case KDC_ERR_IO: return "KDC_ERR_IO";
    case KDC_ERR_FORMAT: return "KDC_ERR_FORMAT";
    case KDC_ERR_WEIGHTS: return "KDC_ERR_WEIGHTS";
    case KDC_ERR_UNSUPPORTED: return "KDC_ERR_UNSUPPORTED";
    case KDC_ERR_SHAPE: return "KDC_ERR_SHAPE";
    case KDC_ERR_NOT_FOUND: return "KDC_ERR_NOT_FOUND";
    case KDC_ERR_NO_MEMORY: return "KDC_ERR_NO_MEMORY";
    case KDC_ERR_STATE: return "KDC_ERR_STATE";
    }
    return "KDC_ERR_UNKNOWN";
}

const char *kdc_last_error(void)
{
    return kdc__error_msg;
}

const char *kdc_version(void)
{
    return KDC_VERSION_STRING;
}

void kdc_free(void *ptr)
{
    free(ptr);
}

/* Messages are one line: newlines from callers' strings become spaces. */
static void kdc__one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

kdc_status kdc__fail(kdc_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kdc__error_msg, sizeof kdc__error_msg, fmt, ap);
    va_end(ap);
    kdc__one_line(kdc__error_msg);
    return status;
}

kdc_status kdc__fail_context(kdc_status status, const char *fmt, ...)
{
    char prefix[512];
    char old[sizeof kdc__error_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, kdc__error_msg, sizeof old);
    /* prefix, ": ", then as much of the old message as fits */
    size_t pl = strlen(prefix), ol = strlen(old), cap = sizeof kdc__error_msg - 1;
    if (pl > cap)
        pl = cap;
    memcpy(kdc__error_msg, prefix, pl);
    size_t at = pl;
    for (const char *sep = ": "; *sep && at < cap; sep++)
        kdc__error_msg[at++] = *sep;
    if (ol > cap - at)
        ol = cap - at;
    memcpy(kdc__error_msg + at, old, ol);
    kdc__error_msg[at + ol] = '\0';
    kdc__one_line(kdc__error_msg);
    return status;
}
