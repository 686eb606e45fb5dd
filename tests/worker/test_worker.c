/*
 * test_worker.c - the background worker (tiercached) and the writers' side
 * of it (suite 'worker').
 *
 * Every pass is a `tiercached DIR --once` run of the built program
 * ($TIERCACHED, set by meson), so these tests cover the program, its lock
 * and its status record, not only tc_worker_pass. Time is controlled with
 * TIERCACHED_NOW_OFFSET (the worker's clock is the real one plus that many
 * seconds), so nothing depends on sleeping. Crash points
 * (TIERCACHE_CRASH_AT=worker-batch:N, built with -Dtest_hooks=true) kill
 * the worker after its N-th committed batch.
 */
#include <signal.h>
#include <time.h>

#include "testutil.h"

static const char *worker_prog(void)
{
    const char *p = getenv("TIERCACHED");
    cr_assert(p && *p, "TIERCACHED is not set");
    return p;
}

/* Run tiercached on @dir with @extra arguments (NULL-terminated) and the
 * environment variables @env1/@env2 ("NAME=VALUE" or NULL); returns the
 * pid (wait with tu_wait_exit). */
static pid_t start_worker(const char *dir, const char *env1, const char *env2,
                          const char *a1, const char *a2, const char *a3)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (env1)
            putenv((char *)env1);
        if (env2)
            putenv((char *)env2);
        /* Never keep the test runner's pipes open from a worker. */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            if (!getenv("TU_WORKER_VERBOSE"))
                dup2(null, 2);
        }
        execl(worker_prog(), "tiercached", dir, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* One pass at the real clock plus @offset seconds; asserts exit 0. */
static void pass_at(const char *dir, double offset)
{
    char env[64];
    snprintf(env, sizeof env, "TIERCACHED_NOW_OFFSET=%.3f", offset);
    pid_t pid = start_worker(dir, env, NULL, "--once", NULL, NULL);
    int code = tu_wait_exit(pid);
    cr_assert_eq(code, 0, "tiercached --once exited %d", code);
}

static double real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t volume(tc_cache *c)
{
    uint64_t v = 0;
    TU_OK(tc_volume(c, &v));
    return v;
}

static void setting_int(tc_cache *c, const char *name, int64_t v)
{
    TU_OK(tc_setting_put(c, name, TU_INT(v)));
}

static void setting_text(tc_cache *c, const char *name, const char *v)
{
    TU_OK(tc_setting_put(c, name, TU_TEXT(v)));
}

static int64_t rows(const char *dir)
{
    sqlite3 *db = tu_db_open(dir);
    int64_t n = tu_db_int(db, -1, "SELECT COUNT(*) FROM Cache");
    sqlite3_close(db);
    return n;
}

static void check_clean(tc_cache *c)
{
    uint64_t warnings = 99;
    TU_OK(tc_check(c, 0, tu_on_problem, NULL, &warnings, 0));
    cr_assert_eq(warnings, 0, "tc_check found %llu problems",
                 (unsigned long long)warnings);
}

static void set_value(tc_cache *c, int i, size_t len, double expire)
{
    char key[32];
    char *val = tu_pattern(len, (unsigned)i);
    snprintf(key, sizeof key, "key-%d", i);
    TU_OK(tc_set(c, TU_TEXT(key), TU_BYTES(val, len), expire, NULL, 0));
    free(val);
}

static int has_key(tc_cache *c, int i)
{
    char key[32];
    snprintf(key, sizeof key, "key-%d", i);
    return tc_contains(c, TU_TEXT(key)) == TC_OK;
}

/* A failed test must not leave its worker running: kill the lock holder. */
static void worker_fini(void)
{
    int fd = -1, rc = TC_EINVAL;
    int64_t holder = 0;
    if (fx.dir[0])
        rc = tc_worker_lock(fx.dir, &fd, &holder);
    if (rc == TC_OK)
        close(fd);
    else if (rc == TC_EXISTS && holder > 0)
        kill((pid_t)holder, SIGKILL);
    tu_fx_fini();
}

TestSuite(worker, .init = NULL, .fini = worker_fini, .timeout = 60);

/* ---- size converges to size_limit, for each eviction policy ----------- */

#define LIMIT (256 * 1024)

/* Writers run while a worker is live (the test holds the worker lock, so
 * writers skip their inline cull), then the worker runs one pass; three
 * rounds of writes far beyond the limit. */
static void converge(const char *policy)
{
    tu_fx_init("wconv");
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, NULL, NULL);
    setting_text(fx.c, "eviction_policy", policy);
    setting_int(fx.c, "size_limit", LIMIT);
    bool none = !strcmp(policy, "none");
    int next = 0;
    for (int round = 0; round < 3; round++) {
        int lockfd = -1;
        TU_OK(tc_worker_lock(fx.dir, &lockfd, NULL));
        tc_close(fx.c); /* a fresh handle sees the worker at once */
        fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, NULL, NULL);
        cr_assert_eq(tc_worker_live(fx.c), 1);
        for (int i = 0; i < 300; i++)
            set_value(fx.c, next++, 2000, TC_NO_EXPIRE);
        uint64_t before = volume(fx.c);
        cr_assert_gt(before, LIMIT, "%s: writers culled with a live worker",
                     policy);
        close(lockfd);
        pass_at(fx.dir, 0);
        uint64_t after = volume(fx.c);
        if (none) {
            cr_assert_geq(after, before, "policy none must never cull");
        } else {
            cr_assert_leq(after, LIMIT, "%s round %d: %llu > limit", policy,
                          round, (unsigned long long)after);
            cr_assert_geq(after, LIMIT * 3 / 4,
                          "%s round %d: culled far below the limit (%llu)",
                          policy, round, (unsigned long long)after);
        }
    }
    check_clean(fx.c);
    tc_worker_status st;
    TU_OK(tc_worker_status_get(fx.c, &st));
    cr_assert_eq(st.passes, 1);
    cr_assert_eq(st.errors, 0, "worker errors: %s", st.last_error);
    if (!none)
        cr_assert_gt(st.culled, 0);
}

Test(worker, converge_lrs)
{
    converge("least-recently-stored");
}
Test(worker, converge_lru)
{
    converge("least-recently-used");
}
Test(worker, converge_lfu)
{
    converge("least-frequently-used");
}
Test(worker, converge_none)
{
    converge("none");
}

/* ---- writers: skip the inline cull with a live worker, bounded --------- */

Test(worker, writers_emergency_step)
{
    tu_fx_init("wemerg");
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, NULL, NULL);
    setting_int(fx.c, "size_limit", LIMIT);
    /* No worker: python-diskcache's inline cull keeps the size near the
     * limit. */
    for (int i = 0; i < 600; i++)
        set_value(fx.c, i, 2000, TC_NO_EXPIRE);
    uint64_t v = volume(fx.c);
    cr_assert_leq(v, LIMIT + 40000, "no worker: inline cull let it reach %llu",
                  (unsigned long long)v);
    /* A live worker: writers let the shard grow past the limit, but take
     * the emergency step beyond twice the limit. */
    int lockfd;
    TU_OK(tc_worker_lock(fx.dir, &lockfd, NULL));
    tc_close(fx.c);
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, NULL, NULL);
    for (int i = 600; i < 1400; i++)
        set_value(fx.c, i, 2000, TC_NO_EXPIRE);
    v = volume(fx.c);
    cr_assert_gt(v, LIMIT * 3 / 2, "live worker: writers still culled (%llu)",
                 (unsigned long long)v);
    cr_assert_leq(v, 2 * LIMIT + 40000, "no emergency step: %llu",
                  (unsigned long long)v);
    close(lockfd);
}

/* ---- expiry within two intervals ---------------------------------------- */

/* Items expiring in 25 s; passes every 10 s (simulated with the clock
 * offset) remove them at the first pass after they expire, never before,
 * and leave everything else alone. Includes file-backed values. */
Test(worker, expired_gone_within_two_intervals)
{
    tu_fx_init("wexp");
    fx.c = tu_open_hot(fx.dir, 2, NULL, TU_HOT_SIZE);
    double t0 = real_now();
    for (int i = 0; i < 300; i++)
        set_value(fx.c, i, i % 25 == 0 ? 40000 : 100,
                  i % 2 ? 25.0 : TC_NO_EXPIRE);
    cr_assert_eq(tu_count_val_files(fx.dir), 12);
    uint64_t hot0 = tu_hot_stats(fx.c).items;
    cr_assert_geq(hot0, 288, "sets did not publish (%llu)",
                  (unsigned long long)hot0);
    double interval = 10;
    for (int k = 0; k <= 4; k++) {
        /* The pass runs at real time + offset: pin it to t0 + k * 10. */
        double offset = t0 + k * interval - real_now();
        pass_at(fx.dir, offset);
        uint64_t n = 0;
        TU_OK(tc_length(fx.c, &n));
        if (k * interval < 25 - 1) {
            cr_assert_eq(n, 300, "pass at +%gs removed live items",
                         k * interval);
        } else if (k * interval >= 25 + 2 * interval - 1e-9 || k == 3) {
            cr_assert_eq(n, 150, "pass at +%gs: %llu items", k * interval,
                         (unsigned long long)n);
        }
    }
    for (int i = 0; i < 300; i += 2)
        cr_assert(has_key(fx.c, i), "key-%d lost", i);
    cr_assert_eq(tu_count_val_files(fx.dir), 6, "value files not removed");
    /* The hot tier lost the expired items too, and nothing else. */
    uint64_t hot1 = tu_hot_stats(fx.c).items;
    cr_assert_geq(hot0 - hot1, 144,
                  "hot tier kept expired items (%llu -> %llu)",
                  (unsigned long long)hot0, (unsigned long long)hot1);
    cr_assert_leq(hot0 - hot1, 150);
    tu_expect_hot_clean(fx.c);
    check_clean(fx.c);
    tc_worker_status st;
    TU_OK(tc_worker_status_get(fx.c, &st));
    cr_assert_eq(st.errors, 0, "%s", st.last_error);
}

/* ---- LRU and LFU cull what was not read through the hot tier ---------- */

#define NKEYS 60
#define VLEN  8000

static uint64_t measure_half_volume(const char *policy)
{
    char dir[TU_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/twin", fx.base);
    tc_cache *c = tu_open_ex(dir, TC_SHARDS_PLAIN, NULL, NULL);
    setting_text(c, "eviction_policy", policy);
    for (int i = 0; i < NKEYS; i += 2)
        set_value(c, i, VLEN, TC_NO_EXPIRE);
    uint64_t v = volume(c);
    tc_close(c);
    return v;
}

static void cull_unread(const char *policy)
{
    tu_fx_init("wfold");
    /* Writes happen in 2023 (TU_T0): every hot access is later. */
    fx.c = tu_open_hot(fx.dir, TC_SHARDS_PLAIN, &fx.clk, TU_HOT_SIZE);
    setting_text(fx.c, "eviction_policy", policy);
    for (int i = 0; i < NKEYS; i++)
        set_value(fx.c, i, VLEN, TC_NO_EXPIRE);
    tc_hot_stats h0 = tu_hot_stats(fx.c);
    cr_assert_eq(h0.items, NKEYS, "sets did not publish to the hot tier");
    tu_clock_advance(&fx.clk, 100); /* LRU: the reads are newer */
    /* Read the even keys, several times each, only through hot hits. */
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < NKEYS; i += 2) {
            char key[32];
            tc_item it = TC_ITEM_INIT;
            snprintf(key, sizeof key, "key-%d", i);
            TU_OK(tc_get(fx.c, TU_TEXT(key), &it, 0));
            tc_item_clear(&it);
        }
    tc_hot_stats h1 = tu_hot_stats(fx.c);
    cr_assert_eq(h1.hits - h0.hits, 3 * NKEYS / 2, "reads missed the hot tier");
    sqlite3 *db = tu_db_open(fx.dir);
    int64_t touched =
        tu_db_int(db, -1,
                  "SELECT COUNT(*) FROM Cache WHERE access_time > %.0f"
                  " OR access_count > 0",
                  TU_T0 + 1);
    cr_assert_eq(touched, 0, "hot hits wrote SQLite");

    /* One worker pass folds the accesses (the limit is far away). */
    pass_at(fx.dir, 0);
    touched = tu_db_int(db, -1,
                        "SELECT COUNT(*) FROM Cache WHERE access_time > %.0f"
                        " OR access_count > 0",
                        TU_T0 + 1);
    cr_assert_eq(touched, NKEYS / 2, "the pass folded %lld rows",
                 (long long)touched);
    sqlite3_close(db);
    tc_worker_status st;
    TU_OK(tc_worker_status_get(fx.c, &st));
    cr_assert_eq(st.folded, NKEYS / 2);
    cr_assert_eq(st.culled, 0);

    /* Now a limit that fits the read half (measured on a twin holding only
     * those items) plus half an item: the cull must remove the unread half
     * and nothing else, up to one item of page rounding either way. */
    uint64_t half = measure_half_volume(policy);
    setting_int(fx.c, "size_limit", (int64_t)(half + VLEN / 2));
    pass_at(fx.dir, 0);
    int read_gone = 0, unread_left = 0;
    for (int i = 0; i < NKEYS; i += 2)
        read_gone += !has_key(fx.c, i);
    for (int i = 1; i < NKEYS; i += 2)
        unread_left += has_key(fx.c, i);
    cr_assert(read_gone == 0 || unread_left == 0,
              "%s culled %d read keys while %d unread remain", policy,
              read_gone, unread_left);
    cr_assert_leq(read_gone, 1, "%s culled %d read keys", policy, read_gone);
    cr_assert_leq(unread_left, 1, "%s left %d unread keys", policy,
                  unread_left);
    cr_assert_leq(volume(fx.c), half + VLEN / 2);
    TU_OK(tc_worker_status_get(fx.c, &st));
    cr_assert_geq(st.culled, NKEYS / 2 - 1);
    check_clean(fx.c);
}

Test(worker, lru_culls_the_unread_half)
{
    cull_unread("least-recently-used");
}
Test(worker, lfu_culls_the_unread_half)
{
    cull_unread("least-frequently-used");
}

/* tc_hot_fold in small batches writes every read key's access, once. */
Test(worker, hot_fold_batches)
{
    tu_fx_init("whfold");
    fx.c = tu_open_hot(fx.dir, 2, &fx.clk, TU_HOT_SIZE);
    setting_text(fx.c, "eviction_policy", "least-frequently-used");
    for (int i = 0; i < 50; i++)
        set_value(fx.c, i, 100, TC_NO_EXPIRE);
    for (int i = 0; i < 50; i += 5) {
        char key[32];
        tc_item it = TC_ITEM_INIT;
        snprintf(key, sizeof key, "key-%d", i);
        TU_OK(tc_get(fx.c, TU_TEXT(key), &it, 0));
        tc_item_clear(&it);
    }
    uint64_t n = 0;
    TU_OK(tc_hot_fold(fx.c, 3, &n));
    cr_assert_eq(n, 10);
    TU_OK(tc_hot_fold(fx.c, 3, &n));
    cr_assert_eq(n, 0, "accesses folded twice");
    int64_t counted = 0, all = 0;
    for (int s = 0; s < 2; s++) {
        char shard[TU_PATH_MAX];
        snprintf(shard, sizeof shard, "%s/%03d", fx.dir, s);
        sqlite3 *db = tu_db_open(shard);
        counted += tu_db_int(db, -1,
                             "SELECT COUNT(*) FROM Cache WHERE access_count > 0"
                             " AND CAST(substr(key, 5) AS INTEGER) %% 5 = 0");
        all += tu_db_int(db, -1,
                         "SELECT COUNT(*) FROM Cache WHERE access_count > 0");
        sqlite3_close(db);
    }
    cr_assert_eq(counted, 10);
    cr_assert_eq(all, 10, "unread keys got access counts");
}

/* ---- SIGKILL mid-pass -------------------------------------------------- */

Test(worker, sigkill_mid_pass_loses_nothing)
{
    tu_fx_init("wkill");
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, NULL, NULL);
    TU_OK(tc_begin(fx.c, 0));
    for (int i = 0; i < 3000; i++)
        set_value(fx.c, i, 50, i % 3 ? 5.0 : TC_NO_EXPIRE);
    TU_OK(tc_commit(fx.c));
    /* 2000 expired rows are 20 batches; die after the 7th commits. */
    pid_t pid =
        start_worker(fx.dir, "TIERCACHED_NOW_OFFSET=60",
                     "TIERCACHE_CRASH_AT=worker-batch:7", "--once", NULL, NULL);
    int code = tu_wait_exit(pid);
    if (code == 0) {
        worker_fini(); /* a skipped test does not run .fini */
        cr_skip_test("built without -Dtest_hooks=true");
    }
    cr_assert_eq(code, 128 + SIGKILL, "worker exited %d", code);
    cr_assert_eq(rows(fx.dir), 3000 - 700, "not exactly 7 batches committed");
    cr_assert_eq(tc_worker_live(fx.c), 0, "a dead worker still holds the lock");
    check_clean(fx.c);
    for (int i = 0; i < 3000; i += 3)
        cr_assert(has_key(fx.c, i), "key-%d lost", i);
    /* A new worker takes the lock and finishes the job. */
    pass_at(fx.dir, 60);
    cr_assert_eq(rows(fx.dir), 1000);
    for (int i = 0; i < 3000; i += 3)
        cr_assert(has_key(fx.c, i), "key-%d lost", i);
    uint64_t n = 0;
    TU_OK(tc_length(fx.c, &n));
    cr_assert_eq(n, 1000);
    check_clean(fx.c);
}

/* ---- one worker per directory ------------------------------------------ */

/* True while @pid (our child) runs; never reaps it. */
static int worker_alive(pid_t pid)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 0;
    return info.si_pid == 0;
}

Test(worker, two_workers_never_run)
{
    tu_fx_init("wtwo");
    fx.c = tu_open_ex(fx.dir, 2, NULL, NULL);
    /* Six at once: exactly one keeps running, five exit with status 3. */
    pid_t pids[6];
    for (int i = 0; i < 6; i++)
        pids[i] = start_worker(fx.dir, NULL, NULL, "--interval", "0.05", NULL);
    int running = -1, refused = 0;
    for (int i = 0; i < 6; i++) {
        /* Losers exit by themselves; the winner never does. */
        for (int t = 0; t < 200 && worker_alive(pids[i]); t++) {
            if (tc_worker_live(fx.c)) {
                int64_t holder = 0;
                int fd;
                cr_assert_eq(tc_worker_lock(fx.dir, &fd, &holder), TC_EXISTS);
                if (holder == pids[i])
                    break;
            }
            usleep(20000);
        }
        int st;
        pid_t r = waitpid(pids[i], &st, WNOHANG);
        if (r == 0) {
            cr_assert_eq(running, -1, "two workers running at once");
            running = i;
        } else {
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3,
                      "a second worker exited with %d", st);
            refused++;
        }
    }
    cr_assert_neq(running, -1);
    cr_assert_eq(refused, 5);
    /* Its status record appears, and SIGTERM stops it cleanly. */
    tc_worker_status st;
    for (int t = 0; t < 250 && tc_worker_status_get(fx.c, &st) != TC_OK; t++)
        usleep(20000);
    TU_OK(tc_worker_status_get(fx.c, &st));
    cr_assert_eq(st.pid, pids[running]);
    /* `tiercache stats` shows it. */
    const char *cli = getenv("TIERCACHE");
    if (cli && *cli) {
        char cmd[2 * TU_PATH_MAX], out[8192];
        snprintf(cmd, sizeof cmd, "'%s' stats '%s'", cli, fx.dir);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        cr_assert_eq(pclose(p), 0);
        char want[64];
        snprintf(want, sizeof want, "worker pid          %d\n", pids[running]);
        cr_assert(strstr(out, "worker              running\n"), "%s", out);
        cr_assert(strstr(out, want), "%s", out);
    }
    kill(pids[running], SIGTERM);
    cr_assert_eq(tu_wait_exit(pids[running]), 0);
    cr_assert_eq(tc_worker_live(fx.c), 0);
}

/* ---- auto-start --------------------------------------------------------- */

/* tiercached processes whose DIR argument is @dir (from /proc). */
static int count_workers(const char *dir, pid_t *one)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    cr_assert_not_null(d);
    while ((e = readdir(d))) {
        char path[300], buf[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = 0;
        const char *arg0 = buf;
        const char *arg1 = buf + strlen(buf) + 1;
        const char *base = strrchr(arg0, '/');
        base = base ? base + 1 : arg0;
        if (arg1 < buf + len && !strcmp(base, "tiercached") &&
            !strcmp(arg1, dir)) {
            n++;
            if (one)
                *one = (pid_t)atoi(e->d_name);
        }
    }
    closedir(d);
    return n;
}

Test(worker, auto_start_exactly_one)
{
    tu_fx_init("wauto");
    char abs[TU_PATH_MAX];
    fx.c = tu_open_ex(fx.dir, 2, NULL, NULL);
    cr_assert_not_null(realpath(fx.dir, abs));
    cr_assert_eq(count_workers(abs, NULL), 0);
    struct tu_barrier b;
    tu_barrier_init(&b);
    pid_t kids[8];
    for (int i = 0; i < 8; i++) {
        if ((kids[i] = fork()) == 0) {
            tu_barrier_wait(&b);
            tc_cache *c = NULL;
            if (tc_create(&c) || tc_set_worker(c, TC_WORKER_AUTO) ||
                tc_open(c, fx.dir, 0))
                _exit(1);
            tc_close(c);
            _exit(0);
        }
    }
    tu_barrier_release(&b);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(tu_wait_exit(kids[i]), 0);
    /* The losers of the lock race exit at once; wait for them. */
    pid_t worker = 0;
    int n = -1;
    for (int t = 0; t < 250; t++) {
        n = count_workers(abs, &worker);
        if (n == 1 && tc_worker_live(fx.c))
            break;
        usleep(20000);
    }
    cr_assert_eq(n, 1, "%d workers for one directory", n);
    cr_assert_eq(tc_worker_live(fx.c), 1);
    int64_t holder = 0;
    int fd;
    cr_assert_eq(tc_worker_lock(fx.dir, &fd, &holder), TC_EXISTS);
    cr_assert_eq(holder, worker, "the lock holder is not the one worker");
    /* It is detached: not our child, its own session. */
    cr_assert_eq(waitpid(worker, NULL, WNOHANG), -1);
    cr_assert_neq(getsid(worker), getsid(0));
    /* Opening again with a live worker starts nothing. */
    tc_cache *c = NULL;
    TU_OK(tc_create(&c));
    TU_OK(tc_set_worker(c, TC_WORKER_AUTO));
    TU_OK(tc_open(c, fx.dir, 0));
    tc_close(c);
    usleep(100000);
    cr_assert_eq(count_workers(abs, NULL), 1);
    kill(worker, SIGTERM);
    for (int t = 0; t < 250 && tc_worker_live(fx.c); t++)
        usleep(20000);
    cr_assert_eq(tc_worker_live(fx.c), 0, "SIGTERM did not stop the worker");
}

/* ---- the status record and SIGHUP -------------------------------------- */

Test(worker, sighup_rereads_settings)
{
    tu_fx_init("whup");
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_PLAIN, NULL, NULL);
    setting_text(fx.c, "eviction_policy", "least-recently-stored");
    pid_t pid = start_worker(fx.dir, NULL, NULL, "--interval", "0.1", NULL);
    tc_worker_status st;
    for (int t = 0; t < 250 && tc_worker_status_get(fx.c, &st) != TC_OK; t++)
        usleep(20000);
    TU_OK(tc_worker_status_get(fx.c, &st));
    /* Fill past a lower limit set behind the worker's back: a worker that
     * never re-read its settings would keep the old (1 GB) limit. Writers
     * skip the inline cull because the worker is live. */
    for (int i = 0; i < 300; i++)
        set_value(fx.c, i, 2000, TC_NO_EXPIRE);
    setting_int(fx.c, "size_limit", LIMIT);
    uint64_t total = st.total_culled;
    usleep(300000);
    TU_OK(tc_worker_status_get(fx.c, &st));
    cr_assert_eq(st.total_culled, total, "culled before SIGHUP");
    kill(pid, SIGHUP);
    for (int t = 0; t < 250 && volume(fx.c) > LIMIT; t++)
        usleep(20000);
    cr_assert_leq(volume(fx.c), LIMIT, "SIGHUP did not apply size_limit");
    kill(pid, SIGTERM);
    cr_assert_eq(tu_wait_exit(pid), 0);
}
