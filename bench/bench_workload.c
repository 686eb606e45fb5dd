/*
 * bench_workload.c - python-diskcache's own benchmark workload
 * (tests/benchmark_core.py) run by tiercache in forked C processes and by
 * python-diskcache (bench/diskcache_workload.py) in the same invocation.
 *
 * Per process: opts.ops operations on 100 keys (tiercache: text "key-N";
 * python: bytes b"N", as benchmark_core.py), values the counter string
 * repeated 1..99 times (bytes), 90% get, 9% set, 1% delete, the first
 * opts.warmup_ops untimed, FanoutCache of 8 shards with timeout 0.010,
 * preloaded with set(key, key). Workers open the cache after the fork,
 * report ready, and start together when the parent closes a pipe.
 * tiercache runs twice: with the hot tier on (hot_size WL_HOT_SIZE, the
 * default) and cold-only (tc_set_hot_size 0 in every process, so no
 * segment exists), each on a fresh directory.
 *
 * Both engines hand raw per-op timings to this file, which computes every
 * statistic the same way: per-op nearest-rank percentiles over all
 * processes, "ops/s (op time)" = sum over processes of ops / time spent
 * inside the operations (diskcache's "Total" basis), and "ops/s (wall)" =
 * ops / (end of the last op - start of the first), which also counts the
 * loop's own work (key and value building, the RNG).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define WL_KEYS 100

const char *const wl_op_name[W_OP_COUNT] = {"get", "set", "delete"};

/* One process's timings (in shared memory for tiercache workers). */
struct wl_proc {
    int64_t t_first, t_last; /* CLOCK_MONOTONIC ns */
    int64_t n, busy, errors;
    char err[256]; /* first error met */
};

struct wl_data {
    struct wl_proc *hdr;
    uint64_t *ns;
    uint8_t *op, *miss;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted @v. */
static double pct(const double *v, size_t n, double q)
{
    size_t i;
    if (n == 0)
        return 0;
    i = (size_t)(q * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1];
}

static void aggregate(const struct wl_data *d, int procs, struct wl_result *out)
{
    size_t total = 0, i, cnt[W_OP_COUNT] = {0};
    double *v[W_OP_COUNT];
    int64_t first = INT64_MAX, last = INT64_MIN;
    int p, op;

    memset(out, 0, sizeof(*out));
    for (p = 0; p < procs; p++)
        total += (size_t)d[p].hdr->n;
    for (op = 0; op < W_OP_COUNT; op++) {
        v[op] = malloc((total ? total : 1) * sizeof(double));
        if (!v[op])
            bench_die("out of memory");
    }
    for (p = 0; p < procs; p++) {
        const struct wl_proc *h = d[p].hdr;
        double sum = 0;
        for (i = 0; i < (size_t)h->n; i++) {
            op = d[p].op[i];
            if (op >= W_OP_COUNT)
                bench_die("workload: bad op record %d", op);
            v[op][cnt[op]++] = (double)d[p].ns[i];
            out->op[op].miss += d[p].miss[i];
            sum += (double)d[p].ns[i];
        }
        if (h->n > 0) {
            out->rate_optime += (double)h->n * 1e9 / sum;
            if (h->t_first < first)
                first = h->t_first;
            if (h->t_last > last)
                last = h->t_last;
        }
        out->busy += (double)h->busy;
    }
    out->ops = (double)total;
    if (total && last > first)
        out->rate_wall = (double)total * 1e9 / (double)(last - first);
    for (op = 0; op < W_OP_COUNT; op++) {
        struct wl_opstat *s = &out->op[op];
        size_t n = cnt[op];
        qsort(v[op], n, sizeof(double), cmp_double);
        s->count = (double)n;
        for (i = 0; i < n; i++)
            s->sum_ns += v[op][i];
        s->median_ns = pct(v[op], n, 0.50);
        s->p90_ns = pct(v[op], n, 0.90);
        s->p99_ns = pct(v[op], n, 0.99);
        s->max_ns = n ? v[op][n - 1] : 0;
        free(v[op]);
    }
}

/* ---- tiercache workers -------------------------------------------- */

static void proc_error(struct wl_proc *h, const char *what, int rc)
{
    if (h->errors++ == 0)
        snprintf(h->err, sizeof(h->err), "%s: %s (%s)", what, tc_errname(rc),
                 tc_errmsg());
}

static tc_cache *wl_open(const char *dir, uint64_t hot_size, struct wl_proc *h)
{
    tc_cache *c = NULL;
    int rc = tc_create(&c);
    if (rc == TC_OK)
        rc = tc_set_shards(c, BENCH_FAN_SHARDS);
    if (rc == TC_OK)
        rc = tc_set_hot_size(c, hot_size);
    if (rc == TC_OK)
        rc = tc_set_timeout(c, 0.010);
    if (rc == TC_OK)
        rc = tc_open(c, dir, 0);
    if (rc != TC_OK) {
        if (h)
            proc_error(h, "tc_open", rc);
        else
            bench_die("workload: tc_open %s: %s (%s)", dir, tc_errname(rc),
                      tc_errmsg());
        tc_close(c);
        return NULL;
    }
    return c;
}

static void tc_worker(const struct bench_opts *o, const char *dir,
                      uint64_t hot_size, int num, int ready_fd, int go_fd,
                      struct wl_data *d)
{
    struct wl_proc *h = d->hdr;
    char keys[WL_KEYS][16], counter[24], buf;
    size_t klen[WL_KEYS];
    char *val = malloc(99 * sizeof(counter));
    uint64_t rng = (uint64_t)num * 0x9E3779B97F4A7C15u + 1;
    tc_cache *c;
    int count, k;

    for (k = 0; k < WL_KEYS; k++)
        klen[k] = (size_t)snprintf(keys[k], sizeof(keys[k]), "key-%d", k);
    c = wl_open(dir, hot_size, h);
    if (write(ready_fd, "x", 1) != 1 || !c || !val)
        _exit(2);
    close(ready_fd);
    if (read(go_fd, &buf, 1) < 0)
        _exit(2);
    close(go_fd);

    for (count = 0; count < o->ops; count++) {
        int key = (int)(bench_rand(&rng) % WL_KEYS);
        int reps = 1 + (int)(bench_rand(&rng) % 99);
        double choice = (double)(bench_rand(&rng) >> 11) * 0x1.0p-53;
        int clen = snprintf(counter, sizeof(counter), "%d", count);
        tc_data kd = tc_textn(keys[key], klen[key]);
        tc_data vd;
        tc_item it = TC_ITEM_INIT;
        uint64_t t0, t1;
        int op, miss, rc, i;

        for (i = 0; i < reps; i++)
            memcpy(val + (size_t)i * (size_t)clen, counter, (size_t)clen);
        vd = tc_bytes(val, (size_t)reps * (size_t)clen);

        if (choice < 0.900) {
            t0 = bench_ns();
            rc = tc_get(c, &kd, &it, 0);
            t1 = bench_ns();
            op = W_GET;
            miss = rc != TC_OK;
            tc_item_clear(&it);
            if (rc < 0 && rc != TC_EBUSY)
                proc_error(h, "tc_get", rc);
        } else if (choice < 0.990) {
            t0 = bench_ns();
            rc = tc_set(c, &kd, &vd, TC_NO_EXPIRE, NULL, 0);
            t1 = bench_ns();
            op = W_SET;
            miss = rc != TC_OK;
            if (rc < 0 && rc != TC_EBUSY)
                proc_error(h, "tc_set", rc);
        } else {
            t0 = bench_ns();
            rc = tc_delete(c, &kd, 0);
            t1 = bench_ns();
            op = W_DELETE;
            miss = rc != TC_OK;
            if (rc < 0 && rc != TC_EBUSY)
                proc_error(h, "tc_delete", rc);
        }
        if (rc == TC_EBUSY)
            h->busy++;
        if (count >= o->warmup_ops) {
            if (h->n == 0)
                h->t_first = (int64_t)t0;
            h->t_last = (int64_t)t1;
            d->ns[h->n] = t1 - t0;
            d->op[h->n] = (uint8_t)op;
            d->miss[h->n] = (uint8_t)miss;
            h->n++;
        }
    }
    tc_close(c);
    free(val);
    _exit(h->errors ? 1 : 0);
}

static void preload_tc(const char *dir, uint64_t hot_size)
{
    tc_cache *c = wl_open(dir, hot_size, NULL);
    char key[16];
    int k;

    for (k = 0; k < WL_KEYS; k++) {
        int n = snprintf(key, sizeof(key), "key-%d", k);
        tc_data kd = tc_textn(key, (size_t)n), vd = tc_bytes(key, (size_t)n);
        bench_expect(tc_set(c, &kd, &vd, TC_NO_EXPIRE, NULL, 0), TC_OK,
                     "workload preload tc_set");
    }
    tc_close(c);
}

static void run_tc(const struct bench_opts *o, int procs, const char *dir,
                   uint64_t hot_size, struct wl_result *out)
{
    size_t per = sizeof(struct wl_proc) + (size_t)o->ops * 10 + 64;
    unsigned char *shm;
    struct wl_data d[WL_PROCS];
    int ready[2], go[2], p, nready = 0, failed = 0;
    pid_t pids[WL_PROCS];

    bench_mkdir(dir);
    bench_track_segment(dir);
    preload_tc(dir, hot_size);
    shm = mmap(NULL, per * (size_t)procs, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED)
        bench_die("workload: mmap: %s", strerror(errno));
    for (p = 0; p < procs; p++) {
        unsigned char *base = shm + per * (size_t)p;
        d[p].hdr = (struct wl_proc *)base;
        d[p].ns = (uint64_t *)(base + ((sizeof(struct wl_proc) + 7) & ~7u));
        d[p].op = (uint8_t *)(d[p].ns + o->ops);
        d[p].miss = d[p].op + o->ops;
    }
    if (pipe(ready) || pipe(go))
        bench_die("workload: pipe: %s", strerror(errno));
    fflush(NULL);
    for (p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            bench_die("workload: fork: %s", strerror(errno));
        if (pids[p] == 0) {
            close(ready[0]);
            close(go[1]);
            tc_worker(o, dir, hot_size, p, ready[1], go[0], &d[p]);
        }
    }
    close(ready[1]);
    close(go[0]);
    nready = bench_start_together(ready[0], go[1], procs);
    for (p = 0; p < procs; p++) {
        int st;
        if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0)
            failed++;
    }
    for (p = 0; p < procs; p++)
        if (d[p].hdr->errors)
            bench_die("workload: tiercache worker %d: %lld errors, first: %s",
                      p, (long long)d[p].hdr->errors, d[p].hdr->err);
    if (failed || nready < procs)
        bench_die("workload: %d tiercache worker(s) failed", failed);
    aggregate(d, procs, out);
    munmap(shm, per * (size_t)procs);
    bench_drop_segment(dir);
}

/* ---- python-diskcache --------------------------------------------- */

static int read_exact(FILE *fp, void *p, size_t n)
{
    return fread(p, 1, n, fp) == n ? 0 : -1;
}

/* Run the script; 0 ok, else a note in @note. */
static int run_py(const struct bench_opts *o, int procs, const char *dir,
                  const char *outdir, struct wl_result *out, char *note,
                  size_t notecap)
{
    char sprocs[16], sops[16], swarm[16];
    struct wl_data d[WL_PROCS];
    struct wl_proc hdr[WL_PROCS];
    pid_t pid;
    int st, p, rc = 0;

    snprintf(sprocs, sizeof(sprocs), "%d", procs);
    snprintf(sops, sizeof(sops), "%d", o->ops);
    snprintf(swarm, sizeof(swarm), "%d", o->warmup_ops);
    bench_mkdir(outdir);
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        bench_die("workload: fork: %s", strerror(errno));
    if (pid == 0) {
        const char *argv[] = {
            o->pyexe,   o->script, "--dir",     dir,     "--out",    outdir,
            "--procs",  sprocs,    "--ops",     sops,    "--warmup", swarm,
            "--shards", "8",       "--timeout", "0.010", NULL};
        dup2(2, 1); /* keep our stdout (maybe JSON) clean */
        execv(o->pyexe, (char *const *)argv);
        _exit(127);
    }
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        snprintf(note, notecap,
                 code == 3     ? "python-diskcache is not importable by %s"
                 : code == 127 ? "cannot run %s"
                               : "%s diskcache_workload.py failed",
                 o->pyexe);
        return -1;
    }
    memset(d, 0, sizeof(d));
    for (p = 0; p < procs && rc == 0; p++) {
        char path[PATH_MAX];
        int64_t h4[4];
        size_t n;
        FILE *fp;

        bench_pathf(path, sizeof(path), "%s/py-%d.bin", outdir, p);
        fp = fopen(path, "rb");
        if (!fp || read_exact(fp, h4, sizeof(h4))) {
            rc = -1;
        } else {
            n = (size_t)h4[2];
            memset(&hdr[p], 0, sizeof(hdr[p]));
            hdr[p].t_first = h4[0];
            hdr[p].t_last = h4[1];
            hdr[p].n = h4[2];
            hdr[p].busy = h4[3];
            d[p].hdr = &hdr[p];
            d[p].ns = malloc(n * 8 + 1);
            d[p].op = malloc(n + 1);
            d[p].miss = malloc(n + 1);
            if (!d[p].ns || !d[p].op || !d[p].miss ||
                read_exact(fp, d[p].ns, n * 8) || read_exact(fp, d[p].op, n) ||
                read_exact(fp, d[p].miss, n))
                rc = -1;
        }
        if (fp)
            fclose(fp);
        if (rc)
            snprintf(note, notecap, "cannot read %.200s", path);
    }
    if (rc == 0)
        aggregate(d, procs, out);
    for (p = 0; p < procs; p++) {
        free(d[p].ns);
        free(d[p].op);
        free(d[p].miss);
    }
    return rc;
}

void wl_run_all(const struct bench_opts *o, struct wl_all *w)
{
    bool python = o->python;
    int run, procs;

    memset(w, 0, sizeof(*w));
    w->runs = o->runs;
    w->have[E_TC] = w->have[E_TC_COLD] = true;
    if (!python)
        snprintf(w->py_note, sizeof(w->py_note), "skipped (--no-python)");
    else if (access(o->pyexe, X_OK) != 0 || access(o->script, R_OK) != 0) {
        snprintf(w->py_note, sizeof(w->py_note), "skipped: %s or %s missing",
                 o->pyexe, o->script);
        python = false;
    }
    for (run = 0; run < o->runs; run++) {
        for (procs = 1; procs <= WL_PROCS; procs++) {
            char dir[PATH_MAX], out[PATH_MAX];
            if (!o->json)
                fprintf(stderr, "workload: run %d/%d, %d process(es)\n",
                        run + 1, o->runs, procs);
            /* Hot-on and cold-only alternate who goes first. */
            for (int i = 0; i < 2; i++) {
                int e = (i + run) % 2 ? E_TC_COLD : E_TC;
                bench_pathf(dir, sizeof(dir), "%s/wl-tc%s-%d-%d", o->work,
                            e == E_TC ? "hot" : "cold", procs, run);
                run_tc(o, procs, dir, e == E_TC ? WL_HOT_SIZE : 0,
                       &w->run[e][procs - 1][run]);
                bench_rmtree(dir);
            }
            if (!python)
                continue;
            bench_pathf(dir, sizeof(dir), "%s/wl-py-%d-%d", o->work, procs,
                        run);
            bench_pathf(out, sizeof(out), "%s/wl-py-out-%d-%d", o->work, procs,
                        run);
            if (run_py(o, procs, dir, out, &w->run[E_PY][procs - 1][run],
                       w->py_note, sizeof(w->py_note)) != 0) {
                python = false;
                w->have[E_PY] = false;
                fprintf(stderr, "workload: python skipped: %s\n", w->py_note);
            } else {
                w->have[E_PY] = true;
            }
            bench_rmtree(dir);
            bench_rmtree(out);
        }
    }
}
