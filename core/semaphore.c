/*
 * semaphore.c - BoundedSemaphore across processes (tiercache.h,
 * "Recipes").
 *
 * The key holds the free permits as an INTEGER, exactly as python-diskcache
 * stores it, so both sides share one semaphore. Beside it, a holder list
 * (a side key, owner.h) records which tiercache processes hold permits, one
 * owner record per line, so that a waiter that finds no permit free can
 * give back the permits of holders that died. Python's holders are not in
 * the list: their permits come back only through expire.
 *
 * A waiter reads (the count, then the list) and writes only when a permit
 * is free or a holder is dead.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* The holder list: its lines, and whether each holder is known dead. */
struct holders {
    char *text; /* the stored TEXT, NUL-terminated; NULL when none */
    size_t len;
    size_t dead; /* lines whose holder is dead */
};

static void holders_free(struct holders *h)
{
    free(h->text);
    memset(h, 0, sizeof *h);
}

/* Call @fn on each parsed line (lines that do not parse are kept and
 * never judged). */
static void each_line(const struct holders *h,
                      void (*fn)(void *arg, const char *line, size_t n,
                                 const struct tc_owner *o),
                      void *arg)
{
    const char *p = h->text, *end = h->text ? h->text + h->len : NULL;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        tc_value v = {TC_TEXT, (void *)p, n, 0, 0};
        struct tc_owner o;
        fn(arg, p, n, tc__owner_parse(&v, &o) ? &o : NULL);
        p += n + 1;
    }
}

struct judge {
    tc_cache *c;
    size_t dead;
};

static void judge_line(void *arg, const char *line, size_t n,
                       const struct tc_owner *o)
{
    (void)line, (void)n;
    struct judge *j = arg;
    if (o && tc__owner_alive(j->c, o) == 0)
        j->dead++;
}

/* Read the holder list of @hk and count its dead holders. */
static int holders_read(tc_cache *c, const tc_data *hk, struct holders *h)
{
    memset(h, 0, sizeof *h);
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(c, hk, &it, 0);
    if (rc == TC_NOTFOUND)
        return TC_OK;
    if (rc == TC_OK && it.value.type == TC_TEXT) {
        h->text = it.value.ptr; /* NUL-terminated copy; now ours */
        h->len = it.value.len;
        it.value.ptr = NULL;
        it.value.type = TC_NONE;
        struct judge j = {c, 0};
        each_line(h, judge_line, &j);
        h->dead = j.dead;
    }
    /* Anything else at the side key is not ours to judge: no holders. */
    tc_item_clear(&it);
    return rc == TC_OK ? TC_OK : rc;
}

/* Building the new list: dead holders dropped, at most one record of
 * @drop (ours, at release) dropped, @add appended. */
struct rebuild {
    tc_cache *c;
    const struct tc_owner *drop;
    bool dropped;
    size_t removed_dead;
    char *out;
    size_t len;
};

static void rebuild_line(void *arg, const char *line, size_t n,
                         const struct tc_owner *o)
{
    struct rebuild *r = arg;
    if (o && tc__owner_alive(r->c, o) == 0) {
        r->removed_dead++;
        return;
    }
    if (o && r->drop && !r->dropped && tc__owner_same(o, r->drop, false)) {
        r->dropped = true;
        return;
    }
    if (r->len)
        r->out[r->len++] = '\n';
    memcpy(r->out + r->len, line, n);
    r->len += n;
}

/*
 * One transaction: drop dead holders (their permits come back), apply
 * @delta (-1 acquire, +1 release) to the free permits if the result stays
 * in [0, value], and record or drop our holder line. TC_OK, TC_EXISTS (no
 * permit / none held) or an error.
 */
static int move(const char *fn, tc_cache *c, const tc_data *key,
                const tc_data *hk, int64_t value, int delta, double expire)
{
    int rc = tc_begin(c, TC_RETRY);
    if (rc != TC_OK)
        return rc;
    int64_t free_;
    struct holders h;
    rc = permits(fn, c, key, value, &free_);
    if (rc == TC_OK)
        rc = holders_read(c, hk, &h);
    if (rc != TC_OK) {
        tc_rollback(c);
        return rc;
    }
    struct tc_owner me;
    tc__owner_self(c, "sem", 1, &me);
    char rec[TC_OWNER_REC_MAX];
    size_t reclen = tc__owner_format(&me, rec);
    struct rebuild r = {c, delta > 0 ? &me : NULL, false, 0, NULL, 0};
    r.out = malloc(h.len + reclen + 2);
    if (!r.out) {
        holders_free(&h);
        tc_rollback(c);
        return tc__err(TC_ENOMEM, "%s: out of memory", fn);
    }
    each_line(&h, rebuild_line, &r);
    free_ += (int64_t)r.removed_dead;
    if (free_ > value)
        free_ = value;
    int64_t n = free_ + delta;
    bool changed = r.removed_dead > 0;
    if (n >= 0 && n <= value) {
        if (delta < 0) {
            if (r.len)
                r.out[r.len++] = '\n';
            memcpy(r.out + r.len, rec, reclen);
            r.len += reclen;
        }
        free_ = n;
        changed = true;
    } else {
        rc = TC_EXISTS;
    }
    if (changed) {
        tc_data d = tc_int(&free_);
        int w = tc_set(c, key, &d, expire, NULL, 0);
        if (w == TC_OK) {
            tc_data list = tc_textn(r.out, r.len);
            w = r.len ? tc_set(c, hk, &list, expire, NULL, 0)
                      : tc_delete(c, hk, 0);
            if (w == TC_NOTFOUND)
                w = TC_OK;
        }
        if (w != TC_OK)
            rc = w;
    }
    free(r.out);
    holders_free(&h);
    if (rc == TC_OK || (rc == TC_EXISTS && changed)) {
        int cr = tc_commit(c);
        return cr != TC_OK ? cr : rc;
    }
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
    tc_data hk;
    unsigned char *buf;
    if ((rc = tc__side_key("holders", key, &hk, &buf)) != TC_OK)
        return rc;
    double deadline = timeout < 0 ? -1 : tc__mono_now() + timeout;
    double interval = 0.001;
    for (;;) {
        int64_t free_ = 0;
        struct holders h = {0};
        rc = permits(fn, c, key, value, &free_);
        if (rc == TC_OK && free_ <= 0)
            rc = holders_read(c, &hk, &h); /* any dead holder to reclaim? */
        if (rc != TC_OK)
            break;
        size_t dead = h.dead;
        holders_free(&h);
        if (free_ > 0 || dead > 0) {
            rc = move(fn, c, key, &hk, value, -1, expire);
            if (rc != TC_EXISTS)
                break;
        }
        rc = TC_EXISTS;
        if (timeout == 0 || !tc__wait_sleep(&interval, deadline))
            break;
    }
    free(buf);
    return rc;
}

int tc_sem_release(tc_cache *c, const tc_data *key, int64_t value,
                   double expire)
{
    const char *fn = "tc_sem_release";
    int rc = check(fn, c, key, value, expire);
    if (rc != TC_OK)
        return rc;
    tc_data hk;
    unsigned char *buf;
    if ((rc = tc__side_key("holders", key, &hk, &buf)) != TC_OK)
        return rc;
    rc = move(fn, c, key, &hk, value, +1, expire);
    free(buf);
    if (rc == TC_EXISTS)
        return tc__err(TC_EPERM, "%s: cannot release un-acquired semaphore",
                       fn);
    return rc;
}
