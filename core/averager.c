/*
 * averager.c - a running average shared by processes (tiercache.h,
 * "Recipes"): [total, count] at the key, updated in one transaction.
 */
#include <math.h>

#include "internal.h"
#include "small_mpack.h"

static int check(const char *fn, tc_cache *c, const tc_data *key)
{
    if (!c || !key)
        return tc__err(TC_EINVAL, "%s: cache or key is NULL", fn);
    return TC_OK;
}

/* Read [total, count]; zeros when the key is missing. */
static int read_pair(const char *fn, tc_cache *c, const tc_data *key,
                     double *total, double *count, int *found)
{
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(c, key, &it, 0);
    *total = 0, *count = 0, *found = rc == TC_OK;
    if (rc == TC_NOTFOUND)
        return TC_OK;
    if (rc == TC_OK && tc__mp_pair_parse(&it.value, total, count) != TC_OK)
        rc = tc__err(TC_ETYPE, "%s: the key does not hold [total, count]", fn);
    tc_item_clear(&it);
    return rc;
}

int tc_averager_add(tc_cache *c, const tc_data *key, double value,
                    double expire, const tc_data *tag)
{
    const char *fn = "tc_averager_add";
    int rc = check(fn, c, key);
    if (rc != TC_OK)
        return rc;
    if (!isfinite(value))
        return tc__err(TC_EINVAL, "%s: value is not a finite number", fn);
    if ((rc = tc_begin(c, TC_RETRY)) != TC_OK)
        return rc;
    double total, count;
    int found;
    rc = read_pair(fn, c, key, &total, &count, &found);
    if (rc == TC_OK) {
        unsigned char buf[TC_MP_PAIR_MAX];
        tc_data d = {buf, tc__mp_pair(buf, total + value, count + 1, 1),
                     TC_MSGPACK};
        rc = tc_set(c, key, &d, expire, tag, 0);
    }
    if (rc == TC_OK)
        return tc_commit(c);
    tc_rollback(c);
    return rc;
}

static int average(const char *fn, tc_cache *c, const tc_data *key, double *avg,
                   int pop)
{
    int rc = check(fn, c, key);
    if (rc != TC_OK)
        return rc;
    if (pop && (rc = tc_begin(c, TC_RETRY)) != TC_OK)
        return rc;
    double total, count;
    int found;
    rc = read_pair(fn, c, key, &total, &count, &found);
    if (rc == TC_OK && count == 0)
        rc = TC_NOTFOUND;
    if (rc == TC_OK && avg)
        *avg = total / count;
    if (pop && found && (rc == TC_OK || rc == TC_NOTFOUND)) {
        int d = tc_delete(c, key, 0);
        if (d != TC_OK && d != TC_NOTFOUND)
            rc = d;
    }
    if (pop) {
        if (rc == TC_OK || rc == TC_NOTFOUND) {
            int cr = tc_commit(c);
            if (cr != TC_OK)
                rc = cr;
        } else {
            tc_rollback(c);
        }
    }
    return rc;
}

int tc_averager_get(tc_cache *c, const tc_data *key, double *avg)
{
    return average("tc_averager_get", c, key, avg, 0);
}

int tc_averager_pop(tc_cache *c, const tc_data *key, double *avg)
{
    return average("tc_averager_pop", c, key, avg, 1);
}
