/*
 * test_crash.c - processes SIGKILLed at the hot tier's crash points
 * (TIERCACHE_CRASH_AT, shm/hot.h; built with -Dtest_hooks=true) never wedge
 * the others, never leave a stale value visible, and leave nothing behind
 * that one tc_hot_recover pass does not give back (docs/ARCHITECTURE.md,
 * "Processes, liveness and recovery").
 *
 * Every test opens a cache with the hot tier, preloads keys and forks
 * children that arm one crash point and run the operation that reaches it.
 * Each child must die by SIGKILL. Then:
 *  1. a checking child (with an alarm, so a wedge fails the test instead of
 *     hanging CI) reads every key and writes the crashed keys, before any
 *     recovery: dead owners' bucket locks, fill leases and floors are all
 *     still in place;
 *  2. every read through the cache (tc_get and tc_get_buf, so both the fill
 *     and the hit path) equals the row SQLite holds, read with sqlite3
 *     itself so a library bug cannot hide on both sides of the comparison;
 *  3. tc_hot_recover reports the dead process slots;
 *  4. tc_hot_check finds no structural problem and no stale entry;
 *  5. free_bytes comes back: after recovery to the value before the crashes
 *     (mid-alloc, mid-fill) and after tc_clear to the empty segment's.
 * A random loop then kills children anywhere, at random crash points or by
 * the parent's SIGKILL, and checks all of this after every iteration.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>

#include "testutil.h"

#define FANOUT      8
#define CHECK_ALARM 20 /* seconds a checking child may run: longer = wedged */
#define CRASH_ALARM 30 /* a crash child that never dies is a failure too */
/* Exit code of a crash child whose operation ended without its point. */
#define NOT_REACHED 77
#define MAXKEYS     1200
#define BUF_CAP     (64u << 10) /* tc_get_buf buffer: fits every value */

/* Memory tests: values of 10000 bytes take ~10.9 KiB chunks, three to a
 * 32 KiB page with little waste, and 24 leaked ones are ~3.5% of an 8 MiB
 * segment: well above the 1% tolerance, so a leak cannot hide in it. */
#define BIG_LEN 10000
#define NMEM    24

static void setup(void)
{
    tu_fx_init("crash");
}

static void teardown(void)
{
    tu_fx_fini();
}

/* Each test takes seconds; a hang in the parent fails it within 2 min (the
 * children's alarms catch the others sooner). */
TestSuite(crash, .init = setup, .fini = teardown, .timeout = 120);

/* ===================================================================== */
/* Keys and scenario state (children inherit them through fork)           */

static char keys[MAXKEYS][16];
static int nkeys;

static struct {
    int shards;     /* TC_SHARDS_PLAIN or FANOUT */
    uint64_t free0; /* free_bytes of the empty segment */
} sc;

static void key_add(const char *k)
{
    for (int i = 0; i < nkeys; i++)
        if (!strcmp(keys[i], k))
            return;
    cr_assert_lt(nkeys, MAXKEYS);
    snprintf(keys[nkeys++], sizeof keys[0], "%s", k);
}

/* Keys named n... hold integers (incr targets); the others text or bytes. */
static int int_key(const char *k)
{
    return k[0] == 'n';
}

static int shard_of(const char *key)
{
    uint64_t h = 0;
    if (!sc.shards || tc_fanout_hash(TU_TEXT(key), &h) != TC_OK)
        return 0;
    return (int)(h % (uint64_t)sc.shards);
}

/* ===================================================================== */
/* Ground truth: SQLite's rows, read with sqlite3 directly                */

struct truth {
    int n; /* databases open: 1 for a plain Cache */
    sqlite3 *db[FANOUT];
};

struct tval {
    int present;
    int type; /* TC_INT, TC_TEXT or TC_BYTES */
    int64_t i;
    char *buf; /* malloc'd copy of TEXT/BYTES */
    size_t len;
};

static void truth_close(struct truth *t)
{
    for (int s = 0; s < t->n; s++)
        sqlite3_close(t->db[s]);
    t->n = 0;
}

/* truth_open - no cr_assert: children use it. 0, or -1 with @why. */
static int truth_open(struct truth *t, char *why, size_t cap)
{
    memset(t, 0, sizeof *t);
    int n = sc.shards ? sc.shards : 1;
    for (int s = 0; s < n; s++) {
        char path[TU_PATH_MAX];
        if (sc.shards)
            snprintf(path, sizeof path, "%s/%03d/cache.db", fx.dir, s);
        else
            snprintf(path, sizeof path, "%s/cache.db", fx.dir);
        int rc = sqlite3_open_v2(path, &t->db[s], SQLITE_OPEN_READWRITE, NULL);
        t->n = s + 1;
        if (rc != SQLITE_OK) {
            snprintf(why, cap, "sqlite3_open %s: %s", path,
                     sqlite3_errmsg(t->db[s]));
            truth_close(t);
            return -1;
        }
        sqlite3_busy_timeout(t->db[s], 10000);
    }
    return 0;
}

static int truth_get(struct truth *t, const char *key, struct tval *v,
                     char *why, size_t cap)
{
    memset(v, 0, sizeof *v);
    sqlite3 *db = t->db[shard_of(key)];
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT value, mode FROM Cache"
                           " WHERE key = ?1 AND raw = 1",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(why, cap, "prepare: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        v->present = 1;
        int ct = sqlite3_column_type(st, 0);
        if (ct == SQLITE_INTEGER) {
            v->type = TC_INT;
            v->i = sqlite3_column_int64(st, 0);
        } else if (ct == SQLITE_TEXT || ct == SQLITE_BLOB) {
            v->type = ct == SQLITE_TEXT ? TC_TEXT : TC_BYTES;
            const void *p = ct == SQLITE_TEXT
                                ? (const void *)sqlite3_column_text(st, 0)
                                : sqlite3_column_blob(st, 0);
            v->len = (size_t)sqlite3_column_bytes(st, 0);
            v->buf = malloc(v->len + 1);
            if (v->len)
                memcpy(v->buf, p, v->len);
        } else {
            snprintf(why, cap, "SQLite row of %s has column type %d", key, ct);
            ret = -1;
        }
        /* The suite stores inline values only (mode 1, raw). */
        if (ret == 0 && sqlite3_column_int(st, 1) != 1) {
            snprintf(why, cap, "SQLite row of %s has mode %d", key,
                     sqlite3_column_int(st, 1));
            ret = -1;
        }
    } else if (rc != SQLITE_DONE) {
        snprintf(why, cap, "step: %s", sqlite3_errmsg(db));
        ret = -1;
    }
    sqlite3_finalize(st);
    return ret;
}

static void describe(char *out, size_t cap, int type, const void *p, size_t len,
                     int64_t i)
{
    if (type == TC_INT)
        snprintf(out, cap, "int %lld", (long long)i);
    else if (type == TC_TEXT)
        snprintf(out, cap, "text '%.*s'%s", (int)(len > 40 ? 40 : len),
                 (const char *)p, len > 40 ? "..." : "");
    else
        snprintf(out, cap, "type %d, %zu bytes", type, len);
}

/* What a read through the cache returned. */
struct seen {
    int rc;
    int type;
    const void *p;
    size_t len;
    int64_t i;
};

/* differs - 0 if @s equals SQLite's @t, else 1 with the explanation. */
static int differs(const char *how, const char *key, const struct seen *s,
                   const struct tval *t, char *why, size_t cap)
{
    char a[96], b[96];
    if (!t->present) {
        if (s->rc == TC_NOTFOUND)
            return 0;
        describe(a, sizeof a, s->type, s->p, s->len, s->i);
        snprintf(why, cap, "%s(%s): %s (%s), but SQLite has no row", how, key,
                 tc_errname(s->rc), s->rc == TC_OK ? a : tc_errmsg());
        return 1;
    }
    describe(b, sizeof b, t->type, t->buf, t->len, t->i);
    if (s->rc != TC_OK) {
        snprintf(why, cap, "%s(%s): %s (%s), but SQLite has %s", how, key,
                 tc_errname(s->rc), tc_errmsg(), b);
        return 1;
    }
    int same = s->type == t->type &&
               (t->type == TC_INT
                    ? s->i == t->i
                    : s->len == t->len &&
                          (!t->len || memcmp(s->p, t->buf, t->len) == 0));
    if (same)
        return 0;
    describe(a, sizeof a, s->type, s->p, s->len, s->i);
    snprintf(why, cap, "%s(%s): stale %s, SQLite has %s", how, key, a, b);
    return 1;
}

/* check_key - tc_get (a miss fills) then tc_get_buf (then a hit) of @key
 * both equal SQLite's row. */
static int check_key(tc_cache *c, struct truth *tr, const char *key, char *why,
                     size_t cap)
{
    struct tval t;
    if (truth_get(tr, key, &t, why, cap))
        return 1;
    tc_item it = TC_ITEM_INIT;
    struct seen s = {0};
    s.rc = tc_get(c, TU_TEXT(key), &it, 0);
    if (s.rc == TC_OK)
        s = (struct seen){TC_OK, it.value.type, it.value.ptr, it.value.len,
                          it.value.i};
    int bad = differs("tc_get", key, &s, &t, why, cap);
    tc_item_clear(&it);
    if (!bad) {
        char *buf = malloc(BUF_CAP);
        size_t len = 0;
        int type = TC_NONE;
        double exp = 0;
        s = (struct seen){0};
        s.rc = tc_get_buf(c, TU_TEXT(key), buf, BUF_CAP, &len, &type, &exp, 0);
        if (s.rc == TC_OK) {
            s = (struct seen){TC_OK, type, buf, len, 0};
            if (type == TC_INT)
                memcpy(&s.i, buf, sizeof s.i);
        }
        bad = differs("tc_get_buf", key, &s, &t, why, cap);
        free(buf);
    }
    free(t.buf);
    return bad;
}

/* check_all - every key of the scenario reads as SQLite has it. */
static int check_all(tc_cache *c, char *why, size_t cap)
{
    struct truth tr;
    if (truth_open(&tr, why, cap))
        return 1;
    int bad = 0;
    for (int i = 0; i < nkeys && !bad; i++)
        bad = check_key(c, &tr, keys[i], why, cap);
    truth_close(&tr);
    return bad;
}

static void assert_all_match(tc_cache *c, const char *when)
{
    char why[1024] = "";
    cr_assert_eq(check_all(c, why, sizeof why), 0, "%s: %s", when, why);
}

/* truth_is - SQLite holds @want (TC_TEXT; NULL: no row) or, for int keys,
 * the integer @i. */
static int truth_is(struct truth *tr, const char *key, const char *want,
                    int64_t i, char *why, size_t cap)
{
    struct tval t;
    if (truth_get(tr, key, &t, why, cap))
        return 1;
    int ok;
    if (int_key(key))
        ok = t.present && t.type == TC_INT && t.i == i;
    else if (!want)
        ok = !t.present;
    else
        ok = t.present && t.type == TC_TEXT && t.len == strlen(want) &&
             memcmp(t.buf, want, t.len) == 0;
    if (!ok) {
        char b[96], w[96];
        describe(b, sizeof b, t.type, t.buf, t.len, t.i);
        if (int_key(key))
            describe(w, sizeof w, TC_INT, NULL, 0, i);
        else if (want)
            describe(w, sizeof w, TC_TEXT, want, strlen(want), 0);
        else
            snprintf(w, sizeof w, "no row");
        snprintf(why, cap, "SQLite has %s for %s, expected %s",
                 t.present ? b : "no row", key, w);
    }
    free(t.buf);
    return !ok;
}

/* expect_sqlite - in the parent: SQLite holds one of @a, @b (text; NULL =
 * no row) for a text key, or @i for an int key. */
static void expect_sqlite(const char *key, const char *a, const char *b,
                          int64_t i)
{
    struct truth tr;
    char why[512] = "", why2[512] = "";
    cr_assert_eq(truth_open(&tr, why, sizeof why), 0, "%s", why);
    int bad = truth_is(&tr, key, a, i, why, sizeof why);
    if (bad && b)
        bad = truth_is(&tr, key, b, i, why2, sizeof why2);
    truth_close(&tr);
    cr_assert_eq(bad, 0, "%s", why);
}

/* ===================================================================== */
/* Hot-tier introspection                                                 */

struct problems {
    uint64_t n;
    char first[512];
};

static void on_problem(void *arg, const char *kind, const char *msg)
{
    struct problems *p = arg;
    if (p->n++ == 0)
        snprintf(p->first, sizeof p->first, "%s: %s", kind, msg);
}

/* hot_problems - tc_hot_check's count (UINT64_MAX if the call failed). */
static uint64_t hot_problems(tc_cache *c, struct problems *p)
{
    uint64_t n = 0;
    memset(p, 0, sizeof *p);
    int rc = tc_hot_check(c, on_problem, p, &n);
    if (rc != TC_OK) {
        snprintf(p->first, sizeof p->first, "tc_hot_check: %s: %s",
                 tc_errname(rc), tc_errmsg());
        return UINT64_MAX;
    }
    return n;
}

static void assert_hot_clean(tc_cache *c, const char *when)
{
    struct problems p;
    uint64_t n = hot_problems(c, &p);
    cr_assert_eq(n, 0, "%s: tc_hot_check: %llu problem(s), first: %s", when,
                 (unsigned long long)n, p.first);
}

static tc_hot_stats hot_stats(tc_cache *c)
{
    tc_hot_stats s;
    memset(&s, 0, sizeof s);
    TU_OK(tc_hot_stats_get(c, &s));
    cr_assert_eq(s.attached, 1, "the handle has no hot segment");
    return s;
}

static void assert_free_near(uint64_t got, uint64_t want, const char *when)
{
    uint64_t d = got > want ? got - want : want - got;
    cr_assert(d * 100 <= want,
              "%s: free_bytes %llu, expected %llu within 1%% (%s by %llu)",
              when, (unsigned long long)got, (unsigned long long)want,
              got < want ? "short" : "over", (unsigned long long)d);
}

/* recover - one tc_hot_recover pass that must give back at least @want
 * dead process slots (every crashed child held one; the checking children
 * close their handles, so theirs are free already). */
static void recover(uint64_t want)
{
    tc_hot_stats before = hot_stats(fx.c);
    uint64_t n = 0;
    TU_OK(tc_hot_recover(fx.c, &n));
    tc_hot_stats after = hot_stats(fx.c);
    cr_log_info("tc_hot_recover: %llu slot(s) (want >= %llu); counters:"
                " recovered %llu -> %llu, lock_repairs %llu",
                (unsigned long long)n, (unsigned long long)want,
                (unsigned long long)before.recovered,
                (unsigned long long)after.recovered,
                (unsigned long long)after.lock_repairs);
    cr_assert_geq(n, want,
                  "tc_hot_recover gave back %llu dead slot(s), expected at"
                  " least %llu (counter recovered: %llu before, %llu after)",
                  (unsigned long long)n, (unsigned long long)want,
                  (unsigned long long)before.recovered,
                  (unsigned long long)after.recovered);
    /* A second pass finds nothing left. */
    TU_OK(tc_hot_recover(fx.c, &n));
    cr_assert_eq(n, 0, "a second tc_hot_recover pass found %llu more",
                 (unsigned long long)n);
}

/* ===================================================================== */
/* Children                                                               */

typedef int (*child_fn)(void *arg, int msgfd);

struct child {
    pid_t pid;
    int fd; /* read end of the child's message pipe */
};

/* Shared with the children (mapped before forking). */
struct report {
    uint64_t lock_repairs;     /* repairs the checker itself made */
    _Atomic uint64_t progress; /* bystander: operations done */
    _Atomic int stop;          /* bystander: finish and exit */
};
static struct report *report;

static struct child spawn(child_fn fn, void *arg)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        signal(SIGALRM, SIG_DFL);
        _exit(fn(arg, fd[1]));
    }
    close(fd[1]);
    return (struct child){pid, fd[0]};
}

/* reap - the child's messages (read to EOF) and its raw wait status. */
static int reap(struct child ch, char *msg, size_t cap)
{
    size_t used = 0;
    ssize_t r;
    while (used + 1 < cap &&
           (r = read(ch.fd, msg + used, cap - 1 - used)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        used += (size_t)r;
    }
    msg[used] = 0;
    close(ch.fd);
    int st = 0;
    while (waitpid(ch.pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

static const char *status_str(int st, char *buf, size_t cap)
{
    if (WIFEXITED(st))
        snprintf(buf, cap, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "killed by signal %d (%s)%s", WTERMSIG(st),
                 strsignal(WTERMSIG(st)),
                 WTERMSIG(st) == SIGALRM ? ": hung past its alarm" : "");
    else
        snprintf(buf, cap, "wait status %#x", st);
    return buf;
}

/* run_checker - @fn in a child that must exit 0 before its alarm. */
static void run_checker(child_fn fn, void *arg, const char *what)
{
    char msg[2048], s[128];
    int st = reap(spawn(fn, arg), msg, sizeof msg);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s: %s", what,
              status_str(st, s, sizeof s), msg);
}

/* open_hot - a new handle on the scenario's cache (no cr_assert). */
static int open_hot(tc_cache **out)
{
    tc_cache *c = NULL;
    int rc = tc_create(&c);
    if (rc == TC_OK)
        rc = tc_set_hot_size(c, TU_HOT_SIZE);
    if (rc == TC_OK)
        rc = tc_set_shards(c, sc.shards);
    if (rc == TC_OK)
        rc = tc_open(c, fx.dir, 0);
    if (rc != TC_OK) {
        tc_close(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

/* write_and_read - writes to @key complete and read back as written: incr
 * for int keys; set, delete, set for the others. */
static int write_and_read(tc_cache *c, struct truth *tr, const char *key,
                          char *why, size_t cap)
{
    int rc;
    if (int_key(key)) {
        tc_value out = TC_VALUE_INIT;
        rc = tc_incr(c, TU_TEXT(key), TU_INT(1), TU_INT(0), &out, TC_RETRY);
        int64_t now = out.i;
        tc_value_clear(&out);
        if (rc != TC_OK) {
            snprintf(why, cap, "incr(%s): %s: %s", key, tc_errname(rc),
                     tc_errmsg());
            return 1;
        }
        return check_key(c, tr, key, why, cap) ||
               truth_is(tr, key, NULL, now, why, cap);
    }
    char v[64];
    for (int round = 1; round <= 3; round++) {
        if (round == 2) {
            rc = tc_delete(c, TU_TEXT(key), TC_RETRY);
            v[0] = 0;
        } else {
            snprintf(v, sizeof v, "w%d-%s", round, key);
            rc = tc_set(c, TU_TEXT(key), TU_TEXT(v), TC_NO_EXPIRE, NULL,
                        TC_RETRY);
        }
        if (rc != TC_OK) {
            snprintf(why, cap, "%s(%s): %s: %s", round == 2 ? "delete" : "set",
                     key, tc_errname(rc), tc_errmsg());
            return 1;
        }
        if (check_key(c, tr, key, why, cap) ||
            truth_is(tr, key, round == 2 ? NULL : v, 0, why, cap))
            return 1;
    }
    return 0;
}

struct check_arg {
    const char *writes[8]; /* keys to write after the read check */
    int nwrites;
};

/* checker_child - before any recovery (the dead children's locks, leases,
 * chunks and raised floors are all still there): every key reads as SQLite
 * has it, and writes to the crashed keys complete. It uses the inherited
 * handle: no attach, which might run a recovery of its own. */
static int checker_child(void *argp, int msgfd)
{
    const struct check_arg *a = argp;
    char why[1024];
    struct truth tr;
    alarm(CHECK_ALARM);
    tc_hot_stats s0, s1;
    if (tc_hot_stats_get(fx.c, &s0) != TC_OK)
        return tu_child_msg(msgfd, "tc_hot_stats_get: %s", tc_errmsg());
    if (check_all(fx.c, why, sizeof why))
        return tu_child_msg(msgfd, "reads before writing: %s", why);
    if (truth_open(&tr, why, sizeof why))
        return tu_child_msg(msgfd, "%s", why);
    for (int i = 0; i < a->nwrites; i++)
        if (write_and_read(fx.c, &tr, a->writes[i], why, sizeof why))
            return tu_child_msg(msgfd, "writes: %s", why);
    truth_close(&tr);
    if (check_all(fx.c, why, sizeof why))
        return tu_child_msg(msgfd, "reads after writing: %s", why);
    if (tc_hot_stats_get(fx.c, &s1) != TC_OK)
        return tu_child_msg(msgfd, "tc_hot_stats_get: %s", tc_errmsg());
    report->lock_repairs = s1.lock_repairs - s0.lock_repairs;
    tc_close(fx.c); /* frees our slot: only the crashed ones stay dead */
    return 0;
}

/* fresh_child - a process that attaches anew sees SQLite's values and a
 * clean segment. */
static int fresh_child(void *argp, int msgfd)
{
    char why[1024];
    tc_cache *c = NULL;
    struct problems p;
    (void)argp;
    alarm(CHECK_ALARM);
    int rc = open_hot(&c);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "open: %s: %s", tc_errname(rc), tc_errmsg());
    if (check_all(c, why, sizeof why))
        return tu_child_msg(msgfd, "fresh handle: %s", why);
    uint64_t n = hot_problems(c, &p);
    if (n)
        return tu_child_msg(msgfd, "fresh handle: tc_hot_check: %llu, %s",
                            (unsigned long long)n, p.first);
    tc_close(c);
    return 0;
}

/* ===================================================================== */
/* Crash children                                                         */

enum op {
    OP_SET,
    OP_DELETE,
    OP_INCR,
    OP_GET,
    OP_GET_BUF,
    OP_CLEAR,       /* tc_clear: bulk invalidation, sweep */
    OP_SET_MANY,    /* k10..k12 = "many-kNN" in one transaction */
    OP_DELETE_MANY, /* k13..k15 */
};
static const char *const op_names[] = {"set",      "delete",     "incr",
                                       "get",      "get_buf",    "clear",
                                       "set_many", "delete_many"};

struct crash_op {
    const char *at; /* TIERCACHE_CRASH_AT */
    enum op op;
    const char *key;
    tc_data val;   /* OP_SET */
    int64_t delta; /* OP_INCR */
};

static struct crash_op op_set(const char *at, const char *key, const char *v)
{
    return (struct crash_op){at, OP_SET, key, tc_text(v), 0};
}

static struct crash_op op_set_bytes(const char *at, const char *key,
                                    const void *p, size_t n)
{
    return (struct crash_op){at, OP_SET, key, tc_bytes(p, n), 0};
}

static struct crash_op op_key(const char *at, enum op op, const char *key)
{
    return (struct crash_op){at, op, key, {NULL, 0, TC_NONE}, 5};
}

static int do_op(tc_cache *c, const struct crash_op *o)
{
    tc_data k = tc_text(o->key);
    tc_item it = TC_ITEM_INIT;
    char buf[256];
    size_t len;
    int rc = TC_EINVAL;
    switch (o->op) {
    case OP_SET:
        rc = tc_set(c, &k, &o->val, TC_NO_EXPIRE, NULL, TC_RETRY);
        break;
    case OP_DELETE:
        rc = tc_delete(c, &k, TC_RETRY);
        break;
    case OP_INCR:
        rc = tc_incr(c, &k, TU_INT(o->delta), TU_INT(0), NULL, TC_RETRY);
        break;
    case OP_GET:
        rc = tc_get(c, &k, &it, 0);
        tc_item_clear(&it);
        break;
    case OP_GET_BUF:
        rc = tc_get_buf(c, &k, buf, sizeof buf, &len, NULL, NULL, 0);
        break;
    case OP_CLEAR:
        rc = tc_clear(c, NULL, TC_RETRY);
        break;
    case OP_SET_MANY:
    case OP_DELETE_MANY: {
        const int first = o->op == OP_SET_MANY ? 10 : 13;
        char kb[3][16], vb[3][32];
        tc_data ks[3], vs[3];
        for (int i = 0; i < 3; i++) {
            snprintf(kb[i], sizeof kb[i], "k%02d", first + i);
            snprintf(vb[i], sizeof vb[i], "many-%s", kb[i]);
            ks[i] = tc_text(kb[i]);
            vs[i] = tc_text(vb[i]);
        }
        rc = o->op == OP_SET_MANY
                 ? tc_set_many(c, ks, vs, 3, TC_NO_EXPIRE, NULL, TC_RETRY)
                 : tc_delete_many(c, ks, 3, NULL, TC_RETRY);
        break;
    }
    }
    return rc;
}

static int crash_child(void *argp, int msgfd)
{
    const struct crash_op *o = argp;
    alarm(CRASH_ALARM);
    /* Armed here only: the parent and the checkers never crash. */
    setenv("TIERCACHE_CRASH_AT", o->at, 1);
    int rc = do_op(fx.c, o);
    unsetenv("TIERCACHE_CRASH_AT");
    tu_child_msg(msgfd, "%s(%s) returned %s without reaching %s",
                 op_names[o->op], o->key, tc_errname(rc), o->at);
    return NOT_REACHED;
}

/* crash - fork a child that runs @o with its point armed, on the handle it
 * inherits. 1 if it died by SIGKILL; 0 if the operation ended without
 * reaching the point, which fails the test when @must. */
static int crash(struct crash_op o, int must)
{
    char msg[1024], s[128];
    key_add(o.key);
    int st = reap(spawn(crash_child, &o), msg, sizeof msg);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return 1;
    if (!must && WIFEXITED(st) && WEXITSTATUS(st) == NOT_REACHED) {
        cr_log_info("not a crash (allowed): %s", msg);
        return 0;
    }
    cr_assert_fail("crash child %s(%s) at %s should die by SIGKILL: %s: %s",
                   op_names[o.op], o.key, o.at, status_str(st, s, sizeof s),
                   msg);
    return 0;
}

/* ===================================================================== */
/* Scenarios                                                              */

/* scen_reset - no keys yet, a zeroed report shared with the children. */
static void scen_reset(int shards)
{
    nkeys = 0;
    sc.shards = shards;
    report = mmap(NULL, sizeof *report, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(report, MAP_FAILED);
}

/* preload - text keys k00..k23 = "old-kNN", int keys n00..n07 = 100+i. */
static void preload(tc_cache *c)
{
    char k[16], v[32];
    for (int i = 0; i < 24; i++) {
        snprintf(k, sizeof k, "k%02d", i);
        snprintf(v, sizeof v, "old-%s", k);
        tu_set(c, TU_TEXT(k), TU_TEXT(v));
        key_add(k);
    }
    for (int i = 0; i < 8; i++) {
        snprintf(k, sizeof k, "n%02d", i);
        tu_set(c, TU_TEXT(k), TU_INT(100 + i));
        key_add(k);
    }
}

/* preload_big - bytes keys b00..b23 of BIG_LEN (memory tests). */
static void preload_big(tc_cache *c)
{
    char k[16];
    for (int i = 0; i < NMEM; i++) {
        snprintf(k, sizeof k, "b%02d", i);
        char *v = tu_pattern(BIG_LEN, (unsigned)i);
        tu_set(c, TU_TEXT(k), TU_BYTES(v, BIG_LEN));
        free(v);
        key_add(k);
    }
}

/* scen_open - a new cache with the hot tier, preloaded. @cold: the segment
 * is dropped and recreated after the preload, so every key lives in SQLite
 * only and its next read is a miss that fills. */
static void scen_open(int shards, int cold, void (*extra)(tc_cache *))
{
    scen_reset(shards);
    fx.c = tu_open_hot(fx.dir, shards, NULL, TU_HOT_SIZE);
    sc.free0 = hot_stats(fx.c).free_bytes;
    preload(fx.c);
    if (extra)
        extra(fx.c);
    if (cold) {
        tc_close(fx.c);
        TU_OK(tc_hot_drop(fx.dir));
        fx.c = tu_open_hot(fx.dir, shards, NULL, TU_HOT_SIZE);
        tc_hot_stats s = hot_stats(fx.c);
        cr_assert_eq(s.items, 0, "a segment made after tc_hot_drop holds %llu",
                     (unsigned long long)s.items);
        sc.free0 = s.free_bytes;
    } else {
        assert_all_match(fx.c, "after the preload");
    }
    cr_log_info("%s, free_bytes of the empty segment %llu",
                shards ? "FanoutCache" : "Cache", (unsigned long long)sc.free0);
}

/* after_checks - (1)..(4) once the crash children are dead. */
static void after_checks(const struct check_arg *w, int crashed)
{
    run_checker(checker_child, (void *)w, "a live process after the crashes");
    recover((uint64_t)crashed);
    assert_hot_clean(fx.c, "after recovery");
    assert_all_match(fx.c, "after recovery");
    assert_all_match(fx.c, "after recovery, second read");
    run_checker(fresh_child, NULL, "a process attaching after recovery");
}

/* clear_and_check - tc_clear frees every chunk: the segment is as empty as
 * when it was made, and still consistent. */
static void clear_and_check(void)
{
    uint64_t removed = 0;
    TU_OK(tc_clear(fx.c, &removed, TC_RETRY));
    tc_hot_stats s = hot_stats(fx.c);
    cr_assert_eq(s.items, 0, "tc_clear left %llu hot items",
                 (unsigned long long)s.items);
    assert_free_near(s.free_bytes, sc.free0, "after tc_clear");
    assert_hot_clean(fx.c, "after tc_clear");
    assert_all_match(fx.c, "after tc_clear");
}

/* ===================================================================== */
/* after-intent: killed after removing the key, before COMMIT             */

/* A text key whose shard none of @avoid lives in. */
static const char *key_off_shards(const char *const *avoid, int n)
{
    static char k[16];
    for (int i = 0; i < 24; i++) {
        snprintf(k, sizeof k, "k%02d", i);
        int clash = 0;
        for (int j = 0; j < n; j++)
            clash |= shard_of(k) == shard_of(avoid[j]) || !strcmp(k, avoid[j]);
        if (!clash)
            return k;
    }
    cr_assert_fail("no preloaded key outside the shards of the others");
    return NULL;
}

static void after_intent(int shards)
{
    scen_open(shards, 0, NULL);
    struct check_arg w = {{"k01", "k02", "n03"}, 3};
    /* B's shard is written by nobody after the crash: its floor stays raised
     * by the dead writer until recovery. */
    char b[16];
    snprintf(b, sizeof b, "%s", shards ? key_off_shards(w.writes, 3) : "k04");
    char oldb[32], newb[32];
    snprintf(oldb, sizeof oldb, "old-%s", b);
    snprintf(newb, sizeof newb, "new-%s", b);

    int n = 0;
    n += crash(op_set("after-intent", "k01", "new-k01"), 1);
    n += crash(op_key("after-intent", OP_DELETE, "k02"), 1);
    n += crash(op_key("after-intent", OP_INCR, "n03"), 1);
    n += crash(op_set("after-intent", b, newb), 1);
    /* Killed before COMMIT: SQLite rolled every write back. */
    expect_sqlite("k01", "old-k01", NULL, 0);
    expect_sqlite("k02", "old-k02", NULL, 0);
    expect_sqlite("n03", NULL, NULL, 103);
    expect_sqlite(b, oldb, NULL, 0);

    run_checker(checker_child, &w, "a live process after the crashes");
    recover((uint64_t)n);
    if (shards) {
        /* Recovery brings B's shard floor back in line with SQLite: a miss
         * fills again and the next read is a hit. */
        tc_hot_stats s0 = hot_stats(fx.c);
        tu_expect_text(fx.c, TU_TEXT(b), oldb);
        tu_expect_text(fx.c, TU_TEXT(b), oldb);
        tc_hot_stats s1 = hot_stats(fx.c);
        cr_assert_geq(s1.fills - s0.fills, 1,
                      "after recovery a miss on %s's shard does not fill"
                      " (fill_rejects +%llu): its floor stayed raised",
                      b,
                      (unsigned long long)(s1.fill_rejects - s0.fill_rejects));
        cr_assert_geq(s1.hits - s0.hits, 1,
                      "after recovery the second read of %s is no hit", b);
    }
    assert_hot_clean(fx.c, "after recovery");
    assert_all_match(fx.c, "after recovery");
    run_checker(fresh_child, NULL, "a process attaching after recovery");
    clear_and_check();
}

Test(crash, after_intent_fanout)
{
    after_intent(FANOUT);
}

Test(crash, after_intent_plain)
{
    after_intent(TC_SHARDS_PLAIN);
}

/* ===================================================================== */
/* after-commit: killed after COMMIT, before publishing                   */

static void after_commit(int shards)
{
    scen_open(shards, 0, NULL);
    int n = 0;
    n += crash(op_set("after-commit", "k01", "new-k01"), 1);
    n += crash(op_set("after-commit", "fresh1", "new-fresh1"), 1);
    /* Deletes and incrs only invalidate; they may not pass the point. */
    n += crash(op_key("after-commit", OP_DELETE, "k02"), 0);
    n += crash(op_key("after-commit", OP_INCR, "n03"), 0);
    /* Committed: the new values are SQLite's, and the old ones must not be
     * served from the hot tier (checked by every read below). */
    expect_sqlite("k01", "new-k01", NULL, 0);
    expect_sqlite("fresh1", "new-fresh1", NULL, 0);
    expect_sqlite("k02", NULL, NULL, 0);
    expect_sqlite("n03", NULL, NULL, 108);
    struct check_arg w = {{"k01", "fresh1", "k02", "n03"}, 4};
    after_checks(&w, n);
    clear_and_check();
}

Test(crash, after_commit_fanout)
{
    after_commit(FANOUT);
}

Test(crash, after_commit_plain)
{
    after_commit(TC_SHARDS_PLAIN);
}

/* ===================================================================== */
/* in-bucket-lock: killed holding a bucket lock                           */

static void in_bucket_lock(int shards)
{
    scen_open(shards, 0, NULL);
    int n = 0;
    /* The first lock of a write is its intent; later ones publish. */
    n += crash(op_set("in-bucket-lock", "k01", "new-k01"), 1);
    n += crash(op_key("in-bucket-lock", OP_DELETE, "k02"), 1);
    n += crash(op_key("in-bucket-lock", OP_INCR, "n03"), 1);
    n += crash(op_key("in-bucket-lock", OP_GET, "absent1"), 0);
    n += crash(op_set("in-bucket-lock:2", "k04", "new-k04"), 0);
    n += crash(op_set("in-bucket-lock:3", "k05", "new-k05"), 0);
    /* Before or after COMMIT: SQLite holds one of the two values, and every
     * read below must return that one. */
    expect_sqlite("k01", "old-k01", "new-k01", 0);
    expect_sqlite("k02", "old-k02", NULL, 0);
    expect_sqlite("k04", "old-k04", "new-k04", 0);
    expect_sqlite("k05", "old-k05", "new-k05", 0);
    expect_sqlite("absent1", NULL, NULL, 0);

    struct check_arg w = {{"k01", "k02", "n03", "absent1", "k04", "k05"}, 6};
    report->lock_repairs = 0;
    after_checks(&w, n);
    /* k01's lock was held by a dead owner: the checker had to repair it
     * (waiting it out is impossible, skipping it would skip the intent). */
    cr_assert_geq(report->lock_repairs, 1,
                  "the live process met dead owners' bucket locks but"
                  " repaired none");
    clear_and_check();
}

Test(crash, in_bucket_lock_fanout)
{
    in_bucket_lock(FANOUT);
}

Test(crash, in_bucket_lock_plain)
{
    in_bucket_lock(TC_SHARDS_PLAIN);
}

/* ===================================================================== */
/* mid-alloc: killed owning a PRIVATE chunk                                */

static void mid_alloc(int shards)
{
    scen_open(shards, 1, NULL);
    int n = 0;
    n += crash(op_set("mid-alloc", "fresh1", "new-fresh1"), 1); /* publish */
    n += crash(op_set("mid-alloc", "k01", "new-k01"), 1);       /* replace */
    n += crash(op_key("mid-alloc", OP_GET, "k05"), 1);          /* fill */
    /* Publish runs after COMMIT; a fill changes nothing in SQLite. */
    expect_sqlite("fresh1", "new-fresh1", NULL, 0);
    expect_sqlite("k01", "new-k01", NULL, 0);
    expect_sqlite("k05", "old-k05", NULL, 0);
    struct check_arg w = {{"fresh1", "k01", "k05"}, 3};
    after_checks(&w, n);
    clear_and_check();
}

Test(crash, mid_alloc_fanout)
{
    mid_alloc(FANOUT);
}

Test(crash, mid_alloc_plain)
{
    mid_alloc(TC_SHARDS_PLAIN);
}

/* memory_case - NMEM children each die owning a big chunk; recovery alone
 * must return them. With @at_set, even children publish a new big key
 * x<i> and odd ones fill the cold big key b<i>; without, all fill b<i>. */
static void memory_case(int shards, const char *at_set, const char *at_get)
{
    scen_open(shards, 1, preload_big);
    uint64_t f1 = hot_stats(fx.c).free_bytes;
    char *big[NMEM] = {NULL};
    char k[16];
    int n = 0;
    for (int i = 0; i < NMEM; i++) {
        if (at_set && i % 2 == 0) {
            snprintf(k, sizeof k, "x%02d", i);
            big[i] = tu_pattern(BIG_LEN, 1000u + (unsigned)i);
            n += crash(op_set_bytes(at_set, k, big[i], BIG_LEN), 1);
        } else {
            snprintf(k, sizeof k, "b%02d", i);
            n += crash(op_key(at_get, OP_GET, k), 1);
        }
    }
    uint64_t f2 = hot_stats(fx.c).free_bytes;
    recover((uint64_t)n);
    uint64_t f3 = hot_stats(fx.c).free_bytes;
    cr_log_info("free_bytes: %llu before the crashes, %llu with %d dead"
                " children, %llu after recovery",
                (unsigned long long)f1, (unsigned long long)f2, n,
                (unsigned long long)f3);
    /* The children really held memory, more than the tolerance... */
    cr_assert(f2 < f1 && (f1 - f2) * 100 > f1,
              "the dead children held only %lld bytes: the check below"
              " could not see a leak",
              (long long)f1 - (long long)f2);
    /* ...and recovery alone gave all of it back. */
    assert_free_near(f3, f1, "after recovery");
    assert_hot_clean(fx.c, "after recovery");
    assert_all_match(fx.c, "after recovery");
    for (int i = 0; i < NMEM; i++) {
        if (!big[i])
            continue;
        snprintf(k, sizeof k, "x%02d", i);
        tu_expect_value(fx.c, TU_TEXT(k), TC_BYTES, big[i], BIG_LEN);
        free(big[i]);
    }
    clear_and_check();
}

Test(crash, mid_alloc_memory_fanout)
{
    memory_case(FANOUT, "mid-alloc", "mid-alloc");
}

Test(crash, mid_alloc_memory_plain)
{
    memory_case(TC_SHARDS_PLAIN, "mid-alloc", "mid-alloc");
}

/* ===================================================================== */
/* mid-fill: killed holding a fill lease / installing a fill              */

static void mid_fill(int shards)
{
    scen_open(shards, 1, NULL);
    int n = 0;
    /* 1st arrival: lease taken, SQLite not read yet; 2nd: chunk built. */
    n += crash(op_key("mid-fill", OP_GET, "k05"), 1);
    n += crash(op_key("mid-fill", OP_GET_BUF, "k06"), 1);
    n += crash(op_key("mid-fill:2", OP_GET, "n03"), 1);
    n += crash(op_key("mid-fill:2", OP_GET_BUF, "k07"), 1);
    n += crash(op_key("mid-fill", OP_GET, "absent1"), 0);
    expect_sqlite("k05", "old-k05", NULL, 0);
    expect_sqlite("n03", NULL, NULL, 103);
    struct check_arg w = {{"k05", "n03", "k07"}, 3};
    after_checks(&w, n);
    clear_and_check();
}

Test(crash, mid_fill_fanout)
{
    mid_fill(FANOUT);
}

Test(crash, mid_fill_plain)
{
    mid_fill(TC_SHARDS_PLAIN);
}

Test(crash, mid_fill_memory_fanout)
{
    memory_case(FANOUT, NULL, "mid-fill:2");
}

Test(crash, mid_fill_memory_plain)
{
    memory_case(TC_SHARDS_PLAIN, NULL, "mid-fill:2");
}

/* ===================================================================== */
/* Bulk operations and eviction under memory pressure                    */

/* Bulk writes invalidate by bumping the shard's generation and sweep after
 * COMMIT; set_many/delete_many invalidate many keys in one transaction.
 * Killed anywhere in them, nothing stale is served, and what the dead
 * sweep left is swept by the next tc_clear. */
static void bulk(int shards)
{
    scen_open(shards, 0, NULL);
    int n = 0;
    n += crash(op_key("after-intent", OP_CLEAR, "k00"), 1);
    n += crash(op_key("in-bucket-lock:3", OP_CLEAR, "k00"), 0);
    n += crash(op_key("after-intent", OP_SET_MANY, "k10"), 1);
    n += crash(op_key("after-intent:2", OP_DELETE_MANY, "k13"), 1);
    /* Batches commit outside tc__work_end: the point may not be there. */
    n += crash(op_key("after-commit", OP_SET_MANY, "k10"), 0);
    expect_sqlite("k10", "many-k10", NULL, 0);
    expect_sqlite("k12", "many-k12", NULL, 0);
    n += crash(op_key("in-bucket-lock:4", OP_DELETE_MANY, "k13"), 0);
    /* Last: for a FanoutCache it may clear some shards only. */
    n += crash(op_key("after-commit", OP_CLEAR, "k00"), 0);
    struct check_arg w = {{"k00", "k10", "k13", "n03"}, 4};
    after_checks(&w, n);
    clear_and_check();
}

Test(crash, bulk_fanout)
{
    bulk(FANOUT);
}

Test(crash, bulk_plain)
{
    bulk(TC_SHARDS_PLAIN);
}

/* preload_full - more big values than the segment holds: CLOCK eviction
 * is running when the children crash. */
#define NFULL 1000
static void preload_full(tc_cache *c)
{
    char k[16];
    char *v = tu_pattern(BIG_LEN, 7);
    for (int i = 0; i < NFULL; i++) {
        snprintf(k, sizeof k, "f%03d", i);
        v[0] = (char)('A' + i % 26); /* values differ */
        v[1] = (char)('A' + i / 26 % 26);
        tu_set(c, TU_TEXT(k), TU_BYTES(v, BIG_LEN));
    }
    free(v);
}

/* Killed while evicting (holding a victim's bucket locks, or owning the
 * chunk it just took from the index), in a full segment. */
static void eviction(int shards)
{
    scen_open(shards, 0, preload_full);
    tc_hot_stats s0 = hot_stats(fx.c);
    cr_assert_gt(s0.evictions, 0,
                 "the preload evicted nothing: the segment"
                 " never filled up");
    char *v = tu_pattern(BIG_LEN, 99);
    char k[16];
    int n = 0;
    for (int i = 0; i < 16; i++) {
        char at[32];
        /* Lock 1-2: intent, then the victim's, then the install's. */
        snprintf(at, sizeof at, "in-bucket-lock:%d", 1 + i % 6);
        snprintf(k, sizeof k, "e%02d", i);
        n += crash(op_set_bytes(i % 4 == 3 ? "mid-alloc" : at, k, v, BIG_LEN),
                   i % 6 < 2 || i % 4 == 3);
    }
    free(v);
    for (int i = 0; i < NFULL; i += 37) {
        snprintf(k, sizeof k, "f%03d", i);
        key_add(k);
    }
    struct check_arg w = {{"e00", "e01", "e02", "e03", "e05", "f000"}, 6};
    after_checks(&w, n);
    for (int i = 0; i < NFULL; i++) {
        snprintf(k, sizeof k, "f%03d", i);
        key_add(k);
    }
    assert_all_match(fx.c, "every key, after recovery");
    assert_hot_clean(fx.c, "after reading every key");
    clear_and_check();
}

Test(crash, eviction_fanout)
{
    eviction(FANOUT);
}

Test(crash, eviction_plain)
{
    eviction(TC_SHARDS_PLAIN);
}

/* ===================================================================== */
/* Every process slot taken: writers without a slot                       */

struct holder_arg {
    char path[TU_PATH_MAX]; /* the companion lock file */
    int cmd[2];             /* parent -> holder: 'U' frees one slot */
};

/* holder_child - takes the liveness byte lock of every process slot that
 * is free (docs/ARCHITECTURE.md: slot s = OFD write lock on byte s of the
 * companion file), as if that many processes were attached, and keeps
 * them until it is killed. On 'U' it lets go of the lowest one. */
static int holder_child(void *argp, int msgfd)
{
    struct holder_arg *a = argp;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(a->cmd[1]);
    int fd = open(a->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return tu_child_msg(msgfd, "open %s: %s", a->path, strerror(errno));
    static unsigned char held[65536];
    for (int b = 0; b < 65536; b++) {
        struct flock fl = {
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = b, .l_len = 1};
        held[b] = fcntl(fd, F_OFD_SETLK, &fl) == 0;
    }
    tu_child_msg(msgfd, "R");
    char cmd;
    while (read(a->cmd[0], &cmd, 1) == 1) {
        for (int b = 0; b < 65536; b++) {
            if (!held[b])
                continue;
            struct flock fl = {.l_type = F_UNLCK,
                               .l_whence = SEEK_SET,
                               .l_start = b,
                               .l_len = 1};
            fcntl(fd, F_OFD_SETLK, &fl);
            held[b] = 0;
            break;
        }
        tu_child_msg(msgfd, "D");
    }
    for (;;)
        pause();
    return 0;
}

/* noslot_writer - a handle opened while no slot is free writes k01; its
 * write must still invalidate the hot tier for everyone else. */
static int noslot_writer(void *argp, int msgfd)
{
    tc_cache *c = NULL;
    (void)argp;
    alarm(CHECK_ALARM);
    int rc = open_hot(&c);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "open: %s: %s", tc_errname(rc), tc_errmsg());
    rc = tc_set(c, TU_TEXT("k01"), TU_TEXT("new-k01"), TC_NO_EXPIRE, NULL,
                TC_RETRY);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "set: %s: %s", tc_errname(rc), tc_errmsg());
    tc_close(c);
    return 0;
}

struct holder {
    struct child ch;
    int cmd; /* write end of the command pipe */
};

/* take_all_slots - a holder child owning every free slot's byte lock. */
static struct holder take_all_slots(void)
{
    static struct holder_arg a;
    struct stat st;
    cr_assert_eq(stat(fx.dir, &st), 0);
    const char *shm = getenv("TIERCACHE_SHM_DIR");
    snprintf(a.path, sizeof a.path, "%s/tiercache-%llx-%llx.lock",
             shm && *shm ? shm : "/dev/shm", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    cr_assert_eq(access(a.path, F_OK), 0, "no companion lock file %s", a.path);
    cr_assert_eq(pipe(a.cmd), 0);
    struct holder h = {spawn(holder_child, &a), a.cmd[1]};
    close(a.cmd[0]);
    char ready = 0;
    cr_assert_eq(read(h.ch.fd, &ready, 1), 1, "the slot holder died");
    cr_assert_eq(ready, 'R');
    return h;
}

/* free_one_slot - the holder lets exactly one slot go. */
static void free_one_slot(struct holder *h)
{
    char done = 0;
    cr_assert_eq(write(h->cmd, "U", 1), 1);
    cr_assert_eq(read(h->ch.fd, &done, 1), 1, "the slot holder died");
    cr_assert_eq(done, 'D');
}

static void release_slots(struct holder h)
{
    char msg[64];
    kill(h.ch.pid, SIGKILL);
    close(h.cmd);
    (void)reap(h.ch, msg, sizeof msg);
}

/* after_noslot - the usual checks once the slots are free again. */
static void after_noslot(const struct check_arg *w)
{
    uint64_t rec = 0;
    run_checker(checker_child, (void *)w,
                "a live process after the slot-less writers");
    TU_OK(tc_hot_recover(fx.c, &rec));
    assert_hot_clean(fx.c, "after recovery");
    assert_all_match(fx.c, "after recovery");
    run_checker(fresh_child, NULL, "a process attaching after recovery");
    clear_and_check();
}

/* A process that found every slot taken opens a handle and writes k01:
 * it may run cold-only, but its write must still remove k01 from the hot
 * tier, or everyone else keeps reading the old value. */
static void noslot_new_handle(int shards)
{
    scen_open(shards, 0, NULL);
    struct holder holder = take_all_slots();
    run_checker(noslot_writer, NULL, "a writer without a slot");
    release_slots(holder);
    expect_sqlite("k01", "new-k01", NULL, 0);
    struct check_arg w = {{"k01"}, 1};
    after_noslot(&w);
}

/* A forked child cannot claim a slot of its own: it still writes (k03 and
 * k02). A slot-less process takes no bucket lock (it invalidates whole
 * shards), so the k02 write normally completes; if it ever took a lock and
 * died there, nobody may wedge on it. */
static void noslot_forked(int shards)
{
    scen_open(shards, 0, NULL);
    struct holder holder = take_all_slots();
    int died = crash(op_set("in-bucket-lock", "k02", "new-k02"), 0);
    (void)crash(op_set("never-reached", "k03", "new-k03"), 0);
    release_slots(holder);
    expect_sqlite("k02", died ? "old-k02" : "new-k02", NULL, 0);
    expect_sqlite("k03", "new-k03", NULL, 0);
    struct check_arg w = {{"k02", "k03"}, 2};
    after_noslot(&w);
}

/* A process claiming a dead process's slot first recovers what the dead
 * one held (its leases and chunks, under bucket locks and the pool lock).
 * Killed in the middle of that, it must leave locks the next process can
 * repair. Deterministic: one slot X is left free; A takes it and dies
 * installing a fill of k05 (lease and built chunk held); B takes X, starts
 * recovering A, and dies at its first bucket lock. */
static void claim_recovery(int shards)
{
    scen_open(shards, 1, NULL);
    struct holder holder = take_all_slots();
    free_one_slot(&holder);
    (void)crash(op_key("mid-fill:2", OP_GET, "k05"), 1);
    (void)crash(op_key("in-bucket-lock", OP_GET, "k06"), 1);
    release_slots(holder);
    struct check_arg w = {{"k05", "k06"}, 2};
    run_checker(checker_child, &w, "a live process after the crashes");
    uint64_t rec = 0;
    TU_OK(tc_hot_recover(fx.c, &rec));
    cr_assert_geq(rec, 1, "slot X was left dead, nothing recovered");
    assert_hot_clean(fx.c, "after recovery");
    assert_all_match(fx.c, "after recovery");
    run_checker(fresh_child, NULL, "a process attaching after recovery");
    clear_and_check();
}

Test(crash, claim_recovery_fanout)
{
    claim_recovery(FANOUT);
}

Test(crash, claim_recovery_plain)
{
    claim_recovery(TC_SHARDS_PLAIN);
}

Test(crash, noslot_new_handle_fanout)
{
    noslot_new_handle(FANOUT);
}

Test(crash, noslot_new_handle_plain)
{
    noslot_new_handle(TC_SHARDS_PLAIN);
}

Test(crash, noslot_forked_fanout)
{
    noslot_forked(FANOUT);
}

Test(crash, noslot_forked_plain)
{
    noslot_forked(TC_SHARDS_PLAIN);
}

/* ===================================================================== */
/* Random loop: random operations killed anywhere                         */

#define RINT  16 /* n00..n15: integers */
#define RKEYS 48 /* r16..r47: text and bytes */

static const char *const points[] = {"after-intent", "after-commit",
                                     "in-bucket-lock", "mid-alloc", "mid-fill"};

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

struct rnd_arg {
    uint64_t seed;
    char at[48]; /* empty: only the parent's SIGKILL ends the child */
    int fresh;   /* open a handle of its own (an attach) first */
};

static int random_child(void *argp, int msgfd)
{
    const struct rnd_arg *a = argp;
    alarm(CRASH_ALARM);
    tc_cache *c = fx.c;
    int rc;
    if (a->fresh && (rc = open_hot(&c)) != TC_OK)
        return tu_child_msg(msgfd, "open: %s: %s", tc_errname(rc), tc_errmsg());
    if (a->at[0])
        setenv("TIERCACHE_CRASH_AT", a->at, 1);
    uint64_t s = a->seed;
    static char val[2048];
    char k[16];
    for (;;) {
        int ki = (int)(rnd(&s) % RKEYS);
        snprintf(k, sizeof k, "%c%02d", ki < RINT ? 'n' : 'r', ki);
        tc_data key = tc_text(k);
        unsigned what = (unsigned)(rnd(&s) % 11);
        size_t len = rnd(&s) % 10 < 7
                         ? rnd(&s) % 60
                         : 60 + rnd(&s) % (rnd(&s) % 4 ? 400 : 1400);
        for (size_t i = 0; i < len; i++)
            val[i] = (char)('a' + rnd(&s) % 26);
        tc_item it = TC_ITEM_INIT;
        size_t got;
        if (what <= 2) { /* set */
            int64_t iv = (int64_t)(rnd(&s) % 1000);
            tc_data v = ki < RINT   ? tc_int(&iv)
                        : what == 2 ? tc_bytes(val, len)
                                    : tc_textn(val, len);
            /* Tagged items are the ones the rare tc_evict removes. */
            rc = tc_set(c, &key, &v, TC_NO_EXPIRE,
                        rnd(&s) % 3 ? NULL : TU_TEXT("t"), TC_RETRY);
        } else if (what <= 5) {
            rc = tc_get(c, &key, &it, 0);
            tc_item_clear(&it);
        } else if (what == 6) {
            rc = tc_get_buf(c, &key, val, sizeof val, &got, NULL, NULL, 0);
        } else if (what == 7) {
            rc = tc_delete(c, &key, TC_RETRY);
        } else if (what == 10) { /* a batch of 3 keys of @key's kind */
            char kb[3][16];
            tc_data ks[3], vs[3];
            int64_t iv[3];
            for (int i = 0; i < 3; i++) {
                int kj = ki < RINT ? (int)(rnd(&s) % RINT)
                                   : RINT + (int)(rnd(&s) % (RKEYS - RINT));
                snprintf(kb[i], sizeof kb[i], "%c%02d", ki < RINT ? 'n' : 'r',
                         kj);
                ks[i] = tc_text(kb[i]);
                iv[i] = (int64_t)(rnd(&s) % 1000);
                vs[i] = ki < RINT ? tc_int(&iv[i]) : tc_textn(val, len / 3);
            }
            unsigned b = (unsigned)(rnd(&s) % 40);
            if (b == 0) /* rare bulk: invalidates the bystander's items too */
                rc = tc_evict(c, TU_TEXT("t"), NULL, TC_RETRY);
            else if (b % 2)
                rc = tc_set_many(c, ks, vs, 3, TC_NO_EXPIRE, NULL, TC_RETRY);
            else
                rc = tc_delete_many(c, ks, 3, NULL, TC_RETRY);
        } else if (ki < RINT) {
            rc = tc_incr(c, &key, TU_INT(1), TU_INT(0), NULL, TC_RETRY);
        } else {
            rc = tc_contains(c, &key);
        }
        if (rc < 0)
            return tu_child_msg(msgfd, "op %u on %s: %s: %s", what, k,
                                tc_errname(rc), tc_errmsg());
    }
}

/* verify_child - right after a kill, before any recovery: every key reads
 * as SQLite has it, and a write to one of them completes. */
static int verify_child(void *argp, int msgfd)
{
    const char *key = argp;
    char why[1024];
    struct truth tr;
    alarm(CHECK_ALARM);
    if (check_all(fx.c, why, sizeof why))
        return tu_child_msg(msgfd, "reads: %s", why);
    if (truth_open(&tr, why, sizeof why))
        return tu_child_msg(msgfd, "%s", why);
    if (write_and_read(fx.c, &tr, key, why, sizeof why))
        return tu_child_msg(msgfd, "write: %s", why);
    truth_close(&tr);
    tc_close(fx.c);
    return 0;
}

/* bystander_child - a live process working through the whole random loop
 * while children die around it: it must keep making progress (the parent
 * watches report->progress), and it always reads its own last write to its
 * own keys o0..o7 and counter oc. It also reads the shared keys, so its
 * fills and leases meet the dead children's. */
static int bystander_child(void *argp, int msgfd)
{
    uint64_t s = *(const uint64_t *)argp;
    tc_cache *c = NULL;
    int64_t last[8], count = 0;
    char k[16];
    /* Never outlive a parent that failed an assertion. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    int rc = open_hot(&c);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "open: %s: %s", tc_errname(rc), tc_errmsg());
    for (int i = 0; i < 8; i++)
        last[i] = -1;
    while (!atomic_load(&report->stop)) {
        int i = (int)(rnd(&s) % 8);
        unsigned what = (unsigned)(rnd(&s) % 6);
        tc_item it = TC_ITEM_INIT;
        tc_value out = TC_VALUE_INIT;
        snprintf(k, sizeof k, "o%d", i);
        if (what == 0) {
            int64_t v = (int64_t)(rnd(&s) % 1000000);
            rc = tc_set(c, TU_TEXT(k), TU_INT(v), TC_NO_EXPIRE, NULL, TC_RETRY);
            if (rc == TC_OK)
                last[i] = v;
        } else if (what == 1) {
            rc = tc_delete(c, TU_TEXT(k), TC_RETRY);
            if (rc == (last[i] < 0 ? TC_NOTFOUND : TC_OK))
                rc = TC_OK;
            else
                return tu_child_msg(msgfd,
                                    "bystander: delete(%s): %s, but"
                                    " its last write was %lld",
                                    k, tc_errname(rc), (long long)last[i]);
            last[i] = -1;
        } else if (what == 2) {
            rc =
                tc_incr(c, TU_TEXT("oc"), TU_INT(1), TU_INT(0), &out, TC_RETRY);
            if (rc == TC_OK && out.i != ++count)
                return tu_child_msg(msgfd,
                                    "bystander: incr(oc) = %lld,"
                                    " expected %lld",
                                    (long long)out.i, (long long)count);
        } else if (what <= 4) {
            rc = tc_get(c, TU_TEXT(k), &it, 0);
            int ok = last[i] < 0 ? rc == TC_NOTFOUND
                                 : rc == TC_OK && it.value.type == TC_INT &&
                                       it.value.i == last[i];
            if (!ok)
                return tu_child_msg(msgfd,
                                    "bystander: get(%s): %s %lld,"
                                    " but its last write was %lld",
                                    k, tc_errname(rc), (long long)it.value.i,
                                    (long long)last[i]);
            rc = TC_OK;
        } else {
            rc = tc_get(c, TU_TEXT(keys[rnd(&s) % (uint64_t)nkeys]), &it, 0);
            if (rc == TC_NOTFOUND)
                rc = TC_OK;
        }
        tc_item_clear(&it);
        tc_value_clear(&out);
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "bystander: op %u on %s: %s: %s", what,
                                k, tc_errname(rc), tc_errmsg());
        atomic_fetch_add(&report->progress, 1);
    }
    tc_close(c);
    return 0;
}

/* bystander_alive - fail if the bystander stopped, or made no progress
 * since @since for 10 s (wedged). */
static void bystander_alive(struct child by, uint64_t since, const char *when)
{
    char msg[1024], st_s[128];
    for (int ms = 0; atomic_load(&report->progress) == since; ms++) {
        int st = 0;
        if (waitpid(by.pid, &st, WNOHANG) == by.pid) {
            ssize_t r = read(by.fd, msg, sizeof msg - 1);
            msg[r > 0 ? r : 0] = 0;
            cr_assert_fail("%s: the bystander ended: %s: %s", when,
                           status_str(st, st_s, sizeof st_s), msg);
        }
        if (ms >= 10000) {
            kill(by.pid, SIGKILL);
            cr_assert_fail("%s: the bystander made no progress for 10 s"
                           " (wedged)",
                           when);
        }
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
}

/* final_child - the random loop's end state, checked under an alarm: one
 * recovery pass, a clean segment, every key as SQLite has it. */
static int final_child(void *argp, int msgfd)
{
    char why[1024];
    struct problems p;
    uint64_t n = 0;
    (void)argp;
    alarm(CHECK_ALARM);
    int rc = tc_hot_recover(fx.c, &n);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "tc_hot_recover: %s", tc_errname(rc));
    if ((n = hot_problems(fx.c, &p)) != 0)
        return tu_child_msg(msgfd, "tc_hot_check: %llu, first: %s",
                            (unsigned long long)n, p.first);
    if (check_all(fx.c, why, sizeof why))
        return tu_child_msg(msgfd, "%s", why);
    tc_close(fx.c);
    return 0;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void random_loop(int shards)
{
    /* CI: 200 iterations or 60 s; TC_CRASH_ITERATIONS=N runs N, untimed. */
    const char *env = getenv("TC_CRASH_ITERATIONS");
    long iters = env ? atol(env) : 200;
    double budget = env ? 1e12 : 60.0;
    env = getenv("TC_CRASH_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    cr_log_info("random loop: seed %llu (TC_CRASH_SEED), %ld iterations",
                (unsigned long long)seed, iters);

    scen_reset(shards);
    fx.c = tu_open_hot(fx.dir, shards, NULL, TU_HOT_SIZE);
    sc.free0 = hot_stats(fx.c).free_bytes;
    for (int i = 0; i < RKEYS; i++) {
        char k[16];
        snprintf(k, sizeof k, "%c%02d", i < RINT ? 'n' : 'r', i);
        key_add(k);
    }

    uint64_t ps = seed, bseed = rnd(&ps);
    struct child by = spawn(bystander_child, &bseed);
    long it, by_point = 0;
    double t0 = mono();
    for (it = 0; it < iters && mono() - t0 < budget; it++) {
        struct rnd_arg a = {rnd(&ps), "", 0};
        uint64_t r = rnd(&ps);
        if (r % 6 != 5)
            snprintf(a.at, sizeof a.at, "%s:%d", points[r % 5],
                     1 + (int)((r >> 8) % 8));
        a.fresh = (r >> 16) % 4 == 0;
        struct child ch = spawn(random_child, &a);
        struct timespec d = {0, (long)((r >> 24) % 12000 + 200) * 1000};
        nanosleep(&d, NULL);
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)ch.pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
                0 &&
            si.si_pid == ch.pid)
            by_point++; /* gone before our kill (a point, or an error) */
        kill(ch.pid, SIGKILL);
        char msg[1024], s[128];
        int st = reap(ch, msg, sizeof msg);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "iteration %ld (TC_CRASH_SEED=%llu, at '%s', fresh %d):"
                  " child %s: %s",
                  it, (unsigned long long)seed, a.at, a.fresh,
                  status_str(st, s, sizeof s), msg);

        char what[160];
        snprintf(what, sizeof what,
                 "iteration %ld (TC_CRASH_SEED=%llu, at '%s', fresh %d)", it,
                 (unsigned long long)seed, a.at, a.fresh);
        uint64_t seen = atomic_load(&report->progress);
        run_checker(verify_child, keys[r % (uint64_t)nkeys], what);
        bystander_alive(by, seen, what);
        /* Only in long manual runs: keep process slots from running out. */
        if (it % 500 == 499) {
            uint64_t n = 0;
            TU_OK(tc_hot_recover(fx.c, &n));
        }
    }
    atomic_store(&report->stop, 1);
    char msg[1024], st_s[128];
    int st = reap(by, msg, sizeof msg);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bystander: %s: %s",
              status_str(st, st_s, sizeof st_s), msg);
    cr_log_info("bystander: %llu operations",
                (unsigned long long)atomic_load(&report->progress));
    for (int i = 0; i < 8; i++) {
        char k[16];
        snprintf(k, sizeof k, "o%d", i);
        key_add(k);
    }
    key_add("oc");

    tc_hot_stats s = hot_stats(fx.c);
    cr_log_info("random loop: %ld iterations in %.1f s, %ld died at their"
                " point; hits %llu misses %llu fills %llu publishes %llu"
                " lock_repairs %llu recovered %llu processes %u",
                it, mono() - t0, by_point, (unsigned long long)s.hits,
                (unsigned long long)s.misses, (unsigned long long)s.fills,
                (unsigned long long)s.publishes,
                (unsigned long long)s.lock_repairs,
                (unsigned long long)s.recovered, s.processes);
    cr_assert_gt(s.hits + s.fills + s.publishes, 0,
                 "the hot tier was never used: the loop tested nothing");

    /* The parent has no alarm: a child tries the recovery pass first. */
    run_checker(final_child, NULL, "recovery and checks after the loop");
    uint64_t n = 0;
    TU_OK(tc_hot_recover(fx.c, &n));
    cr_log_info("final tc_hot_recover: %llu slot(s)", (unsigned long long)n);
    assert_hot_clean(fx.c, "after the random loop and recovery");
    assert_all_match(fx.c, "after the random loop and recovery");
    clear_and_check();
}

/* Long: TC_CRASH_ITERATIONS runs are bounded by the iteration count only
 * (the CI default stops after 60 s). */
Test(crash, random_fanout, .timeout = 7200)
{
    random_loop(FANOUT);
}

Test(crash, random_plain, .timeout = 7200)
{
    random_loop(TC_SHARDS_PLAIN);
}
