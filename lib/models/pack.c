/* pack.c - a model's kernels: the ISA chosen once at load, and the weights
 * of dense convs and fully connected layers packed once as the GEMM's A
 * (lib/kernels/kernels.h); the transposed packing backward needs is made
 * on first use. */
#include <stdlib.h>

#include "builder.h"
#include "op.h"
#include "conv_wino.h"

kdc_status kdc__choose_isa(kdc_kernels want, kdc__isa *isa)
{
    switch (want) {
    case KDC_KERNELS_AUTO: *isa = kdc__isa_best(); return KDC_OK;
    case KDC_KERNELS_SCALAR: *isa = KDC__ISA_SCALAR; break;
    case KDC_KERNELS_AVX2: *isa = KDC__ISA_AVX2; break;
    case KDC_KERNELS_NEON: *isa = KDC__ISA_NEON; break;
    case KDC_KERNELS_AVX512: *isa = KDC__ISA_AVX512; break;
    default:
        return kdc__fail(KDC_ERR_INVALID_ARGUMENT, "kernels: %d is not a kdc_kernels value",
                         (int)want);
    }
    if (!kdc__isa_supported(*isa) || !kdc__gemm_kernels_get(*isa))
        return kdc__fail(KDC_ERR_UNSUPPORTED, "kernels %s: not available on this CPU and build "
                         "(%s needs %s); the best available is %s (kernels auto)",
                         kdc__isa_name(*isa), kdc__isa_name(*isa),
                         *isa == KDC__ISA_AVX2     ? "an x86-64 CPU with AVX2 and FMA"
                         : *isa == KDC__ISA_AVX512 ? "an x86-64 CPU with AVX-512F, AVX2 and FMA"
                                                   : "an aarch64 CPU",
                         kdc__isa_name(kdc__isa_best()));
    return KDC_OK;
}

/* Packs the weight of every dense conv and fully connected layer as the
 * GEMM's A, once (lib/kernels.h). The scalar ISA packs nothing: it runs the
 * reference kernels. */
kdc_status kdc__setup_kernels(struct kdc_model *m, kdc__isa isa)
{
    m->isa = isa;
    m->act = kdc__act_kernels_get(isa);
    m->pool = kdc__pool_kernels_get(isa);
    if (isa == KDC__ISA_SCALAR)
        return KDC_OK;
    m->gemm = kdc__gemm_kernels_get(isa);
    m->dw = kdc__dw_kernels_get(isa);
    m->packed = calloc((size_t)m->n_nodes, sizeof *m->packed);
    if (!m->packed)
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory for packed weights");
    for (int k = 0; k < KDC__DERIVED_COUNT; k++)
        if (!(m->derived[k] = calloc((size_t)m->n_nodes, sizeof *m->derived[k])))
            return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory for packed weights");
    if (pthread_mutex_init(&m->pack_lock, NULL))
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: cannot create a mutex");
    m->pack_lock_init = 1;
    const int mr = m->gemm->mr;
    /* each node's weight before packing, to find the nodes that share one */
    const float **plain = calloc((size_t)m->n_nodes, sizeof *plain);
    if (!plain)
        return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory for packed weights");
    for (int i = 0; i < m->n_nodes; i++) {
        kdc__node *nd = &m->nodes[i];
        if (!kdc__conv_is_gemm(m, nd))
            continue;
        kdc__conv_param *cp = &nd->p.conv;
        const int k = cp->cin * cp->kh * cp->kw;
        plain[i] = cp->weight;
        int src = 0;
        for (int j = 1; j < i && !src; j++)
            if (plain[j] == cp->weight && m->nodes[j].p.conv.cout == cp->cout &&
                m->nodes[j].p.conv.cin * m->nodes[j].p.conv.kh * m->nodes[j].p.conv.kw == k)
                src = j;
        if (src) { /* packed already, its plain copy given back */
            cp->share = src;
            cp->packed = m->packed[src];
            cp->weight = NULL;
            continue;
        }
        const size_t bytes = kdc__gemm_packed_size(cp->cout, k, mr) * sizeof(float);
        float *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p) {
            free(plain);
            return kdc__fail(KDC_ERR_NO_MEMORY, "model: out of memory for packed weights");
        }
        kdc__gemm_pack_a(cp->weight, k, 1, cp->cout, k, mr, p);
        m->packed[i] = p;
        cp->packed = p;
        /* the packing is now the only copy the fast path reads (the
         * transposed one is made from it): give the plain one back */
        for (int j = 0; j < m->n_blocks; j++)
            if (m->blocks[j] == cp->weight) {
                free(m->blocks[j]);
                m->blocks[j] = NULL;
                m->n_params -= (size_t)cp->cout * k;
                cp->weight = NULL;
                break;
            }
    }
    free(plain);
    return KDC_OK;
}

/* Element (i, o) of W^T is element (o, i) of the packed W. */
static void kdc__transpose_packed(const kdc__conv_param *cp, int mr, float *dst)
{
    const int k = cp->cin * cp->kh * cp->kw;
    float *d = dst;
    for (int i0 = 0; i0 < k; i0 += mr)
        for (int o = 0; o < cp->cout; o++, d += mr) {
            const float *src = cp->packed + (size_t)(o / mr) * k * mr + o % mr;
            for (int i = 0; i < mr; i++)
                d[i] = i0 + i < k ? src[(size_t)(i0 + i) * mr] : 0.0f;
        }
}

static const char *const kdc__derived_names[KDC__DERIVED_COUNT] = {
    "transposed weights", "Winograd weights", "backward Winograd weights"};

size_t kdc__conv_derived_size(const struct kdc_model *m, int node, kdc__derived kind)
{
    const kdc__conv_param *cp = &m->nodes[node].p.conv;
    const int mr = m->gemm->mr;
    switch (kind) {
    case KDC__DERIVED_WINO: return kdc__wino_weights_size(cp, mr, 0);
    case KDC__DERIVED_WINO_T: return kdc__wino_weights_size(cp, mr, 1);
    default: return kdc__gemm_packed_size(cp->cin * cp->kh * cp->kw, cp->cout, mr);
    }
}

void kdc__conv_derive(const struct kdc_model *m, int node, kdc__derived kind, float *dst)
{
    const kdc__conv_param *cp = &m->nodes[node].p.conv;
    if (kind == KDC__DERIVED_T)
        kdc__transpose_packed(cp, m->gemm->mr, dst);
    else
        kdc__wino_weights(cp, m->gemm->mr, kind == KDC__DERIVED_WINO_T, dst);
}

kdc_status kdc__conv_derived(const struct kdc_model *m, int node, kdc__derived kind,
                             const float **out)
{
    kdc_status st = KDC_OK;
    pthread_mutex_t *lock = (pthread_mutex_t *)&m->pack_lock;
    float **cache = m->derived[kind];
    if (m->nodes[node].p.conv.share)
        node = m->nodes[node].p.conv.share;
    pthread_mutex_lock(lock);
    if (!cache[node]) {
        const size_t bytes = kdc__conv_derived_size(m, node, kind) * sizeof(float);
        float *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (p) {
            kdc__conv_derive(m, node, kind, p);
            cache[node] = p;
        } else {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for the %s",
                           m->nodes[node].name, kdc__derived_names[kind]);
        }
    }
    *out = cache[node];
    pthread_mutex_unlock(lock);
    return st;
}

const char *kdc_model_kernels(const kdc_model *m)
{
    return m ? kdc__isa_name(m->isa) : NULL;
}
