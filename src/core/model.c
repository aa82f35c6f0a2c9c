/* nb_model: named parameters (uthash: name -> entry) that live outside any
 * graph, each with a gradient buffer that survives graph resets. Every
 * allocation, the hash table's included, goes through the model's hook. */

#include "internal.h"

/* uthash allocates through the model in scope (every caller names it `m`) and
 * reports a failed allocation instead of exiting. */
#define HASH_NONFATAL_OOM 1
#define uthash_malloc(sz) m->alloc(m->ud, NULL, 0, (sz))
#define uthash_free(ptr, sz) m->alloc(m->ud, (ptr), (sz), 0)
#define uthash_nonfatal_oom(obj) (oom = 1)
#include <uthash.h>

typedef struct nbm_entry {
    nb_tensor value; /* first member: a parameter tensor is its entry */
    nb_tensor grad;
    char *key;
    size_t key_size;
    size_t data_bytes; /* size of each of the two data blocks */
    UT_hash_handle hh;
} nbm_entry;

struct nb_model {
    nb_alloc_fn alloc;
    void *ud;
    nbm_entry *params;
    int count;
    int64_t numel;
};

nb_model *nb_model_new_alloc(nb_alloc_fn alloc, void *ud)
{
    if (!alloc)
        return NULL;
    nb_model *m = alloc(ud, NULL, 0, sizeof *m);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->alloc = alloc;
    m->ud = ud;
    return m;
}

nb_model *nb_model_new(void)
{
    return nb_model_new_alloc(nb_default_alloc, NULL);
}

static void entry_free(nb_model *m, nbm_entry *e)
{
    if (e->value.data)
        m->alloc(m->ud, e->value.data, e->data_bytes, 0);
    if (e->grad.data)
        m->alloc(m->ud, e->grad.data, e->data_bytes, 0);
    if (e->key)
        m->alloc(m->ud, e->key, e->key_size, 0);
    m->alloc(m->ud, e, sizeof *e, 0);
}

void nb_model_free(nb_model *m)
{
    if (!m)
        return;
    nbm_entry *e, *tmp;
    HASH_ITER(hh, m->params, e, tmp)
    {
        HASH_DEL(m->params, e);
        entry_free(m, e);
    }
    m->alloc(m->ud, m, sizeof *m, 0);
}

nb_status nb_model_add(nb_model *m, const char *name, nb_dtype dt, int rank, const int64_t *shape,
                       nb_tensor **out)
{
    if (out)
        *out = NULL;
    if (!m || !name)
        return NB_ERR_NULL;
    if (nb_model_get(m, name))
        return NB_ERR_EXISTS;
    if (dt != NB_F32 && dt != NB_F64)
        return NB_ERR_DTYPE;
    if (rank < 0 || rank > NB_MAX_RANK)
        return NB_ERR_RANK;
    if (rank > 0 && !shape)
        return NB_ERR_NULL;
    int64_t size = 1;
    for (int i = 0; i < rank; i++)
        if (!nbc_count_axis(&size, shape[i]))
            return NB_ERR_ARG;

    nbm_entry *e = m->alloc(m->ud, NULL, 0, sizeof *e);
    if (!e)
        return NB_ERR_NOMEM;
    memset(e, 0, sizeof *e);
    size_t bytes = (size_t)size * nb_dtype_size(dt);
    e->key_size = strlen(name) + 1;
    e->key = m->alloc(m->ud, NULL, 0, e->key_size);
    e->data_bytes = bytes ? bytes : 1;
    e->value.data = m->alloc(m->ud, NULL, 0, e->data_bytes);
    e->grad.data = m->alloc(m->ud, NULL, 0, e->data_bytes);
    if (!e->key || !e->value.data || !e->grad.data) {
        entry_free(m, e);
        return NB_ERR_NOMEM;
    }
    memcpy(e->key, name, e->key_size);
    memset(e->value.data, 0, bytes);
    memset(e->grad.data, 0, bytes);
    nb_tensor *ts[2] = {&e->value, &e->grad};
    for (int k = 0; k < 2; k++) {
        nb_tensor *t = ts[k];
        t->dtype = dt;
        t->rank = rank;
        for (int i = 0; i < rank; i++)
            t->shape[i] = shape[i];
        t->size = size;
        t->name = e->key;
        t->flags = NB_T_PARAM;
    }
    e->value.flags |= NB_T_REQUIRES_GRAD;
    e->value.grad = &e->grad;

    int oom = 0;
    HASH_ADD_KEYPTR(hh, m->params, e->key, e->key_size - 1, e);
    if (oom) {
        entry_free(m, e);
        return NB_ERR_NOMEM;
    }
    m->count++;
    m->numel += size;
    if (out)
        *out = &e->value;
    return NB_OK;
}

nb_tensor *nb_model_get(const nb_model *m, const char *name)
{
    if (!m || !name)
        return NULL;
    nbm_entry *e = NULL;
    HASH_FIND_STR(m->params, name, e);
    return e ? &e->value : NULL;
}

int nb_model_count(const nb_model *m)
{
    return m ? m->count : 0;
}

int64_t nb_model_numel(const nb_model *m)
{
    return m ? m->numel : 0;
}

nb_tensor *nb_model_next(const nb_model *m, const nb_tensor *prev)
{
    if (!m)
        return NULL;
    if (!prev)
        return m->params ? &m->params->value : NULL;
    if (!(prev->flags & NB_T_PARAM) || prev->grad == NULL)
        return NULL;
    const nbm_entry *e = (const nbm_entry *)prev;
    nbm_entry *next = e->hh.next;
    return next ? &next->value : NULL;
}

void nb_model_zero_grad(nb_model *m)
{
    if (!m)
        return;
    for (nbm_entry *e = m->params; e; e = e->hh.next)
        memset(e->grad.data, 0, (size_t)e->grad.size * nb_dtype_size(e->grad.dtype));
}

nb_alloc_fn nbc_model_allocator(const nb_model *m, void **ud)
{
    *ud = m->ud;
    return m->alloc;
}
