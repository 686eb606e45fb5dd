/*
 * small_mpack.c - the recipes' MessagePack records (small_mpack.h).
 */
#include "small_mpack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static unsigned char *put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static unsigned char *put_f64(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    *p++ = 0xcb;
    return put_be(p, u, 8);
}

static unsigned char *put_i64(unsigned char *p, int64_t i)
{
    if (i >= 0 && i < 128) {
        *p++ = (unsigned char)i;
        return p;
    }
    *p++ = 0xd3;
    return put_be(p, (uint64_t)i, 8);
}

/* One number at @p (float32/64 or any integer form): bytes used, or 0 if
 * the bytes there are not a complete number. */
static size_t get_num(const unsigned char *p, size_t n, double *out,
                      int *is_int, int64_t *iv)
{
    if (n == 0)
        return 0;
    unsigned b = p[0];
    *is_int = 1;
    if (b <= 0x7f) {
        *iv = b;
    } else if (b >= 0xe0) {
        *iv = (int8_t)b;
    } else {
        static const struct {
            unsigned char tag;
            int len, sign, flt;
        } forms[] = {{0xcc, 1, 0, 0}, {0xcd, 2, 0, 0}, {0xce, 4, 0, 0},
                     {0xcf, 8, 0, 0}, {0xd0, 1, 1, 0}, {0xd1, 2, 1, 0},
                     {0xd2, 4, 1, 0}, {0xd3, 8, 1, 0}, {0xca, 4, 0, 1},
                     {0xcb, 8, 0, 1}};
        for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
            if (forms[i].tag != b)
                continue;
            int len = forms[i].len;
            if (n < (size_t)len + 1)
                return 0;
            uint64_t u = get_be(p + 1, len);
            if (forms[i].flt) {
                *is_int = 0;
                if (len == 4) {
                    uint32_t u32 = (uint32_t)u;
                    float f;
                    memcpy(&f, &u32, sizeof f);
                    *out = f;
                } else {
                    memcpy(out, &u, sizeof *out);
                }
            } else if (forms[i].sign) {
                int shift = 64 - 8 * len;
                *iv = (int64_t)(u << shift) >> shift;
            } else {
                if (u > INT64_MAX)
                    return 0;
                *iv = (int64_t)u;
            }
            return (size_t)len + 1;
        }
        return 0;
    }
    return 1;
}

size_t tc__mp_pair(unsigned char *buf, double a, double b, int b_int)
{
    unsigned char *p = buf;
    *p++ = 0x92;
    p = put_f64(p, a);
    p = b_int ? put_i64(p, (int64_t)b) : put_f64(p, b);
    return (size_t)(p - buf);
}

static size_t get_double(const unsigned char *p, size_t n, double *out)
{
    int is_int;
    int64_t iv;
    size_t used = get_num(p, n, out, &is_int, &iv);
    if (used && is_int)
        *out = (double)iv;
    return used;
}

int tc__mp_pair_parse(const tc_value *v, double *a, double *b)
{
    if (v->type != TC_MSGPACK || v->len < 3 ||
        ((const unsigned char *)v->ptr)[0] != 0x92)
        return TC_ETYPE;
    const unsigned char *p = v->ptr;
    size_t n = v->len - 1, used;
    p++;
    if (!(used = get_double(p, n, a)))
        return TC_ETYPE;
    p += used, n -= used;
    if (!(used = get_double(p, n, b)) || used != n)
        return TC_ETYPE;
    return TC_OK;
}

int tc__mp_with_delta(double delta, const tc_data *result, unsigned char **out,
                      size_t *len)
{
    size_t head = 1 + 9, body;
    switch (result->type) {
    case TC_TEXT:
    case TC_BYTES:
        if (result->len > UINT32_MAX)
            return tc__err(TC_ETOOBIG, "result of %zu bytes", result->len);
        body = 5 + result->len;
        break;
    case TC_INT:
    case TC_REAL:
        body = 9;
        break;
    case TC_MSGPACK:
        if (result->len == 0)
            return tc__err(TC_EINVAL, "empty MessagePack result");
        body = result->len;
        break;
    default:
        return tc__err(TC_EINVAL, "result type %d cannot be stored",
                       result->type);
    }
    unsigned char *buf = malloc(head + body), *p = buf;
    if (!buf)
        return tc__err(TC_ENOMEM, "out of memory for a %zu-byte record",
                       head + body);
    *p++ = 0x92;
    p = put_f64(p, delta);
    switch (result->type) {
    case TC_TEXT:
    case TC_BYTES:
        *p++ = result->type == TC_TEXT ? 0xdb : 0xc6; /* str32 / bin32 */
        p = put_be(p, result->len, 4);
        if (result->len)
            memcpy(p, result->ptr, result->len);
        p += result->len;
        break;
    case TC_INT:
        p = put_i64(p, *(const int64_t *)result->ptr);
        break;
    case TC_REAL:
        p = put_f64(p, *(const double *)result->ptr);
        break;
    default:
        memcpy(p, result->ptr, result->len);
        p += result->len;
    }
    *out = buf;
    *len = (size_t)(p - buf);
    return TC_OK;
}

/* A copy of @n bytes as a tc_value of @type (with a NUL after it). */
static int copy_value(tc_value *out, int type, const void *src, size_t n)
{
    char *buf = malloc(n + 1);
    if (!buf)
        return tc__err(TC_ENOMEM, "out of memory for a %zu-byte result", n);
    if (n)
        memcpy(buf, src, n);
    buf[n] = 0;
    out->type = type;
    out->ptr = buf;
    out->len = n;
    return TC_OK;
}

int tc__mp_with_delta_parse(const tc_value *v, double *delta, tc_value *result)
{
    if (v->type != TC_MSGPACK || v->len < 3 ||
        ((const unsigned char *)v->ptr)[0] != 0x92)
        return TC_ETYPE;
    const unsigned char *p = (const unsigned char *)v->ptr + 1;
    size_t n = v->len - 1, used;
    if (!(used = get_double(p, n, delta)) || used == n)
        return TC_ETYPE;
    p += used, n -= used;
    tc_value_clear(result);
    /* A lone str/bin/number is the typed value; anything else stays the
     * MessagePack it was stored as. */
    unsigned b = p[0];
    if (b == 0xdb || b == 0xc6 || b == 0xd9 || b == 0xc4 || b == 0xda ||
        b == 0xc5 || (b >= 0xa0 && b <= 0xbf)) {
        size_t lenb = b == 0xdb || b == 0xc6   ? 4
                      : b == 0xda || b == 0xc5 ? 2
                      : b == 0xd9 || b == 0xc4 ? 1
                                               : 0;
        if (n < 1 + lenb)
            return TC_ETYPE;
        size_t sl = lenb ? (size_t)get_be(p + 1, (int)lenb) : (b & 0x1f);
        if (n - 1 - lenb != sl)
            return TC_ETYPE;
        int text = !(b == 0xc6 || b == 0xc4 || b == 0xc5);
        return copy_value(result, text ? TC_TEXT : TC_BYTES, p + 1 + lenb, sl);
    }
    double d;
    int is_int;
    int64_t iv;
    used = get_num(p, n, &d, &is_int, &iv);
    if (used && used == n) {
        if (is_int)
            tc__value_set_int(result, iv);
        else
            tc__value_set_real(result, d);
        return TC_OK;
    }
    return copy_value(result, TC_MSGPACK, p, n);
}
