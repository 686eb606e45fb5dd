/*
 * check.c - python-diskcache's check(): database integrity, value files
 * against Cache.filename, unknown files, empty directories, and the
 * Settings count/size counters; with fix, each problem is repaired.
 *
 * Messages match diskcache's warnings text. Files whose path contains
 * "cache.db" (the database, its -wal/-shm, tiercache's own
 * cache.db-tiercache-* companions) are never reported.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct checker {
    tc_cache *c;
    struct tc_shard *s;
    int fix;
    tc_warning_fn fn;
    void *arg;
    uint64_t warnings;
    char **known; /* sorted full paths of referenced value files */
    size_t nknown;
};

static void warn(struct checker *ck, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>

static void warn(struct checker *ck, const char *kind, const char *fmt, ...)
{
    char msg[PATH_MAX + 128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ck->warnings++;
    if (ck->fn)
        ck->fn(ck->arg, kind, msg);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_known(struct checker *ck, const char *path)
{
    const char *key = path;
    if (ck->nknown == 0)
        return false;
    return bsearch(&key, ck->known, ck->nknown, sizeof *ck->known, cmpstr) !=
           NULL;
}

/* Walk @dir: report unknown files (top-down, as os.walk) and recurse. */
static void walk_files(struct checker *ck, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        struct stat sb;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            walk_files(ck, path);
            continue;
        }
        if (strstr(path, "cache.db") || is_known(ck, path))
            continue;
        warn(ck, "unknown-file", "unknown file: %s", path);
        if (ck->fix)
            unlink(path);
    }
    closedir(d);
}

static void walk_empty(struct checker *ck, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int entries = 0;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        struct stat sb;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        entries++;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            walk_empty(ck, path);
    }
    closedir(d);
    if (entries == 0) {
        warn(ck, "empty-dir", "empty directory: %s", dir);
        if (ck->fix)
            rmdir(dir);
    }
}

static int check_integrity(struct checker *ck)
{
    struct tc_work w;
    sqlite3_stmt *st;
    int rc = tc__work_read(ck->c, ck->s->index, &w);

    if (rc)
        return rc;
    if ((rc = tc__prepare(w.k, "PRAGMA integrity_check", &st)))
        return tc__work_end(&w, rc);
    int src, rows = 0;
    bool ok = false;
    char first[512] = "";
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        if (rows++ == 0) {
            snprintf(first, sizeof first, "%s", m ? m : "");
            ok = m && !strcmp(m, "ok");
        }
        if (!(m && !strcmp(m, "ok")))
            warn(ck, "integrity", "%s", m ? m : "(null)");
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        rc = tc__sqlerr(w.k->db, src, "PRAGMA integrity_check");
    (void)ok;
    if (rc == TC_OK && ck->fix && !ck->c->readonly)
        rc = tc__exec(w.k->db, "VACUUM", "VACUUM");
    return tc__work_end(&w, rc);
}

static int check_files(struct checker *ck, struct tc_work *w)
{
    sqlite3_stmt *st;
    int rc = tc__prepare(w->k,
                         "SELECT rowid, size, filename FROM Cache"
                         " WHERE filename IS NOT NULL",
                         &st);
    int64_t *fix_del = NULL, (*fix_size)[2] = NULL;
    size_t ndel = 0, nsize = 0, cap = 0;

    if (rc)
        return rc;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t rowid = sqlite3_column_int64(st, 0);
        int64_t size = sqlite3_column_int64(st, 1);
        const char *f = (const char *)sqlite3_column_text(st, 2);
        char path[PATH_MAX];
        struct stat sb;
        if (ndel + nsize + 1 > cap) {
            cap = cap ? cap * 2 : 64;
            fix_del = realloc(fix_del, cap * sizeof *fix_del);
            fix_size = realloc(fix_size, cap * sizeof *fix_size);
            ck->known = realloc(ck->known, cap * sizeof *ck->known);
            if (!fix_del || !fix_size || !ck->known) {
                rc = tc__err(TC_ENOMEM, "out of memory in check");
                break;
            }
        }
        if (!f || !tc__file_name_valid(f)) {
            warn(ck, "missing-file", "file not found: %s/%s (invalid name)",
                 ck->s->dir, f ? f : "(null)");
            fix_del[ndel++] = rowid;
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", ck->s->dir, f);
        ck->known[ck->nknown++] = strdup(path);
        if (stat(path, &sb) == 0) {
            if (sb.st_size != size) {
                warn(ck, "file-size", "wrong file size: %s, %lld != %lld", path,
                     (long long)sb.st_size, (long long)size);
                fix_size[nsize][0] = rowid;
                fix_size[nsize++][1] = sb.st_size;
            }
            continue;
        }
        warn(ck, "missing-file", "file not found: %s", path);
        fix_del[ndel++] = rowid;
    }
    if (rc == TC_OK && src != SQLITE_DONE)
        rc = tc__sqlerr(w->k->db, src, "check: reading file rows");
    sqlite3_finalize(st);
    for (size_t i = 0; ck->fix && rc == TC_OK && i < ndel; i++) {
        sqlite3_stmt *del = tc__stmt(w->k, ST_DELETE_ROWID);
        sqlite3_bind_int64(del, 1, fix_del[i]);
        rc = tc__exec_stmt(w->k, del, "check: deleting a row");
    }
    for (size_t i = 0; ck->fix && rc == TC_OK && i < nsize; i++) {
        sqlite3_stmt *up;
        if ((rc = tc__prepare(w->k, "UPDATE Cache SET size = ? WHERE rowid = ?",
                              &up)))
            break;
        sqlite3_bind_int64(up, 1, fix_size[i][1]);
        sqlite3_bind_int64(up, 2, fix_size[i][0]);
        rc = tc__exec_stmt(w->k, up, "check: fixing a size");
        sqlite3_finalize(up);
    }
    free(fix_del);
    free(fix_size);
    if (ck->known)
        qsort(ck->known, ck->nknown, sizeof *ck->known, cmpstr);
    return rc;
}

static int check_counter(struct checker *ck, struct tc_work *w, const char *key,
                         const char *sql, const char *label)
{
    sqlite3_stmt *st;
    int64_t have = 0, real = 0;
    int rc;

    sqlite3_stmt *g = tc__stmt(w->k, ST_SETTING_GET);
    sqlite3_bind_text(g, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(g) == SQLITE_ROW)
        have = sqlite3_column_int64(g, 0);
    sqlite3_reset(g);
    if ((rc = tc__prepare(w->k, sql, &st)))
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        real = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (have == real)
        return TC_OK;
    warn(ck, key, "Settings.%s != %s; %lld != %lld", key, label,
         (long long)have, (long long)real);
    if (!ck->fix)
        return TC_OK;
    sqlite3_stmt *put = tc__stmt(w->k, ST_SETTING_PUT);
    sqlite3_bind_int64(put, 1, real);
    sqlite3_bind_text(put, 2, key, -1, SQLITE_STATIC);
    return tc__exec_stmt(w->k, put, "check: fixing a counter");
}

int tc__shard_check(tc_cache *c, int shard, int fix, tc_warning_fn fn,
                    void *arg, uint64_t *warnings, unsigned flags)
{
    struct checker ck = {c, &c->shard[shard], fix, fn, arg, 0, NULL, 0};
    struct tc_work w;
    int rc;

    if (fix && c->readonly)
        return tc__err(TC_EREADONLY, "check --fix: cache is read-only");
    if ((rc = check_integrity(&ck)))
        goto out;
    /* The rest runs under the write lock, as diskcache does, so that the
     * files and the rows are seen in one consistent state. A read-only
     * handle checks without it. */
    rc = c->readonly ? tc__work_read(c, shard, &w)
                     : tc__work_write(c, shard, flags, &w);
    if (rc)
        goto out;
    rc = check_files(&ck, &w);
    if (rc == TC_OK) {
        walk_files(&ck, ck.s->dir);
        walk_empty(&ck, ck.s->dir);
        rc = check_counter(&ck, &w, "count", "SELECT COUNT(key) FROM Cache",
                           "COUNT(Cache.key)");
    }
    if (rc == TC_OK)
        rc = check_counter(&ck, &w, "size",
                           "SELECT COALESCE(SUM(size), 0) FROM Cache",
                           "SUM(Cache.size)");
    rc = tc__work_end(&w, rc);
out:
    for (size_t i = 0; i < ck.nknown; i++)
        free(ck.known[i]);
    free(ck.known);
    *warnings += ck.warnings;
    return rc;
}
