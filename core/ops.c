/*
 * ops.c - python-diskcache's Cache semantics on one shard: set/add, get,
 * touch, incr, pop, delete, contains, push/pull/peek, peekitem, and the
 * inline cull that every insert runs (diskcache-behaviour.md section 6).
 *
 * Write path (diskcache's, kept): store a large value in a file outside
 * the lock -> BEGIN IMMEDIATE (+ commit_seq bump) -> select by (key, raw)
 * -> update or insert -> inline cull -> COMMIT -> unlink replaced files.
 *
 * Rows hold only raw=1 keys written here; rows written by python with a
 * pickled key (raw=0) are never matched by a lookup and read back as
 * TC_EUNSUPPORTED during iteration.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* Column layout of ST_GET, ST_PEEKITEM_* and ST_QUEUE_*. */
enum {
    COL_ROWID,
    COL_EXPIRE,
    COL_TAG,
    COL_MODE,
    COL_FILE,
    COL_VALUE,
    COL_SIZE,
    COL_KEY,
    COL_RAW
};

#define QUEUE_START 500000000000000LL
#define QUEUE_MAX   999999999999999LL

double tc__expire_time(double now, double expire)
{
    if (isinf(expire) && expire > 0)
        return TC_NO_EXPIRE;
    return now + expire;
}

static int bind_expire(sqlite3_stmt *st, int idx, double expire_time)
{
    if (isinf(expire_time))
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_double(st, idx, expire_time);
}

static int64_t min_file_size(struct tc_shard *s)
{
    pthread_mutex_lock(&s->lock);
    int64_t m = s->set.min_file_size;
    pthread_mutex_unlock(&s->lock);
    return m;
}

int tc__store_prepare(tc_cache *c, struct tc_shard *s, const tc_data *val,
                      struct tc_store *out)
{
    memset(out, 0, sizeof *out);
    out->mode = TC_MODE_RAW;
    out->inline_val = val;
    if (val->type == TC_INT || val->type == TC_REAL)
        return TC_OK;
    int64_t min = min_file_size(s);
    /* python measures str in characters and bytes in bytes. */
    size_t measure =
        val->type == TC_TEXT ? tc__utf8_chars(val->ptr, val->len) : val->len;
    if (val->type == TC_MSGPACK)
        out->mode = TC_MODE_MSGPACK;
    if ((int64_t)measure < min)
        return TC_OK;
    int rc = tc__file_write(s->dir, val->ptr, val->len, out->filename);
    if (rc)
        return rc;
    out->size = (int64_t)val->len;
    out->inline_val = NULL;
    if (val->type == TC_TEXT)
        out->mode = TC_MODE_TEXT;
    else if (val->type == TC_BYTES)
        out->mode = TC_MODE_BINARY;
    (void)c;
    return TC_OK;
}

int tc__store_prepare_fd(tc_cache *c, struct tc_shard *s, int fd,
                         struct tc_store *out)
{
    uint64_t size = 0;

    memset(out, 0, sizeof *out);
    int rc = tc__file_write_fd(s->dir, fd, out->filename, &size);
    if (rc)
        return rc;
    out->mode = TC_MODE_BINARY;
    out->size = (int64_t)size;
    (void)c;
    return TC_OK;
}

void tc__store_discard(struct tc_shard *s, struct tc_store *st)
{
    if (st->filename[0])
        tc__file_remove(s->dir, st->filename);
    st->filename[0] = 0;
}

/* Bind size, mode, filename, value at ?5..?8 of ST_INSERT/ST_UPDATE. */
static int bind_store(sqlite3_stmt *st, const struct tc_store *sto)
{
    sqlite3_bind_int64(st, 5, sto->size);
    sqlite3_bind_int(st, 6, sto->mode);
    if (sto->filename[0])
        sqlite3_bind_text(st, 7, sto->filename, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    if (!sto->inline_val)
        return sqlite3_bind_null(st, 8);
    if (sto->inline_val->type == TC_MSGPACK) {
        tc_data blob = *sto->inline_val;
        blob.type = TC_BYTES;
        return tc__bind_data(st, 8, &blob);
    }
    return tc__bind_data(st, 8, sto->inline_val);
}

int tc__volume(struct tc_work *w, uint64_t *bytes)
{
    struct tc_conn *k = w->k;
    sqlite3_stmt *st = tc__stmt(k, ST_PAGE_COUNT);
    int64_t pages = 0, size = 0;
    int src;

    if (!st)
        return TC_EINTERNAL;
    if ((src = sqlite3_step(st)) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (src != SQLITE_ROW)
        return tc__sqlerr(k->db, src, "PRAGMA page_count");
    if (!(st = tc__stmt(k, ST_SETTING_GET)))
        return TC_EINTERNAL;
    sqlite3_bind_text(st, 1, "size", -1, SQLITE_STATIC);
    if ((src = sqlite3_step(st)) == SQLITE_ROW)
        size = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return tc__sqlerr(k->db, src, "reading Settings.size");
    int64_t page_size = w->set.page_size ? w->set.page_size : 4096;
    int64_t v = page_size * pages + size;
    *bytes = v > 0 ? (uint64_t)v : 0;
    return TC_OK;
}

/* Delete the rows a SELECT (rowid, filename, ...) returns; doom files. */
static int delete_selected(struct tc_work *w, sqlite3_stmt *sel,
                           int64_t *deleted)
{
    struct tc_conn *k = w->k;
    int64_t ids[128];
    int n = 0, src, rc = TC_OK;

    while (n < 128 && (src = sqlite3_step(sel)) == SQLITE_ROW) {
        ids[n++] = sqlite3_column_int64(sel, 0);
        const char *f = (const char *)sqlite3_column_text(sel, 1);
        if (f && (rc = tc__work_doom(w, f)))
            break;
    }
    sqlite3_reset(sel);
    if (rc)
        return rc;
    if (n < 128 && src != SQLITE_DONE)
        return tc__sqlerr(k->db, src, "selecting rows to remove");
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *del = tc__stmt(k, ST_DELETE_ROWID);
        if (!del)
            return TC_EINTERNAL;
        sqlite3_bind_int64(del, 1, ids[i]);
        if ((rc = tc__exec_stmt(k, del, "deleting a row")))
            return rc;
    }
    *deleted = n;
    return TC_OK;
}

/* Remove up to @limit expired rows, then, while the shard is over its
 * size limit, the rest of @limit by the eviction policy. A single set uses
 * cull_limit (diskcache's rule); a batch passes cull_limit per item it
 * wrote. */
int tc__cull_inline(struct tc_work *w, double now, int64_t limit)
{
    static const enum tc_stmt_id cull[] = {ST_CULL_LRS, ST_CULL_LRS,
                                           ST_CULL_LRU, ST_CULL_LFU};
    struct tc_conn *k = w->k;
    int64_t budget = limit, n;
    /* Evict in steps of cull_limit, re-checking the volume between steps,
     * so a batch removes no more than per-item sets would. */
    int64_t step = w->set.cull_limit < 1     ? 1
                   : w->set.cull_limit > 128 ? 128
                                             : w->set.cull_limit;
    int rc;
    /* With a live worker (tiercached) expiry and culling are its job: a
     * writer only takes an emergency step when the shard is more than
     * twice over its limit. Without one, python-diskcache's rule. */
    bool worker = limit > 0 && tc__worker_live(w->c);
    double over = worker ? 2.0 * w->set.size_limit : w->set.size_limit;

    while (budget > 0 && !worker) {
        sqlite3_stmt *st = tc__stmt(k, ST_CULL_EXPIRED_SEL);
        if (!st)
            return TC_EINTERNAL;
        sqlite3_bind_double(st, 1, now);
        sqlite3_bind_int64(st, 2, budget > 128 ? 128 : budget);
        n = 0;
        if ((rc = delete_selected(w, st, &n)))
            return rc;
        budget -= n;
        if (n < 128)
            break;
    }
    /* What expiry removed counts against the budget, as in diskcache. */
    bool folded = false;
    while (budget > 0 && w->set.policy != TC_POLICY_NONE) {
        uint64_t vol;
        if ((rc = tc__volume(w, &vol)))
            return rc;
        if (worker ? (double)vol <= over : (double)vol < over)
            break;
        /* Hot hits never reached SQLite: fold them in before choosing
         * LRU/LFU victims (DESIGN-BRIEF 9.4). */
        if (!folded && (rc = tc__hot_fold(w, false)))
            return rc;
        folded = true;
        sqlite3_stmt *st = tc__stmt(k, cull[w->set.policy]);
        if (!st)
            return TC_EINTERNAL;
        sqlite3_bind_int64(st, 1, budget > step ? step : budget);
        n = 0;
        if ((rc = delete_selected(w, st, &n)))
            return rc;
        budget -= n;
        if (n == 0)
            break;
    }
    return TC_OK;
}

int tc__row_fetch(struct tc_shard *s, sqlite3_stmt *st, int base, tc_item *out)
{
    int mode = sqlite3_column_int(st, base + COL_MODE - 1);
    int rc;

    if (sqlite3_column_type(st, base + COL_EXPIRE - 1) == SQLITE_NULL)
        out->expire_time = TC_NO_EXPIRE;
    else
        out->expire_time = sqlite3_column_double(st, base + COL_EXPIRE - 1);
    if ((rc = tc__column_value(st, base + COL_TAG - 1, &out->tag)))
        return rc;
    int vcol = base + COL_VALUE - 1;
    bool inline_val = sqlite3_column_type(st, vcol) != SQLITE_NULL;
    switch (mode) {
    case TC_MODE_RAW:
        if (!inline_val)
            return tc__err(TC_ECORRUPT, "row in %s has mode raw but no value",
                           s->dbpath);
        return tc__column_value(st, vcol, &out->value);
    case TC_MODE_PICKLE:
        return tc__err(TC_EUNSUPPORTED,
                       "unsupported: python pickle (value written by "
                       "python-diskcache with mode 4)");
    case TC_MODE_MSGPACK:
        if (inline_val) {
            if ((rc = tc__column_value(st, vcol, &out->value)))
                return rc;
            out->value.type = TC_MSGPACK;
            return TC_OK;
        }
        /* A large MessagePack value lives in a file. */
        __attribute__((fallthrough));
    case TC_MODE_BINARY:
    case TC_MODE_TEXT: {
        const char *f = (const char *)sqlite3_column_text(st, base + 3);
        char rel[TC_FILENAME_LEN + 1];
        void *buf;
        size_t n;
        if (!f)
            return tc__err(TC_ECORRUPT,
                           "row in %s has a file mode but no file name",
                           s->dbpath);
        snprintf(rel, sizeof rel, "%s", f);
        if (strlen(f) != TC_FILENAME_LEN || !tc__file_name_valid(rel))
            return tc__err(TC_ECORRUPT,
                           "value file name %.80s in %s is not one diskcache "
                           "writes; refusing to open it",
                           f, s->dbpath);
        int64_t size = sqlite3_column_int64(st, base + COL_SIZE - 1);
        if ((rc = tc__file_read(s->dir, rel, size, &buf, &n)))
            return rc;
        int type = mode == TC_MODE_TEXT     ? TC_TEXT
                   : mode == TC_MODE_BINARY ? TC_BYTES
                                            : TC_MSGPACK;
        if (type == TC_TEXT && !tc__utf8_valid(buf, n)) {
            free(buf);
            return tc__err(TC_ECORRUPT, "value file %s/%s is not UTF-8 text",
                           s->dir, rel);
        }
        tc_value_clear(&out->value);
        out->value.type = type;
        out->value.ptr = buf;
        out->value.len = n;
        return TC_OK;
    }
    default:
        return tc__err(TC_ECORRUPT, "row in %s has unknown value mode %d",
                       s->dbpath, mode);
    }
}

/* Look up (rowid, filename, expire_time, mode, value) of @key. */
static int select_row(struct tc_work *w, const tc_data *key, sqlite3_stmt **out)
{
    sqlite3_stmt *st = tc__stmt(w->k, ST_SELECT_ROWID);

    if (!st)
        return TC_EINTERNAL;
    tc__bind_data(st, 1, key);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *out = st;
        return TC_OK;
    }
    sqlite3_reset(st);
    if (src == SQLITE_DONE)
        return TC_NOTFOUND;
    return tc__sqlerr(w->k->db, src, "looking up a key");
}

static bool live(sqlite3_stmt *st, int col, double now)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ||
           sqlite3_column_double(st, col) > now;
}

static int insert_row(struct tc_work *w, const tc_data *key, double now,
                      double expire_time, const tc_data *tag,
                      const struct tc_store *sto)
{
    sqlite3_stmt *st = tc__stmt(w->k, ST_INSERT);

    if (!st)
        return TC_EINTERNAL;
    tc__bind_data(st, 1, key);
    sqlite3_bind_double(st, 2, now);
    bind_expire(st, 3, expire_time);
    tc__bind_data(st, 4, tag);
    bind_store(st, sto);
    return tc__exec_stmt(w->k, st, "inserting a row");
}

static int update_row(struct tc_work *w, int64_t rowid, double now,
                      double expire_time, const tc_data *tag,
                      const struct tc_store *sto)
{
    sqlite3_stmt *st = tc__stmt(w->k, ST_UPDATE);

    if (!st)
        return TC_EINTERNAL;
    sqlite3_bind_int64(st, 1, rowid);
    sqlite3_bind_double(st, 2, now);
    bind_expire(st, 3, expire_time);
    tc__bind_data(st, 4, tag);
    bind_store(st, sto);
    return tc__exec_stmt(w->k, st, "updating a row");
}

int tc__row_put(struct tc_work *w, const tc_data *key,
                const struct tc_store *sto, double expire, const tc_data *tag,
                bool only_if_absent)
{
    /* One clock reading for store_time, expire_time and the cull, as
     * python's set: set(k, v, expire=0) keeps its (expired) row. */
    double now = tc__now(w->c);
    double expire_time = tc__expire_time(now, expire);
    sqlite3_stmt *st = NULL;
    int rc = select_row(w, key, &st);
    w->expire_time = expire_time;

    if (rc < 0)
        return rc;
    if (rc == TC_OK) {
        int64_t rowid = sqlite3_column_int64(st, 0);
        bool is_live = live(st, 2, now);
        const char *old = (const char *)sqlite3_column_text(st, 1);
        if (only_if_absent && is_live) {
            sqlite3_reset(st);
            /* The new file was never referenced: drop it after commit. */
            return sto->filename[0] && tc__work_doom(w, sto->filename)
                       ? TC_ENOMEM
                       : TC_EXISTS;
        }
        if (old && (rc = tc__work_doom(w, old))) {
            sqlite3_reset(st);
            return rc;
        }
        sqlite3_reset(st);
        rc = update_row(w, rowid, now, expire_time, tag, sto);
    } else {
        rc = insert_row(w, key, now, expire_time, tag, sto);
    }
    if (rc || w->defer_cull)
        return rc;
    return tc__cull_inline(w, now, w->set.cull_limit);
}

int tc__op_set_in(struct tc_work *w, const tc_data *key,
                  const struct tc_store *sto, double expire, const tc_data *tag)
{
    return tc__row_put(w, key, sto, expire, tag, false);
}

int tc__op_set(tc_cache *c, int shard, const tc_data *key, const tc_data *val,
               int fd, double expire, const tc_data *tag, bool add,
               unsigned flags)
{
    struct tc_shard *s = &c->shard[shard];
    struct tc_store sto;
    struct tc_work w;
    int rc;

    if (isnan(expire))
        return tc__err(TC_EINVAL, "expire is NaN");
    rc = val ? tc__store_prepare(c, s, val, &sto)
             : tc__store_prepare_fd(c, s, fd, &sto);
    if (rc)
        return rc;
    if ((rc = tc__work_write(c, shard, flags, &w))) {
        tc__store_discard(s, &sto);
        return rc;
    }
    if ((rc = tc__work_created(&w, sto.filename))) {
        tc__store_discard(s, &sto);
        return tc__work_end(&w, rc);
    }
    uint64_t deletes = w.k->deletes;
    rc = tc__row_put(&w, key, &sto, expire, tag, add);
    /* The set's own inline cull may have removed the row just written:
     * then publish nothing (a later get fills from SQLite). */
    bool publish = rc == TC_OK && val && !w.txn && w.k->deletes == deletes;
    uint64_t seq = w.seq;
    double expire_time = w.expire_time;
    rc = tc__work_end(&w, rc);
    /* Write-through: committed, now visible in the hot tier. */
    if (rc == TC_OK && publish)
        tc__hot_publish(c, shard, key, val, tag, expire_time, seq);
    return rc;
}

/* The policy's access update on a hit (LRU/LFU), as diskcache's get. */
static int touch_access(struct tc_work *w, int64_t rowid, double now)
{
    sqlite3_stmt *st = NULL;

    if (w->set.policy == TC_POLICY_LRU) {
        if (!(st = tc__stmt(w->k, ST_LRU_GET)))
            return TC_EINTERNAL;
        sqlite3_bind_double(st, 1, now);
        sqlite3_bind_int64(st, 2, rowid);
    } else if (w->set.policy == TC_POLICY_LFU) {
        if (!(st = tc__stmt(w->k, ST_LFU_GET)))
            return TC_EINTERNAL;
        sqlite3_bind_int64(st, 1, rowid);
    } else {
        return TC_OK;
    }
    return tc__exec_stmt(w->k, st, "recording an access");
}

static int op_get_cold(tc_cache *c, int shard, const tc_data *key, tc_item *out,
                       uint64_t *snap, unsigned flags)
{
    struct tc_work w;
    int rc;
    double now = tc__now(c);
    bool slow = !c->readonly && atomic_load_explicit(&c->shard[shard].slow_get,
                                                     memory_order_relaxed);
    rc = slow ? tc__work_write(c, shard, flags, &w)
              : tc__work_read(c, shard, &w);
    if (rc)
        return rc;
    sqlite3_stmt *st = tc__stmt(w.k, snap ? ST_GET_SNAP : ST_GET);
    if (!st)
        return tc__work_end(&w, TC_EINTERNAL);
    tc__bind_data(st, 1, key);
    sqlite3_bind_double(st, 2, now);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        tc_item tmp = TC_ITEM_INIT;
        rc = tc__row_fetch(w.s, st, 1, &tmp);
        int64_t rowid = sqlite3_column_int64(st, 0);
        if (snap) {
            sqlite3_int64 v = sqlite3_column_int64(st, 7);
            *snap = v > 0 ? (uint64_t)v : 0;
        }
        sqlite3_reset(st);
        if (slow && rc >= 0) {
            int urc = TC_OK;
            if (w.set.statistics)
                urc = tc__exec_stmt(w.k, tc__stmt(w.k, ST_HITS), "hits");
            if (urc == TC_OK)
                urc = touch_access(&w, rowid, now);
            if (urc)
                rc = urc;
        }
        if (rc == TC_OK && out) {
            tc__item_move(out, &tmp);
        } else {
            tc_item_clear(&tmp);
        }
    } else {
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            rc = tc__sqlerr(w.k->db, src, "looking up a key");
        else
            rc = TC_NOTFOUND;
        if (rc == TC_NOTFOUND && slow && w.set.statistics) {
            int urc = tc__exec_stmt(w.k, tc__stmt(w.k, ST_MISSES), "misses");
            if (urc)
                rc = urc;
        }
    }
    /* A miss still commits its statistics; an error rolls back. */
    return tc__work_end(&w, rc);
}

int tc__op_get_cold(tc_cache *c, int shard, const tc_data *key, tc_item *out,
                    uint64_t *snap)
{
    return op_get_cold(c, shard, key, out, snap, 0);
}

/* A get: the hot tier first; on a miss SQLite, then a fill versioned by
 * the read snapshot's commit sequence. */
/* After a hot-tier miss: SQLite, then a fill. */
static int op_get_missed(tc_cache *c, int shard, const tc_data *key,
                         tc_item *out, unsigned flags)
{
    bool hit = false;
    if (!tc__hot_fill_begin(c, shard, key, out, &hit))
        return hit ? TC_OK : op_get_cold(c, shard, key, out, NULL, flags);
    tc_item tmp = TC_ITEM_INIT;
    uint64_t snap = 0;
    int rc = op_get_cold(c, shard, key, &tmp, &snap, flags);
    tc__hot_fill_end(c, shard, key, &tmp, rc == TC_OK && snap, snap);
    if (rc == TC_OK && out)
        tc__item_move(out, &tmp);
    else
        tc_item_clear(&tmp);
    return rc;
}

int tc__op_get(tc_cache *c, int shard, const tc_data *key, tc_item *out,
               unsigned flags)
{
    size_t len;
    int r = out ? tc__hot_get(c, shard, key, out)
                : tc__hot_get_buf(c, shard, key, NULL, 0, &len, NULL, NULL);
    if (r != 1 /* TC_HOT_MISS */)
        return TC_OK;
    return op_get_missed(c, shard, key, out, flags);
}

/* ---- public single-key operations that live on one shard ------------- */

static int shard_of(tc_cache *c, const tc_data *key)
{
    if (c->shards == 0)
        return 0;
    return (int)(tc__fanout_hash(key) % (uint64_t)c->shards);
}

static int enter(tc_cache *c, const char *fn)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "%s: handle is not open", fn);
    tc__after_fork_check(c);
    return TC_OK;
}

#define ENTER(c, fn)                  \
    do {                              \
        int enter_rc_ = enter(c, fn); \
        if (enter_rc_)                \
            return enter_rc_;         \
    } while (0)

#define CHECK(expr)             \
    do {                        \
        int check_rc_ = (expr); \
        if (check_rc_)          \
            return check_rc_;   \
    } while (0)

int tc_set(tc_cache *c, const tc_data *key, const tc_data *val, double expire,
           const tc_data *tag, unsigned flags)
{
    ENTER(c, "tc_set");
    CHECK(tc__check_key(key));
    CHECK(tc__check_value(val, "value"));
    CHECK(tc__check_tag(tag));
    return tc__op_set(c, shard_of(c, key), key, val, -1, expire, tag, false,
                      flags);
}

int tc_set_fd(tc_cache *c, const tc_data *key, int fd, double expire,
              const tc_data *tag, unsigned flags)
{
    ENTER(c, "tc_set_fd");
    CHECK(tc__check_key(key));
    CHECK(tc__check_tag(tag));
    if (fd < 0)
        return tc__err(TC_EINVAL, "tc_set_fd: bad file descriptor %d", fd);
    return tc__op_set(c, shard_of(c, key), key, NULL, fd, expire, tag, false,
                      flags);
}

int tc_add(tc_cache *c, const tc_data *key, const tc_data *val, double expire,
           const tc_data *tag, unsigned flags)
{
    ENTER(c, "tc_add");
    CHECK(tc__check_key(key));
    CHECK(tc__check_value(val, "value"));
    CHECK(tc__check_tag(tag));
    return tc__op_set(c, shard_of(c, key), key, val, -1, expire, tag, true,
                      flags);
}

int tc__get_cold(tc_cache *c, const tc_data *key, tc_item *out, unsigned flags,
                 bool asked)
{
    ENTER(c, "tc_get");
    bool looked = out && tc__key_plausible(key);
    if (looked && !asked &&
        tc__hot_get(c, tc__hot_shard_of(c, key), key, out) ==
            0 /* TC_HOT_HIT */)
        return TC_OK;
    CHECK(tc__check_key(key));
    return looked ? op_get_missed(c, shard_of(c, key), key, out, flags)
                  : tc__op_get(c, shard_of(c, key), key, out, flags);
}

int tc__get_buf_cold(tc_cache *c, const tc_data *key, void *buf, size_t cap,
                     size_t *len, int *type, double *expire_time,
                     unsigned flags, bool asked)
{
    ENTER(c, "tc_get_buf");
    if (!len || (!buf && cap))
        return tc__err(TC_EINVAL, "tc_get_buf: len is NULL or buf is NULL");
    /* The hot tier copies straight into buf, allocating nothing. */
    if (!asked && tc__key_plausible(key)) {
        int hr = tc__hot_get_buf(c, tc__hot_shard_of(c, key), key, buf, cap,
                                 len, type, expire_time);
        if (hr == 0 /* TC_HOT_HIT */)
            return TC_OK;
        if (hr == 2 /* TC_HOT_TOOSMALL */)
            return tc__err(TC_ETOOSMALL,
                           "tc_get_buf: value has %zu bytes, buffer %zu", *len,
                           cap);
    }
    CHECK(tc__check_key(key));
    tc_item it = TC_ITEM_INIT;
    /* A valid key is plausible: the hot tier was already asked. */
    int rc = op_get_missed(c, shard_of(c, key), key, &it, flags);
    if (rc)
        return rc;
    *len = it.value.len;
    if (type)
        *type = it.value.type;
    if (expire_time)
        *expire_time = it.expire_time;
    if (it.value.len > cap)
        rc =
            tc__err(TC_ETOOSMALL, "tc_get_buf: value has %zu bytes, buffer %zu",
                    it.value.len, cap);
    else if (it.value.len)
        memcpy(buf, it.value.ptr, it.value.len);
    tc_item_clear(&it);
    return rc;
}

int tc_read(tc_cache *c, const tc_data *key, int *fd, unsigned flags)
{
    struct tc_work w;
    int rc, sh;

    ENTER(c, "tc_read");
    CHECK(tc__check_key(key));
    if (!fd)
        return tc__err(TC_EINVAL, "tc_read: fd is NULL");
    sh = shard_of(c, key);
    if ((rc = tc__work_read(c, sh, &w)))
        return rc;
    sqlite3_stmt *st = tc__stmt(w.k, ST_GET);
    if (!st)
        return tc__work_end(&w, TC_EINTERNAL);
    tc__bind_data(st, 1, key);
    sqlite3_bind_double(st, 2, tc__now(c));
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        sqlite3_reset(st);
        rc = src == SQLITE_DONE ? TC_NOTFOUND
                                : tc__sqlerr(w.k->db, src, "tc_read");
        return tc__work_end(&w, rc);
    }
    int mode = sqlite3_column_int(st, COL_MODE);
    const char *f = (const char *)sqlite3_column_text(st, COL_FILE);
    if (f && sqlite3_column_type(st, COL_VALUE) == SQLITE_NULL &&
        mode != TC_MODE_PICKLE) {
        char rel[TC_FILENAME_LEN + 1];
        snprintf(rel, sizeof rel, "%s", f);
        rc = strlen(f) == TC_FILENAME_LEN
                 ? tc__file_open(w.s->dir, rel, fd)
                 : tc__err(TC_ECORRUPT, "bad value file name");
        sqlite3_reset(st);
        return tc__work_end(&w, rc);
    }
    /* An inline value: hand out an anonymous in-memory file with a copy,
     * so every existing key reads the same way (diskcache issue #286). */
    tc_item it = TC_ITEM_INIT;
    rc = tc__row_fetch(w.s, st, 1, &it);
    sqlite3_reset(st);
    rc = tc__work_end(&w, rc);
    if (rc) {
        tc_item_clear(&it);
        return rc;
    }
    const void *p = it.value.ptr;
    size_t n = it.value.len;
    int mfd = memfd_create("tiercache-value", MFD_CLOEXEC);
    if (mfd < 0) {
        tc_item_clear(&it);
        return tc__oserr(errno, "memfd_create", NULL);
    }
    const char *b = p;
    while (n) {
        ssize_t wr = write(mfd, b, n);
        if (wr < 0 && errno == EINTR)
            continue;
        if (wr <= 0) {
            int err = errno;
            close(mfd);
            tc_item_clear(&it);
            return tc__oserr(err, "writing the in-memory value", NULL);
        }
        b += wr;
        n -= (size_t)wr;
    }
    tc_item_clear(&it);
    lseek(mfd, 0, SEEK_SET);
    *fd = mfd;
    return TC_OK;
}

int tc_contains(tc_cache *c, const tc_data *key)
{
    struct tc_work w;
    int rc, sh;

    ENTER(c, "tc_contains");
    CHECK(tc__check_key(key));
    sh = shard_of(c, key);
    if ((rc = tc__work_read(c, sh, &w)))
        return rc;
    sqlite3_stmt *st = tc__stmt(w.k, ST_CONTAINS);
    if (!st)
        return tc__work_end(&w, TC_EINTERNAL);
    tc__bind_data(st, 1, key);
    sqlite3_bind_double(st, 2, tc__now(c));
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    rc = src == SQLITE_ROW    ? TC_OK
         : src == SQLITE_DONE ? TC_NOTFOUND
                              : tc__sqlerr(w.k->db, src, "tc_contains");
    return tc__work_end(&w, rc);
}

int tc_touch(tc_cache *c, const tc_data *key, double expire, unsigned flags)
{
    struct tc_work w;
    int rc;

    ENTER(c, "tc_touch");
    CHECK(tc__check_key(key));
    if (isnan(expire))
        return tc__err(TC_EINVAL, "tc_touch: expire is NaN");
    if ((rc = tc__work_write(c, shard_of(c, key), flags, &w)))
        return rc;
    double now = tc__now(c);
    sqlite3_stmt *st = NULL;
    rc = select_row(&w, key, &st);
    if (rc == TC_OK) {
        int64_t rowid = sqlite3_column_int64(st, 0);
        bool is_live = live(st, 2, now);
        sqlite3_reset(st);
        if (!is_live) {
            rc = TC_NOTFOUND;
        } else {
            sqlite3_stmt *up = tc__stmt(w.k, ST_TOUCH);
            bind_expire(up, 1, tc__expire_time(now, expire));
            sqlite3_bind_int64(up, 2, rowid);
            rc = tc__exec_stmt(w.k, up, "tc_touch");
        }
    }
    return tc__work_end(&w, rc);
}

/* Add two numbers the way python does: int + int stays int (64-bit here),
 * anything with a float becomes a float. */
static int add_numbers(const tc_value *a, const tc_data *b, tc_value *out)
{
    if (a->type == TC_INT && b->type == TC_INT) {
        int64_t r;
        if (__builtin_add_overflow(a->i, *(const int64_t *)b->ptr, &r))
            return tc__err(TC_ERANGE, "incr: result overflows 64 bits");
        tc__value_set_int(out, r);
        return TC_OK;
    }
    double x = a->type == TC_INT ? (double)a->i : a->d;
    double y = b->type == TC_INT ? (double)*(const int64_t *)b->ptr
                                 : *(const double *)b->ptr;
    tc__value_set_real(out, x + y);
    return TC_OK;
}

static int check_number(const tc_data *d, const char *what)
{
    if (!d || (d->type != TC_INT && d->type != TC_REAL) || !d->ptr ||
        d->len != 8)
        return tc__err(TC_EINVAL, "incr: %s must be an integer or a real",
                       what);
    if (d->type == TC_REAL && isnan(*(const double *)d->ptr))
        return tc__err(TC_EINVAL, "incr: %s is NaN", what);
    return TC_OK;
}

int tc_incr(tc_cache *c, const tc_data *key, const tc_data *delta,
            const tc_data *deflt, tc_value *out, unsigned flags)
{
    struct tc_work w;
    int rc;

    ENTER(c, "tc_incr");
    CHECK(tc__check_key(key));
    CHECK(check_number(delta, "delta"));
    if (deflt)
        CHECK(check_number(deflt, "default"));
    if ((rc = tc__work_write(c, shard_of(c, key), flags, &w)))
        return rc;
    double now = tc__now(c);
    tc_value result = TC_VALUE_INIT;
    sqlite3_stmt *st = NULL;
    rc = select_row(&w, key, &st);
    if (rc < 0)
        return tc__work_end(&w, rc);
    if (rc == TC_OK && live(st, 2, now)) {
        int64_t rowid = sqlite3_column_int64(st, 0);
        int mode = sqlite3_column_int(st, 3);
        int vt = sqlite3_column_type(st, 4);
        tc_value cur = TC_VALUE_INIT;
        if (mode != TC_MODE_RAW || (vt != SQLITE_INTEGER && vt != SQLITE_FLOAT))
            rc = tc__err(TC_ETYPE, "incr: the stored value is not a number");
        else
            rc = tc__column_value(st, 4, &cur);
        sqlite3_reset(st);
        if (rc == TC_OK)
            rc = add_numbers(&cur, delta, &result);
        if (rc == TC_OK) {
            sqlite3_stmt *up = tc__stmt(w.k, ST_INCR_UPDATE);
            sqlite3_bind_double(up, 1, now);
            tc__bind_data(up, 2, &(tc_data){result.ptr, 8, result.type});
            sqlite3_bind_int64(up, 3, rowid);
            rc = tc__exec_stmt(w.k, up, "incr");
        }
        if (rc == TC_OK)
            rc = touch_access(&w, rowid, now);
    } else {
        /* Missing, or expired: start from the default. */
        bool expired = rc == TC_OK;
        int64_t rowid = expired ? sqlite3_column_int64(st, 0) : 0;
        const char *old =
            expired ? (const char *)sqlite3_column_text(st, 1) : NULL;
        if (old)
            rc = tc__work_doom(&w, old);
        else
            rc = TC_OK;
        if (expired)
            sqlite3_reset(st);
        if (rc == TC_OK && !deflt)
            rc = tc__err(TC_NOTFOUND, "incr: key not found and no default");
        tc_value base = TC_VALUE_INIT;
        if (rc == TC_OK) {
            if (deflt->type == TC_INT)
                tc__value_set_int(&base, *(const int64_t *)deflt->ptr);
            else
                tc__value_set_real(&base, *(const double *)deflt->ptr);
            rc = add_numbers(&base, delta, &result);
        }
        if (rc == TC_OK) {
            struct tc_store sto = {TC_MODE_RAW, 0, "", NULL};
            tc_data v = {result.ptr, 8, result.type};
            sto.inline_val = &v;
            rc = expired ? update_row(&w, rowid, now, TC_NO_EXPIRE, NULL, &sto)
                         : insert_row(&w, key, now, TC_NO_EXPIRE, NULL, &sto);
            if (rc == TC_OK)
                rc = tc__cull_inline(&w, now, w.set.cull_limit);
        }
    }
    rc = tc__work_end(&w, rc);
    if (rc == TC_OK && out) {
        tc_value_clear(out);
        if (result.type == TC_INT)
            tc__value_set_int(out, result.i);
        else
            tc__value_set_real(out, result.d);
    }
    return rc;
}

/* Select the live row of @key with the full column layout. */
static int select_live(struct tc_work *w, const tc_data *key, double now,
                       sqlite3_stmt **out)
{
    sqlite3_stmt *st = tc__stmt(w->k, ST_GET);

    if (!st)
        return TC_EINTERNAL;
    tc__bind_data(st, 1, key);
    sqlite3_bind_double(st, 2, now);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *out = st;
        return TC_OK;
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? TC_NOTFOUND
                              : tc__sqlerr(w->k->db, src, "looking up a key");
}

static int delete_current(struct tc_work *w, sqlite3_stmt *st)
{
    int64_t rowid = sqlite3_column_int64(st, COL_ROWID);
    const char *f = (const char *)sqlite3_column_text(st, COL_FILE);
    int rc = f ? tc__work_doom(w, f) : TC_OK;

    sqlite3_reset(st);
    if (rc)
        return rc;
    sqlite3_stmt *del = tc__stmt(w->k, ST_DELETE_ROWID);
    if (!del)
        return TC_EINTERNAL;
    sqlite3_bind_int64(del, 1, rowid);
    return tc__exec_stmt(w->k, del, "deleting a row");
}

int tc_pop(tc_cache *c, const tc_data *key, tc_item *out, unsigned flags)
{
    struct tc_work w;
    sqlite3_stmt *st = NULL;
    int rc;

    ENTER(c, "tc_pop");
    CHECK(tc__check_key(key));
    if ((rc = tc__work_write(c, shard_of(c, key), flags, &w)))
        return rc;
    tc_item tmp = TC_ITEM_INIT;
    rc = select_live(&w, key, tc__now(c), &st);
    if (rc == TC_OK) {
        int frc = tc__row_fetch(w.s, st, 1, &tmp);
        if (frc < 0) {
            sqlite3_reset(st);
            rc = frc;
        } else {
            rc = delete_current(&w, st);
            if (rc == TC_OK)
                rc = frc; /* a vanished file: the row goes, the pop misses */
        }
    }
    /* Commit the delete even when the value file had vanished. */
    int erc = tc__work_end(&w, rc == TC_NOTFOUND ? TC_OK : rc);
    if (erc < 0)
        rc = erc;
    if (rc == TC_OK && out) {
        tc__item_move(out, &tmp);
    } else {
        tc_item_clear(&tmp);
    }
    return rc;
}

int tc__op_delete_in(struct tc_work *w, const tc_data *key)
{
    sqlite3_stmt *st = NULL;
    int rc = select_live(w, key, tc__now(w->c), &st);

    if (rc)
        return rc;
    return delete_current(w, st);
}

int tc_delete(tc_cache *c, const tc_data *key, unsigned flags)
{
    struct tc_work w;
    int rc;

    ENTER(c, "tc_delete");
    CHECK(tc__check_key(key));
    if ((rc = tc__work_write(c, shard_of(c, key), flags, &w)))
        return rc;
    rc = tc__op_delete_in(&w, key);
    return tc__work_end(&w, rc);
}

/* ---- queues ---------------------------------------------------------- */

struct qrange {
    tc_data lo, hi;
    int64_t ilo, ihi;
    char slo[600], shi[600];
};

static int queue_range(const char *prefix, struct qrange *r)
{
    if (!prefix) {
        r->ilo = 0;
        r->ihi = QUEUE_MAX;
        r->lo = tc_int(&r->ilo);
        r->hi = tc_int(&r->ihi);
        return TC_OK;
    }
    size_t n = strlen(prefix);
    if (n > 500 || !tc__utf8_valid((const unsigned char *)prefix, n))
        return tc__err(TC_EINVAL, "queue prefix must be UTF-8 of at most 500 "
                                  "bytes");
    snprintf(r->slo, sizeof r->slo, "%s-000000000000000", prefix);
    snprintf(r->shi, sizeof r->shi, "%s-999999999999999", prefix);
    r->lo = tc_text(r->slo);
    r->hi = tc_text(r->shi);
    return TC_OK;
}

static int queue_select(struct tc_work *w, const struct qrange *r, bool last,
                        sqlite3_stmt **out)
{
    sqlite3_stmt *st = tc__stmt(w->k, last ? ST_QUEUE_LAST : ST_QUEUE_FIRST);

    if (!st)
        return TC_EINTERNAL;
    tc__bind_data(st, 1, &r->lo);
    tc__bind_data(st, 2, &r->hi);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *out = st;
        return TC_OK;
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? TC_NOTFOUND
                              : tc__sqlerr(w->k->db, src, "queue select");
}

static int plain_only(tc_cache *c, const char *fn)
{
    if (c->shards != 0)
        return tc__err(TC_EINVAL,
                       "%s: queues work on a plain Cache, not a FanoutCache "
                       "(as in python-diskcache)",
                       fn);
    return TC_OK;
}

int tc_push(tc_cache *c, const tc_data *val, const char *prefix, int side,
            double expire, const tc_data *tag, tc_value *key_out,
            unsigned flags)
{
    struct qrange r;
    struct tc_store sto;
    struct tc_work w;
    sqlite3_stmt *st = NULL;
    int rc;

    ENTER(c, "tc_push");
    CHECK(plain_only(c, "tc_push"));
    CHECK(tc__check_value(val, "value"));
    CHECK(tc__check_tag(tag));
    CHECK(queue_range(prefix, &r));
    if (side != TC_BACK && side != TC_FRONT)
        return tc__err(TC_EINVAL, "tc_push: side must be TC_BACK or TC_FRONT");
    if (isnan(expire))
        return tc__err(TC_EINVAL, "tc_push: expire is NaN");
    if ((rc = tc__store_prepare(c, &c->shard[0], val, &sto)))
        return rc;
    if ((rc = tc__work_write(c, 0, flags, &w))) {
        tc__store_discard(&c->shard[0], &sto);
        return rc;
    }
    if ((rc = tc__work_created(&w, sto.filename)))
        return tc__work_end(&w, rc);
    int64_t num = QUEUE_START;
    double fnum = 0;
    bool real_key = false; /* python: a REAL end key gives a REAL next key */
    rc = queue_select(&w, &r, side == TC_BACK, &st);
    if (rc == TC_OK) {
        if (prefix) {
            const char *k = (const char *)sqlite3_column_text(st, COL_KEY);
            num = strtoll(k + strlen(prefix) + 1, NULL, 10);
        } else if (sqlite3_column_type(st, COL_KEY) == SQLITE_FLOAT) {
            real_key = true;
            fnum = sqlite3_column_double(st, COL_KEY);
            fnum += side == TC_BACK ? 1 : -1;
        } else {
            num = sqlite3_column_int64(st, COL_KEY);
        }
        num += side == TC_BACK ? 1 : -1;
        sqlite3_reset(st);
    } else if (rc == TC_NOTFOUND) {
        rc = TC_OK;
    }
    char text[600];
    tc_data key;
    if (prefix) {
        snprintf(text, sizeof text, "%s-%015lld", prefix, (long long)num);
        key = tc_text(text);
    } else {
        key = real_key ? tc_real(&fnum) : tc_int(&num);
    }
    double now = tc__now(c);
    if (rc == TC_OK)
        rc = insert_row(&w, &key, now, tc__expire_time(now, expire), tag, &sto);
    if (rc == TC_OK)
        rc = tc__cull_inline(&w, now, w.set.cull_limit);
    rc = tc__work_end(&w, rc);
    if (rc == TC_OK && key_out) {
        if (prefix)
            rc = tc__value_set_bytes(key_out, TC_TEXT, text, strlen(text));
        else if (real_key)
            tc__value_set_real(key_out, fnum);
        else
            tc__value_set_int(key_out, num);
    }
    return rc;
}

/* pull and peek: take the first/last live item of a queue, deleting the
 * expired ones met on the way (each in its own transaction, as diskcache
 * does). */
static int queue_take(tc_cache *c, const char *prefix, int side, bool remove,
                      tc_item *out, unsigned flags)
{
    struct qrange r;
    int rc;

    CHECK(plain_only(c, remove ? "tc_pull" : "tc_peek"));
    CHECK(queue_range(prefix, &r));
    if (side != TC_BACK && side != TC_FRONT)
        return tc__err(TC_EINVAL, "side must be TC_BACK or TC_FRONT");
    for (;;) {
        struct tc_work w;
        sqlite3_stmt *st = NULL;
        if ((rc = tc__work_write(c, 0, flags, &w)))
            return rc;
        rc = queue_select(&w, &r, side == TC_BACK, &st);
        if (rc) {
            tc__work_end(&w, TC_OK);
            return rc;
        }
        tc_item tmp = TC_ITEM_INIT;
        bool expired = !live(st, COL_EXPIRE, tc__now(c));
        int frc = TC_OK;
        if (!expired) {
            frc = tc__row_fetch(&c->shard[0], st, 1, &tmp);
            if (frc == TC_OK)
                frc = tc__column_key(st, COL_KEY, COL_RAW, &tmp.key);
        }
        if (expired || remove || frc == TC_NOTFOUND)
            rc = delete_current(&w, st);
        else
            sqlite3_reset(st);
        if (rc == TC_OK && frc < 0)
            rc = frc;
        rc = tc__work_end(&w, rc);
        if (rc == TC_OK && !expired && frc == TC_OK) {
            if (out) {
                tc__item_move(out, &tmp);
            } else {
                tc_item_clear(&tmp);
            }
            return TC_OK;
        }
        tc_item_clear(&tmp);
        if (rc)
            return rc;
    }
}

int tc_pull(tc_cache *c, const char *prefix, int side, tc_item *out,
            unsigned flags)
{
    ENTER(c, "tc_pull");
    return queue_take(c, prefix, side, true, out, flags);
}

int tc_peek(tc_cache *c, const char *prefix, int side, tc_item *out,
            unsigned flags)
{
    ENTER(c, "tc_peek");
    return queue_take(c, prefix, side, false, out, flags);
}

int tc_peekitem(tc_cache *c, int last, tc_item *out, unsigned flags)
{
    int rc;

    ENTER(c, "tc_peekitem");
    CHECK(plain_only(c, "tc_peekitem"));
    for (;;) {
        struct tc_work w;
        if ((rc = tc__work_write(c, 0, flags, &w)))
            return rc;
        sqlite3_stmt *st =
            tc__stmt(w.k, last ? ST_PEEKITEM_LAST : ST_PEEKITEM_FIRST);
        if (!st)
            return tc__work_end(&w, TC_EINTERNAL);
        int src = sqlite3_step(st);
        if (src != SQLITE_ROW) {
            sqlite3_reset(st);
            rc = src == SQLITE_DONE ? TC_NOTFOUND
                                    : tc__sqlerr(w.k->db, src, "peekitem");
            int erc = tc__work_end(&w, rc == TC_NOTFOUND ? TC_OK : rc);
            return erc < 0 ? erc : rc;
        }
        if (!live(st, COL_EXPIRE, tc__now(c))) {
            rc = tc__work_end(&w, delete_current(&w, st));
            if (rc)
                return rc;
            continue;
        }
        tc_item tmp = TC_ITEM_INIT;
        rc = tc__row_fetch(&c->shard[0], st, 1, &tmp);
        if (rc == TC_OK)
            rc = tc__column_key(st, COL_KEY, COL_RAW, &tmp.key);
        sqlite3_reset(st);
        rc = tc__work_end(&w, rc);
        if (rc == TC_OK && out) {
            tc__item_move(out, &tmp);
        } else {
            tc_item_clear(&tmp);
        }
        return rc;
    }
}
