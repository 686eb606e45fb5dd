/*
 * tc_collections.c - command-line helper for the Deque/Index interop test.
 *
 * A client of the public API only (tiercache.h). test_collections.py runs
 * one script of operations through python-diskcache's Deque or Index and
 * through this program, and compares what both print, line for line.
 *
 *   tc_collections deque DIR < ops      tc_deque_* on the Deque in DIR
 *   tc_collections index DIR < ops      Cache calls + tc_index_* in DIR
 *
 * Input: one operation a line, fields separated by tabs. A datum is two
 * fields, TYPE and PAYLOAD, as tc_interop's: text/bytes as lowercase hex,
 * int in decimal, real as the 16 hex digits of its IEEE-754 bits.
 *
 *   deque: append D | appendleft D | extend D... | extendleft D... |
 *          pop | popleft | peek | peekleft | get I | set I D | delete I |
 *          count D | remove D | reverse | rotate N | maxlen N (-1: none;
 *          sets the limit of later pushes and trims from the left) |
 *          clear | len | dump
 *   index: set K V | get K | delete K | pop K | setdefault K V |
 *          popitem LAST | peekitem LAST | push D SIDE PREFIX |
 *          pull SIDE PREFIX | clear | len | dump
 *          (LAST 1 or 0, SIDE back or front, PREFIX "-" for none)
 *
 * Output, one line per answer (operations that answer nothing print
 * nothing): "value D", "empty" (pop/peek of an empty deque, popitem of an
 * empty index), "range" (index out of range), "ok", "missing", "count N",
 * "len N", "key D", "item K V", and for dump "dump N" then N lines
 * "item D" (deque, front to back) or "item K V" (index, insertion order).
 * A failure prints "error WHERE NAME MESSAGE" and exits 1; bad usage or
 * input exits 2.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiercache.h"

#define MAX_FIELDS 64

struct datum {
    tc_data data;
    unsigned char *buf;
    int64_t i;
    double d;
};

static void fail(const char *where, int rc)
{
    printf("error\t%s\t%s\t%s\n", where, tc_errname(rc), tc_errmsg());
    exit(1);
}

static void bad_input(const char *what, const char *op)
{
    fprintf(stderr, "tc_collections: %s in '%s'\n", what, op);
    exit(2);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Decode TYPE and PAYLOAD; exits on malformed input. */
static void datum_parse(const char *type, const char *payload,
                        struct datum *out, const char *op)
{
    char *end = NULL;

    memset(out, 0, sizeof *out);
    if (!type || !payload)
        bad_input("missing datum", op);
    if (strcmp(type, "text") == 0 || strcmp(type, "bytes") == 0) {
        size_t n = strlen(payload);
        if (n % 2)
            bad_input("odd hex", op);
        out->buf = malloc(n / 2 + 1);
        if (!out->buf)
            bad_input("out of memory", op);
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hexval(payload[2 * i]), lo = hexval(payload[2 * i + 1]);
            if (hi < 0 || lo < 0)
                bad_input("bad hex", op);
            out->buf[i] = (unsigned char)(hi << 4 | lo);
        }
        out->data.ptr = out->buf;
        out->data.len = n / 2;
        out->data.type = type[0] == 't' ? TC_TEXT : TC_BYTES;
    } else if (strcmp(type, "int") == 0) {
        errno = 0;
        out->i = strtoll(payload, &end, 10);
        if (errno || end == payload || *end)
            bad_input("bad int", op);
        out->data = tc_int(&out->i);
    } else if (strcmp(type, "real") == 0) {
        errno = 0;
        uint64_t bits = strtoull(payload, &end, 16);
        if (errno || strlen(payload) != 16 || *end)
            bad_input("bad real", op);
        memcpy(&out->d, &bits, sizeof out->d);
        out->data = tc_real(&out->d);
    } else {
        bad_input("unknown type", op);
    }
}

static void datum_free(struct datum *d)
{
    free(d->buf);
    d->buf = NULL;
}

static int64_t int_arg(const char *s, const char *op)
{
    char *end = NULL;
    if (!s)
        bad_input("missing number", op);
    errno = 0;
    int64_t v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        bad_input("bad number", op);
    return v;
}

/* Print "\tTYPE\tPAYLOAD" of a value tiercache handed out. */
static void put_value(const tc_value *v)
{
    static const char digits[] = "0123456789abcdef";
    uint64_t bits;

    switch (v->type) {
    case TC_INT:
        printf("\tint\t%" PRId64, v->i);
        break;
    case TC_REAL:
        memcpy(&bits, &v->d, sizeof bits);
        printf("\treal\t%016" PRIx64, bits);
        break;
    case TC_TEXT:
    case TC_BYTES:
        printf("\t%s\t", v->type == TC_TEXT ? "text" : "bytes");
        for (size_t i = 0; i < v->len; i++) {
            unsigned char ch = ((const unsigned char *)v->ptr)[i];
            putchar(digits[ch >> 4]);
            putchar(digits[ch & 15]);
        }
        break;
    default:
        printf("\tunsupported\t%d", v->type);
        break;
    }
}

static tc_data as_data(const tc_value *v)
{
    if (v->type == TC_INT)
        return tc_int(&v->i);
    if (v->type == TC_REAL)
        return tc_real(&v->d);
    return (tc_data){v->ptr, v->len, v->type};
}

/* Split @line in place on tabs; returns the number of fields. */
static size_t split(char *line, char **f)
{
    size_t n = 0, len = strlen(line);
    if (len && line[len - 1] == '\n')
        line[len - 1] = 0;
    for (char *p = line; n < MAX_FIELDS;) {
        f[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = 0;
        p = tab + 1;
    }
    for (size_t i = n; i < MAX_FIELDS; i++)
        f[i] = NULL;
    return n;
}

/* "value D", or @absent on TC_NOTFOUND. */
static void answer_value(int rc, tc_value *v, const char *absent,
                         const char *where)
{
    if (rc == TC_NOTFOUND) {
        puts(absent);
        return;
    }
    if (rc != TC_OK)
        fail(where, rc);
    fputs("value", stdout);
    put_value(v);
    putchar('\n');
    tc_value_clear(v);
}

static void answer_done(int rc, const char *absent, const char *where)
{
    if (rc != TC_OK && rc != TC_NOTFOUND)
        fail(where, rc);
    puts(rc == TC_OK ? "ok" : absent);
}

/* ---- deque ------------------------------------------------------------- */

static void deque_extend(tc_cache *c, char **f, size_t n, int side,
                         int64_t maxlen)
{
    size_t count = (n - 1) / 2;
    struct datum *d = calloc(count + 1, sizeof *d);
    tc_data *vals = calloc(count + 1, sizeof *vals);
    if (!d || !vals || (n - 1) % 2)
        bad_input("bad extend", f[0]);
    for (size_t i = 0; i < count; i++) {
        datum_parse(f[1 + 2 * i], f[2 + 2 * i], &d[i], f[0]);
        vals[i] = d[i].data;
    }
    int rc = tc_deque_extend(c, vals, count, side, maxlen);
    for (size_t i = 0; i < count; i++)
        datum_free(&d[i]);
    free(d);
    free(vals);
    if (rc)
        fail("tc_deque_extend", rc);
}

static void deque_op(tc_cache *c, char **f, size_t n, int64_t *maxlen)
{
    const char *op = f[0];
    tc_value v = TC_VALUE_INIT;
    struct datum d;
    uint64_t count;
    int rc;

    if (!strcmp(op, "append") || !strcmp(op, "appendleft")) {
        datum_parse(f[1], f[2], &d, op);
        rc = tc_deque_push(c, &d.data, op[6] ? TC_FRONT : TC_BACK, *maxlen);
        datum_free(&d);
        if (rc)
            fail("tc_deque_push", rc);
    } else if (!strcmp(op, "extend") || !strcmp(op, "extendleft")) {
        deque_extend(c, f, n, op[6] ? TC_FRONT : TC_BACK, *maxlen);
    } else if (!strcmp(op, "pop") || !strcmp(op, "popleft")) {
        rc = tc_deque_pop(c, op[3] ? TC_FRONT : TC_BACK, &v);
        answer_value(rc, &v, "empty", "tc_deque_pop");
    } else if (!strcmp(op, "peek") || !strcmp(op, "peekleft")) {
        rc = tc_deque_peek(c, op[4] ? TC_FRONT : TC_BACK, &v);
        answer_value(rc, &v, "empty", "tc_deque_peek");
    } else if (!strcmp(op, "get")) {
        rc = tc_deque_get(c, int_arg(f[1], op), &v);
        answer_value(rc, &v, "range", "tc_deque_get");
    } else if (!strcmp(op, "set")) {
        datum_parse(f[2], f[3], &d, op);
        rc = tc_deque_set(c, int_arg(f[1], op), &d.data);
        datum_free(&d);
        answer_done(rc, "range", "tc_deque_set");
    } else if (!strcmp(op, "delete")) {
        answer_done(tc_deque_delete(c, int_arg(f[1], op)), "range",
                    "tc_deque_delete");
    } else if (!strcmp(op, "count")) {
        datum_parse(f[1], f[2], &d, op);
        rc = tc_deque_count(c, &d.data, &count);
        datum_free(&d);
        if (rc)
            fail("tc_deque_count", rc);
        printf("count\t%" PRIu64 "\n", count);
    } else if (!strcmp(op, "remove")) {
        datum_parse(f[1], f[2], &d, op);
        rc = tc_deque_remove(c, &d.data);
        datum_free(&d);
        answer_done(rc, "missing", "tc_deque_remove");
    } else if (!strcmp(op, "reverse")) {
        if ((rc = tc_deque_reverse(c)))
            fail("tc_deque_reverse", rc);
    } else if (!strcmp(op, "rotate")) {
        if ((rc = tc_deque_rotate(c, int_arg(f[1], op))))
            fail("tc_deque_rotate", rc);
    } else if (!strcmp(op, "maxlen")) {
        *maxlen = int_arg(f[1], op);
        if ((rc = tc_deque_trim(c, *maxlen, TC_FRONT)))
            fail("tc_deque_trim", rc);
    } else if (!strcmp(op, "clear")) {
        if ((rc = tc_deque_clear(c)))
            fail("tc_deque_clear", rc);
    } else if (!strcmp(op, "len")) {
        if ((rc = tc_deque_len(c, &count)))
            fail("tc_deque_len", rc);
        printf("len\t%" PRIu64 "\n", count);
    } else if (!strcmp(op, "dump")) {
        if ((rc = tc_deque_len(c, &count)))
            fail("tc_deque_len", rc);
        printf("dump\t%" PRIu64 "\n", count);
        for (uint64_t i = 0; i < count; i++) {
            if ((rc = tc_deque_get(c, (int64_t)i, &v)))
                fail("tc_deque_get", rc);
            fputs("item", stdout);
            put_value(&v);
            putchar('\n');
            tc_value_clear(&v);
        }
    } else {
        bad_input("unknown operation", op);
    }
}

/* ---- index ------------------------------------------------------------- */

static void put_item(tc_item *it)
{
    fputs("item", stdout);
    put_value(&it->key);
    put_value(&it->value);
    putchar('\n');
    tc_item_clear(it);
}

static void index_dump(tc_cache *c)
{
    tc_iter *iter = NULL;
    tc_value key = TC_VALUE_INIT;
    uint64_t count = 0;
    int rc;

    if ((rc = tc_length(c, &count)))
        fail("tc_length", rc);
    printf("dump\t%" PRIu64 "\n", count);
    if ((rc = tc_iter_open(c, TC_ITER_INSERTION, &iter)))
        fail("tc_iter_open", rc);
    while ((rc = tc_iter_next(iter, &key)) == TC_OK) {
        tc_item it = TC_ITEM_INIT;
        tc_data k = as_data(&key);
        if ((rc = tc_get(c, &k, &it, TC_RETRY)))
            fail("tc_get", rc);
        fputs("item", stdout);
        put_value(&key);
        put_value(&it.value);
        putchar('\n');
        tc_value_clear(&key);
        tc_item_clear(&it);
    }
    if (rc != TC_NOTFOUND)
        fail("tc_iter_next", rc);
    tc_iter_close(iter);
}

static void index_op(tc_cache *c, char **f)
{
    const char *op = f[0];
    struct datum k, d;
    tc_item it = TC_ITEM_INIT;
    tc_value v = TC_VALUE_INIT;
    uint64_t count;
    int rc;

    if (!strcmp(op, "set")) {
        datum_parse(f[1], f[2], &k, op);
        datum_parse(f[3], f[4], &d, op);
        rc = tc_set(c, &k.data, &d.data, TC_NO_EXPIRE, NULL, TC_RETRY);
        datum_free(&k);
        datum_free(&d);
        if (rc)
            fail("tc_set", rc);
    } else if (!strcmp(op, "get") || !strcmp(op, "pop")) {
        datum_parse(f[1], f[2], &k, op);
        rc = op[0] == 'g' ? tc_get(c, &k.data, &it, TC_RETRY)
                          : tc_pop(c, &k.data, &it, TC_RETRY);
        datum_free(&k);
        answer_value(rc, &it.value, "missing", op);
        tc_item_clear(&it);
    } else if (!strcmp(op, "delete")) {
        datum_parse(f[1], f[2], &k, op);
        rc = tc_delete(c, &k.data, TC_RETRY);
        datum_free(&k);
        answer_done(rc, "missing", "tc_delete");
    } else if (!strcmp(op, "setdefault")) {
        datum_parse(f[1], f[2], &k, op);
        datum_parse(f[3], f[4], &d, op);
        rc = tc_index_setdefault(c, &k.data, &d.data, &v);
        datum_free(&k);
        datum_free(&d);
        answer_value(rc == TC_NOTFOUND ? TC_EINTERNAL : rc, &v, "", op);
    } else if (!strcmp(op, "popitem") || !strcmp(op, "peekitem")) {
        int last = (int)int_arg(f[1], op);
        rc = op[1] == 'o' ? tc_index_popitem(c, last, &it)
                          : tc_peekitem(c, last, &it, TC_RETRY);
        if (rc == TC_NOTFOUND)
            puts("empty");
        else if (rc)
            fail(op, rc);
        else
            put_item(&it);
    } else if (!strcmp(op, "push")) {
        datum_parse(f[1], f[2], &d, op);
        const char *prefix = f[4] && strcmp(f[4], "-") ? f[4] : NULL;
        int side = f[3] && !strcmp(f[3], "front") ? TC_FRONT : TC_BACK;
        rc =
            tc_push(c, &d.data, prefix, side, TC_NO_EXPIRE, NULL, &v, TC_RETRY);
        datum_free(&d);
        if (rc)
            fail("tc_push", rc);
        fputs("key", stdout);
        put_value(&v);
        putchar('\n');
        tc_value_clear(&v);
    } else if (!strcmp(op, "pull")) {
        const char *prefix = f[2] && strcmp(f[2], "-") ? f[2] : NULL;
        int side = f[1] && !strcmp(f[1], "back") ? TC_BACK : TC_FRONT;
        rc = tc_pull(c, prefix, side, &it, TC_RETRY);
        if (rc == TC_NOTFOUND)
            puts("empty");
        else if (rc)
            fail("tc_pull", rc);
        else
            put_item(&it);
    } else if (!strcmp(op, "clear")) {
        if ((rc = tc_clear(c, NULL, TC_RETRY)))
            fail("tc_clear", rc);
    } else if (!strcmp(op, "len")) {
        if ((rc = tc_length(c, &count)))
            fail("tc_length", rc);
        printf("len\t%" PRIu64 "\n", count);
    } else if (!strcmp(op, "dump")) {
        index_dump(c);
    } else {
        bad_input("unknown operation", op);
    }
}

int main(int argc, char **argv)
{
    tc_cache *c = NULL;
    char *line = NULL, *f[MAX_FIELDS];
    size_t cap = 0;
    int64_t maxlen = -1;
    int rc;

    if (argc != 3 || (strcmp(argv[1], "deque") && strcmp(argv[1], "index"))) {
        fprintf(stderr, "usage: tc_collections deque|index DIR < ops\n");
        return 2;
    }
    int deque = argv[1][0] == 'd';
    rc = deque ? tc_deque_open(&c, argv[2], 0) : tc_index_open(&c, argv[2], 0);
    if (rc)
        fail("open", rc);
    while (getline(&line, &cap, stdin) > 0) {
        size_t n = split(line, f);
        if (!f[0][0])
            continue;
        if (deque)
            deque_op(c, f, n, &maxlen);
        else
            index_op(c, f);
        fflush(stdout);
    }
    free(line);
    tc_close(c);
    return 0;
}
