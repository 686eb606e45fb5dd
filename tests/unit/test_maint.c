/*
 * test_maint.c - bulk maintenance (expire, evict, clear, cull, inline
 * culling), check, stats, volume, len and the tag index
 * (diskcache-behaviour.md sections 3 and 6).
 */
#include "testutil.h"

static void setup(void)
{
    tu_fx_init("maint");
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(maint, .init = setup, .fini = teardown, .timeout = 90);

/* Warnings collected by tc_check's callback. */
struct warns {
    int n;
    char kind[64][32];
};

static void on_warning(void *arg, const char *kind, const char *msg)
{
    struct warns *w = arg;
    cr_log_info("check warning %s: %s", kind, msg);
    if (w->n < 64)
        snprintf(w->kind[w->n], sizeof w->kind[0], "%s", kind);
    w->n++;
}

static int has_kind(const struct warns *w, const char *kind)
{
    for (int i = 0; i < w->n && i < 64; i++)
        if (!strcmp(w->kind[i], kind))
            return 1;
    return 0;
}

/* run_check - tc_check, asserting the callback count matches @warnings. */
static uint64_t run_check(int fix, struct warns *w)
{
    uint64_t n = 12345;
    memset(w, 0, sizeof *w);
    TU_OK(tc_check(fx.c, fix, on_warning, w, &n, 0));
    cr_assert_eq(n, (uint64_t)w->n, "warnings %llu but %d callbacks",
                 (unsigned long long)n, w->n);
    return n;
}

static void set_big(const char *key, size_t n, unsigned seed)
{
    char *v = tu_pattern(n, seed);
    TU_OK(tc_set(fx.c, TU_TEXT(key), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    free(v);
}

static void cull_limit_0(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "cull_limit", TU_INT(0)));
}

Test(maint, cache_expire_count)
{
    uint64_t n = 99;
    TU_OK(tc_set(fx.c, TU_TEXT("a"), TU_INT(1), 5, NULL, 0));
    TU_OK(tc_set(fx.c, TU_TEXT("b"), TU_INT(1), 10, NULL, 0));
    TU_OK(tc_set(fx.c, TU_TEXT("c"), TU_INT(1), 20, NULL, 0));
    tu_set(fx.c, TU_TEXT("d"), TU_INT(1));
    char *v = tu_pattern(40000, 1);
    TU_OK(tc_set(fx.c, TU_TEXT("f"), TU_BYTES(v, 40000), 1, NULL, 0));
    free(v);

    tu_clock_set(&fx.clk, TU_T0 + 15);
    TU_OK(tc_expire(fx.c, NAN, &n, 0));
    cr_assert_eq(n, 3, "a, b and f expired before now; got %llu",
                 (unsigned long long)n);
    cr_assert_eq(tu_length(fx.c), 2);
    cr_assert_eq(tu_count_val_files(fx.dir), 0, "expired item's file removed");
    TU_OK(tc_contains(fx.c, TU_TEXT("c")));

    TU_OK(tc_expire(fx.c, TU_T0 + 100, &n, 0));
    cr_assert_eq(n, 1, "explicit now");
    cr_assert_eq(tu_length(fx.c), 1);
    TU_OK(tc_expire(fx.c, NAN, &n, 0));
    cr_assert_eq(n, 0);
}

Test(maint, cache_evict_by_tag)
{
    uint64_t n = 99;
    for (int i = 0; i < 3; i++)
        TU_OK(
            tc_set(fx.c, TU_INT(i), TU_INT(i), TC_NO_EXPIRE, TU_TEXT("x"), 0));
    for (int i = 3; i < 5; i++)
        TU_OK(
            tc_set(fx.c, TU_INT(i), TU_INT(i), TC_NO_EXPIRE, TU_TEXT("y"), 0));
    TU_OK(tc_set(fx.c, TU_INT(5), TU_INT(5), TC_NO_EXPIRE, TU_BSTR("x"), 0));
    TU_OK(tc_set(fx.c, TU_INT(6), TU_INT(6), TC_NO_EXPIRE, TU_INT(7), 0));
    tu_set(fx.c, TU_INT(7), TU_INT(7));
    char *v = tu_pattern(40000, 2);
    TU_OK(tc_set(fx.c, TU_INT(8), TU_BYTES(v, 40000), TC_NO_EXPIRE,
                 TU_TEXT("x"), 0));
    free(v);

    TU_OK(tc_evict(fx.c, TU_TEXT("x"), &n, 0));
    cr_assert_eq(n, 4, "text tag 'x' only (not b'x'); got %llu",
                 (unsigned long long)n);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    TU_RC(tc_contains(fx.c, TU_INT(0)), TC_NOTFOUND);
    TU_OK(tc_contains(fx.c, TU_INT(5)));
    TU_OK(tc_evict(fx.c, TU_INT(7), &n, 0));
    cr_assert_eq(n, 1);
    TU_OK(tc_evict(fx.c, TU_TEXT("nope"), &n, 0));
    cr_assert_eq(n, 0);
    cr_assert_eq(tu_length(fx.c), 4);
}

Test(maint, cache_clear)
{
    uint64_t n = 0;
    for (int i = 0; i < 250; i++) /* more than one batch of 100 */
        tu_set(fx.c, TU_INT(i), TU_INT(i));
    set_big("big", 40000, 3);
    TU_OK(tc_set(fx.c, TU_TEXT("exp"), TU_INT(1), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 5);
    TU_OK(tc_clear(fx.c, &n, 0));
    cr_assert_eq(n, 252, "clear removes every row, expired included");
    cr_assert_eq(tu_length(fx.c), 0);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
}

/* cull(): expire first, then delete in policy order until volume() is at
 * most size_limit; works with cull_limit 0. */
Test(maint, cache_cull_small_size_limit)
{
    uint64_t n = 0, vol = 0;
    tc_close(fx.c);
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, cull_limit_0);
    TU_OK(tc_set(fx.c, TU_TEXT("e1"), TU_INT(1), 1, NULL, 0));
    TU_OK(tc_set(fx.c, TU_TEXT("e2"), TU_INT(1), 1, NULL, 0));
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        tu_clock_advance(&fx.clk, 1);
        set_big(k, 40000, (unsigned)i);
    }
    cr_assert_eq(tu_length(fx.c), 32, "cull_limit 0: no inline culling");
    TU_OK(tc_setting_put(fx.c, "size_limit", TU_INT(600000)));
    TU_OK(tc_cull(fx.c, &n, 0));
    TU_OK(tc_volume(fx.c, &vol));
    cr_assert_leq(vol, 600000, "volume %llu after cull",
                  (unsigned long long)vol);
    cr_assert_geq(n, 2 + 15, "2 expired + at least 15 by size; got %llu",
                  (unsigned long long)n);
    cr_assert_eq(tu_length(fx.c), 32 - n);
    cr_assert_eq(tu_count_val_files(fx.dir), 32 - n,
                 "culled rows' files removed");
    /* Least-recently-stored: the newest item survives, the oldest does not. */
    TU_OK(tc_contains(fx.c, TU_TEXT("k29")));
    TU_RC(tc_contains(fx.c, TU_TEXT("k00")), TC_NOTFOUND);
}

static void small_limit(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(300000)));
}

/* _cull inside every set: with the default cull_limit 10 the cache stays
 * under size_limit. */
Test(maint, cache_set_culls_inline)
{
    uint64_t vol = 0;
    tc_close(fx.c);
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, small_limit);
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        tu_clock_advance(&fx.clk, 1);
        set_big(k, 40000, (unsigned)i);
        TU_OK(tc_volume(fx.c, &vol));
        cr_assert_lt(vol, 300000, "volume %llu after set %d",
                     (unsigned long long)vol, i);
    }
    uint64_t len = tu_length(fx.c);
    cr_assert_lt(len, 30);
    cr_assert_eq(tu_count_val_files(fx.dir), len);
}

Test(maint, cache_check_clean_zero_warnings)
{
    struct warns w;
    for (int i = 0; i < 20; i++)
        tu_set(fx.c, TU_INT(i), TU_TEXT("v"));
    set_big("big1", 40000, 1);
    set_big("big2", 50000, 2);
    TU_OK(tc_delete(fx.c, TU_INT(3), 0));
    cr_assert_eq(run_check(0, &w), 0);
    cr_assert_eq(run_check(1, &w), 0);
    cr_assert_eq(tu_length(fx.c), 21);
    tu_expect_missing(fx.c, TU_INT(3));
}

Test(maint, cache_check_missing_file_fix)
{
    struct warns w;
    char path[TU_PATH_MAX];
    set_big("big", 40000, 1);
    set_big("keep", 40000, 2);
    tu_value_path(fx.dir, "big", path, sizeof path);
    cr_assert_eq(unlink(path), 0);

    cr_assert_geq(run_check(0, &w), 1);
    cr_assert(has_kind(&w, "missing-file"), "no missing-file warning");
    cr_assert_eq(tu_length(fx.c), 2, "check without fix changes nothing");

    cr_assert_geq(run_check(1, &w), 1);
    cr_assert(has_kind(&w, "missing-file"));
    cr_assert_eq(tu_length(fx.c), 1, "fix deletes the row");
    tu_expect_missing(fx.c, TU_TEXT("big"));
    TU_OK(tc_contains(fx.c, TU_TEXT("keep")));

    run_check(0, &w);
    cr_assert(!has_kind(&w, "missing-file"), "row still present after fix");
}

Test(maint, cache_check_unknown_file_fix)
{
    struct warns w;
    char stray[TU_PATH_MAX];
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    snprintf(stray, sizeof stray, "%s/stray.bin", fx.dir);
    tu_write_file(stray, "junk", 4);

    cr_assert_eq(run_check(0, &w), 1);
    cr_assert(has_kind(&w, "unknown-file"));
    cr_assert(tu_exists(stray), "check without fix removes nothing");
    cr_assert_eq(run_check(1, &w), 1);
    cr_assert(!tu_exists(stray), "fix removes the unknown file");
    cr_assert_eq(run_check(0, &w), 0);
    tu_expect_int(fx.c, TU_TEXT("a"), 1);
}

/* Files whose path contains "cache.db" are never reported. */
Test(maint, cache_check_ignores_cache_db_names)
{
    struct warns w;
    char p[TU_PATH_MAX];
    snprintf(p, sizeof p, "%s/cache.db-foreign", fx.dir);
    tu_write_file(p, "x", 1);
    cr_assert_eq(run_check(1, &w), 0);
    cr_assert(tu_exists(p));
}

Test(maint, cache_check_wrong_file_size_fix)
{
    struct warns w;
    char path[TU_PATH_MAX];
    set_big("big", 40000, 1);
    tu_value_path(fx.dir, "big", path, sizeof path);
    FILE *f = fopen(path, "ab");
    cr_assert_not_null(f);
    fwrite("xx", 1, 2, f);
    fclose(f);
    cr_assert_eq(run_check(0, &w), 1);
    cr_assert(has_kind(&w, "file-size"));
    cr_assert_eq(run_check(1, &w), 1);
    cr_assert_eq(run_check(0, &w), 0);
    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_int(db, -1, "SELECT size FROM Cache WHERE key='big'"),
                 40002);
    sqlite3_close(db);
}

Test(maint, cache_check_count_mismatch_fix)
{
    struct warns w;
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(1));
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db, "UPDATE Settings SET value = 7 WHERE key = 'count'");
    sqlite3_close(db);
    cr_assert_eq(run_check(0, &w), 1);
    cr_assert(has_kind(&w, "count"));
    cr_assert_eq(run_check(1, &w), 1);
    cr_assert_eq(run_check(0, &w), 0);
    cr_assert_eq(tu_length(fx.c), 2);
}

/* Verified in 5.4.0: enable, miss, set, hit, miss -> (1, 2). */
Test(maint, cache_stats_enable_reset)
{
    uint64_t h = 9, m = 9;
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    cr_assert(h == 0 && m == 0);
    tu_expect_missing(fx.c, TU_TEXT("k"));
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    tu_expect_int(fx.c, TU_TEXT("k"), 1);
    tu_expect_missing(fx.c, TU_TEXT("other"));
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    cr_assert(h == 1 && m == 2, "stats (%llu, %llu), expected (1, 2)",
              (unsigned long long)h, (unsigned long long)m);

    /* reset returns the values before the reset, then zeroes them. */
    TU_OK(tc_stats(fx.c, 1, 1, &h, &m));
    cr_assert(h == 1 && m == 2);
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    cr_assert(h == 0 && m == 0, "after reset (%llu, %llu)",
              (unsigned long long)h, (unsigned long long)m);

    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_setting_get(fx.c, "statistics", &v));
    cr_assert_eq(v.type, TC_INT);
    cr_assert_eq(v.i, 1, "statistics setting persisted as 1");
    tc_value_clear(&v);
}

Test(maint, cache_stats_disabled_counts_nothing)
{
    uint64_t h = 9, m = 9;
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    tu_expect_int(fx.c, TU_TEXT("k"), 1);
    tu_expect_missing(fx.c, TU_TEXT("x"));
    TU_OK(tc_stats(fx.c, 0, 0, &h, &m));
    cr_assert(h == 0 && m == 0, "statistics off by default");
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    tu_expect_missing(fx.c, TU_TEXT("x"));
    TU_OK(tc_stats(fx.c, 0, 0, &h, &m)); /* returns (0,1), then disables */
    cr_assert(h == 0 && m == 1);
    tu_expect_missing(fx.c, TU_TEXT("x"));
    TU_OK(tc_stats(fx.c, 0, 0, &h, &m));
    cr_assert(h == 0 && m == 1, "disabled: the second miss is not counted");
}

/* volume() = page_size * page_count + Settings.size. */
Test(maint, cache_volume)
{
    uint64_t v0 = 0, v1 = 0;
    TU_OK(tc_volume(fx.c, &v0));
    cr_assert_gt(v0, 0);
    set_big("big", 100000, 1);
    TU_OK(tc_volume(fx.c, &v1));
    cr_assert_geq(v1, v0 + 100000);
    sqlite3 *db = tu_db_open(fx.dir);
    int64_t ps = tu_db_int(db, 0, "PRAGMA page_size");
    int64_t pc = tu_db_int(db, 0, "PRAGMA page_count");
    int64_t sz =
        tu_db_int(db, 0, "SELECT value FROM Settings WHERE key='size'");
    sqlite3_close(db);
    cr_assert_eq(sz, 100000, "Settings.size tracks file bytes");
    cr_assert_eq(v1, (uint64_t)(ps * pc + sz), "volume %llu != %lld",
                 (unsigned long long)v1, (long long)(ps * pc + sz));
}

Test(maint, cache_length_counts)
{
    cr_assert_eq(tu_length(fx.c), 0);
    for (int i = 0; i < 10; i++)
        tu_set(fx.c, TU_INT(i), TU_INT(i));
    tu_set(fx.c, TU_INT(3), TU_INT(33));
    cr_assert_eq(tu_length(fx.c), 10);
    TU_OK(tc_set(fx.c, TU_TEXT("e"), TU_INT(1), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 2);
    cr_assert_eq(tu_length(fx.c), 11, "expired items are counted");
    TU_OK(tc_delete(fx.c, TU_INT(0), 0));
    cr_assert_eq(tu_length(fx.c), 10);
    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(
        tu_db_int(db, -1, "SELECT value FROM Settings WHERE key='count'"), 10);
    sqlite3_close(db);
}

Test(maint, cache_create_drop_tag_index)
{
    tc_value v = TC_VALUE_INIT;
    cr_assert(!tu_db_has_index(fx.dir, "Cache_tag_rowid"));
    TU_OK(tc_create_tag_index(fx.c));
    cr_assert(tu_db_has_index(fx.dir, "Cache_tag_rowid"));
    TU_OK(tc_setting_get(fx.c, "tag_index", &v));
    cr_assert_eq(v.i, 1);
    tc_value_clear(&v);
    /* Reopening keeps it (tag_index persisted). */
    tu_fx_reopen();
    cr_assert(tu_db_has_index(fx.dir, "Cache_tag_rowid"));
    TU_OK(tc_drop_tag_index(fx.c));
    cr_assert(!tu_db_has_index(fx.dir, "Cache_tag_rowid"));
    TU_OK(tc_setting_get(fx.c, "tag_index", &v));
    cr_assert_eq(v.i, 0);
    tc_value_clear(&v);
}

/* Only get() counts hits and misses. */
Test(maint, cache_stats_only_get_counts)
{
    uint64_t h = 9, m = 9;
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    TU_RC(tc_contains(fx.c, TU_TEXT("x")), TC_NOTFOUND);
    TU_OK(tc_contains(fx.c, TU_TEXT("k")));
    TU_RC(tc_pop(fx.c, TU_TEXT("x"), NULL, 0), TC_NOTFOUND);
    TU_OK(tc_incr(fx.c, TU_TEXT("k"), TU_INT(1), NULL, NULL, 0));
    TU_RC(tc_touch(fx.c, TU_TEXT("x"), 1, 0), TC_NOTFOUND);
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    cr_assert(h == 0 && m == 0, "stats (%llu, %llu), expected (0, 0)",
              (unsigned long long)h, (unsigned long long)m);
}

Test(maint, cache_check_empty_dir_fix)
{
    struct warns w;
    char p[TU_PATH_MAX];
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    snprintf(p, sizeof p, "%s/zz", fx.dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    cr_assert_eq(run_check(0, &w), 1);
    cr_assert(has_kind(&w, "empty-dir"));
    cr_assert(tu_exists(p));
    cr_assert_eq(run_check(1, &w), 1);
    cr_assert(!tu_exists(p), "fix removes the empty directory");
    cr_assert_eq(run_check(0, &w), 0);
}

/* expire() works in batches of 100; the count covers all of them. (The
 * expiry times are distinct: python-diskcache's batches advance a strict
 * lower bound, so rows tied with the last expire_time of a batch are left
 * for the next call, and this port reproduces that.) */
Test(maint, cache_expire_many_batches)
{
    uint64_t n = 0;
    TU_OK(tc_begin(fx.c, 0));
    for (int i = 0; i < 250; i++)
        TU_OK(tc_set(fx.c, TU_INT(i), TU_INT(i), 1 + (i * 37 % 250) * 0.01,
                     NULL, 0));
    tu_set(fx.c, TU_TEXT("keep"), TU_INT(1));
    TU_OK(tc_commit(fx.c));
    tu_clock_advance(&fx.clk, 100);
    TU_OK(tc_expire(fx.c, NAN, &n, 0));
    cr_assert_eq(n, 250, "expired %llu", (unsigned long long)n);
    cr_assert_eq(tu_length(fx.c), 1);
}
