/* atomic.c - writing a file so that it appears whole or not at all: a
 * temporary file next to the target, synced, then renamed over it (npy.c
 * and image.c write through it). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"

static _Thread_local unsigned long kdc__tmp_counter;

kdc_status kdc__atomic_open(const char *path, kdc__atomic_file *af)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t len = strlen(path);
    char *tmp = NULL;
    int fd = -1, err = 0;

    af->fp = NULL;
    af->tmp_path = NULL;
    if (len > SIZE_MAX - 16 || !(tmp = malloc(len + 16)))
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);

    /* Seed: time, pid, a per-thread counter and a stack address (which
     * differs between threads); O_EXCL makes collisions harmless. */
    unsigned long long seed = (unsigned long long)time(NULL) * 6364136223846793005ULL
                              ^ (unsigned long long)getpid() << 20
                              ^ (unsigned long long)(uintptr_t)&len;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned long long x = seed + 0x9E3779B97F4A7C15ULL * (++kdc__tmp_counter + attempt);
        x ^= x >> 31;
        x *= 0xBF58476D1CE4E5B9ULL;
        x ^= x >> 29;
        memcpy(tmp, path, len);
        memcpy(tmp + len, ".tmp", 4);
        for (int i = 0; i < 6; i++) {
            tmp[len + 4 + i] = alphabet[x % 62];
            x /= 62;
        }
        tmp[len + 10] = '\0';
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        err = errno;
        free(tmp);
        return kdc__fail(KDC_ERR_IO, "%s: cannot create a temporary file: %s", path,
                         strerror(err));
    }
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        err = errno;
        close(fd);
        remove(tmp);
        free(tmp);
        return kdc__fail(KDC_ERR_IO, "%s: cannot open a temporary file: %s", path,
                         strerror(err));
    }
    af->tmp_path = tmp;
    return KDC_OK;
}

void kdc__atomic_abort(kdc__atomic_file *af)
{
    if (af->fp)
        fclose(af->fp);
    if (af->tmp_path)
        remove(af->tmp_path);
    free(af->tmp_path);
    af->fp = NULL;
    af->tmp_path = NULL;
}

kdc_status kdc__atomic_commit(const char *path, kdc__atomic_file *af)
{
    int err = 0;
    if (fflush(af->fp) != 0 || ferror(af->fp))
        err = errno ? errno : EIO;
    else if (fsync(fileno(af->fp)) != 0 && errno != EINVAL && errno != EROFS)
        err = errno; /* EINVAL: the file system cannot sync; not an error */
    if (fclose(af->fp) != 0 && !err)
        err = errno ? errno : EIO;
    af->fp = NULL;
    if (!err && rename(af->tmp_path, path) != 0)
        err = errno;
    if (err) {
        kdc__atomic_abort(af);
        return kdc__fail(KDC_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    free(af->tmp_path);
    af->tmp_path = NULL;
    return KDC_OK;
}

