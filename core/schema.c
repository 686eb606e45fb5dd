/*
 * schema.c - the on-disk format: python-diskcache's tables, indexes,
 * triggers and Settings rows, plus tiercache's own TiercacheMeta table.
 *
 * Opening is race-free and cheap (diskcache-user-issues.md section 1):
 *
 *   open shard ──► flock(SH) on cache.db-tiercache-lock
 *                   └─ verify: schema complete, Settings complete, requested
 *                      settings equal the persisted ones? ── yes ─► done,
 *                      nothing written
 *                   no
 *                   ▼
 *                  flock(EX) ──► create / complete the schema and write only
 *                                the Settings rows that differ, in one
 *                                BEGIN IMMEDIATE transaction
 *
 * Only tiercache processes take the lock; python-diskcache processes retry
 * on "database is locked" for 60 s during their own init, and we use the
 * same 60 s busy timeout while initialising. String literals are single
 * quoted (SQLITE_DQS=0 builds reject diskcache's double quotes); trigger
 * and index names are diskcache's so a shared database keeps working.
 *
 * TiercacheMeta (key TEXT PRIMARY KEY, value) WITHOUT ROWID holds:
 *   format      TC_FORMAT_VERSION; a newer format is refused (EVERSION)
 *   shards      0 for a plain Cache, else the FanoutCache shard count
 *   shard_index this database's shard number
 *   cache_id    random identity (the hot tier uses shard 0's)
 *   hot_size    bytes of shared memory for the hot tier
 *   commit_seq  bumped inside every write transaction (internal.h (2))
 *               and by the TiercacheMeta_seq_* triggers on any Cache change
 *   hot_epoch   bumped when a hot-tier segment is created (hotpath.c)
 *   flushed     reserved for write-back: the flushed watermark (0)
 * It is never kept in Settings: python-diskcache rewrites every Settings
 * row when it opens a cache, so a counter there could go backwards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define INIT_BUSY_MS     60000
#define DEFAULT_HOT_SIZE (64ull << 20)

static const char *const base_schema[] = {
    "CREATE TABLE IF NOT EXISTS Cache ( rowid INTEGER PRIMARY KEY,"
    " key BLOB, raw INTEGER, store_time REAL, expire_time REAL,"
    " access_time REAL, access_count INTEGER DEFAULT 0, tag BLOB,"
    " size INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, filename TEXT,"
    " value BLOB)",
    "CREATE UNIQUE INDEX IF NOT EXISTS Cache_key_raw ON Cache(key, raw)",
    "CREATE INDEX IF NOT EXISTS Cache_expire_time ON Cache (expire_time)",
};

static const char *const trigger_schema[] = {
    "CREATE TRIGGER IF NOT EXISTS Settings_count_insert AFTER INSERT ON Cache"
    " FOR EACH ROW BEGIN UPDATE Settings SET value = value + 1"
    " WHERE key = 'count'; END",
    "CREATE TRIGGER IF NOT EXISTS Settings_count_delete AFTER DELETE ON Cache"
    " FOR EACH ROW BEGIN UPDATE Settings SET value = value - 1"
    " WHERE key = 'count'; END",
    "CREATE TRIGGER IF NOT EXISTS Settings_size_insert AFTER INSERT ON Cache"
    " FOR EACH ROW BEGIN UPDATE Settings SET value = value + NEW.size"
    " WHERE key = 'size'; END",
    "CREATE TRIGGER IF NOT EXISTS Settings_size_update AFTER UPDATE ON Cache"
    " FOR EACH ROW BEGIN UPDATE Settings SET value = value + NEW.size"
    " - OLD.size WHERE key = 'size'; END",
    "CREATE TRIGGER IF NOT EXISTS Settings_size_delete AFTER DELETE ON Cache"
    " FOR EACH ROW BEGIN UPDATE Settings SET value = value - OLD.size"
    " WHERE key = 'size'; END",
};

/* tiercache's own triggers (DESIGN-BRIEF 3, 9.13): every change to what a
 * get returns moves the commit sequence, whoever makes it (python-diskcache
 * and the sqlite3 shell included), so the hot tier can tell that a foreign
 * writer changed a shard. Access-time and access-count updates do not. */
static const char *const seq_trigger_schema[] = {
    "CREATE TRIGGER IF NOT EXISTS TiercacheMeta_seq_insert AFTER INSERT ON"
    " Cache FOR EACH ROW BEGIN UPDATE TiercacheMeta SET value = value + 1"
    " WHERE key = 'commit_seq'; END",
    "CREATE TRIGGER IF NOT EXISTS TiercacheMeta_seq_delete AFTER DELETE ON"
    " Cache FOR EACH ROW BEGIN UPDATE TiercacheMeta SET value = value + 1"
    " WHERE key = 'commit_seq'; END",
    "CREATE TRIGGER IF NOT EXISTS TiercacheMeta_seq_update AFTER UPDATE OF"
    " key, raw, expire_time, tag, mode, filename, value ON Cache FOR EACH ROW"
    " BEGIN UPDATE TiercacheMeta SET value = value + 1"
    " WHERE key = 'commit_seq'; END",
};

/* Objects a complete database has, whatever its settings. */
static const char *const required_names[] = {
    "Settings",
    "Cache",
    "Cache_key_raw",
    "Cache_expire_time",
    "Settings_count_insert",
    "Settings_count_delete",
    "Settings_size_insert",
    "Settings_size_update",
    "Settings_size_delete",
    "TiercacheMeta",
    "TiercacheMeta_seq_insert",
    "TiercacheMeta_seq_delete",
    "TiercacheMeta_seq_update",
};

static const char *const policy_index_name[] = {
    NULL, "Cache_store_time", "Cache_access_time", "Cache_access_count"};
static const char *const policy_index_sql[] = {
    NULL,
    "CREATE INDEX IF NOT EXISTS Cache_store_time ON Cache (store_time)",
    "CREATE INDEX IF NOT EXISTS Cache_access_time ON Cache (access_time)",
    "CREATE INDEX IF NOT EXISTS Cache_access_count ON Cache (access_count)",
};

static const char *const metadata_keys[] = {"count", "size", "hits", "misses"};

/* What the database holds now, read without writing. */
struct found {
    bool has_settings;
    bool names[sizeof required_names / sizeof *required_names];
    bool policy_index[4];
    bool tag_index;
    bool setting_present[TC_SETTING_COUNT];
    tc_value setting[TC_SETTING_COUNT];
    bool metadata_present[4];
    bool has_meta;
    int64_t meta_format, meta_shards;
    bool meta_format_present, meta_shards_present, meta_rows_complete;
};

static void found_free(struct found *f)
{
    for (int i = 0; i < TC_SETTING_COUNT; i++)
        tc_value_clear(&f->setting[i]);
}

static int read_found(sqlite3 *db, const char *path, struct found *f)
{
    sqlite3_stmt *st;
    int src;

    memset(f, 0, sizeof *f);
    src =
        sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master", -1, &st, NULL);
    if (src != SQLITE_OK) {
        if ((src & 0xff) == SQLITE_NOTADB || (src & 0xff) == SQLITE_CORRUPT)
            return tc__err(TC_ECORRUPT,
                           "%s is not a SQLite database (or is corrupt): %s",
                           path, sqlite3_errmsg(db));
        return tc__sqlerr(db, src, path);
    }
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!name)
            continue;
        for (size_t i = 0; i < sizeof required_names / sizeof *required_names;
             i++)
            if (strcmp(name, required_names[i]) == 0)
                f->names[i] = true;
        for (int p = 1; p < 4; p++)
            if (strcmp(name, policy_index_name[p]) == 0)
                f->policy_index[p] = true;
        if (strcmp(name, "Cache_tag_rowid") == 0)
            f->tag_index = true;
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE) {
        if ((src & 0xff) == SQLITE_NOTADB || (src & 0xff) == SQLITE_CORRUPT)
            return tc__err(TC_ECORRUPT,
                           "%s is not a SQLite database (or is corrupt): %s",
                           path, sqlite3_errmsg(db));
        return tc__sqlerr(db, src, path);
    }
    f->has_settings = f->names[0];
    if (f->has_settings) {
        src = sqlite3_prepare_v2(db, "SELECT key, value FROM Settings", -1, &st,
                                 NULL);
        if (src != SQLITE_OK)
            return tc__sqlerr(db, src, path);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            const char *key = (const char *)sqlite3_column_text(st, 0);
            int idx = tc__setting_index(key);
            if (idx >= 0) {
                f->setting_present[idx] = true;
                tc__column_value(st, 1, &f->setting[idx]);
            }
            for (int m = 0; m < 4; m++)
                if (key && strcmp(key, metadata_keys[m]) == 0)
                    f->metadata_present[m] = true;
        }
        sqlite3_finalize(st);
        if (src != SQLITE_DONE)
            return tc__sqlerr(db, src, path);
    }
    f->has_meta = f->names[9];
    if (f->has_meta) {
        int rows = 0;
        src = sqlite3_prepare_v2(db, "SELECT key, value FROM TiercacheMeta", -1,
                                 &st, NULL);
        if (src != SQLITE_OK)
            return tc__sqlerr(db, src, path);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            const char *key = (const char *)sqlite3_column_text(st, 0);
            if (!key)
                continue;
            rows++;
            if (strcmp(key, "format") == 0) {
                f->meta_format = sqlite3_column_int64(st, 1);
                f->meta_format_present = true;
            } else if (strcmp(key, "shards") == 0) {
                f->meta_shards = sqlite3_column_int64(st, 1);
                f->meta_shards_present = true;
            }
        }
        sqlite3_finalize(st);
        if (src != SQLITE_DONE)
            return tc__sqlerr(db, src, path);
        f->meta_rows_complete = rows >= 8;
    }
    return TC_OK;
}

/* The value a setting should have after this open: requested, else
 * persisted, else the default (for a FanoutCache shard, size_limit is the
 * requested total split evenly, stored as a REAL as python does). */
static void effective(tc_cache *c, struct found *f, int idx, tc_value *out)
{
    for (int p = 0; p < c->npending; p++) {
        if (c->pending[p].idx != idx)
            continue;
        const tc_value *v = &c->pending[p].value;
        if (idx == 3 && c->shards > 0) {
            double total = v->type == TC_INT ? (double)v->i : v->d;
            tc__value_set_real(out, total / c->shards);
        } else if (v->type == TC_TEXT) {
            tc__value_set_bytes(out, TC_TEXT, v->ptr, v->len);
        } else if (v->type == TC_INT) {
            tc__value_set_int(out, v->i);
        } else {
            tc__value_set_real(out, v->d);
        }
        return;
    }
    if (f->setting_present[idx]) {
        const tc_value *v = &f->setting[idx];
        if (v->type == TC_TEXT || v->type == TC_BYTES)
            tc__value_set_bytes(out, v->type, v->ptr, v->len);
        else if (v->type == TC_INT)
            tc__value_set_int(out, v->i);
        else if (v->type == TC_REAL)
            tc__value_set_real(out, v->d);
        return;
    }
    const struct tc_setting_def *d = &tc__settings[idx];
    if (idx == 3 && c->shards > 0)
        tc__value_set_real(out, (double)d->dflt_int / c->shards);
    else if (d->type == TC_TEXT)
        tc__value_set_bytes(out, TC_TEXT, d->dflt_text, strlen(d->dflt_text));
    else
        tc__value_set_int(out, d->dflt_int);
}

static double as_number(const tc_value *v, bool *ok)
{
    *ok = true;
    if (v->type == TC_INT)
        return (double)v->i;
    if (v->type == TC_REAL)
        return v->d;
    if (v->type == TC_TEXT && v->ptr) {
        char *end;
        double d = strtod(v->ptr, &end);
        if (end != v->ptr && *end == 0)
            return d;
    }
    *ok = false;
    return 0;
}

static bool value_equal(const tc_value *a, const tc_value *b)
{
    if (a->type == TC_TEXT || b->type == TC_TEXT)
        return a->type == b->type && a->len == b->len &&
               memcmp(a->ptr, b->ptr, a->len) == 0;
    bool oka, okb;
    double x = as_number(a, &oka), y = as_number(b, &okb);
    return oka && okb && x == y && a->type == b->type;
}

static int policy_of(const tc_value *v)
{
    if (v->type != TC_TEXT)
        return -1;
    return tc__policy_from_name(v->ptr);
}

/* Does the database already hold everything this open asks for? */
static bool complete(tc_cache *c, struct found *f)
{
    for (size_t i = 0; i < sizeof required_names / sizeof *required_names; i++)
        if (!f->names[i])
            return false;
    if (!f->meta_rows_complete)
        return false;
    for (int m = 0; m < 4; m++)
        if (!f->metadata_present[m])
            return false;
    bool ok = true;
    for (int i = 0; i < TC_SETTING_COUNT && ok; i++) {
        tc_value want = TC_VALUE_INIT;
        effective(c, f, i, &want);
        ok = f->setting_present[i] && value_equal(&want, &f->setting[i]);
        if (ok && i == 2) {
            int p = policy_of(&want);
            ok = p >= 0 && (p == TC_POLICY_NONE || f->policy_index[p]);
        }
        if (ok && i == 1)
            ok = (want.i != 0) == f->tag_index;
        tc_value_clear(&want);
    }
    return ok;
}

static int check_meta(tc_cache *c, struct tc_shard *s, struct found *f)
{
    if (f->meta_format_present && f->meta_format > TC_FORMAT_VERSION)
        return tc__err(TC_EVERSION,
                       "%s was written by a newer tiercache (format %lld, "
                       "this library reads format %d)",
                       s->dbpath, (long long)f->meta_format, TC_FORMAT_VERSION);
    if (f->meta_shards_present && f->meta_shards != c->shards)
        return tc__err(TC_EINVAL,
                       "%s belongs to a cache of %lld shards; opened as %d",
                       s->dbpath, (long long)f->meta_shards, c->shards);
    return TC_OK;
}

/* Apply one sqlite_* pragma: query first, set only if it differs. */
static int apply_pragma(sqlite3 *db, const char *name, const tc_value *v)
{
    char sql[160], want[64];
    sqlite3_stmt *st;
    bool same = false;

    if (v->type == TC_TEXT)
        snprintf(want, sizeof want, "%s", (const char *)v->ptr);
    else if (v->type == TC_INT)
        snprintf(want, sizeof want, "%lld", (long long)v->i);
    else if (v->type == TC_REAL)
        snprintf(want, sizeof want, "%lld", (long long)v->d);
    else
        return TC_OK;
    snprintf(sql, sizeof sql, "PRAGMA %s", name);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *have = (const char *)sqlite3_column_text(st, 0);
            same = have && strcasecmp(have, want) == 0;
        }
        sqlite3_finalize(st);
    }
    if (same)
        return TC_OK;
    snprintf(sql, sizeof sql, "PRAGMA %s = %s", name, want);
    return tc__exec(db, sql, sql);
}

int tc__tag_index(struct tc_conn *k, bool on)
{
    return tc__exec(k->db,
                    on ? "CREATE INDEX IF NOT EXISTS Cache_tag_rowid"
                         " ON Cache(tag, rowid)"
                       : "DROP INDEX IF EXISTS Cache_tag_rowid",
                    "tag index");
}

int tc__policy_index(struct tc_conn *k, int policy)
{
    if (policy <= TC_POLICY_NONE || policy > TC_POLICY_LFU)
        return TC_OK;
    return tc__exec(k->db, policy_index_sql[policy], "policy index");
}

static int put_setting_row(sqlite3 *db, const char *sql, const char *key,
                           const tc_value *v)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (src != SQLITE_OK)
        return tc__sqlerr(db, src, "writing Settings");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (v->type == TC_INT)
        sqlite3_bind_int64(st, 2, v->i);
    else if (v->type == TC_REAL)
        sqlite3_bind_double(st, 2, v->d);
    else if (v->type == TC_TEXT)
        sqlite3_bind_text(st, 2, v->ptr, (int)v->len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return tc__sqlerr(db, src, "writing Settings");
    return TC_OK;
}

static void random_id(char *hex33)
{
    unsigned char rnd[16] = {0};

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(rnd, &ts, sizeof ts < 16 ? sizeof ts : 16);
    }
    for (int i = 0; i < 16; i++)
        snprintf(hex33 + 2 * i, 3, "%02x", rnd[i]);
}

/* Create or complete the schema; caller holds the exclusive init lock. */
static int initialise(tc_cache *c, struct tc_shard *s, sqlite3 *db,
                      struct found *f)
{
    tc_value eff[TC_SETTING_COUNT];
    int rc = TC_OK;

    memset(eff, 0, sizeof eff);
    for (int i = 0; i < TC_SETTING_COUNT; i++)
        effective(c, f, i, &eff[i]);
    int policy = policy_of(&eff[2]);
    if (policy < 0) {
        rc = tc__err(TC_ECORRUPT,
                     "%s: Settings.eviction_policy is not a known policy",
                     s->dbpath);
        goto out;
    }
    /* Pragmas first, in sorted order, before any table exists (so that
     * auto_vacuum takes effect on a new database). */
    for (int i = 0; i < TC_SETTING_COUNT && rc == TC_OK; i++)
        if (strncmp(tc__settings[i].name, "sqlite_", 7) == 0)
            rc = apply_pragma(db, tc__settings[i].name + 7, &eff[i]);
    if (rc)
        goto out;
    if ((rc = tc__exec(db, "BEGIN IMMEDIATE", "initialising")))
        goto out;
    rc = tc__exec(db,
                  "CREATE TABLE IF NOT EXISTS Settings ("
                  " key TEXT NOT NULL UNIQUE, value)",
                  "creating Settings");
    for (int i = 0; i < TC_SETTING_COUNT && rc == TC_OK; i++) {
        if (f->setting_present[i] && value_equal(&eff[i], &f->setting[i]))
            continue;
        rc =
            put_setting_row(db, "INSERT OR REPLACE INTO Settings VALUES (?, ?)",
                            tc__settings[i].name, &eff[i]);
    }
    for (int m = 0; m < 4 && rc == TC_OK; m++) {
        tc_value zero = TC_VALUE_INIT;
        tc__value_set_int(&zero, 0);
        if (!f->metadata_present[m])
            rc = put_setting_row(db,
                                 "INSERT OR IGNORE INTO Settings VALUES (?, ?)",
                                 metadata_keys[m], &zero);
    }
    for (size_t i = 0; i < 3 && rc == TC_OK; i++)
        rc = tc__exec(db, base_schema[i], "creating the Cache table");
    if (rc == TC_OK && policy > TC_POLICY_NONE)
        rc = tc__exec(db, policy_index_sql[policy], "creating a policy index");
    for (size_t i = 0; i < 5 && rc == TC_OK; i++)
        rc = tc__exec(db, trigger_schema[i], "creating triggers");
    if (rc == TC_OK)
        rc = tc__exec(db,
                      eff[1].i ? "CREATE INDEX IF NOT EXISTS Cache_tag_rowid"
                                 " ON Cache(tag, rowid)"
                               : "DROP INDEX IF EXISTS Cache_tag_rowid",
                      "tag index");
    if (rc == TC_OK)
        rc = tc__exec(db,
                      "CREATE TABLE IF NOT EXISTS TiercacheMeta ("
                      " key TEXT PRIMARY KEY, value) WITHOUT ROWID",
                      "creating TiercacheMeta");
    if (rc == TC_OK) {
        char id[33], sql[512];
        random_id(id);
        snprintf(
            sql, sizeof sql,
            "INSERT OR IGNORE INTO TiercacheMeta VALUES"
            " ('format', %d), ('shards', %d), ('shard_index', %d),"
            " ('cache_id', '%s'), ('hot_size', %llu),"
            " ('commit_seq', 0), ('hot_epoch', 0), ('flushed', 0)",
            TC_FORMAT_VERSION, c->shards, s->index, id,
            (unsigned long long)(c->hot_size ? c->hot_size : DEFAULT_HOT_SIZE));
        rc = tc__exec(db, sql, "writing TiercacheMeta");
    }
    for (size_t i = 0; i < 3 && rc == TC_OK; i++)
        rc = tc__exec(db, seq_trigger_schema[i], "creating triggers");
    if (rc == TC_OK)
        rc = tc__exec(db, "COMMIT", "committing the schema");
    if (rc)
        tc__exec(db, "ROLLBACK", "rollback");
out:
    for (int i = 0; i < TC_SETTING_COUNT; i++)
        tc_value_clear(&eff[i]);
    return rc;
}

static int open_raw(const char *path, bool create, sqlite3 **db)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                (create ? SQLITE_OPEN_CREATE : 0);
    int src = sqlite3_open_v2(path, db, flags, NULL);

    if (src != SQLITE_OK) {
        int rc = tc__sqlerr(*db, src, path);
        sqlite3_close(*db);
        *db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*db, INIT_BUSY_MS);
    return TC_OK;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int lock_file(const char *dir, int *fd)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/cache.db-tiercache-lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return tc__oserr(errno, "opening the init lock", path);
    return TC_OK;
}

static int flock_retry(int fd, int op)
{
    while (flock(fd, op) != 0) {
        if (errno != EINTR)
            return tc__oserr(errno, "locking", "cache.db-tiercache-lock");
    }
    return TC_OK;
}

static int open_shard_rw(tc_cache *c, struct tc_shard *s)
{
    struct found f;
    sqlite3 *db = NULL;
    int lfd, rc;

    if (mkdir(s->dir, 0777) != 0 && errno != EEXIST)
        return tc__oserr(errno, "creating directory", s->dir);
    if ((rc = lock_file(s->dir, &lfd)))
        return rc;
    if ((rc = flock_retry(lfd, LOCK_SH)))
        goto out;
    bool done = false;
    if (exists(s->dbpath)) {
        rc = open_raw(s->dbpath, false, &db);
        if (rc == TC_OK)
            rc = read_found(db, s->dbpath, &f);
        if (rc == TC_OK) {
            rc = check_meta(c, s, &f);
            done = rc == TC_OK && complete(c, &f);
            found_free(&f);
        }
        sqlite3_close(db);
        db = NULL;
        if (rc)
            goto out;
    }
    if (!done) {
        /* Upgrade to the exclusive lock: flock may let another process in
         * between, so everything is read again under it. */
        if ((rc = flock_retry(lfd, LOCK_EX)))
            goto out;
        rc = open_raw(s->dbpath, true, &db);
        if (rc == TC_OK)
            rc = read_found(db, s->dbpath, &f);
        if (rc == TC_OK) {
            rc = check_meta(c, s, &f);
            if (rc == TC_OK && !complete(c, &f))
                rc = initialise(c, s, db, &f);
            found_free(&f);
        }
        sqlite3_close(db);
    }
    s->has_meta = rc == TC_OK;
out:
    close(lfd); /* releases the flock */
    return rc;
}

static int open_shard_ro(tc_cache *c, struct tc_shard *s)
{
    char wal[PATH_MAX], shm[PATH_MAX];
    struct found f;
    sqlite3 *db = NULL;

    if (!exists(s->dbpath))
        return tc__err(TC_ENOCACHE, "no cache database at %s", s->dbpath);
    snprintf(wal, sizeof wal, "%s-wal", s->dbpath);
    snprintf(shm, sizeof shm, "%s-shm", s->dbpath);
    /* DESIGN-BRIEF 9.15: SQLite's read-only mode needs the -wal and -shm
     * files; without them, nothing can be writing, so immutable=1. */
    s->immutable = !(exists(wal) && exists(shm));
    struct tc_conn *k;
    int rc = tc__conn_open(c, s, &k);
    if (rc)
        return rc;
    db = k->db;
    rc = read_found(db, s->dbpath, &f);
    if (rc == TC_OK) {
        if (!f.has_settings || !f.names[1])
            rc = tc__err(TC_ENOCACHE, "%s holds no cache tables", s->dbpath);
        else
            rc = check_meta(c, s, &f);
        s->has_meta = f.has_meta;
        found_free(&f);
    }
    if (rc == TC_OK) {
        pthread_mutex_lock(&s->lock);
        k->next = s->idle;
        s->idle = k;
        pthread_mutex_unlock(&s->lock);
    } else {
        tc__conn_close(k);
    }
    return rc;
}

int tc__schema_open_shard(tc_cache *c, struct tc_shard *s)
{
    int rc = c->readonly ? open_shard_ro(c, s) : open_shard_rw(c, s);
    if (rc)
        return rc;
    /* Load the settings snapshot through a pooled connection. */
    struct tc_conn *k = NULL;
    pthread_mutex_lock(&s->lock);
    k = s->idle;
    if (k)
        s->idle = k->next;
    pthread_mutex_unlock(&s->lock);
    if (!k && (rc = tc__conn_open(c, s, &k)))
        return rc;
    struct tc_settings set;
    rc = tc__settings_load(k, &set);
    if (rc == TC_OK)
        tc__shard_settings(c, s, &set);
    pthread_mutex_lock(&s->lock);
    k->next = s->idle;
    s->idle = k;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- per-connection state -------------------------------------------- */

int tc__schema_conn_pragmas(struct tc_conn *k)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(
        k->db,
        "SELECT key, value FROM Settings WHERE key IN ('sqlite_cache_size',"
        " 'sqlite_mmap_size', 'sqlite_synchronous') ORDER BY key",
        -1, &st, NULL);

    if (src != SQLITE_OK) {
        if ((src & 0xff) == SQLITE_NOTADB || (src & 0xff) == SQLITE_CORRUPT)
            return tc__err(TC_ECORRUPT,
                           "not a SQLite database (or corrupt): %s",
                           sqlite3_errmsg(k->db));
        return TC_OK; /* no Settings table yet: defaults apply */
    }
    tc_value v[3] = {TC_VALUE_INIT, TC_VALUE_INIT, TC_VALUE_INIT};
    const char *names[3] = {"cache_size", "mmap_size", "synchronous"};
    tc__value_set_int(&v[0], 8192);
    tc__value_set_int(&v[1], 67108864);
    tc__value_set_int(&v[2], 1);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; i < 3; i++)
            if (key && strcmp(key + 7, names[i]) == 0)
                tc__column_value(st, 1, &v[i]);
    }
    sqlite3_finalize(st);
    int rc = TC_OK;
    for (int i = 0; i < 3 && rc == TC_OK; i++)
        rc = apply_pragma(k->db, names[i], &v[i]);
    for (int i = 0; i < 3; i++)
        tc_value_clear(&v[i]);
    return rc;
}

int tc__settings_load(struct tc_conn *k, struct tc_settings *set)
{
    sqlite3_stmt *st;
    int src;

    memset(set, 0, sizeof *set);
    set->policy = TC_POLICY_LRS;
    set->size_limit = 1073741824.0;
    set->cull_limit = 10;
    set->min_file_size = 32768;
    src = sqlite3_prepare_v2(k->db, "SELECT key, value FROM Settings", -1, &st,
                             NULL);
    if (src != SQLITE_OK)
        return tc__sqlerr(k->db, src, "reading Settings");
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        if (!key)
            continue;
        if (strcmp(key, "statistics") == 0)
            set->statistics = sqlite3_column_int64(st, 1) != 0;
        else if (strcmp(key, "tag_index") == 0)
            set->tag_index = sqlite3_column_int64(st, 1) != 0;
        else if (strcmp(key, "eviction_policy") == 0) {
            int p =
                tc__policy_from_name((const char *)sqlite3_column_text(st, 1));
            if (p < 0) {
                sqlite3_finalize(st);
                return tc__err(TC_ECORRUPT,
                               "Settings.eviction_policy is not a known "
                               "policy");
            }
            set->policy = p;
        } else if (strcmp(key, "size_limit") == 0)
            set->size_limit = sqlite3_column_double(st, 1);
        else if (strcmp(key, "cull_limit") == 0)
            set->cull_limit = sqlite3_column_int64(st, 1);
        else if (strcmp(key, "disk_min_file_size") == 0)
            set->min_file_size = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return tc__sqlerr(k->db, src, "reading Settings");
    if (set->cull_limit < 0)
        set->cull_limit = 0;
    src = sqlite3_prepare_v2(k->db, "PRAGMA page_size", -1, &st, NULL);
    if (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        set->page_size = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return TC_OK;
}

int tc__setting_store(struct tc_conn *k, int idx, const tc_value *v)
{
    const char *name = tc__settings[idx].name;
    int rc = put_setting_row(
        k->db, "INSERT OR REPLACE INTO Settings VALUES (?, ?)", name, v);

    if (rc)
        return rc;
    if (strncmp(name, "sqlite_", 7) == 0)
        return apply_pragma(k->db, name + 7, v);
    if (idx == 1)
        return tc__tag_index(k, v->i != 0);
    if (idx == 2)
        return tc__policy_index(k, policy_of(v));
    return TC_OK;
}

/* ---- layout detection ------------------------------------------------- */

static int recorded_shards(const char *dbpath, int *shards)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int found = 0;

    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return 0;
    }
    sqlite3_busy_timeout(db, INIT_BUSY_MS);
    if (sqlite3_prepare_v2(db,
                           "SELECT value FROM TiercacheMeta"
                           " WHERE key = 'shards'",
                           -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            *shards = (int)sqlite3_column_int64(st, 0);
            found = 1;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return found;
}

int tc__schema_detect(const char *dir, int *shards)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/cache.db", dir);
    if (exists(path)) {
        *shards = 0;
        return 0;
    }
    snprintf(path, sizeof path, "%s/000/cache.db", dir);
    if (!exists(path))
        return -1;
    int n;
    /* Another tiercache process may be creating this FanoutCache right
     * now: its shard 000 records the count under the init lock, so wait
     * for that lock before deciding that python-diskcache made it. */
    char lock[PATH_MAX];
    snprintf(lock, sizeof lock, "%s/000/cache.db-tiercache-lock", dir);
    int lfd = open(lock, O_RDONLY | O_CLOEXEC);
    if (lfd >= 0) {
        flock_retry(lfd, LOCK_SH);
        close(lfd);
    }
    if (recorded_shards(path, &n) && n > 0 && n < 1000) {
        *shards = n;
        return 0;
    }
    /* A FanoutCache written by python-diskcache: count its shards. */
    for (n = 1; n < 1000; n++) {
        snprintf(path, sizeof path, "%s/%03d/cache.db", dir, n);
        if (!exists(path))
            break;
    }
    *shards = n;
    return 0;
}
