/*
 * deque.c - python-diskcache's persistent Deque over a plain Cache
 * (diskcache-behaviour.md section 9; persistent.py is the reference).
 *
 * Storage is python's, unchanged: each item is a row whose key is an
 * INTEGER (raw = 1) that push/pull with no prefix hand out, starting at
 * 500000000000000 and growing by one at the back and shrinking by one at
 * the front; the deque's order is the key order. So python's Deque reads
 * a directory written here and the other way round.
 *
 * Every call is one unit of work on the shard's connection: its own write
 * transaction (BEGIN IMMEDIATE, waiting through busy timeouts as python's
 * retry=True), or, inside the caller's tc_begin, a savepoint, so a call
 * that fails leaves nothing half done in either case. Reads of one item
 * or of the whole deque (get, count) are single statements: one snapshot.
 *
 * Rotate and reverse move rows by rewriting their keys, never their
 * values: no value file is copied, and the keys end up exactly as python's
 * pop/appendleft loop (rotate) or clear/extend rebuild (reverse) leaves
 * them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* python's queue bounds for prefix None: keys strictly between them. */
#define QUEUE_START 500000000000000LL
#define QUEUE_MAX   999999999999999LL

/* A row as tc__row_fetch reads it (from column 1), plus key and raw. */
#define ROW_SQL                                                    \
    "SELECT rowid, expire_time, tag, mode, filename, value, size," \
    " key, raw FROM Cache"
enum { C_ROWID, C_FETCH, C_MODE = 3, C_FILE, C_VALUE, C_SIZE, C_KEY, C_RAW };

/* The rows of the queue range, python's pull order. */
#define QUEUE_WHERE " WHERE ? < key AND key < ? AND raw = 1"

static int enter(tc_cache *c, const char *fn)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "%s: handle is not open", fn);
    tc__after_fork_check(c);
    if (c->shards != 0)
        return tc__err(TC_EINVAL,
                       "%s: a deque lives in a plain Cache, not a FanoutCache",
                       fn);
    return TC_OK;
}

/* Every error a public function returns names it; the helpers below it
 * name only their step ("deleting a deque item: disk I/O error"). */
static int done(int rc, const char *fn)
{
    return tc__err_named(rc, fn);
}

static int check_side(int side, const char *fn)
{
    if (side != TC_BACK && side != TC_FRONT)
        return tc__err(TC_EINVAL, "%s: side must be TC_BACK or TC_FRONT", fn);
    return TC_OK;
}

/* ---- units of work ---------------------------------------------------- */

/* Start a write: a transaction of its own, or a savepoint inside the
 * caller's transaction so that a failure can be undone on its own. */
static int work_begin(tc_cache *c, struct tc_work *w)
{
    int rc = tc__work_write(c, 0, TC_RETRY, w);

    if (rc || !w->txn)
        return rc;
    rc = tc__exec(w->k->db, "SAVEPOINT tc_deque", "starting a savepoint");
    if (rc)
        tc__work_end(w, rc);
    return rc;
}

/* End a write started by work_begin: commit on TC_OK; any other code
 * (TC_NOTFOUND too) undoes everything the call did and is returned. */
static int work_finish(struct tc_work *w, int rc, const char *fn)
{
    if (rc == TC_OK && w->txn)
        rc = tc__exec(w->k->db, "RELEASE tc_deque", "releasing a savepoint");
    if (rc == TC_OK)
        return done(tc__work_end(w, TC_OK), fn);
    if (w->txn) {
        tc__exec(w->k->db, "ROLLBACK TO tc_deque", "savepoint rollback");
        tc__exec(w->k->db, "RELEASE tc_deque", "releasing a savepoint");
        /* The rows this call deleted are back: keep their files. The
         * files it wrote are referenced by no row any more. */
        w->own_doomed.count = 0;
        for (size_t i = 0; i < w->own_created.count; i++)
            tc__file_remove(w->s->dir, w->own_created.names[i]);
        w->own_created.count = 0;
    }
    /* tc__work_end rolls back on a negative code. */
    tc__work_end(w, rc < 0 ? rc : TC_EINTERNAL);
    return done(rc, fn);
}

/* Settings.count: python's len(deque). */
static int row_count(struct tc_work *w, int64_t *n)
{
    sqlite3_stmt *st = tc__stmt(w->k, ST_SETTING_GET);

    if (!st)
        return TC_EINTERNAL;
    sqlite3_bind_text(st, 1, "count", -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    *n = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return tc__sqlerr(w->k->db, src, "reading Settings.count");
    return TC_OK;
}

/* Delete a row and queue its value file for removal after commit. */
static int delete_row(struct tc_work *w, int64_t rowid, const char *file)
{
    int rc = file ? tc__work_doom(w, file) : TC_OK;

    if (rc)
        return rc;
    sqlite3_stmt *del = tc__stmt(w->k, ST_DELETE_ROWID);
    if (!del)
        return TC_EINTERNAL;
    sqlite3_bind_int64(del, 1, rowid);
    return tc__exec_stmt(w->k, del, "deleting a deque item");
}

/* Drop up to @n items of the queue range from @side (maxlen). */
static int drop_end(struct tc_work *w, int side, int64_t n)
{
    static const char *const sql[2] = {
        [TC_BACK] = "SELECT rowid, filename FROM Cache" QUEUE_WHERE
                    " ORDER BY key DESC LIMIT ?",
        [TC_FRONT] = "SELECT rowid, filename FROM Cache" QUEUE_WHERE
                     " ORDER BY key ASC LIMIT ?",
    };
    int rc = TC_OK;

    while (n > 0 && rc == TC_OK) {
        int64_t ids[128];
        int got = 0, src = SQLITE_DONE;
        sqlite3_stmt *st;
        if ((rc = tc__prepare(w->k, sql[side], &st)))
            return rc;
        sqlite3_bind_int64(st, 1, 0);
        sqlite3_bind_int64(st, 2, QUEUE_MAX);
        sqlite3_bind_int64(st, 3, n < 128 ? n : 128);
        while (rc == TC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
            const char *f = (const char *)sqlite3_column_text(st, 1);
            ids[got++] = sqlite3_column_int64(st, 0);
            if (f)
                rc = tc__work_doom(w, f);
        }
        if (rc == TC_OK && src != SQLITE_DONE)
            rc = tc__sqlerr(w->k->db, src, "selecting items to drop");
        sqlite3_finalize(st);
        for (int i = 0; i < got && rc == TC_OK; i++)
            rc = delete_row(w, ids[i], NULL);
        if (got == 0)
            break; /* the queue range is empty: nothing more to drop */
        n -= got;
    }
    return rc;
}

/* Trim to @maxlen items (< 0: unbounded) by dropping from @side. */
static int trim(struct tc_work *w, int64_t maxlen, int side)
{
    int64_t n;
    int rc;

    if (maxlen < 0)
        return TC_OK;
    if ((rc = row_count(w, &n)))
        return rc;
    return n > maxlen ? drop_end(w, side, n - maxlen) : TC_OK;
}

/* The first (@last false) or last key of the queue range, TC_NOTFOUND when
 * it is empty. */
static int end_key(struct tc_work *w, bool last, int64_t *key)
{
    sqlite3_stmt *st = tc__stmt(w->k, last ? ST_QUEUE_LAST : ST_QUEUE_FIRST);

    if (!st)
        return TC_EINTERNAL;
    sqlite3_bind_int64(st, 1, 0);
    sqlite3_bind_int64(st, 2, QUEUE_MAX);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *key = sqlite3_column_int64(st, C_KEY);
    sqlite3_reset(st);
    if (src == SQLITE_ROW)
        return TC_OK;
    return src == SQLITE_DONE
               ? TC_NOTFOUND
               : tc__sqlerr(w->k->db, src, "reading a queue end");
}

/* ---- open, push, extend ------------------------------------------------ */

int tc_deque_open(tc_cache **out, const char *dir, unsigned flags)
{
    tc_data none = tc_text("none");
    tc_cache *c = NULL;
    int rc;

    if (!out)
        return tc__err(TC_EINVAL, "tc_deque_open: out is NULL");
    *out = NULL;
    if ((rc = tc_create(&c)))
        return rc;
    /* python: Cache(directory, eviction_policy='none'): never culled. */
    rc = tc_set_shards(c, TC_SHARDS_PLAIN);
    if (rc == TC_OK)
        rc = tc_set_setting(c, "eviction_policy", &none);
    if (rc == TC_OK)
        rc = tc_open(c, dir, flags);
    if (rc) {
        tc_close(c);
        return rc;
    }
    *out = c;
    return TC_OK;
}

static void discard_stores(tc_cache *c, struct tc_store *sto, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tc__store_discard(&c->shard[0], &sto[i]);
}

/* Push @n values at @side in one unit of work, then trim the other end to
 * @maxlen: what python's append/appendleft loop leaves. */
static int extend(tc_cache *c, const tc_data *vals, size_t n, int side,
                  int64_t maxlen, const char *fn)
{
    struct tc_store *sto;
    struct tc_work w;
    size_t ready = 0, registered = 0;
    int rc;

    if ((rc = enter(c, fn)) || (rc = check_side(side, fn)))
        return done(rc, fn);
    if (n && !vals)
        return tc__err(TC_EINVAL, "%s: vals is NULL", fn);
    for (size_t i = 0; i < n; i++)
        if ((rc = tc__check_value(&vals[i], "value")))
            return done(rc, fn);
    if (n == 0)
        return TC_OK;
    if (!(sto = calloc(n, sizeof *sto)))
        return tc__err(TC_ENOMEM, "%s: out of memory", fn);
    /* Large values go to their files before the write lock is taken. */
    while (ready < n && (rc = tc__store_prepare(c, &c->shard[0], &vals[ready],
                                                &sto[ready])) == TC_OK)
        ready++;
    if (rc == TC_OK)
        rc = work_begin(c, &w);
    if (rc) {
        discard_stores(c, sto, ready);
        free(sto);
        return done(rc, fn);
    }
    while (registered < n &&
           (rc = tc__work_created(&w, sto[registered].filename)) == TC_OK)
        registered++;
    if (rc) /* the rest were never registered: remove them here */
        discard_stores(c, sto + registered, n - registered);
    int64_t key = QUEUE_START, step = side == TC_BACK ? 1 : -1;
    int erc = rc ? rc : end_key(&w, side == TC_BACK, &key);
    if (erc == TC_OK)
        key += step;
    else if (erc != TC_NOTFOUND)
        rc = erc;
    for (size_t i = 0; i < n && rc == TC_OK; i++, key += step) {
        if (key <= 0 || key >= QUEUE_MAX) {
            rc = tc__err(TC_ERANGE, "%s: the deque's integer keys ran out", fn);
            break;
        }
        tc_data k = tc_int(&key);
        rc = tc__row_put(&w, &k, &sto[i], TC_NO_EXPIRE, NULL, false);
    }
    if (rc == TC_OK)
        rc = trim(&w, maxlen, side == TC_BACK ? TC_FRONT : TC_BACK);
    free(sto);
    return work_finish(&w, rc, fn);
}

int tc_deque_push(tc_cache *c, const tc_data *val, int side, int64_t maxlen)
{
    return extend(c, val, 1, side, maxlen, "tc_deque_push");
}

int tc_deque_extend(tc_cache *c, const tc_data *vals, size_t n, int side,
                    int64_t maxlen)
{
    return extend(c, vals, n, side, maxlen, "tc_deque_extend");
}

/* ---- ends ------------------------------------------------------------- */

/* python's pop and peek are Cache.pull and Cache.peek (side,
 * retry=True): the same calls, keeping only the value. */
static int take(tc_cache *c, int side, tc_value *out, bool remove,
                const char *fn)
{
    tc_item it = TC_ITEM_INIT;
    int rc;

    if ((rc = enter(c, fn)) || (rc = check_side(side, fn)))
        return done(rc, fn);
    rc = remove ? tc_pull(c, NULL, side, &it, TC_RETRY)
                : tc_peek(c, NULL, side, &it, TC_RETRY);
    if (rc == TC_OK && out)
        tc__value_move(out, &it.value);
    tc_item_clear(&it);
    return done(rc, fn);
}

int tc_deque_pop(tc_cache *c, int side, tc_value *out)
{
    return take(c, side, out, true, "tc_deque_pop");
}

int tc_deque_peek(tc_cache *c, int side, tc_value *out)
{
    return take(c, side, out, false, "tc_deque_peek");
}

int tc_deque_len(tc_cache *c, uint64_t *n)
{
    int rc = enter(c, "tc_deque_len");
    return done(rc ? rc : tc_length(c, n), "tc_deque_len");
}

/* ---- indexed access ---------------------------------------------------- */

/* Step @st (ROW_SQL in key order, LIMIT 1 OFFSET ?) to the row at @index.
 * Returns TC_OK with the row current, or TC_NOTFOUND (out of range). */
static int seek_index(struct tc_work *w, int64_t index, sqlite3_stmt **out,
                      const char *fn)
{
    sqlite3_stmt *st;
    /* -(index + 1) cannot overflow, even for INT64_MIN. */
    int64_t offset = index >= 0 ? index : -(index + 1);
    int rc = tc__prepare(w->k,
                         index >= 0 ? ROW_SQL " ORDER BY key, raw"
                                              " LIMIT 1 OFFSET ?"
                                    : ROW_SQL " ORDER BY key DESC, raw DESC"
                                              " LIMIT 1 OFFSET ?",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, offset);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *out = st;
        return TC_OK;
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return tc__sqlerr(w->k->db, src, fn);
    return tc__err(TC_NOTFOUND, "%s: index %lld out of range", fn,
                   (long long)index);
}

int tc_deque_get(tc_cache *c, int64_t index, tc_value *out)
{
    int rc = enter(c, "tc_deque_get");

    for (int tries = 0; rc == TC_OK; tries++) {
        struct tc_work w;
        sqlite3_stmt *st = NULL;
        tc_item it = TC_ITEM_INIT;
        if ((rc = tc__work_read(c, 0, &w)))
            return done(rc, "tc_deque_get");
        rc = seek_index(&w, index, &st, "tc_deque_get");
        bool found = rc == TC_OK;
        if (found) {
            rc = tc__row_fetch(w.s, st, C_FETCH, &it);
            sqlite3_finalize(st);
        }
        rc = tc__work_end(&w, rc);
        if (rc == TC_OK && out)
            tc__value_move(out, &it.value);
        tc_item_clear(&it);
        /* A value file vanishes when a writer replaced or removed the row
         * after this read began: read again from a newer snapshot. */
        if (!(found && rc == TC_NOTFOUND && tries < 100))
            return done(rc, "tc_deque_get");
        rc = TC_OK;
    }
    return done(rc, "tc_deque_get");
}

int tc_deque_set(tc_cache *c, int64_t index, const tc_data *val)
{
    struct tc_store sto;
    struct tc_work w;
    sqlite3_stmt *st = NULL;
    tc_value key = TC_VALUE_INIT;
    int rc;

    if ((rc = enter(c, "tc_deque_set")))
        return done(rc, "tc_deque_set");
    if ((rc = tc__check_value(val, "value")))
        return done(rc, "tc_deque_set");
    if ((rc = tc__store_prepare(c, &c->shard[0], val, &sto)))
        return done(rc, "tc_deque_set");
    if ((rc = work_begin(c, &w))) {
        tc__store_discard(&c->shard[0], &sto);
        return done(rc, "tc_deque_set");
    }
    if ((rc = tc__work_created(&w, sto.filename))) {
        tc__store_discard(&c->shard[0], &sto);
        return work_finish(&w, rc, "tc_deque_set");
    }
    rc = seek_index(&w, index, &st, "tc_deque_set");
    if (rc == TC_OK) {
        /* python: cache[key] = value, a set on the item's own key. */
        rc = tc__column_key(st, C_KEY, C_RAW, &key);
        sqlite3_finalize(st);
    }
    if (rc == TC_OK) {
        tc_data k = {key.ptr, key.len, key.type};
        rc = tc__row_put(&w, &k, &sto, TC_NO_EXPIRE, NULL, false);
    }
    tc_value_clear(&key);
    return work_finish(&w, rc, "tc_deque_set");
}

int tc_deque_delete(tc_cache *c, int64_t index)
{
    struct tc_work w;
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = enter(c, "tc_deque_delete")) || (rc = work_begin(c, &w)))
        return done(rc, "tc_deque_delete");
    rc = seek_index(&w, index, &st, "tc_deque_delete");
    if (rc == TC_OK) {
        int64_t rowid = sqlite3_column_int64(st, C_ROWID);
        const char *f = (const char *)sqlite3_column_text(st, C_FILE);
        rc = f ? tc__work_doom(&w, f) : TC_OK;
        sqlite3_finalize(st);
        if (rc == TC_OK)
            rc = delete_row(&w, rowid, NULL);
    }
    return work_finish(&w, rc, "tc_deque_delete");
}

/* ---- count, remove ----------------------------------------------------- */

/* An INTEGER and a REAL are equal when their numbers are, exactly, as
 * python's 1 == 1.0 (and 2**53 + 1 != 2.0**53). */
static bool int_real_equal(int64_t i, double d)
{
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return false;
    return (double)(int64_t)d == d && (int64_t)d == i;
}

static bool number_equal(int stype, sqlite3_stmt *st, int col,
                         const tc_data *val)
{
    if (val->type != TC_INT && val->type != TC_REAL)
        return false;
    if (stype == SQLITE_INTEGER) {
        int64_t i = sqlite3_column_int64(st, col);
        return val->type == TC_INT
                   ? i == *(const int64_t *)val->ptr
                   : int_real_equal(i, *(const double *)val->ptr);
    }
    double d = sqlite3_column_double(st, col);
    return val->type == TC_REAL ? d == *(const double *)val->ptr
                                : int_real_equal(*(const int64_t *)val->ptr, d);
}

static bool bytes_equal(const void *p, size_t n, const tc_data *val)
{
    return n == val->len && (n == 0 || memcmp(p, val->ptr, n) == 0);
}

/*
 * Whether the current row of @st (ROW_SQL) holds a value equal to @val:
 * same type and bytes, or equal numbers. Values python pickled (mode 4)
 * equal nothing here: tiercache cannot read them. A file is read only when
 * its size matches.
 */
static int row_equal(struct tc_shard *s, sqlite3_stmt *st, const tc_data *val,
                     bool *eq)
{
    int mode = sqlite3_column_int(st, C_MODE);
    int stype = sqlite3_column_type(st, C_VALUE);

    *eq = false;
    if (mode == TC_MODE_RAW) {
        if (stype == SQLITE_INTEGER || stype == SQLITE_FLOAT)
            *eq = number_equal(stype, st, C_VALUE, val);
        else if (stype == SQLITE_TEXT || stype == SQLITE_BLOB)
            *eq = val->type == (stype == SQLITE_TEXT ? TC_TEXT : TC_BYTES) &&
                  bytes_equal(sqlite3_column_blob(st, C_VALUE),
                              (size_t)sqlite3_column_bytes(st, C_VALUE), val);
        return TC_OK;
    }
    int type = mode == TC_MODE_TEXT      ? TC_TEXT
               : mode == TC_MODE_BINARY  ? TC_BYTES
               : mode == TC_MODE_MSGPACK ? TC_MSGPACK
                                         : TC_NONE;
    if (type != val->type)
        return TC_OK;
    if (stype == SQLITE_BLOB) { /* inline MessagePack */
        *eq = bytes_equal(sqlite3_column_blob(st, C_VALUE),
                          (size_t)sqlite3_column_bytes(st, C_VALUE), val);
        return TC_OK;
    }
    if (sqlite3_column_int64(st, C_SIZE) != (int64_t)val->len)
        return TC_OK;
    tc_item it = TC_ITEM_INIT;
    int rc = tc__row_fetch(s, st, C_FETCH, &it);
    if (rc == TC_OK)
        *eq = it.value.type == val->type &&
              bytes_equal(it.value.ptr, it.value.len, val);
    tc_item_clear(&it);
    /* A vanished file (python: KeyError, skipped) equals nothing. */
    return rc == TC_NOTFOUND ? TC_OK : rc;
}

int tc_deque_count(tc_cache *c, const tc_data *val, uint64_t *n)
{
    struct tc_work w;
    sqlite3_stmt *st;
    uint64_t count = 0;
    int rc, src = SQLITE_DONE;

    if ((rc = enter(c, "tc_deque_count")))
        return done(rc, "tc_deque_count");
    if ((rc = tc__check_value(val, "value")))
        return done(rc, "tc_deque_count");
    if ((rc = tc__work_read(c, 0, &w)))
        return done(rc, "tc_deque_count");
    /* One statement: every item of one snapshot is compared. */
    if ((rc = tc__prepare(w.k, ROW_SQL, &st)))
        return done(tc__work_end(&w, rc), "tc_deque_count");
    while (rc == TC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        bool eq;
        rc = row_equal(w.s, st, val, &eq);
        count += eq;
    }
    if (rc == TC_OK && src != SQLITE_DONE)
        rc = tc__sqlerr(w.k->db, src, "tc_deque_count");
    sqlite3_finalize(st);
    rc = tc__work_end(&w, rc);
    if (rc == TC_OK && n)
        *n = count;
    return done(rc, "tc_deque_count");
}

int tc_deque_remove(tc_cache *c, const tc_data *val)
{
    struct tc_work w;
    sqlite3_stmt *st;
    int64_t rowid = 0;
    char file[TC_FILENAME_LEN + 1] = "";
    bool eq = false;
    int rc, src = SQLITE_DONE;

    if ((rc = enter(c, "tc_deque_remove")))
        return done(rc, "tc_deque_remove");
    if ((rc = tc__check_value(val, "value")))
        return done(rc, "tc_deque_remove");
    if ((rc = work_begin(c, &w)))
        return done(rc, "tc_deque_remove");
    if ((rc = tc__prepare(w.k, ROW_SQL " ORDER BY key, raw", &st)))
        return work_finish(&w, rc, "tc_deque_remove");
    while (!eq && rc == TC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        rc = row_equal(w.s, st, val, &eq);
        if (eq) {
            const char *f = (const char *)sqlite3_column_text(st, C_FILE);
            rowid = sqlite3_column_int64(st, C_ROWID);
            snprintf(file, sizeof file, "%s", f ? f : "");
        }
    }
    if (rc == TC_OK && !eq && src != SQLITE_DONE)
        rc = tc__sqlerr(w.k->db, src, "tc_deque_remove");
    sqlite3_finalize(st);
    if (rc == TC_OK && !eq)
        rc = tc__err(TC_NOTFOUND, "tc_deque_remove: value not in deque");
    if (rc == TC_OK)
        rc = delete_row(&w, rowid, file[0] ? file : NULL);
    return work_finish(&w, rc, "tc_deque_remove");
}

/* ---- reverse, rotate --------------------------------------------------- */

/* Rowids of the rows @sql selects (first column), in its order. */
static int collect_rowids(struct tc_work *w, sqlite3_stmt *st, int64_t **ids,
                          size_t *n)
{
    size_t cap = 0;
    int src, rc = TC_OK;

    *ids = NULL;
    *n = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            int64_t *p = realloc(*ids, ncap * sizeof *p);
            if (!p) {
                rc = tc__err(TC_ENOMEM, "out of memory");
                break;
            }
            *ids = p;
            cap = ncap;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (rc == TC_OK && src != SQLITE_DONE)
        rc = tc__sqlerr(w->k->db, src, "listing deque rows");
    sqlite3_finalize(st);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* Give the row @rowid the key (@key, @raw). */
static int rekey(struct tc_work *w, sqlite3_stmt *up, int64_t rowid,
                 int64_t key, int raw)
{
    sqlite3_bind_int64(up, 1, key);
    sqlite3_bind_int(up, 2, raw);
    sqlite3_bind_int64(up, 3, rowid);
    int src = sqlite3_step(up);
    sqlite3_reset(up);
    return src == SQLITE_DONE
               ? TC_OK
               : tc__sqlerr(w->k->db, src, "moving a deque item");
}

#define REKEY_SQL "UPDATE Cache SET key = ?, raw = ? WHERE rowid = ?"

int tc_deque_reverse(tc_cache *c)
{
    struct tc_work w;
    sqlite3_stmt *st, *up = NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    int rc;

    if ((rc = enter(c, "tc_deque_reverse")) || (rc = work_begin(c, &w)))
        return done(rc, "tc_deque_reverse");
    rc = tc__prepare(w.k, "SELECT rowid FROM Cache ORDER BY key, raw", &st);
    if (rc == TC_OK)
        rc = collect_rowids(&w, st, &ids, &n);
    if (rc == TC_OK && n > (size_t)(QUEUE_MAX - QUEUE_START))
        rc = tc__err(TC_ERANGE, "tc_deque_reverse: too many items");
    if (rc == TC_OK)
        rc = tc__prepare(w.k, REKEY_SQL, &up);
    /* python rebuilds (clear, then extend with the items reversed), so
     * the keys become 500000000000000, +1, ... Here the rows move: first
     * to keys marked raw = 2, which no diskcache row has, so no step can
     * collide with a key not moved yet; then to their final keys. */
    for (size_t i = 0; i < n && rc == TC_OK; i++)
        rc = rekey(&w, up, ids[i], -1 - (int64_t)i, 2);
    for (size_t i = 0; i < n && rc == TC_OK; i++)
        rc = rekey(&w, up, ids[n - 1 - i], QUEUE_START + (int64_t)i, 1);
    sqlite3_finalize(up);
    free(ids);
    return work_finish(&w, rc, "tc_deque_reverse");
}

int tc_deque_rotate(tc_cache *c, int64_t steps)
{
    struct tc_work w;
    sqlite3_stmt *st = NULL, *up = NULL;
    int64_t *ids = NULL, len, end = 0;
    size_t n = 0;
    int rc;

    if ((rc = enter(c, "tc_deque_rotate")) || (rc = work_begin(c, &w)))
        return done(rc, "tc_deque_rotate");
    if ((rc = row_count(&w, &len)) || len <= 0)
        return work_finish(&w, rc, "tc_deque_rotate");
    /* python: steps %= len (a non-negative result), then that many
     * pop + appendleft; a negative count rotates left the same way. */
    bool right = steps >= 0;
    int64_t k = right ? steps % len : -(steps % len);
    if (k == 0)
        return work_finish(&w, TC_OK, "tc_deque_rotate");
    /* Right: the last k items, the last first, each becomes the new
     * first. Left: the first k items, each becomes the new last. */
    rc = end_key(&w, !right, &end);
    if (rc == TC_OK)
        rc = tc__prepare(w.k,
                         right ? "SELECT rowid FROM Cache" QUEUE_WHERE
                                 " ORDER BY key DESC LIMIT ?"
                               : "SELECT rowid FROM Cache" QUEUE_WHERE
                                 " ORDER BY key ASC LIMIT ?",
                         &st);
    if (rc == TC_OK) {
        sqlite3_bind_int64(st, 1, 0);
        sqlite3_bind_int64(st, 2, QUEUE_MAX);
        sqlite3_bind_int64(st, 3, k);
        rc = collect_rowids(&w, st, &ids, &n);
    }
    int64_t dir = right ? -1 : 1;
    if (rc == TC_OK &&
        (right ? end - (int64_t)n <= 0 : end + (int64_t)n >= QUEUE_MAX))
        rc = tc__err(TC_ERANGE, "tc_deque_rotate: the deque's integer keys "
                                "ran out");
    if (rc == TC_OK)
        rc = tc__prepare(w.k, REKEY_SQL, &up);
    /* New keys lie beyond the current end: no collision. */
    for (size_t i = 0; i < n && rc == TC_OK; i++)
        rc = rekey(&w, up, ids[i], end + dir * (int64_t)(i + 1), 1);
    sqlite3_finalize(up);
    free(ids);
    return work_finish(&w, rc == TC_NOTFOUND ? TC_OK : rc, "tc_deque_rotate");
}

/* ---- trim, clear ------------------------------------------------------- */

int tc_deque_trim(tc_cache *c, int64_t maxlen, int side)
{
    struct tc_work w;
    int rc;

    if ((rc = enter(c, "tc_deque_trim")) ||
        (rc = check_side(side, "tc_deque_trim")) || (rc = work_begin(c, &w)))
        return done(rc, "tc_deque_trim");
    return work_finish(&w, trim(&w, maxlen, side), "tc_deque_trim");
}

int tc_deque_clear(tc_cache *c)
{
    struct tc_work w;
    sqlite3_stmt *st = NULL;
    int rc, src = SQLITE_DONE;

    if ((rc = enter(c, "tc_deque_clear")) || (rc = work_begin(c, &w)))
        return done(rc, "tc_deque_clear");
    /* One transaction (python's clear goes in batches of 100, each its
     * own): no concurrent reader sees half a deque. */
    rc = tc__prepare(
        w.k, "SELECT filename FROM Cache WHERE filename IS NOT NULL", &st);
    while (rc == TC_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        rc = tc__work_doom(&w, (const char *)sqlite3_column_text(st, 0));
    if (rc == TC_OK && src != SQLITE_DONE)
        rc = tc__sqlerr(w.k->db, src, "tc_deque_clear");
    sqlite3_finalize(st);
    if (rc == TC_OK)
        rc = tc__exec(w.k->db, "DELETE FROM Cache", "tc_deque_clear");
    return work_finish(&w, rc, "tc_deque_clear");
}
