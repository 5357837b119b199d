/* testkit.c - see testkit.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testkit.h"
#include "weightgen.h"

double tk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *tk_meta(const kdc__st_file *f, const char *key)
{
    const char *v = kdc__st_metadata(f, key);
    if (!v)
        fail_msg("fixture metadata has no %s", key);
    return v;
}

long tk_meta_long(const kdc__st_file *f, const char *key)
{
    return strtol(tk_meta(f, key), NULL, 10);
}

int tk_split(const char *s, char sep, char names[][96], int max)
{
    int n = 0;
    while (*s) {
        const char *e = strchr(s, sep);
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (n >= max || len >= 96)
            fail_msg("list '%.60s...' too long", s);
        memcpy(names[n], s, len);
        names[n][len] = '\0';
        n++;
        s += len + (e ? 1 : 0);
    }
    return n;
}

const kdc__st_tensor *tk_need(const kdc__st_file *f, const char *fmt, ...)
{
    char key[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    const kdc__st_tensor *t = kdc__st_find(f, key);
    if (!t)
        fail_msg("fixture has no tensor %s", key);
    return t;
}

float *tk_read_f32(const kdc__st_tensor *t)
{
    float *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
    assert_non_null(v);
    CHECK_OK(kdc__st_to_f32(t, v));
    return v;
}

double tk_read_scalar(const kdc__st_tensor *t)
{
    assert_int_equal(t->numel, 1);
    if (t->dtype == KDC__ST_F64) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
            u = (u << 8) | t->data[i];
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    float v;
    CHECK_OK(kdc__st_to_f32(t, &v));
    return v;
}

int tk_check_generator(const kdc__st_file *f, const char *scheme, uint64_t seed, int classes)
{
    int checked = 0;
    for (int i = 0; i < kdc__st_count(f); i++) {
        const kdc__st_tensor *t = kdc__st_at(f, i);
        size_t len = strlen(t->name);
        if (strncmp(t->name, "weights:", 8) != 0 || len < 12 ||
            strcmp(t->name + len - 4, "/val") != 0)
            continue;
        char wname[128];
        snprintf(wname, sizeof wname, "%.*s", (int)(len - 12), t->name + 8);
        float *gen = NULL;
        size_t n = 0;
        if (kdc_test_gen_tensor(scheme, classes, wname, seed, &gen, &n) != 0)
            fail_msg("generator: scheme %s has no tensor %s", scheme, wname);
        float *ref = tk_read_f32(t);
        size_t k = t->numel, bad = 0;
        for (size_t j = 0; j < k; j++) {
            size_t idx = k == n ? j : kdc_test_sample_index(n, k, j);
            if (memcmp(&gen[idx], &ref[j], sizeof(float)) != 0)
                bad++;
        }
        if (bad)
            fail_msg("generator: %zu of %zu values of %s differ from tools/kdcgen.py", bad, k,
                     wname);
        free(ref);
        free(gen);
        checked++;
    }
    assert_true(checked > 0);
    return checked;
}

static char g_tmpdir[64];
static struct {
    char key[160];
    char path[256];
} g_file;

static void tk_drop_file(void)
{
    if (g_file.path[0])
        remove(g_file.path);
    g_file.path[0] = '\0';
    g_file.key[0] = '\0';
}

int tk_tmpdir_create(const char *tag)
{
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/kdcam_%s_XXXXXX", tag);
    if (!mkdtemp(g_tmpdir)) {
        fprintf(stderr, "%s: mkdtemp failed\n", tag);
        g_tmpdir[0] = '\0';
        return -1;
    }
    return 0;
}

void tk_tmpdir_remove(void)
{
    tk_drop_file();
    if (!g_tmpdir[0])
        return;
    DIR *d = opendir(g_tmpdir);
    struct dirent *e;
    char p[512];
    if (d) {
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", g_tmpdir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    rmdir(g_tmpdir);
    g_tmpdir[0] = '\0';
}

const char *tk_tmp_path(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", g_tmpdir, name);
    return p;
}

int tk_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

const char *tk_tmpdir(void)
{
    return g_tmpdir;
}

const char *tk_weights_file(const char *scheme, uint64_t seed, int classes, const char *prefix,
                            int f16)
{
    char key[160];
    if (!prefix)
        prefix = "";
    snprintf(key, sizeof key, "%s_%llu_%d_%s_%s", scheme, (unsigned long long)seed, classes,
             prefix[0] ? "prefixed" : "plain", f16 ? "f16" : "f32");
    if (strcmp(key, g_file.key) == 0)
        return g_file.path;
    tk_drop_file();
    snprintf(g_file.path, sizeof g_file.path, "%s/%s.safetensors", g_tmpdir, key);
    if (kdc_test_write_weights(g_file.path, scheme, seed, classes, prefix, f16) != 0) {
        g_file.path[0] = '\0';
        fail_msg("cannot write generated weights %s/%s.safetensors", g_tmpdir, key);
    }
    snprintf(g_file.key, sizeof g_file.key, "%s", key);
    return g_file.path;
}
