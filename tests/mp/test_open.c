/*
 * test_open.c - opening is race-free and an open that changes nothing
 * writes nothing (DESIGN-BRIEF section 3; python-diskcache's init retry
 * loop, diskcache-behaviour.md section 3 step 1).
 *
 * Children open their own handle after the fork, start together through a
 * pipe barrier and report through their exit code:
 *   0 ok, 10 EBUSY at open, 11 EBUSY at a set/get, 20 other open error,
 *   21 other set/get error, 22 a value read that nobody wrote.
 */
#include <time.h>

#include "testutil.h"

#define NCHILD 16
#define NKEYS  50

static void setup(void)
{
    tu_fx_init("mpopen");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(mp_open, .init = setup, .fini = teardown, .timeout = 240);

static const char *exit_meaning(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case 10:
        return "EBUSY at open (database is locked)";
    case 11:
        return "EBUSY at set/get";
    case 20:
        return "open failed";
    case 21:
        return "set/get failed";
    case 22:
        return "read a value nobody wrote";
    default:
        return code >= 128 ? "killed by a signal" : "?";
    }
}

/* race_child - the body of one of the NCHILD children. */
static int race_child(const char *dir, int shards, int idx,
                      struct tu_barrier *b)
{
    tu_barrier_wait(b);
    tc_cache *c = NULL;
    if (tc_create(&c) != TC_OK)
        return 20;
    (void)tc_set_hot_size(c, 0);
    tc_set_shards(c, shards);
    int rc = tc_open(c, dir, 0);
    if (rc == TC_EBUSY) {
        fprintf(stderr, "child %d: open: %s\n", idx, tc_errmsg());
        return 10;
    }
    if (rc != TC_OK) {
        fprintf(stderr, "child %d: open: %s: %s\n", idx, tc_errname(rc),
                tc_errmsg());
        return 20;
    }
    /* A FanoutCache has python-diskcache's 10 ms busy timeout, after which
     * a write is *meant* to fail unless retried; a Cache has 60 s, so a
     * busy error there is a bug. */
    unsigned flags = shards == TC_SHARDS_PLAIN ? 0 : TC_RETRY;
    for (int i = 0; i < NKEYS; i++) {
        char k[32];
        snprintf(k, sizeof k, "c%d-%d", idx, i);
        rc = tc_set(c, TU_TEXT(k), TU_INT(idx * 1000 + i), TC_NO_EXPIRE, NULL,
                    flags);
        if (rc != TC_OK) {
            fprintf(stderr, "child %d: set: %s: %s\n", idx, tc_errname(rc),
                    tc_errmsg());
            return rc == TC_EBUSY ? 11 : 21;
        }
        /* Read a key of another child: absent, or what that child wrote. */
        int other = (idx + i) % NCHILD;
        snprintf(k, sizeof k, "c%d-%d", other, i);
        tc_item it = TC_ITEM_INIT;
        rc = tc_get(c, TU_TEXT(k), &it, 0);
        if (rc == TC_OK) {
            int64_t v = it.value.i;
            tc_item_clear(&it);
            if (v != other * 1000 + i)
                return 22;
        } else if (rc != TC_NOTFOUND) {
            fprintf(stderr, "child %d: get: %s\n", idx, tc_errname(rc));
            return rc == TC_EBUSY ? 11 : 21;
        }
    }
    tc_close(c);
    return 0;
}

static void run_race(int shards)
{
    pid_t pids[NCHILD];
    struct tu_barrier b;
    tu_barrier_init(&b);
    fflush(NULL);
    for (int i = 0; i < NCHILD; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0)
            _exit(race_child(fx.dir, shards, i, &b));
    }
    usleep(100 * 1000); /* let every child reach the barrier */
    tu_barrier_release(&b);
    int bad = 0;
    for (int i = 0; i < NCHILD; i++) {
        int code = tu_wait_exit(pids[i]);
        if (code != 0) {
            cr_log_error("child %d: exit %d (%s)", i, code, exit_meaning(code));
            bad++;
        }
    }
    cr_assert_eq(bad, 0, "%d of %d children failed (see log)", bad, NCHILD);

    fx.c = tu_open_ex(fx.dir, TC_SHARDS_AUTO, NULL, NULL);
    cr_assert_eq(tc_shard_count(fx.c), shards == TC_SHARDS_PLAIN ? 0 : 8);
    cr_assert_eq(tu_length(fx.c), NCHILD * NKEYS);
    for (int i = 0; i < NCHILD; i++)
        for (int j = 0; j < NKEYS; j++) {
            char k[32];
            snprintf(k, sizeof k, "c%d-%d", i, j);
            tu_expect_int(fx.c, TU_TEXT(k), i * 1000 + j);
        }
    uint64_t w = 99;
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0);
}

Test(mp_open, mp_open_race_new_dir_cache)
{
    run_race(TC_SHARDS_PLAIN);
}

Test(mp_open, mp_open_race_new_dir_fanout)
{
    run_race(TC_SHARDS_AUTO);
}

Test(mp_open, mp_open_race_existing_dir_cache)
{
    fx.c = tu_open(fx.dir, NULL);
    tu_set(fx.c, TU_TEXT("pre"), TU_INT(1));
    tc_close(fx.c);
    fx.c = NULL;
    /* The check in run_race counts the extra key. */
    pid_t pids[NCHILD];
    struct tu_barrier b;
    tu_barrier_init(&b);
    fflush(NULL);
    for (int i = 0; i < NCHILD; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0)
            _exit(race_child(fx.dir, TC_SHARDS_PLAIN, i, &b));
    }
    usleep(100 * 1000);
    tu_barrier_release(&b);
    for (int i = 0; i < NCHILD; i++) {
        int code = tu_wait_exit(pids[i]);
        cr_assert_eq(code, 0, "child %d: exit %d (%s)", i, code,
                     exit_meaning(code));
    }
    fx.c = tu_open(fx.dir, NULL);
    cr_assert_eq(tu_length(fx.c), NCHILD * NKEYS + 1);
}

/* ===================================================================== */
/* An open that changes nothing writes nothing                           */

struct fstate {
    int exists;
    off_t size;
    struct timespec mtime;
    uint64_t digest; /* FNV-1a of the contents */
    long wal_frames; /* valid frames (WAL files only) */
};

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
           u[3];
}

/* wal_frames - frames after the 32-byte header whose salts match the
 * header's (the frames of the current WAL generation). */
static long wal_frames(const char *p, size_t n)
{
    if (n < 32)
        return 0;
    uint32_t page = be32(p + 8);
    if (page == 1)
        page = 65536;
    long frames = 0;
    for (size_t off = 32; off + 24 + page <= n; off += 24 + page) {
        if (memcmp(p + off + 8, p + 16, 8) != 0)
            break;
        frames++;
    }
    return frames;
}

static void snapshot(const char *path, struct fstate *s)
{
    struct stat st;
    memset(s, 0, sizeof *s);
    if (stat(path, &st) != 0)
        return;
    s->exists = 1;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
    size_t n = 0;
    char *data = tu_read_file(path, &n);
    cr_assert_not_null(data);
    s->digest = fnv1a(data, n);
    s->wal_frames = wal_frames(data, n);
    free(data);
}

static void expect_same(const char *path, const struct fstate *a,
                        const struct fstate *b)
{
    cr_assert_eq(a->exists, b->exists, "%s appeared/disappeared", path);
    cr_assert_eq(a->size, b->size, "%s size %lld -> %lld", path,
                 (long long)a->size, (long long)b->size);
    cr_assert(a->mtime.tv_sec == b->mtime.tv_sec &&
                  a->mtime.tv_nsec == b->mtime.tv_nsec,
              "%s mtime changed", path);
    cr_assert_eq(a->digest, b->digest, "%s contents changed", path);
    cr_assert_eq(a->wal_frames, b->wal_frames, "%s WAL frames %ld -> %ld", path,
                 a->wal_frames, b->wal_frames);
}

static int same_settings; /* reader_child repeats the creator's settings */

static void custom_settings(tc_cache *c)
{
    TU_OK(tc_set_setting(c, "size_limit", TU_INT(123456789)));
    TU_OK(tc_set_setting(c, "eviction_policy", TU_TEXT("none")));
    TU_OK(tc_set_setting(c, "cull_limit", TU_INT(3)));
}

static int reader_child(void *arg, int msgfd)
{
    const char *dir = arg;
    tc_cache *c = NULL;
    if (tc_create(&c) != TC_OK)
        return tu_child_msg(msgfd, "create");
    (void)tc_set_hot_size(c, 0);
    if (same_settings &&
        (tc_set_setting(c, "size_limit", TU_INT(123456789)) != TC_OK ||
         tc_set_setting(c, "eviction_policy", TU_TEXT("none")) != TC_OK ||
         tc_set_setting(c, "cull_limit", TU_INT(3)) != TC_OK))
        return tu_child_msg(msgfd, "tc_set_setting");
    int rc = tc_open(c, dir, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "open: %s", tc_errname(rc));
    tc_item it = TC_ITEM_INIT;
    rc = tc_get(c, TU_TEXT("k1"), &it, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "get: %s", tc_errname(rc));
    tc_item_clear(&it);
    rc = tc_get(c, TU_TEXT("missing"), &it, 0);
    if (rc != TC_NOTFOUND)
        return tu_child_msg(msgfd, "get missing: %s", tc_errname(rc));
    tc_close(c);
    return 0;
}

/* check_open_writes_nothing - snapshot cache.db and -wal of every db under
 * @dbdirs, run reader_child on fx.dir, compare. */
static void check_open_writes_nothing(int ndirs)
{
    struct fstate before[16][2], after[16][2];
    char paths[16][2][TU_PATH_MAX];
    for (int i = 0; i < ndirs; i++) {
        const char *sub = "";
        char shard[8] = "";
        if (ndirs > 1) {
            snprintf(shard, sizeof shard, "/%03d", i);
            sub = shard;
        }
        snprintf(paths[i][0], TU_PATH_MAX, "%s%s/cache.db", fx.dir, sub);
        snprintf(paths[i][1], TU_PATH_MAX, "%s%s/cache.db-wal", fx.dir, sub);
        snapshot(paths[i][0], &before[i][0]);
        snapshot(paths[i][1], &before[i][1]);
        cr_assert(before[i][0].exists, "%s", paths[i][0]);
    }
    usleep(20 * 1000); /* a write now would show in mtime */
    char msg[1024];
    int code = tu_run_child(reader_child, fx.dir, msg, sizeof msg);
    cr_assert_eq(code, 0, "reader child: exit %d: %s", code, msg);
    for (int i = 0; i < ndirs; i++) {
        snapshot(paths[i][0], &after[i][0]);
        snapshot(paths[i][1], &after[i][1]);
        expect_same(paths[i][0], &before[i][0], &after[i][0]);
        expect_same(paths[i][1], &before[i][1], &after[i][1]);
    }
}

static void fill(void)
{
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        tu_set(fx.c, TU_TEXT(k), TU_INT(i));
    }
}

/* The writer keeps its handle open, so cache.db-wal holds frames. */
Test(mp_open, mp_open_existing_writes_nothing_writer_open)
{
    fx.c = tu_open(fx.dir, NULL);
    fill();
    tu_expect_int(fx.c, TU_TEXT("k1"), 1);
    char wal[TU_PATH_MAX];
    snprintf(wal, sizeof wal, "%s/cache.db-wal", fx.dir);
    struct fstate s;
    snapshot(wal, &s);
    cr_assert(s.exists && s.wal_frames > 0, "expected WAL frames (%ld)",
              s.wal_frames);
    check_open_writes_nothing(1);
    tu_expect_int(fx.c, TU_TEXT("k1"), 1);
}

Test(mp_open, mp_open_existing_writes_nothing_closed)
{
    fx.c = tu_open(fx.dir, NULL);
    fill();
    tc_close(fx.c);
    fx.c = NULL;
    check_open_writes_nothing(1);
}

Test(mp_open, mp_open_existing_fanout_writes_nothing)
{
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_AUTO, NULL, NULL);
    fill();
    check_open_writes_nothing(8);
}

/* Opening with the settings the cache already holds changes nothing
 * either (python-diskcache would rewrite every Settings row). The policy
 * is 'none' so that the child's get is not an LRU/LFU access. */
Test(mp_open, mp_open_same_settings_writes_nothing)
{
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, NULL, custom_settings);
    fill();
    tc_close(fx.c);
    fx.c = NULL;
    same_settings = 1;
    check_open_writes_nothing(1);
}
