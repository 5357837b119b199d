/* figure.c - a figure as elements, drawn twice: as a raster (PNG, `scale`
 * pixels per unit: pictures enlarged pixel by pixel, text drawn with the
 * bitmap font at scale times its size) and as SVG (text as <text>, pictures
 * as PNG data URIs, so a paper can scale it). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figure.h"

enum { EL_IMAGE, EL_TEXT, EL_RECT };

typedef struct fig_el {
    int kind, x, y, w, h, size, anchor, line;
    unsigned char rgb[3];
    kdc_image *img; /* EL_IMAGE: owned copy */
    char *text;     /* EL_TEXT              */
} fig_el;

struct cli_fig {
    int w, h, n, cap;
    kdc_colormap cmap; /* of the colour bars (cli_fig_set_colormap) */
    fig_el *el;
};

cli_fig *cli_fig_create(int w, int h)
{
    cli_fig *f = calloc(1, sizeof *f);
    if (!f) {
        cli_error("out of memory");
        return NULL;
    }
    f->w = w;
    f->h = h;
    return f;
}

void cli_fig_set_colormap(cli_fig *f, kdc_colormap cmap)
{
    if (f)
        f->cmap = cmap;
}

void cli_fig_destroy(cli_fig *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++) {
        kdc_image_destroy(f->el[i].img);
        free(f->el[i].text);
    }
    free(f->el);
    free(f);
}

static fig_el *add(cli_fig *f, int kind)
{
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 32;
        fig_el *ne = realloc(f->el, (size_t)cap * sizeof *ne);
        if (!ne) {
            cli_error("out of memory");
            return NULL;
        }
        f->el = ne;
        f->cap = cap;
    }
    fig_el *e = &f->el[f->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    return e;
}

int cli_fig_image(cli_fig *f, int x, int y, const kdc_image *img)
{
    kdc_image *copy = NULL;
    if (kdc_image_create(img->width, img->height, &copy))
        return cli_error("out of memory");
    memcpy(copy->rgb, img->rgb, (size_t)img->width * img->height * 3);
    fig_el *e = add(f, EL_IMAGE);
    if (!e) {
        kdc_image_destroy(copy);
        return 1;
    }
    e->x = x;
    e->y = y;
    e->w = img->width;
    e->h = img->height;
    e->img = copy;
    return 0;
}

int cli_fig_text(cli_fig *f, int x, int y, int size, int anchor, const unsigned char rgb[3],
                 const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fig_el *e = add(f, EL_TEXT);
    if (!e)
        return 1;
    if (!(e->text = strdup(buf))) {
        f->n--;
        return cli_error("out of memory");
    }
    e->x = x;
    e->y = y;
    e->size = size;
    e->anchor = anchor;
    memcpy(e->rgb, rgb, 3);
    return 0;
}

int cli_fig_rect(cli_fig *f, int x, int y, int w, int h, int line, const unsigned char rgb[3])
{
    fig_el *e = add(f, EL_RECT);
    if (!e)
        return 1;
    e->x = x;
    e->y = y;
    e->w = w;
    e->h = h;
    e->line = line;
    memcpy(e->rgb, rgb, 3);
    return 0;
}

void cli_fig_text_size(const char *text, int size, int *w, int *h)
{
    kdc_text_size(text, size, w, h);
    int hw, hh;
    kdc_text_size("Hg", size, &hw, &hh);
    *h = hh; /* one line height whatever the letters */
}

kdc_image *cli_diverging_image(const float *d, int w, int h)
{
    static const float ends[3][3] = {{59, 76, 192}, {221, 221, 221}, {180, 4, 38}};
    kdc_image *img = NULL;
    if (kdc_image_create(w, h, &img)) {
        cli_error("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float v = d[i] == d[i] ? d[i] : 0.0f;
        v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
        const float *a = ends[1], *b = v < 0 ? ends[0] : ends[2];
        const float t = v < 0 ? -v : v;
        for (int c = 0; c < 3; c++)
            img->rgb[i * 3 + c] = (unsigned char)(a[c] + (b[c] - a[c]) * t + 0.5f);
    }
    return img;
}

/* The bar's picture: lo..hi along x in the figure's colormap, or in the
 * diverging colours. */
static kdc_image *bar_picture(const cli_fig *f, int w, int h, int diverging)
{
    float *ramp = malloc((size_t)w * h * sizeof *ramp);
    kdc_image *bar = NULL;
    if (!ramp) {
        cli_error("out of memory");
        return NULL;
    }
    for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++)
            ramp[yy * w + xx] = (float)xx / (float)(w - 1) * (diverging ? 2.0f : 1.0f) -
                                (diverging ? 1.0f : 0.0f);
    if (diverging)
        bar = cli_diverging_image(ramp, w, h);
    else if (kdc_image_create(w, h, &bar))
        cli_error("out of memory");
    else
        kdc_colormap_apply(f->cmap, ramp, w, h, bar->rgb);
    free(ramp);
    return bar;
}

static int colorbar(cli_fig *f, int x, int y, int w, int h, double lo, double hi, int nticks,
                    const char *fmt, const char *caption, int diverging)
{
    static const unsigned char GREY[3] = {90, 90, 90};
    kdc_image *bar = bar_picture(f, w, h, diverging);
    if (!bar)
        return 1;
    int rc = cli_fig_image(f, x, y, bar);
    kdc_image_destroy(bar);
    /* the caption at the larger font where it fits under the bar */
    int cw, chh, tsize = 2;
    cli_fig_text_size(caption ? caption : "0", 2, &cw, &chh);
    if (cw > w)
        tsize = 1;
    for (int t = 0; t < nticks && !rc; t++) {
        const int tx = x + (int)((double)(w - 1) * t / (nticks - 1) + 0.5);
        rc = cli_fig_rect(f, tx, y + h, 1, 4, 1, GREY);
        if (!rc)
            rc = cli_fig_text(f, tx, y + h + 6, tsize, t == 0 ? 0 : t == nticks - 1 ? 2 : 1,
                              GREY, fmt, lo + (hi - lo) * t / (nticks - 1));
    }
    if (!rc && caption) {
        int tw, th;
        cli_fig_text_size("0", tsize, &tw, &th);
        rc = cli_fig_text(f, x + w / 2, y + h + 6 + th + 4, tsize, 1, GREY, "%s", caption);
    }
    return rc;
}

int cli_fig_colorbar(cli_fig *f, int x, int y, int w, int h, double lo, double hi, int nticks,
                     const char *fmt, const char *caption)
{
    return colorbar(f, x, y, w, h, lo, hi, nticks, fmt, caption, 0);
}

int cli_fig_colorbar_diverging(cli_fig *f, int x, int y, int w, int h, double lo, double hi,
                               int nticks, const char *fmt, const char *caption)
{
    return colorbar(f, x, y, w, h, lo, hi, nticks, fmt, caption, 1);
}

/* ------------------------------------------------------------------ */
/* PNG                                                                 */

static int anchor_x(const fig_el *e, int width)
{
    return e->anchor == 0 ? e->x : e->anchor == 1 ? e->x - width / 2 : e->x - width;
}

int cli_fig_save_png(const cli_fig *f, int scale, const char *path)
{
    static const unsigned char WHITE[3] = {255, 255, 255};
    kdc_image *im = NULL;
    kdc_status st = kdc_image_create(f->w * scale, f->h * scale, &im);
    if (st)
        return cli_lib_error(st, path);
    kdc_image_fill(im, 0, 0, im->width, im->height, WHITE);
    int rc = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        const fig_el *e = &f->el[i];
        if (e->kind == EL_IMAGE) {
            if (scale == 1) {
                kdc_image_paste(im, e->img, e->x, e->y);
                continue;
            }
            kdc_image *big = NULL;
            if ((st = kdc_image_create(e->w * scale, e->h * scale, &big))) {
                rc = cli_lib_error(st, path);
                break;
            }
            for (int y = 0; y < big->height; y++)
                for (int x = 0; x < big->width; x++)
                    memcpy(big->rgb + ((size_t)y * big->width + x) * 3,
                           e->img->rgb + ((size_t)(y / scale) * e->w + x / scale) * 3, 3);
            kdc_image_paste(im, big, e->x * scale, e->y * scale);
            kdc_image_destroy(big);
        } else if (e->kind == EL_TEXT) {
            int tw, th;
            kdc_text_size(e->text, e->size * scale, &tw, &th);
            kdc_image_draw_text(im, anchor_x(e, tw / scale) * scale, e->y * scale, e->text,
                                e->size * scale, e->rgb);
        } else {
            const int x = e->x * scale, y = e->y * scale, w = e->w * scale, h = e->h * scale;
            const int l = e->line * scale;
            if (l * 2 >= w || l * 2 >= h) {
                kdc_image_fill(im, x, y, w, h, e->rgb);
            } else {
                kdc_image_fill(im, x, y, w, l, e->rgb);
                kdc_image_fill(im, x, y + h - l, w, l, e->rgb);
                kdc_image_fill(im, x, y, l, h, e->rgb);
                kdc_image_fill(im, x + w - l, y, l, h, e->rgb);
            }
        }
    }
    if (!rc && (st = kdc_image_save_png(im, path)))
        rc = cli_lib_error(st, NULL);
    kdc_image_destroy(im);
    return rc;
}

/* ------------------------------------------------------------------ */
/* SVG                                                                 */

static void put_base64(FILE *fp, const unsigned char *d, size_t n)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        fputc(T[v >> 18 & 63], fp);
        fputc(T[v >> 12 & 63], fp);
        fputc(i + 1 < n ? T[v >> 6 & 63] : '=', fp);
        fputc(i + 2 < n ? T[v & 63] : '=', fp);
    }
}

static void put_xml_text(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", fp);
        else if (*s == '>')
            fputs("&gt;", fp);
        else if (*s == '&')
            fputs("&amp;", fp);
        else if ((unsigned char)*s >= 32 && (unsigned char)*s < 127)
            fputc(*s, fp);
    }
}

int cli_fig_save_svg(const cli_fig *f, const char *path)
{
    char tmp[4300];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return cli_error("%s: path too long", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return cli_error("%s: cannot create: %s", tmp, strerror(errno));
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            f->w, f->h, f->w, f->h);
    int rc = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        const fig_el *e = &f->el[i];
        if (e->kind == EL_IMAGE) {
            unsigned char *png = NULL;
            size_t len = 0;
            kdc_status st = kdc_image_encode_png(e->img, &png, &len);
            if (st) {
                rc = cli_lib_error(st, path);
                break;
            }
            fprintf(fp, "<image x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                        "preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" "
                        "href=\"data:image/png;base64,", e->x, e->y, e->w, e->h);
            put_base64(fp, png, len);
            fputs("\"/>\n", fp);
            kdc_free(png);
        } else if (e->kind == EL_TEXT) {
            int tw, th;
            cli_fig_text_size(e->text, e->size, &tw, &th);
            static const char *anchors[3] = {"start", "middle", "end"};
            /* the bitmap font's cap height is about 7/10 of its line */
            fprintf(fp, "<text x=\"%d\" y=\"%.1f\" font-size=\"%.1f\" text-anchor=\"%s\" "
                        "fill=\"#%02x%02x%02x\">", e->x, e->y + th * 0.72, th * 0.74,
                    anchors[e->anchor], e->rgb[0], e->rgb[1], e->rgb[2]);
            put_xml_text(fp, e->text);
            fputs("</text>\n", fp);
        } else if (e->line * 2 >= e->w || e->line * 2 >= e->h) {
            fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                        "fill=\"#%02x%02x%02x\"/>\n", e->x, e->y, e->w, e->h, e->rgb[0],
                    e->rgb[1], e->rgb[2]);
        } else {
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" "
                        "stroke=\"#%02x%02x%02x\" stroke-width=\"%d\"/>\n",
                    e->x + e->line / 2.0, e->y + e->line / 2.0, e->w - e->line,
                    e->h - e->line, e->rgb[0], e->rgb[1], e->rgb[2], e->line);
        }
    }
    fputs("</svg>\n", fp);
    if (fclose(fp) && !rc)
        rc = cli_error("%s: cannot write: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path))
        rc = cli_error("%s: cannot rename into place: %s", path, strerror(errno));
    if (rc)
        remove(tmp);
    return rc;
}
