/* The graph arena: bump allocation over chunks that never move. Reset keeps
 * every chunk, so the same sequence of allocations after a reset reuses the
 * same memory and makes no call to the allocation hook. */

#include "internal.h"

#define HEADER_SIZE ((sizeof(nbc_chunk) + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN)

void nbc_arena_init(nbc_arena *a, nb_alloc_fn alloc, void *ud, size_t chunk_size)
{
    a->alloc = alloc;
    a->ud = ud;
    a->first = a->cur = NULL;
    a->chunk_size = chunk_size;
    a->total = 0;
}

static char *chunk_start(nbc_chunk *c)
{
    /* usable memory starts at the first NB_ALIGN boundary after the header */
    uintptr_t base = (uintptr_t)c + sizeof(nbc_chunk);
    return (char *)((base + NB_ALIGN - 1) & ~(uintptr_t)(NB_ALIGN - 1));
}

static void *take(nbc_chunk *c, size_t n, size_t align)
{
    size_t off = (c->used + align - 1) & ~(align - 1);
    if (off > c->size || c->size - off < n)
        return NULL;
    c->used = off + n;
    return c->base + off;
}

void *nbc_arena_alloc_slow(nbc_arena *a, size_t n, size_t align)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 2)
        return NULL;
    /* the current chunk, then later chunks kept from before a reset */
    for (nbc_chunk *c = a->cur; c; c = c->next) {
        void *p = take(c, n, align);
        if (p) {
            a->cur = c;
            return p;
        }
        if (c->next == NULL)
            break;
    }
    size_t size = n + NB_ALIGN > a->chunk_size ? n + NB_ALIGN : a->chunk_size;
    nbc_chunk *c = a->alloc(a->ud, NULL, 0, HEADER_SIZE + size + NB_ALIGN);
    if (!c)
        return NULL;
    c->next = NULL;
    c->base = chunk_start(c);
    c->size = size;
    c->used = 0;
    a->total += HEADER_SIZE + size + NB_ALIGN;
    /* append after the last chunk so the order of reuse stays the order of
     * first use */
    if (!a->first) {
        a->first = c;
    } else {
        nbc_chunk *last = a->cur ? a->cur : a->first;
        while (last->next)
            last = last->next;
        last->next = c;
    }
    a->cur = c;
    return take(c, n, align);
}

void nbc_arena_reset(nbc_arena *a)
{
    for (nbc_chunk *c = a->first; c; c = c->next)
        c->used = 0;
    a->cur = a->first;
}

void nbc_arena_free(nbc_arena *a)
{
    nbc_chunk *c = a->first;
    while (c) {
        nbc_chunk *next = c->next;
        a->alloc(a->ud, c, HEADER_SIZE + c->size + NB_ALIGN, 0);
        c = next;
    }
    a->first = a->cur = NULL;
    a->total = 0;
}

nbc_arena_pos nbc_arena_tell(const nbc_arena *a)
{
    nbc_arena_pos pos = {a->cur, a->cur ? a->cur->used : 0};
    return pos;
}

void nbc_arena_release(nbc_arena *a, nbc_arena_pos pos)
{
    nbc_chunk *start = pos.chunk ? pos.chunk : a->first;
    if (!start)
        return;
    for (nbc_chunk *c = start->next; c; c = c->next)
        c->used = 0;
    start->used = pos.chunk ? pos.used : 0;
    a->cur = start;
}
