/* analyze_png.c - a CKA matrix as a labelled heatmap PNG: one cell per
 * (teacher layer, student layer) coloured with the JET map over [0, 1]
 * (values outside are clamped; NaN cells grey), the value printed in each
 * cell, layer names on both axes, a title and a colour bar. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"

static const unsigned char WHITE[3] = {255, 255, 255}, INK[3] = {20, 20, 20},
                           GREY[3] = {160, 160, 160};

int an_heatmap_png(const char *path, const double *v, int rows, int cols, char **row_names,
                   char **col_names, const char *title)
{
    const int S = 2, cell = 56, pad = 10;
    int tw, th, lw = 0, lh = 0;
    for (int a = 0; a < rows; a++) {
        kdc_text_size(row_names[a], S, &tw, &th);
        lw = tw > lw ? tw : lw;
    }
    for (int b = 0; b < cols; b++) { /* column names are written one per line, staggered */
        kdc_text_size(col_names[b], 1, &tw, &th);
        lh = tw > lh ? tw : lh;
    }
    kdc_text_size("Hg", S, &tw, &th);
    const int title_h = th + 2 * pad, col_h = 2 * (th / 2 + 4) + pad;
    const int gx = pad + lw + pad, gy = title_h + col_h, bar_w = 16;
    int W = gx + cols * cell + 3 * pad + bar_w + 40, H = gy + rows * cell + 2 * pad;
    kdc_text_size(title, S, &tw, &th);
    if (tw + 2 * pad > W)
        W = tw + 2 * pad;
    kdc_image *img = NULL, *sw = NULL;
    kdc_status st = kdc_image_create(W, H, &img);
    if (st)
        return cli_lib_error(st, path);
    kdc_image_fill(img, 0, 0, W, H, WHITE);
    kdc_image_draw_text(img, pad, pad, title, S, INK);
    float *ramp = malloc((size_t)cell * cell * sizeof *ramp);
    int rc = 0;
    if (!ramp || kdc_image_create(cell, cell, &sw)) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int b = 0; b < cols; b++) { /* column labels, alternating two lines */
        int x0 = gx + b * cell, y0 = title_h + (b % 2) * (th / 2 + 4);
        kdc_text_size(col_names[b], 1, &tw, &th);
        kdc_image_draw_text(img, x0 + (cell - tw) / 2, y0, col_names[b], 1, INK);
    }
    kdc_text_size("Hg", S, &tw, &th);
    for (int a = 0; a < rows; a++) {
        kdc_image_draw_text(img, pad, gy + a * cell + (cell - th) / 2, row_names[a], S, INK);
        for (int b = 0; b < cols; b++) {
            const double x = v[a * cols + b];
            const int x0 = gx + b * cell, y0 = gy + a * cell;
            if (isfinite(x)) {
                const float c = (float)(x < 0 ? 0 : x > 1 ? 1 : x);
                for (int i = 0; i < cell * cell; i++)
                    ramp[i] = c;
                kdc_colormap_jet(ramp, cell, cell, sw->rgb);
                kdc_image_paste(img, sw, x0, y0);
                char txt[16];
                snprintf(txt, sizeof txt, "%.2f", x);
                int vw, vh;
                kdc_text_size(txt, 1, &vw, &vh);
                const unsigned char *ink = c > 0.3f && c < 0.7f ? INK : WHITE;
                kdc_image_draw_text(img, x0 + (cell - vw) / 2, y0 + (cell - vh) / 2, txt, 1, ink);
            } else {
                kdc_image_fill(img, x0, y0, cell, cell, GREY);
            }
        }
    }
    /* colour bar: 1 at the top, 0 at the bottom */
    const int bx = gx + cols * cell + 2 * pad, bh = rows * cell;
    kdc_image *bar = NULL;
    float *col = malloc((size_t)bar_w * bh * sizeof *col);
    if (col && !kdc_image_create(bar_w, bh, &bar)) {
        for (int y = 0; y < bh; y++)
            for (int x = 0; x < bar_w; x++)
                col[y * bar_w + x] = 1.0f - (float)y / (float)(bh > 1 ? bh - 1 : 1);
        kdc_colormap_jet(col, bar_w, bh, bar->rgb);
        kdc_image_paste(img, bar, bx, gy);
        kdc_image_draw_text(img, bx + bar_w + 4, gy, "1", S, INK);
        kdc_text_size("0", S, &tw, &th);
        kdc_image_draw_text(img, bx + bar_w + 4, gy + bh - th, "0", S, INK);
    } else {
        rc = cli_error("out of memory");
    }
    kdc_image_destroy(bar);
    free(col);
    if (!rc && (st = kdc_image_save_png(img, path)))
        rc = cli_lib_error(st, path);
out:
    kdc_image_destroy(sw);
    kdc_image_destroy(img);
    free(ramp);
    return rc;
}
