/* zip.c - the zip container of PyTorch checkpoints, read in place.
 *
 * Records used (APPNOTE.TXT): the end of central directory record (EOCD,
 * PK\5\6) at the end of the archive, its ZIP64 locator (PK\6\7) and ZIP64
 * record (PK\6\6), the central directory entries (PK\1\2) and the local file
 * headers (PK\3\4) they point to. Every offset and size is checked against
 * the buffer before it is used. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/zip.h"

#define ZIP_EOCD_SIZE 22
#define ZIP_LOC64_SIZE 20
#define ZIP_EOCD64_SIZE 56
#define ZIP_CDIR_SIZE 46
#define ZIP_LOCAL_SIZE 30
#define ZIP_MAX_COMMENT 65535

static uint32_t zip_u16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t zip_u32(const unsigned char *p)
{
    return zip_u16(p) | zip_u16(p + 2) << 16;
}

static uint64_t zip_u64(const unsigned char *p)
{
    return (uint64_t)zip_u32(p) | (uint64_t)zip_u32(p + 4) << 32;
}

int kdc__zip_sniff(const unsigned char *buf, size_t len)
{
    return len >= 4 && !memcmp(buf, "PK\3\4", 4);
}

/* The central directory's place and size, from the EOCD and, where the
 * archive needs it, the ZIP64 record. */
static kdc_status zip_find_directory(const unsigned char *buf, size_t len, uint64_t *count,
                                     uint64_t *cd_off, uint64_t *cd_size)
{
    size_t pos, lowest;
    const unsigned char *e = NULL;

    if (len < ZIP_EOCD_SIZE)
        return kdc__fail(KDC_ERR_FORMAT, "zip: %zu bytes, too short for an archive", len);
    /* The EOCD is followed by its comment only: search backwards for the
     * record whose comment ends exactly at the end of the archive. */
    lowest = len - ZIP_EOCD_SIZE > ZIP_MAX_COMMENT ? len - ZIP_EOCD_SIZE - ZIP_MAX_COMMENT : 0;
    for (pos = len - ZIP_EOCD_SIZE + 1; pos-- > lowest;) {
        if (!memcmp(buf + pos, "PK\5\6", 4) && pos + ZIP_EOCD_SIZE + zip_u16(buf + pos + 20) == len) {
            e = buf + pos;
            break;
        }
    }
    if (!e)
        return kdc__fail(KDC_ERR_FORMAT, "zip: no end of central directory record (truncated?)");
    if (zip_u16(e + 4) != 0 || zip_u16(e + 6) != 0)
        return kdc__fail(KDC_ERR_FORMAT, "zip: multi-disk archives are not supported");
    *count = zip_u16(e + 10);
    *cd_size = zip_u32(e + 12);
    *cd_off = zip_u32(e + 16);

    if (pos >= ZIP_LOC64_SIZE && !memcmp(buf + pos - ZIP_LOC64_SIZE, "PK\6\7", 4)) {
        const unsigned char *loc = buf + pos - ZIP_LOC64_SIZE;
        uint64_t off = zip_u64(loc + 8);

        if (off > len || len - off < ZIP_EOCD64_SIZE || memcmp(buf + off, "PK\6\6", 4))
            return kdc__fail(KDC_ERR_FORMAT, "zip: the ZIP64 locator points to no ZIP64 record");
        e = buf + off;
        if (zip_u32(e + 16) != 0 || zip_u32(e + 20) != 0)
            return kdc__fail(KDC_ERR_FORMAT, "zip: multi-disk archives are not supported");
        *count = zip_u64(e + 32);
        *cd_size = zip_u64(e + 40);
        *cd_off = zip_u64(e + 48);
    } else if (*count == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu) {
        return kdc__fail(KDC_ERR_FORMAT, "zip: ZIP64 values without a ZIP64 record");
    }
    if (*count > KDC__ZIP_MAX_ENTRIES)
        return kdc__fail(KDC_ERR_FORMAT, "zip: %llu entries, more than the limit of %d",
                         (unsigned long long)*count, KDC__ZIP_MAX_ENTRIES);
    if (*cd_off > len || *cd_size > len - *cd_off)
        return kdc__fail(KDC_ERR_FORMAT, "zip: the central directory lies outside the archive");
    return KDC_OK;
}

/* The ZIP64 extended information field replaces the 32-bit values that are
 * 0xFFFFFFFF, in the order usize, csize, offset. */
static kdc_status zip_extra64(const unsigned char *x, size_t xlen, const char *name,
                              uint64_t *usize, uint64_t *csize, uint64_t *off)
{
    uint64_t *want[3] = {usize, csize, off};

    while (xlen >= 4) {
        uint32_t id = zip_u16(x), n = zip_u16(x + 2);

        if (n > xlen - 4)
            return kdc__fail(KDC_ERR_FORMAT, "zip: entry %s: extra field runs past its end", name);
        if (id == 0x0001) {
            size_t used = 0;
            for (int i = 0; i < 3; i++) {
                if (*want[i] != 0xFFFFFFFFu)
                    continue;
                if (used + 8 > n)
                    return kdc__fail(KDC_ERR_FORMAT, "zip: entry %s: ZIP64 field too short", name);
                *want[i] = zip_u64(x + 4 + used);
                used += 8;
            }
            return KDC_OK;
        }
        x += 4 + n;
        xlen -= 4 + n;
    }
    if (*usize == 0xFFFFFFFFu || *csize == 0xFFFFFFFFu || *off == 0xFFFFFFFFu)
        return kdc__fail(KDC_ERR_FORMAT, "zip: entry %s: ZIP64 sizes without a ZIP64 field", name);
    return KDC_OK;
}

static int zip_cmp(const void *a, const void *b)
{
    return strcmp(((const kdc__zip_entry *)a)->name, ((const kdc__zip_entry *)b)->name);
}

/* One central directory entry at *p (advanced past it). */
static kdc_status zip_entry(const unsigned char *buf, size_t len, const unsigned char **p,
                            const unsigned char *end, kdc__zip_entry *out)
{
    const unsigned char *c = *p;
    uint32_t flags, method, nlen, xlen, clen;
    uint64_t csize, usize, off, data;

    if ((size_t)(end - c) < ZIP_CDIR_SIZE || memcmp(c, "PK\1\2", 4))
        return kdc__fail(KDC_ERR_FORMAT, "zip: central directory entry %zu is malformed",
                         (size_t)(c - buf));
    flags = zip_u16(c + 8);
    method = zip_u16(c + 10);
    csize = zip_u32(c + 20);
    usize = zip_u32(c + 24);
    nlen = zip_u16(c + 28);
    xlen = zip_u16(c + 30);
    clen = zip_u16(c + 32);
    off = zip_u32(c + 42);
    if ((size_t)(end - c) - ZIP_CDIR_SIZE < (size_t)nlen + xlen + clen)
        return kdc__fail(KDC_ERR_FORMAT, "zip: central directory entry runs past the directory");
    if (memchr(c + ZIP_CDIR_SIZE, 0, nlen))
        return kdc__fail(KDC_ERR_FORMAT, "zip: an entry name holds a NUL byte");
    out->name = malloc((size_t)nlen + 1);
    if (!out->name)
        return kdc__fail(KDC_ERR_NO_MEMORY, "zip: out of memory for entry names");
    memcpy(out->name, c + ZIP_CDIR_SIZE, nlen);
    out->name[nlen] = '\0';
    *p = c + ZIP_CDIR_SIZE + nlen + xlen + clen;

    kdc_status st = zip_extra64(c + ZIP_CDIR_SIZE + nlen, xlen, out->name, &usize, &csize, &off);
    if (st)
        return st;
    if (flags & 1)
        return kdc__fail(KDC_ERR_FORMAT, "zip: entry %s is encrypted", out->name);
    if (method != 0 || csize != usize)
        return kdc__fail(KDC_ERR_FORMAT, "zip: entry %s is compressed (method %u, %llu bytes "
                         "for %llu); torch.save stores entries uncompressed, re-save the "
                         "checkpoint with torch.save", out->name, (unsigned)method,
                         (unsigned long long)csize, (unsigned long long)usize);
    if (off > len || len - off < ZIP_LOCAL_SIZE || memcmp(buf + off, "PK\3\4", 4))
        return kdc__fail(KDC_ERR_FORMAT, "zip: entry %s: no local header at offset %llu",
                         out->name, (unsigned long long)off);
    data = off + ZIP_LOCAL_SIZE + zip_u16(buf + off + 26) + zip_u16(buf + off + 28);
    if (data > len || usize > len - data)
        return kdc__fail(KDC_ERR_FORMAT, "zip: entry %s: %llu bytes at offset %llu run past the "
                         "end of the archive (%zu bytes)", out->name, (unsigned long long)usize,
                         (unsigned long long)data, len);
    out->data = buf + data;
    out->size = (size_t)usize;
    return KDC_OK;
}

kdc_status kdc__zip_read(const unsigned char *buf, size_t len, kdc__zip *z)
{
    uint64_t count = 0, cd_off = 0, cd_size = 0;
    const unsigned char *p, *end;
    kdc_status st;

    memset(z, 0, sizeof *z);
    if ((st = zip_find_directory(buf, len, &count, &cd_off, &cd_size)))
        return st;
    /* Each entry takes at least 46 bytes of the directory. */
    if (count > cd_size / ZIP_CDIR_SIZE)
        return kdc__fail(KDC_ERR_FORMAT, "zip: %llu entries do not fit a %llu-byte directory",
                         (unsigned long long)count, (unsigned long long)cd_size);
    z->entries = calloc(count ? (size_t)count : 1, sizeof *z->entries);
    if (!z->entries)
        return kdc__fail(KDC_ERR_NO_MEMORY, "zip: out of memory for %llu entries",
                         (unsigned long long)count);
    p = buf + cd_off;
    end = p + cd_size;
    for (z->count = 0; z->count < count;) {
        st = zip_entry(buf, len, &p, end, &z->entries[z->count]);
        z->count++; /* its name, if any, is freed with the rest */
        if (st)
            goto fail;
    }
    qsort(z->entries, z->count, sizeof *z->entries, zip_cmp);
    for (size_t i = 1; i < z->count; i++)
        if (!strcmp(z->entries[i - 1].name, z->entries[i].name)) {
            st = kdc__fail(KDC_ERR_FORMAT, "zip: duplicate entry %s", z->entries[i].name);
            goto fail;
        }
    return KDC_OK;
fail:
    kdc__zip_free(z);
    return st;
}

void kdc__zip_free(kdc__zip *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->count; i++)
        free(z->entries[i].name);
    free(z->entries);
    z->entries = NULL;
    z->count = 0;
}

const kdc__zip_entry *kdc__zip_find(const kdc__zip *z, const char *name)
{
    kdc__zip_entry probe = {.name = (char *)name};

    if (!z->count)
        return NULL;
    return bsearch(&probe, z->entries, z->count, sizeof probe, zip_cmp);
}
