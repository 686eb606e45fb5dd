/*
 * test_iter.c - iteration: insertion order (__iter__), reverse
 * (__reversed__) and key order (iterkeys) (diskcache-behaviour.md 6).
 */
#include "testutil.h"

static void setup(void)
{
    tu_fx_init("iter");
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(iter, .init = setup, .fini = teardown, .timeout = 60);

/* The six keys of the verified example, inserted in this order:
 * ['c', 'a', 'b', 2, 1.5, b'z']. */
static void insert_mixed(void)
{
    tu_set(fx.c, TU_TEXT("c"), TU_INT(0));
    tu_set(fx.c, TU_TEXT("a"), TU_INT(0));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(0));
    tu_set(fx.c, TU_INT(2), TU_INT(0));
    tu_set(fx.c, TU_REAL(1.5), TU_INT(0));
    tu_set(fx.c, TU_BSTR("z"), TU_INT(0));
}

/* key_str - render a key as "'t'", "b'y'", "2" or "1.5" for comparison. */
static void key_str(const tc_value *k, char *out, size_t cap)
{
    switch (k->type) {
    case TC_TEXT:
        snprintf(out, cap, "'%.*s'", (int)k->len, (const char *)k->ptr);
        break;
    case TC_BYTES:
        snprintf(out, cap, "b'%.*s'", (int)k->len, (const char *)k->ptr);
        break;
    case TC_INT:
        snprintf(out, cap, "%lld", (long long)k->i);
        break;
    case TC_REAL:
        snprintf(out, cap, "%g", k->d);
        break;
    default:
        snprintf(out, cap, "<type %d>", k->type);
    }
}

/* collect - iterate in @order into a comma-separated list of key_str. */
static void collect(int order, char *out, size_t cap)
{
    tc_iter *it = NULL;
    tc_value k = TC_VALUE_INIT;
    int rc;
    size_t used = 0;
    out[0] = 0;
    TU_OK(tc_iter_open(fx.c, order, &it));
    while ((rc = tc_iter_next(it, &k)) == TC_OK) {
        char one[64];
        key_str(&k, one, sizeof one);
        used += (size_t)snprintf(out + used, cap - used, "%s%s",
                                 used ? "," : "", one);
        cr_assert_lt(used, cap);
    }
    TU_RC(rc, TC_NOTFOUND);
    tc_value_clear(&k);
    tc_iter_close(it);
}

Test(iter, cache_iter_insertion_order)
{
    char got[512];
    insert_mixed();
    collect(TC_ITER_INSERTION, got, sizeof got);
    cr_assert_str_eq(got, "'c','a','b',2,1.5,b'z'");
}

Test(iter, cache_iter_reverse)
{
    char got[512];
    insert_mixed();
    collect(TC_ITER_INSERTION | TC_ITER_REVERSE, got, sizeof got);
    cr_assert_str_eq(got, "b'z',1.5,2,'b','a','c'");
}

/* Verified: insert order ['c','a','b',2,1.5,b'z'] -> iterkeys
 * [1.5, 2, 'a', 'b', 'c', b'z'] (numbers < text < blob). */
Test(iter, cache_iterkeys_sqlite_order)
{
    char got[512];
    insert_mixed();
    collect(TC_ITER_KEYS, got, sizeof got);
    cr_assert_str_eq(got, "1.5,2,'a','b','c',b'z'");
}

Test(iter, cache_iterkeys_reverse)
{
    char got[512];
    insert_mixed();
    collect(TC_ITER_KEYS | TC_ITER_REVERSE, got, sizeof got);
    cr_assert_str_eq(got, "b'z','c','b','a',2,1.5");
}

Test(iter, cache_iter_includes_expired)
{
    char got[512];
    tu_set(fx.c, TU_TEXT("a"), TU_INT(0));
    TU_OK(tc_set(fx.c, TU_TEXT("e"), TU_INT(0), 1, NULL, 0));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(0));
    tu_clock_advance(&fx.clk, 5);
    collect(TC_ITER_INSERTION, got, sizeof got);
    cr_assert_str_eq(got, "'a','e','b'");
    collect(TC_ITER_KEYS, got, sizeof got);
    cr_assert_str_eq(got, "'a','b','e'");
}

/* More rows than one page (100) in both orders, with deletions in the
 * middle. */
Test(iter, cache_iter_many_pages)
{
    const int n = 350;
    for (int i = 0; i < n; i++)
        tu_set(fx.c, TU_INT(n - i), TU_INT(i)); /* keys n..1 */
    for (int i = 1; i <= n; i += 7)
        TU_OK(tc_delete(fx.c, TU_INT(i), 0));

    int orders[] = {TC_ITER_INSERTION, TC_ITER_INSERTION | TC_ITER_REVERSE,
                    TC_ITER_KEYS, TC_ITER_KEYS | TC_ITER_REVERSE};
    for (int o = 0; o < 4; o++) {
        tc_iter *it = NULL;
        tc_value k = TC_VALUE_INIT;
        int64_t prev = 0, count = 0;
        /* Insertion order is descending keys; key order ascending. */
        int ascending = (o == 1 || o == 2);
        TU_OK(tc_iter_open(fx.c, orders[o], &it));
        while (tc_iter_next(it, &k) == TC_OK) {
            cr_assert_eq(k.type, TC_INT);
            cr_assert_neq(k.i % 7, 1, "deleted key %lld yielded",
                          (long long)k.i);
            if (count)
                cr_assert(ascending ? k.i > prev : k.i < prev,
                          "order %d: %lld after %lld", o, (long long)k.i,
                          (long long)prev);
            prev = k.i;
            count++;
        }
        tc_value_clear(&k);
        tc_iter_close(it);
        cr_assert_eq(count, n - (n + 6) / 7, "order %d count %lld", o,
                     (long long)count);
    }
}

/* The bound is MAX(rowid) when the iterator is created. */
Test(iter, cache_iter_bound_fixed_at_open)
{
    char got[512] = "";
    size_t used = 0;
    tc_iter *it = NULL;
    tc_value k = TC_VALUE_INIT;
    tu_set(fx.c, TU_TEXT("a"), TU_INT(0));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(0));
    TU_OK(tc_iter_open(fx.c, TC_ITER_INSERTION, &it));
    tu_set(fx.c, TU_TEXT("c"), TU_INT(0));
    while (tc_iter_next(it, &k) == TC_OK) {
        char one[64];
        key_str(&k, one, sizeof one);
        used += (size_t)snprintf(got + used, sizeof got - used, "%s%s",
                                 used ? "," : "", one);
    }
    tc_value_clear(&k);
    tc_iter_close(it);
    cr_assert_str_eq(got, "'a','b'");
}

Test(iter, cache_iter_empty)
{
    char got[64];
    collect(TC_ITER_INSERTION, got, sizeof got);
    cr_assert_str_eq(got, "");
    collect(TC_ITER_KEYS | TC_ITER_REVERSE, got, sizeof got);
    cr_assert_str_eq(got, "");
}
