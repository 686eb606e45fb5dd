/*
 * index.c - keys, hashing, bucket locks and chunk addressing
 * (docs/ARCHITECTURE.md, "Layout").
 *
 * A bucket word is a seqlock: readers compare it before and after; writers
 * take bit 0 by CAS with their slot recorded beside it, make single-word
 * slot stores, and release by bumping the version. A waiter that spins for
 * more than about a millisecond probes the owner's liveness and, if it is
 * dead, releases the lock itself (every critical section leaves each slot
 * word consistent, so there is nothing else to repair).
 */
#include <math.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "../core/internal.h"
#include "layout.h"


void hot_key_of_item(struct tc_hot *h, const struct hot_item *it,
                     struct hot_key *k)
{
    k->shard = it->shard;
    k->type = it->key_type;
    k->p = it->data;
    k->len = it->key_len;
    hot_key_finish(h, k);
}

bool hot_chunk_referenced(struct tc_hot *h, uint32_t idx,
                          const struct hot_item *it, uint32_t csize)
{
    if (it->shard >= h->nshards || it->key_len > csize - HOT_ITEM_HDR)
        return false;
    struct hot_key k;
    hot_key_of_item(h, it, &k);
    _Atomic uint64_t *slot[2 * HOT_SLOTS];
    int n = hot_key_slots(h, k.b1, k.b2, slot);
    for (int i = 0; i < n; i++) {
        uint64_t w = atomic_load(slot[i]);
        if (SW_KIND(w) == SW_ITEM && SW_CHUNK(w) == idx)
            return true;
    }
    return false;
}

bool hot_item_is(const struct hot_item *it, uint32_t csize,
                 const struct hot_key *k)
{
    return it->key_len == k->len && it->key_type == k->type &&
           it->shard == (unsigned)k->shard && k->len <= csize - HOT_ITEM_HDR &&
           memcmp(it->data, k->p, k->len) == 0;
}

static void sleep_briefly(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

bool hot_wait_owner(struct tc_hot *h, struct hot_wait *wt, unsigned owner)
{
    if (wt->spins++ < 256) {
        hot_cpu_relax();
        return false;
    }
    if (!wt->started)
        wt->started = hot_now_ms();
    if (hot_now_ms() - wt->started < 2) {
        sched_yield();
        return false;
    }
    /* Held for milliseconds: a critical section is a few stores, so the
     * owner is descheduled or dead. Probe it. */
    if (owner && !hot_proc_alive(h, owner - 1))
        return true;
    sleep_briefly(50000);
    wt->started = hot_now_ms() - 1; /* probe again in about a millisecond */
    return false;
}

void hot_bucket_lock(struct tc_hot *h, struct hot_bucket *b)
{
    uint64_t mine = (uint64_t)(h->slot + 1) << 1 | 1u;
    struct hot_wait wt = {0, 0};
    for (;;) {
        uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
        if (!BW_LOCKED(w)) {
            if (atomic_compare_exchange_weak_explicit(
                    &b->word, &w, (w & ~UINT64_C(0xffff)) | mine,
                    memory_order_acquire, memory_order_relaxed)) {
                TC_CRASH_POINT("in-bucket-lock");
                return;
            }
            continue;
        }
        if (hot_wait_owner(h, &wt, BW_OWNER(w))) {
            uint64_t un = (BW_VERSION(w) + 1) << 16;
            if (atomic_compare_exchange_strong(&b->word, &w, un))
                hot_count(h, C_LOCK_REPAIRS, 1);
        }
    }
}

void hot_bucket_unlock(struct hot_bucket *b)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    atomic_store_explicit(&b->word, (BW_VERSION(w) + 1) << 16,
                          memory_order_release);
}

void hot_lock2(struct tc_hot *h, uint64_t a, uint64_t b)
{
    if (a > b) {
        uint64_t t = a;
        a = b;
        b = t;
    }
    hot_bucket_lock(h, &h->buckets[a]);
    if (b != a)
        hot_bucket_lock(h, &h->buckets[b]);
}

void hot_unlock2(struct tc_hot *h, uint64_t a, uint64_t b)
{
    hot_bucket_unlock(&h->buckets[a]);
    if (b != a)
        hot_bucket_unlock(&h->buckets[b]);
}
