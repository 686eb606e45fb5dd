/*
 * test_ops.c - expiry, add, touch, incr/decr, pop, delete and contains
 * (diskcache-behaviour.md section 6), with a fake clock.
 */
#include "testutil.h"

static void setup(void)
{
    tu_fx_init("ops");
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(ops, .init = setup, .fini = teardown, .timeout = 60);

static int64_t rows_in_table(void)
{
    sqlite3 *db = tu_db_open(fx.dir);
    int64_t n = tu_db_int(db, -1, "SELECT COUNT(*) FROM Cache");
    sqlite3_close(db);
    return n;
}

/* Live row <=> expire_time IS NULL OR expire_time > now. */
Test(ops, cache_expire_with_injected_clock)
{
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 10, NULL, 0));
    cr_assert_eq(tc_now(fx.c), TU_T0, "tc_now follows the injected clock");
    tu_clock_set(&fx.clk, TU_T0 + 9.5);
    tu_expect_text(fx.c, TU_TEXT("k"), "v");
    TU_OK(tc_contains(fx.c, TU_TEXT("k")));
    tu_clock_set(&fx.clk, TU_T0 + 10);
    tu_expect_missing(fx.c, TU_TEXT("k"));
    TU_RC(tc_contains(fx.c, TU_TEXT("k")), TC_NOTFOUND);
    cr_assert_eq(tu_length(fx.c), 1, "expired rows still count in len()");
}

/* Zero or negative expiry stores an already-expired item; the inline cull
 * of that same set removes rows with expire_time < now (verified with
 * 5.4.0: set(expire=-5) then len() == 0), so only with cull_limit 0 does a
 * negative-expiry item stay. */
Test(ops, cache_set_nonpositive_expire_is_expired)
{
    TU_OK(tc_set(fx.c, TU_TEXT("zero"), TU_TEXT("v"), 0, NULL, 0));
    tu_expect_missing(fx.c, TU_TEXT("zero"));
    cr_assert_eq(tu_length(fx.c), 1, "expire_time == now is stored, expired");
    TU_OK(tc_set(fx.c, TU_TEXT("neg"), TU_TEXT("v"), -5, NULL, 0));
    tu_expect_missing(fx.c, TU_TEXT("neg"));
    cr_assert_eq(tu_length(fx.c), 1, "neg culled by its own set");

    TU_OK(tc_setting_put(fx.c, "cull_limit", TU_INT(0)));
    TU_OK(tc_set(fx.c, TU_TEXT("neg2"), TU_TEXT("v"), -5, NULL, 0));
    tu_expect_missing(fx.c, TU_TEXT("neg2"));
    cr_assert_eq(tu_length(fx.c), 2, "no inline cull: stored, expired");
}

Test(ops, cache_get_never_deletes_expired)
{
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 5);
    tu_expect_missing(fx.c, TU_TEXT("k"));
    cr_assert_eq(rows_in_table(), 1);
}

Test(ops, cache_add_live_vs_expired)
{
    TU_OK(tc_add(fx.c, TU_TEXT("k"), TU_TEXT("first"), 10, NULL, 0));
    TU_RC(tc_add(fx.c, TU_TEXT("k"), TU_TEXT("second"), 10, NULL, 0),
          TC_EXISTS);
    tu_expect_text(fx.c, TU_TEXT("k"), "first");
    tu_clock_advance(&fx.clk, 10);
    TU_OK(tc_add(fx.c, TU_TEXT("k"), TU_TEXT("third"), TC_NO_EXPIRE, NULL, 0));
    tu_expect_text(fx.c, TU_TEXT("k"), "third");
    cr_assert_eq(tu_length(fx.c), 1, "expired row overwritten in place");
}

Test(ops, cache_add_existing_large_leaves_no_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 1);
    tu_set(fx.c, TU_TEXT("k"), TU_INT(1));
    TU_RC(tc_add(fx.c, TU_TEXT("k"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0),
          TC_EXISTS);
    cr_assert_eq(tu_count_val_files(fx.dir), 0,
                 "the losing add's value file must be deleted");
    tu_expect_int(fx.c, TU_TEXT("k"), 1);
    free(v);
}

Test(ops, cache_touch)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 10, NULL, 0));
    tu_clock_advance(&fx.clk, 5);
    TU_OK(tc_touch(fx.c, TU_TEXT("k"), 100, 0));
    TU_OK(tc_get(fx.c, TU_TEXT("k"), &it, 0));
    cr_assert_eq(it.expire_time, TU_T0 + 105);
    tc_item_clear(&it);

    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_real(db, "SELECT store_time FROM Cache WHERE key='k'"),
                 TU_T0, "touch does not change store_time");
    sqlite3_close(db);

    TU_OK(tc_touch(fx.c, TU_TEXT("k"), TC_NO_EXPIRE, 0));
    TU_OK(tc_get(fx.c, TU_TEXT("k"), &it, 0));
    cr_assert(isinf(it.expire_time), "touch(None) clears the expiry");
    tc_item_clear(&it);
    db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_int(db, -1, "SELECT expire_time IS NULL FROM Cache"), 1);
    sqlite3_close(db);

    TU_RC(tc_touch(fx.c, TU_TEXT("missing"), 10, 0), TC_NOTFOUND);
}

Test(ops, cache_touch_expired_is_notfound)
{
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 10, NULL, 0));
    tu_clock_advance(&fx.clk, 11);
    TU_RC(tc_touch(fx.c, TU_TEXT("k"), 100, 0), TC_NOTFOUND);
    tu_expect_missing(fx.c, TU_TEXT("k"));
}

Test(ops, cache_incr_missing_with_default)
{
    tc_value out = TC_VALUE_INIT;
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(1), TU_INT(0), &out, 0));
    cr_assert_eq(out.type, TC_INT);
    cr_assert_eq(out.i, 1);
    tc_value_clear(&out);
    TU_OK(tc_incr(fx.c, TU_TEXT("m"), TU_INT(5), TU_INT(10), &out, 0));
    cr_assert_eq(out.i, 15, "default + delta");
    tc_value_clear(&out);
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(1), TU_INT(0), NULL, 0));
    tu_expect_int(fx.c, TU_TEXT("n"), 2);
}

Test(ops, cache_incr_missing_null_default_notfound)
{
    TU_RC(tc_incr(fx.c, TU_TEXT("n"), TU_INT(1), NULL, NULL, 0), TC_NOTFOUND);
    cr_assert_eq(tu_length(fx.c), 0, "nothing created");
    tu_set(fx.c, TU_TEXT("n"), TU_INT(5));
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(1), NULL, NULL, 0));
    tu_expect_int(fx.c, TU_TEXT("n"), 6);
}

Test(ops, cache_incr_expired_resets_expiry_and_tag)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_set(fx.c, TU_TEXT("n"), TU_INT(100), 10, TU_TEXT("t"), 0));
    tu_clock_advance(&fx.clk, 20);
    TU_RC(tc_incr(fx.c, TU_TEXT("n"), TU_INT(1), NULL, NULL, 0), TC_NOTFOUND);
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(1), TU_INT(0), NULL, 0));
    TU_OK(tc_get(fx.c, TU_TEXT("n"), &it, 0));
    cr_assert_eq(it.value.i, 1, "expired value is replaced by default+delta");
    cr_assert(isinf(it.expire_time), "expiry cleared");
    cr_assert_eq(it.tag.type, TC_NONE, "tag cleared");
    tc_item_clear(&it);
    cr_assert_eq(rows_in_table(), 1, "updated in place");
}

Test(ops, cache_incr_live_keeps_expiry_and_tag)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_set(fx.c, TU_TEXT("n"), TU_INT(1), 100, TU_TEXT("t"), 0));
    tu_clock_advance(&fx.clk, 1);
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(41), TU_INT(0), NULL, 0));
    TU_OK(tc_get(fx.c, TU_TEXT("n"), &it, 0));
    cr_assert_eq(it.value.i, 42);
    cr_assert_eq(it.expire_time, TU_T0 + 100, "expiry kept");
    cr_assert(tu_value_text_eq(&it.tag, "t"), "tag kept");
    tc_item_clear(&it);
}

Test(ops, cache_incr_float)
{
    tc_value out = TC_VALUE_INIT;
    tu_set(fx.c, TU_TEXT("f"), TU_REAL(1.5));
    TU_OK(tc_incr(fx.c, TU_TEXT("f"), TU_INT(2), TU_INT(0), &out, 0));
    cr_assert_eq(out.type, TC_REAL);
    cr_assert_eq(out.d, 3.5);
    tc_value_clear(&out);

    tu_set(fx.c, TU_TEXT("i"), TU_INT(1));
    TU_OK(tc_incr(fx.c, TU_TEXT("i"), TU_REAL(0.5), TU_INT(0), &out, 0));
    cr_assert_eq(out.type, TC_REAL, "int + float is a float");
    cr_assert_eq(out.d, 1.5);
    tc_value_clear(&out);

    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(fx.c, TU_TEXT("i"), &it, 0));
    cr_assert_eq(it.value.type, TC_REAL);
    cr_assert_eq(it.value.d, 1.5);
    tc_item_clear(&it);

    TU_OK(tc_incr(fx.c, TU_TEXT("new"), TU_REAL(0.25), TU_INT(0), &out, 0));
    cr_assert_eq(out.type, TC_REAL);
    cr_assert_eq(out.d, 0.25);
    tc_value_clear(&out);
}

Test(ops, cache_incr_non_number_etype)
{
    const unsigned char mp[] = {0x01};
    tu_set(fx.c, TU_TEXT("t"), TU_TEXT("12"));
    tu_set(fx.c, TU_TEXT("b"), TU_BSTR("12"));
    tu_set(fx.c, TU_TEXT("m"), TU_MSGPACK(mp, 1));
    const char *keys[] = {"t", "b", "m"};
    for (int i = 0; i < 3; i++)
        TU_RC(tc_incr(fx.c, TU_TEXT(keys[i]), TU_INT(1), TU_INT(0), NULL, 0),
              TC_ETYPE);
    tu_expect_text(fx.c, TU_TEXT("t"), "12");
    tu_expect_value(fx.c, TU_TEXT("b"), TC_BYTES, "12", 2);
}

Test(ops, cache_incr_overflow_erange)
{
    tu_set(fx.c, TU_TEXT("max"), TU_INT(INT64_MAX));
    TU_RC(tc_incr(fx.c, TU_TEXT("max"), TU_INT(1), TU_INT(0), NULL, 0),
          TC_ERANGE);
    tu_expect_int(fx.c, TU_TEXT("max"), INT64_MAX);
    tu_set(fx.c, TU_TEXT("min"), TU_INT(INT64_MIN));
    TU_RC(tc_incr(fx.c, TU_TEXT("min"), TU_INT(-1), TU_INT(0), NULL, 0),
          TC_ERANGE);
    tu_expect_int(fx.c, TU_TEXT("min"), INT64_MIN);
    TU_RC(tc_incr(fx.c, TU_TEXT("new"), TU_INT(INT64_MAX), TU_INT(1), NULL, 0),
          TC_ERANGE);
    tu_expect_missing(fx.c, TU_TEXT("new"));
}

/* decr = incr(-delta). */
Test(ops, cache_decr)
{
    tc_value out = TC_VALUE_INIT;
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(-3), TU_INT(0), &out, 0));
    cr_assert_eq(out.i, -3);
    tc_value_clear(&out);
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(-2), TU_INT(0), &out, 0));
    cr_assert_eq(out.i, -5);
    tc_value_clear(&out);
    tu_expect_int(fx.c, TU_TEXT("n"), -5);
}

Test(ops, cache_pop)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 50, TU_TEXT("t"), 0));
    tu_set(fx.c, TU_TEXT("other"), TU_INT(1));
    TU_OK(tc_pop(fx.c, TU_TEXT("k"), &it, 0));
    cr_assert(tu_value_text_eq(&it.value, "v"));
    cr_assert(tu_value_text_eq(&it.tag, "t"));
    cr_assert_eq(it.expire_time, TU_T0 + 50);
    tc_item_clear(&it);
    tu_expect_missing(fx.c, TU_TEXT("k"));
    cr_assert_eq(tu_length(fx.c), 1);
    TU_RC(tc_pop(fx.c, TU_TEXT("k"), &it, 0), TC_NOTFOUND);
    TU_OK(tc_pop(fx.c, TU_TEXT("other"), NULL, 0));
    cr_assert_eq(tu_length(fx.c), 0);
}

Test(ops, cache_pop_expired_is_notfound)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 2);
    TU_RC(tc_pop(fx.c, TU_TEXT("k"), &it, 0), TC_NOTFOUND);
}

Test(ops, cache_pop_large_removes_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 2);
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    TU_OK(tc_pop(fx.c, TU_TEXT("big"), &it, 0));
    cr_assert_eq(it.value.len, n);
    cr_assert(memcmp(it.value.ptr, v, n) == 0);
    tc_item_clear(&it);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    free(v);
}

Test(ops, cache_delete)
{
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("v"));
    TU_OK(tc_delete(fx.c, TU_TEXT("k"), 0));
    tu_expect_missing(fx.c, TU_TEXT("k"));
    TU_RC(tc_delete(fx.c, TU_TEXT("k"), 0), TC_NOTFOUND);
    cr_assert_eq(tu_length(fx.c), 0);
}

/* Expired rows count as missing for delete and are left in place. */
Test(ops, cache_delete_expired_is_notfound)
{
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 1, NULL, 0));
    tu_clock_advance(&fx.clk, 2);
    TU_RC(tc_delete(fx.c, TU_TEXT("k"), 0), TC_NOTFOUND);
    cr_assert_eq(tu_length(fx.c), 1);
    cr_assert_eq(rows_in_table(), 1);
}

Test(ops, cache_contains)
{
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("v"));
    TU_OK(tc_set(fx.c, TU_TEXT("e"), TU_TEXT("v"), 1, NULL, 0));
    TU_OK(tc_contains(fx.c, TU_TEXT("k")));
    TU_OK(tc_contains(fx.c, TU_TEXT("e")));
    TU_RC(tc_contains(fx.c, TU_TEXT("nope")), TC_NOTFOUND);
    TU_RC(tc_contains(fx.c, TU_BSTR("k")), TC_NOTFOUND);
    tu_clock_advance(&fx.clk, 1);
    TU_RC(tc_contains(fx.c, TU_TEXT("e")), TC_NOTFOUND);
}

/* incr on a live row: UPDATE Cache SET store_time = now, value = ... */
Test(ops, cache_incr_live_updates_store_time)
{
    tu_set(fx.c, TU_TEXT("n"), TU_INT(1));
    tu_clock_advance(&fx.clk, 7);
    TU_OK(tc_incr(fx.c, TU_TEXT("n"), TU_INT(1), TU_INT(0), NULL, 0));
    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_real(db, "SELECT store_time FROM Cache WHERE key='n'"),
                 TU_T0 + 7);
    cr_assert_eq(tu_db_int(db, -1, "SELECT value FROM Cache WHERE key='n'"), 2);
    sqlite3_close(db);
}
