/* analyze_report.c - DIR/report.html of kdcam analyze: one self-contained
 * page (no scripts, no network; its pictures are PNG files beside it): the
 * per-model table, each student's last-stage CKA, the CKA heatmaps, the
 * images where the students' maps disagree most with the teacher's, and
 * the provenance. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "analyze.h"

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void cell(FILE *f, const an_report *r, int m, int k, double scale)
{
    if (r->has[m][k])
        fprintf(f, "<td>%.4g &plusmn; %.2g</td>", r->mean[m][k] * scale, r->ci[m][k] * scale);
    else
        fputs("<td>&ndash;</td>", f);
}

int an_report_html(const char *dir, const an_report *r)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/report.html", dir);
    snprintf(tmp, sizeof tmp, "%s/report.html.tmp", dir);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return cli_error("%s: cannot create: %s", tmp, strerror(errno));
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>kdcam analyze report</title>\n<style>\n"
          "body{font-family:sans-serif;margin:2em;max-width:75em;color:#222}\n"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
          "padding:.3em .6em;text-align:right}th:first-child,td:first-child{text-align:left}\n"
          "img{max-width:100%;border:1px solid #ddd;margin:.3em 0}pre{white-space:pre-wrap;"
          "word-break:break-all;background:#f6f6f6;padding:1em;font-size:80%}\n"
          "</style></head><body>\n<h1>Teacher and students over ", f);
    fprintf(f, "%ld images</h1>\n<p>Teacher: <b>", r->images);
    html_text(f, r->name[0]);
    fprintf(f, "</b>. Means with 95%% confidence half-widths (normal approximation). CKA covers "
            "%ld images in minibatches (docs/analyze.md).</p>\n", r->cka_examples);
    fputs("<h2>Predictions and maps</h2>\n<table><tr><th>model</th><th>accuracy</th>"
          "<th>top-1 agreement</th><th>KL T=1</th><th>KL T=4</th><th>map Pearson r</th>"
          "<th>map IoU top-20%</th><th>pointing</th><th>energy in box</th>"
          "<th>deletion AUC</th><th>insertion AUC</th><th>ROAD MoRF</th><th>ROAD LeRF</th>"
          "<th>ROAD combined</th></tr>\n", f);
    static const int cols[13] = {V_CORRECT, V_AGREE, V_KL1, V_KL4, V_PEARSON, V_IOU,
                                 V_POINTING, V_ENERGY, V_DEL, V_INS, V_ROAD_MORF,
                                 V_ROAD_LERF, V_ROAD};
    for (int m = 0; m < r->nm; m++) {
        fputs("<tr><td>", f);
        html_text(f, r->name[m]);
        fputs("</td>", f);
        for (int c = 0; c < 13; c++)
            cell(f, r, m, cols[c], 1.0);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n<h2>CKA of each student's last stage against the teacher's</h2>\n"
          "<table><tr><th>student</th><th>linear</th><th>RBF</th></tr>\n", f);
    for (int m = 1; m < r->nm; m++) {
        fputs("<tr><td>", f);
        html_text(f, r->name[m]);
        fprintf(f, "</td><td>%.4f</td><td>%.4f</td></tr>\n", r->last_cka[m][0],
                r->last_cka[m][1]);
    }
    fputs("</table>\n", f);
    if (r->kd_n) {
        fputs("<h2>ICKD Gram and attention-transfer distances</h2>\n<p>Per image, teacher "
              "stage against the student stage of the same size (docs/analyze.md); lower "
              "is closer.</p>\n<table><tr><th>student</th><th>teacher layer</th>"
              "<th>student layer</th><th>ICKD</th><th>attention transfer</th></tr>\n", f);
        for (int m = 1; m < r->nm; m++)
            for (int l = 0; l < r->kd_n; l++) {
                if (!r->kd_sl[m][l] || !r->kd_tl[l])
                    continue;
                fputs("<tr><td>", f);
                html_text(f, r->name[m]);
                fputs("</td><td>", f);
                html_text(f, r->kd_tl[l]);
                fputs("</td><td>", f);
                html_text(f, r->kd_sl[m][l]);
                fputs("</td>", f);
                for (int q = 0; q < 2; q++)
                    if (r->kd_has[m][l][q])
                        fprintf(f, "<td>%.4g &plusmn; %.2g</td>", r->kd_mean[m][l][q],
                                r->kd_ci[m][l][q]);
                    else
                        fputs("<td>&ndash;</td>", f);
                fputs("</tr>\n", f);
            }
        fputs("</table>\n", f);
    }
    fputs("<h2>CKA between every pair of layers</h2>\n", f);
    for (int m = 1; m < r->nm; m++)
        for (int k = 0; k < AN_KERNELS; k++)
            fprintf(f, "<p><img src=\"cka_s%d_%s.png\" alt=\"CKA heatmap %d %s\"></p>\n", m,
                    k ? "rbf" : "linear", m, k ? "rbf" : "linear");
    fputs("<h2>Where the students disagree most with the teacher</h2>\n", f);
    if (r->grids)
        fputs("<p>The images with the lowest map Pearson r of any student: the input and each "
              "model's map (a row per image).</p>\n", f);
    else
        fputs("<p>The images with the lowest map Pearson r of any student (merged shards: "
              "run <code>kdcam compare</code> on them for figures).</p>\n", f);
    fputs("<table><tr><th>image</th><th>lowest r</th></tr>\n", f);
    for (int w = 0; w < r->nworst; w++) {
        fputs("<tr><td>", f);
        html_text(f, r->worst[w].file);
        fprintf(f, "</td><td>%.3f</td></tr>\n", r->worst[w].pearson);
    }
    fputs("</table>\n", f);
    for (int w = 0; w < r->nworst && r->grids; w++)
        fprintf(f, "<p><img src=\"disagree_%ld.png\" alt=\"image %ld\"></p>\n", r->worst[w].i,
                r->worst[w].i);
    fputs("<h2>Provenance</h2>\n<pre>", f);
    html_text(f, r->meta);
    fputs("</pre>\n</body></html>\n", f);
    int rc = 0;
    if (fclose(f))
        rc = cli_error("%s: cannot write", tmp);
    else if (rename(tmp, path))
        rc = cli_error("%s: cannot rename: %s", tmp, strerror(errno));
    if (rc)
        remove(tmp);
    return rc;
}
