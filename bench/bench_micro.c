/*
 * bench_micro.c - per-operation benchmarks: tiercache's C API beside the
 * floor (bench_floor.c), for a plain Cache and a FanoutCache of 8 shards.
 *
 * Workload (DESIGN-BRIEF section 10): text keys "key-N", 100-byte TC_TEXT
 * values, no expiry, no tag, keys visited in one fixed random order. Each
 * side has its own directory, created by tiercache (the floor's too, so
 * the schema, triggers and Settings rows are tiercache's), preloaded with
 * opts.keys items and opts.keys counters through the library. Key ranges,
 * each opts.keys long, never overlap:
 *
 *   base  key-0 ..       preloaded; get hit, set (overwrite)
 *   new   key-N ..       set (new key), then delete: the table stays
 *                        the same size from run to run
 *   miss  key-2N ..      never written; get miss
 *   ctr   key-3N ..      integer counters; incr
 *   many  key-4N ..      set_many in batches, deleted afterwards (untimed)
 *
 * The library runs with tc_set_hot_size(0): the floor is SQL, so this
 * measures the cold tier (a hot-tier hit is not a SQLite operation).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

enum range { R_BASE, R_NEW, R_MISS, R_CTR, R_MANY, R_COUNT };

const char *const micro_op_name[M_OP_COUNT] = {
    [M_GET_HIT] = "get hit",
    [M_GET_BUF] = "get hit (tc_get_buf)",
    [M_GET_MISS] = "get miss",
    [M_SET_NEW] = "set (new key)",
    [M_SET_OVER] = "set (overwrite)",
    [M_DELETE] = "delete",
    [M_INCR] = "incr",
    [M_SET_MANY] = "set_many (per item)",
};

struct keys {
    int n;                   /* keys per range */
    int batch;               /* set_many batch size (divides n) */
    int *perm;               /* visiting order, a permutation of 0..n-1 */
    char *text;              /* all key strings, NUL-separated */
    const char **k[R_COUNT]; /* k[range][i] */
    size_t *len[R_COUNT];
    uint64_t *hash[R_COUNT]; /* tc_fanout_hash of each key */
    tc_data *many;           /* tc_data of the many range, in perm order */
    tc_data *manyval;        /* n copies of the value datum */
};

struct layout {
    const char *name;
    int shards; /* 0 or BENCH_FAN_SHARDS */
    char libdir[PATH_MAX], floordir[PATH_MAX];
    tc_cache *c;
    struct floor *f;
    int *shard[R_COUNT];   /* floor shard of each key */
    int *manyshard;        /* floor shard of the many keys, perm order */
    const char **manykeys; /* many keys, perm order */
    size_t *manylens;
    int64_t ctr_expect; /* value every counter holds */
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        bench_die("out of memory");
    return p;
}

static void keys_init(struct keys *ks, int n, int batch)
{
    size_t cap = (size_t)n * R_COUNT * 24, off = 0;
    uint64_t seed = 42;
    int r, i;

    ks->n = n;
    ks->batch = batch;
    ks->perm = xcalloc((size_t)n, sizeof(int));
    ks->text = xcalloc(cap, 1);
    for (i = 0; i < n; i++)
        ks->perm[i] = i;
    for (i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(bench_rand(&seed) % (uint64_t)(i + 1));
        int t = ks->perm[i];
        ks->perm[i] = ks->perm[j];
        ks->perm[j] = t;
    }
    for (r = 0; r < R_COUNT; r++) {
        ks->k[r] = xcalloc((size_t)n, sizeof(char *));
        ks->len[r] = xcalloc((size_t)n, sizeof(size_t));
        ks->hash[r] = xcalloc((size_t)n, sizeof(uint64_t));
        for (i = 0; i < n; i++) {
            int w = snprintf(ks->text + off, cap - off, "key-%lld",
                             (long long)r * n + i);
            tc_data d = tc_textn(ks->text + off, (size_t)w);
            ks->k[r][i] = ks->text + off;
            ks->len[r][i] = (size_t)w;
            bench_expect(tc_fanout_hash(&d, &ks->hash[r][i]), TC_OK,
                         "tc_fanout_hash");
            off += (size_t)w + 1;
        }
    }
    ks->many = xcalloc((size_t)n, sizeof(tc_data));
    ks->manyval = xcalloc((size_t)n, sizeof(tc_data));
    for (i = 0; i < n; i++)
        ks->many[i] =
            tc_textn(ks->k[R_MANY][ks->perm[i]], ks->len[R_MANY][ks->perm[i]]);
}

static void keys_free(struct keys *ks)
{
    int r;
    for (r = 0; r < R_COUNT; r++) {
        free(ks->k[r]);
        free(ks->len[r]);
        free(ks->hash[r]);
    }
    free(ks->perm);
    free(ks->text);
    free(ks->many);
    free(ks->manyval);
}

static tc_cache *lib_open(const char *dir, int shards)
{
    tc_cache *c = NULL;
    bench_expect(tc_create(&c), TC_OK, "tc_create");
    bench_expect(tc_set_shards(c, shards), TC_OK, "tc_set_shards");
    bench_expect(tc_set_hot_size(c, 0), TC_OK, "tc_set_hot_size");
    bench_expect(tc_open(c, dir, 0), TC_OK, "tc_open");
    return c;
}

/* Fill a 100-byte value that differs from run to run. */
static void fill_value(char *val, int run)
{
    int i;
    for (i = 0; i < BENCH_VALUE_SIZE; i++)
        val[i] = (char)('a' + (run + i) % 26);
}

/* The preload, done through the library on both directories. */
static void preload(tc_cache *c, const struct keys *ks)
{
    char val[BENCH_VALUE_SIZE];
    int64_t one = 1, zero = 0;
    tc_data v, d1 = tc_int(&one), d0 = tc_int(&zero);
    int i;

    fill_value(val, 25);
    v = tc_textn(val, sizeof(val));
    for (i = 0; i < ks->n; i++) {
        tc_data k = tc_textn(ks->k[R_BASE][i], ks->len[R_BASE][i]);
        bench_expect(tc_set(c, &k, &v, TC_NO_EXPIRE, NULL, 0), TC_OK,
                     "preload tc_set");
        k = tc_textn(ks->k[R_CTR][i], ks->len[R_CTR][i]);
        bench_expect(tc_incr(c, &k, &d1, &d0, NULL, 0), TC_OK,
                     "preload tc_incr");
    }
}

static void layout_init(struct layout *L, const char *name, int shards,
                        const struct keys *ks, const struct bench_opts *o)
{
    tc_cache *c;
    int r, i;

    L->name = name;
    L->shards = shards;
    bench_pathf(L->libdir, sizeof(L->libdir), "%s/%s-lib", o->work, name);
    bench_pathf(L->floordir, sizeof(L->floordir), "%s/%s-floor", o->work, name);
    L->c = lib_open(L->libdir, shards);
    preload(L->c, ks);
    c = lib_open(L->floordir, shards);
    preload(c, ks);
    tc_close(c);
    L->f = floor_open(L->floordir, shards, shards ? 0.010 : 60.0);
    for (r = 0; r < R_COUNT; r++) {
        L->shard[r] = xcalloc((size_t)ks->n, sizeof(int));
        for (i = 0; i < ks->n; i++)
            L->shard[r][i] = floor_shard_of(L->f, ks->hash[r][i]);
    }
    L->manyshard = xcalloc((size_t)ks->n, sizeof(int));
    L->manykeys = xcalloc((size_t)ks->n, sizeof(char *));
    L->manylens = xcalloc((size_t)ks->n, sizeof(size_t));
    for (i = 0; i < ks->n; i++) {
        int k = ks->perm[i];
        L->manyshard[i] = L->shard[R_MANY][k];
        L->manykeys[i] = ks->k[R_MANY][k];
        L->manylens[i] = ks->len[R_MANY][k];
    }
    L->ctr_expect = 1;
}

static void layout_free(struct layout *L)
{
    int r;
    tc_close(L->c);
    floor_close(L->f);
    for (r = 0; r < R_COUNT; r++)
        free(L->shard[r]);
    free(L->manyshard);
    free(L->manykeys);
    free(L->manylens);
}

/* Which range an operation walks. */
static int op_range(int op)
{
    switch (op) {
    case M_GET_MISS:
        return R_MISS;
    case M_SET_NEW:
    case M_DELETE:
        return R_NEW;
    case M_INCR:
        return R_CTR;
    case M_SET_MANY:
        return R_MANY;
    default:
        return R_BASE;
    }
}

/* Wall and CPU time of a timed part. */
struct span {
    uint64_t wall0, cpu0, wall, cpu;
};

static void span_start(struct span *t)
{
    t->cpu0 = bench_cpu_ns();
    t->wall0 = bench_ns();
}

static void span_stop(struct span *t)
{
    t->wall = bench_ns() - t->wall0;
    t->cpu = bench_cpu_ns() - t->cpu0;
}

/* One library phase: @n operations; @t receives the timed part. */
__attribute__((noinline)) static void lib_phase(struct layout *L,
                                                const struct keys *ks, int op,
                                                const char *val, struct span *t)
{
    int r = op_range(op), n = ks->n, i;
    tc_data v = tc_textn(val, BENCH_VALUE_SIZE);
    int64_t one = 1, zero = 0;
    tc_data d1 = tc_int(&one), d0 = tc_int(&zero);
    char buf[256];

    if (op == M_SET_MANY) {
        int b = ks->batch;
        uint64_t deleted;
        for (i = 0; i < n; i++)
            ks->manyval[i] = v;
        span_start(t);
        for (i = 0; i + b <= n; i += b)
            bench_expect(tc_set_many(L->c, ks->many + i, ks->manyval + i,
                                     (size_t)b, TC_NO_EXPIRE, NULL, 0),
                         TC_OK, "tc_set_many");
        span_stop(t);
        for (i = 0; i + b <= n; i += b) {
            bench_expect(
                tc_delete_many(L->c, ks->many + i, (size_t)b, &deleted, 0),
                TC_OK, "tc_delete_many");
            if (deleted != (uint64_t)b)
                bench_die("tc_delete_many removed %llu of %d",
                          (unsigned long long)deleted, b);
        }
        return;
    }

    span_start(t);
    for (i = 0; i < n; i++) {
        int k = ks->perm[i];
        tc_data key = tc_textn(ks->k[r][k], ks->len[r][k]);
        tc_item it = TC_ITEM_INIT;
        tc_value out = TC_VALUE_INIT;
        size_t len;
        int type;

        switch (op) {
        case M_GET_HIT:
            bench_expect(tc_get(L->c, &key, &it, 0), TC_OK, "tc_get hit");
            if (it.value.len != BENCH_VALUE_SIZE)
                bench_die("tc_get: value of %zu bytes", it.value.len);
            tc_item_clear(&it);
            break;
        case M_GET_BUF:
            bench_expect(
                tc_get_buf(L->c, &key, buf, sizeof(buf), &len, &type, NULL, 0),
                TC_OK, "tc_get_buf hit");
            if (len != BENCH_VALUE_SIZE || type != TC_TEXT)
                bench_die("tc_get_buf: %zu bytes of type %d", len, type);
            break;
        case M_GET_MISS:
            bench_expect(tc_get(L->c, &key, &it, 0), TC_NOTFOUND,
                         "tc_get miss");
            break;
        case M_SET_NEW:
        case M_SET_OVER:
            bench_expect(tc_set(L->c, &key, &v, TC_NO_EXPIRE, NULL, 0), TC_OK,
                         "tc_set");
            break;
        case M_DELETE:
            bench_expect(tc_delete(L->c, &key, 0), TC_OK, "tc_delete");
            break;
        case M_INCR:
            bench_expect(tc_incr(L->c, &key, &d1, &d0, &out, 0), TC_OK,
                         "tc_incr");
            if (out.type != TC_INT || out.i != L->ctr_expect + 1)
                bench_die("tc_incr: got %lld, want %lld", (long long)out.i,
                          (long long)L->ctr_expect + 1);
            break;
        }
    }
    span_stop(t);
}

/* The same phase on the floor. */
__attribute__((noinline)) static void floor_phase(struct layout *L,
                                                  const struct keys *ks, int op,
                                                  const char *val,
                                                  struct span *t)
{
    int r = op_range(op), n = ks->n, i;
    const int *sh = L->shard[r];
    char buf[256];
    size_t len;

    if (op == M_SET_MANY) {
        int b = ks->batch;
        span_start(t);
        for (i = 0; i + b <= n; i += b)
            floor_set_many(L->f, L->manyshard + i, L->manykeys + i,
                           L->manylens + i, val, BENCH_VALUE_SIZE, (size_t)b);
        span_stop(t);
        return;
    }

    span_start(t);
    for (i = 0; i < n; i++) {
        int k = ks->perm[i];
        const char *key = ks->k[r][k];
        size_t klen = ks->len[r][k];

        switch (op) {
        case M_GET_HIT:
        case M_GET_BUF:
            if (!floor_get(L->f, sh[k], key, klen, buf, sizeof(buf), &len) ||
                len != BENCH_VALUE_SIZE)
                bench_die("floor get: miss on %s", key);
            break;
        case M_GET_MISS:
            if (floor_get(L->f, sh[k], key, klen, buf, sizeof(buf), &len))
                bench_die("floor get: hit on %s", key);
            break;
        case M_SET_NEW:
        case M_SET_OVER:
            floor_set(L->f, sh[k], key, klen, val, BENCH_VALUE_SIZE);
            break;
        case M_DELETE:
            if (!floor_delete(L->f, sh[k], key, klen))
                bench_die("floor delete: %s missing", key);
            break;
        case M_INCR:
            if (floor_incr(L->f, sh[k], key, klen, 1) != L->ctr_expect + 1)
                bench_die("floor incr: wrong value for %s", key);
            break;
        }
    }
    span_stop(t);
}

/* Untimed: remove what set_many wrote on the floor. */
static void floor_cleanup_many(struct layout *L, const struct keys *ks)
{
    int b = ks->batch, i;
    for (i = 0; i + b <= ks->n; i += b)
        floor_delete_many(L->f, L->manyshard + i, L->manykeys + i,
                          L->manylens + i, (size_t)b);
}

static const int phase_order[M_OP_COUNT] = {
    M_GET_HIT, M_GET_BUF, M_GET_MISS, M_SET_OVER,
    M_SET_NEW, M_DELETE,  M_INCR,     M_SET_MANY,
};

void micro_run(const struct bench_opts *o, struct micro_result *res)
{
    struct keys ks;
    struct layout lay[L_COUNT];
    char val[BENCH_VALUE_SIZE];
    int batch = o->batch < o->keys ? o->batch : o->keys;
    int run, p, l, side;

    memset(lay, 0, sizeof(lay));
    memset(res, 0, sizeof(*res));
    res->runs = o->runs;
    keys_init(&ks, o->keys, batch);
    if (!o->json)
        fprintf(stderr, "micro: preloading %d keys x 4 directories...\n",
                o->keys);
    layout_init(&lay[L_PLAIN], "plain", 0, &ks, o);
    layout_init(&lay[L_FANOUT], "fanout", BENCH_FAN_SHARDS, &ks, o);

    /* Run 0 is the warm-up; runs 1..o->runs are kept. */
    for (run = 0; run <= o->runs; run++) {
        if (!o->json)
            fprintf(stderr, "micro: %s %d/%d\n", run ? "run" : "warm-up", run,
                    o->runs);
        fill_value(val, run);
        for (p = 0; p < M_OP_COUNT; p++) {
            int op = phase_order[p];
            for (l = 0; l < L_COUNT; l++) {
                struct layout *L = &lay[l];
                for (side = 0; side < 2; side++) {
                    /* Alternate who goes first, run by run. */
                    int is_floor = (side + run) % 2;
                    struct span t = {0, 0, 0, 0};
                    uint64_t cns = 0;
                    double nops =
                        op == M_SET_MANY ? (ks.n / batch) * batch : ks.n;
                    if (is_floor) {
                        floor_take_commit_ns(L->f);
                        floor_phase(L, &ks, op, val, &t);
                        cns = floor_take_commit_ns(L->f);
                        if (op == M_SET_MANY)
                            floor_cleanup_many(L, &ks);
                    } else {
                        lib_phase(L, &ks, op, val, &t);
                    }
                    if (run == 0)
                        continue;
                    res->ns[op][l][is_floor][run - 1] = (double)t.wall / nops;
                    res->cpu_ns[op][l][is_floor][run - 1] =
                        (double)t.cpu / nops;
                    if (is_floor)
                        res->commit_ns[op][l][run - 1] = (double)cns / nops;
                }
                if (op == M_INCR)
                    L->ctr_expect++;
            }
        }
    }
    for (l = 0; l < L_COUNT; l++)
        layout_free(&lay[l]);
    keys_free(&ks);
}
