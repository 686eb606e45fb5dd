/*
 * cache.c - the public handle: create -> setters -> open -> close, the
 * Cache/FanoutCache layout, and the calls that span shards (batches, bulk
 * removal, statistics, settings).
 *
 * A plain Cache is one shard at DIR/cache.db; a FanoutCache has shards
 * DIR/000 ... DIR/NNN and sends each key to shard Disk.hash(key) % N, as
 * python-diskcache does. Calls that span shards visit them in order.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_SHARDS 8

const char *tc_version(void)
{
    return "0.1.0";
}

int tc_create(tc_cache **out)
{
    if (!out)
        return tc__err(TC_EINVAL, "tc_create: out is NULL");
    tc__fork_init();
    tc_cache *c = calloc(1, sizeof *c);
    if (!c)
        return tc__err(TC_ENOMEM, "out of memory");
    c->want_shards = TC_SHARDS_AUTO;
    c->timeout = 60.0;
    c->hot_size = 64ull << 20;
    c->fork_gen = atomic_load(&tc__fork_gen);
    pthread_mutex_init(&c->hot_lock, NULL);
    *out = c;
    return TC_OK;
}

static int not_open(tc_cache *c, const char *fn)
{
    if (!c)
        return tc__err(TC_EINVAL, "%s: handle is NULL", fn);
    if (c->opened)
        return tc__err(TC_EINVAL, "%s: must be called before tc_open", fn);
    return TC_OK;
}

int tc_set_shards(tc_cache *c, int shards)
{
    int rc = not_open(c, "tc_set_shards");
    if (rc)
        return rc;
    if (shards < TC_SHARDS_AUTO || shards > 999)
        return tc__err(TC_EINVAL,
                       "tc_set_shards: %d is not -1 (auto), 0 (plain Cache) or "
                       "1..999",
                       shards);
    c->want_shards = shards;
    return TC_OK;
}

int tc_set_timeout(tc_cache *c, double seconds)
{
    int rc = not_open(c, "tc_set_timeout");
    if (rc)
        return rc;
    if (!(seconds >= 0) || seconds > 1e6)
        return tc__err(TC_EINVAL, "tc_set_timeout: %g is not 0..1e6 seconds",
                       seconds);
    c->timeout = seconds;
    c->timeout_set = true;
    return TC_OK;
}

int tc_set_setting(tc_cache *c, const char *name, const tc_data *value)
{
    int rc = not_open(c, "tc_set_setting");
    if (rc)
        return rc;
    int idx = tc__setting_index(name);
    if (idx < 0)
        return tc__err(TC_EINVAL, "unknown setting '%s'", name ? name : "");
    tc_value norm = TC_VALUE_INIT;
    if ((rc = tc__setting_validate(idx, value, &norm)))
        return rc;
    for (int i = 0; i < c->npending; i++) {
        if (c->pending[i].idx == idx) {
            tc__value_move(&c->pending[i].value, &norm);
            return TC_OK;
        }
    }
    c->pending[c->npending].idx = idx;
    c->pending[c->npending].value = (tc_value)TC_VALUE_INIT;
    tc__value_move(&c->pending[c->npending++].value, &norm);
    return TC_OK;
}

int tc_set_hot_size(tc_cache *c, uint64_t bytes)
{
    int rc = not_open(c, "tc_set_hot_size");
    if (rc)
        return rc;
    c->hot_size = bytes;
    return TC_OK;
}

int tc_set_clock(tc_cache *c, tc_clock_fn fn, void *arg)
{
    if (!c)
        return tc__err(TC_EINVAL, "tc_set_clock: handle is NULL");
    c->clock = fn;
    c->clock_arg = arg;
    return TC_OK;
}

int tc_set_progress(tc_cache *c, tc_progress_fn fn, void *arg)
{
    if (!c)
        return tc__err(TC_EINVAL, "tc_set_progress: handle is NULL");
    c->progress = fn;
    c->progress_arg = arg;
    return TC_OK;
}

static void free_shards(tc_cache *c)
{
    for (int i = 0; c->shard && i < c->nshards; i++) {
        struct tc_shard *s = &c->shard[i];
        struct tc_conn *k = s->idle;
        while (k) {
            struct tc_conn *next = k->next;
            if (k->fork_gen == c->fork_gen)
                tc__conn_close(k);
            k = next;
        }
        pthread_mutex_destroy(&s->lock);
        free(s->dir);
        free(s->dbpath);
    }
    free(c->shard);
    c->shard = NULL;
    free(c->hot_modes);
    c->hot_modes = NULL;
    c->nshards = 0;
}

/* Make @dir absolute-free of trailing slashes and check it is usable. */
static int prepare_dir(tc_cache *c, const char *dir, unsigned flags,
                       bool *created)
{
    struct stat sb;

    *created = false;
    if (!dir || !*dir)
        return tc__err(TC_EINVAL, "tc_open: directory is empty");
    if (strlen(dir) > PATH_MAX - 64)
        return tc__err(TC_EINVAL, "tc_open: directory path is too long");
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return tc__err(TC_EINVAL,
                           "tc_open: %s exists and is not a "
                           "directory",
                           dir);
        return TC_OK;
    }
    if (errno != ENOENT)
        return tc__oserr(errno, "tc_open: cannot use", dir);
    if (flags & (TC_OPEN_READONLY | TC_OPEN_NOCREATE))
        return tc__err(TC_ENOCACHE, "no cache in %s (it does not exist)", dir);
    /* mkdir -p, mode 0755 before umask, as python's os.makedirs. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return tc__oserr(errno, "tc_open: creating", path);
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return tc__oserr(errno, "tc_open: creating", path);
    *created = true;
    (void)c;
    return TC_OK;
}

int tc_open(tc_cache *c, const char *dir, unsigned flags)
{
    bool created;
    int rc, shards;

    if (!c)
        return tc__err(TC_EINVAL, "tc_open: handle is NULL");
    if (c->opened)
        return tc__err(TC_EINVAL, "tc_open: handle is already open");
    if ((rc = prepare_dir(c, dir, flags, &created)))
        return rc;
    c->readonly = (flags & TC_OPEN_READONLY) != 0;
    if (!c->readonly && access(dir, W_OK) != 0) {
        if (errno != EACCES && errno != EROFS && errno != EPERM)
            return tc__oserr(errno, "tc_open: cannot use", dir);
        c->readonly = true; /* a directory we cannot write opens read-only */
    }
    if (access(dir, R_OK | X_OK) != 0)
        return tc__oserr(errno, "tc_open: cannot read", dir);
    if (tc__schema_detect(dir, &shards) != 0) {
        if (c->readonly || (flags & TC_OPEN_NOCREATE))
            return tc__err(TC_ENOCACHE, "no cache in %s", dir);
        shards =
            c->want_shards == TC_SHARDS_AUTO ? DEFAULT_SHARDS : c->want_shards;
    } else if (c->want_shards != TC_SHARDS_AUTO && c->want_shards != shards) {
        return tc__err(TC_EINVAL, "%s holds a %s; opened with shards = %d", dir,
                       shards ? "FanoutCache" : "plain Cache", c->want_shards);
    }
    c->shards = shards;
    c->nshards = shards ? shards : 1;
    if (!c->timeout_set)
        c->timeout = shards ? 0.010 : 60.0;
    c->dir = strdup(dir);
    c->shard = calloc((size_t)c->nshards, sizeof *c->shard);
    c->hot_modes = calloc((size_t)c->nshards, sizeof *c->hot_modes);
    if (!c->dir || !c->shard || !c->hot_modes) {
        rc = tc__err(TC_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->nshards; i++) {
        struct tc_shard *s = &c->shard[i];
        char path[PATH_MAX];
        pthread_mutex_init(&s->lock, NULL);
        s->index = i;
        if (shards)
            snprintf(path, sizeof path, "%s/%03d", dir, i);
        else
            snprintf(path, sizeof path, "%s", dir);
        s->dir = strdup(path);
        snprintf(path, sizeof path, "%s/cache.db", s->dir);
        s->dbpath = strdup(path);
        if (!s->dir || !s->dbpath) {
            rc = tc__err(TC_ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (int i = 0; i < c->nshards; i++)
        if ((rc = tc__schema_open_shard(c, &c->shard[i])))
            goto fail;
    c->opened = true;
    tc__hot_open(c); /* cold-only when the segment cannot be used */
    tc__worker_open(c);
    return TC_OK;
fail:
    free_shards(c);
    free(c->dir);
    c->dir = NULL;
    (void)created;
    return rc;
}

void tc_close(tc_cache *c)
{
    if (!c)
        return;
    tc__after_fork_check(c);
    struct tc_txn *t;
    while (c->opened && (t = tc__txn_find(c)))
        tc_rollback(c);
    tc__hot_close(c);
    tc__worker_close(c);
    free_shards(c);
    free(c->dir);
    for (int i = 0; i < c->npending; i++)
        tc_value_clear(&c->pending[i].value);
    free(c);
}

const char *tc_directory(const tc_cache *c)
{
    return c && c->dir ? c->dir : "";
}

int tc_shard_count(const tc_cache *c)
{
    return c ? c->shards : 0;
}

int tc_is_readonly(const tc_cache *c)
{
    return c && c->readonly;
}

double tc_now(const tc_cache *c)
{
    return tc__now(c);
}

/* ---- calls spanning shards ------------------------------------------- */

static int enter(tc_cache *c, const char *fn)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "%s: handle is not open", fn);
    tc__after_fork_check(c);
    return TC_OK;
}

static int shard_of(tc_cache *c, const tc_data *key)
{
    return c->shards ? (int)(tc__fanout_hash(key) % (uint64_t)c->shards) : 0;
}

int tc_get_many(tc_cache *c, const tc_data *keys, size_t n, tc_item *outs,
                int *rcs, unsigned flags)
{
    int rc = enter(c, "tc_get_many");
    if (rc)
        return rc;
    if (n && (!keys || !outs || !rcs))
        return tc__err(TC_EINVAL, "tc_get_many: NULL array");
    for (size_t i = 0; i < n; i++) {
        rcs[i] = tc__check_key(&keys[i]);
        if (rcs[i] == TC_OK)
            rcs[i] =
                tc__op_get(c, shard_of(c, &keys[i]), &keys[i], &outs[i], flags);
        if (rcs[i] < 0 && rcs[i] != TC_EUNSUPPORTED && rcs[i] != TC_ECORRUPT &&
            rcs[i] != TC_EINVAL && rcs[i] != TC_ETOOBIG)
            return rcs[i];
    }
    return TC_OK;
}

int tc_set_many(tc_cache *c, const tc_data *keys, const tc_data *vals, size_t n,
                double expire, const tc_data *tag, unsigned flags)
{
    int rc = enter(c, "tc_set_many");
    if (rc)
        return rc;
    if (n && (!keys || !vals))
        return tc__err(TC_EINVAL, "tc_set_many: NULL array");
    if ((rc = tc__check_tag(tag)))
        return rc;
    if (isnan(expire))
        return tc__err(TC_EINVAL, "tc_set_many: expire is NaN");
    for (size_t i = 0; i < n; i++) {
        if ((rc = tc__check_key(&keys[i])) ||
            (rc = tc__check_value(&vals[i], "value"))) {
            char why[400];
            snprintf(why, sizeof why, "%s", tc_errmsg());
            return tc__err(rc, "tc_set_many: item %zu: %s", i, why);
        }
    }
    /* Files first, outside the lock; then one transaction over the
     * shards involved (all of them, locked in order). */
    struct tc_store *sto = calloc(n ? n : 1, sizeof *sto);
    if (!sto)
        return tc__err(TC_ENOMEM, "out of memory");
    size_t made = 0;
    for (; made < n && rc == TC_OK; made++)
        rc = tc__store_prepare(c, &c->shard[shard_of(c, &keys[made])],
                               &vals[made], &sto[made]);
    /* Items per shard: each shard is culled once at the end of the batch
     * with cull_limit per item written, not once per row. */
    size_t *per_shard = calloc((size_t)c->nshards, sizeof *per_shard);
    bool *involved = calloc((size_t)c->nshards, sizeof *involved);
    int *shard = calloc(n ? n : 1, sizeof *shard);
    if (rc == TC_OK && (!involved || !per_shard || !shard))
        rc = tc__err(TC_ENOMEM, "out of memory");
    for (size_t i = 0; rc == TC_OK && i < n; i++) {
        shard[i] = shard_of(c, &keys[i]);
        involved[shard[i]] = true;
        per_shard[shard[i]]++;
    }
    /* Joining an open transaction needs all shards; else lock only the
     * shards this batch touches. */
    if (rc == TC_OK)
        rc = tc__txn_find(c) ? tc_begin(c, flags)
                             : tc__txn_begin(c, involved, flags);
    free(involved);
    if (rc) {
        for (size_t i = 0; i < made; i++)
            tc__store_discard(&c->shard[shard_of(c, &keys[i])], &sto[i]);
        free(sto);
        free(per_shard);
        free(shard);
        return rc;
    }
    for (size_t i = 0; i < n && rc == TC_OK; i++) {
        struct tc_work w;
        rc = tc__work_write(c, shard[i], flags, &w);
        if (rc == TC_OK) {
            w.defer_cull = true;
            rc = tc__work_created(&w, sto[i].filename);
            if (rc == TC_OK)
                rc = tc__op_set_in(&w, &keys[i], &sto[i], expire, tag);
            rc = tc__work_end(&w, rc);
        }
    }
    for (int sh = 0; rc == TC_OK && sh < c->nshards; sh++) {
        struct tc_work w;
        if (!per_shard[sh])
            continue;
        rc = tc__work_write(c, sh, flags, &w);
        if (rc == TC_OK) {
            int64_t limit = w.set.cull_limit;
            if (limit > 0 && (uint64_t)limit <= INT64_MAX / per_shard[sh])
                limit *= (int64_t)per_shard[sh];
            else if (limit > 0)
                limit = INT64_MAX;
            rc = tc__work_end(&w, tc__cull_inline(&w, tc__now(c), limit));
        }
    }
    free(per_shard);
    free(shard);
    /* Files of items not reached were never handed to a transaction. */
    if (rc) {
        int rrc = tc_rollback(c);
        for (size_t i = 0; i < n; i++)
            tc__store_discard(&c->shard[shard_of(c, &keys[i])], &sto[i]);
        (void)rrc;
    } else {
        rc = tc_commit(c);
    }
    free(sto);
    return rc;
}

int tc_delete_many(tc_cache *c, const tc_data *keys, size_t n,
                   uint64_t *deleted, unsigned flags)
{
    int rc = enter(c, "tc_delete_many");
    uint64_t count = 0;

    if (rc)
        return rc;
    if (n && !keys)
        return tc__err(TC_EINVAL, "tc_delete_many: NULL array");
    bool *involved = calloc((size_t)c->nshards, sizeof *involved);
    if (!involved)
        return tc__err(TC_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == TC_OK; i++)
        if ((rc = tc__check_key(&keys[i])) == TC_OK)
            involved[shard_of(c, &keys[i])] = true;
    if (rc == TC_OK)
        rc = tc__txn_find(c) ? tc_begin(c, flags)
                             : tc__txn_begin(c, involved, flags);
    free(involved);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        struct tc_work w;
        rc = tc__work_write(c, shard_of(c, &keys[i]), flags, &w);
        if (rc == TC_OK) {
            rc = tc__op_delete_in(&w, &keys[i]);
            if (rc == TC_OK)
                count++;
            rc = tc__work_end(&w, rc);
        }
    }
    if (rc < 0) {
        tc_rollback(c);
        return rc;
    }
    rc = tc_commit(c);
    if (rc == TC_OK && deleted)
        *deleted = count;
    return rc;
}

/* Run a bulk remover over every shard. A FanoutCache retries a shard that
 * timed out until it completes, adding up the counts, as diskcache does;
 * a plain Cache reports TC_EBUSY with the count so far. */
typedef int (*bulk_fn)(tc_cache *c, int shard, const void *arg, uint64_t *count,
                       unsigned flags);

static int bulk(tc_cache *c, bulk_fn fn, const void *arg, uint64_t *count,
                unsigned flags)
{
    uint64_t total = 0;
    int rc = TC_OK;

    c->prog_base = 0;
    c->prog_total = 0;
    if (c->progress)
        for (int i = 0; i < c->nshards; i++)
            c->prog_total += tc__shard_length(c, i);
    for (int i = 0; i < c->nshards && rc == TC_OK; i++) {
        for (;;) {
            uint64_t n = 0;
            rc = fn(c, i, arg, &n, flags);
            total += n;
            c->prog_base = total;
            if (rc == TC_EBUSY && c->shards)
                continue;
            break;
        }
    }
    if (count)
        *count = total;
    return rc;
}

static int do_expire(tc_cache *c, int shard, const void *arg, uint64_t *n,
                     unsigned flags)
{
    return tc__shard_expire(c, shard, *(const double *)arg, n, flags);
}

static int do_evict(tc_cache *c, int shard, const void *arg, uint64_t *n,
                    unsigned flags)
{
    return tc__shard_evict(c, shard, arg, n, flags);
}

static int do_clear(tc_cache *c, int shard, const void *arg, uint64_t *n,
                    unsigned flags)
{
    return tc__shard_clear(c, shard, n, flags);
}

static int do_cull(tc_cache *c, int shard, const void *arg, uint64_t *n,
                   unsigned flags)
{
    return tc__shard_cull(c, shard, n, flags);
}

int tc_expire(tc_cache *c, double now, uint64_t *count, unsigned flags)
{
    int rc = enter(c, "tc_expire");
    if (rc)
        return rc;
    return bulk(c, do_expire, &now, count, flags);
}

int tc_evict(tc_cache *c, const tc_data *tag, uint64_t *count, unsigned flags)
{
    int rc = enter(c, "tc_evict");
    if (rc)
        return rc;
    if (!tag || tag->type == TC_NONE)
        return tc__err(TC_EINVAL, "tc_evict: tag is missing");
    if ((rc = tc__check_tag(tag)))
        return rc;
    return bulk(c, do_evict, tag, count, flags);
}

int tc_clear(tc_cache *c, uint64_t *count, unsigned flags)
{
    int rc = enter(c, "tc_clear");
    if (rc)
        return rc;
    return bulk(c, do_clear, NULL, count, flags);
}

int tc_cull(tc_cache *c, uint64_t *count, unsigned flags)
{
    int rc = enter(c, "tc_cull");
    if (rc)
        return rc;
    return bulk(c, do_cull, NULL, count, flags);
}

int tc_check(tc_cache *c, int fix, tc_warning_fn fn, void *arg,
             uint64_t *warnings, unsigned flags)
{
    uint64_t total = 0;
    int rc = enter(c, "tc_check");

    if (rc)
        return rc;
    for (int i = 0; i < c->nshards && rc == TC_OK; i++) {
        rc = tc__shard_check(c, i, fix, fn, arg, &total, flags);
        if (c->progress)
            c->progress(c->progress_arg, (uint64_t)i + 1, (uint64_t)c->nshards);
    }
    if (warnings)
        *warnings = total;
    return rc;
}

/* ---- statistics and settings ----------------------------------------- */

static int read_setting(struct tc_work *w, const char *key, tc_value *out)
{
    sqlite3_stmt *st = tc__stmt(w->k, ST_SETTING_GET);
    if (!st)
        return TC_EINTERNAL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(st), rc = TC_OK;
    if (src == SQLITE_ROW)
        rc = tc__column_value(st, 0, out);
    else if (src == SQLITE_DONE)
        rc = tc__err(TC_NOTFOUND, "no Settings row '%s'", key);
    else
        rc = tc__sqlerr(w->k->db, src, "reading Settings");
    sqlite3_reset(st);
    return rc;
}

static int64_t setting_int(struct tc_work *w, const char *key)
{
    tc_value v = TC_VALUE_INIT;
    int64_t n = 0;
    if (read_setting(w, key, &v) == TC_OK)
        n = v.type == TC_INT ? v.i : v.type == TC_REAL ? (int64_t)v.d : 0;
    tc_value_clear(&v);
    return n;
}

/* Store a setting on one shard (its own transaction) and refresh the
 * shard's snapshot. */
static int put_setting_shard(tc_cache *c, int shard, int idx, const tc_value *v,
                             unsigned flags)
{
    struct tc_work w;
    bool pragma = strncmp(tc__settings[idx].name, "sqlite_", 7) == 0;
    int rc;

    /* Pragmas such as journal_mode cannot run inside a transaction. */
    rc = pragma ? tc__work_read(c, shard, &w)
                : tc__work_write(c, shard, flags | TC_RETRY, &w);
    if (rc)
        return rc;
    if (pragma && c->readonly)
        rc = tc__err(TC_EREADONLY, "cache is read-only");
    else
        rc = tc__setting_store(w.k, idx, v);
    struct tc_settings set;
    if (rc == TC_OK && !w.txn)
        rc = tc__settings_load(w.k, &set);
    rc = tc__work_end(&w, rc);
    if (rc == TC_OK && !w.txn) {
        tc__shard_settings(c, &c->shard[shard], &set);
    }
    return rc;
}

int tc_stats(tc_cache *c, int enable, int reset, uint64_t *hits,
             uint64_t *misses)
{
    uint64_t h = 0, m = 0;
    int rc = enter(c, "tc_stats");

    if (rc)
        return rc;
    for (int i = 0; i < c->nshards && rc == TC_OK; i++) {
        struct tc_work w;
        rc = reset ? tc__work_write(c, i, TC_RETRY, &w)
                   : tc__work_read(c, i, &w);
        if (rc)
            break;
        h += (uint64_t)setting_int(&w, "hits");
        m += (uint64_t)setting_int(&w, "misses");
        if (reset)
            rc = tc__exec(w.k->db,
                          "UPDATE Settings SET value = 0"
                          " WHERE key IN ('hits', 'misses')",
                          "resetting statistics");
        rc = tc__work_end(&w, rc);
        if (rc == TC_OK) {
            tc_value v = TC_VALUE_INIT;
            tc__value_set_int(&v, enable ? 1 : 0);
            bool same;
            pthread_mutex_lock(&c->shard[i].lock);
            same = c->shard[i].set.statistics == (enable ? 1 : 0);
            pthread_mutex_unlock(&c->shard[i].lock);
            if (!same && !c->readonly)
                rc = put_setting_shard(c, i, 0, &v, 0);
        }
    }
    if (rc == TC_OK) {
        if (hits)
            *hits = h;
        if (misses)
            *misses = m;
    }
    return rc;
}

int tc_volume(tc_cache *c, uint64_t *bytes)
{
    uint64_t total = 0;
    int rc = enter(c, "tc_volume");

    for (int i = 0; rc == TC_OK && i < c->nshards; i++) {
        struct tc_work w;
        uint64_t v = 0;
        if ((rc = tc__work_read(c, i, &w)))
            break;
        rc = tc__work_end(&w, tc__volume(&w, &v));
        total += v;
    }
    if (rc == TC_OK && bytes)
        *bytes = total;
    return rc;
}

int tc_length(tc_cache *c, uint64_t *count)
{
    uint64_t total = 0;
    int rc = enter(c, "tc_length");

    for (int i = 0; rc == TC_OK && i < c->nshards; i++) {
        struct tc_work w;
        if ((rc = tc__work_read(c, i, &w)))
            break;
        int64_t n = setting_int(&w, "count");
        total += n > 0 ? (uint64_t)n : 0;
        rc = tc__work_end(&w, TC_OK);
    }
    if (rc == TC_OK && count)
        *count = total;
    return rc;
}

int tc_setting_get(tc_cache *c, const char *name, tc_value *out)
{
    struct tc_work w;
    int rc = enter(c, "tc_setting_get");

    if (rc)
        return rc;
    if (!name || !out)
        return tc__err(TC_EINVAL, "tc_setting_get: NULL argument");
    if ((rc = tc__work_read(c, 0, &w)))
        return rc;
    tc_value_clear(out);
    rc = read_setting(&w, name, out);
    return tc__work_end(&w, rc);
}

int tc_setting_put(tc_cache *c, const char *name, const tc_data *value)
{
    int rc = enter(c, "tc_setting_put");
    if (rc)
        return rc;
    int idx = tc__setting_index(name);
    if (idx < 0)
        return tc__err(TC_EINVAL, "unknown setting '%s'", name ? name : "");
    tc_value norm = TC_VALUE_INIT;
    if ((rc = tc__setting_validate(idx, value, &norm)))
        return rc;
    if (idx == 3 && c->shards) {
        double total = norm.type == TC_INT ? (double)norm.i : norm.d;
        tc__value_set_real(&norm, total / c->shards);
    }
    for (int i = 0; i < c->nshards && rc == TC_OK; i++)
        rc = put_setting_shard(c, i, idx, &norm, 0);
    tc_value_clear(&norm);
    return rc;
}

static int tag_index(tc_cache *c, int on)
{
    int rc = enter(c, on ? "tc_create_tag_index" : "tc_drop_tag_index");
    if (rc)
        return rc;
    int64_t v = on;
    tc_data d = tc_int(&v);
    tc_value norm = TC_VALUE_INIT;
    tc__setting_validate(1, &d, &norm);
    for (int i = 0; i < c->nshards && rc == TC_OK; i++)
        rc = put_setting_shard(c, i, 1, &norm, 0);
    return rc;
}

int tc_create_tag_index(tc_cache *c)
{
    return tag_index(c, 1);
}

int tc_drop_tag_index(tc_cache *c)
{
    return tag_index(c, 0);
}

int tc_commit_seq(tc_cache *c, int shard, uint64_t *seq)
{
    struct tc_work w;
    int rc = enter(c, "tc_commit_seq");

    if (rc)
        return rc;
    if (shard < 0 || shard >= c->nshards || !seq)
        return tc__err(TC_EINVAL, "tc_commit_seq: shard %d out of range",
                       shard);
    if (!c->shard[shard].has_meta)
        return tc__err(TC_ENOCACHE,
                       "shard %d has no tiercache metadata "
                       "(a read-only python-diskcache cache)",
                       shard);
    if ((rc = tc__work_read(c, shard, &w)))
        return rc;
    sqlite3_stmt *st = tc__stmt(w.k, ST_SEQ_GET);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = tc__sqlerr(w.k->db, src, "reading commit_seq");
    sqlite3_reset(st);
    return tc__work_end(&w, rc);
}
