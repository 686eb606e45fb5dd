/*
 * cli.h - what the files of the tiercache tool share (tiercache.c,
 * cli_maint.c, cli_util.c). Not installed; the tool itself uses only the
 * public tiercache.h.
 */
#ifndef TC_CLI_H
#define TC_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tiercache.h"

/* Exit statuses (documented in the top-level help). */
enum {
    XS_OK = 0,       /* success */
    XS_NOTFOUND = 1, /* missing key, or no cache in DIR */
    XS_USAGE = 2,    /* bad arguments or data (EINVAL, ETYPE, ...) */
    XS_BUSY = 3,     /* TC_EBUSY */
    XS_IO = 4,       /* I/O, corruption, permission; check found problems */
};

/* The command being run, for error messages; NULL before it is known. */
extern const char *g_cmd;

/* ---- Error reporting (cli_util.c) ---------------------------------- */

/* fail_msg - print `tiercache: <cmd>: <what>: <formatted message>`. */
void fail_msg(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* exit_code - the exit status for a tiercache return code. */
int exit_code(int rc);
/* fail_rc - report a failed tiercache call (tc_errmsg() or tc_strerror());
 * call it right after the failure. Returns the exit status. */
int fail_rc(const char *what, int rc);
/* usage_error - report bad arguments plus a --help hint; XS_USAGE. */
int usage_error(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* finish_output - flush stdout: a write error turns @status 0 into XS_IO. */
int finish_output(int status);

/* ---- Output (cli_util.c); all of it goes to stdout ------------------ */

/* fmt_real - shortest exact decimal, python-repr style ("3.0", "inf"). */
void fmt_real(double d, char *buf, size_t cap);
void print_hex(const void *ptr, size_t len);
/* json_str - a JSON string; invalid UTF-8 bytes become U+FFFD. */
void json_str(const char *s, size_t n);
void json_cstr(const char *s);
void json_hex(const void *ptr, size_t len);
void json_u64(uint64_t v);
/* json_real - a JSON number, or "inf"/"-inf"/"nan" as strings. */
void json_real(double d);
/* type_name - "text", "bytes", "int", "real", "msgpack", "none". */
const char *type_name(int type);
/* json_typed - a value next to a "type" field (bytes/msgpack as hex). */
void json_typed(const tc_value *v);
/* json_self - a value that names its own type: {"bytes": "<hex>"}... */
void json_self(const tc_value *v);
/* print_plain - one value for humans, no newline (bytes as b:<hex>). */
void print_plain(const tc_value *v);

/* ---- Progress line on stderr, only when stderr is a terminal -------- */

struct progress {
    const char *label; /* command name shown before the counts */
    int width;         /* characters on the progress line now */
    double last_s;     /* monotonic time of the last update, seconds */
};

void progress_start(tc_cache *c, struct progress *p, const char *label);
void progress_end(tc_cache *c, struct progress *p);

/* ---- Strict parsing (cli_util.c) ------------------------------------ */

/* parse_i64 - 0, -1 (not an integer) or -2 (out of the 64-bit range). */
int parse_i64(const char *s, int64_t *out);
/* parse_f64 - 0, -1 (not a number, NaN, hex) or -2 (infinite when not
 * allowed, or overflow). */
int parse_f64(const char *s, int allow_inf, double *out);
/* hex_decode - even-length hex into a malloc'd buffer; 0 or -1. */
int hex_decode(const char *s, unsigned char **out, size_t *len);

/* A tc_data built from an argument; d.ptr may point into this struct, so
 * a datum must not be copied once filled. */
struct datum {
    tc_data d;
    int64_t i;
    double r;
    unsigned char *buf; /* owned buffer (hex or file contents), or NULL */
};

void datum_free(struct datum *dt);
/* make_datum - @arg as TC_TEXT, TC_INT, TC_REAL or TC_BYTES (hex); 0 or
 * XS_USAGE after printing why (@what names the argument). */
int make_datum(struct datum *dt, const char *arg, int type, const char *what);
/* make_number - TC_INT/TC_REAL as @type forces, else whichever @arg is. */
int make_number(struct datum *dt, const char *arg, int type, const char *what);
/* read_all - the contents of @path ("-" = stdin); 0 or XS_IO. */
int read_all(const char *path, unsigned char **out, size_t *len);

/* ---- Parsed command line (tiercache.c) ------------------------------ */

/* Option bits: which options a command accepts and which were given. */
enum {
    O_HELP = 1u << 0,
    O_SHARDS = 1u << 1,
    O_TIMEOUT = 1u << 2,
    O_RETRY = 1u << 3,
    O_JSON = 1u << 4,
    O_EXPIRE = 1u << 5,
    O_TAG = 1u << 6,
    O_TAG_INT = 1u << 7,
    O_INT = 1u << 8,
    O_FLOAT = 1u << 9,
    O_HEX = 1u << 10,
    O_BYTES_FILE = 1u << 11,
    O_KEY_INT = 1u << 12,
    O_KEY_FLOAT = 1u << 13,
    O_KEY_HEX = 1u << 14,
    O_SORTED = 1u << 15,
    O_REVERSE = 1u << 16,
    O_FIX = 1u << 17,
    O_DEFAULT = 1u << 18,
    O_NO_DEFAULT = 1u << 19,
    /* not an option: the command opens no cache, so --shards, --timeout
     * and --retry do not apply to it */
    O_NOCACHE = 1u << 20,
};

#define O_GLOBAL  (O_HELP | O_SHARDS | O_TIMEOUT | O_RETRY)
#define O_KEYTYPE (O_KEY_INT | O_KEY_FLOAT | O_KEY_HEX)
#define O_VALTYPE (O_INT | O_FLOAT | O_HEX | O_BYTES_FILE)

struct command;

/* Everything parsed from the command line. */
struct cli {
    const struct command *cmd;
    const char *pos[4]; /* positional arguments; pos[0] is DIR */
    int npos;
    unsigned seen;          /* O_* bits given */
    int shards;             /* --shards */
    double timeout;         /* --timeout, seconds */
    unsigned flags;         /* TC_RETRY with --retry */
    int key_type;           /* TC_TEXT, TC_INT, TC_REAL, TC_BYTES (hex) */
    int val_type;           /* TC_TEXT, TC_INT, TC_REAL, TC_BYTES; 0 = auto */
    const char *bytes_file; /* --bytes-file */
    const char *expire;     /* --expire */
    const char *tag;        /* --tag */
    const char *deflt;      /* --default */
};

/* open_cache - create, apply --shards/--timeout, open pos[0] with
 * @oflags; 0 with *out set, or an exit status after printing why. */
int open_cache(const struct cli *cli, unsigned oflags, tc_cache **out);
/* close_cache - close the handle, flush stdout; returns the status. */
int close_cache(tc_cache *c, int status);

/* ---- Whole-cache commands (cli_maint.c) ----------------------------- */

int cmd_stats(struct cli *cli);
int cmd_keys(struct cli *cli);
int cmd_check(struct cli *cli);
int cmd_expire(struct cli *cli);
int cmd_cull(struct cli *cli);
int cmd_clear(struct cli *cli);
int cmd_evict(struct cli *cli);

/* ---- Hot tier and whole-directory commands (cli_maint.c) ------------ */

int cmd_hot_check(struct cli *cli);
int cmd_shm_gc(struct cli *cli);
int cmd_drop(struct cli *cli);

#endif /* TC_CLI_H */
