/*
 * test_hot_procs.c - the hot tier across processes and threads
 * (docs/ARCHITECTURE.md, "Hot tier"):
 *  - a hit makes no system call at all (seccomp strict mode kills the
 *    process on the first one);
 *  - many threads of one process read through one handle while another
 *    process writes, and never see a torn, foreign or older value;
 *  - a handle opened before fork() keeps working in the child and in the
 *    parent, and nginx-style masters and workers see each other's writes
 *    whether the master or each worker opened the cache;
 *  - two reader processes of one hot key are both served by the segment.
 * Behaviour only: no assertion depends on how fast anything ran.
 */
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#include "keyed_value.h"
#include "testutil.h"

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* a dead peer must be an error, not a kill */
    tu_fx_init("mphot");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(mp_hot_procs, .init = setup, .fini = teardown, .timeout = 300);

/* ===================================================================== */
/* Helpers                                                               */


static uint64_t rnd_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* child_open - a hot handle on fx.dir for a child (no cr_assert there);
 * NULL with a message on @msgfd on failure. */
static tc_cache *child_open(int msgfd, int shards, struct tu_clock *clk)
{
    tc_cache *c = NULL;
    int rc = tc_create(&c);
    if (rc == TC_OK)
        rc = tc_set_hot_size(c, TU_HOT_SIZE);
    if (rc == TC_OK)
        rc = tc_set_shards(c, shards);
    if (rc == TC_OK && clk)
        rc = tc_set_clock(c, tu_clock_fn, clk);
    if (rc == TC_OK)
        rc = tc_open(c, fx.dir, 0);
    if (rc != TC_OK) {
        tu_child_msg(msgfd, "open: %s: %s\n", tc_errname(rc), tc_errmsg());
        tc_close(c);
        return NULL;
    }
    return c;
}

/* hot_in_use - 0 if @c reads through an attached segment. */
static int hot_in_use(tc_cache *c, int msgfd, const char *who)
{
    tc_hot_stats hs = {0};
    int rc = tc_hot_stats_get(c, &hs);
    if (rc != TC_OK || !hs.attached || !hs.reading)
        return tu_child_msg(msgfd,
                            "%s: hot tier not in use (%s, attached "
                            "%d, reading %d)\n",
                            who, tc_errname(rc), hs.attached, hs.reading);
    return 0;
}


/* ===================================================================== */
/* (a) Zero system calls on hits                                         */

#define SC_KEYS 1000
#define SC_GETS 100000

struct sc_arg {
    int shards;
    int fake_clock;
};

/* fmt_u64 - decimal without stdio (allowed under seccomp strict). */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0, i = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        out[i++] = tmp[--n];
    return i;
}

static int seccomp_child(void *argp, int msgfd)
{
    struct sc_arg *a = argp;
    static char names[SC_KEYS][16], vals[SC_KEYS][64];
    static tc_data keys[SC_KEYS];
    static size_t vlen[SC_KEYS];
    char buf[256];
    /* The once-a-second foreign-writer check is the one documented
     * exception to "a hit makes no system call" (docs/ARCHITECTURE.md,
     * "Foreign writers"); turn it off to prove the rest makes none. */
    setenv("TIERCACHE_FOREIGN_CHECK_MS", "0", 1);
    tc_cache *c =
        child_open(msgfd, TC_SHARDS_AUTO, a->fake_clock ? &fx.clk : NULL);
    if (!c || hot_in_use(c, msgfd, "seccomp child"))
        return 1;
    for (int i = 0; i < SC_KEYS; i++) {
        snprintf(names[i], sizeof names[i], "sc-%04d", i);
        vlen[i] =
            (size_t)snprintf(vals[i], sizeof vals[i], "value %d %016llx", i,
                             (unsigned long long)kv_mix64((uint64_t)i));
        keys[i] = (tc_data){names[i], strlen(names[i]), TC_TEXT};
        int rc = tc_set(c, &keys[i], TU_TEXTN(vals[i], vlen[i]), TC_NO_EXPIRE,
                        NULL, 0);
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "set %s: %s: %s\n", names[i],
                                tc_errname(rc), tc_errmsg());
    }
    /* A set publishes; a touch that changes the expiry only invalidates,
     * so half the keys come back through a fill (the other path that makes
     * items). */
    for (int i = 1; i < SC_KEYS; i += 2) {
        int rc = tc_touch(c, &keys[i], 1e6, 0);
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "touch %s: %s\n", names[i],
                                tc_errname(rc));
    }
    /* Two reads each outside the sandbox: every lazy first-call setup of
     * the read path (slot claim, fork check, fills) happens here, and the
     * second pass must be all hits, or the sandbox would fail on a miss's
     * SQLite read rather than on a hit. */
    tc_hot_stats s0 = {0}, s1 = {0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && tc_hot_stats_get(c, &s0) != TC_OK)
            return tu_child_msg(msgfd, "stats: %s\n", tc_errmsg());
        for (int i = 0; i < SC_KEYS; i++) {
            size_t len = 0;
            int type = TC_NONE;
            int rc =
                tc_get_buf(c, &keys[i], buf, sizeof buf, &len, &type, NULL, 0);
            if (rc != TC_OK || type != TC_TEXT || len != vlen[i] ||
                memcmp(buf, vals[i], len) != 0)
                return tu_child_msg(msgfd, "warm-up get %s: %s\n", names[i],
                                    tc_errname(rc));
        }
    }
    if (tc_hot_stats_get(c, &s1) != TC_OK || s1.hits - s0.hits != SC_KEYS)
        return tu_child_msg(msgfd,
                            "before the sandbox: %llu of %d keys are hot "
                            "(+%llu misses)\n",
                            (unsigned long long)(s1.hits - s0.hits), SC_KEYS,
                            (unsigned long long)(s1.misses - s0.misses));
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0) {
        tu_child_msg(msgfd, "seccomp strict mode unavailable: %s\n",
                     strerror(errno));
        return 77;
    }
    /* From here on: read(), write(), exit() and sigreturn() only. Any other
     * system call (futex, clock_gettime without vDSO, mmap, ...) is
     * answered with SIGKILL. */
    uint64_t ok = 0;
    for (int i = 0; i < SC_GETS; i++) {
        int j = i % SC_KEYS;
        size_t len = 0;
        int type = TC_NONE;
        int rc = tc_get_buf(c, &keys[j], buf, sizeof buf, &len, &type, NULL, 0);
        ok += rc == TC_OK && type == TC_TEXT && len == vlen[j] &&
              memcmp(buf, vals[j], len) == 0;
    }
    char line[40] = "ok=";
    size_t n = 3 + fmt_u64(line + 3, ok);
    line[n++] = '\n';
    (void)!write(msgfd, line, n);
    syscall(SYS_exit, 0); /* exit_group is not allowed in strict mode */
    return 0;
}

static void run_seccomp(int shards, int fake_clock)
{
    char msg[1024];
    struct sc_arg a = {shards, fake_clock};
    /* One clock for both processes: the touched items expire in 1e6 s. */
    fx.c =
        tu_open_hot(fx.dir, shards, fake_clock ? &fx.clk : NULL, TU_HOT_SIZE);
    tc_hot_stats before = tu_hot_stats(fx.c);
    cr_assert(before.attached && before.reading, "the hot tier is not in use");
    int code = tu_run_child(seccomp_child, &a, msg, sizeof msg);
    if (code == 77)
        cr_skip_test("%s", msg);
    cr_assert_neq(code, 128 + SIGKILL,
                  "the child was killed by SIGKILL: a tc_get_buf hit made a "
                  "system call (%s)",
                  msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    unsigned long long ok = 0;
    cr_assert_eq(sscanf(msg, "ok=%llu", &ok), 1, "child said: %s", msg);
    cr_assert_eq(ok, SC_GETS, "%llu of %d sandboxed gets returned the value",
                 ok, SC_GETS);
    tc_hot_stats after = tu_hot_stats(fx.c);
    cr_assert_geq(after.hits - before.hits, (uint64_t)SC_GETS,
                  "hot hits grew by %llu, expected at least %d",
                  (unsigned long long)(after.hits - before.hits), SC_GETS);
    cr_assert_geq(after.fills - before.fills, (uint64_t)SC_KEYS / 2,
                  "%llu fills for the %d touched keys",
                  (unsigned long long)(after.fills - before.fills),
                  SC_KEYS / 2);
    /* The child's items serve this process too. */
    for (int i = 0; i < SC_KEYS; i += 97) {
        char k[16], v[64];
        snprintf(k, sizeof k, "sc-%04d", i);
        snprintf(v, sizeof v, "value %d %016llx", i,
                 (unsigned long long)kv_mix64((uint64_t)i));
        tu_expect_text(fx.c, TU_TEXT(k), v);
    }
    tu_expect_hot_clean(fx.c);
}

Test(mp_hot_procs, mp_hot_hits_make_no_syscalls_fanout)
{
    run_seccomp(8, 0);
}

/* A plain Cache, with an injected clock (the other expiry path). */
Test(mp_hot_procs, mp_hot_hits_make_no_syscalls_cache_fake_clock)
{
    run_seccomp(TC_SHARDS_PLAIN, 1);
}

/* ===================================================================== */
/* (b) Threads of one process read while another process writes          */

#define TH_THREADS 4
#define TH_GETS    50000
#define TH_KEYS    64
static void tv_key(int k, char *out, size_t cap)
{
    snprintf(out, cap, "th-%02d", k);
}

/* The writer process: its own handle; set (and sometimes delete) keys
 * with a rising sequence until the parent closes @stopfd's other end.
 * Writes one byte to @readyfd after its first write. */
static int th_writer(int stopfd, int readyfd, int msgfd)
{
    static uint8_t buf[KV_MAX];
    tc_cache *c = child_open(msgfd, TC_SHARDS_AUTO, NULL);
    if (!c || hot_in_use(c, msgfd, "writer"))
        return 1;
    uint64_t rnd = 0x853c49e6748fea9bull ^ (uint64_t)getpid();
    for (uint64_t seq = 1;; seq++) {
        char kn[16];
        int k = (int)(rnd_next(&rnd) % TH_KEYS), rc;
        tv_key(k, kn, sizeof kn);
        if (rnd_next(&rnd) % 10 == 0) {
            rc = tc_delete(c, TU_TEXT(kn), TC_RETRY);
            if (rc == TC_NOTFOUND)
                rc = TC_OK;
        } else {
            size_t n = kv_make(k, seq, buf);
            rc = tc_set(c, TU_TEXT(kn), TU_BYTES(buf, n), TC_NO_EXPIRE, NULL,
                        TC_RETRY);
        }
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "writer: %s: %s: %s\n", kn,
                                tc_errname(rc), tc_errmsg());
        if (seq == 1) {
            (void)tu_write_full(readyfd, "r", 1);
            close(readyfd);
        }
        if (seq % 16 == 0) {
            struct pollfd p = {stopfd, POLLIN, 0};
            if (poll(&p, 1, 0) > 0)
                break; /* EOF: the readers are done */
        }
    }
    tc_close(c);
    return 0;
}

struct th_reader {
    pthread_t tid;
    int id;
    uint64_t hits, misses; /* API results, not hot-tier counters */
    int errors;
    char first_error[256];
};

static void th_error(struct th_reader *t, const char *fmt, ...)
{
    if (t->errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->first_error, sizeof t->first_error, fmt, ap);
        va_end(ap);
    }
}

static void *th_reader_main(void *arg)
{
    struct th_reader *t = arg;
    uint8_t buf[KV_MAX + 64];
    uint64_t last[TH_KEYS] = {0}; /* newest sequence this thread saw */
    uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(t->id + 1);
    for (int i = 0; i < TH_GETS; i++) {
        char kn[16];
        int k = (int)(rnd_next(&rnd) % TH_KEYS), rc;
        uint64_t seq = 0;
        tv_key(k, kn, sizeof kn);
        if (i % 2) {
            tc_item it = TC_ITEM_INIT;
            rc = tc_get(fx.c, TU_TEXT(kn), &it, 0);
            if (rc == TC_OK &&
                (it.value.type != TC_BYTES ||
                 kv_check(k, it.value.ptr, it.value.len, &seq) != 0))
                th_error(t, "tc_get %s: a value that is not this key's", kn);
            tc_item_clear(&it);
        } else {
            size_t n = 0;
            int type = TC_NONE;
            rc = tc_get_buf(fx.c, TU_TEXT(kn), buf, sizeof buf, &n, &type, NULL,
                            0);
            if (rc == TC_OK &&
                (type != TC_BYTES || kv_check(k, buf, n, &seq) != 0))
                th_error(t, "tc_get_buf %s: a value that is not this key's",
                         kn);
        }
        if (rc == TC_OK) {
            t->hits++;
            /* One writer, so sequence order is commit order: a later read
             * in this thread must never go back in time. */
            if (seq && seq < last[k])
                th_error(t, "%s went back from seq %llu to %llu", kn,
                         (unsigned long long)last[k], (unsigned long long)seq);
            if (seq > last[k])
                last[k] = seq;
        } else if (rc == TC_NOTFOUND) {
            t->misses++;
        } else {
            th_error(t, "get %s: %s: %s", kn, tc_errname(rc), tc_errmsg());
        }
    }
    return NULL;
}

Test(mp_hot_procs, mp_hot_threads_read_while_process_writes)
{
    static struct th_reader ts[TH_THREADS];
    int stop[2], ready[2], msgs[2];
    fx.c = tu_open_hot(fx.dir, 8, NULL, TU_HOT_SIZE);
    tc_hot_stats before = tu_hot_stats(fx.c);
    cr_assert(before.attached && before.reading, "the hot tier is not in use");
    cr_assert_eq(pipe(stop), 0);
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(msgs), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(stop[1]);
        close(ready[0]);
        close(msgs[0]);
        _exit(th_writer(stop[0], ready[1], msgs[1]));
    }
    close(stop[0]);
    close(ready[1]);
    close(msgs[1]);
    char ch;
    int started = tu_read_full(ready[0], &ch, 1) == 0;
    close(ready[0]);
    if (started)
        for (int i = 0; i < TH_THREADS; i++) {
            ts[i].id = i;
            cr_assert_eq(
                pthread_create(&ts[i].tid, NULL, th_reader_main, &ts[i]), 0);
        }
    int errors = 0;
    uint64_t ok = 0;
    for (int i = 0; started && i < TH_THREADS; i++) {
        pthread_join(ts[i].tid, NULL);
        if (ts[i].errors)
            cr_log_error("thread %d: %d errors, first: %s", i, ts[i].errors,
                         ts[i].first_error);
        errors += ts[i].errors;
        ok += ts[i].hits;
    }
    close(stop[1]); /* tell the writer to finish */
    char msg[1024];
    tu_read_msgs(msgs[0], msg, sizeof msg);
    int code = tu_wait_exit(pid);
    cr_assert(started, "the writer never wrote: exit %d: %s", code, msg);
    cr_assert_eq(code, 0, "writer: exit %d: %s", code, msg);
    cr_assert_eq(errors, 0, "%d bad reads (see log)", errors);
    cr_assert_gt(ok, 0, "no read found a value");
    tc_hot_stats after = tu_hot_stats(fx.c);
    cr_assert_gt(after.hits, before.hits, "no hot hits");
    cr_log_info("threads: %llu values read; hot: +%llu hits, +%llu misses, "
                "+%llu fills, +%llu retries",
                (unsigned long long)ok,
                (unsigned long long)(after.hits - before.hits),
                (unsigned long long)(after.misses - before.misses),
                (unsigned long long)(after.fills - before.fills),
                (unsigned long long)(after.retries - before.retries));
    /* Once the writer is gone, the hot tier and SQLite agree on every key
     * (read twice: a fill, then a hit). */
    tc_cache *cold = tu_open_cold(fx.dir, NULL);
    for (int k = 0; k < TH_KEYS; k++)
        for (int pass = 0; pass < 2; pass++) {
            char kn[16];
            tc_item a = TC_ITEM_INIT, b = TC_ITEM_INIT;
            tv_key(k, kn, sizeof kn);
            int ra = tc_get(fx.c, TU_TEXT(kn), &a, 0);
            int rb = tc_get(cold, TU_TEXT(kn), &b, 0);
            cr_assert_eq(ra, rb, "%s: hot %s, cold %s", kn, tc_errname(ra),
                         tc_errname(rb));
            if (ra == TC_OK)
                cr_assert(a.value.len == b.value.len &&
                              memcmp(a.value.ptr, b.value.ptr, a.value.len) ==
                                  0,
                          "%s: hot and cold values differ", kn);
            tc_item_clear(&a);
            tc_item_clear(&b);
        }
    tc_close(cold);
    tu_expect_hot_clean(fx.c);
}

/* ===================================================================== */
/* (c) fork after open                                                   */

#define FK_GETS 100

/* The child uses fx.c, opened (and made hot) by the parent. */
static int fork_child(void *argp, int msgfd)
{
    (void)argp;
    tc_hot_stats s0, s1;
    tc_item it = TC_ITEM_INIT;
    int rc;
    if (hot_in_use(fx.c, msgfd, "child") || tc_hot_stats_get(fx.c, &s0))
        return 1;
    for (int i = 0; i < FK_GETS; i++) {
        rc = tc_get(fx.c, TU_TEXT("a"), &it, 0);
        if (rc != TC_OK || it.value.type != TC_INT || it.value.i != 1)
            return tu_child_msg(msgfd, "get a: %s: %s\n", tc_errname(rc),
                                tc_errmsg());
        tc_item_clear(&it);
    }
    if (tc_hot_stats_get(fx.c, &s1))
        return tu_child_msg(msgfd, "stats: %s\n", tc_errmsg());
    /* Nobody else runs now: the child's own gets must have been hits. */
    if (s1.hits - s0.hits < FK_GETS)
        return tu_child_msg(msgfd, "child: %llu hot hits for %d gets\n",
                            (unsigned long long)(s1.hits - s0.hits), FK_GETS);
    if ((rc = tc_set(fx.c, TU_TEXT("a"), TU_INT(3), TC_NO_EXPIRE, NULL, 0)) ||
        (rc = tc_set(fx.c, TU_TEXT("b"), TU_INT(2), TC_NO_EXPIRE, NULL, 0)) ||
        (rc = tc_delete(fx.c, TU_TEXT("c"), 0)) ||
        (rc = tc_incr(fx.c, TU_TEXT("d"), TU_INT(1), NULL, NULL, 0)))
        return tu_child_msg(msgfd, "child write: %s: %s\n", tc_errname(rc),
                            tc_errmsg());
    static const struct {
        const char *k;
        int rc;
        int64_t v;
    } want[] = {{"a", TC_OK, 3},
                {"b", TC_OK, 2},
                {"c", TC_NOTFOUND, 0},
                {"d", TC_OK, 6}};
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            rc = tc_get(fx.c, TU_TEXT(want[i].k), &it, 0);
            if (rc != want[i].rc || (rc == TC_OK && (it.value.type != TC_INT ||
                                                     it.value.i != want[i].v)))
                return tu_child_msg(msgfd, "child reads %s: %s\n", want[i].k,
                                    tc_errname(rc));
            tc_item_clear(&it);
        }
    uint64_t problems = 99;
    if (tc_hot_check(fx.c, NULL, NULL, &problems) != TC_OK || problems)
        return tu_child_msg(msgfd, "child: tc_hot_check: %llu problems\n",
                            (unsigned long long)problems);
    return 0;
}

Test(mp_hot_procs, mp_hot_fork_child_uses_inherited_handle)
{
    char msg[1024];
    fx.c = tu_open_hot(fx.dir, 8, NULL, TU_HOT_SIZE);
    tu_set(fx.c, TU_TEXT("a"), TU_INT(1));
    tu_set(fx.c, TU_TEXT("c"), TU_TEXT("gone soon"));
    TU_OK(tc_incr(fx.c, TU_TEXT("d"), TU_INT(5), TU_INT(0), NULL, 0));
    /* Make every key hot in the parent before the fork. */
    tu_expect_int(fx.c, TU_TEXT("a"), 1);
    tu_expect_text(fx.c, TU_TEXT("c"), "gone soon");
    tu_expect_int(fx.c, TU_TEXT("d"), 5);
    tc_hot_stats before = tu_hot_stats(fx.c);
    cr_assert(before.attached && before.reading, "the hot tier is not in use");
    int code = tu_run_child(fork_child, NULL, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    /* The parent's earlier (hot) values must not come back. */
    for (int pass = 0; pass < 2; pass++) {
        tu_expect_int(fx.c, TU_TEXT("a"), 3);
        tu_expect_int(fx.c, TU_TEXT("b"), 2);
        tu_expect_missing(fx.c, TU_TEXT("c"));
        tu_expect_int(fx.c, TU_TEXT("d"), 6);
    }
    /* The parent keeps working through its handle. */
    tu_set(fx.c, TU_TEXT("e"), TU_INT(7));
    tu_expect_int(fx.c, TU_TEXT("e"), 7);
    TU_OK(tc_incr(fx.c, TU_TEXT("d"), TU_INT(1), NULL, NULL, 0));
    tu_expect_int(fx.c, TU_TEXT("d"), 7);
    tc_hot_stats after = tu_hot_stats(fx.c);
    cr_assert_geq(after.hits - before.hits, (uint64_t)FK_GETS,
                  "the child's hits are not counted (+%llu)",
                  (unsigned long long)(after.hits - before.hits));
    tu_expect_hot_clean(fx.c);
}

/* nginx: a master and two workers. Workers take turns: one writes its own
 * key and a shared one and tells the other, which must read both at once.
 * The master writes its own key meanwhile. */
#define NG_ROUNDS 400

struct ng_msg {
    int32_t round;
    int32_t shared_present;
    int64_t shared;
};

static int ng_expect(tc_cache *c, const char *k, int present, int64_t v,
                     int round, int msgfd)
{
    for (int pass = 0; pass < 2; pass++) {
        tc_item it = TC_ITEM_INIT;
        int rc = tc_get(c, TU_TEXT(k), &it, 0);
        int ok = present
                     ? rc == TC_OK && it.value.type == TC_INT && it.value.i == v
                     : rc == TC_NOTFOUND;
        int64_t got = rc == TC_OK ? it.value.i : -1;
        tc_item_clear(&it);
        if (!ok)
            return tu_child_msg(msgfd,
                                "round %d: %s: %s value %lld, expected %s "
                                "%lld\n",
                                round, k, tc_errname(rc), (long long)got,
                                present ? "present" : "absent", (long long)v);
        int64_t iv = -1;
        size_t n = 0;
        rc = tc_get_buf(c, TU_TEXT(k), &iv, sizeof iv, &n, NULL, NULL, 0);
        ok = present ? rc == TC_OK && n == 8 && iv == v : rc == TC_NOTFOUND;
        if (!ok)
            return tu_child_msg(msgfd, "round %d: get_buf %s: %s %lld\n", round,
                                k, tc_errname(rc), (long long)iv);
    }
    return 0;
}

/* ng_worker - worker @me (0/1) on @c (NULL: open its own handle). */
static int ng_worker(tc_cache *c, int me, int rfd, int wfd, int msgfd)
{
    char mine[16], theirs[16];
    int own = c == NULL, present = 0;
    int64_t shared = 0, master = 0;
    if (own && !(c = child_open(msgfd, TC_SHARDS_AUTO, NULL)))
        return 1;
    if (hot_in_use(c, msgfd, "worker"))
        return 1;
    snprintf(mine, sizeof mine, "worker%d", me);
    snprintf(theirs, sizeof theirs, "worker%d", 1 - me);
    for (int r = 0; r < NG_ROUNDS; r++) {
        struct ng_msg m;
        tc_item it = TC_ITEM_INIT;
        /* The master writes 0, 1, ... 199 meanwhile: absent, or never
         * going back. */
        int rc = tc_get(c, TU_TEXT("master"), &it, 0);
        if (rc == TC_OK) {
            int bad = it.value.type != TC_INT || it.value.i < master ||
                      it.value.i > 199;
            master = it.value.i;
            tc_item_clear(&it);
            if (bad)
                return tu_child_msg(msgfd, "worker %d: master went to %lld\n",
                                    me, (long long)master);
        } else if (rc != TC_NOTFOUND) {
            return tu_child_msg(msgfd, "worker %d: get master: %s\n", me,
                                tc_errname(rc));
        }
        if (r % 2 == me) {
            int64_t v = (int64_t)me * 1000000 + r;
            rc = tc_set(c, TU_TEXT(mine), TU_INT(v), TC_NO_EXPIRE, NULL,
                        TC_RETRY);
            if (rc == TC_OK && r % 3 == 2) {
                rc = tc_delete(c, TU_TEXT("shared"), TC_RETRY);
                if (rc == (present ? TC_OK : TC_NOTFOUND))
                    rc = TC_OK;
                else if (rc == TC_OK)
                    rc = TC_EINTERNAL; /* deleted what was absent */
                present = 0;
            } else if (rc == TC_OK) {
                rc = tc_set(c, TU_TEXT("shared"), TU_INT(v), TC_NO_EXPIRE, NULL,
                            TC_RETRY);
                present = 1;
                shared = v;
            }
            if (rc != TC_OK)
                return tu_child_msg(msgfd, "worker %d round %d: write: %s\n",
                                    me, r, tc_errname(rc));
            if (ng_expect(c, mine, 1, v, r, msgfd) ||
                ng_expect(c, "shared", present, shared, r, msgfd))
                return 1;
            m = (struct ng_msg){r, present, shared};
            char ack;
            if (tu_write_full(wfd, &m, sizeof m) || tu_read_full(rfd, &ack, 1))
                return tu_child_msg(msgfd, "worker %d round %d: peer gone\n",
                                    me, r);
        } else {
            if (tu_read_full(rfd, &m, sizeof m) || m.round != r)
                return tu_child_msg(msgfd, "worker %d round %d: peer gone\n",
                                    me, r);
            present = m.shared_present;
            shared = m.shared;
            if (ng_expect(c, theirs, 1, (int64_t)(1 - me) * 1000000 + r, r,
                          msgfd) ||
                ng_expect(c, "shared", present, shared, r, msgfd))
                return 1;
            if (r == 1) {
                /* Both workers have made calls by now. */
                tc_hot_stats hs;
                if (tc_hot_stats_get(c, &hs) == TC_OK && hs.processes < 2)
                    return tu_child_msg(msgfd,
                                        "worker %d: %u live process "
                                        "slots\n",
                                        me, hs.processes);
            }
            if (tu_write_full(wfd, "k", 1))
                return tu_child_msg(msgfd, "worker %d round %d: peer gone\n",
                                    me, r);
        }
    }
    if (own)
        tc_close(c);
    return 0;
}

static void run_nginx(int master_opens)
{
    int a2b[2], b2a[2], msgs[2];
    pid_t pids[2];
    if (master_opens) {
        fx.c = tu_open_hot(fx.dir, 8, NULL, TU_HOT_SIZE);
        tu_set(fx.c, TU_TEXT("master-init"), TU_INT(-1));
        tu_expect_int(fx.c, TU_TEXT("master-init"), -1);
    }
    cr_assert_eq(pipe(a2b), 0);
    cr_assert_eq(pipe(b2a), 0);
    cr_assert_eq(pipe(msgs), 0);
    fflush(NULL);
    for (int w = 0; w < 2; w++) {
        pids[w] = fork();
        cr_assert_geq(pids[w], 0);
        if (pids[w] == 0) {
            int rfd = w == 0 ? b2a[0] : a2b[0];
            int wfd = w == 0 ? a2b[1] : b2a[1];
            close(w == 0 ? a2b[0] : b2a[0]);
            close(w == 0 ? b2a[1] : a2b[1]);
            close(msgs[0]);
            /* Workers see the master's key through the inherited handle. */
            if (master_opens &&
                ng_expect(fx.c, "master-init", 1, -1, -1, msgs[1]))
                _exit(1);
            _exit(ng_worker(master_opens ? fx.c : NULL, w, rfd, wfd, msgs[1]));
        }
    }
    close(a2b[0]);
    close(a2b[1]);
    close(b2a[0]);
    close(b2a[1]);
    close(msgs[1]);
    /* The master keeps working while the workers run. */
    for (int i = 0; master_opens && i < 200; i++) {
        TU_OK(tc_set(fx.c, TU_TEXT("master"), TU_INT(i), TC_NO_EXPIRE, NULL,
                     TC_RETRY));
        tu_expect_int(fx.c, TU_TEXT("master"), i);
    }
    char msg[2048];
    tu_read_msgs(msgs[0], msg, sizeof msg);
    for (int w = 0; w < 2; w++) {
        int code = tu_wait_exit(pids[w]);
        cr_assert_eq(code, 0, "worker %d: exit %d: %s", w, code, msg);
    }
    if (!master_opens)
        fx.c = tu_open_hot(fx.dir, TC_SHARDS_AUTO, NULL, TU_HOT_SIZE);
    int last0 = (NG_ROUNDS - 1) / 2 * 2, last1 = last0 + 1;
    if (last1 >= NG_ROUNDS)
        last1 -= 2;
    int lastr = NG_ROUNDS - 1;
    for (int pass = 0; pass < 2; pass++) {
        tu_expect_int(fx.c, TU_TEXT("worker0"), last0);
        tu_expect_int(fx.c, TU_TEXT("worker1"), 1000000 + last1);
        if (lastr % 3 == 2)
            tu_expect_missing(fx.c, TU_TEXT("shared"));
        else
            tu_expect_int(fx.c, TU_TEXT("shared"),
                          (int64_t)(lastr % 2) * 1000000 + lastr);
        if (master_opens)
            tu_expect_int(fx.c, TU_TEXT("master"), 199);
    }
    tu_expect_hot_clean(fx.c);
}

Test(mp_hot_procs, mp_hot_nginx_master_opens_workers_inherit)
{
    run_nginx(1);
}

Test(mp_hot_procs, mp_hot_nginx_each_worker_opens)
{
    run_nginx(0);
}

/* ===================================================================== */
/* (d) Two reader processes of one hot key both get hits                 */

#define TR_GETS 20000

struct tr_arg {
    int ready_fd;
    struct tu_barrier *b;
};

static int tr_child(struct tr_arg *a, int msgfd)
{
    tc_cache *c = child_open(msgfd, TC_SHARDS_AUTO, NULL);
    if (!c || hot_in_use(c, msgfd, "reader"))
        return 1;
    /* Attached, with a process slot: tell the parent, wait for the other. */
    (void)tu_write_full(a->ready_fd, "r", 1);
    close(a->ready_fd);
    tu_barrier_wait(a->b);
    for (int i = 0; i < TR_GETS; i++) {
        int rc;
        if (i % 2) {
            tc_item it = TC_ITEM_INIT;
            rc = tc_get(c, TU_TEXT("hot"), &it, 0);
            if (rc == TC_OK && !tu_value_text_eq(&it.value, "the hot value"))
                rc = TC_EINTERNAL;
            tc_item_clear(&it);
        } else {
            char buf[64];
            size_t n = 0;
            rc = tc_get_buf(c, TU_TEXT("hot"), buf, sizeof buf, &n, NULL, NULL,
                            0);
            if (rc == TC_OK && (n != 13 || memcmp(buf, "the hot value", 13)))
                rc = TC_EINTERNAL;
        }
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "reader get %d: %s\n", i,
                                tc_errname(rc));
    }
    tc_close(c);
    return 0;
}

Test(mp_hot_procs, mp_hot_two_readers_of_one_key_both_hit)
{
    struct tu_barrier b;
    int ready[2], msgs[2];
    pid_t pids[2];
    fx.c = tu_open_hot(fx.dir, 8, NULL, TU_HOT_SIZE);
    tu_set(fx.c, TU_TEXT("hot"), TU_TEXT("the hot value"));
    tu_expect_text(fx.c, TU_TEXT("hot"), "the hot value");
    tc_hot_stats before = tu_hot_stats(fx.c);
    cr_assert(before.attached && before.reading, "the hot tier is not in use");
    tu_barrier_init(&b);
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(msgs), 0);
    fflush(NULL);
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            struct tr_arg a = {ready[1], &b};
            close(ready[0]);
            close(msgs[0]);
            _exit(tr_child(&a, msgs[1]));
        }
    }
    close(ready[1]);
    close(msgs[1]);
    /* Both readers attach before either reads, so no attach (and slot
     * recovery) happens between a reader's exit and the stats below. */
    char r2[2];
    int both = tu_read_full(ready[0], r2, 2) == 0;
    close(ready[0]);
    tu_barrier_release(&b);
    char msg[1024];
    tu_read_msgs(msgs[0], msg, sizeof msg);
    for (int i = 0; i < 2; i++) {
        int code = tu_wait_exit(pids[i]);
        cr_assert_eq(code, 0, "reader %d: exit %d: %s", i, code, msg);
    }
    cr_assert(both, "a reader did not get ready: %s", msg);
    tc_hot_stats after = tu_hot_stats(fx.c);
    cr_assert_eq(after.hits - before.hits, 2 * TR_GETS,
                 "hot hits grew by %llu for %d gets",
                 (unsigned long long)(after.hits - before.hits), 2 * TR_GETS);
    cr_assert_eq(after.misses - before.misses, 0,
                 "%llu misses on a hot key nobody wrote",
                 (unsigned long long)(after.misses - before.misses));
    tu_expect_text(fx.c, TU_TEXT("hot"), "the hot value");
    tu_expect_hot_clean(fx.c);
}

/* ---- fill lease: concurrent misses of one key fill once --------------- */

#define FL_PROCS 4

struct fl_arg {
    int ready_fd;
    struct tu_barrier *b;
};

static int fl_child(struct fl_arg *a, int msgfd)
{
    tc_cache *c = child_open(msgfd, TC_SHARDS_AUTO, NULL);
    if (!c || hot_in_use(c, msgfd, "misser"))
        return 1;
    (void)tu_write_full(a->ready_fd, "r", 1);
    close(a->ready_fd);
    tu_barrier_wait(a->b);
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(c, TU_TEXT("cold"), &it, 0);
    if (rc == TC_OK && !tu_value_text_eq(&it.value, "the cold value"))
        rc = TC_EINTERNAL;
    tc_item_clear(&it);
    tc_close(c);
    return rc == TC_OK ? 0 : tu_child_msg(msgfd, "get: %s\n", tc_errname(rc));
}

/* FL_PROCS processes miss one cold key at the same moment. The first takes
 * the fill lease and fills; the others wait on the lease and find the
 * filled value, or, if it takes longer than the lease wait, read SQLite
 * without filling. Either way at most one process installs the value from
 * SQLite: without the lease every misser would fill (a fill of the same
 * version is refused and counted in fill_rejects). */
Test(mp_hot_procs, mp_hot_concurrent_misses_fill_once)
{
    struct tu_barrier b;
    int ready[2], msgs[2];
    pid_t pids[FL_PROCS];
    fx.c = tu_open_hot(fx.dir, 8, NULL, TU_HOT_SIZE);
    /* A set publishes; a touch that changes the expiry only invalidates,
     * so the key is in SQLite and not in the hot tier. */
    tu_set(fx.c, TU_TEXT("cold"), TU_TEXT("the cold value"));
    TU_OK(tc_touch(fx.c, TU_TEXT("cold"), 1e6, 0));
    tc_hot_stats before = tu_hot_stats(fx.c);
    tu_barrier_init(&b);
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(msgs), 0);
    fflush(NULL);
    for (int i = 0; i < FL_PROCS; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            struct fl_arg a = {ready[1], &b};
            close(ready[0]);
            close(msgs[0]);
            _exit(fl_child(&a, msgs[1]));
        }
    }
    close(ready[1]);
    close(msgs[1]);
    char r[FL_PROCS];
    int all = tu_read_full(ready[0], r, FL_PROCS) == 0;
    close(ready[0]);
    tu_barrier_release(&b);
    char msg[1024];
    tu_read_msgs(msgs[0], msg, sizeof msg);
    for (int i = 0; i < FL_PROCS; i++) {
        int code = tu_wait_exit(pids[i]);
        cr_assert_eq(code, 0, "misser %d: exit %d: %s", i, code, msg);
    }
    cr_assert(all, "a misser did not get ready: %s", msg);
    tc_hot_stats after = tu_hot_stats(fx.c);
    uint64_t fills = after.fills - before.fills;
    uint64_t rejects = after.fill_rejects - before.fill_rejects;
    cr_log_info("fills %llu, fill rejects %llu, hits %llu",
                (unsigned long long)fills, (unsigned long long)rejects,
                (unsigned long long)(after.hits - before.hits));
    cr_assert_eq(fills, 1, "%llu fills for one key", (unsigned long long)fills);
    cr_assert_eq(rejects, 0, "%llu processes filled the same key again",
                 (unsigned long long)rejects);
    tu_expect_text(fx.c, TU_TEXT("cold"), "the cold value");
    uint64_t problems = 1;
    TU_OK(tc_hot_check(fx.c, NULL, NULL, &problems));
    cr_assert_eq(problems, 0);
}
