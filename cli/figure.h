/* figure.h - figures of `kdcam cam` and `kdcam compare` as a list of
 * elements (pictures, text, rectangles) in figure units, written as PNG at
 * `scale` pixels per unit and as SVG, where text stays text and pictures
 * are embedded PNG data URIs (issue 17). */
#ifndef KDCAM_CLI_FIGURE_H
#define KDCAM_CLI_FIGURE_H

#include "cli.h"

typedef struct cli_fig cli_fig;

/* A white figure of w x h units; returns NULL when out of memory (printed). */
cli_fig *cli_fig_create(int w, int h);
void cli_fig_destroy(cli_fig *f);
/* The colormap of the figure's colour bars (default JET). */
void cli_fig_set_colormap(cli_fig *f, kdc_colormap cmap);
/* Adds a copy of img with its top-left corner at (x, y), one unit a pixel. */
int cli_fig_image(cli_fig *f, int x, int y, const kdc_image *img);
/* Adds text whose top is at y: anchor 0 left at x, 1 centred, 2 right; size
 * is the bitmap font's scale (1, 2, ...). */
int cli_fig_text(cli_fig *f, int x, int y, int size, int anchor, const unsigned char rgb[3],
                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;
/* A rectangle outline of the given line width. */
int cli_fig_rect(cli_fig *f, int x, int y, int w, int h, int line, const unsigned char rgb[3]);
/* Width and height of text at a size, in units. */
void cli_fig_text_size(const char *text, int size, int *w, int *h);
/* A horizontal colour bar (JET) of w x h units at (x, y) with `nticks`
 * ticks labelled by lo..hi (fmt: printf format of one double), and a caption;
 * text at font size 2, or 1 where the caption would not fit. */
int cli_fig_colorbar(cli_fig *f, int x, int y, int w, int h, double lo, double hi, int nticks,
                     const char *fmt, const char *caption);
/* The same bar in the diverging colours of cli_diverging_image, lo..hi
 * mapped to -1..1. */
int cli_fig_colorbar_diverging(cli_fig *f, int x, int y, int w, int h, double lo, double hi,
                               int nticks, const char *fmt, const char *caption);
/* A w x h picture of a signed map d (values in -1..1, clamped; NaN as 0):
 * blue (59, 76, 192) at -1, light grey (221, 221, 221) at 0, red (180, 4,
 * 38) at 1 (the ends and middle of Moreland's cool-warm map), linear in
 * RGB between them. NULL when out of memory (printed). */
kdc_image *cli_diverging_image(const float *d, int w, int h);
/* Writes the figure (through a temporary file and a rename). */
int cli_fig_save_png(const cli_fig *f, int scale, const char *path);
int cli_fig_save_svg(const cli_fig *f, const char *path);

#endif
