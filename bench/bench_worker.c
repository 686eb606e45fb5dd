/*
 * bench_worker.c - issue 5's benchmark: reader latency while tiercached
 * works, and LRU get against python-diskcache (tiercache-bench --only
 * worker; never part of the default run).
 *
 * 1. Reader latency. A FanoutCache (8 shards, default hot_size) holds N
 *    filler items (--worker-items, default 1,000,000; tc_set_many in
 *    batches) and then WK_LIVE live keys. A forked reader opens its own
 *    handle and gets the live keys round-robin, timing each get with
 *    CLOCK_MONOTONIC into a log-linear histogram (1/64 relative
 *    resolution; the max is exact). Phases, each on a fresh fill:
 *      idle    the reader alone (WK_IDLE_S seconds);
 *      expire  the reader while `tiercached DIR --once` expires the N
 *              fillers (stored with expire 3600 s; the worker runs with
 *              TIERCACHED_NOW_OFFSET=7200, so they are past their expiry
 *              for it and only for it; the live keys never expire);
 *      cull    the reader while it culls them (fillers stored first,
 *              live keys last, so least-recently-stored order culls the
 *              fillers; then tc_setting_put size_limit to ~1.25x the
 *              volume of the live keys alone).
 *    For a hot reader (hits in the hot tier) and a cold one
 *    (tc_set_hot_size 0: every get reads SQLite). Goal: p99 while the
 *    worker works <= 2x the idle p99 measured on the same directory.
 * 2. LRU get: a plain Cache, eviction_policy least-recently-used, WK_LRU
 *    keys, 100-byte values: tiercache get (hot, and cold) against
 *    python-diskcache's Cache(eviction_policy='least-recently-used').get
 *    (bench/diskcache_lru.py), median of runs after one warm-up run.
 *
 * Only tiercache.h of the library is used.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifndef BENCH_LRU_SRC
#define BENCH_LRU_SRC "bench/diskcache_lru.py"
#endif
#ifndef BENCH_LRU_INSTALLED
#define BENCH_LRU_INSTALLED BENCH_LRU_SRC
#endif

#define WK_LIVE       10000 /* live keys the readers read */
#define WK_LRU        10000 /* keys of the LRU row */
#define WK_BATCH      10000 /* tc_set_many batch of the fill */
#define WK_FILL_VAL   32    /* bytes of a filler value */
#define WK_IDLE_S     2.0   /* seconds of the idle phase */
#define WK_EXPIRE     3600.0
#define WK_SKEW       "7200"
#define WK_GOAL       2.0
#define WK_LRU_PASSES 10 /* passes over the LRU keys per timed run */

/* Log-linear histogram: exact below 128 ns, then 64 sub-buckets per
 * power of two up to 2^41 ns. */
#define HB_EXP_MAX 41
#define HB_COUNT   (128 + (HB_EXP_MAX - 7 + 1) * 64)

struct hist {
    uint64_t n, misses, max;
    uint64_t b[HB_COUNT];
};

/* Shared with the reader child. */
struct reader_shm {
    _Atomic int go, stop;
    struct hist h;
};

void worker_bench(const struct bench_opts *o, int items);

static int hb_index(uint64_t v)
{
    if (v < 128)
        return (int)v;
    int e = 63 - __builtin_clzll(v);
    if (e > HB_EXP_MAX)
        return HB_COUNT - 1;
    return 128 + (e - 7) * 64 + (int)((v >> (e - 6)) - 64);
}

/* Midpoint of bucket @i in ns. */
static double hb_value(int i)
{
    if (i < 128)
        return i;
    int e = (i - 128) / 64 + 7, m = (i - 128) % 64 + 64;
    double w = ldexp(1.0, e - 6);
    return m * w + w / 2;
}

static double hist_pct(const struct hist *h, double p)
{
    uint64_t want = (uint64_t)ceil(p * (double)h->n), acc = 0;
    if (want == 0)
        want = 1;
    for (int i = 0; i < HB_COUNT; i++) {
        acc += h->b[i];
        if (acc >= want) {
            double v = hb_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* Gets that took at least @ns (to 1/64). */
static uint64_t hist_over(const struct hist *h, double ns)
{
    uint64_t n = 0;
    for (int i = hb_index((uint64_t)ns); i < HB_COUNT; i++)
        n += h->b[i];
    return n;
}

static void live_key(int i, char *k, size_t cap)
{
    snprintf(k, cap, "live-%d", i);
}

static void value_of(int i, char *v, int len)
{
    int w = snprintf(v, (size_t)len, "v%d:", i);
    for (int j = w; j < len; j++)
        v[j] = (char)('a' + (i + j) % 26);
}

static tc_cache *wk_open(const char *dir, int shards, int hot, const char *lru)
{
    tc_cache *c = NULL;
    bench_expect(tc_create(&c), TC_OK, "tc_create");
    bench_expect(tc_set_shards(c, shards), TC_OK, "tc_set_shards");
    if (!hot)
        bench_expect(tc_set_hot_size(c, 0), TC_OK, "tc_set_hot_size");
    if (lru) {
        tc_data p = tc_text(lru);
        bench_expect(tc_set_setting(c, "eviction_policy", &p), TC_OK,
                     "tc_set_setting");
    }
    bench_expect(tc_open(c, dir, 0), TC_OK, "tc_open");
    return c;
}

/* Fill @n items named @fmt with values of @vlen bytes, batches of
 * WK_BATCH; returns seconds. */
static double fill(tc_cache *c, const char *fmt, int n, int vlen, double expire)
{
    static char kb[WK_BATCH][32], vb[WK_BATCH][BENCH_VALUE_SIZE];
    static tc_data kd[WK_BATCH], vd[WK_BATCH];
    uint64_t t0 = bench_ns();
    for (int i = 0; i < n; i += WK_BATCH) {
        int m = n - i < WK_BATCH ? n - i : WK_BATCH;
        for (int j = 0; j < m; j++) {
            snprintf(kb[j], sizeof kb[j], fmt, i + j);
            value_of(i + j, vb[j], vlen);
            kd[j] = tc_text(kb[j]);
            vd[j] = tc_textn(vb[j], (size_t)vlen);
        }
        bench_expect(tc_set_many(c, kd, vd, (size_t)m, expire, NULL, 0), TC_OK,
                     "tc_set_many");
    }
    return (double)(bench_ns() - t0) / 1e9;
}

/* One get of each live key: publishes them to the hot tier. */
static void touch_live(tc_cache *c, int live)
{
    char k[32], buf[BENCH_VALUE_SIZE];
    size_t len;
    for (int i = 0; i < live; i++) {
        live_key(i, k, sizeof k);
        tc_data kd = tc_text(k);
        bench_expect(tc_get_buf(c, &kd, buf, sizeof buf, &len, NULL, NULL, 0),
                     TC_OK, "tc_get_buf (live key)");
    }
}

static _Noreturn void reader_child(const char *dir, int hot, int live,
                                   struct reader_shm *sh, int ready_fd)
{
    tc_cache *c = wk_open(dir, BENCH_FAN_SHARDS, hot, NULL);
    char(*keys)[16] = calloc((size_t)live, 16);
    char buf[BENCH_VALUE_SIZE];
    size_t len;
    if (!keys)
        _exit(1);
    for (int i = 0; i < live; i++)
        live_key(i, keys[i], 16);
    touch_live(c, live);
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    close(ready_fd);
    while (!atomic_load(&sh->go))
        usleep(100);
    struct hist *h = &sh->h;
    for (int i = 0;; i = i + 1 == live ? 0 : i + 1) {
        if ((h->n & 255) == 0 &&
            atomic_load_explicit(&sh->stop, memory_order_relaxed))
            break;
        tc_data kd = tc_text(keys[i]);
        uint64_t t0 = bench_ns();
        int rc = tc_get_buf(c, &kd, buf, sizeof buf, &len, NULL, NULL, 0);
        uint64_t d = bench_ns() - t0;
        h->b[hb_index(d)]++;
        h->n++;
        h->max = d > h->max ? d : h->max;
        if (rc != TC_OK)
            h->misses++;
    }
    tc_close(c);
    _exit(0);
}

static const char *tiercached_path(char *out, size_t cap)
{
    const char *env = getenv("TIERCACHED");
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        bench_die("worker: readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = 0;
    bench_pathf(out, cap, "%s/../tools/tiercached", dirname(exe));
    if (access(out, X_OK) != 0)
        bench_die("worker: no tiercached at %s (set $TIERCACHED)", out);
    return out;
}

struct phase {
    struct hist h;
    double secs;      /* reader's timed span */
    double worker_s;  /* tiercached's wall time (busy phases) */
    double pass_s;    /* duration_s of its status record */
    uint64_t removed; /* expired + culled by the pass */
    uint64_t left;    /* tc_length after the pass */
    int exit_status;
};

/* Run one phase: the reader alone for WK_IDLE_S (or @idle_s), or with
 * tiercached --once (@mode 1 expire, 2 cull). */
static void run_phase(const char *dir, const char *wexe, int hot, int live,
                      int mode, double idle_s, struct phase *ph)
{
    struct reader_shm *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int pfd[2];
    if (sh == MAP_FAILED)
        bench_die("worker: mmap: %s", strerror(errno));
    if (pipe(pfd) != 0)
        bench_die("worker: pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t rp = fork();
    if (rp < 0)
        bench_die("worker: fork: %s", strerror(errno));
    if (rp == 0) {
        close(pfd[0]);
        reader_child(dir, hot, live, sh, pfd[1]);
    }
    close(pfd[1]);
    char b;
    if (read(pfd[0], &b, 1) != 1)
        bench_die("worker: the reader died before it was ready");
    close(pfd[0]);
    uint64_t t0 = bench_ns();
    atomic_store(&sh->go, 1);
    usleep(100000); /* the reader is in its loop before the worker starts */
    if (mode == 0) {
        usleep((useconds_t)((idle_s - 0.1) * 1e6));
    } else {
        uint64_t w0 = bench_ns();
        pid_t wp = fork();
        if (wp < 0)
            bench_die("worker: fork: %s", strerror(errno));
        if (wp == 0) {
            if (mode == 1)
                setenv("TIERCACHED_NOW_OFFSET", WK_SKEW, 1);
            execl(wexe, wexe, dir, "--once", "--log-level", "warning",
                  (char *)NULL);
            fprintf(stderr, "exec %s: %s\n", wexe, strerror(errno));
            _exit(127);
        }
        int st;
        if (waitpid(wp, &st, 0) != wp)
            bench_die("worker: waitpid: %s", strerror(errno));
        ph->worker_s = (double)(bench_ns() - w0) / 1e9;
        ph->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        usleep(100000); /* and still in it after the worker ends */
    }
    atomic_store(&sh->stop, 1);
    int st;
    if (waitpid(rp, &st, 0) != rp || !WIFEXITED(st) || WEXITSTATUS(st))
        bench_die("worker: the reader failed");
    ph->secs = (double)(bench_ns() - t0) / 1e9;
    ph->h = sh->h;
    munmap(sh, sizeof *sh);
    if (mode && ph->exit_status)
        bench_die("worker: tiercached exited with status %d", ph->exit_status);
}

/* Volume of WK_LIVE live keys alone (a scratch cache). */
static uint64_t live_volume(const char *base, int live)
{
    char dir[PATH_MAX];
    uint64_t v;
    bench_pathf(dir, sizeof dir, "%s/scratch", base);
    tc_cache *c = wk_open(dir, BENCH_FAN_SHARDS, 0, NULL);
    fill(c, "live-%d", live, BENCH_VALUE_SIZE, TC_NO_EXPIRE);
    bench_expect(tc_volume(c, &v), TC_OK, "tc_volume");
    tc_close(c);
    bench_rmtree(dir);
    return v;
}

/* Build a directory for one (reader, mode) pair; returns fill seconds. */
static double build(const char *dir, int items, int live, int mode,
                    uint64_t limit)
{
    bench_track_segment(dir);
    tc_cache *c = wk_open(dir, BENCH_FAN_SHARDS, 1, NULL);
    double s = fill(c, "fill-%07d", items, WK_FILL_VAL,
                    mode == 1 ? WK_EXPIRE : TC_NO_EXPIRE);
    s += fill(c, "live-%d", live, BENCH_VALUE_SIZE, TC_NO_EXPIRE);
    if (mode == 2) {
        int64_t l = (int64_t)limit;
        tc_data d = tc_int(&l);
        bench_expect(tc_setting_put(c, "size_limit", &d), TC_OK,
                     "tc_setting_put size_limit");
    }
    touch_live(c, live);
    tc_close(c);
    return s;
}

static void status_of(const char *dir, struct phase *ph)
{
    tc_cache *c = wk_open(dir, BENCH_FAN_SHARDS, 0, NULL);
    tc_worker_status ws;
    bench_expect(tc_worker_status_get(c, &ws), TC_OK, "tc_worker_status_get");
    ph->pass_s = ws.duration_s;
    ph->removed = ws.expired + ws.culled;
    bench_expect(tc_length(c, &ph->left), TC_OK, "tc_length");
    tc_close(c);
}

/* ---- LRU get ------------------------------------------------------- */

static double lru_tc(const char *dir, int hot, int runs, double *ns)
{
    tc_cache *c = wk_open(dir, TC_SHARDS_PLAIN, hot, "least-recently-used");
    char(*keys)[16] = calloc(WK_LRU, 16), buf[BENCH_VALUE_SIZE];
    size_t len;
    if (!keys)
        bench_die("out of memory");
    for (int i = 0; i < WK_LRU; i++)
        snprintf(keys[i], 16, "key-%d", i);
    int passes = hot ? WK_LRU_PASSES : 1;
    for (int r = -1; r < runs; r++) {
        uint64_t t0 = bench_ns();
        for (int p = 0; p < passes; p++)
            for (int i = 0; i < WK_LRU; i++) {
                tc_data kd = tc_text(keys[i]);
                bench_expect(
                    tc_get_buf(c, &kd, buf, sizeof buf, &len, NULL, NULL, 0),
                    TC_OK, "tc_get_buf (LRU)");
            }
        if (r >= 0)
            ns[r] = (double)(bench_ns() - t0) / ((double)passes * WK_LRU);
    }
    free(keys);
    tc_close(c);
    return bench_median(ns, runs);
}

static void min_max(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

/* python-diskcache's LRU get; 0 and a note in @note if it cannot run. */
static double lru_py(const struct bench_opts *o, const char *dir, int runs,
                     double *ns, char *note, size_t cap)
{
    const char *script =
        access(BENCH_LRU_SRC, R_OK) == 0 ? BENCH_LRU_SRC : BENCH_LRU_INSTALLED;
    char cmd[PATH_MAX * 3];
    int n = 0;
    bench_pathf(cmd, sizeof cmd, "'%s' '%s' '%s' %d %d %d", o->pyexe, script,
                dir, WK_LRU, BENCH_VALUE_SIZE, runs);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(note, cap, "popen: %s", strerror(errno));
        return 0;
    }
    while (n < runs && fscanf(p, "%lf", &ns[n]) == 1)
        n++;
    int st = pclose(p);
    if (n != runs || st != 0) {
        snprintf(note, cap, "%s failed (status %d, %d of %d runs)", script, st,
                 n, runs);
        return 0;
    }
    return bench_median(ns, runs);
}

/* ---- the section --------------------------------------------------- */

static const char *const mode_name[3] = {"idle", "expire", "cull"};

static void print_phase(const char *reader, int mode, const struct phase *ph,
                        double idle_p99)
{
    const struct hist *h = &ph->h;
    double p99 = hist_pct(h, 0.99);
    printf("%-6s %-7s %10llu %6llu %8.0f %8.0f %9.0f %9llu %10.0f %11.0f",
           reader, mode_name[mode], (unsigned long long)h->n,
           (unsigned long long)h->misses, hist_pct(h, 0.5), p99,
           hist_pct(h, 0.999), (unsigned long long)hist_over(h, 1e6),
           (double)h->max, (double)h->n / ph->secs);
    if (mode) {
        double r = p99 / idle_p99;
        printf("  %5.2fx %s", r, r <= WK_GOAL ? "MET" : "MISSED");
    }
    printf("\n");
}

void worker_bench(const struct bench_opts *o, int items)
{
    char root[PATH_MAX], dir[PATH_MAX], wbuf[PATH_MAX];
    const char *wexe = tiercached_path(wbuf, sizeof wbuf);
    int live = o->quick ? 1000 : WK_LIVE;
    double idle_s = o->quick ? 0.5 : WK_IDLE_S;
    static struct phase ph[2][3];
    double fill_s[2][3] = {{0}}, idle_p99[2][3] = {{0}};

    bench_pathf(root, sizeof root, "%s/worker", o->work);
    bench_mkdir(root);
    uint64_t lv = live_volume(root, live);
    uint64_t limit = lv + lv / 4;
    printf("\nWorker (issue 5): reader latency while tiercached works\n"
           "FanoutCache 8 shards, %d filler items (%d-byte values) + %d live "
           "keys (%d-byte values), default hot_size;\n"
           "one reader process gets the live keys round-robin (tc_get_buf), "
           "each get timed; latencies in ns\n"
           "(histogram, 1/64 relative resolution; max exact). idle: %.1f s "
           "alone; expire: while `tiercached DIR --once`\n"
           "expires the fillers (TIERCACHED_NOW_OFFSET=%s, fillers expire "
           "in %.0f s); cull: while it culls them\n"
           "(size_limit %llu B = 1.25x the live keys' volume). Each busy "
           "phase has its own fresh directory,\n"
           "whose idle p99 is the baseline of its ratio. %s: %s\n",
           items, WK_FILL_VAL, live, BENCH_VALUE_SIZE, idle_s, WK_SKEW,
           WK_EXPIRE, (unsigned long long)limit, "tiercached", wexe);
    fflush(stdout);
    for (int hot = 1; hot >= 0; hot--) {
        for (int mode = 1; mode <= 2; mode++) {
            bench_pathf(dir, sizeof dir, "%s/%s-%s", root, hot ? "hot" : "cold",
                        mode_name[mode]);
            fill_s[hot][mode] = build(dir, items, live, mode, limit);
            struct phase idle = {0};
            run_phase(dir, wexe, hot, live, 0, idle_s, &idle);
            /* The idle baseline shown is the one of the expire dir. */
            if (mode == 1)
                ph[hot][0] = idle;
            struct phase *p = &ph[hot][mode];
            run_phase(dir, wexe, hot, live, mode, 0, p);
            status_of(dir, p);
            idle_p99[hot][mode] = hist_pct(&idle.h, 0.99);
            printf("%s %-6s fill %.1f s; idle p99 %.0f ns; worker pass "
                   "%.2f s (tiercached wall %.2f s), removed %llu, %llu "
                   "items left\n",
                   hot ? "hot " : "cold", mode_name[mode], fill_s[hot][mode],
                   idle_p99[hot][mode], p->pass_s, p->worker_s,
                   (unsigned long long)p->removed, (unsigned long long)p->left);
            fflush(stdout);
            bench_drop_segment(dir);
            bench_rmtree(dir);
        }
    }
    printf("\n%-6s %-7s %10s %6s %8s %8s %9s %9s %10s %11s  %s\n", "reader",
           "phase", "gets", "misses", "p50", "p99", "p99.9", ">=1ms", "max",
           "gets/s", "p99/idle p99 (goal <= 2x)");
    for (int hot = 1; hot >= 0; hot--) {
        const char *rn = hot ? "hot" : "cold";
        print_phase(rn, 0, &ph[hot][0], 0);
        print_phase(rn, 1, &ph[hot][1], idle_p99[hot][1]);
        print_phase(rn, 2, &ph[hot][2], idle_p99[hot][2]);
    }
    printf("(idle row: the expire directory's idle phase; the cull ratio "
           "uses the cull directory's own idle p99)\n");

    /* LRU get. */
    double tns[BENCH_MAX_RUNS], cns[BENCH_MAX_RUNS], pns[BENCH_MAX_RUNS];
    double lo, hi;
    char note[256] = "";
    bench_pathf(dir, sizeof dir, "%s/lru", root);
    bench_track_segment(dir);
    tc_cache *c = wk_open(dir, TC_SHARDS_PLAIN, 1, "least-recently-used");
    fill(c, "key-%d", WK_LRU, BENCH_VALUE_SIZE, TC_NO_EXPIRE);
    tc_close(c);
    double cold = lru_tc(dir, 0, o->runs, cns);
    double hot = lru_tc(dir, 1, o->runs, tns);
    bench_drop_segment(dir);
    double py = 0;
    if (o->python) {
        bench_pathf(dir, sizeof dir, "%s/lru-py", root);
        py = lru_py(o, dir, o->runs, pns, note, sizeof note);
    } else {
        snprintf(note, sizeof note, "skipped (--no-python)");
    }
    printf("\nLRU get hit: plain Cache, eviction_policy "
           "least-recently-used, %d keys \"key-N\", %d-byte values;\n"
           "median of %d runs after 1 warm-up (hot: %d passes over the keys "
           "per run, cold: 1)\n",
           WK_LRU, BENCH_VALUE_SIZE, o->runs, WK_LRU_PASSES);
    printf("%-40s %10s %12s %19s %10s\n", "engine", "ns/op", "ops/s",
           "runs min-max ns", "vs python");
    min_max(tns, o->runs, &lo, &hi);
    printf("%-40s %10.0f %12.0f %9.0f-%-9.0f",
           "tiercache get (hot tier; folded later)", hot, 1e9 / hot, lo, hi);
    if (py > 0)
        printf(" %9.1fx", py / hot);
    min_max(cns, o->runs, &lo, &hi);
    printf("\n%-40s %10.0f %12.0f %9.0f-%-9.0f",
           "tiercache get (cold, hot_size 0)", cold, 1e9 / cold, lo, hi);
    if (py > 0)
        printf(" %9.1fx", py / cold);
    printf("\n");
    if (py > 0) {
        min_max(pns, o->runs, &lo, &hi);
        printf("%-40s %10.0f %12.0f %9.0f-%-9.0f %9s\n",
               "python-diskcache Cache.get", py, 1e9 / py, lo, hi, "1.0x");
    } else
        printf("python-diskcache: %s\n", note);
}
