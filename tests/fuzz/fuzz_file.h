/* fuzz_file.h - hands a fuzz input to an API that reads a path: the bytes
 * go into one anonymous in-memory file (memfd), reached as
 * /proc/self/fd/N, rewritten for every input. Nothing is left on disk.
 * Targets are compiled with -D_GNU_SOURCE (memfd_create). */
#ifndef KDC_FUZZ_FILE_H
#define KDC_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Returns the path of a file holding exactly data[0..size), or NULL. */
static inline const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        if ((fd = memfd_create("kdc-fuzz", 0)) < 0)
            return NULL;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0)
        return NULL;
    for (size_t off = 0; off < size;) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
        if (n <= 0)
            return NULL;
        off += (size_t)n;
    }
    return path;
}

#endif /* KDC_FUZZ_FILE_H */
