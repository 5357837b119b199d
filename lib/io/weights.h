/* weights.h - opening a weights file by its format (internal). */
#ifndef KDC_IO_WEIGHTS_H
#define KDC_IO_WEIGHTS_H

#include "internal.h"
#include "safetensors.h"

/* Opens path as a PyTorch checkpoint when its first bytes say so (a zip
 * archive or the legacy torch.save stream; the state dict at key, see
 * kdc_model_options.key), else as a safetensors file. A non-empty key for a
 * safetensors file is KDC_ERR_INVALID_ARGUMENT. Errors start with the path. */
kdc_status kdc__weights_open(const char *path, const char *key, kdc__st_file **out);

#endif /* KDC_IO_WEIGHTS_H */
