/*
 * test_fanout.c - FanoutCache layout, shard placement by Disk.hash, the
 * size_limit split, the recorded shard count, and the hash vectors
 * (diskcache-behaviour.md sections 4.4 and 7).
 */
#include <time.h>

#include "testutil.h"

static void setup(void)
{
    tu_fx_init("fanout");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(fanout, .init = setup, .fini = teardown, .timeout = 60);

static tc_cache *open_fanout(int shards, void (*configure)(tc_cache *))
{
    return tu_open_ex(fx.dir, shards, &fx.clk, configure);
}

static void shard_dir(int i, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%03d", fx.dir, i);
}

/* rows_in_shard - COUNT(*) of rows with key @where_sql in shard @i. */
static int64_t rows_in_shard(int i, const char *where_sql)
{
    char d[TU_PATH_MAX];
    shard_dir(i, d, sizeof d);
    sqlite3 *db = tu_db_open(d);
    int64_t n =
        tu_db_int(db, -1, "SELECT COUNT(*) FROM Cache WHERE %s", where_sql);
    sqlite3_close(db);
    return n;
}

/* shard_of - the one shard whose table holds @where_sql (-1 if none or
 * several). */
static int shard_of(int shards, const char *where_sql)
{
    int found = -1;
    for (int i = 0; i < shards; i++) {
        if (rows_in_shard(i, where_sql) > 0) {
            if (found >= 0)
                return -1;
            found = i;
        }
    }
    return found;
}

Test(fanout, fanout_default_8_shards_layout)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    cr_assert_eq(tc_shard_count(fx.c), 8);
    for (int i = 0; i < 8; i++) {
        char p[TU_PATH_MAX];
        snprintf(p, sizeof p, "%s/%03d/cache.db", fx.dir, i);
        cr_assert(tu_exists(p), "%s missing", p);
    }
    char p[TU_PATH_MAX];
    snprintf(p, sizeof p, "%s/008", fx.dir);
    cr_assert(!tu_exists(p), "only 8 shards");
    snprintf(p, sizeof p, "%s/cache.db", fx.dir);
    cr_assert(!tu_exists(p), "no top-level cache.db in a FanoutCache");
}

Test(fanout, fanout_plain_cache_has_no_shards)
{
    fx.c = tu_open(fx.dir, &fx.clk);
    cr_assert_eq(tc_shard_count(fx.c), 0);
    char p[TU_PATH_MAX];
    snprintf(p, sizeof p, "%s/cache.db", fx.dir);
    cr_assert(tu_exists(p));
    snprintf(p, sizeof p, "%s/000", fx.dir);
    cr_assert(!tu_exists(p));
}

/* Verified: 'a' -> 2, 'b' -> 3, 'c' -> 4, 1 -> 1, 2 -> 2, 3 -> 3. */
Test(fanout, fanout_key_shard_placement)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("c"), TU_INT(1));
    tu_set(fx.c, TU_INT(1), TU_INT(1));
    tu_set(fx.c, TU_INT(2), TU_INT(1));
    tu_set(fx.c, TU_INT(3), TU_INT(1));
    cr_assert_eq(shard_of(8, "key = 'a'"), 2);
    cr_assert_eq(shard_of(8, "key = 'b'"), 3);
    cr_assert_eq(shard_of(8, "key = 'c'"), 4);
    cr_assert_eq(shard_of(8, "key = 1"), 1);
    cr_assert_eq(shard_of(8, "key = 2"), 2);
    cr_assert_eq(shard_of(8, "key = 3"), 3);
    tu_expect_int(fx.c, TU_TEXT("a"), 1);
    uint64_t n = 0;
    TU_OK(tc_length(fx.c, &n));
    cr_assert_eq(n, 6, "len sums the shards");
}

/* 1 and 1.0 hash to different shards (1 -> 1, 1.0 -> 143655216 % 8 = 0),
 * so in a FanoutCache they are different items. */
Test(fanout, fanout_int_and_real_keys_use_different_shards)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tu_set(fx.c, TU_INT(1), TU_TEXT("int"));
    tu_expect_missing(fx.c, TU_REAL(1.0));
    tu_set(fx.c, TU_REAL(1.0), TU_TEXT("real"));
    tu_expect_text(fx.c, TU_INT(1), "int");
    cr_assert_eq(shard_of(8, "key = 1.0"), -1, "one row in each of 2 shards");
    cr_assert_eq(rows_in_shard(0, "key = 1"), 1);
    cr_assert_eq(rows_in_shard(1, "key = 1"), 1);
}

static void check_size_limit(int shards, double want)
{
    for (int i = 0; i < shards; i++) {
        char d[TU_PATH_MAX];
        shard_dir(i, d, sizeof d);
        sqlite3 *db = tu_db_open(d);
        char *t = tu_db_text(db, "SELECT typeof(value) FROM Settings"
                                 " WHERE key = 'size_limit'");
        double v = tu_db_real(db, "SELECT value FROM Settings"
                                  " WHERE key = 'size_limit'");
        sqlite3_close(db);
        cr_assert_str_eq(t, "real", "shard %d size_limit stored as REAL", i);
        cr_assert_eq(v, want, "shard %d size_limit %.1f, expected %.1f", i, v,
                     want);
        free(t);
    }
}

Test(fanout, fanout_size_limit_split_default)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    check_size_limit(8, 134217728.0);
}

static void limit_800000(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(800000)));
}

Test(fanout, fanout_size_limit_split_explicit)
{
    fx.c = open_fanout(4, limit_800000);
    cr_assert_eq(tc_shard_count(fx.c), 4);
    check_size_limit(4, 200000.0);
    TU_OK(tc_setting_put(fx.c, "size_limit", TU_INT(4000000)));
    check_size_limit(4, 1000000.0);
}

Test(fanout, fanout_reopen_other_shard_count_einval)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tc_close(fx.c);
    fx.c = NULL;

    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_OK(tc_set_shards(c, 4));
    TU_RC(tc_open(c, fx.dir, 0), TC_EINVAL);
    tc_close(c);

    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    cr_assert_eq(tc_shard_count(fx.c), 8, "no count: use the recorded one");
    tu_expect_int(fx.c, TU_TEXT("a"), 1);
    tc_close(fx.c);
    fx.c = open_fanout(8, NULL);
    cr_assert_eq(tc_shard_count(fx.c), 8);
}

Test(fanout, fanout_bad_shard_count_einval)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_RC(tc_set_shards(c, 1000), TC_EINVAL);
    TU_RC(tc_set_shards(c, -2), TC_EINVAL);
    TU_OK(tc_set_shards(c, 1));
    tc_close(c);
}

Test(fanout, fanout_push_is_einval)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    TU_RC(tc_push(fx.c, TU_INT(1), NULL, TC_BACK, TC_NO_EXPIRE, NULL, NULL, 0),
          TC_EINVAL);
}

/* __iter__ chains shards 0..n-1; __reversed__ reverses shards and rows. */
Test(fanout, fanout_iteration_chains_shards)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    /* shard 3: 'b', 3; shard 2: 'a', 2 -- inserted in this order. */
    tu_set(fx.c, TU_TEXT("b"), TU_INT(0));
    tu_set(fx.c, TU_INT(2), TU_INT(0));
    tu_set(fx.c, TU_INT(3), TU_INT(0));
    tu_set(fx.c, TU_TEXT("a"), TU_INT(0));
    const char *fwd[] = {"2", "a", "b", "3"};
    const char *rev[] = {"3", "b", "a", "2"};
    for (int pass = 0; pass < 2; pass++) {
        tc_iter *it = NULL;
        tc_value k = TC_VALUE_INIT;
        TU_OK(tc_iter_open(fx.c, pass ? TC_ITER_REVERSE : TC_ITER_INSERTION,
                           &it));
        for (int i = 0; i < 4; i++) {
            const char *want = pass ? rev[i] : fwd[i];
            char got[32];
            TU_OK(tc_iter_next(it, &k));
            if (k.type == TC_INT)
                snprintf(got, sizeof got, "%lld", (long long)k.i);
            else
                snprintf(got, sizeof got, "%.*s", (int)k.len,
                         (const char *)k.ptr);
            cr_assert_str_eq(got, want, "pass %d position %d", pass, i);
        }
        TU_RC(tc_iter_next(it, &k), TC_NOTFOUND);
        tc_value_clear(&k);
        tc_iter_close(it);
    }
}

Test(fanout, fanout_bulk_operations_sum_shards)
{
    uint64_t n = 0, h = 0, m = 0, vol = 0;
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    for (int i = 0; i < 40; i++)
        TU_OK(tc_set(fx.c, TU_INT(i), TU_INT(i), i < 10 ? 5 : TC_NO_EXPIRE,
                     i % 2 ? TU_TEXT("odd") : NULL, 0));
    for (int i = 0; i < 40; i++) {
        tc_item it = TC_ITEM_INIT;
        int rc = tc_get(fx.c, TU_INT(i), &it, 0);
        cr_assert_eq(rc, TC_OK);
        tc_item_clear(&it);
    }
    tu_expect_missing(fx.c, TU_TEXT("nope"));
    TU_OK(tc_stats(fx.c, 1, 0, &h, &m));
    cr_assert(h == 40 && m == 1, "stats (%llu, %llu)", (unsigned long long)h,
              (unsigned long long)m);
    TU_OK(tc_volume(fx.c, &vol));
    cr_assert_gt(vol, 0);

    tu_clock_advance(&fx.clk, 10);
    TU_OK(tc_expire(fx.c, NAN, &n, 0));
    cr_assert_eq(n, 10);
    TU_OK(tc_evict(fx.c, TU_TEXT("odd"), &n, 0));
    cr_assert_eq(n, 15);
    TU_OK(tc_clear(fx.c, &n, 0));
    cr_assert_eq(n, 15);
    cr_assert_eq(tu_length(fx.c), 0);
}

Test(fanout, fanout_incr_and_delete)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tc_value out = TC_VALUE_INIT;
    for (int i = 0; i < 5; i++)
        TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(2), TU_INT(0), &out, 0));
    cr_assert_eq(out.i, 10);
    tc_value_clear(&out);
    cr_assert_eq(shard_of(8, "key = 'n'"), 7, "adler32('n') %% 8 == 7");
    TU_OK(tc_delete(fx.c, TU_TEXT("n"), 0));
    TU_RC(tc_delete(fx.c, TU_TEXT("n"), 0), TC_NOTFOUND);
}

Test(fanout, fanout_commit_seq_per_shard)
{
    uint64_t before[8], after[8];
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    for (int i = 0; i < 8; i++)
        TU_OK(tc_commit_seq(fx.c, i, &before[i]));
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1)); /* shard 2 */
    for (int i = 0; i < 8; i++) {
        TU_OK(tc_commit_seq(fx.c, i, &after[i]));
        if (i == 2)
            cr_assert_gt(after[i], before[i], "shard 2 bumped");
        else
            cr_assert_eq(after[i], before[i], "shard %d untouched", i);
    }
    tu_expect_int(fx.c, TU_TEXT("a"), 1);
    uint64_t again = 0;
    TU_OK(tc_commit_seq(fx.c, 2, &again));
    cr_assert_eq(again, after[2], "a read does not bump");
}

Test(fanout, fanout_check_clean)
{
    uint64_t w = 99;
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    char *v = tu_pattern(40000, 1);
    for (int i = 0; i < 16; i++)
        TU_OK(
            tc_set(fx.c, TU_INT(i), TU_BYTES(v, 40000), TC_NO_EXPIRE, NULL, 0));
    free(v);
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0);
}

/* create/drop_tag_index and reset(key, value) apply to every shard. */
Test(fanout, fanout_tag_index_and_settings_every_shard)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    TU_OK(tc_create_tag_index(fx.c));
    TU_OK(tc_setting_put(fx.c, "eviction_policy",
                         TU_TEXT("least-recently-used")));
    for (int i = 0; i < 8; i++) {
        char d[TU_PATH_MAX];
        shard_dir(i, d, sizeof d);
        cr_assert(tu_db_has_index(d, "Cache_tag_rowid"), "shard %d", i);
        cr_assert(tu_db_has_index(d, "Cache_access_time"), "shard %d", i);
        sqlite3 *db = tu_db_open(d);
        char *p = tu_db_text(db, "SELECT value FROM Settings"
                                 " WHERE key = 'eviction_policy'");
        cr_assert_str_eq(p, "least-recently-used", "shard %d", i);
        free(p);
        sqlite3_close(db);
    }
    TU_OK(tc_drop_tag_index(fx.c));
    for (int i = 0; i < 8; i++) {
        char d[TU_PATH_MAX];
        shard_dir(i, d, sizeof d);
        cr_assert(!tu_db_has_index(d, "Cache_tag_rowid"), "shard %d", i);
    }
}

/* transact() enters a transaction on every shard in order. */
Test(fanout, fanout_transact_all_shards)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tc_cache *other = open_fanout(TC_SHARDS_AUTO, NULL);
    TU_OK(tc_begin(fx.c, TC_RETRY));
    for (int i = 0; i < 16; i++)
        tu_set(fx.c, TU_INT(i), TU_INT(i));
    tu_expect_int(fx.c, TU_INT(5), 5);
    tu_expect_missing(other, TU_INT(5));
    TU_OK(tc_rollback(fx.c));
    cr_assert_eq(tu_length(fx.c), 0);
    TU_OK(tc_begin(fx.c, TC_RETRY));
    for (int i = 0; i < 16; i++)
        tu_set(fx.c, TU_INT(i), TU_INT(i));
    TU_OK(tc_commit(fx.c));
    for (int i = 0; i < 16; i++)
        tu_expect_int(other, TU_INT(i), i);
    tc_close(other);
}

Test(fanout, fanout_get_many_set_many_delete_many)
{
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tc_data keys[4] = {*TU_TEXT("a"), *TU_TEXT("b"), *TU_TEXT("c"), *TU_INT(1)};
    tc_data vals[4] = {*TU_INT(10), *TU_INT(11), *TU_INT(12), *TU_INT(13)};
    TU_OK(tc_set_many(fx.c, keys, vals, 4, TC_NO_EXPIRE, NULL, TC_RETRY));
    cr_assert_eq(shard_of(8, "key = 'a'"), 2);
    cr_assert_eq(shard_of(8, "key = 'c'"), 4);
    tc_item outs[4] = {TC_ITEM_INIT, TC_ITEM_INIT, TC_ITEM_INIT, TC_ITEM_INIT};
    int rcs[4];
    TU_OK(tc_get_many(fx.c, keys, 4, outs, rcs, 0));
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rcs[i], TC_OK);
        cr_assert_eq(outs[i].value.i, 10 + i);
        tc_item_clear(&outs[i]);
    }
    uint64_t n = 0;
    TU_OK(tc_delete_many(fx.c, keys, 3, &n, TC_RETRY));
    cr_assert_eq(n, 3);
    cr_assert_eq(tu_length(fx.c), 1);
}

static void fanout_small(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(8 * 300000)));
    TU_OK(tc_set_setting(c, "cull_limit", TU_INT(0)));
}

/* cull() runs on every shard, each against its own share of size_limit. */
Test(fanout, fanout_cull_every_shard)
{
    uint64_t n = 0, vol = 0;
    fx.c = open_fanout(TC_SHARDS_AUTO, fanout_small);
    char *v = tu_pattern(40000, 1);
    for (int i = 0; i < 120; i++)
        TU_OK(tc_set(fx.c, TU_INT(i), TU_BYTES(v, 40000), TC_NO_EXPIRE, NULL,
                     TC_RETRY));
    free(v);
    TU_OK(tc_cull(fx.c, &n, 0));
    cr_assert_gt(n, 0);
    cr_assert_eq(tu_length(fx.c), 120 - n);
    cr_assert_eq(tu_count_val_files(fx.dir), 120 - n);
    for (int i = 0; i < 8; i++) {
        char d[TU_PATH_MAX];
        shard_dir(i, d, sizeof d);
        sqlite3 *db = tu_db_open(d);
        int64_t ps = tu_db_int(db, 0, "PRAGMA page_size");
        int64_t pc = tu_db_int(db, 0, "PRAGMA page_count");
        int64_t sz =
            tu_db_int(db, 0, "SELECT value FROM Settings WHERE key = 'size'");
        sqlite3_close(db);
        cr_assert_leq(ps * pc + sz, 300000, "shard %d volume %lld", i,
                      (long long)(ps * pc + sz));
    }
    TU_OK(tc_volume(fx.c, &vol));
    cr_assert_leq(vol, 8 * 300000);
}

/* check concatenates the shards' warnings. */
Test(fanout, fanout_check_reports_every_shard)
{
    uint64_t w = 0;
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    for (int i = 3; i < 5; i++) {
        char p[TU_PATH_MAX];
        snprintf(p, sizeof p, "%s/%03d/stray", fx.dir, i);
        tu_write_file(p, "x", 1);
    }
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 2);
    TU_OK(tc_check(fx.c, 1, NULL, NULL, &w, 0));
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0);
}

/* ===================================================================== */
/* Disk.hash vectors (5.4.0)                                             */

static uint64_t hash_of(const tc_data *k)
{
    uint64_t h = 0xdeadbeef;
    TU_OK(tc_fanout_hash(k, &h));
    return h;
}

Test(fanout, fanout_hash_vectors)
{
    cr_assert_eq(hash_of(TU_TEXT("a")), 6422626);
    cr_assert_eq(hash_of(TU_BSTR("a")), 6422626);
    cr_assert_eq(hash_of(TU_TEXT("")), 1);
    cr_assert_eq(hash_of(TU_TEXT("hello")), 103547413);
    cr_assert_eq(hash_of(TU_INT(1)), 1);
    cr_assert_eq(hash_of(TU_INT(-1)), 4294967294u);
    cr_assert_eq(hash_of(TU_INT(0)), 0);
    cr_assert_eq(hash_of(TU_INT(4294967295)), 0);
    cr_assert_eq(hash_of(TU_INT(4294967296)), 1);
    cr_assert_eq(hash_of(TU_REAL(1.5)), 147325240);
    cr_assert_eq(hash_of(TU_REAL(1.0)), 143655216);
}

/* INTEGER -> key % 0xFFFFFFFF with Python's non-negative modulo. */
Test(fanout, fanout_hash_int_extremes)
{
    cr_assert_eq(hash_of(TU_INT(INT64_MAX)), (uint64_t)INT64_MAX % 0xFFFFFFFFu);
    /* Python: -2**63 % 0xFFFFFFFF */
    uint64_t m = 0xFFFFFFFFu;
    uint64_t r = ((uint64_t)1 << 63) % m; /* |x| % m */
    cr_assert_eq(hash_of(TU_INT(INT64_MIN)), r ? m - r : 0);
    cr_assert_eq(hash_of(TU_INT(INT64_MIN)), 2147483647);
    cr_assert_eq(hash_of(TU_INT(-4294967295)), 0);
}

/* A FanoutCache's default busy timeout is 10 ms. */
Test(fanout, fanout_default_timeout_10ms)
{
    struct timespec a, b;
    fx.c = open_fanout(TC_SHARDS_AUTO, NULL);
    tc_cache *other = open_fanout(TC_SHARDS_AUTO, NULL);
    TU_OK(tc_begin(fx.c, TC_RETRY));
    clock_gettime(CLOCK_MONOTONIC, &a);
    TU_RC(tc_set(other, TU_TEXT("a"), TU_INT(1), TC_NO_EXPIRE, NULL, 0),
          TC_EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double dt = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert(dt < 1.0, "EBUSY after %.3f s; expected about 0.010", dt);
    TU_OK(tc_commit(fx.c));
    TU_OK(tc_set(other, TU_TEXT("a"), TU_INT(1), TC_NO_EXPIRE, NULL, 0));
    tc_close(other);
}
