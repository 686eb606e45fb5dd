/*
 * owner.c - holder records and liveness for the recipes (owner.h).
 */
#include "owner.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool thread_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' ||
           ch == '-';
}

void tc__owner_self(tc_cache *c, const char *thread, int64_t count,
                    struct tc_owner *o)
{
    memset(o, 0, sizeof *o);
    if (!tc__hot_self_id(c, &o->slot, &o->gen, &o->seg))
        o->seg = 0, o->slot = 0, o->gen = 0;
    o->pid = (int32_t)getpid();
    o->count = count;
    if (!thread || !*thread) {
        snprintf(o->thread, sizeof o->thread, "t%ld", (long)gettid());
        return;
    }
    size_t i = 0;
    for (; thread[i] && i < TC_OWNER_THREAD_MAX; i++)
        o->thread[i] = thread_char((unsigned char)thread[i]) ? thread[i] : '_';
    o->thread[i] = 0;
}

size_t tc__owner_format(const struct tc_owner *o, char *buf)
{
    int n =
        snprintf(buf, TC_OWNER_REC_MAX,
                 "tiercache-owner seg=%016" PRIx64 " slot=%" PRIu32
                 " gen=%" PRIu32 " pid=%" PRId32 " thread=%s count=%" PRId64,
                 o->seg, o->slot, o->gen, o->pid, o->thread, o->count);
    return n < 0 ? 0 : (size_t)n;
}

/* "name=" then digits in @base, advancing *@p; false on anything else. */
static bool field(const char **p, const char *end, const char *name, int base,
                  bool sign, uint64_t *out)
{
    size_t nl = strlen(name);
    if ((size_t)(end - *p) < nl || memcmp(*p, name, nl) != 0)
        return false;
    const char *q = *p + nl;
    bool neg = false;
    if (sign && q < end && *q == '-')
        neg = true, q++;
    uint64_t v = 0;
    const char *start = q;
    for (; q < end && *q != ' '; q++) {
        int d = *q >= '0' && *q <= '9'   ? *q - '0'
                : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
                                         : 99;
        if (d >= base || v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (q == start || q - start > 20)
        return false;
    *out = neg ? (uint64_t)(-(int64_t)v) : v;
    *p = q < end ? q + 1 : q;
    return true;
}

bool tc__owner_parse(const tc_value *v, struct tc_owner *o)
{
    static const char head[] = "tiercache-owner ";
    if (v->type != TC_TEXT || v->len >= TC_OWNER_REC_MAX ||
        v->len < sizeof head - 1 || memcmp(v->ptr, head, sizeof head - 1))
        return false;
    const char *p = (const char *)v->ptr + sizeof head - 1;
    const char *end = (const char *)v->ptr + v->len;
    uint64_t seg, slot, gen, pid, count;
    memset(o, 0, sizeof *o);
    if (!field(&p, end, "seg=", 16, false, &seg) ||
        !field(&p, end, "slot=", 10, false, &slot) || slot > UINT32_MAX ||
        !field(&p, end, "gen=", 10, false, &gen) || gen > UINT32_MAX ||
        !field(&p, end, "pid=", 10, true, &pid))
        return false;
    static const char th[] = "thread=";
    if ((size_t)(end - p) < sizeof th - 1 || memcmp(p, th, sizeof th - 1))
        return false;
    p += sizeof th - 1;
    size_t i = 0;
    for (; p < end && *p != ' '; p++, i++) {
        if (i >= TC_OWNER_THREAD_MAX || !thread_char((unsigned char)*p))
            return false;
        o->thread[i] = *p;
    }
    if (i == 0 || p == end)
        return false;
    p++;
    if (!field(&p, end, "count=", 10, true, &count) || p != end)
        return false;
    o->seg = seg;
    o->slot = (uint32_t)slot;
    o->gen = (uint32_t)gen;
    o->pid = (int32_t)(int64_t)pid;
    o->count = (int64_t)count;
    return true;
}

int tc__owner_alive(tc_cache *c, const struct tc_owner *o)
{
    if (o->seg == 0)
        return -1;
    return tc__hot_id_alive(c, o->slot, o->gen, o->seg);
}

bool tc__owner_same(const struct tc_owner *a, const struct tc_owner *b,
                    bool thread)
{
    if (a->pid != b->pid || (thread && strcmp(a->thread, b->thread)))
        return false;
    /* Records of one segment name a process exactly. Across a segment
     * replacement (hot_size changed) the holder's slot changed with it:
     * the pid is all that still names it, and only a live process can be
     * asking. */
    return a->seg != b->seg || (a->slot == b->slot && a->gen == b->gen);
}

double tc__mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool tc__wait_sleep(double *interval, double deadline)
{
    double s = *interval;
    if (deadline >= 0) {
        double left = deadline - tc__mono_now();
        if (left <= 0)
            return false;
        if (s > left)
            s = left;
    }
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ; /* EINTR: sleep the rest */
    *interval =
        *interval * 2 > TC_LOCK_POLL_MAX ? TC_LOCK_POLL_MAX : *interval * 2;
    return true;
}

static bool same_value(const tc_value *a, const tc_value *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == TC_INT)
        return a->i == b->i;
    if (a->type == TC_REAL)
        return memcmp(&a->d, &b->d, sizeof a->d) == 0;
    return a->len == b->len && (!a->len || !memcmp(a->ptr, b->ptr, a->len));
}

int tc__replace_if(tc_cache *c, const tc_data *key, const tc_value *expected,
                   const tc_data *rec, double expire)
{
    int rc = tc_begin(c, TC_RETRY);
    if (rc != TC_OK)
        return rc;
    tc_item it = TC_ITEM_INIT;
    rc = tc_get(c, key, &it, 0);
    if (rc == TC_OK && same_value(&it.value, expected))
        rc = rec ? tc_set(c, key, rec, expire, NULL, 0) : tc_delete(c, key, 0);
    else if (rc == TC_OK || rc == TC_NOTFOUND)
        rc = TC_EXISTS;
    tc_item_clear(&it);
    if (rc == TC_OK)
        return tc_commit(c);
    tc_rollback(c);
    return rc;
}

int tc__side_key(const char *what, const tc_data *key, tc_data *out,
                 unsigned char **buf)
{
    static const char head[] = "tiercache-";
    size_t wl = strlen(what), hl = sizeof head - 1;
    size_t n = 1 + hl + wl + 1 + 1 + key->len;
    if (!(*buf = malloc(n)))
        return tc__err(TC_ENOMEM, "out of memory for a %s key", what);
    unsigned char *p = *buf;
    *p++ = 0;
    memcpy(p, head, hl), p += hl;
    memcpy(p, what, wl), p += wl;
    *p++ = 0;
    *p++ = (unsigned char)key->type;
    if (key->len)
        memcpy(p, key->ptr, key->len);
    *out = tc_bytes(*buf, n);
    return TC_OK;
}
