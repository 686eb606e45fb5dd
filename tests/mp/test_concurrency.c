/*
 * test_concurrency.c - many threads on one handle, and many processes on
 * one key: properties, not schedules (counters add up exactly, every value
 * read was written by its owner, check passes afterwards).
 */
#include <pthread.h>

#include "testutil.h"

static void setup(void)
{
    tu_fx_init("mpconc");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(mp_conc, .init = setup, .fini = teardown, .timeout = 300);

/* ===================================================================== */
/* 8 threads x 2000 mixed operations on one handle                        */

#define NTHREADS 8
#define NOPS     2000
#define NOWN     50 /* keys owned by each thread */

struct worker {
    pthread_t tid;
    int id;
    int64_t last[NOWN]; /* value of own key i, or -1 when absent */
    int incrs;          /* successful incr calls */
    int errors;
    char first_error[256];
};

static void worker_error(struct worker *w, const char *what, int rc)
{
    if (w->errors++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "%s: %s (%d): %s", what,
                 tc_errname(rc), rc, tc_errmsg());
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char k[32];
    for (int i = 0; i < NOWN; i++)
        w->last[i] = -1;
    for (int i = 0; i < NOPS; i++) {
        int slot = (i * 7 + w->id) % NOWN;
        snprintf(k, sizeof k, "t%d-%d", w->id, slot);
        int rc;
        tc_item it = TC_ITEM_INIT;
        switch (i % 5) {
        case 0:
            rc = tc_incr(fx.c, TU_TEXT("counter"), TU_INT(1), TU_INT(0), NULL,
                         0);
            if (rc == TC_OK)
                w->incrs++;
            else
                worker_error(w, "incr", rc);
            break;
        case 1:
        case 4:
            rc = tc_set(fx.c, TU_TEXT(k), TU_INT(w->id * 100000 + i),
                        TC_NO_EXPIRE, NULL, 0);
            if (rc == TC_OK)
                w->last[slot] = w->id * 100000 + i;
            else
                worker_error(w, "set", rc);
            break;
        case 2:
            rc = tc_get(fx.c, TU_TEXT(k), &it, 0);
            if (w->last[slot] < 0 ? rc != TC_NOTFOUND
                                  : rc != TC_OK || it.value.type != TC_INT ||
                                        it.value.i != w->last[slot])
                worker_error(w, "get returned a stale or foreign value", rc);
            tc_item_clear(&it);
            break;
        case 3:
            if (i % 3 == 0) {
                rc = tc_delete(fx.c, TU_TEXT(k), 0);
                if (rc != (w->last[slot] < 0 ? TC_NOTFOUND : TC_OK))
                    worker_error(w, "delete", rc);
                w->last[slot] = -1;
            } else {
                rc = tc_contains(fx.c, TU_TEXT(k));
                if (rc != (w->last[slot] < 0 ? TC_NOTFOUND : TC_OK))
                    worker_error(w, "contains", rc);
            }
            break;
        }
    }
    return NULL;
}

Test(mp_conc, mp_threads_one_handle_mixed_ops)
{
    static struct worker ws[NTHREADS];
    fx.c = tu_open(fx.dir, NULL);
    for (int i = 0; i < NTHREADS; i++) {
        ws[i].id = i;
        cr_assert_eq(pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]), 0);
    }
    int errors = 0, incrs = 0;
    uint64_t live = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(ws[i].tid, NULL);
        if (ws[i].errors)
            cr_log_error("thread %d: %d errors, first: %s", i, ws[i].errors,
                         ws[i].first_error);
        errors += ws[i].errors;
        incrs += ws[i].incrs;
        for (int s = 0; s < NOWN; s++)
            live += ws[i].last[s] >= 0;
    }
    cr_assert_eq(errors, 0, "%d errors across threads (see log)", errors);
    cr_assert_eq(incrs, NTHREADS * NOPS / 5);
    tu_expect_int(fx.c, TU_TEXT("counter"), NTHREADS * NOPS / 5);
    cr_assert_eq(tu_length(fx.c), live + 1, "len %llu, expected %llu",
                 (unsigned long long)tu_length(fx.c),
                 (unsigned long long)live + 1);
    for (int i = 0; i < NTHREADS; i++)
        for (int s = 0; s < NOWN; s++) {
            char k[32];
            snprintf(k, sizeof k, "t%d-%d", i, s);
            if (ws[i].last[s] < 0)
                tu_expect_missing(fx.c, TU_TEXT(k));
            else
                tu_expect_int(fx.c, TU_TEXT(k), ws[i].last[s]);
        }
    uint64_t w = 99;
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0);
}

/* Threads inside their own transactions on one handle: each transaction
 * is per thread, and a rollback in one thread does not undo another's. */
struct txn_worker {
    pthread_t tid;
    int id;
    int errors;
};

static void *txn_main(void *arg)
{
    struct txn_worker *w = arg;
    for (int i = 0; i < 50; i++) {
        char k[32];
        snprintf(k, sizeof k, "x%d-%d", w->id, i);
        if (tc_begin(fx.c, TC_RETRY) != TC_OK) {
            w->errors++;
            continue;
        }
        if (tc_set(fx.c, TU_TEXT(k), TU_INT(i), TC_NO_EXPIRE, NULL, 0) != TC_OK)
            w->errors++;
        if (tc_incr(fx.c, TU_TEXT("sum"), TU_INT(1), TU_INT(0), NULL, 0) !=
            TC_OK)
            w->errors++;
        if (i % 2 ? tc_rollback(fx.c) != TC_OK : tc_commit(fx.c) != TC_OK)
            w->errors++;
    }
    return NULL;
}

Test(mp_conc, mp_threads_own_transactions)
{
    static struct txn_worker ws[4];
    fx.c = tu_open(fx.dir, NULL);
    for (int i = 0; i < 4; i++) {
        ws[i].id = i;
        cr_assert_eq(pthread_create(&ws[i].tid, NULL, txn_main, &ws[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(ws[i].tid, NULL);
        cr_assert_eq(ws[i].errors, 0, "thread %d: %d errors", i, ws[i].errors);
    }
    tu_expect_int(fx.c, TU_TEXT("sum"), 4 * 25);
    cr_assert_eq(tu_length(fx.c), 4 * 25 + 1);
    tu_expect_int(fx.c, TU_TEXT("x2-10"), 10);
    tu_expect_missing(fx.c, TU_TEXT("x2-11"));
}

/* ===================================================================== */
/* Several processes incrementing one key with TC_RETRY                    */

#define NPROC 8
#define NINCR 250

struct incr_arg {
    int shards;
    double timeout; /* < 0: default */
    struct tu_barrier *b;
};

static int incr_child(void *argp, int msgfd)
{
    struct incr_arg *a = argp;
    tu_barrier_wait(a->b);
    tc_cache *c = NULL;
    if (tc_create(&c) != TC_OK)
        return tu_child_msg(msgfd, "create");
    (void)tc_set_hot_size(c, 0);
    tc_set_shards(c, a->shards);
    if (a->timeout >= 0)
        tc_set_timeout(c, a->timeout);
    int rc = tc_open(c, fx.dir, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "open: %s", tc_errname(rc));
    for (int i = 0; i < NINCR; i++) {
        rc = tc_incr(c, TU_TEXT("n"), TU_INT(1), TU_INT(0), NULL, TC_RETRY);
        if (rc == TC_OK)
            rc = tc_incr(c, TU_INT(i % 16), TU_INT(2), TU_INT(0), NULL,
                         TC_RETRY);
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "incr %d: %s: %s", i, tc_errname(rc),
                                tc_errmsg());
    }
    tc_close(c);
    return 0;
}

static void run_incr(int shards, double timeout)
{
    struct tu_barrier b;
    struct incr_arg a = {shards, timeout, &b};
    pid_t pids[NPROC];
    int msgs[2];
    tu_barrier_init(&b);
    cr_assert_eq(pipe(msgs), 0);
    fflush(NULL);
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            close(msgs[0]);
            _exit(incr_child(&a, msgs[1]));
        }
    }
    close(msgs[1]);
    usleep(100 * 1000);
    tu_barrier_release(&b);
    char msg[2048] = "";
    tu_read_msgs(msgs[0], msg, sizeof msg);
    for (int i = 0; i < NPROC; i++) {
        int code = tu_wait_exit(pids[i]);
        cr_assert_eq(code, 0, "child %d: exit %d: %s", i, code, msg);
    }
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_AUTO, NULL, NULL);
    tu_expect_int(fx.c, TU_TEXT("n"), NPROC * NINCR);
    for (int k = 0; k < 16; k++)
        tu_expect_int(fx.c, TU_INT(k),
                      2 * NPROC * (NINCR / 16 + (k < NINCR % 16)));
    uint64_t w = 99;
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0);
}

/* A 1 ms busy timeout makes busy errors frequent; TC_RETRY hides them. */
Test(mp_conc, mp_procs_incr_retry_cache)
{
    fx.c = tu_open(fx.dir, NULL); /* create it first: plain Cache */
    tc_close(fx.c);
    fx.c = NULL;
    run_incr(TC_SHARDS_PLAIN, 0.001);
}

Test(mp_conc, mp_procs_incr_retry_fanout)
{
    fx.c = tu_open_ex(fx.dir, TC_SHARDS_AUTO, NULL, NULL);
    tc_close(fx.c);
    fx.c = NULL;
    run_incr(TC_SHARDS_AUTO, -1); /* default FanoutCache timeout: 10 ms */
}

/* add() is atomic: of many concurrent adds of one key exactly one wins. */
static int add_child(void *argp, int msgfd)
{
    struct tu_barrier *b = argp;
    (void)msgfd;
    tu_barrier_wait(b);
    tc_cache *c = NULL;
    if (tc_create(&c) != TC_OK)
        return 20;
    (void)tc_set_hot_size(c, 0);
    if (tc_open(c, fx.dir, 0) != TC_OK)
        return 21;
    int rc = tc_add(c, TU_TEXT("lock"), TU_INT(getpid()), TC_NO_EXPIRE, NULL,
                    TC_RETRY);
    tc_close(c);
    return rc == TC_OK ? 0 : rc == TC_EXISTS ? 1 : 22;
}

Test(mp_conc, mp_procs_add_one_winner)
{
    enum { N = 16 };
    struct tu_barrier b;
    pid_t pids[N];
    fx.c = tu_open(fx.dir, NULL);
    tc_close(fx.c);
    fx.c = NULL;
    tu_barrier_init(&b);
    fflush(NULL);
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0)
            _exit(add_child(&b, 2));
    }
    usleep(100 * 1000);
    tu_barrier_release(&b);
    int winners = 0, winner_pid = 0;
    for (int i = 0; i < N; i++) {
        int code = tu_wait_exit(pids[i]);
        cr_assert(code == 0 || code == 1, "child %d: exit %d", i, code);
        if (code == 0) {
            winners++;
            winner_pid = pids[i];
        }
    }
    cr_assert_eq(winners, 1, "%d adds won", winners);
    fx.c = tu_open(fx.dir, NULL);
    tu_expect_int(fx.c, TU_TEXT("lock"), winner_pid);
}
