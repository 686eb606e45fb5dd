/*
 * mpack.c - MessagePack codec between Lua values and bytes (see mpack.h).
 *
 * One source for Lua 5.4 and LuaJIT 2.1: number handling goes through
 * compat.h. The encoder only reads tables raw (no metamethods run), so a
 * value cannot change while it is written. The decoder never trusts a
 * length: each one is checked against the bytes left before anything is
 * allocated for it.
 */
#include "mpack.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>

#include "compat.h"
#include "tiercache.h"

/* Table-size hints given to lua_createtable are capped: a huge declared
 * count that the input can still hold (an array of 0xc0 nils) should not
 * reserve memory the values never use; real tables grow past the cap. */
#define TCL_MPACK_HINT_MAX (1 << 20)

int tcl_buf_append(tcl_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *q = realloc(b->ptr, cap);
        if (!q)
            return -1;
        b->ptr = q;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
    return 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
}

/* ===================================================================== */
/* Encoder                                                                */

/* One map entry written in canonical mode: where it starts in the output,
 * how long its key and the whole entry are. */
typedef struct enc_entry {
    size_t off, klen, len;
} enc_entry;

typedef struct enc {
    lua_State *L;
    tcl_buf *out;
    int canonical, allow_nil;
    char *err;
    size_t errlen;
    /* The tables on the path from the root to the one being written: a
     * table met again on its own path is a cycle. Depth is bounded, so a
     * fixed array and a linear scan beat a Lua-side "visiting" table. */
    const void *path[TCL_MPACK_MAX_DEPTH];
    /* Canonical mode: entries of every map being written, innermost last
     * (a stack shared by all levels, so no allocation per map). */
    enc_entry *ents;
    size_t nents, capents;
    tcl_buf scratch; /* reordering room, reused by every map */
} enc;

static int enc_fail(enc *e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_err(e->err, e->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int put(enc *e, const void *p, size_t n)
{
    /* A table that shares subtables is written once per use: a small,
     * deeply shared structure could expand without bound. */
    if (n > TCL_MPACK_MAX_BYTES - e->out->len)
        return enc_fail(e, "encoded value larger than 1 GiB");
    if (tcl_buf_append(e->out, p, n))
        return enc_fail(e, "out of memory");
    return 0;
}

/* A type byte followed by @v as @nbytes big-endian bytes. */
static int put_tagged(enc *e, unsigned char tag, uint64_t v, int nbytes)
{
    unsigned char b[9];

    b[0] = tag;
    for (int i = 0; i < nbytes; i++)
        b[1 + i] = (unsigned char)(v >> (8 * (nbytes - 1 - i)));
    return put(e, b, 1 + (size_t)nbytes);
}

/* The smallest form that holds @v (non-negative values use the unsigned
 * forms, as every MessagePack encoder does). */
static int enc_int(enc *e, int64_t v)
{
    if (v >= 0) {
        uint64_t u = (uint64_t)v;
        if (u <= 0x7f)
            return put_tagged(e, (unsigned char)u, 0, 0);
        if (u <= 0xff)
            return put_tagged(e, 0xcc, u, 1);
        if (u <= 0xffff)
            return put_tagged(e, 0xcd, u, 2);
        if (u <= 0xffffffffu)
            return put_tagged(e, 0xce, u, 4);
        return put_tagged(e, 0xcf, u, 8);
    }
    if (v >= -32)
        return put_tagged(e, (unsigned char)(0xe0 | (v + 32)), 0, 0);
    if (v >= INT8_MIN)
        return put_tagged(e, 0xd0, (uint64_t)v, 1);
    if (v >= INT16_MIN)
        return put_tagged(e, 0xd1, (uint64_t)v, 2);
    if (v >= INT32_MIN)
        return put_tagged(e, 0xd2, (uint64_t)v, 4);
    return put_tagged(e, 0xd3, (uint64_t)v, 8);
}

/* Always float64: a float32 could lose bits, and a float written as an
 * integer would come back as math.type "integer" in Lua 5.4. */
static int enc_float(enc *e, double d)
{
    uint64_t bits;

    memcpy(&bits, &d, sizeof bits);
    return put_tagged(e, 0xcb, bits, 8);
}

/* The header of a str/bin/array/map of @n items; @fix is the fix form's
 * base (0 if none) holding up to @fixmax, @t8 the 8-bit form (0 if none),
 * @t16 and @t16 + 1 the 16- and 32-bit forms. */
static int enc_header(enc *e, size_t n, unsigned fix, size_t fixmax,
                      unsigned t8, unsigned t16, const char *what)
{
    if (fix && n <= fixmax)
        return put_tagged(e, (unsigned char)(fix | n), 0, 0);
    if (t8 && n <= 0xff)
        return put_tagged(e, (unsigned char)t8, n, 1);
    if (n <= 0xffff)
        return put_tagged(e, (unsigned char)t16, n, 2);
    if (n <= 0xffffffffu)
        return put_tagged(e, (unsigned char)(t16 + 1), n, 4);
    return enc_fail(e, "%s too long for MessagePack (%zu)", what, n);
}

static int enc_string(enc *e, int idx)
{
    size_t len;
    const char *s = lua_tolstring(e->L, idx, &len);
    int rc;

    /* Text goes out as str so other languages read it as a string; any
     * other byte string is bin (python would fail to decode it as str). */
    if (tc_is_text(s, len))
        rc = enc_header(e, len, 0xa0, 31, 0xd9, 0xda, "string");
    else
        rc = enc_header(e, len, 0, 0, 0xc4, 0xc5, "string");
    return rc ? rc : put(e, s, len);
}

static int enc_value(enc *e, int idx, int depth);

static const char *type_article_name(lua_State *L, int t)
{
    switch (t) {
    case LUA_TFUNCTION:
        return "a function";
    case LUA_TUSERDATA:
        return "a userdata";
    case LUA_TLIGHTUSERDATA:
        return "a light userdata";
    case LUA_TTHREAD:
        return "a thread";
    case LUA_TTABLE:
        return "a table";
    case LUA_TNIL:
        return "nil";
    default:
        return lua_typename(L, t); /* LuaJIT's cdata */
    }
}

/* A map key: only what Lua and MessagePack's other readers agree on. */
static int enc_key(enc *e, int idx)
{
    int t = lua_type(e->L, idx);

    switch (t) {
    case LUA_TNUMBER: {
        int64_t i;
        if (!tcl_tointeger(e->L, idx, &i) && isnan(lua_tonumber(e->L, idx)))
            return enc_fail(e, "NaN table key");
        return enc_value(e, idx, 0);
    }
    case LUA_TSTRING:
    case LUA_TBOOLEAN:
        return enc_value(e, idx, 0);
    default:
        return enc_fail(e, "cannot use %s as a table key",
                        type_article_name(e->L, t));
    }
}

/* Order of canonical map entries: key bytes (memcmp, then the shorter
 * first). Keys of one table always differ, so ties cannot happen. */
static int ent_cmp(const char *base, const enc_entry *a, const enc_entry *b)
{
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(base + a->off, base + b->off, n);

    if (c)
        return c;
    return (a->klen > b->klen) - (a->klen < b->klen);
}

/* Heapsort: in place, O(n log n), and the comparison gets the output
 * buffer without qsort_r (not in C11). */
static void ent_sift(const char *base, enc_entry *v, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && ent_cmp(base, &v[child], &v[child + 1]) < 0)
            child++;
        if (ent_cmp(base, &v[root], &v[child]) >= 0)
            return;
        enc_entry t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

static void ent_sort(const char *base, enc_entry *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        ent_sift(base, v, i, n);
    for (size_t end = n; end-- > 1;) {
        enc_entry t = v[0];
        v[0] = v[end];
        v[end] = t;
        ent_sift(base, v, 0, end);
    }
}

/* Rewrite the entries e->ents[first..] (which fill the output from
 * @start to its end) in sorted order. */
static int sort_entries(enc *e, size_t first, size_t start)
{
    size_t n = e->nents - first, total = e->out->len - start;
    enc_entry *v = e->ents + first;
    int sorted = 1;

    for (size_t i = 1; i < n && sorted; i++)
        sorted = ent_cmp(e->out->ptr, &v[i - 1], &v[i]) < 0;
    if (sorted)
        return 0;
    ent_sort(e->out->ptr, v, n);
    e->scratch.len = 0;
    if (tcl_buf_append(&e->scratch, e->out->ptr + start, total))
        return enc_fail(e, "out of memory");
    char *dst = e->out->ptr + start;
    for (size_t i = 0; i < n; i++) {
        memcpy(dst, e->scratch.ptr + (v[i].off - start), v[i].len);
        dst += v[i].len;
    }
    return 0;
}

static int push_entry(enc *e, size_t off, size_t klen, size_t len)
{
    if (e->nents == e->capents) {
        size_t cap = e->capents ? 2 * e->capents : 32;
        enc_entry *v = realloc(e->ents, cap * sizeof *v);
        if (!v)
            return enc_fail(e, "out of memory");
        e->ents = v;
        e->capents = cap;
    }
    e->ents[e->nents++] = (enc_entry){off, klen, len};
    return 0;
}

static int enc_map(enc *e, int idx, size_t count, int depth)
{
    lua_State *L = e->L;
    size_t first = e->nents, start, seen = 0;

    if (enc_header(e, count, 0x80, 15, 0, 0xde, "table"))
        return -1;
    start = e->out->len;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int top = lua_gettop(L);
        size_t off = e->out->len, klen;
        /* Reading the key leaves it as it is: numbers are never turned
         * into strings here, which would confuse lua_next. */
        if (enc_key(e, top - 1))
            return -1;
        klen = e->out->len - off;
        if (enc_value(e, top, depth + 1))
            return -1;
        if (e->canonical && push_entry(e, off, klen, e->out->len - off))
            return -1;
        lua_pop(L, 1);
        seen++;
    }
    /* Only a weak table swept by an emergency collection could do this. */
    if (seen != count)
        return enc_fail(e, "table changed while it was being stored");
    if (e->canonical && count > 1 && sort_entries(e, first, start))
        return -1;
    e->nents = first;
    return 0;
}

static int enc_table(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    const void *self = lua_topointer(L, idx);
    size_t count = 0;
    int64_t maxk = 0;
    int seq = 1;

    if (depth > TCL_MPACK_MAX_DEPTH)
        return enc_fail(e, "table nested deeper than %d", TCL_MPACK_MAX_DEPTH);
    for (int i = 0; i < depth - 1; i++)
        if (e->path[i] == self)
            return enc_fail(e, "cyclic table");
    e->path[depth - 1] = self;
    /* Key and value of this level, one more for a nested level's setup. */
    if (!lua_checkstack(L, 4))
        return enc_fail(e, "Lua stack overflow");

    /* An array needs exactly the keys 1..n: n distinct positive integer
     * keys whose largest is n are exactly those. */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int64_t k;
        count++;
        if (seq && lua_type(L, -2) == LUA_TNUMBER && tcl_tointeger(L, -2, &k) &&
            k >= 1 && k <= INT_MAX) {
            if (k > maxk)
                maxk = k;
        } else {
            seq = 0;
        }
        lua_pop(L, 1);
    }
    if (!seq || count == 0 || (uint64_t)maxk != count)
        return enc_map(e, idx, count, depth);

    if (enc_header(e, count, 0x90, 15, 0, 0xdc, "table"))
        return -1;
    for (size_t i = 1; i <= count; i++) {
        lua_rawgeti(L, idx, (int)i);
        if (enc_value(e, lua_gettop(L), depth + 1))
            return -1;
        lua_pop(L, 1);
    }
    return 0;
}

/* @depth: the nesting level a table at @idx would have (the root is 1). */
static int enc_value(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    int t = lua_type(L, idx);

    switch (t) {
    case LUA_TNIL:
        if (!e->allow_nil)
            return enc_fail(e, "cannot store nil");
        return put_tagged(e, 0xc0, 0, 0);
    case LUA_TBOOLEAN:
        return put_tagged(e, lua_toboolean(L, idx) ? 0xc3 : 0xc2, 0, 0);
    case LUA_TNUMBER: {
        int64_t i;
        if (tcl_tointeger(L, idx, &i))
            return enc_int(e, i);
        double d = (double)lua_tonumber(L, idx);
        /* Canonical (memoize keys): 3 and 3.0 are equal Lua numbers and one
         * call; LuaJIT cannot tell them apart, so the key must not. */
        if (e->canonical && d == floor(d) && fabs(d) <= TCL_EXACT_INT_MAX)
            return enc_int(e, (int64_t)d);
        return enc_float(e, d);
    }
    case LUA_TSTRING:
        return enc_string(e, idx);
    case LUA_TTABLE:
        return enc_table(e, idx, depth);
    default:
        return enc_fail(e, "cannot store %s", type_article_name(L, t));
    }
}

int tcl_mpack_encode(lua_State *L, int idx, tcl_buf *out, int canonical,
                     int allow_nil, char *err, size_t errlen)
{
    enc e;
    int top = lua_gettop(L), rc;

    memset(&e, 0, sizeof e);
    e.L = L;
    e.out = out;
    e.canonical = canonical;
    e.allow_nil = allow_nil;
    e.err = err;
    e.errlen = errlen;
    rc = enc_value(&e, tcl_absindex(L, idx), 1);
    free(e.ents);
    free(e.scratch.ptr);
    /* Errors return from deep inside a traversal: drop what it pushed. */
    lua_settop(L, top);
    return rc;
}

/* ===================================================================== */
/* Decoder                                                                */

typedef struct dec {
    lua_State *L;
    const unsigned char *p, *end;
    char *err;
    size_t errlen;
} dec;

static int dec_fail(dec *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_err(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static size_t left(const dec *d)
{
    return (size_t)(d->end - d->p);
}

/* Read an @n-byte big-endian unsigned number. */
static int rd_uint(dec *d, int n, uint64_t *v)
{
    if (left(d) < (size_t)n)
        return dec_fail(d, "truncated MessagePack data");
    *v = 0;
    for (int i = 0; i < n; i++)
        *v = (*v << 8) | d->p[i];
    d->p += n;
    return 0;
}

static int dec_bytes(dec *d, size_t n)
{
    if (left(d) < n)
        return dec_fail(d, "truncated MessagePack data");
    lua_pushlstring(d->L, (const char *)d->p, n);
    d->p += n;
    return 0;
}

static int dec_value(dec *d, int depth);

/* t[i] = top of stack, for the table just below it. */
static void set_index(lua_State *L, size_t i)
{
#if TCL_HAS_INTEGERS
    lua_rawseti(L, -2, (lua_Integer)i);
#else
    if (i <= INT_MAX) {
        lua_rawseti(L, -2, (int)i);
    } else {
        lua_pushnumber(L, (lua_Number)i);
        lua_insert(L, -2);
        lua_rawset(L, -3);
    }
#endif
}

static int dec_array(dec *d, uint64_t n, int depth)
{
    if (depth > TCL_MPACK_MAX_DEPTH)
        return dec_fail(d, "MessagePack nested deeper than %d",
                        TCL_MPACK_MAX_DEPTH);
    /* Every element takes at least one byte. */
    if (n > left(d))
        return dec_fail(d, "truncated MessagePack data (array of %llu)",
                        (unsigned long long)n);
    if (!lua_checkstack(d->L, 3))
        return dec_fail(d, "Lua stack overflow");
    lua_createtable(d->L, n < TCL_MPACK_HINT_MAX ? (int)n : TCL_MPACK_HINT_MAX,
                    0);
    for (uint64_t i = 1; i <= n; i++) {
        if (dec_value(d, depth + 1))
            return -1;
        set_index(d->L, (size_t)i);
    }
    return 0;
}

static int dec_map(dec *d, uint64_t n, int depth)
{
    lua_State *L = d->L;

    if (depth > TCL_MPACK_MAX_DEPTH)
        return dec_fail(d, "MessagePack nested deeper than %d",
                        TCL_MPACK_MAX_DEPTH);
    /* Every entry takes at least two bytes. */
    if (n > left(d) / 2)
        return dec_fail(d, "truncated MessagePack data (map of %llu)",
                        (unsigned long long)n);
    if (!lua_checkstack(L, 4))
        return dec_fail(d, "Lua stack overflow");
    lua_createtable(L, 0, n < TCL_MPACK_HINT_MAX ? (int)n : TCL_MPACK_HINT_MAX);
    for (uint64_t i = 0; i < n; i++) {
        if (d->p == d->end)
            return dec_fail(d, "truncated MessagePack data");
        /* A table key would be an unreachable identity in Lua and the
         * encoder refuses to write one back: reject it before decoding. */
        unsigned char c = *d->p;
        if ((c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf))
            return dec_fail(d, "MessagePack map key is an array or map");
        if (dec_value(d, depth + 1))
            return -1;
        if (lua_isnil(L, -1))
            return dec_fail(d, "nil table key");
        if (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
            return dec_fail(d, "NaN table key");
        if (dec_value(d, depth + 1))
            return -1;
        lua_rawset(L, -3);
    }
    return 0;
}

/* Push one value. @depth: the nesting level an array or map here would
 * have (the root is 1). */
static int dec_value(dec *d, int depth)
{
    lua_State *L = d->L;
    uint64_t v = 0;
    unsigned char c;

    if (d->p == d->end)
        return dec_fail(d, "truncated MessagePack data");
    c = *d->p++;
    if (c <= 0x7f) {
        tcl_pushint(L, c);
        return 0;
    }
    if (c >= 0xe0) {
        tcl_pushint(L, (int64_t)c - 256);
        return 0;
    }
    if (c <= 0x8f)
        return dec_map(d, c & 0x0f, depth);
    if (c <= 0x9f)
        return dec_array(d, c & 0x0f, depth);
    if (c <= 0xbf)
        return dec_bytes(d, c & 0x1f);

    switch (c) {
    case 0xc0:
        lua_pushnil(L);
        return 0;
    case 0xc2:
    case 0xc3:
        lua_pushboolean(L, c == 0xc3);
        return 0;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6:
        if (rd_uint(d, 1 << (c - 0xc4), &v))
            return -1;
        return dec_bytes(d, (size_t)v);
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb:
        if (rd_uint(d, 1 << (c - 0xd9), &v))
            return -1;
        return dec_bytes(d, (size_t)v);
    case 0xca: {
        float f;
        uint32_t bits;
        if (rd_uint(d, 4, &v))
            return -1;
        bits = (uint32_t)v;
        memcpy(&f, &bits, sizeof f);
        lua_pushnumber(L, (lua_Number)f);
        return 0;
    }
    case 0xcb: {
        double f;
        if (rd_uint(d, 8, &v))
            return -1;
        memcpy(&f, &v, sizeof f);
        lua_pushnumber(L, (lua_Number)f);
        return 0;
    }
    case 0xcc: /* uint 8/16/32/64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (rd_uint(d, 1 << (c - 0xcc), &v))
            return -1;
        /* Beyond int64 only a float comes close (Lua 5.4 has no unsigned
         * integers; LuaJIT pushes every integer as a number anyway). */
        if (v > INT64_MAX)
            lua_pushnumber(L, (lua_Number)v);
        else
            tcl_pushint(L, (int64_t)v);
        return 0;
    case 0xd0: /* int 8/16/32/64 */
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        int n = 1 << (c - 0xd0);
        if (rd_uint(d, n, &v))
            return -1;
        /* Sign-extend from n bytes without shifting into the sign bit. */
        if (n < 8 && (v >> (8 * n - 1)))
            v |= ~(uint64_t)0 << (8 * n);
        tcl_pushint(L, v > INT64_MAX ? -(int64_t)(~v) - 1 : (int64_t)v);
        return 0;
    }
    case 0xdc:
    case 0xdd:
        if (rd_uint(d, c == 0xdc ? 2 : 4, &v))
            return -1;
        return dec_array(d, v, depth);
    case 0xde:
    case 0xdf:
        if (rd_uint(d, c == 0xde ? 2 : 4, &v))
            return -1;
        return dec_map(d, v, depth);
    default: /* 0xc1 (never used), ext 8/16/32, fixext 1..16 */
        return dec_fail(d, "unsupported MessagePack type 0x%02x", c);
    }
}

int tcl_mpack_decode(lua_State *L, const char *p, size_t n, char *err,
                     size_t errlen)
{
    int top = lua_gettop(L);
    dec d;

    d.L = L;
    d.err = err;
    d.errlen = errlen;
    if (n == 0) /* p may be NULL: no arithmetic on it */
        return dec_fail(&d, "truncated MessagePack data");
    d.p = (const unsigned char *)p;
    d.end = d.p + n;
    if (!lua_checkstack(L, 2)) {
        return dec_fail(&d, "Lua stack overflow");
    } else if (dec_value(&d, 1)) {
        lua_settop(L, top);
        return -1;
    } else if (d.p != d.end) {
        lua_settop(L, top);
        return dec_fail(&d, "trailing bytes after the MessagePack value (%zu)",
                        left(&d));
    }
    return 0;
}
