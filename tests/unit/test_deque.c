/*
 * test_deque.c - the persistent Deque (diskcache-behaviour.md section 9,
 * persistent.py's Deque): push/pop/peek at both ends, maxlen, indexed
 * access, count/remove, reverse/rotate, trim, clear, and the storage
 * python reads (integer keys around 500000000000000, in key order).
 * The last tests fork processes to check that each call is atomic.
 */
#include "testutil.h"

#define START 500000000000000LL

static tc_cache *open_deque(const char *dir)
{
    /* Create the directory with a small hot tier first (the size is
     * recorded at creation), so many test caches fit in /dev/shm. */
    tc_close(tu_open_hot(dir, TC_SHARDS_PLAIN, NULL, TU_HOT_SIZE));
    tc_cache *c = NULL;
    TU_OK(tc_deque_open(&c, dir, 0));
    cr_assert_not_null(c);
    return c;
}

static void setup(void)
{
    tu_fx_init("deque");
    fx.c = open_deque(fx.dir);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(deque, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ----------------------------------------------------------- */

static void push(const char *s, int side)
{
    TU_OK(tc_deque_push(fx.c, TU_TEXT(s), side, -1));
}

/* Append each comma-separated word of @list at the back. */
static void push_all(const char *list)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w;
         w = strtok_r(NULL, ",", &save))
        push(w, TC_BACK);
}

/* The deque's contents through indexed reads: text values joined by ','
 * (integers as "#n", reals as "%g", other types as "?"). */
static const char *contents(tc_cache *c)
{
    static char out[8192];
    uint64_t n = 0;
    size_t used = 0;

    out[0] = 0;
    TU_OK(tc_deque_len(c, &n));
    for (uint64_t i = 0; i < n; i++) {
        tc_value v = TC_VALUE_INIT;
        TU_OK(tc_deque_get(c, (int64_t)i, &v));
        const char *sep = i ? "," : "";
        if (v.type == TC_TEXT)
            used += snprintf(out + used, sizeof out - used, "%s%s", sep,
                             (char *)v.ptr);
        else if (v.type == TC_INT)
            used += snprintf(out + used, sizeof out - used, "%s#%lld", sep,
                             (long long)v.i);
        else if (v.type == TC_REAL)
            used += snprintf(out + used, sizeof out - used, "%s%g", sep, v.d);
        else
            used += snprintf(out + used, sizeof out - used, "%s?", sep);
        tc_value_clear(&v);
    }
    return out;
}

#define EXPECT(want)                                                         \
    do {                                                                     \
        const char *got_ = contents(fx.c);                                   \
        cr_assert_str_eq(got_, (want), "deque is [%s], expected [%s]", got_, \
                         (want));                                            \
    } while (0)

/* The keys, as offsets from 500000000000000, read with sqlite3 the way
 * python's iterkeys does (key order). */
static const char *keys_of(const char *dir)
{
    static char out[4096];
    sqlite3 *db = tu_db_open(dir);
    char *s = tu_db_text(db, "SELECT group_concat(k, ',') FROM (SELECT"
                             " key - 500000000000000 AS k FROM Cache"
                             " ORDER BY key, raw)");
    sqlite3_close(db);
    snprintf(out, sizeof out, "%s", s ? s : "");
    free(s);
    return out;
}

#define EXPECT_KEYS(want)                                                    \
    do {                                                                     \
        const char *got_ = keys_of(fx.dir);                                  \
        cr_assert_str_eq(got_, (want), "keys are [%s], expected [%s]", got_, \
                         (want));                                            \
    } while (0)

static void expect_pop(int side, const char *want)
{
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_deque_pop(fx.c, side, &v));
    cr_assert(tu_value_text_eq(&v, want), "popped '%s', expected '%s'",
              v.type == TC_TEXT ? (char *)v.ptr : "?", want);
    tc_value_clear(&v);
}

static uint64_t count_text(const char *s)
{
    uint64_t n = 99;
    TU_OK(tc_deque_count(fx.c, TU_TEXT(s), &n));
    return n;
}

/* ---- open -------------------------------------------------------------- */

Test(deque, open_is_a_plain_cache_that_never_culls)
{
    tc_value v = TC_VALUE_INIT;
    cr_assert_eq(tc_shard_count(fx.c), 0);
    TU_OK(tc_setting_get(fx.c, "eviction_policy", &v));
    cr_assert(tu_value_text_eq(&v, "none"));
    tc_value_clear(&v);
    /* Persisted: a later plain open sees it. */
    tc_cache *c = tu_open(fx.dir, NULL);
    TU_OK(tc_setting_get(c, "eviction_policy", &v));
    cr_assert(tu_value_text_eq(&v, "none"));
    tc_value_clear(&v);
    tc_close(c);
}

Test(deque, open_refuses_a_fanout_cache_and_bad_arguments)
{
    char dir[TU_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/fan", fx.base);
    tc_close(tu_open_ex(dir, 2, NULL, NULL));
    tc_cache *c = (tc_cache *)&c; /* must be reset to NULL */
    TU_RC(tc_deque_open(&c, dir, 0), TC_EINVAL);
    cr_assert_null(c);
    TU_RC(tc_deque_open(NULL, dir, 0), TC_EINVAL);
    /* The deque calls refuse a FanoutCache handle opened another way. */
    c = tu_open_ex(dir, 2, NULL, NULL);
    TU_RC(tc_deque_push(c, TU_TEXT("x"), TC_BACK, -1), TC_EINVAL);
    cr_assert(strstr(tc_errmsg(), "tc_deque_push"), "%s", tc_errmsg());
    tc_close(c);
    tc_hot_drop(dir);
}

Test(deque, closed_or_null_handle)
{
    uint64_t n;
    TU_RC(tc_deque_len(NULL, &n), TC_ECLOSED);
    TU_RC(tc_deque_push(NULL, TU_TEXT("x"), TC_BACK, -1), TC_ECLOSED);
    cr_assert(strstr(tc_errmsg(), "tc_deque_push"), "%s", tc_errmsg());
    TU_RC(tc_deque_rotate(NULL, 1), TC_ECLOSED);
}

/* ---- ends -------------------------------------------------------------- */

Test(deque, push_pop_peek_both_ends_with_python_keys)
{
    push("a", TC_BACK);
    push("b", TC_BACK);
    push("z", TC_FRONT);
    EXPECT("z,a,b");
    EXPECT_KEYS("-1,0,1");
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_deque_peek(fx.c, TC_BACK, &v));
    cr_assert(tu_value_text_eq(&v, "b"));
    TU_OK(tc_deque_peek(fx.c, TC_FRONT, &v));
    cr_assert(tu_value_text_eq(&v, "z"));
    tc_value_clear(&v);
    expect_pop(TC_BACK, "b");
    expect_pop(TC_FRONT, "z");
    expect_pop(TC_FRONT, "a");
    TU_RC(tc_deque_pop(fx.c, TC_FRONT, &v), TC_NOTFOUND);
    TU_RC(tc_deque_pop(fx.c, TC_BACK, NULL), TC_NOTFOUND);
    TU_RC(tc_deque_peek(fx.c, TC_BACK, &v), TC_NOTFOUND);
    cr_assert_eq(v.type, TC_NONE, "untouched on NOTFOUND");
    /* Empty again: numbering restarts at 500000000000000, as python. */
    push("c", TC_FRONT);
    EXPECT_KEYS("0");
}

Test(deque, bad_side_and_bad_values)
{
    TU_RC(tc_deque_push(fx.c, TU_TEXT("x"), 7, -1), TC_EINVAL);
    cr_assert(strstr(tc_errmsg(), "tc_deque_push: side"), "%s", tc_errmsg());
    TU_RC(tc_deque_pop(fx.c, -1, NULL), TC_EINVAL);
    TU_RC(tc_deque_peek(fx.c, 2, NULL), TC_EINVAL);
    TU_RC(tc_deque_trim(fx.c, 1, 5), TC_EINVAL);
    tc_data bad = {NULL, 0, TC_NONE};
    TU_RC(tc_deque_push(fx.c, &bad, TC_BACK, -1), TC_EINVAL);
    cr_assert(strstr(tc_errmsg(), "tc_deque_push: value"), "%s", tc_errmsg());
    TU_RC(tc_deque_push(fx.c, TU_REAL(NAN), TC_BACK, -1), TC_EINVAL);
    TU_RC(tc_deque_push(fx.c, TU_TEXTN("\xff", 1), TC_BACK, -1), TC_EINVAL);
    tc_data two[2] = {*TU_TEXT("ok"), bad};
    TU_RC(tc_deque_extend(fx.c, two, 2, TC_BACK, -1), TC_EINVAL);
    cr_assert(strstr(tc_errmsg(), "tc_deque_extend"), "%s", tc_errmsg());
    TU_RC(tc_deque_extend(fx.c, NULL, 2, TC_BACK, -1), TC_EINVAL);
    TU_RC(tc_deque_count(fx.c, &bad, NULL), TC_EINVAL);
    TU_RC(tc_deque_remove(fx.c, &bad), TC_EINVAL);
    TU_RC(tc_deque_set(fx.c, 0, &bad), TC_EINVAL);
    cr_assert_eq(tu_length(fx.c), 0, "nothing was stored");
}

Test(deque, extend_and_extendleft)
{
    tc_data vals[3] = {*TU_TEXT("a"), *TU_TEXT("b"), *TU_TEXT("c")};
    TU_OK(tc_deque_extend(fx.c, vals, 3, TC_BACK, -1));
    TU_OK(tc_deque_extend(fx.c, vals, 3, TC_FRONT, -1));
    EXPECT("c,b,a,a,b,c");
    EXPECT_KEYS("-3,-2,-1,0,1,2");
    TU_OK(tc_deque_extend(fx.c, NULL, 0, TC_BACK, -1));
    cr_assert_eq(tu_length(fx.c), 6);
}

Test(deque, values_of_every_type_round_trip)
{
    char *big = tu_pattern(70000, 1);
    tc_data vals[6] = {*TU_TEXT("text"),       *TU_BSTR("bytes"),
                       *TU_INT(-42),           *TU_REAL(2.5),
                       *TU_MSGPACK("\xc3", 1), *TU_BYTES(big, 70000)};
    TU_OK(tc_deque_extend(fx.c, vals, 6, TC_BACK, -1));
    cr_assert_eq(tu_count_val_files(fx.dir), 1, "the large value is a file");
    int types[6] = {TC_TEXT, TC_BYTES, TC_INT, TC_REAL, TC_MSGPACK, TC_BYTES};
    for (int i = 0; i < 6; i++) {
        tc_value v = TC_VALUE_INIT;
        TU_OK(tc_deque_get(fx.c, i, &v));
        cr_assert_eq(v.type, types[i], "item %d has type %d", i, v.type);
        cr_assert_eq(v.len, vals[i].len);
        cr_assert(memcmp(v.ptr, vals[i].ptr, v.len) == 0, "item %d", i);
        tc_value_clear(&v);
    }
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_deque_pop(fx.c, TC_BACK, &v));
    cr_assert_eq(v.len, 70000);
    cr_assert(memcmp(v.ptr, big, 70000) == 0);
    tc_value_clear(&v);
    cr_assert_eq(tu_count_val_files(fx.dir), 0, "pop removed the file");
    free(big);
}

/* ---- maxlen ------------------------------------------------------------ */

Test(deque, maxlen_drops_from_the_other_end)
{
    for (int i = 0; i < 5; i++) {
        char s[8];
        snprintf(s, sizeof s, "%d", i);
        TU_OK(tc_deque_push(fx.c, TU_TEXT(s), TC_BACK, 3));
    }
    EXPECT("2,3,4");
    EXPECT_KEYS("2,3,4");
    TU_OK(tc_deque_push(fx.c, TU_TEXT("L"), TC_FRONT, 3));
    EXPECT("L,2,3");
    /* extend: what python's append loop leaves (the last maxlen). */
    tc_data vals[4] = {*TU_TEXT("w"), *TU_TEXT("x"), *TU_TEXT("y"),
                       *TU_TEXT("z")};
    TU_OK(tc_deque_extend(fx.c, vals, 4, TC_BACK, 2));
    EXPECT("y,z");
    TU_OK(tc_deque_extend(fx.c, vals, 4, TC_FRONT, 3));
    EXPECT("z,y,x");
    /* maxlen 0: every push is dropped at once. */
    TU_OK(tc_deque_push(fx.c, TU_TEXT("gone"), TC_BACK, 0));
    cr_assert_eq(tu_length(fx.c), 0);
    /* Unbounded again; a later bounded push trims everything extra. */
    push_all("a,b,c,d,e");
    TU_OK(tc_deque_push(fx.c, TU_TEXT("f"), TC_BACK, 2));
    EXPECT("e,f");
}

Test(deque, maxlen_removes_dropped_files)
{
    char *big = tu_pattern(40000, 2);
    for (int i = 0; i < 4; i++)
        TU_OK(tc_deque_push(fx.c, TU_BYTES(big, 40000), TC_BACK, 2));
    cr_assert_eq(tu_length(fx.c), 2);
    cr_assert_eq(tu_count_val_files(fx.dir), 2);
    free(big);
}

Test(deque, trim_from_either_side)
{
    push_all("a,b,c,d,e");
    TU_OK(tc_deque_trim(fx.c, 3, TC_FRONT));
    EXPECT("c,d,e");
    TU_OK(tc_deque_trim(fx.c, 1, TC_BACK));
    EXPECT("c");
    TU_OK(tc_deque_trim(fx.c, 5, TC_FRONT));
    TU_OK(tc_deque_trim(fx.c, -1, TC_FRONT));
    EXPECT("c");
    TU_OK(tc_deque_trim(fx.c, 0, TC_FRONT));
    EXPECT("");
}

/* ---- indexed access ----------------------------------------------------- */

Test(deque, get_with_positive_and_negative_indexes)
{
    push_all("a,b,c,d");
    const char *want[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        tc_value v = TC_VALUE_INIT;
        TU_OK(tc_deque_get(fx.c, i, &v));
        cr_assert(tu_value_text_eq(&v, want[i]));
        TU_OK(tc_deque_get(fx.c, i - 4, &v));
        cr_assert(tu_value_text_eq(&v, want[i]), "index %d", i - 4);
        tc_value_clear(&v);
    }
}

Test(deque, out_of_range_indexes)
{
    push_all("a,b,c");
    tc_value v = TC_VALUE_INIT;
    int64_t bad[] = {3, 4, -4, -100, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TU_RC(tc_deque_get(fx.c, bad[i], &v), TC_NOTFOUND);
        cr_assert(strstr(tc_errmsg(), "out of range"), "%s", tc_errmsg());
        TU_RC(tc_deque_set(fx.c, bad[i], TU_TEXT("x")), TC_NOTFOUND);
        TU_RC(tc_deque_delete(fx.c, bad[i]), TC_NOTFOUND);
    }
    cr_assert_eq(v.type, TC_NONE);
    EXPECT("a,b,c");
    /* An out-of-range set of a large value leaves no file behind. */
    char *big = tu_pattern(50000, 3);
    TU_RC(tc_deque_set(fx.c, 9, TU_BYTES(big, 50000)), TC_NOTFOUND);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    free(big);
    TU_OK(tc_deque_clear(fx.c));
    TU_RC(tc_deque_get(fx.c, 0, &v), TC_NOTFOUND);
    TU_RC(tc_deque_get(fx.c, -1, &v), TC_NOTFOUND);
}

Test(deque, set_and_delete_by_index)
{
    push_all("a,b,c,d");
    TU_OK(tc_deque_set(fx.c, 0, TU_TEXT("A")));
    TU_OK(tc_deque_set(fx.c, -1, TU_TEXT("D")));
    TU_OK(tc_deque_set(fx.c, 2, TU_INT(3)));
    EXPECT("A,b,#3,D");
    EXPECT_KEYS("0,1,2,3");
    TU_OK(tc_deque_delete(fx.c, 1));
    EXPECT("A,#3,D");
    TU_OK(tc_deque_delete(fx.c, -1));
    EXPECT("A,#3");
    EXPECT_KEYS("0,2");
    /* Replacing a file-backed value removes the old file. */
    char *big = tu_pattern(50000, 4);
    TU_OK(tc_deque_set(fx.c, 0, TU_BYTES(big, 50000)));
    cr_assert_eq(tu_count_val_files(fx.dir), 1);
    TU_OK(tc_deque_set(fx.c, 0, TU_TEXT("small")));
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    TU_OK(tc_deque_set(fx.c, 1, TU_BYTES(big, 50000)));
    TU_OK(tc_deque_delete(fx.c, 1));
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    EXPECT("small");
    free(big);
}

/* ---- count, remove ------------------------------------------------------- */

Test(deque, count_compares_types_like_python)
{
    tc_data vals[7] = {
        *TU_INT(1), *TU_REAL(1.0), *TU_TEXT("1"),         *TU_BSTR("1"),
        *TU_INT(1), *TU_REAL(1.5), *TU_MSGPACK("\xc3", 1)};
    TU_OK(tc_deque_extend(fx.c, vals, 7, TC_BACK, -1));
    uint64_t n = 0;
    TU_OK(tc_deque_count(fx.c, TU_INT(1), &n));
    cr_assert_eq(n, 3, "1 == 1.0, as python: %llu", (unsigned long long)n);
    TU_OK(tc_deque_count(fx.c, TU_REAL(1.0), &n));
    cr_assert_eq(n, 3);
    TU_OK(tc_deque_count(fx.c, TU_REAL(1.5), &n));
    cr_assert_eq(n, 1);
    cr_assert_eq(count_text("1"), 1, "text and bytes differ");
    TU_OK(tc_deque_count(fx.c, TU_BSTR("1"), &n));
    cr_assert_eq(n, 1);
    TU_OK(tc_deque_count(fx.c, TU_MSGPACK("\xc3", 1), &n));
    cr_assert_eq(n, 1);
    TU_OK(tc_deque_count(fx.c, TU_INT(2), &n));
    cr_assert_eq(n, 0);
    /* Exact, as python: 2**53 + 1 is not 2.0**53. */
    TU_OK(tc_deque_push(fx.c, TU_INT(9007199254740993LL), TC_BACK, -1));
    TU_OK(tc_deque_count(fx.c, TU_REAL(9007199254740992.0), &n));
    cr_assert_eq(n, 0);
    TU_OK(tc_deque_count(fx.c, TU_REAL(9223372036854775808.0), &n));
    cr_assert_eq(n, 0);
}

Test(deque, count_and_remove_file_backed_values)
{
    char *big = tu_pattern(40000, 5), *other = tu_pattern(40000, 6);
    TU_OK(tc_deque_push(fx.c, TU_TEXTN(big, 40000), TC_BACK, -1));
    TU_OK(tc_deque_push(fx.c, TU_TEXTN(other, 40000), TC_BACK, -1));
    TU_OK(tc_deque_push(fx.c, TU_TEXTN(big, 40000), TC_BACK, -1));
    uint64_t n = 0;
    TU_OK(tc_deque_count(fx.c, TU_TEXTN(big, 40000), &n));
    cr_assert_eq(n, 2);
    TU_OK(tc_deque_count(fx.c, TU_BYTES(big, 40000), &n));
    cr_assert_eq(n, 0, "bytes never equal text");
    TU_OK(tc_deque_count(fx.c, TU_TEXTN(big, 39999), &n));
    cr_assert_eq(n, 0);
    TU_OK(tc_deque_remove(fx.c, TU_TEXTN(big, 40000)));
    cr_assert_eq(tu_count_val_files(fx.dir), 2);
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_deque_get(fx.c, 0, &v));
    cr_assert(v.len == 40000 && memcmp(v.ptr, other, 40000) == 0,
              "the first equal item went");
    tc_value_clear(&v);
    free(big);
    free(other);
}

Test(deque, remove_takes_the_first_equal_item)
{
    push_all("a,b,a,c,a");
    TU_OK(tc_deque_remove(fx.c, TU_TEXT("a")));
    EXPECT("b,a,c,a");
    EXPECT_KEYS("1,2,3,4");
    TU_OK(tc_deque_remove(fx.c, TU_TEXT("c")));
    EXPECT("b,a,a");
    cr_assert_eq(count_text("a"), 2);
}

Test(deque, remove_of_a_missing_value_changes_nothing)
{
    push_all("a,b");
    TU_RC(tc_deque_remove(fx.c, TU_TEXT("zz")), TC_NOTFOUND);
    cr_assert(strstr(tc_errmsg(), "value not in deque"), "%s", tc_errmsg());
    TU_RC(tc_deque_remove(fx.c, TU_BSTR("a")), TC_NOTFOUND);
    EXPECT("a,b");
    TU_OK(tc_deque_clear(fx.c));
    TU_RC(tc_deque_remove(fx.c, TU_TEXT("a")), TC_NOTFOUND);
}

/* ---- reverse, rotate ------------------------------------------------------
 */

Test(deque, reverse_leaves_python_keys)
{
    push_all("b,c,d");
    push("a", TC_FRONT);
    EXPECT_KEYS("-1,0,1,2");
    TU_OK(tc_deque_reverse(fx.c));
    EXPECT("d,c,b,a");
    /* python rebuilds with clear + extend: keys from 500000000000000. */
    EXPECT_KEYS("0,1,2,3");
    TU_OK(tc_deque_reverse(fx.c));
    EXPECT("a,b,c,d");
    push("e", TC_BACK);
    EXPECT("a,b,c,d,e");
    TU_OK(tc_deque_clear(fx.c));
    TU_OK(tc_deque_reverse(fx.c));
    EXPECT("");
    push("x", TC_BACK);
    TU_OK(tc_deque_reverse(fx.c));
    EXPECT("x");
}

Test(deque, reverse_moves_files_without_copying)
{
    char *big = tu_pattern(40000, 7);
    push("small", TC_BACK);
    TU_OK(tc_deque_push(fx.c, TU_BYTES(big, 40000), TC_BACK, -1));
    char before[TU_PATH_MAX];
    sqlite3 *db = tu_db_open(fx.dir);
    char *f = tu_db_text(db, "SELECT filename FROM Cache WHERE filename"
                             " IS NOT NULL");
    snprintf(before, sizeof before, "%s", f);
    free(f);
    TU_OK(tc_deque_reverse(fx.c));
    f = tu_db_text(db, "SELECT filename FROM Cache WHERE filename"
                       " IS NOT NULL");
    cr_assert_str_eq(f, before, "the value file is the same one");
    free(f);
    sqlite3_close(db);
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_deque_get(fx.c, 0, &v));
    cr_assert(v.len == 40000 && memcmp(v.ptr, big, 40000) == 0);
    tc_value_clear(&v);
    free(big);
}

Test(deque, rotate_right_and_left_like_collections_deque)
{
    push_all("0,1,2,3,4");
    TU_OK(tc_deque_rotate(fx.c, 2));
    EXPECT("3,4,0,1,2");
    /* python's loop: pop, appendleft; the moved items get new front keys */
    EXPECT_KEYS("-2,-1,0,1,2");
    TU_OK(tc_deque_rotate(fx.c, -1));
    EXPECT("4,0,1,2,3");
    EXPECT_KEYS("-1,0,1,2,3");
    TU_OK(tc_deque_rotate(fx.c, 0));
    EXPECT("4,0,1,2,3");
    TU_OK(tc_deque_rotate(fx.c, 5));
    EXPECT("4,0,1,2,3");
    EXPECT_KEYS("-1,0,1,2,3");
}

Test(deque, rotate_by_more_than_the_length)
{
    push_all("a,b,c,d,e");
    TU_OK(tc_deque_rotate(fx.c, 7)); /* 7 % 5 = 2 */
    EXPECT("d,e,a,b,c");
    TU_OK(tc_deque_rotate(fx.c, -12)); /* python: 12 % 5 = 2 to the left */
    EXPECT("a,b,c,d,e");
    TU_OK(tc_deque_rotate(fx.c, INT64_MAX));
    TU_OK(tc_deque_rotate(fx.c, INT64_MIN));
    /* INT64_MAX % 5 = 2 right, then -(INT64_MIN % 5) = 3 left: 1 left */
    EXPECT("b,c,d,e,a");
    TU_OK(tc_deque_clear(fx.c));
    TU_OK(tc_deque_rotate(fx.c, 3)); /* empty: nothing to do */
    push("x", TC_BACK);
    TU_OK(tc_deque_rotate(fx.c, -3));
    EXPECT("x");
}

Test(deque, rotate_keeps_the_hot_tier_coherent)
{
    push_all("a,b,c");
    /* Read item keys through the Cache API (fills the hot tier), then
     * move the rows: the next reads must see the moved values. */
    tu_expect_text(fx.c, TU_INT(START), "a");
    tu_expect_text(fx.c, TU_INT(START + 2), "c");
    TU_OK(tc_deque_rotate(fx.c, -1));
    tu_expect_missing(fx.c, TU_INT(START));
    tu_expect_text(fx.c, TU_INT(START + 3), "a");
    TU_OK(tc_deque_reverse(fx.c));
    tu_expect_text(fx.c, TU_INT(START), "a");
    tu_expect_text(fx.c, TU_INT(START + 2), "b");
    tu_expect_hot_clean(fx.c);
}

/* ---- clear, len, transactions ----------------------------------------------
 */

Test(deque, clear_removes_items_and_files)
{
    char *big = tu_pattern(40000, 8);
    push_all("a,b");
    TU_OK(tc_deque_push(fx.c, TU_BYTES(big, 40000), TC_FRONT, -1));
    cr_assert_eq(tu_count_val_files(fx.dir), 1);
    TU_OK(tc_deque_clear(fx.c));
    cr_assert_eq(tu_length(fx.c), 0);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    uint64_t n = 7;
    TU_OK(tc_deque_len(fx.c, &n));
    cr_assert_eq(n, 0);
    free(big);
}

Test(deque, a_failed_call_inside_a_transaction_undoes_only_itself)
{
    push_all("a,b");
    TU_OK(tc_begin(fx.c, 0));
    push("c", TC_BACK);
    TU_RC(tc_deque_set(fx.c, 10, TU_TEXT("x")), TC_NOTFOUND);
    TU_RC(tc_deque_remove(fx.c, TU_TEXT("nope")), TC_NOTFOUND);
    TU_OK(tc_deque_rotate(fx.c, 1));
    TU_OK(tc_commit(fx.c));
    EXPECT("c,a,b");
    /* A rolled-back transaction takes the deque calls with it. */
    TU_OK(tc_begin(fx.c, 0));
    TU_OK(tc_deque_reverse(fx.c));
    TU_OK(tc_deque_clear(fx.c));
    TU_OK(tc_rollback(fx.c));
    EXPECT("c,a,b");
}

Test(deque, readonly_handle_reads_but_does_not_write)
{
    push_all("a,b");
    tc_cache *ro = NULL;
    TU_OK(tc_deque_open(&ro, fx.dir, TC_OPEN_READONLY));
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_deque_get(ro, -1, &v));
    cr_assert(tu_value_text_eq(&v, "b"));
    tc_value_clear(&v);
    uint64_t n = 0;
    TU_OK(tc_deque_count(ro, TU_TEXT("a"), &n));
    cr_assert_eq(n, 1);
    TU_RC(tc_deque_push(ro, TU_TEXT("c"), TC_BACK, -1), TC_EREADONLY);
    TU_RC(tc_deque_rotate(ro, 1), TC_EREADONLY);
    tc_close(ro);
    EXPECT("a,b");
}

/* ---- several processes ----------------------------------------------------
 */

#define PROCS 4
#define PER   500


static int child_append(void *p, int msgfd)
{
    struct tu_proc_arg *a = p;
    tc_cache *c = NULL;
    if (tc_deque_open(&c, a->dir, 0) != TC_OK)
        return tu_child_msg(msgfd, "open: %s", tc_errmsg());
    tu_barrier_wait(a->bar);
    for (int64_t i = 0; i < PER; i++) {
        int64_t v = a->id * 100000 + i;
        int rc = tc_deque_push(c, TU_INT(v), i % 2 ? TC_FRONT : TC_BACK, -1);
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "push: %s", tc_errmsg());
    }
    tc_close(c);
    return 0;
}

static int child_popleft(void *p, int msgfd)
{
    struct tu_proc_arg *a = p;
    tc_cache *c = NULL;
    if (tc_deque_open(&c, a->dir, 0) != TC_OK)
        return tu_child_msg(msgfd, "open: %s", tc_errmsg());
    tu_barrier_wait(a->bar);
    for (;;) {
        tc_value v = TC_VALUE_INIT;
        int rc = tc_deque_pop(c, TC_FRONT, &v);
        if (rc == TC_NOTFOUND)
            break;
        if (rc != TC_OK || v.type != TC_INT)
            return tu_child_msg(msgfd, "pop: %s", tc_errmsg());
        if (tu_write_full(a->out_fd, &v.i, sizeof v.i) != 0)
            return tu_child_msg(msgfd, "write: %s", strerror(errno));
    }
    tc_close(c);
    return 0;
}

/* PROCS children running @fn on their own handles; popped values go to
 * @out_fd (one int64 each). */
static void run_children(int (*fn)(void *, int), int out_fd)
{
    tc_close(fx.c); /* children open their own handles */
    fx.c = NULL;
    tu_run_marked(PROCS, fn, fx.dir, out_fd);
    TU_OK(tc_deque_open(&fx.c, fx.dir, 0));
}

Test(deque, appends_from_several_processes_are_all_kept)
{
    run_children(child_append, -1);
    cr_assert_eq(tu_length(fx.c), PROCS * PER);
    /* Every value once; each child's back pushes keep their order, and so
     * do its front pushes (reversed). */
    static int seen[PROCS + 1][PER];
    int64_t last_back[PROCS + 1], last_front[PROCS + 1];
    for (int i = 0; i <= PROCS; i++)
        last_back[i] = -1, last_front[i] = PER;
    for (int64_t i = 0; i < PROCS * PER; i++) {
        tc_value v = TC_VALUE_INIT;
        TU_OK(tc_deque_get(fx.c, i, &v));
        int id = (int)(v.i / 100000), n = (int)(v.i % 100000);
        cr_assert(id >= 1 && id <= PROCS && n < PER, "value %lld",
                  (long long)v.i);
        cr_assert_eq(seen[id][n]++, 0, "value %lld twice", (long long)v.i);
        if (n % 2) {
            cr_assert_lt(n, last_front[id], "front pushes out of order");
            last_front[id] = n;
        } else {
            cr_assert_gt(n, last_back[id], "back pushes out of order");
            last_back[id] = n;
        }
        tc_value_clear(&v);
    }
}

Test(deque, popleft_from_several_processes_never_repeats)
{
    enum { N = 1000 };
    tc_data *vals = calloc(N, sizeof *vals);
    int64_t *nums = calloc(N, sizeof *nums);
    for (int i = 0; i < N; i++) {
        nums[i] = i;
        vals[i] = tc_int(&nums[i]);
    }
    TU_OK(tc_deque_extend(fx.c, vals, N, TC_BACK, -1));
    char path[TU_PATH_MAX];
    snprintf(path, sizeof path, "%s/popped", fx.base);
    int fd = open(path, O_CREAT | O_WRONLY | O_APPEND, 0600);
    cr_assert_geq(fd, 0);
    run_children(child_popleft, fd);
    close(fd);
    size_t len = 0;
    char *buf = tu_read_file(path, &len);
    cr_assert_eq(len, N * sizeof(int64_t), "popped %zu items",
                 len / sizeof(int64_t));
    static int seen[N];
    for (size_t i = 0; i < N; i++) {
        int64_t v;
        memcpy(&v, buf + i * sizeof v, sizeof v);
        cr_assert(v >= 0 && v < N);
        cr_assert_eq(seen[v]++, 0, "%lld popped twice", (long long)v);
    }
    cr_assert_eq(tu_length(fx.c), 0);
    free(buf);
    free(vals);
    free(nums);
}
