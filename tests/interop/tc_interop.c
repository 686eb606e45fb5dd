/*
 * tc_interop.c - command-line helper for the python-diskcache interop suite.
 *
 * Layering: a client of the public API only (tiercache.h), like tools/; the
 * python driver tests/interop/test_interop.py runs it and compares what it
 * prints with what python-diskcache reads and writes.
 *
 * Subcommands (all data goes through stdin/stdout as tab-separated lines):
 *
 *   tc_interop write DIR SHARDS < spec   SHARDS: "plain", "auto" or 1..999
 *   tc_interop dump DIR                  every key in insertion order
 *   tc_interop get DIR < keys            look up the listed keys (tc_get)
 *   tc_interop read DIR < keys           the same through tc_read
 *   tc_interop getbuf DIR < keys         the same through tc_get_buf
 *   tc_interop check DIR                 tc_check without fix
 *   tc_interop hash < keys               tc_fanout_hash of each key
 *
 * A datum is written as two fields, TYPE and PAYLOAD:
 *
 *   bytes, text, msgpack   lowercase hex of the bytes (empty for empty)
 *   int                    decimal int64
 *   real                   16 hex digits: the IEEE-754 bits, big-endian
 *                          (python: struct.pack('!d', x).hex())
 *   none                   empty payload (tags only)
 *
 * Spec lines for write:
 *
 *   setting NAME TYPE PAYLOAD               before the first set/delete
 *   set KTYPE KEY VTYPE VAL EXPIRE TTYPE TAG   EXPIRE "-" or seconds from now
 *   delete KTYPE KEY
 *
 * Output lines of dump and get (SHARD is Disk.hash % shards, 0 when plain):
 *
 *   shards N
 *   item SHARD KTYPE KEY VTYPE VAL EXPIRE_TIME TTYPE TAG   EXPIRE_TIME "-"
 *   missing SHARD KTYPE KEY                 tc_get said TC_NOTFOUND
 *   unsupported SHARD KTYPE KEY             tc_get said TC_EUNSUPPORTED
 *   unsupported-key                         tc_iter_next said EUNSUPPORTED
 *   read SHARD KTYPE KEY HEX                 (read) bytes read from the fd
 *   buf SHARD KTYPE KEY VTYPE VAL EXPIRE_TIME   (getbuf) no tag
 *   error WHERE RCNAME MESSAGE              any other failure
 *   length N / volume N / end N             (dump only)
 *
 * Exit status: 0 when every call behaved, 1 when an error line was printed,
 * 2 on usage errors.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tiercache.h"

/* A decoded datum: @buf owns the bytes of text/bytes/msgpack payloads. */
struct datum {
    tc_data data;
    unsigned char *buf;
    int64_t i;
    double d;
};

static int failures;

static void fail(const char *where, int rc)
{
    printf("error\t%s\t%s\t%s\n", where, tc_errname(rc), tc_errmsg());
    failures++;
}

static const char *type_name(int type)
{
    switch (type) {
    case TC_NONE:
        return "none";
    case TC_BYTES:
        return "bytes";
    case TC_TEXT:
        return "text";
    case TC_INT:
        return "int";
    case TC_REAL:
        return "real";
    case TC_MSGPACK:
        return "msgpack";
    default:
        return "unknown";
    }
}

static int type_parse(const char *s)
{
    static const int types[] = {TC_NONE, TC_BYTES, TC_TEXT,
                                TC_INT,  TC_REAL,  TC_MSGPACK};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(s, type_name(types[i])) == 0) {
            return types[i];
        }
    }
    return -1;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Decode @len hex digits of @hex into a fresh buffer (NUL-terminated). */
static unsigned char *unhex(const char *hex, size_t len, size_t *out_len)
{
    if (len % 2 != 0) {
        return NULL;
    }
    unsigned char *buf = malloc(len / 2 + 1);
    if (buf == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval((unsigned char)hex[2 * i]);
        int lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return NULL;
        }
        buf[i] = (unsigned char)(hi << 4 | lo);
    }
    buf[len / 2] = '\0';
    *out_len = len / 2;
    return buf;
}

static void put_hex(const void *ptr, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = ptr;
    for (size_t i = 0; i < len; i++) {
        putchar(digits[p[i] >> 4]);
        putchar(digits[p[i] & 15]);
    }
}

static uint64_t real_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

/*
 * datum_parse - decode TYPE and PAYLOAD into @out.
 * Returns 0, or -1 on a malformed field. The datum's buffer is released by
 * datum_free().
 */
static int datum_parse(const char *type, const char *payload, struct datum *out)
{
    memset(out, 0, sizeof *out);
    int t = type_parse(type);
    char *end = NULL;
    size_t len = 0;

    switch (t) {
    case TC_NONE:
        out->data.type = TC_NONE;
        return 0;
    case TC_BYTES:
    case TC_TEXT:
    case TC_MSGPACK:
        out->buf = unhex(payload, strlen(payload), &len);
        if (out->buf == NULL) {
            return -1;
        }
        out->data.ptr = out->buf;
        out->data.len = len;
        out->data.type = t;
        return 0;
    case TC_INT:
        errno = 0;
        out->i = strtoll(payload, &end, 10);
        if (errno != 0 || end == payload || *end != '\0') {
            return -1;
        }
        out->data = tc_int(&out->i);
        return 0;
    case TC_REAL: {
        if (strlen(payload) != 16) {
            return -1;
        }
        errno = 0;
        uint64_t bits = strtoull(payload, &end, 16);
        if (errno != 0 || *end != '\0') {
            return -1;
        }
        memcpy(&out->d, &bits, sizeof out->d);
        out->data = tc_real(&out->d);
        return 0;
    }
    default:
        return -1;
    }
}

static void datum_free(struct datum *d)
{
    free(d->buf);
    d->buf = NULL;
}

/* Print TYPE \t PAYLOAD of a value handed out by tiercache. */
static void put_value(const tc_value *v)
{
    fputs(type_name(v->type), stdout);
    putchar('\t');
    switch (v->type) {
    case TC_INT:
        printf("%" PRId64, v->i);
        break;
    case TC_REAL:
        printf("%016" PRIx64, real_bits(v->d));
        break;
    case TC_BYTES:
    case TC_TEXT:
    case TC_MSGPACK:
        put_hex(v->ptr, v->len);
        break;
    default:
        break;
    }
}

/* Build a borrowed tc_data view of a tc_value (for looking a key up). */
static tc_data value_as_data(const tc_value *v)
{
    switch (v->type) {
    case TC_INT:
        return tc_int(&v->i);
    case TC_REAL:
        return tc_real(&v->d);
    default: {
        tc_data d = {v->ptr, v->len, v->type};
        return d;
    }
    }
}

/* Split @line in place on tabs; returns the number of fields (<= max). */
static size_t split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    size_t len = strlen(line);
    if (len > 0 && line[len - 1] == '\n') {
        line[len - 1] = '\0';
    }
    while (n < max) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL) {
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static int shard_of(const tc_data *key, int shards)
{
    uint64_t h = 0;
    if (shards <= 0) {
        return 0;
    }
    int rc = tc_fanout_hash(key, &h);
    if (rc != TC_OK) {
        fail("tc_fanout_hash", rc);
        return -1;
    }
    return (int)(h % (uint64_t)shards);
}

/* Look @key up and print one item/missing/unsupported/error line. */
static void show_key(tc_cache *c, const tc_data *key, const tc_value *kv)
{
    tc_item it = TC_ITEM_INIT;
    int shard = shard_of(key, tc_shard_count(c));
    int rc = tc_get(c, key, &it, 0);

    if (rc == TC_OK) {
        printf("item\t%d\t", shard);
        put_value(kv);
        putchar('\t');
        put_value(&it.value);
        if (it.expire_time == TC_NO_EXPIRE) {
            fputs("\t-\t", stdout);
        } else {
            printf("\t%.17g\t", it.expire_time);
        }
        put_value(&it.tag);
        putchar('\n');
        tc_item_clear(&it);
        return;
    }
    if (rc == TC_NOTFOUND || rc == TC_EUNSUPPORTED) {
        printf("%s\t%d\t", rc == TC_NOTFOUND ? "missing" : "unsupported",
               shard);
        put_value(kv);
        putchar('\n');
        return;
    }
    fail("tc_get", rc);
}

static tc_cache *open_cache(const char *dir, int shards, unsigned flags)
{
    tc_cache *c = NULL;
    int rc = tc_create(&c);
    if (rc != TC_OK) {
        fail("tc_create", rc);
        return NULL;
    }
    rc = tc_set_shards(c, shards);
    if (rc != TC_OK) {
        fail("tc_set_shards", rc);
        tc_close(c);
        return NULL;
    }
    rc = tc_open(c, dir, flags);
    if (rc != TC_OK) {
        fail("tc_open", rc);
        tc_close(c);
        return NULL;
    }
    return c;
}

static int parse_shards(const char *s, int *out)
{
    char *end = NULL;
    if (strcmp(s, "plain") == 0) {
        *out = TC_SHARDS_PLAIN;
        return 0;
    }
    if (strcmp(s, "auto") == 0) {
        *out = TC_SHARDS_AUTO;
        return 0;
    }
    long n = strtol(s, &end, 10);
    if (end == s || *end != '\0' || n < 1 || n > 999) {
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* One "set" spec line: fields[1..7]. */
static void do_set(tc_cache *c, char **f, size_t lineno)
{
    struct datum key, val, tag;
    int ok = datum_parse(f[1], f[2], &key) == 0;
    ok = datum_parse(f[3], f[4], &val) == 0 && ok;
    ok = datum_parse(f[6], f[7], &tag) == 0 && ok;
    double expire = TC_NO_EXPIRE;
    char *end = NULL;

    if (strcmp(f[5], "-") != 0) {
        expire = strtod(f[5], &end);
        ok = ok && end != f[5] && *end == '\0';
    }
    if (!ok) {
        printf("error\tline %zu\tEINVAL\tmalformed set\n", lineno);
        failures++;
    } else {
        int rc = tc_set(c, &key.data, &val.data, expire,
                        tag.data.type == TC_NONE ? NULL : &tag.data, 0);
        if (rc != TC_OK) {
            fail("tc_set", rc);
        }
    }
    datum_free(&key);
    datum_free(&val);
    datum_free(&tag);
}

static void do_delete(tc_cache *c, char **f, size_t lineno)
{
    struct datum key;
    if (datum_parse(f[1], f[2], &key) != 0) {
        printf("error\tline %zu\tEINVAL\tmalformed delete\n", lineno);
        failures++;
        return;
    }
    int rc = tc_delete(c, &key.data, 0);
    if (rc != TC_OK) {
        fail("tc_delete", rc);
    }
    datum_free(&key);
}

static void do_setting(tc_cache *c, char **f, size_t lineno)
{
    struct datum val;
    if (datum_parse(f[2], f[3], &val) != 0) {
        printf("error\tline %zu\tEINVAL\tmalformed setting\n", lineno);
        failures++;
        return;
    }
    int rc = tc_set_setting(c, f[1], &val.data);
    if (rc != TC_OK) {
        fail("tc_set_setting", rc);
    }
    datum_free(&val);
}

/*
 * cmd_write - apply a spec read from stdin. The cache is opened lazily at
 * the first set/delete line so that setting lines can come first.
 */
static int cmd_write(const char *dir, const char *shards_arg)
{
    int shards;
    if (parse_shards(shards_arg, &shards) != 0) {
        fprintf(stderr, "tc_interop: bad shard count %s\n", shards_arg);
        return 2;
    }
    tc_cache *c = NULL;
    int rc = tc_create(&c);
    if (rc != TC_OK) {
        fail("tc_create", rc);
        return 1;
    }
    rc = tc_set_shards(c, shards);
    if (rc != TC_OK) {
        fail("tc_set_shards", rc);
        tc_close(c);
        return 1;
    }

    char *line = NULL;
    size_t cap = 0;
    size_t lineno = 0;
    int opened = 0;
    while (getline(&line, &cap, stdin) > 0) {
        char *f[8];
        lineno++;
        size_t n = split(line, f, 8);
        if (n == 4 && strcmp(f[0], "setting") == 0 && !opened) {
            do_setting(c, f, lineno);
            continue;
        }
        if (!opened) {
            rc = tc_open(c, dir, 0);
            if (rc != TC_OK) {
                fail("tc_open", rc);
                break;
            }
            opened = 1;
        }
        if (n == 8 && strcmp(f[0], "set") == 0) {
            do_set(c, f, lineno);
        } else if (n == 3 && strcmp(f[0], "delete") == 0) {
            do_delete(c, f, lineno);
        } else {
            printf("error\tline %zu\tEINVAL\tunknown spec line\n", lineno);
            failures++;
        }
    }
    if (!opened && failures == 0) {
        rc = tc_open(c, dir, 0);
        if (rc != TC_OK) {
            fail("tc_open", rc);
        }
    }
    free(line);
    tc_close(c);
    return failures ? 1 : 0;
}

static int cmd_dump(const char *dir)
{
    tc_cache *c = open_cache(dir, TC_SHARDS_AUTO, TC_OPEN_NOCREATE);
    if (c == NULL) {
        return 1;
    }
    printf("shards\t%d\n", tc_shard_count(c));

    tc_iter *it = NULL;
    uint64_t seen = 0;
    int rc = tc_iter_open(c, TC_ITER_INSERTION, &it);
    if (rc != TC_OK) {
        fail("tc_iter_open", rc);
    } else {
        tc_value key = TC_VALUE_INIT;
        for (;;) {
            rc = tc_iter_next(it, &key);
            if (rc == TC_NOTFOUND) {
                break;
            }
            seen++;
            if (rc == TC_EUNSUPPORTED) {
                printf("unsupported-key\n");
                continue;
            }
            if (rc != TC_OK) {
                fail("tc_iter_next", rc);
                break;
            }
            tc_data kd = value_as_data(&key);
            show_key(c, &kd, &key);
        }
        tc_value_clear(&key);
        tc_iter_close(it);
    }

    uint64_t n = 0;
    rc = tc_length(c, &n);
    if (rc == TC_OK) {
        printf("length\t%" PRIu64 "\n", n);
    } else {
        fail("tc_length", rc);
    }
    rc = tc_volume(c, &n);
    if (rc == TC_OK) {
        printf("volume\t%" PRIu64 "\n", n);
    } else {
        fail("tc_volume", rc);
    }
    printf("end\t%" PRIu64 "\n", seen);
    tc_close(c);
    return failures ? 1 : 0;
}

typedef void (*show_fn)(tc_cache *c, const tc_data *key, const tc_value *kv);

/* cmd_get - look up each key read from stdin with @show. */
static int cmd_get(const char *dir, show_fn show)
{
    tc_cache *c = open_cache(dir, TC_SHARDS_AUTO, TC_OPEN_NOCREATE);
    if (c == NULL) {
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        char *f[2];
        struct datum key;
        if (split(line, f, 2) != 2 || datum_parse(f[0], f[1], &key) != 0 ||
            key.data.type == TC_NONE) {
            printf("error\tinput\tEINVAL\tmalformed key\n");
            failures++;
            continue;
        }
        tc_value kv = TC_VALUE_INIT;
        kv.type = key.data.type;
        kv.ptr = key.buf;
        kv.len = key.data.len;
        kv.i = key.i;
        kv.d = key.d;
        show(c, &key.data, &kv);
        datum_free(&key);
    }
    free(line);
    tc_close(c);
    return failures ? 1 : 0;
}

/*
 * read_all - the contents of @fd from its current offset.
 * Returns a malloc'ed buffer (caller frees) or NULL on error.
 */
static unsigned char *read_all(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            unsigned char *p = realloc(buf, cap * 2);
            if (p == NULL) {
                break;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got == 0) {
            *len = n;
            return buf;
        }
        if (got < 0 && errno != EINTR) {
            break;
        }
        if (got > 0) {
            n += (size_t)got;
        }
    }
    free(buf);
    return NULL;
}

/* One tc_read line: "read SHARD KTYPE KEY HEX" (or missing/unsupported). */
static void show_read(tc_cache *c, const tc_data *key, const tc_value *kv)
{
    int shard = shard_of(key, tc_shard_count(c));
    int fd = -1;
    int rc = tc_read(c, key, &fd, 0);
    if (rc == TC_NOTFOUND || rc == TC_EUNSUPPORTED) {
        printf("%s\t%d\t", rc == TC_NOTFOUND ? "missing" : "unsupported",
               shard);
        put_value(kv);
        putchar('\n');
        return;
    }
    if (rc != TC_OK) {
        fail("tc_read", rc);
        return;
    }
    size_t len = 0;
    unsigned char *data = read_all(fd, &len);
    close(fd);
    if (data == NULL) {
        printf("error\tread\tEIO\t%s\n", strerror(errno));
        failures++;
        return;
    }
    printf("read\t%d\t", shard);
    put_value(kv);
    putchar('\t');
    put_hex(data, len);
    putchar('\n');
    free(data);
}

/*
 * One tc_get_buf line: "buf SHARD KTYPE KEY VTYPE VAL EXPIRE_TIME". The
 * first call passes a 1-byte buffer so a value longer than that must come
 * back as TC_ETOOSMALL with the length needed.
 */
static void show_buf(tc_cache *c, const tc_data *key, const tc_value *kv)
{
    int shard = shard_of(key, tc_shard_count(c));
    unsigned char small[1];
    size_t len = 0;
    int type = TC_NONE;
    double exp = 0;
    int rc = tc_get_buf(c, key, small, sizeof small, &len, &type, &exp, 0);
    unsigned char *buf = NULL;

    if (rc == TC_ETOOSMALL) {
        buf = malloc(len + 1);
        if (buf == NULL) {
            fail("malloc", TC_ENOMEM);
            return;
        }
        size_t need = len;
        rc = tc_get_buf(c, key, buf, need, &len, &type, &exp, 0);
        if (rc == TC_OK && len != need) {
            printf("error\ttc_get_buf\tEINTERNAL\tlength %zu then %zu\n", need,
                   len);
            failures++;
            free(buf);
            return;
        }
    } else if (rc == TC_OK) {
        buf = malloc(len + 1);
        if (buf == NULL) {
            fail("malloc", TC_ENOMEM);
            return;
        }
        memcpy(buf, small, len);
    }
    if (rc == TC_NOTFOUND || rc == TC_EUNSUPPORTED) {
        printf("%s\t%d\t", rc == TC_NOTFOUND ? "missing" : "unsupported",
               shard);
        put_value(kv);
        putchar('\n');
        free(buf);
        return;
    }
    if (rc != TC_OK) {
        fail("tc_get_buf", rc);
        free(buf);
        return;
    }
    tc_value v = TC_VALUE_INIT;
    v.type = type;
    v.ptr = buf;
    v.len = len;
    if ((type == TC_INT || type == TC_REAL) && len == 8) {
        memcpy(&v.i, buf, 8);
        memcpy(&v.d, buf, 8);
    }
    printf("buf\t%d\t", shard);
    put_value(kv);
    putchar('\t');
    put_value(&v);
    if (exp == TC_NO_EXPIRE) {
        fputs("\t-\n", stdout);
    } else {
        printf("\t%.17g\n", exp);
    }
    free(buf);
}

static void on_warning(void *arg, const char *kind, const char *msg)
{
    (void)arg;
    printf("warning\t%s\t%s\n", kind, msg);
}

static int cmd_check(const char *dir)
{
    tc_cache *c = open_cache(dir, TC_SHARDS_AUTO, TC_OPEN_NOCREATE);
    if (c == NULL) {
        return 1;
    }
    uint64_t warnings = 0;
    int rc = tc_check(c, 0, on_warning, NULL, &warnings, 0);
    if (rc != TC_OK) {
        fail("tc_check", rc);
    } else {
        printf("warnings\t%" PRIu64 "\n", warnings);
    }
    tc_close(c);
    return failures ? 1 : 0;
}

static int cmd_hash(void)
{
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        char *f[2];
        struct datum key;
        if (split(line, f, 2) != 2 || datum_parse(f[0], f[1], &key) != 0) {
            printf("error\tinput\tEINVAL\tmalformed key\n");
            failures++;
            continue;
        }
        uint64_t h = 0;
        int rc = tc_fanout_hash(&key.data, &h);
        if (rc == TC_OK) {
            printf("%" PRIu64 "\n", h);
        } else {
            fail("tc_fanout_hash", rc);
        }
        datum_free(&key);
    }
    free(line);
    return failures ? 1 : 0;
}

static int usage(void)
{
    fputs("usage: tc_interop write DIR plain|auto|SHARDS < spec\n"
          "       tc_interop dump DIR\n"
          "       tc_interop get|read|getbuf DIR < keys\n"
          "       tc_interop check DIR\n"
          "       tc_interop hash < keys\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int rc;
    if (argc == 4 && strcmp(argv[1], "write") == 0) {
        rc = cmd_write(argv[2], argv[3]);
    } else if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        rc = cmd_dump(argv[2]);
    } else if (argc == 3 && strcmp(argv[1], "get") == 0) {
        rc = cmd_get(argv[2], show_key);
    } else if (argc == 3 && strcmp(argv[1], "read") == 0) {
        rc = cmd_get(argv[2], show_read);
    } else if (argc == 3 && strcmp(argv[1], "getbuf") == 0) {
        rc = cmd_get(argv[2], show_buf);
    } else if (argc == 3 && strcmp(argv[1], "check") == 0) {
        rc = cmd_check(argv[2]);
    } else if (argc == 2 && strcmp(argv[1], "hash") == 0) {
        rc = cmd_hash();
    } else {
        return usage();
    }
    if (fflush(stdout) != 0) {
        return 1;
    }
    return rc;
}
