/*
 * test_txn.c - transactions (transact), batches (get_many/set_many/
 * delete_many) and the per-shard commit sequence
 * (diskcache-behaviour.md section 5; tiercache.h batches).
 */
#include <time.h>

#include "testutil.h"

static void setup(void)
{
    tu_fx_init("txn");
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(txn, .init = setup, .fini = teardown, .timeout = 60);

Test(txn, cache_transact_sees_own_write_and_rollback_undoes)
{
    tu_set(fx.c, TU_TEXT("pre"), TU_INT(1));
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("in-txn"));
    tu_expect_text(fx.c, TU_TEXT("k"), "in-txn");
    TU_OK(tc_delete(fx.c, TU_TEXT("pre"), 0));
    tu_expect_missing(fx.c, TU_TEXT("pre"));
    cr_assert_eq(tu_length(fx.c), 1);
    TU_OK(tc_rollback(fx.c));
    tu_expect_missing(fx.c, TU_TEXT("k"));
    tu_expect_int(fx.c, TU_TEXT("pre"), 1);
    cr_assert_eq(tu_length(fx.c), 1);
}

Test(txn, cache_transact_commit_visible_to_other_handle)
{
    tc_cache *other = tu_open(fx.dir, &fx.clk);
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("v"));
    tu_expect_missing(other, TU_TEXT("k"));
    TU_OK(tc_commit(fx.c));
    tu_expect_text(other, TU_TEXT("k"), "v");
    tc_close(other);
}

/* Nestable: only the outermost commit commits; an outer rollback undoes
 * what the inner "commit" did. */
Test(txn, cache_transact_nested)
{
    tc_cache *other = tu_open(fx.dir, &fx.clk);
    TU_OK(tc_begin(fx.c, 0));
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("v"));
    TU_OK(tc_commit(fx.c)); /* inner */
    tu_expect_text(fx.c, TU_TEXT("k"), "v");
    tu_expect_missing(other, TU_TEXT("k"));
    TU_OK(tc_commit(fx.c)); /* outer */
    tu_expect_text(other, TU_TEXT("k"), "v");

    TU_OK(tc_begin(fx.c, 0));
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, TU_TEXT("j"), TU_TEXT("w"));
    TU_OK(tc_commit(fx.c));
    TU_OK(tc_rollback(fx.c));
    tu_expect_missing(fx.c, TU_TEXT("j"));
    tu_expect_missing(other, TU_TEXT("j"));
    tc_close(other);
}

Test(txn, cache_transact_rollback_large_value)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 1);
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    TU_OK(tc_begin(fx.c, 0));
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    tu_expect_value(fx.c, TU_TEXT("k"), TC_BYTES, v, n);
    TU_OK(tc_rollback(fx.c));
    tu_expect_int(fx.c, TU_TEXT("k"), 1);
    free(v);
}

Test(txn, cache_get_many)
{
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("b"), TU_TEXT("two"));
    TU_OK(tc_set(fx.c, TU_TEXT("e"), TU_INT(3), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 2);
    tc_data keys[4] = {*TU_TEXT("a"), *TU_TEXT("missing"), *TU_TEXT("b"),
                       *TU_TEXT("e")};
    tc_item outs[4] = {TC_ITEM_INIT, TC_ITEM_INIT, TC_ITEM_INIT, TC_ITEM_INIT};
    int rcs[4] = {99, 99, 99, 99};
    TU_OK(tc_get_many(fx.c, keys, 4, outs, rcs, 0));
    cr_assert_eq(rcs[0], TC_OK);
    cr_assert_eq(rcs[1], TC_NOTFOUND);
    cr_assert_eq(rcs[2], TC_OK);
    cr_assert_eq(rcs[3], TC_NOTFOUND, "expired item is missing");
    cr_assert_eq(outs[0].value.i, 1);
    cr_assert(tu_value_text_eq(&outs[2].value, "two"));
    for (int i = 0; i < 4; i++)
        tc_item_clear(&outs[i]);
}

Test(txn, cache_set_many)
{
    tc_data keys[3] = {*TU_TEXT("a"), *TU_INT(2), *TU_BSTR("c")};
    tc_data vals[3] = {*TU_INT(1), *TU_TEXT("two"), *TU_REAL(3.0)};
    TU_OK(tc_set_many(fx.c, keys, vals, 3, 10, TU_TEXT("tg"), 0));
    cr_assert_eq(tu_length(fx.c), 3);
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(fx.c, TU_INT(2), &it, 0));
    cr_assert(tu_value_text_eq(&it.value, "two"));
    cr_assert(tu_value_text_eq(&it.tag, "tg"));
    cr_assert_eq(it.expire_time, TU_T0 + 10);
    tc_item_clear(&it);
    tu_expect_int(fx.c, TU_TEXT("a"), 1);
}

/* All or nothing: one bad pair (invalid UTF-8 text key) stores none. */
Test(txn, cache_set_many_all_or_nothing)
{
    tc_data keys[3] = {*TU_TEXT("a"), *TU_TEXTN("\xff\xfe", 2), *TU_TEXT("c")};
    tc_data vals[3] = {*TU_INT(1), *TU_INT(2), *TU_INT(3)};
    int rc = tc_set_many(fx.c, keys, vals, 3, TC_NO_EXPIRE, NULL, 0);
    cr_assert_lt(rc, 0, "set_many with a bad key returned %s", tc_errname(rc));
    cr_assert_eq(tu_length(fx.c), 0, "nothing stored");
    tu_expect_missing(fx.c, TU_TEXT("a"));
}

Test(txn, cache_delete_many)
{
    uint64_t n = 99;
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(2));
    tu_set(fx.c, TU_TEXT("c"), TU_INT(3));
    tc_data keys[3] = {*TU_TEXT("a"), *TU_TEXT("nope"), *TU_TEXT("c")};
    TU_OK(tc_delete_many(fx.c, keys, 3, &n, 0));
    cr_assert_eq(n, 2, "deleted %llu", (unsigned long long)n);
    cr_assert_eq(tu_length(fx.c), 1);
    tu_expect_int(fx.c, TU_TEXT("b"), 2);
    TU_OK(tc_delete_many(fx.c, keys, 3, NULL, 0));
}

Test(txn, cache_commit_seq_bumps_on_write_not_read)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    TU_OK(tc_commit_seq(fx.c, 0, &s0));
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    TU_OK(tc_commit_seq(fx.c, 0, &s1));
    cr_assert_gt(s1, s0, "set bumps the sequence (%llu -> %llu)",
                 (unsigned long long)s0, (unsigned long long)s1);
    tu_expect_int(fx.c, TU_TEXT("k"), 1);
    tu_expect_missing(fx.c, TU_TEXT("x"));
    TU_OK(tc_contains(fx.c, TU_TEXT("k")));
    TU_OK(tc_commit_seq(fx.c, 0, &s2));
    cr_assert_eq(s2, s1, "reads do not bump the sequence");
    TU_OK(tc_delete(fx.c, TU_TEXT("k"), 0));
    TU_OK(tc_commit_seq(fx.c, 0, &s3));
    cr_assert_gt(s3, s2, "delete bumps the sequence");

    /* Every other kind of write bumps it too. */
    uint64_t n = 0;
    tc_data many[2] = {*TU_TEXT("m1"), *TU_TEXT("m2")};
    tc_data vals[2] = {*TU_INT(1), *TU_INT(2)};
    for (int op = 0; op < 8; op++) {
        uint64_t a = 0, b = 0;
        TU_OK(tc_commit_seq(fx.c, 0, &a));
        switch (op) {
        case 0:
            TU_OK(tc_add(fx.c, TU_TEXT("w"), TU_INT(1), 100, NULL, 0));
            break;
        case 1:
            TU_OK(tc_touch(fx.c, TU_TEXT("w"), 200, 0));
            break;
        case 2:
            TU_OK(tc_incr(fx.c, TU_TEXT("w"), TU_INT(1), NULL, NULL, 0));
            break;
        case 3:
            TU_OK(tc_pop(fx.c, TU_TEXT("w"), NULL, 0));
            break;
        case 4:
            TU_OK(tc_set_many(fx.c, many, vals, 2, TC_NO_EXPIRE, NULL, 0));
            break;
        case 5:
            TU_OK(tc_delete_many(fx.c, many, 1, NULL, 0));
            break;
        case 6:
            TU_OK(tc_push(fx.c, TU_INT(1), NULL, TC_BACK, TC_NO_EXPIRE, NULL,
                          NULL, 0));
            break;
        case 7:
            TU_OK(tc_clear(fx.c, &n, 0));
            break;
        }
        TU_OK(tc_commit_seq(fx.c, 0, &b));
        cr_assert_gt(b, a, "write op %d did not bump the sequence", op);
    }
    TU_OK(tc_commit_seq(fx.c, 0, &s3));

    /* Another handle sees the same sequence (it lives in the database). */
    tc_cache *other = tu_open(fx.dir, &fx.clk);
    TU_OK(tc_commit_seq(other, 0, &s4));
    cr_assert_eq(s4, s3);
    tu_set(other, TU_TEXT("z"), TU_INT(1));
    TU_OK(tc_commit_seq(fx.c, 0, &s4));
    cr_assert_gt(s4, s3, "a write through another handle is seen");
    tc_close(other);
}

/* A writer blocked past the busy timeout gets TC_EBUSY (python: Timeout),
 * quickly for a short timeout; after the holder commits it succeeds. */
static void short_timeout(tc_cache *c)
{
    TU_OK(tc_set_timeout(c, 0.05));
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(txn, cache_busy_timeout_ebusy)
{
    tc_cache *other =
        tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, short_timeout);
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, TU_TEXT("held"), TU_INT(1));
    double t0 = mono_now();
    TU_RC(tc_set(other, TU_TEXT("k"), TU_INT(1), TC_NO_EXPIRE, NULL, 0),
          TC_EBUSY);
    double dt = mono_now() - t0;
    cr_assert(dt >= 0.04 && dt < 2.0, "EBUSY after %.3f s (timeout 0.05)", dt);
    tu_expect_missing(other, TU_TEXT("held")); /* reads are not blocked */
    TU_OK(tc_commit(fx.c));
    TU_OK(tc_set(other, TU_TEXT("k"), TU_INT(1), TC_NO_EXPIRE, NULL, 0));
    tc_close(other);
}

Test(txn, cache_set_timeout_rejects_negative)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_RC(tc_set_timeout(c, -1), TC_EINVAL);
    tc_close(c);
}
