/*
 * tc_bench.c - tiercache-bench: options, the temp directory, helpers and
 * the report (tables or JSON).
 *
 * It prints, for a plain Cache and a FanoutCache of 8 shards, the median
 * ns/op and ops/s of each operation beside the floor (the same SQL in bare
 * C, bench_floor.c) and the ratio tiercache/floor against DESIGN-BRIEF
 * section 8's targets; the floor's COMMIT share; the hot-tier rows beside
 * a bare seqlock table (bench_hot.c); then python-diskcache's benchmark
 * workload run by tiercache (hot tier on and cold-only) and by
 * python-diskcache with 1 and 2 processes. --only worker (bench_worker.c)
 * and --only recipes (bench_recipes.c) run only when asked. Speed never
 * decides the exit status: it is 0 whenever every operation returned what
 * it should, 1 otherwise.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench.h"

#ifndef BENCH_SCRIPT_SRC
#define BENCH_SCRIPT_SRC "bench/diskcache_workload.py"
#endif
#ifndef BENCH_SCRIPT_INSTALLED
#define BENCH_SCRIPT_INSTALLED BENCH_SCRIPT_SRC
#endif
#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

/* Targets of DESIGN-BRIEF section 8 (ratio tiercache / floor, at most). */
#define TARGET_GET      1.2
#define TARGET_SET      1.1
#define TARGET_SET_MANY 1.2
/* Goals against python-diskcache's workload (speedup, at least). */
#define GOAL_WL_TOTAL 3.5
#define GOAL_WL_GET   20.0

static struct bench_opts opts;
/* --only worker (bench_worker.c): never part of the default run. */
static bool run_worker;
static int worker_items = 1000000;
void worker_bench(const struct bench_opts *o, int items);
/* --only recipes (bench_recipes.c): never part of the default run either;
 * returns 1 when a check failed (a wrong counter, a recomputation). */
static bool run_recipes;
int recipes_bench(const struct bench_opts *o);
static pid_t owner_pid;
static bool keep_dir;
/* Cache directories that may have a hot-tier segment (see cleanup). */
static char *seg_dirs[64];
static int nseg_dirs;

/* ---- helpers -------------------------------------------------------- */

uint64_t bench_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void bench_rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int bench_start_together(int ready_fd, int go_fd, int procs)
{
    int nready = 0;
    char b[16];
    while (nready < procs) {
        ssize_t got = read(ready_fd, b, sizeof(b));
        if (got <= 0)
            break;
        nready += (int)got;
    }
    close(go_fd); /* start */
    close(ready_fd);
    return nready;
}

void bench_track_segment(const char *dir)
{
    if (nseg_dirs == (int)(sizeof(seg_dirs) / sizeof(seg_dirs[0])))
        bench_die("too many cache directories with segments at once");
    if (!(seg_dirs[nseg_dirs] = strdup(dir)))
        bench_die("out of memory");
    nseg_dirs++;
}

void bench_drop_segment(const char *dir)
{
    int i;
    bench_expect(tc_hot_drop(dir), TC_OK, "tc_hot_drop");
    for (i = 0; i < nseg_dirs; i++)
        if (strcmp(seg_dirs[i], dir) == 0) {
            free(seg_dirs[i]);
            seg_dirs[i] = seg_dirs[--nseg_dirs];
            break;
        }
}

static void cleanup(void)
{
    int i;
    if (getpid() != owner_pid)
        return;
    /* A segment is named after its directory's inode: drop it while the
     * directory still exists, or it stays in /dev/shm (also with --keep,
     * since nothing is attached to it any more). */
    for (i = 0; i < nseg_dirs; i++)
        (void)tc_hot_drop(seg_dirs[i]);
    nseg_dirs = 0;
    if (opts.work[0] && !keep_dir)
        bench_rmtree(opts.work);
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "tiercache-bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1); /* atexit removes the temp dir (in the parent only) */
}

void bench_expect(int rc, int want, const char *what)
{
    if (rc != want)
        bench_die("%s returned %s (%d), expected %s: %s", what, tc_errname(rc),
                  rc, tc_errname(want), tc_errmsg());
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(const double *v, int n)
{
    double tmp[BENCH_MAX_RUNS];
    if (n <= 0)
        return 0;
    memcpy(tmp, v, (size_t)n * sizeof(double));
    qsort(tmp, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

void bench_pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        bench_die("path too long: %.80s...", out);
}

void bench_mkdir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        bench_die("mkdir %s: %s", path, strerror(errno));
}

uint64_t bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* ---- machine description ----------------------------------------- */

static void cpu_model(char *out, size_t cap)
{
    FILE *fp = fopen("/proc/cpuinfo", "r");
    char line[512];

    snprintf(out, cap, "unknown");
    if (!fp)
        return;
    while (fgets(line, sizeof(line), fp)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            colon += 1 + (colon[1] == ' ');
            colon[strcspn(colon, "\n")] = 0;
            snprintf(out, cap, "%s", colon);
            break;
        }
    }
    fclose(fp);
}

struct machine {
    char date[64];
    char cpu[256];
    long ncpu;
    char load0[64], load1[64]; /* /proc/loadavg at start and end */
};

/* The 1, 5 and 15 minute load averages: other work on the machine skews
 * every figure, so the report shows them. */
static void loadavg(char *out, size_t cap)
{
    FILE *fp = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;

    if (!fp || fscanf(fp, "%lf %lf %lf", &a, &b, &c) != 3)
        snprintf(out, cap, "unknown");
    else
        snprintf(out, cap, "%.2f %.2f %.2f", a, b, c);
    if (fp)
        fclose(fp);
}

static void machine_get(struct machine *m)
{
    time_t now = time(NULL);
    strftime(m->date, sizeof(m->date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    cpu_model(m->cpu, sizeof(m->cpu));
    m->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    loadavg(m->load0, sizeof(m->load0));
}

/* ---- the micro report ---------------------------------------------- */

static double op_target(int op)
{
    switch (op) {
    case M_GET_HIT:
    case M_GET_BUF:
    case M_GET_MISS:
        return TARGET_GET;
    case M_SET_NEW:
    case M_SET_OVER:
        return TARGET_SET;
    case M_SET_MANY:
        return TARGET_SET_MANY;
    default:
        return 0;
    }
}

struct ratio {
    double lib, floor;        /* median ns/op */
    double ratio, rmin, rmax; /* median, min, max of per-run ratios */
    double commit;            /* floor COMMIT ns/op (median) */
    double cpu;               /* median of per-run CPU-time ratios */
};

static struct ratio ratio_of(const struct micro_result *r, int op, int l)
{
    double per[BENCH_MAX_RUNS];
    struct ratio x;
    int i;

    x.lib = bench_median(r->ns[op][l][0], r->runs);
    x.floor = bench_median(r->ns[op][l][1], r->runs);
    x.commit = bench_median(r->commit_ns[op][l], r->runs);
    x.rmin = 1e300;
    x.rmax = 0;
    for (i = 0; i < r->runs; i++) {
        per[i] = r->ns[op][l][0][i] / r->ns[op][l][1][i];
        if (per[i] < x.rmin)
            x.rmin = per[i];
        if (per[i] > x.rmax)
            x.rmax = per[i];
    }
    /* Pairs of one run ran back to back: their ratio is less drift-prone
     * than the ratio of the medians. */
    x.ratio = bench_median(per, r->runs);
    /* CPU time leaves out waits (fsync in checkpoints): it shows what the
     * library adds to the work more steadily than wall time does. */
    for (i = 0; i < r->runs; i++)
        per[i] = r->cpu_ns[op][l][0][i] / r->cpu_ns[op][l][1][i];
    x.cpu = bench_median(per, r->runs);
    return x;
}

static const char *const layout_title[L_COUNT] = {
    "Cache (plain, tc_set_shards 0)",
    "FanoutCache (8 shards)",
};
static const char *const layout_key[L_COUNT] = {"plain", "fanout"};

static void micro_print(const struct micro_result *r, int batch)
{
    int l, op;

    for (l = 0; l < L_COUNT; l++) {
        printf("\n%s: ns/op (wall), median of %d runs; ratio = "
               "tiercache/floor; cpu = the same ratio in CPU time\n",
               layout_title[l], r->runs);
        printf("%-24s %9s %9s %9s %9s %6s %11s %7s %7s %s\n", "operation",
               "tiercache", "ops/s", "floor", "ops/s", "ratio", "(min-max)",
               "cpu", "target", "");
        for (op = 0; op < M_OP_COUNT; op++) {
            struct ratio x = ratio_of(r, op, l);
            double t = op_target(op);
            char name[64], range[32], tgt[16];
            snprintf(name, sizeof(name), "%s", micro_op_name[op]);
            if (op == M_SET_MANY)
                snprintf(name, sizeof(name), "set_many (item, b=%d)", batch);
            snprintf(range, sizeof(range), "(%.2f-%.2f)", x.rmin, x.rmax);
            snprintf(tgt, sizeof(tgt), t > 0 ? "<=%.1fx" : "-", t);
            printf("%-24s %9.0f %9.0f %9.0f %9.0f %5.2fx %11s %6.2fx %7s %s\n",
                   name, x.lib, 1e9 / x.lib, x.floor, 1e9 / x.floor, x.ratio,
                   range, x.cpu, tgt,
                   t <= 0         ? ""
                   : x.ratio <= t ? "MET"
                                  : "MISSED");
        }
    }
    printf("\nShare of the time in SQLite COMMIT (the floor's COMMIT timed "
           "on its own):\n");
    printf("%-24s %-7s %11s %11s %9s %14s\n", "operation", "layout", "floor",
           "COMMIT", "of floor", "of tiercache");
    for (op = 0; op < M_OP_COUNT; op++) {
        if (op != M_SET_NEW && op != M_SET_OVER && op != M_DELETE &&
            op != M_INCR && op != M_SET_MANY)
            continue;
        for (l = 0; l < L_COUNT; l++) {
            struct ratio x = ratio_of(r, op, l);
            printf("%-24s %-7s %11.0f %11.0f %8.1f%% %13.1f%%\n",
                   micro_op_name[op], layout_key[l], x.floor, x.commit,
                   100 * x.commit / x.floor, 100 * x.commit / x.lib);
        }
    }
}

static void micro_json(const struct micro_result *r, int batch)
{
    int l, op;

    printf("  \"micro\": {\n    \"set_many_batch\": %d,\n", batch);
    for (l = 0; l < L_COUNT; l++) {
        printf("    \"%s\": {\n", layout_key[l]);
        for (op = 0; op < M_OP_COUNT; op++) {
            struct ratio x = ratio_of(r, op, l);
            double t = op_target(op);
            printf("      \"%s\": {\"tiercache_ns\": %.1f, \"floor_ns\": %.1f,"
                   " \"ratio\": %.4f, \"ratio_min\": %.4f,"
                   " \"ratio_max\": %.4f, \"cpu_ratio\": %.4f,"
                   " \"floor_commit_ns\": %.1f",
                   micro_op_name[op], x.lib, x.floor, x.ratio, x.rmin, x.rmax,
                   x.cpu, x.commit);
            if (t > 0)
                printf(", \"target\": %.2f, \"met\": %s", t,
                       x.ratio <= t ? "true" : "false");
            printf("}%s\n", op + 1 < M_OP_COUNT ? "," : "");
        }
        printf("    }%s\n", l + 1 < L_COUNT ? "," : "");
    }
    printf("  }");
}

/* ---- the workload report ------------------------------------------ */

/* Median over runs of the double at @off in a wl_result. */
static double wl_med(const struct wl_all *w, int e, int p, size_t off)
{
    double v[BENCH_MAX_RUNS];
    int i;
    for (i = 0; i < w->runs; i++)
        v[i] = *(const double *)((const char *)&w->run[e][p][i] + off);
    return bench_median(v, w->runs);
}

/* Median over runs of one statistic of operation @i. */
#define WL_FIELD(e, p, i, field)                        \
    wl_med(w, e, p,                                     \
           offsetof(struct wl_result, op) +             \
               (size_t)(i) * sizeof(struct wl_opstat) + \
               offsetof(struct wl_opstat, field))
#define WL_TOP(e, p, field) wl_med(w, e, p, offsetof(struct wl_result, field))

static const char *const engine_name[E_COUNT] = {
    "tiercache (hot)", "tiercache (cold)", "python-diskcache"};
static const char *const engine_key[E_COUNT] = {
    "tiercache_hot", "tiercache_cold", "python-diskcache"};

static void wl_print(const struct bench_opts *o, const struct wl_all *w)
{
    int p, e, op;

    printf("\npython-diskcache's workload (tests/benchmark_core.py): 100 "
           "keys, 90%% get / 9%% set / 1%% delete,\n%d ops per process "
           "(first %d untimed), FanoutCache 8 shards timeout 0.010; "
           "median of %d runs; times in us\ntiercache (hot): hot_size %llu "
           "MiB (the default); tiercache (cold): tc_set_hot_size 0, no "
           "segment\n",
           o->ops, o->warmup_ops, w->runs,
           (unsigned long long)(WL_HOT_SIZE >> 20));
    if (!w->have[E_PY])
        printf("python-diskcache: %s\n", w->py_note);
    for (p = 0; p < WL_PROCS; p++) {
        printf("\n%d process%s\n", p + 1, p ? "es" : "");
        printf("%-17s %-7s %8s %7s %9s %9s %9s %10s %12s %12s\n", "engine",
               "op", "count", "miss", "median", "p90", "p99", "max",
               "ops/s(optm)", "ops/s(wall)");
        for (e = 0; e < E_COUNT; e++) {
            if (!w->have[e])
                continue;
            for (op = 0; op < W_OP_COUNT; op++) {
                printf("%-17s %-7s %8.0f %7.0f %9.2f %9.2f %9.2f %10.2f",
                       op == 0 ? engine_name[e] : "", wl_op_name[op],
                       WL_FIELD(e, p, op, count), WL_FIELD(e, p, op, miss),
                       WL_FIELD(e, p, op, median_ns) / 1e3,
                       WL_FIELD(e, p, op, p90_ns) / 1e3,
                       WL_FIELD(e, p, op, p99_ns) / 1e3,
                       WL_FIELD(e, p, op, max_ns) / 1e3);
                if (op == 0)
                    printf(" %12.0f %12.0f", WL_TOP(e, p, rate_optime),
                           WL_TOP(e, p, rate_wall));
                printf("\n");
            }
            if (WL_TOP(e, p, busy) > 0)
                printf("%-17s busy timeouts (abandoned ops): %.0f\n", "",
                       WL_TOP(e, p, busy));
        }
        for (e = 0; e < E_PY && w->have[E_PY]; e++) {
            double tot =
                WL_TOP(e, p, rate_optime) / WL_TOP(E_PY, p, rate_optime);
            double get = WL_FIELD(E_PY, p, W_GET, median_ns) /
                         WL_FIELD(e, p, W_GET, median_ns);
            printf("speedup %s vs python: total %.2fx (goal >= %.1fx "
                   "%s), wall %.2fx; median get %.2fx (goal >= %.0fx %s), "
                   "set %.2fx, delete %.2fx\n",
                   engine_name[e], tot, GOAL_WL_TOTAL,
                   tot >= GOAL_WL_TOTAL ? "MET" : "MISSED",
                   WL_TOP(e, p, rate_wall) / WL_TOP(E_PY, p, rate_wall), get,
                   GOAL_WL_GET, get >= GOAL_WL_GET ? "MET" : "MISSED",
                   WL_FIELD(E_PY, p, W_SET, median_ns) /
                       WL_FIELD(e, p, W_SET, median_ns),
                   WL_FIELD(E_PY, p, W_DELETE, median_ns) /
                       WL_FIELD(e, p, W_DELETE, median_ns));
        }
        printf("hot / cold: total %.2fx, wall %.2fx, median get %.2fx, "
               "median set %.2fx\n",
               WL_TOP(E_TC, p, rate_optime) / WL_TOP(E_TC_COLD, p, rate_optime),
               WL_TOP(E_TC, p, rate_wall) / WL_TOP(E_TC_COLD, p, rate_wall),
               WL_FIELD(E_TC_COLD, p, W_GET, median_ns) /
                   WL_FIELD(E_TC, p, W_GET, median_ns),
               WL_FIELD(E_TC_COLD, p, W_SET, median_ns) /
                   WL_FIELD(E_TC, p, W_SET, median_ns));
    }
}

static void wl_json(const struct wl_all *w)
{
    int p, e, op, last_e = 0;

    for (e = 0; e < E_COUNT; e++)
        if (w->have[e])
            last_e = e;
    printf("  \"workload\": {\n    \"python_note\": \"%s\",\n", w->py_note);
    printf("    \"results\": [\n");
    for (p = 0; p < WL_PROCS; p++) {
        for (e = 0; e < E_COUNT; e++) {
            bool last = p + 1 == WL_PROCS && e == last_e;
            if (!w->have[e])
                continue;
            printf("      {\"engine\": \"%s\", \"procs\": %d,"
                   " \"ops_per_s_optime\": %.0f, \"ops_per_s_wall\": %.0f,"
                   " \"busy\": %.0f",
                   engine_key[e], p + 1, WL_TOP(e, p, rate_optime),
                   WL_TOP(e, p, rate_wall), WL_TOP(e, p, busy));
            for (op = 0; op < W_OP_COUNT; op++)
                printf(", \"%s\": {\"count\": %.0f, \"miss\": %.0f,"
                       " \"median_ns\": %.0f, \"p90_ns\": %.0f,"
                       " \"p99_ns\": %.0f, \"max_ns\": %.0f}",
                       wl_op_name[op], WL_FIELD(e, p, op, count),
                       WL_FIELD(e, p, op, miss), WL_FIELD(e, p, op, median_ns),
                       WL_FIELD(e, p, op, p90_ns), WL_FIELD(e, p, op, p99_ns),
                       WL_FIELD(e, p, op, max_ns));
            printf("}%s\n", last ? "" : ",");
        }
    }
    printf("    ]\n  }");
}

/* ---- options ------------------------------------------------------- */

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: tiercache-bench [options]\n"
            "  --quick        smoke sizes (3 runs, 300 keys, 3000 ops, 1000 "
            "hot keys,\n"
            "                 50000 hot gets, a 2 MiB segment for the "
            "memory row)\n"
            "  --runs N       measured runs, medians taken (default 5)\n"
            "  --keys N       micro: keys, and ops per phase (default "
            "10000)\n"
            "  --batch N      micro: set_many batch size (default 100)\n"
            "  --ops N        workload: ops per process (default 20000;\n"
            "                 diskcache's own benchmark uses 100000)\n"
            "  --warmup N     workload: untimed first ops (default 1000)\n"
            "  --only WHAT    micro | hot | workload | worker | recipes "
            "(worker and\n"
            "                 recipes run only when asked. worker: reader "
            "latency while\n"
            "                 tiercached expires/culls, and LRU get vs "
            "python-diskcache;\n"
            "                 recipes: Lock, Deque, Index, memoize_stampede, "
            "Averager and\n"
            "                 throttle vs python-diskcache's, ~1 min)\n"
            "  --worker-items N  worker: filler items expired/culled "
            "(default 1000000)\n"
            "  --hot-keys N   hot: keys of the get-hit row (default "
            "10000)\n"
            "  --hot-ops N    hot: gets per timed phase and per process "
            "(default\n"
            "                 2000000)\n"
            "  --big          hot: add the 1M-key row (hot_size 512 MiB; "
            "the preload\n"
            "                 through SQLite takes a while)\n"
            "  --big-keys N   hot: keys of the --big row (default "
            "1000000)\n"
            "  --no-python    skip python-diskcache\n"
            "  --python PATH  interpreter (default /usr/bin/python3)\n"
            "  --script PATH  diskcache_workload.py\n"
            "  --json         JSON on stdout instead of tables\n"
            "  --dir DIR      make the temp dir in DIR (default /tmp)\n"
            "  --keep         keep the temp dir\n");
}

static int int_arg(const char *s, const char *name, int min)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < min || v > 100000000)
        bench_die("bad %s: %s", name, s);
    return (int)v;
}

static void parse(int argc, char **argv)
{
    enum {
        O_RUNS = 256,
        O_KEYS,
        O_BATCH,
        O_OPS,
        O_WARM,
        O_ONLY,
        O_NOPY,
        O_PY,
        O_SCRIPT,
        O_JSON,
        O_DIR,
        O_KEEP,
        O_QUICK,
        O_HOTKEYS,
        O_HOTOPS,
        O_BIG,
        O_BIGKEYS,
        O_WITEMS,
        O_HELP
    };
    static const struct option lo[] = {
        {"quick", no_argument, NULL, O_QUICK},
        {"runs", required_argument, NULL, O_RUNS},
        {"keys", required_argument, NULL, O_KEYS},
        {"batch", required_argument, NULL, O_BATCH},
        {"ops", required_argument, NULL, O_OPS},
        {"warmup", required_argument, NULL, O_WARM},
        {"only", required_argument, NULL, O_ONLY},
        {"no-python", no_argument, NULL, O_NOPY},
        {"python", required_argument, NULL, O_PY},
        {"script", required_argument, NULL, O_SCRIPT},
        {"json", no_argument, NULL, O_JSON},
        {"dir", required_argument, NULL, O_DIR},
        {"keep", no_argument, NULL, O_KEEP},
        {"hot-keys", required_argument, NULL, O_HOTKEYS},
        {"hot-ops", required_argument, NULL, O_HOTOPS},
        {"big", no_argument, NULL, O_BIG},
        {"big-keys", required_argument, NULL, O_BIGKEYS},
        {"worker-items", required_argument, NULL, O_WITEMS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int runs = 0, keys = 0, ops = 0, warm = -1, hkeys = 0, hops = 0, c;

    opts.batch = 100;
    opts.python = opts.micro = opts.workload = opts.hot = true;
    opts.big_keys = 1000000;
    opts.pyexe = "/usr/bin/python3";
    opts.script = access(BENCH_SCRIPT_SRC, R_OK) == 0 ? BENCH_SCRIPT_SRC
                                                      : BENCH_SCRIPT_INSTALLED;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case O_QUICK:
            opts.quick = true;
            break;
        case O_RUNS:
            runs = int_arg(optarg, "--runs", 1);
            break;
        case O_KEYS:
            keys = int_arg(optarg, "--keys", 1);
            break;
        case O_BATCH:
            opts.batch = int_arg(optarg, "--batch", 1);
            break;
        case O_OPS:
            ops = int_arg(optarg, "--ops", 1);
            break;
        case O_WARM:
            warm = int_arg(optarg, "--warmup", 0);
            break;
        case O_ONLY:
            opts.micro = strcmp(optarg, "micro") == 0;
            opts.workload = strcmp(optarg, "workload") == 0;
            opts.hot = strcmp(optarg, "hot") == 0;
            run_worker = strcmp(optarg, "worker") == 0;
            run_recipes = strcmp(optarg, "recipes") == 0;
            if (!opts.micro && !opts.workload && !opts.hot && !run_worker &&
                !run_recipes)
                bench_die("--only takes micro, hot, workload, worker or "
                          "recipes");
            break;
        case O_HOTKEYS:
            hkeys = int_arg(optarg, "--hot-keys", 1);
            break;
        case O_HOTOPS:
            hops = int_arg(optarg, "--hot-ops", 1);
            break;
        case O_BIG:
            opts.big = true;
            break;
        case O_BIGKEYS:
            opts.big_keys = int_arg(optarg, "--big-keys", 1);
            break;
        case O_WITEMS:
            worker_items = int_arg(optarg, "--worker-items", 1);
            break;
        case O_NOPY:
            opts.python = false;
            break;
        case O_PY:
            opts.pyexe = optarg;
            break;
        case O_SCRIPT:
            opts.script = optarg;
            break;
        case O_JSON:
            opts.json = true;
            break;
        case O_DIR:
            opts.base = optarg;
            break;
        case O_KEEP:
            keep_dir = true;
            break;
        case 'h':
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
    opts.runs = runs ? runs : opts.quick ? 3 : 5;
    opts.keys = keys ? keys : opts.quick ? 300 : 10000;
    opts.ops = ops ? ops : opts.quick ? 3000 : 20000;
    opts.warmup_ops = warm >= 0 ? warm : opts.quick ? 300 : 1000;
    opts.hot_keys = hkeys ? hkeys : opts.quick ? 1000 : 10000;
    opts.hot_ops = hops ? hops : opts.quick ? 50000 : 2000000;
    if (opts.runs > BENCH_MAX_RUNS)
        bench_die("--runs is at most %d", BENCH_MAX_RUNS);
    if (opts.warmup_ops >= opts.ops)
        bench_die("--warmup must be below --ops");
    if (run_worker && opts.json)
        bench_die("--only worker prints tables only (no --json)");
    if (run_recipes && opts.json)
        bench_die("--only recipes prints tables only (no --json)");
}

int main(int argc, char **argv)
{
    static struct micro_result micro;
    static struct wl_all wl;
    static struct hot_result hot;
    struct machine m;
    const char *base;
    int status = 0;

    owner_pid = getpid();
    parse(argc, argv);
    base = opts.base ? opts.base : "/tmp";
    snprintf(opts.work, sizeof(opts.work), "%s/tiercache-bench-XXXXXX", base);
    if (!mkdtemp(opts.work)) {
        int err = errno;
        opts.work[0] = 0;
        bench_die("mkdtemp in %s: %s", base, strerror(err));
    }
    atexit(cleanup);
    machine_get(&m);
    if (!opts.json) {
        printf("tiercache-bench: tiercache %s (%s build), SQLite %s\n",
               tc_version(), BENCH_BUILDTYPE, sqlite3_libversion());
        printf("date %s; %ld cpus (%s); load average %s\n", m.date, m.ncpu,
               m.cpu, m.load0);
        if (opts.micro)
            printf("micro: %d keys \"key-N\", %d-byte TC_TEXT values, hot "
                   "tier off; %d runs after 1 warm-up; ratio = median of "
                   "per-run tiercache/floor\n",
                   opts.keys, BENCH_VALUE_SIZE, opts.runs);
        fflush(stdout);
    }
    if (opts.micro)
        micro_run(&opts, &micro);
    if (opts.micro && !opts.json) {
        micro_print(&micro, opts.batch < opts.keys ? opts.batch : opts.keys);
        fflush(stdout);
    }
    if (opts.hot)
        hot_run(&opts, &hot);
    if (opts.hot && !opts.json) {
        hot_print(&opts, &hot);
        fflush(stdout);
    }
    if (opts.workload)
        wl_run_all(&opts, &wl);
    if (opts.workload && !opts.json)
        wl_print(&opts, &wl);
    if (run_worker)
        worker_bench(&opts, worker_items);
    if (run_recipes)
        status = recipes_bench(&opts);
    loadavg(m.load1, sizeof(m.load1));
    if (!opts.json)
        printf("\nload average at the end: %s\n", m.load1);
    if (opts.json) {
        printf("{\n  \"tiercache\": \"%s\", \"sqlite\": \"%s\", \"build\": "
               "\"%s\", \"date\": \"%s\", \"cpus\": %ld, \"cpu\": \"%s\",\n"
               "  \"load_start\": \"%s\", \"load_end\": \"%s\",\n"
               "  \"runs\": %d, \"keys\": %d, \"ops\": %d, \"warmup\": %d",
               tc_version(), sqlite3_libversion(), BENCH_BUILDTYPE, m.date,
               m.ncpu, m.cpu, m.load0, m.load1, opts.runs, opts.keys, opts.ops,
               opts.warmup_ops);
        if (opts.micro) {
            printf(",\n");
            micro_json(&micro, opts.batch < opts.keys ? opts.batch : opts.keys);
        }
        if (opts.hot) {
            printf(",\n");
            hot_json(&opts, &hot);
        }
        if (opts.workload) {
            printf(",\n");
            wl_json(&wl);
        }
        printf("\n}\n");
    }
    return status;
}
