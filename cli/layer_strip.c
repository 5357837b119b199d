/* layer_strip.c - `kdcam cam --per-layer` (issue 19): each target layer's
 * own map, not averaged with the others, as .npy and as a figure with the
 * layers' overlays side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The strip of image b: input crop | layer 1 overlay | layer 2 ... */
int cli_write_strip(const char *path, const kdc_image *crop, const float *const *maps,
                    const char *const *names, int nl, int h, int w)
{
    static const unsigned char WHITE[3] = {255, 255, 255}, INK[3] = {20, 20, 20};
    const int pad = 8;
    int tw, th;
    kdc_text_size("Hg", 1, &tw, &th);
    const int head = th + 4 + pad, W = pad + (nl + 1) * (w + pad), H = head + h + pad;
    kdc_image *fig = NULL, *ov = NULL;
    kdc_status st = kdc_image_create(W, H, &fig);
    if (st)
        return cli_lib_error(st, NULL);
    kdc_image_fill(fig, 0, 0, W, H, WHITE);
    kdc_image_draw_text(fig, pad, pad, "input", 1, INK);
    kdc_image_paste(fig, crop, pad, head);
    for (int l = 0; l < nl && !st; l++) {
        const int x0 = pad + (l + 1) * (w + pad);
        char txt[64];
        snprintf(txt, sizeof txt, "%.40s", names[l]);
        kdc_image_draw_text(fig, x0, pad, txt, 1, INK);
        if (!(st = kdc_overlay(crop, maps[l], &ov))) {
            kdc_image_paste(fig, ov, x0, head);
            kdc_image_destroy(ov);
            ov = NULL;
        }
    }
    if (!st)
        st = kdc_image_save_png(fig, path);
    kdc_image_destroy(fig);
    if (st)
        return cli_lib_error(st, NULL);
    printf("  %s\n", path);
    return 0;
}

int cli_write_per_layer(const char *dir, const kdc_model *m, const kdc_cam_result *res,
                        const int *layers, char *const *stems, const char *method,
                        kdc_image **crops)
{
    const int n = res->n, h = res->in_h, w = res->in_w, nl = res->nlayers;
    const size_t plane = (size_t)h * w;
    float *maps = malloc((size_t)nl * n * plane * sizeof *maps);
    const float *one[KDC_CAM_MAX_LAYERS];
    const char *names[KDC_CAM_MAX_LAYERS];
    char path[4096];
    int rc = 0;
    kdc_status st = KDC_OK;
    if (!maps)
        return cli_error("out of memory");
    for (int l = 0; l < nl && !st; l++) {
        names[l] = kdc_model_layer_name(m, layers[l]);
        st = kdc_cam_layer_map(res, l, maps + (size_t)l * n * plane);
    }
    if (st) {
        free(maps);
        return cli_lib_error(st, NULL);
    }
    for (int b = 0; b < n && !rc; b++) /* one 1 x h x w file per image and layer */
        for (int l = 0; l < nl && !rc; l++) {
            const int64_t dims[3] = {1, h, w};
            if ((size_t)snprintf(path, sizeof path, "%s/%s.%s.layer.%s.npy", dir, stems[b],
                                 method, names[l]) >= sizeof path)
                rc = cli_error("%s: output path too long", dir);
            else if ((st = kdc_npy_save(path, maps + ((size_t)l * n + b) * plane, 3, dims)))
                rc = cli_lib_error(st, NULL);
            else
                printf("  %s\n", path);
        }
    for (int b = 0; b < n && !rc; b++) {
        for (int l = 0; l < nl; l++)
            one[l] = maps + ((size_t)l * n + b) * plane;
        if ((size_t)snprintf(path, sizeof path, "%s/%s.%s.layers.png", dir, stems[b], method) >=
            sizeof path)
            rc = cli_error("%s: output path too long", dir);
        else
            rc = cli_write_strip(path, crops[b], one, names, nl, h, w);
    }
    free(maps);
    return rc;
}
