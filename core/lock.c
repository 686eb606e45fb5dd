/*
 * lock.c - Lock and RLock across processes (tiercache.h, "Recipes").
 *
 * python-diskcache spins on add() every millisecond and never frees the
 * lock of a holder that died. Here the key holds an owner record
 * (owner.h); a waiter reads it (a hot-tier hit: no SQLite, no write),
 * sleeps with backoff while its holder lives, and takes it over in one
 * transaction once the holder is dead. Writes happen only when the lock
 * looks free, so waiting costs no SQLite writes.
 */
#include <math.h>
#include <string.h>

#include "owner.h"

/* The arguments every Lock and RLock call takes (NaN expire is refused). */
static int check_args(const char *fn, tc_cache *c, const tc_data *key,
                      double expire)
{
    if (!c || !key)
        return tc__err(TC_EINVAL, "%s: cache or key is NULL", fn);
    if (isnan(expire))
        return tc__err(TC_EINVAL, "%s: expire is NaN", fn);
    return TC_OK;
}

/*
 * One attempt: TC_OK (acquired), TC_EXISTS (a live or unknown holder) or an
 * error. @reentrant: our own record is taken again with count + 1.
 */
static int try_once(tc_cache *c, const tc_data *key, const char *thread,
                    bool reentrant, double expire)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        tc_item it = TC_ITEM_INIT;
        int rc = tc_get(c, key, &it, 0);
        if (rc == TC_EUNSUPPORTED)
            return TC_EXISTS; /* python-diskcache's Lock: a pickled None */
        if (rc != TC_OK && rc != TC_NOTFOUND)
            return rc;
        struct tc_owner me, held;
        int64_t count = 1;
        bool parsed = rc == TC_OK && tc__owner_parse(&it.value, &held);
        if (parsed && reentrant) {
            tc__owner_self(c, thread, 0, &me);
            if (tc__owner_same(&me, &held, true))
                count = held.count + 1;
        }
        if (rc == TC_OK && count == 1 &&
            (!parsed || tc__owner_alive(c, &held) != 0)) {
            tc_item_clear(&it);
            return TC_EXISTS; /* held by someone alive (or unknown) */
        }
        tc__owner_self(c, thread, count, &me);
        char buf[TC_OWNER_REC_MAX];
        tc_data rec = tc_textn(buf, tc__owner_format(&me, buf));
        if (rc == TC_NOTFOUND)
            rc = tc_add(c, key, &rec, expire, NULL, TC_RETRY);
        else /* ours again, or a dead holder's: swap if unchanged */
            rc = tc__replace_if(c, key, &it.value, &rec, expire);
        tc_item_clear(&it);
        if (rc != TC_EXISTS)
            return rc;
        /* It changed under us: look again. */
    }
    return TC_EXISTS;
}

static int acquire(const char *fn, tc_cache *c, const tc_data *key,
                   const char *thread, bool reentrant, double expire,
                   double timeout)
{
    int rc = check_args(fn, c, key, expire);
    if (rc != TC_OK)
        return rc;
    if (isnan(timeout))
        return tc__err(TC_EINVAL, "%s: timeout is NaN", fn);
    double deadline = timeout < 0 ? -1 : tc__mono_now() + timeout;
    double interval = 0.001;
    for (;;) {
        rc = try_once(c, key, thread, reentrant, expire);
        if (rc != TC_EXISTS)
            return rc;
        if (timeout == 0 || !tc__wait_sleep(&interval, deadline))
            return TC_EXISTS;
    }
}

int tc_lock_acquire(tc_cache *c, const tc_data *key, double expire,
                    double timeout)
{
    return acquire("tc_lock_acquire", c, key, "lock", false, expire, timeout);
}

int tc_rlock_acquire(tc_cache *c, const tc_data *key, const char *thread,
                     double expire, double timeout)
{
    return acquire("tc_rlock_acquire", c, key, thread, true, expire, timeout);
}

/* Release one level: delete at count 1, else count - 1. */
static int release(const char *fn, tc_cache *c, const tc_data *key,
                   const char *thread, bool reentrant)
{
    int rc = check_args(fn, c, key, 0);
    if (rc != TC_OK)
        return rc;
    for (int attempt = 0; attempt < 4; attempt++) {
        tc_item it = TC_ITEM_INIT;
        rc = tc_get(c, key, &it, 0);
        if (rc == TC_NOTFOUND)
            return tc__err(TC_NOTFOUND, "%s: cannot release un-acquired lock",
                           fn);
        if (rc == TC_EUNSUPPORTED)
            rc = TC_OK; /* a python holder's pickle: not ours, EPERM below */
        if (rc != TC_OK)
            return rc;
        struct tc_owner me, held;
        tc__owner_self(c, thread, 0, &me);
        if (!tc__owner_parse(&it.value, &held) ||
            !tc__owner_same(&me, &held, reentrant)) {
            tc_item_clear(&it);
            return tc__err(TC_EPERM,
                           "%s: cannot release un-acquired lock (another "
                           "holder has it)",
                           fn);
        }
        char buf[TC_OWNER_REC_MAX];
        tc_data rec;
        me.count = held.count - 1;
        if (me.count > 0)
            rec = tc_textn(buf, tc__owner_format(&me, buf));
        /* Keep the expiry the lock had. */
        double expire =
            isinf(it.expire_time) ? TC_NO_EXPIRE : it.expire_time - tc_now(c);
        rc = tc__replace_if(c, key, &it.value, me.count > 0 ? &rec : NULL,
                            expire);
        tc_item_clear(&it);
        if (rc != TC_EXISTS)
            return rc;
    }
    return tc__err(TC_EBUSY, "%s: the lock kept changing", fn);
}

int tc_lock_release(tc_cache *c, const tc_data *key)
{
    return release("tc_lock_release", c, key, NULL, false);
}

int tc_rlock_release(tc_cache *c, const tc_data *key, const char *thread)
{
    return release("tc_rlock_release", c, key, thread, true);
}

int tc_lock_locked(tc_cache *c, const tc_data *key)
{
    int rc = check_args("tc_lock_locked", c, key, 0);
    if (rc != TC_OK)
        return rc;
    tc_item it = TC_ITEM_INIT;
    rc = tc_get(c, key, &it, 0);
    if (rc == TC_EUNSUPPORTED)
        rc = TC_OK; /* python-diskcache's Lock holds it (a pickled None) */
    else if (rc == TC_OK) {
        struct tc_owner held;
        if (tc__owner_parse(&it.value, &held) && tc__owner_alive(c, &held) == 0)
            rc = TC_NOTFOUND; /* its holder died: free for the taking */
    }
    tc_item_clear(&it);
    return rc;
}
