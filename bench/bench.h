/*
 * bench.h - shared declarations of tiercache-bench (the bench/ sources).
 *
 * tiercache-bench is a program, not a test: it measures the public C API
 * of tiercache against a "floor" (the same SQL prepared in bare C on a
 * database of the same schema, in the same run) and against
 * python-diskcache's own benchmark workload. Layering: tc_bench.c (options,
 * temp dir, report) -> bench_micro.c (per-operation phases) ->
 * bench_floor.c (bare SQLite) and bench_workload.c (forked workers, the
 * python script). Only tiercache.h of the library is used.
 *
 * Method (DESIGN-BRIEF section 10): every figure is a median over
 * opts.runs measured runs that follow one warm-up run; library and floor
 * phases alternate inside each run so drift hits both alike.
 */
#ifndef TC_BENCH_H
#define TC_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiercache.h"

#define BENCH_MAX_RUNS   100
#define BENCH_VALUE_SIZE 100 /* bytes of each micro-benchmark value */
#define BENCH_FAN_SHARDS 8   /* FanoutCache shard count */
#define BENCH_CULL_LIMIT 10  /* diskcache's default cull_limit */

struct bench_opts {
    int runs;            /* measured runs; one warm-up run comes first */
    int keys;            /* micro: preloaded keys, also ops per phase */
    int batch;           /* micro: set_many batch size */
    int ops;             /* workload: ops per process */
    int warmup_ops;      /* workload: untimed first ops of each process */
    bool quick;          /* smoke sizes */
    bool python;         /* run the python-diskcache workload */
    bool micro;          /* run the micro benchmarks */
    bool workload;       /* run the diskcache workload */
    bool hot;            /* run the hot-tier rows (bench_hot.c) */
    bool big;            /* --big: the 1M-key hot row */
    int hot_keys;        /* hot: keys of the get-hit row (10,000) */
    int big_keys;        /* hot: keys of the --big row (1,000,000) */
    long hot_ops;        /* hot: gets per timed phase / per process */
    bool json;           /* print JSON instead of tables */
    const char *base;    /* --dir: where the temp dir is made */
    const char *pyexe;   /* python interpreter */
    const char *script;  /* bench/diskcache_workload.py */
    char work[PATH_MAX]; /* our temp dir, removed at exit */
};

/* ---- tc_bench.c: helpers ------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_ns(void);
/* CPU time of the process (CLOCK_PROCESS_CPUTIME_ID) in nanoseconds. */
uint64_t bench_cpu_ns(void);
/* CLOCK_REALTIME in Unix seconds (the "now" diskcache binds). */
double bench_wall(void);
/* Print a message, remove the temp dir, exit 1. */
_Noreturn void bench_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* Die unless @rc == @want, naming @what and tiercache's error detail. */
void bench_expect(int rc, int want, const char *what);
/* Median of @n doubles (sorts a copy). */
double bench_median(const double *v, int n);
/* snprintf into a path buffer; dies if it does not fit. */
void bench_pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* mkdir -p of one level; dies on failure other than EEXIST. */
void bench_mkdir(const char *path);
/* Remove a directory tree (no error if missing). */
void bench_rmtree(const char *path);
/* Wait until @procs children wrote one byte each to @ready_fd, then close
 * @go_fd so they all start at once; both descriptors are closed. Returns
 * how many reported ready. */
int bench_start_together(int ready_fd, int go_fd, int procs);
/* A tiny deterministic PRNG (splitmix64). */
uint64_t bench_rand(uint64_t *state);
/* Remember a cache directory whose hot-tier segment must be dropped if we
 * die; the exit handler calls tc_hot_drop on each (segments outlive the
 * directory in /dev/shm otherwise). */
void bench_track_segment(const char *dir);
/* tc_hot_drop(@dir), dying on failure; call after tc_close and before the
 * directory is removed. */
void bench_drop_segment(const char *dir);

/* ---- bench_floor.c: bare prepared SQLite --------------------------- */

struct floor_shard;
struct floor;

/* Open the floor on a directory created by tiercache (@shards 0 or N). */
struct floor *floor_open(const char *dir, int shards, double timeout);
void floor_close(struct floor *f);
/* The shard a key goes to: @h is tc_fanout_hash(key) (ignored if plain). */
int floor_shard_of(const struct floor *f, uint64_t h);
/* get: 1 hit (value copied to @buf), 0 miss. */
int floor_get(struct floor *f, int shard, const char *key, size_t klen,
              char *buf, size_t cap, size_t *len);
/* set (diskcache set of an inline text value, with cull and seq bump). */
void floor_set(struct floor *f, int shard, const char *key, size_t klen,
               const char *val, size_t vlen);
/* delete of a live key: 1 deleted, 0 missing. */
int floor_delete(struct floor *f, int shard, const char *key, size_t klen);
/* incr by @delta (default 0); returns the new value. */
int64_t floor_incr(struct floor *f, int shard, const char *key, size_t klen,
                   int64_t delta);
/* set_many of @n text pairs in one transaction per shard. */
void floor_set_many(struct floor *f, const int *shards, const char **keys,
                    const size_t *klens, const char *val, size_t vlen,
                    size_t n);
/* Untimed cleanup: delete @n keys in one transaction per shard. */
void floor_delete_many(struct floor *f, const int *shards, const char **keys,
                       const size_t *klens, size_t n);
/* Nanoseconds spent in COMMIT since the last call (then reset). */
uint64_t floor_take_commit_ns(struct floor *f);

/* ---- bench_micro.c ------------------------------------------------- */

enum micro_op {
    M_GET_HIT,
    M_GET_BUF,
    M_GET_MISS,
    M_SET_NEW,
    M_SET_OVER,
    M_DELETE,
    M_INCR,
    M_SET_MANY,
    M_OP_COUNT
};

/* The two layouts measured; each has a library side and a floor side. */
enum micro_layout { L_PLAIN, L_FANOUT, L_COUNT };

struct micro_result {
    int runs;
    /* ns per op, per run: [op][layout][0 lib | 1 floor][run] */
    double ns[M_OP_COUNT][L_COUNT][2][BENCH_MAX_RUNS];
    /* CPU time (CLOCK_PROCESS_CPUTIME_ID) per op, same layout */
    double cpu_ns[M_OP_COUNT][L_COUNT][2][BENCH_MAX_RUNS];
    /* floor COMMIT ns per op, per run */
    double commit_ns[M_OP_COUNT][L_COUNT][BENCH_MAX_RUNS];
};

extern const char *const micro_op_name[M_OP_COUNT];

void micro_run(const struct bench_opts *o, struct micro_result *r);

/* ---- bench_workload.c ---------------------------------------------- */

enum wl_op { W_GET, W_SET, W_DELETE, W_OP_COUNT };

struct wl_opstat {
    double count, miss;                       /* ops timed, misses */
    double median_ns, p90_ns, p99_ns, max_ns; /* latency */
    double sum_ns;                            /* total time in this op */
};

struct wl_result {
    struct wl_opstat op[W_OP_COUNT];
    double ops;         /* timed ops, all processes */
    double rate_optime; /* sum over processes of ops / time inside ops */
    double rate_wall;   /* ops / (last end - first start), incl. loop */
    double busy;        /* ops abandoned at the busy timeout */
};

/* tiercache with the hot tier on (64 MiB) and cold-only (hot size 0),
 * then python-diskcache. */
enum wl_engine { E_TC, E_TC_COLD, E_PY, E_COUNT };
#define WL_HOT_SIZE (64ull << 20)
#define WL_PROCS    2 /* measured with 1..WL_PROCS processes */

struct wl_all {
    int runs;
    bool have[E_COUNT];
    /* per run results; medians are taken by the report */
    struct wl_result run[E_COUNT][WL_PROCS][BENCH_MAX_RUNS];
    char py_note[256]; /* why python was skipped, if it was */
};

extern const char *const wl_op_name[W_OP_COUNT];

void wl_run_all(const struct bench_opts *o, struct wl_all *w);

/* ---- bench_hot.c --------------------------------------------------- */

/* The sides of a hot get-hit row: tiercache's two calls and the floor. */
enum hot_side { H_BUF, H_GET, H_FLOOR, H_SIDES };

struct hot_row {
    bool have;      /* measured */
    char note[256]; /* why not, or what went wrong with the hit rate */
    int keys;       /* keys resident */
    uint64_t size;  /* hot_size */
    long ops;       /* gets per timed phase */
    double preload_s, fill_s;     /* seconds to preload (and fill) */
    uint64_t lib_ops, lib_misses; /* measured library gets, hot misses */
    uint64_t resident;            /* tc_hot_stats items before timing */
    uint32_t floor_unplaced;      /* keys the floor could not place */
    /* ns per get, per run (wall and process CPU time) */
    double ns[H_SIDES][BENCH_MAX_RUNS], cpu[H_SIDES][BENCH_MAX_RUNS];
};

/* Two-process scaling: engine 0 tiercache, 1 the bare table; variant 0
 * every key, 1 one key read by both processes. */
#define HS_ENGINES  2
#define HS_VARIANTS 2
struct hot_scale {
    bool have;
    char note[256];
    long ops; /* gets per process */
    /* per run, [engine][variant][procs - 1][run]:
     * cpu_rate = sum over processes of gets / own CPU seconds,
     * wall_rate = all gets / (last end - first start),
     * cores = sum of CPU seconds / that wall span */
    double cpu_rate[HS_ENGINES][HS_VARIANTS][2][BENCH_MAX_RUNS];
    double wall_rate[HS_ENGINES][HS_VARIANTS][2][BENCH_MAX_RUNS];
    double cores[HS_ENGINES][HS_VARIANTS][2][BENCH_MAX_RUNS];
};

#define HM_SNAPS 4
struct hot_mem_snap {
    uint64_t items, size, free_bytes, keys_set;
    double key_bytes; /* mean key length of the resident keys */
    double evictions;
};
struct hot_mem {
    bool have;
    char note[256];
    uint64_t size;       /* hot_size */
    double fill_s;       /* seconds to fill */
    uint64_t first_cold; /* items resident when a key first stayed cold */
    bool full;           /* the item count stopped growing */
    bool have_evict;
    struct hot_mem_snap evict; /* the last state before the first eviction */
    uint64_t evict_items;      /* items after the batch that evicted */
    int nsnap;                 /* snap[nsnap - 1] is the final state */
    struct hot_mem_snap snap[HM_SNAPS];
};

struct hot_result {
    int runs;
    struct hot_row small, big;
    struct hot_scale scale;
    struct hot_mem mem;
};

void hot_run(const struct bench_opts *o, struct hot_result *r);
void hot_print(const struct bench_opts *o, const struct hot_result *r);
void hot_json(const struct bench_opts *o, const struct hot_result *r);

#endif /* TC_BENCH_H */
