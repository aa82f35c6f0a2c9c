/* The graph arena: bump allocation over chunks that never move. Reset keeps
 * every chunk, so the same sequence of allocations after a reset reuses the
 * same memory and makes no call to the allocation hook. */

/* MADV_HUGEPAGE is a Linux extension of <sys/mman.h> */
#define _DEFAULT_SOURCE 1

#include <sys/mman.h>

#include "internal.h"

/* Chunks grow with the arena, up to this size, so that a huge graph lives in
 * few chunks. */
#define MAX_GROWTH ((size_t)64 << 20)

#define HEADER_SIZE ((sizeof(nbc_chunk) + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN)

void nbc_arena_init(nbc_arena *a, nb_alloc_fn alloc, void *ud, size_t chunk_size)
{
    a->alloc = alloc;
    a->ud = ud;
    a->first = a->cur = NULL;
    a->chunk_size = chunk_size;
    a->total = 0;
    a->last_node = NULL;
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
    NBC_UNPOISON(c->base + off, n);
    return c->base + off;
}

/* Large chunks of the default allocator are fresh mmap'ed memory: ask for
 * transparent huge pages, so that first touching them costs one page fault
 * per 2 MiB instead of one per 4 KiB (a graph touches all of its memory
 * once). Hooks supplied by the caller are left alone. */
static void advise_huge(const nbc_arena *a, void *p, size_t bytes)
{
#if defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (a->alloc != nb_default_alloc || bytes < 2 * huge)
        return;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice only */
#else
    (void)a, (void)p, (void)bytes;
#endif
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
    /* at least the configured size, and as much as the arena holds already
     * (geometric growth, capped): a graph of 10^7 nodes needs few chunks */
    size_t size = a->chunk_size;
    if (a->total > size)
        size = a->total < MAX_GROWTH ? a->total : MAX_GROWTH;
    if (n + NB_ALIGN > size)
        size = n + NB_ALIGN;
    nbc_chunk *c = a->alloc(a->ud, NULL, 0, HEADER_SIZE + size + NB_ALIGN);
    if (!c)
        return NULL;
    advise_huge(a, c, HEADER_SIZE + size + NB_ALIGN);
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
    a->last_node = NULL;
    a->epoch++;
}

void nbc_arena_shrink(nbc_arena *a, void *p, size_t old_n, size_t new_n)
{
#ifdef NBC_ASAN
    (void)a; /* keep the tail, poisoned: reading it is a bug */
    NBC_POISON((char *)p + new_n, old_n - new_n);
#else
    nbc_chunk *c = a->cur;
    if (c && new_n < old_n && (char *)p + old_n == c->base + c->used)
        c->used -= old_n - new_n;
#endif
}

void nbc_arena_free(nbc_arena *a)
{
    nbc_chunk *c = a->first;
    while (c) {
        nbc_chunk *next = c->next;
        NBC_UNPOISON(c->base, c->size);
        a->alloc(a->ud, c, HEADER_SIZE + c->size + NB_ALIGN, 0);
        c = next;
    }
    a->first = a->cur = NULL;
    a->total = 0;
}

nbc_arena_pos nbc_arena_tell(const nbc_arena *a)
{
    nbc_arena_pos pos = {a->cur, a->cur ? a->cur->used : 0, a->last_node};
    return pos;
}

void nbc_arena_release(nbc_arena *a, nbc_arena_pos pos)
{
    nbc_chunk *start = pos.chunk ? pos.chunk : a->first;
    a->last_node = pos.last_node;
    a->epoch++;
    if (!start)
        return;
    for (nbc_chunk *c = start->next; c; c = c->next)
        c->used = 0;
    start->used = pos.chunk ? pos.used : 0;
    a->cur = start;
}
