/* cmd_inspect.c - kdcam inspect: the tensors of a weights file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char *inspect_usage =
    "usage: kdcam inspect [--key K] [--json] FILE\n"
    "Lists the tensors of a weights file, a PyTorch checkpoint (.pth, .pt) or a\n"
    ".safetensors file: name, dtype, shape, one per line, in the file's order.\n"
    "A checkpoint is read without running any of its pickled code.\n"
    "\n"
    "  --key K      .pth: the state dict under checkpoint key K (dotted: a.b);\n"
    "               default: the top level, or under state_dict, model, ...\n"
    "  --json       one JSON object {\"tensors\": [{\"name\", \"dtype\", \"shape\"}]}\n"
    "  -h, --help   this help\n";

int cmd_inspect(int argc, char **argv)
{
    const char *file = NULL, *key = NULL;
    int json = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(inspect_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--key") && i + 1 < argc) {
            key = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_error("inspect: unknown option or missing value '%s' (see --help)",
                             argv[i]);
        } else if (file) {
            return cli_error("inspect: one file at a time ('%s' and '%s')", file, argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (!file)
        return cli_error("inspect: no file given (see --help)");

    kdc_weights *w;
    kdc_status st = kdc_weights_open(file, key, &w);
    if (st)
        return cli_lib_error(st, NULL);
    int n = kdc_weights_count(w);
    if (json)
        printf("{\"tensors\": [");
    for (int i = 0; i < n; i++) {
        int64_t shape[8];
        int nd = kdc_weights_shape(w, i, shape);
        if (json) {
            printf("%s{\"name\": ", i ? ", " : "");
            cli_json_string(kdc_weights_name(w, i));
            printf(", \"dtype\": \"%s\", \"shape\": [", kdc_weights_dtype(w, i));
            for (int d = 0; d < nd; d++)
                printf("%s%lld", d ? ", " : "", (long long)shape[d]);
            printf("]}");
            continue;
        }
        printf("%s %s [", kdc_weights_name(w, i), kdc_weights_dtype(w, i));
        for (int d = 0; d < nd; d++)
            printf("%s%lld", d ? "," : "", (long long)shape[d]);
        printf("]\n");
    }
    if (json)
        printf("]}\n");
    kdc_weights_close(w);
    return 0;
}
