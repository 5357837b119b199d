/* models.c - what the multi-model commands (compare, pointing) share: the
 * --model NAME=[ARCH:]WEIGHTS spec and --labels files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const known_arch[] = {"resnet50",      "resnet101",     "resnet152",
                                         "mobilenetv1",   "resnet50-fpn",  "resnet101-fpn",
                                         "resnet152-fpn", "auto"};

int cli_parse_model_spec(const char *spec, cli_model_spec *cm)
{
    memset(cm, 0, sizeof *cm);
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return cli_error("--model '%s': expected NAME=[ARCH:]WEIGHTS", spec);
    size_t nl = (size_t)(eq - spec);
    if (nl >= sizeof cm->name)
        return cli_error("--model '%s': name too long", spec);
    memcpy(cm->name, spec, nl);
    cm->name[nl] = '\0';
    const char *rest = eq + 1, *colon = strchr(rest, ':');
    cm->weights = rest;
    if (colon) {
        for (size_t i = 0; i < sizeof known_arch / sizeof *known_arch; i++) {
            size_t al = strlen(known_arch[i]);
            if ((size_t)(colon - rest) == al && !strncmp(rest, known_arch[i], al)) {
                snprintf(cm->arch, sizeof cm->arch, "%s", known_arch[i]);
                cm->weights = colon + 1;
            }
        }
        /* "word:..." with no path characters before the colon meant an
         * architecture: say so rather than failing to open "word:file" */
        if (!cm->arch[0] && strcspn(rest, "/.") > (size_t)(colon - rest))
            return cli_error("--model '%s': unknown architecture '%.*s' (resnet50, resnet101, "
                             "resnet152, mobilenetv1, resnet50-fpn, resnet101-fpn, "
                             "resnet152-fpn)", spec, (int)(colon - rest), rest);
    }
    if (!*cm->weights)
        return cli_error("--model '%s': no weights file", spec);
    return 0;
}

char **cli_read_labels(const char *path, int *count)
{
    FILE *f = fopen(path, "r");
    char line[512], **names = NULL;
    int n = 0, cap = 0;
    *count = 0;
    if (!f) {
        cli_error("%s: cannot open labels file", path);
        return NULL;
    }
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p)
                break;
            names = p;
        }
        names[n] = strdup(line);
        if (!names[n])
            break;
        n++;
    }
    fclose(f);
    *count = n;
    if (!names)
        cli_error("%s: no class names", path);
    return names;
}

void cli_free_labels(char **labels, int n)
{
    for (int i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
}
