/*
 * cli_util.c - helpers of the tiercache tool: error reporting and exit
 * statuses, output formatting (JSON strings with UTF-8 checking, floats
 * that read back exactly, hex), the progress line, strict parsing of
 * numbers and hex, and typed data built from arguments.
 *
 * Output goes to stdout through stdio; every error line goes to stderr
 * through fail_msg() so it reads `tiercache: <command>: <what>: <why>`.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* The command being run, for error messages ("tiercache: <cmd>: ..."). */
const char *g_cmd = NULL;

/* ===================================================================== */
/* Error reporting                                                       */

/* fail_msg - print `tiercache: <cmd>: <what>: <formatted message>`. */
void fail_msg(const char *what, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("tiercache: ", stderr);
    if (g_cmd)
        fprintf(stderr, "%s: ", g_cmd);
    if (what)
        fprintf(stderr, "%s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* exit_code - the exit status for a tiercache return code. */
int exit_code(int rc)
{
    switch (rc) {
    case TC_OK:
        return XS_OK;
    case TC_NOTFOUND:
    case TC_ENOCACHE:
        return XS_NOTFOUND;
    case TC_EXISTS:
    case TC_EINVAL:
    case TC_ETYPE:
    case TC_ETOOBIG:
    case TC_EUNSUPPORTED:
    case TC_ERANGE:
        return XS_USAGE;
    case TC_EBUSY:
        return XS_BUSY;
    default:
        return XS_IO;
    }
}

/*
 * fail_rc - report a failed tiercache call and return its exit status.
 * Must run right after the failing call: tc_errmsg() is only valid until
 * the next tiercache call in this thread. Normal outcomes (NOTFOUND) carry
 * no detail, so they always print tc_strerror().
 */
int fail_rc(const char *what, int rc)
{
    const char *msg = NULL;

    if (rc < 0)
        msg = tc_errmsg();
    if (!msg || !*msg)
        msg = tc_strerror(rc);
    fail_msg(what, "%s", msg);
    return exit_code(rc);
}

/* usage_error - report bad arguments; returns XS_USAGE. */
int usage_error(const char *what, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fail_msg(what, "%s", buf);
    if (g_cmd)
        fprintf(stderr, "try 'tiercache %s --help'\n", g_cmd);
    else
        fputs("try 'tiercache --help'\n", stderr);
    return XS_USAGE;
}

/* finish_output - flush stdout; a write error (full disk, closed pipe)
 * turns a successful run into XS_IO. */
int finish_output(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int err = errno;
        fail_msg("stdout", "%s", strerror(err ? err : EIO));
        return status ? status : XS_IO;
    }
    return status;
}

/* ===================================================================== */
/* Output helpers: numbers, hex, JSON                                    */

/*
 * fmt_real - format @d as the shortest decimal that reads back exactly,
 * the way python's repr(float) does: "1.5", "3.0", "1e+20", "inf", "nan".
 * @buf: at least 40 bytes.
 */
void fmt_real(double d, char *buf, size_t cap)
{
    if (isnan(d)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, cap, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".e"))
        strncat(buf, ".0", cap - strlen(buf) - 1);
}

void print_hex(const void *ptr, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = ptr;

    for (size_t i = 0; i < len; i++) {
        putchar(digits[p[i] >> 4]);
        putchar(digits[p[i] & 15]);
    }
}

/* utf8_seq - length of the valid UTF-8 sequence at @p (0 if invalid:
 * overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    uint32_t cp, min;
    size_t len;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2, cp = p[0] & 0x1f, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3, cp = p[0] & 0x0f, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4, cp = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* json_str - print @n bytes as a JSON string. Control characters are
 * escaped; each byte of an invalid UTF-8 sequence becomes U+FFFD. */
void json_str(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;

    putchar('"');
    while (p < end) {
        unsigned c = *p;
        size_t len;

        if (c >= 0x80) {
            len = utf8_seq(p, (size_t)(end - p));
            if (len == 0) {
                fputs("\\ufffd", stdout);
                p++;
            } else {
                fwrite(p, 1, len, stdout);
                p += len;
            }
            continue;
        }
        switch (c) {
        case '"':
            fputs("\\\"", stdout);
            break;
        case '\\':
            fputs("\\\\", stdout);
            break;
        case '\b':
            fputs("\\b", stdout);
            break;
        case '\f':
            fputs("\\f", stdout);
            break;
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        case '\t':
            fputs("\\t", stdout);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                printf("\\u%04x", c);
            else
                putchar((int)c);
        }
        p++;
    }
    putchar('"');
}

void json_cstr(const char *s)
{
    json_str(s, strlen(s));
}

void json_hex(const void *ptr, size_t len)
{
    putchar('"');
    print_hex(ptr, len);
    putchar('"');
}

void json_u64(uint64_t v)
{
    printf("%" PRIu64, v);
}

/* json_real - a finite double as a JSON number that reads back exactly
 * (always with a '.' or an exponent, so it stays a float); non-finite
 * values are not JSON numbers and are written as the strings "inf",
 * "-inf" and "nan". */
void json_real(double d)
{
    char buf[48];

    fmt_real(d, buf, sizeof(buf));
    if (isfinite(d))
        fputs(buf, stdout);
    else
        json_cstr(buf);
}

const char *type_name(int type)
{
    switch (type) {
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
    case TC_NONE:
        return "none";
    default:
        return "unknown";
    }
}

/*
 * json_typed - a value whose type is given next to it (a "type" field):
 * text as a string, int and real as numbers, bytes and msgpack as hex
 * strings, TC_NONE as null.
 */
void json_typed(const tc_value *v)
{
    switch (v->type) {
    case TC_TEXT:
        json_str(v->ptr, v->len);
        break;
    case TC_INT:
        printf("%" PRId64, v->i);
        break;
    case TC_REAL:
        json_real(v->d);
        break;
    case TC_BYTES:
    case TC_MSGPACK:
        json_hex(v->ptr, v->len);
        break;
    default:
        fputs("null", stdout);
    }
}

/*
 * json_self - a value that must identify its own type (an element of the
 * `keys --json` array): text as a string, int and finite real as numbers
 * (a real always has a '.' or an exponent), and the rest as one-member
 * objects: {"bytes": "<hex>"}, {"msgpack": "<hex>"}, {"real": "inf"}.
 */
void json_self(const tc_value *v)
{
    switch (v->type) {
    case TC_REAL:
        if (isfinite(v->d)) {
            json_real(v->d);
        } else {
            fputs("{\"real\": ", stdout);
            json_real(v->d);
            putchar('}');
        }
        break;
    case TC_BYTES:
    case TC_MSGPACK:
        printf("{\"%s\": ", type_name(v->type));
        json_hex(v->ptr, v->len);
        putchar('}');
        break;
    default:
        json_typed(v);
    }
}

/*
 * print_plain - a value for humans, one line: text as is, numbers as
 * numbers (floats as python's repr), bytes as "b:<hex>", msgpack as
 * "msgpack:<hex>". No newline.
 */
void print_plain(const tc_value *v)
{
    char buf[48];

    switch (v->type) {
    case TC_TEXT:
        fwrite(v->ptr, 1, v->len, stdout);
        break;
    case TC_INT:
        printf("%" PRId64, v->i);
        break;
    case TC_REAL:
        fmt_real(v->d, buf, sizeof(buf));
        fputs(buf, stdout);
        break;
    case TC_BYTES:
        fputs("b:", stdout);
        print_hex(v->ptr, v->len);
        break;
    case TC_MSGPACK:
        fputs("msgpack:", stdout);
        print_hex(v->ptr, v->len);
        break;
    default:
        fputs("-", stdout);
    }
}

/* ===================================================================== */
/* Progress on stderr (only when stderr is a terminal)                   */


static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* progress_cb - tc_progress_fn: redraw "\r<label>: done/total", at most
 * ten times a second (and always for the last unit). */
static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
    struct progress *p = arg;
    double now = mono_now();
    int n;

    if (done < total && p->width > 0 && now - p->last_s < 0.1)
        return;
    p->last_s = now;
    n = fprintf(stderr, "\r%s: %" PRIu64 "/%" PRIu64, p->label, done, total);
    if (n > 0) {
        if (n - 1 < p->width)
            fprintf(stderr, "%*s", p->width - (n - 1), "");
        if (n - 1 > p->width)
            p->width = n - 1;
    }
    fflush(stderr);
}

/* progress_start - install the progress callback if stderr is a tty. */
void progress_start(tc_cache *c, struct progress *p, const char *label)
{
    p->label = label;
    p->width = 0;
    p->last_s = 0;
    if (isatty(STDERR_FILENO))
        (void)tc_set_progress(c, progress_cb, p);
}

/* progress_end - erase the progress line, if one was drawn. */
void progress_end(tc_cache *c, struct progress *p)
{
    (void)tc_set_progress(c, NULL, NULL);
    if (p->width > 0) {
        fprintf(stderr, "\r%*s\r", p->width, "");
        fflush(stderr);
        p->width = 0;
    }
}

/* ===================================================================== */
/* Strict number parsing                                                 */

/* parse_i64 - a whole-string base-10 integer: 0, -1 (not an integer) or
 * -2 (outside the 64-bit range). */
int parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

/* parse_f64 - a whole-string decimal float: 0, -1 (not a number; NaN and
 * hexadecimal floats are refused) or -2 (infinite: overflow, or "inf"
 * when @allow_inf is 0). */
int parse_f64(const char *s, int allow_inf, double *out)
{
    char *end;
    double v;

    if (!*s || isspace((unsigned char)*s) || strpbrk(s, "xX"))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || isnan(v))
        return -1;
    if (isinf(v) && (!allow_inf || errno == ERANGE))
        return -2;
    *out = v;
    return 0;
}

/* hex_decode - whole-string hex (either case, even length) into a new
 * buffer; returns 0 or -1. */
int hex_decode(const char *s, unsigned char **out, size_t *len)
{
    size_t n = strlen(s);
    unsigned char *buf;

    if (n % 2)
        return -1;
    buf = malloc(n / 2 + 1);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = isxdigit((unsigned char)s[i]);
        int lo = isxdigit((unsigned char)s[i + 1]);
        char pair[3] = {s[i], s[i + 1], 0};

        if (!hi || !lo) {
            free(buf);
            return -1;
        }
        buf[i / 2] = (unsigned char)strtoul(pair, NULL, 16);
    }
    *out = buf;
    *len = n / 2;
    return 0;
}

/* ===================================================================== */
/* Typed data from command-line arguments                                */


void datum_free(struct datum *dt)
{
    free(dt->buf);
    dt->buf = NULL;
}

/*
 * make_datum - fill @dt from @arg as @type: TC_TEXT (as is), TC_INT,
 * TC_REAL (finite or +-inf, never NaN) or TC_BYTES (@arg is hex).
 * @what: names the argument in messages. Returns 0 or XS_USAGE.
 */
int make_datum(struct datum *dt, const char *arg, int type, const char *what)
{
    int rc;

    memset(dt, 0, sizeof(*dt));
    switch (type) {
    case TC_INT:
        rc = parse_i64(arg, &dt->i);
        if (rc == -2)
            return usage_error(what, "'%s': %s", arg, tc_strerror(TC_ERANGE));
        if (rc)
            return usage_error(what, "'%s' is not an integer", arg);
        dt->d = tc_int(&dt->i);
        return 0;
    case TC_REAL:
        if (parse_f64(arg, 1, &dt->r))
            return usage_error(what, "'%s' is not a number", arg);
        dt->d = tc_real(&dt->r);
        return 0;
    case TC_BYTES:
        if (hex_decode(arg, &dt->buf, &dt->d.len))
            return usage_error(what, "'%s' is not an even-length hex string",
                               arg);
        dt->d.ptr = dt->buf;
        dt->d.type = TC_BYTES;
        return 0;
    default:
        dt->d = tc_text(arg);
        return 0;
    }
}

/*
 * make_number - fill @dt with a number: TC_INT or TC_REAL when @type
 * forces one, else an integer if @arg is one and a float otherwise.
 */
int make_number(struct datum *dt, const char *arg, int type, const char *what)
{
    int64_t i;

    if (type == TC_INT || type == TC_REAL)
        return make_datum(dt, arg, type, what);
    switch (parse_i64(arg, &i)) {
    case 0:
        return make_datum(dt, arg, TC_INT, what);
    case -2:
        return usage_error(what, "'%s': %s", arg, tc_strerror(TC_ERANGE));
    default:
        return make_datum(dt, arg, TC_REAL, what);
    }
}

/* read_all - the whole contents of @path ("-" = stdin) into a new buffer.
 * Returns 0, or XS_IO after printing why. */
int read_all(const char *path, unsigned char **out, size_t *len)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY);
    size_t cap = 65536, n = 0;
    unsigned char *buf = NULL;
    struct stat st;

    if (fd < 0) {
        fail_msg(path, "%s", strerror(errno));
        return XS_IO;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    for (;;) {
        ssize_t got;

        if (!buf)
            goto out_nomem;
        if (n == cap) {
            unsigned char *nb =
                cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);

            if (!nb)
                goto out_nomem;
            buf = nb;
            cap *= 2;
        }
        got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fail_msg(path, "%s", strerror(errno));
            goto out_fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    *out = buf;
    *len = n;
    return 0;

out_nomem:
    fail_msg(path, "%s", tc_strerror(TC_ENOMEM));
out_fail:
    free(buf);
    if (fd != STDIN_FILENO)
        close(fd);
    return XS_IO;
}
