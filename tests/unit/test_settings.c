/*
 * test_settings.c - the schema, Settings defaults, persistence of settings
 * across opens, and the pragmas they drive (diskcache-behaviour.md 2-3).
 */
#include "testutil.h"

static void setup(void)
{
    tu_fx_init("settings");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(settings, .init = setup, .fini = teardown, .timeout = 60);

static void expect_setting_int(tc_cache *c, const char *name, int64_t want)
{
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_setting_get(c, name, &v));
    if (v.type == TC_REAL)
        cr_assert_eq(v.d, (double)want, "%s = %g, expected %lld", name, v.d,
                     (long long)want);
    else
        cr_assert(v.type == TC_INT && v.i == want,
                  "%s: type %d value %lld, expected %lld", name, v.type,
                  (long long)v.i, (long long)want);
    tc_value_clear(&v);
}

static void expect_setting_text(tc_cache *c, const char *name, const char *want)
{
    tc_value v = TC_VALUE_INIT;
    TU_OK(tc_setting_get(c, name, &v));
    cr_assert(tu_value_text_eq(&v, want), "%s: type %d '%s', expected '%s'",
              name, v.type, v.type == TC_TEXT ? (char *)v.ptr : "", want);
    tc_value_clear(&v);
}

Test(settings, cache_settings_defaults)
{
    fx.c = tu_open(fx.dir, &fx.clk);
    expect_setting_int(fx.c, "statistics", 0);
    expect_setting_int(fx.c, "tag_index", 0);
    expect_setting_text(fx.c, "eviction_policy", "least-recently-stored");
    expect_setting_int(fx.c, "size_limit", 1073741824);
    expect_setting_int(fx.c, "cull_limit", 10);
    expect_setting_int(fx.c, "sqlite_auto_vacuum", 1);
    expect_setting_int(fx.c, "sqlite_cache_size", 8192);
    expect_setting_text(fx.c, "sqlite_journal_mode", "wal");
    expect_setting_int(fx.c, "sqlite_mmap_size", 67108864);
    expect_setting_int(fx.c, "sqlite_synchronous", 1);
    expect_setting_int(fx.c, "disk_min_file_size", 32768);

    sqlite3 *db = tu_db_open(fx.dir);
    const char *meta[] = {"count", "size", "hits", "misses"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tu_db_int(db, -1,
                               "SELECT value FROM Settings WHERE key = %Q",
                               meta[i]),
                     0, "METADATA row %s", meta[i]);
    cr_assert_eq(tu_db_int(db, -1,
                           "SELECT COUNT(*) FROM Settings WHERE key ="
                           " 'disk_pickle_protocol'"),
                 1, "disk_pickle_protocol row present");
    char *jm = tu_db_text(db, "PRAGMA journal_mode");
    cr_assert_str_eq(jm, "wal");
    free(jm);
    cr_assert_eq(tu_db_int(db, -1, "PRAGMA auto_vacuum"), 1,
                 "auto_vacuum FULL set before the tables were created");
    sqlite3_close(db);
}

/* Section 2: the exact tables, indexes and trigger names. */
Test(settings, cache_schema_matches_diskcache)
{
    fx.c = tu_open(fx.dir, &fx.clk);
    sqlite3 *db = tu_db_open(fx.dir);
    const char *objs[][2] = {
        {"table", "Settings"},
        {"table", "Cache"},
        {"index", "Cache_key_raw"},
        {"index", "Cache_expire_time"},
        {"index", "Cache_store_time"},
        {"trigger", "Settings_count_insert"},
        {"trigger", "Settings_count_delete"},
        {"trigger", "Settings_size_insert"},
        {"trigger", "Settings_size_update"},
        {"trigger", "Settings_size_delete"},
    };
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        cr_assert_eq(tu_db_int(db, 0,
                               "SELECT COUNT(*) FROM sqlite_master WHERE"
                               " type = %Q AND name = %Q",
                               objs[i][0], objs[i][1]),
                     1, "missing %s %s", objs[i][0], objs[i][1]);
    cr_assert_eq(tu_db_int(db, 0,
                           "SELECT COUNT(*) FROM sqlite_master WHERE"
                           " name = 'Cache_tag_rowid'"),
                 0, "no tag index by default");

    char *cols = tu_db_text(db, "SELECT group_concat(name || ':' || type, ',')"
                                " FROM pragma_table_info('Cache')");
    cr_assert_str_eq(cols, "rowid:INTEGER,key:BLOB,raw:INTEGER,"
                           "store_time:REAL,expire_time:REAL,"
                           "access_time:REAL,access_count:INTEGER,tag:BLOB,"
                           "size:INTEGER,mode:INTEGER,filename:TEXT,"
                           "value:BLOB");
    free(cols);
    char *ucols = tu_db_text(db, "SELECT group_concat(name, ',') FROM"
                                 " pragma_index_info('Cache_key_raw')");
    cr_assert_str_eq(ucols, "key,raw");
    free(ucols);
    cr_assert_eq(tu_db_int(db, 0,
                           "SELECT \"unique\" FROM pragma_index_list('Cache')"
                           " WHERE name = 'Cache_key_raw'"),
                 1);
    sqlite3_close(db);
}

static void lru_12345(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(12345)));
    TU_OK(tc_set_setting(c, "eviction_policy", TU_TEXT("least-recently-used")));
}

/* Constructor settings win and are persisted; later opens without settings
 * inherit them. */
Test(settings, cache_settings_persisted)
{
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, lru_12345);
    expect_setting_int(fx.c, "size_limit", 12345);
    tc_close(fx.c);
    fx.c = tu_open(fx.dir, &fx.clk);
    expect_setting_int(fx.c, "size_limit", 12345);
    expect_setting_text(fx.c, "eviction_policy", "least-recently-used");
    expect_setting_int(fx.c, "cull_limit", 10);
    cr_assert(tu_db_has_index(fx.dir, "Cache_access_time"),
              "LRU creates Cache_access_time");
    sqlite3 *db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_int(db, -1,
                           "SELECT value FROM Settings"
                           " WHERE key = 'size_limit'"),
                 12345);
    sqlite3_close(db);
}

/* tc_setting_get reads fresh: a change made through another handle (or by
 * python-diskcache) is seen. */
Test(settings, cache_setting_get_reads_fresh)
{
    fx.c = tu_open(fx.dir, &fx.clk);
    tc_cache *other = tu_open(fx.dir, &fx.clk);
    TU_OK(tc_setting_put(other, "cull_limit", TU_INT(3)));
    expect_setting_int(fx.c, "cull_limit", 3);
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db, "UPDATE Settings SET value = 777 WHERE key = 'size_limit'");
    sqlite3_close(db);
    expect_setting_int(fx.c, "size_limit", 777);
    tc_close(other);
}

/* Changing the policy later creates the new index and drops none. */
Test(settings, cache_policy_change_adds_index)
{
    fx.c = tu_open(fx.dir, &fx.clk);
    cr_assert(tu_db_has_index(fx.dir, "Cache_store_time"));
    TU_OK(tc_setting_put(fx.c, "eviction_policy",
                         TU_TEXT("least-frequently-used")));
    cr_assert(tu_db_has_index(fx.dir, "Cache_access_count"));
    cr_assert(tu_db_has_index(fx.dir, "Cache_store_time"), "never dropped");
    expect_setting_text(fx.c, "eviction_policy", "least-frequently-used");
}

static void min_file_100(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "disk_min_file_size", TU_INT(100)));
}

Test(settings, cache_disk_min_file_size_setting)
{
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, &fx.clk, min_file_100);
    char *v = tu_pattern(100, 1);
    TU_OK(tc_set(fx.c, TU_TEXT("a"), TU_BYTES(v, 99), TC_NO_EXPIRE, NULL, 0));
    TU_OK(tc_set(fx.c, TU_TEXT("b"), TU_BYTES(v, 100), TC_NO_EXPIRE, NULL, 0));
    cr_assert_eq(tu_count_val_files(fx.dir), 1);
    tu_expect_value(fx.c, TU_TEXT("b"), TC_BYTES, v, 100);
    free(v);
}

/* Opening again with no settings rewrites nothing (persisted values stay,
 * including a custom row written by python-diskcache). */
Test(settings, cache_reopen_keeps_foreign_rows)
{
    fx.c = tu_open(fx.dir, &fx.clk);
    tc_close(fx.c);
    fx.c = NULL;
    sqlite3 *db = tu_db_open(fx.dir);
    tu_db_exec(db, "INSERT INTO Settings VALUES ('foo_custom', 7)");
    sqlite3_close(db);
    fx.c = tu_open(fx.dir, &fx.clk);
    db = tu_db_open(fx.dir);
    cr_assert_eq(tu_db_int(db, -1,
                           "SELECT value FROM Settings"
                           " WHERE key = 'foo_custom'"),
                 7);
    sqlite3_close(db);
}
