/*
 * layout.h - the segment's bytes: preamble, header, per-shard blocks,
 * process slots, size classes, page table, buckets, pages
 * (docs/ARCHITECTURE.md, "Layout"). Private to shm/.
 *
 * Everything in the segment is addressed by offsets from the base; every
 * offset, index and length read back is bounds-checked before use, since
 * another process (or a crash) may have left anything there.
 */
#ifndef TC_SHM_LAYOUT_H
#define TC_SHM_LAYOUT_H

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <xxhash.h>

#include "hot.h"

/* ThreadSanitizer builds: a seqlock reader races with writers by design
 * (what it read counts only if the bucket word held still), so there the
 * reads and writes of item bytes are relaxed atomics, byte by byte, for
 * TSan to see them as intended. */
#if defined(__SANITIZE_THREAD__)
#define HOT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HOT_TSAN 1
#endif
#endif

#define HOT_MAGIC      UINT64_C(0x31474553544f4854) /* "THOTSEG1" */
#define HOT_FORMAT     2u /* 2: the shard left out of the hash */
#define HOT_LINE       64
#define HOT_SLOTS      7    /* slot words per bucket */
#define HOT_PROCS      1024 /* process slots (liveness byte = slot index) */
#define HOT_MAX_CLASS  48
#define HOT_MAX_PAGES  65536
#define HOT_ITEM_HDR   48
#define HOT_MIN_CHUNK  64
#define HOT_CHUNK_UNIT 16 /* chunk sizes are multiples of it */
#define HOT_ID_LEN     64
#define HOT_PATH_LEN   1024
#define HOT_LEASE_MS   50 /* a fill lease older than this counts as absent */

/* Preamble: its layout never changes (DESIGN-BRIEF 9.8). */
struct hot_preamble {
    uint64_t magic;
    uint32_t format;
    _Atomic uint32_t retired;   /* set by a process that replaced it */
    _Atomic uint32_t wb_active; /* reserved: unflushed write-back data */
    uint32_t preamble_size;
    uint64_t total_size;
    uint8_t pad[HOT_LINE - 32];
};

struct hot_header {
    struct hot_preamble pre;
    /* geometry, fixed at creation */
    uint32_t nshards;
    uint32_t nbuckets_log2;
    uint32_t npages;
    uint32_t page_size;
    uint32_t nclasses;
    uint32_t nprocs;
    uint64_t seed;
    uint64_t shards_off, procs_off, classes_off, pagetab_off, pagelist_off,
        buckets_off, pages_off;
    uint64_t dir_dev, dir_ino;
    char cache_id[HOT_ID_LEN];
    char dir[HOT_PATH_LEN];
    _Atomic uint32_t ready;
    _Atomic uint32_t mode; /* reserved: 0 write-through */
    /* pool lock: 0 free, else owner slot + 1 (repaired when owner dies) */
    _Atomic uint32_t pool_lock;
    _Atomic uint32_t pages_used; /* pages assigned to classes */
    _Atomic uint64_t created_ns;
    /* Reserved for write-back (write-back notes 2): dirty rings, worker
     * and recovery leases. Zero in write-through. */
    uint64_t ring_off, ring_entries;
    _Atomic uint64_t worker_lease, recovery_lease;
    uint64_t reserved[8];
    /* Counters of process slots that were reused, so sums never drop. */
    _Atomic uint64_t retired_ctr[16];
};

/* Per-shard block: two cache lines (the second reserved for write-back's
 * flusher fields: flushed, absorbed, seen_seq, leases). */
struct hot_shard {
    _Atomic uint64_t floor; /* fills need a snapshot >= floor */
    _Atomic uint32_t gen;   /* bumped by bulk invalidation */
    uint32_t pad0;
    _Atomic uint64_t vnext;       /* reserved (write-back) */
    _Atomic uint64_t dirty_bytes; /* reserved (write-back) */
    uint8_t pad1[HOT_LINE - 32];
    /* Second line: what the hot tier knows of SQLite. */
    _Atomic uint64_t flushed;    /* reserved (write-back flush cursor) */
    _Atomic uint64_t absorbed;   /* reserved (write-back change log) */
    _Atomic uint64_t seen_seq;   /* commits reflected in the hot tier */
    _Atomic uint64_t checked_ms; /* last foreign-writer check */
    _Atomic uint64_t folded_ms;  /* last inline fold of access data */
    uint8_t pad2[HOT_LINE - 40];
};

enum { PROC_FREE = 0, PROC_ACTIVE = 1 };

/* Counters each process writes in its own slot only. */
enum hot_counter {
    C_HITS,
    C_MISSES,
    C_FILLS,
    C_FILL_REJECTS,
    C_PUBLISHES,
    C_INVALIDATIONS,
    C_RETRIES,
    C_EVICTIONS,
    C_LOCK_REPAIRS,
    C_RECOVERED,
    C_COUNT_
};

struct hot_proc {
    _Atomic uint32_t state;
    _Atomic uint32_t gen;
    _Atomic int32_t pid;
    uint32_t pad;
    _Atomic uint64_t ctr[C_COUNT_];
    uint8_t reserved[256 - 16 - 8 * C_COUNT_];
};

struct hot_class {
    uint32_t chunk_size;
    uint32_t per_page;
    _Atomic uint32_t npages; /* entries valid in this class's page list */
    uint32_t pad;
    _Atomic uint64_t hand; /* CLOCK position (fetch-and-add) */
    uint8_t pad2[HOT_LINE - 24];
};

/* Page table entry: 0 = unassigned, else class + 1. */
struct hot_page {
    _Atomic uint32_t cls;
};

struct hot_bucket {
    _Atomic uint64_t word; /* bit 0 lock, bits 1-15 owner+1, 16-63 version */
    _Atomic uint64_t slot[HOT_SLOTS];
};

/* Slot words. */
#define SW_KIND(w)     ((unsigned)((w)&3u))
#define SW_EMPTY       0u
#define SW_ITEM        1u
#define SW_FILLING     2u
#define SW_WB          (UINT64_C(1) << 2) /* reserved: dirty (write-back) */
#define SW_TAG(w)      ((unsigned)(((w) >> 16) & 0xffffu))
#define SW_CHUNK(w)    ((uint32_t)((w) >> 32))
#define SW_OWNER(w)    ((unsigned)(((w) >> 32) & 0xfffu))
#define SW_LEASE_MS(w) ((uint32_t)((w) >> 44)) /* 20 bits */

static inline uint64_t sw_item(unsigned tag, uint32_t chunk)
{
    return SW_ITEM | ((uint64_t)tag << 16) | ((uint64_t)chunk << 32);
}

static inline uint64_t sw_filling(unsigned tag, unsigned owner, uint32_t ms)
{
    return SW_FILLING | ((uint64_t)tag << 16) |
           ((uint64_t)(owner & 0xfff) << 32) | ((uint64_t)(ms & 0xfffff) << 44);
}

/* Bucket words. */
#define BW_LOCKED(w)  ((w)&1u)
#define BW_OWNER(w)   ((unsigned)(((w) >> 1) & 0x7fffu)) /* slot + 1 */
#define BW_VERSION(w) ((w) >> 16)

/* Chunk state words. */
#define CS_KIND(s)   ((s)&3u)
#define CS_FREE      0u
#define CS_PRIVATE   1u
#define CS_PUBLISHED 2u
#define CS_OWNER(s)  ((s) >> 2)
#define CS_PRIV(o)   (CS_PRIVATE | ((uint32_t)(o) << 2))

#define ACC_UNFOLDED 0x80u
#define ACC_LEVEL    0x7fu

/* An item: 48 bytes of header, then key, tag and value bytes. */
struct hot_item {
    _Atomic uint32_t state;
    _Atomic uint8_t ref; /* CLOCK: set by readers only when it is 0 */
    uint8_t key_type, val_type, tag_type;
    uint16_t shard;
    uint8_t flags;       /* reserved: WB, TOMB, ACCESS_RESET (write-back) */
    _Atomic uint8_t acc; /* LRU/LFU: bit 7 unfolded access, 0-6 LFU level */
    uint32_t gen;
    uint32_t key_len, val_len, tag_len;
    _Atomic uint32_t atime; /* LRU: last access, Unix seconds */
    uint64_t ver;
    double expire;
    unsigned char data[];
};

_Static_assert(sizeof(struct hot_preamble) == HOT_LINE, "preamble size");
_Static_assert(C_COUNT_ <= 16, "retired counters");
_Static_assert(sizeof(struct hot_shard) == 2 * HOT_LINE, "shard block");
_Static_assert(sizeof(struct hot_proc) == 256, "process slot");
_Static_assert(sizeof(struct hot_class) == HOT_LINE, "class");
_Static_assert(sizeof(struct hot_bucket) == HOT_LINE, "bucket");
_Static_assert(sizeof(struct hot_item) == HOT_ITEM_HDR, "item header");

/* The process-local view of an attached segment. */
struct tc_hot {
    unsigned char *base;
    uint64_t size;
    struct hot_header *hdr;
    struct hot_shard *shards;
    struct hot_proc *procs;
    struct hot_class *classes;
    struct hot_page *pagetab;
    uint32_t *pagelist; /* nclasses x npages */
    struct hot_bucket *buckets;
    unsigned char *pages;
    uint64_t mask; /* nbuckets - 1 */
    uint32_t npages, page_size, nclasses, nshards;
    unsigned page_shift; /* log2(page_size) */
    uint64_t pages_len;  /* npages * page_size */
    uint64_t seed;
    uint64_t type_seed[8]; /* hot_hash's seed per key type (& 7) */
    int lockfd;            /* companion file: liveness bytes */
    int slot;              /* our process slot, -1 if none (read-only) */
    struct hot_proc *mine; /* &procs[slot], or &local without a slot */
    bool readonly;
    char *path, *lockpath, *dir;
    struct hot_proc local; /* counters when we have no slot */
    struct tc_hot *next_attached;
};

/* Item header fields as a reader sees them: each loaded once (a writer
 * may be reusing the chunk), so what was checked is what is used. Writers
 * of a chunk store them the same way (relaxed atomics are plain moves). */
#define ITEM_LOAD(it, f)     __atomic_load_n(&(it)->f, __ATOMIC_RELAXED)
#define ITEM_STORE(it, f, v) __atomic_store_n(&(it)->f, (v), __ATOMIC_RELAXED)

/* Copy bytes into a chunk that a stale reader may be reading. */
static inline void hot_copy_in(unsigned char *dst, const void *src, size_t n)
{
#ifdef HOT_TSAN
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(dst + i, s[i], __ATOMIC_RELAXED);
#else
    memcpy(dst, src, n);
#endif
}

/* A spin-wait hint to the CPU. */
static inline void hot_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* ---- segment.c ---- */
TC_HIDDEN_SHM uint64_t hot_now_ms(void);

/* ---- procslot.c ---- */
/* Take process slot @s (-1: none) as ours: h->slot and h->mine. */
static inline void hot_set_slot(struct tc_hot *h, int s)
{
    h->slot = s;
    h->mine = s >= 0 ? &h->procs[s] : &h->local;
}
TC_HIDDEN_SHM int hot_proc_claim(struct tc_hot *h);
TC_HIDDEN_SHM void hot_proc_release(struct tc_hot *h);
/* True if process slot @s (0-based) is held by a live process. */
TC_HIDDEN_SHM bool hot_proc_alive(struct tc_hot *h, unsigned s);
TC_HIDDEN_SHM void hot_count(struct tc_hot *h, enum hot_counter c, uint64_t n);

/* hot_tally - count one hit or miss: the per-read counters. A relaxed load
 * and store instead of hot_count's locked add, which would cost more than
 * the rest of a hit's shared-memory work. Exact in a single-threaded
 * process; threads of one process racing on the same counter may lose a
 * few counts (the other counters stay exact). */
static inline __attribute__((always_inline)) void hot_tally(struct tc_hot *h,
                                                            enum hot_counter c)
{
    struct hot_proc *p = h->mine;
    uint64_t v = atomic_load_explicit(&p->ctr[c], memory_order_relaxed);
    atomic_store_explicit(&p->ctr[c], v + 1, memory_order_relaxed);
}
/* Recover everything slot @s held (caller owns the slot's byte lock). */
TC_HIDDEN_SHM void hot_proc_recover(struct tc_hot *h, unsigned s);

/* ---- index.c ---- */
struct hot_key {
    int shard;
    int type;
    const unsigned char *p;
    uint32_t len;
    unsigned char num[8]; /* normalised INTEGER bytes */
    uint64_t hash;
    unsigned tag;
    uint64_t b1, b2; /* bucket indexes, b1 <= b2 after sorting for locks */
};
/* The slot words a key may occupy: its first bucket's, then its second's
 * unless both are one bucket. @out has room for 2 * HOT_SLOTS; returns the
 * count. */
static inline int hot_key_slots(struct tc_hot *h, uint64_t b1, uint64_t b2,
                                _Atomic uint64_t **out)
{
    int n = 0;
    for (int i = 0; i < HOT_SLOTS; i++)
        out[n++] = &h->buckets[b1].slot[i];
    if (b2 != b1)
        for (int i = 0; i < HOT_SLOTS; i++)
            out[n++] = &h->buckets[b2].slot[i];
    return n;
}

static inline __attribute__((always_inline)) uint64_t
hot_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline __attribute__((always_inline)) uint32_t
hot_load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Both halves of a 64 x 64 -> 128-bit product, folded. */
static inline __attribute__((always_inline)) uint64_t hot_fold_mul(uint64_t a,
                                                                   uint64_t b)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
    /* The same product from 32-bit halves (targets without __int128). */
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    uint64_t lo = (mid << 32) | (uint32_t)ll;
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return lo ^ hi;
#endif
}

/* The hash of a key: its type and bytes, seeded per segment. The shard
 * is not hashed: it follows from the key (or, for a numeric key, is
 * compared after the hash), so a hit need not compute it first. Keys of
 * up to 16 bytes, most cache keys, are read as two words that cover
 * every byte and mixed inline by two folded multiplies, which costs a
 * hit less than calling XXH3; longer keys use XXH3. */
static inline __attribute__((always_inline)) uint64_t
hot_hash(const struct tc_hot *h, int type, const void *p, uint32_t len)
{
    uint64_t seed = h->type_seed[(unsigned)type & 7];
    if (len > 16)
        return XXH3_64bits_withSeed(p, len, seed);
    const unsigned char *q = p;
    uint64_t a = 0, b = 0;
    if (len >= 8) {
        a = hot_load64(q);
        b = hot_load64(q + len - 8);
    } else if (len >= 4) {
        a = hot_load32(q);
        b = hot_load32(q + len - 4);
    } else if (len) {
        a = (uint64_t)q[0] | (uint64_t)q[len / 2] << 8 |
            (uint64_t)q[len - 1] << 16;
    }
    uint64_t m = hot_fold_mul(a ^ seed ^ UINT64_C(0xA0761D6478BD642F),
                              b ^ seed ^ UINT64_C(0xE7037ED1A0B428DB));
    return hot_fold_mul(m ^ len, UINT64_C(0x8EBC6AF09C88C6E3));
}

/* A key's home slot in its first bucket: where writers put it when that
 * slot is free, so a read usually finds it with one compare. */
static inline __attribute__((always_inline)) unsigned
hot_home_slot(unsigned tag)
{
    return (tag * HOT_SLOTS) >> 16;
}

/* A key's second bucket, from its first and its tag. */
static inline __attribute__((always_inline)) uint64_t
hot_bucket2(const struct tc_hot *h, uint64_t b1, unsigned tag)
{
    return (b1 ^ (((uint64_t)tag | 1) * UINT64_C(0x9E3779B1))) & h->mask;
}

/* Hash, tag and buckets of k->type/p/len. */
static inline __attribute__((always_inline)) void
hot_key_finish(const struct tc_hot *h, struct hot_key *k)
{
    k->hash = hot_hash(h, k->type, k->p, k->len);
    k->tag = (unsigned)(k->hash >> 48);
    k->b1 = k->hash & h->mask;
    k->b2 = hot_bucket2(h, k->b1, k->tag);
}

/* SQLite treats 1 and 1.0 as one key (DESIGN-BRIEF 9.2): if the REAL key
 * at @p is integral, its INTEGER bytes go to @num and the answer is true. */
static inline __attribute__((always_inline)) bool
hot_real_integral(const void *p, unsigned char num[8])
{
    double d;
    memcpy(&d, p, 8);
    if (!(d == floor(d) && d >= -9223372036854775808.0 &&
          d < 9223372036854775808.0))
        return false;
    int64_t i = (int64_t)d;
    memcpy(num, &i, 8);
    return true;
}

/* The key of @key in @shard. False if it cannot be a key. An integral
 * REAL becomes the INTEGER. */
static inline __attribute__((always_inline)) bool
hot_key_make(const struct tc_hot *h, int shard, const tc_data *key,
             struct hot_key *k)
{
    k->shard = shard;
    k->type = key->type;
    k->p = key->ptr;
    if (key->len > UINT32_MAX)
        return false;
    k->len = (uint32_t)key->len;
    if (key->type == TC_INT || key->type == TC_REAL) {
        if (key->len != 8)
            return false;
        if (key->type == TC_REAL && hot_real_integral(key->ptr, k->num)) {
            k->type = TC_INT;
            k->p = k->num;
        }
    }
    hot_key_finish(h, k);
    return true;
}

/* The key of an item read from the segment (the caller has checked its
 * shard and key length against the chunk). */
TC_HIDDEN_SHM void hot_key_of_item(struct tc_hot *h, const struct hot_item *it,
                                   struct hot_key *k);

/* Lock / unlock the (one or two) buckets of a key, in index order. */
TC_HIDDEN_SHM void hot_lock2(struct tc_hot *h, uint64_t a, uint64_t b);
TC_HIDDEN_SHM void hot_unlock2(struct tc_hot *h, uint64_t a, uint64_t b);
TC_HIDDEN_SHM void hot_bucket_lock(struct tc_hot *h, struct hot_bucket *b);
/* Waiting for a lock word held by process slot @owner (slot + 1; 0 none):
 * spin, then yield, then probe the owner about every millisecond. True
 * when the owner is dead and the caller may take the lock over. */
struct hot_wait {
    unsigned spins;
    uint64_t started;
};
TC_HIDDEN_SHM bool hot_wait_owner(struct tc_hot *h, struct hot_wait *wt,
                                  unsigned owner);
TC_HIDDEN_SHM void hot_bucket_unlock(struct hot_bucket *b);
/* A chunk's index is its offset from the first page in HOT_CHUNK_UNIT
 * units, so a reader finds the chunk without the page table (read.h). */
static inline uint32_t hot_chunk_idx(const struct tc_hot *h, uint32_t pg,
                                     uint32_t ci, uint32_t chunk_size)
{
    return (
        uint32_t)(((uint64_t)pg * h->page_size + (uint64_t)ci * chunk_size) /
                  HOT_CHUNK_UNIT);
}

/* Chunk address from its index, or NULL unless the index is the start of
 * a chunk of an assigned page (the writers' check: it divides). */
static inline struct hot_item *hot_chunk(const struct tc_hot *h, uint32_t idx,
                                         uint32_t *chunk_size)
{
    uint64_t off = (uint64_t)idx * HOT_CHUNK_UNIT;
    uint64_t pg = off >> h->page_shift;
    if (pg >= h->npages)
        return NULL;
    uint32_t cls =
        atomic_load_explicit(&h->pagetab[pg].cls, memory_order_relaxed);
    if (cls == 0 || cls > h->nclasses)
        return NULL;
    const struct hot_class *c = &h->classes[cls - 1];
    /* The class table is shared memory too: read once, never divide by 0. */
    uint32_t cs = __atomic_load_n(&c->chunk_size, __ATOMIC_RELAXED);
    uint32_t per = __atomic_load_n(&c->per_page, __ATOMIC_RELAXED);
    uint32_t within = (uint32_t)(off & (h->page_size - 1));
    if (cs < HOT_MIN_CHUNK || within % cs || within / cs >= per)
        return NULL;
    *chunk_size = cs;
    return (struct hot_item *)(h->pages + off);
}
/* True if a slot of the buckets of @it's key points at chunk @idx (the
 * caller locks those buckets when it needs a stable answer). */
TC_HIDDEN_SHM bool hot_chunk_referenced(struct tc_hot *h, uint32_t idx,
                                        const struct hot_item *it,
                                        uint32_t csize);
/* True if the item in chunk @it holds key @k (bounds-checked). */
TC_HIDDEN_SHM bool hot_item_is(const struct hot_item *it, uint32_t csize,
                               const struct hot_key *k);

/* ---- alloc.c ---- */
/* Claim a chunk for an item of @bytes (PRIVATE(us)); UINT32_MAX if none. */
TC_HIDDEN_SHM uint32_t hot_alloc(struct tc_hot *h, size_t bytes);
/* Free a chunk we own (PRIVATE(us)). */
TC_HIDDEN_SHM void hot_free(struct tc_hot *h, uint32_t idx);
TC_HIDDEN_SHM int hot_class_of(const struct tc_hot *h, size_t bytes);
TC_HIDDEN_SHM void hot_pool_lock(struct tc_hot *h);
TC_HIDDEN_SHM void hot_pool_unlock(struct tc_hot *h);
/* Call @fn for every chunk of every page listed in a size class. */
TC_HIDDEN_SHM void hot_each_chunk(struct tc_hot *h,
                                  void (*fn)(void *arg, uint32_t idx,
                                             struct hot_item *it,
                                             const struct hot_class *cl),
                                  void *arg);
/* Free bytes: free chunks of assigned pages plus unassigned pages. */
TC_HIDDEN_SHM uint64_t hot_free_bytes(struct tc_hot *h, uint64_t *items);
/* Re-list pages assigned to a class but missing from its list. */
TC_HIDDEN_SHM void hot_pages_repair(struct tc_hot *h);

#endif /* TC_SHM_LAYOUT_H */
