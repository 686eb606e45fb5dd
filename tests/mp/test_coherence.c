/*
 * test_coherence.c - the hot tier never shows a process a value older than
 * a write that finished before its read began (docs/ARCHITECTURE.md, "Hot
 * tier", "Why it is coherent").
 *
 * Two kinds of test:
 *  - stress: writer and reader processes (each with its own handle, opened
 *    after the fork) hammer a small set of overlapping keys; every call is
 *    logged with CLOCK_MONOTONIC stamps taken just before and just after
 *    it, to a binary file per process in the fixture dir. The parent then
 *    checks every read against every write of its key (a linearizability
 *    check that only fails on a definite violation, never on timing).
 *    Writers also pause every few ms while the parent compares every key
 *    through the hot tier with SQLite, which catches a stale item that no
 *    read timing could prove stale (a publish overtaken by an overlapping
 *    write);
 *  - ping-pong: two processes take turns, one writes and tells the other
 *    through a pipe, which must then read exactly that state at once.
 *
 * One cold-tier rule shapes the check: a get that finds a row whose value
 * file an overwrite has just unlinked reports a miss, as python-diskcache
 * does, so a set that may replace a file-backed value counts as a possible
 * removal for misses (may_drop_file).
 *
 * Speed never decides pass/fail. TC_STRESS_SECONDS (default 2) sets the
 * length of each stress run; for long runs start the executable directly
 * (meson's 600 s limit covers the whole file, Criterion's each test).
 */
#include <poll.h>
#include <signal.h>
#include <time.h>

#include "keyed_value.h"
#include "testutil.h"

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* a dead peer must be an error, not a kill */
    tu_fx_init("mpcoh");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(mp_coherence, .init = setup, .fini = teardown, .timeout = 600);

/* ===================================================================== */
/* Clock, PRNG, run length                                               */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rnd_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}


static double stress_seconds(void)
{
    const char *s = getenv("TC_STRESS_SECONDS");
    double d = s ? atof(s) : 2.0;
    return d > 0 ? d : 2.0;
}

/* ===================================================================== */
/* Self-describing values: (writer, sequence) -> bytes whose length and
 * body follow from the identity, so a torn or misplaced copy is caught.  */

#define SVAL_HDR        16
#define SVAL_BIG        40000 /* above disk_min_file_size: a file-backed value */
#define SVAL_MAX        (SVAL_BIG + 64)
#define SVAL_ID(w, seq) (((uint64_t)(w) + 1) << 40 | (uint64_t)(seq))

static size_t sval_len(uint64_t id)
{
    uint64_t h = kv_mix64(id);
    if (h % 97 == 0)
        return SVAL_BIG; /* rare: also exercises values the tier skips */
    return SVAL_HDR + (size_t)(h >> 8) % 700;
}

static uint8_t sval_byte(uint64_t id, size_t i)
{
    return (uint8_t)(kv_mix64(id ^ ((uint64_t)i << 20)) >> 11);
}

static size_t sval_make(uint64_t id, uint8_t *buf)
{
    size_t n = sval_len(id);
    uint32_t n32 = (uint32_t)n, chk = (uint32_t)kv_mix64(~id);
    memcpy(buf, &id, 8);
    memcpy(buf + 8, &n32, 4);
    memcpy(buf + 12, &chk, 4);
    for (size_t i = SVAL_HDR; i < n; i++)
        buf[i] = sval_byte(id, i);
    return n;
}

/* sval_decode - 0 and the identity if @p holds a value sval_make made. */
static int sval_decode(const void *p, size_t n, uint64_t *id)
{
    const uint8_t *b = p;
    uint64_t v;
    uint32_t n32, chk;
    if (n < SVAL_HDR)
        return -1;
    memcpy(&v, b, 8);
    memcpy(&n32, b + 8, 4);
    memcpy(&chk, b + 12, 4);
    if (chk != (uint32_t)kv_mix64(~v) || n32 != n || sval_len(v) != n)
        return -1;
    for (size_t i = SVAL_HDR; i < n; i++)
        if (b[i] != sval_byte(v, i))
            return -1;
    *id = v;
    return 0;
}

/* ===================================================================== */
/* Keys: S keys hold sval bytes (set/add/delete/pop/touch), I keys hold
 * counters (incr/delete/pop). Few keys, so every key is contended.       */

#define NS    24
#define NI    8
#define NKEYS (NS + NI)

static void key_name(int k, char *out, size_t cap)
{
    if (k < NS)
        snprintf(out, cap, "s%02d", k);
    else
        snprintf(out, cap, "i%02d", k - NS);
}

/* ===================================================================== */
/* The log                                                               */

enum { OP_SET, OP_ADD, OP_DEL, OP_INCR, OP_TOUCH, OP_POP, OP_GET, OP_GETBUF };
static const char *const op_names[] = {"set",   "add", "delete", "incr",
                                       "touch", "pop", "get",    "get_buf"};

enum {
    RES_OK,     /* the call succeeded; id is the value written/read */
    RES_MISS,   /* TC_NOTFOUND: the key was absent */
    RES_EXISTS, /* add found the key present */
    RES_BAD,    /* an error, or a value that decodes to nothing */
};

struct rec {
    int64_t t0, t1; /* CLOCK_MONOTONIC ns just before / after the call */
    uint64_t id;    /* value identity (sval id or counter value) */
    uint8_t op, res, key, proc;
    int32_t rc; /* the call's return code (RES_BAD details) */
};

struct logw {
    FILE *f;
    size_t n;
};

static int log_open(struct logw *l, int proc, int msgfd)
{
    char path[TU_PATH_MAX];
    snprintf(path, sizeof path, "%s/log-%02d.bin", fx.base, proc);
    l->f = fopen(path, "wb");
    l->n = 0;
    if (!l->f)
        return tu_child_msg(msgfd, "proc %d: fopen %s: %s\n", proc, path,
                            strerror(errno));
    setvbuf(l->f, NULL, _IOFBF, 1 << 20);
    return 0;
}

static void log_put(struct logw *l, const struct rec *r)
{
    fwrite(r, sizeof *r, 1, l->f);
    l->n++;
}

static int log_close(struct logw *l, int proc, int msgfd)
{
    if (fclose(l->f) != 0)
        return tu_child_msg(msgfd, "proc %d: writing the log: %s\n", proc,
                            strerror(errno));
    return 0;
}

/* ===================================================================== */
/* Children                                                              */

/* Writers run in epochs: epoch_ms of writes, then all of them pause
 * while the parent compares the hot tier with SQLite (a stale item that
 * no later write replaced shows up there even when no read timing can
 * prove it stale, e.g. a late publish overtaken by a write that
 * overlapped it), then they go on. Readers never pause. */
#define MAXP 16

struct stress {
    int nwriters, nreaders, nepochs;
    int ns, ni; /* keys in use: s00.. s<ns-1>, i00.. i<ni-1> */
    int epoch_ms;
    double seconds;
    struct tu_barrier b;
    int paused[2];       /* writers -> parent: one byte per pause */
    int resume[MAXP][2]; /* parent -> writer w: one byte per epoch */
    int stop[2];         /* parent closes: readers finish */
};

/* pick_key - a random key among the ones in use. */
static int pick_key(const struct stress *s, uint64_t *rnd)
{
    int k = (int)(rnd_next(rnd) % (uint64_t)(s->ns + s->ni));
    return k < s->ns ? k : NS + (k - s->ns);
}

/* child_fds - keep only the pipe ends child @p uses, so each end sees EOF
 * as soon as its other side (the parent) is gone. */
static void child_fds(struct stress *s, int p)
{
    close(s->paused[0]);
    close(s->stop[1]);
    for (int w = 0; w < s->nwriters; w++) {
        close(s->resume[w][1]);
        if (w != p)
            close(s->resume[w][0]);
    }
    if (p >= s->nwriters)
        close(s->paused[1]);
    else
        close(s->stop[0]);
}

/* child_open - a hot handle on fx.dir for a child (no cr_assert there),
 * on the fake clock @clk or the system clock (NULL). */
static tc_cache *child_open(int msgfd, int proc, struct tu_clock *clk)
{
    tc_cache *c = NULL;
    int rc = tc_create(&c);
    if (rc == TC_OK)
        rc = tc_set_hot_size(c, TU_HOT_SIZE);
    if (rc == TC_OK && clk)
        rc = tc_set_clock(c, tu_clock_fn, clk);
    if (rc == TC_OK)
        rc = tc_open(c, fx.dir, 0);
    if (rc != TC_OK) {
        tu_child_msg(msgfd, "proc %d: open: %s: %s\n", proc, tc_errname(rc),
                     tc_errmsg());
        tc_close(c);
        return NULL;
    }
    tc_hot_stats hs = {0};
    rc = tc_hot_stats_get(c, &hs);
    if (rc != TC_OK || !hs.attached || !hs.reading) {
        tu_child_msg(msgfd,
                     "proc %d: hot tier not in use (rc %s, attached %d)\n",
                     proc, tc_errname(rc), hs.attached);
        tc_close(c);
        return NULL;
    }
    return c;
}

/* item_id - the identity of a value read from key @k, or -1. */
static int item_id(int k, int type, const void *p, size_t n, int64_t i,
                   uint64_t *id)
{
    if (k < NS)
        return type == TC_BYTES ? sval_decode(p, n, id) : -1;
    if (type != TC_INT)
        return -1;
    *id = (uint64_t)i;
    return 0;
}

/* res_of - RES_* for a call that may return OK, NOTFOUND or EXISTS. */
static uint8_t res_of(int rc)
{
    return rc == TC_OK         ? RES_OK
           : rc == TC_NOTFOUND ? RES_MISS
           : rc == TC_EXISTS   ? RES_EXISTS
                               : RES_BAD;
}

static int writer_main(struct stress *s, int w, int msgfd)
{
    static uint8_t buf[SVAL_MAX];
    struct logw lg;
    tu_barrier_wait(&s->b);
    tc_cache *c = child_open(msgfd, w, NULL);
    if (!c || log_open(&lg, w, msgfd))
        return 1;
    uint64_t rnd =
        0x9e3779b97f4a7c15ull * (uint64_t)(w + 1) ^ (uint64_t)getpid();
    int64_t epoch_ns = (int64_t)s->epoch_ms * 1000000;
    int64_t end = now_ns() + epoch_ns;
    int bad = 0, epoch = 0;
    for (uint64_t seq = 1;; seq++) {
        if (now_ns() >= end) {
            char ch;
            if (write(s->paused[1], "p", 1) != 1 ||
                read(s->resume[w][0], &ch, 1) != 1)
                return tu_child_msg(msgfd,
                                    "writer %d: stopped early (another "
                                    "writer failed?)\n",
                                    w);
            if (++epoch == s->nepochs)
                break;
            end = now_ns() + epoch_ns;
        }
        struct rec r = {0};
        char kn[16];
        int k = pick_key(s, &rnd), rc;
        unsigned o = (unsigned)(rnd_next(&rnd) % 100);
        uint64_t vid = SVAL_ID(w, seq);
        tc_item it = TC_ITEM_INIT;
        key_name(k, kn, sizeof kn);
        const tc_data *key = TU_TEXT(kn);
        r.key = (uint8_t)k;
        r.proc = (uint8_t)w;
        if (k < NS) {
            if (o < 55) {
                size_t n = sval_make(vid, buf);
                r.op = o < 40 ? OP_SET : OP_ADD;
                r.id = vid;
                r.t0 = now_ns();
                rc = r.op == OP_SET ? tc_set(c, key, TU_BYTES(buf, n),
                                             TC_NO_EXPIRE, NULL, TC_RETRY)
                                    : tc_add(c, key, TU_BYTES(buf, n),
                                             TC_NO_EXPIRE, NULL, TC_RETRY);
                r.t1 = now_ns();
            } else if (o < 70) {
                r.op = OP_DEL;
                r.t0 = now_ns();
                rc = tc_delete(c, key, TC_RETRY);
                r.t1 = now_ns();
            } else if (o < 85) {
                r.op = OP_POP;
                r.t0 = now_ns();
                rc = tc_pop(c, key, &it, TC_RETRY);
                r.t1 = now_ns();
            } else {
                /* Far in the future: nothing may expire during the run. */
                r.op = OP_TOUCH;
                r.t0 = now_ns();
                rc = tc_touch(c, key, 1e6, TC_RETRY);
                r.t1 = now_ns();
            }
        } else if (o < 80) {
            /* A fresh counter starts at a base that names (writer, seq);
             * increments by 1 keep values distinct for the checker. */
            tc_value out = TC_VALUE_INIT;
            r.op = OP_INCR;
            r.t0 = now_ns();
            rc = tc_incr(c, key, TU_INT(1), TU_INT((int64_t)(vid << 16)), &out,
                         TC_RETRY);
            r.t1 = now_ns();
            if (rc == TC_OK && out.type == TC_INT)
                r.id = (uint64_t)out.i;
            else if (rc == TC_OK)
                rc = TC_ETYPE;
            tc_value_clear(&out);
        } else {
            r.op = o < 90 ? OP_DEL : OP_POP;
            r.t0 = now_ns();
            rc = r.op == OP_DEL ? tc_delete(c, key, TC_RETRY)
                                : tc_pop(c, key, &it, TC_RETRY);
            r.t1 = now_ns();
        }
        r.rc = rc;
        r.res = res_of(rc);
        if (r.op == OP_POP && rc == TC_OK &&
            item_id(k, it.value.type, it.value.ptr, it.value.len, it.value.i,
                    &r.id) != 0)
            r.res = RES_BAD;
        tc_item_clear(&it);
        if (r.res == RES_BAD && bad++ == 0)
            tu_child_msg(msgfd, "writer %d: %s %s: %s: %s\n", w, op_names[r.op],
                         kn, tc_errname(rc), tc_errmsg());
        log_put(&lg, &r);
    }
    tc_close(c);
    return log_close(&lg, w, msgfd);
}

/* At most this many reads per second per reader: keeps the logs (and the
 * check) bounded when hot hits run at millions per second. */
#define READ_RATE 150000

static int reader_main(struct stress *s, int proc, int msgfd)
{
    static uint8_t buf[SVAL_MAX];
    struct logw lg;
    tu_barrier_wait(&s->b);
    tc_cache *c = child_open(msgfd, proc, NULL);
    if (!c || log_open(&lg, proc, msgfd))
        return 1;
    uint64_t rnd =
        0xd1b54a32d192ed03ull * (uint64_t)(proc + 1) ^ (uint64_t)getpid();
    int64_t start = now_ns();
    int bad = 0;
    for (uint64_t i = 0;; i++) {
        int64_t t = now_ns();
        struct pollfd pf = {s->stop[0], POLLIN, 0};
        if (i % 64 == 0 && poll(&pf, 1, 0) > 0)
            break; /* EOF: the writers are done */
        while ((double)i > (double)(t - start) * (READ_RATE / 1e9)) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
            t = now_ns();
        }
        struct rec r = {0};
        char kn[16];
        int k = pick_key(s, &rnd), rc, type = TC_NONE;
        key_name(k, kn, sizeof kn);
        r.key = (uint8_t)k;
        r.proc = (uint8_t)proc;
        if (i % 2) {
            tc_item it = TC_ITEM_INIT;
            r.op = OP_GET;
            r.t0 = now_ns();
            rc = tc_get(c, TU_TEXT(kn), &it, TC_RETRY);
            r.t1 = now_ns();
            r.res = res_of(rc);
            if (rc == TC_OK && item_id(k, it.value.type, it.value.ptr,
                                       it.value.len, it.value.i, &r.id) != 0)
                r.res = RES_BAD;
            tc_item_clear(&it);
        } else {
            size_t n = 0;
            int64_t iv = 0;
            r.op = OP_GETBUF;
            r.t0 = now_ns();
            rc = tc_get_buf(c, TU_TEXT(kn), buf, sizeof buf, &n, &type, NULL,
                            TC_RETRY);
            r.t1 = now_ns();
            r.res = res_of(rc);
            if (rc == TC_OK && type == TC_INT && n == 8)
                memcpy(&iv, buf, 8);
            if (rc == TC_OK && item_id(k, type, buf, n, iv, &r.id) != 0)
                r.res = RES_BAD;
        }
        r.rc = rc;
        if (r.res == RES_BAD && bad++ == 0)
            tu_child_msg(msgfd, "reader %d: %s %s: %s: %s\n", proc,
                         op_names[r.op], kn, tc_errname(rc),
                         rc == TC_OK ? "undecodable value" : tc_errmsg());
        log_put(&lg, &r);
    }
    tc_close(c);
    return log_close(&lg, proc, msgfd);
}

/* ===================================================================== */
/* The checker                                                           */

struct span {
    int64_t t0, t1;
};

struct prod {
    uint64_t id;
    int64_t t0, t1;
};

/* Per key, the writes that matter, each sorted for binary search. */
struct hist {
    struct span *chg; /* value-changing writes, by t0 */
    int64_t *chg_sufmin_t1;
    size_t nchg;
    struct span *pend; /* value-producing writes, by t1 */
    int64_t *pend_premax_t0;
    size_t npend;
    struct span *rem; /* removals (and may_drop_file sets), by t0 */
    int64_t *rem_premax_t1;
    size_t nrem;
    struct prod *ids; /* value-producing writes, by id */
    size_t nids;
};

static int cmp_t0(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

static int cmp_t1(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->t1 < y->t1 ? -1 : x->t1 > y->t1;
}

static int cmp_id(const void *a, const void *b)
{
    const struct prod *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int is_producer(const struct rec *r)
{
    return r->res == RES_OK &&
           (r->op == OP_SET || r->op == OP_ADD || r->op == OP_INCR);
}

static int is_removal(const struct rec *r)
{
    return r->res == RES_OK && (r->op == OP_DEL || r->op == OP_POP);
}

static int is_value_read(const struct rec *r)
{
    return r->res == RES_OK &&
           (r->op == OP_GET || r->op == OP_GETBUF || r->op == OP_POP);
}

/* A NOTFOUND of any of these says the key was absent at some instant. */
static int is_miss_read(const struct rec *r)
{
    return r->res == RES_MISS &&
           (r->op == OP_GET || r->op == OP_GETBUF || r->op == OP_POP ||
            r->op == OP_DEL || r->op == OP_TOUCH);
}

/* Index of the first element of the sorted spans with key > @t. */
static size_t upper_t0(const struct span *a, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid].t0 <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Number of elements with t0 < @t (sorted by t0). */
static size_t count_t0_below(const struct span *a, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid].t0 < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Number of elements with t1 < @t (sorted by t1). */
static size_t count_t1_below(const struct span *a, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid].t1 < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int definitely_stale(const struct hist *h, const struct prod *w,
                            int64_t rs, struct span *by);

static int is_big(const struct rec *r)
{
    return r->key < NS && sval_len(r->id) == SVAL_BIG;
}

/* may_drop_file - could the set @r have replaced one of the file-backed
 * values @big (one not definitely overwritten before @r began)? A get
 * that read the old row then finds its file unlinked and reports a miss,
 * as python-diskcache does (docs/ARCHITECTURE.md, "Data path of a get",
 * step 3), so such a set counts as a removal for the miss check. */
static int may_drop_file(const struct hist *h, const struct prod *big,
                         size_t nbig, const struct rec *r)
{
    struct span by;
    if (r->op != OP_SET || r->res != RES_OK)
        return 0;
    for (size_t i = 0; i < nbig; i++)
        if (big[i].t0 < r->t1 && big[i].t0 != r->t0 &&
            !definitely_stale(h, &big[i], r->t0, &by))
            return 1;
    return 0;
}

static void hist_build(struct hist *h, const struct rec *const *logs,
                       const size_t *nlog, int nproc, int key)
{
    size_t nbig = 0;
    memset(h, 0, sizeof *h);
    for (int p = 0; p < nproc; p++)
        for (size_t i = 0; i < nlog[p]; i++) {
            const struct rec *r = &logs[p][i];
            if (r->key != key)
                continue;
            h->nchg += is_producer(r) || is_removal(r);
            h->npend += is_producer(r);
            h->nrem += is_removal(r);
            nbig += is_producer(r) && is_big(r);
        }
    h->chg = calloc(h->nchg + 1, sizeof *h->chg);
    h->chg_sufmin_t1 = calloc(h->nchg + 1, sizeof(int64_t));
    h->pend = calloc(h->npend + 1, sizeof *h->pend);
    h->pend_premax_t0 = calloc(h->npend + 1, sizeof(int64_t));
    h->rem = calloc(h->nchg + 1, sizeof *h->rem); /* removals + sets */
    h->rem_premax_t1 = calloc(h->nchg + 1, sizeof(int64_t));
    h->ids = calloc(h->npend + 1, sizeof *h->ids);
    struct prod *big = calloc(nbig + 1, sizeof *big);
    cr_assert(h->chg && h->chg_sufmin_t1 && h->pend && h->pend_premax_t0 &&
              h->rem && h->rem_premax_t1 && h->ids && big);
    size_t a = 0, b = 0, nb = 0;
    for (int p = 0; p < nproc; p++)
        for (size_t i = 0; i < nlog[p]; i++) {
            const struct rec *r = &logs[p][i];
            if (r->key != key)
                continue;
            struct span sp = {r->t0, r->t1};
            if (is_producer(r) || is_removal(r))
                h->chg[a++] = sp;
            if (is_producer(r)) {
                h->pend[b] = sp;
                h->ids[b++] = (struct prod){r->id, r->t0, r->t1};
                if (is_big(r))
                    big[nb++] = (struct prod){r->id, r->t0, r->t1};
            }
        }
    h->nids = b;
    qsort(h->chg, h->nchg, sizeof *h->chg, cmp_t0);
    qsort(h->pend, h->npend, sizeof *h->pend, cmp_t1);
    qsort(h->ids, h->nids, sizeof *h->ids, cmp_id);
    int64_t m = INT64_MAX;
    for (size_t i = h->nchg; i-- > 0;)
        h->chg_sufmin_t1[i] = m = h->chg[i].t1 < m ? h->chg[i].t1 : m;
    m = INT64_MIN;
    for (size_t i = 0; i < h->npend; i++)
        h->pend_premax_t0[i] = m = h->pend[i].t0 > m ? h->pend[i].t0 : m;
    /* Removals need the stale check above, so they come last. */
    h->nrem = 0;
    for (int p = 0; p < nproc; p++)
        for (size_t i = 0; i < nlog[p]; i++) {
            const struct rec *r = &logs[p][i];
            if (r->key == key &&
                (is_removal(r) || may_drop_file(h, big, nbig, r)))
                h->rem[h->nrem++] = (struct span){r->t0, r->t1};
        }
    free(big);
    qsort(h->rem, h->nrem, sizeof *h->rem, cmp_t0);
    m = INT64_MIN;
    for (size_t i = 0; i < h->nrem; i++)
        h->rem_premax_t1[i] = m = h->rem[i].t1 > m ? h->rem[i].t1 : m;
}

static void hist_free(struct hist *h)
{
    free(h->chg);
    free(h->chg_sufmin_t1);
    free(h->pend);
    free(h->pend_premax_t0);
    free(h->rem);
    free(h->rem_premax_t1);
    free(h->ids);
}

/* Was the write @w overwritten or removed by a write that began after it
 * ended and ended before @rs? Then its value is definitely stale at @rs. */
static int definitely_stale(const struct hist *h, const struct prod *w,
                            int64_t rs, struct span *by)
{
    size_t i = upper_t0(h->chg, h->nchg, w->t1);
    if (i >= h->nchg || h->chg_sufmin_t1[i] >= rs)
        return 0;
    for (; i < h->nchg; i++) /* find one for the message */
        if (h->chg[i].t1 < rs) {
            *by = h->chg[i];
            break;
        }
    return 1;
}

static void describe_id(int key, uint64_t id, char *out, size_t cap)
{
    if (key < NS)
        snprintf(out, cap, "writer %llu seq %llu",
                 (unsigned long long)(id >> 40) - 1,
                 (unsigned long long)(id & ((1ull << 40) - 1)));
    else
        snprintf(out, cap, "counter %lld", (long long)id);
}

/* check_read - NULL if @r is consistent with the writes of its key, else
 * a reason written into @why. */
static const char *check_read(const struct hist *h, const struct rec *r,
                              int64_t base, char *why, size_t cap)
{
    char kn[16], vd[64];
    key_name(r->key, kn, sizeof kn);
    if (is_value_read(r)) {
        describe_id(r->key, r->id, vd, sizeof vd);
        struct prod probe = {r->id, 0, 0};
        struct prod *p =
            bsearch(&probe, h->ids, h->nids, sizeof *h->ids, cmp_id);
        if (!p) {
            snprintf(why, cap,
                     "proc %d %s %s [%.6f, %.6f] returned %s, which was "
                     "never written to this key",
                     r->proc, op_names[r->op], kn, (r->t0 - base) / 1e9,
                     (r->t1 - base) / 1e9, vd);
            return why;
        }
        while (p > h->ids && p[-1].id == r->id)
            p--;
        const char *reason = NULL;
        struct span by = {0, 0};
        const struct prod *w0 = p;
        for (; p < h->ids + h->nids && p->id == r->id; p++) {
            if (p->t0 > r->t1) {
                reason = "from a write that began after the read ended";
                continue;
            }
            if (definitely_stale(h, p, r->t0, &by)) {
                reason = "stale: a later write of the key ended before the "
                         "read began";
                w0 = p;
                continue;
            }
            return NULL;
        }
        snprintf(why, cap,
                 "proc %d %s %s [%.6f, %.6f] returned %s (written [%.6f, "
                 "%.6f]), %s [%.6f, %.6f]",
                 r->proc, op_names[r->op], kn, (r->t0 - base) / 1e9,
                 (r->t1 - base) / 1e9, vd, (w0->t0 - base) / 1e9,
                 (w0->t1 - base) / 1e9, reason, (by.t0 - base) / 1e9,
                 (by.t1 - base) / 1e9);
        return why;
    }
    if (is_miss_read(r)) {
        /* The latest-starting value write that ended before the read: if
         * no removal can fit between it and the read, the miss is wrong. */
        size_t n = count_t1_below(h->pend, h->npend, r->t0);
        if (n == 0)
            return NULL;
        int64_t x = h->pend_premax_t0[n - 1];
        size_t m = count_t0_below(h->rem, h->nrem, r->t1);
        if (m > 0 && h->rem_premax_t1[m - 1] > x)
            return NULL;
        snprintf(why, cap,
                 "proc %d %s %s [%.6f, %.6f] found no item, but a write that "
                 "began at %.6f ended before the read and no delete, pop or "
                 "overwrite of a file-backed value could come between",
                 r->proc, op_names[r->op], kn, (r->t0 - base) / 1e9,
                 (r->t1 - base) / 1e9, (x - base) / 1e9);
        return why;
    }
    return NULL;
}

/* hot_warning - log what tc_hot_check found. */
static void hot_warning(void *arg, const char *kind, const char *msg)
{
    (void)arg;
    cr_log_error("tc_hot_check: %s: %s", kind, msg);
}

/* hot_cold_diff - with no write running, every key must read the same
 * through the hot tier (@hot) and through a cold-only handle; returns the
 * number of keys that differ and describes the first in @why. */
static int hot_cold_diff(tc_cache *hot, tc_cache *cold, char *why, size_t cap)
{
    int ndiff = 0;
    for (int k = 0; k < NKEYS; k++) {
        char kn[16];
        key_name(k, kn, sizeof kn);
        for (int pass = 0; pass < 2; pass++) { /* fill (or hit), then hit */
            tc_item a = TC_ITEM_INIT, b = TC_ITEM_INIT;
            uint64_t ia = 0, ib = 0;
            int ra = tc_get(hot, TU_TEXT(kn), &a, 0);
            int rb = tc_get(cold, TU_TEXT(kn), &b, 0);
            int same = ra == rb;
            if (same && ra == TC_OK)
                same = a.value.type == b.value.type &&
                       a.value.len == b.value.len &&
                       memcmp(a.value.ptr, b.value.ptr, a.value.len) == 0;
            if (!same && ndiff++ == 0) {
                char da[64] = "-", db[64] = "-";
                if (ra == TC_OK && item_id(k, a.value.type, a.value.ptr,
                                           a.value.len, a.value.i, &ia) == 0)
                    describe_id(k, ia, da, sizeof da);
                if (rb == TC_OK && item_id(k, b.value.type, b.value.ptr,
                                           b.value.len, b.value.i, &ib) == 0)
                    describe_id(k, ib, db, sizeof db);
                snprintf(why, cap, "%s (pass %d): hot %s (%s), SQLite %s (%s)",
                         kn, pass, tc_errname(ra), da, tc_errname(rb), db);
            }
            tc_item_clear(&a);
            tc_item_clear(&b);
            if (!same)
                break;
        }
    }
    return ndiff;
}

/* expect_hot_equals_cold - hot_cold_diff finds nothing. */
static void expect_hot_equals_cold(tc_cache *hot)
{
    char why[256] = "";
    tc_cache *cold = tu_open_cold(fx.dir, NULL);
    int ndiff = hot_cold_diff(hot, cold, why, sizeof why);
    tc_close(cold);
    cr_assert_eq(ndiff, 0, "%d keys differ between hot tier and SQLite: %s",
                 ndiff, why);
}

static int cmp_rec_t0(const void *a, const void *b)
{
    const struct rec *x = *(const struct rec *const *)a;
    const struct rec *y = *(const struct rec *const *)b;
    return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

/* dump_timeline - log every call on @bad's key from 20 ms before it to
 * 2 ms after, so a failure report shows the writes around the read. */
static void dump_timeline(const struct rec *bad, struct rec *const *logs,
                          const size_t *nlog, int nproc, int64_t base)
{
    enum { BEFORE = 30, AFTER = 15 };
    const struct rec **near = NULL;
    size_t n = 0, cap = 0, at = 0;
    char kn[16];
    key_name(bad->key, kn, sizeof kn);
    for (int p = 0; p < nproc; p++)
        for (size_t i = 0; i < nlog[p]; i++) {
            const struct rec *r = &logs[p][i];
            int write = r->op != OP_GET && r->op != OP_GETBUF;
            if (r->key != bad->key || r->t1 < bad->t0 - 20000000 ||
                r->t0 > bad->t1 + 2000000)
                continue;
            /* Every write in the window; reads only close to @bad. */
            if (!write && r != bad &&
                (r->t1 < bad->t0 - 200000 || r->t0 > bad->t1 + 200000))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                near = realloc(near, cap * sizeof *near);
                cr_assert_not_null(near);
            }
            near[n++] = r;
        }
    qsort(near, n, sizeof near[0], cmp_rec_t0);
    while (at < n && near[at] != bad)
        at++;
    cr_log_error("calls on %s around that read (proc, op, result, value, "
                 "[start, end] s):",
                 kn);
    for (size_t i = at > BEFORE ? at - BEFORE : 0; i < n && i <= at + AFTER;
         i++) {
        static const char *const res[] = {"OK", "NOTFOUND", "EXISTS", "BAD"};
        char vd[64] = "";
        if (near[i]->res == RES_OK && near[i]->op != OP_DEL &&
            near[i]->op != OP_TOUCH)
            describe_id(near[i]->key, near[i]->id, vd, sizeof vd);
        cr_log_error("  %s proc %d %-7s %-8s %-26s%s [%.6f, %.6f]",
                     near[i] == bad ? "=>" : "  ", near[i]->proc,
                     op_names[near[i]->op], res[near[i]->res], vd,
                     near[i]->res == RES_OK && is_producer(near[i]) &&
                             is_big(near[i])
                         ? " (file)"
                         : "",
                     (near[i]->t0 - base) / 1e9, (near[i]->t1 - base) / 1e9);
    }
    free(near);
}

static struct rec *load_log(int proc, size_t *n)
{
    char path[TU_PATH_MAX];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/log-%02d.bin", fx.base, proc);
    struct rec *r = (struct rec *)tu_read_file(path, &len);
    cr_assert_not_null(r, "log of proc %d missing", proc);
    cr_assert_eq(len % sizeof *r, 0, "log of proc %d is torn", proc);
    *n = len / sizeof *r;
    return r;
}

/* ===================================================================== */
/* The stress run                                                        */

/* wait_paused - 0 once every writer has paused; -1 if a writer exited
 * instead (its exit code goes to @codes), so the run ends rather than
 * waiting forever for its byte. */
static int wait_paused(struct stress *s, const pid_t *pids, int *codes)
{
    size_t got = 0;
    while (got < (size_t)s->nwriters) {
        struct pollfd pf = {s->paused[0], POLLIN, 0};
        int r = poll(&pf, 1, 1000);
        if (r > 0) {
            char ch[MAXP];
            ssize_t n = read(s->paused[0], ch, (size_t)s->nwriters - got);
            if (n <= 0)
                return -1;
            got += (size_t)n;
            continue;
        }
        for (int w = 0; w < s->nwriters; w++) {
            int st;
            if (codes[w] < 0 && waitpid(pids[w], &st, WNOHANG) == pids[w]) {
                codes[w] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return -1;
            }
        }
    }
    return 0;
}

static void run_stress(int shards, int nwriters, int nreaders, int nkeys,
                       int epoch_ms, double share)
{
    static struct stress s;
    int nproc = nwriters + nreaders, msgs[2];
    pid_t pids[MAXP];
    int codes[MAXP]; /* exit codes of children reaped early, else -1 */
    cr_assert_leq(nproc, MAXP);
    for (int p = 0; p < MAXP; p++)
        codes[p] = -1;
    s.nwriters = nwriters;
    s.nreaders = nreaders;
    s.seconds = stress_seconds() * share;
    s.ns = nkeys < NKEYS ? (nkeys + 1) / 2 : NS;
    s.ni = nkeys < NKEYS ? nkeys / 2 : NI;
    s.epoch_ms = epoch_ms;
    s.nepochs = (int)(s.seconds * 1000 / epoch_ms);
    if (s.nepochs < 1)
        s.nepochs = 1;

    /* The parent creates the cache and keeps a hot handle for the stats
     * and the final checks; children open their own after the fork. */
    fx.c = tu_open_hot(fx.dir, shards, NULL, TU_HOT_SIZE);
    tc_hot_stats before, after;
    TU_OK(tc_hot_stats_get(fx.c, &before));
    cr_assert(before.attached && before.reading,
              "the hot tier is not in use (attached %d, reading %d)",
              before.attached, before.reading);

    tu_barrier_init(&s.b);
    cr_assert_eq(pipe(msgs), 0);
    cr_assert_eq(pipe(s.paused), 0);
    cr_assert_eq(pipe(s.stop), 0);
    for (int w = 0; w < nwriters; w++)
        cr_assert_eq(pipe(s.resume[w]), 0);
    tc_cache *cold = tu_open_cold(fx.dir, NULL);
    fflush(NULL);
    for (int p = 0; p < nproc; p++) {
        pids[p] = fork();
        cr_assert_geq(pids[p], 0, "fork: %s", strerror(errno));
        if (pids[p] == 0) {
            close(msgs[0]);
            child_fds(&s, p);
            _exit(p < nwriters ? writer_main(&s, p, msgs[1])
                               : reader_main(&s, p, msgs[1]));
        }
    }
    close(msgs[1]);
    close(s.paused[1]);
    close(s.stop[0]);
    for (int w = 0; w < nwriters; w++)
        close(s.resume[w][0]);
    tu_barrier_release(&s.b);

    /* Each epoch: wait until every writer paused, compare, resume them.
     * Failures are counted, not asserted, so the children are always
     * released and reaped. */
    int epochs = 0, ndiff = 0, nhotbad = 0;
    int64_t tw0 = now_ns(), tpause = 0;
    char diffwhy[256] = "";
    for (; epochs < s.nepochs; epochs++) {
        if (wait_paused(&s, pids, codes))
            break; /* a writer died: reported below */
        char why[256];
        uint64_t problems = 0;
        int64_t tp = now_ns();
        int d = hot_cold_diff(fx.c, cold, why, sizeof why);
        if (d && ndiff == 0)
            snprintf(diffwhy, sizeof diffwhy, "epoch %d: %s", epochs, why);
        ndiff += d;
        /* The full structure walk is slower: every 8th pause. */
        if (epochs % 8 == 7 && (tc_hot_check(fx.c, nhotbad ? NULL : hot_warning,
                                             NULL, &problems) != TC_OK ||
                                problems))
            nhotbad++;
        tpause += now_ns() - tp;
        for (int w = 0; w < nwriters; w++)
            (void)!write(s.resume[w][1], "r", 1);
    }
    int64_t twall = now_ns() - tw0;
    for (int w = 0; w < nwriters; w++)
        close(s.resume[w][1]);
    close(s.paused[0]);
    close(s.stop[1]); /* readers finish */
    tc_close(cold);
    char msg[4096] = "";
    tu_read_msgs(msgs[0], msg, sizeof msg);
    int failed = 0;
    for (int p = 0; p < nproc; p++) {
        int code = codes[p] >= 0 ? codes[p] : tu_wait_exit(pids[p]);
        if (code != 0) {
            cr_log_error("proc %d (%s): exit %d", p,
                         p < nwriters ? "writer" : "reader", code);
            failed++;
        }
    }
    if (msg[0])
        cr_log_error("children said:\n%s", msg);
    cr_assert_eq(failed, 0, "%d children failed (see log): %s", failed, msg);
    cr_assert_eq(epochs, s.nepochs);

    /* Check every read against the writes of its key. */
    struct rec *logs[MAXP];
    size_t nlog[MAXP], nreads = 0, nwrites = 0, nbad = 0, nfail = 0;
    int64_t base = INT64_MAX;
    for (int p = 0; p < nproc; p++) {
        logs[p] = load_log(p, &nlog[p]);
        for (size_t i = 0; i < nlog[p]; i++) {
            base = logs[p][i].t0 < base ? logs[p][i].t0 : base;
            nbad += logs[p][i].res == RES_BAD;
            if (p < nwriters)
                nwrites++;
            else
                nreads++;
        }
    }
    cr_assert_eq(nbad, 0, "%zu calls failed or returned garbage: %s", nbad,
                 msg);
    size_t checked = 0;
    for (int k = 0; k < NKEYS; k++) {
        struct hist h;
        hist_build(&h, (const struct rec *const *)logs, nlog, nproc, k);
        for (int p = 0; p < nproc; p++)
            for (size_t i = 0; i < nlog[p]; i++) {
                const struct rec *rr = &logs[p][i];
                char why[512];
                if (rr->key != k)
                    continue;
                checked += is_value_read(rr) || is_miss_read(rr);
                if (!check_read(&h, rr, base, why, sizeof why))
                    continue;
                if (nfail < 10)
                    cr_log_error("%s", why);
                if (nfail < 2)
                    dump_timeline(rr, logs, nlog, nproc, base);
                nfail++;
            }
        hist_free(&h);
    }
    for (int p = 0; p < nproc; p++)
        free(logs[p]);
    TU_OK(tc_hot_stats_get(fx.c, &after));
    cr_log_info(
        "%s, %d writers, %d readers, %.1f s: %zu writes, %zu reads, "
        "%zu results checked; %d pauses, %.2f s of %.2f s paused; hot: "
        "+%llu hits, +%llu misses, +%llu fills, +%llu publishes, +%llu "
        "invalidations, +%llu retries",
        shards == TC_SHARDS_PLAIN ? "Cache" : "FanoutCache", nwriters, nreaders,
        s.seconds, nwrites, nreads, checked, epochs, tpause / 1e9, twall / 1e9,
        (unsigned long long)(after.hits - before.hits),
        (unsigned long long)(after.misses - before.misses),
        (unsigned long long)(after.fills - before.fills),
        (unsigned long long)(after.publishes - before.publishes),
        (unsigned long long)(after.invalidations - before.invalidations),
        (unsigned long long)(after.retries - before.retries));
    cr_assert_eq(nfail, 0,
                 "%zu reads saw a value they must not see (first "
                 "ones in the log)",
                 nfail);
    cr_assert_eq(ndiff, 0,
                 "with the writers paused, the hot tier disagreed with SQLite "
                 "on %d keys; first: %s",
                 ndiff, diffwhy);
    cr_assert_eq(nhotbad, 0,
                 "tc_hot_check found problems in %d of %d pauses (see log)",
                 nhotbad, epochs);
    cr_assert_gt(nwrites, 0);
    cr_assert_gt(nreads, 0);
    /* The readers really went through the hot tier. */
    cr_assert_gt(after.hits, before.hits, "no hot hits during the run");
    cr_assert_gt(after.publishes, before.publishes, "no publishes");
    tu_expect_hot_clean(fx.c);
    expect_hot_equals_cold(fx.c);
    tu_expect_hot_clean(fx.c);
}

Test(mp_coherence, mp_coherence_stress_fanout)
{
    run_stress(8, 2, 2, NKEYS, 50, 1.0);
}

Test(mp_coherence, mp_coherence_stress_cache)
{
    run_stress(TC_SHARDS_PLAIN, 2, 2, NKEYS, 50, 1.0);
}

/* More processes: more intents, fills and publishes racing per key. */
Test(mp_coherence, mp_coherence_stress_fanout_3w3r)
{
    run_stress(8, 3, 3, NKEYS, 50, 1.0);
}

/* Three keys, three writers, short epochs: writes of one key overlap all
 * the time, so a publish overtaken by a later write is likely, and the
 * frequent pauses catch one left behind. */
Test(mp_coherence, mp_coherence_stress_three_keys)
{
    run_stress(8, 3, 2, 3, 10, 0.5);
}

/* ===================================================================== */
/* Ping-pong: a write returns, the other process reads it at once        */

#define PP_KEYS      4 /* 0..2: sval bytes, 3: a counter */
#define PP_MIN_ITERS 1000
#define PP_MAX_ITERS 200000

/* Both processes run on a fake clock stopped at TU_T0, so the expiry a
 * touch stores is known exactly and is checked as strictly as the value. */
struct pp_state {
    int present;
    uint64_t id;   /* sval id or counter value */
    double expire; /* expire_time: TC_NO_EXPIRE or TU_T0 + seconds */
};

struct pp_msg {
    int32_t i, key; /* key -1: stop */
    int32_t present, pad;
    uint64_t id;
    double expire;
};

static int same_expire(double a, double b)
{
    return (isinf(a) && isinf(b)) || a == b;
}

static void pp_key(int k, char *out, size_t cap)
{
    if (k < 3)
        snprintf(out, cap, "pp-s%d", k);
    else
        snprintf(out, cap, "pp-counter");
}

/* pp_verify - read @k with tc_get, tc_get_buf and tc_contains, twice (a
 * fill or hit, then a hit): each must show exactly @m. */
static int pp_verify(tc_cache *c, int k, const struct pp_state *m, int i,
                     char *err, size_t cap)
{
    static uint8_t buf[SVAL_MAX];
    char kn[16];
    pp_key(k, kn, sizeof kn);
    for (int pass = 0; pass < 2; pass++) {
        tc_item it = TC_ITEM_INIT;
        uint64_t id = 0;
        int rc = tc_get(c, TU_TEXT(kn), &it, 0);
        int ok = m->present ? rc == TC_OK : rc == TC_NOTFOUND;
        if (ok && rc == TC_OK) {
            if (k < 3)
                ok = it.value.type == TC_BYTES &&
                     sval_decode(it.value.ptr, it.value.len, &id) == 0;
            else if ((ok = it.value.type == TC_INT))
                id = (uint64_t)it.value.i;
            ok = ok && id == m->id && same_expire(it.expire_time, m->expire);
        }
        double ex = it.expire_time;
        tc_item_clear(&it);
        if (!ok) {
            snprintf(err, cap,
                     "iteration %d: tc_get %s (pass %d): %s, id %llx, "
                     "expire %.1f; expected %s id %llx expire %.1f",
                     i, kn, pass, tc_errname(rc), (unsigned long long)id, ex,
                     m->present ? "present" : "absent",
                     (unsigned long long)m->id, m->expire);
            return 1;
        }
        size_t n = 0;
        int type = TC_NONE;
        id = 0;
        ex = 0;
        rc = tc_get_buf(c, TU_TEXT(kn), buf, sizeof buf, &n, &type, &ex, 0);
        ok = m->present ? rc == TC_OK : rc == TC_NOTFOUND;
        if (ok && rc == TC_OK) {
            int64_t iv = 0;
            if (k < 3)
                ok = type == TC_BYTES && sval_decode(buf, n, &id) == 0;
            else if ((ok = type == TC_INT && n == 8)) {
                memcpy(&iv, buf, 8);
                id = (uint64_t)iv;
            }
            ok = ok && id == m->id && same_expire(ex, m->expire);
        }
        if (!ok) {
            snprintf(err, cap,
                     "iteration %d: tc_get_buf %s (pass %d): %s, id %llx, "
                     "expire %.1f; expected %s id %llx expire %.1f",
                     i, kn, pass, tc_errname(rc), (unsigned long long)id, ex,
                     m->present ? "present" : "absent",
                     (unsigned long long)m->id, m->expire);
            return 1;
        }
        rc = tc_contains(c, TU_TEXT(kn));
        if (rc != (m->present ? TC_OK : TC_NOTFOUND)) {
            snprintf(err, cap, "iteration %d: tc_contains %s: %s", i, kn,
                     tc_errname(rc));
            return 1;
        }
    }
    return 0;
}

/* pp_write - one random write on @k; checks its result against the
 * model and updates the model. */
static int pp_write(tc_cache *c, int k, struct pp_state *m, uint64_t *rnd,
                    uint64_t vid, int i, char *err, size_t cap)
{
    static uint8_t buf[SVAL_MAX];
    char kn[16];
    const char *what;
    int rc, want;
    pp_key(k, kn, sizeof kn);
    const tc_data *key = TU_TEXT(kn);
    unsigned o = (unsigned)(rnd_next(rnd) % 6);
    double secs = 1000.0 + i; /* a new expiry on every touch */
    if (o == 5) {
        what = "touch";
        rc = tc_touch(c, key, secs, 0);
        want = m->present ? TC_OK : TC_NOTFOUND;
        if (m->present)
            m->expire = TU_T0 + secs;
    } else if (k == 3) {
        if (o < 4) {
            tc_value out = TC_VALUE_INIT;
            uint64_t next = m->present ? m->id + 1 : (vid << 16) + 1;
            what = "incr";
            rc = tc_incr(c, key, TU_INT(1), TU_INT((int64_t)(vid << 16)), &out,
                         0);
            want = TC_OK;
            if (rc == TC_OK && (out.type != TC_INT || (uint64_t)out.i != next))
                rc = TC_EINTERNAL; /* reported as a mismatch below */
            tc_value_clear(&out);
            if (!m->present)
                m->expire = TC_NO_EXPIRE; /* a created counter never expires */
            m->present = 1;
            m->id = next;
        } else {
            what = "delete";
            rc = tc_delete(c, key, 0);
            want = m->present ? TC_OK : TC_NOTFOUND;
            m->present = 0;
        }
    } else if (o <= 1) {
        size_t n = sval_make(vid, buf);
        what = "set";
        rc = tc_set(c, key, TU_BYTES(buf, n), TC_NO_EXPIRE, NULL, 0);
        want = TC_OK;
        m->present = 1;
        m->id = vid;
        m->expire = TC_NO_EXPIRE;
    } else if (o == 2) {
        what = "delete";
        rc = tc_delete(c, key, 0);
        want = m->present ? TC_OK : TC_NOTFOUND;
        m->present = 0;
    } else if (o == 3) {
        size_t n = sval_make(vid, buf);
        what = "add";
        rc = tc_add(c, key, TU_BYTES(buf, n), TC_NO_EXPIRE, NULL, 0);
        want = m->present ? TC_EXISTS : TC_OK;
        if (!m->present) {
            m->id = vid;
            m->expire = TC_NO_EXPIRE;
        }
        m->present = 1;
    } else {
        tc_item it = TC_ITEM_INIT;
        uint64_t id = 0;
        what = "pop";
        rc = tc_pop(c, key, &it, 0);
        want = m->present ? TC_OK : TC_NOTFOUND;
        if (rc == TC_OK &&
            (sval_decode(it.value.ptr, it.value.len, &id) != 0 || id != m->id))
            rc = TC_EINTERNAL;
        tc_item_clear(&it);
        m->present = 0;
    }
    if (rc != want) {
        snprintf(err, cap, "iteration %d: %s %s: %s, expected %s (%s)", i, what,
                 kn, tc_errname(rc), tc_errname(want),
                 rc == TC_EINTERNAL ? "wrong value" : tc_errmsg());
        return 1;
    }
    return 0;
}

/* pingpong - processes @me = 0 and 1 alternate: on its turn one writes a
 * key, checks its own read, sends the new state; the other reads it at
 * once and acknowledges. Both keep the same model of every key. */
static int pingpong(tc_cache *c, int me, int rfd, int wfd, double seconds,
                    int *iters, char *err, size_t cap)
{
    struct pp_state m[PP_KEYS];
    uint64_t rnd = 0x2545f4914f6cdd1dull * (uint64_t)(me + 1);
    int64_t end = now_ns() + (int64_t)(seconds * 1e9);
    memset(m, 0, sizeof m);
    for (int i = 0;; i++) {
        struct pp_msg msg = {0};
        if (i % 2 == me) {
            if ((i >= PP_MIN_ITERS && now_ns() >= end) || i >= PP_MAX_ITERS) {
                msg.key = -1;
                *iters = i;
                (void)tu_write_full(wfd, &msg, sizeof msg); /* best effort */
                return 0;
            }
            int k = (int)(rnd_next(&rnd) % PP_KEYS);
            if (pp_write(c, k, &m[k], &rnd, SVAL_ID(me, i), i, err, cap) ||
                pp_verify(c, k, &m[k], i, err, cap))
                return 1;
            msg = (struct pp_msg){i, k, m[k].present, 0, m[k].id, m[k].expire};
            char ack;
            if (tu_write_full(wfd, &msg, sizeof msg) ||
                tu_read_full(rfd, &ack, 1)) {
                snprintf(err, cap, "iteration %d: the peer is gone", i);
                return 1;
            }
        } else {
            if (tu_read_full(rfd, &msg, sizeof msg)) {
                snprintf(err, cap, "iteration %d: the peer is gone", i);
                return 1;
            }
            if (msg.key == -1) {
                *iters = i;
                return 0;
            }
            if (msg.i != i || msg.key < 0 || msg.key >= PP_KEYS) {
                snprintf(err, cap, "iteration %d: bad message", i);
                return 1;
            }
            m[msg.key] = (struct pp_state){msg.present, msg.id, msg.expire};
            if (pp_verify(c, msg.key, &m[msg.key], i, err, cap))
                return 1;
            if (tu_write_full(wfd, "k", 1)) {
                snprintf(err, cap, "iteration %d: the peer is gone", i);
                return 1;
            }
        }
    }
}

static void run_pingpong(int shards)
{
    int p2c[2], c2p[2], msgs[2];
    double seconds = stress_seconds() / 2;
    fx.c = tu_open_hot(fx.dir, shards, &fx.clk, TU_HOT_SIZE);
    tc_hot_stats before, after;
    TU_OK(tc_hot_stats_get(fx.c, &before));
    cr_assert(before.attached && before.reading, "the hot tier is not in use");
    cr_assert_eq(pipe(p2c), 0);
    cr_assert_eq(pipe(c2p), 0);
    cr_assert_eq(pipe(msgs), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char err[512] = "";
        int iters = 0;
        close(p2c[1]);
        close(c2p[0]);
        close(msgs[0]);
        tc_cache *c = child_open(msgs[1], 1, &fx.clk);
        if (!c)
            _exit(1);
        int code =
            pingpong(c, 1, p2c[0], c2p[1], seconds, &iters, err, sizeof err);
        if (code)
            tu_child_msg(msgs[1], "child: %s", err);
        tc_close(c);
        _exit(code);
    }
    close(p2c[0]);
    close(c2p[1]);
    close(msgs[1]);
    char err[512] = "", msg[1024] = "";
    int iters = 0;
    int code =
        pingpong(fx.c, 0, c2p[0], p2c[1], seconds, &iters, err, sizeof err);
    close(p2c[1]);
    close(c2p[0]);
    tu_read_msgs(msgs[0], msg, sizeof msg);
    int ccode = tu_wait_exit(pid);
    cr_assert_eq(code, 0, "parent: %s (child: %s)", err, msg);
    cr_assert_eq(ccode, 0, "child: exit %d: %s", ccode, msg);
    cr_assert_geq(iters, PP_MIN_ITERS);
    TU_OK(tc_hot_stats_get(fx.c, &after));
    cr_log_info(
        "ping-pong %s: %d turns; hot: +%llu hits, +%llu fills, +%llu "
        "publishes, +%llu invalidations",
        shards == TC_SHARDS_PLAIN ? "Cache" : "FanoutCache", iters,
        (unsigned long long)(after.hits - before.hits),
        (unsigned long long)(after.fills - before.fills),
        (unsigned long long)(after.publishes - before.publishes),
        (unsigned long long)(after.invalidations - before.invalidations));
    cr_assert_gt(after.hits, before.hits, "no hot hits");
    tu_expect_hot_clean(fx.c);
}

Test(mp_coherence, mp_coherence_pingpong_fanout)
{
    run_pingpong(8);
}

Test(mp_coherence, mp_coherence_pingpong_cache)
{
    run_pingpong(TC_SHARDS_PLAIN);
}
