/*
 * test_types.c - set/get round trips for every key and value type, key
 * identity rules, the on-disk row format and file-backed values
 * (diskcache-behaviour.md sections 2, 4.2-4.4 and Cache.set/get in 6).
 */
#include "testutil.h"

static void setup(void)
{
    tu_fx_init("types");
    fx.c = tu_open(fx.dir, &fx.clk);
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(types, .init = setup, .fini = teardown, .timeout = 60);

/* row_text - a column of the row whose TEXT key is @key, as text. */
static char *row_text(const char *col, const char *key)
{
    sqlite3 *db = tu_db_open(fx.dir);
    char *s = tu_db_text(db, "SELECT %s FROM Cache WHERE key = %Q AND raw = 1",
                         col, key);
    sqlite3_close(db);
    return s;
}

static int64_t row_int(const char *col, const char *key)
{
    sqlite3 *db = tu_db_open(fx.dir);
    int64_t v = tu_db_int(
        db, -999, "SELECT %s FROM Cache WHERE key = %Q AND raw = 1", col, key);
    sqlite3_close(db);
    return v;
}

/* val_path - absolute path of the value file of TEXT key @key (asserts it
 * has one of the "ab/cd/<28 hex>.val" shape). */
static void val_path(const char *key, char *out, size_t cap)
{
    char *rel = row_text("filename", key);
    cr_assert_not_null(rel, "row %s has no filename", key);
    cr_assert(tu_is_val_relpath(rel), "filename '%s' is not ab/cd/<28hex>.val",
              rel);
    snprintf(out, cap, "%s/%s", fx.dir, rel);
    free(rel);
}

Test(types, cache_set_get_bytes)
{
    const char v[] = {'x', 0, 'y', (char)0xff};
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_BYTES(v, sizeof v), TC_NO_EXPIRE, NULL,
                 0));
    tu_expect_value(fx.c, TU_TEXT("k"), TC_BYTES, v, sizeof v);
    /* An empty value is a value. */
    TU_OK(tc_set(fx.c, TU_TEXT("e"), TU_BYTES(NULL, 0), TC_NO_EXPIRE, NULL, 0));
    tu_expect_value(fx.c, TU_TEXT("e"), TC_BYTES, "", 0);
}

Test(types, cache_set_get_text)
{
    const char *s = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac";
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT(s));
    tu_expect_text(fx.c, TU_TEXT("k"), s);
    tu_set(fx.c, TU_TEXT("empty"), TU_TEXT(""));
    tu_expect_text(fx.c, TU_TEXT("empty"), "");
}

Test(types, cache_set_get_int)
{
    const int64_t vals[] = {0, 1, -1, 42, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        tu_set(fx.c, TU_INT((int64_t)i), TU_INT(vals[i]));
        tu_expect_int(fx.c, TU_INT((int64_t)i), vals[i]);
    }
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(fx.c, TU_INT(4), &it, 0));
    cr_assert_eq(it.value.len, 8);
    cr_assert_eq(*(const int64_t *)it.value.ptr, INT64_MAX,
                 "ptr must point at the int64");
    tc_item_clear(&it);
    cr_assert_eq(it.value.type, TC_NONE, "tc_item_clear resets to TC_NONE");
}

Test(types, cache_set_get_real)
{
    const double vals[] = {0.0, 3.5, -1e300, 1.0 / 3.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        tc_item it = TC_ITEM_INIT;
        tu_set(fx.c, TU_INT((int64_t)i), TU_REAL(vals[i]));
        TU_OK(tc_get(fx.c, TU_INT((int64_t)i), &it, 0));
        cr_assert_eq(it.value.type, TC_REAL);
        cr_assert_eq(it.value.d, vals[i], "got %.17g want %.17g", it.value.d,
                     vals[i]);
        cr_assert_eq(*(const double *)it.value.ptr, vals[i]);
        tc_item_clear(&it);
    }
}

Test(types, cache_set_get_msgpack)
{
    const unsigned char mp[] = {0x93, 0x01, 0xc3, 0xa1, 'x'}; /* [1,true,"x"] */
    TU_OK(tc_set(fx.c, TU_TEXT("m"), TU_MSGPACK(mp, sizeof mp), TC_NO_EXPIRE,
                 NULL, 0));
    tu_expect_value(fx.c, TU_TEXT("m"), TC_MSGPACK, mp, sizeof mp);
    cr_assert_eq(row_int("mode", "m"), 16, "msgpack is value mode 16");
    char *t = row_text("typeof(value)", "m");
    cr_assert_str_eq(t, "blob");
    free(t);
}

Test(types, cache_set_get_empty_key)
{
    tu_set(fx.c, TU_TEXT(""), TU_TEXT("text-empty"));
    tu_set(fx.c, TU_BYTES("", 0), TU_TEXT("bytes-empty"));
    tu_expect_text(fx.c, TU_TEXT(""), "text-empty");
    tu_expect_text(fx.c, TU_BYTES("", 0), "bytes-empty");
    cr_assert_eq(tu_length(fx.c), 2, "'' and b'' are two keys");
}

Test(types, cache_set_get_bytes_key_with_nul)
{
    tu_set(fx.c, TU_BYTES("a\0b", 3), TU_TEXT("1"));
    tu_set(fx.c, TU_BYTES("a\0c", 3), TU_TEXT("2"));
    tu_set(fx.c, TU_BYTES("a", 1), TU_TEXT("3"));
    tu_expect_text(fx.c, TU_BYTES("a\0b", 3), "1");
    tu_expect_text(fx.c, TU_BYTES("a\0c", 3), "2");
    tu_expect_text(fx.c, TU_BYTES("a", 1), "3");
    cr_assert_eq(tu_length(fx.c), 3);
}

Test(types, cache_set_get_text_key_with_nul)
{
    tu_set(fx.c, TU_TEXTN("a\0b", 3), TU_TEXT("1"));
    tu_set(fx.c, TU_TEXTN("a\0c", 3), TU_TEXT("2"));
    tu_expect_text(fx.c, TU_TEXTN("a\0b", 3), "1");
    tu_expect_text(fx.c, TU_TEXTN("a\0c", 3), "2");
    tu_expect_missing(fx.c, TU_TEXT("a"));
}

Test(types, cache_set_overwrite_keeps_insertion_position)
{
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(2));
    tu_set(fx.c, TU_TEXT("c"), TU_INT(3));
    tu_set(fx.c, TU_TEXT("a"), TU_INT(10));
    tu_expect_int(fx.c, TU_TEXT("a"), 10);
    cr_assert_eq(tu_length(fx.c), 3);

    const char *want[] = {"a", "b", "c"};
    tc_iter *it = NULL;
    tc_value k = TC_VALUE_INIT;
    TU_OK(tc_iter_open(fx.c, TC_ITER_INSERTION, &it));
    for (int i = 0; i < 3; i++) {
        TU_OK(tc_iter_next(it, &k));
        cr_assert(tu_value_text_eq(&k, want[i]), "position %d", i);
    }
    TU_RC(tc_iter_next(it, &k), TC_NOTFOUND);
    tc_value_clear(&k);
    tc_iter_close(it);
}

Test(types, cache_int_and_real_keys_are_equal)
{
    tu_set(fx.c, TU_INT(1), TU_TEXT("int"));
    tu_expect_text(fx.c, TU_REAL(1.0), "int");
    tu_set(fx.c, TU_REAL(1.0), TU_TEXT("real"));
    tu_expect_text(fx.c, TU_INT(1), "real");
    cr_assert_eq(tu_length(fx.c), 1, "1 and 1.0 are one row");
    tu_expect_missing(fx.c, TU_REAL(1.5));
}

Test(types, cache_text_and_bytes_keys_differ)
{
    tu_set(fx.c, TU_TEXT("a"), TU_TEXT("text"));
    tu_expect_missing(fx.c, TU_BSTR("a"));
    tu_set(fx.c, TU_BSTR("a"), TU_TEXT("bytes"));
    tu_expect_text(fx.c, TU_TEXT("a"), "text");
    tu_expect_text(fx.c, TU_BSTR("a"), "bytes");
    cr_assert_eq(tu_length(fx.c), 2);
}

/* Section 2 "observed row examples": key 'a' value 1 is (TEXT, raw 1, mode
 * 1, INTEGER, size 0), 3.5 is REAL; times come from the clock. */
Test(types, cache_row_format_matches_diskcache)
{
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("r"), TU_REAL(3.5));
    tu_set(fx.c, TU_TEXT("t"), TU_TEXT("s"));
    tu_set(fx.c, TU_TEXT("b"), TU_BSTR("s"));
    tu_set(fx.c, TU_INT(7), TU_INT(0));
    tu_set(fx.c, TU_REAL(2.5), TU_INT(0));
    tu_set(fx.c, TU_BSTR("k"), TU_INT(0));

    sqlite3 *db = tu_db_open(fx.dir);
    const struct {
        const char *key_sql, *ktype, *vtype;
    } rows[] = {
        {"'a'", "text", "integer"},   {"'r'", "text", "real"},
        {"'t'", "text", "text"},      {"'b'", "text", "blob"},
        {"7", "integer", "integer"},  {"2.5", "real", "integer"},
        {"x'6b'", "blob", "integer"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *s = tu_db_text(db,
                             "SELECT typeof(key) || ',' || raw || ',' || mode"
                             " || ',' || typeof(value) || ',' || size || ','"
                             " || typeof(filename) FROM Cache WHERE key = %s",
                             rows[i].key_sql);
        char want[128];
        snprintf(want, sizeof want, "%s,1,1,%s,0,null", rows[i].ktype,
                 rows[i].vtype);
        cr_assert_not_null(s, "no row for key %s", rows[i].key_sql);
        cr_assert_str_eq(s, want, "key %s", rows[i].key_sql);
        free(s);
    }
    cr_assert_eq(tu_db_real(db, "SELECT store_time FROM Cache WHERE key='a'"),
                 TU_T0);
    cr_assert_eq(tu_db_real(db, "SELECT access_time FROM Cache WHERE key='a'"),
                 TU_T0);
    cr_assert_eq(
        tu_db_int(db, -1,
                  "SELECT expire_time IS NULL FROM Cache WHERE key='a'"),
        1);
    cr_assert_eq(
        tu_db_int(db, -1, "SELECT tag IS NULL FROM Cache WHERE key='a'"), 1);
    sqlite3_close(db);
}

Test(types, cache_large_bytes_in_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 1);
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    tu_expect_value(fx.c, TU_TEXT("big"), TC_BYTES, v, n);

    char path[TU_PATH_MAX];
    val_path("big", path, sizeof path);
    size_t flen = 0;
    char *file = tu_read_file(path, &flen);
    cr_assert_not_null(file, "value file %s missing", path);
    cr_assert_eq(flen, n);
    cr_assert(memcmp(file, v, n) == 0, "file holds the raw bytes");
    cr_assert_eq(row_int("mode", "big"), 2, "MODE_BINARY");
    cr_assert_eq(row_int("size", "big"), (int64_t)n);
    cr_assert_eq(row_int("value IS NULL", "big"), 1);
    cr_assert_eq(tu_count_val_files(fx.dir), 1);
    free(file);
    free(v);
}

Test(types, cache_large_text_in_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 2);
    v[n - 1] = 0;
    n -= 1;
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_TEXTN(v, n), TC_NO_EXPIRE, NULL, 0));
    tu_expect_value(fx.c, TU_TEXT("big"), TC_TEXT, v, n);

    char path[TU_PATH_MAX];
    val_path("big", path, sizeof path);
    size_t flen = 0;
    char *file = tu_read_file(path, &flen);
    cr_assert_not_null(file);
    cr_assert_eq(flen, n);
    cr_assert(memcmp(file, v, n) == 0, "file holds the UTF-8 text");
    cr_assert_eq(row_int("mode", "big"), 3, "MODE_TEXT");
    cr_assert_eq(row_int("size", "big"), (int64_t)n);
    free(file);
    free(v);
}

Test(types, cache_large_msgpack_in_file)
{
    size_t n = 50000;
    char *v = tu_pattern(n, 3);
    TU_OK(
        tc_set(fx.c, TU_TEXT("big"), TU_MSGPACK(v, n), TC_NO_EXPIRE, NULL, 0));
    tu_expect_value(fx.c, TU_TEXT("big"), TC_MSGPACK, v, n);
    char path[TU_PATH_MAX];
    val_path("big", path, sizeof path);
    cr_assert_eq(row_int("mode", "big"), 16);
    cr_assert_eq(row_int("size", "big"), (int64_t)n);
    free(v);
}

/* disk_min_file_size = 32768: "at/over this go to files". */
Test(types, cache_file_threshold_is_32768)
{
    char *v = tu_pattern(32768, 4);
    TU_OK(tc_set(fx.c, TU_TEXT("under"), TU_BYTES(v, 32767), TC_NO_EXPIRE, NULL,
                 0));
    TU_OK(
        tc_set(fx.c, TU_TEXT("at"), TU_BYTES(v, 32768), TC_NO_EXPIRE, NULL, 0));
    cr_assert_eq(row_int("filename IS NULL", "under"), 1);
    cr_assert_eq(row_int("mode", "under"), 1);
    cr_assert_eq(row_int("filename IS NULL", "at"), 0);
    cr_assert_eq(row_int("mode", "at"), 2);
    cr_assert_eq(tu_count_val_files(fx.dir), 1);
    free(v);
}

/* A str goes to a file when len(value) >= min counts *characters*: 20000
 * two-byte characters (40000 bytes) stay inline; the size column of a text
 * file is its byte size. */
Test(types, cache_text_threshold_counts_characters)
{
    size_t chars = 20000;
    char *v = malloc(chars * 2 + 1);
    for (size_t i = 0; i < chars; i++)
        memcpy(v + 2 * i, "\xc3\xa9", 2); /* U+00E9 */
    v[chars * 2] = 0;
    TU_OK(tc_set(fx.c, TU_TEXT("e"), TU_TEXT(v), TC_NO_EXPIRE, NULL, 0));
    cr_assert_eq(row_int("filename IS NULL", "e"), 1,
                 "20000 characters < 32768: inline");
    cr_assert_eq(row_int("mode", "e"), 1);
    tu_expect_text(fx.c, TU_TEXT("e"), v);
    free(v);

    chars = 32768;
    v = malloc(chars * 2 + 1);
    for (size_t i = 0; i < chars; i++)
        memcpy(v + 2 * i, "\xc3\xa9", 2);
    v[chars * 2] = 0;
    TU_OK(tc_set(fx.c, TU_TEXT("f"), TU_TEXT(v), TC_NO_EXPIRE, NULL, 0));
    cr_assert_eq(row_int("mode", "f"), 3);
    cr_assert_eq(row_int("size", "f"), (int64_t)(chars * 2), "size in bytes");
    tu_expect_text(fx.c, TU_TEXT("f"), v);
    free(v);
}

Test(types, cache_large_overwrite_removes_old_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 5);
    char old[TU_PATH_MAX], cur[TU_PATH_MAX];
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    val_path("big", old, sizeof old);
    v[0] ^= 1;
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    val_path("big", cur, sizeof cur);
    cr_assert_str_neq(old, cur, "a new file name per write");
    cr_assert(!tu_exists(old), "replaced file %s still exists", old);
    cr_assert(tu_exists(cur));
    tu_expect_value(fx.c, TU_TEXT("big"), TC_BYTES, v, n);

    /* Overwriting with an inline value removes the file too. */
    tu_set(fx.c, TU_TEXT("big"), TU_INT(1));
    cr_assert(!tu_exists(cur), "file of value replaced by inline remains");
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    free(v);
}

Test(types, cache_large_delete_removes_file)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 6);
    char path[TU_PATH_MAX];
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    val_path("big", path, sizeof path);
    TU_OK(tc_delete(fx.c, TU_TEXT("big"), 0));
    cr_assert(!tu_exists(path), "deleted item's file %s remains", path);
    cr_assert_eq(tu_count_val_files(fx.dir), 0);
    free(v);
}

/* Disk.remove prunes the now-empty ab/cd directories (os.removedirs). */
Test(types, cache_large_delete_prunes_empty_dirs)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 7);
    char path[TU_PATH_MAX], ab[TU_PATH_MAX];
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    val_path("big", path, sizeof path);
    snprintf(ab, sizeof ab, "%.*s", (int)(strlen(fx.dir) + 3), path);
    cr_assert(tu_exists(ab));
    TU_OK(tc_delete(fx.c, TU_TEXT("big"), 0));
    cr_assert(!tu_exists(ab), "empty directory %s not pruned", ab);
    cr_assert(tu_exists(fx.dir), "the cache directory itself stays");
    free(v);
}

Test(types, cache_get_buf_too_small)
{
    tu_set(fx.c, TU_TEXT("k"), TU_TEXT("0123456789"));
    char buf[64];
    size_t len = 0;
    int type = -1;
    double exp = 0;
    TU_RC(tc_get_buf(fx.c, TU_TEXT("k"), buf, 4, &len, &type, &exp, 0),
          TC_ETOOSMALL);
    cr_assert_eq(len, 10, "needed length reported, got %zu", len);
    TU_OK(
        tc_get_buf(fx.c, TU_TEXT("k"), buf, sizeof buf, &len, &type, &exp, 0));
    cr_assert_eq(len, 10);
    cr_assert_eq(type, TC_TEXT);
    cr_assert(memcmp(buf, "0123456789", 10) == 0);
    cr_assert(isinf(exp), "no expiry is TC_NO_EXPIRE");
    TU_RC(
        tc_get_buf(fx.c, TU_TEXT("nope"), buf, sizeof buf, &len, NULL, NULL, 0),
        TC_NOTFOUND);
}

Test(types, cache_get_buf_numbers_and_files)
{
    char buf[8];
    size_t len = 0;
    int type = -1;
    TU_OK(tc_set(fx.c, TU_TEXT("i"), TU_INT(-5), 100, NULL, 0));
    tu_set(fx.c, TU_TEXT("r"), TU_REAL(2.25));
    double exp = 0;
    TU_OK(tc_get_buf(fx.c, TU_TEXT("i"), buf, 8, &len, &type, &exp, 0));
    cr_assert_eq(len, 8);
    cr_assert_eq(type, TC_INT);
    int64_t i;
    memcpy(&i, buf, 8);
    cr_assert_eq(i, -5);
    cr_assert_eq(exp, TU_T0 + 100);
    TU_OK(tc_get_buf(fx.c, TU_TEXT("r"), buf, 8, &len, &type, NULL, 0));
    double d;
    memcpy(&d, buf, 8);
    cr_assert_eq(type, TC_REAL);
    cr_assert_eq(d, 2.25);

    size_t n = 40000;
    char *v = tu_pattern(n, 8), *out = malloc(n);
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    TU_RC(tc_get_buf(fx.c, TU_TEXT("big"), out, 100, &len, &type, NULL, 0),
          TC_ETOOSMALL);
    cr_assert_eq(len, n);
    TU_OK(tc_get_buf(fx.c, TU_TEXT("big"), out, n, &len, &type, NULL, 0));
    cr_assert_eq(len, n);
    cr_assert(memcmp(out, v, n) == 0);
    free(out);
    free(v);
}

Test(types, cache_get_returns_tag_and_expire_time)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_set(fx.c, TU_TEXT("k"), TU_TEXT("v"), 30, TU_TEXT("grp"), 0));
    TU_OK(tc_get(fx.c, TU_TEXT("k"), &it, 0));
    cr_assert(tu_value_text_eq(&it.value, "v"));
    cr_assert(tu_value_text_eq(&it.tag, "grp"), "tag type %d", it.tag.type);
    cr_assert_eq(it.expire_time, TU_T0 + 30, "expire_time %.3f",
                 it.expire_time);
    tc_item_clear(&it);

    tu_set(fx.c, TU_TEXT("n"), TU_TEXT("v"));
    TU_OK(tc_get(fx.c, TU_TEXT("n"), &it, 0));
    cr_assert_eq(it.tag.type, TC_NONE, "no tag");
    cr_assert(isinf(it.expire_time) && it.expire_time > 0,
              "never expires: TC_NO_EXPIRE");
    tc_item_clear(&it);

    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_real(db, "SELECT expire_time FROM Cache WHERE key='k'"),
                 TU_T0 + 30);
    char *t = tu_db_text(db, "SELECT typeof(tag) FROM Cache WHERE key='k'");
    cr_assert_str_eq(t, "text", "tag stored as given, not serialised");
    free(t);
    sqlite3_close(db);
}

Test(types, cache_tag_types_roundtrip)
{
    const tc_data *tags[] = {TU_TEXT("t"), TU_BSTR("b"), TU_INT(-9),
                             TU_REAL(0.5)};
    for (int i = 0; i < 4; i++) {
        tc_item it = TC_ITEM_INIT;
        TU_OK(tc_set(fx.c, TU_INT(i), TU_INT(i), TC_NO_EXPIRE, tags[i], 0));
        TU_OK(tc_get(fx.c, TU_INT(i), &it, 0));
        cr_assert_eq(it.tag.type, tags[i]->type, "tag %d type %d", i,
                     it.tag.type);
        if (tags[i]->type == TC_INT)
            cr_assert_eq(it.tag.i, -9);
        else if (tags[i]->type == TC_REAL)
            cr_assert_eq(it.tag.d, 0.5);
        else
            cr_assert(it.tag.len == 1 && !memcmp(it.tag.ptr, tags[i]->ptr, 1));
        tc_item_clear(&it);
    }
}

/* set(read=True): the contents of a file-like, always stored in a file as
 * bytes, even when small. */
Test(types, cache_set_fd_always_file)
{
    char src[TU_PATH_MAX];
    snprintf(src, sizeof src, "%s/src", fx.base);
    tu_write_file(src, "small", 5);
    int fd = open(src, O_RDONLY);
    cr_assert_geq(fd, 0);
    TU_OK(tc_set_fd(fx.c, TU_TEXT("f"), fd, TC_NO_EXPIRE, NULL, 0));
    close(fd);
    tu_expect_value(fx.c, TU_TEXT("f"), TC_BYTES, "small", 5);
    cr_assert_eq(row_int("mode", "f"), 2);
    cr_assert_eq(row_int("size", "f"), 5);
    char path[TU_PATH_MAX];
    val_path("f", path, sizeof path);
}

Test(types, cache_read_fd)
{
    size_t n = 40000;
    char *v = tu_pattern(n, 9);
    TU_OK(tc_set(fx.c, TU_TEXT("big"), TU_BYTES(v, n), TC_NO_EXPIRE, NULL, 0));
    tu_set(fx.c, TU_TEXT("small"), TU_BSTR("abc"));
    const char *keys[] = {"big", "small"};
    for (int k = 0; k < 2; k++) {
        int fd = -1;
        TU_OK(tc_read(fx.c, TU_TEXT(keys[k]), &fd, 0));
        cr_assert_geq(fd, 0);
        char *buf = malloc(n + 1);
        size_t got = 0;
        ssize_t r;
        while ((r = read(fd, buf + got, n + 1 - got)) > 0)
            got += (size_t)r;
        close(fd);
        if (k == 0)
            cr_assert(got == n && !memcmp(buf, v, n), "big via fd");
        else
            cr_assert(got == 3 && !memcmp(buf, "abc", 3), "small via fd");
        free(buf);
    }
    int fd = -1;
    TU_RC(tc_read(fx.c, TU_TEXT("none"), &fd, 0), TC_NOTFOUND);
    free(v);
}

/* tc_get leaves @out untouched on anything but TC_OK. */
Test(types, cache_get_miss_leaves_out_untouched)
{
    tc_item it = TC_ITEM_INIT;
    it.value.type = 77;
    it.expire_time = 123.0;
    TU_RC(tc_get(fx.c, TU_TEXT("missing"), &it, 0), TC_NOTFOUND);
    cr_assert_eq(it.value.type, 77);
    cr_assert_eq(it.expire_time, 123.0);
}

/* One table, three outputs: every code has a stable name and a message. */
Test(types, api_error_names)
{
#define CHECK_NAME(name, code, msg)            \
    cr_assert_str_eq(tc_errname(code), #name); \
    cr_assert_str_eq(tc_strerror(code), msg);
    TC_RC_MAP(CHECK_NAME)
#undef CHECK_NAME
    cr_assert_not_null(tc_strerror(12345));
    cr_assert_not_null(tc_errname(-12345));
    cr_assert_not_null(tc_errmsg());
    cr_assert_str_eq(tc_version(), "0.1.0");
}

/* An overwrite is an UPDATE: rowid kept, store_time = access_time = now,
 * access_count reset to 0. */
Test(types, cache_overwrite_updates_row_times)
{
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("b"), TU_INT(1));
    sqlite3 *db = tu_db_open(fx.dir);
    int64_t rowid = tu_db_int(db, -1, "SELECT rowid FROM Cache WHERE key='a'");
    tu_db_exec(db, "UPDATE Cache SET access_count = 5 WHERE key = 'a'");
    tu_clock_advance(&fx.clk, 5);
    TU_OK(tc_set(fx.c, TU_TEXT("a"), TU_INT(2), 10, NULL, 0));
    cr_assert_eq(tu_db_int(db, -1, "SELECT rowid FROM Cache WHERE key='a'"),
                 rowid);
    cr_assert_eq(tu_db_real(db, "SELECT store_time FROM Cache WHERE key='a'"),
                 TU_T0 + 5);
    cr_assert_eq(tu_db_real(db, "SELECT access_time FROM Cache WHERE key='a'"),
                 TU_T0 + 5);
    cr_assert_eq(tu_db_real(db, "SELECT expire_time FROM Cache WHERE key='a'"),
                 TU_T0 + 15);
    cr_assert_eq(
        tu_db_int(db, -1, "SELECT access_count FROM Cache WHERE key='a'"), 0);
    sqlite3_close(db);
}
