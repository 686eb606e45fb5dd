/*
 * read.h - the hot tier's hit path, as inline code (docs/ARCHITECTURE.md,
 * "Read (hit) path"). Private to shm/ and core/hotpath.c, which compiles
 * it into tc_get_buf and tc_get: a hit is then one function, with no call
 * but the value copy. At a hit's few dozen nanoseconds, the calls,
 * argument passing and register saves of a layered path cost as much as
 * the lookup itself.
 *
 * The protocol: a bucket word is a seqlock (shm/index.c); a reader loads
 * it, finds the key's slot, validates and copies the item, and counts the
 * result only if the bucket word is unchanged afterwards. Item bytes may
 * be torn by a writer reusing the chunk: every length is checked against
 * the chunk before it is used.
 */
#ifndef TC_SHM_READ_H
#define TC_SHM_READ_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "layout.h"

#define READ_ATTEMPTS 4
#define READ_SPINS    128

static inline double hot_coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The read's clock, called only when an item needs the time (out of
 * line: the hit path then has no call to keep registers across). */
static __attribute__((noinline, unused)) double
hot_read_now_by(tc_clock_fn clock, void *arg)
{
    return clock ? clock(arg) : hot_coarse_now();
}

static inline double hot_read_now(const struct tc_hot_read *rd)
{
    return hot_read_now_by(rd->clock, rd->clock_arg);
}

/* Where a read copies to: a caller buffer, or fresh allocations. */
struct hot_read_out {
    void *buf;
    size_t cap;
    size_t len;
    int type;
    int shard; /* the shard of the item found */
    double expire;
    tc_item *item; /* allocating mode when non-NULL */
};

enum { HR_HIT, HR_MISS, HR_RETRY, HR_COLD };

/* A key as a read looks for it. Unlike struct hot_key it holds no array,
 * so the compiler keeps it in registers. */
struct hot_probe {
    const unsigned char *p;
    uint32_t len;
    int type;
    int shard; /* -1: implied by the key (hot.h, struct tc_hot_read) */
    unsigned tag;
};

/* The reading process's record of an access, written into the item only
 * when it changes: LRU once per second, LFU a logarithmic number of
 * times. Folded into SQLite by the next cull (tc_hot_access_fold). */
TC_HIDDEN_SHM void hot_record_access(struct hot_item *it, int access,
                                     const struct tc_hot_read *rd);
/* Hand a validated copy of @len bytes to @v: numbers go into their own
 * field (the copy is freed), other types keep the NUL-terminated copy. */
TC_HIDDEN_SHM void hot_give_value(tc_value *v, int type, char *copy,
                                  uint32_t len);

/* Key bytes equal (@a in the segment, @b the caller's)? Inline for the
 * short keys of a hit, where a call to memcmp costs more than the
 * compare. */
static inline __attribute__((always_inline)) bool
hot_key_eq(const unsigned char *a, const unsigned char *b, uint32_t n)
{
#ifdef HOT_TSAN
    for (uint32_t i = 0; i < n; i++)
        if (__atomic_load_n(a + i, __ATOMIC_RELAXED) != b[i])
            return false;
    return true;
#else
    if (n > 64)
        return memcmp(a, b, n) == 0;
    if (n >= 8) {
        for (uint32_t i = 0; i + 8 < n; i += 8)
            if (hot_load64(a + i) != hot_load64(b + i))
                return false;
        return hot_load64(a + n - 8) == hot_load64(b + n - 8);
    }
    if (n >= 4)
        return hot_load32(a) == hot_load32(b) &&
               hot_load32(a + n - 4) == hot_load32(b + n - 4);
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
#endif
}

/* Copy @n bytes of an item out of the segment. (An inline 16-byte loop
 * instead of memcpy measured slower on the hit path.) */
static inline __attribute__((always_inline)) void
hot_copy_out(void *dst, const unsigned char *src, size_t n)
{
#ifdef HOT_TSAN
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = __atomic_load_n(src + i, __ATOMIC_RELAXED);
#else
    memcpy(dst, src, n);
#endif
}

/* Which slots of @b hold an item with @tag: bit 2(i + 1) for slot i. One
 * pass over the bucket's line without a branch per slot, whose outcome a
 * CPU could not predict (the slot of a key is random). */
static inline __attribute__((always_inline)) unsigned
hot_slot_matches(const struct hot_bucket *b, unsigned tag)
{
    uint32_t want = (uint32_t)tag << 16 | SW_ITEM;
#if defined(__SSE2__) && !defined(HOT_TSAN)
    /* Four 16-byte loads: the bucket word and the 7 slot words. Each
     * 8-byte half of an aligned 16-byte load is read whole; a bucket
     * torn between slots is caught by the bucket word check. */
    const __m128i *v = (const __m128i *)(const void *)b;
    const __m128i mask =
        _mm_set_epi32(0, (int)0xffff0003u, 0, (int)0xffff0003u);
    const __m128i w = _mm_set_epi32(0, (int)want, 0, (int)want);
    unsigned m = 0;
    for (int j = 0; j < 4; j++) {
        __m128i x = _mm_and_si128(_mm_load_si128(v + j), mask);
        m |= (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, w)))
             << (4 * j);
    }
    return m & 0x5554u; /* low halves of the slot words */
#else
    unsigned m = 0;
    for (int i = 0; i < HOT_SLOTS; i++) {
        uint64_t sw = atomic_load_explicit(&b->slot[i], memory_order_relaxed);
        m |= (unsigned)(((uint32_t)sw & 0xffff0003u) == want) << (2 * (i + 1));
    }
    return m;
#endif
}


/* The bucket word again, after a read of the bucket's items: those reads
 * may not move below this load. (TSan does not model fences; every access
 * of a read is atomic there, so an acquire load serves its build.) */
static inline __attribute__((always_inline)) uint64_t
hot_bucket_word_again(struct hot_bucket *b)
{
#ifdef HOT_TSAN
    return atomic_load_explicit(&b->word, memory_order_acquire);
#else
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&b->word, memory_order_relaxed);
#endif
}

/* Whether slot word @sw is an ITEM with @tag. */
static inline __attribute__((always_inline)) bool hot_slot_is(uint64_t sw,
                                                              unsigned tag)
{
    return ((uint32_t)sw & 0xffff0003u) == ((uint32_t)tag << 16 | SW_ITEM);
}

/* The item ITEM slot word @sw points at, or NULL unless its header lies
 * within the pages. *room = the bytes after the header up to the end of
 * the pages, or with @in_page up to the end of its page (items never
 * cross pages): the bound for a read that allocates by a length it read.
 * Bounds only: whether the index starts a chunk is the writers' concern,
 * and a reader counts nothing it read unless the bucket word held still.
 * The key and value follow the header, often in the next lines: they are
 * fetched alongside it, not after its lengths arrive. */
static inline __attribute__((always_inline)) struct hot_item *
hot_item_at(const struct tc_hot *h, uint64_t sw, bool in_page, uint64_t *room)
{
    uint64_t off = (uint64_t)SW_CHUNK(sw) * HOT_CHUNK_UNIT;
    if (off + HOT_ITEM_HDR > h->pages_len)
        return NULL;
    if (in_page) {
        uint64_t at = off & (h->page_size - 1);
        if (at + HOT_ITEM_HDR > h->page_size)
            return NULL;
        *room = h->page_size - at - HOT_ITEM_HDR;
    } else {
        *room = h->pages_len - off - HOT_ITEM_HDR;
    }
    struct hot_item *it = (struct hot_item *)(h->pages + off);
    __builtin_prefetch((const char *)it + 64);
    __builtin_prefetch((const char *)it + 128);
    return it;
}

/* Whether item @it holds key @k, with its lengths within @room; its key,
 * tag and value lengths and its shard come back (each loaded once). A
 * numeric key names its shard (1 and 1.0 are one key within a shard, not
 * across); TEXT and BYTES keys imply theirs. */
static inline __attribute__((always_inline)) bool
hot_item_holds(const struct tc_hot *h, const struct hot_item *it, uint64_t room,
               const struct hot_probe *k, uint32_t *klen, uint32_t *tlen,
               uint32_t *vlen, unsigned *shard)
{
    *klen = ITEM_LOAD(it, key_len);
    *tlen = ITEM_LOAD(it, tag_len);
    *vlen = ITEM_LOAD(it, val_len);
    *shard = ITEM_LOAD(it, shard);
    return *klen == k->len && ITEM_LOAD(it, key_type) == k->type &&
           *shard < h->nshards &&
           (k->shard < 0 || *shard == (unsigned)k->shard) &&
           (uint64_t)*klen + *tlen + *vlen <= room &&
           hot_key_eq(it->data, k->p, *klen);
}

/* Search one bucket under its seqlock. The item's bytes are read as they
 * are, possibly torn by a writer reusing the chunk: every length is
 * checked against the chunk before use and nothing counts until the
 * bucket word is found unchanged afterwards. */
static inline __attribute__((always_inline)) int
hot_read_bucket(struct tc_hot *h, struct hot_bucket *b,
                const struct hot_probe *k, const struct tc_hot_read *rd,
                struct hot_read_out *o)
{
    uint64_t w1 = atomic_load_explicit(&b->word, memory_order_acquire);
    for (int s = 0; BW_LOCKED(w1); s++) {
        if (s >= READ_SPINS)
            return HR_RETRY;
        hot_cpu_relax();
        w1 = atomic_load_explicit(&b->word, memory_order_acquire);
    }
    for (unsigned m = hot_slot_matches(b, k->tag); m; m &= m - 1) {
        int i = (__builtin_ctz(m) >> 1) - 1;
        uint64_t sw = atomic_load_explicit(&b->slot[i], memory_order_relaxed);
        uint64_t room;
        /* Read again after the scan: it may have changed since. */
        struct hot_item *it =
            hot_slot_is(sw, k->tag) ? hot_item_at(h, sw, true, &room) : NULL;
        uint32_t klen, tlen, vlen;
        unsigned shard;
        if (!it || !hot_item_holds(h, it, room, k, &klen, &tlen, &vlen, &shard))
            continue;
        int access = rd->modes ? atomic_load_explicit(&rd->modes[shard],
                                                      memory_order_relaxed)
                               : TC_HOT_ACCESS_NONE;
        if (access < 0)
            return HR_COLD; /* that shard's gets all go to SQLite */
        uint32_t state = atomic_load_explicit(&it->state, memory_order_relaxed);
        int vtype = ITEM_LOAD(it, val_type), ttype = ITEM_LOAD(it, tag_type);
        double expire;
        __atomic_load(&it->expire, &expire, __ATOMIC_RELAXED);
        const unsigned char *tag = it->data + klen;
        const unsigned char *val = tag + tlen;
        bool live =
            ITEM_LOAD(it, gen) ==
            atomic_load_explicit(&h->shards[shard].gen, memory_order_relaxed);
        if (live && expire != INFINITY)
            live = expire > hot_read_now(rd);
        void *vcopy = NULL, *tcopy = NULL;
        if (live) {
            if (!o->item) {
                if (vlen <= o->cap && vlen)
                    hot_copy_out(o->buf, val, vlen);
            } else {
                vcopy = malloc((size_t)vlen + 1);
                tcopy = ttype != TC_NONE ? malloc((size_t)tlen + 1) : NULL;
                if (!vcopy || (ttype != TC_NONE && !tcopy)) {
                    free(vcopy);
                    free(tcopy);
                    return HR_MISS;
                }
                hot_copy_out(vcopy, val, vlen);
                if (tcopy)
                    hot_copy_out(tcopy, tag, tlen);
            }
        }
        if (hot_bucket_word_again(b) != w1 || CS_KIND(state) == CS_FREE) {
            free(vcopy);
            free(tcopy);
            return HR_RETRY;
        }
        if (!live)
            return HR_MISS;
        o->len = vlen;
        o->type = vtype;
        o->expire = expire;
        o->shard = (int)shard;
        /* CLOCK: the only shared write, and only when it changes. */
        if (!h->readonly &&
            !atomic_load_explicit(&it->ref, memory_order_relaxed))
            atomic_store_explicit(&it->ref, 1, memory_order_relaxed);
        if (access && !h->readonly)
            hot_record_access(it, access, rd);
        if (o->item) {
            tc_item *out = o->item;
            tc_value_clear(&out->value);
            tc_value_clear(&out->tag);
            out->expire_time = expire;
            hot_give_value(&out->value, vtype, vcopy, vlen);
            if (tcopy)
                hot_give_value(&out->tag, ttype, tcopy, tlen);
        }
        return HR_HIT;
    }
    return HR_MISS;
}

/* Inline into each caller, so the buffer and the allocating reads each
 * compile to one function without the other's branches. */
static inline __attribute__((always_inline)) int
hot_read_key(struct tc_hot *h, const tc_data *key, const struct tc_hot_read *rd,
             struct hot_read_out *o)
{
    unsigned char num[8];
    struct hot_probe k = {key->ptr, 0, key->type, rd->shard, 0};
    if (rd->shard >= (int)h->nshards || key->len > UINT32_MAX)
        return HR_MISS;
    k.len = (uint32_t)key->len;
    if (k.type == TC_INT || k.type == TC_REAL) {
        if (k.len != 8)
            return HR_MISS;
        if (k.type == TC_REAL && hot_real_integral(key->ptr, num)) {
            k.type = TC_INT;
            k.p = num;
        }
    }
    uint64_t hash = hot_hash(h, k.type, k.p, k.len);
    k.tag = (unsigned)(hash >> 48);
    uint64_t b1 = hash & h->mask;
    for (int a = 0; a < READ_ATTEMPTS; a++) {
        int r = hot_read_bucket(h, &h->buckets[b1], &k, rd, o);
        if (r == HR_MISS) {
            uint64_t b2 = hot_bucket2(h, b1, k.tag);
            if (b2 != b1)
                r = hot_read_bucket(h, &h->buckets[b2], &k, rd, o);
        }
        if (r == HR_COLD)
            return HR_MISS; /* not the hot tier's miss: not counted */
        if (r != HR_RETRY) {
            if (!rd->quiet)
                hot_tally(h, r == HR_HIT ? C_HITS : C_MISSES);
            return r;
        }
        hot_count(h, C_RETRIES, 1);
    }
    if (!rd->quiet)
        hot_tally(h, C_MISSES);
    return HR_MISS;
}

/* The general read into a buffer: every case (both buckets, retries, tag
 * collisions, REAL keys, statistics shards). shm/hot.c compiles it into
 * tc_hot_get_buf, which is also where hot_read_buf's fast path goes for
 * anything but the plain case. */
static inline __attribute__((always_inline)) int
hot_read_buf_general(struct tc_hot *h, const tc_data *key,
                     const struct tc_hot_read *rd, void *buf, size_t cap,
                     size_t *len, int *type, double *expire, int *shard)
{
    struct hot_read_out o = {buf, cap, 0, 0, 0, 0, NULL};
    if (atomic_load_explicit(&h->hdr->pre.retired, memory_order_relaxed))
        return TC_HOT_RETIRED;
    if (hot_read_key(h, key, rd, &o) != HR_HIT)
        return TC_HOT_MISS;
    *len = o.len;
    if (type)
        *type = o.type;
    if (expire)
        *expire = o.expire;
    if (shard)
        *shard = o.shard;
    return o.len > cap ? TC_HOT_TOOSMALL : TC_HOT_HIT;
}

static inline __attribute__((always_inline)) int
hot_read_item_general(struct tc_hot *h, const tc_data *key,
                      const struct tc_hot_read *rd, tc_item *out, int *shard)
{
    struct hot_read_out o = {NULL, 0, 0, 0, 0, 0, out};
    if (atomic_load_explicit(&h->hdr->pre.retired, memory_order_relaxed))
        return TC_HOT_RETIRED;
    if (hot_read_key(h, key, rd, &o) != HR_HIT)
        return TC_HOT_MISS;
    if (shard)
        *shard = o.shard;
    return TC_HOT_HIT;
}

/*
 * hot_read_fast - the hit path of tc_get_buf (@item NULL: the value goes
 * to @buf) and of tc_get (@item: fresh copies), straight-line: one bucket,
 * its one matching slot, one pass. Anything else (a locked or changed
 * bucket, no match in the first bucket, a tag collision, a REAL key, a
 * shard whose gets go to SQLite, a value that does not fit, a tag to
 * copy) is left to the general read (tc_hot_get_buf, tc_hot_get), which
 * starts over and counts for itself. Straight-line code keeps little live
 * across the value copy, so a hit is short enough for the CPU to overlap the
 * cache misses of one get with those of the next.
 */
static inline __attribute__((always_inline)) int
hot_read_fast(struct tc_hot *h, const tc_data *key, struct tc_hot_read rd,
              void *buf, size_t cap, tc_item *item, size_t *len, int *type,
              double *expire, int *shard)
{
    if (atomic_load_explicit(&h->hdr->pre.retired, memory_order_relaxed))
        return TC_HOT_RETIRED;
    int ktype = key->type;
    if ((ktype != TC_TEXT && ktype != TC_BYTES && ktype != TC_INT) ||
        key->len > UINT32_MAX || rd.shard >= (int)h->nshards)
        goto general;
    {
        uint32_t klen = (uint32_t)key->len;
        const unsigned char *kp = key->ptr;
        uint64_t hash = hot_hash(h, ktype, kp, klen);
        unsigned tag = (unsigned)(hash >> 48);
        struct hot_bucket *b = &h->buckets[hash & h->mask];
        uint64_t w1 = atomic_load_explicit(&b->word, memory_order_acquire);
        if (BW_LOCKED(w1))
            goto general;
        /* The key's home slot first; else the first slot with its tag. */
        uint64_t sw = atomic_load_explicit(&b->slot[hot_home_slot(tag)],
                                           memory_order_relaxed);
        if (!hot_slot_is(sw, tag)) {
            unsigned m = hot_slot_matches(b, tag);
            if (!m)
                goto general;
            /* Read again: if it changed since the scan, what it points at
             * is bounded to one page and fails the bucket word check. */
            sw = atomic_load_explicit(&b->slot[(__builtin_ctz(m) >> 1) - 1],
                                      memory_order_relaxed);
        }
        struct hot_probe k = {kp, klen, ktype, rd.shard, tag};
        uint64_t room;
        /* Into a buffer, @cap bounds the copy; a copy to allocate is
         * bounded by the item's page. */
        struct hot_item *it = hot_item_at(h, sw, item != NULL, &room);
        uint32_t ilen, tlen, vlen;
        unsigned sh;
        if (!it || !hot_item_holds(h, it, room, &k, &ilen, &tlen, &vlen, &sh) ||
            (item ? ITEM_LOAD(it, tag_type) != TC_NONE : vlen > cap))
            goto general;
        const unsigned char *val = it->data + ilen + tlen;
        int access = atomic_load_explicit(&rd.modes[sh], memory_order_relaxed);
        double exp;
        __atomic_load(&it->expire, &exp, __ATOMIC_RELAXED);
        if (access < 0 ||
            ITEM_LOAD(it, gen) !=
                atomic_load_explicit(&h->shards[sh].gen, memory_order_relaxed))
            goto general;
        if (exp != INFINITY && !(exp > hot_read_now_by(rd.clock, rd.clock_arg)))
            goto general;
        char *copy = NULL;
        if (item) {
            if (!(copy = malloc((size_t)vlen + 1)))
                goto general;
            hot_copy_out(copy, val, vlen);
        } else if (vlen) {
            hot_copy_out(buf, val, vlen);
        }
        /* Read after the copy (still before the bucket word's second
         * load), so they are not live across it; the expiry again, for
         * the same reason (an unchanged bucket word vouches for both). */
        uint32_t state = atomic_load_explicit(&it->state, memory_order_relaxed);
        int vtype = ITEM_LOAD(it, val_type);
        __atomic_load(&it->expire, &exp, __ATOMIC_RELAXED);
        if (hot_bucket_word_again(b) != w1 || CS_KIND(state) == CS_FREE) {
            free(copy);
            goto general;
        }
        if (!h->readonly) {
            if (!atomic_load_explicit(&it->ref, memory_order_relaxed))
                atomic_store_explicit(&it->ref, 1, memory_order_relaxed);
            if (access) {
                struct tc_hot_read r = rd; /* only here in memory */
                hot_record_access(it, access, &r);
            }
        }
        hot_tally(h, C_HITS); /* no quiet probe comes this way */
        if (item) {
            tc_value_clear(&item->value);
            tc_value_clear(&item->tag);
            item->expire_time = exp;
            hot_give_value(&item->value, vtype, copy, vlen);
        } else {
            *len = vlen;
            if (type)
                *type = vtype;
            if (expire)
                *expire = exp;
        }
        if (shard)
            *shard = (int)sh;
        return TC_HOT_HIT;
    }
general:;
    struct tc_hot_read r = rd; /* only here in memory */
    return item
               ? tc_hot_get(h, key, &r, item, shard)
               : tc_hot_get_buf(h, key, &r, buf, cap, len, type, expire, shard);
}

#endif /* TC_SHM_READ_H */
