/*
 * test_index.c - the persistent Index (diskcache-behaviour.md section 9,
 * persistent.py's Index): tc_index_open, setdefault and popitem, plus the
 * Cache calls an Index is made of (insertion order, push/pull with
 * retry). The last tests fork processes to check that popitem and
 * setdefault are atomic.
 */
#include "testutil.h"

static tc_cache *open_index(const char *dir)
{
    /* A small hot tier, recorded when the directory is created. */
    tc_close(tu_open_hot(dir, TC_SHARDS_PLAIN, NULL, TU_HOT_SIZE));
    tc_cache *c = NULL;
    TU_OK(tc_index_open(&c, dir, 0));
    cr_assert_not_null(c);
    return c;
}

static void setup(void)
{
    tu_fx_init("index");
    fx.c = open_index(fx.dir);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(index, .init = setup, .fini = teardown, .timeout = 60);

static void set_text(const char *k, const char *v)
{
    TU_OK(tc_set(fx.c, TU_TEXT(k), TU_TEXT(v), TC_NO_EXPIRE, NULL, TC_RETRY));
}

/* Keys in insertion order, joined by ','. */
static const char *keys(void)
{
    static char out[4096];
    size_t used = 0;
    tc_iter *it = NULL;
    tc_value k = TC_VALUE_INIT;
    out[0] = 0;
    TU_OK(tc_iter_open(fx.c, TC_ITER_INSERTION, &it));
    while (tc_iter_next(it, &k) == TC_OK) {
        used += snprintf(out + used, sizeof out - used, "%s%s", used ? "," : "",
                         k.type == TC_TEXT ? (char *)k.ptr : "?");
        tc_value_clear(&k);
    }
    tc_iter_close(it);
    return out;
}

static void expect_popitem(int last, const char *k, const char *v)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_index_popitem(fx.c, last, &it));
    cr_assert(tu_value_text_eq(&it.key, k), "popped key '%s', expected '%s'",
              it.key.type == TC_TEXT ? (char *)it.key.ptr : "?", k);
    cr_assert(tu_value_text_eq(&it.value, v));
    tc_item_clear(&it);
}

Test(index, open_is_a_plain_cache_that_never_culls)
{
    tc_value v = TC_VALUE_INIT;
    cr_assert_eq(tc_shard_count(fx.c), 0);
    TU_OK(tc_setting_get(fx.c, "eviction_policy", &v));
    cr_assert(tu_value_text_eq(&v, "none"));
    tc_value_clear(&v);
    TU_RC(tc_index_open(NULL, fx.dir, 0), TC_EINVAL);
    char dir[TU_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/missing", fx.base);
    tc_cache *c = (tc_cache *)&c;
    TU_RC(tc_index_open(&c, dir, TC_OPEN_NOCREATE), TC_ENOCACHE);
    cr_assert_null(c);
}

Test(index, setdefault_stores_only_when_missing)
{
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_index_setdefault(fx.c, TU_TEXT("a"), TU_INT(0), &v));
    cr_assert_eq(v.type, TC_INT);
    cr_assert_eq(v.i, 0);
    TU_OK(tc_index_setdefault(fx.c, TU_TEXT("a"), TU_INT(5), &v));
    cr_assert_eq(v.i, 0, "the stored value wins");
    tu_expect_int(fx.c, TU_TEXT("a"), 0);
    /* Every type comes back as given, also the first time. */
    TU_OK(tc_index_setdefault(fx.c, TU_TEXT("t"), TU_TEXT("x"), &v));
    cr_assert(tu_value_text_eq(&v, "x"));
    TU_OK(tc_index_setdefault(fx.c, TU_TEXT("r"), TU_REAL(1.5), &v));
    cr_assert(v.type == TC_REAL && v.d == 1.5);
    TU_OK(tc_index_setdefault(fx.c, TU_TEXT("m"), TU_MSGPACK("\xc2", 1), &v));
    cr_assert(v.type == TC_MSGPACK && v.len == 1);
    TU_OK(tc_index_setdefault(fx.c, TU_TEXT("n"), TU_BSTR("b"), NULL));
    tu_expect_value(fx.c, TU_TEXT("n"), TC_BYTES, "b", 1);
    tc_value_clear(&v);
    cr_assert_str_eq(keys(), "a,t,r,m,n");
}

Test(index, setdefault_errors_store_nothing)
{
    tc_value v = TC_VALUE_INIT;
    tc_data bad = {NULL, 0, TC_NONE};
    TU_RC(tc_index_setdefault(fx.c, TU_TEXT("k"), &bad, &v), TC_EINVAL);
    TU_RC(tc_index_setdefault(fx.c, TU_TEXT("k"), NULL, &v), TC_EINVAL);
    cr_assert(strstr(tc_errmsg(), "tc_index_setdefault"), "%s", tc_errmsg());
    TU_RC(tc_index_setdefault(fx.c, &bad, TU_INT(1), &v), TC_EINVAL);
    TU_RC(tc_index_setdefault(NULL, TU_TEXT("k"), TU_INT(1), &v), TC_ECLOSED);
    cr_assert_eq(v.type, TC_NONE);
    cr_assert_eq(tu_length(fx.c), 0);
}

Test(index, popitem_takes_the_newest_or_the_oldest)
{
    set_text("a", "1");
    set_text("b", "2");
    set_text("c", "3");
    set_text("d", "4");
    expect_popitem(1, "d", "4");
    expect_popitem(0, "a", "1");
    cr_assert_str_eq(keys(), "b,c");
    /* Updating a key keeps its place (python: the row is updated). */
    set_text("b", "22");
    expect_popitem(1, "c", "3");
    expect_popitem(1, "b", "22");
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_index_popitem(fx.c, 1, &it), TC_NOTFOUND);
    cr_assert(strstr(tc_errmsg(), "dictionary is empty"), "%s", tc_errmsg());
    TU_RC(tc_index_popitem(fx.c, 0, NULL), TC_NOTFOUND);
    cr_assert_eq(it.key.type, TC_NONE);
}

Test(index, popitem_removes_the_value_file)
{
    char *big = tu_pattern(50000, 1);
    set_text("small", "s");
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(big, 50000), TC_NO_EXPIRE, NULL,
                 0));
    cr_assert_eq(tu_count_val_files(fx.dir), 1);
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_index_popitem(fx.c, 1, &it));
    cr_assert(tu_value_text_eq(&it.key, "big"));
    cr_assert(it.value.len == 50000 && !memcmp(it.value.ptr, big, 50000));
    tc_item_clear(&it);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    TU_OK(tc_index_popitem(fx.c, 1, NULL));
    cr_assert_eq(tu_length(fx.c), 0);
    free(big);
}

Test(index, popitem_inside_a_rolled_back_transaction)
{
    set_text("a", "1");
    TU_OK(tc_begin(fx.c, 0));
    expect_popitem(1, "a", "1");
    TU_OK(tc_rollback(fx.c));
    cr_assert_str_eq(keys(), "a");
}

Test(index, push_and_pull_are_the_cache_queue)
{
    tc_value k = TC_VALUE_INIT;
    TU_OK(tc_push(fx.c, TU_TEXT("x"), NULL, TC_BACK, TC_NO_EXPIRE, NULL, &k,
                  TC_RETRY));
    cr_assert(k.type == TC_INT && k.i == 500000000000000);
    TU_OK(tc_push(fx.c, TU_TEXT("y"), "fruit", TC_BACK, TC_NO_EXPIRE, NULL, &k,
                  TC_RETRY));
    cr_assert(tu_value_text_eq(&k, "fruit-500000000000000"));
    tc_value_clear(&k);
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_pull(fx.c, "fruit", TC_FRONT, &it, TC_RETRY));
    cr_assert(tu_value_text_eq(&it.value, "y"));
    tc_item_clear(&it);
    cr_assert_eq(tu_length(fx.c), 1);
}

/* ---- several processes ----------------------------------------------------
 */

#define PROCS 4


static int child_popitem(void *p, int msgfd)
{
    struct tu_proc_arg *a = p;
    tc_cache *c = NULL;
    if (tc_index_open(&c, a->dir, 0) != TC_OK)
        return tu_child_msg(msgfd, "open: %s", tc_errmsg());
    tu_barrier_wait(a->bar);
    for (int n = 0;; n++) {
        tc_item it = TC_ITEM_INIT;
        int rc = tc_index_popitem(c, n % 2, &it);
        if (rc == TC_NOTFOUND)
            break;
        if (rc != TC_OK || it.value.type != TC_INT)
            return tu_child_msg(msgfd, "popitem: %s", tc_errmsg());
        int64_t v = it.value.i;
        tc_item_clear(&it);
        if (tu_write_full(a->out_fd, &v, sizeof v) != 0)
            return tu_child_msg(msgfd, "write: %s", strerror(errno));
    }
    tc_close(c);
    return 0;
}

static int child_setdefault(void *p, int msgfd)
{
    struct tu_proc_arg *a = p;
    tc_cache *c = NULL;
    if (tc_index_open(&c, a->dir, 0) != TC_OK)
        return tu_child_msg(msgfd, "open: %s", tc_errmsg());
    tu_barrier_wait(a->bar);
    for (int i = 0; i < 100; i++) {
        char key[16];
        tc_value v = TC_VALUE_INIT;
        snprintf(key, sizeof key, "k%d", i);
        if (tc_index_setdefault(c, TU_TEXT(key), TU_INT(a->id), &v) != TC_OK)
            return tu_child_msg(msgfd, "setdefault: %s", tc_errmsg());
        /* Whoever stored first, everyone reads that value back. */
        tc_item it = TC_ITEM_INIT;
        if (tc_get(c, TU_TEXT(key), &it, 0) != TC_OK ||
            it.value.type != TC_INT || it.value.i != v.i)
            return tu_child_msg(msgfd,
                                "%s: setdefault gave %lld, stored "
                                "%lld",
                                key, (long long)v.i, (long long)it.value.i);
        tc_item_clear(&it);
        if (tu_write_full(a->out_fd, &v.i, sizeof v.i) != 0)
            return tu_child_msg(msgfd, "write: %s", strerror(errno));
    }
    tc_close(c);
    return 0;
}

/* PROCS children running @fn; what they write to the shared output file
 * comes back (caller frees), with its length in @len. */
static char *run_children(int (*fn)(void *, int), size_t *len)
{
    char path[TU_PATH_MAX];
    snprintf(path, sizeof path, "%s/out", fx.base);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
    cr_assert_geq(fd, 0);
    tu_run_marked(PROCS, fn, fx.dir, fd);
    close(fd);
    return tu_read_file(path, len);
}

Test(index, popitem_from_several_processes_never_repeats)
{
    enum { N = 600 };
    for (int64_t i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%lld", (long long)i);
        TU_OK(tc_set(fx.c, TU_TEXT(k), TU_INT(i), TC_NO_EXPIRE, NULL, 0));
    }
    size_t len = 0;
    char *buf = run_children(child_popitem, &len);
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
}

Test(index, setdefault_from_several_processes_agrees)
{
    size_t len = 0;
    char *buf = run_children(child_setdefault, &len);
    cr_assert_eq(len, PROCS * 100 * sizeof(int64_t));
    cr_assert_eq(tu_length(fx.c), 100);
    free(buf);
}
