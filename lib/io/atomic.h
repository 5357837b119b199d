/* atomic.h - atomic file writing (lib/io/atomic.c). Never installed. */
#ifndef KDC_ATOMIC_H
#define KDC_ATOMIC_H

#include <stdio.h>

#include "internal.h"

/* kdc__atomic_open creates "PATH.tmpXXXXXX" (mode 0666 & ~umask) next to
 * path and opens it for writing. kdc__atomic_commit flushes, syncs and
 * closes it and renames it over path; kdc__atomic_abort closes and removes
 * it. Both free the temporary name. Errors name path (KDC_ERR_IO,
 * KDC_ERR_NO_MEMORY). */
typedef struct kdc__atomic_file {
    FILE *fp;
    char *tmp_path;
} kdc__atomic_file;

kdc_status kdc__atomic_open(const char *path, kdc__atomic_file *af);
kdc_status kdc__atomic_commit(const char *path, kdc__atomic_file *af);
void kdc__atomic_abort(kdc__atomic_file *af);

#endif /* KDC_ATOMIC_H */
