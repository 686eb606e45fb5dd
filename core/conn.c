/*
 * conn.c - SQLite connections, prepared statements, units of work and
 * transactions.
 *
 * Each shard keeps a pool of idle connections; a call checks one out for
 * its duration (so a handle serves many threads, and file descriptors grow
 * with concurrency, not with the number of threads that ever ran). A
 * thread's explicit transaction (tc_begin) pins one connection per shard
 * until its outermost commit or rollback.
 *
 * Fork: a pthread_atfork child handler bumps tc__fork_gen. Every public
 * call compares it with the handle's generation; on a change the child
 * abandons the inherited pool (never using or closing a connection opened
 * by its parent: closing could checkpoint or unlink the parent's WAL) and
 * opens fresh ones lazily.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../shm/hot.h"
#include "internal.h"

atomic_uint tc__fork_gen = 1;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static _Thread_local struct tc_txn *tls_txns;

static void on_fork_child(void)
{
    atomic_fetch_add(&tc__fork_gen, 1);
}

static void register_fork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

void tc__fork_init(void)
{
    pthread_once(&fork_once, register_fork);
}

void tc__after_fork_check(tc_cache *c)
{
    unsigned gen = atomic_load_explicit(&tc__fork_gen, memory_order_relaxed);

    if (c->fork_gen == gen)
        return;
    /* We are the only thread of a fresh child: abandon the parent's
     * connections (invariant 4) and re-create the pool locks, which may
     * have been held by a parent thread at the moment of fork. */
    for (int i = 0; i < c->nshards; i++) {
        c->shard[i].idle = NULL;
        pthread_mutex_init(&c->shard[i].lock, NULL);
    }
    pthread_mutex_init(&c->hot_lock, NULL);
    c->fork_gen = gen;
    tc__hot_after_fork(c);
}

double tc__now(const tc_cache *c)
{
    if (c->clock)
        return c->clock(c->clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tc__shard_settings(tc_cache *c, struct tc_shard *s,
                        const struct tc_settings *set)
{
    pthread_mutex_lock(&s->lock);
    s->set = *set;
    atomic_store(&s->slow_get, set->statistics ||
                                   set->policy == TC_POLICY_LRU ||
                                   set->policy == TC_POLICY_LFU);
    /* Hot hits record LRU/LFU accesses in the segment; diskcache's
     * hit/miss counters (statistics=1) need every get in SQLite. */
    atomic_store(&c->hot_modes[s->index],
                 set->statistics                ? TC_HOT_COLD
                 : set->policy == TC_POLICY_LRU ? TC_HOT_ACCESS_LRU
                 : set->policy == TC_POLICY_LFU ? TC_HOT_ACCESS_LFU
                                                : TC_HOT_ACCESS_NONE);
    pthread_mutex_unlock(&s->lock);
}

/* ---- statements ------------------------------------------------------ */

#define ROW_COLS "expire_time, tag, mode, filename, value, size"

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* The sequence, and the hot-tier epoch a segment's creator bumps: a
     * writer learns of a new segment inside its own write lock. */
    [ST_SEQ_BUMP] = "UPDATE TiercacheMeta SET value = value + 1"
                    " WHERE key = 'commit_seq' RETURNING value, (SELECT value"
                    " FROM TiercacheMeta WHERE key = 'hot_epoch')",
    [ST_SEQ_GET] = "SELECT value FROM TiercacheMeta WHERE key = 'commit_seq'",
    [ST_GET] = "SELECT rowid, " ROW_COLS " FROM Cache"
               " WHERE key = ? AND raw = 1"
               " AND (expire_time IS NULL OR expire_time > ?)",
    /* The same row and, in the same read snapshot, the commit sequence: a
     * hot-tier fill is versioned by it (DESIGN-BRIEF 9.1). */
    [ST_GET_SNAP] = "SELECT rowid, " ROW_COLS ", (SELECT value FROM"
                    " TiercacheMeta WHERE key = 'commit_seq') FROM Cache"
                    " WHERE key = ? AND raw = 1"
                    " AND (expire_time IS NULL OR expire_time > ?)",
    [ST_CONTAINS] = "SELECT rowid FROM Cache WHERE key = ? AND raw = 1"
                    " AND (expire_time IS NULL OR expire_time > ?)",
    [ST_SELECT_ROWID] = "SELECT rowid, filename, expire_time, mode, value"
                        " FROM Cache WHERE key = ? AND raw = 1",
    [ST_INSERT] = "INSERT INTO Cache(key, raw, store_time, expire_time,"
                  " access_time, access_count, tag, size, mode, filename,"
                  " value) VALUES (?1, 1, ?2, ?3, ?2, 0, ?4, ?5, ?6, ?7, ?8)",
    [ST_UPDATE] = "UPDATE Cache SET store_time = ?2, expire_time = ?3,"
                  " access_time = ?2, access_count = 0, tag = ?4, size = ?5,"
                  " mode = ?6, filename = ?7, value = ?8 WHERE rowid = ?1",
    [ST_DELETE_ROWID] = "DELETE FROM Cache WHERE rowid = ?",
    [ST_TOUCH] = "UPDATE Cache SET expire_time = ? WHERE rowid = ?",
    [ST_INCR_UPDATE] = "UPDATE Cache SET store_time = ?, value = ?"
                       " WHERE rowid = ?",
    [ST_HITS] = "UPDATE Settings SET value = value + 1 WHERE key = 'hits'",
    [ST_MISSES] = "UPDATE Settings SET value = value + 1"
                  " WHERE key = 'misses'",
    [ST_LRU_GET] = "UPDATE Cache SET access_time = ? WHERE rowid = ?",
    [ST_LFU_GET] = "UPDATE Cache SET access_count = access_count + 1"
                   " WHERE rowid = ?",
    [ST_CULL_EXPIRED_SEL] = "SELECT rowid, filename FROM Cache"
                            " WHERE expire_time IS NOT NULL"
                            " AND expire_time < ? ORDER BY expire_time"
                            " LIMIT ?",
    [ST_CULL_LRS] = "SELECT rowid, filename FROM Cache"
                    " ORDER BY store_time LIMIT ?",
    [ST_CULL_LRU] = "SELECT rowid, filename FROM Cache"
                    " ORDER BY access_time LIMIT ?",
    [ST_CULL_LFU] = "SELECT rowid, filename FROM Cache"
                    " ORDER BY access_count LIMIT ?",
    [ST_PAGE_COUNT] = "PRAGMA page_count",
    [ST_SETTING_GET] = "SELECT value FROM Settings WHERE key = ?",
    [ST_SETTING_PUT] = "UPDATE Settings SET value = ? WHERE key = ?",
    [ST_PEEKITEM_LAST] = "SELECT rowid, " ROW_COLS ", key, raw FROM Cache"
                         " ORDER BY rowid DESC LIMIT 1",
    [ST_PEEKITEM_FIRST] = "SELECT rowid, " ROW_COLS ", key, raw FROM Cache"
                          " ORDER BY rowid ASC LIMIT 1",
    [ST_QUEUE_LAST] = "SELECT rowid, " ROW_COLS ", key, raw FROM Cache"
                      " WHERE ? < key AND key < ? AND raw = 1"
                      " ORDER BY key DESC LIMIT 1",
    [ST_QUEUE_FIRST] = "SELECT rowid, " ROW_COLS ", key, raw FROM Cache"
                       " WHERE ? < key AND key < ? AND raw = 1"
                       " ORDER BY key ASC LIMIT 1",
    [ST_MAX_ROWID] = "SELECT MAX(rowid) FROM Cache",
};

sqlite3_stmt *tc__stmt(struct tc_conn *k, enum tc_stmt_id id)
{
    sqlite3_stmt *st = k->st[id];

    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    int src = sqlite3_prepare_v3(k->db, stmt_sql[id], -1,
                                 SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (src != SQLITE_OK) {
        tc__sqlerr(k->db, src, "preparing a statement");
        return NULL;
    }
    k->st[id] = st;
    return st;
}

int tc__prepare(struct tc_conn *k, const char *sql, sqlite3_stmt **st)
{
    int src = sqlite3_prepare_v2(k->db, sql, -1, st, NULL);

    if (src != SQLITE_OK)
        return tc__sqlerr(k->db, src, "preparing a statement");
    return TC_OK;
}

int tc__exec_stmt(struct tc_conn *k, sqlite3_stmt *st, const char *what)
{
    int src;

    if (!st)
        return TC_EINTERNAL;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return tc__sqlerr(k->db, src, what);
    return TC_OK;
}

int tc__exec(sqlite3 *db, const char *sql, const char *what)
{
    char *msg = NULL;
    int src = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (src != SQLITE_OK) {
        int rc = tc__sqlerr(db, src, what);
        sqlite3_free(msg);
        return rc;
    }
    return TC_OK;
}

/* ---- connections ----------------------------------------------------- */

int tc__conn_open(tc_cache *c, struct tc_shard *s, struct tc_conn **out)
{
    struct tc_conn *k = calloc(1, sizeof *k);
    char uri[4200];
    int rc, flags = SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;

    if (!k)
        return tc__err(TC_ENOMEM, "out of memory opening a connection");
    /* A file: URI, with the path percent-encoded so that '?', '#' and '%'
     * in directory names stay part of the name. */
    size_t o = (size_t)snprintf(uri, sizeof uri, "file:");
    for (const char *p = s->dbpath; *p && o + 4 < sizeof uri; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '?' || ch == '#' || ch == '%' || ch < 0x20)
            o += (size_t)snprintf(uri + o, sizeof uri - o, "%%%02X", ch);
        else
            uri[o++] = (char)ch;
    }
    uri[o] = 0;
    if (s->immutable)
        snprintf(uri + o, sizeof uri - o, "?immutable=1");
    else if (c->readonly)
        snprintf(uri + o, sizeof uri - o, "?mode=ro");
    flags |= c->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    const char *name = uri;
    int src = sqlite3_open_v2(name, &k->db, flags, NULL);
    if (src != SQLITE_OK) {
        rc = tc__sqlerr(k->db, src, s->dbpath);
        sqlite3_close(k->db);
        free(k);
        return rc;
    }
    sqlite3_extended_result_codes(k->db, 0);
    sqlite3_busy_timeout(k->db, (int)fmin(c->timeout * 1000.0, 2e9));
    k->fork_gen = c->fork_gen;
    k->cache = c;
    k->shard = s->index;
    if ((rc = tc__schema_conn_pragmas(k))) {
        tc__conn_close(k);
        return rc;
    }
    tc__hot_conn_init(c, k);
    *out = k;
    return TC_OK;
}

void tc__conn_close(struct tc_conn *k)
{
    if (!k)
        return;
    for (int i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(k->st[i]);
    sqlite3_close_v2(k->db);
    free(k);
}

static int checkout(tc_cache *c, struct tc_shard *s, struct tc_conn **out,
                    struct tc_settings *set)
{
    pthread_mutex_lock(&s->lock);
    struct tc_conn *k = s->idle;
    if (k)
        s->idle = k->next;
    *set = s->set;
    pthread_mutex_unlock(&s->lock);
    if (k) {
        *out = k;
        return TC_OK;
    }
    return tc__conn_open(c, s, out);
}

static void finish_stmts(struct tc_conn *k)
{
    sqlite3_stmt *st = NULL;
    while ((st = sqlite3_next_stmt(k->db, st)))
        if (sqlite3_stmt_busy(st))
            sqlite3_reset(st);
}

static void checkin(tc_cache *c, struct tc_shard *s, struct tc_conn *k)
{
    if (k->fork_gen != c->fork_gen) {
        return; /* opened before a fork: abandon (invariant 4) */
    }
    /* Never park a connection with a statement still stepping or a
     * transaction open: it would pin a read snapshot (and the WAL) for as
     * long as it sits idle. Every path resets its statements, so this is
     * one cheap check on the common path. */
    if (sqlite3_txn_state(k->db, NULL) != SQLITE_TXN_NONE) {
        finish_stmts(k);
        if (!sqlite3_get_autocommit(k->db))
            tc__exec(k->db, "ROLLBACK", "rolling back a stray transaction");
    }
    pthread_mutex_lock(&s->lock);
    k->next = s->idle;
    s->idle = k;
    pthread_mutex_unlock(&s->lock);
}

/* ---- deferred files -------------------------------------------------- */

int tc__files_add(struct tc_files *f, const char *rel)
{
    if (!rel || !rel[0])
        return TC_OK;
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        void *p = realloc(f->names, cap * sizeof *f->names);
        if (!p)
            return tc__err(TC_ENOMEM, "out of memory queueing a file");
        f->names = p;
        f->cap = cap;
    }
    snprintf(f->names[f->count++], TC_FILENAME_LEN + 1, "%s", rel);
    return TC_OK;
}

void tc__files_free(struct tc_files *f)
{
    free(f->names);
    f->names = NULL;
    f->count = f->cap = 0;
}

static void files_remove(struct tc_shard *s, struct tc_files *f)
{
    for (size_t i = 0; i < f->count; i++)
        tc__file_remove(s->dir, f->names[i]);
    f->count = 0;
}

static int files_move(struct tc_files *to, struct tc_files *from)
{
    int rc = TC_OK;

    for (size_t i = 0; i < from->count && rc == TC_OK; i++)
        rc = tc__files_add(to, from->names[i]);
    from->count = 0;
    return rc;
}

/* ---- transactions ---------------------------------------------------- */

struct tc_txn *tc__txn_find(tc_cache *c)
{
    struct tc_txn **pp = &tls_txns;

    while (*pp) {
        struct tc_txn *t = *pp;
        if (t->fork_gen != atomic_load(&tc__fork_gen)) {
            /* Inherited from the parent through fork: its connections are
             * the parent's (invariant 4). Forget it. */
            *pp = t->next;
            continue;
        }
        if (t->cache == c)
            return t;
        pp = &t->next;
    }
    return NULL;
}

static int begin_immediate(tc_cache *c, struct tc_conn *k, unsigned flags)
{
    for (;;) {
        sqlite3_stmt *st = tc__stmt(k, ST_BEGIN);
        if (!st)
            return TC_EINTERNAL;
        int src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src == SQLITE_DONE)
            break;
        if ((src == SQLITE_BUSY || src == SQLITE_LOCKED) && (flags & TC_RETRY))
            continue;
        return tc__sqlerr(k->db, src, "beginning a write transaction");
    }
    /* Invariant 2: the commit sequence moves inside every write. */
    sqlite3_stmt *st = tc__stmt(k, ST_SEQ_BUMP);
    int rc = st ? TC_OK : TC_EINTERNAL;
    k->seq = 0;
    if (st) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            sqlite3_int64 v = sqlite3_column_int64(st, 0);
            k->seq = v > 0 ? (uint64_t)v : 0;
            v = sqlite3_column_int64(st, 1); /* NULL (older caches): 0 */
            k->hot_epoch = v > 0 ? (uint64_t)v : 0;
            src = sqlite3_step(st);
        }
        if (src != SQLITE_DONE)
            rc = tc__sqlerr(k->db, src, "bumping the commit sequence");
        sqlite3_reset(st);
    }
    if (rc) {
        tc__exec(k->db, "ROLLBACK", "rollback");
        return rc;
    }
    /* Hot-tier floor: fills from older snapshots are refused from now. */
    tc__hot_write_begin(c, k);
    return TC_OK;
}

/* Roll back a write transaction of @k, first lowering the hot-tier floor
 * it raised (we still hold the write lock). */
static void rollback_write(tc_cache *c, struct tc_conn *k)
{
    tc__hot_write_abort(c, k);
    k->seq = 0;
    tc__exec(k->db, "ROLLBACK", "rollback");
}

int tc__txn_begin(tc_cache *c, const bool *involved, unsigned flags)
{
    if (c->readonly)
        return tc__err(TC_EREADONLY, "tc_begin: cache is opened read-only");
    struct tc_txn *t = tc__txn_find(c);
    if (t) {
        t->depth++;
        return TC_OK;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        return tc__err(TC_ENOMEM, "out of memory");
    t->cache = c;
    t->fork_gen = c->fork_gen;
    t->depth = 1;
    t->conns = calloc((size_t)c->nshards, sizeof *t->conns);
    t->doomed = calloc((size_t)c->nshards, sizeof *t->doomed);
    t->created = calloc((size_t)c->nshards, sizeof *t->created);
    int rc = (t->conns && t->doomed && t->created) ? TC_OK : TC_ENOMEM;
    int i;
    /* Lock every shard in order, so two transactions never deadlock. */
    for (i = 0; i < c->nshards && rc == TC_OK; i++) {
        struct tc_settings set;
        if (involved && !involved[i])
            continue;
        rc = checkout(c, &c->shard[i], &t->conns[i], &set);
        if (rc == TC_OK) {
            rc = begin_immediate(c, t->conns[i], flags);
            if (rc) {
                checkin(c, &c->shard[i], t->conns[i]);
                t->conns[i] = NULL;
            }
        }
    }
    if (rc) {
        for (int j = 0; j < i; j++) {
            if (!t->conns[j])
                continue;
            rollback_write(c, t->conns[j]);
            checkin(c, &c->shard[j], t->conns[j]);
        }
        free(t->conns);
        free(t->doomed);
        free(t->created);
        free(t);
        return rc == TC_ENOMEM ? tc__err(rc, "out of memory") : rc;
    }
    t->next = tls_txns;
    tls_txns = t;
    atomic_fetch_add(&c->txn_open, 1);
    return TC_OK;
}

int tc_begin(tc_cache *c, unsigned flags)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "tc_begin: handle is not open");
    tc__after_fork_check(c);
    return tc__txn_begin(c, NULL, flags);
}

static void txn_unlink(struct tc_txn *t)
{
    for (struct tc_txn **pp = &tls_txns; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return;
        }
    }
}

static int txn_end(tc_cache *c, bool commit)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "handle is not open");
    tc__after_fork_check(c);
    struct tc_txn *t = tc__txn_find(c);
    if (!t)
        return tc__err(TC_EINVAL, "no transaction is open in this thread");
    if (--t->depth > 0)
        return TC_OK;
    int rc = TC_OK;
    for (int i = 0; i < c->nshards; i++) {
        struct tc_conn *k = t->conns[i];
        if (!k)
            continue;
        finish_stmts(k);
        if (commit && rc == TC_OK) {
            tc__hot_precommit(c, k);
            rc = tc__exec_stmt(k, tc__stmt(k, ST_COMMIT), "committing");
            if (rc) {
                rollback_write(c, k);
                commit = false;
            }
            k->seq = 0;
        } else {
            rollback_write(c, k);
        }
        /* Shards committed before a failure stay committed: SQLite has no
         * cross-database atomic commit without ATTACH. Say so. */
        if (commit)
            files_remove(&c->shard[i], &t->doomed[i]);
        else
            files_remove(&c->shard[i], &t->created[i]);
        tc__files_free(&t->doomed[i]);
        tc__files_free(&t->created[i]);
        checkin(c, &c->shard[i], k);
    }
    txn_unlink(t);
    atomic_fetch_sub(&c->txn_open, 1);
    free(t->conns);
    free(t->doomed);
    free(t->created);
    free(t);
    return rc;
}

int tc_commit(tc_cache *c)
{
    return txn_end(c, true);
}

int tc_rollback(tc_cache *c)
{
    return txn_end(c, false);
}

/* ---- units of work --------------------------------------------------- */

static int work_start(tc_cache *c, int shard, struct tc_work *w)
{
    memset(w, 0, sizeof *w);
    w->c = c;
    w->s = &c->shard[shard];
    w->txn = tc__txn_find(c);
    if (w->txn) {
        w->k = w->txn->conns[shard];
        if (!w->k)
            return tc__err(TC_EINTERNAL,
                           "shard %d is not part of this transaction", shard);
        pthread_mutex_lock(&w->s->lock);
        w->set = w->s->set;
        pthread_mutex_unlock(&w->s->lock);
        return TC_OK;
    }
    return checkout(c, w->s, &w->k, &w->set);
}

int tc__work_read(tc_cache *c, int shard, struct tc_work *w)
{
    return work_start(c, shard, w);
}

int tc__work_write(tc_cache *c, int shard, unsigned flags, struct tc_work *w)
{
    if (c->readonly)
        return tc__err(TC_EREADONLY, "cache %s is opened read-only", c->dir);
    int rc = work_start(c, shard, w);
    if (rc || w->txn) {
        if (!rc)
            w->seq = w->k->seq;
        return rc;
    }
    rc = begin_immediate(c, w->k, flags);
    w->seq = w->k->seq;
    if (rc) {
        checkin(c, w->s, w->k);
        w->k = NULL;
        return rc;
    }
    w->write = true;
    return TC_OK;
}

int tc__work_doom(struct tc_work *w, const char *rel)
{
    return tc__files_add(&w->own_doomed, rel);
}

int tc__work_created(struct tc_work *w, const char *rel)
{
    return tc__files_add(&w->own_created, rel);
}

int tc__work_end(struct tc_work *w, int rc)
{
    struct tc_conn *k = w->k;

    if (!k)
        return rc;
    if (w->txn) {
        finish_stmts(k);
        int i = w->s->index;
        int mrc = files_move(&w->txn->doomed[i], &w->own_doomed);
        int crc = files_move(&w->txn->created[i], &w->own_created);
        tc__files_free(&w->own_doomed);
        tc__files_free(&w->own_created);
        if (rc >= 0 && (mrc || crc))
            rc = mrc ? mrc : crc;
        return rc;
    }
    if (w->write) {
        if (rc >= 0) {
            tc__hot_precommit(w->c, k);
            int crc = tc__exec_stmt(k, tc__stmt(k, ST_COMMIT), "committing");
            if (crc) {
                rollback_write(w->c, k);
                rc = crc;
            } else {
                TC_CRASH_POINT("after-commit");
            }
            k->seq = 0;
        } else {
            rollback_write(w->c, k);
        }
        if (rc >= 0)
            files_remove(w->s, &w->own_doomed);
        else
            files_remove(w->s, &w->own_created);
    }
    tc__files_free(&w->own_doomed);
    tc__files_free(&w->own_created);
    checkin(w->c, w->s, k);
    w->k = NULL;
    return rc;
}
