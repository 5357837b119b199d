/* cmd_forward.c - kdcam layers / classify / dump: the forward-only commands. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

#define MODEL_OPTS                                                                        \
    "  -m, --arch ARCH     resnet50 | resnet101 | resnet152 | mobilenetv1 (default: from\n" \
    "                      the tensor names)\n"                                             \
    "  -w, --weights FILE  your PyTorch checkpoint (.pth, .pt) or .safetensors (required)\n"  \
    "      --key K         .pth: the state dict under checkpoint key K (e.g. model, a.b)\n" \
    "      --prefix P      use the model stored under key prefix P (e.g. student.)\n"       \
    "      --allow-unused  ignore tensors the model does not use\n"                         \
    "      --eps E         BatchNorm epsilon (default 1e-5)\n"                              \
    "      --act relu|relu6  override the activation\n"                                     \
    "      --fpn-extra X   detectors: auto | none | pool | on-input | on-output | on-lateral\n" \
    "      --fpn-relu-extra  detectors: ReLU between extra convs\n"                        \
    "      --no-head       detectors: leave a RetinaNet head unbuilt (backbone only)\n"    \
    "      --kernels K     auto | scalar | avx2 | avx512 | neon (default auto: the best)\n" \
    "  -t, --threads N     worker threads (default 1)\n"                                    \
    "  -v, --verbose       list the tensors of the file that were ignored (detection heads)\n" \
    "  -h, --help          this help\n"

#define MODEL_FLAGS CLI_MODEL_FLAGS

/* ------------------------------------------------------------------ */

static const char *layers_usage =
    "usage: kdcam layers [-m ARCH] -w WEIGHTS [--size HxW]\n"
    "Lists every addressable layer: index, name, output shape C x H x W for an\n"
    "input of the given size (default: the model's preprocessing crop, 224x224),\n"
    "and other names that refer to the same layer.\n"
    "\n" MODEL_OPTS
    "      --size HxW      input size used for the shapes\n";

int cmd_layers(int argc, char **argv)
{
    cli_opts o;
    kdc_model *m = NULL;
    int rc = cli_parse(argc, argv, MODEL_FLAGS | OPT_SIZE, layers_usage, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    if ((rc = cli_load_model(&o, &m)))
        return rc;
    kdc_preprocess pp;
    kdc_model_preprocess(m, &pp);
    int h = o.size_h ? o.size_h : pp.crop_h, w = o.size_w ? o.size_w : pp.crop_w;
    if (cli_is_detector(m) && !o.size_h)
        h = w = 800; /* a detector takes any size; show a typical one */
    int chw[3];
    kdc_status st = kdc_model_layer_shape(m, 0, h, w, chw); /* checks the size */
    if (st) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    kdc_head_info hi;
    kdc_model_head(m, &hi);
    if (hi.kind != KDC_HEAD_NONE)
        printf("# %s, %d classes, input %dx%d, RetinaNet head (%s): %d classes, %d anchors per "
               "cell, levels p%d..p%d\n",
               kdc_model_arch(m), kdc_model_num_classes(m), h, w,
               hi.kind == KDC_HEAD_RETINANET_TV ? "torchvision" : "mmdetection", hi.num_classes,
               hi.num_anchors, hi.level[0], hi.level[hi.num_levels - 1]);
    else
        printf("# %s, %d classes, input %dx%d\n", kdc_model_arch(m), kdc_model_num_classes(m), h,
               w);
    for (int i = 0; i < kdc_model_num_layers(m); i++) {
        if ((st = kdc_model_layer_shape(m, i, h, w, chw))) {
            rc = cli_lib_error(st, NULL);
            break;
        }
        printf("%4d  %-28s %dx%dx%d", i, kdc_model_layer_name(m, i), chw[0], chw[1], chw[2]);
        const char *alias;
        for (int k = 0; (alias = kdc_model_layer_alias(m, i, k)); k++)
            printf("%s%s", k ? ", " : "  (= ", alias);
        printf("%s\n", kdc_model_layer_alias(m, i, 0) ? ")" : "");
    }
out:
    kdc_model_destroy(m);
    return rc;
}

/* ------------------------------------------------------------------ */

static const char *classify_usage =
    "usage: kdcam classify [-m ARCH] -w WEIGHTS [--topk K] [--json] (IMAGE... | --input-npy X.npy)\n"
    "Prints the top-K classes of each image with logits and softmax probabilities\n"
    "(ImageNet class names when the model has 1000 classes).\n"
    "\n" MODEL_OPTS
    "  -k, --topk K        classes per image (default 5)\n"
    "      --json          one JSON object per image\n"
    "      --input-npy X   a preprocessed float32 N x 3 x H x W array instead of images\n"
    "      --max-pixels N  refuse larger images before decoding (default 89478485)\n";

int cmd_classify(int argc, char **argv)
{
    cli_opts o;
    kdc_model *m = NULL;
    kdc_run *run = NULL;
    float *input = NULL, *logits = NULL;
    int *order = NULL;
    int n, h, w, rc;
    kdc_status st;

    rc = cli_parse(argc, argv, MODEL_FLAGS | OPT_TOPK | OPT_JSON | OPT_IMAGES | OPT_INPUT_NPY,
                   classify_usage, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    if ((rc = cli_load_model(&o, &m)))
        return rc;
    if ((rc = cli_load_input(&o, m, &input, &n, &h, &w)))
        goto out;
    kdc_run_options ro = {.threads = o.threads};
    if ((st = kdc_run_create(m, &ro, &run)) || (st = kdc_run_forward(run, input, n, h, w, NULL, 0))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    const int K = kdc_model_num_classes(m);
    const int last = kdc_model_num_layers(m) - 1;
    logits = malloc((size_t)n * K * sizeof *logits);
    order = malloc((size_t)K * sizeof *order);
    if (!logits || !order) {
        rc = cli_error("out of memory");
        goto out;
    }
    if ((st = kdc_run_read_layer(run, last, logits, (size_t)n * K))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    int topk = o.topk < K ? o.topk : K;
    for (int b = 0; b < n; b++) {
        const float *z = logits + (size_t)b * K;
        const char *src = o.input_npy ? o.input_npy : o.images[b];
        double mx = -INFINITY, sum = 0.0;
        for (int c = 0; c < K; c++)
            mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < K; c++)
            sum += exp(z[c] - mx);
        /* partial selection sort: top-k by logit, ties to the lower index */
        for (int c = 0; c < K; c++)
            order[c] = c;
        for (int i = 0; i < topk; i++) {
            int best = i;
            for (int j = i + 1; j < K; j++)
                if (z[order[j]] > z[order[best]])
                    best = j;
            int t = order[i];
            order[i] = order[best];
            order[best] = t;
        }
        if (o.json) {
            printf("{\"input\":");
            cli_json_string(src);
            printf(",\"index\":%d,\"top\":[", b);
        } else {
            printf("%s", src);
            if (o.input_npy)
                printf("[%d]", b);
            printf(":\n");
        }
        for (int i = 0; i < topk; i++) {
            int c = order[i];
            double p = exp(z[c] - mx) / sum;
            const char *name = kdc_model_class_name(m, c);
            if (o.json) {
                printf("%s{\"class\":%d,\"name\":", i ? "," : "", c);
                if (name)
                    cli_json_string(name);
                else
                    printf("null");
                printf(",\"logit\":%.9g,\"prob\":%.9g}", z[c], p);
            } else {
                printf("  %2d. %5d  %-30s logit %10.4f  prob %.4f\n", i + 1, c, name ? name : "",
                       z[c], p);
            }
        }
        if (o.json)
            printf("]}\n");
    }
out:
    free(order);
    free(logits);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    return rc;
}

/* ------------------------------------------------------------------ */

static const char *dump_usage =
    "usage: kdcam dump [-m ARCH] -w WEIGHTS --layer NAME [--layer NAME]... -o DIR\n"
    "                  [--grad [--class C]] (IMAGE... | --input-npy X.npy)\n"
    "Writes DIR/NAME.npy (float32) for each layer: N x C x H x W, or N x K for the\n"
    "fully connected layer (as PyTorch's module returns it). DIR is created if missing.\n"
    "With --grad, also DIR/NAME.grad.npy: the gradient of the target (the logit of\n"
    "class C, default each image's top-1 class) with respect to the layer's output;\n"
    "--layer input gives the gradient with respect to the input image.\n"
    "\n" MODEL_OPTS
    "  -l, --layer NAME    a layer name as `kdcam layers` lists it (repeatable)\n"
    "  -o, --out DIR       output directory (required)\n"
    "      --grad          also write gradients\n"
    "  -c, --class C       target class for --grad (default: top-1 of each image)\n"
    "      --input-npy X   a preprocessed float32 N x 3 x H x W array instead of images\n"
    "      --max-pixels N  refuse larger images before decoding (default 89478485)\n";

/* Writes one layer (activation or gradient) as DIR/NAME[.grad].npy. */
static int write_layer(const kdc_model *m, const kdc_run *run, const char *dir, const char *name,
                       int layer, int grad, float **buf)
{
    int s[4];
    char path[4096];
    kdc_status st;
    if ((st = kdc_run_layer_shape(run, layer, s)))
        return cli_lib_error(st, NULL);
    size_t count = (size_t)s[0] * s[1] * s[2] * s[3];
    float *nb = realloc(*buf, count * sizeof *nb);
    if (!nb)
        return cli_error("out of memory for layer %s", name);
    *buf = nb;
    st = grad ? kdc_run_read_grad(run, layer, nb, count) : kdc_run_read_layer(run, layer, nb, count);
    if (st)
        return cli_lib_error(st, NULL);
    /* the classifier's output is written N x K, as PyTorch's module returns it */
    int64_t dims[4] = {s[0], s[1], s[2], s[3]};
    int ndim = layer == kdc_model_num_layers(m) - 1 && s[2] == 1 && s[3] == 1 ? 2 : 4;
    if ((size_t)snprintf(path, sizeof path, "%s/%s%s.npy", dir, name, grad ? ".grad" : "") >=
        sizeof path)
        return cli_error("%s: output path too long", dir);
    if ((st = kdc_npy_save(path, nb, ndim, dims)))
        return cli_lib_error(st, NULL);
    return 0;
}

int cmd_dump(int argc, char **argv)
{
    cli_opts o;
    kdc_model *m = NULL;
    kdc_run *run = NULL;
    float *input = NULL, *buf = NULL;
    double *scales = NULL;
    float *seed = NULL;
    int idx[CLI_MAX_LAYERS];
    int n, h, w, rc;
    kdc_status st;

    rc = cli_parse(argc, argv, MODEL_FLAGS | OPT_LAYER | OPT_OUT | OPT_IMAGES | OPT_INPUT_NPY |
                   OPT_GRAD | OPT_CLASS | OPT_DET, dump_usage, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!o.n_layers)
        return cli_error("no --layer given (kdcam layers lists the names)"), 2;
    if (!o.out_dir)
        return cli_error("no output directory: give -o DIR"), 2;
    if (o.cls >= 0 && !o.grad)
        return cli_error("--class only applies with --grad"), 2;
    if ((rc = cli_load_model(&o, &m)))
        return rc;
    for (int i = 0; i < o.n_layers; i++) {
        if ((st = kdc_model_find_layer(m, o.layers[i], &idx[i]))) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
        if (strchr(o.layers[i], '/')) {
            rc = cli_error("layer name '%s' cannot be a file name", o.layers[i]);
            goto out;
        }
    }
    const int det = cli_is_detector(m);
    int level = -1;
    if (!det && (o.level || o.has_box || o.channel >= 0 || o.det_short)) {
        rc = cli_error("--level, --box, --channel and --det-size apply to detection backbones");
        goto out;
    }
    if (det && o.cls >= 0) {
        rc = cli_error("%s has no classes: --grad differentiates the energy of --level",
                       kdc_model_arch(m));
        goto out;
    }
    if (det && (rc = cli_find_level(&o, m, &level)))
        goto out;
    if ((rc = cli_prepare_out_dir(o.out_dir)))
        goto out;
    if ((rc = det ? cli_load_det_batch(&o, m, &input, &n, &h, &w, NULL, &scales, NULL)
                  : cli_load_input(&o, m, &input, &n, &h, &w)))
        goto out;
    kdc_run_options ro = {.threads = o.threads};
    int lowest = idx[0];
    for (int i = 1; i < o.n_layers; i++)
        lowest = idx[i] < lowest ? idx[i] : lowest;
    if ((st = kdc_run_create(m, &ro, &run))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    if (det && o.grad && (rc = cli_level_seed(&o, m, run, input, n, h, w, scales, level, &seed)))
        goto out;
    if ((st = o.grad ? kdc_run_forward_grad(run, input, n, h, w, idx, o.n_layers, lowest)
                     : kdc_run_forward(run, input, n, h, w, idx, o.n_layers))) {
        rc = cli_lib_error(st, NULL);
        goto out;
    }
    if (o.grad) {
        int *cls = NULL;
        if (o.cls >= 0) {
            cls = malloc((size_t)n * sizeof *cls);
            if (!cls) {
                rc = cli_error("out of memory");
                goto out;
            }
            for (int b = 0; b < n; b++)
                cls[b] = o.cls;
        }
        kdc_target tg = {.kind = KDC_TARGET_LOGIT, .classes = cls};
        if (det)
            tg = (kdc_target){.kind = KDC_TARGET_SEED, .layer = level, .seed = seed};
        st = kdc_run_backward(run, &tg, idx, o.n_layers, 0);
        free(cls);
        if (st) {
            rc = cli_lib_error(st, NULL);
            goto out;
        }
    }
    for (int i = 0; i < o.n_layers; i++) {
        if ((rc = write_layer(m, run, o.out_dir, o.layers[i], idx[i], 0, &buf)))
            break;
        if (o.grad && (rc = write_layer(m, run, o.out_dir, o.layers[i], idx[i], 1, &buf)))
            break;
    }
out:
    free(seed);
    free(scales);
    free(buf);
    free(input);
    kdc_run_destroy(run);
    kdc_model_destroy(m);
    return rc;
}
