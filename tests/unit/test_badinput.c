/*
 * test_badinput.c - hostile or broken input: oversized keys, invalid
 * UTF-8, bad settings, bad directories, corrupt databases and value
 * files, path traversal through Cache.filename, a full disk, python
 * pickles, and permissions (a dropped-privilege child on a root-owned
 * cache). Every case must end in a clear return code, never a crash,
 * and must not damage what was stored before.
 */
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>

#include "testutil.h"

/* Children that change rlimits or drop privileges run valgrind's own
 * machinery under those limits too; the valgrind setup skips them (they
 * run in the plain and ASan builds). */
static void skip_under_valgrind(void)
{
    if (getenv("TC_UNDER_VALGRIND"))
        cr_skip_test("forks a restricted child; not run under valgrind");
}

static void setup(void)
{
    tu_fx_init("bad");
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(badinput, .init = setup, .fini = teardown, .timeout = 60);

#define BIG 40000

static void set_big(const char *key, unsigned seed)
{
    char *v = tu_pattern(BIG, seed);
    TU_OK(tc_set(fx.c, TU_TEXT(key), TU_BYTES(v, BIG), TC_NO_EXPIRE, NULL, 0));
    free(v);
}

Test(badinput, badinput_key_too_big)
{
    size_t n = (size_t)TC_MAX_KEY_BYTES + 1;
    char *k = tu_pattern(n, 1);
    TU_RC(tc_set(fx.c, TU_BYTES(k, n), TU_INT(1), TC_NO_EXPIRE, NULL, 0),
          TC_ETOOBIG);
    TU_RC(tc_set(fx.c, TU_TEXTN(k, n), TU_INT(1), TC_NO_EXPIRE, NULL, 0),
          TC_ETOOBIG);
    TU_RC(tc_add(fx.c, TU_BYTES(k, n), TU_INT(1), TC_NO_EXPIRE, NULL, 0),
          TC_ETOOBIG);
    cr_assert_eq(tu_length(fx.c), 0, "nothing stored");
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    /* The maximum itself is accepted. */
    TU_OK(tc_set(fx.c, TU_BYTES(k, n - 1), TU_INT(1), TC_NO_EXPIRE, NULL, 0));
    tu_expect_int(fx.c, TU_BYTES(k, n - 1), 1);
    free(k);
}

Test(badinput, badinput_invalid_utf8_text)
{
    const char *bad[] = {"\xff", "ab\xc3", "\xc0\x80", "\xed\xa0\x80",
                         "\xf8\x88\x80\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TU_RC(tc_set(fx.c, TU_TEXT(bad[i]), TU_INT(1), TC_NO_EXPIRE, NULL, 0),
              TC_EINVAL);
        TU_RC(
            tc_set(fx.c, TU_TEXT("k"), TU_TEXT(bad[i]), TC_NO_EXPIRE, NULL, 0),
            TC_EINVAL);
        TU_RC(tc_set(fx.c, TU_TEXT("k"), TU_INT(1), TC_NO_EXPIRE,
                     TU_TEXT(bad[i]), 0),
              TC_EINVAL);
    }
    cr_assert_eq(tu_length(fx.c), 0);
    /* The same bytes are a fine BYTES key. */
    tu_set(fx.c, TU_BSTR("\xff"), TU_INT(1));
}

Test(badinput, badinput_malformed_tc_data)
{
    tc_data none = {"x", 1, TC_NONE};
    tc_data short_int = {&(int64_t){1}, 4, TC_INT};
    tc_data null_ptr = {NULL, 5, TC_BYTES};
    tc_data bad_type = {"x", 1, 99};
    TU_RC(tc_set(fx.c, &none, TU_INT(1), TC_NO_EXPIRE, NULL, 0), TC_EINVAL);
    TU_RC(tc_set(fx.c, TU_TEXT("k"), &none, TC_NO_EXPIRE, NULL, 0), TC_EINVAL);
    TU_RC(tc_set(fx.c, &short_int, TU_INT(1), TC_NO_EXPIRE, NULL, 0),
          TC_EINVAL);
    TU_RC(tc_set(fx.c, &null_ptr, TU_INT(1), TC_NO_EXPIRE, NULL, 0), TC_EINVAL);
    TU_RC(tc_set(fx.c, &bad_type, TU_INT(1), TC_NO_EXPIRE, NULL, 0), TC_EINVAL);
    TU_RC(tc_set(fx.c, TU_TEXT("k"), TU_INT(1), NAN, NULL, 0), TC_EINVAL);
    cr_assert_eq(tu_length(fx.c), 0);
}

Test(badinput, badinput_unknown_setting_einval)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_RC(tc_set_setting(c, "no_such_setting", TU_INT(1)), TC_EINVAL);
    TU_RC(tc_set_setting(c, "", TU_INT(1)), TC_EINVAL);
    tc_close(c);
    TU_RC(tc_setting_put(fx.c, "no_such_setting", TU_INT(1)), TC_EINVAL);
}

Test(badinput, badinput_unknown_eviction_policy_einval)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_RC(tc_set_setting(c, "eviction_policy", TU_TEXT("most-recently-used")),
          TC_EINVAL);
    TU_RC(tc_set_setting(c, "eviction_policy", TU_INT(1)), TC_EINVAL);
    tc_close(c);
    TU_RC(tc_setting_put(fx.c, "eviction_policy", TU_TEXT("random")),
          TC_EINVAL);
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_setting_get(fx.c, "eviction_policy", &v));
    cr_assert(tu_value_text_eq(&v, "least-recently-stored"), "unchanged");
    tc_value_clear(&v);
}

Test(badinput, badinput_negative_size_limit_einval)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_RC(tc_set_setting(c, "size_limit", TU_INT(-1)), TC_EINVAL);
    TU_RC(tc_set_setting(c, "size_limit", TU_REAL(-0.5)), TC_EINVAL);
    TU_RC(tc_set_setting(c, "size_limit", TU_TEXT("big")), TC_EINVAL);
    TU_RC(tc_set_setting(c, "cull_limit", TU_INT(-1)), TC_EINVAL);
    tc_close(c);
}

Test(badinput, badinput_dir_is_regular_file)
{
    char path[TU_PATH_MAX];
    snprintf(path, sizeof path, "%s/file", fx.base);
    tu_write_file(path, "not a dir", 9);
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    int rc = tc_open(c, path, 0);
    cr_assert_lt(rc, 0, "tc_open on a regular file returned %s",
                 tc_errname(rc));
    cr_assert_neq(rc, TC_EINTERNAL);
    tc_close(c);
    size_t n = 0;
    char *s = tu_read_file(path, &n);
    cr_assert(n == 9 && !memcmp(s, "not a dir", 9), "file untouched");
    free(s);
}

Test(badinput, badinput_open_nocreate_missing)
{
    char path[TU_PATH_MAX];
    snprintf(path, sizeof path, "%s/nothing", fx.base);
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_RC(tc_open(c, path, TC_OPEN_NOCREATE), TC_ENOCACHE);
    tc_close(c);
    TU_OK(tc_create(&c));
    TU_RC(tc_open(c, path, TC_OPEN_READONLY), TC_ENOCACHE);
    tc_close(c);
    cr_assert(!tu_exists(path), "no directory created");
}

Test(badinput, badinput_open_readonly_flag)
{
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_OK(tc_open(c, fx.dir, TC_OPEN_READONLY));
    cr_assert_eq(tc_is_readonly(c), 1);
    tu_expect_int(c, TU_TEXT("k"), 1);
    TU_RC(tc_set(c, TU_TEXT("k"), TU_INT(2), TC_NO_EXPIRE, NULL, 0),
          TC_EREADONLY);
    TU_RC(tc_delete(c, TU_TEXT("k"), 0), TC_EREADONLY);
    tc_close(c);
    tu_expect_int(fx.c, TU_TEXT("k"), 1);
    cr_assert_eq(tc_is_readonly(fx.c), 0);
}

Test(badinput, badinput_corrupt_cache_db)
{
    tc_close(fx.c);
    fx.c = NULL;
    char db[TU_PATH_MAX];
    snprintf(db, sizeof db, "%s/cache.db", fx.dir);
    tu_rmrf(fx.dir);
    cr_assert_eq(mkdir(fx.dir, 0755), 0);
    size_t n = 8192;
    char *garbage = tu_pattern(n, 42);
    tu_write_file(db, garbage, n);

    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    (void)tc_set_hot_size(c, 0);
    int rc = tc_open(c, fx.dir, 0);
    if (rc == TC_OK) /* a lazy open must fail at the first use instead */
        rc = tc_set(c, TU_TEXT("k"), TU_INT(1), TC_NO_EXPIRE, NULL, 0);
    cr_assert(rc == TC_ECORRUPT || rc == TC_EVERSION,
              "garbage cache.db gave %s (%d): %s", tc_errname(rc), rc,
              tc_errmsg());
    tc_close(c);

    size_t m = 0;
    char *after = tu_read_file(db, &m);
    cr_assert(m == n && !memcmp(after, garbage, n),
              "the garbage file was modified");
    free(after);
    free(garbage);
}

Test(badinput, badinput_value_file_deleted)
{
    char path[TU_PATH_MAX], buf[16];
    size_t len = 0;
    int fd = -1;
    set_big("big", 1);
    tu_set(fx.c, TU_TEXT("small"), TU_INT(1));
    tu_value_path(fx.dir, "big", path, sizeof path);
    cr_assert_eq(unlink(path), 0);
    tu_expect_missing(fx.c, TU_TEXT("big"));
    TU_RC(
        tc_get_buf(fx.c, TU_TEXT("big"), buf, sizeof buf, &len, NULL, NULL, 0),
        TC_NOTFOUND);
    TU_RC(tc_read(fx.c, TU_TEXT("big"), &fd, 0), TC_NOTFOUND);
    tu_expect_int(fx.c, TU_TEXT("small"), 1);
}

/* python-diskcache returns the short contents; a C API must not report
 * success with the wrong size. */
Test(badinput, badinput_value_file_truncated)
{
    char path[TU_PATH_MAX], buf[BIG];
    size_t len = 0;
    int rc;
    set_big("big", 1);
    tu_value_path(fx.dir, "big", path, sizeof path);
    cr_assert_eq(truncate(path, 100), 0);
    tc_item it = TC_ITEM_INIT;
    TU_RC2(rc, tc_get(fx.c, TU_TEXT("big"), &it, 0), TC_NOTFOUND, TC_ECORRUPT);
    TU_RC2(
        rc,
        tc_get_buf(fx.c, TU_TEXT("big"), buf, sizeof buf, &len, NULL, NULL, 0),
        TC_NOTFOUND, TC_ECORRUPT);
}

/* Traversal fixture: cache in base/x/cache, a decoy file of the right size
 * at base/etc/passwd, and the row of key 'big' edited to point at it. */
static char decoy[TU_PATH_MAX];

static void point_big_at(const char *filename)
{
    char p[TU_PATH_MAX];
    tc_close(fx.c);
    snprintf(p, sizeof p, "%s/x", fx.base);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(fx.dir, sizeof fx.dir, "%s/x/cache", fx.base);
    fx.c = tu_open(fx.dir, &fx.clk);
    set_big("big", 1);
    tc_close(fx.c);
    fx.c = NULL;

    snprintf(p, sizeof p, "%s/etc", fx.base);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(decoy, sizeof decoy, "%s/etc/passwd", fx.base);
    char *v = tu_pattern(BIG, 99);
    tu_write_file(decoy, v, BIG);
    free(v);

    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db, "UPDATE Cache SET filename = %Q WHERE key = 'big'",
               filename);
    sqlite3_close(db);
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void expect_traversal_refused(void)
{
    char buf[BIG];
    size_t len = 0;
    int fd = -1;
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_get(fx.c, TU_TEXT("big"), &it, 0), TC_ECORRUPT);
    TU_RC(
        tc_get_buf(fx.c, TU_TEXT("big"), buf, sizeof buf, &len, NULL, NULL, 0),
        TC_ECORRUPT);
    TU_RC(tc_read(fx.c, TU_TEXT("big"), &fd, 0), TC_ECORRUPT);
    cr_assert(tu_exists(decoy));
}

Test(badinput, badinput_filename_relative_traversal)
{
    point_big_at("../../etc/passwd");
    expect_traversal_refused();
}

Test(badinput, badinput_filename_absolute_path)
{
    char abs[TU_PATH_MAX];
    snprintf(abs, sizeof abs, "%s/etc/passwd", fx.base);
    point_big_at(abs);
    expect_traversal_refused();
}

/* Removing a row whose filename escapes the cache must never unlink the
 * file it names (here a decoy; in the wild, /etc/passwd). */
Test(badinput, badinput_traversal_delete_keeps_outside_file)
{
    uint64_t n = 0;
    point_big_at("../../etc/passwd");
    (void)tc_delete(fx.c, TU_TEXT("big"), 0);
    cr_assert(tu_exists(decoy), "delete unlinked a file outside the cache");
    tc_close(fx.c);
    fx.c = NULL;
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db,
               "INSERT INTO Cache (key, raw, store_time, expire_time,"
               " access_time, access_count, tag, size, mode, filename,"
               " value) VALUES ('evil', 1, 0, NULL, 0, 0, NULL, %d, 2,"
               " '../../etc/passwd', NULL)",
               BIG);
    sqlite3_close(db);
    fx.c = tu_open(fx.dir, &fx.clk);
    (void)tc_check(fx.c, 1, NULL, NULL, NULL, 0);
    cr_assert(tu_exists(decoy), "check --fix unlinked a file outside");
    (void)tc_clear(fx.c, &n, 0);
    cr_assert(tu_exists(decoy), "clear unlinked a file outside the cache");
}

/* ===================================================================== */
/* Full disk (RLIMIT_FSIZE in a child)                                   */

struct fsize_arg {
    const char *dir;
    rlim_t limit;
    size_t value_bytes;
};

static int fsize_child(void *argp, int msgfd)
{
    struct fsize_arg *a = argp;
    tc_cache *c = NULL;
    signal(SIGXFSZ, SIG_IGN);
    if (tc_create(&c) != TC_OK)
        return tu_child_msg(msgfd, "tc_create failed");
    (void)tc_set_hot_size(c, 0);
    int rc = tc_open(c, a->dir, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "open: %s", tc_errname(rc));
    (void)tc_contains(c, TU_TEXT("k0")); /* connection open from here */
    struct rlimit rl = {a->limit, a->limit};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return tu_child_msg(msgfd, "setrlimit: %s", strerror(errno));
    char *v = tu_pattern(a->value_bytes, 7);
    rc = tc_set(c, TU_TEXT("huge"), TU_BYTES(v, a->value_bytes), TC_NO_EXPIRE,
                NULL, 0);
    free(v);
    if (rc != TC_ENOSPC && rc != TC_EIO)
        return tu_child_msg(msgfd, "set past RLIMIT_FSIZE gave %s (%d): %s",
                            tc_errname(rc), rc, tc_errmsg());
    /* The handle still reads after the failed write. */
    tc_item it = TC_ITEM_INIT;
    rc = tc_get(c, TU_TEXT("k0"), &it, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "get after failed set: %s", tc_errname(rc));
    tc_item_clear(&it);
    tc_close(c);
    return 0;
}

static void fill_before_full_disk(void)
{
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        tu_set(fx.c, TU_TEXT(k), TU_INT(i));
    }
    set_big("big1", 1);
    set_big("big2", 2);
    tc_close(fx.c);
    fx.c = NULL;
}

static void verify_after_full_disk(void)
{
    fx.c = tu_open(fx.dir, &fx.clk);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        tu_expect_int(fx.c, TU_TEXT(k), i);
    }
    char *v = tu_pattern(BIG, 1);
    tu_expect_value(fx.c, TU_TEXT("big1"), TC_BYTES, v, BIG);
    free(v);
    v = tu_pattern(BIG, 2);
    tu_expect_value(fx.c, TU_TEXT("big2"), TC_BYTES, v, BIG);
    free(v);
    tu_expect_missing(fx.c, TU_TEXT("huge"));
    cr_assert_eq(tu_length(fx.c), 22);
}

Test(badinput, badinput_full_disk_value_file)
{
    char msg[2048];
    struct fsize_arg a = {fx.dir, 1 << 20, 4u << 20};
    skip_under_valgrind();
    fill_before_full_disk();
    int code = tu_run_child(fsize_child, &a, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    verify_after_full_disk();
}

Test(badinput, badinput_full_disk_leaves_no_partial_file)
{
    char msg[2048];
    uint64_t w = 99;
    struct fsize_arg a = {fx.dir, 1 << 20, 4u << 20};
    skip_under_valgrind();
    fill_before_full_disk();
    int code = tu_run_child(fsize_child, &a, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    fx.c = tu_open(fx.dir, &fx.clk);
    cr_assert_eq(tu_count_val_files(fx.dir), 2,
                 "the partial value file of the failed set remains");
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0);
}

/* The limit hits inside SQLite's commit (an inline value growing the WAL):
 * an error, and the database stays intact. */
Test(badinput, badinput_full_disk_during_commit)
{
    char msg[2048];
    uint64_t w = 99;
    struct fsize_arg a = {fx.dir, 1024, 20000};
    skip_under_valgrind();
    fill_before_full_disk();
    int code = tu_run_child(fsize_child, &a, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    verify_after_full_disk();
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0, "integrity after a failed commit");
}

/* ===================================================================== */
/* Python pickles (mode 4 values, raw 0 keys)                            */

static void insert_raw_row(const char *key_sql, int raw, int mode,
                           const char *value_sql)
{
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db,
               "INSERT INTO Cache (key, raw, store_time, expire_time,"
               " access_time, access_count, tag, size, mode, filename, value)"
               " VALUES (%s, %d, %.1f, NULL, %.1f, 0, NULL, 0, %d, NULL, %s)",
               key_sql, raw, TU_T0, TU_T0, mode, value_sql);
    sqlite3_close(db);
}

Test(badinput, badinput_pickled_value_unsupported)
{
    char buf[64];
    size_t len = 0;
    tc_close(fx.c);
    fx.c = NULL;
    insert_raw_row("'p'", 1, 4, "x'80044b012e'"); /* pickle of 1 */
    fx.c = tu_open(fx.dir, &fx.clk);
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_get(fx.c, TU_TEXT("p"), &it, 0), TC_EUNSUPPORTED);
    TU_RC(tc_get_buf(fx.c, TU_TEXT("p"), buf, sizeof buf, &len, NULL, NULL, 0),
          TC_EUNSUPPORTED);
    TU_RC(tc_incr(fx.c, TU_TEXT("p"), TU_INT(1), TU_INT(0), NULL, 0), TC_ETYPE);
    TU_OK(tc_contains(fx.c, TU_TEXT("p")));
    cr_assert_str_neq(tc_errname(TC_EUNSUPPORTED), "");
}

Test(badinput, badinput_pickled_key_in_iteration)
{
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tc_close(fx.c);
    fx.c = NULL;
    /* pickle of ('t', 1), stored as python-diskcache does: raw 0 */
    insert_raw_row("x'80049508000000000000008c0174944b018694942e'", 0, 1, "1");
    fx.c = tu_open(fx.dir, &fx.clk);
    tu_set(fx.c, TU_TEXT("b"), TU_INT(2));

    tc_iter *it = NULL;
    tc_value k = TC_VALUE_INIT;
    TU_OK(tc_iter_open(fx.c, TC_ITER_INSERTION, &it));
    TU_OK(tc_iter_next(it, &k));
    cr_assert(tu_value_text_eq(&k, "a"));
    TU_RC(tc_iter_next(it, &k), TC_EUNSUPPORTED);
    TU_OK(tc_iter_next(it, &k));
    cr_assert(tu_value_text_eq(&k, "b"), "iteration continues past it");
    TU_RC(tc_iter_next(it, &k), TC_NOTFOUND);
    tc_value_clear(&k);
    tc_iter_close(it);
    cr_assert_eq(tu_length(fx.c), 3);
}

/* ===================================================================== */
/* Permissions: a child that dropped root (nobody, 65534)                */

static int drop_root(int msgfd)
{
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        return tu_child_msg(msgfd, "drop privileges: %s", strerror(errno));
    return 0;
}

static int readonly_child(void *arg, int msgfd)
{
    const char *want = arg;
    tc_cache *c = NULL;
    if (drop_root(msgfd))
        return 1;
    if (tc_create(&c) != TC_OK)
        return tu_child_msg(msgfd, "tc_create");
    (void)tc_set_hot_size(c, 0);
    int rc = tc_open(c, fx.dir, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "open of a root-owned 0755 cache: %s: %s",
                            tc_errname(rc), tc_errmsg());
    if (tc_is_readonly(c) != 1)
        return tu_child_msg(msgfd, "tc_is_readonly = %d", tc_is_readonly(c));
    tc_item it = TC_ITEM_INIT;
    rc = tc_get(c, TU_TEXT("k"), &it, 0);
    if (rc != TC_OK || !tu_value_text_eq(&it.value, want))
        return tu_child_msg(msgfd, "get k: %s", tc_errname(rc));
    tc_item_clear(&it);
    rc = tc_get(c, TU_TEXT("big"), &it, 0);
    if (rc != TC_OK || it.value.len != BIG)
        return tu_child_msg(msgfd, "get big: %s", tc_errname(rc));
    tc_item_clear(&it);
    rc = tc_set(c, TU_TEXT("k"), TU_TEXT("child"), TC_NO_EXPIRE, NULL, 0);
    if (rc != TC_EREADONLY && rc != TC_EPERM)
        return tu_child_msg(msgfd, "set on read-only cache: %s",
                            tc_errname(rc));
    rc = tc_delete(c, TU_TEXT("k"), 0);
    if (rc != TC_EREADONLY && rc != TC_EPERM)
        return tu_child_msg(msgfd, "delete on read-only cache: %s",
                            tc_errname(rc));
    tc_close(c);
    return 0;
}

static void require_root(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to drop privileges");
    skip_under_valgrind();
}

static void make_root_owned_readable(void)
{
    const char *sfx[] = {"", "-wal", "-shm"};
    char p[TU_PATH_MAX];
    cr_assert_eq(chmod(fx.base, 0755), 0);
    cr_assert_eq(chmod(fx.dir, 0755), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/cache.db%s", fx.dir, sfx[i]);
        if (tu_exists(p))
            cr_assert_eq(chmod(p, 0644), 0);
    }
}

Test(badinput, badinput_perm_readonly_dir_opens_readonly)
{
    char msg[2048];
    require_root();
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("v"));
    set_big("big", 1);
    tc_close(fx.c);
    fx.c = NULL;
    make_root_owned_readable();
    int code = tu_run_child(readonly_child, (void *)"v", msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    fx.c = tu_open(fx.dir, &fx.clk);
    tu_expect_text(fx.c, TU_TEXT("k"), "v");
}

/* A writer holds the cache open (cache.db-wal and -shm exist, root-owned):
 * the reader still opens read-only and sees the latest commit. */
Test(badinput, badinput_perm_readonly_while_writer_open)
{
    char msg[2048], p[TU_PATH_MAX];
    require_root();
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("old"));
    set_big("big", 1);
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("new"));
    tu_expect_text(fx.c, TU_TEXT("k"), "new");
    make_root_owned_readable();
    snprintf(p, sizeof p, "%s/cache.db-wal", fx.dir);
    cr_assert(tu_exists(p), "WAL expected while the writer is open");
    int code = tu_run_child(readonly_child, (void *)"new", msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    tu_expect_text(fx.c, TU_TEXT("k"), "new");
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("after"));
}

static int unreadable_child(void *arg, int msgfd)
{
    (void)arg;
    tc_cache *c = NULL;
    if (drop_root(msgfd))
        return 1;
    if (tc_create(&c) != TC_OK)
        return tu_child_msg(msgfd, "tc_create");
    int rc = tc_open(c, fx.dir, 0);
    tu_child_msg(msgfd, "%s: %s", tc_errname(rc), tc_errmsg());
    tc_close(c);
    if (rc >= 0)
        return 2;
    if (rc == TC_EINTERNAL || rc == TC_ECORRUPT)
        return 3;
    return 0;
}

Test(badinput, badinput_perm_unreadable_dir_clean_error)
{
    char msg[2048];
    require_root();
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("v"));
    tc_close(fx.c);
    fx.c = NULL;
    cr_assert_eq(chmod(fx.dir, 0700), 0);
    int code = tu_run_child(unreadable_child, NULL, msg, sizeof msg);
    cr_log_info("open of an unreadable dir: %s", msg);
    cr_assert_eq(code, 0, "child: exit %d (2: opened, 3: wrong code): %s", code,
                 msg);
    cr_assert_eq(chmod(fx.dir, 0755), 0);
    fx.c = tu_open(fx.dir, &fx.clk);
    tu_expect_text(fx.c, TU_TEXT("k"), "v");
}

static int unwritable_parent_child(void *arg, int msgfd)
{
    const char *dir = arg;
    tc_cache *c = NULL;
    if (drop_root(msgfd))
        return 1;
    if (tc_create(&c) != TC_OK)
        return tu_child_msg(msgfd, "tc_create");
    int rc = tc_open(c, dir, 0);
    tc_close(c);
    if (rc >= 0 || rc == TC_EINTERNAL)
        return tu_child_msg(msgfd, "create in unwritable parent: %s",
                            tc_errname(rc));
    return 0;
}

Test(badinput, badinput_perm_create_in_unwritable_parent)
{
    char msg[2048], dir[TU_PATH_MAX];
    require_root();
    snprintf(dir, sizeof dir, "%s/newcache", fx.base);
    int code = tu_run_child(unwritable_parent_child, dir, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    cr_assert(!tu_exists(dir));
}

/* pop of an item whose file vanished: the row goes, the result is a miss. */
Test(badinput, badinput_value_file_deleted_pop)
{
    char path[TU_PATH_MAX];
    set_big("big", 1);
    tu_value_path(fx.dir, "big", path, sizeof path);
    cr_assert_eq(unlink(path), 0);
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_pop(fx.c, TU_TEXT("big"), &it, 0), TC_NOTFOUND);
    cr_assert_eq(tu_length(fx.c), 0, "the row is deleted");
}
