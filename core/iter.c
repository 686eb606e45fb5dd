/*
 * iter.c - iteration over keys, as python-diskcache: by rowid (insertion
 * order; the bound is MAX(rowid) when a shard's iteration starts) or by
 * SQLite's (key, raw) order, paged 100 rows per query with no transaction
 * held between pages. Expired items are included.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PAGE 100

struct tc_iter {
    tc_cache *c;
    int order; /* TC_ITER_INSERTION or TC_ITER_KEYS */
    bool reverse;
    int shard;    /* current shard */
    bool started; /* bounds of the current shard are known */
    bool done;
    bool exhausted;    /* the last page of the current shard was read */
    int64_t bound;     /* insertion: MAX(rowid)+1 of the shard */
    int64_t *bounds;   /* per shard, taken at tc_iter_open (diskcache) */
    int64_t cursor;    /* insertion: last rowid returned */
    tc_value last_key; /* key order: last key seen (raw column value) */
    int64_t last_raw;
    bool have_last;
    tc_value page[PAGE];
    int page_rc[PAGE];
    int npage, pos;
};

int tc_iter_open(tc_cache *c, int order, tc_iter **out)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "tc_iter_open: handle is not open");
    tc__after_fork_check(c);
    int base = order & ~TC_ITER_REVERSE;
    if (!out || (base != TC_ITER_INSERTION && base != TC_ITER_KEYS))
        return tc__err(TC_EINVAL, "tc_iter_open: unknown order %d", order);
    if (base == TC_ITER_KEYS && c->shards != 0)
        return tc__err(TC_EINVAL, "tc_iter_open: key order needs a plain "
                                  "Cache (python-diskcache has no "
                                  "FanoutCache.iterkeys)");
    tc_iter *it = calloc(1, sizeof *it);
    if (!it)
        return tc__err(TC_ENOMEM, "out of memory");
    it->c = c;
    it->order = base;
    it->reverse = (order & TC_ITER_REVERSE) != 0;
    it->shard = it->reverse ? c->nshards - 1 : 0;
    /* The end of the iteration is fixed when it is created, as python's
     * iter(cache) primes its generator: later inserts are not seen. */
    it->bounds = calloc((size_t)c->nshards, sizeof *it->bounds);
    if (!it->bounds) {
        free(it);
        return tc__err(TC_ENOMEM, "out of memory");
    }
    for (int i = 0; i < c->nshards && base == TC_ITER_INSERTION; i++) {
        struct tc_work w;
        int rc = tc__work_read(c, i, &w);
        if (rc == TC_OK) {
            sqlite3_stmt *st = tc__stmt(w.k, ST_MAX_ROWID);
            int src = st ? sqlite3_step(st) : SQLITE_ERROR;
            if (src == SQLITE_ROW)
                it->bounds[i] = sqlite3_column_int64(st, 0) + 1;
            else
                rc = tc__sqlerr(w.k->db, src, "SELECT MAX(rowid)");
            if (st)
                sqlite3_reset(st);
            rc = tc__work_end(&w, rc);
        }
        if (rc) {
            free(it->bounds);
            free(it);
            return rc;
        }
    }
    *out = it;
    return TC_OK;
}

static void page_clear(tc_iter *it)
{
    for (int i = 0; i < it->npage; i++)
        tc_value_clear(&it->page[i]);
    it->npage = it->pos = 0;
}

static void start_shard(tc_iter *it)
{
    it->bound = it->bounds[it->shard];
    it->cursor = it->reverse ? it->bound : 0;
    it->have_last = false;
    it->started = true;
}

static int fill_page(tc_iter *it)
{
    struct tc_work w;
    sqlite3_stmt *st;
    const char *sql;
    int rc = tc__work_read(it->c, it->shard, &w);

    if (rc)
        return rc;
    if (!it->started)
        start_shard(it);
    if (it->order == TC_ITER_INSERTION) {
        sql = it->reverse ? "SELECT rowid, key, raw FROM Cache WHERE ? < rowid"
                            " AND rowid < ? ORDER BY rowid DESC LIMIT ?"
                          : "SELECT rowid, key, raw FROM Cache WHERE ? < rowid"
                            " AND rowid < ? ORDER BY rowid ASC LIMIT ?";
    } else if (!it->have_last) {
        sql = it->reverse ? "SELECT 0, key, raw FROM Cache"
                            " ORDER BY key DESC, raw DESC LIMIT ?"
                          : "SELECT 0, key, raw FROM Cache"
                            " ORDER BY key ASC, raw ASC LIMIT ?";
    } else {
        sql = it->reverse
                  ? "SELECT 0, key, raw FROM Cache WHERE key = ? AND raw < ?"
                    " OR key < ? ORDER BY key DESC, raw DESC LIMIT ?"
                  : "SELECT 0, key, raw FROM Cache WHERE key = ? AND raw > ?"
                    " OR key > ? ORDER BY key ASC, raw ASC LIMIT ?";
    }
    if ((rc = tc__prepare(w.k, sql, &st)))
        return tc__work_end(&w, rc);
    if (it->order == TC_ITER_INSERTION) {
        sqlite3_bind_int64(st, 1, it->reverse ? 0 : it->cursor);
        sqlite3_bind_int64(st, 2, it->reverse ? it->cursor : it->bound);
        sqlite3_bind_int(st, 3, PAGE);
    } else if (!it->have_last) {
        sqlite3_bind_int(st, 1, PAGE);
    } else {
        tc_data k = {it->last_key.ptr, it->last_key.len, it->last_key.type};
        tc__bind_data(st, 1, &k);
        sqlite3_bind_int64(st, 2, it->last_raw);
        tc__bind_data(st, 3, &k);
        sqlite3_bind_int(st, 4, PAGE);
    }
    page_clear(it);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && it->npage < PAGE) {
        int i = it->npage++;
        it->cursor = sqlite3_column_int64(st, 0);
        it->page[i] = (tc_value)TC_VALUE_INIT;
        it->page_rc[i] = tc__column_key(st, 1, 2, &it->page[i]);
        if (it->order == TC_ITER_KEYS) {
            /* Remember the raw column value to page on, even for pickled
             * keys that cannot be handed out. */
            tc__column_value(st, 1, &it->last_key);
            it->last_raw = sqlite3_column_int64(st, 2);
            it->have_last = true;
        }
    }
    if (src != SQLITE_DONE && src != SQLITE_ROW)
        rc = tc__sqlerr(w.k->db, src, "iterating");
    sqlite3_finalize(st);
    return tc__work_end(&w, rc);
}

int tc_iter_next(tc_iter *it, tc_value *key)
{
    if (!it || !key)
        return tc__err(TC_EINVAL, "tc_iter_next: NULL argument");
    tc__after_fork_check(it->c);
    while (!it->done) {
        if (it->pos < it->npage) {
            int i = it->pos++;
            tc_value_clear(key);
            int rc = it->page_rc[i];
            if (rc == TC_OK) {
                tc__value_move(key, &it->page[i]);
            }
            return rc;
        }
        if (!it->exhausted) {
            int rc = fill_page(it);
            if (rc)
                return rc;
            it->exhausted = it->npage < PAGE;
            if (it->npage > 0)
                continue;
        }
        /* Next shard. */
        page_clear(it);
        it->started = false;
        it->exhausted = false;
        tc_value_clear(&it->last_key);
        it->have_last = false;
        it->shard += it->reverse ? -1 : 1;
        if (it->shard < 0 || it->shard >= it->c->nshards)
            it->done = true;
    }
    return TC_NOTFOUND;
}

void tc_iter_close(tc_iter *it)
{
    if (!it)
        return;
    page_clear(it);
    tc_value_clear(&it->last_key);
    free(it->bounds);
    free(it);
}
