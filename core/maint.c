/*
 * maint.c - bulk removal on one shard: expire, evict by tag, clear, cull.
 *
 * As python-diskcache: batches of 100 rows, each batch its own write
 * transaction, so a long removal never holds the write lock for long. On a
 * busy timeout the count removed so far is reported with TC_EBUSY (diskcache
 * raises Timeout(count)).
 */
#include <math.h>
#include <string.h>

#include "../shm/hot.h"
#include "internal.h"

#define BATCH 100

struct batch_query {
    const char *sql;
    int kind; /* 0 expire (by expire_time), 1 evict (tag), 2 clear */
};

/* Report progress across all shards of the current bulk call. */
static void progress(tc_cache *c, uint64_t done_here)
{
    uint64_t done = c->prog_base + done_here;

    if (c->progress)
        c->progress(c->progress_arg, done,
                    c->prog_total > done ? c->prog_total : done);
}

uint64_t tc__shard_length(tc_cache *c, int shard)
{
    struct tc_work w;
    uint64_t n = 0;

    if (tc__work_read(c, shard, &w))
        return 0;
    sqlite3_stmt *st = tc__stmt(w.k, ST_SETTING_GET);
    if (st) {
        sqlite3_bind_text(st, 1, "count", -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
            n = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    tc__work_end(&w, TC_OK);
    return n;
}

/* One batch: select up to BATCH (rowid, filename, order) rows after the
 * cursor, delete them, advance the cursor. */
static int run_batch(tc_cache *c, int shard, const char *sql,
                     const tc_data *arg, double upper, double *cursor_real,
                     int64_t *cursor_id, int *n_out, unsigned flags)
{
    struct tc_work w;
    sqlite3_stmt *st;
    int rc = tc__work_write(c, shard, flags, &w);

    if (rc)
        return rc;
    if ((rc = tc__prepare(w.k, sql, &st)))
        return tc__work_end(&w, rc);
    int p = 1;
    if (arg)
        tc__bind_data(st, p++, arg);
    if (cursor_real) {
        sqlite3_bind_double(st, p++, *cursor_real);
        sqlite3_bind_double(st, p++, upper);
    } else {
        sqlite3_bind_int64(st, p++, *cursor_id);
    }
    sqlite3_bind_int(st, p, BATCH);
    int64_t ids[BATCH];
    int n = 0, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && n < BATCH) {
        ids[n] = sqlite3_column_int64(st, 0);
        const char *f = (const char *)sqlite3_column_text(st, 1);
        if (f && (rc = tc__work_doom(&w, f)))
            break;
        if (cursor_real)
            *cursor_real = sqlite3_column_double(st, 2);
        else
            *cursor_id = ids[n];
        n++;
    }
    if (rc == TC_OK && src != SQLITE_DONE && src != SQLITE_ROW)
        rc = tc__sqlerr(w.k->db, src, "selecting a batch");
    sqlite3_finalize(st);
    for (int i = 0; i < n && rc == TC_OK; i++) {
        sqlite3_stmt *del = tc__stmt(w.k, ST_DELETE_ROWID);
        sqlite3_bind_int64(del, 1, ids[i]);
        rc = tc__exec_stmt(w.k, del, "deleting a batch");
    }
    rc = tc__work_end(&w, rc);
    *n_out = rc == TC_OK ? n : 0;
    return rc;
}

/* True when a worker pass was asked to stop (tc_worker_stop). */
static bool stopping(tc_cache *c, bool stoppable)
{
    return stoppable &&
           atomic_load_explicit(&c->worker_stop, memory_order_relaxed);
}

static int run_all(tc_cache *c, int shard, const char *sql, const tc_data *arg,
                   bool by_expiry, double upper, uint64_t *count,
                   unsigned flags, bool stoppable)
{
    double cur_real = 0;
    int64_t cur_id = 0;
    uint64_t done = 0;
    int n, rc;

    *count = 0;
    do {
        rc = run_batch(c, shard, sql, arg, upper, by_expiry ? &cur_real : NULL,
                       &cur_id, &n, flags);
        if (rc)
            return rc;
        *count += (uint64_t)n;
        done += (uint64_t)n;
        progress(c, done);
        if (stoppable)
            TC_CRASH_POINT("worker-batch");
    } while (n == BATCH && !stopping(c, stoppable));
    return TC_OK;
}

#define EXPIRE_SQL                                   \
    "SELECT rowid, filename, expire_time FROM Cache" \
    " WHERE ? < expire_time AND expire_time < ?"     \
    " ORDER BY expire_time LIMIT ?"

int tc__shard_expire(tc_cache *c, int shard, double now, uint64_t *count,
                     unsigned flags)
{
    if (isnan(now))
        now = tc__now(c);
    return run_all(c, shard, EXPIRE_SQL, NULL, true, now, count, flags, false);
}

int tc__shard_expire_stoppable(tc_cache *c, int shard, double now,
                               uint64_t *count)
{
    if (isnan(now))
        now = tc__now(c);
    return run_all(c, shard, EXPIRE_SQL, NULL, true, now, count, 0, true);
}

int tc__shard_evict(tc_cache *c, int shard, const tc_data *tag, uint64_t *count,
                    unsigned flags)
{
    return run_all(c, shard,
                   "SELECT rowid, filename FROM Cache"
                   " WHERE tag = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                   tag, false, 0, count, flags, false);
}

int tc__shard_clear(tc_cache *c, int shard, uint64_t *count, unsigned flags)
{
    return run_all(c, shard,
                   "SELECT rowid, filename FROM Cache"
                   " WHERE rowid > ? ORDER BY rowid LIMIT ?",
                   NULL, false, 0, count, flags, false);
}

#define CULL_MAX 100

/* The worker's step: about as many rows as the excess holds at the
 * shard's average item size (1..CULL_MAX), so large excesses go in few
 * transactions and the last steps remove single rows, never overshooting
 * by more than the estimate's error. */
static int cull_rows(struct tc_work *w, uint64_t vol)
{
    sqlite3_stmt *st = tc__stmt(w->k, ST_SETTING_GET);
    int64_t n = 0;
    if (st) {
        sqlite3_bind_text(st, 1, "count", -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    if (n <= 0)
        return 10;
    double avg = (double)vol / (double)n;
    double rows = ceil(((double)vol - w->set.size_limit) / avg);
    return rows < 1 ? 1 : rows > CULL_MAX ? CULL_MAX : (int)rows;
}

/* Delete rows in policy order while volume() > size_limit: 10 per
 * transaction as diskcache, or cull_rows() for the worker (which also
 * stops between transactions once tc_worker_stop was called). */
static int cull_loop(tc_cache *c, int shard, uint64_t *count, unsigned flags,
                     bool stoppable)
{
    static const enum tc_stmt_id cull[] = {ST_CULL_LRS, ST_CULL_LRS,
                                           ST_CULL_LRU, ST_CULL_LFU};
    bool folded = false;
    int rc;

    for (;;) {
        struct tc_work w;
        uint64_t vol;
        if (stopping(c, stoppable))
            return TC_OK;
        if ((rc = tc__work_write(c, shard, flags, &w)))
            return rc;
        if (w.set.policy == TC_POLICY_NONE)
            return tc__work_end(&w, TC_OK);
        /* Hot hits never reached SQLite: fold them in first (once). */
        if (!folded && (rc = tc__hot_fold(&w, true)))
            return tc__work_end(&w, rc);
        folded = true;
        rc = tc__volume(&w, &vol);
        if (rc || (double)vol <= w.set.size_limit)
            return tc__work_end(&w, rc);
        int rows = stoppable ? cull_rows(&w, vol) : 10;
        sqlite3_stmt *st = tc__stmt(w.k, cull[w.set.policy]);
        sqlite3_bind_int(st, 1, rows);
        int64_t ids[CULL_MAX];
        int n = 0, src;
        while (n < rows && (src = sqlite3_step(st)) == SQLITE_ROW) {
            ids[n++] = sqlite3_column_int64(st, 0);
            const char *f = (const char *)sqlite3_column_text(st, 1);
            if (f && (rc = tc__work_doom(&w, f)))
                break;
        }
        sqlite3_reset(st);
        for (int i = 0; i < n && rc == TC_OK; i++) {
            sqlite3_stmt *del = tc__stmt(w.k, ST_DELETE_ROWID);
            sqlite3_bind_int64(del, 1, ids[i]);
            rc = tc__exec_stmt(w.k, del, "culling");
        }
        if ((rc = tc__work_end(&w, rc)))
            return rc;
        if (n == 0)
            return TC_OK;
        *count += (uint64_t)n;
        progress(c, *count);
        if (stoppable)
            TC_CRASH_POINT("worker-batch");
    }
}

/* diskcache's cull(): expire, then delete 10 rows at a time in policy
 * order while volume() > size_limit; works even with cull_limit 0. */
int tc__shard_cull(tc_cache *c, int shard, uint64_t *count, unsigned flags)
{
    uint64_t expired = 0;
    int rc = tc__shard_expire(c, shard, NAN, &expired, flags);

    *count = expired;
    if (rc)
        return rc;
    return cull_loop(c, shard, count, flags, false);
}

int tc__shard_cull_stoppable(tc_cache *c, int shard, uint64_t *count)
{
    *count = 0;
    return cull_loop(c, shard, count, 0, true);
}
