/* load.c - kdc_model_load: from a safetensors file to an immutable model.
 *
 * Every parameter is converted to float32 and copied out of the mapping,
 * and the file is closed before kdc_model_load returns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"
#include "weights.h"

void kdc_model_options_init(kdc_model_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->bn_eps = -1.0f;
}

static int kdc__starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* Every tensor of the file must have been used (I64 counters excepted),
 * but for a detector's heads, which are listed as ignored. */
static kdc_status kdc__audit(kdc__builder *b, int fpn, const char *root, int allow_unused)
{
    /* the detector's own prefix, beside which its heads sit: root without
     * torchvision's "backbone." (mmdetection's root is already that) */
    size_t wl = strlen(root);
    if (fpn == 1 && wl >= 9 && !strcmp(root + wl - 9, "backbone."))
        wl -= 9;
    b->prefix = "";
    for (int i = 0; i < kdc__st_count(b->st); i++) {
        const kdc__st_tensor *t = kdc__st_at(b->st, i);
        kdc__entry *e = kdc__lookup(b, t->name);
        if (e && e->used)
            continue;
        size_t nl = strlen(t->name);
        if (nl >= 19 && !strcmp(t->name + nl - 19, "num_batches_tracked"))
            continue;
        if (fpn && !strncmp(t->name, root, wl) && !kdc__starts_with(t->name + wl, "backbone.") &&
            !kdc__starts_with(t->name + wl, "neck.")) {
            /* a detection head (rpn, roi_heads, bbox_head, ...): not ours */
            kdc_status st = kdc__note_ignored(b->m, t->name);
            if (st)
                return st;
            continue;
        }
        if (allow_unused)
            continue;
        return kdc__fail(KDC_ERR_WEIGHTS, "%s: unexpected tensor %s (not part of %s); allow "
                         "unused tensors (--allow-unused) to ignore it", b->path, t->name,
                         b->m->arch);
    }
    return KDC_OK;
}

/* Coordinates a load: open, detect the scheme, build (arch.c's table), audit
 * the unused tensors, read the metadata, pack for the kernels. */
kdc_status kdc_model_load(const char *path, const kdc_model_options *opt_in, kdc_model **out)
{
    kdc_model_options opt;
    kdc__builder b;
    kdc__scheme scheme = KDC__SCHEME_RESNET;
    char prefix[256];
    kdc_status st;
    const char *arch;

    if (!out)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kdc_model_load: path is NULL");
    if (opt_in)
        opt = *opt_in;
    else
        kdc_model_options_init(&opt);
    arch = opt.arch && strcmp(opt.arch, "auto") && opt.arch[0] ? opt.arch : NULL;
    if (arch && !kdc__arch_find(arch, -1)) {
        char known[256];
        kdc__arch_names(known, sizeof known);
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "unknown architecture '%s' (known: %s)", arch,
                         known);
    }
    if (!(opt.bn_eps < 0.0f) && !(opt.bn_eps >= 0.0f && opt.bn_eps < 1.0f))
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "BatchNorm eps %g is out of range [0, 1)",
                         (double)opt.bn_eps);
    kdc__isa isa = KDC__ISA_SCALAR;
    if ((st = kdc__choose_isa(opt.kernels, &isa)))
        return st;

    memset(&b, 0, sizeof b);
    b.path = path;
    b.eps = opt.bn_eps < 0.0f ? 1e-5f : opt.bn_eps;
    b.m = calloc(1, sizeof *b.m);
    if (!b.m)
        return kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
    if ((st = kdc__weights_open(path, opt.key, &b.st)))
        goto free_model;
    if ((st = kdc__find_scheme(&b, opt.prefix, &scheme, prefix, sizeof prefix)))
        goto close_file;
    b.prefix = prefix;
    if (arch && !kdc__arch_find(arch, (int)scheme)) {
        st = kdc__fail(KDC_ERR_WEIGHTS, "%s: holds %s, not %s", path, kdc__scheme_name(scheme),
                       arch);
        goto close_file;
    }
    snprintf(b.m->arch, sizeof b.m->arch, "%s", arch ? arch : "model");

    /* index every tensor by its full name */
    b.entries = calloc((size_t)kdc__st_count(b.st) + 1, sizeof *b.entries);
    if (!b.entries) {
        st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory", path);
        goto close_file;
    }
    for (int i = 0; i < kdc__st_count(b.st); i++) {
        const kdc__st_tensor *t = kdc__st_at(b.st, i);
        b.entries[b.n_entries].key = t->name;
        b.entries[b.n_entries].t = t;
        b.n_entries++;
    }
    qsort(b.entries, (size_t)b.n_entries, sizeof *b.entries, kdc__entry_cmp);

    switch (opt.activation) {
    case KDC_ACT_RELU: b.clamp = INFINITY; break;
    case KDC_ACT_RELU6: b.clamp = 6.0f; break;
    default: b.clamp = scheme == KDC__SCHEME_MBV1_TIMM ? 6.0f : INFINITY; break;
    }

    if (kdc__add_node(&b, KDC__OP_INPUT, "input", -1, -1, 3) < 0) {
        st = KDC_ERR_NO_MEMORY;
        goto free_entries;
    }
    /* a detector: the ResNet body under backbone.body. (torchvision) or
     * backbone. (mmdetection), with its FPN beside it */
    char root[256] = "";
    const int fpn = scheme == KDC__SCHEME_RESNET ? kdc__fpn_detect(&b, prefix, root, sizeof root)
                                                 : 0;
    const int want_fpn = arch && kdc__arch_find(arch, (int)scheme)->fpn;
    if (want_fpn && !fpn) {
        st = kdc__fail(KDC_ERR_WEIGHTS, "%s: holds no FPN (no backbone.fpn.inner_blocks.* or "
                       "neck.lateral_convs.* tensors), not %s", path, arch);
        goto free_entries;
    }
    if (arch && fpn && !want_fpn) {
        st = kdc__fail(KDC_ERR_WEIGHTS, "%s: holds a detection backbone (a ResNet body with "
                       "an FPN: %s tensors), not the classifier %s; load it as %s-fpn or "
                       "with arch auto", path,
                       fpn == 1 ? "backbone.fpn.*" : "neck.*", arch, arch);
        goto free_entries;
    }
    /* torchvision detectors load their COCO weights into FrozenBatchNorm2d
     * with eps 0; a body saved from plain BatchNorm2d (it has
     * num_batches_tracked) keeps eps 1e-5 */
    if (fpn == 1 && opt.bn_eps < 0.0f && !kdc__has(&b, "bn1.num_batches_tracked"))
        b.eps = 0.0f;
    int stages[4];
    char base[32] = "";
    if (arch)
        snprintf(base, sizeof base, "%.*s", (int)strcspn(arch, "-"), arch);
    const kdc__arch *body = kdc__arch_body(scheme);
    if ((st = body->build(&b, arch ? base : NULL, scheme, !fpn, stages)))
        goto free_entries;
    body->preprocess(&b.m->preprocess);
    if (fpn) {
        b.prefix = root;
        st = kdc__build_fpn(&b, fpn, stages, opt.fpn_extra, opt.fpn_relu_extra > 0);
        b.prefix = prefix;
        if (st)
            goto free_entries;
        strncat(b.m->arch, "-fpn", sizeof b.m->arch - strlen(b.m->arch) - 1);
        b.m->detector = fpn;
        b.m->bn_eps = b.eps;
        /* the head sits beside the backbone: torchvision's under root
         * without "backbone.", mmdetection's under root */
        char hroot[256];
        size_t rl = strlen(root);
        snprintf(hroot, sizeof hroot, "%.*s",
                 (int)(fpn == 1 && rl >= 9 && !strcmp(root + rl - 9, "backbone.") ? rl - 9 : rl),
                 root);
        b.prefix = hroot;
        const int head = opt.no_head ? 0 : kdc__head_detect(&b, fpn);
        st = head ? kdc__build_retina(&b, head) : KDC_OK;
        b.prefix = prefix;
        if (st)
            goto free_entries;
    }

    if ((st = kdc__audit(&b, fpn, root, opt.allow_unused)))
        goto free_entries;
    if ((st = kdc__apply_metadata(path, b.st, b.m)))
        goto free_entries;
    if ((st = kdc__setup_kernels(b.m, isa)))
        goto free_entries;
    free(b.entries);
    kdc__st_close(b.st);
    *out = b.m;
    return KDC_OK;

free_entries:
    free(b.entries);
close_file:
    kdc__st_close(b.st);
free_model:
    kdc_model_destroy(b.m);
    return st;
}
