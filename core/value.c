/*
 * value.c - typed data: validation, binding to SQLite, copying out.
 *
 * Keys and values follow python-diskcache's raw types: TEXT must be valid
 * UTF-8 (python's str), BYTES is a BLOB, INT a 64-bit INTEGER, REAL a
 * double. Values read back are always copies owned by a tc_value.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

tc_data tc_bytes(const void *ptr, size_t len)
{
    tc_data d = {ptr, len, TC_BYTES};
    return d;
}

tc_data tc_text(const char *s)
{
    tc_data d = {s, s ? strlen(s) : 0, TC_TEXT};
    return d;
}

tc_data tc_textn(const char *ptr, size_t len)
{
    tc_data d = {ptr, len, TC_TEXT};
    return d;
}

tc_data tc_int(const int64_t *v)
{
    tc_data d = {v, sizeof *v, TC_INT};
    return d;
}

tc_data tc_real(const double *v)
{
    tc_data d = {v, sizeof *v, TC_REAL};
    return d;
}

void tc_value_clear(tc_value *v)
{
    if (!v)
        return;
    if (v->type != TC_INT && v->type != TC_REAL)
        free(v->ptr);
    v->type = TC_NONE;
    v->ptr = NULL;
    v->len = 0;
    v->i = 0;
    v->d = 0;
}

void tc_item_clear(tc_item *it)
{
    if (!it)
        return;
    tc_value_clear(&it->key);
    tc_value_clear(&it->value);
    tc_value_clear(&it->tag);
    it->expire_time = 0;
}

/* Numbers point at their own i/d field: fix that up after a struct copy. */
static void value_moved(tc_value *v)
{
    if (v->type == TC_INT)
        v->ptr = &v->i;
    else if (v->type == TC_REAL)
        v->ptr = &v->d;
}

void tc__value_move(tc_value *dst, tc_value *src)
{
    tc_value_clear(dst);
    *dst = *src;
    value_moved(dst);
    *src = (tc_value)TC_VALUE_INIT;
}

void tc__item_move(tc_item *dst, tc_item *src)
{
    tc_item_clear(dst);
    *dst = *src;
    value_moved(&dst->key);
    value_moved(&dst->value);
    value_moved(&dst->tag);
    *src = (tc_item)TC_ITEM_INIT;
}

void tc_free(void *p)
{
    free(p);
}

/* Strict UTF-8 (no overlongs, no surrogates, max U+10FFFF), as python's
 * str.encode('utf-8') produces and its decoder accepts. */
bool tc__utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        /* Keys are mostly ASCII: eight bytes per step while they are. */
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & UINT64_C(0x8080808080808080))) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= need)
            return false;
        for (size_t j = 1; j <= need; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

int tc_is_text(const void *ptr, size_t len)
{
    return len == 0 || tc__utf8_valid(ptr, len);
}

size_t tc__utf8_chars(const unsigned char *s, size_t n)
{
    size_t chars = 0;

    for (size_t i = 0; i < n; i++)
        chars += (s[i] & 0xc0) != 0x80;
    return chars;
}

static int check_datum(const tc_data *d, const char *what, bool allow_msgpack)
{
    if (!d)
        return tc__err(TC_EINVAL, "%s: missing (NULL)", what);
    switch (d->type) {
    case TC_INT:
    case TC_REAL:
        if (!d->ptr || d->len != 8)
            return tc__err(TC_EINVAL,
                           "%s: a number needs ptr to 8 bytes (len %zu)", what,
                           d->len);
        if (d->type == TC_REAL && isnan(*(const double *)d->ptr))
            return tc__err(TC_EINVAL, "%s: NaN is not allowed", what);
        return TC_OK;
    case TC_TEXT:
        if (!d->ptr && d->len)
            return tc__err(TC_EINVAL, "%s: NULL pointer with length %zu", what,
                           d->len);
        if (d->len && !tc__utf8_valid(d->ptr, d->len))
            return tc__err(TC_EINVAL, "%s: text is not valid UTF-8", what);
        return TC_OK;
    case TC_MSGPACK:
        if (!allow_msgpack)
            break;
        /* fall through */
    case TC_BYTES:
        if (!d->ptr && d->len)
            return tc__err(TC_EINVAL, "%s: NULL pointer with length %zu", what,
                           d->len);
        return TC_OK;
    default:
        break;
    }
    return tc__err(TC_EINVAL, "%s: unsupported type %d", what, d->type);
}

int tc__check_key(const tc_data *key)
{
    int rc = check_datum(key, "key", false);

    if (rc)
        return rc;
    if ((key->type == TC_TEXT || key->type == TC_BYTES) &&
        key->len > TC_MAX_KEY_BYTES)
        return tc__err(TC_ETOOBIG, "key: %zu bytes is over the maximum of %u",
                       key->len, TC_MAX_KEY_BYTES);
    return TC_OK;
}

int tc__check_value(const tc_data *val, const char *what)
{
    int rc = check_datum(val, what, true);

    if (rc)
        return rc;
    if (val->len > (size_t)INT32_MAX * 2 && val->type != TC_INT &&
        val->type != TC_REAL)
        return tc__err(TC_ETOOBIG, "%s: %zu bytes is too large", what,
                       val->len);
    return TC_OK;
}

int tc__check_tag(const tc_data *tag)
{
    if (!tag || tag->type == TC_NONE)
        return TC_OK;
    int rc = check_datum(tag, "tag", false);
    if (rc)
        return rc;
    if (tag->len > TC_MAX_KEY_BYTES && tag->type != TC_INT &&
        tag->type != TC_REAL)
        return tc__err(TC_ETOOBIG, "tag: %zu bytes is over the maximum of %u",
                       tag->len, TC_MAX_KEY_BYTES);
    return TC_OK;
}

int tc__bind_data(sqlite3_stmt *st, int idx, const tc_data *d)
{
    static const char empty[1] = "";

    if (!d || d->type == TC_NONE)
        return sqlite3_bind_null(st, idx);
    switch (d->type) {
    case TC_INT:
        return sqlite3_bind_int64(st, idx, *(const int64_t *)d->ptr);
    case TC_REAL:
        return sqlite3_bind_double(st, idx, *(const double *)d->ptr);
    case TC_TEXT:
        return sqlite3_bind_text64(st, idx, d->len ? d->ptr : empty, d->len,
                                   SQLITE_STATIC, SQLITE_UTF8);
    default:
        /* A zero-length blob needs a non-NULL pointer, or it binds NULL. */
        return sqlite3_bind_blob64(st, idx, d->len ? d->ptr : empty, d->len,
                                   SQLITE_STATIC);
    }
}

int tc__value_set_bytes(tc_value *out, int type, const void *p, size_t n)
{
    char *buf = malloc(n + 1);

    if (!buf)
        return tc__err(TC_ENOMEM, "out of memory copying %zu bytes", n);
    if (n)
        memcpy(buf, p, n);
    buf[n] = 0;
    tc_value_clear(out);
    out->type = type;
    out->ptr = buf;
    out->len = n;
    return TC_OK;
}

void tc__value_set_int(tc_value *out, int64_t i)
{
    tc_value_clear(out);
    out->type = TC_INT;
    out->i = i;
    out->ptr = &out->i;
    out->len = 8;
}

void tc__value_set_real(tc_value *out, double d)
{
    tc_value_clear(out);
    out->type = TC_REAL;
    out->d = d;
    out->ptr = &out->d;
    out->len = 8;
}

int tc__column_value(sqlite3_stmt *st, int col, tc_value *out)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
        tc__value_set_int(out, sqlite3_column_int64(st, col));
        return TC_OK;
    case SQLITE_FLOAT:
        tc__value_set_real(out, sqlite3_column_double(st, col));
        return TC_OK;
    case SQLITE_TEXT: {
        const unsigned char *p = sqlite3_column_text(st, col);
        size_t n = (size_t)sqlite3_column_bytes(st, col);
        if (!p && n)
            return tc__err(TC_ENOMEM, "out of memory reading text");
        return tc__value_set_bytes(out, TC_TEXT, p, n);
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, col);
        size_t n = (size_t)sqlite3_column_bytes(st, col);
        if (!p && n)
            return tc__err(TC_ENOMEM, "out of memory reading blob");
        return tc__value_set_bytes(out, TC_BYTES, p, n);
    }
    default:
        tc_value_clear(out);
        return TC_OK;
    }
}

int tc__column_key(sqlite3_stmt *st, int kcol, int rawcol, tc_value *out)
{
    if (sqlite3_column_int64(st, rawcol) != 1)
        return tc__err(TC_EUNSUPPORTED,
                       "key is a python pickle (raw 0); tiercache reads only "
                       "bytes, str, int and float keys");
    int rc = tc__column_value(st, kcol, out);
    if (rc == TC_OK && out->type == TC_NONE)
        return tc__err(TC_ECORRUPT, "key column is NULL");
    return rc;
}
