/*
 * bench_hot.c - the hot-tier rows of DESIGN-BRIEF section 8, measured as
 * its section 10 says, beside a floor measured in the same run.
 *
 * Rows:
 *   1. get hit, FanoutCache of 8 shards, opts.hot_keys (10,000) keys
 *      "key-N", 100-byte TC_TEXT values, hot_size 64 MiB, through
 *      tc_get_buf and tc_get; goal <= 40 ns.
 *   2. (--big) the same with opts.big_keys (1,000,000) keys and hot_size
 *      512 MiB; goal <= 1.3x the floor.
 *   3. two processes reading, forked after the preload, against one; each
 *      process times itself in CPU time and wall time; goal >= 1.8x, with
 *      the floor as the control.
 *   4. memory per item beyond key and value bytes, from tc_hot_stats_get
 *      ((size - free_bytes) / items - key - value); goal <= 64 B.
 *
 * The floor is a bare seqlock hash table written here with the segment's
 * layout (docs/ARCHITECTURE.md, "Hot tier"): 64-byte buckets of one
 * version word and 7 slot words (kind, 16-bit tag, item index), items of a
 * 48-byte header then key then value, in one shared mapping (a memfd).
 * Its bucket count follows the segment's own sizing rule for the same
 * hot_size, and it hashes keys as the segment does (ft_hash), so the two
 * differ only in what tiercache does beyond the table itself. A lookup is:
 * hash, two-choice bucket, tag match, key compare, value copy, version
 * re-check. Only tiercache.h of the library is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "bench.h"

#define HOT_SIZE_SMALL (64ull << 20)  /* the default hot_size */
#define HOT_SIZE_BIG   (512ull << 20) /* DESIGN-BRIEF 8: "e.g. 512 MiB" */
#define HOT_SIZE_QUICK (2ull << 20)   /* --quick memory row: fills fast */
#define GOAL_HOT_NS    40.0
#define GOAL_BIG_RATIO 1.3
#define GOAL_SCALE     1.8
#define GOAL_MEM_BYTES 64.0
#define FILL_BATCH     1000 /* tc_set_many batch of the big and memory rows */

/* ---- the floor: a bare seqlock table ------------------------------- */

#define FT_SLOTS    7
#define FT_ITEM_HDR 48
#define FT_ATTEMPTS 4   /* as the segment's reader */
#define FT_SPINS    128 /* as the segment's reader */

struct ft_bucket {
    _Atomic uint64_t word; /* bit 0 lock, bits 16-63 version */
    _Atomic uint64_t slot[FT_SLOTS];
};

/* The segment's item header, field for field. */
struct ft_item {
    uint32_t state;
    uint8_t ref, key_type, val_type, tag_type;
    uint16_t shard, flags;
    uint32_t gen, key_len, val_len, tag_len, reserved;
    uint64_t ver;
    double expire;
    unsigned char data[];
};

_Static_assert(sizeof(struct ft_bucket) == 64, "bucket is one cache line");
_Static_assert(sizeof(struct ft_item) == FT_ITEM_HDR, "48-byte item header");

struct ftab {
    unsigned char *base;
    size_t size;
    struct ft_bucket *b;
    uint64_t mask;
    unsigned char *items;
    uint32_t chunk, nitems, cap;
    uint32_t unplaced; /* keys whose two buckets were full */
    uint64_t seed;
};

/* The segment's rule (shm/segment.c, geometry_for): an index sized for
 * items of ~192 bytes at ~6 of 7 slots used. */
static uint64_t ft_buckets_for(uint64_t hot_size)
{
    uint64_t items = hot_size / 192, nb = 1;
    while (nb * 6 < items)
        nb <<= 1;
    return nb;
}

static void ft_create(struct ftab *t, uint64_t hot_size, uint32_t cap,
                      uint32_t max_item)
{
    uint64_t nb = ft_buckets_for(hot_size);
    size_t bsize = (size_t)nb * sizeof(struct ft_bucket);
    int fd;

    memset(t, 0, sizeof(*t));
    /* The segment's size classes are 16-byte steps at this size. */
    t->chunk = (max_item + 15) & ~15u;
    t->cap = cap;
    t->size = ((bsize + 4095) & ~(size_t)4095) + (size_t)cap * t->chunk;
    fd = memfd_create("tiercache-bench-floor", MFD_CLOEXEC);
    if (fd < 0)
        bench_die("memfd_create: %s", strerror(errno));
    /* Reserved up front as the segment is (posix_fallocate), so neither
     * side takes page faults while timed. */
    if (ftruncate(fd, (off_t)t->size) != 0 ||
        posix_fallocate(fd, 0, (off_t)t->size) != 0)
        bench_die("floor table of %zu bytes: %s", t->size, strerror(errno));
    t->base = mmap(NULL, t->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (t->base == MAP_FAILED)
        bench_die("mmap of the floor table: %s", strerror(errno));
    t->b = (struct ft_bucket *)t->base;
    t->mask = nb - 1;
    t->items = t->base + ((bsize + 4095) & ~(size_t)4095);
    t->seed = 0x5EEDF100D5EEDull;
}

static void ft_destroy(struct ftab *t)
{
    if (t->base)
        munmap(t->base, t->size);
    memset(t, 0, sizeof(*t));
}

/* The segment's key hash (shm/layout.h, hot_hash): up to 16 bytes read as
 * two words that cover every byte and mixed by two folded multiplies,
 * XXH3-64 above. The floor must not pay for a slower hash than the
 * segment's, or the ratio would flatter the library. */
static inline uint64_t ft_fold_mul(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t ft_hash(const char *key, uint32_t len, uint64_t seed)
{
    uint64_t a = 0, b = 0;
    if (len > 16)
        return XXH3_64bits_withSeed(key, len, seed);
    if (len >= 8) {
        memcpy(&a, key, 8);
        memcpy(&b, key + len - 8, 8);
    } else if (len >= 4) {
        uint32_t x, y;
        memcpy(&x, key, 4);
        memcpy(&y, key + len - 4, 4);
        a = x;
        b = y;
    } else if (len) {
        const unsigned char *q = (const unsigned char *)key;
        a = (uint64_t)q[0] | (uint64_t)q[len / 2] << 8 |
            (uint64_t)q[len - 1] << 16;
    }
    uint64_t m = ft_fold_mul(a ^ seed ^ UINT64_C(0xA0761D6478BD642F),
                             b ^ seed ^ UINT64_C(0xE7037ED1A0B428DB));
    return ft_fold_mul(m ^ len, UINT64_C(0x8EBC6AF09C88C6E3));
}

static inline uint64_t ft_b2(uint64_t b1, unsigned tag, uint64_t mask)
{
    return (b1 ^ (((uint64_t)tag | 1) * UINT64_C(0x9E3779B1))) & mask;
}

/* Insert (single writer, still under the bucket's lock bit so a reader in
 * another process would stay correct). Like the segment, it tries the
 * first bucket, then the second, and never displaces: a key whose two
 * buckets are full stays out (counted in t->unplaced). */
static void ft_insert(struct ftab *t, const char *key, uint32_t klen,
                      const char *val, uint32_t vlen)
{
    uint64_t h = ft_hash(key, klen, t->seed);
    unsigned tag = (unsigned)(h >> 48);
    uint64_t bi[2] = {h & t->mask, 0};
    struct ft_item *it;
    uint32_t idx = t->nitems;
    int c, s;

    bi[1] = ft_b2(bi[0], tag, t->mask);
    if (idx >= t->cap || FT_ITEM_HDR + klen + vlen > t->chunk)
        bench_die("floor table: no room for %.*s", (int)klen, key);
    it = (struct ft_item *)(t->items + (size_t)idx * t->chunk);
    memset(it, 0, FT_ITEM_HDR);
    it->state = 2; /* published */
    it->key_type = it->val_type = (uint8_t)TC_TEXT;
    it->key_len = klen;
    it->val_len = vlen;
    memcpy(it->data, key, klen);
    memcpy(it->data + klen, val, vlen);
    for (c = 0; c < 2; c++) {
        struct ft_bucket *b = &t->b[bi[c]];
        for (s = 0; s < FT_SLOTS; s++) {
            uint64_t w;
            if (atomic_load_explicit(&b->slot[s], memory_order_relaxed))
                continue;
            w = atomic_fetch_or_explicit(&b->word, 1, memory_order_acquire);
            atomic_store_explicit(
                &b->slot[s], 1u | (uint64_t)tag << 16 | (uint64_t)idx << 32,
                memory_order_release);
            atomic_store_explicit(&b->word, ((w >> 16) + 1) << 16,
                                  memory_order_release);
            t->nitems++;
            return;
        }
    }
    t->unplaced++;
}

enum { FT_HIT, FT_MISS, FT_RETRY };

static inline int ft_read_bucket(const struct ftab *t, struct ft_bucket *b,
                                 const char *key, uint32_t klen, unsigned tag,
                                 void *buf, size_t cap, size_t *len)
{
    uint64_t w1 = atomic_load_explicit(&b->word, memory_order_acquire);
    int s;

    for (s = 0; w1 & 1; s++) {
        if (s >= FT_SPINS)
            return FT_RETRY;
        __builtin_ia32_pause();
        w1 = atomic_load_explicit(&b->word, memory_order_acquire);
    }
    for (s = 0; s < FT_SLOTS; s++) {
        uint64_t sw = atomic_load_explicit(&b->slot[s], memory_order_relaxed);
        uint32_t idx = (uint32_t)(sw >> 32), vlen;
        const struct ft_item *it;

        if ((sw & 3) != 1 || ((sw >> 16) & 0xffff) != tag || idx >= t->nitems)
            continue;
        it = (const struct ft_item *)(t->items + (size_t)idx * t->chunk);
        if (it->key_len != klen || memcmp(it->data, key, klen) != 0)
            continue;
        vlen = it->val_len;
        if ((uint64_t)klen + vlen > t->chunk - FT_ITEM_HDR)
            continue; /* bounds: never copy past the chunk */
        if (vlen <= cap)
            memcpy(buf, it->data + klen, vlen);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&b->word, memory_order_relaxed) != w1)
            return FT_RETRY;
        *len = vlen;
        return FT_HIT;
    }
    return FT_MISS;
}

/* 1 hit (value in @buf if it fits), 0 miss. */
static inline int ft_get(const struct ftab *t, const char *key, uint32_t klen,
                         void *buf, size_t cap, size_t *len)
{
    uint64_t h = ft_hash(key, klen, t->seed);
    unsigned tag = (unsigned)(h >> 48);
    uint64_t b1 = h & t->mask, b2 = ft_b2(b1, tag, t->mask);
    int a, r;

    for (a = 0; a < FT_ATTEMPTS; a++) {
        r = ft_read_bucket(t, &t->b[b1], key, klen, tag, buf, cap, len);
        if (r == FT_MISS && b2 != b1)
            r = ft_read_bucket(t, &t->b[b2], key, klen, tag, buf, cap, len);
        if (r != FT_RETRY)
            return r == FT_HIT;
    }
    return 0;
}

/* ---- keys and values ---------------------------------------------- */

struct hkeys {
    int n;
    int *perm; /* visiting order */
    char *text;
    const char **k;
    uint32_t *len;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        bench_die("out of memory");
    return p;
}

static void hkeys_init(struct hkeys *ks, int n)
{
    size_t cap = (size_t)n * 16, off = 0;
    uint64_t seed = 4242;
    int i;

    ks->n = n;
    ks->perm = xcalloc((size_t)n, sizeof(int));
    ks->text = xcalloc(cap, 1);
    ks->k = xcalloc((size_t)n, sizeof(char *));
    ks->len = xcalloc((size_t)n, sizeof(uint32_t));
    for (i = 0; i < n; i++) {
        int w = snprintf(ks->text + off, cap - off, "key-%d", i);
        ks->k[i] = ks->text + off;
        ks->len[i] = (uint32_t)w;
        off += (size_t)w + 1;
        ks->perm[i] = i;
    }
    for (i = n - 1; i > 0; i--) { /* one fixed random order */
        int j = (int)(bench_rand(&seed) % (uint64_t)(i + 1));
        int t = ks->perm[i];
        ks->perm[i] = ks->perm[j];
        ks->perm[j] = t;
    }
}

static void hkeys_free(struct hkeys *ks)
{
    free(ks->perm);
    free(ks->text);
    free(ks->k);
    free(ks->len);
    memset(ks, 0, sizeof(*ks));
}

/* The value of key @i: distinct per key, so a value served for the wrong
 * key is caught by the verification passes. */
static void value_of(int i, char *v)
{
    int j, w = snprintf(v, BENCH_VALUE_SIZE, "v%d:", i);
    for (j = w; j < BENCH_VALUE_SIZE; j++)
        v[j] = (char)('a' + (i + j) % 26);
}

/* ---- library helpers ---------------------------------------------- */

static tc_cache *hot_open(const char *dir, uint64_t size)
{
    tc_cache *c = NULL;
    bench_expect(tc_create(&c), TC_OK, "tc_create");
    bench_expect(tc_set_shards(c, BENCH_FAN_SHARDS), TC_OK, "tc_set_shards");
    bench_expect(tc_set_hot_size(c, size), TC_OK, "tc_set_hot_size");
    bench_expect(tc_open(c, dir, 0), TC_OK, "tc_open");
    return c;
}

static tc_hot_stats hstats(tc_cache *c)
{
    tc_hot_stats s;
    bench_expect(tc_hot_stats_get(c, &s), TC_OK, "tc_hot_stats_get");
    return s;
}

/* Preload keys [lo, hi) with tc_set_many (it commits, it does not
 * publish); returns seconds. */
static double preload_many(tc_cache *c, const struct hkeys *ks, int lo, int hi)
{
    static char vals[FILL_BATCH][BENCH_VALUE_SIZE];
    tc_data kd[FILL_BATCH], vd[FILL_BATCH];
    uint64_t t0 = bench_ns();
    int i, j;

    for (i = lo; i < hi; i += FILL_BATCH) {
        int m = hi - i < FILL_BATCH ? hi - i : FILL_BATCH;
        for (j = 0; j < m; j++) {
            value_of(i + j, vals[j]);
            kd[j] = tc_textn(ks->k[i + j], ks->len[i + j]);
            vd[j] = tc_textn(vals[j], BENCH_VALUE_SIZE);
        }
        bench_expect(tc_set_many(c, kd, vd, (size_t)m, TC_NO_EXPIRE, NULL, 0),
                     TC_OK, "tc_set_many");
    }
    return (double)(bench_ns() - t0) / 1e9;
}

/* One get of each key in [lo, hi) through tc_get_buf (a miss reads
 * SQLite and fills the segment); dies on a wrong value. */
static double fill_pass(tc_cache *c, const struct hkeys *ks, int lo, int hi)
{
    char want[BENCH_VALUE_SIZE], buf[256];
    uint64_t t0 = bench_ns();
    size_t len;
    int type, i;

    for (i = lo; i < hi; i++) {
        tc_data key = tc_textn(ks->k[i], ks->len[i]);
        bench_expect(
            tc_get_buf(c, &key, buf, sizeof(buf), &len, &type, NULL, 0), TC_OK,
            "fill tc_get_buf");
        value_of(i, want);
        if (len != BENCH_VALUE_SIZE || type != TC_TEXT ||
            memcmp(buf, want, len) != 0)
            bench_die("hot tier: tc_get_buf of %s returned a wrong value "
                      "(%zu bytes, type %d): %.*s",
                      ks->k[i], len, type, (int)(len < 40 ? len : 40), buf);
    }
    return (double)(bench_ns() - t0) / 1e9;
}

/* Untimed check of every key through both calls: the value must be the
 * key's own, byte for byte. Returns the hot misses it saw. */
static uint64_t verify_all(tc_cache *c, const struct hkeys *ks)
{
    char want[BENCH_VALUE_SIZE], buf[256];
    tc_hot_stats s0 = hstats(c), s1;
    size_t len;
    int type, i;

    for (i = 0; i < ks->n; i++) {
        tc_data key = tc_textn(ks->k[i], ks->len[i]);
        tc_item it = TC_ITEM_INIT;
        value_of(i, want);
        bench_expect(
            tc_get_buf(c, &key, buf, sizeof(buf), &len, &type, NULL, 0), TC_OK,
            "verify tc_get_buf");
        if (len != BENCH_VALUE_SIZE || type != TC_TEXT ||
            memcmp(buf, want, len) != 0)
            bench_die("hot tier: tc_get_buf of %s returned a wrong value "
                      "(%zu bytes, type %d): %.*s",
                      ks->k[i], len, type, (int)(len < 40 ? len : 40), buf);
        bench_expect(tc_get(c, &key, &it, 0), TC_OK, "verify tc_get");
        if (it.value.len != BENCH_VALUE_SIZE || it.value.type != TC_TEXT ||
            memcmp(it.value.ptr, want, BENCH_VALUE_SIZE) != 0 ||
            it.tag.type != TC_NONE)
            bench_die("hot tier: tc_get of %s returned a wrong value "
                      "(%zu bytes, type %d, tag type %d)",
                      ks->k[i], it.value.len, it.value.type, it.tag.type);
        tc_item_clear(&it);
    }
    s1 = hstats(c);
    return s1.misses - s0.misses;
}

/* ---- timed phases --------------------------------------------------- */

struct span {
    uint64_t wall0, cpu0, wall, cpu;
};

static void span_start(struct span *t)
{
    t->cpu0 = bench_cpu_ns();
    t->wall0 = bench_ns();
}

static void span_stop(struct span *t)
{
    t->wall = bench_ns() - t->wall0;
    t->cpu = bench_cpu_ns() - t->cpu0;
}

/* Keeps the compiler from dropping a copy into a buffer nobody reads. */
#define USE(buf) __asm__ volatile("" : : "r"(buf) : "memory")

/* @passes walks over the keys in their fixed random order; returns the
 * gets that failed or returned a wrong length (must be 0). */
__attribute__((noinline)) static long
phase_buf(tc_cache *c, const struct hkeys *ks, long passes, struct span *t)
{
    char buf[256];
    size_t len;
    int type, i;
    long p, bad = 0;

    span_start(t);
    for (p = 0; p < passes; p++)
        for (i = 0; i < ks->n; i++) {
            int k = ks->perm[i];
            tc_data key = tc_textn(ks->k[k], ks->len[k]);
            int rc =
                tc_get_buf(c, &key, buf, sizeof(buf), &len, &type, NULL, 0);
            bad += (rc != TC_OK) | (len != BENCH_VALUE_SIZE);
        }
    span_stop(t);
    return bad;
}

__attribute__((noinline)) static long
phase_get(tc_cache *c, const struct hkeys *ks, long passes, struct span *t)
{
    int i;
    long p, bad = 0;

    span_start(t);
    for (p = 0; p < passes; p++)
        for (i = 0; i < ks->n; i++) {
            int k = ks->perm[i];
            tc_data key = tc_textn(ks->k[k], ks->len[k]);
            tc_item it = TC_ITEM_INIT;
            int rc = tc_get(c, &key, &it, 0);
            bad += (rc != TC_OK) | (it.value.len != BENCH_VALUE_SIZE);
            tc_item_clear(&it);
        }
    span_stop(t);
    return bad;
}

__attribute__((noinline)) static long phase_floor(const struct ftab *ft,
                                                  const struct hkeys *ks,
                                                  long passes, struct span *t)
{
    char buf[256];
    size_t len = 0;
    int i;
    long p, bad = 0;

    span_start(t);
    for (p = 0; p < passes; p++)
        for (i = 0; i < ks->n; i++) {
            int k = ks->perm[i];
            int hit = ft_get(ft, ks->k[k], ks->len[k], buf, sizeof(buf), &len);
            USE(buf);
            bad += !hit | (len != BENCH_VALUE_SIZE);
        }
    span_stop(t);
    return bad;
}

/* The runs of one get-hit row: one warm-up run, then o->runs; the three
 * sides rotate their order run by run so drift hits all alike. */
static void measure_row(const struct bench_opts *o, struct hot_row *r,
                        tc_cache *c, const struct ftab *ft,
                        const struct hkeys *ks, const char *what)
{
    long passes = (o->hot_ops + ks->n - 1) / ks->n;
    double nops = (double)passes * ks->n;
    int run, i;

    r->ops = (long)nops;
    r->resident = hstats(c).items;
    r->floor_unplaced = ft->unplaced;
    for (run = 0; run <= o->runs; run++) {
        if (!o->json)
            fprintf(stderr, "hot: %s %s %d/%d\n", what, run ? "run" : "warm-up",
                    run, o->runs);
        for (i = 0; i < H_SIDES; i++) {
            int side = (i + run) % H_SIDES;
            struct span t = {0, 0, 0, 0};
            tc_hot_stats s0, s1;
            long bad;
            if (side == H_FLOOR) {
                bad = phase_floor(ft, ks, passes, &t);
                /* Keys left out of the table are misses, and only they. */
                if (bad != passes * (long)ft->unplaced)
                    bench_die("floor table: %ld gets failed", bad);
            } else {
                s0 = hstats(c);
                bad = side == H_BUF ? phase_buf(c, ks, passes, &t)
                                    : phase_get(c, ks, passes, &t);
                s1 = hstats(c);
                if (bad)
                    bench_die("hot %s: %ld of %.0f gets failed or returned "
                              "a wrong length",
                              what, bad, nops);
                if (run) {
                    r->lib_ops += (uint64_t)nops;
                    r->lib_misses += s1.misses - s0.misses;
                }
            }
            if (run) {
                r->ns[side][run - 1] = (double)t.wall / nops;
                r->cpu[side][run - 1] = (double)t.cpu / nops;
            }
        }
        /* Values stay right run after run, not just in the first. */
        if (verify_all(c, ks) && !r->note[0])
            snprintf(r->note, sizeof(r->note),
                     "a verification pass saw hot misses");
    }
    if (r->lib_misses && !r->note[0])
        snprintf(r->note, sizeof(r->note),
                 "%llu of %llu timed gets missed the hot tier",
                 (unsigned long long)r->lib_misses,
                 (unsigned long long)r->lib_ops);
    r->have = true;
}

/* ---- rows 1 and 2 -------------------------------------------------- */

struct hot_ctx {
    char dir[PATH_MAX];
    tc_cache *c;
    struct ftab ft;
    struct hkeys ks;
};

static bool attached_or_note(tc_cache *c, char *note, size_t cap)
{
    tc_hot_stats s = hstats(c);
    if (s.attached && s.reading)
        return true;
    snprintf(note, cap, "no hot-tier segment (cold-only): %s", tc_errmsg());
    return false;
}

static void ctx_close(struct hot_ctx *x)
{
    if (x->c) {
        tc_close(x->c);
        bench_drop_segment(x->dir);
        bench_rmtree(x->dir);
    }
    ft_destroy(&x->ft);
    hkeys_free(&x->ks);
    x->c = NULL;
}

static bool row_small(const struct bench_opts *o, struct hot_row *r,
                      struct hot_ctx *x)
{
    char val[BENCH_VALUE_SIZE];
    uint64_t t0;
    int i;

    r->keys = o->hot_keys;
    r->size = HOT_SIZE_SMALL;
    hkeys_init(&x->ks, o->hot_keys);
    bench_pathf(x->dir, sizeof(x->dir), "%s/hot-small", o->work);
    bench_track_segment(x->dir);
    x->c = hot_open(x->dir, HOT_SIZE_SMALL);
    if (!attached_or_note(x->c, r->note, sizeof(r->note)))
        return false;
    if (!o->json)
        fprintf(stderr, "hot: preloading %d keys with tc_set...\n", r->keys);
    /* tc_set publishes each value to the segment after its COMMIT. */
    t0 = bench_ns();
    for (i = 0; i < x->ks.n; i++) {
        tc_data k = tc_textn(x->ks.k[i], x->ks.len[i]), v;
        value_of(i, val);
        v = tc_textn(val, BENCH_VALUE_SIZE);
        bench_expect(tc_set(x->c, &k, &v, TC_NO_EXPIRE, NULL, 0), TC_OK,
                     "hot preload tc_set");
    }
    r->preload_s = (double)(bench_ns() - t0) / 1e9;
    if (verify_all(x->c, &x->ks))
        snprintf(r->note, sizeof(r->note),
                 "keys set with tc_set were not all served from the segment");
    ft_create(&x->ft, HOT_SIZE_SMALL, (uint32_t)x->ks.n,
              FT_ITEM_HDR + 16 + BENCH_VALUE_SIZE);
    for (i = 0; i < x->ks.n; i++) {
        value_of(i, val);
        ft_insert(&x->ft, x->ks.k[i], x->ks.len[i], val, BENCH_VALUE_SIZE);
    }
    measure_row(o, r, x->c, &x->ft, &x->ks, "get hit");
    return true;
}

static void row_big(const struct bench_opts *o, struct hot_row *r)
{
    struct hot_ctx x;
    char val[BENCH_VALUE_SIZE];
    tc_hot_stats s;
    int i;

    memset(&x, 0, sizeof(x));
    r->keys = o->big_keys;
    r->size = HOT_SIZE_BIG;
    hkeys_init(&x.ks, o->big_keys);
    bench_pathf(x.dir, sizeof(x.dir), "%s/hot-big", o->work);
    bench_track_segment(x.dir);
    x.c = hot_open(x.dir, HOT_SIZE_BIG);
    if (!attached_or_note(x.c, r->note, sizeof(r->note))) {
        ctx_close(&x);
        return;
    }
    if (!o->json)
        fprintf(stderr,
                "hot: --big: preloading %d keys with tc_set_many "
                "(batches of %d)...\n",
                r->keys, FILL_BATCH);
    /* tc_set_many commits without publishing; one get per key then fills
     * the segment from SQLite (the fill path's versioned install). */
    r->preload_s = preload_many(x.c, &x.ks, 0, x.ks.n);
    if (!o->json)
        fprintf(stderr, "hot: --big: preload took %.1f s; filling...\n",
                r->preload_s);
    r->fill_s = fill_pass(x.c, &x.ks, 0, x.ks.n);
    s = hstats(x.c);
    if (s.items < (uint64_t)x.ks.n)
        snprintf(r->note, sizeof(r->note),
                 "only %llu of %d keys resident after the fill",
                 (unsigned long long)s.items, x.ks.n);
    if (!o->json)
        fprintf(stderr, "hot: --big: fill took %.1f s, %llu items resident\n",
                r->fill_s, (unsigned long long)s.items);
    ft_create(&x.ft, HOT_SIZE_BIG, (uint32_t)x.ks.n,
              FT_ITEM_HDR + 16 + BENCH_VALUE_SIZE);
    for (i = 0; i < x.ks.n; i++) {
        value_of(i, val);
        ft_insert(&x.ft, x.ks.k[i], x.ks.len[i], val, BENCH_VALUE_SIZE);
    }
    measure_row(o, r, x.c, &x.ft, &x.ks, "--big get hit");
    ctx_close(&x);
}

/* ---- row 3: two processes reading ---------------------------------- */

struct hs_proc {
    uint64_t t0, t1, c0, c1; /* wall and own CPU time, ns */
    long ops, bad;
    char err[200];
};

__attribute__((noinline)) static long scale_loop(tc_cache *c,
                                                 const struct ftab *ft,
                                                 const struct hkeys *ks,
                                                 bool one_key, long ops)
{
    char buf[256];
    size_t len = 0;
    int type, i = 0;
    long n, bad = 0;

    for (n = 0; n < ops; n++) {
        int k = one_key ? ks->perm[0] : ks->perm[i];
        if (!one_key && ++i == ks->n)
            i = 0;
        if (c) {
            tc_data key = tc_textn(ks->k[k], ks->len[k]);
            bad += tc_get_buf(c, &key, buf, sizeof(buf), &len, &type, NULL,
                              0) != TC_OK;
        } else {
            bad += !ft_get(ft, ks->k[k], ks->len[k], buf, sizeof(buf), &len);
            USE(buf);
        }
        bad += len != BENCH_VALUE_SIZE;
    }
    return bad;
}

static _Noreturn void scale_child(const char *dir, const struct ftab *ft,
                                  const struct hkeys *ks, bool tc, bool one_key,
                                  long ops, int ready_fd, int go_fd,
                                  struct hs_proc *out)
{
    tc_cache *c = NULL;
    char b;

    /* Its own handle, opened after the fork, as a worker process would. */
    if (tc) {
        int rc = tc_create(&c);
        if (rc == TC_OK)
            rc = tc_set_shards(c, BENCH_FAN_SHARDS);
        if (rc == TC_OK)
            rc = tc_set_hot_size(c, HOT_SIZE_SMALL);
        if (rc == TC_OK)
            rc = tc_open(c, dir, 0);
        if (rc != TC_OK) {
            snprintf(out->err, sizeof(out->err), "tc_open: %s (%s)",
                     tc_errname(rc), tc_errmsg());
            _exit(1);
        }
    }
    /* Warm-up: fault in this process's view of the keys. */
    out->bad = scale_loop(c, ft, ks, one_key, ks->n);
    if (write(ready_fd, "x", 1) != 1)
        _exit(2);
    close(ready_fd);
    if (read(go_fd, &b, 1) < 0)
        _exit(2);
    close(go_fd);
    out->t0 = bench_ns();
    out->c0 = bench_cpu_ns();
    out->bad += scale_loop(c, ft, ks, one_key, ops);
    out->c1 = bench_cpu_ns();
    out->t1 = bench_ns();
    out->ops = ops;
    if (out->bad)
        snprintf(out->err, sizeof(out->err), "%ld gets missed or failed",
                 out->bad);
    tc_close(c);
    _exit(out->bad ? 1 : 0);
}

/* Fork @procs readers that start together on a pipe barrier. */
static void scale_once(const char *dir, const struct ftab *ft,
                       const struct hkeys *ks, bool tc, bool one_key, long ops,
                       int procs, struct hs_proc *res)
{
    int ready[2], go[2], p;
    pid_t pids[2];

    memset(res, 0, sizeof(*res) * (size_t)procs);
    if (pipe(ready) || pipe(go))
        bench_die("hot scaling: pipe: %s", strerror(errno));
    fflush(NULL);
    for (p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            bench_die("hot scaling: fork: %s", strerror(errno));
        if (pids[p] == 0) {
            close(ready[0]);
            close(go[1]);
            scale_child(dir, ft, ks, tc, one_key, ops, ready[1], go[0],
                        &res[p]);
        }
    }
    close(ready[1]);
    close(go[0]);
    (void)bench_start_together(ready[0], go[1], procs);
    for (p = 0; p < procs; p++) {
        int st;
        if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0)
            bench_die("hot scaling: %s reader %d failed: %s",
                      tc ? "tiercache" : "floor", p,
                      res[p].err[0] ? res[p].err : "no detail");
    }
}

static void row_scale(const struct bench_opts *o, struct hot_scale *r,
                      struct hot_ctx *x)
{
    size_t cap = 2 * sizeof(struct hs_proc);
    struct hs_proc *res = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int run, e, v, p;

    if (res == MAP_FAILED)
        bench_die("hot scaling: mmap: %s", strerror(errno));
    r->ops = o->hot_ops;
    for (run = 0; run <= o->runs; run++) {
        if (!o->json)
            fprintf(stderr, "hot: two processes %s %d/%d\n",
                    run ? "run" : "warm-up", run, o->runs);
        for (v = 0; v < HS_VARIANTS; v++)
            for (e = 0; e < HS_ENGINES; e++)
                for (p = 1; p <= 2; p++) {
                    /* Alternate which engine and which process count
                     * go first, run by run. */
                    int eng = (e + run) % HS_ENGINES;
                    int procs = run % 2 ? 3 - p : p;
                    uint64_t first = UINT64_MAX, last = 0;
                    double cpu_rate = 0, cpu_sum = 0, span;
                    int i;

                    scale_once(x->dir, &x->ft, &x->ks, eng == 0, v == 1,
                               o->hot_ops, procs, res);
                    for (i = 0; i < procs; i++) {
                        double cpu = (double)(res[i].c1 - res[i].c0);
                        cpu_rate += (double)res[i].ops * 1e9 / cpu;
                        cpu_sum += cpu;
                        if (res[i].t0 < first)
                            first = res[i].t0;
                        if (res[i].t1 > last)
                            last = res[i].t1;
                    }
                    span = (double)(last - first);
                    if (run == 0)
                        continue;
                    r->cpu_rate[eng][v][procs - 1][run - 1] = cpu_rate;
                    r->wall_rate[eng][v][procs - 1][run - 1] =
                        (double)o->hot_ops * procs * 1e9 / span;
                    r->cores[eng][v][procs - 1][run - 1] = cpu_sum / span;
                }
    }
    munmap(res, cap);
    r->have = true;
}

/* ---- row 4: memory per item ---------------------------------------- */

static void snap_take(struct hot_mem_snap *x, tc_hot_stats s, int keys_set,
                      const double *prefix)
{
    /* CLOCK evicts the oldest items first, so the resident items are
     * about the last ones set: their mean key length is used. */
    uint64_t n = s.items < (uint64_t)keys_set ? s.items : (uint64_t)keys_set;
    x->items = s.items;
    x->size = s.size;
    x->free_bytes = s.free_bytes;
    x->keys_set = (uint64_t)keys_set;
    x->key_bytes =
        n ? (prefix[keys_set] - prefix[keys_set - (int)n]) / (double)n : 0;
    x->evictions = (double)s.evictions;
}

static void row_mem(const struct bench_opts *o, struct hot_mem *r)
{
    char dir[PATH_MAX];
    struct hkeys ks;
    struct hot_mem_snap cur;
    uint64_t size = o->quick ? HOT_SIZE_QUICK : HOT_SIZE_SMALL;
    /* More keys than a segment of this size can hold at 100-byte values
     * (64-byte chunks at least, 160 in practice). */
    int maxkeys = (int)(size / 64), lo = 0, i, small = 0;
    uint64_t t0, prev_items = 0;
    double *prefix;
    tc_cache *c;

    r->size = size;
    hkeys_init(&ks, maxkeys);
    prefix = xcalloc((size_t)maxkeys + 1, sizeof(double));
    for (i = 0; i < maxkeys; i++)
        prefix[i + 1] = prefix[i] + ks.len[i];
    bench_pathf(dir, sizeof(dir), "%s/hot-mem", o->work);
    bench_track_segment(dir);
    c = hot_open(dir, size);
    if (!attached_or_note(c, r->note, sizeof(r->note)))
        goto out;
    if (!o->json)
        fprintf(stderr, "hot: memory: filling a %llu MiB segment...\n",
                (unsigned long long)(size >> 20));
    t0 = bench_ns();
    /* Fill batch by batch until the item count stops growing (two batches
     * in a row add under 1% of their keys: the segment is full and CLOCK
     * evicts about as much as a batch adds). Snapshots at 10k and 100k
     * items, at the last batch before the first eviction, and at the end. */
    while (lo < maxkeys) {
        int hi = lo + FILL_BATCH < maxkeys ? lo + FILL_BATCH : maxkeys;
        tc_hot_stats s;
        preload_many(c, &ks, lo, hi);
        fill_pass(c, &ks, lo, hi);
        s = hstats(c);
        if (!r->first_cold && s.evictions == 0 && s.items < (uint64_t)hi)
            r->first_cold = s.items;
        if (s.evictions > 0 && !r->have_evict) {
            r->have_evict = true;
            r->evict = cur; /* the state after the last batch without */
            r->evict_items = s.items;
        }
        snap_take(&cur, s, hi, prefix);
        if (r->nsnap < HM_SNAPS - 1 && !s.evictions &&
            ((r->nsnap == 0 && s.items >= 10000) ||
             (r->nsnap == 1 && s.items >= 100000)))
            r->snap[r->nsnap++] = cur;
        /* Net growth under 1% of a batch (or a drop) counts as none. */
        small =
            s.items < prev_items + (uint64_t)(hi - lo) / 100 ? small + 1 : 0;
        prev_items = s.items;
        lo = hi;
        if (small >= 2)
            break;
    }
    r->fill_s = (double)(bench_ns() - t0) / 1e9;
    r->snap[r->nsnap++] = cur;
    r->full = small >= 2;
    r->have = cur.items > 0;
out:
    tc_close(c);
    bench_drop_segment(dir);
    bench_rmtree(dir);
    hkeys_free(&ks);
    free(prefix);
}

void hot_run(const struct bench_opts *o, struct hot_result *r)
{
    struct hot_ctx x;

    memset(r, 0, sizeof(*r));
    memset(&x, 0, sizeof(x));
    r->runs = o->runs;
    if (row_small(o, &r->small, &x))
        row_scale(o, &r->scale, &x);
    else
        snprintf(r->scale.note, sizeof(r->scale.note), "%s", r->small.note);
    ctx_close(&x);
    if (o->big)
        row_big(o, &r->big);
    else
        snprintf(r->big.note, sizeof(r->big.note),
                 "not run (pass --big: preloads %d keys through SQLite)",
                 o->big_keys);
    row_mem(o, &r->mem);
}

/* ---- report --------------------------------------------------------- */

struct hot_fig {
    double ns, floor, ratio, rmin, rmax, cpu, cpu_ratio;
};

static struct hot_fig fig_of(const struct hot_row *r, int side, int runs)
{
    double per[BENCH_MAX_RUNS];
    struct hot_fig f;
    int i;

    f.ns = bench_median(r->ns[side], runs);
    f.floor = bench_median(r->ns[H_FLOOR], runs);
    f.cpu = bench_median(r->cpu[side], runs);
    f.rmin = 1e300;
    f.rmax = 0;
    for (i = 0; i < runs; i++) {
        per[i] = r->ns[side][i] / r->ns[H_FLOOR][i];
        if (per[i] < f.rmin)
            f.rmin = per[i];
        if (per[i] > f.rmax)
            f.rmax = per[i];
    }
    /* Sides of one run ran back to back: per-run ratios drift less. */
    f.ratio = bench_median(per, runs);
    for (i = 0; i < runs; i++)
        per[i] = r->cpu[side][i] / r->cpu[H_FLOOR][i];
    f.cpu_ratio = bench_median(per, runs);
    return f;
}

static const char *const side_name[H_SIDES] = {
    [H_BUF] = "get hit (tc_get_buf)",
    [H_GET] = "get hit (tc_get)",
    [H_FLOOR] = "bare seqlock table",
};
static const char *const side_key[H_SIDES] = {
    [H_BUF] = "get_buf",
    [H_GET] = "get",
    [H_FLOOR] = "floor",
};

static void print_row(const struct hot_row *r, int runs, bool big)
{
    int side;

    if (big && !r->have && !r->keys) {
        printf("\nHot tier, get hit with many keys: %s\n", r->note);
        return;
    }
    printf("\nHot tier, get hit: FanoutCache 8 shards, %d keys \"key-N\", "
           "%d-byte TC_TEXT values,\nhot_size %llu MiB; %ld gets per phase "
           "in a fixed random key order; ns/op (wall), median of %d runs\n",
           r->keys, BENCH_VALUE_SIZE, (unsigned long long)(r->size >> 20),
           r->ops, runs);
    if (!r->have) {
        printf("not measured: %s\n", r->note);
        return;
    }
    printf("floor = bare seqlock table of the same layout (same bucket "
           "count, same key hash), in this run;\nratio = median of per-run "
           "tiercache/floor; cpu = the same ratio in CPU time\n");
    if (big)
        printf("preload: %.1f s (tc_set_many, batches of %d), fill: %.1f s "
               "(one tc_get_buf per key)\n",
               r->preload_s, FILL_BATCH, r->fill_s);
    else
        printf("preload: %.1f s (tc_set, which publishes to the segment)\n",
               r->preload_s);
    printf("%-22s %9s %12s %9s %12s %7s %11s %7s %8s %s\n", "operation",
           "tiercache", "ops/s", "floor", "ops/s", "ratio", "(min-max)", "cpu",
           "goal", "");
    for (side = 0; side < H_FLOOR; side++) {
        struct hot_fig f = fig_of(r, side, runs);
        char range[32], goal[16];
        bool met = big ? f.ratio <= GOAL_BIG_RATIO : f.ns <= GOAL_HOT_NS;
        snprintf(range, sizeof(range), "(%.2f-%.2f)", f.rmin, f.rmax);
        if (big)
            snprintf(goal, sizeof(goal), "<=%.1fx", GOAL_BIG_RATIO);
        else
            snprintf(goal, sizeof(goal), "<=%.0fns", GOAL_HOT_NS);
        printf("%-22s %9.1f %12.0f %9.1f %12.0f %6.2fx %11s %6.2fx %8s %s\n",
               side_name[side], f.ns, 1e9 / f.ns, f.floor, 1e9 / f.floor,
               f.ratio, range, f.cpu_ratio, goal, met ? "MET" : "MISSED");
    }
    printf("hot-tier hits in the timed gets: %llu of %llu; items resident: "
           "%llu; keys the floor\ncould not place (both buckets full): %u",
           (unsigned long long)(r->lib_ops - r->lib_misses),
           (unsigned long long)r->lib_ops, (unsigned long long)r->resident,
           r->floor_unplaced);
    if (r->note[0])
        printf(" (%s)", r->note);
    printf("\n");
}

static double scale_of(const struct hot_scale *s, int e, int v, bool cpu,
                       int runs, double *lo, double *hi)
{
    double per[BENCH_MAX_RUNS];
    int i;

    *lo = 1e300;
    *hi = 0;
    for (i = 0; i < runs; i++) {
        per[i] = cpu ? s->cpu_rate[e][v][1][i] / s->cpu_rate[e][v][0][i]
                     : s->wall_rate[e][v][1][i] / s->wall_rate[e][v][0][i];
        if (per[i] < *lo)
            *lo = per[i];
        if (per[i] > *hi)
            *hi = per[i];
    }
    return bench_median(per, runs);
}

static void print_scale(const struct hot_scale *s, int keys, int runs)
{
    static const char *const eng[HS_ENGINES] = {"tiercache (tc_get_buf)",
                                                "bare seqlock table"};
    static const char *const var[HS_VARIANTS] = {"all", "one"};
    int v, e;

    printf("\nHot tier, two processes reading (forked after the preload, "
           "own handle each,\nstart on a pipe barrier; keys: all %d keys in "
           "a fixed random order, or one key;\n%ld gets per process; median "
           "of %d runs)\n",
           keys, s->ops, runs);
    if (!s->have) {
        printf("not measured: %s\n", s->note);
        return;
    }
    printf("cpu ops/s = sum over processes of gets / own CPU time "
           "(CLOCK_PROCESS_CPUTIME_ID);\nwall ops/s = all gets / (last end - "
           "first start); cores = CPU time / that span\n");
    printf("%-22s %-8s %11s %11s %7s %11s %11s %11s %6s %5s %8s %s\n", "engine",
           "keys", "1p cpu/s", "2p cpu/s", "scale", "(min-max)", "1p wall/s",
           "2p wall/s", "scale", "cores", "goal", "");
    for (v = 0; v < HS_VARIANTS; v++)
        for (e = 0; e < HS_ENGINES; e++) {
            double clo, chi, wlo, whi;
            double sc = scale_of(s, e, v, true, runs, &clo, &chi);
            double sw = scale_of(s, e, v, false, runs, &wlo, &whi);
            char range[32];
            snprintf(range, sizeof(range), "(%.2f-%.2f)", clo, chi);
            printf("%-22s %-8s %11.0f %11.0f %6.2fx %11s %11.0f %11.0f "
                   "%5.2fx %5.2f %8s %s\n",
                   eng[e], var[v], bench_median(s->cpu_rate[e][v][0], runs),
                   bench_median(s->cpu_rate[e][v][1], runs), sc, range,
                   bench_median(s->wall_rate[e][v][0], runs),
                   bench_median(s->wall_rate[e][v][1], runs), sw,
                   bench_median(s->cores[e][v][1], runs),
                   e == 0 ? ">=1.8x" : "control",
                   e == 0             ? (sc >= GOAL_SCALE ? "MET" : "MISSED")
                   : sc >= GOAL_SCALE ? "scales"
                                      : "DOES NOT SCALE on this machine (cpu)");
            if (e == 1 && sw < GOAL_SCALE)
                printf("%-31s control wall scaling %.2fx (%.2f-%.2f): the "
                       "two readers did not get two cores' worth of wall "
                       "time\n",
                       "", sw, wlo, whi);
        }
}

static double over_of(const struct hot_mem_snap *s)
{
    return (double)(s->size - s->free_bytes) / (double)s->items - s->key_bytes -
           BENCH_VALUE_SIZE;
}

static void print_snap(const struct hot_mem_snap *s, const char *what,
                       bool verdict)
{
    double used = (double)(s->size - s->free_bytes), over = over_of(s);
    printf("%-9llu %9llu %11llu %11.0f %10.1f %9.1f %10.1f %8s %-6s %s\n",
           (unsigned long long)s->items, (unsigned long long)s->keys_set,
           (unsigned long long)s->size, used, used / (double)s->items,
           s->key_bytes + BENCH_VALUE_SIZE, over, verdict ? "<=64B" : "",
           !verdict                 ? ""
           : over <= GOAL_MEM_BYTES ? "MET"
                                    : "MISSED",
           what);
}

static void print_mem(const struct hot_mem *m)
{
    int i;

    printf("\nHot-tier memory per item beyond key and value bytes: "
           "hot_size %llu MiB,\n%d-byte TC_TEXT values, keys \"key-N\"; "
           "filled with tc_set_many + one tc_get_buf per key\n(batches of "
           "%d) until the item count stops growing; overhead = (size - "
           "free_bytes) / items - key - value\n",
           (unsigned long long)(m->size >> 20), BENCH_VALUE_SIZE, FILL_BATCH);
    if (!m->have) {
        printf("not measured: %s\n", m->note);
        return;
    }
    printf("%-9s %9s %11s %11s %10s %9s %10s %8s %-6s %s\n", "items",
           "keys set", "size", "used", "used/item", "key+val", "overhead",
           "goal", "", "state");
    for (i = 0; i + 1 < m->nsnap; i++)
        print_snap(&m->snap[i], "filling", false);
    if (m->have_evict)
        print_snap(&m->evict, "last batch before the first eviction", false);
    /* The goal is about the default segment; a --quick segment of 2 MiB
     * is mostly fixed parts and gets no verdict. */
    print_snap(&m->snap[m->nsnap - 1],
               m->full ? "full: item count stopped growing"
                       : "ran out of keys before the segment was full",
               m->size == HOT_SIZE_SMALL);
    if (m->nsnap >= 2) {
        const struct hot_mem_snap *a = &m->snap[0], *b = &m->snap[m->nsnap - 1];
        double du = (double)a->free_bytes - (double)b->free_bytes;
        double dn = (double)b->items - (double)a->items;
        printf("marginal, %llu -> %llu items (leaves out the fixed index and "
               "process table):\n  %.1f B per item beyond key and value\n",
               (unsigned long long)a->items, (unsigned long long)b->items,
               du / dn - (b->key_bytes + BENCH_VALUE_SIZE));
    }
    if (m->have_evict)
        printf("first eviction (tc_hot_stats counts both kinds: a key whose "
               "two buckets are full\n  displaces an item, or memory is "
               "short): in the batch that took the segment\n  from %llu to "
               "%llu items, with %llu bytes free before it\n",
               (unsigned long long)m->evict.items,
               (unsigned long long)m->evict_items,
               (unsigned long long)m->evict.free_bytes);
    if (m->first_cold)
        printf("a key first stayed cold (not installed, no eviction yet) at "
               "%llu items\n",
               (unsigned long long)m->first_cold);
    printf("fill took %.1f s\n", m->fill_s);
}

void hot_print(const struct bench_opts *o, const struct hot_result *r)
{
    print_row(&r->small, r->runs, false);
    print_scale(&r->scale, r->small.keys, r->runs);
    print_row(&r->big, r->runs, true);
    print_mem(&r->mem);
    (void)o;
}

static void json_row(const char *name, const struct hot_row *r, int runs,
                     bool big)
{
    int side;

    printf("    \"%s\": {\"measured\": %s, \"note\": \"%s\", \"keys\": %d,"
           " \"hot_size\": %llu, \"gets_per_phase\": %ld,"
           " \"preload_s\": %.2f, \"fill_s\": %.2f, \"timed_gets\": %llu,"
           " \"hot_misses\": %llu, \"resident\": %llu,"
           " \"floor_unplaced\": %u",
           name, r->have ? "true" : "false", r->note, r->keys,
           (unsigned long long)r->size, r->ops, r->preload_s, r->fill_s,
           (unsigned long long)r->lib_ops, (unsigned long long)r->lib_misses,
           (unsigned long long)r->resident, r->floor_unplaced);
    if (r->have)
        for (side = 0; side < H_FLOOR; side++) {
            struct hot_fig f = fig_of(r, side, runs);
            bool met = big ? f.ratio <= GOAL_BIG_RATIO : f.ns <= GOAL_HOT_NS;
            printf(",\n      \"%s\": {\"tiercache_ns\": %.2f, \"floor_ns\": "
                   "%.2f, \"ratio\": %.4f, \"ratio_min\": %.4f, "
                   "\"ratio_max\": %.4f, \"cpu_ratio\": %.4f, "
                   "\"goal\": \"%s\", \"met\": %s}",
                   side_key[side], f.ns, f.floor, f.ratio, f.rmin, f.rmax,
                   f.cpu_ratio, big ? "ratio <= 1.3" : "ns <= 40",
                   met ? "true" : "false");
        }
    printf("}");
}

void hot_json(const struct bench_opts *o, const struct hot_result *r)
{
    const struct hot_scale *s = &r->scale;
    const struct hot_mem *m = &r->mem;
    int e, v, i;

    (void)o;
    printf("  \"hot\": {\n");
    json_row("get_hit", &r->small, r->runs, false);
    printf(",\n");
    json_row("get_hit_big", &r->big, r->runs, true);
    printf(",\n    \"two_processes\": {\"measured\": %s, \"note\": \"%s\","
           " \"gets_per_process\": %ld",
           s->have ? "true" : "false", s->note, s->ops);
    for (e = 0; s->have && e < HS_ENGINES; e++)
        for (v = 0; v < HS_VARIANTS; v++) {
            double lo, hi, sc = scale_of(s, e, v, true, r->runs, &lo, &hi);
            double wlo, whi, sw = scale_of(s, e, v, false, r->runs, &wlo, &whi);
            printf(",\n      \"%s_%s\": {\"cpu_ops_1\": %.0f, \"cpu_ops_2\": "
                   "%.0f, \"scale_cpu\": %.4f, \"scale_cpu_min\": %.4f, "
                   "\"scale_cpu_max\": %.4f, \"wall_ops_1\": %.0f, "
                   "\"wall_ops_2\": %.0f, \"scale_wall\": %.4f, "
                   "\"cores_2\": %.3f}",
                   e ? "floor" : "tiercache", v ? "one_key" : "all_keys",
                   bench_median(s->cpu_rate[e][v][0], r->runs),
                   bench_median(s->cpu_rate[e][v][1], r->runs), sc, lo, hi,
                   bench_median(s->wall_rate[e][v][0], r->runs),
                   bench_median(s->wall_rate[e][v][1], r->runs), sw,
                   bench_median(s->cores[e][v][1], r->runs));
        }
    printf("},\n    \"memory\": {\"measured\": %s, \"note\": \"%s\","
           " \"hot_size\": %llu, \"fill_s\": %.2f, \"first_cold\": %llu,"
           " \"full\": %s, \"first_eviction_after_items\": %llu,"
           " \"first_eviction_free_bytes\": %llu, \"snapshots\": [",
           m->have ? "true" : "false", m->note, (unsigned long long)m->size,
           m->fill_s, (unsigned long long)m->first_cold,
           m->full ? "true" : "false",
           (unsigned long long)(m->have_evict ? m->evict.items : 0),
           (unsigned long long)(m->have_evict ? m->evict.free_bytes : 0));
    for (i = 0; i < m->nsnap; i++) {
        const struct hot_mem_snap *x = &m->snap[i];
        double used = (double)(x->size - x->free_bytes);
        double kv = x->key_bytes / (double)x->keys_set + BENCH_VALUE_SIZE;
        printf("%s{\"items\": %llu, \"keys_set\": %llu, \"size\": %llu,"
               " \"free_bytes\": %llu, \"overhead_per_item\": %.2f}",
               i ? ", " : "", (unsigned long long)x->items,
               (unsigned long long)x->keys_set, (unsigned long long)x->size,
               (unsigned long long)x->free_bytes, used / (double)x->items - kv);
    }
    printf("]}\n  }");
}
