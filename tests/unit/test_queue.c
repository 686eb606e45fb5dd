/*
 * test_queue.c - push/pull/peek queues and peekitem
 * (diskcache-behaviour.md section 6: push, pull, peek, peekitem).
 */
#include "testutil.h"

static void setup(void)
{
    tu_fx_init("queue");
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 60);

static void push_int(int64_t v, const char *prefix, int side, double expire,
                     tc_value *key)
{
    TU_OK(tc_push(fx.c, TU_INT(v), prefix, side, expire, NULL, key, 0));
}

static void expect_int_key(const tc_value *k, int64_t want)
{
    cr_assert_eq(k->type, TC_INT, "key type %d, expected TC_INT", k->type);
    cr_assert_eq(k->i, want, "key %lld, expected %lld", (long long)k->i,
                 (long long)want);
}

static void expect_text_key(const tc_value *k, const char *want)
{
    cr_assert(tu_value_text_eq(k, want), "key type %d '%.*s', expected '%s'",
              k->type, (int)k->len, k->ptr ? (const char *)k->ptr : "", want);
}

/* pull_expect - pull from @side and expect an int key and an int value. */
static void pull_expect(const char *prefix, int side, int64_t value)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_pull(fx.c, prefix, side, &it, 0));
    cr_assert_eq(it.value.type, TC_INT);
    cr_assert_eq(it.value.i, value, "pulled %lld, expected %lld",
                 (long long)it.value.i, (long long)value);
    tc_item_clear(&it);
}

Test(queue, cache_push_int_key_numbering)
{
    tc_value k = TC_VALUE_INIT;
    push_int(1, NULL, TC_BACK, TC_NO_EXPIRE, &k);
    expect_int_key(&k, 500000000000000);
    tc_value_clear(&k);
    push_int(2, NULL, TC_BACK, TC_NO_EXPIRE, &k);
    expect_int_key(&k, 500000000000001);
    tc_value_clear(&k);
    push_int(3, NULL, TC_FRONT, TC_NO_EXPIRE, &k);
    expect_int_key(&k, 499999999999999);
    tc_value_clear(&k);
    /* The pushed items are ordinary keys. */
    tu_expect_int(fx.c, TU_INT(500000000000001), 2);
    cr_assert_eq(tu_length(fx.c), 3);
}

/* python: a REAL key at the end of the range numbers the next push from
 * it, as a REAL (4.5 -> 5.5 at the back, 3.5 at the front). */
Test(queue, cache_push_after_a_real_key)
{
    double f = 4.5;
    tc_data fk = tc_real(&f), v = tc_text("f");
    cr_assert_eq(tc_set(fx.c, &fk, &v, TC_NO_EXPIRE, NULL, 0), TC_OK);
    tc_value k = TC_VALUE_INIT;
    push_int(1, NULL, TC_BACK, TC_NO_EXPIRE, &k);
    cr_assert_eq(k.type, TC_REAL);
    cr_assert_eq(k.d, 5.5);
    tc_value_clear(&k);
    push_int(2, NULL, TC_FRONT, TC_NO_EXPIRE, &k);
    cr_assert_eq(k.type, TC_REAL);
    cr_assert_eq(k.d, 3.5);
    tc_value_clear(&k);
}

Test(queue, cache_push_prefix_text_keys)
{
    tc_value k = TC_VALUE_INIT;
    push_int(1, "q", TC_BACK, TC_NO_EXPIRE, &k);
    expect_text_key(&k, "q-500000000000000");
    tc_value_clear(&k);
    push_int(2, "q", TC_BACK, TC_NO_EXPIRE, &k);
    expect_text_key(&k, "q-500000000000001");
    tc_value_clear(&k);
    push_int(3, "q", TC_FRONT, TC_NO_EXPIRE, &k);
    expect_text_key(&k, "q-499999999999999");
    tc_value_clear(&k);
    tu_expect_int(fx.c, TU_TEXT("q-500000000000000"), 1);
    /* Other prefixes and the integer queue are separate queues. */
    push_int(4, "r", TC_BACK, TC_NO_EXPIRE, &k);
    expect_text_key(&k, "r-500000000000000");
    tc_value_clear(&k);
    push_int(5, NULL, TC_BACK, TC_NO_EXPIRE, &k);
    expect_int_key(&k, 500000000000000);
    tc_value_clear(&k);
}

Test(queue, cache_pull_front_and_back)
{
    push_int(1, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(2, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(0, NULL, TC_FRONT, TC_NO_EXPIRE, NULL);
    tu_set(fx.c, TU_TEXT("not-a-queue-item"), TU_INT(99));

    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_pull(fx.c, NULL, TC_FRONT, &it, 0));
    expect_int_key(&it.key, 499999999999999);
    cr_assert_eq(it.value.i, 0);
    tc_item_clear(&it);
    TU_OK(tc_pull(fx.c, NULL, TC_BACK, &it, 0));
    expect_int_key(&it.key, 500000000000001);
    cr_assert_eq(it.value.i, 2);
    tc_item_clear(&it);
    pull_expect(NULL, TC_FRONT, 1);
    TU_RC(tc_pull(fx.c, NULL, TC_FRONT, &it, 0), TC_NOTFOUND);
    TU_RC(tc_pull(fx.c, NULL, TC_BACK, &it, 0), TC_NOTFOUND);
    cr_assert_eq(tu_length(fx.c), 1, "only the non-queue key is left");
}

Test(queue, cache_pull_with_prefix)
{
    push_int(10, "q", TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(11, "q", TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(20, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(30, "p", TC_BACK, TC_NO_EXPIRE, NULL);

    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_pull(fx.c, "q", TC_BACK, &it, 0));
    expect_text_key(&it.key, "q-500000000000001");
    cr_assert_eq(it.value.i, 11);
    tc_item_clear(&it);
    pull_expect("q", TC_FRONT, 10);
    TU_RC(tc_pull(fx.c, "q", TC_FRONT, &it, 0), TC_NOTFOUND);
    pull_expect("p", TC_FRONT, 30);
    pull_expect(NULL, TC_FRONT, 20);
}

Test(queue, cache_peek_front_and_back)
{
    push_int(1, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(2, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_peek(fx.c, NULL, TC_FRONT, &it, 0));
    expect_int_key(&it.key, 500000000000000);
    cr_assert_eq(it.value.i, 1);
    tc_item_clear(&it);
    TU_OK(tc_peek(fx.c, NULL, TC_BACK, &it, 0));
    expect_int_key(&it.key, 500000000000001);
    cr_assert_eq(it.value.i, 2);
    tc_item_clear(&it);
    cr_assert_eq(tu_length(fx.c), 2, "peek leaves items in place");

    push_int(7, "q", TC_BACK, TC_NO_EXPIRE, NULL);
    TU_OK(tc_peek(fx.c, "q", TC_BACK, &it, 0));
    expect_text_key(&it.key, "q-500000000000000");
    tc_item_clear(&it);
    TU_RC(tc_peek(fx.c, "none", TC_BACK, &it, 0), TC_NOTFOUND);
}

Test(queue, cache_pull_returns_expire_and_tag)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(
        tc_push(fx.c, TU_TEXT("v"), NULL, TC_BACK, 60, TU_TEXT("tg"), NULL, 0));
    TU_OK(tc_pull(fx.c, NULL, TC_FRONT, &it, 0));
    cr_assert(tu_value_text_eq(&it.value, "v"));
    cr_assert(tu_value_text_eq(&it.tag, "tg"));
    cr_assert_eq(it.expire_time, TU_T0 + 60);
    tc_item_clear(&it);
}

Test(queue, cache_pull_skips_and_deletes_expired)
{
    push_int(1, NULL, TC_BACK, 5, NULL);
    push_int(2, NULL, TC_BACK, 5, NULL);
    push_int(3, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(4, NULL, TC_BACK, 5, NULL);
    tu_clock_advance(&fx.clk, 10);
    pull_expect(NULL, TC_FRONT, 3);
    cr_assert_eq(tu_length(fx.c), 1,
                 "the two expired items met at the front were deleted");
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_pull(fx.c, NULL, TC_BACK, &it, 0), TC_NOTFOUND);
    cr_assert_eq(tu_length(fx.c), 0);
}

Test(queue, cache_peek_skips_and_deletes_expired)
{
    push_int(1, NULL, TC_BACK, 5, NULL);
    push_int(2, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    push_int(3, NULL, TC_BACK, 5, NULL);
    tu_clock_advance(&fx.clk, 10);
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_peek(fx.c, NULL, TC_FRONT, &it, 0));
    cr_assert_eq(it.value.i, 2);
    tc_item_clear(&it);
    cr_assert_eq(tu_length(fx.c), 2, "expired front item deleted by peek");
    TU_OK(tc_peek(fx.c, NULL, TC_BACK, &it, 0));
    cr_assert_eq(it.value.i, 2);
    tc_item_clear(&it);
    cr_assert_eq(tu_length(fx.c), 1, "expired back item deleted by peek");
}

Test(queue, cache_pull_large_value_removes_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 1);
    TU_OK(tc_push(fx.c, TU_BYTES(v, n), NULL, TC_BACK, TC_NO_EXPIRE, NULL, NULL,
                  0));
    cr_assert_eq(tu_count_val_files(fx.dir), 1);
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_pull(fx.c, NULL, TC_FRONT, &it, 0));
    cr_assert_eq(it.value.len, n);
    cr_assert(memcmp(it.value.ptr, v, n) == 0);
    tc_item_clear(&it);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    free(v);
}

Test(queue, cache_peekitem_last_and_first)
{
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_peekitem(fx.c, 1, &it, 0), TC_NOTFOUND);
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(2));
    tu_set(fx.c, TU_TEXT("c"), TU_INT(3));
    tu_set(fx.c, TU_TEXT("a"), TU_INT(4)); /* keeps its rowid */
    TU_OK(tc_peekitem(fx.c, 1, &it, 0));
    expect_text_key(&it.key, "c");
    cr_assert_eq(it.value.i, 3);
    tc_item_clear(&it);
    TU_OK(tc_peekitem(fx.c, 0, &it, 0));
    expect_text_key(&it.key, "a");
    cr_assert_eq(it.value.i, 4);
    tc_item_clear(&it);
    cr_assert_eq(tu_length(fx.c), 3, "peekitem removes nothing live");
}

Test(queue, cache_peekitem_deletes_expired)
{
    tc_item it = TC_ITEM_INIT;
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    TU_OK(tc_set(fx.c, TU_TEXT("b"), TU_INT(2), 5, NULL, 0));
    TU_OK(tc_set(fx.c, TU_TEXT("c"), TU_INT(3), 5, NULL, 0));
    tu_clock_advance(&fx.clk, 10);
    TU_OK(tc_peekitem(fx.c, 1, &it, 0));
    expect_text_key(&it.key, "a");
    tc_item_clear(&it);
    cr_assert_eq(tu_length(fx.c), 1, "expired rows met were deleted");
}

/* The next number is found +/- 1 from the existing keys in range. */
Test(queue, cache_push_continues_from_existing_keys)
{
    tc_value k = TC_VALUE_INIT;
    tu_set(fx.c, TU_INT(600000000000000), TU_INT(0));
    tu_set(fx.c, TU_INT(7), TU_INT(0));
    push_int(1, NULL, TC_BACK, TC_NO_EXPIRE, &k);
    expect_int_key(&k, 600000000000001);
    tc_value_clear(&k);
    push_int(2, NULL, TC_FRONT, TC_NO_EXPIRE, &k);
    expect_int_key(&k, 6);
    tc_value_clear(&k);
    tu_set(fx.c, TU_TEXT("q-000000000000123"), TU_INT(0));
    push_int(3, "q", TC_FRONT, TC_NO_EXPIRE, &k);
    expect_text_key(&k, "q-000000000000122");
    tc_value_clear(&k);
}

/* pull: a value whose file vanished is skipped (IOError -> repeat). */
Test(queue, cache_pull_skips_vanished_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 2);
    TU_OK(tc_push(fx.c, TU_BYTES(v, n), NULL, TC_BACK, TC_NO_EXPIRE, NULL, NULL,
                  0));
    push_int(2, NULL, TC_BACK, TC_NO_EXPIRE, NULL);
    free(v);
    sqlite3 *db = tu_db_open(fx.dir);
    char *rel = tu_db_text(db, "SELECT filename FROM Cache"
                               " WHERE filename IS NOT NULL");
    sqlite3_close(db);
    cr_assert_not_null(rel);
    char path[TU_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", fx.dir, rel);
    free(rel);
    cr_assert_eq(unlink(path), 0);
    pull_expect(NULL, TC_FRONT, 2);
    cr_assert_eq(tu_length(fx.c), 0);
}
