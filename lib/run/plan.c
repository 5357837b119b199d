/* plan.c - a run's memory plan and fused groups.
 *
 * Buffers are planned by liveness: walking the nodes in order, a node's
 * output takes a free buffer and gives back the buffers of inputs it was
 * the last user of; ops the op table marks in_place (BN, ReLU, residual
 * join, FPN join) write over a dying input. Layers the caller asked to
 * keep are never given back. The plan is redone only when the input shape
 * or the kept set changes; buffers only grow, so a run that has seen its
 * largest input allocates nothing more. */
#include <stdlib.h>

#include "op.h"
#include "run.h"

/* Epilogue fusion: a dense conv (or a depthwise 3x3 one, per channel plane
 * after the depthwise kernel) whose only reader is an AFFINE (eval BN)
 * runs that affine in its epilogue, and the RELU or ADD_RELU after it too
 * when the affine's only reader is that node (and an ADD_RELU's other input,
 * the residual, is computed before the conv). Nodes whose outputs the
 * caller keeps are never inside a group, so every kept layer holds exactly
 * what the unfused ops give (the epilogue does the same float operations). */
static void kdc__plan_fusion(kdc_run *r)
{
    const kdc_model *m = r->m;
    for (int i = 0; i < m->n_nodes; i++) {
        r->fuse_tail[i] = 0;
        r->fused[i] = 0;
    }
    if (!m->gemm)
        return;
    for (int i = 1; i + 1 < m->n_nodes; i++) {
        const kdc__node *nd = &m->nodes[i], *af = &m->nodes[i + 1];
        if (!(kdc__conv_is_gemm(m, nd) && nd->op == KDC__OP_CONV) && !kdc__conv_is_dw(m, nd))
            continue;
        if (af->op != KDC__OP_AFFINE || af->in[0] != i || r->last_use[i] != i + 1)
            continue;
        int tail = i + 1;
        if (i + 2 < m->n_nodes && r->last_use[i + 1] == i + 2) {
            const kdc__node *t = &m->nodes[i + 2];
            if (t->op == KDC__OP_RELU && t->in[0] == i + 1) {
                tail = i + 2;
            } else if (t->op == KDC__OP_ADD_RELU && t->in[0] != t->in[1]) {
                int other = t->in[0] == i + 1 ? t->in[1] : t->in[1] == i + 1 ? t->in[0] : -1;
                if (other >= 0 && other < i)
                    tail = i + 2;
            }
        }
        r->fuse_tail[i] = tail;
        for (int j = i + 1; j <= tail; j++)
            r->fused[j] = 1;
        i = tail;
    }
}

size_t kdc__numel(const kdc_run *r, int node)
{
    const int *s = r->chw + 3 * node;
    return (size_t)r->n * (size_t)s[0] * (size_t)s[1] * (size_t)s[2];
}

/* Liveness plan: which buffer each node writes, and how big buffers are. */
kdc_status kdc__plan(kdc_run *r)
{
    const kdc_model *m = r->m;
    const int nn = m->n_nodes;
    int *free_list = malloc((size_t)nn * sizeof *free_list);
    int n_free = 0;

    if (!free_list)
        return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory");
    for (int i = 0; i < nn; i++)
        r->last_use[i] = (r->keep[i] || i == nn - 1) ? nn : i;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < 2; k++) {
            int in = m->nodes[i].in[k];
            if (in >= 0 && r->last_use[in] < i)
                r->last_use[in] = i;
        }
    kdc__plan_fusion(r);
    r->n_slots = 0;
    for (int i = 0; i < nn; i++) {
        const kdc__node *nd = &m->nodes[i];
        const size_t numel = kdc__numel(r, i);
        int s = -1;
        if (r->fused[i]) {
            /* in place over the group's own chain (never over an ADD_RELU's
             * residual, which the epilogue reads while writing) */
            s = r->slot[i - 1];
        } else if (kdc__op_table[nd->op]->in_place && r->last_use[nd->in[0]] == i) {
            s = r->slot[nd->in[0]]; /* in place over the dying input */
        } else if (n_free > 0) {
            /* best fit: the smallest free buffer that is big enough, else the largest */
            int best = 0;
            for (int f = 1; f < n_free; f++) {
                size_t a = r->need[free_list[f]], cur = r->need[free_list[best]];
                int a_fits = a >= numel, cur_fits = cur >= numel;
                if ((a_fits && (!cur_fits || a < cur)) || (!a_fits && !cur_fits && a > cur))
                    best = f;
            }
            s = free_list[best];
            free_list[best] = free_list[--n_free];
        } else {
            s = r->n_slots++;
            r->need[s] = 0;
        }
        r->slot[i] = s;
        if (r->need[s] < numel)
            r->need[s] = numel;
        /* give back the inputs whose last use is this node */
        for (int k = 0; k < 2; k++) {
            int in = nd->in[k];
            if (in < 0 || r->last_use[in] != i || r->slot[in] == s)
                continue;
            if (k == 1 && nd->in[0] == in)
                continue;
            free_list[n_free++] = r->slot[in];
        }
    }
    free(free_list);
    for (int s = 0; s < r->n_slots; s++) {
        if (r->cap[s] >= r->need[s])
            continue;
        free(r->buf[s]);
        r->buf[s] = kdc__falloc(r->need[s]);
        r->cap[s] = r->buf[s] ? r->need[s] : 0;
        if (!r->buf[s])
            return kdc__fail(KDC_ERR_NO_MEMORY, "run: out of memory for a %zu-float activation",
                             r->need[s]);
    }
    r->planned = 1;
    return KDC_OK;
}
