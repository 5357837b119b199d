/* safetensors.h - memory-mapped reader for .safetensors files (internal).
 *
 * Format: 8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then the
 * data buffer. kdc__st_open validates every rule of the reference reader and
 * names the rule that failed in the error message. */
#ifndef KDC_SAFETENSORS_H
#define KDC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define KDC__ST_MAX_DIMS 8

typedef enum kdc__st_dtype {
    KDC__ST_F32,
    KDC__ST_F16,
    KDC__ST_BF16,
    KDC__ST_I64,
    KDC__ST_F64,
    KDC__ST_I32,
    KDC__ST_I16,
    KDC__ST_I8,
    KDC__ST_U8,
    KDC__ST_BOOL,
    KDC__ST_OTHER /* any other dtype string in the header: legal, not convertible */
} kdc__st_dtype;

typedef struct kdc__st_tensor {
    const char *name;         /* NUL-terminated, owned by the file handle     */
    kdc__st_dtype dtype;
    const char *dtype_name;   /* as written in the header ("F32", "I64", ...) */
    int ndim;                 /* 0 for a scalar                               */
    int64_t shape[KDC__ST_MAX_DIMS];
    size_t numel;             /* product of shape (1 for rank 0)              */
    const unsigned char *data;/* into the mapping; NOT aligned in general     */
    size_t nbytes;
    int mapped;               /* data lies in a read-only file mapping, whose
                                 pages kdc__st_to_f32 may drop once converted */
} kdc__st_tensor;

typedef struct kdc__st_file kdc__st_file;

/* Opens and validates a file. Errors (message starts with the path):
 * KDC_ERR_IO (cannot open/map), KDC_ERR_FORMAT (which rule failed),
 * KDC_ERR_NO_MEMORY. Tensors stay valid until kdc__st_close. */
kdc_status kdc__st_open(const char *path, kdc__st_file **out);
void kdc__st_close(kdc__st_file *f);

/* A handle over n tensors read from another format (io/pth.c): the records
 * are copied, the names and data they point to stay owned by owner, which
 * kdc__st_close (or a failure here) hands to release(owner). Errors:
 * KDC_ERR_FORMAT (a duplicate name), KDC_ERR_NO_MEMORY. */
kdc_status kdc__st_from_table(const kdc__st_tensor *tensors, int n, void *owner,
                              void (*release)(void *), kdc__st_file **out);

int kdc__st_count(const kdc__st_file *f);
/* Tensors in data-offset order. */
const kdc__st_tensor *kdc__st_at(const kdc__st_file *f, int i);
/* NULL if absent. */
const kdc__st_tensor *kdc__st_find(const kdc__st_file *f, const char *name);
/* The __metadata__ value for key, or NULL. */
const char *kdc__st_metadata(const kdc__st_file *f, const char *key);

/* Converts a floating tensor (F32, F16, BF16, F64) to float32 into dst
 * (t->numel floats). KDC_ERR_UNSUPPORTED for other dtypes (names the
 * tensor and dtype). */
kdc_status kdc__st_to_f32(const kdc__st_tensor *t, float *dst);

/* Reads an I64 tensor into dst (t->numel values); KDC_ERR_UNSUPPORTED
 * for other dtypes. */
kdc_status kdc__st_to_i64(const kdc__st_tensor *t, int64_t *dst);

/* Half-precision conversions, exact (round-to-nearest-even where narrowing). */
float kdc__f16_to_f32(uint16_t h);
float kdc__bf16_to_f32(uint16_t h);

#endif /* KDC_SAFETENSORS_H */
