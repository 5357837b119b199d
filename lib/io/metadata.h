/* metadata.h - the kdcam.* strings of a weights file's __metadata__
 * (docs/api.md, "Model metadata"), parsed apart from the model so that they
 * can be tested and fuzzed on their own. Never installed. */
#ifndef KDC_IO_METADATA_H
#define KDC_IO_METADATA_H

#include "internal.h"

/* Largest resize or crop side "kdcam.preprocess" may ask for
 * (docs/security.md). */
#define KDC__META_MAX_SIDE 1024
/* Most memory the activations of one image may need at the input size
 * "kdcam.preprocess" asks for (checked when the model loads). */
#define KDC__META_MAX_ACTIVATION_BYTES (2048ULL << 20)

/* "kdcam.preprocess": "resize=R crop=HxW mean=a,b,c std=a,b,c", every field
 * optional; unnamed fields keep *pp's values. On error *pp is unchanged and
 * the message names path and the string (KDC_ERR_FORMAT). */
kdc_status kdc__meta_preprocess(const char *path, const char *v, kdc_preprocess *pp);

/* "kdcam.classes": num_classes comma-separated, non-empty names. On success
 * *text is a copy of v cut at the commas and *names (num_classes pointers
 * into it) its names; free both with free(). Errors: KDC_ERR_FORMAT (wrong
 * count, an empty name), KDC_ERR_NO_MEMORY. */
kdc_status kdc__meta_classes(const char *path, const char *v, int num_classes, char **text,
                             char ***names);

/* "kdcam.detect": "short=S max=M [anchor=A]", the detection resize the
 * detector was trained at (shorter side S, longer at most M; both
 * 32..KDC__META_MAX_DET, S <= M) and the base size of its P3 anchors (4..1024;
 * absent: *anchor = 0, the frameworks' 32). On error the outputs are
 * unchanged and the message names path and the string (KDC_ERR_FORMAT). */
#define KDC__META_MAX_DET 2048
kdc_status kdc__meta_detect(const char *path, const char *v, int *short_side, int *max_side,
                            int *anchor);

#endif /* KDC_IO_METADATA_H */
