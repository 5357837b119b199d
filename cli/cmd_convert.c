/* cmd_convert.c - kdcam convert: a PyTorch checkpoint to safetensors. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"

static const char *convert_usage =
    "usage: kdcam convert [--key K] [--prefix P] [--dtype keep|f32|f16] [--force] IN OUT\n"
    "Writes the state dict of IN (a PyTorch checkpoint .pth/.pt, or a .safetensors\n"
    "file) as the safetensors file OUT, tensors in name order, as weights/convert.py\n"
    "writes them. IN is read without running any of its pickled code.\n"
    "\n"
    "  --key K           the state dict under checkpoint key K (dotted: a.b);\n"
    "                    default: the top level, or under state_dict, model, ...\n"
    "  --prefix P        only the tensors whose names start with P, without P\n"
    "                    (e.g. student. or module.)\n"
    "  --dtype D         keep (default) | f32 | f16: floating tensors' dtype\n"
    "                    (integer tensors are kept)\n"
    "  --force           overwrite OUT if it exists\n"
    "  -h, --help        this help\n";

int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *key = NULL, *prefix = NULL;
    kdc_save_dtype dtype = KDC_SAVE_KEEP;
    int force = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(convert_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--key") && v) {
            key = v;
            i++;
        } else if (!strcmp(a, "--prefix") && v) {
            prefix = v;
            i++;
        } else if (!strcmp(a, "--dtype") && v) {
            if (!strcmp(v, "keep"))
                dtype = KDC_SAVE_KEEP;
            else if (!strcmp(v, "f32"))
                dtype = KDC_SAVE_F32;
            else if (!strcmp(v, "f16"))
                dtype = KDC_SAVE_F16;
            else
                return cli_error("convert: --dtype '%s' is not keep, f32 or f16", v);
            i++;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("convert: unknown option or missing value '%s' (see --help)", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return cli_error("convert: one input and one output (extra '%s')", a);
        }
    }
    if (!in || !out)
        return cli_error("convert: give IN and OUT (see --help)");
    struct stat sb;
    if (!force && stat(out, &sb) == 0)
        return cli_error("convert: %s exists (--force overwrites it)", out);

    kdc_weights *w;
    kdc_status st = kdc_weights_open(in, key, &w);
    if (st)
        return cli_lib_error(st, NULL);
    st = kdc_weights_save(w, out, prefix, dtype);
    kdc_weights_close(w);
    if (st)
        return cli_lib_error(st, NULL);
    return 0;
}
