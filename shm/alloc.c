/*
 * alloc.c - pages, size classes, and the CLOCK hand that both allocates
 * and evicts (docs/ARCHITECTURE.md, "Memory").
 *
 * Chunk ownership rule: a chunk is claimed by CAS of its state word (FREE
 * -> PRIVATE(us)); whoever clears the slot word that points at a chunk,
 * under the bucket lock, owns it and frees it. Every state change is a
 * CAS, so a process killed between any two steps leaves chunks marked with
 * its slot, which recovery gives back.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/internal.h"
#include "layout.h"

#define HOT_ALLOC_STEPS 256

int hot_class_of(const struct tc_hot *h, size_t bytes)
{
    for (uint32_t c = 0; c < h->nclasses; c++)
        if (h->classes[c].chunk_size >= bytes)
            return (int)c;
    return -1;
}

/* ---- the pool lock (rare: assigning a page to a class, recovery) ------- */

void hot_pool_lock(struct tc_hot *h)
{
    uint32_t mine = (uint32_t)h->slot + 1;
    struct hot_wait wt = {0, 0};
    for (;;) {
        uint32_t w = 0;
        if (atomic_compare_exchange_weak(&h->hdr->pool_lock, &w, mine))
            return;
        if (hot_wait_owner(h, &wt, w) &&
            atomic_compare_exchange_strong(&h->hdr->pool_lock, &w, mine)) {
            /* Its owner died inside: finish what it may have left. */
            hot_count(h, C_LOCK_REPAIRS, 1);
            hot_pages_repair(h);
            return;
        }
    }
}

void hot_pool_unlock(struct tc_hot *h)
{
    atomic_store(&h->hdr->pool_lock, 0);
}

/* Pages assigned to a class but not (yet) in its list: the assigner died
 * between the two stores. Caller holds the pool lock. */
void hot_pages_repair(struct tc_hot *h)
{
    unsigned char *listed = calloc(h->npages, 1);
    if (!listed)
        return;
    for (uint32_t c = 0; c < h->nclasses; c++) {
        uint32_t np = atomic_load(&h->classes[c].npages);
        for (uint32_t i = 0; i < np && i < h->npages; i++) {
            uint32_t pg = h->pagelist[(uint64_t)c * h->npages + i];
            if (pg < h->npages)
                listed[pg] = 1;
        }
    }
    uint32_t used = 0;
    for (uint32_t pg = 0; pg < h->npages; pg++) {
        uint32_t cls = atomic_load(&h->pagetab[pg].cls);
        if (!cls)
            continue;
        used++;
        if (listed[pg] || cls > h->nclasses)
            continue;
        struct hot_class *c = &h->classes[cls - 1];
        uint32_t n = atomic_load(&c->npages);
        if (n < h->npages) {
            h->pagelist[(uint64_t)(cls - 1) * h->npages + n] = pg;
            atomic_store(&c->npages, n + 1);
        }
    }
    atomic_store(&h->hdr->pages_used, used);
    free(listed);
}

/* Give class @c one more page; false when the pool is empty. */
static bool grow_class(struct tc_hot *h, uint32_t c)
{
    if (atomic_load_explicit(&h->hdr->pages_used, memory_order_relaxed) >=
        h->npages)
        return false;
    hot_pool_lock(h);
    bool ok = false;
    for (uint32_t pg = 0; pg < h->npages; pg++) {
        if (atomic_load(&h->pagetab[pg].cls) != 0)
            continue;
        struct hot_class *cl = &h->classes[c];
        uint32_t n = atomic_load(&cl->npages);
        if (n >= h->npages)
            break;
        /* The page's chunks are zero (FREE) since creation: pages never
         * leave their class. */
        atomic_store(&h->pagetab[pg].cls, c + 1);
        h->pagelist[(uint64_t)c * h->npages + n] = pg;
        atomic_store(&cl->npages, n + 1);
        atomic_fetch_add(&h->hdr->pages_used, 1);
        ok = true;
        break;
    }
    hot_pool_unlock(h);
    return ok;
}

/* Take a PUBLISHED chunk out of the index (eviction). True if we now own
 * it (PRIVATE(us)). */
static bool evict(struct tc_hot *h, uint32_t idx, struct hot_item *it,
                  uint32_t csize)
{
    struct hot_key k;
    uint32_t klen = it->key_len;
    unsigned shard = it->shard;
    if (shard >= h->nshards || klen > csize - HOT_ITEM_HDR)
        return false;
    k.shard = (int)shard;
    k.type = it->key_type;
    k.p = it->data;
    k.len = klen;
    hot_key_finish(h, &k);
    bool got = false;
    hot_lock2(h, k.b1, k.b2);
    _Atomic uint64_t *slot[2 * HOT_SLOTS];
    int n = hot_key_slots(h, k.b1, k.b2, slot);
    for (int i = 0; i < n; i++) {
        uint64_t w = atomic_load_explicit(slot[i], memory_order_relaxed);
        if (SW_KIND(w) != SW_ITEM || SW_CHUNK(w) != idx)
            continue;
        uint32_t st = CS_PUBLISHED;
        if (atomic_compare_exchange_strong(&it->state, &st, CS_PRIV(h->slot))) {
            atomic_store_explicit(slot[i], 0, memory_order_relaxed);
            got = true;
        }
        break;
    }
    hot_unlock2(h, k.b1, k.b2);
    if (got)
        hot_count(h, C_EVICTIONS, 1);
    return got;
}

/* One step of class @c's hand. @evicting: also clear reference bytes and
 * evict. Returns the claimed chunk or UINT32_MAX. */
static uint32_t hand_step(struct tc_hot *h, uint32_t c, bool evicting,
                          double now)
{
    struct hot_class *cl = &h->classes[c];
    uint32_t np = atomic_load_explicit(&cl->npages, memory_order_acquire);
    /* The class is shared memory: each field read once and checked, so
     * a corrupt table can neither divide by zero nor point outside. */
    uint32_t per = __atomic_load_n(&cl->per_page, __ATOMIC_RELAXED);
    uint32_t csz = __atomic_load_n(&cl->chunk_size, __ATOMIC_RELAXED);
    if (np == 0 || np > h->npages || per == 0 || csz < HOT_MIN_CHUNK ||
        (uint64_t)per * csz > h->page_size)
        return UINT32_MAX;
    uint64_t pos =
        atomic_fetch_add_explicit(&cl->hand, 1, memory_order_relaxed);
    pos %= (uint64_t)np * per;
    uint32_t pg = h->pagelist[(uint64_t)c * h->npages + pos / per];
    uint32_t ci = (uint32_t)(pos % per);
    if (pg >= h->npages)
        return UINT32_MAX;
    uint32_t idx = hot_chunk_idx(h, pg, ci, csz);
    struct hot_item *it =
        (struct hot_item *)(h->pages + (uint64_t)idx * HOT_CHUNK_UNIT);
    uint32_t st = atomic_load_explicit(&it->state, memory_order_acquire);
    if (CS_KIND(st) == CS_FREE) {
        if (atomic_compare_exchange_strong(&it->state, &st, CS_PRIV(h->slot)))
            return idx;
        return UINT32_MAX;
    }
    if (!evicting || CS_KIND(st) != CS_PUBLISHED)
        return UINT32_MAX;
    /* Dead weight goes first: items of an invalidated generation and
     * expired items are evicted whatever their reference byte says. */
    bool dead = it->shard < h->nshards &&
                (it->gen != atomic_load_explicit(&h->shards[it->shard].gen,
                                                 memory_order_relaxed) ||
                 it->expire <= now);
    if (!dead && atomic_load_explicit(&it->ref, memory_order_relaxed)) {
        atomic_store_explicit(&it->ref, 0, memory_order_relaxed);
        return UINT32_MAX;
    }
    return evict(h, idx, it, csz) ? idx : UINT32_MAX;
}

uint32_t hot_alloc(struct tc_hot *h, size_t bytes)
{
    if (h->slot < 0)
        return UINT32_MAX;
    int c = hot_class_of(h, bytes);
    if (c < 0)
        return UINT32_MAX;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    uint32_t idx = UINT32_MAX;
    /* Free chunks first, then a new page, then eviction. */
    for (int i = 0; i < 16 && idx == UINT32_MAX; i++)
        idx = hand_step(h, (uint32_t)c, false, now);
    if (idx == UINT32_MAX && grow_class(h, (uint32_t)c)) {
        for (int i = 0; i < HOT_ALLOC_STEPS && idx == UINT32_MAX; i++)
            idx = hand_step(h, (uint32_t)c, false, now);
    }
    for (int i = 0; i < HOT_ALLOC_STEPS && idx == UINT32_MAX; i++)
        idx = hand_step(h, (uint32_t)c, true, now);
    if (idx != UINT32_MAX)
        TC_CRASH_POINT("mid-alloc");
    return idx;
}

void hot_free(struct tc_hot *h, uint32_t idx)
{
    uint32_t cs;
    struct hot_item *it = hot_chunk(h, idx, &cs);
    if (!it)
        return;
    uint32_t st = CS_PRIV(h->slot);
    atomic_compare_exchange_strong_explicit(
        &it->state, &st, CS_FREE, memory_order_release, memory_order_relaxed);
}

void hot_each_chunk(struct tc_hot *h,
                    void (*fn)(void *arg, uint32_t idx, struct hot_item *it,
                               const struct hot_class *cl),
                    void *arg)
{
    for (uint32_t c = 0; c < h->nclasses; c++) {
        const struct hot_class *cl = &h->classes[c];
        uint32_t np = atomic_load(&h->classes[c].npages);
        uint32_t per = __atomic_load_n(&cl->per_page, __ATOMIC_RELAXED);
        uint32_t csz = __atomic_load_n(&cl->chunk_size, __ATOMIC_RELAXED);
        if (csz < HOT_MIN_CHUNK || (uint64_t)per * csz > h->page_size)
            continue; /* a corrupt class: no chunk of it can be trusted */
        if (np > h->npages)
            np = h->npages;
        for (uint32_t i = 0; i < np; i++) {
            uint32_t pg = h->pagelist[(uint64_t)c * h->npages + i];
            if (pg >= h->npages)
                continue;
            for (uint32_t j = 0; j < per; j++) {
                uint32_t idx = hot_chunk_idx(h, pg, j, csz);
                fn(arg, idx,
                   (struct hot_item *)(h->pages +
                                       (uint64_t)idx * HOT_CHUNK_UNIT),
                   cl);
            }
        }
    }
}

struct free_arg {
    uint64_t free_b, items;
};

static void free_visit(void *arg, uint32_t idx, struct hot_item *it,
                       const struct hot_class *cl)
{
    struct free_arg *fa = arg;
    (void)idx;
    uint32_t st = atomic_load_explicit(&it->state, memory_order_relaxed);
    if (CS_KIND(st) == CS_FREE)
        fa->free_b += cl->chunk_size;
    else if (CS_KIND(st) == CS_PUBLISHED)
        fa->items++;
}

uint64_t hot_free_bytes(struct tc_hot *h, uint64_t *items)
{
    struct free_arg fa = {0, 0};
    uint64_t used = 0;
    for (uint32_t c = 0; c < h->nclasses; c++) {
        const struct hot_class *cl = &h->classes[c];
        uint32_t np = atomic_load(&h->classes[c].npages);
        if (np > h->npages)
            np = h->npages;
        used += np;
        /* The tail a page's chunks do not cover holds nothing. */
        fa.free_b +=
            (uint64_t)np * (h->page_size - cl->per_page * cl->chunk_size);
    }
    hot_each_chunk(h, free_visit, &fa);
    if (items)
        *items = fa.items;
    return fa.free_b +
           (uint64_t)(h->npages - (used < h->npages ? used : h->npages)) *
               h->page_size;
}
