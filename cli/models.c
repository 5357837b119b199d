/* models.c - what the multi-model commands (compare, pointing) share: the
 * --model NAME=[ARCH:]WEIGHTS spec and --labels files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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
        /* the library's architectures (kdc_model_arch_name), then "auto" */
        for (int i = 0;; i++) {
            const char *an = kdc_model_arch_name(i) ? kdc_model_arch_name(i) : "auto";
            size_t al = strlen(an);
            if ((size_t)(colon - rest) == al && !strncmp(rest, an, al)) {
                snprintf(cm->arch, sizeof cm->arch, "%s", an);
                cm->weights = colon + 1;
            }
            if (!kdc_model_arch_name(i))
                break;
        }
        /* "word:..." with no path characters before the colon meant an
         * architecture: say so rather than failing to open "word:file" */
        if (!cm->arch[0] && strcspn(rest, "/.") > (size_t)(colon - rest)) {
            char known[256];
            size_t used = 0;
            known[0] = '\0';
            for (int i = 0; kdc_model_arch_name(i) && used < sizeof known; i++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                                         kdc_model_arch_name(i));
            return cli_error("--model '%s': unknown architecture '%.*s' (%s)", spec,
                             (int)(colon - rest), rest, known);
        }
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
