/*
 * test_hot.c - the shared-memory hot tier seen through the public API, in
 * one process (docs/ARCHITECTURE.md "Hot tier (shm/): design"; the hot
 * tier section of tiercache.h).
 *
 * Two suites:
 *  - hot: behaviour (hits, fills, coherence of every write path, expiry,
 *    bulk operations, transactions, batches, large values, eviction). The
 *    segment lives in the default /dev/shm; the fixture drops it.
 *  - hotseg: tests that look at or tamper with segment files. Each sets
 *    TIERCACHE_SHM_DIR to a private directory under /dev/shm first, so no
 *    other cache's segment is ever touched.
 *
 * The hot tier is watched through tc_hot_stats_get (hits, misses, fills,
 * evictions) and tc_hot_check, which must find no structural problem and
 * no hot entry that disagrees with SQLite at the end of every test. A
 * handle opened with hot size 0 (tu_open_ex) reads SQLite only and serves
 * as the cold oracle.
 */
#include <pthread.h>
#include <time.h>

#include "testutil.h"

#define HOT TU_HOT_SIZE /* 8 MiB: page size 32 KiB */
#define MiB (1u << 20)

static char shm[TU_PATH_MAX]; /* private TIERCACHE_SHM_DIR, or "" */

static void setup(void)
{
    tu_fx_init("hot");
    shm[0] = 0;
}

/* A private segment directory on tmpfs, set before any tiercache call. */
static void setup_seg(void)
{
    static unsigned n;
    tu_fx_init("hotseg");
    snprintf(shm, sizeof shm, "/dev/shm/tctest-hot-%ld-%u", (long)getpid(),
             n++);
    tu_rmrf(shm);
    cr_assert_eq(mkdir(shm, 0755), 0, "mkdir %s: %s", shm, strerror(errno));
    cr_assert_eq(setenv("TIERCACHE_SHM_DIR", shm, 1), 0);
}

static void teardown(void)
{
    tu_fx_fini(); /* drops fx.dir's segment (in shm when set) */
    if (shm[0])
        tu_rmrf(shm);
}

TestSuite(hot, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(hotseg, .init = setup_seg, .fini = teardown, .timeout = 120);

/* ===================================================================== */
/* Helpers                                                               */

static tc_cache *open_hot(const char *dir, int shards, uint64_t hot)
{
    return tu_open_hot(dir, shards, &fx.clk, hot);
}

/* A handle that never reads through the hot tier (hot size 0): reads come
 * from SQLite, writes still invalidate. Never the first open of a dir. */
static tc_cache *open_cold(const char *dir)
{
    return tu_open_cold(dir, &fx.clk);
}

static tc_hot_stats stats(tc_cache *c)
{
    tc_hot_stats s;
    memset(&s, 0xa5, sizeof s); /* garbage, so a field left unset shows */
    TU_OK(tc_hot_stats_get(c, &s));
    return s;
}

/* expect_value - @v holds exactly @want (type, length, bytes; numbers
 * compare through ptr, which points at i or d). */
static void expect_value(const tc_value *v, const tc_data *want,
                         const char *what)
{
    if (!want || want->type == TC_NONE) {
        cr_assert_eq(v->type, TC_NONE, "%s: type %d, expected none", what,
                     v->type);
        return;
    }
    cr_assert_eq(v->type, want->type, "%s: type %d, expected %d", what, v->type,
                 want->type);
    cr_assert_eq(v->len, want->len, "%s: length %zu, expected %zu", what,
                 v->len, want->len);
    if (want->len)
        cr_assert(memcmp(v->ptr, want->ptr, want->len) == 0, "%s: bytes differ",
                  what);
    if (v->type == TC_INT)
        cr_assert_eq(v->i, *(const int64_t *)want->ptr, "%s: i", what);
    else if (v->type == TC_REAL)
        cr_assert_eq(v->d, *(const double *)want->ptr, "%s: d", what);
    else
        cr_assert_not_null(v->ptr, "%s: NULL ptr", what);
    if (v->type != TC_INT && v->type != TC_REAL)
        cr_assert_eq(((const char *)v->ptr)[v->len], 0,
                     "%s: not NUL-terminated", what);
}

/* expect_get - tc_get(@k) returns @val with @tag (NULL: none) and
 * @expire_time; returns how many hot hits the call added. */
static uint64_t expect_get(tc_cache *c, const tc_data *k, const tc_data *val,
                           const tc_data *tag, double expire_time)
{
    uint64_t before = stats(c).hits;
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(c, k, &it, 0));
    uint64_t after = stats(c).hits;
    expect_value(&it.value, val, "value");
    expect_value(&it.tag, tag, "tag");
    cr_assert_eq(it.expire_time, expire_time, "expire_time %.3f, expected %.3f",
                 it.expire_time, expire_time);
    tc_item_clear(&it);
    return after - before;
}

/* expect_hit - expect_get, served by the hot tier (hits + 1). */
static void expect_hit(tc_cache *c, const tc_data *k, const tc_data *val,
                       const tc_data *tag, double expire_time)
{
    uint64_t d = expect_get(c, k, val, tag, expire_time);
    cr_assert_eq(d, 1, "expected a hot hit, hits went up by %llu",
                 (unsigned long long)d);
}

/* expect_cold - expect_get, not served by the hot tier. */
static void expect_cold(tc_cache *c, const tc_data *k, const tc_data *val,
                        const tc_data *tag, double expire_time)
{
    uint64_t d = expect_get(c, k, val, tag, expire_time);
    cr_assert_eq(d, 0, "expected no hot hit, hits went up by %llu",
                 (unsigned long long)d);
}

/* expect_plain - live, no tag, never expires. */
static void expect_plain(tc_cache *c, const tc_data *k, const tc_data *val)
{
    (void)expect_get(c, k, val, NULL, TC_NO_EXPIRE);
}

/* expect_absent - every read path says NOTFOUND and none is a hot hit. */
static void expect_absent(tc_cache *c, const tc_data *k)
{
    uint64_t before = stats(c).hits;
    tc_item it = TC_ITEM_INIT;
    TU_RC(tc_get(c, k, &it, 0), TC_NOTFOUND);
    cr_assert_eq(it.value.type, TC_NONE, "out untouched on NOTFOUND");
    char buf[64];
    size_t len = 0;
    TU_RC(tc_get_buf(c, k, buf, sizeof buf, &len, NULL, NULL, 0), TC_NOTFOUND);
    TU_RC(tc_contains(c, k), TC_NOTFOUND);
    cr_assert_eq(stats(c).hits, before, "a missing key counted as a hot hit");
}

/* seg_path - the segment file of @dir (suffix "" or ".lock"):
 * $TIERCACHE_SHM_DIR/tiercache-<dev>-<ino><suffix>. */
static void seg_path(const char *dir, const char *suffix, char *out, size_t cap)
{
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0, "stat %s: %s", dir, strerror(errno));
    const char *base = getenv("TIERCACHE_SHM_DIR");
    snprintf(out, cap, "%s/tiercache-%llx-%llx%s",
             base && *base ? base : "/dev/shm", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino, suffix);
}

static struct stat stat_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return st;
}

/* overwrite - write @n bytes of @p at @off into an existing file. */
static void overwrite(const char *path, off_t off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pwrite(fd, p, n, off), (ssize_t)n, "pwrite %s: %s", path,
                 strerror(errno));
    cr_assert_eq(close(fd), 0);
}

#define KEY(s) TU_TEXT(s)

/* ===================================================================== */
/* Hits: what a set publishes is what a get returns                      */

static const unsigned char bin[] = {0, 1, 2, 0xff, 0, 'x', 0};
/* MessagePack [1, "a", true] */
static const unsigned char mpk[] = {0x93, 0x01, 0xa1, 'a', 0xc3};

/* Every value type, empty values, every key type and tag type: the hot
 * copy must carry type, bytes, tag and expiry exactly (a hit right after
 * the set, because a set publishes). */
Test(hot, set_then_get_is_a_hit_for_every_type)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_hot_stats s = stats(fx.c);
    cr_assert_eq(s.attached, 1, "a hot handle has a segment");
    cr_assert_eq(s.reading, 1, "a hot handle reads through it");
    cr_assert_eq(s.size, HOT, "segment size %llu", (unsigned long long)s.size);

    struct {
        const tc_data *key, *val, *tag;
        double expire;
    } cases[] = {
        {KEY("text"), TU_TEXT("h\xc3\xa9llo w\xc3\xb6rld"), NULL, TC_NO_EXPIRE},
        {KEY("bytes"), TU_BYTES(bin, sizeof bin), TU_TEXT("tag"), 30},
        {KEY("int"), TU_INT(-42), TU_INT(7), 60},
        {KEY("int-min"), TU_INT(INT64_MIN), NULL, TC_NO_EXPIRE},
        {KEY("real"), TU_REAL(3.25), TU_REAL(0.5), 90},
        /* an integral REAL value stays REAL: only keys are normalised */
        {KEY("real-integral"), TU_REAL(2.0), NULL, TC_NO_EXPIRE},
        {KEY("real-neg-zero"), TU_REAL(-0.0), NULL, TC_NO_EXPIRE},
        {KEY("msgpack"), TU_MSGPACK(mpk, sizeof mpk), TU_BSTR("b"), 5},
        {KEY("empty-text"), TU_TEXT(""), NULL, TC_NO_EXPIRE},
        {KEY("empty-bytes"), TU_BYTES("", 0), TU_TEXT(""), TC_NO_EXPIRE},
        {KEY("empty-msgpack"), TU_MSGPACK("", 0), NULL, TC_NO_EXPIRE},
        {KEY(""), TU_TEXT("empty key"), NULL, TC_NO_EXPIRE},
        {TU_BYTES(bin, sizeof bin), TU_TEXT("bytes key"), NULL, TC_NO_EXPIRE},
        {TU_INT(-7), TU_TEXT("int key"), NULL, TC_NO_EXPIRE},
        {TU_REAL(2.5), TU_TEXT("real key"), NULL, TC_NO_EXPIRE},
        /* TEXT 'k' and BLOB x'6b' are two rows: the type is part of a key */
        {TU_TEXT("k"), TU_TEXT("text k"), NULL, TC_NO_EXPIRE},
        {TU_BSTR("k"), TU_TEXT("bytes k"), NULL, TC_NO_EXPIRE},
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++)
        TU_OK(tc_set(fx.c, cases[i].key, cases[i].val, cases[i].expire,
                     cases[i].tag, 0));
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            cr_log_info("case %zu pass %zu", i, pass);
            double want = cases[i].expire == TC_NO_EXPIRE
                              ? TC_NO_EXPIRE
                              : TU_T0 + cases[i].expire;
            expect_hit(fx.c, cases[i].key, cases[i].val, cases[i].tag, want);
        }
    }
    cr_assert_eq(tu_length(fx.c), n);
    cr_assert_geq(stats(fx.c).items, n, "every small value is resident");
    tu_expect_hot_clean(fx.c);
}

/* A hit through a second handle on the same directory (same process,
 * same segment). */
Test(hot, set_through_one_handle_hits_in_another)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    TU_OK(tc_set(fx.c, KEY("k"), TU_TEXT("v"), 10, TU_TEXT("t"), 0));
    expect_hit(h2, KEY("k"), TU_TEXT("v"), TU_TEXT("t"), TU_T0 + 10);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* sqlite_compares_exactly - 1 if this SQLite tells INT64_MAX from 2^63
 * and 2^53 + 1 from 2^53. It compares INTEGER with REAL through long
 * double; under valgrind (long double emulated as double) it merges them,
 * and the hot tier, which must mirror SQLite, cannot be checked there. */
static int sqlite_compares_exactly(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    int64_t merged =
        tu_db_int(db, -1,
                  "SELECT 9223372036854775807 = 9223372036854775808.0"
                  " OR 9007199254740993 = 9007199254740992.0");
    sqlite3_close(db);
    return merged == 0;
}

/* SQLite treats REAL 1.0 and INTEGER 1 as one row of a plain Cache, so
 * the hot tier must too, and only for REALs that equal an int64 exactly:
 * 2^63 and inf are not INT64_MAX, -2^63 is INT64_MIN, 2^53 is not
 * 2^53 + 1, -0.0 is 0. */
Test(hot, integral_real_key_shares_the_int_row)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    const double two63 = 9223372036854775808.0, two53 = 9007199254740992.0;
    int exact = sqlite_compares_exactly();
    if (!exact)
        cr_log_info("SQLite merges INT64_MAX and 2^63 here (valgrind?): "
                    "those edges are not checked");

    tu_set(fx.c, TU_INT(1), TU_TEXT("int1"));
    expect_hit(fx.c, TU_REAL(1.0), TU_TEXT("int1"), NULL, TC_NO_EXPIRE);
    tu_set(fx.c, TU_REAL(1.0), TU_TEXT("real1"));
    expect_hit(fx.c, TU_INT(1), TU_TEXT("real1"), NULL, TC_NO_EXPIRE);
    expect_hit(fx.c, TU_REAL(1.0), TU_TEXT("real1"), NULL, TC_NO_EXPIRE);
    cr_assert_eq(tu_length(fx.c), 1, "1 and 1.0 are one row");

    tu_set(fx.c, TU_INT(0), TU_TEXT("zero"));
    tu_set(fx.c, TU_REAL(INFINITY), TU_TEXT("inf"));
    tu_set(fx.c, TU_INT(INT64_MIN), TU_TEXT("min"));
    tu_set(fx.c, TU_REAL(-two63), TU_TEXT("r-2^63"));
    tu_set(fx.c, TU_REAL(1.5), TU_TEXT("1.5"));
    if (exact) {
        tu_set(fx.c, TU_INT(INT64_MAX), TU_TEXT("max"));
        tu_set(fx.c, TU_REAL(two63), TU_TEXT("r2^63"));
        tu_set(fx.c, TU_INT(9007199254740993), TU_TEXT("odd"));
        tu_set(fx.c, TU_REAL(two53), TU_TEXT("even"));
    }

    tc_cache *cold = open_cold(fx.dir);
    struct {
        const tc_data *key;
        const char *want;
        int edge; /* needs exact INTEGER/REAL comparison */
    } reads[] = {
        {TU_REAL(-0.0), "zero", 0},
        {TU_REAL(0.0), "zero", 0},
        {TU_REAL(INFINITY), "inf", 0},
        {TU_INT(INT64_MIN), "r-2^63", 0},
        {TU_REAL(-two63), "r-2^63", 0},
        {TU_REAL(1.5), "1.5", 0},
        {TU_INT(1), "real1", 0},
        {TU_INT(INT64_MAX), "max", 1},
        {TU_REAL(two63), "r2^63", 1},
        {TU_INT(9007199254740993), "odd", 1},
        {TU_INT(9007199254740992), "even", 1},
        {TU_REAL(two53), "even", 1},
    };
    /* twice through the hot handle (the second read is served hot when
     * the first filled), once through the cold oracle */
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        if (reads[i].edge && !exact)
            continue;
        cr_log_info("read %zu (%s)", i, reads[i].want);
        expect_plain(fx.c, reads[i].key, TU_TEXT(reads[i].want));
        expect_plain(fx.c, reads[i].key, TU_TEXT(reads[i].want));
        expect_plain(cold, reads[i].key, TU_TEXT(reads[i].want));
    }
    cr_assert_eq(tu_length(fx.c), exact ? 9 : 5);
    expect_absent(fx.c, TU_REAL(2.0));
    expect_absent(fx.c, TU_REAL(-1.0));
    tu_expect_hot_clean(fx.c);
    tc_close(cold);
}

/* In a FanoutCache 1 and 1.0 hash to different shards (test_fanout.c), so
 * they are two items: normalisation must not merge them across shards. */
Test(hot, fanout_int_and_real_keys_stay_apart)
{
    fx.c = open_hot(fx.dir, 8, HOT);
    tu_set(fx.c, TU_INT(1), TU_TEXT("int"));
    expect_absent(fx.c, TU_REAL(1.0));
    tu_set(fx.c, TU_REAL(1.0), TU_TEXT("real"));
    expect_hit(fx.c, TU_INT(1), TU_TEXT("int"), NULL, TC_NO_EXPIRE);
    expect_hit(fx.c, TU_REAL(1.0), TU_TEXT("real"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
}

/* tc_get_buf on a hot item: an exact buffer is filled; a short one gets
 * TC_ETOOSMALL with the length needed and nothing written past @cap. */
Test(hot, get_buf_exact_and_too_small)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    char *v = tu_pattern(100, 3);
    TU_OK(tc_set(fx.c, KEY("k"), TU_TEXT(""), TC_NO_EXPIRE, NULL, 0));
    TU_OK(tc_set(fx.c, KEY("k"), TU_BYTES(v, 100), 20, NULL, 0));

    char buf[128];
    size_t len = 0;
    int type = -1;
    double exp = 0;
    uint64_t h = stats(fx.c).hits;
    memset(buf, '#', sizeof buf);
    TU_OK(tc_get_buf(fx.c, KEY("k"), buf, 100, &len, &type, &exp, 0));
    cr_assert_eq(stats(fx.c).hits, h + 1, "get_buf is served hot");
    cr_assert_eq(len, 100);
    cr_assert_eq(type, TC_BYTES);
    cr_assert_eq(exp, TU_T0 + 20);
    cr_assert(memcmp(buf, v, 100) == 0, "value bytes");
    cr_assert_eq(buf[100], '#', "nothing written past the value");

    memset(buf, '#', sizeof buf);
    len = 0;
    TU_RC(tc_get_buf(fx.c, KEY("k"), buf, 99, &len, &type, NULL, 0),
          TC_ETOOSMALL);
    cr_assert_eq(len, 100, "TC_ETOOSMALL reports the length needed");
    cr_assert_eq(buf[99], '#', "nothing written past cap");
    len = 0;
    TU_RC(tc_get_buf(fx.c, KEY("k"), NULL, 0, &len, NULL, NULL, 0),
          TC_ETOOSMALL);
    cr_assert_eq(len, 100);

    /* numbers are 8 native bytes */
    tu_set(fx.c, KEY("i"), TU_INT(-123456789012345));
    int64_t i = 0;
    h = stats(fx.c).hits;
    TU_OK(tc_get_buf(fx.c, KEY("i"), &i, sizeof i, &len, &type, &exp, 0));
    cr_assert_eq(stats(fx.c).hits, h + 1);
    cr_assert_eq(len, 8);
    cr_assert_eq(type, TC_INT);
    cr_assert_eq(i, -123456789012345);
    cr_assert_eq(exp, TC_NO_EXPIRE);
    TU_RC(tc_get_buf(fx.c, KEY("i"), &i, 7, &len, NULL, NULL, 0), TC_ETOOSMALL);
    cr_assert_eq(len, 8);
    tu_set(fx.c, KEY("d"), TU_REAL(-2.75));
    double d = 0;
    TU_OK(tc_get_buf(fx.c, KEY("d"), &d, sizeof d, &len, &type, NULL, 0));
    cr_assert_eq(type, TC_REAL);
    cr_assert_eq(d, -2.75);

    /* an empty value fits a zero-length buffer */
    tu_set(fx.c, KEY("e"), TU_TEXT(""));
    len = 99;
    TU_OK(tc_get_buf(fx.c, KEY("e"), NULL, 0, &len, &type, NULL, 0));
    cr_assert_eq(len, 0);
    cr_assert_eq(type, TC_TEXT);
    free(v);
    tu_expect_hot_clean(fx.c);
}

/* A key present in SQLite but not in the (fresh) segment: the first get
 * misses and fills, the next one hits, with value, tag and expiry intact;
 * tc_get_buf fills too. */
Test(hot, miss_then_fill_then_hit)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    TU_OK(tc_set(fx.c, KEY("a"), TU_TEXT("va"), 50, TU_TEXT("ta"), 0));
    TU_OK(tc_set(fx.c, KEY("b"), TU_INT(77), TC_NO_EXPIRE, NULL, 0));
    tc_close(fx.c);
    TU_OK(tc_hot_drop(fx.dir)); /* the next open starts empty */
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);

    tc_hot_stats s0 = stats(fx.c);
    cr_assert_eq(
        expect_get(fx.c, KEY("a"), TU_TEXT("va"), TU_TEXT("ta"), TU_T0 + 50), 0,
        "a fresh segment cannot hit");
    tc_hot_stats s1 = stats(fx.c);
    cr_assert_geq(s1.misses, s0.misses + 1, "the first get is a miss");
    cr_assert_eq(s1.fills, s0.fills + 1, "and fills");
    expect_hit(fx.c, KEY("a"), TU_TEXT("va"), TU_TEXT("ta"), TU_T0 + 50);

    int64_t i = 0;
    size_t len = 0;
    int type = 0;
    TU_OK(tc_get_buf(fx.c, KEY("b"), &i, sizeof i, &len, &type, NULL, 0));
    cr_assert_eq(i, 77);
    cr_assert_eq(stats(fx.c).fills, s1.fills + 1, "get_buf fills too");
    expect_hit(fx.c, KEY("b"), TU_INT(77), NULL, TC_NO_EXPIRE);

    /* a key absent from SQLite fills nothing */
    uint64_t f = stats(fx.c).fills;
    expect_absent(fx.c, KEY("nope"));
    cr_assert_eq(stats(fx.c).fills, f, "nothing to fill for a missing key");
    tu_expect_hot_clean(fx.c);
}

/* ===================================================================== */
/* Coherence of every write path                                         */

/* A delete through one handle: neither handle may serve the old hot copy,
 * and a later set is seen at once. */
Test(hot, delete_is_never_served_stale)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v1"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v1"), NULL, TC_NO_EXPIRE);
    expect_hit(h2, KEY("k"), TU_TEXT("v1"), NULL, TC_NO_EXPIRE);

    TU_OK(tc_delete(h2, KEY("k"), 0));
    expect_absent(fx.c, KEY("k"));
    expect_absent(h2, KEY("k"));
    TU_RC(tc_delete(fx.c, KEY("k"), 0), TC_NOTFOUND);

    tu_set(h2, KEY("k"), TU_TEXT("v2"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v2"), NULL, TC_NO_EXPIRE);
    /* a new value of another type, tag and expiry replaces all of it */
    TU_OK(tc_set(fx.c, KEY("k"), TU_INT(5), 9, TU_INT(1), 0));
    expect_get(h2, KEY("k"), TU_INT(5), TU_INT(1), TU_T0 + 9);
    tu_set(h2, KEY("k"), TU_BSTR("plain"));
    expect_get(fx.c, KEY("k"), TU_BSTR("plain"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* incr, decr, touch, pop and add through either handle are seen at once
 * by both, however hot the old value was. */
Test(hot, incr_touch_pop_add_visible_through_both_handles)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h[2] = {fx.c, h2};
    tc_value out = TC_VALUE_INIT;

    tu_set(fx.c, KEY("n"), TU_INT(5));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("n"), TU_INT(5));
    TU_OK(tc_incr(fx.c, KEY("n"), TU_INT(3), NULL, &out, 0));
    cr_assert_eq(out.i, 8);
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("n"), TU_INT(8));
    TU_OK(tc_incr(h2, KEY("n"), TU_INT(-2), NULL, NULL, 0)); /* decr */
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("n"), TU_INT(6));
    TU_OK(tc_incr(fx.c, KEY("n"), TU_REAL(0.5), NULL, NULL, 0));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("n"), TU_REAL(6.5));
    /* incr on a missing key creates it without tag or expiry */
    TU_OK(tc_incr(h2, KEY("c"), TU_INT(1), TU_INT(10), &out, 0));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("c"), TU_INT(11));

    /* touch: a never-expiring hot copy must not outlive its new expiry */
    tu_set(fx.c, KEY("t"), TU_TEXT("tv"));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("t"), TU_TEXT("tv"));
    TU_OK(tc_touch(h2, KEY("t"), 5, 0));
    for (int j = 0; j < 2; j++)
        expect_get(h[j], KEY("t"), TU_TEXT("tv"), NULL, TU_T0 + 5);
    TU_OK(tc_touch(fx.c, KEY("t"), TC_NO_EXPIRE, 0));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("t"), TU_TEXT("tv"));
    TU_OK(tc_touch(fx.c, KEY("t"), 5, 0));
    tu_clock_advance(&fx.clk, 5);
    for (int j = 0; j < 2; j++)
        expect_absent(h[j], KEY("t"));
    TU_RC(tc_touch(h2, KEY("t"), 100, 0), TC_NOTFOUND);

    /* pop */
    tu_set(fx.c, KEY("p"), TU_TEXT("pv"));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("p"), TU_TEXT("pv"));
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_pop(h2, KEY("p"), &it, 0));
    expect_value(&it.value, TU_TEXT("pv"), "popped");
    tc_item_clear(&it);
    for (int j = 0; j < 2; j++)
        expect_absent(h[j], KEY("p"));
    TU_RC(tc_pop(fx.c, KEY("p"), NULL, 0), TC_NOTFOUND);

    /* add: a miss is not cached as "absent"; an existing item wins */
    for (int j = 0; j < 2; j++)
        expect_absent(h[j], KEY("a"));
    TU_OK(tc_add(h2, KEY("a"), TU_TEXT("first"), TC_NO_EXPIRE, NULL, 0));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("a"), TU_TEXT("first"));
    TU_RC(tc_add(fx.c, KEY("a"), TU_TEXT("second"), TC_NO_EXPIRE, NULL, 0),
          TC_EXISTS);
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("a"), TU_TEXT("first"));
    /* add over an expired item replaces it */
    TU_OK(tc_set(fx.c, KEY("e"), TU_TEXT("old"), 1, NULL, 0));
    for (int j = 0; j < 2; j++)
        expect_get(h[j], KEY("e"), TU_TEXT("old"), NULL, tc_now(fx.c) + 1);
    tu_clock_advance(&fx.clk, 2);
    TU_OK(tc_add(h2, KEY("e"), TU_TEXT("new"), TC_NO_EXPIRE, NULL, 0));
    for (int j = 0; j < 2; j++)
        expect_plain(h[j], KEY("e"), TU_TEXT("new"));
    tc_value_clear(&out);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* Tags and expiry times come back from hot hits as stored (every tag
 * type), and an item without a tag reports none. */
Test(hot, tag_and_expire_time_from_hot_hits)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    TU_OK(tc_set(fx.c, KEY("t1"), TU_TEXT("v"), 1.25, TU_TEXT("news"), 0));
    TU_OK(tc_set(fx.c, KEY("t2"), TU_TEXT("v"), 3600, TU_BYTES(bin, 7), 0));
    TU_OK(tc_set(fx.c, KEY("t3"), TU_TEXT("v"), TC_NO_EXPIRE, TU_INT(-9), 0));
    TU_OK(tc_set(fx.c, KEY("t4"), TU_TEXT("v"), 1e6, TU_REAL(1.5), 0));
    TU_OK(tc_set(fx.c, KEY("t5"), TU_TEXT("v"), 7, NULL, 0));
    expect_hit(fx.c, KEY("t1"), TU_TEXT("v"), TU_TEXT("news"), TU_T0 + 1.25);
    expect_hit(fx.c, KEY("t2"), TU_TEXT("v"), TU_BYTES(bin, 7), TU_T0 + 3600);
    expect_hit(fx.c, KEY("t3"), TU_TEXT("v"), TU_INT(-9), TC_NO_EXPIRE);
    expect_hit(fx.c, KEY("t4"), TU_TEXT("v"), TU_REAL(1.5), TU_T0 + 1e6);
    expect_hit(fx.c, KEY("t5"), TU_TEXT("v"), NULL, TU_T0 + 7);
    /* the same through a fill */
    tc_close(fx.c);
    TU_OK(tc_hot_drop(fx.dir));
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    for (int pass = 0; pass < 2; pass++) {
        expect_get(fx.c, KEY("t1"), TU_TEXT("v"), TU_TEXT("news"),
                   TU_T0 + 1.25);
        expect_get(fx.c, KEY("t3"), TU_TEXT("v"), TU_INT(-9), TC_NO_EXPIRE);
        expect_get(fx.c, KEY("t4"), TU_TEXT("v"), TU_REAL(1.5), TU_T0 + 1e6);
        expect_get(fx.c, KEY("t2"), TU_TEXT("v"), TU_BYTES(bin, 7),
                   TU_T0 + 3600);
    }
    expect_hit(fx.c, KEY("t2"), TU_TEXT("v"), TU_BYTES(bin, 7), TU_T0 + 3600);
    tu_expect_hot_clean(fx.c);
}

/* Expiry follows the injected clock exactly as SQLite does (live while
 * expire_time > now): a resident item becomes a miss at its expire time,
 * not a hit; items stored already expired are never served. */
Test(hot, expiry_follows_the_injected_clock)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    TU_OK(tc_set(fx.c, KEY("k"), TU_TEXT("v"), 10, NULL, 0));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TU_T0 + 10);
    tu_clock_set(&fx.clk, TU_T0 + 9.5);
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TU_T0 + 10);

    tu_clock_set(&fx.clk, TU_T0 + 10); /* boundary: expired */
    tc_hot_stats s0 = stats(fx.c);
    expect_absent(fx.c, KEY("k"));
    tc_hot_stats s1 = stats(fx.c);
    cr_assert_geq(s1.misses, s0.misses + 1, "an expired item is a miss");
    tu_clock_set(&fx.clk, TU_T0 + 1000);
    expect_absent(fx.c, KEY("k"));

    /* expire 0 or negative: stored already expired, never served */
    TU_OK(tc_set(fx.c, KEY("z"), TU_TEXT("v"), 0, NULL, 0));
    expect_absent(fx.c, KEY("z"));
    TU_OK(tc_set(fx.c, KEY("n"), TU_TEXT("v"), -5, NULL, 0));
    expect_absent(fx.c, KEY("n"));

    /* a new set of the same key is live again and hot */
    TU_OK(tc_set(fx.c, KEY("k"), TU_TEXT("v2"), 10, NULL, 0));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v2"), NULL, TU_T0 + 1010);

    /* the clock going back makes SQLite's row live again; the hot tier
     * must then agree (serve it, from SQLite or hot) */
    tu_clock_set(&fx.clk, TU_T0 + 1020);
    expect_absent(fx.c, KEY("k"));
    tu_clock_set(&fx.clk, TU_T0 + 1005);
    expect_get(fx.c, KEY("k"), TU_TEXT("v2"), NULL, TU_T0 + 1010);
    expect_get(fx.c, KEY("k"), TU_TEXT("v2"), NULL, TU_T0 + 1010);
    tu_expect_hot_clean(fx.c);
}

/* ===================================================================== */
/* Bulk operations make the shard's hot items disappear                  */

#define NB 64

static void bkey(int i, char *out, size_t cap)
{
    snprintf(out, cap, "bulk-%03d", i);
}

/* populate - NB items over the shards: tag "a" for even i, "b" for odd;
 * every third expires at T0+10; each read once through both handles so
 * all of them are hot. */
static void populate(tc_cache *h2)
{
    for (int i = 0; i < NB; i++) {
        char k[32];
        bkey(i, k, sizeof k);
        TU_OK(tc_set(fx.c, KEY(k), TU_INT(i), i % 3 == 0 ? 10 : TC_NO_EXPIRE,
                     TU_TEXT(i % 2 ? "b" : "a"), 0));
    }
    for (int i = 0; i < NB; i++) {
        char k[32];
        bkey(i, k, sizeof k);
        double e = i % 3 == 0 ? TU_T0 + 10 : TC_NO_EXPIRE;
        const tc_data *tag = TU_TEXT(i % 2 ? "b" : "a");
        expect_hit(fx.c, KEY(k), TU_INT(i), tag, e);
        expect_hit(h2, KEY(k), TU_INT(i), tag, e);
    }
}

/* check_bulk - item i must be present iff @keep(i), through both
 * handles. */
static void check_bulk(tc_cache *h2, int (*keep)(int))
{
    tc_cache *h[2] = {fx.c, h2};
    for (int i = 0; i < NB; i++) {
        char k[32];
        bkey(i, k, sizeof k);
        for (int j = 0; j < 2; j++) {
            cr_log_info("key %s handle %d", k, j);
            if (keep(i))
                expect_get(h[j], KEY(k), TU_INT(i), TU_TEXT(i % 2 ? "b" : "a"),
                           i % 3 == 0 ? TU_T0 + 10 : TC_NO_EXPIRE);
            else
                expect_absent(h[j], KEY(k));
        }
    }
}

static int keep_none(int i)
{
    (void)i;
    return 0;
}

static int keep_odd(int i)
{
    return i % 2;
}

static int keep_not_third(int i)
{
    return i % 3 != 0;
}

Test(hot, clear_removes_hot_items)
{
    fx.c = open_hot(fx.dir, 4, HOT);
    tc_cache *h2 = open_hot(fx.dir, 4, HOT);
    populate(h2);
    uint64_t n = 0;
    TU_OK(tc_clear(h2, &n, 0));
    cr_assert_eq(n, NB);
    check_bulk(h2, keep_none);
    cr_assert_eq(stats(fx.c).items, 0,
                 "clear's items are swept once it committed");
    /* the shards serve new items again */
    tu_set(fx.c, KEY("bulk-000"), TU_TEXT("again"));
    expect_hit(h2, KEY("bulk-000"), TU_TEXT("again"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

Test(hot, evict_by_tag_removes_hot_items)
{
    fx.c = open_hot(fx.dir, 4, HOT);
    tc_cache *h2 = open_hot(fx.dir, 4, HOT);
    populate(h2);
    uint64_t n = 0;
    TU_OK(tc_evict(fx.c, TU_TEXT("a"), &n, 0));
    cr_assert_eq(n, NB / 2);
    check_bulk(h2, keep_odd);
    tu_set(fx.c, KEY("bulk-000"), TU_TEXT("again"));
    expect_hit(h2, KEY("bulk-000"), TU_TEXT("again"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* tc_expire with an explicit time ahead of the clock: the removed items
 * are still live by the clock, so only the invalidation hides them. */
Test(hot, expire_removes_hot_items)
{
    fx.c = open_hot(fx.dir, 4, HOT);
    tc_cache *h2 = open_hot(fx.dir, 4, HOT);
    populate(h2);
    uint64_t n = 0;
    TU_OK(tc_expire(h2, TU_T0 + 20, &n, 0));
    cr_assert_eq(n, (NB + 2) / 3);
    check_bulk(h2, keep_not_third);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* tc_cull with a small size_limit removes the oldest items (least
 * recently stored): hot copies of the removed ones must go, the rest stay
 * right. Half the values are file-backed so the volume is predictable;
 * the oracle is a cold handle. */
Test(hot, cull_removes_hot_items)
{
    enum { N = 20, BIG = 40000 };
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *cold = open_cold(fx.dir);
    char *big = tu_pattern(BIG, 5);
    for (int i = 0; i < N; i++) {
        tu_clock_set(&fx.clk, TU_T0 + i);
        if (i % 2)
            tu_set(fx.c, TU_INT(i), TU_INT(i));
        else
            tu_set(fx.c, TU_INT(i), TU_BYTES(big, BIG));
    }
    for (int i = 0; i < N; i++) {
        if (i % 2) {
            expect_plain(fx.c, TU_INT(i), TU_INT(i));
            expect_hit(fx.c, TU_INT(i), TU_INT(i), NULL, TC_NO_EXPIRE);
        } else {
            expect_plain(fx.c, TU_INT(i), TU_BYTES(big, BIG));
        }
    }
    TU_OK(tc_setting_put(fx.c, "size_limit", TU_INT(300000)));
    uint64_t n = 0;
    TU_OK(tc_cull(fx.c, &n, 0));
    cr_log_info("cull removed %llu", (unsigned long long)n);
    cr_assert(n > 1 && n < N, "cull removed %llu of %d", (unsigned long long)n,
              N);
    int removed_small = 0;
    for (int i = 0; i < N; i++) {
        int rc = tc_contains(cold, TU_INT(i));
        cr_assert(rc == TC_OK || rc == TC_NOTFOUND);
        if (rc == TC_NOTFOUND) {
            expect_absent(fx.c, TU_INT(i));
            removed_small += i % 2;
        } else if (i % 2) {
            expect_plain(fx.c, TU_INT(i), TU_INT(i));
        } else {
            expect_plain(fx.c, TU_INT(i), TU_BYTES(big, BIG));
        }
    }
    cr_assert_gt(removed_small, 0, "the cull removed hot (small) items");
    free(big);
    tu_expect_hot_clean(fx.c);
    tc_close(cold);
}

/* ===================================================================== */
/* Transactions and batches                                              */

/* Inside tc_begin..tc_commit the writer sees its own writes, the other
 * handle sees the committed value only (never a published uncommitted
 * one), and after commit both see the new value; a rollback leaves no
 * trace, and fills resume after it. */
Test(hot, transaction_stays_coherent)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v1"));
    tu_set(fx.c, KEY("j"), TU_TEXT("j1"));
    expect_hit(h2, KEY("k"), TU_TEXT("v1"), NULL, TC_NO_EXPIRE);
    expect_hit(h2, KEY("j"), TU_TEXT("j1"), NULL, TC_NO_EXPIRE);

    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, KEY("k"), TU_TEXT("v2"));
    TU_OK(tc_delete(fx.c, KEY("j"), 0));
    tu_set(fx.c, KEY("new"), TU_TEXT("n"));
    expect_plain(fx.c, KEY("k"), TU_TEXT("v2"));
    expect_absent(fx.c, KEY("j"));
    for (int pass = 0; pass < 2; pass++) {
        expect_plain(h2, KEY("k"), TU_TEXT("v1"));
        expect_plain(h2, KEY("j"), TU_TEXT("j1"));
        expect_absent(h2, KEY("new"));
    }
    TU_OK(tc_commit(fx.c));
    for (int pass = 0; pass < 2; pass++) {
        expect_plain(h2, KEY("k"), TU_TEXT("v2"));
        expect_absent(h2, KEY("j"));
        expect_plain(h2, KEY("new"), TU_TEXT("n"));
        expect_plain(fx.c, KEY("k"), TU_TEXT("v2"));
    }
    expect_hit(h2, KEY("k"), TU_TEXT("v2"), NULL, TC_NO_EXPIRE);

    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, KEY("k"), TU_TEXT("v3"));
    TU_OK(tc_delete(fx.c, KEY("new"), 0));
    expect_plain(fx.c, KEY("k"), TU_TEXT("v3"));
    TU_OK(tc_rollback(fx.c));
    for (int pass = 0; pass < 2; pass++) {
        expect_plain(fx.c, KEY("k"), TU_TEXT("v2"));
        expect_plain(h2, KEY("k"), TU_TEXT("v2"));
        expect_plain(h2, KEY("new"), TU_TEXT("n"));
    }
    /* the rollback lowered the fill floor again: reads are hot again */
    expect_hit(h2, KEY("k"), TU_TEXT("v2"), NULL, TC_NO_EXPIRE);
    expect_hit(fx.c, KEY("new"), TU_TEXT("n"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* The same over a FanoutCache, where tc_begin locks every shard and a
 * nested commit does not commit. */
Test(hot, fanout_nested_transaction_stays_coherent)
{
    fx.c = open_hot(fx.dir, 4, HOT);
    tc_cache *h2 = open_hot(fx.dir, 4, HOT);
    for (int i = 0; i < 16; i++)
        tu_set(fx.c, TU_INT(i), TU_INT(i));
    for (int i = 0; i < 16; i++)
        expect_hit(h2, TU_INT(i), TU_INT(i), NULL, TC_NO_EXPIRE);
    TU_OK(tc_begin(fx.c, 0));
    TU_OK(tc_begin(fx.c, 0));
    for (int i = 0; i < 16; i++)
        tu_set(fx.c, TU_INT(i), TU_INT(100 + i));
    TU_OK(tc_commit(fx.c)); /* inner: nothing committed yet */
    for (int i = 0; i < 16; i++)
        expect_plain(h2, TU_INT(i), TU_INT(i));
    TU_OK(tc_commit(fx.c));
    for (int i = 0; i < 16; i++) {
        expect_plain(h2, TU_INT(i), TU_INT(100 + i));
        expect_plain(fx.c, TU_INT(i), TU_INT(100 + i));
    }
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* set_many and delete_many replace or remove hot items in every shard
 * they touch, as seen by both handles (get and get_many). */
Test(hot, set_many_and_delete_many_stay_coherent)
{
    enum { N = 40 };
    fx.c = open_hot(fx.dir, 4, HOT);
    tc_cache *h2 = open_hot(fx.dir, 4, HOT);
    tc_data keys[N], vals[N];
    int64_t kv[N], vv[N];
    for (int i = 0; i < N; i++) {
        kv[i] = i;
        vv[i] = 1000 + i;
        keys[i] = tc_int(&kv[i]);
        vals[i] = tc_int(&vv[i]);
        tu_set(fx.c, &keys[i], TU_INT(i));
    }
    for (int i = 0; i < N; i++)
        expect_hit(h2, &keys[i], TU_INT(i), NULL, TC_NO_EXPIRE);

    TU_OK(tc_set_many(h2, keys, vals, N, 30, TU_TEXT("m"), 0));
    for (int i = 0; i < N; i++) {
        expect_get(fx.c, &keys[i], TU_INT(1000 + i), TU_TEXT("m"), TU_T0 + 30);
        expect_get(h2, &keys[i], TU_INT(1000 + i), TU_TEXT("m"), TU_T0 + 30);
    }
    tc_item outs[N];
    int rcs[N];
    for (int i = 0; i < N; i++)
        outs[i] = (tc_item)TC_ITEM_INIT;
    TU_OK(tc_get_many(fx.c, keys, N, outs, rcs, 0));
    for (int i = 0; i < N; i++) {
        TU_RC(rcs[i], TC_OK);
        expect_value(&outs[i].value, TU_INT(1000 + i), "get_many");
        tc_item_clear(&outs[i]);
    }

    uint64_t deleted = 0;
    TU_OK(tc_delete_many(fx.c, keys, N / 2, &deleted, 0));
    cr_assert_eq(deleted, N / 2);
    for (int i = 0; i < N; i++) {
        if (i < N / 2) {
            expect_absent(fx.c, &keys[i]);
            expect_absent(h2, &keys[i]);
        } else {
            expect_get(h2, &keys[i], TU_INT(1000 + i), TU_TEXT("m"),
                       TU_T0 + 30);
        }
    }
    TU_OK(tc_get_many(h2, keys, N, outs, rcs, 0));
    for (int i = 0; i < N; i++) {
        TU_RC(rcs[i], i < N / 2 ? TC_NOTFOUND : TC_OK);
        tc_item_clear(&outs[i]);
    }
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* ===================================================================== */
/* Sizes and memory                                                      */

/* With an 8 MiB segment a page is 32 KiB: a value bigger than a page
 * stays cold-only (inline in SQLite or file-backed) but is returned
 * right, by get and get_buf; replacing a hot value by a large one (and
 * back) is never served stale. */
Test(hot, large_value_stays_cold_and_correct)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    size_t sizes[] = {32760, 40000, 300000};
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        char *v = tu_pattern(n, (unsigned)s + 10);
        char k[32];
        snprintf(k, sizeof k, "big-%zu", n);
        TU_OK(tc_set(fx.c, KEY(k), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
        for (int pass = 0; pass < 2; pass++) {
            expect_cold(fx.c, KEY(k), TU_BYTES(v, n), NULL, TC_NO_EXPIRE);
            expect_cold(h2, KEY(k), TU_BYTES(v, n), NULL, TC_NO_EXPIRE);
        }
        char *buf = malloc(n);
        size_t len = 0;
        int type = 0;
        TU_OK(tc_get_buf(h2, KEY(k), buf, n, &len, &type, NULL, 0));
        cr_assert_eq(len, n);
        cr_assert_eq(type, TC_BYTES);
        cr_assert(memcmp(buf, v, n) == 0);
        TU_RC(tc_get_buf(h2, KEY(k), buf, n - 1, &len, NULL, NULL, 0),
              TC_ETOOSMALL);
        cr_assert_eq(len, n);
        free(buf);

        /* hot small value -> large -> small again */
        tu_set(fx.c, KEY("swap"), TU_TEXT("small"));
        expect_hit(h2, KEY("swap"), TU_TEXT("small"), NULL, TC_NO_EXPIRE);
        tu_set(h2, KEY("swap"), TU_BYTES(v, n));
        expect_plain(fx.c, KEY("swap"), TU_BYTES(v, n));
        expect_plain(h2, KEY("swap"), TU_BYTES(v, n));
        tu_set(fx.c, KEY("swap"), TU_TEXT("small again"));
        expect_hit(h2, KEY("swap"), TU_TEXT("small again"), NULL, TC_NO_EXPIRE);
        free(v);
    }
    /* half a page does fit */
    char *v = tu_pattern(16000, 99);
    tu_set(fx.c, KEY("half"), TU_BYTES(v, 16000));
    expect_hit(h2, KEY("half"), TU_BYTES(v, 16000), NULL, TC_NO_EXPIRE);
    free(v);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* Many more bytes than fit in 8 MiB, in sizes from 64 B to 20 KiB (many
 * size classes) plus many tiny items: CLOCK evicts (evictions > 0), the
 * segment never grows, and every read returns the right value. */
Test(hot, small_segment_evicts_and_stays_correct)
{
    /* valgrind: a smaller run, still well over the segment's size */
    int slow = getenv("TC_UNDER_VALGRIND") != NULL;
    int n = slow ? 1100 : 2600, tiny = slow ? 3000 : 20000;
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t sz = 64 + ((size_t)i * 7919u) % 20000u;
        char *v = tu_pattern(sz, (unsigned)i);
        TU_OK(tc_set(fx.c, TU_INT(i), TU_BYTES(v, sz), TC_NO_EXPIRE, NULL, 0));
        total += sz;
        free(v);
        if (i % 7 == 0) { /* reread an older key: fills compete too */
            int j = i / 2;
            size_t szj = 64 + ((size_t)j * 7919u) % 20000u;
            char *vj = tu_pattern(szj, (unsigned)j);
            expect_plain(fx.c, TU_INT(j), TU_BYTES(vj, szj));
            free(vj);
        }
    }
    for (int i = 0; i < tiny; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "tiny-%d", i);
        snprintf(v, sizeof v, "v%d", i * 31);
        tu_set(fx.c, KEY(k), TU_TEXT(v));
        total += strlen(v);
    }
    cr_assert_gt(total, (uint64_t)HOT + HOT / 4, "bigger than the segment");

    uint64_t hits0 = stats(fx.c).hits;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            size_t sz = 64 + ((size_t)i * 7919u) % 20000u;
            char *v = tu_pattern(sz, (unsigned)i);
            expect_plain(fx.c, TU_INT(i), TU_BYTES(v, sz));
            free(v);
        }
        for (int i = 0; i < tiny; i += 7) {
            char k[32], v[32];
            snprintf(k, sizeof k, "tiny-%d", i);
            snprintf(v, sizeof v, "v%d", i * 31);
            expect_plain(fx.c, KEY(k), TU_TEXT(v));
        }
    }
    tc_hot_stats s = stats(fx.c);
    cr_log_info("evictions %llu items %llu free %llu hits %llu fills %llu",
                (unsigned long long)s.evictions, (unsigned long long)s.items,
                (unsigned long long)s.free_bytes, (unsigned long long)s.hits,
                (unsigned long long)s.fills);
    cr_assert_gt(s.evictions, 0, "CLOCK evicted");
    cr_assert_gt(s.hits, hits0, "the full segment still serves hits");
    cr_assert_gt(s.items, 0);
    cr_assert_eq(s.size, HOT);
    cr_assert_leq(s.free_bytes, HOT);

    char seg[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    struct stat st = stat_of(seg);
    cr_assert_eq((uint64_t)st.st_size, HOT, "segment size %lld",
                 (long long)st.st_size);
    cr_assert_leq((uint64_t)st.st_blocks * 512, HOT,
                  "segment uses %lld bytes of memory",
                  (long long)st.st_blocks * 512);
    tu_expect_hot_clean(fx.c);
}

/* One key rewritten with ever-changing sizes (so its size class moves):
 * every read sees the last write. */
Test(hot, rewriting_one_key_always_returns_the_last_value)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    for (int i = 0; i < 500; i++) {
        size_t sz = (size_t)(i * 977) % 30000u;
        char *v = tu_pattern(sz, (unsigned)i);
        tc_cache *w = i % 3 ? fx.c : h2;
        TU_OK(tc_set(w, KEY("k"), TU_BYTES(v, sz), TC_NO_EXPIRE, NULL, 0));
        expect_plain(fx.c, KEY("k"), TU_BYTES(v, sz));
        expect_plain(h2, KEY("k"), TU_BYTES(v, sz));
        free(v);
    }
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* need = 48-byte item header + key + tag + value must fit one 32 KiB
 * page: with key "k" and no tag, 32719 value bytes fit and 32720 do not.
 * Values are inline in SQLite up to 32767 bytes. Either way the value
 * read back is exact, and the segment's structure stays sound. */
Test(hot, values_around_the_page_size)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    for (size_t n = 32700; n <= 32740; n++) {
        char *v = tu_pattern(n, (unsigned)n);
        tu_set(fx.c, KEY("k"), TU_BYTES(v, n));
        uint64_t d =
            expect_get(fx.c, KEY("k"), TU_BYTES(v, n), NULL, TC_NO_EXPIRE);
        cr_log_info("value %zu: hot hits +%llu", n, (unsigned long long)d);
        if (n <= 32719)
            cr_assert_eq(d, 1, "a %zu-byte value fits a 32 KiB page", n);
        else
            cr_assert_eq(d, 0, "a %zu-byte value cannot fit a page", n);
        free(v);
    }
    tu_expect_hot_clean(fx.c);
}

/* Keys and tags bigger than a page: nothing hot, everything right. */
Test(hot, key_or_tag_larger_than_a_page_stays_cold)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    char *big = tu_pattern(40000, 8);
    const tc_data *bk = TU_TEXTN(big, 40000), *bt = TU_BYTES(big, 40000);
    TU_OK(tc_set(fx.c, bk, TU_TEXT("v"), TC_NO_EXPIRE, NULL, 0));
    TU_OK(tc_set(fx.c, KEY("t"), TU_TEXT("w"), TC_NO_EXPIRE, bt, 0));
    for (int pass = 0; pass < 2; pass++) {
        expect_cold(h2, bk, TU_TEXT("v"), NULL, TC_NO_EXPIRE);
        expect_cold(h2, KEY("t"), TU_TEXT("w"), bt, TC_NO_EXPIRE);
    }
    tu_set(h2, bk, TU_TEXT("v2"));
    expect_plain(fx.c, bk, TU_TEXT("v2"));
    TU_OK(tc_delete(fx.c, bk, 0));
    expect_absent(h2, bk);
    free(big);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* Without an injected clock the hot tier's expiry check uses a coarse
 * system clock: an item must still stop being served once expired. */
Test(hot, expiry_with_the_system_clock)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_OK(tc_set_hot_size(c, HOT));
    TU_OK(tc_set_shards(c, TC_SHARDS_PLAIN));
    TU_OK(tc_open(c, fx.dir, 0));
    fx.c = c;
    TU_OK(tc_set(c, KEY("k"), TU_TEXT("v"), 0.2, NULL, 0));
    TU_OK(tc_set(c, KEY("long"), TU_TEXT("v"), 3600, NULL, 0));
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(c, KEY("long"), &it, 0));
    tc_item_clear(&it);
    uint64_t h = stats(c).hits;
    TU_OK(tc_get(c, KEY("long"), &it, 0));
    tc_item_clear(&it);
    cr_assert_eq(stats(c).hits, h + 1, "hot under the system clock");
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    expect_absent(c, KEY("k"));
    tu_expect_hot_clean(c);
}

/* A write that fails and rolls back (integer overflow, wrong type) leaves
 * the hot copy in place and lets fills resume (the floor is put back). */
Test(hot, failed_write_rolls_back_and_fills_resume)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("n"), TU_INT(INT64_MAX));
    tu_set(fx.c, KEY("s"), TU_TEXT("text"));
    /* "c" committed inside a user transaction: in SQLite, not hot */
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, KEY("c"), TU_TEXT("cv"));
    TU_OK(tc_commit(fx.c));

    TU_RC(tc_incr(fx.c, KEY("n"), TU_INT(1), NULL, NULL, 0), TC_ERANGE);
    TU_RC(tc_incr(fx.c, KEY("s"), TU_INT(1), NULL, NULL, 0), TC_ETYPE);
    expect_hit(fx.c, KEY("n"), TU_INT(INT64_MAX), NULL, TC_NO_EXPIRE);
    expect_hit(fx.c, KEY("s"), TU_TEXT("text"), NULL, TC_NO_EXPIRE);
    uint64_t f = stats(fx.c).fills;
    expect_plain(fx.c, KEY("c"), TU_TEXT("cv"));
    cr_assert_eq(stats(fx.c).fills, f + 1, "the fill was not refused");
    expect_hit(fx.c, KEY("c"), TU_TEXT("cv"), NULL, TC_NO_EXPIRE);
    uint64_t rec = 99;
    TU_OK(tc_hot_recover(fx.c, &rec));
    cr_assert_eq(rec, 0, "no dead process to recover");
    expect_hit(fx.c, KEY("c"), TU_TEXT("cv"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
}

/* ===================================================================== */
/* hot_size 0 handles                                                    */

/* A handle opened with hot size 0 reads SQLite only, yet every one of its
 * writes invalidates the hot copies the other handle would serve. */
Test(hot, hot_size_zero_handle_reads_cold_and_invalidates)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h0 = open_cold(fx.dir);
    cr_assert_eq(stats(h0).reading, 0, "hot size 0: not reading");

    const char *keys[] = {"set", "del", "incr", "touch", "pop", "evict"};
    for (size_t i = 0; i < 6; i++) {
        TU_OK(tc_set(fx.c, KEY(keys[i]), TU_INT((int64_t)i), TC_NO_EXPIRE,
                     i == 5 ? TU_TEXT("x") : NULL, 0));
        expect_hit(fx.c, KEY(keys[i]), TU_INT((int64_t)i),
                   i == 5 ? TU_TEXT("x") : NULL, TC_NO_EXPIRE);
    }
    for (int pass = 0; pass < 2; pass++)
        expect_cold(h0, KEY("set"), TU_INT(0), NULL, TC_NO_EXPIRE);

    tu_set(h0, KEY("set"), TU_TEXT("new"));
    TU_OK(tc_delete(h0, KEY("del"), 0));
    TU_OK(tc_incr(h0, KEY("incr"), TU_INT(10), NULL, NULL, 0));
    TU_OK(tc_touch(h0, KEY("touch"), 3, 0));
    TU_OK(tc_pop(h0, KEY("pop"), NULL, 0));
    uint64_t n = 0;
    TU_OK(tc_evict(h0, TU_TEXT("x"), &n, 0));
    cr_assert_eq(n, 1);

    expect_plain(fx.c, KEY("set"), TU_TEXT("new"));
    expect_absent(fx.c, KEY("del"));
    expect_plain(fx.c, KEY("incr"), TU_INT(12));
    expect_get(fx.c, KEY("touch"), TU_INT(3), NULL, TU_T0 + 3);
    expect_absent(fx.c, KEY("pop"));
    expect_absent(fx.c, KEY("evict"));
    tu_clock_advance(&fx.clk, 3);
    expect_absent(fx.c, KEY("touch"));

    TU_OK(tc_clear(h0, &n, 0));
    expect_absent(fx.c, KEY("set"));
    expect_absent(fx.c, KEY("incr"));
    expect_absent(h0, KEY("set"));
    tu_expect_hot_clean(fx.c);
    tc_close(h0);
}

/* ===================================================================== */
/* Segment files                                                         */

/* The segment is $TIERCACHE_SHM_DIR (default /dev/shm)/tiercache-<dev>-
 * <ino> of the cache directory, with a .lock companion; its size is
 * exactly hot_size and nobody but the owner may write it. */
Test(hot, segment_file_name_size_and_mode)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    char seg[TU_PATH_MAX], lock[TU_PATH_MAX], db[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    seg_path(fx.dir, ".lock", lock, sizeof lock);
    snprintf(db, sizeof db, "%s/cache.db", fx.dir);
    struct stat st = stat_of(seg), dbst = stat_of(db);
    cr_assert(S_ISREG(st.st_mode), "%s is a regular file", seg);
    cr_assert_eq((uint64_t)st.st_size, HOT, "size %lld", (long long)st.st_size);
    cr_assert_eq(st.st_mode & 022, 0, "mode %o is group/other-writable",
                 st.st_mode & 07777);
    cr_assert_eq(st.st_mode & 07777, dbst.st_mode & 07755,
                 "mode %o, cache.db %o", st.st_mode & 07777,
                 dbst.st_mode & 07777);
    cr_assert_eq(st.st_uid, dbst.st_uid, "owned by cache.db's owner");
    cr_assert(tu_exists(lock), "%s exists", lock);
    tu_expect_hot_clean(fx.c);
}

/* The segment takes cache.db's mode minus group/other write. */
Test(hotseg, segment_mode_follows_cache_db)
{
    static const mode_t modes[][2] = {
        {0660, 0640}, {0600, 0600}, {0666, 0644}, {0644, 0644}, {0640, 0640}};
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    char seg[TU_PATH_MAX], db[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    snprintf(db, sizeof db, "%s/cache.db", fx.dir);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        tc_close(fx.c);
        fx.c = NULL;
        TU_OK(tc_hot_drop(fx.dir));
        cr_assert(!tu_exists(seg), "tc_hot_drop removed %s", seg);
        cr_assert_eq(chmod(db, modes[i][0]), 0);
        fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
        struct stat st = stat_of(seg);
        cr_assert_eq(st.st_mode & 07777, modes[i][1],
                     "cache.db %o: segment %o, expected %o", modes[i][0],
                     st.st_mode & 07777, modes[i][1]);
        cr_assert_eq(stats(fx.c).attached, 1);
        expect_get(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
        expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    }
    tu_expect_hot_clean(fx.c);
}

/* The mode is cache.db's whatever the creating process's umask: a 077
 * umask must not lock the cache's group out of its segment. */
Test(hotseg, segment_mode_ignores_umask)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    char seg[TU_PATH_MAX], db[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    snprintf(db, sizeof db, "%s/cache.db", fx.dir);
    tc_close(fx.c);
    fx.c = NULL;
    TU_OK(tc_hot_drop(fx.dir));
    cr_assert_eq(chmod(db, 0660), 0);
    mode_t old = umask(077);
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    umask(old);
    struct stat st = stat_of(seg);
    cr_assert_eq(st.st_mode & 07777, 0640, "segment %o under umask 077",
                 st.st_mode & 07777);
    tu_expect_hot_clean(fx.c);
}

/* tc_hot_drop removes the segment; the next open recreates it, empty, and
 * reads are right (filled from SQLite). */
Test(hotseg, drop_removes_segment_and_next_open_recreates)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    TU_OK(tc_set(fx.c, KEY("k"), TU_TEXT("v"), 100, TU_TEXT("t"), 0));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), TU_TEXT("t"), TU_T0 + 100);
    char seg[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    cr_assert(tu_exists(seg));
    tc_close(fx.c);
    fx.c = NULL;
    TU_OK(tc_hot_drop(fx.dir));
    cr_assert(!tu_exists(seg), "tc_hot_drop removed %s", seg);
    TU_OK(tc_hot_drop(fx.dir)); /* nothing left to drop is fine */

    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    cr_assert(tu_exists(seg), "the next open recreated %s", seg);
    cr_assert_eq((uint64_t)stat_of(seg).st_size, HOT);
    tc_hot_stats s = stats(fx.c);
    cr_assert_eq(s.attached, 1);
    cr_assert_eq(s.items, 0, "a recreated segment starts empty");
    cr_assert_eq(
        expect_get(fx.c, KEY("k"), TU_TEXT("v"), TU_TEXT("t"), TU_T0 + 100), 0);
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), TU_TEXT("t"), TU_T0 + 100);
    tu_expect_hot_clean(fx.c);
}

/* Dropping the segment under an open handle: the handle keeps working and
 * must follow the new segment another handle creates, both ways. */
Test(hotseg, drop_while_attached_stays_coherent)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v1"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v1"), NULL, TC_NO_EXPIRE);
    TU_OK(tc_hot_drop(fx.dir));
    expect_plain(fx.c, KEY("k"), TU_TEXT("v1"));

    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    char seg[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    cr_assert(tu_exists(seg), "the new open created a new segment");
    tu_set(h2, KEY("k"), TU_TEXT("v2"));
    for (int pass = 0; pass < 2; pass++) {
        expect_plain(fx.c, KEY("k"), TU_TEXT("v2"));
        expect_plain(h2, KEY("k"), TU_TEXT("v2"));
    }
    tu_set(fx.c, KEY("k"), TU_TEXT("v3"));
    for (int pass = 0; pass < 2; pass++) {
        expect_plain(h2, KEY("k"), TU_TEXT("v3"));
        expect_plain(fx.c, KEY("k"), TU_TEXT("v3"));
    }
    TU_OK(tc_delete(h2, KEY("k"), 0));
    expect_absent(fx.c, KEY("k"));
    tu_expect_hot_clean(fx.c);
    tu_expect_hot_clean(h2);
    tc_close(h2);
}

/* tc_hot_gc removes the segment of a deleted directory and keeps the one
 * of a live cache (which keeps serving hits). */
Test(hotseg, gc_removes_orphan_and_keeps_live)
{
    char gone[TU_PATH_MAX], seg_gone[TU_PATH_MAX], seg_live[TU_PATH_MAX];
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("live"));
    snprintf(gone, sizeof gone, "%s/gone", fx.base);
    tc_cache *g = open_hot(gone, TC_SHARDS_PLAIN, HOT);
    tu_set(g, KEY("k"), TU_TEXT("gone"));
    seg_path(gone, "", seg_gone, sizeof seg_gone);
    seg_path(fx.dir, "", seg_live, sizeof seg_live);
    tc_close(g);
    cr_assert(tu_exists(seg_gone));
    tu_rmrf(gone);

    uint64_t removed = 0;
    TU_OK(tc_hot_gc(&removed));
    cr_assert_eq(removed, 1, "removed %llu", (unsigned long long)removed);
    cr_assert(!tu_exists(seg_gone), "%s removed", seg_gone);
    cr_assert(tu_exists(seg_live), "%s kept", seg_live);
    expect_hit(fx.c, KEY("k"), TU_TEXT("live"), NULL, TC_NO_EXPIRE);
    TU_OK(tc_hot_gc(&removed));
    cr_assert_eq(removed, 0, "nothing left to collect");
    cr_assert(tu_exists(seg_live));
    tu_expect_hot_clean(fx.c);
}

/* A directory replaced by another one at the same path (new inode): its
 * old segment is garbage; the moved cache gets a fresh one on open. */
Test(hotseg, gc_removes_segment_of_replaced_directory)
{
    char from[TU_PATH_MAX], to[TU_PATH_MAX], seg[TU_PATH_MAX];
    snprintf(from, sizeof from, "%s/from", fx.base);
    snprintf(to, sizeof to, "%s/to", fx.base);
    tc_cache *c = open_hot(from, TC_SHARDS_PLAIN, HOT);
    tu_set(c, KEY("k"), TU_TEXT("v"));
    seg_path(from, "", seg, sizeof seg);
    tc_close(c);
    cr_assert_eq(rename(from, to), 0);
    cr_assert_eq(mkdir(from, 0755), 0);

    uint64_t removed = 0;
    TU_OK(tc_hot_gc(&removed));
    cr_assert_eq(removed, 1, "removed %llu", (unsigned long long)removed);
    cr_assert(!tu_exists(seg), "%s removed", seg);

    fx.c = open_hot(to, TC_SHARDS_PLAIN, HOT);
    expect_plain(fx.c, KEY("k"), TU_TEXT("v"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
    tc_close(fx.c);
    fx.c = NULL;
    TU_OK(tc_hot_drop(to));
}

/* populate_and_close - a cache with hot values, closed, its segment path
 * in @seg. */
static void populate_and_close(char *seg, size_t cap)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    for (int i = 0; i < 50; i++)
        TU_OK(tc_set(fx.c, TU_INT(i), TU_INT(i * 3), 500, TU_TEXT("t"), 0));
    for (int i = 0; i < 50; i++)
        expect_hit(fx.c, TU_INT(i), TU_INT(i * 3), TU_TEXT("t"), TU_T0 + 500);
    seg_path(fx.dir, "", seg, cap);
    tc_close(fx.c);
    fx.c = NULL;
    cr_assert(tu_exists(seg));
}

/* check_reopened - after tampering: the open succeeds with a usable
 * segment of hot_size bytes, and every value is right. */
static void check_reopened(const char *seg, uint64_t size)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_hot_stats s = stats(fx.c);
    cr_assert_eq(s.attached, 1, "a replacement segment is attached");
    cr_assert_eq(s.size, size);
    for (int i = 0; i < 50; i++)
        expect_get(fx.c, TU_INT(i), TU_INT(i * 3), TU_TEXT("t"), TU_T0 + 500);
    for (int i = 0; i < 50; i++)
        expect_hit(fx.c, TU_INT(i), TU_INT(i * 3), TU_TEXT("t"), TU_T0 + 500);
    cr_assert_eq((uint64_t)stat_of(seg).st_size, size);
    tu_expect_hot_clean(fx.c);
}

/* Garbage in place of the magic: the segment is retired and replaced. */
Test(hotseg, corrupt_magic_is_replaced)
{
    char seg[TU_PATH_MAX];
    populate_and_close(seg, sizeof seg);
    unsigned char junk[8];
    memset(junk, 0xa5, sizeof junk);
    overwrite(seg, 0, junk, sizeof junk);
    check_reopened(seg, HOT);
    unsigned char head[8];
    int fd = open(seg, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, head, 8, 0), 8);
    close(fd);
    cr_assert(memcmp(head, junk, 8) != 0, "the corrupt segment was replaced");
}

/* A well-formed segment of another cache under this cache's name (same
 * size, other cache_id, seed and directory): it must never be used, or
 * the other cache's value would be served. */
Test(hotseg, segment_of_another_cache_is_replaced)
{
    char other[TU_PATH_MAX], seg_other[TU_PATH_MAX], seg[TU_PATH_MAX];
    snprintf(other, sizeof other, "%s/other", fx.base);
    tc_cache *o = open_hot(other, TC_SHARDS_PLAIN, HOT);
    tu_set(o, KEY("x"), TU_TEXT("from-other"));
    tu_set(o, KEY("only-other"), TU_TEXT("no"));
    expect_hit(o, KEY("x"), TU_TEXT("from-other"), NULL, TC_NO_EXPIRE);
    seg_path(other, "", seg_other, sizeof seg_other);
    tc_close(o);

    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("x"), TU_TEXT("mine"));
    seg_path(fx.dir, "", seg, sizeof seg);
    tc_close(fx.c);
    fx.c = NULL;

    size_t n = 0;
    char *img = tu_read_file(seg_other, &n);
    cr_assert_not_null(img);
    cr_assert_eq(n, HOT);
    overwrite(seg, 0, img, n);
    free(img);

    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    cr_assert_eq(stats(fx.c).attached, 1);
    for (int pass = 0; pass < 2; pass++) {
        expect_plain(fx.c, KEY("x"), TU_TEXT("mine"));
        expect_absent(fx.c, KEY("only-other"));
    }
    expect_hit(fx.c, KEY("x"), TU_TEXT("mine"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
    TU_OK(tc_hot_drop(other));
}

/* The metadata's hot_size changed since the segment was made: the old
 * segment is replaced by one of the recorded size. */
Test(hotseg, size_differing_from_metadata_is_replaced)
{
    char seg[TU_PATH_MAX];
    populate_and_close(seg, sizeof seg);
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db,
               "UPDATE TiercacheMeta SET value = %lld"
               " WHERE key = 'hot_size'",
               (long long)(2 * HOT));
    sqlite3_close(db);
    check_reopened(seg, 2 * HOT);
}

/* A segment file shorter or longer than its header says (a crashed
 * creator, an outside truncate): the open must not fault on it (SIGBUS
 * past the end of a mapping) and must replace it. */
Test(hotseg, truncated_or_extended_segment_is_replaced)
{
    static const off_t sizes[] = {0, 64, 4096, 1 << 20, 2 * HOT};
    char seg[TU_PATH_MAX];
    populate_and_close(seg, sizeof seg);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cr_log_info("truncate to %lld", (long long)sizes[i]);
        cr_assert_eq(truncate(seg, sizes[i]), 0, "truncate: %s",
                     strerror(errno));
        check_reopened(seg, HOT);
        tc_close(fx.c);
        fx.c = NULL;
    }
}

/* refused_segment - @tamper makes the segment unacceptable (writable by
 * others, or someone else's); the open then runs cold-only: no segment
 * attached, every read and write right, and the refused file untouched. */
static void refused_segment(void (*tamper)(const char *seg))
{
    char seg[TU_PATH_MAX];
    populate_and_close(seg, sizeof seg);
    tamper(seg);
    size_t n0 = 0, n1 = 0;
    char *before = tu_read_file(seg, &n0);
    cr_assert_not_null(before);

    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_hot_stats s = stats(fx.c);
    cr_assert_eq(s.attached, 0, "a refused segment is not attached");
    cr_assert_eq(s.reading, 0);
    for (int i = 0; i < 50; i++)
        expect_get(fx.c, TU_INT(i), TU_INT(i * 3), TU_TEXT("t"), TU_T0 + 500);
    tu_set(fx.c, TU_INT(0), TU_TEXT("new"));
    expect_plain(fx.c, TU_INT(0), TU_TEXT("new"));
    TU_OK(tc_delete(fx.c, TU_INT(1), 0));
    expect_absent(fx.c, TU_INT(1));

    char *after = tu_read_file(seg, &n1);
    cr_assert_not_null(after);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0,
              "the refused segment was written to");
    free(before);
    free(after);
    tu_expect_hot_clean(fx.c);
}

static void make_group_writable(const char *seg)
{
    cr_assert_eq(chmod(seg, 0664), 0);
}

static void make_other_writable(const char *seg)
{
    cr_assert_eq(chmod(seg, 0646), 0);
}

static void give_to_nobody(const char *seg)
{
    cr_assert_eq(chown(seg, 65534, 65534), 0, "chown: %s", strerror(errno));
}

Test(hotseg, group_writable_segment_is_refused)
{
    refused_segment(make_group_writable);
}

Test(hotseg, other_writable_segment_is_refused)
{
    refused_segment(make_other_writable);
}

Test(hotseg, segment_owned_by_someone_else_is_refused)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to chown the segment");
    refused_segment(give_to_nobody);
}

/* Run as root on a cache owned by another user, the segment is created
 * for that owner (so the owner's processes can attach). */
Test(hotseg, root_creates_segment_owned_by_cache_owner)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to chown the cache");
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    tc_close(fx.c);
    fx.c = NULL;
    TU_OK(tc_hot_drop(fx.dir));
    DIR *d = opendir(fx.dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[TU_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", fx.dir, e->d_name);
        cr_assert_eq(lchown(p, 65534, 65534), 0, "chown %s", p);
    }
    closedir(d);

    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    char seg[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    struct stat st = stat_of(seg);
    cr_assert_eq(st.st_uid, 65534, "segment owner %u", (unsigned)st.st_uid);
    cr_assert_eq(stats(fx.c).attached, 1, "and root attaches to it");
    expect_plain(fx.c, KEY("k"), TU_TEXT("v"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
}

/* hot size 0 on a new directory: no segment is created (the default size
 * is recorded); a later hot open creates one of the recorded size. */
Test(hotseg, hot_size_zero_creates_no_segment)
{
    fx.c = tu_open(fx.dir, &fx.clk); /* hot size 0, plain Cache */
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    expect_plain(fx.c, KEY("k"), TU_TEXT("v"));
    char seg[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    cr_assert(!tu_exists(seg), "hot size 0 created %s", seg);
    tc_hot_stats s = stats(fx.c);
    cr_assert_eq(s.attached, 0);
    cr_assert_eq(s.reading, 0);
    tc_close(fx.c);

    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    cr_assert(tu_exists(seg));
    cr_assert_eq((uint64_t)stat_of(seg).st_size, 64ull * MiB,
                 "the size recorded at creation (default 64 MiB) wins");
    cr_assert_eq(stats(fx.c).size, 64ull * MiB);
    expect_plain(fx.c, KEY("k"), TU_TEXT("v"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
}

/* The hot size is a property of the cache: a later tc_set_hot_size with
 * another size neither resizes nor replaces the segment. */
Test(hotseg, hot_size_is_recorded_at_creation)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    char seg[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    ino_t ino = stat_of(seg).st_ino;
    tc_close(fx.c);
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, 4 * HOT);
    cr_assert_eq(stats(fx.c).size, HOT);
    struct stat st = stat_of(seg);
    cr_assert_eq((uint64_t)st.st_size, HOT);
    cr_assert_eq(st.st_ino, ino, "the segment was not replaced");
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
}

/* ===================================================================== */
/* Writes that remove what they wrote, and policies that need SQLite     */

/* open_tiny_limit - a hot plain Cache whose size_limit (1 byte) is below
 * the database's own size, so every write's inline cull evicts. */
static tc_cache *open_tiny_limit(void)
{
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_OK(tc_set_hot_size(c, HOT));
    TU_OK(tc_set_shards(c, TC_SHARDS_PLAIN));
    TU_OK(tc_set_clock(c, tu_clock_fn, &fx.clk));
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(1)));
    TU_OK(tc_open(c, fx.dir, 0));
    return c;
}

/* expect_as_sqlite - each of k0..k<n-1> is read through @c exactly as the
 * cold oracle sees it (TEXT "v" or absent). */
static void expect_as_sqlite(tc_cache *c, tc_cache *cold, int n)
{
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        int want = tc_contains(cold, KEY(k));
        cr_log_info("%s: %s in SQLite", k, tc_errname(want));
        if (want == TC_NOTFOUND)
            expect_absent(c, KEY(k));
        else
            expect_plain(c, KEY(k), TU_TEXT("v"));
    }
}

/* A set's inline cull (python-diskcache's, in the same transaction, after
 * the insert) removes up to cull_limit rows by store_time, the new row
 * included when the table is that small. The hot tier must agree with
 * SQLite: never serve a value the write itself culled. */
Test(hot, set_culled_by_its_own_inline_cull_is_not_served)
{
    fx.c = open_tiny_limit();
    tc_cache *cold = open_cold(fx.dir);
    for (int i = 0; i < 5; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        tu_set(fx.c, KEY(k), TU_TEXT("v"));
    }
    expect_as_sqlite(fx.c, cold, 5);
    tu_expect_hot_clean(fx.c);
    tc_close(cold);
}

/* The same through tc_add. */
Test(hot, add_culled_by_its_own_inline_cull_is_not_served)
{
    fx.c = open_tiny_limit();
    tc_cache *cold = open_cold(fx.dir);
    for (int i = 0; i < 5; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        TU_OK(tc_add(fx.c, KEY(k), TU_TEXT("v"), TC_NO_EXPIRE, NULL, 0));
    }
    expect_as_sqlite(fx.c, cold, 5);
    tu_expect_hot_clean(fx.c);
    tc_close(cold);
}

/* An inline cull that evicts other, hot, items: their hot copies go. */
Test(hot, inline_cull_removes_other_hot_items)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *cold = open_cold(fx.dir);
    for (int i = 0; i < 5; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        tu_clock_set(&fx.clk, TU_T0 + i);
        tu_set(fx.c, KEY(k), TU_TEXT("v"));
        expect_hit(fx.c, KEY(k), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    }
    TU_OK(tc_setting_put(fx.c, "cull_limit", TU_INT(2)));
    TU_OK(tc_setting_put(fx.c, "size_limit", TU_INT(1)));
    tu_clock_set(&fx.clk, TU_T0 + 10);
    tu_set(fx.c, KEY("k5"), TU_TEXT("v")); /* culls k0 and k1 */
    TU_RC(tc_contains(cold, KEY("k0")), TC_NOTFOUND);
    TU_RC(tc_contains(cold, KEY("k1")), TC_NOTFOUND);
    expect_as_sqlite(fx.c, cold, 5);
    tu_expect_hot_clean(fx.c);
    tc_close(cold);
}

/* A python pickle written by python-diskcache (mode 4) is unsupported on
 * every read, never filled into the hot tier, and a later set of the key
 * is served hot. */
Test(hot, pickled_value_is_never_hot)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_close(fx.c);
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db,
               "INSERT INTO Cache (key, raw, store_time, expire_time,"
               " access_time, access_count, tag, size, mode, filename, value)"
               " VALUES ('p', 1, %.1f, NULL, %.1f, 0, NULL, 0, 4, NULL,"
               " x'80044b012e')",
               TU_T0, TU_T0);
    sqlite3_close(db);
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    uint64_t f = stats(fx.c).fills, h = stats(fx.c).hits;
    char buf[64];
    size_t len = 0;
    for (int pass = 0; pass < 2; pass++) {
        tc_item it = TC_ITEM_INIT;
        TU_RC(tc_get(fx.c, KEY("p"), &it, 0), TC_EUNSUPPORTED);
        TU_RC(tc_get_buf(fx.c, KEY("p"), buf, sizeof buf, &len, NULL, NULL, 0),
              TC_EUNSUPPORTED);
    }
    cr_assert_eq(stats(fx.c).fills, f, "a pickle was filled");
    cr_assert_eq(stats(fx.c).hits, h, "a pickle was served hot");
    tu_set(fx.c, KEY("p"), TU_TEXT("now text"));
    expect_hit(fx.c, KEY("p"), TU_TEXT("now text"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
}

/* statistics=1 needs every get counted in SQLite: such a shard reads
 * through SQLite even when the item is hot (tc_stats sees every hit). */
Test(hot, statistics_gets_are_counted_in_sqlite)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    uint64_t hits = 0, misses = 0;
    TU_OK(tc_stats(fx.c, 1, 1, &hits, &misses)); /* enable, reset */
    for (int i = 0; i < 5; i++)
        expect_cold(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    for (int i = 0; i < 3; i++)
        expect_absent(fx.c, KEY("missing"));
    TU_OK(tc_stats(fx.c, 0, 0, &hits, &misses)); /* and disable */
    /* expect_absent does get, get_buf and contains: contains is no get */
    cr_assert_eq(hits, 5, "hits %llu", (unsigned long long)hits);
    cr_assert_eq(misses, 6, "misses %llu", (unsigned long long)misses);
    /* statistics off again: hot reads resume */
    expect_get(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    tu_expect_hot_clean(fx.c);
}

/* LRU and LFU shards are served hot too: a hit records the access in the
 * item (LRU time in whole seconds, LFU count), nothing in SQLite, and
 * tc_cull folds it into access_time / access_count before choosing
 * victims. Folding changes no value, so the items stay hot. */
Test(hot, lru_and_lfu_hits_are_hot_and_folded_by_cull)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    TU_OK(tc_setting_put(fx.c, "eviction_policy",
                         TU_TEXT("least-recently-used")));
    tu_clock_set(&fx.clk, TU_T0 + 50);
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    sqlite3 *db = tu_db_open(fx.dir);
    const char *q_at = "SELECT access_time FROM Cache WHERE key = 'k'";
    const char *q_ac = "SELECT access_count FROM Cache WHERE key = 'k'";
    cr_assert_lt(tu_db_real(db, q_at), TU_T0 + 49, "a hot hit wrote SQLite");
    uint64_t n = 9;
    TU_OK(tc_cull(fx.c, &n, 0));
    cr_assert_eq(n, 0);
    double at = tu_db_real(db, q_at);
    cr_assert(at >= TU_T0 + 49 && at <= TU_T0 + 50,
              "access_time %.3f after the fold", at);
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);

    TU_OK(tc_setting_put(fx.c, "eviction_policy",
                         TU_TEXT("least-frequently-used")));
    int64_t n0 = tu_db_int(db, -1, q_ac);
    for (int i = 0; i < 4; i++)
        expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    TU_OK(tc_cull(fx.c, &n, 0));
    int64_t n1 = tu_db_int(db, -1, q_ac);
    cr_log_info("access_count %lld -> %lld", (long long)n0, (long long)n1);
    cr_assert_geq(n1, n0 + 4, "access_count %lld -> %lld", (long long)n0,
                  (long long)n1);
    expect_hit(fx.c, KEY("k"), TU_TEXT("v"), NULL, TC_NO_EXPIRE);
    sqlite3_close(db);
    tu_expect_hot_clean(fx.c);
}

/* tc_check with fix deletes the row of a value whose file vanished; the
 * hot copy must go with it. (64 MiB segment: 256 KiB pages, so a 40000
 * byte file-backed value can be hot.) */
Test(hot, check_fix_removes_hot_copy)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, 64ull * MiB);
    char *v = tu_pattern(40000, 4);
    tu_set(fx.c, KEY("big"), TU_BYTES(v, 40000));
    expect_plain(fx.c, KEY("big"), TU_BYTES(v, 40000));
    expect_plain(fx.c, KEY("big"), TU_BYTES(v, 40000));
    char path[TU_PATH_MAX];
    tu_value_path(fx.dir, "big", path, sizeof path);
    cr_assert_eq(unlink(path), 0);
    uint64_t warnings = 0;
    TU_OK(tc_check(fx.c, 1, NULL, NULL, &warnings, 0));
    cr_assert_gt(warnings, 0);
    expect_absent(fx.c, KEY("big"));
    free(v);
    tu_expect_hot_clean(fx.c);
}

/* Queue operations: pull removes an item another handle had hot; push
 * creates keys that are then read right. */
Test(hot, pull_removes_hot_copy)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_value k1 = TC_VALUE_INIT, k2 = TC_VALUE_INIT;
    TU_OK(tc_push(fx.c, TU_TEXT("one"), "q", TC_BACK, TC_NO_EXPIRE, NULL, &k1,
                  0));
    TU_OK(tc_push(fx.c, TU_TEXT("two"), "q", TC_BACK, TC_NO_EXPIRE, NULL, &k2,
                  0));
    tc_data d1 = {k1.ptr, k1.len, k1.type}, d2 = {k2.ptr, k2.len, k2.type};
    for (int pass = 0; pass < 2; pass++) {
        expect_plain(h2, &d1, TU_TEXT("one"));
        expect_plain(h2, &d2, TU_TEXT("two"));
    }
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_pull(fx.c, "q", TC_FRONT, &it, 0));
    expect_value(&it.value, TU_TEXT("one"), "pulled");
    tc_item_clear(&it);
    expect_absent(h2, &d1);
    expect_plain(h2, &d2, TU_TEXT("two"));
    tc_value_clear(&k1);
    tc_value_clear(&k2);
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* A read-only handle reads through the segment (mapped read-only) and
 * follows another handle's writes. */
Test(hot, readonly_handle_reads_hot_and_follows_writes)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v1"));
    tc_cache *ro = NULL;
    TU_OK(tc_create(&ro));
    TU_OK(tc_set_hot_size(ro, HOT));
    TU_OK(tc_set_clock(ro, tu_clock_fn, &fx.clk));
    TU_OK(tc_open(ro, fx.dir, TC_OPEN_READONLY));
    for (int pass = 0; pass < 3; pass++)
        expect_plain(ro, KEY("k"), TU_TEXT("v1"));
    tu_set(fx.c, KEY("k"), TU_TEXT("v2"));
    expect_plain(ro, KEY("k"), TU_TEXT("v2"));
    TU_OK(tc_delete(fx.c, KEY("k"), 0));
    expect_absent(ro, KEY("k"));
    TU_RC(tc_set(ro, KEY("k"), TU_TEXT("no"), TC_NO_EXPIRE, NULL, 0),
          TC_EREADONLY);
    tu_expect_hot_clean(ro);
    tu_expect_hot_clean(fx.c);
    tc_close(ro);
}

/* first_write - one kind of write, by a handle that never wrote before,
 * on key "k" (hot elsewhere: INT 1, tag "t", expiring at T0+500). After
 * it "k" is absent (@gone 1), holds INT 2 untagged and never expiring
 * (0), or INT 2 with its tag and expiry kept (2, incr). */
struct first_write {
    const char *name;
    int (*fn)(tc_cache *c);
    int gone;
};

static int fw_set(tc_cache *c)
{
    return tc_set(c, KEY("k"), TU_INT(2), TC_NO_EXPIRE, NULL, 0);
}
static int fw_delete(tc_cache *c)
{
    return tc_delete(c, KEY("k"), 0);
}
static int fw_incr(tc_cache *c)
{
    return tc_incr(c, KEY("k"), TU_INT(1), NULL, NULL, 0);
}
static int fw_pop(tc_cache *c)
{
    return tc_pop(c, KEY("k"), NULL, 0);
}
static int fw_clear(tc_cache *c)
{
    return tc_clear(c, NULL, 0);
}
static int fw_evict(tc_cache *c)
{
    return tc_evict(c, TU_TEXT("t"), NULL, 0);
}
static int fw_expire(tc_cache *c)
{
    return tc_expire(c, TU_T0 + 1000, NULL, 0);
}
static int fw_delete_many(tc_cache *c)
{
    return tc_delete_many(c, KEY("k"), 1, NULL, 0);
}
static int fw_set_many(tc_cache *c)
{
    return tc_set_many(c, KEY("k"), TU_INT(2), 1, TC_NO_EXPIRE, NULL, 0);
}
static int fw_txn(tc_cache *c)
{
    int rc = tc_begin(c, 0);
    if (rc == TC_OK)
        rc = tc_set(c, KEY("k"), TU_INT(2), TC_NO_EXPIRE, NULL, 0);
    return rc == TC_OK ? tc_commit(c) : rc;
}

/* A hot-size-0 handle opened while the cache had no segment: a segment
 * created afterwards by another handle must still be invalidated by each
 * kind of first write it makes. */
Test(hot, cold_handle_opened_before_the_segment_invalidates_it)
{
    static const struct first_write ops[] = {
        {"set", fw_set, 0},           {"delete", fw_delete, 1},
        {"incr", fw_incr, 2},         {"pop", fw_pop, 1},
        {"clear", fw_clear, 1},       {"evict", fw_evict, 1},
        {"expire", fw_expire, 1},     {"delete_many", fw_delete_many, 1},
        {"set_many", fw_set_many, 0}, {"transaction", fw_txn, 0},
    };
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        cr_log_info("first write: %s", ops[i].name);
        tc_close(fx.c);
        fx.c = NULL;
        TU_OK(tc_hot_drop(fx.dir));
        tc_cache *h0 = open_cold(fx.dir); /* no segment to attach to */
        fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
        TU_OK(tc_set(fx.c, KEY("k"), TU_INT(1), 500, TU_TEXT("t"), 0));
        expect_hit(fx.c, KEY("k"), TU_INT(1), TU_TEXT("t"), TU_T0 + 500);
        TU_OK(ops[i].fn(h0));
        if (ops[i].gone == 1)
            expect_absent(fx.c, KEY("k"));
        else if (ops[i].gone == 2)
            expect_get(fx.c, KEY("k"), TU_INT(2), TU_TEXT("t"), TU_T0 + 500);
        else
            expect_plain(fx.c, KEY("k"), TU_INT(2));
        tu_expect_hot_clean(fx.c);
        tc_close(h0);
    }
}

/* ===================================================================== */
/* Threads of one process                                                */

struct racer {
    tc_cache *c;
    int writer; /* incr then get; else get only */
    volatile int *stop;
    atomic_int *bad;
    char msg[200];
};

/* Increments per writer thread; under valgrind threads run one at a
 * time, so fewer. */
static int race_rounds(void)
{
    return getenv("TC_UNDER_VALGRIND") ? 40 : 300;
}

/* A writer's get after its own incr returned v must see >= v (no fill
 * from an older snapshot may land after the write); every thread's reads
 * must never go backwards. */
static void *race(void *arg)
{
    struct racer *r = arg;
    int64_t last = 0;
    for (int i = 0; r->writer ? i < race_rounds() : !*r->stop; i++) {
        int64_t floor_v = last;
        if (r->writer) {
            tc_value out = TC_VALUE_INIT;
            int rc = tc_incr(r->c, KEY("ctr"), TU_INT(1), TU_INT(0), &out, 0);
            if (rc != TC_OK) {
                snprintf(r->msg, sizeof r->msg, "incr: %s", tc_errname(rc));
                atomic_fetch_add(r->bad, 1);
                return NULL;
            }
            floor_v = out.i;
            tc_value_clear(&out);
        }
        tc_item it = TC_ITEM_INIT;
        int rc = tc_get(r->c, KEY("ctr"), &it, 0);
        if (rc == TC_NOTFOUND && floor_v == 0)
            continue;
        if (rc != TC_OK || it.value.type != TC_INT || it.value.i < floor_v) {
            snprintf(r->msg, sizeof r->msg, "get: %s, value %lld < %lld",
                     tc_errname(rc), (long long)it.value.i, (long long)floor_v);
            atomic_fetch_add(r->bad, 1);
            tc_item_clear(&it);
            return NULL;
        }
        last = it.value.i;
        tc_item_clear(&it);
    }
    return NULL;
}

Test(hot, threads_never_read_older_than_their_own_writes)
{
    enum { W = 4, R = 2 };
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tc_cache *h2 = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    volatile int stop = 0;
    atomic_int bad = 0;
    struct racer rs[W + R];
    pthread_t th[W + R];
    for (int i = 0; i < W + R; i++) {
        rs[i] = (struct racer){i % 2 ? h2 : fx.c, i < W, &stop, &bad, ""};
        cr_assert_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < W; i++)
        pthread_join(th[i], NULL);
    stop = 1;
    for (int i = W; i < W + R; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < W + R; i++)
        if (rs[i].msg[0])
            cr_log_error("thread %d: %s", i, rs[i].msg);
    cr_assert_eq(atomic_load(&bad), 0, "stale or failed reads");
    expect_plain(fx.c, KEY("ctr"), TU_INT(W * race_rounds()));
    expect_plain(h2, KEY("ctr"), TU_INT(W * race_rounds()));
    tu_expect_hot_clean(fx.c);
    tc_close(h2);
}

/* A symlink planted at the segment's name (in a world-writable /dev/shm
 * anyone can) must never be followed: its target stays untouched, and the
 * cache still works. */
Test(hotseg, symlink_at_segment_name_is_never_followed)
{
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    tu_set(fx.c, KEY("k"), TU_TEXT("v"));
    char seg[TU_PATH_MAX], target[TU_PATH_MAX];
    seg_path(fx.dir, "", seg, sizeof seg);
    tc_close(fx.c);
    fx.c = NULL;
    TU_OK(tc_hot_drop(fx.dir));
    snprintf(target, sizeof target, "%s/target", fx.base);
    tu_write_file(target, "precious", 8);
    cr_assert_eq(symlink(target, seg), 0);

    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    for (int pass = 0; pass < 2; pass++)
        expect_plain(fx.c, KEY("k"), TU_TEXT("v"));
    tu_set(fx.c, KEY("k"), TU_TEXT("v2"));
    expect_plain(fx.c, KEY("k"), TU_TEXT("v2"));
    size_t n = 0;
    char *t = tu_read_file(target, &n);
    cr_assert(t && n == 8 && !memcmp(t, "precious", 8),
              "the symlink's target was written");
    free(t);
    tu_expect_hot_clean(fx.c);
}

/* A hit that the foreign-writer check turns into a SQLite read: when that
 * read finds the key gone (python-diskcache deleted it), tc_get returns
 * TC_NOTFOUND and leaves @out as it was, as tiercache.h promises; the
 * next gets stay misses. */
Test(hot, get_leaves_out_untouched_when_a_foreign_delete_is_found)
{
    setenv("TIERCACHE_FOREIGN_CHECK_MS", "1", 1);
    fx.c = open_hot(fx.dir, TC_SHARDS_PLAIN, HOT);
    unsetenv("TIERCACHE_FOREIGN_CHECK_MS");
    tu_set(fx.c, KEY("k"), TU_TEXT("value"));
    expect_hit(fx.c, KEY("k"), TU_TEXT("value"), NULL, TC_NO_EXPIRE);
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db, "DELETE FROM Cache WHERE key = 'k'");
    sqlite3_close(db);
    int rc = TC_OK;
    for (int i = 0; i < 100000 && rc == TC_OK; i++) {
        tc_item out = TC_ITEM_INIT;
        out.value.type = TC_INT; /* a sentinel the get must not touch */
        out.value.i = 4242;
        out.value.ptr = &out.value.i;
        out.value.len = 8;
        rc = tc_get(fx.c, KEY("k"), &out, 0);
        if (rc == TC_NOTFOUND)
            cr_assert(out.value.type == TC_INT && out.value.i == 4242 &&
                          out.value.ptr == &out.value.i,
                      "a get that returned NOTFOUND changed @out");
        else
            cr_assert_eq(rc, TC_OK, "get: %s", tc_errname(rc));
        tc_item_clear(&out);
        if (rc == TC_OK) {
            struct timespec ts = {0, 20000}; /* let the 1 ms interval pass */
            nanosleep(&ts, NULL);
        }
    }
    cr_assert_eq(rc, TC_NOTFOUND, "the foreign delete was never noticed");
    expect_absent(fx.c, KEY("k"));
}
