/* zip.h - the zip container of PyTorch checkpoints, read in place (internal).
 *
 * torch.save writes a zip archive whose entries are stored, not compressed
 * (method 0), with ZIP64 records once the archive passes 4 GB. The reader
 * works on bytes already in memory (a file mapping): it checks the end of
 * central directory record (and its ZIP64 form), every central directory
 * entry and the local header it points to, and gives each entry's name and
 * the bounds of its data. Compressed entries are refused (never inflated),
 * so a zip bomb costs nothing. CRC-32 values are not checked (the
 * safetensors reader has no checksum either). */
#ifndef KDC_IO_ZIP_H
#define KDC_IO_ZIP_H

#include <stddef.h>

#include "internal.h"

/* Hard limit on entries: a ResNet-152 checkpoint has about 1,000. */
#define KDC__ZIP_MAX_ENTRIES 1000000

typedef struct kdc__zip_entry {
    char *name;                 /* NUL-terminated copy                      */
    const unsigned char *data;  /* into the caller's bytes                  */
    size_t size;
} kdc__zip_entry;

typedef struct kdc__zip {
    kdc__zip_entry *entries;    /* sorted by name                           */
    size_t count;
} kdc__zip;

/* Reads the directory of the archive in buf[0..len). Errors (message
 * without the file name): KDC_ERR_FORMAT (what is malformed, or the entry
 * that is compressed, encrypted or out of bounds), KDC_ERR_NO_MEMORY.
 * On success free z with kdc__zip_free; data pointers stay valid as long as
 * buf does. */
kdc_status kdc__zip_read(const unsigned char *buf, size_t len, kdc__zip *z);
void kdc__zip_free(kdc__zip *z);

/* The entry called name, or NULL. */
const kdc__zip_entry *kdc__zip_find(const kdc__zip *z, const char *name);

/* Non-zero when buf starts like a zip archive (a local file header). */
int kdc__zip_sniff(const unsigned char *buf, size_t len);

#endif /* KDC_IO_ZIP_H */
