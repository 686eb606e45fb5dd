/*
 * test_recipes.c - the recipes of tiercache.h ("Recipes") within one
 * process and across several: Lock, RLock, BoundedSemaphore, Averager,
 * throttle and memoize_stampede.
 *
 * House style of the mp suite: every child opens its own handle after
 * fork(), children start together behind a pipe barrier, and the parent
 * asserts exit statuses and the final state. Children never cr_assert;
 * they report through a pipe and their exit code.
 *
 * Properties, not schedules: counters add up exactly, two holders never
 * overlap, waiting writes (almost) nothing. The timing bounds asserted are
 * the documented ones: a dead holder's lock is taken over within
 * 2 * TC_LOCK_LIVENESS_BOUND seconds of its death, and throttle keeps its
 * rate; every other timing check has a wide margin.
 *
 * Every cache here is created with a hot tier: dead-holder detection uses
 * the segment's process slots (tiercache.h, "Recipes").
 */
#include <float.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include "testutil.h"

#define CHILD_ALARM 120 /* seconds: no child outlives a hung test */
#define MAX_KIDS    8

/* Children the parent still has to reap: teardown kills what a failed
 * assertion left behind (a holder blocks in pause() until killed). */
static pid_t live_kids[MAX_KIDS];

static void kids_add(pid_t pid)
{
    for (int i = 0; i < MAX_KIDS; i++)
        if (!live_kids[i]) {
            live_kids[i] = pid;
            return;
        }
}

static void kids_forget(pid_t pid)
{
    for (int i = 0; i < MAX_KIDS; i++)
        if (live_kids[i] == pid)
            live_kids[i] = 0;
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* a dead peer must be an error, not a kill */
    memset(live_kids, 0, sizeof live_kids);
    tu_fx_init("mprecipes");
}

static void teardown(void)
{
    for (int i = 0; i < MAX_KIDS; i++)
        if (live_kids[i] > 0) {
            kill(live_kids[i], SIGKILL);
            (void)tu_wait_exit(live_kids[i]);
            live_kids[i] = 0;
        }
    tu_fx_fini();
}

TestSuite(recipes, .init = setup, .fini = teardown, .timeout = 300);

/* ===================================================================== */
/* Helpers                                                               */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    if (!(s > 0))
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* rc_open_ex - a handle on fx.dir with @hot bytes of hot tier and
 * eviction_policy "none" (@clk may be NULL). Safe in a child: on failure
 * it reports on @msgfd (when >= 0, as "!..." so kid pipes see a failure)
 * and returns NULL. */
static tc_cache *rc_open_ex(int shards, struct tu_clock *clk, uint64_t hot,
                            int msgfd)
{
    tc_cache *c = NULL;
    tc_data none = tc_text("none");
    int rc = tc_create(&c);
    if (rc == TC_OK)
        rc = tc_set_hot_size(c, hot);
    if (rc == TC_OK)
        rc = tc_set_shards(c, shards);
    if (rc == TC_OK)
        rc = tc_set_setting(c, "eviction_policy", &none);
    if (rc == TC_OK && clk)
        rc = tc_set_clock(c, tu_clock_fn, clk);
    if (rc == TC_OK)
        rc = tc_open(c, fx.dir, 0);
    if (rc != TC_OK) {
        if (msgfd >= 0)
            tu_child_msg(msgfd, "!open %s: %s: %s\n", fx.dir, tc_errname(rc),
                         tc_errmsg());
        tc_close(c);
        return NULL;
    }
    return c;
}

static tc_cache *rc_open(int shards, struct tu_clock *clk, int msgfd)
{
    return rc_open_ex(shards, clk, TU_HOT_SIZE, msgfd);
}

/* parent_open - rc_open for the parent, asserted; the handle must have a
 * segment, or no holder could ever be judged dead. */
static tc_cache *parent_open(int shards, struct tu_clock *clk)
{
    tc_cache *c = NULL;
    tc_data none = tc_text("none");
    TU_OK(tc_create(&c));
    TU_OK(tc_set_hot_size(c, TU_HOT_SIZE));
    TU_OK(tc_set_shards(c, shards));
    TU_OK(tc_set_setting(c, "eviction_policy", &none));
    if (clk)
        TU_OK(tc_set_clock(c, tu_clock_fn, clk));
    TU_OK(tc_open(c, fx.dir, 0));
    tc_hot_stats hs = tu_hot_stats(c);
    cr_assert(hs.attached, "no hot-tier segment: dead holders undetectable");
    return c;
}

/* create_cache - create fx.dir (and its segment) and close it again, so
 * children open an existing cache. */
static void create_cache(int shards)
{
    tc_cache *c = parent_open(shards, NULL);
    tc_close(c);
}

/* get_int - the INTEGER at @k into *@v (0 when missing). */
static int get_int(tc_cache *c, const tc_data *k, int64_t *v)
{
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(c, k, &it, TC_RETRY);
    *v = 0;
    if (rc == TC_NOTFOUND)
        return TC_OK;
    if (rc == TC_OK) {
        if (it.value.type != TC_INT)
            rc = TC_ETYPE;
        else
            *v = it.value.i;
    }
    tc_item_clear(&it);
    return rc;
}

/* incr - atomic add of @d to the INTEGER at TEXT key @k (missing: 0). */
static int incr(tc_cache *c, const char *k, int64_t d, int64_t *out)
{
    tc_value v = TC_VALUE_INIT;
    int rc = tc_incr(c, TU_TEXT(k), TU_INT(d), TU_INT(0), &v, TC_RETRY);
    if (rc == TC_OK && out)
        *out = v.i;
    tc_value_clear(&v);
    return rc;
}

/* p_int - the INTEGER at TEXT key @k in the parent (0 when missing). */
static int64_t p_int(tc_cache *c, const char *k)
{
    int64_t v = 0;
    TU_OK(get_int(c, TU_TEXT(k), &v));
    return v;
}

/* commits - the sum of every shard's commit_seq. */
static uint64_t commits(tc_cache *c)
{
    int n = tc_shard_count(c);
    uint64_t sum = 0;
    for (int i = 0; i < (n ? n : 1); i++) {
        uint64_t s = 0;
        TU_OK(tc_commit_seq(c, i, &s));
        sum += s;
    }
    return sum;
}


/* ---- a group of equal children started together ---------------------- */

typedef int (*proc_fn)(int idx, void *arg, int msgfd);

static struct tu_barrier *go_barrier;
static int go_ready_fd = -1;

/* child_go - in a child, once its handle is open: say so, then wait until
 * every sibling has said so too. */
static void child_go(void)
{
    (void)!write(go_ready_fd, "r", 1);
    close(go_ready_fd);
    tu_barrier_wait(go_barrier);
}

/* run_procs - fork @n children running @fn(i, @arg, msgfd), start them
 * together, and assert that every one exits 0 (their messages explain any
 * failure). */
static void run_procs(int n, proc_fn fn, void *arg)
{
    struct tu_barrier b;
    pid_t pids[MAX_KIDS];
    int msgs[2], ready[2];
    cr_assert_leq(n, MAX_KIDS);
    tu_barrier_init(&b);
    cr_assert_eq(pipe(msgs), 0);
    cr_assert_eq(pipe(ready), 0);
    go_barrier = &b;
    go_ready_fd = ready[1];
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0, "fork: %s", strerror(errno));
        if (pids[i] == 0) {
            close(msgs[0]);
            close(ready[0]);
            alarm(CHILD_ALARM);
            _exit(fn(i, arg, msgs[1]));
        }
        kids_add(pids[i]);
    }
    close(msgs[1]);
    close(ready[1]);
    /* Every child is ready (or dead: EOF), then all go at once. */
    char ch;
    for (int got = 0; got < n;) {
        ssize_t r = read(ready[0], &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got++;
    }
    close(ready[0]);
    tu_barrier_release(&b);
    char msg[4096];
    tu_read_msgs(msgs[0], msg, sizeof msg);
    int codes[MAX_KIDS];
    for (int i = 0; i < n; i++) {
        codes[i] = tu_wait_exit(pids[i]);
        kids_forget(pids[i]);
    }
    for (int i = 0; i < n; i++)
        cr_assert_eq(codes[i], 0, "child %d exited %d: %s", i, codes[i], msg);
}

/* ---- one child driven step by step (a "kid") -------------------------- */
/*
 * A kid reports events on its pipe as single bytes (some followed by a
 * binary payload); a failure is "!" followed by text, then a nonzero exit.
 */
struct kid {
    pid_t pid;
    int fd;
};

typedef int (*kid_fn)(void *arg, int fd);

static void kid_start(struct kid *k, kid_fn fn, void *arg)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    k->pid = fork();
    cr_assert_geq(k->pid, 0, "fork: %s", strerror(errno));
    if (k->pid == 0) {
        close(p[0]);
        alarm(CHILD_ALARM);
        _exit(fn(arg, p[1]));
    }
    kids_add(k->pid);
    close(p[1]);
    k->fd = p[0];
}

static int kid_reap(struct kid *k)
{
    int code = tu_wait_exit(k->pid);
    kids_forget(k->pid);
    return code;
}

/* kid_fail - kill and reap the kid, then fail with @what and its text. */
static void kid_fail(struct kid *k, const char *what)
{
    char msg[2048];
    kill(k->pid, SIGKILL);
    tu_read_msgs(k->fd, msg, sizeof msg);
    int code = kid_reap(k);
    cr_assert_fail("%s (kid exit %d): %s", what, code, msg);
}

/* kid_expect - the kid's next event must be @ev within @timeout s. */
static void kid_expect(struct kid *k, char ev, double timeout)
{
    struct pollfd p = {k->fd, POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, (int)(timeout * 1000))) < 0 && errno == EINTR)
        ;
    char ch = 0;
    if (r == 1 && read(k->fd, &ch, 1) == 1 && ch == ev)
        return;
    char what[96];
    snprintf(what, sizeof what, "expected event '%c' from the kid, got %s%c",
             ev, r == 1 ? "" : "a timeout", r == 1 ? ch : ' ');
    kid_fail(k, what);
}

static void kid_payload(struct kid *k, void *p, size_t n)
{
    if (tu_read_full(k->fd, p, n) != 0)
        kid_fail(k, "short payload from the kid");
}

/* kid_finish - the kid must exit 0 (its leftover text is the reason). */
static void kid_finish(struct kid *k)
{
    char msg[2048];
    tu_read_msgs(k->fd, msg, sizeof msg);
    int code = kid_reap(k);
    cr_assert_eq(code, 0, "kid exited %d: %s", code, msg);
}

/* kid_quiet - 1 if the kid has reported nothing since the last event. */
static int kid_quiet(struct kid *k)
{
    struct pollfd p = {k->fd, POLLIN, 0};
    return poll(&p, 1, 0) == 0;
}

#define KID_FAIL(fd, ...) tu_child_msg((fd), "!" __VA_ARGS__)

static int kid_event(int fd, char ev)
{
    return tu_write_full(fd, &ev, 1);
}

/* ===================================================================== */
/* 1. Lock: mutual exclusion across processes                            */

#define LOCK_PROCS 4
#define LOCK_ITERS 200

struct lock_arg {
    int shards;
};

static int lock_child(int idx, void *argp, int fd)
{
    struct lock_arg *a = argp;
    tc_cache *c = rc_open(a->shards, NULL, fd);
    if (!c)
        return 1;
    const tc_data *lk = TU_TEXT("lock"), *ck = TU_TEXT("counter"),
                  *mk = TU_TEXT("inside");
    child_go();
    int code = 0;
    for (int i = 0; i < LOCK_ITERS && !code; i++) {
        int rc = tc_lock_acquire(c, lk, TC_NO_EXPIRE, 60);
        if (rc != TC_OK) {
            code = tu_child_msg(fd, "child %d iter %d: acquire: %s: %s\n", idx,
                                i, tc_errname(rc), tc_errmsg());
            break;
        }
        /* Nobody else is inside: the marker is absent. */
        rc = tc_add(c, mk, TU_INT(idx), TC_NO_EXPIRE, NULL, TC_RETRY);
        if (rc != TC_OK) {
            code =
                tu_child_msg(fd,
                             "child %d iter %d: the inside marker was %s "
                             "on entry (%s): two holders at once\n",
                             idx, i, rc == TC_EXISTS ? "present" : "unreadable",
                             tc_errname(rc));
            break;
        }
        /* A read-modify-write that only the lock makes atomic. */
        int64_t n = 0;
        rc = get_int(c, ck, &n);
        if (rc == TC_OK && i % 4 == 0)
            usleep(200); /* widen the window a broken lock would lose in */
        if (rc == TC_OK)
            rc = tc_set(c, ck, TU_INT(n + 1), TC_NO_EXPIRE, NULL, TC_RETRY);
        int64_t who = -1;
        if (rc == TC_OK)
            rc = get_int(c, mk, &who);
        if (rc != TC_OK) {
            code = tu_child_msg(fd, "child %d iter %d: counter: %s: %s\n", idx,
                                i, tc_errname(rc), tc_errmsg());
            break;
        }
        if (who != idx) {
            code = tu_child_msg(fd,
                                "child %d iter %d: the inside marker says "
                                "%lld: two holders at once\n",
                                idx, i, (long long)who);
            break;
        }
        rc = tc_delete(c, mk, TC_RETRY);
        if (rc != TC_OK) {
            code = tu_child_msg(fd,
                                "child %d iter %d: deleting the marker: %s "
                                "(someone else removed it)\n",
                                idx, i, tc_errname(rc));
            break;
        }
        rc = tc_lock_release(c, lk);
        if (rc != TC_OK)
            code = tu_child_msg(fd, "child %d iter %d: release: %s: %s\n", idx,
                                i, tc_errname(rc), tc_errmsg());
    }
    tc_close(c);
    return code;
}

static void run_lock_exclusion(int shards)
{
    struct lock_arg a = {shards};
    create_cache(shards);
    run_procs(LOCK_PROCS, lock_child, &a);
    fx.c = parent_open(shards, NULL);
    cr_assert_eq(p_int(fx.c, "counter"), LOCK_PROCS * LOCK_ITERS,
                 "counter %lld after %d locked increments: the lock let two "
                 "holders in",
                 (long long)p_int(fx.c, "counter"), LOCK_PROCS * LOCK_ITERS);
    tu_expect_missing(fx.c, TU_TEXT("inside"));
    TU_RC(tc_lock_locked(fx.c, TU_TEXT("lock")), TC_NOTFOUND);
    tu_expect_missing(fx.c, TU_TEXT("lock"));
    uint64_t w = 99;
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0, "check found %llu problems", (unsigned long long)w);
}

Test(recipes, lock_mutual_exclusion_cache)
{
    run_lock_exclusion(TC_SHARDS_PLAIN);
}

Test(recipes, lock_mutual_exclusion_fanout)
{
    run_lock_exclusion(4);
}

/* tc_barrier: the same read-modify-write, as a callback, under each kind
 * of lock. */
struct barrier_ctx {
    tc_cache *c;
    int bad;
};

static int barrier_body(void *arg)
{
    struct barrier_ctx *x = arg;
    if (tc_add(x->c, TU_TEXT("inside"), TU_INT(1), TC_NO_EXPIRE, NULL,
               TC_RETRY) != TC_OK)
        x->bad++;
    int64_t n = 0;
    int rc = get_int(x->c, TU_TEXT("counter"), &n);
    if (rc == TC_OK)
        rc = tc_set(x->c, TU_TEXT("counter"), TU_INT(n + 1), TC_NO_EXPIRE, NULL,
                    TC_RETRY);
    if (tc_delete(x->c, TU_TEXT("inside"), TC_RETRY) != TC_OK)
        x->bad++;
    return rc == TC_OK ? 7 : rc; /* 7: tc_barrier passes it back */
}

static int barrier_child(int idx, void *argp, int fd)
{
    int kind = *(int *)argp;
    struct barrier_ctx x = {rc_open(TC_SHARDS_PLAIN, NULL, fd), 0};
    if (!x.c)
        return 1;
    child_go();
    for (int i = 0; i < 100; i++) {
        int rc =
            tc_barrier(x.c, TU_TEXT("b"), kind, TC_NO_EXPIRE, barrier_body, &x);
        if (rc != 7)
            return tu_child_msg(fd, "child %d: tc_barrier: %d (%s)\n", idx, rc,
                                tc_errmsg());
    }
    tc_close(x.c);
    return x.bad ? tu_child_msg(fd, "child %d: two callers inside %d times\n",
                                idx, x.bad)
                 : 0;
}

Test(recipes, barrier_runs_one_call_at_a_time)
{
    static const int kinds[] = {TC_BARRIER_LOCK, TC_BARRIER_RLOCK,
                                TC_BARRIER_SEMAPHORE};
    for (size_t k = 0; k < 3; k++) {
        int kind = kinds[k];
        create_cache(TC_SHARDS_PLAIN);
        run_procs(3, barrier_child, &kind);
        fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
        cr_assert_eq(p_int(fx.c, "counter"), 300, "kind %d: counter %lld", kind,
                     (long long)p_int(fx.c, "counter"));
        TU_RC(
            tc_barrier(fx.c, TU_TEXT("b"), 9, TC_NO_EXPIRE, barrier_body, NULL),
            TC_EINVAL);
        TU_OK(tc_delete(fx.c, TU_TEXT("counter"), 0));
        tc_close(fx.c);
        fx.c = NULL;
    }
}

/* A Lock is not re-entrant, is visible to other processes, and only its
 * holder releases it. */
static int lock_probe_child(void *argp, int fd)
{
    (void)argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    const tc_data *k = TU_TEXT("lk");
    int rc;
    if ((rc = tc_lock_locked(c, k)) != TC_OK)
        return tu_child_msg(fd, "locked: %s, expected OK\n", tc_errname(rc));
    if ((rc = tc_lock_acquire(c, k, TC_NO_EXPIRE, 0)) != TC_EXISTS)
        return tu_child_msg(fd, "acquire(0): %s, expected EXISTS\n",
                            tc_errname(rc));
    if ((rc = tc_lock_acquire(c, k, TC_NO_EXPIRE, 0.3)) != TC_EXISTS)
        return tu_child_msg(fd, "acquire(0.3): %s, expected EXISTS\n",
                            tc_errname(rc));
    if ((rc = tc_lock_release(c, k)) != TC_EPERM)
        return tu_child_msg(fd, "release by a non-holder: %s, expected EPERM\n",
                            tc_errname(rc));
    tc_close(c);
    return 0;
}

Test(recipes, lock_basics)
{
    char msg[1024];
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    const tc_data *k = TU_TEXT("lk");
    TU_RC(tc_lock_locked(fx.c, k), TC_NOTFOUND);
    TU_RC(tc_lock_release(fx.c, k), TC_NOTFOUND);
    TU_OK(tc_lock_acquire(fx.c, k, TC_NO_EXPIRE, 0));
    TU_OK(tc_lock_locked(fx.c, k));
    /* Not re-entrant, not even for its own holder. */
    TU_RC(tc_lock_acquire(fx.c, k, TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_RC(tc_lock_acquire(fx.c, k, TC_NO_EXPIRE, 0.05), TC_EXISTS);
    /* The key names its holder. */
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(fx.c, k, &it, 0));
    cr_assert(it.value.type == TC_TEXT &&
                  !strncmp(it.value.ptr, "tiercache-owner ", 16),
              "the lock key does not hold an owner record");
    tc_item_clear(&it);
    int code = tu_run_child(lock_probe_child, NULL, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    TU_OK(tc_lock_release(fx.c, k));
    TU_RC(tc_lock_locked(fx.c, k), TC_NOTFOUND);
    TU_RC(tc_lock_release(fx.c, k), TC_NOTFOUND);
    tu_expect_missing(fx.c, k);
}

/* ===================================================================== */
/* 2. BoundedSemaphore(value=2) across processes                         */

#define SEM_PROCS 4
#define SEM_ITERS 50
#define SEM_VALUE 2

static int sem_child(int idx, void *argp, int fd)
{
    (void)argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    const tc_data *sk = TU_TEXT("sem");
    child_go();
    int code = 0;
    for (int i = 0; i < SEM_ITERS && !code; i++) {
        int rc = tc_sem_acquire(c, sk, SEM_VALUE, TC_NO_EXPIRE, 60);
        if (rc != TC_OK) {
            code = tu_child_msg(fd, "child %d iter %d: acquire: %s: %s\n", idx,
                                i, tc_errname(rc), tc_errmsg());
            break;
        }
        int64_t in = 0;
        char seen[32];
        rc = incr(c, "in", 1, &in);
        if (rc == TC_OK) {
            /* Histogram of the concurrency seen: seen-<n> counts it. */
            snprintf(seen, sizeof seen, "seen-%lld", (long long)in);
            rc = incr(c, seen, 1, NULL);
        }
        if (rc == TC_OK && in > SEM_VALUE) {
            rc = incr(c, "over", 1, NULL);
            code = tu_child_msg(fd,
                                "child %d iter %d: %lld holders inside a "
                                "semaphore of %d\n",
                                idx, i, (long long)in, SEM_VALUE);
        }
        if (rc == TC_OK)
            usleep(2000);
        if (rc == TC_OK)
            rc = incr(c, "total", 1, NULL);
        if (rc == TC_OK)
            rc = incr(c, "in", -1, NULL);
        if (rc == TC_OK)
            rc = tc_sem_release(c, sk, SEM_VALUE, TC_NO_EXPIRE);
        if (rc != TC_OK)
            code = tu_child_msg(fd, "child %d iter %d: %s: %s\n", idx, i,
                                tc_errname(rc), tc_errmsg());
    }
    tc_close(c);
    return code;
}

Test(recipes, semaphore_bounds_concurrency)
{
    create_cache(TC_SHARDS_PLAIN);
    run_procs(SEM_PROCS, sem_child, NULL);
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    cr_assert_eq(p_int(fx.c, "total"), SEM_PROCS * SEM_ITERS,
                 "total %lld, expected %d", (long long)p_int(fx.c, "total"),
                 SEM_PROCS * SEM_ITERS);
    cr_assert_eq(p_int(fx.c, "in"), 0);
    cr_assert_eq(p_int(fx.c, "over"), 0);
    int64_t maxseen = 0;
    for (int n = 1; n <= SEM_PROCS + 1; n++) {
        char k[32];
        snprintf(k, sizeof k, "seen-%d", n);
        if (p_int(fx.c, k) > 0)
            maxseen = n;
    }
    cr_assert_leq(maxseen, SEM_VALUE,
                  "concurrency %lld inside a semaphore of %d",
                  (long long)maxseen, SEM_VALUE);
    cr_log_info("semaphore: max concurrency %lld, %lld of %d entries at 2",
                (long long)maxseen, (long long)p_int(fx.c, "seen-2"),
                SEM_PROCS * SEM_ITERS);
    /* Every permit is back: python-diskcache's INTEGER of free permits. */
    tu_expect_int(fx.c, TU_TEXT("sem"), SEM_VALUE);
    TU_RC(tc_sem_release(fx.c, TU_TEXT("sem"), SEM_VALUE, TC_NO_EXPIRE),
          TC_EPERM);
}

static int sem_probe_child(void *argp, int fd)
{
    (void)argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    int rc = tc_sem_acquire(c, TU_TEXT("s2"), SEM_VALUE, TC_NO_EXPIRE, 0.2);
    tc_close(c);
    if (rc != TC_EXISTS)
        return tu_child_msg(fd, "acquire of a full semaphore: %s\n",
                            tc_errname(rc));
    return 0;
}

/* Exactly @value permits, in one process and seen from another. */
Test(recipes, semaphore_permits)
{
    char msg[1024];
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    const tc_data *k = TU_TEXT("s2");
    TU_RC(tc_sem_release(fx.c, k, SEM_VALUE, TC_NO_EXPIRE), TC_EPERM);
    TU_OK(tc_sem_acquire(fx.c, k, SEM_VALUE, TC_NO_EXPIRE, 0));
    tu_expect_int(fx.c, k, 1);
    TU_OK(tc_sem_acquire(fx.c, k, SEM_VALUE, TC_NO_EXPIRE, 0));
    tu_expect_int(fx.c, k, 0);
    TU_RC(tc_sem_acquire(fx.c, k, SEM_VALUE, TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_RC(tc_sem_acquire(fx.c, k, SEM_VALUE, TC_NO_EXPIRE, 0.05), TC_EXISTS);
    int code = tu_run_child(sem_probe_child, NULL, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    TU_OK(tc_sem_release(fx.c, k, SEM_VALUE, TC_NO_EXPIRE));
    TU_OK(tc_sem_acquire(fx.c, k, SEM_VALUE, TC_NO_EXPIRE, 0));
    TU_OK(tc_sem_release(fx.c, k, SEM_VALUE, TC_NO_EXPIRE));
    TU_OK(tc_sem_release(fx.c, k, SEM_VALUE, TC_NO_EXPIRE));
    tu_expect_int(fx.c, k, SEM_VALUE);
    TU_RC(tc_sem_release(fx.c, k, SEM_VALUE, TC_NO_EXPIRE), TC_EPERM);
    tu_expect_int(fx.c, k, SEM_VALUE);
}

/* ===================================================================== */
/* 3. RLock                                                              */

struct rthread {
    tc_cache *c;
    int acq, rel;
};

static void *rlock_thread(void *arg)
{
    struct rthread *t = arg;
    t->acq = tc_rlock_acquire(t->c, TU_TEXT("rl"), NULL, TC_NO_EXPIRE, 0);
    t->rel = tc_rlock_release(t->c, TU_TEXT("rl"), NULL);
    return NULL;
}

/* Another process: even naming the holder's thread id, it is not the
 * holder. */
static int rlock_other_child(void *argp, int fd)
{
    (void)argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    const tc_data *k = TU_TEXT("rl");
    int rc;
    if ((rc = tc_lock_locked(c, k)) != TC_OK)
        return tu_child_msg(fd, "locked: %s, expected OK\n", tc_errname(rc));
    if ((rc = tc_rlock_acquire(c, k, "main", TC_NO_EXPIRE, 0)) != TC_EXISTS)
        return tu_child_msg(fd, "acquire as \"main\": %s, expected EXISTS\n",
                            tc_errname(rc));
    if ((rc = tc_rlock_acquire(c, k, NULL, TC_NO_EXPIRE, 0.3)) != TC_EXISTS)
        return tu_child_msg(fd, "acquire(0.3): %s, expected EXISTS\n",
                            tc_errname(rc));
    if ((rc = tc_rlock_release(c, k, "main")) != TC_EPERM)
        return tu_child_msg(fd,
                            "rlock release as \"main\": %s, expected "
                            "EPERM\n",
                            tc_errname(rc));
    if ((rc = tc_rlock_release(c, k, NULL)) != TC_EPERM)
        return tu_child_msg(fd, "rlock release: %s, expected EPERM\n",
                            tc_errname(rc));
    if ((rc = tc_lock_release(c, k)) != TC_EPERM)
        return tu_child_msg(fd, "lock release: %s, expected EPERM\n",
                            tc_errname(rc));
    tc_close(c);
    return 0;
}

/* Once it is free, another process takes it at once. */
static int rlock_take_child(void *argp, int fd)
{
    (void)argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    const tc_data *k = TU_TEXT("rl");
    int rc;
    if ((rc = tc_rlock_acquire(c, k, "main", TC_NO_EXPIRE, 0)) != TC_OK)
        return tu_child_msg(fd, "acquire of a free rlock: %s\n",
                            tc_errname(rc));
    if ((rc = tc_rlock_release(c, k, "main")) != TC_OK)
        return tu_child_msg(fd, "release: %s\n", tc_errname(rc));
    tc_close(c);
    return 0;
}

Test(recipes, rlock_reentrant_and_exclusive)
{
    char msg[1024];
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    const tc_data *k = TU_TEXT("rl");
    int rc;
    /* Re-entrant for one (process, thread id). */
    TU_OK(tc_rlock_acquire(fx.c, k, "main", TC_NO_EXPIRE, 0));
    TU_OK(tc_rlock_acquire(fx.c, k, "main", TC_NO_EXPIRE, 0));
    TU_OK(tc_lock_locked(fx.c, k));
    /* Another thread id of this process can neither take nor release it. */
    TU_RC(tc_rlock_acquire(fx.c, k, "other", TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_RC(tc_rlock_acquire(fx.c, k, "other", TC_NO_EXPIRE, 0.1), TC_EXISTS);
    TU_RC(tc_rlock_release(fx.c, k, "other"), TC_EPERM);
    /* Nor can a real second thread (NULL: its own id). */
    struct rthread t = {fx.c, 99, 99};
    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, rlock_thread, &t), 0);
    pthread_join(tid, NULL);
    cr_assert_eq(t.acq, TC_EXISTS, "another thread acquired a held rlock: %s",
                 tc_errname(t.acq));
    cr_assert_eq(t.rel, TC_EPERM, "another thread's release: %s",
                 tc_errname(t.rel));
    /* Nor another process. */
    int code = tu_run_child(rlock_other_child, NULL, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    /* Two acquires, two releases; the third fails. */
    TU_OK(tc_rlock_release(fx.c, k, "main"));
    TU_OK(tc_lock_locked(fx.c, k));
    TU_RC(tc_rlock_acquire(fx.c, k, "other", TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_OK(tc_rlock_release(fx.c, k, "main"));
    TU_RC(tc_lock_locked(fx.c, k), TC_NOTFOUND);
    rc = tc_rlock_release(fx.c, k, "main");
    cr_assert(rc == TC_EPERM || rc == TC_NOTFOUND,
              "third release: %s, expected EPERM or NOTFOUND", tc_errname(rc));
    tu_expect_missing(fx.c, k);
    code = tu_run_child(rlock_take_child, NULL, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    /* The calling thread's own id (NULL) is re-entrant too. */
    TU_OK(tc_rlock_acquire(fx.c, k, NULL, TC_NO_EXPIRE, 0));
    TU_OK(tc_rlock_acquire(fx.c, k, "", TC_NO_EXPIRE, 0));
    TU_RC(tc_rlock_acquire(fx.c, k, "main", TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_OK(tc_rlock_release(fx.c, k, NULL));
    TU_OK(tc_rlock_release(fx.c, k, ""));
    rc = tc_rlock_release(fx.c, k, NULL);
    cr_assert(rc == TC_EPERM || rc == TC_NOTFOUND,
              "third release: %s, expected EPERM or NOTFOUND", tc_errname(rc));
}

/* ===================================================================== */
/* 4. Dead holders: Lock, RLock and the stampede lease                   */

enum dead_kind { DEAD_LOCK, DEAD_RLOCK, DEAD_STAMPEDE, DEAD_SEM };
#define DEAD_SEM_VALUE 2

struct dead_arg {
    enum dead_kind kind;
    int shards;
    int holder_cold; /* the holder's handle has hot_size 0 */
};

#define DEAD_KEY "dead-key"

/* The holder: takes the lock with no expiry, says 'H', blocks until
 * killed. */
static int holder_main(void *argp, int fd)
{
    struct dead_arg *a = argp;
    tc_cache *c =
        rc_open_ex(a->shards, NULL, a->holder_cold ? 0 : TU_HOT_SIZE, fd);
    if (!c)
        return 1;
    const tc_data *k = TU_TEXT(DEAD_KEY);
    int rc = TC_OK, action = -1;
    tc_value v = TC_VALUE_INIT;
    switch (a->kind) {
    case DEAD_LOCK:
        rc = tc_lock_acquire(c, k, TC_NO_EXPIRE, 0);
        break;
    case DEAD_RLOCK: /* held twice: the taker must not inherit the count */
        rc = tc_rlock_acquire(c, k, NULL, TC_NO_EXPIRE, 0);
        if (rc == TC_OK)
            rc = tc_rlock_acquire(c, k, NULL, TC_NO_EXPIRE, 0);
        break;
    case DEAD_SEM: /* both permits: the taker needs one of them back */
        rc = tc_sem_acquire(c, k, DEAD_SEM_VALUE, TC_NO_EXPIRE, 0);
        if (rc == TC_OK)
            rc = tc_sem_acquire(c, k, DEAD_SEM_VALUE, TC_NO_EXPIRE, 0);
        break;
    case DEAD_STAMPEDE:
        rc = tc_stampede_begin(c, k, 0, 1, &v, &action);
        tc_value_clear(&v);
        if (rc == TC_OK && action != TC_STAMPEDE_COMPUTE)
            return KID_FAIL(fd,
                            "holder: stampede action %d, expected "
                            "COMPUTE\n",
                            action);
        break;
    }
    if (rc != TC_OK)
        return KID_FAIL(fd, "holder: acquire: %s: %s\n", tc_errname(rc),
                        tc_errmsg());
    if (kid_event(fd, 'H'))
        return 2;
    for (;;)
        pause(); /* mid-compute, lock held: SIGKILL ends it */
}

static int compute_fresh(void *arg, tc_value *result)
{
    *(double *)arg = mono_now();
    result->ptr = strdup("fresh");
    if (!result->ptr)
        return TC_ENOMEM;
    result->len = 5;
    result->type = TC_TEXT;
    return TC_OK;
}

/* The waiter: sees the lock held, says 'W', waits for it (10 s at most),
 * says 'A' with the CLOCK_MONOTONIC time it got it, then checks that what
 * it took over is now its own. */
static int waiter_main(void *argp, int fd)
{
    struct dead_arg *a = argp;
    tc_cache *c = rc_open(a->shards, NULL, fd);
    if (!c)
        return 1;
    const tc_data *k = TU_TEXT(DEAD_KEY);
    double t = 0;
    int rc;
    if (a->kind == DEAD_STAMPEDE) {
        tc_value v = TC_VALUE_INIT;
        int action = -1;
        rc = tc_stampede_begin(c, k, 0, 1, &v, &action);
        tc_value_clear(&v);
        if (rc != TC_OK || action != TC_STAMPEDE_WAIT)
            return KID_FAIL(fd,
                            "waiter: begin: %s, action %d; expected WAIT "
                            "while the computer lives\n",
                            tc_errname(rc), action);
        if (kid_event(fd, 'W'))
            return 2;
        rc = tc_memoize_stampede(c, k, 60, 0, compute_fresh, &t, &v);
        if (rc != TC_OK || !tu_value_text_eq(&v, "fresh") || t == 0)
            return KID_FAIL(fd, "waiter: memoize: %s (%s), %s\n",
                            tc_errname(rc), tc_errmsg(),
                            t == 0 ? "it never computed" : "wrong result");
        tc_value_clear(&v);
    } else {
        if (a->kind == DEAD_SEM) {
            if ((rc = tc_sem_acquire(c, k, DEAD_SEM_VALUE, TC_NO_EXPIRE, 0)) !=
                TC_EXISTS)
                return KID_FAIL(fd,
                                "waiter: a permit free before the kill: "
                                "%s\n",
                                tc_errname(rc));
        } else if ((rc = tc_lock_locked(c, k)) != TC_OK) {
            return KID_FAIL(fd, "waiter: locked: %s before the kill\n",
                            tc_errname(rc));
        }
        if (kid_event(fd, 'W'))
            return 2;
        rc = a->kind == DEAD_LOCK ? tc_lock_acquire(c, k, TC_NO_EXPIRE, 10)
             : a->kind == DEAD_SEM
                 ? tc_sem_acquire(c, k, DEAD_SEM_VALUE, TC_NO_EXPIRE, 10)
                 : tc_rlock_acquire(c, k, NULL, TC_NO_EXPIRE, 10);
        t = mono_now();
        if (rc != TC_OK)
            return KID_FAIL(fd, "waiter: acquire: %s: %s\n", tc_errname(rc),
                            tc_errmsg());
    }
    if (kid_event(fd, 'A') || tu_write_full(fd, &t, sizeof t))
        return 2;
    switch (a->kind) {
    case DEAD_LOCK:
        if ((rc = tc_lock_release(c, k)) != TC_OK)
            return KID_FAIL(fd, "waiter: release: %s\n", tc_errname(rc));
        if ((rc = tc_lock_locked(c, k)) != TC_NOTFOUND)
            return KID_FAIL(fd, "waiter: locked after release: %s\n",
                            tc_errname(rc));
        break;
    case DEAD_RLOCK:
        if ((rc = tc_rlock_release(c, k, NULL)) != TC_OK)
            return KID_FAIL(fd, "waiter: release: %s\n", tc_errname(rc));
        rc = tc_rlock_release(c, k, NULL);
        if (rc != TC_EPERM && rc != TC_NOTFOUND)
            return KID_FAIL(fd,
                            "waiter: second release: %s (the taker "
                            "inherited the dead holder's count)\n",
                            tc_errname(rc));
        if ((rc = tc_lock_locked(c, k)) != TC_NOTFOUND)
            return KID_FAIL(fd, "waiter: locked after release: %s\n",
                            tc_errname(rc));
        break;
    case DEAD_SEM: {
        /* Both of the dead holder's permits came back: we hold one, one
         * is free, and after our release both are. */
        tc_item it = TC_ITEM_INIT;
        rc = tc_get(c, k, &it, 0);
        int64_t left = it.value.i;
        tc_item_clear(&it);
        if (rc != TC_OK || left != 1)
            return KID_FAIL(fd, "waiter: %lld permits free, expected 1\n",
                            (long long)left);
        if ((rc = tc_sem_release(c, k, DEAD_SEM_VALUE, TC_NO_EXPIRE)) != TC_OK)
            return KID_FAIL(fd, "waiter: release: %s\n", tc_errname(rc));
        if ((rc = tc_sem_release(c, k, DEAD_SEM_VALUE, TC_NO_EXPIRE)) !=
            TC_EPERM)
            return KID_FAIL(fd, "waiter: release past the bound: %s\n",
                            tc_errname(rc));
        break;
    }
    case DEAD_STAMPEDE: {
        tc_value v = TC_VALUE_INIT;
        int action = -1;
        rc = tc_stampede_begin(c, k, 0, 1, &v, &action);
        int good = rc == TC_OK && action == TC_STAMPEDE_USE &&
                   tu_value_text_eq(&v, "fresh");
        tc_value_clear(&v);
        if (!good)
            return KID_FAIL(fd, "waiter: begin after compute: %s, action %d\n",
                            tc_errname(rc), action);
        break;
    }
    }
    tc_close(c);
    return 0;
}

static void run_dead_holder(enum dead_kind kind, int shards, int holder_cold)
{
    struct dead_arg a = {kind, shards, holder_cold};
    struct kid h, w;
    create_cache(shards);
    kid_start(&h, holder_main, &a);
    kid_expect(&h, 'H', 60);
    kid_start(&w, waiter_main, &a);
    kid_expect(&w, 'W', 60);
    /* Let the waiter's backoff grow to TC_LOCK_POLL_MAX: the bound must
     * hold for a waiter that has waited a while. */
    sleep_s(0.4 + 4 * TC_LOCK_POLL_MAX);
    if (!kid_quiet(&w))
        kid_fail(&w, "the waiter reported before the holder was killed");
    double t_kill = mono_now();
    cr_assert_eq(kill(h.pid, SIGKILL), 0);
    kid_expect(&w, 'A', 30);
    double t_acq = 0;
    kid_payload(&w, &t_acq, sizeof t_acq);
    int code = kid_reap(&h);
    cr_assert_eq(code, 128 + SIGKILL, "holder exit %d", code);
    cr_log_info("dead holder (kind %d, shards %d): taken over %.1f ms after "
                "the kill",
                (int)kind, shards, (t_acq - t_kill) * 1e3);
    cr_assert_geq(t_acq, t_kill,
                  "the waiter got it %.3f s before the holder died",
                  t_kill - t_acq);
    cr_assert_leq(t_acq - t_kill, 2 * TC_LOCK_LIVENESS_BOUND,
                  "a dead holder's lock was taken over %.3f s after its "
                  "death; the bound is 2 * %.2f s",
                  t_acq - t_kill, TC_LOCK_LIVENESS_BOUND);
    kid_finish(&w);
    fx.c = parent_open(shards, NULL);
    if (kind == DEAD_STAMPEDE) {
        tc_value v = TC_VALUE_INIT;
        int action = -1;
        TU_OK(tc_stampede_begin(fx.c, TU_TEXT(DEAD_KEY), 0, 1, &v, &action));
        cr_assert_eq(action, TC_STAMPEDE_USE);
        cr_assert(tu_value_text_eq(&v, "fresh"));
        tc_value_clear(&v);
    } else if (kind == DEAD_SEM) {
        tu_expect_int(fx.c, TU_TEXT(DEAD_KEY), DEAD_SEM_VALUE);
    } else {
        TU_RC(tc_lock_locked(fx.c, TU_TEXT(DEAD_KEY)), TC_NOTFOUND);
        TU_OK(tc_lock_acquire(fx.c, TU_TEXT(DEAD_KEY), TC_NO_EXPIRE, 0));
        TU_OK(tc_lock_release(fx.c, TU_TEXT(DEAD_KEY)));
    }
}

Test(recipes, dead_holder_lock)
{
    run_dead_holder(DEAD_LOCK, TC_SHARDS_PLAIN, 0);
}

Test(recipes, dead_holder_lock_fanout)
{
    run_dead_holder(DEAD_LOCK, 4, 0);
}

Test(recipes, dead_holder_rlock)
{
    run_dead_holder(DEAD_RLOCK, TC_SHARDS_PLAIN, 0);
}

/* A BoundedSemaphore's holders are recorded beside the count, so the
 * permits of a holder that died come back. */
Test(recipes, dead_holder_semaphore)
{
    run_dead_holder(DEAD_SEM, TC_SHARDS_PLAIN, 0);
}

Test(recipes, dead_holder_stampede_lease)
{
    run_dead_holder(DEAD_STAMPEDE, TC_SHARDS_PLAIN, 0);
}

/* A holder that does not read through the hot tier (hot_size 0) still
 * attaches the segment, so its death is noticed too. */
Test(recipes, dead_holder_lock_cold_handle)
{
    run_dead_holder(DEAD_LOCK, TC_SHARDS_PLAIN, 1);
}

/* A lock left by a process that died before anybody waited: the next
 * process to open the cache takes it at once. */
Test(recipes, dead_holder_before_open)
{
    struct dead_arg a = {DEAD_RLOCK, TC_SHARDS_PLAIN, 0};
    struct kid h;
    create_cache(TC_SHARDS_PLAIN);
    kid_start(&h, holder_main, &a);
    kid_expect(&h, 'H', 60);
    cr_assert_eq(kill(h.pid, SIGKILL), 0);
    cr_assert_eq(kid_reap(&h), 128 + SIGKILL);
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    const tc_data *k = TU_TEXT(DEAD_KEY);
    TU_RC(tc_lock_locked(fx.c, k), TC_NOTFOUND);
    TU_OK(tc_lock_acquire(fx.c, k, TC_NO_EXPIRE, 0));
    TU_RC(tc_lock_acquire(fx.c, k, TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_OK(tc_lock_release(fx.c, k));
    TU_RC(tc_lock_release(fx.c, k), TC_NOTFOUND);
}

/* ===================================================================== */
/* 5. Waiting on a live holder: no acquisition, (almost) no writes       */

#define WAIT_SECONDS 2.0

static int wait_live_child(void *argp, int fd)
{
    struct dead_arg *a = argp;
    tc_cache *c = rc_open(a->shards, NULL, fd);
    if (!c)
        return 1;
    if (kid_event(fd, 'W'))
        return 2;
    int rc = tc_lock_acquire(c, TU_TEXT(DEAD_KEY), TC_NO_EXPIRE, WAIT_SECONDS);
    if (kid_event(fd, 'E') || tu_write_full(fd, &rc, sizeof rc))
        return 2;
    tc_close(c);
    return 0;
}

static void run_waiting_writes_few(int shards)
{
    struct dead_arg a = {DEAD_LOCK, shards, 0};
    struct kid h, w;
    create_cache(shards);
    kid_start(&h, holder_main, &a);
    kid_expect(&h, 'H', 60);
    fx.c = parent_open(shards, NULL);
    const tc_data *k = TU_TEXT(DEAD_KEY);
    TU_OK(tc_lock_locked(fx.c, k));
    /* Two waiters at once: another process, and this one (measuring). */
    kid_start(&w, wait_live_child, &a);
    kid_expect(&w, 'W', 60);
    uint64_t seq0 = commits(fx.c);
    double t0 = mono_now();
    int rc = tc_lock_acquire(fx.c, k, TC_NO_EXPIRE, WAIT_SECONDS);
    double t1 = mono_now();
    uint64_t seq1 = commits(fx.c);
    cr_assert_eq(rc, TC_EXISTS,
                 "acquire of a lock a live process holds: %s, expected "
                 "EXISTS",
                 tc_errname(rc));
    cr_assert_geq(t1 - t0, WAIT_SECONDS - 0.01, "gave up after %.3f s of %.1f",
                  t1 - t0, WAIT_SECONDS);
    cr_log_info("waiting %.2f s on a live holder (shards %d): %llu commits",
                t1 - t0, shards, (unsigned long long)(seq1 - seq0));
    cr_assert_leq((double)(seq1 - seq0), 3.0 * (t1 - t0),
                  "%llu SQLite commits during %.2f s of waiting",
                  (unsigned long long)(seq1 - seq0), t1 - t0);
    kid_expect(&w, 'E', 60);
    int wrc = 0;
    kid_payload(&w, &wrc, sizeof wrc);
    cr_assert_eq(wrc, TC_EXISTS,
                 "another process's wait on a live holder: %s, expected "
                 "EXISTS",
                 tc_errname(wrc));
    kid_finish(&w);
    /* Still the holder's: nobody may release it for him. */
    TU_OK(tc_lock_locked(fx.c, k));
    TU_RC(tc_lock_release(fx.c, k), TC_EPERM);
    cr_assert_eq(kill(h.pid, SIGKILL), 0);
    cr_assert_eq(kid_reap(&h), 128 + SIGKILL);
    TU_OK(tc_lock_acquire(fx.c, k, TC_NO_EXPIRE, 10));
    TU_OK(tc_lock_release(fx.c, k));
}

Test(recipes, waiting_writes_few_cache)
{
    run_waiting_writes_few(TC_SHARDS_PLAIN);
}

Test(recipes, waiting_writes_few_fanout)
{
    run_waiting_writes_few(4);
}

/* ===================================================================== */
/* 6. memoize_stampede                                                   */

#define MEMO_PROCS  4
#define MEMO_CALLS  50
#define MEMO_EXPIRE 0.3

struct memo_arg {
    double beta;
};

struct memo_ctx {
    tc_cache *c;
    int overlaps;
    int errors;
};

/* One computation: no other may run anywhere at the same time. */
static int memo_compute(void *arg, tc_value *result)
{
    struct memo_ctx *m = arg;
    int64_t running = 0, n = 0;
    int rc = incr(m->c, "running", 1, &running);
    if (rc != TC_OK) {
        m->errors++;
        return rc;
    }
    if (running != 1) {
        m->overlaps++;
        (void)incr(m->c, "overlap", 1, NULL);
    }
    sleep_s(0.02);
    rc = incr(m->c, "running", -1, NULL);
    if (rc == TC_OK)
        rc = incr(m->c, "computations", 1, &n);
    if (rc != TC_OK) {
        m->errors++;
        return rc;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "v%lld", (long long)n);
    if (!(result->ptr = strdup(buf)))
        return TC_ENOMEM;
    result->len = (size_t)len;
    result->type = TC_TEXT;
    return TC_OK;
}

/* The number of a valid result "v<n>" (n >= 1), else -1. */
static long long memo_number(const tc_value *v)
{
    long long n = -1;
    char tail;
    if (v->type != TC_TEXT || v->len >= 32 ||
        sscanf(v->ptr, "v%lld%c", &n, &tail) != 1 || n < 1)
        return -1;
    return n;
}

static int memo_child(int idx, void *argp, int fd)
{
    struct memo_arg *a = argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    struct memo_ctx m = {c, 0, 0};
    long long last = 0;
    child_go();
    for (int i = 0; i < MEMO_CALLS; i++) {
        tc_value out = TC_VALUE_INIT;
        int rc = tc_memoize_stampede(c, TU_TEXT("memo"), MEMO_EXPIRE, a->beta,
                                     memo_compute, &m, &out);
        if (rc != TC_OK)
            return tu_child_msg(fd, "child %d call %d: %s: %s\n", idx, i,
                                tc_errname(rc), tc_errmsg());
        long long n = memo_number(&out);
        if (n < 0)
            return tu_child_msg(fd,
                                "child %d call %d: invalid result "
                                "(type %d, %zu bytes)\n",
                                idx, i, out.type, out.len);
        if (n < last)
            return tu_child_msg(fd,
                                "child %d call %d: the result went back "
                                "from v%lld to v%lld\n",
                                idx, i, last, n);
        last = n;
        tc_value_clear(&out);
        sleep_s(0.02);
    }
    tc_close(c);
    if (m.overlaps || m.errors)
        return tu_child_msg(fd,
                            "child %d: %d overlapping computations, %d "
                            "errors\n",
                            idx, m.overlaps, m.errors);
    return 0;
}

static void run_memo(double beta)
{
    struct memo_arg a = {beta};
    create_cache(TC_SHARDS_PLAIN);
    run_procs(MEMO_PROCS, memo_child, &a);
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    int64_t n = p_int(fx.c, "computations");
    cr_log_info("memoize_stampede beta %g: %lld computations for %d calls",
                beta, (long long)n, MEMO_PROCS * MEMO_CALLS);
    cr_assert_eq(p_int(fx.c, "overlap"), 0,
                 "%lld computations overlapped another",
                 (long long)p_int(fx.c, "overlap"));
    cr_assert_eq(p_int(fx.c, "running"), 0);
    /* Each child's calls span >= 1 s (50 x 20 ms of sleep) and the result
     * expires after 0.3 s: it must have been recomputed. */
    cr_assert_geq(n, 2, "only %lld computations: the test never recomputed",
                  (long long)n);
    cr_assert_lt(n, MEMO_PROCS * MEMO_CALLS,
                 "%lld computations for %d calls: nothing was reused",
                 (long long)n, MEMO_PROCS * MEMO_CALLS);
}

Test(recipes, memoize_stampede_no_overlap)
{
    run_memo(0);
}

Test(recipes, memoize_stampede_xfetch_no_overlap)
{
    run_memo(1);
}

/* ---- tc_stampede_begin's actions, step by step ----------------------- */

struct probe_arg {
    const char *key;
    double beta, rnd;
};

/* One begin in another process: prints "action=<n> value=<text>". */
static int stampede_probe_child(void *argp, int fd)
{
    struct probe_arg *p = argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, &fx.clk, fd);
    if (!c)
        return 1;
    tc_value v = TC_VALUE_INIT;
    int action = -1;
    int rc =
        tc_stampede_begin(c, TU_TEXT(p->key), p->beta, p->rnd, &v, &action);
    if (rc != TC_OK)
        return tu_child_msg(fd, "begin: %s: %s", tc_errname(rc), tc_errmsg());
    char out[256];
    int n = snprintf(out, sizeof out, "action=%d value=%s", action,
                     v.type == TC_TEXT ? (const char *)v.ptr : "-");
    (void)!write(fd, out, (size_t)n);
    if (action == TC_STAMPEDE_COMPUTE)
        (void)tc_stampede_abort(c, TU_TEXT(p->key));
    tc_value_clear(&v);
    tc_close(c);
    return 0;
}

static void probe_expect(const char *key, double beta, double rnd,
                         const char *want)
{
    char msg[1024];
    struct probe_arg p = {key, beta, rnd};
    int code = tu_run_child(stampede_probe_child, &p, msg, sizeof msg);
    cr_assert_eq(code, 0, "probe child: exit %d: %s", code, msg);
    cr_assert_str_eq(msg, want, "another process's begin on %s", key);
}

/* begin on @c: assert @action and, for TEXT @text, the cached value. */
static void begin_expect(tc_cache *c, const char *key, double beta, double rnd,
                         int action, const char *text)
{
    tc_value v = TC_VALUE_INIT;
    int got = -1;
    TU_OK(tc_stampede_begin(c, TU_TEXT(key), beta, rnd, &v, &got));
    cr_assert_eq(got, action,
                 "begin(%s, beta %g, rnd %g): action %d, "
                 "expected %d",
                 key, beta, rnd, got, action);
    if (text)
        cr_assert(tu_value_text_eq(&v, text),
                  "begin(%s): cached value type %d '%s', expected '%s'", key,
                  v.type, v.type == TC_TEXT ? (char *)v.ptr : "", text);
    else
        cr_assert_eq(v.type, TC_NONE, "begin(%s): a cached value on a miss",
                     key);
    tc_value_clear(&v);
}

static int same_value(const tc_value *v, const tc_data *d)
{
    if (v->type != d->type)
        return 0;
    if (d->type == TC_INT)
        return v->i == *(const int64_t *)d->ptr;
    if (d->type == TC_REAL)
        return memcmp(&v->d, d->ptr, sizeof v->d) == 0;
    return v->len == d->len && (!d->len || !memcmp(v->ptr, d->ptr, d->len)) &&
           ((const char *)v->ptr)[v->len] == 0;
}

Test(recipes, stampede_actions)
{
    tc_cache *b = NULL;
    fx.c = parent_open(TC_SHARDS_PLAIN, &fx.clk);
    b = parent_open(TC_SHARDS_PLAIN, &fx.clk); /* a second handle */
    /* A miss: the first caller computes, everyone else waits. */
    begin_expect(fx.c, "k", 0, 1, TC_STAMPEDE_COMPUTE, NULL);
    begin_expect(b, "k", 0, 1, TC_STAMPEDE_WAIT, NULL);
    probe_expect("k", 0, 1, "action=2 value=-");
    TU_OK(
        tc_stampede_end(fx.c, TU_TEXT("k"), TU_TEXT("hello"), 0.5, 100, NULL));
    begin_expect(b, "k", 0, 1, TC_STAMPEDE_USE, "hello");
    begin_expect(fx.c, "k", 0, 0.5, TC_STAMPEDE_USE, "hello");
    probe_expect("k", 0, 1, "action=0 value=hello");
    /* An abandoned computation frees the lease for the next caller. */
    begin_expect(fx.c, "ab", 0, 1, TC_STAMPEDE_COMPUTE, NULL);
    begin_expect(b, "ab", 0, 1, TC_STAMPEDE_WAIT, NULL);
    TU_RC(tc_stampede_abort(b, TU_TEXT("ab")), TC_EPERM);
    TU_OK(tc_stampede_abort(fx.c, TU_TEXT("ab")));
    TU_RC(tc_stampede_abort(fx.c, TU_TEXT("ab")), TC_NOTFOUND);
    begin_expect(b, "ab", 0, 1, TC_STAMPEDE_COMPUTE, NULL);
    TU_OK(tc_stampede_abort(b, TU_TEXT("ab")));

    /* XFetch: delta 1 s, 10 s to live. */
    begin_expect(fx.c, "x", 1, 0.5, TC_STAMPEDE_COMPUTE, NULL);
    TU_OK(tc_stampede_end(fx.c, TU_TEXT("x"), TU_TEXT("old"), 1.0, 10, NULL));
    tu_clock_advance(&fx.clk, 9.5); /* 0.5 s left */
    /* beta 0 never recomputes early; rnd 1 (ln 1 = 0) neither. */
    begin_expect(fx.c, "x", 0, 0.001, TC_STAMPEDE_USE, "old");
    begin_expect(fx.c, "x", 1e6, 1, TC_STAMPEDE_USE, "old");
    /* -delta * beta * ln(0.5) = 0.69 s > 0.5 s: early, with beta 1. */
    begin_expect(b, "x", 1, 0.5, TC_STAMPEDE_COMPUTE, "old");
    TU_OK(tc_stampede_abort(b, TU_TEXT("x")));
    /* beta huge: the first caller recomputes with the stale result in
     * hand; the others keep using the stale one meanwhile. */
    begin_expect(fx.c, "x", 1e6, 0.5, TC_STAMPEDE_COMPUTE, "old");
    begin_expect(b, "x", 1e6, 0.5, TC_STAMPEDE_USE, "old");
    probe_expect("x", 1e6, 0.5, "action=0 value=old");
    TU_OK(tc_stampede_end(fx.c, TU_TEXT("x"), TU_TEXT("new"), 1.0, 10, NULL));
    begin_expect(b, "x", 0, 0.5, TC_STAMPEDE_USE, "new");
    probe_expect("x", 0, 0.5, "action=0 value=new");
    /* Past its expiry it is a miss again. */
    tu_clock_advance(&fx.clk, 20);
    begin_expect(b, "x", 0, 1, TC_STAMPEDE_COMPUTE, NULL);
    begin_expect(fx.c, "x", 0, 1, TC_STAMPEDE_WAIT, NULL);
    TU_OK(tc_stampede_abort(b, TU_TEXT("x")));
    /* No expiry: always used, whatever beta says. */
    begin_expect(fx.c, "forever", 1, 1, TC_STAMPEDE_COMPUTE, NULL);
    TU_OK(tc_stampede_end(fx.c, TU_TEXT("forever"), TU_TEXT("f"), 5.0,
                          TC_NO_EXPIRE, NULL));
    tu_clock_advance(&fx.clk, 1e6);
    begin_expect(b, "forever", 1e9, 1e-9, TC_STAMPEDE_USE, "f");
    tc_close(b);
}

/* Every result type round-trips through [delta, result]. */
Test(recipes, stampede_result_types)
{
    static const unsigned char bin[] = {0, 1, 2, 0xff, 0, 'x'};
    static const unsigned char mp[] = {0x92, 0x01, 0xa1, 'z'}; /* [1, "z"] */
    static const int64_t ints[] = {0,         1,         127,         128,
                                   -1,        -32,       -33,         1LL << 40,
                                   INT64_MAX, INT64_MIN, -(1LL << 40)};
    static const double reals[] = {3.25, -0.0, 0.0, DBL_MAX, -1e-300, 1.0};
    enum { BIG = 100000 };
    char *big = tu_pattern(BIG, 7);
    big[BIG - 1] = 0;
    tc_data ds[64];
    size_t n = 0;
    ds[n++] = tc_text("hello");
    ds[n++] = tc_text("");
    ds[n++] = tc_text("\xc3\xa9t\xc3\xa9 \xe2\x82\xac");
    ds[n++] = tc_bytes(bin, sizeof bin);
    ds[n++] = tc_bytes(NULL, 0);
    ds[n++] = tc_bytes(big, BIG);     /* a value file */
    ds[n++] = tc_textn(big, BIG - 1); /* a value file, TEXT */
    ds[n++] = (tc_data){mp, sizeof mp, TC_MSGPACK};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        ds[n++] = tc_int(&ints[i]);
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++)
        ds[n++] = tc_real(&reals[i]);
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    tc_cache *b = parent_open(TC_SHARDS_PLAIN, NULL);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "rt-%zu", i);
        begin_expect(fx.c, key, 0, 1, TC_STAMPEDE_COMPUTE, NULL);
        TU_OK(tc_stampede_end(fx.c, TU_TEXT(key), &ds[i], 0.25, 100, NULL));
        for (int h = 0; h < 2; h++) {
            tc_value v = TC_VALUE_INIT;
            int action = -1;
            TU_OK(tc_stampede_begin(h ? b : fx.c, TU_TEXT(key), 0, 1, &v,
                                    &action));
            cr_assert_eq(action, TC_STAMPEDE_USE, "%s: action %d", key, action);
            cr_assert(same_value(&v, &ds[i]),
                      "%s: result of type %d (%zu bytes) came back as type "
                      "%d (%zu bytes)",
                      key, ds[i].type, ds[i].len, v.type, v.len);
            tc_value_clear(&v);
        }
    }
    tc_close(b);
    free(big);
}

/* ===================================================================== */
/* 7. throttle                                                           */

/* An injected clock: the caller sleeps by advancing `now` by *delay.
 * `now` is a real Unix time (TU_T0) on purpose: at that magnitude a double
 * resolves about 0.24 us, and a delay too short to move such a clock
 * would leave its caller waiting forever. */
static void run_throttle_fake(double work)
{
    const double count = 10, seconds = 1, rate = count / seconds;
    const tc_data *k = TU_TEXT("thr");
    double now = TU_T0;
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    TU_OK(tc_throttle_init(fx.c, k, count, seconds, TC_NO_EXPIRE, now));
    int taken = 0, waits = 0;
    for (int i = 0; i < 200; i++) {
        double delay = -1;
        TU_OK(tc_throttle_take(fx.c, k, count, seconds, TC_NO_EXPIRE, now,
                               &delay));
        cr_assert_geq(delay, 0, "negative delay %g", delay);
        /* A token given a rounding hair early (core/throttle.c, slack)
         * is owed: the next wait may be that much longer. */
        cr_assert_leq(delay, 1 / rate + 1e-4,
                      "told to wait %g s for one token at %g/s", delay, rate);
        if (delay > 0) {
            /* Sleeping the delay must move the clock, or the caller is
             * told to wait forever. */
            cr_assert_gt(now + delay, now,
                         "call %d: told to wait %.3g s at now = T0 + %.9f s "
                         "(%d taken so far): below the clock's resolution, "
                         "so waiting it changes nothing",
                         i, delay, now - TU_T0, taken);
            waits++;
            now += delay;
        } else {
            taken++;
            now += work; /* the caller's own work between calls */
        }
    }
    double span = now - TU_T0;
    double got = (taken - count) / span;
    cr_log_info("throttle (work %g s): %d taken, %d waits over %.2f s: %.3f/s "
                "after the burst",
                work, taken, waits, span, got);
    cr_assert_gt(waits, 0, "never told to wait");
    cr_assert_leq(fabs(got - rate), 0.1 * rate,
                  "%d calls taken over %.2f simulated s: %.3f/s after the "
                  "burst of %g, expected %g/s",
                  taken, span, got, count, rate);
    /* The bucket never gives more than count + rate * span. */
    cr_assert_leq(taken, count + rate * span + 1e-6);
}

Test(recipes, throttle_injected_clock)
{
    run_throttle_fake(0);
}

Test(recipes, throttle_injected_clock_with_work)
{
    run_throttle_fake(0.013);
}

#define THR_PROCS   3
#define THR_COUNT   20
#define THR_SECONDS 0.5
#define THR_SPAN    1.5

struct thr_arg {
    double start, end;
};

static int thr_child(int idx, void *argp, int fd)
{
    struct thr_arg *a = argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    child_go();
    sleep_s(a->start - wall_now());
    int64_t taken = 0;
    for (;;) {
        double now = wall_now(), delay = -1;
        if (now >= a->end)
            break;
        int rc = tc_throttle_take(c, TU_TEXT("thr"), THR_COUNT, THR_SECONDS,
                                  TC_NO_EXPIRE, now, &delay);
        if (rc != TC_OK)
            return tu_child_msg(fd, "child %d: take: %s: %s\n", idx,
                                tc_errname(rc), tc_errmsg());
        if (delay > 0)
            sleep_s(delay < a->end - now ? delay : a->end - now);
        else
            taken++;
    }
    int rc = incr(c, "taken", taken, NULL);
    tc_close(c);
    if (rc != TC_OK)
        return tu_child_msg(fd, "child %d: incr: %s\n", idx, tc_errname(rc));
    return 0;
}

Test(recipes, throttle_shared_by_processes)
{
    const double rate = THR_COUNT / THR_SECONDS;
    struct thr_arg a;
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    a.start = wall_now() + 0.5; /* after every child has opened */
    a.end = a.start + THR_SPAN;
    TU_OK(tc_throttle_init(fx.c, TU_TEXT("thr"), THR_COUNT, THR_SECONDS,
                           TC_NO_EXPIRE, a.start));
    tc_close(fx.c);
    fx.c = NULL;
    run_procs(THR_PROCS, thr_child, &a);
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    double total = (double)p_int(fx.c, "taken");
    double expect = rate * THR_SPAN + THR_COUNT;
    cr_log_info("throttle, %d processes, %.1f s: %.0f calls, expected %.0f",
                THR_PROCS, THR_SPAN, total, expect);
    /* Never more than the bucket holds plus what it earns... */
    cr_assert_leq(total, expect + 1, "%.0f calls in %.1f s at %g/s + %d", total,
                  THR_SPAN, rate, THR_COUNT);
    /* ...and about that many (10% plus a burst of slack). */
    cr_assert_geq(total, 0.9 * expect - THR_COUNT,
                  "%.0f calls in %.1f s at %g/s + %d", total, THR_SPAN, rate,
                  THR_COUNT);
}

/* ===================================================================== */
/* 8. Averager across processes                                          */

#define AVG_PROCS 4
#define AVG_ADDS  100

static int avg_child(int idx, void *argp, int fd)
{
    (void)argp;
    tc_cache *c = rc_open(TC_SHARDS_PLAIN, NULL, fd);
    if (!c)
        return 1;
    child_go();
    for (int j = 0; j < AVG_ADDS; j++) {
        /* Quarters: every partial sum is exact in a double. */
        double v = (idx * AVG_ADDS + j) / 4.0;
        int rc = tc_averager_add(c, TU_TEXT("avg"), v, TC_NO_EXPIRE, NULL);
        if (rc != TC_OK)
            return tu_child_msg(fd, "child %d add %d: %s: %s\n", idx, j,
                                tc_errname(rc), tc_errmsg());
    }
    tc_close(c);
    return 0;
}

/* The [total, count] pair at @k, decoded from its MessagePack. */
static void avg_pair(tc_cache *c, const char *k, double *total, int64_t *count)
{
    tc_item it = TC_ITEM_INIT;
    TU_OK(tc_get(c, TU_TEXT(k), &it, 0));
    const unsigned char *p = it.value.ptr;
    size_t n = it.value.len;
    cr_assert_eq(it.value.type, TC_MSGPACK);
    cr_assert(n >= 11 && p[0] == 0x92 && p[1] == 0xcb,
              "not [float64, ...]: %zu bytes", n);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[2 + i];
    memcpy(total, &u, sizeof *total);
    p += 10, n -= 10;
    if (n == 1 && p[0] < 0x80) {
        *count = p[0];
    } else {
        cr_assert(n == 9 && (p[0] == 0xd3 || p[0] == 0xcf),
                  "count is not an integer (0x%02x, %zu bytes)", p[0], n);
        u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | p[1 + i];
        *count = (int64_t)u;
    }
    tc_item_clear(&it);
}

Test(recipes, averager_across_processes)
{
    const int n = AVG_PROCS * AVG_ADDS;
    const double sum = (double)n * (n - 1) / 2 / 4.0;
    create_cache(TC_SHARDS_PLAIN);
    run_procs(AVG_PROCS, avg_child, NULL);
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    double avg = -1, total = -1;
    int64_t count = -1;
    avg_pair(fx.c, "avg", &total, &count);
    cr_assert_eq(count, n, "count %lld, expected %d", (long long)count, n);
    cr_assert_eq(total, sum, "total %.17g, expected %.17g", total, sum);
    TU_OK(tc_averager_get(fx.c, TU_TEXT("avg"), &avg));
    cr_assert_eq(avg, sum / n, "average %.17g, expected %.17g", avg, sum / n);
    avg = -1;
    TU_OK(tc_averager_pop(fx.c, TU_TEXT("avg"), &avg));
    cr_assert_eq(avg, sum / n, "popped %.17g, expected %.17g", avg, sum / n);
    tu_expect_missing(fx.c, TU_TEXT("avg"));
    avg = 12345;
    TU_RC(tc_averager_get(fx.c, TU_TEXT("avg"), &avg), TC_NOTFOUND);
    TU_RC(tc_averager_pop(fx.c, TU_TEXT("avg"), &avg), TC_NOTFOUND);
    TU_RC(tc_averager_get(fx.c, TU_TEXT("never"), NULL), TC_NOTFOUND);
    cr_assert_eq(avg, 12345, "a miss wrote the output");
    /* It starts over after a pop. */
    TU_OK(tc_averager_add(fx.c, TU_TEXT("avg"), 3, TC_NO_EXPIRE, NULL));
    TU_OK(tc_averager_add(fx.c, TU_TEXT("avg"), 4, TC_NO_EXPIRE, NULL));
    TU_OK(tc_averager_get(fx.c, TU_TEXT("avg"), &avg));
    cr_assert_eq(avg, 3.5);
}

/* ===================================================================== */
/* 9. Bad input                                                          */

static int never_called(void *arg, tc_value *result)
{
    (void)result;
    ++*(int *)arg;
    return TC_EINTERNAL;
}

/* Every recipe call on @c and @k must return TC_EINVAL (one of the two is
 * NULL). */
static void expect_all_refused(tc_cache *c, const tc_data *k, tc_value *v,
                               int *action, int *calls)
{
    double d = 0;
    TU_RC(tc_lock_acquire(c, k, TC_NO_EXPIRE, 0), TC_EINVAL);
    TU_RC(tc_lock_release(c, k), TC_EINVAL);
    TU_RC(tc_lock_locked(c, k), TC_EINVAL);
    TU_RC(tc_rlock_acquire(c, k, NULL, TC_NO_EXPIRE, 0), TC_EINVAL);
    TU_RC(tc_rlock_release(c, k, NULL), TC_EINVAL);
    TU_RC(tc_sem_acquire(c, k, 2, TC_NO_EXPIRE, 0), TC_EINVAL);
    TU_RC(tc_sem_release(c, k, 2, TC_NO_EXPIRE), TC_EINVAL);
    TU_RC(tc_averager_add(c, k, 1, TC_NO_EXPIRE, NULL), TC_EINVAL);
    TU_RC(tc_averager_get(c, k, &d), TC_EINVAL);
    TU_RC(tc_averager_pop(c, k, &d), TC_EINVAL);
    TU_RC(tc_throttle_init(c, k, 1, 1, TC_NO_EXPIRE, TU_T0), TC_EINVAL);
    TU_RC(tc_throttle_take(c, k, 1, 1, TC_NO_EXPIRE, TU_T0, &d), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, 0, 1, v, action), TC_EINVAL);
    TU_RC(tc_stampede_end(c, k, TU_TEXT("r"), 0, 10, NULL), TC_EINVAL);
    TU_RC(tc_stampede_abort(c, k), TC_EINVAL);
    TU_RC(tc_memoize_stampede(c, k, 10, 0, never_called, calls, v), TC_EINVAL);
}

Test(recipes, bad_input_null)
{
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    tc_cache *c = fx.c;
    const tc_data *k = TU_TEXT("k");
    tc_value v = TC_VALUE_INIT;
    int action = -1, calls = 0;
    /* NULL cache, then NULL key: every recipe call refuses both. */
    expect_all_refused(NULL, k, &v, &action, &calls);
    expect_all_refused(c, NULL, &v, &action, &calls);
    /* Other NULL arguments. */
    TU_RC(tc_stampede_begin(c, k, 0, 1, NULL, &action), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, 0, 1, &v, NULL), TC_EINVAL);
    TU_RC(tc_stampede_end(c, k, NULL, 0, 10, NULL), TC_EINVAL);
    TU_RC(tc_memoize_stampede(c, k, 10, 0, NULL, &calls, &v), TC_EINVAL);
    TU_RC(tc_memoize_stampede(c, k, 10, 0, never_called, &calls, NULL),
          TC_EINVAL);
    cr_assert_eq(calls, 0, "a compute function ran on bad input");
    cr_assert_eq(v.type, TC_NONE);
    cr_assert_eq(tu_length(fx.c), 0, "bad input wrote something");
}

Test(recipes, bad_input_values)
{
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    tc_cache *c = fx.c;
    const tc_data *k = TU_TEXT("k");
    const double nan = NAN, inf = INFINITY;
    tc_value v = TC_VALUE_INIT;
    int action = -1, calls = 0;
    double d = 0;
    /* Semaphore sizes. */
    TU_RC(tc_sem_acquire(c, k, 0, TC_NO_EXPIRE, 0), TC_EINVAL);
    TU_RC(tc_sem_acquire(c, k, -1, TC_NO_EXPIRE, 0), TC_EINVAL);
    TU_RC(tc_sem_release(c, k, 0, TC_NO_EXPIRE), TC_EINVAL);
    /* NaN expire. */
    TU_RC(tc_lock_acquire(c, k, nan, 0), TC_EINVAL);
    TU_RC(tc_rlock_acquire(c, k, NULL, nan, 0), TC_EINVAL);
    TU_RC(tc_sem_acquire(c, k, 2, nan, 0), TC_EINVAL);
    TU_RC(tc_sem_release(c, k, 2, nan), TC_EINVAL);
    TU_RC(tc_averager_add(c, k, 1, nan, NULL), TC_EINVAL);
    TU_RC(tc_throttle_init(c, k, 1, 1, nan, TU_T0), TC_EINVAL);
    TU_RC(tc_throttle_take(c, k, 1, 1, nan, TU_T0, &d), TC_EINVAL);
    TU_RC(tc_stampede_end(c, k, TU_TEXT("r"), 0, nan, NULL), TC_EINVAL);
    /* NaN timeout. */
    TU_RC(tc_lock_acquire(c, k, TC_NO_EXPIRE, nan), TC_EINVAL);
    TU_RC(tc_rlock_acquire(c, k, NULL, TC_NO_EXPIRE, nan), TC_EINVAL);
    TU_RC(tc_sem_acquire(c, k, 2, TC_NO_EXPIRE, nan), TC_EINVAL);
    /* Numbers out of range. */
    TU_RC(tc_averager_add(c, k, nan, TC_NO_EXPIRE, NULL), TC_EINVAL);
    TU_RC(tc_averager_add(c, k, inf, TC_NO_EXPIRE, NULL), TC_EINVAL);
    TU_RC(tc_throttle_init(c, k, 0, 1, TC_NO_EXPIRE, TU_T0), TC_EINVAL);
    TU_RC(tc_throttle_init(c, k, 1, 0, TC_NO_EXPIRE, TU_T0), TC_EINVAL);
    TU_RC(tc_throttle_init(c, k, 1, 1, TC_NO_EXPIRE, nan), TC_EINVAL);
    TU_RC(tc_throttle_take(c, k, -1, 1, TC_NO_EXPIRE, TU_T0, &d), TC_EINVAL);
    TU_RC(tc_throttle_take(c, k, nan, 1, TC_NO_EXPIRE, TU_T0, &d), TC_EINVAL);
    TU_RC(tc_throttle_take(c, k, 1, inf, TC_NO_EXPIRE, TU_T0, &d), TC_EINVAL);
    TU_RC(tc_throttle_take(c, k, 1, 1, TC_NO_EXPIRE, inf, &d), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, -1, 1, &v, &action), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, nan, 1, &v, &action), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, inf, 1, &v, &action), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, 0, 0, &v, &action), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, 0, 1.5, &v, &action), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, 0, nan, &v, &action), TC_EINVAL);
    TU_RC(tc_stampede_begin(c, k, 0, -0.5, &v, &action), TC_EINVAL);
    TU_RC(tc_stampede_end(c, k, TU_TEXT("r"), -1, 10, NULL), TC_EINVAL);
    TU_RC(tc_stampede_end(c, k, TU_TEXT("r"), nan, 10, NULL), TC_EINVAL);
    TU_RC(tc_memoize_stampede(c, k, 10, nan, never_called, &calls, &v),
          TC_EINVAL);
    cr_assert_eq(calls, 0, "a compute function ran on bad input");
    cr_assert_eq(tu_length(fx.c), 0, "bad input wrote something");
}

/* A key that holds something else: the recipe refuses it and leaves it. */
Test(recipes, bad_input_wrong_type)
{
    fx.c = parent_open(TC_SHARDS_PLAIN, NULL);
    tc_cache *c = fx.c;
    const tc_data *k = TU_TEXT("k");
    tc_value v = TC_VALUE_INIT;
    int action = -1, calls = 0;
    double d = 12345;
    tu_set(c, k, TU_TEXT("hello"));
    TU_RC(tc_averager_add(c, k, 1, TC_NO_EXPIRE, NULL), TC_ETYPE);
    TU_RC(tc_averager_get(c, k, &d), TC_ETYPE);
    TU_RC(tc_averager_pop(c, k, &d), TC_ETYPE);
    cr_assert_eq(d, 12345, "a refused average wrote the output");
    tu_expect_text(c, k, "hello");
    TU_RC(tc_throttle_take(c, k, 1, 1, TC_NO_EXPIRE, TU_T0, &d), TC_ETYPE);
    tu_expect_text(c, k, "hello");
    TU_RC(tc_sem_acquire(c, k, 2, TC_NO_EXPIRE, 0), TC_ETYPE);
    TU_RC(tc_sem_release(c, k, 2, TC_NO_EXPIRE), TC_ETYPE);
    tu_expect_text(c, k, "hello");
    TU_RC(tc_stampede_begin(c, k, 0, 1, &v, &action), TC_ETYPE);
    TU_RC(tc_memoize_stampede(c, k, 10, 0, never_called, &calls, &v), TC_ETYPE);
    cr_assert_eq(calls, 0, "computed over a foreign value");
    cr_assert_eq(v.type, TC_NONE);
    tu_expect_text(c, k, "hello");
    /* A value that is no owner record is a holder of unknown liveness
     * (python-diskcache's own Lock writes such values): never taken. */
    TU_OK(tc_lock_locked(c, k));
    TU_RC(tc_lock_acquire(c, k, TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_RC(tc_lock_acquire(c, k, TC_NO_EXPIRE, 0.05), TC_EXISTS);
    TU_RC(tc_rlock_acquire(c, k, NULL, TC_NO_EXPIRE, 0), TC_EXISTS);
    TU_RC(tc_lock_release(c, k), TC_EPERM);
    TU_RC(tc_rlock_release(c, k, NULL), TC_EPERM);
    tu_expect_text(c, k, "hello");
    /* A number where a MessagePack pair belongs, and the reverse. */
    tu_set(c, TU_TEXT("n"), TU_INT(7));
    TU_RC(tc_averager_add(c, TU_TEXT("n"), 1, TC_NO_EXPIRE, NULL), TC_ETYPE);
    tu_expect_int(c, TU_TEXT("n"), 7);
    TU_OK(tc_averager_add(c, TU_TEXT("a"), 1, TC_NO_EXPIRE, NULL));
    TU_RC(tc_sem_acquire(c, TU_TEXT("a"), 2, TC_NO_EXPIRE, 0), TC_ETYPE);
    TU_RC(tc_stampede_begin(c, TU_TEXT("n"), 0, 1, &v, &action), TC_ETYPE);
    TU_RC(tc_throttle_take(c, TU_TEXT("n"), 1, 1, TC_NO_EXPIRE, TU_T0, &d),
          TC_ETYPE);
    tu_expect_int(c, TU_TEXT("n"), 7);
    TU_OK(tc_averager_get(c, TU_TEXT("a"), &d));
    cr_assert_eq(d, 1);
    cr_assert_eq(tu_length(fx.c), 3);
}
