/* driver.c - runs a fuzz target without libFuzzer: every file named on
 * the command line (or every file in a folder named there) is passed once
 * to LLVMFuzzerTestOneInput. `make test` links each tests/fuzz/fuzz_*.c
 * with it and runs tests/fuzz/regress/ (every target sees every file); a
 * crash or a sanitizer report fails the test. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap = cap ? 2 * cap : 4096);
            if (!nb) {
                fprintf(stderr, "%s: out of memory\n", path);
                free(buf);
                fclose(f);
                return 1;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (!got)
            break;
        n += got;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            struct dirent **list;
            int n = scandir(argv[i], &list, NULL, alphasort);
            for (int k = 0; k < n; k++) {
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", argv[i], list[k]->d_name);
                if (list[k]->d_name[0] != '.' && stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
                    bad |= run_file(p);
                    count++;
                }
                free(list[k]);
            }
            free(list);
        } else {
            bad |= run_file(argv[i]);
            count++;
        }
    }
    printf("%s: %d inputs\n", argv[0], count);
    return bad;
}
