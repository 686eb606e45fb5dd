/*
 * tiercache.c - the `tiercache` command-line tool.
 *
 * A thin client of the public API (tiercache.h only, like LMDB's mdb_stat):
 * it reads and writes single items, lists keys, prints statistics and runs
 * the bulk maintenance calls (check, expire, cull, clear, evict) on a cache
 * directory, and execs the benchmark program for `tiercache bench`.
 *
 * Files: this one holds the options, opening a cache, the single-item
 * commands (set, get, delete, incr, decr), bench, the command table with
 * its help texts, argument parsing and main(); cli_maint.c the whole-cache
 * commands (stats, keys, check, expire, cull, clear, evict) and the
 * hot-tier ones (hot-check, shm-gc, drop); cli_util.c
 * the output, parsing and error helpers; cli.h what they share.
 *
 * Conventions owned here:
 *  - Exit status (see exit_code()): 0 success, 1 not found (missing key,
 *    or no cache in DIR), 2 usage or data error, 3 busy, 4 I/O error,
 *    corruption, or problems reported by `check`.
 *  - Every failure prints one line `tiercache: <command>: <what>: <why>` on
 *    stderr; structured output goes to stdout only.
 *  - Commands that only read or remove (everything but set/incr/decr) open
 *    with TC_OPEN_NOCREATE, so they never create a cache in DIR.
 *  - No command creates a hot-tier (shared-memory) segment: open_cache()
 *    sets hot size 0, so the tool attaches only to a segment that another
 *    process made.
 *  - Numbers on the command line are validated strictly: the whole string
 *    must parse, NaN is never accepted, and infinities only where they make
 *    a meaningful key or value.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ===================================================================== */
/* Options and commands                                                  */

struct optspec {
    const char *name; /* "--json" */
    unsigned bit;     /* O_* */
    const char *arg;  /* name of the value, or NULL for a flag */
    const char *help; /* one line per '\n'; NULL: not listed */
};

static const struct optspec optspecs[] = {
    {"--json", O_JSON, NULL, "print JSON on stdout"},
    {"--key-int", O_KEY_INT, NULL, "KEY is a 64-bit integer"},
    {"--key-float", O_KEY_FLOAT, NULL, "KEY is a float"},
    {"--key-hex", O_KEY_HEX, NULL, "KEY is bytes written in hex"},
    {"--int", O_INT, NULL, "VALUE is a 64-bit integer"},
    {"--float", O_FLOAT, NULL, "VALUE is a float"},
    {"--hex", O_HEX, NULL, "VALUE is bytes written in hex"},
    {"--bytes-file", O_BYTES_FILE, "F",
     "the value is the bytes of file F (- = stdin)\ninstead of VALUE"},
    {"--expire", O_EXPIRE, "S",
     "expire after S seconds (finite; <= 0 stores an\nexpired item)"},
    {"--tag", O_TAG, "T", "tag the item with T"},
    {"--tag-int", O_TAG_INT, NULL,
     "the tag (--tag T, or evict's TAG) is an integer"},
    {"--default", O_DEFAULT, "N",
     "value assumed for a missing key (default 0)"},
    {"--no-default", O_NO_DEFAULT, NULL, "a missing key is an error (exit 1)"},
    {"--sorted", O_SORTED, NULL,
     "SQLite key order (numbers < text < bytes)\ninstead of insertion order"},
    {"--reverse", O_REVERSE, NULL, "reverse the order"},
    {"--fix", O_FIX, NULL, "repair the problems found"},
    {"--shards", O_SHARDS, "N",
     "a new DIR gets N shards (FanoutCache, 1..999)\nor 0 (plain Cache); "
     "default 8; an existing\nDIR must match"},
    {"--timeout", O_TIMEOUT, "S", "SQLite busy timeout in seconds (>= 0)"},
    {"--retry", O_RETRY, NULL, "retry when busy instead of failing (exit 3)"},
    {"--help", O_HELP, NULL, "show this help (also -h)"},
    {"-h", O_HELP, NULL, NULL},
};

/* Help texts that differ by command (the optspecs text is for set). */
static const struct {
    const char *cmd, *opt, *help;
} opt_help_overrides[] = {
    {"get", "--hex", "print a bytes value as hex plus a newline"},
    {"incr", "--int", "DELTA and --default are 64-bit integers"},
    {"incr", "--float", "DELTA and --default are floats"},
    {"decr", "--int", "DELTA and --default are 64-bit integers"},
    {"decr", "--float", "DELTA and --default are floats"},
};

struct cli;
typedef int (*cmd_fn)(struct cli *cli);

struct command {
    const char *name;
    cmd_fn run;
    unsigned opts; /* O_* bits accepted besides O_GLOBAL */
    int min_pos;   /* positional arguments, DIR included */
    int max_pos;
    const char *synopsis; /* "DIR KEY VALUE" */
    const char *summary;  /* one line for the command list */
    const char *help;     /* description for `tiercache CMD --help` */
};

static const struct optspec *find_opt(const char *arg)
{
    size_t n = strcspn(arg, "=");

    for (size_t i = 0; i < sizeof(optspecs) / sizeof(optspecs[0]); i++) {
        if (strlen(optspecs[i].name) == n &&
            strncmp(optspecs[i].name, arg, n) == 0)
            return &optspecs[i];
    }
    return NULL;
}

/* is_option - @arg is an option word: it starts with '-', is not "-"
 * alone, and is not a negative number ("-5", "-.5"). */
static int is_option(const char *arg)
{
    if (arg[0] != '-' || arg[1] == 0)
        return 0;
    if (isdigit((unsigned char)arg[1]) || arg[1] == '.')
        return 0;
    return 1;
}

/* ===================================================================== */
/* Opening a cache                                                       */

/*
 * open_cache - create a handle, apply --shards/--timeout, open DIR.
 * @oflags: TC_OPEN_* flags. Returns 0 with *out set, or an exit status
 * after printing the error (a missing cache is "no cache in DIR", 1).
 */
int open_cache(const struct cli *cli, unsigned oflags, tc_cache **out)
{
    const char *dir = cli->pos[0];
    tc_cache *c = NULL;
    char what[PATH_MAX + 16];
    int rc, status;

    rc = tc_create(&c);
    if (rc != TC_OK)
        return fail_rc("create", rc);
    /* A short-lived tool gains nothing from reading through the hot tier
     * and must not leave a 64 MiB segment behind: with hot size 0 it
     * creates none, but attaches to an existing one so its writes
     * invalidate it and stats can show it. */
    rc = tc_set_hot_size(c, 0);
    if (rc != TC_OK) {
        status = fail_rc("hot size", rc);
        goto out_close;
    }
    if (cli->seen & O_SHARDS) {
        rc = tc_set_shards(c, cli->shards);
        if (rc != TC_OK) {
            status = fail_rc("--shards", rc);
            goto out_close;
        }
    }
    if (cli->seen & O_TIMEOUT) {
        rc = tc_set_timeout(c, cli->timeout);
        if (rc != TC_OK) {
            status = fail_rc("--timeout", rc);
            goto out_close;
        }
    }
    rc = tc_open(c, dir, oflags);
    if (rc == TC_ENOCACHE) {
        fail_msg("open", "no cache in %s", dir);
        status = XS_NOTFOUND;
        goto out_close;
    }
    if (rc != TC_OK) {
        snprintf(what, sizeof(what), "open %s", dir);
        status = fail_rc(what, rc);
        goto out_close;
    }
    *out = c;
    return 0;

out_close:
    tc_close(c);
    return status;
}

/* close_cache - close the handle and flush stdout. */
int close_cache(tc_cache *c, int status)
{
    tc_close(c);
    return finish_output(status);
}

/* make_key - the KEY argument (pos[1]) as --key-int/--key-float/--key-hex
 * say. */
static int make_key(const struct cli *cli, struct datum *key)
{
    return make_datum(key, cli->pos[1], cli->key_type, "KEY");
}

/* key_value - a tc_value view of a parsed key, for printing. */
static tc_value key_value(const struct datum *key)
{
    tc_value v = TC_VALUE_INIT;

    v.type = key->d.type;
    v.ptr = (void *)key->d.ptr;
    v.len = key->d.len;
    v.i = key->i;
    v.d = key->r;
    return v;
}

/* ===================================================================== */
/* set, get, delete                                                      */

/* set_value - the value of `set`: --bytes-file F, or VALUE typed by
 * --int/--float/--hex (text otherwise). */
static int set_value(const struct cli *cli, struct datum *val)
{
    int status;

    memset(val, 0, sizeof(*val));
    if (cli->bytes_file) {
        if (cli->npos > 2)
            return usage_error("VALUE", "not allowed with --bytes-file");
        status = read_all(cli->bytes_file, &val->buf, &val->d.len);
        if (status)
            return status;
        val->d.ptr = val->buf;
        val->d.type = TC_BYTES;
        return 0;
    }
    if (cli->npos < 3)
        return usage_error("arguments", "expected DIR KEY VALUE");
    return make_datum(val, cli->pos[2], cli->val_type ? cli->val_type : TC_TEXT,
                      "VALUE");
}

static int cmd_set(struct cli *cli)
{
    struct datum key, val, tag;
    double expire = TC_NO_EXPIRE;
    const tc_data *tagp = NULL;
    tc_cache *c = NULL;
    int status, rc;

    memset(&tag, 0, sizeof(tag));
    memset(&val, 0, sizeof(val));
    status = make_key(cli, &key);
    if (!status)
        status = set_value(cli, &val);
    if (!status && cli->expire && parse_f64(cli->expire, 0, &expire))
        status =
            usage_error("--expire", "'%s' is not a finite number", cli->expire);
    if (!status && cli->tag) {
        status =
            make_datum(&tag, cli->tag,
                       (cli->seen & O_TAG_INT) ? TC_INT : TC_TEXT, "--tag");
        tagp = &tag.d;
    }
    if (!status && (cli->seen & O_TAG_INT) && !cli->tag)
        status = usage_error("--tag-int", "needs --tag T");
    if (!status)
        status = open_cache(cli, 0, &c);
    if (!status) {
        rc = tc_set(c, &key.d, &val.d, expire, tagp, cli->flags);
        if (rc != TC_OK)
            status = fail_rc(cli->pos[1], rc);
        status = close_cache(c, status);
    }
    datum_free(&key);
    datum_free(&val);
    datum_free(&tag);
    return status;
}

/* print_get_json - the --json object of `get`. */
static void print_get_json(const struct datum *key, const tc_item *it)
{
    tc_value kv = key_value(key);

    fputs("{\"key\": ", stdout);
    json_typed(&kv);
    printf(", \"key_type\": \"%s\"", type_name(kv.type));
    printf(", \"type\": \"%s\", \"value\": ", type_name(it->value.type));
    json_typed(&it->value);
    fputs(", \"expire_time\": ", stdout);
    if (isfinite(it->expire_time))
        json_real(it->expire_time);
    else
        fputs("null", stdout);
    fputs(", \"tag\": ", stdout);
    json_typed(&it->tag);
    fputs(", \"tag_type\": ", stdout);
    if (it->tag.type == TC_NONE)
        fputs("null", stdout);
    else
        printf("\"%s\"", type_name(it->tag.type));
    fputs("}\n", stdout);
}

/* print_get_plain - the value alone: text + newline, bytes raw (hex +
 * newline with --hex), numbers, msgpack as hex + newline. */
static void print_get_plain(const struct cli *cli, const tc_value *v)
{
    if (v->type == TC_BYTES && !(cli->seen & O_HEX)) {
        fwrite(v->ptr, 1, v->len, stdout);
        return;
    }
    if (v->type == TC_BYTES || v->type == TC_MSGPACK)
        print_hex(v->ptr, v->len);
    else
        print_plain(v);
    putchar('\n');
}

static int cmd_get(struct cli *cli)
{
    tc_item it = TC_ITEM_INIT;
    struct datum key;
    tc_cache *c = NULL;
    int status, rc;

    status = make_key(cli, &key);
    if (!status)
        status = open_cache(cli, TC_OPEN_NOCREATE, &c);
    if (!status) {
        rc = tc_get(c, &key.d, &it, cli->flags);
        if (rc != TC_OK) {
            status = fail_rc(cli->pos[1], rc);
        } else {
            if (cli->seen & O_JSON)
                print_get_json(&key, &it);
            else
                print_get_plain(cli, &it.value);
            tc_item_clear(&it);
        }
        status = close_cache(c, status);
    }
    datum_free(&key);
    return status;
}

static int cmd_delete(struct cli *cli)
{
    struct datum key;
    tc_cache *c = NULL;
    int status, rc;

    status = make_key(cli, &key);
    if (!status)
        status = open_cache(cli, TC_OPEN_NOCREATE, &c);
    if (!status) {
        rc = tc_delete(c, &key.d, cli->flags);
        if (rc != TC_OK)
            status = fail_rc(cli->pos[1], rc);
        status = close_cache(c, status);
    }
    datum_free(&key);
    return status;
}

/* ===================================================================== */
/* incr, decr                                                            */

/* negate - decr's delta: -DELTA, refusing -INT64_MIN. */
static int negate(struct datum *delta, const char *arg)
{
    if (delta->d.type == TC_INT) {
        if (delta->i == INT64_MIN)
            return usage_error("DELTA", "'%s': %s", arg,
                               tc_strerror(TC_ERANGE));
        delta->i = -delta->i;
    } else {
        delta->r = -delta->r;
    }
    return 0;
}

static int run_incr(struct cli *cli, int sign)
{
    const char *darg = cli->npos > 2 ? cli->pos[2] : "1";
    struct datum key, delta, deflt;
    tc_value out = TC_VALUE_INIT;
    const tc_data *deflt_p = NULL;
    tc_cache *c = NULL;
    int status, rc;

    memset(&delta, 0, sizeof(delta));
    memset(&deflt, 0, sizeof(deflt));
    status = make_key(cli, &key);
    if (!status)
        status = make_number(&delta, darg, cli->val_type, "DELTA");
    if (!status && sign < 0)
        status = negate(&delta, darg);
    if (!status && cli->deflt && (cli->seen & O_NO_DEFAULT))
        status = usage_error("--default", "conflicts with --no-default");
    if (!status && !(cli->seen & O_NO_DEFAULT)) {
        status = make_number(&deflt, cli->deflt ? cli->deflt : "0",
                             cli->val_type, "--default");
        deflt_p = &deflt.d;
    }
    if (!status)
        status = open_cache(cli, 0, &c);
    if (!status) {
        rc = tc_incr(c, &key.d, &delta.d, deflt_p, &out, cli->flags);
        if (rc != TC_OK) {
            status = fail_rc(cli->pos[1], rc);
        } else if (cli->seen & O_JSON) {
            tc_value kv = key_value(&key);

            fputs("{\"key\": ", stdout);
            json_typed(&kv);
            printf(", \"key_type\": \"%s\", \"type\": \"%s\", \"value\": ",
                   type_name(kv.type), type_name(out.type));
            json_typed(&out);
            fputs("}\n", stdout);
        } else {
            print_plain(&out);
            putchar('\n');
        }
        tc_value_clear(&out);
        status = close_cache(c, status);
    }
    datum_free(&key);
    return status;
}

static int cmd_incr(struct cli *cli)
{
    return run_incr(cli, 1);
}

static int cmd_decr(struct cli *cli)
{
    return run_incr(cli, -1);
}

/* ===================================================================== */
/* bench: exec tiercache-bench                                           */

#define BENCH_NAME "tiercache-bench"

static const struct command *find_command(const char *name);
static void print_command_help(FILE *f, const struct command *cmd);

/* bench_candidate - @path names an executable regular file. */
static int bench_candidate(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

#define BENCH_PATH_MAX (PATH_MAX + 32)

/*
 * find_bench - $TIERCACHE_BENCH (the program, or a directory holding it),
 * then the directory of this executable, then <that dir>/../bench/.
 * @cand: receives the places to look at; *ncand how many.
 * Returns the index in @cand of the program found, or -1.
 */
static int find_bench(char cand[][BENCH_PATH_MAX], int *ncand)
{
    const char *env = getenv("TIERCACHE_BENCH");
    char self[PATH_MAX];
    ssize_t n;

    *ncand = 0;
    if (env && *env) {
        struct stat st;
        int isdir = stat(env, &st) == 0 && S_ISDIR(st.st_mode);

        snprintf(cand[(*ncand)++], BENCH_PATH_MAX, "%s%s%s", env,
                 isdir ? "/" : "", isdir ? BENCH_NAME : "");
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash;

        self[n] = 0;
        slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(cand[(*ncand)++], BENCH_PATH_MAX, "%s/%s", self,
                     BENCH_NAME);
            snprintf(cand[(*ncand)++], BENCH_PATH_MAX, "%s/../bench/%s", self,
                     BENCH_NAME);
        }
    }
    for (int i = 0; i < *ncand; i++) {
        if (bench_candidate(cand[i]))
            return i;
    }
    return -1;
}

/* bench_missing - no tiercache-bench: our help for --help, else an error
 * naming every place looked at. */
static int bench_missing(int argc, char **argv, int first,
                         char cand[][BENCH_PATH_MAX], int ncand)
{
    int help = 0;

    for (int i = first; i < argc; i++)
        help |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    if (help) {
        print_command_help(stdout, find_command("bench"));
        printf("\n%s was not found; looked at:\n", BENCH_NAME);
        for (int i = 0; i < ncand; i++)
            printf("  %s\n", cand[i]);
        return finish_output(0);
    }
    fail_msg(BENCH_NAME, "not found (set TIERCACHE_BENCH); looked at:");
    for (int i = 0; i < ncand; i++)
        fprintf(stderr, "  %s\n", cand[i]);
    return XS_IO;
}

static int run_bench(int argc, char **argv, int first)
{
    char cand[3][BENCH_PATH_MAX];
    int ncand, found = find_bench(cand, &ncand);
    char **nargv;

    if (found < 0)
        return bench_missing(argc, argv, first, cand, ncand);
    nargv = calloc((size_t)(argc - first) + 2, sizeof(*nargv));
    if (!nargv) {
        fail_msg(BENCH_NAME, "%s", tc_strerror(TC_ENOMEM));
        return XS_IO;
    }
    nargv[0] = (char *)BENCH_NAME;
    for (int i = first; i < argc; i++)
        nargv[i - first + 1] = argv[i];
    fflush(stdout);
    fflush(stderr);
    execv(cand[found], nargv);
    fail_msg(cand[found], "%s", strerror(errno));
    free(nargv);
    return XS_IO;
}

/* ===================================================================== */
/* The command table and help                                            */

static int cmd_help(struct cli *cli);
static int cmd_version(struct cli *cli);

static const struct command commands[] = {
    {"set", cmd_set, O_KEYTYPE | O_VALTYPE | O_EXPIRE | O_TAG | O_TAG_INT, 2, 3,
     "DIR KEY VALUE", "store VALUE under KEY",
     "Store VALUE under KEY (also: set DIR KEY --bytes-file F). KEY and\n"
     "VALUE are text unless typed by an option. A new DIR becomes a\n"
     "FanoutCache of 8 shards unless --shards is given. Prints nothing.\n"},
    {"get", cmd_get, O_KEYTYPE | O_HEX | O_JSON, 2, 2, "DIR KEY",
     "print the value of KEY",
     "Print the value of KEY: text as is plus a newline, bytes raw with no\n"
     "newline (--hex: as hex plus a newline), int and real as numbers,\n"
     "MessagePack as hex. Exit 1 if KEY is missing or expired.\n"
     "--json prints {\"key\", \"key_type\", \"type\" (text|bytes|int|real|\n"
     "msgpack), \"value\" (bytes and msgpack as hex strings; non-finite\n"
     "reals as \"inf\"/\"-inf\"), \"expire_time\" (Unix seconds or null),\n"
     "\"tag\", \"tag_type\" (null without a tag)}.\n"},
    {"delete", cmd_delete, O_KEYTYPE, 2, 2, "DIR KEY", "remove KEY",
     "Remove KEY. Exit 1 if it is missing (or expired).\n"},
    {"incr", cmd_incr,
     O_KEYTYPE | O_INT | O_FLOAT | O_DEFAULT | O_NO_DEFAULT | O_JSON, 2, 3,
     "DIR KEY [DELTA]", "add DELTA (default 1) to a number",
     "Add DELTA (default 1) to the number stored under KEY and print the\n"
     "result. DELTA is an integer if it reads as one, else a float (force\n"
     "with --int/--float). A missing KEY starts from --default (0), like\n"
     "diskcache; with --no-default it is an error (exit 1). A stored value\n"
     "that is not a number exits 2. --json prints {\"key\", \"key_type\",\n"
     "\"type\", \"value\"}. A negative DELTA needs no `--`: -5 is a number.\n"},
    {"decr", cmd_decr,
     O_KEYTYPE | O_INT | O_FLOAT | O_DEFAULT | O_NO_DEFAULT | O_JSON, 2, 3,
     "DIR KEY [DELTA]", "subtract DELTA (default 1) from a number",
     "Like incr with -DELTA.\n"},
    {"stats", cmd_stats, O_JSON, 1, 1, "DIR", "print counts and settings",
     "Print the layout (shards: 0 = plain Cache), length (items, expired\n"
     "ones included), volume (bytes), hits and misses (counted only while\n"
     "the statistics setting is 1; not changed here), the settings\n"
     "eviction_policy, size_limit, cull_limit, statistics, tag_index,\n"
     "disk_min_file_size, and the commit sequence of each shard.\n"
     "\n"
     "Then the hot tier, the shared-memory segment in front of the cache\n"
     "(lines starting with \"hot \"): attached (yes/no; nothing more when\n"
     "no), size and free_bytes (bytes), items, processes (live ones,\n"
     "this one included), and counters summed over every process that\n"
     "used the segment: hits, misses, fills, fill_rejects, publishes,\n"
     "invalidations, retries, evictions, lock_repairs, recovered.\n"
     "This tool never creates a segment (it opens with hot size 0): it\n"
     "attaches only to one that a program using the library made, so\n"
     "for a cache only ever used through this tool attached is \"no\".\n"
     "--json prints {\"directory\", \"type\", \"shards\", \"readonly\",\n"
     "\"length\", \"volume\", \"hits\", \"misses\", \"settings\": {...},\n"
     "\"commit_seq\": [...], \"hot\": {\"attached\", \"size\", ...} or null\n"
     "when no segment is attached}.\n"},
    {"keys", cmd_keys, O_JSON | O_SORTED | O_REVERSE, 1, 1, "DIR",
     "list the keys",
     "List the keys, one per line, in insertion order (expired items\n"
     "included). Text keys print as is, numbers as numbers, bytes as\n"
     "b:<hex> (the form --key-hex takes without the prefix). Keys that\n"
     "are python pickles print as <python pickle> and are counted on\n"
     "stderr. --json prints an array: strings, numbers, {\"bytes\": hex},\n"
     "null for a pickle.\n"},
    {"check", cmd_check, O_JSON | O_FIX, 1, 1, "DIR",
     "check the database and the value files",
     "Run python-diskcache's check: database integrity, value files that\n"
     "are missing, of the wrong size or unknown, empty directories, the\n"
     "count and size totals. Prints each problem as `kind: message` and a\n"
     "summary line. Exit 0 when nothing is found, 4 when problems are\n"
     "found. With --fix the problems are repaired, the cache is checked\n"
     "again, and the exit status is 0 if that check is clean, else 4.\n"
     "--json prints {\"directory\", \"fix\", \"count\",\n"
     "\"warnings\": [{\"kind\", \"message\"}], and with --fix\n"
     "\"remaining_count\", \"remaining\"}.\n"},
    {"expire", cmd_expire, O_JSON, 1, 1, "DIR", "remove expired items",
     "Remove the expired items; print how many (--json: {\"command\",\n"
     "\"removed\"}).\n"},
    {"cull", cmd_cull, O_JSON, 1, 1, "DIR",
     "expire, then evict down to size_limit",
     "Remove expired items, then items in eviction-policy order until the\n"
     "volume is at most size_limit; print how many.\n"},
    {"clear", cmd_clear, O_JSON, 1, 1, "DIR", "remove every item",
     "Remove every item; print how many.\n"},
    {"evict", cmd_evict, O_JSON | O_TAG_INT, 2, 2, "DIR TAG",
     "remove the items tagged TAG",
     "Remove every item tagged TAG (text; --tag-int: an integer); print\n"
     "how many.\n"},
    {"hot-check", cmd_hot_check, O_JSON, 1, 1, "DIR",
     "recover and check the hot-tier segment",
     "Run a recovery pass over the cache's hot-tier segment (free what\n"
     "processes that died left locked or allocated), then check it: its\n"
     "structure (\"hot-structure\") and every live item against SQLite\n"
     "(\"hot-stale\": missing there, or another value, expiry or tag).\n"
     "Prints each problem as `kind: message` and a summary line. Exit 0\n"
     "when nothing is found (also when no segment exists), 4 when\n"
     "problems are found. Opening already recovers the dead processes it\n"
     "finds, so \"recovered\" counts only those found after that.\n"
     "--json prints {\"directory\", \"attached\", \"recovered\",\n"
     "\"count\", \"problems\": [{\"kind\", \"message\"}]}.\n"},
    {"shm-gc", cmd_shm_gc, O_JSON | O_NOCACHE, 0, 0, "",
     "remove segments of caches that are gone",
     "Remove every hot-tier segment whose cache directory no longer\n"
     "exists (or is another directory now) from $TIERCACHE_SHM_DIR\n"
     "(default /dev/shm); print how many (--json: {\"command\",\n"
     "\"removed\"}). Segments of existing caches are left alone.\n"},
    {"drop", cmd_drop, O_NOCACHE, 1, 1, "DIR",
     "delete a cache directory and its segment",
     "Remove the cache's hot-tier segment, then the whole directory DIR\n"
     "and everything in it. Stop the programs using the cache first.\n"
     "DIR must be a cache directory: a real directory (not a symbolic\n"
     "link) holding cache.db or 000/cache.db; anything else is refused\n"
     "(exit 2) and nothing is removed. A missing DIR exits 1. Symbolic\n"
     "links inside DIR are removed, never followed, and directories on\n"
     "another file system are left in place (exit 4). Prints nothing.\n"},
    {"bench", NULL, 0, 0, 0, "[ARGS...]", "run the benchmark program",
     "Run tiercache-bench with ARGS (passed through unchanged, --help\n"
     "included). It is looked for at $TIERCACHE_BENCH (the program or its\n"
     "directory), then next to this program, then in ../bench/ from it.\n"},
    {"help", cmd_help, 0, 0, 1, "[COMMAND]", "show help for a command",
     "Show the help of COMMAND, or the command list.\n"},
    {"version", cmd_version, 0, 0, 0, "", "print the library version",
     "Print the tiercache library version.\n"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

/* print_opt_help - "  --name ARG   help", continuation lines aligned;
 * @cmd (may be NULL) selects a command's own wording. */
static void print_opt_help(FILE *f, const struct optspec *o, const char *cmd)
{
    char head[40];
    const char *h = o->help;

    for (size_t i = 0;
         cmd && i < sizeof(opt_help_overrides) / sizeof(opt_help_overrides[0]);
         i++) {
        if (strcmp(opt_help_overrides[i].cmd, cmd) == 0 &&
            strcmp(opt_help_overrides[i].opt, o->name) == 0)
            h = opt_help_overrides[i].help;
    }

    snprintf(head, sizeof(head), "  %s%s%s", o->name, o->arg ? " " : "",
             o->arg ? o->arg : "");
    fprintf(f, "%-20s", head);
    if (strlen(head) >= 20)
        fprintf(f, "\n%-20s", "");
    while (*h) {
        size_t n = strcspn(h, "\n");

        fprintf(f, "%.*s\n", (int)n, h);
        h += n;
        if (*h == '\n' && *++h)
            fprintf(f, "%-20s", "");
    }
}

static const char types_help[] =
    "Data types: KEY, VALUE and TAG are text (UTF-8) unless an option\n"
    "says otherwise: --key-int, --key-float, --key-hex for KEY; --int,\n"
    "--float, --hex, --bytes-file for VALUE; --tag-int for a tag.\n";

static const char exit_help[] =
    "Exit status: 0 success; 1 not found (missing key, no cache in DIR);\n"
    "2 usage or data error (bad arguments, wrong type, too big, pickle,\n"
    "out of range); 3 busy past the timeout; 4 I/O error, corruption,\n"
    "permission, or problems found by check or hot-check.\n";

/* cmd_opts - every option @cmd accepts: the cache options (--shards,
 * --timeout, --retry) only for commands that open a cache. */
static unsigned cmd_opts(const struct command *cmd)
{
    int meta = cmd->run == cmd_help || cmd->run == cmd_version;

    return cmd->opts | (meta || (cmd->opts & O_NOCACHE) ? O_HELP : O_GLOBAL);
}

static void print_command_help(FILE *f, const struct command *cmd)
{
    int meta = cmd->run == cmd_help || cmd->run == cmd_version;
    unsigned opts = cmd_opts(cmd);

    fprintf(f, "usage: tiercache %s%s%s%s\n\n%s", cmd->name,
            cmd->synopsis[0] ? " " : "", cmd->synopsis,
            cmd->run ? (opts & ~O_HELP ? " [OPTIONS]" : "") : "", cmd->help);
    if (!cmd->run)
        return;
    fputs("\noptions:\n", f);
    for (size_t i = 0; i < sizeof(optspecs) / sizeof(optspecs[0]); i++) {
        if ((opts & optspecs[i].bit) && optspecs[i].help)
            print_opt_help(f, &optspecs[i], cmd->name);
    }
    if (cmd->opts & O_BYTES_FILE)
        fprintf(f, "\n%s", types_help);
    if (!meta)
        fprintf(f, "\n%s", exit_help);
}

static void print_top_help(FILE *f)
{
    fputs("usage: tiercache COMMAND [ARGS...] [OPTIONS]\n\n"
          "Read, write and maintain a tiercache directory (python-diskcache\n"
          "5.x format: DIR/cache.db is a Cache, DIR/000/cache.db... a\n"
          "FanoutCache). Options may come before or after the command;\n"
          "`--` ends the options.\n\ncommands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char head[40];

        snprintf(head, sizeof(head), "  %s %s", commands[i].name,
                 commands[i].synopsis);
        fprintf(f, "%-28s%s\n", head, commands[i].summary);
    }
    fputs("\nglobal options (any command; shm-gc and drop take only --help):\n",
          f);
    for (size_t i = 0; i < sizeof(optspecs) / sizeof(optspecs[0]); i++) {
        if ((O_GLOBAL & optspecs[i].bit) && optspecs[i].help)
            print_opt_help(f, &optspecs[i], NULL);
    }
    fprintf(f, "  %-18s%s\n", "--version", "print the library version");
    fprintf(f, "\n%s\n%s\nRun `tiercache COMMAND --help` for its options.\n",
            types_help, exit_help);
}

static int cmd_help(struct cli *cli)
{
    const struct command *cmd;

    if (cli->npos == 0) {
        print_top_help(stdout);
        return finish_output(0);
    }
    cmd = find_command(cli->pos[0]);
    if (!cmd)
        return usage_error(cli->pos[0], "unknown command");
    print_command_help(stdout, cmd);
    return finish_output(0);
}

static int cmd_version(struct cli *cli)
{
    printf("tiercache %s\n", tc_version());
    return finish_output(0);
}

/* ===================================================================== */
/* Argument parsing                                                      */

/* set_type - record a key or value type option, refusing two different
 * ones. */
static int set_type(int *slot, int type, const char *opt)
{
    if (*slot && *slot != type)
        return usage_error(opt, "conflicts with another type option");
    *slot = type;
    return 0;
}

/* apply_opt - store one option (with its value @val, or NULL). */
static int apply_opt(struct cli *cli, const struct optspec *o, const char *val)
{
    int64_t n;

    cli->seen |= o->bit;
    switch (o->bit) {
    case O_SHARDS:
        if (parse_i64(val, &n) || n < 0 || n > 999)
            return usage_error("--shards", "'%s' is not a count in 0..999",
                               val);
        cli->shards = (int)n;
        return 0;
    case O_TIMEOUT:
        if (parse_f64(val, 0, &cli->timeout) || cli->timeout < 0)
            return usage_error("--timeout",
                               "'%s' is not a finite number of seconds >= 0",
                               val);
        return 0;
    case O_RETRY:
        cli->flags |= TC_RETRY;
        return 0;
    case O_KEY_INT:
        return set_type(&cli->key_type, TC_INT, o->name);
    case O_KEY_FLOAT:
        return set_type(&cli->key_type, TC_REAL, o->name);
    case O_KEY_HEX:
        return set_type(&cli->key_type, TC_BYTES, o->name);
    case O_INT:
        return set_type(&cli->val_type, TC_INT, o->name);
    case O_FLOAT:
        return set_type(&cli->val_type, TC_REAL, o->name);
    case O_HEX:
        if (cli->cmd->run == cmd_get)
            return 0;
        return set_type(&cli->val_type, TC_BYTES, o->name);
    case O_BYTES_FILE:
        cli->bytes_file = val;
        return set_type(&cli->val_type, TC_BYTES, o->name);
    case O_EXPIRE:
        cli->expire = val;
        return 0;
    case O_TAG:
        cli->tag = val;
        return 0;
    case O_DEFAULT:
        cli->deflt = val;
        return 0;
    default:
        return 0;
    }
}

/* takes_value - for skipping option values before the command is known. */
static int takes_value(const char *arg)
{
    const struct optspec *o = find_opt(arg);

    return o && o->arg && !strchr(arg, '=');
}

/*
 * locate_command - index of the command word in argv (argc if none):
 * the first word that is not an option or an option's value.
 */
static int locate_command(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return i + 1 < argc ? i + 1 : argc;
        if (!is_option(argv[i]))
            return i;
        if (takes_value(argv[i]))
            i++;
    }
    return argc;
}

/* wants_help - -h/--help among the options (not after `--`, not as an
 * option's value). Only words before @stop are looked at. */
static int wants_help(int stop, char **argv, const char *word)
{
    for (int i = 1; i < stop; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], word) == 0)
            return 1;
        if (is_option(argv[i]) && takes_value(argv[i]))
            i++;
    }
    return 0;
}

/* parse_args - fill @cli from argv (the command word at @ci skipped). */
static int parse_args(struct cli *cli, int argc, char **argv, int ci)
{
    /* help and version tolerate the global options (as before); commands
     * that open no cache refuse them. */
    unsigned allowed = (cli->cmd->opts & O_NOCACHE) ? cmd_opts(cli->cmd)
                                                    : cli->cmd->opts | O_GLOBAL;
    int only_pos = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq;
        const struct optspec *o;
        int status;

        if (i == ci)
            continue;
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || !is_option(arg)) {
            if (cli->npos >= cli->cmd->max_pos)
                return usage_error(arg, "unexpected argument");
            cli->pos[cli->npos++] = arg;
            continue;
        }
        o = find_opt(arg);
        if (!o)
            return usage_error(arg, "unknown option");
        if (!(allowed & o->bit))
            return usage_error(o->name, "not an option of %s", cli->cmd->name);
        eq = strchr(arg, '=');
        if (o->arg && eq) {
            val = eq + 1;
        } else if (o->arg) {
            if (i + 1 >= argc || i + 1 == ci)
                return usage_error(o->name, "needs a value (%s)", o->arg);
            val = argv[++i];
        } else if (eq) {
            return usage_error(o->name, "takes no value");
        }
        status = apply_opt(cli, o, val);
        if (status)
            return status;
    }
    if (cli->npos < cli->cmd->min_pos)
        return usage_error("arguments", "expected %s", cli->cmd->synopsis);
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli;
    int ci = locate_command(argc, argv), status;

    memset(&cli, 0, sizeof(cli));
    if (ci >= argc) {
        if (wants_help(argc, argv, "--help") || wants_help(argc, argv, "-h")) {
            print_top_help(stdout);
            return finish_output(0);
        }
        if (wants_help(argc, argv, "--version"))
            return cmd_version(&cli);
        if (argc > 1)
            return usage_error(NULL, "no command given");
        print_top_help(stderr);
        return XS_USAGE;
    }
    cli.cmd = find_command(argv[ci]);
    if (!cli.cmd)
        return usage_error(argv[ci], "unknown command");
    g_cmd = cli.cmd->name;
    if (!cli.cmd->run) /* bench: everything after it is the program's */
        return run_bench(argc, argv, ci + 1);
    if (wants_help(argc, argv, "--help") || wants_help(argc, argv, "-h")) {
        print_command_help(stdout, cli.cmd);
        return finish_output(0);
    }
    status = parse_args(&cli, argc, argv, ci);
    if (status)
        return status;
    if (!cli.key_type)
        cli.key_type = TC_TEXT;
    return cli.cmd->run(&cli);
}
