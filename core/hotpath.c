/*
 * hotpath.c - where the cold tier meets the hot tier (shm/hot.h):
 * attaching at open, gets through the segment with fills from SQLite, and
 * the write-through hooks (docs/ARCHITECTURE.md, "Write path").
 *
 * Intents come from SQLite itself: a preupdate hook on every read-write
 * connection sees each Cache row a transaction inserts, deletes or changes
 * (whatever code path did it: set, cull, evict, clear, check --fix) and
 * removes that key from the hot tier before COMMIT.
 */
/* The preupdate API is declared only under this macro; meson.build checks
 * that the linked SQLite provides it. */
#define SQLITE_ENABLE_PREUPDATE_HOOK 1

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../shm/hot.h"
#include "../shm/read.h"
#include "internal.h"

/* The current segment of a handle (another thread may swap in a new one
 * after a retirement; old mappings live until tc_close). */
static struct tc_hot *hot_of(tc_cache *c)
{
    return atomic_load_explicit(&c->hot, memory_order_acquire);
}

/* The foreign-writer check of a shard against SQLite's sequence. True if
 * foreign commits were found (the shard's hot items are gone). */
static bool foreign_check(tc_cache *c, struct tc_hot *h, int shard)
{
    uint64_t seq;
    if (tc_commit_seq(c, shard, &seq) != TC_OK)
        return false;
    return tc_hot_foreign_check(h, shard, seq);
}

static void foreign_check_all(tc_cache *c, struct tc_hot *h)
{
    for (int i = 0; i < c->nshards; i++)
        (void)foreign_check(c, h, i);
}

static int read_meta(tc_cache *c, char *id, size_t idlen, uint64_t *hot_size,
                     uint64_t *epoch)
{
    struct tc_work w;
    int rc = tc__work_read(c, 0, &w);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = tc__prepare(w.k,
                     "SELECT key, value FROM TiercacheMeta"
                     " WHERE key IN ('cache_id', 'hot_size', 'hot_epoch')",
                     &st);
    id[0] = 0;
    *hot_size = 0;
    *epoch = 0;
    while (rc == TC_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        if (k && !strcmp(k, "cache_id")) {
            const char *v = (const char *)sqlite3_column_text(st, 1);
            snprintf(id, idlen, "%s", v ? v : "");
        } else if (k && !strcmp(k, "hot_size")) {
            sqlite3_int64 v = sqlite3_column_int64(st, 1);
            *hot_size = v > 0 ? (uint64_t)v : 0;
        } else if (k && !strcmp(k, "hot_epoch")) {
            sqlite3_int64 v = sqlite3_column_int64(st, 1);
            *epoch = v > 0 ? (uint64_t)v : 0;
        }
    }
    sqlite3_finalize(st);
    return tc__work_end(&w, rc);
}

/* Attach (creating when @create) the segment of @c. Failures leave the
 * cache cold-only; the reason stays in tc_errmsg for tc_hot_stats users. */
static struct tc_hot *attach(tc_cache *c, bool create)
{
    char id[128];
    uint64_t size, epoch;
    struct stat st;
    if (!c->shard[0].has_meta || read_meta(c, id, sizeof id, &size, &epoch))
        return NULL;
    /* Remembered even when no segment is attached: a change of it at a
     * later BEGIN means one was created. */
    atomic_store(&c->hot_epoch, epoch);
    if (!id[0] || size == 0 || stat(c->shard[0].dbpath, &st) != 0)
        return NULL;
    struct tc_hot_params p = {
        .dir = c->dir,
        .cache_id = id,
        .size = create ? size : 0,
        .nshards = c->nshards,
        .uid = st.st_uid,
        .gid = st.st_gid,
        .mode = st.st_mode & 0777,
        .readonly = c->readonly,
    };
    struct tc_hot *h = NULL;
    if (tc_hot_attach(&p, &h))
        return NULL;
    return h;
}

/* Announce a new segment in @shard and open it: bump hot_epoch in a write
 * transaction, so every tiercache writer that begins afterwards sees the
 * epoch change at its BEGIN and attaches before it changes a row; then
 * open the shard with the sequence of that commit as its floor. A writer
 * that committed before it is covered by the floor. */
static void announce_shard(tc_cache *c, struct tc_hot *h, int shard)
{
    struct tc_work w;
    if (c->readonly || tc__work_write(c, shard, TC_RETRY, &w) != TC_OK)
        return;
    int rc = tc__exec(w.k->db,
                      "INSERT OR IGNORE INTO TiercacheMeta VALUES"
                      " ('hot_epoch', 0)",
                      "announcing the hot tier");
    if (rc == TC_OK)
        rc = tc__exec(w.k->db,
                      "UPDATE TiercacheMeta SET value = value + 1"
                      " WHERE key = 'hot_epoch'",
                      "announcing the hot tier");
    uint64_t f = 0;
    sqlite3_stmt *st = rc == TC_OK ? tc__stmt(w.k, ST_SEQ_GET) : NULL;
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        f = v > 0 ? (uint64_t)v : 0;
    }
    if (st)
        sqlite3_reset(st);
    if (tc__work_end(&w, rc) == TC_OK && f)
        tc_hot_open_shard(h, shard, f);
}

/* A segment created by us, or one whose creator died before opening every
 * shard: open the closed shards. */
static void open_closed_shards(tc_cache *c, struct tc_hot *h)
{
    for (int i = 0; i < c->nshards; i++)
        if (tc_hot_floor(h, i) == TC_HOT_CLOSED)
            announce_shard(c, h, i);
}

void tc__hot_open(tc_cache *c)
{
    c->hot_read = c->hot_size != 0;
    struct tc_hot *h = attach(c, c->hot_read && !c->readonly);
    const char *ms = getenv("TIERCACHE_FOREIGN_CHECK_MS");
    c->foreign_check_ms = ms && *ms ? strtoull(ms, NULL, 10) : 1000;
    atomic_store(&c->hot, h);
    if (h) {
        (void)tc_hot_recover_dead(h);
        tc__hot_floor_repair(c, h);
        /* The segment outlives processes: writes made while nobody had it
         * mapped are found here. */
        foreign_check_all(c, h);
    }
}

void tc__hot_close(tc_cache *c)
{
    tc_hot_detach(atomic_exchange(&c->hot, NULL));
    for (size_t i = 0; i < c->hot_old_count; i++)
        tc_hot_detach(c->hot_old[i]);
    free(c->hot_old);
    c->hot_old = NULL;
    c->hot_old_count = 0;
}

void tc__hot_after_fork(tc_cache *c)
{
    struct tc_hot *h = hot_of(c);
    if (h)
        (void)tc_hot_after_fork(h);
}

/* A retired segment: switch to its replacement. Old views are kept until
 * close, since other threads may still be reading through them. */
static struct tc_hot *hot_current(tc_cache *c)
{
    struct tc_hot *h = hot_of(c);
    if (!h || !tc_hot_retired(h))
        return h;
    pthread_mutex_lock(&c->hot_lock);
    if (hot_of(c) == h) {
        struct tc_hot **grown =
            realloc(c->hot_old, (c->hot_old_count + 1) * sizeof *grown);
        if (grown) {
            c->hot_old = grown;
            c->hot_old[c->hot_old_count++] = h;
            struct tc_hot *n = attach(c, c->hot_read && !c->readonly);
            atomic_store(&c->hot, n);
            if (n && !tc__txn_find(c))
                open_closed_shards(c, n);
        }
    }
    pthread_mutex_unlock(&c->hot_lock);
    return hot_of(c);
}

bool tc__hot_self_id(tc_cache *c, uint32_t *slot, uint32_t *gen, uint64_t *seg)
{
    tc__after_fork_check(c); /* a forked child answers with its own slot */
    struct tc_hot *h = hot_current(c);
    return h && tc_hot_self_id(h, slot, gen, seg);
}

int tc__hot_id_alive(tc_cache *c, uint32_t slot, uint32_t gen, uint64_t seg)
{
    tc__after_fork_check(c);
    struct tc_hot *h = hot_current(c);
    return h ? tc_hot_id_alive(h, slot, gen, seg) : -1;
}

/* A process without a segment (hot_size 0, or opened before the segment
 * existed) learns of a new one from hot_epoch, read at BEGIN under the
 * write lock, and attaches before its transaction changes any row. */
static struct tc_hot *hot_for_write(tc_cache *c, struct tc_conn *k)
{
    struct tc_hot *h = hot_current(c);
    if (h || c->readonly || k->hot_epoch == atomic_load(&c->hot_epoch))
        return h;
    pthread_mutex_lock(&c->hot_lock);
    if (!hot_of(c)) {
        struct tc_hot *n = attach(c, false);
        if (n)
            atomic_store(&c->hot, n);
    }
    pthread_mutex_unlock(&c->hot_lock);
    return hot_of(c);
}

/* Whether gets may be served by the hot tier at all: this process reads
 * through it and the calling thread has no transaction open (which must
 * see its own uncommitted writes). The thread-local transaction lookup
 * happens only when some thread has a transaction open on the cache. */
static bool reads_hot(tc_cache *c)
{
    return c->hot_read &&
           (!atomic_load_explicit(&c->txn_open, memory_order_relaxed) ||
            !tc__txn_find(c));
}

/* The same for one shard, before a fill: its gets may be served hot. */
static bool shard_reads_hot(tc_cache *c, int shard)
{
    return atomic_load_explicit(&c->hot_modes[shard], memory_order_relaxed) !=
               TC_HOT_COLD &&
           reads_hot(c);
}

static struct tc_hot_read read_of(tc_cache *c, int shard, bool quiet)
{
    return (struct tc_hot_read){shard, c->clock, c->clock_arg, c->hot_modes,
                                quiet};
}

/* Bounded lag for foreign writers while only hits happen: once per
 * interval (per shard, across processes) one hit pays a SQLite read. */
static __attribute__((noinline)) bool
foreign_due_slow(tc_cache *c, struct tc_hot *h, int shard)
{
    return tc_hot_check_due(h, shard, c->foreign_check_ms) &&
           foreign_check(c, h, shard);
}

/* One hit in 64 of this handle looks at the clock for the foreign-writer
 * check (a relaxed tick: lost updates between threads only delay one). */
static inline bool foreign_tick(tc_cache *c)
{
    unsigned t = atomic_load_explicit(&c->hit_tick, memory_order_relaxed);
    atomic_store_explicit(&c->hit_tick, t + 1, memory_order_relaxed);
    return (t & 63) == 0 && c->foreign_check_ms;
}

static inline bool foreign_due(tc_cache *c, struct tc_hot *h, int shard)
{
    return foreign_tick(c) && foreign_due_slow(c, h, shard);
}

/* The segment to read: the retired check is the read's own (shm answers
 * TC_HOT_RETIRED), so a hit makes no separate call for it. */
#define RETIRED_SWITCHES 3

int tc__hot_get_buf(tc_cache *c, int shard, const tc_data *key, void *buf,
                    size_t cap, size_t *len, int *type, double *expire)
{
    struct tc_hot *h = hot_of(c);
    if (!h || !reads_hot(c))
        return TC_HOT_MISS;
    struct tc_hot_read rd = read_of(c, shard, false);
    int found, r, n = 0;
    while ((r = tc_hot_get_buf(h, key, &rd, buf, cap, len, type, expire,
                               &found)) == TC_HOT_RETIRED)
        if (++n > RETIRED_SWITCHES || !(h = hot_current(c)))
            return TC_HOT_MISS;
    if (r != TC_HOT_MISS && foreign_due(c, h, found))
        return TC_HOT_MISS;
    return r;
}

int tc__hot_get(tc_cache *c, int shard, const tc_data *key, tc_item *out)
{
    struct tc_hot *h = hot_of(c);
    if (!h || !reads_hot(c))
        return TC_HOT_MISS;
    struct tc_hot_read rd = read_of(c, shard, false);
    int found, r, n = 0;
    tc_item tmp = TC_ITEM_INIT; /* @out changes only on a hit */
    while ((r = tc_hot_get(h, key, &rd, &tmp, &found)) == TC_HOT_RETIRED)
        if (++n > RETIRED_SWITCHES || !(h = hot_current(c)))
            return TC_HOT_MISS;
    if (r != TC_HOT_MISS && foreign_due(c, h, found))
        r = TC_HOT_MISS;
    if (r == TC_HOT_HIT)
        tc__item_move(out, &tmp);
    else
        tc_item_clear(&tmp);
    return r;
}

/* ---- the public gets' hit path ------------------------------------------ */

/* The segment a public get may be served from, or NULL: the handle is
 * open and has seen no fork, the key could be one, this process reads
 * through the hot tier and the thread has no transaction open. */
static inline struct tc_hot *hit_segment(tc_cache *c, const tc_data *key)
{
    if (!c || !c->opened || tc__forked(c) || !tc__key_plausible(key))
        return NULL;
    struct tc_hot *h = hot_of(c);
    return h && reads_hot(c) ? h : NULL;
}

/* tc_get_buf and tc_get start here. A hit is served by the inline read of
 * shm/read.h, compiled into this one function; anything else (errors, a
 * fork, a retired segment, a miss) continues in ops.c. */
int tc_get_buf(tc_cache *c, const tc_data *key, void *buf, size_t cap,
               size_t *len, int *type, double *expire_time, unsigned flags)
{
    struct tc_hot *h;
    if (len && (buf || !cap) && (h = hit_segment(c, key))) {
        struct tc_hot_read rd = read_of(c, tc__hot_shard_of(c, key), false);
        int shard;
        int r = hot_read_fast(h, key, rd, buf, cap, NULL, len, type,
                              expire_time, &shard);
        if (r == TC_HOT_HIT || r == TC_HOT_TOOSMALL) {
            if (foreign_due(c, h, shard))
                r = TC_HOT_MISS; /* a foreign writer: read SQLite */
            else if (r == TC_HOT_HIT)
                return TC_OK;
            else
                return tc__err(TC_ETOOSMALL,
                               "tc_get_buf: value has %zu bytes, buffer %zu",
                               *len, cap);
        }
        if (r == TC_HOT_MISS)
            return tc__get_buf_cold(c, key, buf, cap, len, type, expire_time,
                                    flags, true);
    }
    return tc__get_buf_cold(c, key, buf, cap, len, type, expire_time, flags,
                            false);
}

int tc_get(tc_cache *c, const tc_data *key, tc_item *out, unsigned flags)
{
    struct tc_hot *h;
    if (out && (h = hit_segment(c, key))) {
        struct tc_hot_read rd = read_of(c, tc__hot_shard_of(c, key), false);
        int shard, r;
        if (foreign_tick(c)) {
            /* tc_get leaves @out untouched unless it returns TC_OK, and
             * this hit may yet go to SQLite (a foreign writer's check):
             * read into a local first, with the general read. */
            tc_item tmp = TC_ITEM_INIT;
            r = tc_hot_get(h, key, &rd, &tmp, &shard);
            if (r == TC_HOT_HIT && !foreign_due_slow(c, h, shard)) {
                tc__item_move(out, &tmp);
                return TC_OK;
            }
            tc_item_clear(&tmp);
            if (r == TC_HOT_HIT)
                r = TC_HOT_MISS;
        } else {
            /* @out is written only on a hit. */
            r = hot_read_fast(h, key, rd, NULL, 0, out, NULL, NULL, NULL,
                              &shard);
            if (r == TC_HOT_HIT)
                return TC_OK;
        }
        if (r != TC_HOT_RETIRED)
            return tc__get_cold(c, key, out, flags, true);
    }
    return tc__get_cold(c, key, out, flags, false);
}

/* Before a cold read of a hot miss: returns true if the caller should fill
 * afterwards. Another live filler of the key makes us wait up to 2 ms for
 * its value (a hit then fills @out and *hit is set). */
bool tc__hot_fill_begin(tc_cache *c, int shard, const tc_data *key,
                        tc_item *out, bool *hit)
{
    struct tc_hot *h;
    *hit = false;
    if (!shard_reads_hot(c, shard) || c->readonly || !(h = hot_current(c)))
        return false;
    struct tc_hot_read rd = read_of(c, shard, true);
    if (tc_hot_fill_lease(h, shard, key, 0)) {
        /* The previous holder may have installed the value (and dropped
         * its lease) between our miss and our lease: look once more, or
         * we would read SQLite and fill the same version again. */
        if (out && tc_hot_get(h, key, &rd, out, NULL) == TC_HOT_HIT) {
            tc_hot_fill_cancel(h, shard, key);
            *hit = true;
            return false;
        }
        return true;
    }
    for (int i = 0; i < 40; i++) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
        if (out && tc_hot_get(h, key, &rd, out, NULL) == TC_HOT_HIT) {
            *hit = true;
            return false;
        }
    }
    return false;
}

void tc__hot_fill_end(tc_cache *c, int shard, const tc_data *key,
                      const tc_item *it, bool found, uint64_t snap)
{
    struct tc_hot *h = hot_of(c);
    if (!h)
        return;
    /* The snapshot's sequence doubles as a foreign-writer check. */
    if (found)
        (void)tc_hot_foreign_check(h, shard, snap);
    if (found)
        tc_hot_fill(h, shard, key, it, snap);
    else
        tc_hot_fill_cancel(h, shard, key);
}

void tc__hot_write_begin(tc_cache *c, struct tc_conn *k)
{
    struct tc_hot *h = hot_for_write(c, k);
    k->seen_set = false;
    if (!h || !k->seq)
        return;
    /* Commits since the last one tiercache reflected came from elsewhere
     * (python-diskcache, the sqlite3 shell): drop the shard's items. */
    tc_hot_foreign_check(h, k->shard, k->seq - 1);
    tc_hot_write_begin(h, k->shard, k->seq);
}

void tc__hot_precommit(tc_cache *c, struct tc_conn *k)
{
    struct tc_hot *h = hot_of(c);
    if (!h || !k->seq)
        return;
    /* The sequence after this transaction's own changes (its triggers
     * moved it): what the hot tier will reflect once we commit. */
    sqlite3_stmt *st = tc__stmt(k, ST_SEQ_GET);
    if (!st)
        return;
    if (sqlite3_step(st) == SQLITE_ROW) {
        sqlite3_int64 f = sqlite3_column_int64(st, 0);
        if (f > 0) {
            k->seen_f = (uint64_t)f;
            k->seen_prev = tc_hot_seen_set(h, k->shard, k->seen_f);
            k->seen_set = true;
        }
    }
    sqlite3_reset(st);
}

void tc__hot_write_abort(tc_cache *c, struct tc_conn *k)
{
    struct tc_hot *h = hot_of(c);
    if (h && k->seen_set)
        tc_hot_seen_restore(h, k->shard, k->seen_f, k->seen_prev);
    k->seen_set = false;
    if (h && k->seq)
        tc_hot_write_abort(h, k->shard, k->seq);
}


void tc__hot_publish(tc_cache *c, int shard, const tc_data *key,
                     const tc_data *val, const tc_data *tag, double expire,
                     uint64_t n)
{
    struct tc_hot *h = hot_of(c);
    if (h && n)
        tc_hot_publish(h, shard, key, val, tag, expire, n);
}

/* A writer that died between BEGIN and COMMIT left the floor above what
 * SQLite committed: fills of that shard would fail until its next write.
 * Commit an empty write transaction there (it bumps the sequence). */
void tc__hot_floor_repair(tc_cache *c, struct tc_hot *h)
{
    if (c->readonly)
        return;
    open_closed_shards(c, h);
    for (int i = 0; i < c->nshards; i++) {
        uint64_t seq = 0;
        if (tc_hot_floor(h, i) == 0 || tc_hot_floor(h, i) == TC_HOT_CLOSED ||
            tc_commit_seq(c, i, &seq) != TC_OK || tc_hot_floor(h, i) <= seq)
            continue;
        struct tc_work w;
        if (tc__work_write(c, i, 0, &w) == TC_OK)
            (void)tc__work_end(&w, TC_OK);
    }
}

/* ---- access data: hot hits folded into SQLite ---------------------------- */

struct fold_ctx {
    sqlite3_stmt *st;
    int rc;
};

static void fold_one(void *arg, const tc_data *key, uint32_t atime,
                     uint64_t count)
{
    struct fold_ctx *x = arg;
    if (x->rc)
        return;
    sqlite3_bind_double(x->st, 1, (double)atime);
    sqlite3_bind_int64(x->st, 2,
                       count > INT64_MAX ? INT64_MAX : (int64_t)count);
    tc__bind_data(x->st, 3, key);
    int src = sqlite3_step(x->st);
    sqlite3_reset(x->st);
    if (src != SQLITE_DONE)
        x->rc = tc__sqlerr(sqlite3_db_handle(x->st), src, "folding accesses");
}

/* The fold's UPDATE for @policy. Never move access data backwards: hits
 * may be older than a cold get's update. LRU takes the time (?1), LFU the
 * estimated count (?2). */
static int prepare_fold(struct tc_conn *k, int policy, sqlite3_stmt **st)
{
    return tc__prepare(k,
                       policy == TC_POLICY_LRU
                           ? "UPDATE Cache SET access_time ="
                             " MAX(access_time, ?1) + 0 * ?2"
                             " WHERE key = ?3 AND raw = 1"
                           : "UPDATE Cache SET access_count ="
                             " MAX(access_count, ?2) + 0 * ?1"
                             " WHERE key = ?3 AND raw = 1",
                       st);
}

int tc__hot_fold(struct tc_work *w, bool force)
{
    tc_cache *c = w->c;
    struct tc_hot *h = hot_of(c);
    int shard = w->s->index;
    if (!h ||
        (w->set.policy != TC_POLICY_LRU && w->set.policy != TC_POLICY_LFU))
        return TC_OK;
    if (!force && !tc_hot_check_due_fold(h, shard))
        return TC_OK;
    struct fold_ctx x = {NULL, TC_OK};
    int rc = prepare_fold(w->k, w->set.policy, &x.st);
    if (rc)
        return rc;
    tc_hot_access_fold(h, shard, fold_one, &x);
    sqlite3_finalize(x.st);
    return x.rc;
}

/* The worker's fold: the shard's unfolded accesses are first copied out
 * of the segment (no SQLite lock held meanwhile), then written in write
 * transactions of at most @batch rows, so a large fold never holds a
 * shard's write lock for long. Accesses collected but not written (a busy
 * timeout, the process killed) are lost: that costs culling accuracy,
 * never data. */
struct fold_rec {
    void *key; /* copy, 8-byte aligned for TC_INT/TC_REAL */
    size_t len;
    int type;
    uint32_t atime;
    uint64_t count;
};

struct fold_list {
    struct fold_rec *v;
    size_t n, cap;
    bool oom;
};

static void fold_collect(void *arg, const tc_data *key, uint32_t atime,
                         uint64_t count)
{
    struct fold_list *l = arg;
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct fold_rec *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    void *kp = malloc(key->len ? key->len : 1);
    if (!kp) {
        l->oom = true;
        return;
    }
    if (key->len)
        memcpy(kp, key->ptr, key->len);
    l->v[l->n++] = (struct fold_rec){kp, key->len, key->type, atime, count};
}

int tc__hot_fold_batched(tc_cache *c, int shard, unsigned batch,
                         uint64_t *folded)
{
    struct tc_hot *h = hot_current(c);
    struct fold_list l = {NULL, 0, 0, false};
    int rc = TC_OK;
    int policy = c->shard[shard].set.policy;

    *folded = 0;
    if (!h || (policy != TC_POLICY_LRU && policy != TC_POLICY_LFU))
        return TC_OK;
    if (batch == 0)
        batch = 1000;
    tc_hot_access_fold(h, shard, fold_collect, &l);
    for (size_t i = 0; i < l.n && rc == TC_OK;) {
        struct tc_work w;
        if ((rc = tc__work_write(c, shard, 0, &w)))
            break;
        struct fold_ctx x = {NULL, TC_OK};
        rc = prepare_fold(w.k, w.set.policy, &x.st);
        size_t end = i + batch < l.n ? i + batch : l.n;
        for (; rc == TC_OK && x.rc == TC_OK && i < end; i++) {
            tc_data key = {l.v[i].key, l.v[i].len, l.v[i].type};
            fold_one(&x, &key, l.v[i].atime, l.v[i].count);
        }
        sqlite3_finalize(x.st);
        rc = tc__work_end(&w, rc ? rc : x.rc);
        if (rc == TC_OK)
            *folded = i;
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].key);
    free(l.v);
    if (rc == TC_OK && l.oom)
        rc = tc__err(TC_ENOMEM, "out of memory folding accesses");
    return rc;
}

/* ---- intents: the preupdate hook ---------------------------------------- */

enum {
    CACHE_COL_KEY = 1,
    CACHE_COL_RAW = 2,
    CACHE_COL_EXPIRE = 4,
    CACHE_COL_TAG = 7,
    CACHE_COL_MODE = 9,
    CACHE_COL_FILENAME = 10,
    CACHE_COL_VALUE = 11,
};

static bool same_value(sqlite3_value *a, sqlite3_value *b)
{
    int ta = sqlite3_value_type(a), tb = sqlite3_value_type(b);
    if (ta != tb)
        return false;
    switch (ta) {
    case SQLITE_NULL:
        return true;
    case SQLITE_INTEGER:
        return sqlite3_value_int64(a) == sqlite3_value_int64(b);
    case SQLITE_FLOAT:
        return sqlite3_value_double(a) == sqlite3_value_double(b);
    default: {
        int na = sqlite3_value_bytes(a), nb = sqlite3_value_bytes(b);
        const void *pa = sqlite3_value_blob(a), *pb = sqlite3_value_blob(b);
        return na == nb && (na == 0 || memcmp(pa, pb, (size_t)na) == 0);
    }
    }
}

static void invalidate_value(tc_cache *c, struct tc_hot *h, int shard,
                             sqlite3_value *key, sqlite3_value *raw)
{
    if (!key || !raw || sqlite3_value_int64(raw) != 1)
        return; /* pickled keys never reach the hot tier */
    int64_t i;
    double d;
    tc_data k = {NULL, 0, TC_NONE};
    switch (sqlite3_value_type(key)) {
    case SQLITE_INTEGER:
        i = sqlite3_value_int64(key);
        k = (tc_data){&i, 8, TC_INT};
        break;
    case SQLITE_FLOAT:
        d = sqlite3_value_double(key);
        k = (tc_data){&d, 8, TC_REAL};
        break;
    case SQLITE_TEXT:
        k.ptr = sqlite3_value_text(key);
        k.len = (size_t)sqlite3_value_bytes(key);
        k.type = TC_TEXT;
        break;
    case SQLITE_BLOB:
        k.ptr = sqlite3_value_blob(key);
        k.len = (size_t)sqlite3_value_bytes(key);
        k.type = TC_BYTES;
        break;
    default:
        return;
    }
    if (!k.ptr)
        k.ptr = "";
    (void)c;
    tc_hot_invalidate(h, shard, &k);
    TC_CRASH_POINT("after-intent");
}

static void preupdate(void *arg, sqlite3 *db, int op, const char *zdb,
                      const char *table, sqlite3_int64 k1, sqlite3_int64 k2)
{
    struct tc_conn *k = arg;
    (void)k1;
    (void)k2;
    if (strcmp(table, "Cache") != 0 || strcmp(zdb, "main") != 0)
        return;
    tc_cache *c = k->cache;
    struct tc_hot *h = hot_of(c);
    if (!h)
        return;
    sqlite3_value *key = NULL, *raw = NULL;
    if (op == SQLITE_DELETE)
        k->deletes++;
    if (op == SQLITE_INSERT) {
        sqlite3_preupdate_new(db, CACHE_COL_KEY, &key);
        sqlite3_preupdate_new(db, CACHE_COL_RAW, &raw);
        invalidate_value(c, h, k->shard, key, raw);
        return;
    }
    if (op == SQLITE_UPDATE) {
        /* Access-time and access-count updates change nothing a get
         * returns: no intent for them. */
        static const int cols[] = {
            CACHE_COL_KEY,  CACHE_COL_RAW,      CACHE_COL_EXPIRE, CACHE_COL_TAG,
            CACHE_COL_MODE, CACHE_COL_FILENAME, CACHE_COL_VALUE};
        bool changed = false;
        for (size_t i = 0; i < sizeof cols / sizeof cols[0] && !changed; i++) {
            sqlite3_value *a = NULL, *b = NULL;
            if (sqlite3_preupdate_old(db, cols[i], &a) != SQLITE_OK ||
                sqlite3_preupdate_new(db, cols[i], &b) != SQLITE_OK ||
                !same_value(a, b))
                changed = true;
        }
        if (!changed)
            return;
        sqlite3_value *nkey = NULL, *nraw = NULL;
        if (sqlite3_preupdate_new(db, CACHE_COL_KEY, &nkey) == SQLITE_OK &&
            sqlite3_preupdate_new(db, CACHE_COL_RAW, &nraw) == SQLITE_OK)
            invalidate_value(c, h, k->shard, nkey, nraw);
    }
    sqlite3_preupdate_old(db, CACHE_COL_KEY, &key);
    sqlite3_preupdate_old(db, CACHE_COL_RAW, &raw);
    invalidate_value(c, h, k->shard, key, raw);
}

void tc__hot_conn_init(tc_cache *c, struct tc_conn *k)
{
    if (!c->readonly)
        sqlite3_preupdate_hook(k->db, preupdate, k);
}

/* ---- public API -----------------------------------------------------------
 */

int tc_hot_stats_get(tc_cache *c, tc_hot_stats *out)
{
    if (!c || !c->opened || !out)
        return tc__err(TC_EINVAL, "tc_hot_stats_get: NULL argument or closed");
    tc__after_fork_check(c);
    memset(out, 0, sizeof *out);
    struct tc_hot *h = hot_current(c);
    if (!h)
        return TC_OK;
    tc_hot_stats_sum(h, out);
    out->reading = c->hot_read;
    return TC_OK;
}

struct check_ctx {
    tc_cache *c;
    tc_warning_fn fn;
    void *arg;
    uint64_t problems;
};

static void check_bad(void *arg, const char *msg)
{
    struct check_ctx *x = arg;
    if (x->fn)
        x->fn(x->arg, "hot-structure", msg);
}

static bool data_equal(const tc_data *a, const tc_value *b)
{
    if (a->type != b->type || a->len != b->len)
        return false;
    return a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0;
}

static void check_each(void *arg, const struct tc_hot_entry *e)
{
    struct check_ctx *x = arg;
    tc_item it = TC_ITEM_INIT;
    double now = tc__now(x->c);
    if (e->expire <= now)
        return; /* an expired item is a miss whatever SQLite holds */
    int rc = tc__op_get_cold(x->c, e->shard, &e->key, &it, NULL);
    const char *why = NULL;
    if (rc == TC_NOTFOUND)
        why = "key absent from SQLite";
    else if (rc != TC_OK)
        why = tc_errmsg();
    else if (!data_equal(&e->value, &it.value))
        why = "value differs from SQLite";
    else if (!(e->expire == it.expire_time))
        why = "expire time differs from SQLite";
    else if (!(e->tag.type == TC_NONE ? it.tag.type == TC_NONE
                                      : data_equal(&e->tag, &it.tag)))
        why = "tag differs from SQLite";
    if (why) {
        char msg[300];
        snprintf(msg, sizeof msg, "shard %d key %.*s (%zu bytes): %s", e->shard,
                 e->key.type == TC_TEXT
                     ? (int)(e->key.len > 80 ? 80 : e->key.len)
                     : 0,
                 e->key.type == TC_TEXT ? (const char *)e->key.ptr : "",
                 e->key.len, why);
        if (x->fn)
            x->fn(x->arg, "hot-stale", msg);
        x->problems++;
    }
    tc_item_clear(&it);
}

int tc_hot_check(tc_cache *c, tc_warning_fn fn, void *arg, uint64_t *problems)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "tc_hot_check: handle is not open");
    tc__after_fork_check(c);
    struct check_ctx x = {c, fn, arg, 0};
    struct tc_hot *h = hot_current(c);
    if (h)
        x.problems += tc_hot_check_walk(h, check_bad, check_each, &x);
    if (problems)
        *problems = x.problems;
    return TC_OK;
}

int tc_hot_recover(tc_cache *c, uint64_t *recovered)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "tc_hot_recover: handle is not open");
    tc__after_fork_check(c);
    uint64_t n = 0;
    struct tc_hot *h = hot_current(c);
    if (h) {
        n = tc_hot_recover_dead(h);
        tc__hot_floor_repair(c, h);
    }
    if (recovered)
        *recovered = n;
    return TC_OK;
}

int tc_hot_drop(const char *dir)
{
    if (!dir)
        return tc__err(TC_EINVAL, "tc_hot_drop: dir is NULL");
    return tc_hot_unlink_dir(dir);
}

int tc_hot_gc(uint64_t *removed)
{
    uint64_t n = 0;
    int rc = tc_hot_gc_orphans(&n);
    if (removed)
        *removed = n;
    return rc;
}
