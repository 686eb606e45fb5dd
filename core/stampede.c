/*
 * stampede.c - memoize_stampede: early recomputation by the XFetch rule
 * (Vattani et al.), one computer at a time across processes (tiercache.h,
 * "Recipes").
 *
 * python-diskcache lets every process that misses compute, and guards
 * early recomputation with an add() that expires after delta, so a slow
 * computation can run twice. Here both a miss and an early recomputation
 * take a lease: a Lock (lock.c) at a key derived from the result's key,
 * held until the result is stored, taken over only if its holder dies.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "owner.h"
#include "small_mpack.h"

/* The lease key of @key (owner.c). Caller frees *buf. */
static int lease_key(const tc_data *key, tc_data *out, unsigned char **buf)
{
    return tc__side_key("lease", key, out, buf);
}

static int lease_try(tc_cache *c, const tc_data *key)
{
    tc_data lk;
    unsigned char *buf;
    int rc = lease_key(key, &lk, &buf);
    if (rc == TC_OK)
        rc = tc_lock_acquire(c, &lk, TC_NO_EXPIRE, 0);
    free(buf);
    return rc;
}

int tc_stampede_abort(tc_cache *c, const tc_data *key)
{
    if (!c || !key)
        return tc__err(TC_EINVAL, "tc_stampede_abort: cache or key is NULL");
    tc_data lk;
    unsigned char *buf;
    int rc = lease_key(key, &lk, &buf);
    if (rc == TC_OK)
        rc = tc_lock_release(c, &lk);
    free(buf);
    return rc;
}

/* The cached [delta, result] of @key: TC_OK (in @result, with its expire
 * time), TC_NOTFOUND, or an error. */
static int lookup(tc_cache *c, const tc_data *key, tc_value *result,
                  double *delta, double *expire_time)
{
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(c, key, &it, 0);
    if (rc == TC_OK) {
        *expire_time = it.expire_time;
        if (tc__mp_with_delta_parse(&it.value, delta, result) != TC_OK)
            rc = tc__err(TC_ETYPE, "tc_stampede_begin: the key does not "
                                   "hold a [delta, result] record");
    }
    tc_item_clear(&it);
    return rc;
}

int tc_stampede_begin(tc_cache *c, const tc_data *key, double beta, double rnd,
                      tc_value *cached, int *action)
{
    const char *fn = "tc_stampede_begin";
    if (!c || !key || !cached || !action)
        return tc__err(TC_EINVAL, "%s: an argument is NULL", fn);
    if (!(beta >= 0) || !isfinite(beta))
        return tc__err(TC_EINVAL, "%s: beta must be a number >= 0", fn);
    if (!(rnd > 0 && rnd <= 1))
        return tc__err(TC_EINVAL, "%s: rnd must be in (0, 1]", fn);
    tc_value_clear(cached);
    double delta = 0, expire_time = 0;
    int rc = lookup(c, key, cached, &delta, &expire_time);
    if (rc == TC_OK) {
        double ttl = expire_time - tc_now(c);
        /* XFetch: recompute early with a probability that grows as the
         * expiry nears, scaled by how long the computation takes. */
        if (isinf(expire_time) || -delta * beta * log(rnd) < ttl) {
            *action = TC_STAMPEDE_USE;
            return TC_OK;
        }
        rc = lease_try(c, key);
        /* Lost the lease: someone recomputes; the stale result serves. */
        *action = rc == TC_OK ? TC_STAMPEDE_COMPUTE : TC_STAMPEDE_USE;
        return rc == TC_EXISTS ? TC_OK : rc;
    }
    if (rc != TC_NOTFOUND)
        return rc;
    rc = lease_try(c, key);
    if (rc == TC_EXISTS) {
        *action = TC_STAMPEDE_WAIT;
        return TC_OK;
    }
    if (rc != TC_OK)
        return rc;
    /* Won the lease: the result may have landed since the lookup. */
    rc = lookup(c, key, cached, &delta, &expire_time);
    if (rc == TC_OK) {
        *action = TC_STAMPEDE_USE;
        return tc_stampede_abort(c, key);
    }
    if (rc != TC_NOTFOUND) {
        tc_stampede_abort(c, key);
        return rc;
    }
    *action = TC_STAMPEDE_COMPUTE;
    return TC_OK;
}

int tc_stampede_end(tc_cache *c, const tc_data *key, const tc_data *result,
                    double delta, double expire, const tc_data *tag)
{
    const char *fn = "tc_stampede_end";
    if (!c || !key || !result)
        return tc__err(TC_EINVAL, "%s: an argument is NULL", fn);
    if (!(delta >= 0) || !isfinite(delta))
        return tc__err(TC_EINVAL, "%s: delta must be a number >= 0", fn);
    unsigned char *rec;
    size_t len;
    int rc = tc__mp_with_delta(delta, result, &rec, &len);
    if (rc == TC_OK) {
        tc_data d = {rec, len, TC_MSGPACK};
        rc = tc_set(c, key, &d, expire, tag, TC_RETRY);
        free(rec);
    }
    int lr = tc_stampede_abort(c, key);
    return rc != TC_OK ? rc : lr;
}

/* A uniform number in (0, 1] per thread (xorshift64*, seeded once). */
static double uniform(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^
            (uint64_t)(uintptr_t)&s;
        s |= 1;
    }
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    uint64_t r = (s * UINT64_C(2685821657736338717)) >> 11;
    return ((double)r + 1.0) / 9007199254740992.0;
}

int tc_memoize_stampede(tc_cache *c, const tc_data *key, double expire,
                        double beta, tc_compute_fn fn, void *arg, tc_value *out)
{
    if (!fn || !out)
        return tc__err(TC_EINVAL, "tc_memoize_stampede: fn or out is NULL");
    double interval = 0.001;
    for (;;) {
        int action;
        int rc = tc_stampede_begin(c, key, beta, uniform(), out, &action);
        if (rc != TC_OK || action == TC_STAMPEDE_USE)
            return rc;
        if (action == TC_STAMPEDE_WAIT) {
            tc__wait_sleep(&interval, -1);
            continue;
        }
        tc_value_clear(out);
        double t0 = tc__mono_now();
        rc = fn(arg, out);
        if (rc != TC_OK) {
            tc_value_clear(out);
            tc_stampede_abort(c, key);
            return rc;
        }
        tc_data d = {out->ptr, out->len, out->type};
        return tc_stampede_end(c, key, &d, tc__mono_now() - t0, expire, NULL);
    }
}
