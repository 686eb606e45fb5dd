/*
 * throttle.c - python-diskcache's throttle: a token bucket [last, tally]
 * at the key, shared by every process (tiercache.h, "Recipes"). The clock
 * is the caller's, so tests drive it.
 */
#include <float.h>
#include <math.h>

#include "internal.h"
#include "small_mpack.h"

static int check(const char *fn, tc_cache *c, const tc_data *key, double count,
                 double seconds, double now)
{
    if (!c || !key)
        return tc__err(TC_EINVAL, "%s: cache or key is NULL", fn);
    if (!(count > 0) || !isfinite(count))
        return tc__err(TC_EINVAL, "%s: count must be a positive number", fn);
    if (!(seconds > 0) || !isfinite(seconds))
        return tc__err(TC_EINVAL, "%s: seconds must be a positive number", fn);
    if (!isfinite(now))
        return tc__err(TC_EINVAL, "%s: now is not a finite time", fn);
    return TC_OK;
}

/* Tokens lost to rounding: a Unix time resolves only ~2.4e-7 s, so a
 * caller that sleeps exactly the delay it was given can come back a hair
 * short of a whole token, and must not be sent to sleep for less than
 * the clock can show. */
static double slack(double rate, double now)
{
    return 1e-9 + rate * 8 * DBL_EPSILON * fabs(now);
}

static int store(tc_cache *c, const tc_data *key, double last, double tally,
                 double expire)
{
    unsigned char buf[TC_MP_PAIR_MAX];
    tc_data d = {buf, tc__mp_pair(buf, last, tally, 0), TC_MSGPACK};
    return tc_set(c, key, &d, expire, NULL, TC_RETRY);
}

int tc_throttle_init(tc_cache *c, const tc_data *key, double count,
                     double seconds, double expire, double now)
{
    int rc = check("tc_throttle_init", c, key, count, seconds, now);
    return rc != TC_OK ? rc : store(c, key, now, count, expire);
}

int tc_throttle_take(tc_cache *c, const tc_data *key, double count,
                     double seconds, double expire, double now, double *delay)
{
    const char *fn = "tc_throttle_take";
    int rc = check(fn, c, key, count, seconds, now);
    if (rc != TC_OK)
        return rc;
    double rate = count / seconds, last = now, tally = count;
    if ((rc = tc_begin(c, TC_RETRY)) != TC_OK)
        return rc;
    tc_item it = TC_ITEM_INIT;
    rc = tc_get(c, key, &it, 0);
    if (rc == TC_OK) {
        if (tc__mp_pair_parse(&it.value, &last, &tally) != TC_OK)
            rc = tc__err(TC_ETYPE, "%s: the key does not hold [last, tally]",
                         fn);
    } else if (rc == TC_NOTFOUND) {
        rc = TC_OK; /* evicted or expired: a full bucket, not an error */
    }
    tc_item_clear(&it);
    double wait = 0;
    if (rc == TC_OK) {
        tally += (now - last) * rate;
        if (tally > count)
            rc = store(c, key, now, count - 1, expire);
        else if (tally >= 1 - slack(rate, now))
            rc = store(c, key, now, tally - 1, expire); /* may owe the slack */
        else
            wait = (1 - tally) / rate;
    }
    if (rc != TC_OK) {
        tc_rollback(c);
        return rc;
    }
    if ((rc = tc_commit(c)) == TC_OK && delay)
        *delay = wait;
    return rc;
}
