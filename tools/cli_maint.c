/*
 * cli_maint.c - the tiercache commands that look at a whole cache:
 * stats, keys, check, the bulk removals expire, cull, clear and evict,
 * and the hot-tier ones: hot-check, shm-gc and drop.
 *
 * All that open a cache do so with TC_OPEN_NOCREATE (no cache in DIR:
 * exit 1, and nothing is created) and print their result on stdout, as a
 * table or lines for humans or as one JSON document with --json. shm-gc
 * and drop open no cache.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ===================================================================== */
/* stats                                                                 */

static const char *const stat_settings[] = {
    "eviction_policy", "size_limit", "cull_limit",
    "statistics",      "tag_index",  "disk_min_file_size",
};
#define N_STAT_SETTINGS (sizeof(stat_settings) / sizeof(stat_settings[0]))

/* Everything `stats` prints, gathered before printing. */
struct stats {
    int shards;
    int readonly;
    uint64_t length;
    uint64_t volume;
    int have_hits; /* 0 when hits/misses could not be read */
    uint64_t hits;
    uint64_t misses;
    tc_value settings[N_STAT_SETTINGS];
    uint64_t *seqs; /* one per shard (one for a plain Cache) */
    int nseqs;
    tc_hot_stats hot;        /* hot.attached == 0: no segment */
    int worker_live;         /* a tiercached holds the directory's lock */
    int have_worker;         /* a status record exists */
    tc_worker_status worker; /* the last one written */
};

/* read_hits - hits/misses via tc_stats with the current statistics
 * setting (so nothing changes). A read-only cache cannot run tc_stats
 * (it writes the setting back); fall back to the raw Settings rows. */
static int read_hits(tc_cache *c, struct stats *st, int enable)
{
    tc_value h = TC_VALUE_INIT, m = TC_VALUE_INIT;
    int rc = tc_stats(c, enable, 0, &st->hits, &st->misses);

    if (rc == TC_OK) {
        st->have_hits = 1;
        return TC_OK;
    }
    if (rc != TC_EREADONLY && rc != TC_EPERM)
        return rc;
    if (tc_setting_get(c, "hits", &h) == TC_OK && h.type == TC_INT &&
        tc_setting_get(c, "misses", &m) == TC_OK && m.type == TC_INT) {
        st->hits = (uint64_t)h.i;
        st->misses = (uint64_t)m.i;
        st->have_hits = 1;
    }
    tc_value_clear(&h);
    tc_value_clear(&m);
    return TC_OK;
}

/* gather_stats - fill @st; returns 0 or an exit status after printing. */
static int gather_stats(tc_cache *c, struct stats *st)
{
    const char *what = "stats";
    int rc, enable = 0;

    st->shards = tc_shard_count(c);
    st->readonly = tc_is_readonly(c);
    rc = tc_length(c, &st->length);
    if (rc != TC_OK)
        return fail_rc("length", rc);
    rc = tc_volume(c, &st->volume);
    if (rc != TC_OK)
        return fail_rc("volume", rc);
    for (size_t i = 0; i < N_STAT_SETTINGS; i++) {
        rc = tc_setting_get(c, stat_settings[i], &st->settings[i]);
        if (rc != TC_OK)
            return fail_rc(stat_settings[i], rc);
    }
    /* stat_settings[3] is "statistics": keep it as it is. */
    if (st->settings[3].type == TC_INT)
        enable = st->settings[3].i != 0;
    else if (st->settings[3].type == TC_REAL)
        enable = st->settings[3].d != 0;
    rc = read_hits(c, st, enable);
    if (rc != TC_OK)
        return fail_rc(what, rc);
    st->nseqs = st->shards > 0 ? st->shards : 1;
    st->seqs = calloc((size_t)st->nseqs, sizeof(*st->seqs));
    if (!st->seqs)
        return fail_rc(what, TC_ENOMEM);
    for (int i = 0; i < st->nseqs; i++) {
        rc = tc_commit_seq(c, i, &st->seqs[i]);
        /* A read-only python-diskcache directory has no sequence. */
        if (rc == TC_ENOCACHE)
            st->seqs[i] = UINT64_MAX;
        else if (rc != TC_OK)
            return fail_rc("commit_seq", rc);
    }
    rc = tc_hot_stats_get(c, &st->hot);
    if (rc != TC_OK)
        return fail_rc("hot stats", rc);
    st->worker_live = tc_worker_live(c);
    rc = tc_worker_status_get(c, &st->worker);
    if (rc != TC_OK && rc != TC_NOTFOUND)
        return fail_rc("worker status", rc);
    st->have_worker = rc == TC_OK;
    return 0;
}

/* The worker's lines: its liveness and its last status record. */
static void print_worker_json(const struct stats *st)
{
    const tc_worker_status *w = &st->worker;
    printf("{\"running\": %s", st->worker_live ? "true" : "false");
    if (st->have_worker) {
        printf(", \"pid\": %" PRId64 ", \"last_pass\": ", w->pid);
        json_real(w->last_pass);
        fputs(", \"duration_s\": ", stdout);
        json_real(w->duration_s);
        printf(", \"passes\": %" PRIu64 ", \"expired\": %" PRIu64
               ", \"culled\": %" PRIu64 ", \"folded\": %" PRIu64
               ", \"recovered\": %" PRIu64 ", \"errors\": %" PRIu64
               ", \"total_expired\": %" PRIu64 ", \"total_culled\": %" PRIu64
               ", \"total_errors\": %" PRIu64 ", \"last_error\": ",
               w->passes, w->expired, w->culled, w->folded, w->recovered,
               w->errors, w->total_expired, w->total_culled, w->total_errors);
        json_cstr(w->last_error);
    }
    putchar('}');
}

static void print_worker_plain(const struct stats *st)
{
    const tc_worker_status *w = &st->worker;
    printf("%-19s %s\n", "worker", st->worker_live ? "running" : "not running");
    if (!st->have_worker)
        return;
    char when[64];
    fmt_real(w->last_pass, when, sizeof when);
    printf("%-19s %" PRId64 "\n", "worker pid", w->pid);
    printf("%-19s %s\n", "worker last_pass", when);
    printf("%-19s %.3f\n", "worker duration_s", w->duration_s);
    printf("%-19s %" PRIu64 "\n", "worker passes", w->passes);
    printf("%-19s %" PRIu64 "\n", "worker expired", w->expired);
    printf("%-19s %" PRIu64 "\n", "worker culled", w->culled);
    printf("%-19s %" PRIu64 "\n", "worker folded", w->folded);
    printf("%-19s %" PRIu64 "\n", "worker errors", w->errors);
    if (w->last_error[0])
        printf("%-19s %s\n", "worker last_error", w->last_error);
}

/* The hot-tier counters, in the order they are printed. */
#define HOT_COUNTERS(X) \
    X(hits)             \
    X(misses)           \
    X(fills)            \
    X(fill_rejects)     \
    X(publishes)        \
    X(invalidations)    \
    X(retries)          \
    X(evictions)        \
    X(lock_repairs)     \
    X(recovered)

static void print_hot_json(const tc_hot_stats *h)
{
    if (!h->attached) {
        fputs("null", stdout);
        return;
    }
    printf("{\"attached\": true, \"size\": %" PRIu64
           ", \"free_bytes\": %" PRIu64 ", \"items\": %" PRIu64
           ", \"processes\": %" PRIu32,
           h->size, h->free_bytes, h->items, h->processes);
#define X(f) printf(", \"" #f "\": %" PRIu64, h->f);
    HOT_COUNTERS(X)
#undef X
    putchar('}');
}

static void print_hot_plain(const tc_hot_stats *h)
{
    printf("%-19s %s\n", "hot attached", h->attached ? "yes" : "no");
    if (!h->attached)
        return;
    printf("%-19s %" PRIu64 "\n", "hot size", h->size);
    printf("%-19s %" PRIu64 "\n", "hot free_bytes", h->free_bytes);
    printf("%-19s %" PRIu64 "\n", "hot items", h->items);
    printf("%-19s %" PRIu32 "\n", "hot processes", h->processes);
#define X(f) printf("%-19s %" PRIu64 "\n", "hot " #f, h->f);
    HOT_COUNTERS(X)
#undef X
}

static void print_stats_json(tc_cache *c, const struct stats *st)
{
    fputs("{\"directory\": ", stdout);
    json_cstr(tc_directory(c));
    printf(", \"type\": \"%s\", \"shards\": %d, \"readonly\": %s",
           st->shards ? "FanoutCache" : "Cache", st->shards,
           st->readonly ? "true" : "false");
    fputs(", \"length\": ", stdout);
    json_u64(st->length);
    fputs(", \"volume\": ", stdout);
    json_u64(st->volume);
    if (st->have_hits) {
        fputs(", \"hits\": ", stdout);
        json_u64(st->hits);
        fputs(", \"misses\": ", stdout);
        json_u64(st->misses);
    } else {
        fputs(", \"hits\": null, \"misses\": null", stdout);
    }
    fputs(", \"settings\": {", stdout);
    for (size_t i = 0; i < N_STAT_SETTINGS; i++) {
        printf("%s\"%s\": ", i ? ", " : "", stat_settings[i]);
        json_typed(&st->settings[i]);
    }
    fputs("}, \"commit_seq\": [", stdout);
    for (int i = 0; i < st->nseqs; i++) {
        fputs(i ? ", " : "", stdout);
        if (st->seqs[i] == UINT64_MAX)
            fputs("null", stdout);
        else
            json_u64(st->seqs[i]);
    }
    fputs("], \"hot\": ", stdout);
    print_hot_json(&st->hot);
    /* "worker" appears once a worker ran on the directory (or runs). */
    if (st->have_worker || st->worker_live) {
        fputs(", \"worker\": ", stdout);
        print_worker_json(st);
    }
    fputs("}\n", stdout);
}

static void print_stats_plain(tc_cache *c, const struct stats *st)
{
    printf("%-19s %s\n", "directory", tc_directory(c));
    printf("%-19s %s%s\n", "type", st->shards ? "FanoutCache" : "Cache",
           st->readonly ? " (read-only)" : "");
    printf("%-19s %d\n", "shards", st->shards);
    printf("%-19s %" PRIu64 "\n", "length", st->length);
    printf("%-19s %" PRIu64 "\n", "volume", st->volume);
    if (st->have_hits) {
        printf("%-19s %" PRIu64 "\n", "hits", st->hits);
        printf("%-19s %" PRIu64 "\n", "misses", st->misses);
    } else {
        printf("%-19s -\n%-19s -\n", "hits", "misses");
    }
    for (size_t i = 0; i < N_STAT_SETTINGS; i++) {
        /* A FanoutCache stores size_limit per shard, as diskcache. */
        bool per_shard = st->shards && !strcmp(stat_settings[i], "size_limit");
        printf("%-19s ", per_shard ? "size_limit/shard" : stat_settings[i]);
        print_plain(&st->settings[i]);
        putchar('\n');
    }
    printf("%-19s", "commit_seq");
    for (int i = 0; i < st->nseqs; i++) {
        if (st->seqs[i] == UINT64_MAX)
            fputs(" -", stdout);
        else
            printf(" %" PRIu64, st->seqs[i]);
    }
    putchar('\n');
    print_hot_plain(&st->hot);
    if (st->have_worker || st->worker_live)
        print_worker_plain(st);
}

int cmd_stats(struct cli *cli)
{
    struct stats st;
    tc_cache *c = NULL;
    int status;

    memset(&st, 0, sizeof(st));
    status = open_cache(cli, TC_OPEN_NOCREATE, &c);
    if (status)
        return status;
    status = gather_stats(c, &st);
    if (!status) {
        if (cli->seen & O_JSON)
            print_stats_json(c, &st);
        else
            print_stats_plain(c, &st);
    }
    for (size_t i = 0; i < N_STAT_SETTINGS; i++)
        tc_value_clear(&st.settings[i]);
    free(st.seqs);
    return close_cache(c, status);
}

/* ===================================================================== */
/* keys                                                                  */

/* Output state of `keys`. */
struct keys_out {
    int json;
    uint64_t count;   /* keys printed */
    uint64_t pickled; /* python-pickle keys shown as placeholders */
};

static void emit_key(struct keys_out *ko, const tc_value *key)
{
    if (ko->json) {
        fputs(ko->count ? ",\n " : "\n ", stdout);
        if (key)
            json_self(key);
        else
            fputs("null", stdout);
    } else {
        if (key)
            print_plain(key);
        else
            fputs("<python pickle>", stdout);
        putchar('\n');
    }
    ko->count++;
    if (!key)
        ko->pickled++;
}

/* sort_rank - SQLite's storage-class order: numbers < text < blobs. */
static int sort_rank(int type)
{
    return type == TC_INT || type == TC_REAL ? 0 : type == TC_TEXT ? 1 : 2;
}

/* cmp_int_real - compare an integer with a double exactly. */
static int cmp_int_real(int64_t i, double r)
{
    int64_t t;
    double frac;

    if (r < -9223372036854775808.0)
        return 1;
    if (r >= 9223372036854775808.0)
        return -1;
    t = (int64_t)r;
    if (i != t)
        return i < t ? -1 : 1;
    frac = r - (double)t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

/* cmp_keys - qsort comparator in SQLite's order (BINARY collation). */
static int cmp_keys(const void *pa, const void *pb)
{
    const tc_value *a = pa, *b = pb;
    int ra = sort_rank(a->type), rb = sort_rank(b->type), c;

    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (ra == 0) {
        if (a->type == TC_INT && b->type == TC_INT)
            return a->i < b->i ? -1 : a->i > b->i;
        if (a->type == TC_INT)
            return cmp_int_real(a->i, b->d);
        if (b->type == TC_INT)
            return -cmp_int_real(b->i, a->d);
        return a->d < b->d ? -1 : a->d > b->d;
    }
    c = memcmp(a->ptr, b->ptr, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* A growable array of keys taken out of an iteration. */
struct keyvec {
    tc_value *v;
    size_t n, cap;
};

/* keyvec_take - move @key into @kv (leaving @key empty). */
static int keyvec_take(struct keyvec *kv, tc_value *key)
{
    tc_value *slot;

    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 256;
        tc_value *nv = realloc(kv->v, cap * sizeof(*nv));

        if (!nv)
            return TC_ENOMEM;
        kv->v = nv;
        kv->cap = cap;
    }
    slot = &kv->v[kv->n++];
    *slot = *key;
    /* TC_INT/TC_REAL point at their own field: re-aim at the copy. */
    if (slot->type == TC_INT)
        slot->ptr = &slot->i;
    else if (slot->type == TC_REAL)
        slot->ptr = &slot->d;
    *key = (tc_value)TC_VALUE_INIT;
    return TC_OK;
}

static void keyvec_free(struct keyvec *kv)
{
    for (size_t i = 0; i < kv->n; i++)
        tc_value_clear(&kv->v[i]);
    free(kv->v);
}

/*
 * walk_keys - iterate @order and print each key, or (when @kv is not
 * NULL) only collect the keys into @kv and count the pickled ones in @ko.
 * Returns 0 or an exit status.
 */
static int walk_keys(tc_cache *c, int order, struct keys_out *ko,
                     struct keyvec *kv)
{
    tc_value key = TC_VALUE_INIT;
    tc_iter *it = NULL;
    int rc, status = 0;

    rc = tc_iter_open(c, order, &it);
    if (rc != TC_OK)
        return fail_rc("iterate", rc);
    for (;;) {
        rc = tc_iter_next(it, &key);
        if (rc == TC_NOTFOUND)
            break;
        if (rc == TC_EUNSUPPORTED) {
            if (kv)
                ko->pickled++; /* placeholders go last, after sorting */
            else
                emit_key(ko, NULL);
            continue;
        }
        if (rc == TC_OK && kv)
            rc = keyvec_take(kv, &key);
        else if (rc == TC_OK)
            emit_key(ko, &key);
        if (rc != TC_OK) {
            status = fail_rc("iterate", rc);
            break;
        }
    }
    tc_value_clear(&key);
    tc_iter_close(it);
    return status;
}

int cmd_keys(struct cli *cli)
{
    struct keys_out ko = {.json = (cli->seen & O_JSON) != 0};
    int reverse = (cli->seen & O_REVERSE) != 0;
    struct keyvec kv = {0};
    tc_cache *c = NULL;
    int status;

    status = open_cache(cli, TC_OPEN_NOCREATE, &c);
    if (status)
        return status;
    if (ko.json)
        putchar('[');
    if (!(cli->seen & O_SORTED)) {
        status = walk_keys(
            c, TC_ITER_INSERTION | (reverse ? TC_ITER_REVERSE : 0), &ko, NULL);
    } else if (tc_shard_count(c) == 0) {
        status = walk_keys(c, TC_ITER_KEYS | (reverse ? TC_ITER_REVERSE : 0),
                           &ko, NULL);
    } else {
        /* A FanoutCache has no global key order: sort here, the same way. */
        struct keys_out collect = {0};

        status = walk_keys(c, TC_ITER_INSERTION, &collect, &kv);
        if (!status) {
            qsort(kv.v, kv.n, sizeof(*kv.v), cmp_keys);
            for (size_t i = 0; i < kv.n; i++)
                emit_key(&ko, &kv.v[reverse ? kv.n - 1 - i : i]);
            for (uint64_t i = 0; i < collect.pickled; i++)
                emit_key(&ko, NULL);
        }
    }
    if (ko.json)
        fputs(ko.count ? "\n]\n" : "]\n", stdout);
    if (!status && ko.pickled)
        fprintf(stderr,
                "tiercache: keys: %" PRIu64 " python-pickled key%s shown "
                "as %s\n",
                ko.pickled, ko.pickled == 1 ? "" : "s",
                ko.json ? "null" : "<python pickle>");
    keyvec_free(&kv);
    return close_cache(c, status);
}

/* ===================================================================== */
/* check                                                                 */

struct warning {
    char *kind;
    char *msg;
};

/* Warnings of one tc_check pass: printed as they come in text mode, kept
 * for JSON output and for the verification pass of --fix. */
struct wlist {
    int print;        /* print "kind: msg" lines as they arrive */
    int keep;         /* keep them in v[] */
    int oom;          /* a copy failed */
    uint64_t n;       /* warnings seen */
    uint64_t nsettle; /* of which "empty-dir" (may follow from a fix) */
    struct warning *v;
    size_t nv, cap;
};

static void warning_cb(void *arg, const char *kind, const char *msg)
{
    struct wlist *wl = arg;

    kind = kind ? kind : "unknown";
    msg = msg ? msg : "";
    wl->n++;
    if (strcmp(kind, "empty-dir") == 0)
        wl->nsettle++;
    if (wl->print)
        printf("%s: %s\n", kind, msg);
    if (!wl->keep)
        return;
    if (wl->nv == wl->cap) {
        size_t cap = wl->cap ? wl->cap * 2 : 16;
        struct warning *nv = realloc(wl->v, cap * sizeof(*nv));

        if (!nv) {
            wl->oom = 1;
            return;
        }
        wl->v = nv;
        wl->cap = cap;
    }
    wl->v[wl->nv].kind = strdup(kind);
    wl->v[wl->nv].msg = strdup(msg);
    if (!wl->v[wl->nv].kind || !wl->v[wl->nv].msg) {
        free(wl->v[wl->nv].kind);
        free(wl->v[wl->nv].msg);
        wl->oom = 1;
        return;
    }
    wl->nv++;
}

static void wlist_free(struct wlist *wl)
{
    for (size_t i = 0; i < wl->nv; i++) {
        free(wl->v[i].kind);
        free(wl->v[i].msg);
    }
    free(wl->v);
    memset(wl, 0, sizeof(*wl));
}

static void json_warnings(const struct wlist *wl)
{
    putchar('[');
    for (size_t i = 0; i < wl->nv; i++) {
        fputs(i ? ", {\"kind\": " : "{\"kind\": ", stdout);
        json_cstr(wl->v[i].kind);
        fputs(", \"message\": ", stdout);
        json_cstr(wl->v[i].msg);
        putchar('}');
    }
    putchar(']');
}

/* check_pass - one tc_check into @wl; returns TC_OK or the error. */
static int check_pass(tc_cache *c, const struct cli *cli, int fix,
                      struct wlist *wl)
{
    uint64_t count = 0, before = wl->n;
    int rc = tc_check(c, fix, warning_cb, wl, &count, cli->flags);

    /* @wl may span passes; if the count and the callbacks disagree,
     * trust the larger. */
    if (rc == TC_OK && count > wl->n - before)
        wl->n = before + count;
    return rc;
}

/*
 * run_fix - check --fix: fix, then verify with a read-only pass. Fixing
 * can leave new empty directories behind (removing ab/cd/x.val empties
 * ab/cd, then ab), so while the verification finds only those, fix again
 * (a few rounds). @found collects everything found and fixed; @left what
 * the last verification still found.
 */
static int run_fix(tc_cache *c, const struct cli *cli, struct wlist *found,
                   struct wlist *left)
{
    int rc = check_pass(c, cli, 1, found);

    for (int round = 0; rc == TC_OK && round < 8; round++) {
        wlist_free(left);
        left->keep = 1;
        rc = check_pass(c, cli, 0, left);
        if (rc != TC_OK || left->n == 0 || left->n != left->nsettle)
            break;
        rc = check_pass(c, cli, 1, found);
    }
    return rc;
}

int cmd_check(struct cli *cli)
{
    int json = (cli->seen & O_JSON) != 0, fix = (cli->seen & O_FIX) != 0;
    struct wlist found = {0}, left = {0};
    struct progress prog;
    tc_cache *c = NULL;
    int status, rc;

    status = open_cache(cli, TC_OPEN_NOCREATE, &c);
    if (status)
        return status;
    found.print = !json;
    found.keep = json;
    progress_start(c, &prog, "check");
    rc = fix ? run_fix(c, cli, &found, &left) : check_pass(c, cli, 0, &found);
    progress_end(c, &prog);
    if (rc != TC_OK) {
        status = fail_rc(cli->pos[0], rc);
        goto out;
    }
    if (found.oom || left.oom) {
        status = fail_rc(cli->pos[0], TC_ENOMEM);
        goto out;
    }
    if (json) {
        fputs("{\"directory\": ", stdout);
        json_cstr(tc_directory(c));
        printf(", \"fix\": %s, \"count\": %" PRIu64 ", \"warnings\": ",
               fix ? "true" : "false", found.n);
        json_warnings(&found);
        if (fix) {
            printf(", \"remaining_count\": %" PRIu64 ", \"remaining\": ",
                   left.n);
            json_warnings(&left);
        }
        fputs("}\n", stdout);
    } else if (!fix) {
        printf("%" PRIu64 " warning%s\n", found.n, found.n == 1 ? "" : "s");
    } else {
        for (size_t i = 0; i < left.nv; i++)
            printf("%s: %s (not fixed)\n", left.v[i].kind, left.v[i].msg);
        printf("%" PRIu64 " warning%s, %" PRIu64 " fixed, %" PRIu64
               " not fixed\n",
               found.n, found.n == 1 ? "" : "s",
               found.n >= left.n ? found.n - left.n : 0, left.n);
    }
    if (!fix && found.n) {
        fail_msg(cli->pos[0], "%" PRIu64 " problem%s found (--fix repairs)",
                 found.n, found.n == 1 ? "" : "s");
        status = XS_IO;
    } else if (fix && left.n) {
        fail_msg(cli->pos[0], "%" PRIu64 " problem%s could not be fixed",
                 left.n, left.n == 1 ? "" : "s");
        status = XS_IO;
    }
out:
    wlist_free(&found);
    wlist_free(&left);
    return close_cache(c, status);
}

/* ===================================================================== */
/* expire, cull, clear, evict                                            */

enum bulk_op { BULK_EXPIRE, BULK_CULL, BULK_CLEAR, BULK_EVICT };

/* run_bulk - one bulk removal; prints the count removed ("N", or
 * {"command": .., "removed": N}). A busy failure still reports how many
 * items went before it. */
static int run_bulk(struct cli *cli, enum bulk_op op)
{
    struct datum tag;
    struct progress prog;
    uint64_t count = 0;
    tc_cache *c = NULL;
    int status = 0, rc = TC_OK;

    memset(&tag, 0, sizeof(tag));
    if (op == BULK_EVICT)
        status = make_datum(&tag, cli->pos[1],
                            (cli->seen & O_TAG_INT) ? TC_INT : TC_TEXT, "TAG");
    if (!status)
        status = open_cache(cli, TC_OPEN_NOCREATE, &c);
    if (status) {
        datum_free(&tag);
        return status;
    }
    progress_start(c, &prog, g_cmd);
    switch (op) {
    case BULK_EXPIRE:
        rc = tc_expire(c, NAN, &count, cli->flags);
        break;
    case BULK_CULL:
        rc = tc_cull(c, &count, cli->flags);
        break;
    case BULK_CLEAR:
        rc = tc_clear(c, &count, cli->flags);
        break;
    case BULK_EVICT:
        rc = tc_evict(c, &tag.d, &count, cli->flags);
        break;
    }
    progress_end(c, &prog);
    if (rc != TC_OK) {
        char what[PATH_MAX + 64];

        snprintf(what, sizeof(what), "%s (%" PRIu64 " removed before)",
                 cli->pos[0], count);
        status = fail_rc(count ? what : cli->pos[0], rc);
    } else if (cli->seen & O_JSON) {
        printf("{\"command\": \"%s\", \"removed\": %" PRIu64 "}\n", g_cmd,
               count);
    } else {
        printf("%" PRIu64 "\n", count);
    }
    datum_free(&tag);
    return close_cache(c, status);
}

int cmd_expire(struct cli *cli)
{
    return run_bulk(cli, BULK_EXPIRE);
}

int cmd_cull(struct cli *cli)
{
    return run_bulk(cli, BULK_CULL);
}

int cmd_clear(struct cli *cli)
{
    return run_bulk(cli, BULK_CLEAR);
}

int cmd_evict(struct cli *cli)
{
    return run_bulk(cli, BULK_EVICT);
}

/* ===================================================================== */
/* hot-check                                                             */

int cmd_hot_check(struct cli *cli)
{
    int json = (cli->seen & O_JSON) != 0;
    struct wlist found = {0};
    tc_hot_stats hs;
    uint64_t recovered = 0, problems = 0;
    tc_cache *c = NULL;
    int status, rc;

    status = open_cache(cli, TC_OPEN_NOCREATE, &c);
    if (status)
        return status;
    found.print = !json;
    found.keep = json;
    /* Recover first: locks and chunks held by dead processes are repaired
     * there, and would otherwise be reported as problems. */
    rc = tc_hot_recover(c, &recovered);
    if (rc == TC_OK)
        rc = tc_hot_stats_get(c, &hs);
    if (rc == TC_OK)
        rc = tc_hot_check(c, warning_cb, &found, &problems);
    if (rc != TC_OK) {
        status = fail_rc(cli->pos[0], rc);
        goto out;
    }
    if (found.oom) {
        status = fail_rc(cli->pos[0], TC_ENOMEM);
        goto out;
    }
    /* As in check: if the count and the callbacks disagree, trust the
     * larger. */
    if (problems > found.n)
        found.n = problems;
    if (json) {
        fputs("{\"directory\": ", stdout);
        json_cstr(tc_directory(c));
        printf(", \"attached\": %s, \"recovered\": %" PRIu64
               ", \"count\": %" PRIu64 ", \"problems\": ",
               hs.attached ? "true" : "false", recovered, found.n);
        json_warnings(&found);
        fputs("}\n", stdout);
    } else if (!hs.attached) {
        printf("%" PRIu64 " problems (no hot-tier segment)\n", found.n);
    } else {
        printf("%" PRIu64 " problem%s, %" PRIu64 " dead process%s recovered\n",
               found.n, found.n == 1 ? "" : "s", recovered,
               recovered == 1 ? "" : "es");
    }
    if (found.n) {
        fail_msg(cli->pos[0], "%" PRIu64 " hot-tier problem%s found", found.n,
                 found.n == 1 ? "" : "s");
        status = XS_IO;
    }
out:
    wlist_free(&found);
    return close_cache(c, status);
}

/* ===================================================================== */
/* shm-gc                                                                */

int cmd_shm_gc(struct cli *cli)
{
    uint64_t removed = 0;
    int rc = tc_hot_gc(&removed);

    if (rc != TC_OK)
        return fail_rc("hot-tier segments", rc);
    if (cli->seen & O_JSON)
        printf("{\"command\": \"shm-gc\", \"removed\": %" PRIu64 "}\n",
               removed);
    else
        printf("%" PRIu64 "\n", removed);
    return finish_output(0);
}

/* ===================================================================== */
/* drop                                                                  */

/* Deeper than any cache (DIR/NNN/ab/cd/x.val); bounds the open
 * descriptors of the recursion. */
#define DROP_MAX_DEPTH 32

static int drop_err(const char *path, int err)
{
    fail_msg(path, "%s", strerror(err));
    return XS_IO;
}

/*
 * remove_contents - remove everything inside the directory open as @dfd
 * (taken over and closed). Nothing is followed: symbolic links are
 * unlinked, subdirectories are opened with O_NOFOLLOW relative to their
 * parent, and a directory on another device than @dev (a mount point) is
 * left alone. @path names @dfd in messages. Returns 0 or XS_IO; it goes
 * on after an error so that it reports everything left behind.
 */
static int remove_contents(int dfd, const char *path, dev_t dev, int depth)
{
    DIR *d = fdopendir(dfd);
    struct dirent *e;
    int status = 0;

    if (!d) {
        int err = errno;

        close(dfd);
        return drop_err(path, err);
    }
    for (;;) {
        char sub[PATH_MAX];
        struct stat st;
        int sfd, s;

        errno = 0;
        e = readdir(d);
        if (!e) {
            if (errno)
                status = drop_err(path, errno);
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT)
                status = drop_err(sub, errno);
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT)
                status = drop_err(sub, errno);
            continue;
        }
        if (st.st_dev != dev) {
            fail_msg(sub, "on another file system; not removed");
            status = XS_IO;
            continue;
        }
        if (depth >= DROP_MAX_DEPTH) {
            fail_msg(sub, "nested too deeply; not removed");
            status = XS_IO;
            continue;
        }
        sfd = openat(dirfd(d), e->d_name,
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0) {
            status = drop_err(sub, errno);
            continue;
        }
        s = remove_contents(sfd, sub, dev, depth + 1);
        if (s)
            status = s;
        else if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) != 0 &&
                 errno != ENOENT)
            status = drop_err(sub, errno);
    }
    closedir(d);
    return status;
}

/* is_cache_dir - @dfd holds a regular cache.db, or a real directory 000
 * holding a regular cache.db (checked without following links). */
static int is_cache_dir(int dfd)
{
    struct stat st;

    if (fstatat(dfd, "cache.db", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode))
        return 1;
    return fstatat(dfd, "000", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISDIR(st.st_mode) &&
           fstatat(dfd, "000/cache.db", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode);
}

int cmd_drop(struct cli *cli)
{
    char dir[PATH_MAX];
    const char *base;
    struct stat st;
    size_t n;
    int dfd, rc, status;

    n = strlen(cli->pos[0]);
    if (n == 0 || n >= sizeof(dir))
        return usage_error("DIR", "'%s' is not a usable path", cli->pos[0]);
    memcpy(dir, cli->pos[0], n + 1);
    /* "link/" would make the kernel follow a symbolic link: drop the
     * trailing slashes so the checks below see the name itself. */
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = 0;
    base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return usage_error(cli->pos[0], "name the cache directory itself");
    if (lstat(dir, &st) != 0) {
        if (errno == ENOENT) {
            fail_msg(NULL, "no cache in %s", dir);
            return XS_NOTFOUND;
        }
        return drop_err(dir, errno);
    }
    if (S_ISLNK(st.st_mode))
        return usage_error(dir, "is a symbolic link; name the cache "
                                "directory itself (nothing removed)");
    if (!S_ISDIR(st.st_mode))
        return usage_error(dir, "not a directory (nothing removed)");
    /* O_NOFOLLOW: if DIR became a link since lstat, refuse here. Every
     * later step works relative to this descriptor. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return drop_err(dir, errno);
    if (fstat(dfd, &st) != 0) {
        status = drop_err(dir, errno);
        close(dfd);
        return status;
    }
    if (!is_cache_dir(dfd)) {
        close(dfd);
        return usage_error(dir, "not a tiercache or diskcache directory (no "
                                "cache.db or 000/cache.db); nothing removed");
    }
    /* The segment's name comes from DIR's inode: drop it while DIR still
     * exists. On failure keep DIR, so the segment is not orphaned. */
    rc = tc_hot_drop(dir);
    if (rc != TC_OK) {
        close(dfd);
        return fail_rc("hot-tier segment", rc);
    }
    status = remove_contents(dfd, dir, st.st_dev, 0);
    if (!status && rmdir(dir) != 0)
        status = drop_err(dir, errno);
    return finish_output(status);
}
