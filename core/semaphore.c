/*
 * semaphore.c - BoundedSemaphore across processes (tiercache.h,
 * "Recipes"). The key holds the free permits as an INTEGER, exactly as
 * python-diskcache stores it, so both sides share one semaphore. A waiter
 * reads the count and writes only when a permit looks free.
 */
#include <math.h>

#include "owner.h"

static int check(const char *fn, tc_cache *c, const tc_data *key, int64_t value,
                 double expire)
{
    if (!c || !key)
        return tc__err(TC_EINVAL, "%s: cache or key is NULL", fn);
    if (value < 1)
        return tc__err(TC_EINVAL, "%s: value %lld is not a positive count", fn,
                       (long long)value);
    if (isnan(expire))
        return tc__err(TC_EINVAL, "%s: expire is NaN", fn);
    return TC_OK;
}

/* The free permits (@value when the key is missing) into *@free. */
static int permits(const char *fn, tc_cache *c, const tc_data *key,
                   int64_t value, int64_t *free_)
{
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(c, key, &it, 0);
    if (rc == TC_NOTFOUND) {
        *free_ = value;
        return TC_OK;
    }
    if (rc == TC_OK && it.value.type != TC_INT)
        rc = tc__err(TC_ETYPE, "%s: the key holds a %s, not a permit count", fn,
                     it.value.type == TC_TEXT ? "text" : "non-integer");
    else if (rc == TC_OK)
        *free_ = it.value.i;
    tc_item_clear(&it);
    return rc;
}

/* Add @delta to the free permits in one transaction if the result stays
 * within [0, value]: TC_OK, TC_EXISTS (it would not) or an error. */
static int move(const char *fn, tc_cache *c, const tc_data *key, int64_t value,
                int64_t delta, double expire)
{
    int rc = tc_begin(c, TC_RETRY);
    if (rc != TC_OK)
        return rc;
    int64_t free_;
    rc = permits(fn, c, key, value, &free_);
    if (rc == TC_OK) {
        int64_t n = free_ + delta;
        if (n < 0 || n > value) {
            rc = TC_EXISTS;
        } else {
            tc_data d = tc_int(&n);
            rc = tc_set(c, key, &d, expire, NULL, 0);
        }
    }
    if (rc == TC_OK)
        return tc_commit(c);
    tc_rollback(c);
    return rc;
}

int tc_sem_acquire(tc_cache *c, const tc_data *key, int64_t value,
                   double expire, double timeout)
{
    const char *fn = "tc_sem_acquire";
    int rc = check(fn, c, key, value, expire);
    if (rc != TC_OK)
        return rc;
    if (isnan(timeout))
        return tc__err(TC_EINVAL, "%s: timeout is NaN", fn);
    double deadline = timeout < 0 ? -1 : tc__mono_now() + timeout;
    double interval = 0.001;
    for (;;) {
        int64_t free_;
        rc = permits(fn, c, key, value, &free_);
        if (rc != TC_OK)
            return rc;
        if (free_ > 0) {
            rc = move(fn, c, key, value, -1, expire);
            if (rc != TC_EXISTS)
                return rc;
        }
        if (timeout == 0 || !tc__wait_sleep(&interval, deadline))
            return TC_EXISTS;
    }
}

int tc_sem_release(tc_cache *c, const tc_data *key, int64_t value,
                   double expire)
{
    const char *fn = "tc_sem_release";
    int rc = check(fn, c, key, value, expire);
    if (rc != TC_OK)
        return rc;
    rc = move(fn, c, key, value, +1, expire);
    if (rc == TC_EXISTS)
        return tc__err(TC_EPERM, "%s: cannot release un-acquired semaphore",
                       fn);
    return rc;
}
