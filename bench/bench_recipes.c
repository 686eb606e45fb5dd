/*
 * bench_recipes.c - issue 6's benchmark: Deque, Index and the recipes
 * against python-diskcache's (tiercache-bench --only recipes; never part
 * of the default run).
 *
 * tiercache through its C API with the default hot tier, python-diskcache
 * through bench/diskcache_recipes.py run by the same invocation with
 * /usr/bin/python3, once per group right after tiercache's rows of that
 * group; every row in its own directory per engine, 100-byte text values,
 * the median of opts.runs runs after one untimed warm-up run (except
 * "held", which counts and needs none):
 *
 *  lock       tc_lock_acquire(TC_NO_EXPIRE, -1) + tc_lock_release vs
 *             Lock.acquire() + release(), uncontended, per pair.
 *  handoff    2 forked processes, each N iterations of acquire / read the
 *             counter key / write it + 1 / release (a read and a write, not
 *             an incr: a lock that let both in would lose updates); wall
 *             time from the start barrier to both exits, when the first
 *             process was done, and how often the holder changed (each
 *             process counts the iterations that found the other's
 *             write); the counter must end at exactly 2N (an ERROR row
 *             otherwise, and exit status 1).
 *  held       SQLite write transactions made by ONE waiter in 2 s while a
 *             forked live process holds the lock: tiercache's
 *             tc_commit_seq delta across tc_lock_acquire(timeout 2 s) (it
 *             moves once per write transaction, once more per row changed:
 *             0 means no write; a control after the hold checks that a
 *             release and an acquire do move it),
 *             python's calls of cache.add (each a BEGIN IMMEDIATE write
 *             transaction) counted by a wrapper until the same deadline.
 *  deque      tc_deque_push(TC_BACK) + tc_deque_pop(TC_FRONT) vs
 *             append + popleft on a 1000-item deque; tc_deque_get of the
 *             middle item vs deque[500].
 *  index      tc_set / tc_get (TC_RETRY, as python's Index) on a
 *             tc_index_open cache vs index[key] = value / index[key], 1000
 *             keys (sets: 5 passes per run; the timed runs overwrite what
 *             the warm-up stored).
 *             Gets also with a hot_size 0 handle (SQLite, as python).
 *  recipes    tc_memoize_stampede hit (expire 3600, beta 1; hot and
 *             hot_size 0) vs a memoize_stampede(expire=3600, beta=1) hit;
 *             tc_averager_add vs Averager.add; tc_throttle_take vs a
 *             throttle(count=1e9, seconds=1) no-op (never sleeps).
 *
 * Only tiercache.h of the library is used.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifndef BENCH_RECIPES_SRC
#define BENCH_RECIPES_SRC "bench/diskcache_recipes.py"
#endif
#ifndef BENCH_RECIPES_INSTALLED
#define BENCH_RECIPES_INSTALLED BENCH_RECIPES_SRC
#endif

#define RC_VLEN 100 /* bytes of every value */

int recipes_bench(const struct bench_opts *o);

/* Operation counts per timed run; the python side gets the same except
 * where its slower calls need fewer (stampede, index get). */
struct rc_sizes {
    int lock_ops;               /* lock: acquire+release pairs */
    int handoff_n;              /* handoff: iterations per process */
    double hold;                /* held: seconds */
    int deque_len;              /* deque: items */
    int deque_pairs;            /* deque: append+popleft pairs */
    int deque_gets;             /* deque: middle gets */
    int index_keys;             /* index: keys */
    int ix_set_passes;          /* index set passes over the keys */
    int ix_passes_hot;          /* index get passes over the keys: tc hot */
    int ix_passes_cold;         /* tc hot_size 0 */
    int ix_passes_py;           /* python */
    int sp_hot, sp_cold, sp_py; /* stampede hits */
    int averager_ops;
    int throttle_ops;
};

enum rc_row {
    R_LOCK,
    R_HANDOFF,
    R_HELD,
    R_DQ_PAIR,
    R_DQ_MID,
    R_IX_SET,
    R_IX_GET,
    R_SP_HIT,
    R_AVG,
    R_THR,
    R_COUNT
};

/* The python script's row names. */
static const char *const row_key[R_COUNT] = {
    "lock",      "handoff",   "held",         "deque_pair",   "deque_mid",
    "index_set", "index_get", "stampede_hit", "averager_add", "throttle_take",
};

struct rc_res {
    int runs;
    /* per run: ns/op; handoff: wall ns; held: writes */
    double tc[R_COUNT][BENCH_MAX_RUNS], py[R_COUNT][BENCH_MAX_RUNS];
    /* handoff: the counter; held: seconds */
    double tc2[R_COUNT][BENCH_MAX_RUNS], py2[R_COUNT][BENCH_MAX_RUNS];
    /* handoff, [0 tc | 1 python][run]: ns from the start until the first
     * process was done; holder changes seen (sum over both processes) */
    double first[2][BENCH_MAX_RUNS], changes[2][BENCH_MAX_RUNS];
    /* index get and stampede hit through a hot_size 0 handle */
    double cold[R_COUNT][BENCH_MAX_RUNS];
    int pyn[R_COUNT]; /* python runs read per row */
    bool have_py;
    char py_note[256], py_version[32];
    long tc_computes, tc_delays, py_computes, py_sleeps;
};

static char value[RC_VLEN + 1];

/* ---- helpers -------------------------------------------------------- */

/* Open @dir as a plain Cache (default settings; hot_size 0 if !@hot). */
static tc_cache *open_plain(const char *dir, bool hot)
{
    tc_cache *c = NULL;
    bench_expect(tc_create(&c), TC_OK, "tc_create");
    bench_expect(tc_set_shards(c, TC_SHARDS_PLAIN), TC_OK, "tc_set_shards");
    if (!hot)
        bench_expect(tc_set_hot_size(c, 0), TC_OK, "tc_set_hot_size");
    bench_expect(tc_open(c, dir, 0), TC_OK, "tc_open");
    return c;
}

/* tc_index_open's cache (plain, eviction_policy "none") with hot_size 0. */
static tc_cache *open_index_cold(const char *dir)
{
    tc_cache *c = NULL;
    tc_data none = tc_text("none");
    bench_expect(tc_create(&c), TC_OK, "tc_create");
    bench_expect(tc_set_shards(c, TC_SHARDS_PLAIN), TC_OK, "tc_set_shards");
    bench_expect(tc_set_setting(c, "eviction_policy", &none), TC_OK,
                 "tc_set_setting");
    bench_expect(tc_set_hot_size(c, 0), TC_OK, "tc_set_hot_size");
    bench_expect(tc_open(c, dir, 0), TC_OK, "tc_open");
    return c;
}

/* A fresh directory for one tiercache row (its segment dropped later). */
static void row_dir(char *out, size_t cap, const char *root, const char *name)
{
    bench_pathf(out, cap, "%s/tc-%s", root, name);
    bench_track_segment(out);
}

typedef void (*body_fn)(void *arg);

/* One untimed warm-up run, then @runs timed runs of @fn: ns per op. */
static void timed(double *ns, int runs, double ops, body_fn fn, void *arg)
{
    for (int r = -1; r < runs; r++) {
        uint64_t t0 = bench_ns();
        fn(arg);
        if (r >= 0)
            ns[r] = (double)(bench_ns() - t0) / ops;
    }
}

struct ctx {
    tc_cache *c;
    tc_data key;
    int n, passes;
    int64_t index;
    tc_data *keys;
    long *count; /* computes or delays */
};

static void check_value(const tc_value *v, const char *what)
{
    if (v->type != TC_TEXT || v->len != RC_VLEN ||
        memcmp(v->ptr, value, RC_VLEN) != 0)
        bench_die("recipes: %s returned another value", what);
}

/* ---- lock ----------------------------------------------------------- */

static void lock_body(void *arg)
{
    struct ctx *x = arg;
    for (int i = 0; i < x->n; i++) {
        bench_expect(tc_lock_acquire(x->c, &x->key, TC_NO_EXPIRE, -1), TC_OK,
                     "tc_lock_acquire");
        bench_expect(tc_lock_release(x->c, &x->key), TC_OK, "tc_lock_release");
    }
}

static void row_lock(const char *root, const struct rc_sizes *z,
                     struct rc_res *r)
{
    char dir[PATH_MAX];
    row_dir(dir, sizeof dir, root, "lock");
    struct ctx x = {
        .c = open_plain(dir, true), .key = tc_text("lock"), .n = z->lock_ops};
    timed(r->tc[R_LOCK], r->runs, z->lock_ops, lock_body, &x);
    tc_close(x.c);
    bench_drop_segment(dir);
}

/* What a handoff process reports when it is done (one pipe write). */
struct handoff_end {
    uint64_t end_ns; /* CLOCK_MONOTONIC at its last release */
    int64_t changes; /* iterations that found the other's write first */
};

/* One handoff process: N x (acquire, counter = counter + 1, release). */
static _Noreturn void handoff_child(const char *dir, int n, int ready_fd,
                                    int go_fd, int res_fd)
{
    tc_cache *c = open_plain(dir, true);
    tc_data lk = tc_text("lock"), ck = tc_text("counter");
    struct handoff_end e = {0, 0};
    int64_t mine = 0; /* the value this process wrote last */
    char b;
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    close(ready_fd);
    if (read(go_fd, &b, 1) < 0) /* 0 (EOF) when the parent says go */
        _exit(1);
    close(go_fd);
    for (int i = 0; i < n; i++) {
        int64_t v;
        size_t len;
        int type;
        bench_expect(tc_lock_acquire(c, &lk, TC_NO_EXPIRE, -1), TC_OK,
                     "tc_lock_acquire (handoff)");
        bench_expect(tc_get_buf(c, &ck, &v, sizeof v, &len, &type, NULL, 0),
                     TC_OK, "tc_get_buf (counter)");
        if (type != TC_INT)
            bench_die("recipes: the counter is not an integer");
        e.changes += v != mine; /* the other process held it in between */
        mine = ++v;
        tc_data d = tc_int(&v);
        bench_expect(tc_set(c, &ck, &d, TC_NO_EXPIRE, NULL, 0), TC_OK,
                     "tc_set (counter)");
        bench_expect(tc_lock_release(c, &lk), TC_OK,
                     "tc_lock_release (handoff)");
    }
    e.end_ns = bench_ns();
    if (write(res_fd, &e, sizeof e) != (ssize_t)sizeof e)
        _exit(1);
    tc_close(c);
    _exit(0);
}

static void row_handoff(const char *root, const struct rc_sizes *z,
                        struct rc_res *r)
{
    char dir[PATH_MAX];
    row_dir(dir, sizeof dir, root, "handoff");
    tc_cache *c = open_plain(dir, true);
    tc_data ck = tc_text("counter");
    for (int run = -1; run < r->runs; run++) {
        int64_t zero = 0, got = -1;
        tc_data d = tc_int(&zero);
        int ready[2], go[2], res[2], failed = 0;
        struct handoff_end e[2];
        pid_t pid[2];
        bench_expect(tc_set(c, &ck, &d, TC_NO_EXPIRE, NULL, 0), TC_OK,
                     "tc_set (counter = 0)");
        if (pipe(ready) != 0 || pipe(go) != 0 || pipe(res) != 0)
            bench_die("recipes: pipe: %s", strerror(errno));
        fflush(NULL);
        for (int p = 0; p < 2; p++) {
            if ((pid[p] = fork()) < 0)
                bench_die("recipes: fork: %s", strerror(errno));
            if (pid[p] == 0) {
                close(ready[0]);
                close(go[1]);
                close(res[0]);
                handoff_child(dir, z->handoff_n, ready[1], go[0], res[1]);
            }
        }
        close(ready[1]);
        close(go[0]);
        close(res[1]);
        int nready = bench_start_together(ready[0], go[1], 2);
        uint64_t t0 = bench_ns();
        for (int p = 0; p < 2; p++) {
            int st;
            if (waitpid(pid[p], &st, 0) != pid[p] || !WIFEXITED(st) ||
                WEXITSTATUS(st) != 0)
                failed++;
        }
        uint64_t t1 = bench_ns();
        if (failed || nready < 2 ||
            read(res[0], e, sizeof e) != (ssize_t)sizeof e)
            bench_die("recipes: %d handoff process(es) failed", failed);
        close(res[0]);
        size_t len;
        bench_expect(tc_get_buf(c, &ck, &got, sizeof got, &len, NULL, NULL, 0),
                     TC_OK, "tc_get_buf (counter)");
        if (run >= 0) {
            r->tc[R_HANDOFF][run] = (double)(t1 - t0);
            r->tc2[R_HANDOFF][run] = (double)got;
            uint64_t first =
                e[0].end_ns < e[1].end_ns ? e[0].end_ns : e[1].end_ns;
            r->first[0][run] = (double)(first - t0);
            r->changes[0][run] = (double)(e[0].changes + e[1].changes);
        }
    }
    tc_close(c);
    bench_drop_segment(dir);
}

/* The holder of the "held" row: takes the lock, says so, keeps it until
 * the parent closes @go_fd. */
static _Noreturn void holder_child(const char *dir, int ready_fd, int go_fd)
{
    tc_cache *c = open_plain(dir, true);
    tc_data lk = tc_text("lock");
    char b;
    bench_expect(tc_lock_acquire(c, &lk, TC_NO_EXPIRE, 0), TC_OK,
                 "tc_lock_acquire (holder)");
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    close(ready_fd);
    if (read(go_fd, &b, 1) < 0)
        _exit(1);
    close(go_fd);
    bench_expect(tc_lock_release(c, &lk), TC_OK, "tc_lock_release (holder)");
    tc_close(c);
    _exit(0);
}

static void row_held(const char *root, const struct rc_sizes *z,
                     struct rc_res *r)
{
    char dir[PATH_MAX];
    row_dir(dir, sizeof dir, root, "held");
    tc_data lk = tc_text("lock");
    for (int run = 0; run < r->runs; run++) {
        int ready[2], go[2], st;
        char b;
        if (pipe(ready) != 0 || pipe(go) != 0)
            bench_die("recipes: pipe: %s", strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            bench_die("recipes: fork: %s", strerror(errno));
        if (pid == 0) {
            close(ready[0]);
            close(go[1]);
            holder_child(dir, ready[1], go[0]);
        }
        close(ready[1]);
        close(go[0]);
        if (read(ready[0], &b, 1) != 1)
            bench_die("recipes: the holder died before it held the lock");
        close(ready[0]);
        /* The waiter: its own handle, opened while the lock is held. */
        tc_cache *c = open_plain(dir, true);
        uint64_t s0, s1;
        bench_expect(tc_commit_seq(c, 0, &s0), TC_OK, "tc_commit_seq");
        uint64_t t0 = bench_ns();
        bench_expect(tc_lock_acquire(c, &lk, TC_NO_EXPIRE, z->hold), TC_EXISTS,
                     "tc_lock_acquire (waiter, lock held)");
        uint64_t t1 = bench_ns();
        bench_expect(tc_commit_seq(c, 0, &s1), TC_OK, "tc_commit_seq");
        close(go[1]); /* the holder releases and exits */
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0)
            bench_die("recipes: the holder failed");
        /* The method's control: commit_seq moves once per write
         * transaction (and once more per row it changes), so the holder's
         * release and our acquire, two transactions, must move it. */
        uint64_t s2;
        bench_expect(tc_lock_acquire(c, &lk, TC_NO_EXPIRE, -1), TC_OK,
                     "tc_lock_acquire (waiter, lock free)");
        bench_expect(tc_commit_seq(c, 0, &s2), TC_OK, "tc_commit_seq");
        if (s2 - s1 < 2)
            bench_die("recipes: commit_seq moved by %llu over a release and "
                      "an acquire, not at least 2",
                      (unsigned long long)(s2 - s1));
        bench_expect(tc_lock_release(c, &lk), TC_OK,
                     "tc_lock_release (waiter)");
        tc_close(c);
        r->tc[R_HELD][run] = (double)(s1 - s0);
        r->tc2[R_HELD][run] = (double)(t1 - t0) / 1e9;
    }
    bench_drop_segment(dir);
}

/* ---- deque ---------------------------------------------------------- */

static void pair_body(void *arg)
{
    struct ctx *x = arg;
    tc_data v = tc_textn(value, RC_VLEN);
    for (int i = 0; i < x->n; i++) {
        tc_value out = TC_VALUE_INIT;
        bench_expect(tc_deque_push(x->c, &v, TC_BACK, -1), TC_OK,
                     "tc_deque_push");
        bench_expect(tc_deque_pop(x->c, TC_FRONT, &out), TC_OK, "tc_deque_pop");
        check_value(&out, "tc_deque_pop");
        tc_value_clear(&out);
    }
}

static void mid_body(void *arg)
{
    struct ctx *x = arg;
    for (int i = 0; i < x->n; i++) {
        tc_value out = TC_VALUE_INIT;
        bench_expect(tc_deque_get(x->c, x->index, &out), TC_OK, "tc_deque_get");
        check_value(&out, "tc_deque_get");
        tc_value_clear(&out);
    }
}

static void row_deque(const char *root, const struct rc_sizes *z,
                      struct rc_res *r)
{
    char dir[PATH_MAX];
    row_dir(dir, sizeof dir, root, "deque");
    struct ctx x = {0};
    bench_expect(tc_deque_open(&x.c, dir, 0), TC_OK, "tc_deque_open");
    tc_data *vals = malloc((size_t)z->deque_len * sizeof *vals);
    if (!vals)
        bench_die("out of memory");
    for (int i = 0; i < z->deque_len; i++)
        vals[i] = tc_textn(value, RC_VLEN);
    bench_expect(tc_deque_extend(x.c, vals, (size_t)z->deque_len, TC_BACK, -1),
                 TC_OK, "tc_deque_extend");
    free(vals);
    x.n = z->deque_pairs;
    timed(r->tc[R_DQ_PAIR], r->runs, z->deque_pairs, pair_body, &x);
    uint64_t len;
    bench_expect(tc_deque_len(x.c, &len), TC_OK, "tc_deque_len");
    if (len != (uint64_t)z->deque_len)
        bench_die("recipes: the deque holds %llu items, not %d",
                  (unsigned long long)len, z->deque_len);
    x.n = z->deque_gets;
    x.index = (int64_t)len / 2;
    timed(r->tc[R_DQ_MID], r->runs, z->deque_gets, mid_body, &x);
    tc_close(x.c);
    bench_drop_segment(dir);
}

/* ---- index ---------------------------------------------------------- */

static void set_body(void *arg)
{
    struct ctx *x = arg;
    tc_data v = tc_textn(value, RC_VLEN);
    for (int p = 0; p < x->passes; p++)
        for (int i = 0; i < x->n; i++)
            bench_expect(
                tc_set(x->c, &x->keys[i], &v, TC_NO_EXPIRE, NULL, TC_RETRY),
                TC_OK, "tc_set (index)");
}

static void get_body(void *arg)
{
    struct ctx *x = arg;
    for (int p = 0; p < x->passes; p++)
        for (int i = 0; i < x->n; i++) {
            tc_item it = TC_ITEM_INIT;
            bench_expect(tc_get(x->c, &x->keys[i], &it, TC_RETRY), TC_OK,
                         "tc_get (index)");
            check_value(&it.value, "tc_get (index)");
            tc_item_clear(&it);
        }
}

static void row_index(const char *root, const struct rc_sizes *z,
                      struct rc_res *r)
{
    char dir[PATH_MAX];
    int n = z->index_keys;
    row_dir(dir, sizeof dir, root, "index");
    char(*names)[16] = calloc((size_t)n, 16);
    tc_data *keys = calloc((size_t)n, sizeof *keys);
    if (!names || !keys)
        bench_die("out of memory");
    for (int i = 0; i < n; i++) {
        snprintf(names[i], 16, "key-%d", i);
        keys[i] = tc_text(names[i]);
    }
    struct ctx x = {.keys = keys, .n = n};
    bench_expect(tc_index_open(&x.c, dir, 0), TC_OK, "tc_index_open");
    x.passes = z->ix_set_passes;
    timed(r->tc[R_IX_SET], r->runs, (double)n * x.passes, set_body, &x);
    x.passes = z->ix_passes_hot;
    timed(r->tc[R_IX_GET], r->runs, (double)n * x.passes, get_body, &x);
    tc_close(x.c);
    x.c = open_index_cold(dir);
    x.passes = z->ix_passes_cold;
    timed(r->cold[R_IX_GET], r->runs, (double)n * x.passes, get_body, &x);
    tc_close(x.c);
    bench_drop_segment(dir);
    free(keys);
    free(names);
}

/* ---- recipes -------------------------------------------------------- */

static int compute(void *arg, tc_value *result)
{
    long *computes = arg;
    char *p = malloc(RC_VLEN + 1);
    if (!p)
        return TC_ENOMEM;
    memcpy(p, value, RC_VLEN + 1);
    (*computes)++;
    result->type = TC_TEXT;
    result->ptr = p;
    result->len = RC_VLEN;
    return TC_OK;
}

static void stampede_body(void *arg)
{
    struct ctx *x = arg;
    for (int i = 0; i < x->n; i++) {
        tc_value out = TC_VALUE_INIT;
        bench_expect(tc_memoize_stampede(x->c, &x->key, 3600, 1, compute,
                                         x->count, &out),
                     TC_OK, "tc_memoize_stampede");
        check_value(&out, "tc_memoize_stampede");
        tc_value_clear(&out);
    }
}

static void averager_body(void *arg)
{
    struct ctx *x = arg;
    for (int i = 0; i < x->n; i++)
        bench_expect(tc_averager_add(x->c, &x->key, 1.0, TC_NO_EXPIRE, NULL),
                     TC_OK, "tc_averager_add");
}

static void throttle_body(void *arg)
{
    struct ctx *x = arg;
    for (int i = 0; i < x->n; i++) {
        double delay = 0;
        bench_expect(tc_throttle_take(x->c, &x->key, 1e9, 1, TC_NO_EXPIRE,
                                      bench_wall(), &delay),
                     TC_OK, "tc_throttle_take");
        if (delay > 0)
            (*x->count)++; /* python's wrapper would sleep here */
    }
}

static void row_recipes(const char *root, const struct rc_sizes *z,
                        struct rc_res *r)
{
    char dir[PATH_MAX];
    row_dir(dir, sizeof dir, root, "recipes");
    struct ctx x = {.c = open_plain(dir, true),
                    .key = tc_text("stampede"),
                    .n = z->sp_hot,
                    .count = &r->tc_computes};
    timed(r->tc[R_SP_HIT], r->runs, z->sp_hot, stampede_body, &x);
    tc_cache *hot = x.c;
    x.c = open_plain(dir, false);
    x.n = z->sp_cold;
    timed(r->cold[R_SP_HIT], r->runs, z->sp_cold, stampede_body, &x);
    tc_close(x.c);
    x.c = hot;

    x.key = tc_text("avg");
    x.n = z->averager_ops;
    timed(r->tc[R_AVG], r->runs, z->averager_ops, averager_body, &x);
    double avg = 0;
    bench_expect(tc_averager_get(x.c, &x.key, &avg), TC_OK, "tc_averager_get");
    if (avg != 1.0)
        bench_die("recipes: the average is %g, not 1", avg);

    x.key = tc_text("throttle");
    x.n = z->throttle_ops;
    x.count = &r->tc_delays;
    bench_expect(
        tc_throttle_init(x.c, &x.key, 1e9, 1, TC_NO_EXPIRE, bench_wall()),
        TC_OK, "tc_throttle_init");
    timed(r->tc[R_THR], r->runs, z->throttle_ops, throttle_body, &x);
    tc_close(x.c);
    bench_drop_segment(dir);
}

/* ---- python-diskcache ---------------------------------------------- */

static int row_of(const char *name)
{
    for (int i = 0; i < R_COUNT; i++)
        if (strcmp(name, row_key[i]) == 0)
            return i;
    return -1;
}

/* Run the python rows of @group (the script's --row) right after the same
 * tiercache rows, so that both see the machine in the same state; the
 * first failure sets py_note and skips the rest. */
static void run_py(const struct bench_opts *o, const char *root,
                   const struct rc_sizes *z, struct rc_res *r,
                   const char *group)
{
    const char *script = access(BENCH_RECIPES_SRC, R_OK) == 0
                             ? BENCH_RECIPES_SRC
                             : BENCH_RECIPES_INSTALLED;
    char cmd[PATH_MAX * 3], line[256];
    if (r->py_note[0])
        return;
    if (!o->python) {
        snprintf(r->py_note, sizeof r->py_note, "skipped (--no-python)");
        return;
    }
    if (access(o->pyexe, X_OK) != 0 || access(script, R_OK) != 0) {
        snprintf(r->py_note, sizeof r->py_note, "skipped: %s or %s missing",
                 o->pyexe, script);
        return;
    }
    bench_pathf(cmd, sizeof cmd,
                "'%s' '%s' '%s/py' --row %s --runs %d --lock-ops %d "
                "--handoff-n %d "
                "--hold %.3f --deque-len %d --deque-pairs %d --deque-gets %d "
                "--index-keys %d --index-set-passes %d --index-passes %d "
                "--stampede-ops %d "
                "--averager-ops %d --throttle-ops %d",
                o->pyexe, script, root, group, r->runs, z->lock_ops,
                z->handoff_n, z->hold, z->deque_len, z->deque_pairs,
                z->deque_gets, z->index_keys, z->ix_set_passes, z->ix_passes_py,
                z->sp_py, z->averager_ops, z->throttle_ops);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(r->py_note, sizeof r->py_note, "popen: %s", strerror(errno));
        return;
    }
    while (fgets(line, sizeof line, p)) {
        char name[32], what[32];
        int run;
        double a, b = 0, c3 = 0, c4 = 0;
        long n;
        if (sscanf(line, "version %31s", r->py_version) == 1)
            continue;
        if (sscanf(line, "calls %31s %ld", what, &n) == 2) {
            if (strcmp(what, "stampede") == 0)
                r->py_computes = n;
            else if (strcmp(what, "throttle_sleep") == 0)
                r->py_sleeps = n;
            continue;
        }
        if (sscanf(line, "%31s %d %lf %lf %lf %lf", name, &run, &a, &b, &c3,
                   &c4) < 3)
            continue;
        int row = row_of(name);
        if (row < 0 || run < 0 || run >= r->runs)
            continue;
        r->py[row][run] = a;
        r->py2[row][run] = b;
        if (row == R_HANDOFF) {
            r->first[1][run] = c3;
            r->changes[1][run] = c4;
        }
        r->pyn[row]++;
    }
    int st = pclose(p);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code != 0) {
        snprintf(r->py_note, sizeof r->py_note,
                 code == 3 ? "python-diskcache is not importable by %s"
                           : "%s diskcache_recipes.py --row %s failed "
                             "(status %d)",
                 o->pyexe, group, code);
    }
}

/* After every group: python's figures are shown only if all came. */
static void py_complete(struct rc_res *r)
{
    if (r->py_note[0])
        return;
    for (int i = 0; i < R_COUNT; i++)
        if (r->pyn[i] != r->runs) {
            snprintf(r->py_note, sizeof r->py_note,
                     "diskcache_recipes.py gave %d of %d runs of %s", r->pyn[i],
                     r->runs, row_key[i]);
            return;
        }
    r->have_py = true;
}

/* ---- the report ----------------------------------------------------- */

static void min_max(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

static void table_head(const char *title)
{
    printf("\n%-40s %10s %11s %6s %10s %11s %6s %9s\n", title, "tiercache",
           "ops/s", "spread", "python", "ops/s", "spread", "python/");
    printf("%-40s %10s %11s %6s %10s %11s %6s %9s\n", "", "ns/op", "", "",
           "ns/op", "", "", "tiercache");
}

/* (max - min) / median of the runs, in percent. */
static double spread(const double *v, int n)
{
    double lo, hi;
    min_max(v, n, &lo, &hi);
    return 100 * (hi - lo) / bench_median(v, n);
}

/* A row: tiercache's per-run ns @tc against python's @py (NULL: none). */
static void table_row(const struct rc_res *r, const char *name,
                      const double *tc, const double *py)
{
    double t = bench_median(tc, r->runs);
    printf("%-40s %10.0f %11.0f %5.0f%%", name, t, 1e9 / t,
           spread(tc, r->runs));
    if (py && r->have_py) {
        double q = bench_median(py, r->runs);
        printf(" %10.0f %11.0f %5.0f%% %8.1fx\n", q, 1e9 / q,
               spread(py, r->runs), q / t);
    } else {
        printf(" %10s %11s %6s %9s\n", "-", "-", "-", "-");
    }
}

/* Returns the number of runs whose counter was wrong. */
static int handoff_row(const struct rc_res *r, int py, const char *engine,
                       const double *wall, const double *counter, int n)
{
    double w = bench_median(wall, r->runs), lo, hi;
    char range[48];
    int bad = 0;
    min_max(wall, r->runs, &lo, &hi);
    snprintf(range, sizeof range, "%.1f-%.1f", lo / 1e6, hi / 1e6);
    for (int i = 0; i < r->runs; i++)
        bad += counter[i] != 2.0 * n;
    printf("%-18s %8.1f %11.0f %12.0f %8s %10.1f %8.0f %15s\n", engine, w / 1e6,
           w / (2.0 * n), 2.0 * n * 1e9 / w, bad ? "WRONG" : "exact",
           bench_median(r->first[py], r->runs) / 1e6,
           bench_median(r->changes[py], r->runs), range);
    for (int i = 0; i < r->runs; i++)
        if (counter[i] != 2.0 * n)
            printf("ERROR %s run %d: counter %.0f, expected %d (the lock let "
                   "two holders in)\n",
                   engine, i + 1, counter[i], 2 * n);
    return bad;
}

static void held_row(const struct rc_res *r, const char *engine,
                     const double *writes, const double *secs)
{
    double rate[BENCH_MAX_RUNS] = {0}, lo, hi;
    char range[48];
    for (int i = 0; i < r->runs; i++)
        rate[i] = writes[i] / secs[i];
    min_max(rate, r->runs, &lo, &hi);
    snprintf(range, sizeof range, "%.1f-%.1f", lo, hi);
    printf("%-36s %8.0f %8.3f %10.1f %19s\n", engine,
           bench_median(writes, r->runs), bench_median(secs, r->runs),
           bench_median(rate, r->runs), range);
}

static int report(const struct rc_sizes *z, const struct rc_res *r)
{
    int bad = 0;
    char name[64];

    printf("\nDeque, Index and recipes (issue 6): tiercache's C API (default "
           "hot tier) vs python-diskcache %s\n(diskcache.Deque, Index, "
           "recipes), same machine, each engine and row in its own "
           "directory;\n%d-byte str values; ns/op = median of %d runs after "
           "1 untimed warm-up run;\nspread = (slowest - fastest run) / "
           "median\n",
           r->py_version, RC_VLEN, r->runs);
    if (!r->have_py)
        printf("python-diskcache: %s\n", r->py_note);

#define PY(row) (r->have_py ? r->py[row] : NULL)
    table_head("Lock");
    table_row(r, "acquire + release, uncontended", r->tc[R_LOCK], PY(R_LOCK));

    printf("\nLock handoff under contention: 2 processes x %d iterations of "
           "acquire / read counter / write\ncounter + 1 / release; wall time "
           "from the start barrier to both exits; 1st done: when the\nfirst "
           "process finished; holder changes: iterations that found the "
           "other process's write\n(%d when both strictly alternate, 1 when "
           "one runs all its iterations first); medians of %d runs\n",
           z->handoff_n, 2 * z->handoff_n - 1, r->runs);
    printf("%-18s %8s %11s %12s %8s %10s %8s %15s\n", "engine", "wall ms",
           "ns/iter", "iter/s", "counter", "1st done", "holder",
           "runs min-max");
    printf("%-18s %8s %11s %12s %8s %10s %8s %15s\n", "", "", "", "", "", "ms",
           "changes", "wall ms");
    bad += handoff_row(r, 0, "tiercache", r->tc[R_HANDOFF], r->tc2[R_HANDOFF],
                       z->handoff_n);
    if (r->have_py) {
        bad += handoff_row(r, 1, "python-diskcache", r->py[R_HANDOFF],
                           r->py2[R_HANDOFF], z->handoff_n);
        printf("python/tiercache (wall): %.1fx\n",
               bench_median(r->py[R_HANDOFF], r->runs) /
                   bench_median(r->tc[R_HANDOFF], r->runs));
    }

    printf("\nSQLite write transactions made by ONE waiter while another "
           "live process holds the lock\n(%.1f s per run, %d runs, no "
           "warm-up; tiercache: tc_commit_seq delta across\n"
           "tc_lock_acquire(timeout %.1f), which moves at least once per "
           "write transaction, so 0 = none;\npython: calls of cache.add, "
           "each a BEGIN IMMEDIATE transaction, made by Lock.acquire until "
           "the deadline)\n",
           z->hold, r->runs, z->hold);
    printf("%-36s %8s %8s %10s %19s\n", "engine", "writes", "seconds",
           "writes/s", "runs min-max /s");
    held_row(r, "tiercache (commit_seq delta)", r->tc[R_HELD], r->tc2[R_HELD]);
    if (r->have_py)
        held_row(r, "python-diskcache (cache.add calls)", r->py[R_HELD],
                 r->py2[R_HELD]);

    table_head("Deque");
    snprintf(name, sizeof name, "append + popleft pair (%d items)",
             z->deque_len);
    table_row(r, name, r->tc[R_DQ_PAIR], PY(R_DQ_PAIR));
    snprintf(name, sizeof name, "get deque[%d] of %d", z->deque_len / 2,
             z->deque_len);
    table_row(r, name, r->tc[R_DQ_MID], PY(R_DQ_MID));

    table_head("Index");
    snprintf(name, sizeof name, "set, %d keys (overwrites)", z->index_keys);
    table_row(r, name, r->tc[R_IX_SET], PY(R_IX_SET));
    snprintf(name, sizeof name, "get, %d keys (hot tier)", z->index_keys);
    table_row(r, name, r->tc[R_IX_GET], PY(R_IX_GET));
    snprintf(name, sizeof name, "get, %d keys (cold, hot_size 0)",
             z->index_keys);
    table_row(r, name, r->cold[R_IX_GET], PY(R_IX_GET));

    table_head("Recipes");
    table_row(r, "memoize_stampede hit, beta 1 (hot tier)", r->tc[R_SP_HIT],
              PY(R_SP_HIT));
    table_row(r, "memoize_stampede hit, beta 1 (cold)", r->cold[R_SP_HIT],
              PY(R_SP_HIT));
    table_row(r, "Averager add", r->tc[R_AVG], PY(R_AVG));
    table_row(r, "throttle take (count 1e9 per 1 s)", r->tc[R_THR], PY(R_THR));
#undef PY

    printf("computations of the memoized function: tiercache %ld",
           r->tc_computes);
    if (r->have_py)
        printf(", python %ld", r->py_computes);
    printf(" (1 each: every timed call was a hit)\nthrottle delays: "
           "tiercache %ld",
           r->tc_delays);
    if (r->have_py)
        printf(", python sleeps %ld", r->py_sleeps);
    printf(" (0 expected)\n");
    if (r->tc_computes != 1 || r->tc_delays != 0 ||
        (r->have_py && (r->py_computes != 1 || r->py_sleeps != 0))) {
        printf("ERROR: a memoized call recomputed or a throttle call waited\n");
        bad++;
    }
    return bad;
}

/* ---- the section ---------------------------------------------------- */

int recipes_bench(const struct bench_opts *o)
{
    static struct rc_res r;
    struct rc_sizes z = {
        .lock_ops = 4000,
        .handoff_n = 500,
        .hold = 2.0,
        .deque_len = 1000,
        .deque_pairs = 4000,
        .deque_gets = 200,
        .index_keys = 1000,
        .ix_set_passes = 5,
        .ix_passes_hot = 50,
        .ix_passes_cold = 5,
        .ix_passes_py = 2,
        .sp_hot = 200000,
        .sp_cold = 20000,
        .sp_py = 20000,
        .averager_ops = 5000,
        .throttle_ops = 5000,
    };
    if (o->quick) {
        z = (struct rc_sizes){
            .lock_ops = 200,
            .handoff_n = 50,
            .hold = 0.5,
            .deque_len = 1000,
            .deque_pairs = 200,
            .deque_gets = 20,
            .index_keys = 1000,
            .ix_set_passes = 1,
            .ix_passes_hot = 5,
            .ix_passes_cold = 1,
            .ix_passes_py = 1,
            .sp_hot = 20000,
            .sp_cold = 2000,
            .sp_py = 2000,
            .averager_ops = 200,
            .throttle_ops = 200,
        };
    }
    char root[PATH_MAX];
    memset(value, 'v', RC_VLEN);
    r.runs = o->runs;
    bench_pathf(root, sizeof root, "%s/recipes", o->work);
    bench_mkdir(root);
    r.py_computes = r.py_sleeps = -1;
    /* Each group: tiercache's rows, then python's. */
    static const struct {
        const char *name;
        void (*run)(const char *, const struct rc_sizes *, struct rc_res *);
    } group[] = {
        {"lock", row_lock},   {"handoff", row_handoff},
        {"held", row_held},   {"deque", row_deque},
        {"index", row_index}, {"recipes", row_recipes},
    };
    for (size_t g = 0; g < sizeof group / sizeof group[0]; g++) {
        fprintf(stderr, "recipes: %s...\n", group[g].name);
        group[g].run(root, &z, &r);
        run_py(o, root, &z, &r, group[g].name);
    }
    py_complete(&r);
    return report(&z, &r) ? 1 : 0;
}
