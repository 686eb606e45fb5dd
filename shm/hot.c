/*
 * hot.c - the hot tier's protocol: lock-free reads, fills, intents,
 * publishes, bulk invalidation, statistics and the checker
 * (docs/ARCHITECTURE.md, "Read (hit) path", "Write path", "Fill path").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/internal.h"
#include "layout.h"
#include "read.h"

/* LFU level: exact up to 15, then a Morris counter (level c >= 16 moves
 * up with probability 2^-(c-15)), so the item is written at most a
 * logarithmic number of times. */
static uint64_t lfu_estimate(unsigned c)
{
    return c < 16 ? c : 14 + (UINT64_C(1) << (c - 15 > 48 ? 48 : c - 15));
}

static uint32_t rng_next(void)
{
    static _Thread_local uint32_t x = 0x9E3779B9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

void hot_record_access(struct hot_item *it, int access,
                       const struct tc_hot_read *rd)
{
    uint8_t a = atomic_load_explicit(&it->acc, memory_order_relaxed);
    if (access == TC_HOT_ACCESS_LRU) {
        double t = hot_read_now(rd);
        uint32_t s = t <= 0 ? 0 : t >= 4294967295.0 ? UINT32_MAX : (uint32_t)t;
        if (atomic_load_explicit(&it->atime, memory_order_relaxed) != s)
            atomic_store_explicit(&it->atime, s, memory_order_relaxed);
        else if (a & ACC_UNFOLDED)
            return;
        atomic_store_explicit(&it->acc, (uint8_t)(a | ACC_UNFOLDED),
                              memory_order_relaxed);
        return;
    }
    unsigned c = a & ACC_LEVEL;
    if (c >= 60)
        return;
    if (c >= 16 &&
        (rng_next() & ((UINT32_C(1) << (c - 15 > 31 ? 31 : c - 15)) - 1)))
        return;
    atomic_store_explicit(&it->acc, (uint8_t)((c + 1) | ACC_UNFOLDED),
                          memory_order_relaxed);
}

void hot_give_value(tc_value *v, int type, char *copy, uint32_t len)
{
    v->type = type;
    v->len = len;
    copy[len] = 0;
    if (type == TC_INT && len == 8) {
        memcpy(&v->i, copy, 8);
        v->ptr = &v->i;
        free(copy);
    } else if (type == TC_REAL && len == 8) {
        memcpy(&v->d, copy, 8);
        v->ptr = &v->d;
        free(copy);
    } else {
        v->ptr = copy;
    }
}

int tc_hot_get_buf(struct tc_hot *h, const tc_data *key,
                   const struct tc_hot_read *rd, void *buf, size_t cap,
                   size_t *len, int *type, double *expire, int *shard)
{
    return hot_read_buf_general(h, key, rd, buf, cap, len, type, expire, shard);
}

int tc_hot_get(struct tc_hot *h, const tc_data *key,
               const struct tc_hot_read *rd, tc_item *out, int *shard)
{
    return hot_read_item_general(h, key, rd, out, shard);
}

/* ---- building and installing items ------------------------------------ */

/* Claim a chunk and write an item into it (still PRIVATE(us)). */
static uint32_t item_build(struct tc_hot *h, const struct hot_key *k,
                           const tc_data *val, const tc_data *tag,
                           double expire, uint64_t ver)
{
    int ttype = tag && tag->type != TC_NONE ? tag->type : TC_NONE;
    size_t tlen = ttype != TC_NONE ? tag->len : 0;
    size_t need = HOT_ITEM_HDR + (size_t)k->len + tlen + val->len;
    if (val->len > UINT32_MAX || tlen > UINT32_MAX)
        return UINT32_MAX;
    uint32_t idx = hot_alloc(h, need);
    if (idx == UINT32_MAX)
        return UINT32_MAX;
    uint32_t cs;
    struct hot_item *it = hot_chunk(h, idx, &cs);
    if (!it || need > cs) {
        hot_free(h, idx);
        return UINT32_MAX;
    }
    /* A reader holding a stale slot may still be reading this chunk's
     * previous item: its seqlock check will discard what it read, and
     * these stores are atomic (relaxed: plain moves) so that the race is
     * a defined one (read.h). The fence keeps them behind the bucket
     * version bump that took the chunk out of the index (on a weakly
     * ordered CPU a relaxed store may otherwise pass that release store):
     * a reader that sees any of them then sees the bump, pairing with
     * its acquire fence before the bucket word's second load. */
#ifndef HOT_TSAN /* TSan does not model fences; its stores are atomic */
    atomic_thread_fence(memory_order_release);
#endif
    atomic_store_explicit(&it->ref, 0, memory_order_relaxed);
    ITEM_STORE(it, key_type, (uint8_t)k->type);
    ITEM_STORE(it, val_type, (uint8_t)val->type);
    ITEM_STORE(it, tag_type, (uint8_t)ttype);
    ITEM_STORE(it, shard, (uint16_t)k->shard);
    ITEM_STORE(it, flags, 0);
    atomic_store_explicit(&it->acc, 0, memory_order_relaxed);
    atomic_store_explicit(&it->atime, 0, memory_order_relaxed);
    ITEM_STORE(it, gen, 0);
    ITEM_STORE(it, key_len, k->len);
    ITEM_STORE(it, tag_len, (uint32_t)tlen);
    ITEM_STORE(it, val_len, (uint32_t)val->len);
    ITEM_STORE(it, ver, ver);
    __atomic_store(&it->expire, &expire, __ATOMIC_RELAXED);
    hot_copy_in(it->data, k->p, k->len);
    if (tlen)
        hot_copy_in(it->data + k->len, tag->ptr, tlen);
    if (val->len)
        hot_copy_in(it->data + k->len + tlen, val->ptr, val->len);
    return idx;
}

/* Take the chunk a slot points at out of the index (caller holds the
 * bucket lock); we own it afterwards. */
static uint32_t slot_take(struct tc_hot *h, _Atomic uint64_t *slot)
{
    uint64_t w = atomic_load_explicit(slot, memory_order_relaxed);
    atomic_store_explicit(slot, 0, memory_order_relaxed);
    if (SW_KIND(w) != SW_ITEM)
        return UINT32_MAX;
    uint32_t cs;
    struct hot_item *it = hot_chunk(h, SW_CHUNK(w), &cs);
    if (!it)
        return UINT32_MAX;
    /* PUBLISHED, or PRIVATE(installer) between its unlock and its CAS to
     * PUBLISHED: either way it becomes ours; the installer's CAS fails. */
    uint32_t st = atomic_load(&it->state);
    while (CS_KIND(st) != CS_FREE &&
           !atomic_compare_exchange_weak(&it->state, &st, CS_PRIV(h->slot)))
        ;
    return CS_KIND(st) == CS_FREE ? UINT32_MAX : SW_CHUNK(w);
}

/* True if slot word @w is this process's fill lease on @tag. */
static bool is_my_lease(const struct tc_hot *h, uint64_t w, unsigned tag)
{
    uint64_t mine = sw_filling(tag, (unsigned)h->slot, 0);
    return SW_KIND(w) == SW_FILLING &&
           (w & UINT64_C(0xfffffffffff)) == (mine & UINT64_C(0xfffffffffff));
}

/* Find the slot holding @k's item in its buckets (locked). */
static _Atomic uint64_t *find_item(struct tc_hot *h, const struct hot_key *k,
                                   struct hot_item **itp)
{
    _Atomic uint64_t *slot[2 * HOT_SLOTS];
    int n = hot_key_slots(h, k->b1, k->b2, slot);
    for (int i = 0; i < n; i++) {
        uint64_t w = atomic_load_explicit(slot[i], memory_order_relaxed);
        if (SW_KIND(w) != SW_ITEM || SW_TAG(w) != k->tag)
            continue;
        uint32_t cs;
        struct hot_item *it = hot_chunk(h, SW_CHUNK(w), &cs);
        if (it && hot_item_is(it, cs, k)) {
            if (itp)
                *itp = it;
            return slot[i];
        }
    }
    return NULL;
}

/* A slot for a new key: our own lease, an empty slot, else a victim
 * (whose chunk we take). */
static _Atomic uint64_t *free_slot(struct tc_hot *h, const struct hot_key *k,
                                   uint32_t *victim)
{
    _Atomic uint64_t *empty = NULL, *lease = NULL, *any = NULL;
    _Atomic uint64_t *slot[2 * HOT_SLOTS];
    int n = hot_key_slots(h, k->b1, k->b2, slot);
    for (int i = 0; i < n; i++) {
        uint64_t w = atomic_load_explicit(slot[i], memory_order_relaxed);
        if (is_my_lease(h, w, k->tag))
            lease = slot[i];
        else if (SW_KIND(w) == SW_EMPTY && !empty)
            empty = slot[i];
        else if (SW_KIND(w) == SW_ITEM && !any)
            any = slot[i];
    }
    if (lease)
        return lease;
    _Atomic uint64_t *home = &h->buckets[k->b1].slot[hot_home_slot(k->tag)];
    if (SW_KIND(atomic_load_explicit(home, memory_order_relaxed)) == SW_EMPTY)
        return home;
    if (empty)
        return empty;
    if (!any)
        return NULL;
    /* Both buckets full of items: evict a random-ish one of them. */
    struct hot_bucket *b = &h->buckets[(k->hash >> 20) & 1 ? k->b2 : k->b1];
    any = &b->slot[(k->hash >> 24) % HOT_SLOTS];
    if (SW_KIND(atomic_load(any)) != SW_ITEM)
        return NULL;
    *victim = slot_take(h, any);
    if (*victim != UINT32_MAX)
        hot_count(h, C_EVICTIONS, 1);
    return any;
}

/* Clear our lease on @k's tag, if any (bucket locked). */
static void drop_lease(struct tc_hot *h, const struct hot_key *k)
{
    _Atomic uint64_t *slot[2 * HOT_SLOTS];
    int n = hot_key_slots(h, k->b1, k->b2, slot);
    for (int i = 0; i < n; i++)
        if (is_my_lease(h, atomic_load_explicit(slot[i], memory_order_relaxed),
                        k->tag))
            atomic_store_explicit(slot[i], 0, memory_order_relaxed);
}

enum install_rule { FILL, PUBLISH };

/* Install chunk @idx for @k under the buckets' lock if the rule allows;
 * on refusal the chunk is freed. */
static bool install(struct tc_hot *h, const struct hot_key *k, uint32_t idx,
                    uint64_t ver, enum install_rule rule)
{
    uint32_t cs;
    struct hot_item *it = hot_chunk(h, idx, &cs);
    uint32_t old = UINT32_MAX, victim = UINT32_MAX;
    bool ok = false;
    struct hot_shard *sh = &h->shards[k->shard];

    hot_lock2(h, k->b1, k->b2);
    uint64_t floor = atomic_load(&sh->floor);
    if (rule == FILL ? floor <= ver : floor == ver) {
        struct hot_item *cur = NULL;
        _Atomic uint64_t *slot = find_item(h, k, &cur);
        if (slot && rule == FILL && cur->ver >= ver) {
            slot = NULL; /* a newer (or the same) version is resident */
        } else {
            if (slot)
                old = slot_take(h, slot);
            else
                slot = free_slot(h, k, &victim);
            if (slot) {
                ITEM_STORE(it, gen, atomic_load(&sh->gen));
                atomic_store_explicit(slot, sw_item(k->tag, idx),
                                      memory_order_release);
                ok = true;
            }
        }
    }
    drop_lease(h, k);
    hot_unlock2(h, k->b1, k->b2);
    if (ok) {
        uint32_t st = CS_PRIV(h->slot);
        atomic_compare_exchange_strong(&it->state, &st, CS_PUBLISHED);
    } else {
        hot_free(h, idx);
    }
    if (old != UINT32_MAX)
        hot_free(h, old);
    if (victim != UINT32_MAX)
        hot_free(h, victim);
    return ok;
}

/* ---- fills ------------------------------------------------------------- */

bool tc_hot_fill_lease(struct tc_hot *h, int shard, const tc_data *key,
                       double now)
{
    struct hot_key k;
    (void)now;
    if (h->slot < 0 || !hot_key_make(h, shard, key, &k))
        return false;
    uint32_t ms = (uint32_t)hot_now_ms();
    bool other = false;
    hot_lock2(h, k.b1, k.b2);
    _Atomic uint64_t *empty = NULL;
    _Atomic uint64_t *slot[2 * HOT_SLOTS];
    int n = hot_key_slots(h, k.b1, k.b2, slot);
    for (int i = 0; i < n; i++) {
        uint64_t w = atomic_load_explicit(slot[i], memory_order_relaxed);
        if (SW_KIND(w) == SW_FILLING && SW_TAG(w) == k.tag) {
            unsigned age = (ms - SW_LEASE_MS(w)) & 0xfffffu;
            if ((int)SW_OWNER(w) != h->slot && age < HOT_LEASE_MS &&
                hot_proc_alive(h, SW_OWNER(w))) {
                other = true;
                continue;
            }
            atomic_store_explicit(slot[i], 0, memory_order_relaxed);
            w = 0;
        }
        if (SW_KIND(w) == SW_EMPTY && !empty)
            empty = slot[i];
    }
    _Atomic uint64_t *home = &h->buckets[k.b1].slot[hot_home_slot(k.tag)];
    if (SW_KIND(atomic_load_explicit(home, memory_order_relaxed)) == SW_EMPTY)
        empty = home;
    if (!other && empty)
        atomic_store_explicit(empty, sw_filling(k.tag, (unsigned)h->slot, ms),
                              memory_order_relaxed);
    hot_unlock2(h, k.b1, k.b2);
    if (!other)
        TC_CRASH_POINT("mid-fill");
    return !other;
}

void tc_hot_fill(struct tc_hot *h, int shard, const tc_data *key,
                 const tc_item *item, uint64_t snap)
{
    struct hot_key k;
    if (h->slot < 0 || !hot_key_make(h, shard, key, &k))
        return;
    if (atomic_load(&h->shards[shard].floor) > snap) {
        hot_count(h, C_FILL_REJECTS, 1);
        tc_hot_fill_cancel(h, shard, key);
        return;
    }
    tc_data val = {item->value.ptr, item->value.len, item->value.type};
    tc_data tag = {item->tag.ptr, item->tag.len, item->tag.type};
    uint32_t idx = item_build(h, &k, &val, &tag, item->expire_time, snap);
    if (idx == UINT32_MAX) {
        tc_hot_fill_cancel(h, shard, key);
        return;
    }
    TC_CRASH_POINT("mid-fill");
    hot_count(h, install(h, &k, idx, snap, FILL) ? C_FILLS : C_FILL_REJECTS, 1);
}

void tc_hot_fill_cancel(struct tc_hot *h, int shard, const tc_data *key)
{
    struct hot_key k;
    if (h->slot < 0 || !hot_key_make(h, shard, key, &k))
        return;
    hot_lock2(h, k.b1, k.b2);
    drop_lease(h, &k);
    hot_unlock2(h, k.b1, k.b2);
}

/* ---- writes ------------------------------------------------------------ */

static void atomic_max(_Atomic uint64_t *p, uint64_t v)
{
    uint64_t cur = atomic_load(p);
    while (cur < v && !atomic_compare_exchange_weak(p, &cur, v))
        ;
}

static void atomic_replace(_Atomic uint64_t *p, uint64_t from, uint64_t to)
{
    atomic_compare_exchange_strong(p, &from, to);
}

void tc_hot_open_shard(struct tc_hot *h, int shard, uint64_t f)
{
    if ((unsigned)shard >= h->nshards || h->readonly)
        return;
    atomic_replace(&h->shards[shard].floor, UINT64_MAX, f);
}

void tc_hot_write_begin(struct tc_hot *h, int shard, uint64_t n)
{
    if ((unsigned)shard >= h->nshards || h->readonly)
        return;
    atomic_max(&h->shards[shard].floor, n);
}

void tc_hot_write_abort(struct tc_hot *h, int shard, uint64_t n)
{
    if ((unsigned)shard >= h->nshards || h->readonly || n == 0)
        return;
    /* We still hold the shard's write lock, so nobody else can have
     * raised the floor to n: put it back. */
    atomic_replace(&h->shards[shard].floor, n, n - 1);
}

void tc_hot_invalidate(struct tc_hot *h, int shard, const tc_data *key)
{
    struct hot_key k;
    if (h->readonly || (unsigned)shard >= h->nshards)
        return;
    if (h->slot < 0 || !hot_key_make(h, shard, key, &k)) {
        /* Without a process slot we take no bucket lock: drop the whole
         * shard instead (correct, only slower for the others). */
        tc_hot_invalidate_shard(h, shard);
        return;
    }
    uint32_t taken[2 * HOT_SLOTS];
    int n = 0;
    hot_lock2(h, k.b1, k.b2);
    _Atomic uint64_t *slot[2 * HOT_SLOTS];
    int ns = hot_key_slots(h, k.b1, k.b2, slot);
    for (int i = 0; i < ns; i++) {
        uint64_t w = atomic_load_explicit(slot[i], memory_order_relaxed);
        if (SW_TAG(w) != k.tag)
            continue;
        if (SW_KIND(w) == SW_FILLING) {
            atomic_store_explicit(slot[i], 0, memory_order_relaxed);
            continue;
        }
        uint32_t cs;
        struct hot_item *it =
            SW_KIND(w) == SW_ITEM ? hot_chunk(h, SW_CHUNK(w), &cs) : NULL;
        if (it && hot_item_is(it, cs, &k)) {
            uint32_t c = slot_take(h, slot[i]);
            if (c != UINT32_MAX)
                taken[n++] = c;
        }
    }
    hot_unlock2(h, k.b1, k.b2);
    for (int i = 0; i < n; i++)
        hot_free(h, taken[i]);
    hot_count(h, C_INVALIDATIONS, 1);
}

void tc_hot_invalidate_shard(struct tc_hot *h, int shard)
{
    if ((unsigned)shard >= h->nshards || h->readonly)
        return;
    atomic_fetch_add(&h->shards[shard].gen, 1);
    hot_count(h, C_INVALIDATIONS, 1);
}

void tc_hot_publish(struct tc_hot *h, int shard, const tc_data *key,
                    const tc_data *val, const tc_data *tag, double expire,
                    uint64_t n)
{
    struct hot_key k;
    if (h->slot < 0 || (unsigned)shard >= h->nshards ||
        !hot_key_make(h, shard, key, &k))
        return;
    if (atomic_load(&h->shards[shard].floor) != n)
        return; /* a later write began: leave it to fills */
    uint32_t idx = item_build(h, &k, val, tag, expire, n);
    if (idx == UINT32_MAX)
        return;
    if (install(h, &k, idx, n, PUBLISH))
        hot_count(h, C_PUBLISHES, 1);
}

void tc_hot_sweep_shard(struct tc_hot *h, int shard)
{
    if (h->slot < 0 || (unsigned)shard >= h->nshards)
        return;
    uint32_t gen = atomic_load(&h->shards[shard].gen);
    for (uint64_t bi = 0; bi <= h->mask; bi++) {
        struct hot_bucket *b = &h->buckets[bi];
        uint32_t taken[HOT_SLOTS];
        int n = 0;
        bool locked = false;
        for (int i = 0; i < HOT_SLOTS; i++) {
            uint64_t w =
                atomic_load_explicit(&b->slot[i], memory_order_relaxed);
            if (SW_KIND(w) != SW_ITEM)
                continue;
            uint32_t cs;
            struct hot_item *it = hot_chunk(h, SW_CHUNK(w), &cs);
            if (!it || it->shard != (unsigned)shard || it->gen == gen)
                continue;
            if (!locked) {
                hot_bucket_lock(h, b);
                locked = true;
            }
            if (atomic_load(&b->slot[i]) == w) {
                uint32_t c = slot_take(h, &b->slot[i]);
                if (c != UINT32_MAX)
                    taken[n++] = c;
            }
        }
        if (locked)
            hot_bucket_unlock(b);
        for (int i = 0; i < n; i++)
            hot_free(h, taken[i]);
    }
}

/* ---- access data for LRU/LFU ------------------------------------------- */

void tc_hot_access_fold(struct tc_hot *h, int shard,
                        void (*fn)(void *arg, const tc_data *key,
                                   uint32_t atime, uint64_t count),
                        void *arg)
{
    if (h->slot < 0 || (unsigned)shard >= h->nshards)
        return;
    unsigned char *kb = malloc((size_t)h->page_size);
    if (!kb)
        return;
    uint32_t gen = atomic_load(&h->shards[shard].gen);
    for (uint64_t bi = 0; bi <= h->mask; bi++) {
        struct hot_bucket *b = &h->buckets[bi];
        for (int i = 0; i < HOT_SLOTS; i++) {
            uint64_t w =
                atomic_load_explicit(&b->slot[i], memory_order_relaxed);
            if (SW_KIND(w) != SW_ITEM)
                continue;
            uint32_t cs;
            struct hot_item *it = hot_chunk(h, SW_CHUNK(w), &cs);
            if (!it || it->shard != (unsigned)shard || it->gen != gen ||
                !(atomic_load_explicit(&it->acc, memory_order_relaxed) &
                  ACC_UNFOLDED))
                continue;
            /* Copy the key under the bucket lock (the item cannot be
             * replaced meanwhile), call out without it. */
            hot_bucket_lock(h, b);
            bool ok = atomic_load(&b->slot[i]) == w &&
                      it->key_len <= cs - HOT_ITEM_HDR;
            tc_data key = {kb, ok ? it->key_len : 0, it->key_type};
            uint8_t a = 0;
            uint32_t at = 0;
            if (ok) {
                memcpy(kb, it->data, it->key_len);
                a = atomic_exchange(
                    &it->acc, (uint8_t)(atomic_load(&it->acc) & ACC_LEVEL));
                at = atomic_load(&it->atime);
            }
            hot_bucket_unlock(b);
            if (ok && (a & ACC_UNFOLDED))
                fn(arg, &key, at, lfu_estimate(a & ACC_LEVEL));
        }
    }
    free(kb);
}

/* ---- foreign writers ----------------------------------------------------- */

uint64_t tc_hot_seen_set(struct tc_hot *h, int shard, uint64_t f)
{
    if ((unsigned)shard >= h->nshards || h->readonly)
        return 0;
    /* We hold the shard's write lock: @f is the truth, even if a writer
     * that died before its COMMIT left a larger value. */
    return atomic_exchange(&h->shards[shard].seen_seq, f);
}

void tc_hot_seen_restore(struct tc_hot *h, int shard, uint64_t f, uint64_t prev)
{
    if ((unsigned)shard >= h->nshards || h->readonly)
        return;
    atomic_replace(&h->shards[shard].seen_seq, f, prev);
}

bool tc_hot_foreign_check(struct tc_hot *h, int shard, uint64_t s)
{
    if ((unsigned)shard >= h->nshards || h->readonly)
        return false;
    struct hot_shard *sh = &h->shards[shard];
    uint64_t seen = atomic_load(&sh->seen_seq);
    if (s <= seen)
        return false;
    /* Fills from snapshots before @s are refused, and every item of the
     * shard becomes a miss. */
    atomic_max(&sh->floor, s);
    atomic_fetch_add(&sh->gen, 1);
    atomic_max(&sh->seen_seq, s);
    hot_count(h, C_INVALIDATIONS, 1);
    return true;
}

bool tc_hot_check_due(struct tc_hot *h, int shard, uint64_t interval_ms)
{
    if ((unsigned)shard >= h->nshards || h->readonly)
        return false;
    _Atomic uint64_t *t = &h->shards[shard].checked_ms;
    uint64_t now = hot_now_ms();
    uint64_t last = atomic_load_explicit(t, memory_order_relaxed);
    if (now - last < interval_ms)
        return false;
    return atomic_compare_exchange_strong(t, &last, now);
}

bool tc_hot_check_due_fold(struct tc_hot *h, int shard)
{
    if ((unsigned)shard >= h->nshards || h->slot < 0)
        return false;
    _Atomic uint64_t *t = &h->shards[shard].folded_ms;
    uint64_t now = hot_now_ms();
    uint64_t last = atomic_load_explicit(t, memory_order_relaxed);
    if (now - last < 1000)
        return false;
    return atomic_compare_exchange_strong(t, &last, now);
}

/* ---- statistics and checking -------------------------------------------- */

uint64_t tc_hot_floor(const struct tc_hot *h, int shard)
{
    if ((unsigned)shard >= h->nshards)
        return 0;
    return atomic_load(&h->shards[shard].floor);
}

void tc_hot_stats_sum(struct tc_hot *h, tc_hot_stats *out)
{
    uint64_t sum[C_COUNT_] = {0};
    uint32_t live = 0;
    for (unsigned s = 0; s < HOT_PROCS; s++) {
        struct hot_proc *p = &h->procs[s];
        if (atomic_load(&p->state) == PROC_ACTIVE &&
            (!h->readonly ? hot_proc_alive(h, s) : true))
            live++;
        for (int c = 0; c < C_COUNT_; c++)
            sum[c] += atomic_load_explicit(&p->ctr[c], memory_order_relaxed);
    }
    for (int c = 0; c < C_COUNT_; c++)
        sum[c] +=
            atomic_load_explicit(&h->local.ctr[c], memory_order_relaxed) +
            atomic_load_explicit(&h->hdr->retired_ctr[c], memory_order_relaxed);
    out->attached = 1;
    out->size = h->size;
    out->free_bytes = hot_free_bytes(h, &out->items);
    out->processes = live;
    out->hits = sum[C_HITS];
    out->misses = sum[C_MISSES];
    out->fills = sum[C_FILLS];
    out->fill_rejects = sum[C_FILL_REJECTS];
    out->publishes = sum[C_PUBLISHES];
    out->invalidations = sum[C_INVALIDATIONS];
    out->retries = sum[C_RETRIES];
    out->evictions = sum[C_EVICTIONS];
    out->lock_repairs = sum[C_LOCK_REPAIRS];
    out->recovered = sum[C_RECOVERED];
}

struct chunk_check {
    struct tc_hot *h;
    void (*bad)(void *, const char *);
    void *arg;
    uint64_t problems;
};

static void chunk_visit(void *arg, uint32_t idx, struct hot_item *it,
                        const struct hot_class *cl)
{
    struct chunk_check *cc = arg;
    char msg[128] = "";
    uint32_t st = atomic_load(&it->state);
    if (CS_KIND(st) == CS_PRIVATE && !hot_proc_alive(cc->h, CS_OWNER(st)))
        snprintf(msg, sizeof msg, "chunk %#x: private to dead slot %u (leaked)",
                 idx, CS_OWNER(st));
    else if (CS_KIND(st) == CS_PUBLISHED &&
             !hot_chunk_referenced(cc->h, idx, it, cl->chunk_size))
        snprintf(msg, sizeof msg,
                 "chunk %#x: published but unreachable (leaked)", idx);
    if (!msg[0])
        return;
    if (cc->bad)
        cc->bad(cc->arg, msg);
    cc->problems++;
}

uint64_t tc_hot_check_walk(struct tc_hot *h, void (*bad)(void *, const char *),
                           void (*each)(void *, const struct tc_hot_entry *),
                           void *arg)
{
    uint64_t problems = 0;
    char msg[256];
#define BAD(...)                                \
    do {                                        \
        snprintf(msg, sizeof msg, __VA_ARGS__); \
        if (bad)                                \
            bad(arg, msg);                      \
        problems++;                             \
    } while (0)

    if (!(h->hdr->pre.magic == HOT_MAGIC && h->hdr->pre.format == HOT_FORMAT))
        BAD("segment preamble: bad magic or format");
    unsigned char *scratch = malloc((size_t)h->page_size);
    if (!scratch)
        return problems + 1;
    for (uint64_t bi = 0; bi <= h->mask; bi++) {
        struct hot_bucket *b = &h->buckets[bi];
        uint64_t bw = atomic_load(&b->word);
        if (BW_LOCKED(bw) && !hot_proc_alive(h, BW_OWNER(bw) - 1))
            BAD("bucket %llu: locked by dead process slot %u",
                (unsigned long long)bi, BW_OWNER(bw) - 1);
        bool lock = !h->readonly && h->slot >= 0;
        for (int i = 0; i < HOT_SLOTS; i++) {
            if (lock)
                hot_bucket_lock(h, b);
            uint64_t w = atomic_load(&b->slot[i]);
            struct tc_hot_entry e;
            bool have = false;
            if (SW_KIND(w) == SW_FILLING) {
                if (SW_OWNER(w) >= HOT_PROCS)
                    BAD("bucket %llu slot %d: lease owner out of range",
                        (unsigned long long)bi, i);
            } else if (SW_KIND(w) == SW_ITEM) {
                uint32_t cs;
                struct hot_item *it = hot_chunk(h, SW_CHUNK(w), &cs);
                if (!it) {
                    BAD("bucket %llu slot %d: chunk index %#x out of bounds",
                        (unsigned long long)bi, i, SW_CHUNK(w));
                } else {
                    uint32_t st = atomic_load(&it->state);
                    uint64_t room = cs - HOT_ITEM_HDR;
                    struct hot_key k;
                    if (CS_KIND(st) == CS_FREE)
                        BAD("bucket %llu slot %d: points at a free chunk",
                            (unsigned long long)bi, i);
                    else if (CS_KIND(st) == CS_PRIVATE &&
                             !hot_proc_alive(h, CS_OWNER(st)))
                        BAD("chunk %#x: private to dead slot %u", SW_CHUNK(w),
                            CS_OWNER(st));
                    if ((uint64_t)it->key_len + it->tag_len + it->val_len >
                            room ||
                        it->shard >= h->nshards) {
                        BAD("chunk %#x: lengths or shard out of bounds",
                            SW_CHUNK(w));
                    } else {
                        hot_key_of_item(h, it, &k);
                        if ((k.b1 != bi && k.b2 != bi) || k.tag != SW_TAG(w))
                            BAD("chunk %#x: key hashes to another bucket",
                                SW_CHUNK(w));
                        else if (it->gen ==
                                     atomic_load(&h->shards[it->shard].gen) &&
                                 each) {
                            size_t tot =
                                (size_t)it->key_len + it->tag_len + it->val_len;
                            memcpy(scratch, it->data, tot);
                            e.shard = it->shard;
                            e.key =
                                (tc_data){scratch, it->key_len, it->key_type};
                            e.tag = (tc_data){scratch + it->key_len,
                                              it->tag_len, it->tag_type};
                            e.value =
                                (tc_data){scratch + it->key_len + it->tag_len,
                                          it->val_len, it->val_type};
                            e.expire = it->expire;
                            e.ver = it->ver;
                            have = true;
                        }
                    }
                }
            }
            if (lock)
                hot_bucket_unlock(b);
            /* Compared outside the lock: @each reads SQLite. */
            if (have)
                each(arg, &e);
        }
    }
    /* Page lists, then chunks: PUBLISHED must be reachable, PRIVATE
     * owners alive. */
    for (uint32_t c = 0; c < h->nclasses; c++) {
        uint32_t np = atomic_load(&h->classes[c].npages);
        if (np > h->npages) {
            BAD("class %u: page count %u out of bounds", c, np);
            continue;
        }
        for (uint32_t i = 0; i < np; i++) {
            uint32_t pg = h->pagelist[(uint64_t)c * h->npages + i];
            if (pg >= h->npages || atomic_load(&h->pagetab[pg].cls) != c + 1)
                BAD("class %u: page list entry %u is wrong", c, i);
        }
    }
    struct chunk_check cc = {h, bad, arg, 0};
    hot_each_chunk(h, chunk_visit, &cc);
    problems += cc.problems;
    free(scratch);
#undef BAD
    return problems;
}
