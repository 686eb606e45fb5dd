/*
 * testutil.h - shared helpers for the unit and mp Criterion suites.
 *
 * Header-only (every helper is static) so each test executable stays one
 * translation unit. Include it first: it sets the feature macros the POSIX
 * helpers need, then <criterion/criterion.h>, <sqlite3.h> and tiercache.h.
 *
 * What lives here:
 *  - temp directories: /tmp/tctest-<pid>-<counter>-<tag>, unique per process
 *    and call, so Criterion's parallel workers never share one;
 *  - recursive removal (tu_rmrf) for the fixtures' .fini;
 *  - a fake clock (struct tu_clock) for tc_set_clock, so expiry and the
 *    eviction policies are tested without sleeping;
 *  - typed-datum builders (TU_TEXT, TU_INT...) returning `const tc_data *`
 *    that borrow compound literals valid for the enclosing block;
 *  - assertion macros that print the return code's name and tc_errmsg();
 *  - sqlite3 helpers to inspect (or tamper with) DIR/cache.db from outside
 *    the library, and file-tree helpers to find value files.
 */
#ifndef TC_TESTUTIL_H
#define TC_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

#include "tiercache.h"

#define TU_PATH_MAX 4096

/* A start time that looks like a real Unix time (2023-11-14). */
#define TU_T0 1700000000.0

/* ===================================================================== */
/* Typed data builders (borrow compound literals: valid for the block)  */

#define TU_TEXT(s)       (&(tc_data){(s), strlen(s), TC_TEXT})
#define TU_TEXTN(p, n)   (&(tc_data){(p), (n), TC_TEXT})
#define TU_BYTES(p, n)   (&(tc_data){(p), (n), TC_BYTES})
#define TU_BSTR(s)       (&(tc_data){(s), strlen(s), TC_BYTES})
#define TU_MSGPACK(p, n) (&(tc_data){(p), (n), TC_MSGPACK})
#define TU_INT(v)        (&(tc_data){&(int64_t){(v)}, 8, TC_INT})
#define TU_REAL(v)       (&(tc_data){&(double){(v)}, 8, TC_REAL})

/* ===================================================================== */
/* Assertions on return codes                                            */

/* TU_RC - assert that @expr returns @want; the failure message names both
 * codes and carries tc_errmsg() of the failing call. */
#define TU_RC(expr, want)                                                      \
    do {                                                                       \
        int tu_rc_ = (expr);                                                   \
        int tu_want_ = (want);                                                 \
        if (tu_rc_ != tu_want_) {                                              \
            char tu_msg_[512];                                                 \
            snprintf(tu_msg_, sizeof tu_msg_, "%s", tc_errmsg());              \
            cr_assert_fail("%s returned %s (%d), expected %s (%d): %s", #expr, \
                           tc_errname(tu_rc_), tu_rc_, tc_errname(tu_want_),   \
                           tu_want_, tu_msg_);                                 \
        }                                                                      \
    } while (0)

#define TU_OK(expr) TU_RC(expr, TC_OK)

/* TU_RC2 - assert that @expr returns @a or @b (an either-is-right outcome);
 * the code seen is stored in @out (an int lvalue). */
#define TU_RC2(out, expr, a, b)                                          \
    do {                                                                 \
        (out) = (expr);                                                  \
        if ((out) != (a) && (out) != (b)) {                              \
            char tu_msg_[512];                                           \
            snprintf(tu_msg_, sizeof tu_msg_, "%s", tc_errmsg());        \
            cr_assert_fail("%s returned %s (%d), expected %s or %s: %s", \
                           #expr, tc_errname(out), (out), tc_errname(a), \
                           tc_errname(b), tu_msg_);                      \
        }                                                                \
    } while (0)

/* ===================================================================== */
/* Fake clock                                                            */

struct tu_clock {
    _Atomic double now; /* Unix seconds returned to the library */
};

static inline double tu_clock_fn(void *arg)
{
    struct tu_clock *clk = arg;
    return atomic_load(&clk->now);
}

static inline void tu_clock_set(struct tu_clock *clk, double t)
{
    atomic_store(&clk->now, t);
}

static inline void tu_clock_advance(struct tu_clock *clk, double dt)
{
    atomic_store(&clk->now, atomic_load(&clk->now) + dt);
}

/* ===================================================================== */
/* Temp directories                                                      */

static atomic_uint tu_dir_counter;

static inline void tu_rmrf(const char *path);

/* tu_tmpdir - create a fresh directory /tmp/tctest-<pid>-<n>-<tag>, mode
 * 0755 (so a dropped-privilege child can traverse it), into @out. */
static inline void tu_tmpdir(char *out, size_t cap, const char *tag)
{
    unsigned n = atomic_fetch_add(&tu_dir_counter, 1);
    snprintf(out, cap, "/tmp/tctest-%ld-%u-%s", (long)getpid(), n,
             tag ? tag : "t");
    int rc = mkdir(out, 0755);
    if (rc != 0 && errno == EEXIST) {
        /* Left by a dead process that had our pid (a killed run): no live
         * process can own this name but us. */
        tu_rmrf(out);
        rc = mkdir(out, 0755);
    }
    if (rc != 0)
        cr_assert_fail("mkdir %s: %s", out, strerror(errno));
    chmod(out, 0755);
}

/* tu_rmrf - remove @path and everything below it (no symlink following).
 * Restores permissions first so a test that chmod'ed something to 0 does
 * not leave it behind. Errors are ignored: this is cleanup. */
static inline void tu_rmrf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0755);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char sub[TU_PATH_MAX];
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                tu_rmrf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ===================================================================== */
/* Files                                                                 */

static inline int tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static inline int tu_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* tu_is_val_relpath - 1 if @rel has the shape "ab/cd/<28 hex>.val". */
static inline int tu_is_val_relpath(const char *rel)
{
    return strlen(rel) == 2 + 1 + 2 + 1 + 28 + 4 && tu_is_hex(rel, 2) &&
           rel[2] == '/' && tu_is_hex(rel + 3, 2) && rel[5] == '/' &&
           tu_is_hex(rel + 6, 28) && !strcmp(rel + 34, ".val");
}

/* tu_count_suffix - count regular files below @dir whose name ends in
 * @suffix (recursively). */
static inline size_t tu_count_suffix(const char *dir, const char *suffix)
{
    size_t n = 0, sl = strlen(suffix);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    char sub[TU_PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            n += tu_count_suffix(sub, suffix);
        } else {
            size_t l = strlen(e->d_name);
            if (l >= sl && !strcmp(e->d_name + l - sl, suffix))
                n++;
        }
    }
    closedir(d);
    return n;
}

static inline size_t tu_count_val_files(const char *dir)
{
    return tu_count_suffix(dir, ".val");
}

/* tu_write_file - create/truncate @path with @n bytes of @p. */
static inline void tu_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* tu_read_file - whole file into a malloc'd buffer (NUL-terminated, length
 * in *n); NULL if it cannot be read. */
static inline char *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[len] = 0;
    if (n)
        *n = len;
    return buf;
}

/* tu_fill - deterministic, non-repeating-ish bytes so a misplaced copy or a
 * short read is visible. */
static inline char *tu_pattern(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)('a' + x % 26);
    }
    return p;
}

/* ===================================================================== */
/* sqlite3 inspection of a cache database                                */

/* tu_db_open - open DIR/cache.db (or any path ending in .db) read-write with
 * a busy timeout, for inspection or tampering. */
static inline sqlite3 *tu_db_open(const char *dir)
{
    char path[TU_PATH_MAX];
    size_t l = strlen(dir);
    if (l > 3 && !strcmp(dir + l - 3, ".db"))
        snprintf(path, sizeof path, "%s", dir);
    else
        snprintf(path, sizeof path, "%s/cache.db", dir);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    cr_assert_eq(rc, SQLITE_OK, "sqlite3_open %s: %s", path,
                 db ? sqlite3_errmsg(db) : "?");
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static inline sqlite3_stmt *tu_db_vprep(sqlite3 *db, const char *fmt,
                                        va_list ap)
{
    char *sql = sqlite3_vmprintf(fmt, ap);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    cr_assert_eq(rc, SQLITE_OK, "prepare [%s]: %s", sql, sqlite3_errmsg(db));
    sqlite3_free(sql);
    return st;
}

/* tu_db_exec - run one statement (sqlite3_mprintf format: %q/%Q quote). */
static inline void tu_db_exec(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    cr_assert_eq(rc, SQLITE_OK, "exec [%s]: %s", sql, err ? err : "?");
    sqlite3_free(sql);
}

/* tu_db_int - first column of the first row as int64; @dflt when no row. */
static inline int64_t tu_db_int(sqlite3 *db, int64_t dflt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = tu_db_vprep(db, fmt, ap);
    va_end(ap);
    int64_t v = dflt;
    int rc = sqlite3_step(st);
    cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "step: %s",
              sqlite3_errmsg(db));
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* tu_db_real - first column of the first row as double; NAN when no row. */
static inline double tu_db_real(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = tu_db_vprep(db, fmt, ap);
    va_end(ap);
    double v = NAN;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* tu_db_text - first column of the first row as a malloc'd string (NULL for
 * no row or SQL NULL). */
static inline char *tu_db_text(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = tu_db_vprep(db, fmt, ap);
    va_end(ap);
    char *out = NULL;
    if (sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

/* tu_db_has_index - 1 if sqlite_master holds an index called @name. */
static inline int tu_db_has_index(const char *dir, const char *name)
{
    sqlite3 *db = tu_db_open(dir);
    int64_t n = tu_db_int(db, 0,
                          "SELECT COUNT(*) FROM sqlite_master"
                          " WHERE type = 'index' AND name = %Q",
                          name);
    sqlite3_close(db);
    return n == 1;
}

/* ===================================================================== */
/* Cache helpers                                                         */

/* Hot-tier size for test caches: small enough for many at once. */
#define TU_HOT_SIZE (8u << 20)

/* tu_open_ex - create a handle, apply the fake clock (may be NULL) and the
 * shard choice, run @configure (may be NULL) for extra setters, open @dir
 * and assert TC_OK. The hot tier is disabled (hot size 0): these suites
 * check the cold tier, and several tests edit cache.db behind the
 * library's back, which the hot tier is allowed to notice only lazily. */
static inline tc_cache *tu_open_ex(const char *dir, int shards,
                                   struct tu_clock *clk,
                                   void (*configure)(tc_cache *))
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    cr_assert_not_null(c);
    /* TU_HOT=1 runs the cold-tier suites with the hot tier on. */
    const char *hot = getenv("TU_HOT");
    (void)tc_set_hot_size(c, hot && *hot == '1' ? TU_HOT_SIZE : 0);
    TU_OK(tc_set_shards(c, shards));
    if (clk)
        TU_OK(tc_set_clock(c, tu_clock_fn, clk));
    if (configure)
        configure(c);
    TU_OK(tc_open(c, dir, 0));
    return c;
}

/* tu_open_hot - like tu_open_ex, with the hot tier on: @hot_size bytes
 * (recorded when the directory is created; TU_HOT_SIZE is small enough for
 * many test caches at once). */
static inline tc_cache *tu_open_hot(const char *dir, int shards,
                                    struct tu_clock *clk, uint64_t hot_size)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_OK(tc_set_hot_size(c, hot_size));
    TU_OK(tc_set_shards(c, shards));
    if (clk)
        TU_OK(tc_set_clock(c, tu_clock_fn, clk));
    TU_OK(tc_open(c, dir, 0));
    return c;
}

static inline tc_cache *tu_open(const char *dir, struct tu_clock *clk)
{
    return tu_open_ex(dir, TC_SHARDS_PLAIN, clk, NULL);
}

/* tu_open_cold - a handle on @dir that never reads through the hot tier
 * (hot size 0, whatever TU_HOT says); its writes still invalidate. */
static inline tc_cache *tu_open_cold(const char *dir, struct tu_clock *clk)
{
    tc_cache *c = NULL;
    tc_hot_stats hs;
    TU_OK(tc_create(&c));
    TU_OK(tc_set_hot_size(c, 0));
    if (clk)
        TU_OK(tc_set_clock(c, tu_clock_fn, clk));
    TU_OK(tc_open(c, dir, 0));
    TU_OK(tc_hot_stats_get(c, &hs));
    cr_assert_eq(hs.reading, 0, "the cold handle reads the hot tier");
    return c;
}

/* tu_hot_stats - tc_hot_stats_get, asserted. */
static inline tc_hot_stats tu_hot_stats(tc_cache *c)
{
    tc_hot_stats hs;
    memset(&hs, 0, sizeof hs);
    TU_OK(tc_hot_stats_get(c, &hs));
    return hs;
}

struct tu_problems {
    char text[2048];
    size_t used;
};

static inline void tu_on_problem(void *arg, const char *kind, const char *msg)
{
    struct tu_problems *p = arg;
    if (p->used + 1 < sizeof p->text) {
        int n = snprintf(p->text + p->used, sizeof p->text - p->used,
                         "[%s] %s; ", kind, msg);
        if (n > 0)
            p->used += (size_t)n;
        if (p->used >= sizeof p->text)
            p->used = sizeof p->text - 1;
    }
}

/* tu_expect_hot_clean - tc_hot_check finds no structural problem and no
 * hot item that disagrees with SQLite. */
static inline void tu_expect_hot_clean(tc_cache *c)
{
    struct tu_problems p = {{0}, 0};
    uint64_t n = 12345;
    TU_OK(tc_hot_check(c, tu_on_problem, &p, &n));
    cr_assert_eq(n, 0, "tc_hot_check: %llu problem(s): %s",
                 (unsigned long long)n, p.text);
}

/* tu_set - plain set, no expiry, no tag; asserts TC_OK. */
static inline void tu_set(tc_cache *c, const tc_data *k, const tc_data *v)
{
    TU_OK(tc_set(c, k, v, TC_NO_EXPIRE, NULL, 0));
}

/* tu_expect_bytes - assert @k is live and holds exactly (@type, @p, @n). */
static inline void tu_expect_value(tc_cache *c, const tc_data *k, int type,
                                   const void *p, size_t n)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(c, k, &it, 0));
    cr_assert_eq(it.value.type, type, "value type %d, expected %d",
                 it.value.type, type);
    cr_assert_eq(it.value.len, n, "value length %zu, expected %zu",
                 it.value.len, n);
    if (n)
        cr_assert(memcmp(it.value.ptr, p, n) == 0, "value bytes differ");
    if (type == TC_TEXT || type == TC_BYTES || type == TC_MSGPACK)
        cr_assert_eq(((const char *)it.value.ptr)[n], 0,
                     "value not NUL-terminated");
    tc_item_clear(&it);
}

static inline void tu_expect_text(tc_cache *c, const tc_data *k, const char *s)
{
    tu_expect_value(c, k, TC_TEXT, s, strlen(s));
}

static inline void tu_expect_int(tc_cache *c, const tc_data *k, int64_t v)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(c, k, &it, 0));
    cr_assert_eq(it.value.type, TC_INT, "value type %d, expected TC_INT",
                 it.value.type);
    cr_assert_eq(it.value.i, v, "value %lld, expected %lld",
                 (long long)it.value.i, (long long)v);
    tc_item_clear(&it);
}

static inline void tu_expect_missing(tc_cache *c, const tc_data *k)
{
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_get(c, k, &it, 0), TC_NOTFOUND);
}

static inline uint64_t tu_length(tc_cache *c)
{
    uint64_t n = 0;
    TU_OK(tc_length(c, &n));
    return n;
}

/* tu_value_text_eq - 1 if @v is TC_TEXT equal to @s. */
static inline int tu_value_text_eq(const tc_value *v, const char *s)
{
    return v->type == TC_TEXT && v->len == strlen(s) &&
           memcmp(v->ptr, s, v->len) == 0;
}

/* ===================================================================== */
/* Per-test fixture (Criterion runs each test in its own process, so one
 * static instance per executable is enough)                              */

struct tu_fixture {
    char base[TU_PATH_MAX]; /* the test's private temp directory */
    char dir[TU_PATH_MAX];  /* the cache directory: base/cache */
    struct tu_clock clk;    /* fake clock, starts at TU_T0 */
    tc_cache *c;            /* handle on dir, or NULL */
};

static struct tu_fixture fx;

/* tu_fx_init - fresh base dir, clock at TU_T0, no handle yet. */
static inline void tu_fx_init(const char *tag)
{
    tu_tmpdir(fx.base, sizeof fx.base, tag);
    snprintf(fx.dir, sizeof fx.dir, "%s/cache", fx.base);
    tu_clock_set(&fx.clk, TU_T0);
    fx.c = NULL;
}

/* tu_fx_fini - close the handle (if any) and remove the base dir. */
static inline void tu_fx_fini(void)
{
    tc_close(fx.c);
    fx.c = NULL;
    (void)tc_hot_drop(fx.dir); /* never leave a segment in /dev/shm */
    tu_rmrf(fx.base);
}

/* tu_fx_reopen - close and reopen fx.dir as a plain Cache on the clock. */
static inline void tu_fx_reopen(void)
{
    tc_close(fx.c);
    fx.c = tu_open(fx.dir, &fx.clk);
}

/* ===================================================================== */
/* Processes                                                             */

/* tu_wait_exit - waitpid @pid and return its exit code (or 128+signal). */
static inline int tu_wait_exit(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

/* A pipe barrier: children block in tu_barrier_wait until the parent calls
 * tu_barrier_release, which closes the write end so every reader wakes up
 * at the same moment. */
struct tu_barrier {
    int fd[2];
};

static inline void tu_barrier_init(struct tu_barrier *b)
{
    cr_assert_eq(pipe(b->fd), 0);
}

/* In the child: drop the write end, wait for EOF. */
static inline void tu_barrier_wait(struct tu_barrier *b)
{
    char ch;
    close(b->fd[1]);
    while (read(b->fd[0], &ch, 1) < 0 && errno == EINTR)
        ;
    close(b->fd[0]);
}

/* In the parent, once every child is forked. */
static inline void tu_barrier_release(struct tu_barrier *b)
{
    close(b->fd[0]);
    close(b->fd[1]);
}

/* A child body: returns its exit code (0 = all expectations held) and may
 * explain a failure with tu_child_msg(msgfd, ...). Children never use
 * cr_assert (it would unwind into Criterion's worker from a fork). */
typedef int (*tu_child_fn)(void *arg, int msgfd);

/* tu_child_msg - write a message for the parent; returns 1 so a child can
 * `return tu_child_msg(fd, "...")`. */
static inline int tu_child_msg(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    if (n > 0 && write(fd, buf, (size_t)n) < 0)
        return 1;
    return 1;
}

/* tu_read_full / tu_write_full - move exactly @n bytes through a pipe or
 * file (retrying short transfers and EINTR); 0 on success, -1 otherwise. */
/* tu_read_msgs - everything written to @fd until EOF (at most @cap - 1
 * bytes), NUL-terminated; closes @fd. The children's failure messages. */
static inline void tu_read_msgs(int fd, char *msg, size_t cap)
{
    size_t used = 0;
    ssize_t r;
    while (used + 1 < cap && (r = read(fd, msg + used, cap - 1 - used)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        used += (size_t)r;
    }
    msg[used] = 0;
    close(fd);
}

static inline int tu_read_full(int fd, void *p, size_t n)
{
    char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static inline int tu_write_full(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* tu_run_child - fork, run @fn(@arg) in the child and _exit with its
 * code; in the parent collect the child's messages into @msg and return
 * its exit code (128+signal if it was killed). */
static inline int tu_run_child(tu_child_fn fn, void *arg, char *msg, size_t cap)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        int code = fn(arg, fd[1]);
        close(fd[1]);
        _exit(code);
    }
    close(fd[1]);
    size_t used = 0;
    ssize_t r;
    while (used + 1 < cap &&
           (r = read(fd[0], msg + used, cap - 1 - used)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        used += (size_t)r;
    }
    msg[used] = 0;
    close(fd[0]);
    return tu_wait_exit(pid);
}

/* tu_value_path - absolute path of the value file of TEXT key @key in the
 * plain Cache at @dir (asserts that the row has one). */
static inline void tu_value_path(const char *dir, const char *key, char *out,
                                 size_t cap)
{
    sqlite3 *db = tu_db_open(dir);
    char *rel =
        tu_db_text(db, "SELECT filename FROM Cache WHERE key = %Q", key);
    sqlite3_close(db);
    cr_assert_not_null(rel);
    snprintf(out, cap, "%s/%s", dir, rel);
    free(rel);
}

/* What each child of tu_run_marked gets: the cache directory, its id
 * (1..n), the start barrier and a shared output descriptor. */
struct tu_proc_arg {
    const char *dir;
    int id;
    struct tu_barrier *bar;
    int out_fd;
};

#define TU_MAX_PROCS 16

/*
 * tu_run_marked - fork @n children running @fn(&arg, msgfd) after a shared
 * start barrier (each calls tu_barrier_wait(arg->bar)). A child that
 * returns 0 says "<done>" on the message pipe; the parent asserts that all
 * @n did (a child's messages are shown on failure) and, outside valgrind,
 * that each exited 0. The marker decides because under valgrind a forked
 * child exits with valgrind's status (it reports the parent's inherited
 * allocations).
 */
static inline void tu_run_marked(int n, int (*fn)(void *, int), const char *dir,
                                 int out_fd)
{
    struct tu_barrier bar;
    struct tu_proc_arg args[TU_MAX_PROCS];
    pid_t pids[TU_MAX_PROCS];
    int msg[2];

    cr_assert(n > 0 && n <= TU_MAX_PROCS);
    tu_barrier_init(&bar);
    cr_assert_eq(pipe(msg), 0);
    for (int i = 0; i < n; i++) {
        args[i] = (struct tu_proc_arg){dir, i + 1, &bar, out_fd};
        fflush(NULL);
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            close(msg[0]);
            int code = fn(&args[i], msg[1]);
            if (code == 0)
                tu_child_msg(msg[1], "<done>");
            _exit(code);
        }
    }
    close(msg[1]);
    tu_barrier_release(&bar);
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad |= tu_wait_exit(pids[i]);
    char text[2048];
    tu_read_msgs(msg[0], text, sizeof text);
    int finished = 0;
    for (const char *p = text; (p = strstr(p, "<done>")); p++)
        finished++;
    cr_assert_eq(finished, n, "a child failed: %s", text);
    if (!getenv("TC_UNDER_VALGRIND"))
        cr_assert_eq(bad, 0, "a child exited with %d: %s", bad, text);
}

#endif /* TC_TESTUTIL_H */
