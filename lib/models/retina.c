/* retina.c - RetinaNet heads on an FPN (issue 13): torchvision's
 * RetinaNetHead (head.classification_head / head.regression_head: conv.i.0
 * in torchvision >= 0.13, conv.2i in the older nn.Sequential(Conv2d, ReLU,
 * ...) spelling; cls_logits, bbox_reg) and mmdetection's RetinaHead
 * (bbox_head.cls_convs.i.conv, bbox_head.reg_convs.i.conv, retina_cls,
 * retina_reg). Each branch is n x (conv3x3 + ReLU) and a conv3x3 output,
 * run on every FPN level with the same weights. Here every level gets its
 * own nodes, named by the PyTorch module path with "@pL" (the level), so
 * that any of them is a layer; they read copies of the same tensors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "builder.h"

/* The module paths of one layout's two branches. */
struct kdc__head_names {
    const char *conv_w;   /* weight key of conv i (printf with i)           */
    const char *conv_b;
    const char *conv;     /* node name of conv i (i, level)                 */
    const char *relu;     /* node name of its ReLU (i, level)               */
    const char *block;    /* alias of the block's output, or NULL (i, level) */
    const char *out_w, *out_b, *out; /* the output conv                      */
    int step;             /* key index of conv i: step * i                  */
};

static const struct kdc__head_names kdc__tv_cls = {
    "head.classification_head.conv.%d.0.weight", "head.classification_head.conv.%d.0.bias",
    "head.classification_head.conv.%d.0@p%d", "head.classification_head.conv.%d.1@p%d",
    "head.classification_head.conv.%d@p%d", "head.classification_head.cls_logits.weight",
    "head.classification_head.cls_logits.bias", "head.classification_head.cls_logits@p%d", 1};
static const struct kdc__head_names kdc__tv_reg = {
    "head.regression_head.conv.%d.0.weight", "head.regression_head.conv.%d.0.bias",
    "head.regression_head.conv.%d.0@p%d", "head.regression_head.conv.%d.1@p%d",
    "head.regression_head.conv.%d@p%d", "head.regression_head.bbox_reg.weight",
    "head.regression_head.bbox_reg.bias", "head.regression_head.bbox_reg@p%d", 1};
/* torchvision before 0.13: conv = Sequential(Conv2d, ReLU) x n, so conv i
 * is conv.(2i) and its ReLU conv.(2i + 1) */
static const struct kdc__head_names kdc__tv_old_cls = {
    "head.classification_head.conv.%d.weight", "head.classification_head.conv.%d.bias",
    "head.classification_head.conv.%d@p%d", "head.classification_head.conv.%d@p%d", NULL,
    "head.classification_head.cls_logits.weight", "head.classification_head.cls_logits.bias",
    "head.classification_head.cls_logits@p%d", 2};
static const struct kdc__head_names kdc__tv_old_reg = {
    "head.regression_head.conv.%d.weight", "head.regression_head.conv.%d.bias",
    "head.regression_head.conv.%d@p%d", "head.regression_head.conv.%d@p%d", NULL,
    "head.regression_head.bbox_reg.weight", "head.regression_head.bbox_reg.bias",
    "head.regression_head.bbox_reg@p%d", 2};
static const struct kdc__head_names kdc__mm_cls = {
    "bbox_head.cls_convs.%d.conv.weight", "bbox_head.cls_convs.%d.conv.bias",
    "bbox_head.cls_convs.%d.conv@p%d", "bbox_head.cls_convs.%d.activate@p%d",
    "bbox_head.cls_convs.%d@p%d", "bbox_head.retina_cls.weight", "bbox_head.retina_cls.bias",
    "bbox_head.retina_cls@p%d", 1};
static const struct kdc__head_names kdc__mm_reg = {
    "bbox_head.reg_convs.%d.conv.weight", "bbox_head.reg_convs.%d.conv.bias",
    "bbox_head.reg_convs.%d.conv@p%d", "bbox_head.reg_convs.%d.activate@p%d",
    "bbox_head.reg_convs.%d@p%d", "bbox_head.retina_reg.weight", "bbox_head.retina_reg.bias",
    "bbox_head.retina_reg@p%d", 1};

/* Number of stacked convs of a branch (0 .. KDC_HEAD_MAX_CONVS). */
static int kdc__head_nconvs(kdc__builder *b, const struct kdc__head_names *nm)
{
    char k[256];
    int n = 0;
    while (n < KDC_HEAD_MAX_CONVS && kdc__has(b, kdc__key(k, sizeof k, nm->conv_w, n * nm->step)))
        n++;
    return n;
}

/* One branch on level L (feature node f): its output node in *out. */
static kdc_status kdc__head_branch(kdc__builder *b, const struct kdc__head_names *nm, int nconv,
                                   int L, int f, int *out)
{
    struct kdc_model *m = b->m;
    char kw[256], kb[256], name[128];
    kdc_status st;
    int x = f;
    for (int i = 0; i < nconv; i++) {
        const int c = m->nodes[x].channels, ki = nm->step * i;
        int conv, relu;
        if ((st = kdc__conv(b, kdc__key(name, sizeof name, nm->conv, ki, L),
                            kdc__key(kw, sizeof kw, nm->conv_w, ki),
                            kdc__key(kb, sizeof kb, nm->conv_b, ki), x, c, c, 3, 1, 1, 1, &conv)))
            return st;
        /* the old spelling's ReLU is the next index of the Sequential */
        const int ri = nm->step == 2 ? ki + 1 : i;
        if ((st = kdc__relu(b, kdc__key(name, sizeof name, nm->relu, ri, L), conv, &relu)))
            return st;
        if (nm->block &&
            (st = kdc__add_alias(b, kdc__key(name, sizeof name, nm->block, i, L), relu)))
            return st;
        x = relu;
    }
    return kdc__conv(b, kdc__key(name, sizeof name, nm->out, L), nm->out_w, nm->out_b, x,
                     m->nodes[x].channels, -1, 3, 1, 1, 1, out);
}

int kdc__head_detect(kdc__builder *b, int fpn)
{
    if (fpn == 1 && kdc__has(b, "head.classification_head.cls_logits.weight") &&
        kdc__has(b, "head.regression_head.bbox_reg.weight"))
        return 1;
    if (fpn == 2 && kdc__has(b, "bbox_head.retina_cls.weight") &&
        kdc__has(b, "bbox_head.retina_reg.weight"))
        return 2;
    return 0;
}

kdc_status kdc__build_retina(kdc__builder *b, int head)
{
    struct kdc_model *m = b->m;
    const struct kdc__head_names *cls, *reg;
    if (head == 1) {
        const int old = !kdc__has(b, "head.classification_head.conv.0.0.weight") &&
                        kdc__has(b, "head.classification_head.conv.0.weight");
        cls = old ? &kdc__tv_old_cls : &kdc__tv_cls;
        reg = old ? &kdc__tv_old_reg : &kdc__tv_reg;
    } else {
        cls = &kdc__mm_cls;
        reg = &kdc__mm_reg;
    }
    const int nc = kdc__head_nconvs(b, cls), nr = kdc__head_nconvs(b, reg);
    /* the levels, P2 .. P7 as the FPN made them */
    int nl = 0;
    kdc__head *h = &m->head;
    for (int L = 2; L <= 7; L++) {
        char name[16];
        snprintf(name, sizeof name, "fpn.p%d", L);
        for (int a = 0; a < m->n_aliases; a++)
            if (!strcmp(m->aliases[a].name, name)) {
                h->level[nl] = L;
                h->feature[nl++] = m->aliases[a].node;
                break;
            }
    }
    if (nl == 0)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: a RetinaNet head but no FPN levels", b->path);
    /* ReLU, as torchvision's Conv2dNormActivation and mmdetection's ConvModule */
    const float keep = b->clamp;
    b->clamp = INFINITY;
    kdc_status st = KDC_OK;
    for (int l = 0; l < nl && !st; l++) {
        st = kdc__head_branch(b, cls, nc, h->level[l], h->feature[l], &h->cls[l]);
        if (!st)
            st = kdc__head_branch(b, reg, nr, h->level[l], h->feature[l], &h->reg[l]);
    }
    b->clamp = keep;
    if (st)
        return st;
    const int ck = m->nodes[h->cls[0]].channels, r4 = m->nodes[h->reg[0]].channels;
    if (r4 % 4 != 0 || ck % (r4 / 4) != 0)
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: RetinaNet head with %d classification and %d "
                         "regression outputs per cell: not A x K and A x 4", b->path, ck, r4);
    h->kind = head;
    h->nlevels = nl;
    h->anchors = r4 / 4;
    h->classes = ck / h->anchors;
    h->nconv_cls = nc;
    h->nconv_reg = nr;
    return KDC_OK;
}
