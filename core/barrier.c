/*
 * barrier.c - python-diskcache's barrier for C callers: a call made under
 * a Lock, RLock or one-permit BoundedSemaphore (tiercache.h, "Recipes").
 * The Lua barrier is a decorator in lua/recipes.lua over the same locks.
 */
#include "internal.h"

int tc_barrier(tc_cache *c, const tc_data *key, int kind, double expire,
               int (*fn)(void *arg), void *arg)
{
    if (!fn)
        return tc__err(TC_EINVAL, "tc_barrier: fn is NULL");
    int rc;
    switch (kind) {
    case TC_BARRIER_LOCK:
        rc = tc_lock_acquire(c, key, expire, -1);
        break;
    case TC_BARRIER_RLOCK:
        rc = tc_rlock_acquire(c, key, NULL, expire, -1);
        break;
    case TC_BARRIER_SEMAPHORE:
        rc = tc_sem_acquire(c, key, 1, expire, -1);
        break;
    default:
        return tc__err(TC_EINVAL, "tc_barrier: kind %d is not a lock kind",
                       kind);
    }
    if (rc != TC_OK)
        return rc;
    int result = fn(arg);
    rc = kind == TC_BARRIER_LOCK    ? tc_lock_release(c, key)
         : kind == TC_BARRIER_RLOCK ? tc_rlock_release(c, key, NULL)
                                    : tc_sem_release(c, key, 1, expire);
    return rc != TC_OK ? rc : result;
}
