/*
 * test_eviction.c - the four eviction policies pick the right victims
 * (diskcache-behaviour.md section 3, EVICTION_POLICY; section 6, cull).
 *
 * Every test stores 20 file-backed values of 100000 bytes (keys 0..19,
 * store_time T0+i) with cull_limit 0 (no inline culling) and size_limit
 * 1500000, then reads with the fake clock in two phases:
 *   phase A (T0+100...): get 10..14 once;
 *   phase B (T0+200...): get 0..9 once.
 * That gives each policy a different victim order:
 *   least-recently-stored: 0..19 (store_time)
 *   least-recently-used:   15..19, 10..14, 0..9 (access_time)
 *   least-frequently-used: 15..19 (0 accesses), then 0..14 (1 access,
 *                          ties in rowid order as the (access_count) index
 *                          returns them)
 *   none:                  nothing is evicted by size.
 * tc_cull removes rows in that order until volume() <= size_limit (about
 * 6 are needed; python-diskcache deletes in batches of 10), so the removed
 * keys must be exactly a prefix of the policy's order.
 */
#include "testutil.h"

#define N_ITEMS    20
#define ITEM_BYTES 100000
#define LIMIT      1500000

static const char *policy;

static void setup(void)
{
    tu_fx_init("evict");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(eviction, .init = setup, .fini = teardown, .timeout = 90);

static void configure(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "cull_limit", TU_INT(0)));
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(LIMIT)));
    TU_OK(tc_set_setting(c, "eviction_policy", TU_TEXT(policy)));
}

static void fill_and_access(void)
{
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, configure);
    char *v = tu_pattern(ITEM_BYTES, 1);
    for (int i = 0; i < N_ITEMS; i++) {
        tu_clock_set(&fx.clk, TU_T0 + i);
        TU_OK(tc_set(fx.c, TU_INT(i), TU_BYTES(v, ITEM_BYTES), TC_NO_EXPIRE,
                     NULL, 0));
    }
    free(v);
    for (int i = 10; i < 15; i++) {
        tu_clock_set(&fx.clk, TU_T0 + 100 + i);
        TU_OK(tc_contains(fx.c, TU_INT(i))); /* contains is not an access */
        tc_item it = TC_ITEM_INIT;
        TU_OK(tc_get(fx.c, TU_INT(i), &it, 0));
        tc_item_clear(&it);
    }
    for (int i = 0; i < 10; i++) {
        tc_item it = TC_ITEM_INIT;
        tu_clock_set(&fx.clk, TU_T0 + 200 + i);
        TU_OK(tc_get(fx.c, TU_INT(i), &it, 0));
        tc_item_clear(&it);
    }
    tu_clock_set(&fx.clk, TU_T0 + 300);
    cr_assert_eq(tu_length(fx.c), N_ITEMS, "cull_limit 0: nothing culled yet");
}

/* cull_and_check - run tc_cull and assert the removed keys are exactly the
 * first n of @order (n = the count returned). */
static void cull_and_check(const int order[N_ITEMS])
{
    uint64_t n = 0, vol = 0;
    TU_OK(tc_cull(fx.c, &n, 0));
    TU_OK(tc_volume(fx.c, &vol));
    cr_log_info("%s: cull removed %llu, volume %llu", policy,
                (unsigned long long)n, (unsigned long long)vol);
    cr_assert_leq(vol, LIMIT, "volume %llu over size_limit after cull",
                  (unsigned long long)vol);
    cr_assert(n >= 5 && n <= 10, "cull removed %llu", (unsigned long long)n);
    for (int pos = 0; pos < N_ITEMS; pos++) {
        int key = order[pos];
        int rc = tc_contains(fx.c, TU_INT(key));
        if ((uint64_t)pos < n)
            cr_assert_eq(rc, TC_NOTFOUND,
                         "%s: key %d (victim #%d) should be culled", policy,
                         key, pos);
        else
            cr_assert_eq(rc, TC_OK, "%s: key %d (position %d) culled wrongly",
                         policy, key, pos);
    }
    cr_assert_eq(tu_length(fx.c), N_ITEMS - n);
    cr_assert_eq(tu_count_val_files(fx.dir), N_ITEMS - n,
                 "culled items' files removed");
}

Test(eviction, cache_cull_least_recently_stored)
{
    static const int order[N_ITEMS] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                       10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
    policy = "least-recently-stored";
    fill_and_access();
    cull_and_check(order);
}

Test(eviction, cache_cull_least_recently_used)
{
    static const int order[N_ITEMS] = {15, 16, 17, 18, 19, 10, 11, 12, 13, 14,
                                       0,  1,  2,  3,  4,  5,  6,  7,  8,  9};
    policy = "least-recently-used";
    fill_and_access();
    cull_and_check(order);
}

Test(eviction, cache_cull_least_frequently_used)
{
    static const int order[N_ITEMS] = {15, 16, 17, 18, 19, 0,  1,  2,  3,  4,
                                       5,  6,  7,  8,  9,  10, 11, 12, 13, 14};
    policy = "least-frequently-used";
    fill_and_access();
    cull_and_check(order);
}

/* Policy none never evicts by size; expired rows are still removed. */
Test(eviction, cache_cull_none)
{
    uint64_t n = 99;
    policy = "none";
    fill_and_access();
    TU_OK(tc_set(fx.c, TU_TEXT("exp"), TU_INT(1), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 5);
    TU_OK(tc_cull(fx.c, &n, 0));
    cr_assert_eq(n, 1, "only the expired item; got %llu",
                 (unsigned long long)n);
    cr_assert_eq(tu_length(fx.c), N_ITEMS);
    cr_assert_eq(tu_count_val_files(fx.dir), N_ITEMS);
}

/* LRU reads update access_time to the clock's now (in SQLite, at the
 * latest when culling needs it). Checked after a cull that folds it in. */
Test(eviction, cache_lru_get_updates_access_time)
{
    uint64_t n = 0;
    policy = "least-recently-used";
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, configure);
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    tu_clock_set(&fx.clk, TU_T0 + 50);
    tu_expect_int(fx.c, TU_TEXT("k"), 1);
    TU_OK(tc_cull(fx.c, &n, 0));
    cr_assert_eq(n, 0);
    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_real(db, "SELECT access_time FROM Cache"), TU_T0 + 50);
    cr_assert_eq(tu_db_real(db, "SELECT store_time FROM Cache"), TU_T0);
    sqlite3_close(db);
}

Test(eviction, cache_lfu_get_counts_accesses)
{
    uint64_t n = 0;
    policy = "least-frequently-used";
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, configure);
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    for (int i = 0; i < 3; i++)
        tu_expect_int(fx.c, TU_TEXT("k"), 1);
    TU_OK(tc_cull(fx.c, &n, 0));
    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_int(db, -1, "SELECT access_count FROM Cache"), 3);
    sqlite3_close(db);
}

static void configure_inline_cull(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "cull_limit", TU_INT(10)));
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(LIMIT)));
    TU_OK(tc_set_setting(c, "eviction_policy", TU_TEXT(policy)));
}

/* set_many culls each shard once at the end of the batch with cull_limit
 * per item written: the cache ends bounded as per-item sets would leave
 * it, the oldest items are the victims, expired rows go first, and every
 * victim's file is removed. */
Test(eviction, cache_set_many_culls_once_per_batch)
{
    enum { BATCH = 40 };
    tc_data keys[BATCH], vals[BATCH];
    int64_t ids[BATCH];
    uint64_t vol = 0;
    policy = "least-recently-stored";
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, configure_inline_cull);
    TU_OK(tc_set(fx.c, TU_TEXT("expiring"), TU_INT(1), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 5);
    char *v = tu_pattern(ITEM_BYTES, 2);
    for (int i = 0; i < BATCH; i++) {
        ids[i] = i;
        keys[i] = (tc_data){&ids[i], 8, TC_INT};
        vals[i] = (tc_data){v, ITEM_BYTES, TC_BYTES};
    }
    TU_OK(tc_set_many(fx.c, keys, vals, BATCH, TC_NO_EXPIRE, NULL, 0));
    free(v);
    TU_OK(tc_volume(fx.c, &vol));
    cr_assert_leq(vol, LIMIT, "volume %llu over size_limit after set_many",
                  (unsigned long long)vol);
    cr_assert_eq(tc_contains(fx.c, TU_TEXT("expiring")), TC_NOTFOUND);
    int64_t left = tu_length(fx.c);
    cr_assert(left > 0 && left < BATCH, "%lld items left", (long long)left);
    for (int i = 0; i < BATCH; i++)
        cr_assert_eq(tc_contains(fx.c, TU_INT(i)),
                     i < BATCH - left ? TC_NOTFOUND : TC_OK,
                     "key %d: the oldest items are culled first", i);
    cr_assert_eq(tu_count_val_files(fx.dir), left, "victims' files removed");
}

/* With the hot tier, gets of published items never reach SQLite; their
 * accesses are recorded in the segment and folded into access_time /
 * access_count before culling (DESIGN-BRIEF 9.4). Read half of the keys
 * only through hot hits, cull, and the unread half must be the victims. */
static void hot_half_read(const char *pol)
{
    enum { N = 20 };
    uint64_t n = 0, vol = 0;
    tc_hot_stats before, after;
    policy = pol;
    fx.c = tu_open_hot(fx.dir, TC_SHARDS_PLAIN, &fx.clk, TU_HOT_SIZE);
    TU_OK(tc_setting_put(fx.c, "cull_limit", TU_INT(0)));
    TU_OK(tc_setting_put(fx.c, "size_limit", TU_INT(LIMIT)));
    TU_OK(tc_setting_put(fx.c, "eviction_policy", TU_TEXT(pol)));
    char *v = tu_pattern(ITEM_BYTES / 8, 3); /* inline values: hot-sized */
    for (int i = 0; i < N; i++) {
        tu_clock_set(&fx.clk, TU_T0 + i);
        TU_OK(tc_set(fx.c, TU_INT(i), TU_BYTES(v, ITEM_BYTES / 8), TC_NO_EXPIRE,
                     NULL, 0));
    }
    free(v);
    TU_OK(tc_hot_stats_get(fx.c, &before));
    cr_assert(before.attached, "no segment");
    /* Read the even keys (LFU: three times each), later than every store. */
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < N; i += 2) {
            tc_item it = TC_ITEM_INIT;
            tu_clock_set(&fx.clk, TU_T0 + 100 + r * 10 + i);
            TU_OK(tc_get(fx.c, TU_INT(i), &it, 0));
            tc_item_clear(&it);
        }
    TU_OK(tc_hot_stats_get(fx.c, &after));
    cr_assert_eq(after.hits - before.hits, 3 * N / 2,
                 "every read must be a hot hit (got %llu)",
                 (unsigned long long)(after.hits - before.hits));
    /* SQLite has not seen them yet. */
    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_int(db, -1, "SELECT max(access_count) FROM Cache"), 0);
    cr_assert_lt(tu_db_real(db, "SELECT max(access_time) FROM Cache"),
                 TU_T0 + 100);
    sqlite3_close(db);
    /* Shrink the limit so that about half must go, then cull. */
    TU_OK(tc_volume(fx.c, &vol));
    TU_OK(tc_setting_put(fx.c, "size_limit", TU_INT((int64_t)vol - 1)));
    tu_clock_set(&fx.clk, TU_T0 + 300);
    TU_OK(tc_cull(fx.c, &n, 0));
    cr_assert(n >= 1, "cull removed nothing");
    for (int i = 0; i < N; i++)
        if (i % 2 == 0)
            cr_assert_eq(tc_contains(fx.c, TU_INT(i)), TC_OK,
                         "%s: read key %d was culled", pol, i);
    db = tu_db_open(fx.dir);
    if (!strcmp(pol, "least-frequently-used"))
        cr_assert_eq(
            tu_db_int(db, -1, "SELECT access_count FROM Cache WHERE key = 0"),
            3, "LFU count folded from the hot tier");
    else
        cr_assert_geq(tu_db_real(db, "SELECT access_time FROM Cache"
                                     " WHERE key = 0"),
                      TU_T0 + 100, "LRU time folded from the hot tier");
    sqlite3_close(db);
}

Test(eviction, cache_hot_hits_fold_into_lru)
{
    hot_half_read("least-recently-used");
}

Test(eviction, cache_hot_hits_fold_into_lfu)
{
    hot_half_read("least-frequently-used");
}
