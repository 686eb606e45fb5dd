/*
 * index.c - the two operations python-diskcache's Index adds to a Cache
 * (persistent.py): setdefault and popitem, each one write transaction.
 * Everything else an Index does is a Cache call on a plain Cache opened
 * with eviction_policy "none" (tc_index_open); its order is the rowid
 * (insertion) order, as python's.
 */

#include "internal.h"

int tc_index_open(tc_cache **out, const char *dir, unsigned flags)
{
    /* The same cache as a Deque's: plain, eviction_policy "none". */
    return tc_deque_open(out, dir, flags);
}

static int enter(tc_cache *c, const char *fn)
{
    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "%s: handle is not open", fn);
    return TC_OK;
}

/* Every error names the public function: the Cache calls below name
 * themselves ("tc_get: ...") or only the argument ("key: ..."). */
static int done(int rc, const char *fn)
{
    return tc__err_named(rc, fn);
}

/* Copy a datum into a value (what the caller stored is what it gets). */
static int value_of(const tc_data *d, tc_value *out)
{
    if (d->type == TC_INT) {
        tc__value_set_int(out, *(const int64_t *)d->ptr);
        return TC_OK;
    }
    if (d->type == TC_REAL) {
        tc__value_set_real(out, *(const double *)d->ptr);
        return TC_OK;
    }
    return tc__value_set_bytes(out, d->type, d->ptr, d->len);
}

/* End a transaction opened by tc_begin: commit on TC_OK, else roll back
 * and return @rc. */
static int txn_end(tc_cache *c, int rc)
{
    if (rc == TC_OK)
        return tc_commit(c);
    tc_rollback(c);
    return rc;
}

int tc_index_setdefault(tc_cache *c, const tc_data *key, const tc_data *deflt,
                        tc_value *out)
{
    tc_item it = TC_ITEM_INIT;
    int rc;

    if ((rc = enter(c, "tc_index_setdefault")))
        return rc;
    if (!deflt)
        return tc__err(TC_EINVAL, "tc_index_setdefault: deflt is NULL");
    /* python loops get -> add(retry=True) until a get succeeds; inside one
     * transaction the first add settles it. */
    if ((rc = tc_begin(c, TC_RETRY)))
        return done(rc, "tc_index_setdefault");
    rc = tc_get(c, key, &it, TC_RETRY);
    if (rc == TC_NOTFOUND) {
        rc = tc_add(c, key, deflt, TC_NO_EXPIRE, NULL, TC_RETRY);
        if (rc == TC_OK && out)
            rc = value_of(deflt, &it.value);
        else if (rc == TC_EXISTS) /* cannot be: the write lock is ours */
            rc = tc__err(TC_EINTERNAL, "tc_index_setdefault: key appeared "
                                       "inside the transaction");
    }
    rc = txn_end(c, rc);
    if (rc == TC_OK && out)
        tc__value_move(out, &it.value);
    tc_item_clear(&it);
    return done(rc, "tc_index_setdefault");
}

int tc_index_popitem(tc_cache *c, int last, tc_item *out)
{
    tc_item it = TC_ITEM_INIT;
    int rc;

    if ((rc = enter(c, "tc_index_popitem")))
        return rc;
    if ((rc = tc_begin(c, TC_RETRY)))
        return done(rc, "tc_index_popitem");
    rc = tc_peekitem(c, last, &it, TC_RETRY);
    if (rc == TC_OK) {
        tc_data key = {it.key.ptr, it.key.len, it.key.type};
        rc = tc_delete(c, &key, TC_RETRY);
        if (rc == TC_NOTFOUND) /* peekitem saw it live under our lock */
            rc = tc__err(TC_EINTERNAL, "tc_index_popitem: the item vanished "
                                       "inside the transaction");
    } else if (rc == TC_NOTFOUND) {
        tc__err(TC_NOTFOUND, "tc_index_popitem: dictionary is empty");
    }
    rc = txn_end(c, rc);
    if (rc == TC_OK && out)
        tc__item_move(out, &it);
    tc_item_clear(&it);
    return done(rc, "tc_index_popitem");
}
