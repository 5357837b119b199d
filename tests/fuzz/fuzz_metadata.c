/* fuzz_metadata.c - the kdcam.* metadata strings of a weights file:
 * "kdcam.preprocess", "kdcam.detect" and "kdcam.classes". The input is
 * split at its first NUL byte into two strings: the first is parsed as
 * kdcam.preprocess and as kdcam.detect, the second as kdcam.classes. The model's class count is the number of
 * names in the second when the input's length is even, else its first
 * byte (0..255), so that both matches and mismatches are exercised. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/metadata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 2), *second, *text = NULL, **names = NULL;
    kdc_preprocess pp;
    int h, w;
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    second = buf + strlen(buf) + 1;
    kdc_preprocess_imagenet(&pp);
    if (kdc__meta_preprocess("fuzz", buf, &pp) == KDC_OK)
        kdc_preprocess_size(&pp, 500, 375, &h, &w);
    int ds = 0, dm = 0, da = 0;
    if (kdc__meta_detect("fuzz", buf, &ds, &dm, &da) == KDC_OK &&
        (ds < 32 || dm < ds || dm > KDC__META_MAX_DET || (da && (da < 4 || da > 1024))))
        abort();
    int count = 1;
    for (const char *c = second; *c; c++)
        count += *c == ',';
    if (size % 2)
        count = data[0];
    if (kdc__meta_classes("fuzz", second, count, &text, &names) == KDC_OK) {
        free(text);
        free(names);
    }
    free(buf);
    return 0;
}
