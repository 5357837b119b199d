/* pth.h - PyTorch checkpoints (.pth, .pt) as a table of tensors (internal).
 *
 * Two containers: the zip archive of torch.save since PyTorch 1.6
 * (DIR/data.pkl, DIR/data/KEY, DIR/byteorder) and the legacy stream before
 * it (pickled magic number, protocol version and system info, the object,
 * the list of storage keys, then each storage as an int64 element count and
 * its bytes). The object is read by the restricted unpickler (io/pickle.h),
 * the state dict found in it (kdc__pth_read), and each of its tensors
 * becomes a kdc__st_tensor: contiguous tensors point into the caller's bytes,
 * strided ones are copied. */
#ifndef KDC_IO_PTH_H
#define KDC_IO_PTH_H

#include <stddef.h>

#include "internal.h"
#include "safetensors.h"
#include "io/pickle.h"
#include "io/zip.h"

typedef struct kdc__pth {
    kdc__st_tensor *tensors;   /* state-dict order                          */
    int count;
    char where[256];           /* keys walked to the state dict, "" for the top */
    /* owned: */
    kdc__pickle pk;            /* tensor names point into its strings       */
    kdc__zip zip;
    unsigned char **copies;    /* strided tensors' contiguous copies        */
    int n_copies;
    size_t copy_budget;        /* bytes left for copies: the input's size   */
    struct kdc__pth_blob *blobs; /* legacy storages: key -> bytes           */
    size_t n_blobs;
} kdc__pth;

/* Non-zero if buf starts like a PyTorch checkpoint (zip or legacy). */
int kdc__pth_sniff(const unsigned char *buf, size_t len);

/* Reads the checkpoint in buf[0..len), finds its state dict (at key, dotted,
 * when key is neither NULL nor empty; else at the top or under the usual
 * wrapper keys) and fills *out. mapped: buf is a read-only file mapping
 * whose pages may be dropped once converted (kdc__st_tensor.mapped).
 * Errors (message without the file name): KDC_ERR_FORMAT (malformed
 * container or pickle; a value on the way to a tensor that is not one, such
 * as "a call to posix.system", named), KDC_ERR_UNSUPPORTED (big-endian
 * data), KDC_ERR_NOT_FOUND (no state dict, or no key), KDC_ERR_NO_MEMORY.
 * Free *out with kdc__pth_free in every case. */
kdc_status kdc__pth_read(const unsigned char *buf, size_t len, const char *key, int mapped,
                         kdc__pth *out);
void kdc__pth_free(kdc__pth *p);

/* Maps the file at path and opens it as a tensor table that the model
 * builder reads like a safetensors file. Errors start with the path. */
kdc_status kdc__pth_open(const char *path, const char *key, kdc__st_file **out);

#endif /* KDC_IO_PTH_H */
