/* resnet.c - the ResNet builder: a stage table, not code per depth.
 *
 * The builder counts the bottleneck blocks of each stage from the tensor
 * names (layerL.B.conv1.weight for B = 0, 1, ...), reads every width from
 * the weight shapes, and names the result from the architecture table's
 * stage tables (resnet50, resnet101, resnet152; other counts load as
 * resnet-a-b-c-d). The stride sits on conv2 (torchvision v1.5); a block has
 * a downsample branch exactly when layerL.B.downsample.0.weight exists. */
#include <stdio.h>
#include <string.h>

#include "builder.h"

kdc_status kdc__build_resnet(kdc__builder *b, const char *want_arch, kdc__scheme s,
                             int classifier, int stages[4])
{
    struct kdc_model *m = b->m;
    char key[256], key2[256], name[128];
    int counts[4];
    kdc_status st;

    for (int l = 0; l < 4; l++) {
        counts[l] = 0;
        while (kdc__has(b, kdc__key(key, sizeof key, "layer%d.%d.conv1.weight", l + 1,
                                    counts[l])))
            counts[l]++;
        if (counts[l] == 0)
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: missing tensor %slayer%d.0.conv1.weight "
                             "(a ResNet has four stages)", b->path, b->prefix, l + 1);
    }
    if (!kdc__has(b, "layer1.0.conv3.weight"))
        return kdc__fail(KDC_ERR_UNSUPPORTED, "%s: ResNet with basic blocks (resnet18/34: no "
                         "%slayer1.0.conv3.weight) is not supported; bottleneck ResNets are",
                         b->path, b->prefix);

    /* the name of the stage table it matches (the classifier rows) */
    const char *found = NULL;
    for (int i = 0; i < kdc__n_archs; i++) {
        const kdc__arch *a = &kdc__archs[i];
        if (a->build == kdc__build_resnet && !a->fpn && !memcmp(counts, a->blocks, sizeof counts))
            found = a->name;
    }
    if (want_arch) {
        const kdc__arch *wa = kdc__arch_find(want_arch, KDC__SCHEME_RESNET);
        const int *want = wa ? wa->blocks : NULL;
        if (!want)
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: holds %s, not %s", b->path,
                             kdc__scheme_name(KDC__SCHEME_RESNET), want_arch);
        if (memcmp(want, counts, sizeof counts))
            return kdc__fail(KDC_ERR_WEIGHTS, "%s: holds %s (blocks %d-%d-%d-%d), not %s "
                             "(blocks %d-%d-%d-%d)", b->path, found ? found : "a ResNet",
                             counts[0], counts[1], counts[2], counts[3], want_arch, want[0],
                             want[1], want[2], want[3]);
    }
    if (found)
        snprintf(m->arch, sizeof m->arch, "%s", found);
    else
        snprintf(m->arch, sizeof m->arch, "resnet-%d-%d-%d-%d", counts[0], counts[1],
                 counts[2], counts[3]);

    int x = 0, node;
    if ((st = kdc__conv(b, "conv1", "conv1.weight", NULL, x, 3, -1, 7, 2, 3, 1, &x)))
        return st;
    int c = m->nodes[x].channels;
    if ((st = kdc__bn(b, "bn1", "bn1", x, c, &x)) || (st = kdc__relu(b, "relu", x, &x)))
        return st;
    x = kdc__add_node(b, KDC__OP_MAXPOOL, "maxpool", x, -1, c);
    if (x < 0)
        return KDC_ERR_NO_MEMORY;
    m->nodes[x].p.pool.k = 3;
    m->nodes[x].p.pool.stride = 2;
    m->nodes[x].p.pool.pad = 1;

    for (int l = 1; l <= 4; l++) {
        for (int blk = 0; blk < counts[l - 1]; blk++) {
            const int stride = (l > 1 && blk == 0) ? 2 : 1;
            const int in = x;
            const int cin = m->nodes[in].channels;
            char bp[64];
            int y, width;
            snprintf(bp, sizeof bp, "layer%d.%d", l, blk);
            /* conv1 1x1 -> bn1 -> relu1 */
            if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.conv1", bp),
                                kdc__key(key, sizeof key, "%s.conv1.weight", bp), NULL, in, cin,
                                -1, 1, 1, 0, 1, &y)))
                return st;
            width = m->nodes[y].channels;
            if ((st = kdc__bn(b, kdc__key(name, sizeof name, "%s.bn1", bp),
                              kdc__key(key, sizeof key, "%s.bn1", bp), y, width, &y)) ||
                (st = kdc__relu(b, kdc__key(name, sizeof name, "%s.relu1", bp), y, &y)))
                return st;
            /* conv2 3x3, carries the stride (v1.5) -> bn2 -> relu2 */
            if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.conv2", bp),
                                kdc__key(key, sizeof key, "%s.conv2.weight", bp), NULL, y, width,
                                -1, 3, stride, 1, 1, &y)))
                return st;
            width = m->nodes[y].channels;
            if ((st = kdc__bn(b, kdc__key(name, sizeof name, "%s.bn2", bp),
                              kdc__key(key, sizeof key, "%s.bn2", bp), y, width, &y)) ||
                (st = kdc__relu(b, kdc__key(name, sizeof name, "%s.relu2", bp), y, &y)))
                return st;
            /* conv3 1x1 -> bn3 */
            if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.conv3", bp),
                                kdc__key(key, sizeof key, "%s.conv3.weight", bp), NULL, y, width,
                                -1, 1, 1, 0, 1, &y)))
                return st;
            const int cout = m->nodes[y].channels;
            if ((st = kdc__bn(b, kdc__key(name, sizeof name, "%s.bn3", bp),
                              kdc__key(key, sizeof key, "%s.bn3", bp), y, cout, &y)))
                return st;
            /* identity or downsample (1x1 conv with the block's stride + BN) */
            int skip = in;
            if (kdc__has(b, kdc__key(key, sizeof key, "%s.downsample.0.weight", bp))) {
                if ((st = kdc__conv(b, kdc__key(name, sizeof name, "%s.downsample.0", bp), key,
                                    NULL, in, cin, cout, 1, stride, 0, 1, &skip)) ||
                    (st = kdc__bn(b, kdc__key(name, sizeof name, "%s.downsample.1", bp),
                                  kdc__key(key2, sizeof key2, "%s.downsample.1", bp), skip, cout,
                                  &skip)) ||
                    (st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.downsample", bp),
                                         skip)))
                    return st;
            } else if (stride != 1 || cin != cout) {
                return kdc__fail(KDC_ERR_WEIGHTS, "%s: missing tensor %s%s.downsample.0.weight "
                                 "(block %s maps %d channels to %d with stride %d)", b->path,
                                 b->prefix, bp, bp, cin, cout, stride);
            }
            node = kdc__add_node(b, KDC__OP_ADD_RELU, bp, y, skip, cout);
            if (node < 0)
                return KDC_ERR_NO_MEMORY;
            m->nodes[node].p.act.clamp = b->clamp;
            if ((st = kdc__add_alias(b, kdc__key(name, sizeof name, "%s.relu", bp), node)))
                return st;
            x = node;
        }
        if ((st = kdc__add_alias(b, kdc__key(name, sizeof name, "layer%d", l), x)))
            return st;
        stages[l - 1] = x;
    }
    m->min_input = 32;
    if (!classifier)
        return KDC_OK;
    x = kdc__add_node(b, KDC__OP_GAP, "avgpool", x, -1, m->nodes[x].channels);
    if (x < 0)
        return KDC_ERR_NO_MEMORY;
    if ((st = kdc__linear(b, "fc", "fc.weight", "fc.bias", x, &x)))
        return st;
    m->num_classes = m->nodes[x].channels;
    return KDC_OK;
}
