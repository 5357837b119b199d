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
    m->packed_t = calloc((size_t)m->n_nodes, sizeof *m->packed_t);
    m->wino = calloc((size_t)m->n_nodes, sizeof *m->wino);
    m->wino_t = calloc((size_t)m->n_nodes, sizeof *m->wino_t);
    if (!m->packed || !m->packed_t || !m->wino || !m->wino_t)
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

size_t kdc__conv_packed_t_size(const struct kdc_model *m, int node)
{
    const kdc__conv_param *cp = &m->nodes[node].p.conv;
    return kdc__gemm_packed_size(cp->cin * cp->kh * cp->kw, cp->cout, m->gemm->mr);
}

void kdc__conv_transpose_packed(const struct kdc_model *m, int node, float *dst)
{
    /* element (i, o) of W^T is element (o, i) of the packed W */
    const kdc__conv_param *cp = &m->nodes[node].p.conv;
    const int k = cp->cin * cp->kh * cp->kw, mr = m->gemm->mr;
    float *d = dst;
    for (int i0 = 0; i0 < k; i0 += mr)
        for (int o = 0; o < cp->cout; o++, d += mr) {
            const float *src = cp->packed + (size_t)(o / mr) * k * mr + o % mr;
            for (int i = 0; i < mr; i++)
                d[i] = i0 + i < k ? src[(size_t)(i0 + i) * mr] : 0.0f;
        }
}

/* A weight layout derived from conv `node`'s packing (the node whose
 * weights it shares, if any), made on first use under pack_lock and kept
 * in cache[node]: size floats written by make. */
typedef void (*kdc__derive_fn)(const struct kdc_model *m, int node, float *dst);

static kdc_status kdc__derived(const struct kdc_model *m, int node, float **cache, size_t size,
                               kdc__derive_fn make, const char *what, const float **out)
{
    kdc_status st = KDC_OK;
    pthread_mutex_t *lock = (pthread_mutex_t *)&m->pack_lock;
    if (m->nodes[node].p.conv.share)
        node = m->nodes[node].p.conv.share;
    pthread_mutex_lock(lock);
    if (!cache[node]) {
        float *p = aligned_alloc(64, (size * sizeof(float) + 63) / 64 * 64);
        if (p) {
            make(m, node, p);
            cache[node] = p;
        } else {
            st = kdc__fail(KDC_ERR_NO_MEMORY, "%s: out of memory for the %s",
                           m->nodes[node].name, what);
        }
    }
    *out = cache[node];
    pthread_mutex_unlock(lock);
    return st;
}

kdc_status kdc__conv_packed_t(const struct kdc_model *m, int node, const float **out)
{
    return kdc__derived(m, node, m->packed_t, kdc__conv_packed_t_size(m, node),
                        kdc__conv_transpose_packed, "transposed weights", out);
}

static void kdc__make_wino(const struct kdc_model *m, int node, float *dst)
{
    kdc__wino_weights(&m->nodes[node].p.conv, m->gemm->mr, dst);
}

static void kdc__make_wino_t(const struct kdc_model *m, int node, float *dst)
{
    kdc__wino_weights_t(&m->nodes[node].p.conv, m->gemm->mr, dst);
}

kdc_status kdc__conv_wino_weights(const struct kdc_model *m, int node, const float **out)
{
    return kdc__derived(m, node, m->wino,
                        kdc__wino_weights_size(&m->nodes[node].p.conv, m->gemm->mr),
                        kdc__make_wino, "Winograd weights", out);
}

kdc_status kdc__conv_wino_weights_t(const struct kdc_model *m, int node, const float **out)
{
    return kdc__derived(m, node, m->wino_t,
                        kdc__wino_weights_t_size(&m->nodes[node].p.conv, m->gemm->mr),
                        kdc__make_wino_t, "backward Winograd weights", out);
}

const char *kdc_model_kernels(const kdc_model *m)
{
    return m ? kdc__isa_name(m->isa) : NULL;
}
