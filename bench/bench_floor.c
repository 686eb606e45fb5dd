/*
 * bench_floor.c - the floor: tiercache's SQL for each operation, prepared
 * once and run in bare C on a database tiercache created (same schema,
 * same triggers, same per-connection pragmas).
 *
 * The floor is what "the same SQL work in plain C" costs (DESIGN-BRIEF
 * section 10). It does exactly the statements the library runs for the
 * operation, in the same order, and nothing else: no argument checks, no
 * connection pool, no value typing beyond reading the columns. Keys are
 * TEXT with raw = 1 and values are inline TEXT (mode 1, size 0), as
 * python-diskcache stores a str and tiercache stores TC_TEXT.
 *
 * Statement text is kept identical to core/conn.c where that matters for
 * the plan; a write transaction is BEGIN IMMEDIATE, the commit-sequence
 * bump (core invariant 2: before any other statement), the operation's
 * statements, the inline cull (expired rows, then volume = page_count and
 * Settings.size against size_limit), COMMIT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bench.h"

enum fst {
    F_BEGIN,
    F_COMMIT,
    F_SEQ,
    F_GET,
    F_SELECT_ROWID,
    F_INSERT,
    F_UPDATE,
    F_CULL_EXPIRED,
    F_PAGE_COUNT,
    F_SETTING_GET,
    F_DELETE_SEL,
    F_DELETE_ROWID,
    F_INCR_SEL,
    F_INCR_UPDATE,
    F_COUNT
};

/* The SQL tiercache runs (python-diskcache 5.4 text, single-quoted). */
static const char *const fsql[F_COUNT] = {
    [F_BEGIN] = "BEGIN IMMEDIATE",
    [F_COMMIT] = "COMMIT",
    [F_SEQ] = "UPDATE TiercacheMeta SET value = value + 1"
              " WHERE key = 'commit_seq' RETURNING value, (SELECT value"
              " FROM TiercacheMeta WHERE key = 'hot_epoch')",
    [F_GET] = "SELECT rowid, expire_time, tag, mode, filename, value"
              " FROM Cache WHERE key = ? AND raw = ?"
              " AND (expire_time IS NULL OR expire_time > ?)",
    [F_SELECT_ROWID] = "SELECT rowid, filename FROM Cache"
                       " WHERE key = ? AND raw = ?",
    [F_INSERT] = "INSERT INTO Cache(key, raw, store_time, expire_time,"
                 " access_time, access_count, tag, size, mode, filename,"
                 " value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [F_UPDATE] = "UPDATE Cache SET store_time = ?, expire_time = ?,"
                 " access_time = ?, access_count = ?, tag = ?, size = ?,"
                 " mode = ?, filename = ?, value = ? WHERE rowid = ?",
    [F_CULL_EXPIRED] = "SELECT filename FROM Cache"
                       " WHERE expire_time IS NOT NULL AND expire_time < ?"
                       " ORDER BY expire_time LIMIT ?",
    [F_PAGE_COUNT] = "PRAGMA page_count",
    [F_SETTING_GET] = "SELECT value FROM Settings WHERE key = ?",
    [F_DELETE_SEL] = "SELECT rowid, filename FROM Cache"
                     " WHERE key = ? AND raw = ?"
                     " AND (expire_time IS NULL OR expire_time > ?)",
    [F_DELETE_ROWID] = "DELETE FROM Cache WHERE rowid = ?",
    [F_INCR_SEL] = "SELECT rowid, expire_time, filename, value FROM Cache"
                   " WHERE key = ? AND raw = ?",
    [F_INCR_UPDATE] = "UPDATE Cache SET store_time = ?, value = ?"
                      " WHERE rowid = ?",
};

struct floor_shard {
    sqlite3 *db;
    sqlite3_stmt *st[F_COUNT];
    int64_t page_size;  /* PRAGMA page_size, read once (as diskcache) */
    double size_limit;  /* this shard's size_limit setting */
    int64_t cull_limit; /* cull_limit setting */
};

struct floor {
    int shards;         /* 0 plain, else shard count */
    int n;              /* entries in sh[] */
    uint64_t commit_ns; /* time inside COMMIT since last take */
    struct floor_shard sh[];
};

static _Noreturn void sqldie(sqlite3 *db, const char *what)
{
    bench_die("floor: %s: %s", what, sqlite3_errmsg(db));
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        bench_die("floor: %s: %s", sql, msg ? msg : "?");
}

static void step_done(struct floor_shard *s, int id)
{
    sqlite3_stmt *st = s->st[id];
    if (sqlite3_step(st) != SQLITE_DONE)
        sqldie(s->db, fsql[id]);
    sqlite3_reset(st);
}

static double setting_real(struct floor_shard *s, const char *name)
{
    sqlite3_stmt *st = s->st[F_SETTING_GET];
    double v;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        sqldie(s->db, name);
    v = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    return v;
}

static void shard_open(struct floor_shard *s, const char *path, double timeout)
{
    sqlite3_stmt *st;
    int i;

    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        sqldie(s->db, path);
    sqlite3_busy_timeout(s->db, (int)(timeout * 1000.0));
    /* diskcache's persisted sqlite_* settings (defaults). */
    exec(s->db, "PRAGMA journal_mode = wal");
    exec(s->db, "PRAGMA synchronous = 1");
    exec(s->db, "PRAGMA cache_size = 8192");
    exec(s->db, "PRAGMA mmap_size = 67108864");
    for (i = 0; i < F_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, fsql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->st[i], NULL) != SQLITE_OK)
            sqldie(s->db, fsql[i]);
    if (sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        sqldie(s->db, "page_size");
    s->page_size = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    s->size_limit = setting_real(s, "size_limit");
    s->cull_limit = (int64_t)setting_real(s, "cull_limit");
}

struct floor *floor_open(const char *dir, int shards, double timeout)
{
    int n = shards > 0 ? shards : 1;
    struct floor *f = calloc(1, sizeof(*f) + (size_t)n * sizeof(f->sh[0]));
    char path[PATH_MAX];
    int i;

    if (!f)
        bench_die("floor: out of memory");
    f->shards = shards;
    f->n = n;
    for (i = 0; i < n; i++) {
        if (shards > 0)
            snprintf(path, sizeof(path), "%s/%03d/cache.db", dir, i);
        else
            snprintf(path, sizeof(path), "%s/cache.db", dir);
        shard_open(&f->sh[i], path, timeout);
    }
    return f;
}

void floor_close(struct floor *f)
{
    int i, j;

    if (!f)
        return;
    for (i = 0; i < f->n; i++) {
        for (j = 0; j < F_COUNT; j++)
            sqlite3_finalize(f->sh[i].st[j]);
        sqlite3_close(f->sh[i].db);
    }
    free(f);
}

int floor_shard_of(const struct floor *f, uint64_t h)
{
    return f->shards > 0 ? (int)(h % (uint64_t)f->shards) : 0;
}

uint64_t floor_take_commit_ns(struct floor *f)
{
    uint64_t ns = f->commit_ns;
    f->commit_ns = 0;
    return ns;
}

/* BEGIN IMMEDIATE, then the commit-sequence bump (core invariant 2). */
static void begin(struct floor_shard *s)
{
    step_done(s, F_BEGIN);
    /* The sequence bump returns the new value and the hot-tier epoch, as
     * core/conn.c's does. */
    sqlite3_stmt *st = s->st[F_SEQ];
    if (sqlite3_step(st) != SQLITE_ROW)
        sqldie(s->db, fsql[F_SEQ]);
    (void)sqlite3_column_int64(st, 0);
    (void)sqlite3_column_int64(st, 1);
    step_done(s, F_SEQ);
}

static void commit(struct floor *f, struct floor_shard *s)
{
    uint64_t t0 = bench_ns();
    step_done(s, F_COMMIT);
    f->commit_ns += bench_ns() - t0;
}

/*
 * cull - diskcache's _cull(now, cull_limit): the expired rows first, then
 * the policy cull only when volume() >= size_limit. The benchmark never
 * writes expiring items nor reaches size_limit, so finding work here means
 * the workload is not the one this floor models: stop.
 */
static void cull(struct floor_shard *s, double now)
{
    sqlite3_stmt *st = s->st[F_CULL_EXPIRED];
    int64_t pages;
    double size;
    int rows = 0;

    if (s->cull_limit == 0)
        return;
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_int64(st, 2, s->cull_limit);
    while (sqlite3_step(st) == SQLITE_ROW)
        rows++;
    sqlite3_reset(st);
    if (rows)
        bench_die("floor: expired rows found; the workload has none");
    st = s->st[F_PAGE_COUNT];
    if (sqlite3_step(st) != SQLITE_ROW)
        sqldie(s->db, "page_count");
    pages = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    size = setting_real(s, "size");
    if ((double)(pages * s->page_size) + size >= s->size_limit)
        bench_die("floor: volume reached size_limit; use fewer keys");
}

static void bind_key(sqlite3_stmt *st, const char *key, size_t klen)
{
    sqlite3_bind_text(st, 1, key, (int)klen, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, 1);
}

int floor_get(struct floor *f, int shard, const char *key, size_t klen,
              char *buf, size_t cap, size_t *len)
{
    struct floor_shard *s = &f->sh[shard];
    sqlite3_stmt *st = s->st[F_GET];
    int hit = 0;

    bind_key(st, key, klen);
    sqlite3_bind_double(st, 3, bench_wall());
    if (sqlite3_step(st) == SQLITE_ROW) {
        /* Read every column the library reads, copy the value out. */
        const void *p;
        size_t n;
        volatile int64_t sink;
        sink = sqlite3_column_int64(st, 0);
        if (sqlite3_column_type(st, 1) != SQLITE_NULL)
            sink = (int64_t)sqlite3_column_double(st, 1);
        if (sqlite3_column_type(st, 2) != SQLITE_NULL)
            sink = sqlite3_column_bytes(st, 2);
        sink = sqlite3_column_int(st, 3);
        sink = sqlite3_column_type(st, 4);
        (void)sink;
        p = sqlite3_column_text(st, 5);
        n = (size_t)sqlite3_column_bytes(st, 5);
        if (n > cap)
            n = cap;
        memcpy(buf, p, n);
        *len = n;
        hit = 1;
    }
    sqlite3_reset(st);
    return hit;
}

/* The row write of diskcache's set: UPDATE in place or INSERT. */
static void put_row(struct floor_shard *s, const char *key, size_t klen,
                    const char *val, size_t vlen, double now)
{
    sqlite3_stmt *st = s->st[F_SELECT_ROWID];
    int64_t rowid = 0;
    int found = 0;

    bind_key(st, key, klen);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rowid = sqlite3_column_int64(st, 0);
        (void)sqlite3_column_text(st, 1); /* old filename */
        found = 1;
    }
    sqlite3_reset(st);
    if (found) {
        st = s->st[F_UPDATE];
        sqlite3_bind_double(st, 1, now);
        sqlite3_bind_null(st, 2);
        sqlite3_bind_double(st, 3, now);
        sqlite3_bind_int(st, 4, 0);
        sqlite3_bind_null(st, 5);
        sqlite3_bind_int(st, 6, 0);
        sqlite3_bind_int(st, 7, 1);
        sqlite3_bind_null(st, 8);
        sqlite3_bind_text(st, 9, val, (int)vlen, SQLITE_STATIC);
        sqlite3_bind_int64(st, 10, rowid);
        step_done(s, F_UPDATE);
    } else {
        st = s->st[F_INSERT];
        bind_key(st, key, klen);
        sqlite3_bind_double(st, 3, now);
        sqlite3_bind_null(st, 4);
        sqlite3_bind_double(st, 5, now);
        sqlite3_bind_int(st, 6, 0);
        sqlite3_bind_null(st, 7);
        sqlite3_bind_int(st, 8, 0);
        sqlite3_bind_int(st, 9, 1);
        sqlite3_bind_null(st, 10);
        sqlite3_bind_text(st, 11, val, (int)vlen, SQLITE_STATIC);
        step_done(s, F_INSERT);
    }
}

void floor_set(struct floor *f, int shard, const char *key, size_t klen,
               const char *val, size_t vlen)
{
    struct floor_shard *s = &f->sh[shard];
    double now = bench_wall();

    begin(s);
    put_row(s, key, klen, val, vlen, now);
    cull(s, now);
    commit(f, s);
}

static int delete_row(struct floor_shard *s, const char *key, size_t klen,
                      double now)
{
    sqlite3_stmt *st = s->st[F_DELETE_SEL];
    int64_t rowid = 0;
    int found = 0;

    bind_key(st, key, klen);
    sqlite3_bind_double(st, 3, now);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rowid = sqlite3_column_int64(st, 0);
        (void)sqlite3_column_text(st, 1);
        found = 1;
    }
    sqlite3_reset(st);
    if (found) {
        sqlite3_bind_int64(s->st[F_DELETE_ROWID], 1, rowid);
        step_done(s, F_DELETE_ROWID);
    }
    return found;
}

int floor_delete(struct floor *f, int shard, const char *key, size_t klen)
{
    struct floor_shard *s = &f->sh[shard];
    int found;

    begin(s);
    found = delete_row(s, key, klen, bench_wall());
    commit(f, s);
    return found;
}

int64_t floor_incr(struct floor *f, int shard, const char *key, size_t klen,
                   int64_t delta)
{
    struct floor_shard *s = &f->sh[shard];
    sqlite3_stmt *st = s->st[F_INCR_SEL];
    double now = bench_wall();
    int64_t rowid = 0, value = 0;
    int live = 0;

    begin(s);
    bind_key(st, key, klen);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rowid = sqlite3_column_int64(st, 0);
        live = sqlite3_column_type(st, 1) == SQLITE_NULL ||
               sqlite3_column_double(st, 1) >= now;
        (void)sqlite3_column_text(st, 2);
        if (sqlite3_column_type(st, 3) != SQLITE_INTEGER)
            bench_die("floor: incr of a non-integer");
        value = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    if (!live)
        bench_die("floor: incr of a missing key (preload first)");
    value += delta;
    st = s->st[F_INCR_UPDATE];
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_int64(st, 2, value);
    sqlite3_bind_int64(st, 3, rowid);
    step_done(s, F_INCR_UPDATE);
    commit(f, s);
    return value;
}

/*
 * Batches: one transaction per shard the batch touches, begun in shard
 * order (as tc_set_many locks "the shards this batch touches, in order"),
 * one cull per shard per batch (DESIGN-BRIEF section 8).
 */
static void mark(const struct floor *f, const int *shards, size_t n, bool *used)
{
    size_t i;
    memset(used, 0, (size_t)f->n * sizeof(*used));
    for (i = 0; i < n; i++)
        used[shards[i]] = true;
}

void floor_set_many(struct floor *f, const int *shards, const char **keys,
                    const size_t *klens, const char *val, size_t vlen, size_t n)
{
    bool used[1000];
    double now = bench_wall();
    size_t i;
    int j;

    mark(f, shards, n, used);
    for (j = 0; j < f->n; j++)
        if (used[j])
            begin(&f->sh[j]);
    for (i = 0; i < n; i++)
        put_row(&f->sh[shards[i]], keys[i], klens[i], val, vlen, now);
    for (j = 0; j < f->n; j++)
        if (used[j])
            cull(&f->sh[j], now);
    for (j = 0; j < f->n; j++)
        if (used[j])
            commit(f, &f->sh[j]);
}

void floor_delete_many(struct floor *f, const int *shards, const char **keys,
                       const size_t *klens, size_t n)
{
    bool used[1000];
    double now = bench_wall();
    size_t i;
    int j;

    mark(f, shards, n, used);
    for (j = 0; j < f->n; j++)
        if (used[j])
            begin(&f->sh[j]);
    for (i = 0; i < n; i++)
        if (!delete_row(&f->sh[shards[i]], keys[i], klens[i], now))
            bench_die("floor: delete_many of a missing key");
    for (j = 0; j < f->n; j++)
        if (used[j])
            commit(f, &f->sh[j]);
}
