/*
 * tiercache.h - the one public header of tiercache.
 *
 * tiercache is a persistent key-value cache shared by every process on one
 * host. Its cold tier is a set of SQLite databases in python-diskcache 5.x
 * format (a directory written by one is read by the other); a shared-memory
 * hot tier slots in front of it behind the same calls.
 *
 * Conventions used by every function below:
 *
 *  - Return codes: TC_OK (0) on success, a positive code for a normal outcome
 *    (TC_NOTFOUND, TC_EXISTS), a negative code for an error. tc_strerror()
 *    and tc_errname() name any code; tc_errmsg() gives the detail of the
 *    last error raised in the calling thread.
 *  - Keys, values and tags are typed data: (pointer, length, type) in a
 *    tc_data. TC_INT points at an int64_t and TC_REAL at a double (len 8).
 *  - Ownership words: "borrowed" (valid for the duration of the call),
 *    "copied", "caller frees with tc_free()/tc_value_clear()",
 *    "valid until X".
 *  - Times are Unix seconds (double), as python's time.time(). An expire
 *    argument is seconds from now; TC_NO_EXPIRE means "never expires";
 *    zero or negative values store an item that is already expired (and
 *    that the write's own inline cull may remove at once, as in
 *    python-diskcache).
 *
 * Synchronization table (which calls may overlap):
 *
 *                       same handle,     other handles,   other processes
 *                       other threads    same process
 *   reads (get, ...)         yes              yes               yes
 *   writes (set, ...)        yes              yes               yes
 *   tc_begin..tc_commit      per thread       yes               yes
 *   tc_close                 no (must be the last call on the handle)
 *
 * A handle is safe for many threads: each thread takes a SQLite connection
 * from the handle's pool for the duration of a call (or of its transaction).
 * After fork() the child may keep using a handle opened by its parent: the
 * handle notices the fork and opens fresh connections; the parent's
 * connections are abandoned in the child, never used or closed there.
 */
#ifndef TIERCACHE_H
#define TIERCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_API __attribute__((visibility("default")))

#define TC_VERSION_MAJOR 0
#define TC_VERSION_MINOR 1
#define TC_VERSION_PATCH 0

/* tc_version - the library's version string, "MAJOR.MINOR.PATCH". */
TC_API const char *tc_version(void);

/* ===================================================================== */
/* Return codes: one table, three outputs (enum, tc_strerror, tc_errname) */

#define TC_RC_MAP(X)                                                    \
    X(OK, 0, "success")                                                 \
    X(NOTFOUND, 1, "key not found")                                     \
    X(EXISTS, 2, "key already present")                                 \
    X(EINVAL, -1, "invalid argument")                                   \
    X(ENOMEM, -2, "out of memory")                                      \
    X(ETOOBIG, -3, "key or value larger than the documented maximum")   \
    X(EBUSY, -5, "database busy past the timeout")                      \
    X(EIO, -6, "i/o error")                                             \
    X(ECORRUPT, -7, "database or value file is corrupt")                \
    X(EVERSION, -8, "written by an incompatible version")               \
    X(ECLOSED, -9, "handle is closed")                                  \
    X(EINTERNAL, -10, "internal error")                                 \
    X(ETYPE, -11, "stored value has the wrong type for this operation") \
    X(EUNSUPPORTED, -12, "unsupported: python pickle")                  \
    X(ERANGE, -13, "number out of the 64-bit range")                    \
    X(ETOOSMALL, -14, "caller's buffer is too small")                   \
    X(ENOCACHE, -15, "no cache in this directory")                      \
    X(EREADONLY, -16, "cache is opened read-only")                      \
    X(ENOSPC, -17, "no space left on device")                           \
    X(EPERM, -18, "permission denied")

enum tc_rc {
#define TC_RC_ENUM(name, code, msg) TC_##name = code,
    TC_RC_MAP(TC_RC_ENUM)
#undef TC_RC_ENUM
};

/* tc_strerror - a lowercase message for any return code (never NULL). */
TC_API const char *tc_strerror(int rc);
/* tc_errname - the stable name of a return code ("NOTFOUND", "EBUSY"...). */
TC_API const char *tc_errname(int rc);

/* ===================================================================== */
/* Typed data                                                            */

/*
 * Types of keys, values and tags. The numbers are tiercache's own; the
 * mapping to python-diskcache is: TC_BYTES = bytes (BLOB), TC_TEXT = str
 * (TEXT, valid UTF-8 required), TC_INT = int (INTEGER), TC_REAL = float
 * (REAL), TC_MSGPACK = MessagePack bytes stored with tiercache's own value
 * mode 16 (python-diskcache reads such values as None). TC_NONE is "no
 * tag" and never a valid key or value.
 */
enum tc_type {
    TC_NONE = 0,
    TC_BYTES = 1,
    TC_TEXT = 2,
    TC_INT = 3,
    TC_REAL = 4,
    TC_MSGPACK = 16,
};

/* A borrowed input datum. For TC_INT ptr points at an int64_t, for TC_REAL
 * at a double, and len is 8; for TC_BYTES/TEXT/MSGPACK ptr may be NULL only
 * when len is 0. */
typedef struct tc_data {
    const void *ptr;
    size_t len;
    int type; /* enum tc_type */
} tc_data;

/* A datum handed out by tiercache. Buffers are owned by the tc_value and
 * released by tc_value_clear(). For TC_TEXT/BYTES/MSGPACK, ptr holds len
 * bytes followed by a NUL (not counted in len); TC_INT and TC_REAL also
 * fill i or d (and ptr points at that field). */
typedef struct tc_value {
    int type; /* enum tc_type; TC_NONE when absent */
    void *ptr;
    size_t len;
    int64_t i;
    double d;
} tc_value;

/* Everything a get can report about an item. Initialise with
 * TC_ITEM_INIT; release with tc_item_clear(). */
typedef struct tc_item {
    tc_value key;       /* filled by pull/peek/peekitem/iteration */
    tc_value value;     /* the value */
    tc_value tag;       /* TC_NONE when the item has no tag */
    double expire_time; /* Unix seconds, or TC_NO_EXPIRE (never) */
} tc_item;

#define TC_NO_EXPIRE (__builtin_inf())
#define TC_VALUE_INIT            \
    {                            \
        TC_NONE, NULL, 0, 0, 0.0 \
    }
#define TC_ITEM_INIT                                     \
    {                                                    \
        TC_VALUE_INIT, TC_VALUE_INIT, TC_VALUE_INIT, 0.0 \
    }

/* Largest key accepted, in bytes (TEXT/BYTES); larger keys get TC_ETOOBIG.
 * Empty keys are valid, as in python-diskcache. */
#define TC_MAX_KEY_BYTES (1u << 20)

/* tc_is_text - 1 if @len bytes at @ptr are strict UTF-8 (no overlong
 * forms, no surrogates, at most U+10FFFF): what python's str codec accepts
 * and what a TC_TEXT datum must hold. Bindings use it to choose TEXT or
 * BYTES for a string. */
TC_API int tc_is_text(const void *ptr, size_t len);

/* Helpers to build tc_data from C values (the result borrows its input). */
TC_API tc_data tc_bytes(const void *ptr, size_t len);
TC_API tc_data tc_text(const char *nul_terminated);
TC_API tc_data tc_textn(const char *ptr, size_t len);
TC_API tc_data tc_int(const int64_t *v);
TC_API tc_data tc_real(const double *v);

/* tc_value_clear - free the buffers of a tc_value and reset it to TC_NONE.
 * NULL-safe. */
TC_API void tc_value_clear(tc_value *v);
/* tc_item_clear - tc_value_clear on each part. NULL-safe. */
TC_API void tc_item_clear(tc_item *it);
/* tc_free - free any other buffer that tiercache hands out. NULL-safe. */
TC_API void tc_free(void *p);

/* ===================================================================== */
/* Lifecycle: create -> setters -> open -> ... -> close                  */

typedef struct tc_cache tc_cache;

/* Open flags. */
#define TC_OPEN_READONLY 0x1u /* never write; fails if the cache is missing */
#define TC_OPEN_NOCREATE 0x2u /* fail with TC_ENOCACHE if no cache exists */

/* Per-call flags. */
#define TC_RETRY 0x1u /* on a busy timeout, try again instead of TC_EBUSY */

/* Shard count special values for tc_set_shards(). */
#define TC_SHARDS_AUTO  (-1) /* default: recorded count, or 8 for new */
#define TC_SHARDS_PLAIN 0    /* a plain Cache: DIR/cache.db */

/*
 * tc_create - allocate a closed handle.
 * @out: receives the handle; the caller releases it with tc_close().
 * Returns TC_OK or TC_ENOMEM.
 */
TC_API int tc_create(tc_cache **out);

/*
 * tc_set_shards - choose Cache or FanoutCache for a new directory.
 * @shards: TC_SHARDS_AUTO, TC_SHARDS_PLAIN, or 1..999 FanoutCache shards.
 * An existing directory keeps its layout; opening it with another explicit
 * count fails with TC_EINVAL. Returns TC_OK or TC_EINVAL.
 */
TC_API int tc_set_shards(tc_cache *c, int shards);

/*
 * tc_set_timeout - SQLite busy timeout in seconds (>= 0). Default 60 for a
 * Cache and 0.010 for a FanoutCache, as python-diskcache.
 */
TC_API int tc_set_timeout(tc_cache *c, double seconds);

/*
 * tc_set_setting - set a python-diskcache setting to persist at open.
 * @name: borrowed; one of statistics, tag_index, eviction_policy,
 *        size_limit, cull_limit, sqlite_auto_vacuum, sqlite_cache_size,
 *        sqlite_journal_mode, sqlite_mmap_size, sqlite_synchronous,
 *        disk_min_file_size, disk_pickle_protocol. Unknown names and bad
 *        values fail here with TC_EINVAL (tc_errmsg names the problem).
 * @value: borrowed; TC_INT, TC_REAL or TC_TEXT as the setting needs.
 * For a FanoutCache, size_limit is the total; each shard gets its part.
 * Settings not given keep their persisted value (or the default).
 */
TC_API int tc_set_setting(tc_cache *c, const char *name, const tc_data *value);

/*
 * tc_set_hot_size - bytes of shared memory for the hot tier.
 * The size is a property of the cache: the value given when the cache
 * directory is created is recorded in its metadata (default 64 MiB) and
 * every later open uses the recorded size. 0 means "this process does not
 * read through the hot tier"; its writes still invalidate and publish
 * through an existing segment, so other processes stay coherent.
 */
TC_API int tc_set_hot_size(tc_cache *c, uint64_t bytes);

/* A clock returning Unix seconds; tests inject one to control expiry. */
typedef double (*tc_clock_fn)(void *arg);
/* tc_set_clock - use @fn instead of the system clock (NULL restores it). */
TC_API int tc_set_clock(tc_cache *c, tc_clock_fn fn, void *arg);

/*
 * tc_open - open (creating if needed) the cache in @dir.
 * @dir: borrowed. A directory holding cache.db is a Cache; one holding
 *       000/cache.db is a FanoutCache; a new one follows tc_set_shards().
 * Opening is race-free when many processes open one directory at once, and
 * an open that changes nothing writes nothing. A directory this process
 * cannot write opens read-only. Returns TC_OK, TC_EINVAL, TC_ENOCACHE,
 * TC_EBUSY, TC_EIO, TC_ECORRUPT, TC_EPERM, TC_EVERSION.
 */
TC_API int tc_open(tc_cache *c, const char *dir, unsigned flags);

/* tc_close - close the handle and free it. NULL-safe. Must be the last call
 * on the handle in every thread. */
TC_API void tc_close(tc_cache *c);

/* tc_errmsg - detail of the last error in the calling thread (never NULL;
 * valid until the next tiercache call in this thread). */
TC_API const char *tc_errmsg(void);

/* tc_directory - the directory the handle was opened on (valid until
 * tc_close). */
TC_API const char *tc_directory(const tc_cache *c);
/* tc_shard_count - 0 for a plain Cache, else the FanoutCache shard count. */
TC_API int tc_shard_count(const tc_cache *c);
/* tc_is_readonly - 1 if the handle cannot write. */
TC_API int tc_is_readonly(const tc_cache *c);
/* tc_now - the handle's clock (Unix seconds). */
TC_API double tc_now(const tc_cache *c);

/* ===================================================================== */
/* Core operations (python-diskcache Cache semantics)                    */

/*
 * tc_set - store @val under @key.
 * @key, @val, @tag: borrowed (@tag may be NULL: no tag). Values at or above
 *       disk_min_file_size are written to a file outside the transaction.
 * @expire: seconds from now, or TC_NO_EXPIRE.
 * Returns TC_OK or an error; nothing already stored is lost on error.
 */
TC_API int tc_set(tc_cache *c, const tc_data *key, const tc_data *val,
                  double expire, const tc_data *tag, unsigned flags);

/* tc_set_fd - like tc_set, but the value is the contents of @fd read to its
 * end, always stored in a file as bytes (python-diskcache read=True). */
TC_API int tc_set_fd(tc_cache *c, const tc_data *key, int fd, double expire,
                     const tc_data *tag, unsigned flags);

/* tc_add - store only if no live item has @key: TC_OK or TC_EXISTS. */
TC_API int tc_add(tc_cache *c, const tc_data *key, const tc_data *val,
                  double expire, const tc_data *tag, unsigned flags);

/*
 * tc_get - look up a live item.
 * @out: on TC_OK receives copies of value, tag and expire_time (the caller
 *       clears it with tc_item_clear); untouched on any other return.
 * Returns TC_OK, TC_NOTFOUND (missing, expired, or its file vanished),
 * TC_EUNSUPPORTED (a pickled value), or an error.
 */
TC_API int tc_get(tc_cache *c, const tc_data *key, tc_item *out,
                  unsigned flags);

/*
 * tc_get_buf - like tc_get, but copies the value into a caller buffer and
 * never allocates (the LuaJIT FFI path).
 * @buf, @cap: caller's buffer. TC_INT/TC_REAL are written as 8 native bytes.
 * @len: receives the value's length; on TC_ETOOSMALL the length needed.
 * @type: receives the value's type (may be NULL).
 * @expire_time: receives the expiry (may be NULL).
 */
TC_API int tc_get_buf(tc_cache *c, const tc_data *key, void *buf, size_t cap,
                      size_t *len, int *type, double *expire_time,
                      unsigned flags);

/*
 * tc_read - a readable descriptor on the value of a live item: the value's
 * own file for file-backed values, an anonymous in-memory file holding a
 * copy for inline ones. @fd receives it; the caller closes it.
 */
TC_API int tc_read(tc_cache *c, const tc_data *key, int *fd, unsigned flags);

/* tc_contains - TC_OK if a live item has @key, TC_NOTFOUND otherwise. */
TC_API int tc_contains(tc_cache *c, const tc_data *key);

/* tc_touch - set a live item's expiry: TC_OK or TC_NOTFOUND. */
TC_API int tc_touch(tc_cache *c, const tc_data *key, double expire,
                    unsigned flags);

/*
 * tc_incr - add @delta (TC_INT or TC_REAL) to a numeric value.
 * @deflt: value assumed for a missing or expired key; NULL makes a missing
 *         key TC_NOTFOUND. Creating the item clears its expiry and tag.
 * @out: may be NULL; receives the new value.
 * Returns TC_OK, TC_NOTFOUND, TC_ETYPE (stored value is not a number),
 * TC_ERANGE (integer overflow), or an error.
 */
TC_API int tc_incr(tc_cache *c, const tc_data *key, const tc_data *delta,
                   const tc_data *deflt, tc_value *out, unsigned flags);

/* tc_pop - remove a live item and return it in @out (may be NULL). */
TC_API int tc_pop(tc_cache *c, const tc_data *key, tc_item *out,
                  unsigned flags);

/* tc_delete - remove a live item: TC_OK or TC_NOTFOUND. */
TC_API int tc_delete(tc_cache *c, const tc_data *key, unsigned flags);

/* Sides for push/pull/peek. */
#define TC_BACK  0
#define TC_FRONT 1

/*
 * tc_push - append @val to the queue named @prefix (NULL: integer keys).
 * @key_out: may be NULL; receives the generated key. Plain Cache only
 * (TC_EINVAL on a FanoutCache, as python-diskcache has no push there).
 */
TC_API int tc_push(tc_cache *c, const tc_data *val, const char *prefix,
                   int side, double expire, const tc_data *tag,
                   tc_value *key_out, unsigned flags);
/* tc_pull - remove and return the first (TC_FRONT) or last item of a queue;
 * TC_NOTFOUND when empty. Expired items met on the way are deleted. */
TC_API int tc_pull(tc_cache *c, const char *prefix, int side, tc_item *out,
                   unsigned flags);
/* tc_peek - like tc_pull but leaves the live item in place. */
TC_API int tc_peek(tc_cache *c, const char *prefix, int side, tc_item *out,
                   unsigned flags);
/* tc_peekitem - the newest (@last != 0) or oldest item by insertion order;
 * TC_NOTFOUND when empty. */
TC_API int tc_peekitem(tc_cache *c, int last, tc_item *out, unsigned flags);

/* ===================================================================== */
/* Batches and transactions                                              */

/* tc_get_many - look up @n keys; @outs[i] and @rcs[i] get each result. */
TC_API int tc_get_many(tc_cache *c, const tc_data *keys, size_t n,
                       tc_item *outs, int *rcs, unsigned flags);
/* tc_set_many - store @n pairs in one transaction (per shard, all shards
 * locked in order); all or nothing. */
TC_API int tc_set_many(tc_cache *c, const tc_data *keys, const tc_data *vals,
                       size_t n, double expire, const tc_data *tag,
                       unsigned flags);
/* tc_delete_many - delete @n keys in one transaction; @deleted (may be
 * NULL) receives how many existed. */
TC_API int tc_delete_many(tc_cache *c, const tc_data *keys, size_t n,
                          uint64_t *deleted, unsigned flags);

/*
 * tc_begin - open a write transaction in the calling thread (on every
 * shard, in order). Calls made by this thread on this handle until the
 * matching tc_commit/tc_rollback run inside it and see its writes.
 * Nestable: only the outermost commit commits. Returns TC_OK or TC_EBUSY.
 */
TC_API int tc_begin(tc_cache *c, unsigned flags);
TC_API int tc_commit(tc_cache *c);
TC_API int tc_rollback(tc_cache *c);

/* ===================================================================== */
/* Bulk maintenance: each returns the number of items removed in @count    */

/* tc_expire - remove items whose expiry is before @now (NaN: the clock). */
TC_API int tc_expire(tc_cache *c, double now, uint64_t *count, unsigned flags);
/* tc_evict - remove every item with @tag. */
TC_API int tc_evict(tc_cache *c, const tc_data *tag, uint64_t *count,
                    unsigned flags);
/* tc_clear - remove every item. */
TC_API int tc_clear(tc_cache *c, uint64_t *count, unsigned flags);
/* tc_cull - expire, then remove items by eviction policy until volume() is
 * at most size_limit (works even with cull_limit 0). */
TC_API int tc_cull(tc_cache *c, uint64_t *count, unsigned flags);

/* Progress callback for long operations: @done of @total units. */
typedef void (*tc_progress_fn)(void *arg, uint64_t done, uint64_t total);
TC_API int tc_set_progress(tc_cache *c, tc_progress_fn fn, void *arg);

/* Warning callback for tc_check: @kind is "integrity", "missing-file",
 * "file-size", "unknown-file", "empty-dir", "count" or "size". */
typedef void (*tc_warning_fn)(void *arg, const char *kind, const char *msg);

/*
 * tc_check - check the database and the value files (python-diskcache's
 * check). @warnings receives how many problems were found; @fn (may be
 * NULL) is called once per problem. With @fix, problems are repaired.
 */
TC_API int tc_check(tc_cache *c, int fix, tc_warning_fn fn, void *arg,
                    uint64_t *warnings, unsigned flags);

/* ===================================================================== */
/* Statistics, size, settings                                            */

/* tc_stats - hits and misses before any reset; then reset them if @reset
 * and set the statistics setting to @enable. */
TC_API int tc_stats(tc_cache *c, int enable, int reset, uint64_t *hits,
                    uint64_t *misses);
/* tc_volume - bytes used: database pages plus value files. */
TC_API int tc_volume(tc_cache *c, uint64_t *bytes);
/* tc_length - number of items, expired ones included (Settings.count). */
TC_API int tc_length(tc_cache *c, uint64_t *count);

/* tc_setting_get - the persisted value of a setting (read fresh). On a
 * FanoutCache it is shard 0's value, so size_limit is the per-shard limit
 * (python-diskcache's FanoutCache.reset('size_limit') answers the same). */
TC_API int tc_setting_get(tc_cache *c, const char *name, tc_value *out);
/* tc_setting_put - store a setting now and apply it (python's reset(k, v)).
 * For a FanoutCache size_limit is the total, split across shards. */
TC_API int tc_setting_put(tc_cache *c, const char *name, const tc_data *value);

TC_API int tc_create_tag_index(tc_cache *c);
TC_API int tc_drop_tag_index(tc_cache *c);

/* ===================================================================== */
/* Iteration (no transaction; expired items included, as diskcache)      */

typedef struct tc_iter tc_iter;

#define TC_ITER_INSERTION 0 /* by rowid: insertion order */
#define TC_ITER_KEYS      1 /* by SQLite's (key, raw) order; plain Cache */
#define TC_ITER_REVERSE   0x100

/* tc_iter_open - start an iteration; the caller ends it with
 * tc_iter_close. A FanoutCache iterates its shards in order. */
TC_API int tc_iter_open(tc_cache *c, int order, tc_iter **out);
/* tc_iter_next - the next key into @key (cleared first): TC_OK, or
 * TC_NOTFOUND at the end. Keys that are python pickles give
 * TC_EUNSUPPORTED for that key and iteration may continue. */
TC_API int tc_iter_next(tc_iter *it, tc_value *key);
TC_API void tc_iter_close(tc_iter *it);

/* ===================================================================== */
/* Introspection                                                         */

/* tc_fanout_hash - python-diskcache's Disk.hash of a key (the shard is
 * this value modulo the shard count). */
TC_API int tc_fanout_hash(const tc_data *key, uint64_t *hash);

/* ===================================================================== */
/* Hot tier (shared-memory segment in front of SQLite)                   */

/* Counters summed over every process's own record, plus the segment's
 * occupancy. Counters of processes that exited are kept in the segment
 * until their slot is reused. hits and misses are counted without a locked
 * instruction: exact per single-threaded process, they may miss a few
 * counts when threads of one process read at the same instant. */
typedef struct tc_hot_stats {
    int attached;        /* 1 if this handle has a segment */
    int reading;         /* 1 if this handle reads through it */
    uint64_t size;       /* segment bytes (hot_size) */
    uint64_t free_bytes; /* bytes in free chunks and unassigned pages */
    uint64_t items;      /* published items */
    uint32_t processes;  /* live process slots */
    uint64_t hits, misses, fills, fill_rejects, publishes, invalidations,
        retries, evictions, lock_repairs, recovered;
} tc_hot_stats;

/* tc_hot_stats_get - fill @out (zeroed when the cache has no segment). */
TC_API int tc_hot_stats_get(tc_cache *c, tc_hot_stats *out);

/*
 * tc_hot_check - check the segment's structure (every offset, length,
 * lock and chunk state) and compare every live hot entry with SQLite.
 * @problems receives the count; @fn (may be NULL) gets each as kind
 * "hot-structure" or "hot-stale". Thread-safe; reads only.
 */
TC_API int tc_hot_check(tc_cache *c, tc_warning_fn fn, void *arg,
                        uint64_t *problems);

/*
 * tc_hot_recover - one recovery pass: find process slots whose owner died
 * (kernel-released byte locks), release the bucket locks, fill leases and
 * chunks they held, and bring each shard's fill floor back in line with
 * SQLite. @recovered receives the number of dead slots recovered.
 */
TC_API int tc_hot_recover(tc_cache *c, uint64_t *recovered);

/* tc_hot_drop - remove the segment of the cache in @dir (if any), so the
 * next open creates a fresh one. Processes still attached keep their
 * mapping until they notice the segment is retired. */
TC_API int tc_hot_drop(const char *dir);

/* tc_hot_gc - remove segments whose cache directory no longer exists (or
 * is another directory now). @removed receives the count. */
TC_API int tc_hot_gc(uint64_t *removed);

/* tc_commit_seq - the commit sequence of @shard (0 for a plain Cache).
 * Every write transaction moves it forward: by one at its start, and by
 * one more per changed row through triggers, so foreign writers (python,
 * the sqlite3 shell) move it too. A difference counts writes, not
 * transactions exactly. */
TC_API int tc_commit_seq(tc_cache *c, int shard, uint64_t *seq);

/* ===================================================================== */
/* Worker (tiercached)                                                   */
/*
 * One worker process per cache directory expires, culls, folds the hot
 * tier's access data, checkpoints the WAL and recovers dead processes'
 * hot-tier state (tools/tiercached.c). It holds an OFD write lock on
 * DIR/cache.db-tiercached.lock while it runs and writes its status to
 * DIR/cache.db-tiercached.status after every pass. While a worker is
 * live, writers skip their inline cull unless a shard is more than twice
 * over its size_limit; without one they cull as python-diskcache does.
 */

/* Modes for tc_set_worker(). */
#define TC_WORKER_OFF  0 /* default: never start a worker */
#define TC_WORKER_AUTO 1 /* tc_open starts tiercached when none runs */

/*
 * tc_set_worker - before tc_open: with TC_WORKER_AUTO, a successful
 * writable open starts `tiercached DIR --syslog` when no process holds the
 * worker lock. The program is $TIERCACHED if set, else tiercached in the
 * library's own directory or in ../bin beside it, else beside the running
 * executable. It is double-forked with setsid, keeps no inherited
 * descriptor beyond 0-2 (which point at /dev/null), and runs as the
 * opening user. A worker that cannot be started is not an error: the
 * cache stays bounded by inline culling. Returns TC_OK or TC_EINVAL.
 */
TC_API int tc_set_worker(tc_cache *c, int mode);

/* The status record a worker writes after each pass (all counts are of
 * the last pass unless named total_). */
typedef struct tc_worker_status {
    int64_t pid;              /* the worker's process id */
    double started;           /* Unix seconds the worker started */
    double last_pass;         /* Unix seconds (worker's clock) at its end */
    double duration_s;        /* wall time of the last pass, seconds */
    uint64_t passes;          /* passes since the worker started */
    uint64_t expired, culled; /* items removed by the last pass */
    uint64_t folded;          /* hot accesses written to SQLite */
    uint64_t recovered;       /* dead process slots recovered */
    uint64_t errors;          /* errors in the last pass */
    uint64_t total_expired, total_culled, total_errors;
    char last_error[160]; /* "" or the last error's tc_errmsg() */
} tc_worker_status;

/*
 * tc_worker_lock - take the worker lock of the cache in @dir without
 * waiting. @fd receives the lock file's descriptor on TC_OK (closing it
 * releases the lock; it is close-on-exec). On TC_EXISTS another process
 * holds it and @holder (may be NULL) receives its pid as recorded in the
 * file (0 if unknown). Returns TC_OK, TC_EXISTS or an error.
 */
TC_API int tc_worker_lock(const char *dir, int *fd, int64_t *holder);

/* tc_worker_live - 1 if a worker holds the lock of @c's directory, else 0
 * (checked now, not cached). */
TC_API int tc_worker_live(tc_cache *c);

/*
 * tc_worker_pass - one worker pass over every shard: expire (batches of
 * 100, one transaction each), fold hot accesses (LRU/LFU shards, 1000 rows
 * per transaction), cull to size_limit by the eviction policy (1-100 rows
 * per transaction, sized from the excess), a PASSIVE WAL checkpoint; then
 * tc_hot_recover.
 * Errors in one step are counted and the pass goes on. @st (may be NULL)
 * receives this pass's counts and duration; its pid/started/passes/total_
 * fields are left to the caller. Returns TC_OK, or the first error.
 * Concurrency: any process; normally only the lock holder calls it.
 */
TC_API int tc_worker_pass(tc_cache *c, tc_worker_status *st);

/*
 * tc_hot_fold - write the hot tier's unfolded LRU/LFU access data of every
 * shard into access_time / access_count: the accesses are copied out of
 * the segment first, then written at most @batch rows (0: 1000) per write
 * transaction. @folded (may be NULL) receives the rows written. A no-op
 * without a segment or on shards whose policy is not LRU/LFU. Returns
 * TC_OK or the first error (EBUSY, EIO...).
 */
TC_API int tc_hot_fold(tc_cache *c, unsigned batch, uint64_t *folded);

/* tc_worker_stop - make the running (or next) tc_worker_pass on @c return
 * after its current batch. Async-signal-safe (one atomic store); cleared
 * by tc_worker_resume. */
TC_API void tc_worker_stop(tc_cache *c);
TC_API void tc_worker_resume(tc_cache *c);

/* tc_worker_status_put - write @st as the directory's status record
 * (atomically replaced). tc_worker_status_get - read it: TC_OK, or
 * TC_NOTFOUND when no worker ever wrote one. */
TC_API int tc_worker_status_put(tc_cache *c, const tc_worker_status *st);
TC_API int tc_worker_status_get(tc_cache *c, tc_worker_status *out);

/* ===================================================================== */
/* Deque: python-diskcache's persistent deque over a plain Cache         */
/*
 * Stored exactly as python-diskcache stores a Deque: the items of a plain
 * Cache whose keys are the integers tc_push/tc_pull give out with no
 * prefix (500000000000000 plus or minus n), in key order, so either side
 * reads a deque the other wrote (for raw-typed values). Use a cache opened
 * with tc_deque_open (eviction_policy "none": nothing is ever culled).
 *
 * Every call is one write transaction (TC_RETRY on busy): atomic across
 * processes. Indexes are 0-based; a negative index counts from the end
 * (-1 is the last item). @maxlen < 0 means unbounded; a push or extend that
 * makes the deque longer than @maxlen drops items from the other end in
 * the same transaction (python's maxlen). Values compare equal (count,
 * remove) when their types and bytes are equal, an INTEGER and a REAL when
 * their numbers are equal.
 */
/* tc_deque_open - tc_create + plain Cache + eviction_policy "none" +
 * tc_open(@dir, @flags); *out is NULL on error. */
TC_API int tc_deque_open(tc_cache **out, const char *dir, unsigned flags);
/* Append @val at @side (TC_BACK: append, TC_FRONT: appendleft). */
TC_API int tc_deque_push(tc_cache *c, const tc_data *val, int side,
                         int64_t maxlen);
/* Push @n values one after another at @side (extend / extendleft). */
TC_API int tc_deque_extend(tc_cache *c, const tc_data *vals, size_t n, int side,
                           int64_t maxlen);
/* Remove and return the item at @side: TC_OK or TC_NOTFOUND (empty). */
TC_API int tc_deque_pop(tc_cache *c, int side, tc_value *out);
/* The item at @side without removing it: TC_OK or TC_NOTFOUND. */
TC_API int tc_deque_peek(tc_cache *c, int side, tc_value *out);
TC_API int tc_deque_len(tc_cache *c, uint64_t *n);
/* Indexed access: TC_NOTFOUND when @index is out of range. */
TC_API int tc_deque_get(tc_cache *c, int64_t index, tc_value *out);
TC_API int tc_deque_set(tc_cache *c, int64_t index, const tc_data *val);
TC_API int tc_deque_delete(tc_cache *c, int64_t index);
/* Number of items equal to @val. */
TC_API int tc_deque_count(tc_cache *c, const tc_data *val, uint64_t *n);
/* Remove the first item equal to @val: TC_OK or TC_NOTFOUND. */
TC_API int tc_deque_remove(tc_cache *c, const tc_data *val);
TC_API int tc_deque_reverse(tc_cache *c);
/* Rotate right by @steps (left when negative), as collections.deque. */
TC_API int tc_deque_rotate(tc_cache *c, int64_t steps);
/* Drop items from @side until at most @maxlen remain (maxlen setter). */
TC_API int tc_deque_trim(tc_cache *c, int64_t maxlen, int side);
TC_API int tc_deque_clear(tc_cache *c);

/* ===================================================================== */
/* Index: python-diskcache's persistent ordered mapping over a Cache     */
/*
 * An Index is a plain Cache with eviction_policy "none" whose insertion
 * order (rowid) is the mapping's order: get/set/delete/pop/push/pull/
 * clear/tc_length and tc_iter_open(TC_ITER_INSERTION) are the Cache calls
 * (python's Index passes retry=True: use TC_RETRY); these add the rest.
 */
/* tc_index_open - like tc_deque_open. */
TC_API int tc_index_open(tc_cache **out, const char *dir, unsigned flags);
/* The value of @key, storing @deflt first if the key is missing. */
TC_API int tc_index_setdefault(tc_cache *c, const tc_data *key,
                               const tc_data *deflt, tc_value *out);
/* Remove and return the newest (@last != 0) or oldest item, key and value
 * in @out, in one transaction: TC_OK or TC_NOTFOUND (empty). */
TC_API int tc_index_popitem(tc_cache *c, int last, tc_item *out);

/* ===================================================================== */
/* Recipes: cross-process locks, averages, rate limits, early recompute  */
/*
 * Lock, RLock and the lease of memoize_stampede record their holder at
 * the key as TEXT ("tiercache-owner ..."): its hot-tier process slot and
 * the slot's generation, its pid and a thread id. A waiter that finds the
 * holder dead (the kernel released the slot's liveness lock, or another
 * process reuses the slot) takes the lock over, so a killed holder never
 * keeps a lock held, with or without @expire. Dead-holder detection needs
 * the hot tier's segment (hot_size 0 still attaches one); a holder that
 * recorded no slot, or a value python-diskcache wrote, is taken to be
 * alive and only its @expire frees it.
 *
 * Waiting costs reads, not writes: a waiter polls with a backoff from
 * 1 ms doubling up to TC_LOCK_POLL_MAX seconds, and writes only when the
 * lock looks free or its holder dead. So a dead holder's lock is taken
 * over within TC_LOCK_LIVENESS_BOUND seconds of its death.
 *
 * @expire: seconds (TC_NO_EXPIRE: never). @timeout: seconds to wait
 * (< 0: forever; 0: try once). Acquire returns TC_OK, or TC_EXISTS when
 * the lock was still held at the timeout. Python-diskcache's Lock (an add
 * of None at the same key) and this one exclude each other.
 */
#define TC_LOCK_POLL_MAX       0.02
#define TC_LOCK_LIVENESS_BOUND 0.1
TC_API int tc_lock_acquire(tc_cache *c, const tc_data *key, double expire,
                           double timeout);
/* tc_lock_release - TC_OK, TC_NOTFOUND if the lock is not held, TC_EPERM
 * if another process holds it. */
TC_API int tc_lock_release(tc_cache *c, const tc_data *key);
/* tc_lock_locked - TC_OK if held by a live holder, else TC_NOTFOUND. */
TC_API int tc_lock_locked(tc_cache *c, const tc_data *key);

/* RLock: a Lock its holder may take again; the holder is this process
 * plus @thread (any caller-chosen id: a thread, a coroutine; NULL or "" is
 * the calling thread). Release returns TC_EPERM when not held by the
 * caller ("cannot release un-acquired lock"). */
TC_API int tc_rlock_acquire(tc_cache *c, const tc_data *key, const char *thread,
                            double expire, double timeout);
TC_API int tc_rlock_release(tc_cache *c, const tc_data *key,
                            const char *thread);

/* BoundedSemaphore: the key holds the free permits as an INTEGER, as
 * python-diskcache stores it (a missing key means @value free), and a side
 * key lists tiercache's holders, so a waiter gives back the permits of
 * holders that died (python's holders are not listed). Release returns
 * TC_EPERM when every permit is already free ("cannot release un-acquired
 * semaphore"). */
TC_API int tc_sem_acquire(tc_cache *c, const tc_data *key, int64_t value,
                          double expire, double timeout);
TC_API int tc_sem_release(tc_cache *c, const tc_data *key, int64_t value,
                          double expire);

/* barrier: run @fn(@arg) while holding the lock at @key, of kind
 * TC_BARRIER_LOCK, TC_BARRIER_RLOCK (this thread) or TC_BARRIER_SEMAPHORE
 * (one permit of one), waiting as long as it takes; the lock is released
 * whatever @fn returns. Returns @fn's return value, or the error of
 * acquiring or releasing. */
enum tc_barrier_kind {
    TC_BARRIER_LOCK = 0,
    TC_BARRIER_RLOCK = 1,
    TC_BARRIER_SEMAPHORE = 2,
};
TC_API int tc_barrier(tc_cache *c, const tc_data *key, int kind, double expire,
                      int (*fn)(void *arg), void *arg);

/* Averager: a running average kept at @key as a MessagePack array
 * [total, count]. get/pop: TC_NOTFOUND when nothing was added. */
TC_API int tc_averager_add(tc_cache *c, const tc_data *key, double value,
                           double expire, const tc_data *tag);
TC_API int tc_averager_get(tc_cache *c, const tc_data *key, double *avg);
TC_API int tc_averager_pop(tc_cache *c, const tc_data *key, double *avg);

/* throttle: at most @count calls per @seconds, shared by every process,
 * as python-diskcache's token bucket kept at @key as a MessagePack array
 * [last, tally]. @now is the caller's clock (Unix seconds; injectable).
 * tc_throttle_init resets the bucket to full. tc_throttle_take takes one
 * token: *delay = 0 when taken, else the seconds to sleep before trying
 * again (nothing was taken). */
TC_API int tc_throttle_init(tc_cache *c, const tc_data *key, double count,
                            double seconds, double expire, double now);
TC_API int tc_throttle_take(tc_cache *c, const tc_data *key, double count,
                            double seconds, double expire, double now,
                            double *delay);

/*
 * memoize_stampede: a cached result with the seconds its computation took
 * (delta), recomputed early by one caller at a time with the XFetch rule:
 * a hit whose time to live is below -delta * beta * ln(rnd) is stale.
 * The result is kept at @key as a MessagePack array [delta, result...]
 * (the result's own encoding follows delta), expiring after @expire.
 *
 * tc_stampede_begin says what the caller does (*action):
 *   TC_STAMPEDE_USE      @cached holds the result: return it;
 *   TC_STAMPEDE_COMPUTE  compute, then tc_stampede_end (or _abort on
 *                        failure); @cached holds a stale result if any;
 *   TC_STAMPEDE_WAIT     another live process computes a missing result:
 *                        sleep a little and call begin again.
 * @rnd is in (0, 1]: a uniform random number (tests pass a fixed one).
 * The compute lease is a Lock (no expiry; a dead computer's lease is taken
 * over) at a BLOB key made from @key: "\0tiercache-lease\0", the key's
 * type byte, then its bytes.
 */
enum tc_stampede_action {
    TC_STAMPEDE_USE = 0,
    TC_STAMPEDE_COMPUTE = 1,
    TC_STAMPEDE_WAIT = 2,
};
TC_API int tc_stampede_begin(tc_cache *c, const tc_data *key, double beta,
                             double rnd, tc_value *cached, int *action);
TC_API int tc_stampede_end(tc_cache *c, const tc_data *key,
                           const tc_data *result, double delta, double expire,
                           const tc_data *tag);
TC_API int tc_stampede_abort(tc_cache *c, const tc_data *key);
/* The whole recipe for C callers: @fn computes the result into @result
 * (returning TC_OK or an error, which is passed on); @out gets the value
 * to use. Waits by sleeping with backoff. */
typedef int (*tc_compute_fn)(void *arg, tc_value *result);
TC_API int tc_memoize_stampede(tc_cache *c, const tc_data *key, double expire,
                               double beta, tc_compute_fn fn, void *arg,
                               tc_value *out);

#ifdef __cplusplus
}
#endif

#endif /* TIERCACHE_H */
