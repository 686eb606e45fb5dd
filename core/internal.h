/*
 * internal.h - the core's private structures and the internal API shared by
 * the files of core/ (never installed). Layering: cache.c (public API, shard
 * dispatch) -> ops.c / maint.c / check.c / iter.c (diskcache semantics on
 * one shard) -> conn.c (connections, statements, transactions) ->
 * schema.c / settings.c (on-disk format) -> value.c / diskfile.c /
 * fanout_hash.c (data encoding) -> err.c.
 *
 * Invariants owned here:
 *  (1) A tc_conn is used by one thread at a time: it is either idle in its
 *      shard's pool, checked out for one call, or pinned to the thread's
 *      open transaction (struct tc_txn).
 *  (2) Every write transaction bumps TiercacheMeta.commit_seq of its shard
 *      before any other statement, so versions follow commit order.
 *  (3) Value files are written before BEGIN and removed only after COMMIT;
 *      a rollback removes the files the transaction created.
 *  (4) After fork, connections opened before the fork are never used nor
 *      closed in the child (they are abandoned); tc__fork_gen tells.
 */
#ifndef TC_INTERNAL_H
#define TC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <sqlite3.h>

#include "tiercache.h"

#define TC_HIDDEN __attribute__((visibility("hidden")))

/* ---- err.c ----------------------------------------------------------- */

/* Record a formatted detail message for tc_errmsg() and return @rc. */
TC_HIDDEN int tc__err(int rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A public function's return: an error whose detail message does not
 * already start with @fn gets "@fn: " put in front (the helpers below a
 * public call name only their step). Non-errors pass through. */
TC_HIDDEN int tc__err_named(int rc, const char *fn);
/* Map a SQLite result code to a tc_rc, recording sqlite3_errmsg(@db). */
TC_HIDDEN int tc__sqlerr(sqlite3 *db, int src, const char *what);
/* Map an errno value to a tc_rc, recording @what and strerror. */
TC_HIDDEN int tc__oserr(int err, const char *what, const char *path);

/* ---- value.c --------------------------------------------------------- */

/* diskcache's value modes, plus tiercache's MessagePack mode. */
enum {
    TC_MODE_NONE = 0,
    TC_MODE_RAW = 1,
    TC_MODE_BINARY = 2,
    TC_MODE_TEXT = 3,
    TC_MODE_PICKLE = 4,
    TC_MODE_MSGPACK = 16,
};

TC_HIDDEN bool tc__utf8_valid(const unsigned char *s, size_t n);
/* Number of code points in valid UTF-8 (python's len(str)). */
TC_HIDDEN size_t tc__utf8_chars(const unsigned char *s, size_t n);
/* Validate a key: type, UTF-8, size. */
TC_HIDDEN int tc__check_key(const tc_data *key);
/* Validate a value or tag datum (tag: TC_NONE allowed). */
TC_HIDDEN int tc__check_value(const tc_data *val, const char *what);
TC_HIDDEN int tc__check_tag(const tc_data *tag);
/* Bind a key/tag datum (NULL or TC_NONE binds SQL NULL). */
TC_HIDDEN int tc__bind_data(sqlite3_stmt *st, int idx, const tc_data *d);
/* Copy column @col of @st into @out (typed by its storage class). */
TC_HIDDEN int tc__column_value(sqlite3_stmt *st, int col, tc_value *out);
/* Fill @out from raw bytes of a given type (copies). */
TC_HIDDEN int tc__value_set_bytes(tc_value *out, int type, const void *p,
                                  size_t n);
TC_HIDDEN void tc__value_set_int(tc_value *out, int64_t i);
/* Move a value/item (fixing self-pointers of numbers); @src is reset. */
TC_HIDDEN void tc__value_move(tc_value *dst, tc_value *src);
TC_HIDDEN void tc__item_move(tc_item *dst, tc_item *src);
TC_HIDDEN void tc__value_set_real(tc_value *out, double d);
/* Key read from a row: raw=0 keys are python pickles. */
TC_HIDDEN int tc__column_key(sqlite3_stmt *st, int kcol, int rawcol,
                             tc_value *out);

/* ---- fanout_hash.c --------------------------------------------------- */

TC_HIDDEN uint64_t tc__fanout_hash(const tc_data *key);

/* ---- diskfile.c: large values in files, named as diskcache does ------ */

#define TC_FILENAME_LEN 38 /* "ab/cd/" + 28 hex + ".val" */

/* Write @n bytes to a fresh file under @dir; @relname receives the
 * relative name (TC_FILENAME_LEN + 1 bytes). */
TC_HIDDEN int tc__file_write(const char *dir, const void *p, size_t n,
                             char *relname);
/* Copy @fd to a fresh file; @size receives the byte count. */
TC_HIDDEN int tc__file_write_fd(const char *dir, int fd, char *relname,
                                uint64_t *size);
/* True if @rel is a value-file name diskcache could have written. */
TC_HIDDEN bool tc__file_name_valid(const char *rel);
/* Read a value file whole; TC_NOTFOUND if it vanished, TC_ECORRUPT if its
 * name is invalid or its size differs from @expect_size (>= 0). */
TC_HIDDEN int tc__file_read(const char *dir, const char *rel,
                            int64_t expect_size, void **buf, size_t *n);
/* Open a value file for reading (validated name). */
TC_HIDDEN int tc__file_open(const char *dir, const char *rel, int *fd);
/* Remove a value file and prune its now-empty parent directories. */
TC_HIDDEN void tc__file_remove(const char *dir, const char *rel);

/* ---- settings.c ------------------------------------------------------ */

enum tc_policy {
    TC_POLICY_NONE = 0,
    TC_POLICY_LRS,
    TC_POLICY_LRU,
    TC_POLICY_LFU,
};

/* The settings a shard uses on its hot paths (a snapshot). */
struct tc_settings {
    int statistics;
    int tag_index;
    int policy;            /* enum tc_policy */
    double size_limit;     /* bytes (python may store a REAL) */
    int64_t cull_limit;    /* rows per write; 0 = no inline cull */
    int64_t min_file_size; /* disk_min_file_size */
    int64_t page_size;     /* PRAGMA page_size, for volume() */
};

#define TC_SETTING_COUNT 12

struct tc_setting_def {
    const char *name;
    int type; /* TC_INT or TC_TEXT */
    int64_t dflt_int;
    const char *dflt_text;
};

TC_HIDDEN extern const struct tc_setting_def tc__settings[TC_SETTING_COUNT];
TC_HIDDEN int tc__setting_index(const char *name);
/* Validate @value for setting @idx; normalises into @norm (copied). */
TC_HIDDEN int tc__setting_validate(int idx, const tc_data *value,
                                   tc_value *norm);
TC_HIDDEN int tc__policy_from_name(const char *name);
TC_HIDDEN const char *tc__policy_name(int policy);

/* ---- conn.c: connections, statements, transactions ------------------- */

enum tc_stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SEQ_BUMP,
    ST_SEQ_GET,
    ST_GET,
    ST_GET_SNAP,
    ST_CONTAINS,
    ST_SELECT_ROWID,
    ST_INSERT,
    ST_UPDATE,
    ST_DELETE_ROWID,
    ST_TOUCH,
    ST_INCR_UPDATE,
    ST_HITS,
    ST_MISSES,
    ST_LRU_GET,
    ST_LFU_GET,
    ST_CULL_EXPIRED_SEL,
    ST_CULL_LRS,
    ST_CULL_LRU,
    ST_CULL_LFU,
    ST_PAGE_COUNT,
    ST_SETTING_GET,
    ST_SETTING_PUT,
    ST_PEEKITEM_LAST,
    ST_PEEKITEM_FIRST,
    ST_QUEUE_LAST,
    ST_QUEUE_FIRST,
    ST_MAX_ROWID,
    ST_COUNT_
};

struct tc_conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT_];
    struct tc_conn *next; /* idle list link */
    unsigned fork_gen;    /* fork generation it was opened in */
    tc_cache *cache;      /* for the hot tier's preupdate hook */
    int shard;
    uint64_t seq; /* commit_seq of the open write transaction, else 0 */
    uint64_t seen_f, seen_prev; /* hot tier's seen_seq set before COMMIT */
    uint64_t deletes;           /* Cache rows deleted (preupdate hook) */
    uint64_t hot_epoch;         /* TiercacheMeta.hot_epoch at BEGIN */
    bool seen_set;
};

struct tc_shard {
    char *dir;    /* the shard's directory: DIR or DIR/NNN */
    char *dbpath; /* dir/cache.db */
    int index;    /* shard number (0 for a plain Cache) */
    pthread_mutex_t lock;
    struct tc_conn *idle; /* pool of idle connections (under lock) */
    struct tc_settings set;
    atomic_int slow_get; /* gets write (statistics, LRU, LFU): lock-free */
    bool has_meta;  /* TiercacheMeta exists (not for a foreign read-only) */
    bool immutable; /* read-only with no -wal/-shm: SQLite immutable=1 */
};

/* Deferred file work of one write transaction (invariant 3). */
struct tc_files {
    char (*names)[TC_FILENAME_LEN + 1];
    size_t count, cap;
};

/* A thread's open transaction on one cache (tc_begin). */
struct tc_txn {
    tc_cache *cache;
    unsigned fork_gen;
    int depth;
    struct tc_conn **conns;   /* one per shard, all BEGIN IMMEDIATE */
    struct tc_files *doomed;  /* per shard: remove after COMMIT */
    struct tc_files *created; /* per shard: remove on ROLLBACK */
    struct tc_txn *next;
};

struct pending_setting {
    int idx;
    tc_value value;
};

struct tc_cache {
    char *dir;
    int shards;  /* 0 = plain Cache, else FanoutCache shard count */
    int nshards; /* max(1, shards): entries in shard[] */
    struct tc_shard *shard;
    double timeout;
    bool timeout_set;
    bool readonly;
    bool opened;
    int want_shards;
    uint64_t hot_size;
    tc_clock_fn clock;
    void *clock_arg;
    tc_progress_fn progress;
    void *progress_arg;
    uint64_t prog_base;  /* units done by earlier shards of a bulk call */
    uint64_t prog_total; /* units expected over all shards (estimate) */
    struct pending_setting pending[TC_SETTING_COUNT];
    int npending;
    unsigned fork_gen;
    /* hot tier (hotpath.c) */
    struct tc_hot *_Atomic hot; /* NULL: cold-only */
    bool hot_read;              /* this process reads through it */
    /* Per shard: the TC_HOT_ACCESS_* mode hot hits record, or TC_HOT_COLD
     * (statistics=1: every get goes to SQLite). */
    _Atomic signed char *hot_modes;
    uint64_t foreign_check_ms;  /* hit-path foreign-writer check interval */
    atomic_uint hit_tick;       /* hits between foreign-writer checks */
    atomic_int txn_open;        /* transactions open on it, any thread */
    _Atomic uint64_t hot_epoch; /* last hot_epoch this handle acted on */
    pthread_mutex_t hot_lock;   /* serialises re-attaching */
    struct tc_hot **hot_old;    /* retired views, unmapped at close */
    size_t hot_old_count;
    /* worker (worker.c) */
    int worker_mode;            /* TC_WORKER_OFF / TC_WORKER_AUTO */
    atomic_int worker_fd1;      /* lock file for F_OFD_GETLK, fd + 1 */
    _Atomic uint64_t worker_ms; /* monotonic ms of the last liveness check */
    atomic_int worker_live;     /* result of that check */
    atomic_int worker_stop;     /* tc_worker_stop: end a pass early */
};

TC_HIDDEN extern atomic_uint tc__fork_gen;
TC_HIDDEN void tc__fork_init(void);
/* Called at the top of every public call: notice a fork, drop pools. */
TC_HIDDEN void tc__after_fork_check(tc_cache *c);
/* True if this process forked since the handle last noticed (the hit
 * path's test; tc__after_fork_check does the work). */
static inline bool tc__forked(const tc_cache *c)
{
    return c->fork_gen !=
           atomic_load_explicit(&tc__fork_gen, memory_order_relaxed);
}

/* Open a new connection to a shard with per-connection pragmas. */
TC_HIDDEN int tc__conn_open(tc_cache *c, struct tc_shard *s,
                            struct tc_conn **out);
TC_HIDDEN void tc__conn_close(struct tc_conn *k);
TC_HIDDEN sqlite3_stmt *tc__stmt(struct tc_conn *k, enum tc_stmt_id id);
/* Prepare a one-off statement (caller finalizes). */
TC_HIDDEN int tc__prepare(struct tc_conn *k, const char *sql,
                          sqlite3_stmt **st);
/* Run a statement without results (resets it). */
TC_HIDDEN int tc__exec_stmt(struct tc_conn *k, sqlite3_stmt *st,
                            const char *what);
TC_HIDDEN int tc__exec(sqlite3 *db, const char *sql, const char *what);

/*
 * A unit of work on one shard: either a plain read (no transaction) or a
 * write transaction. If the thread already has a transaction on the cache,
 * the work joins it.
 */
struct tc_work {
    tc_cache *c;
    struct tc_shard *s;
    struct tc_conn *k;
    struct tc_txn *txn; /* the thread's transaction, if joined */
    bool write;         /* this work opened BEGIN IMMEDIATE itself */
    struct tc_files own_doomed, own_created;
    struct tc_settings set; /* settings snapshot */
    bool defer_cull;        /* a batch culls once at its end, not per row */
    uint64_t seq;           /* the write transaction's commit_seq */
    double expire_time;     /* of the row tc__row_put wrote */
};

TC_HIDDEN int tc__work_read(tc_cache *c, int shard, struct tc_work *w);
TC_HIDDEN int tc__work_write(tc_cache *c, int shard, unsigned flags,
                             struct tc_work *w);
/* End the work: commit (rc >= 0) or roll back (rc < 0) a write; returns
 * the final code. Removes files as invariant 3 says. */
TC_HIDDEN int tc__work_end(struct tc_work *w, int rc);
/* Queue a file of the current work for removal after commit. */
TC_HIDDEN int tc__work_doom(struct tc_work *w, const char *rel);
/* Record a file this work created (removed on rollback). */
TC_HIDDEN int tc__work_created(struct tc_work *w, const char *rel);
TC_HIDDEN struct tc_txn *tc__txn_find(tc_cache *c);
/* Open the thread's transaction on the shards marked in @involved (all when
 * NULL), locking them in ascending order. */
TC_HIDDEN int tc__txn_begin(tc_cache *c, const bool *involved, unsigned flags);
TC_HIDDEN double tc__now(const tc_cache *c);
/* Install a new settings snapshot for a shard (under its lock). */
TC_HIDDEN void tc__shard_settings(tc_cache *c, struct tc_shard *s,
                                  const struct tc_settings *set);

TC_HIDDEN int tc__files_add(struct tc_files *f, const char *rel);
TC_HIDDEN void tc__files_free(struct tc_files *f);

/* ---- schema.c -------------------------------------------------------- */

#define TC_FORMAT_VERSION 1

/* Create or verify one shard's database (init under a file lock). */
TC_HIDDEN int tc__schema_open_shard(tc_cache *c, struct tc_shard *s);
/* Apply the persisted sqlite_* pragmas to a new connection. */
TC_HIDDEN int tc__schema_conn_pragmas(struct tc_conn *k);
/* Reload the settings snapshot of a shard from its Settings table. */
TC_HIDDEN int tc__settings_load(struct tc_conn *k, struct tc_settings *set);
/* Store a setting row and apply it (pragma / index) on @k. */
TC_HIDDEN int tc__setting_store(struct tc_conn *k, int idx, const tc_value *v);
/* Create/drop the tag index on the current connection. */
TC_HIDDEN int tc__tag_index(struct tc_conn *k, bool on);
TC_HIDDEN int tc__policy_index(struct tc_conn *k, int policy);
/* Determine the layout of @dir: 0 plain, N fanout shards, -1 none. */
TC_HIDDEN int tc__schema_detect(const char *dir, int *shards);

/* ---- ops.c: diskcache semantics on one shard -------------------------- */

struct tc_store {
    int mode;
    int64_t size;
    char filename[TC_FILENAME_LEN + 1]; /* "" = inline */
    const tc_data *inline_val;          /* inline value to bind */
};

/* Prepare storage for a value: a file for large ones (outside any txn). */
TC_HIDDEN int tc__store_prepare(tc_cache *c, struct tc_shard *s,
                                const tc_data *val, struct tc_store *out);
TC_HIDDEN int tc__store_prepare_fd(tc_cache *c, struct tc_shard *s, int fd,
                                   struct tc_store *out);
/* Drop a prepared file that was never committed. */
TC_HIDDEN void tc__store_discard(struct tc_shard *s, struct tc_store *st);
/* Write the row for @key inside @w (set semantics), with cull. */
TC_HIDDEN int tc__row_put(struct tc_work *w, const tc_data *key,
                          const struct tc_store *st, double expire,
                          const tc_data *tag, bool only_if_absent);
/* Load value/tag/expiry from the current row of a statement returning
 * (rowid, expire_time, tag, mode, filename, value, size). */
TC_HIDDEN int tc__row_fetch(struct tc_shard *s, sqlite3_stmt *st, int base,
                            tc_item *out);
TC_HIDDEN int tc__cull_inline(struct tc_work *w, double now, int64_t limit);
TC_HIDDEN int tc__volume(struct tc_work *w, uint64_t *bytes);
/* expire_time for a relative @expire at @now (TC_NO_EXPIRE stays). */
TC_HIDDEN double tc__expire_time(double now, double expire);

TC_HIDDEN int tc__op_get(tc_cache *c, int shard, const tc_data *key,
                         tc_item *out, unsigned flags);
TC_HIDDEN int tc__op_set(tc_cache *c, int shard, const tc_data *key,
                         const tc_data *val, int fd, double expire,
                         const tc_data *tag, bool add, unsigned flags);
TC_HIDDEN int tc__op_set_in(struct tc_work *w, const tc_data *key,
                            const struct tc_store *st, double expire,
                            const tc_data *tag);
TC_HIDDEN int tc__op_delete_in(struct tc_work *w, const tc_data *key);

/* ---- maint.c / check.c / iter.c --------------------------------------- */

TC_HIDDEN int tc__shard_expire(tc_cache *c, int shard, double now,
                               uint64_t *count, unsigned flags);
TC_HIDDEN int tc__shard_evict(tc_cache *c, int shard, const tc_data *tag,
                              uint64_t *count, unsigned flags);
TC_HIDDEN int tc__shard_clear(tc_cache *c, int shard, uint64_t *count,
                              unsigned flags);
TC_HIDDEN int tc__shard_cull(tc_cache *c, int shard, uint64_t *count,
                             unsigned flags);
/* Settings.count of one shard (0 on error): progress estimates. */
TC_HIDDEN uint64_t tc__shard_length(tc_cache *c, int shard);
TC_HIDDEN int tc__shard_check(tc_cache *c, int shard, int fix, tc_warning_fn fn,
                              void *arg, uint64_t *warnings, unsigned flags);

/* ---- hotpath.c: the hot tier behind the same calls ------------------- */

struct tc_hot;
TC_HIDDEN void tc__hot_open(tc_cache *c);
TC_HIDDEN void tc__hot_close(tc_cache *c);
TC_HIDDEN void tc__hot_after_fork(tc_cache *c);
TC_HIDDEN void tc__hot_conn_init(tc_cache *c, struct tc_conn *k);
/* Enough to look a key up in the hot tier: a hit proves the key valid (it
 * matched a stored, validated key byte for byte); a miss is validated in
 * full before SQLite sees it. */
static inline bool tc__key_plausible(const tc_data *key)
{
    if (!key || (!key->ptr && key->len))
        return false;
    if (key->type == TC_TEXT || key->type == TC_BYTES)
        return key->len <= TC_MAX_KEY_BYTES;
    return (key->type == TC_INT || key->type == TC_REAL) && key->len == 8;
}

/* The shard a hot-tier read names: -1 when the key implies it (TEXT and
 * BYTES keys of a FanoutCache), which spares a hit diskcache's shard
 * hash; numeric keys name theirs (shm/hot.h, struct tc_hot_read). */
static inline int tc__hot_shard_of(const tc_cache *c, const tc_data *key)
{
    if (c->shards == 0)
        return 0;
    if (key->type == TC_TEXT || key->type == TC_BYTES)
        return -1;
    return (int)(tc__fanout_hash(key) % (uint64_t)c->shards);
}

/* tc_get and tc_get_buf past the hot tier (their hit paths are in
 * hotpath.c): argument errors, a fork to notice, and gets the hot tier did
 * not serve (@asked: it was asked and missed). */
TC_HIDDEN int tc__get_cold(tc_cache *c, const tc_data *key, tc_item *out,
                           unsigned flags, bool asked);
TC_HIDDEN int tc__get_buf_cold(tc_cache *c, const tc_data *key, void *buf,
                               size_t cap, size_t *len, int *type,
                               double *expire_time, unsigned flags, bool asked);
/* TC_HOT_HIT (0), TC_HOT_MISS (1) or TC_HOT_TOOSMALL (2) of shm/hot.h. */
TC_HIDDEN int tc__hot_get(tc_cache *c, int shard, const tc_data *key,
                          tc_item *out);
TC_HIDDEN int tc__hot_get_buf(tc_cache *c, int shard, const tc_data *key,
                              void *buf, size_t cap, size_t *len, int *type,
                              double *expire);
TC_HIDDEN bool tc__hot_fill_begin(tc_cache *c, int shard, const tc_data *key,
                                  tc_item *out, bool *hit);
TC_HIDDEN void tc__hot_fill_end(tc_cache *c, int shard, const tc_data *key,
                                const tc_item *it, bool found, uint64_t snap);
TC_HIDDEN void tc__hot_write_begin(tc_cache *c, struct tc_conn *k);
TC_HIDDEN void tc__hot_write_abort(tc_cache *c, struct tc_conn *k);
/* Fold the hot tier's access data of @w's shard into access_time and
 * access_count (before culling by LRU/LFU). Without @force, at most once
 * a second per shard. */
TC_HIDDEN int tc__hot_fold(struct tc_work *w, bool force);
/* Just before COMMIT of @k's write transaction. */
TC_HIDDEN void tc__hot_precommit(tc_cache *c, struct tc_conn *k);
TC_HIDDEN void tc__hot_publish(tc_cache *c, int shard, const tc_data *key,
                               const tc_data *val, const tc_data *tag,
                               double expire, uint64_t n);
/* Process identity for recipe records (shm/hot.h tc_hot_self_id and
 * tc_hot_id_alive through the handle's current segment). */
TC_HIDDEN bool tc__hot_self_id(tc_cache *c, uint32_t *slot, uint32_t *gen,
                               uint64_t *seg);
TC_HIDDEN int tc__hot_id_alive(tc_cache *c, uint32_t slot, uint32_t gen,
                               uint64_t seg);
TC_HIDDEN void tc__hot_floor_repair(tc_cache *c, struct tc_hot *h);
/* A get straight from SQLite (no hot tier); @snap (may be NULL) receives
 * the commit sequence of the read snapshot. */
TC_HIDDEN int tc__op_get_cold(tc_cache *c, int shard, const tc_data *key,
                              tc_item *out, uint64_t *snap);

/* ---- worker.c: the background worker's library side ------------------ */

/* Names of the worker's files in the cache directory. Both contain
 * "cache.db", so tc_check and python-diskcache's check() skip them. */
#define TC_WORKER_LOCK_NAME   "cache.db-tiercached.lock"
#define TC_WORKER_STATUS_NAME "cache.db-tiercached.status"

/* After a successful open: start a worker if asked (TC_WORKER_AUTO). */
TC_HIDDEN void tc__worker_open(tc_cache *c);
/* At close: drop the lock-file descriptor used for liveness checks. */
TC_HIDDEN void tc__worker_close(tc_cache *c);
/* True while some process holds the cache's worker lock. Checked with
 * F_OFD_GETLK at most once a second per handle; cached in between. */
TC_HIDDEN bool tc__worker_live(tc_cache *c);

/* maint.c, for the worker: like tc__shard_expire / tc__shard_cull, but
 * stopping between batches once tc_worker_stop was called; the cull does
 * not expire first and takes 100 rows per transaction while far over. */
TC_HIDDEN int tc__shard_expire_stoppable(tc_cache *c, int shard, double now,
                                         uint64_t *count);
TC_HIDDEN int tc__shard_cull_stoppable(tc_cache *c, int shard, uint64_t *count);
/* hotpath.c, for the worker: collect the shard's unfolded hot accesses,
 * then write them in transactions of at most @batch rows. */
TC_HIDDEN int tc__hot_fold_batched(tc_cache *c, int shard, unsigned batch,
                                   uint64_t *folded);

#endif /* TC_INTERNAL_H */
