/*
 * threads_stress.h - the threaded coherence stress of the hot tier, with
 * no test framework: tests/mp/test_threads.c runs it under Criterion, and
 * tests/tsan/tsan_threads.c runs it as a plain program built with
 * ThreadSanitizer (Criterion's forked test boxes do not start under TSan).
 *
 * Threads share one handle, hence one mapping of the segment, which is
 * what TSan needs: it tracks memory by address and cannot follow two
 * processes. Writer threads own disjoint keys, so the operations on one
 * key are totally ordered. Before each operation its writer stores the
 * sequence number in started[key], after it returns in done[key]. A
 * reader loads lo = done[key], reads, then loads hi = started[key]. Then:
 *  - a value must decode (key, sequence, length and body all agree), so
 *    a torn or misplaced copy fails;
 *  - its sequence s must be a set with lo <= s <= hi: nothing older than
 *    what finished before the read began, nothing not yet begun;
 *  - a miss needs a delete d with lo <= d <= hi (or no write finished).
 * The gets alternate between tc_get_buf and tc_get, writes between set,
 * add after delete, and delete; misses fill the hot tier while writers
 * invalidate it. Speed never decides pass/fail.
 */
#ifndef TC_THREADS_STRESS_H
#define TC_THREADS_STRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyed_value.h"
#include "tiercache.h"

#define NWRITERS 2
#define NREADERS 3
#define NKEYS    16

struct run {
    tc_cache *c;
    _Atomic uint64_t started[NKEYS], done[NKEYS];
    atomic_int stop;
    atomic_int go;
};

struct thr {
    pthread_t tid;
    struct run *run;
    int id;
    uint64_t ops, hits, misses;
    char err[400]; /* first failure, empty if none */
};


/* Sequence s of a key is a delete when s % 5 == 0, else a set. */
static int is_delete(uint64_t s)
{
    return s % 5 == 0;
}

static void key_name(int k, char *out, size_t cap)
{
    snprintf(out, cap, "key-%02d", k);
}

static void *writer_main(void *arg)
{
    struct thr *t = arg;
    struct run *r = t->run;
    static _Thread_local uint8_t buf[KV_MAX];
    while (!atomic_load(&r->go))
        ;
    for (uint64_t s = 1; !atomic_load(&r->stop); s++) {
        for (int k = t->id; k < NKEYS; k += NWRITERS) {
            char kn[16];
            key_name(k, kn, sizeof kn);
            atomic_store(&r->started[k], s);
            int rc;
            if (is_delete(s)) {
                rc = tc_delete(r->c, &(tc_data){kn, strlen(kn), TC_TEXT},
                               TC_RETRY);
                if (rc == TC_NOTFOUND)
                    rc = TC_OK;
            } else {
                size_t n = kv_make(k, s, buf);
                /* After a delete the key is absent: add must succeed. */
                rc = is_delete(s - 1)
                         ? tc_add(r->c, &(tc_data){kn, strlen(kn), TC_TEXT},
                                  &(tc_data){buf, n, TC_BYTES}, TC_NO_EXPIRE,
                                  NULL, TC_RETRY)
                         : tc_set(r->c, &(tc_data){kn, strlen(kn), TC_TEXT},
                                  &(tc_data){buf, n, TC_BYTES}, TC_NO_EXPIRE,
                                  NULL, TC_RETRY);
            }
            if (rc != TC_OK) {
                snprintf(t->err, sizeof t->err,
                         "writer %d: seq %llu of %s: %s: %s", t->id,
                         (unsigned long long)s, kn, tc_errname(rc),
                         tc_errmsg());
                atomic_store(&r->stop, 1);
                return NULL;
            }
            atomic_store(&r->done[k], s);
            t->ops++;
        }
    }
    return NULL;
}

/* A delete among lo..hi? */
static int delete_between(uint64_t lo, uint64_t hi)
{
    for (uint64_t d = lo; d <= hi; d++)
        if (d > 0 && is_delete(d))
            return 1;
    return 0;
}

static void *reader_main(void *arg)
{
    struct thr *t = arg;
    struct run *r = t->run;
    static _Thread_local uint8_t buf[KV_MAX];
    uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(t->id + 1);
    while (!atomic_load(&r->go))
        ;
    for (uint64_t i = 0; !atomic_load(&r->stop); i++) {
        rnd = kv_mix64(rnd + i);
        int k = (int)(rnd % NKEYS);
        char kn[16];
        key_name(k, kn, sizeof kn);
        uint64_t lo = atomic_load(&r->done[k]);
        int rc, type = TC_NONE;
        size_t len = 0;
        tc_item it = TC_ITEM_INIT;
        const void *p = buf;
        if (i & 1) {
            rc = tc_get_buf(r->c, &(tc_data){kn, strlen(kn), TC_TEXT}, buf,
                            sizeof buf, &len, &type, NULL, 0);
        } else {
            rc = tc_get(r->c, &(tc_data){kn, strlen(kn), TC_TEXT}, &it, 0);
            p = it.value.ptr;
            len = it.value.len;
            type = it.value.type;
        }
        uint64_t hi = atomic_load(&r->started[k]);
        uint64_t s = 0;
        const char *bad = NULL;
        if (rc == TC_OK) {
            t->hits++;
            if (type != TC_BYTES || kv_check(k, p, len, &s) != 0)
                bad = "a value never written (torn or misplaced)";
            else if (is_delete(s) || s > hi)
                bad = "a value not yet written";
            else if (s < lo)
                bad = "a value older than a write that had returned";
        } else if (rc == TC_NOTFOUND) {
            t->misses++;
            if (lo > 0 && !delete_between(lo, hi))
                bad = "a miss with no delete since the last write returned";
        } else {
            bad = "an error";
        }
        tc_item_clear(&it);
        if (bad) {
            snprintf(t->err, sizeof t->err,
                     "reader %d: %s on %s: rc %s, seq %llu, done before %llu, "
                     "started after %llu (%s)",
                     t->id, bad, kn, tc_errname(rc), (unsigned long long)s,
                     (unsigned long long)lo, (unsigned long long)hi,
                     rc == TC_OK || rc == TC_NOTFOUND ? "" : tc_errmsg());
            atomic_store(&r->stop, 1);
            return NULL;
        }
        t->ops++;
    }
    return NULL;
}

/* ts_run - open @dir (hot_size @hot_size, @shards), run the threads for
 * @seconds, check, close. 0 on success, else -1 with the first failure in
 * @err. *@stats gets the handle's hot-tier counters at the end. */
static int ts_run(const char *dir, int shards, uint64_t hot_size,
                  double seconds, tc_hot_stats *stats, uint64_t *writes_out,
                  char *err, size_t cap)
{
    static struct run r;
    static struct thr th[NWRITERS + NREADERS];
    memset(&r, 0, sizeof r);
    memset(th, 0, sizeof th);
    err[0] = 0;
    int rc = tc_create(&r.c);
    if (rc == TC_OK)
        rc = tc_set_hot_size(r.c, hot_size);
    if (rc == TC_OK)
        rc = tc_set_shards(r.c, shards);
    if (rc == TC_OK)
        rc = tc_open(r.c, dir, 0);
    memset(stats, 0, sizeof *stats);
    if (rc == TC_OK)
        rc = tc_hot_stats_get(r.c, stats);
    if (rc != TC_OK || !stats->reading) {
        snprintf(err, cap, "open %.200s: %s: %.200s (reading hot: %d)", dir,
                 tc_errname(rc), tc_errmsg(), stats->reading);
        tc_close(r.c);
        return -1;
    }
    int n = NWRITERS + NREADERS, started = 0;
    for (int i = 0; i < n; i++) {
        th[i].run = &r;
        th[i].id = i < NWRITERS ? i : i - NWRITERS;
        if (pthread_create(&th[i].tid, NULL,
                           i < NWRITERS ? writer_main : reader_main,
                           &th[i]) != 0)
            break;
        started++;
    }
    atomic_store(&r.go, 1);
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (double left = seconds; left > 0 && !atomic_load(&r.stop); left -= 0.01)
        nanosleep(&ts, NULL);
    atomic_store(&r.stop, 1);
    uint64_t writes = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        if (i < NWRITERS)
            writes += th[i].ops;
    }
    *writes_out = writes;
    if (started < n)
        snprintf(err, cap, "pthread_create failed");
    for (int i = 0; i < started && !err[0]; i++)
        if (th[i].err[0])
            snprintf(err, cap, "%s", th[i].err);
    (void)tc_hot_stats_get(r.c, stats);
    /* Every hot entry against SQLite, and the segment's structure. */
    uint64_t problems = 0;
    rc = tc_hot_check(r.c, NULL, NULL, &problems);
    if (!err[0] && (rc != TC_OK || problems))
        snprintf(err, cap, "tc_hot_check: %s, %llu problems", tc_errname(rc),
                 (unsigned long long)problems);
    /* The run must have exercised what it checks. */
    if (!err[0] && writes < 100)
        snprintf(err, cap, "only %llu writes", (unsigned long long)writes);
    if (!err[0] && stats->hits == 0)
        snprintf(err, cap, "no read was served by the hot tier");
    if (!err[0] && stats->fills + stats->publishes == 0)
        snprintf(err, cap, "nothing entered the hot tier");
    tc_close(r.c);
    return err[0] ? -1 : 0;
}

#endif /* TC_THREADS_STRESS_H */
