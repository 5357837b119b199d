/* bench_jpeg.c - JPEG decoding speed: libjpeg-turbo with Pillow's settings
 * (lib/io/jpeg.c, what kdc_image_load uses) against stb_image (what it used
 * before, and what `make JPEG=stb` still uses), in ms per megapixel, with
 * the largest pixel difference between the two.
 *
 *   build/bench/bench_jpeg [--runs R] [FILE.jpg...]
 *
 * Without files it encodes the two example photos with libjpeg at their own
 * size and resized to 1800x1200 and 2400x1600 (Pillow-style bilinear), at
 * q75/q90, 4:2:0, one progressive. Single thread; the whole file is in
 * memory, so only decoding is timed. */
#define BENCH_NAME "bench_jpeg"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "internal.h"
#include "stb_impl.h"

#ifdef KDC_HAVE_LIBJPEG
#include <jpeglib.h>

#include "io/jpeg.h"

typedef struct {
    char name[128];
    unsigned char *buf;
    size_t len;
} jfile;

/* Encodes im with libjpeg (4:2:0, the default sampling) into j. Exits on
 * error: libjpeg's default handler does, and this is a benchmark program. */
static void encode(const kdc_image *im, int quality, int progressive, jfile *j)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    unsigned long len = 0;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = (JDIMENSION)im->width;
    c.image_height = (JDIMENSION)im->height;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = im->rgb + (size_t)c.next_scanline * im->width * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    j->buf = malloc(len); /* from libjpeg's allocator to ours */
    if (!j->buf) {
        fprintf(stderr, BENCH_NAME ": out of memory\n");
        exit(1);
    }
    memcpy(j->buf, out, len);
    j->len = len;
    free(out);
}

static void make_default(jfile *f, int *n)
{
    static const struct {
        const char *src;
        int w, h, q, prog;
    } spec[] = {
        {"examples/images/chelsea.png", 0, 0, 90, 0},
        {"examples/images/coffee.png", 0, 0, 75, 0},
        {"examples/images/coffee.png", 1800, 1200, 90, 0},
        {"examples/images/chelsea.png", 2400, 1600, 75, 0},
        {"examples/images/chelsea.png", 2400, 1600, 75, 1},
    };
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        kdc_image *im = NULL, *r = NULL;
        CHECK(kdc_image_load(spec[i].src, &im));
        if (spec[i].w)
            CHECK(kdc_image_resize(im, spec[i].w, spec[i].h, &r));
        const kdc_image *use = r ? r : im;
        encode(use, spec[i].q, spec[i].prog, &f[*n]);
        snprintf(f[*n].name, sizeof f[*n].name, "%s %dx%d q%d%s",
                 strrchr(spec[i].src, '/') + 1, use->width, use->height, spec[i].q,
                 spec[i].prog ? " prog" : "");
        (*n)++;
        kdc_image_destroy(r);
        kdc_image_destroy(im);
    }
}

static void read_file(const char *path, jfile *j)
{
    FILE *fp = fopen(path, "rb");
    long len;
    if (!fp || fseek(fp, 0, SEEK_END) || (len = ftell(fp)) <= 0 || fseek(fp, 0, SEEK_SET) ||
        !(j->buf = malloc((size_t)len)) || fread(j->buf, 1, (size_t)len, fp) != (size_t)len) {
        fprintf(stderr, BENCH_NAME ": %s: cannot read\n", path);
        exit(1);
    }
    fclose(fp);
    j->len = (size_t)len;
    snprintf(j->name, sizeof j->name, "%s", path);
}

int main(int argc, char **argv)
{
    int runs = 9, n = 0;
    jfile f[64];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (argv[i][0] == '-' || n == 64) {
            fprintf(stderr, "usage: bench_jpeg [--runs R] [FILE.jpg...] (at most 64)\n");
            return 2;
        } else
            read_file(argv[i], &f[n++]);
    }
    if (runs < 1) {
        fprintf(stderr, "usage: bench_jpeg [--runs R] [FILE.jpg...]\n");
        return 2;
    }
    if (!n)
        make_default(f, &n);
    printf("%-32s %8s %8s | %14s %14s | %7s %9s\n", "file", "MP", "KB", "libjpeg ms/MP",
           "stb ms/MP", "stb/lj", "max diff");
    double *tl = malloc(sizeof(double) * (size_t)runs), *ts = malloc(sizeof(double) * (size_t)runs);
    if (!tl || !ts)
        return 1;
    for (int i = 0; i < n; i++) {
        kdc_image *im = NULL;
        unsigned char *px = NULL;
        int w = 0, h = 0;
        for (int r = 0; r < runs; r++) {
            double t0 = now_ms();
            CHECK(kdc__jpeg_decode(f[i].buf, f[i].len, f[i].name, UINT64_MAX, &im));
            double t1 = now_ms();
            px = kdc__stbi_load(f[i].buf, f[i].len, &w, &h, 3);
            double t2 = now_ms();
            if (!px) {
                fprintf(stderr, BENCH_NAME ": %s: stb_image: %s\n", f[i].name,
                        kdc__stbi_failure_reason());
                return 1;
            }
            tl[r] = t1 - t0;
            ts[r] = t2 - t1;
            if (r + 1 < runs) {
                kdc_image_destroy(im);
                kdc__stbi_free(px);
            }
        }
        int maxd = 0;
        size_t np = (size_t)im->width * im->height * 3;
        if (w == im->width && h == im->height)
            for (size_t k = 0; k < np; k++) {
                int d = abs((int)im->rgb[k] - (int)px[k]);
                maxd = d > maxd ? d : maxd;
            }
        else
            maxd = -1;
        double mp = (double)im->width * im->height / 1e6, lmin, lmed, smin, smed;
        stats(tl, runs, &lmin, &lmed);
        stats(ts, runs, &smin, &smed);
        printf("%-32s %8.2f %8.1f | %6.2f (%5.2f) %6.2f (%5.2f) | %6.2fx %9d\n", f[i].name, mp,
               f[i].len / 1024.0, lmed / mp, lmin / mp, smed / mp, smin / mp, smed / lmed, maxd);
        kdc_image_destroy(im);
        kdc__stbi_free(px);
        free(f[i].buf);
    }
    printf("ms/MP: median (min) of %d runs, one thread; max diff: largest |libjpeg - stb| "
           "pixel value\n", runs);
    free(tl);
    free(ts);
    return 0;
}

#else
int main(void)
{
    printf(BENCH_NAME ": skipped: built with JPEG=stb (no libjpeg-turbo)\n");
    return 0;
}
#endif
