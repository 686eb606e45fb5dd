/*
 * hot.h - the hot tier: a hash table in one shared-memory segment per cache
 * directory, read without locks by every process (docs/ARCHITECTURE.md,
 * "Hot tier"). This header is the interface core/ uses; it knows nothing of
 * SQLite. Versions (@ver, @seq) are the shard's commit sequence.
 *
 * Thread safety: one struct tc_hot serves every thread of its process.
 * Process safety: the segment is shared; a process killed anywhere leaves
 * at worst misses, repairable locks and chunks tc_hot_recover returns.
 */
#ifndef TC_SHM_HOT_H
#define TC_SHM_HOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tiercache.h"

#define TC_HIDDEN_SHM __attribute__((visibility("hidden")))

struct tc_hot;

struct tc_hot_params {
    const char *dir;      /* cache directory (for the name and for GC) */
    const char *cache_id; /* identity recorded in TiercacheMeta */
    uint64_t size;        /* hot_size from the metadata */
    int nshards;          /* >= 1 */
    uid_t uid;            /* cache.db's owner and mode */
    gid_t gid;
    mode_t mode;
    bool readonly; /* map PROT_READ; never write the segment */
};

/* Attach to (creating if needed) the segment of @p->dir. TC_OK with *out
 * set; TC_EUNSUPPORTED (a warning in tc_errmsg) when the hot tier cannot
 * be used here and the cache must run cold-only. */
TC_HIDDEN_SHM int tc_hot_attach(const struct tc_hot_params *p,
                                struct tc_hot **out);
TC_HIDDEN_SHM void tc_hot_detach(struct tc_hot *h);
/* In a forked child, before any other call: claim a slot of its own. */
TC_HIDDEN_SHM int tc_hot_after_fork(struct tc_hot *h);
/* True if another process retired the segment: detach and attach again. */
TC_HIDDEN_SHM bool tc_hot_retired(const struct tc_hot *h);

/* ---- process identity (recipes: lock holders) ------------------------- */

/* Who this process is, for a record other processes check later: its
 * slot, the slot's generation and the segment's creation stamp. False
 * when the process has no slot (it cannot be told apart then). */
TC_HIDDEN_SHM bool tc_hot_self_id(struct tc_hot *h, uint32_t *slot,
                                  uint32_t *gen, uint64_t *seg);
/* Whether the process recorded as (@slot, @gen, @seg) lives: 1 alive,
 * 0 dead (its liveness lock is released, or its slot was reused), -1
 * cannot tell (another segment's record, or no liveness file). */
TC_HIDDEN_SHM int tc_hot_id_alive(struct tc_hot *h, uint32_t slot, uint32_t gen,
                                  uint64_t seg);

/* ---- reads ------------------------------------------------------------ */

/* What a hit records for the shard's eviction policy (in the item, only
 * when it changes: DESIGN-BRIEF 9.3, 9.4), or TC_HOT_COLD: the shard's
 * gets must all reach SQLite (diskcache's statistics count them there). */
enum { TC_HOT_ACCESS_NONE, TC_HOT_ACCESS_LRU, TC_HOT_ACCESS_LFU };
#define TC_HOT_COLD (-1)

enum {
    TC_HOT_HIT = 0,
    TC_HOT_MISS = 1,
    TC_HOT_TOOSMALL = 2, /* hit, but the value does not fit @cap */
    TC_HOT_RETIRED = 3,  /* the segment was replaced: switch, ask again */
};

/* What a read asks, and the policy it runs under. */
struct tc_hot_read {
    /* The key's shard, or -1 when the key implies it. A FanoutCache
     * picks the shard of a TEXT or BYTES key from its bytes alone, so
     * such a read need not hash for the shard first. Numeric keys name
     * theirs: 1 and 1.0 are one key within a shard (DESIGN-BRIEF 9.2)
     * but are hashed to different shards. */
    int shard;
    /* The clock for expiry and LRU (Unix seconds), called only when an
     * item needs it; NULL: the coarse system clock. */
    tc_clock_fn clock;
    void *clock_arg;
    /* Per shard: TC_HOT_ACCESS_* or TC_HOT_COLD (never NULL). */
    const _Atomic signed char *modes;
    bool quiet; /* a probe that counts neither hit nor miss */
};

/* Look @key up (TC_HOT_RETIRED if @h was replaced). On a hit the value is
 * copied into @buf (if it fits @cap; *len is always set), its type into *type,
 * its expire time into *expire, its shard into *shard. No lock, no system call,
 * no shared write except the CLOCK byte and the item's access record when they
 * change. */
TC_HIDDEN_SHM int tc_hot_get_buf(struct tc_hot *h, const tc_data *key,
                                 const struct tc_hot_read *rd, void *buf,
                                 size_t cap, size_t *len, int *type,
                                 double *expire, int *shard);
/* The same, allocating copies of the value and the tag into @out. */
TC_HIDDEN_SHM int tc_hot_get(struct tc_hot *h, const tc_data *key,
                             const struct tc_hot_read *rd, tc_item *out,
                             int *shard);

/* Hand every item of @shard with unfolded accesses to @fn (last access in
 * Unix seconds, estimated access count) and mark them folded. */
TC_HIDDEN_SHM void tc_hot_access_fold(struct tc_hot *h, int shard,
                                      void (*fn)(void *arg, const tc_data *key,
                                                 uint32_t atime,
                                                 uint64_t count),
                                      void *arg);

/* ---- fills ------------------------------------------------------------ */

/* Before a cold read of a missed key: take the fill lease (true) or wait
 * briefly for another filler; returns true if the caller should fill. */
TC_HIDDEN_SHM bool tc_hot_fill_lease(struct tc_hot *h, int shard,
                                     const tc_data *key, double now);
/* Install a value read from SQLite in a snapshot whose commit sequence is
 * @snap, unless a write began since. Releases the caller's lease. */
TC_HIDDEN_SHM void tc_hot_fill(struct tc_hot *h, int shard, const tc_data *key,
                               const tc_item *it, uint64_t snap);
/* Drop the caller's lease without filling (the key was absent, or an
 * error). */
TC_HIDDEN_SHM void tc_hot_fill_cancel(struct tc_hot *h, int shard,
                                      const tc_data *key);

/* ---- writes (write-through protocol) ---------------------------------- */

/* At BEGIN IMMEDIATE, holding the shard's SQLite write lock, with the
 * commit sequence just bumped to @n. */
TC_HIDDEN_SHM void tc_hot_write_begin(struct tc_hot *h, int shard, uint64_t n);
/* Before ROLLBACK of that transaction (still holding the lock). */
TC_HIDDEN_SHM void tc_hot_write_abort(struct tc_hot *h, int shard, uint64_t n);
/* Before COMMIT: remove @key from the hot tier (intent). */
TC_HIDDEN_SHM void tc_hot_invalidate(struct tc_hot *h, int shard,
                                     const tc_data *key);
/* Before COMMIT: make every item of @shard a miss (bulk operations). */
TC_HIDDEN_SHM void tc_hot_invalidate_shard(struct tc_hot *h, int shard);
/* After COMMIT of transaction @n: install the value just written. */
TC_HIDDEN_SHM void tc_hot_publish(struct tc_hot *h, int shard,
                                  const tc_data *key, const tc_data *val,
                                  const tc_data *tag, double expire,
                                  uint64_t n);
/* After a bulk operation committed: free the items it invalidated. */
TC_HIDDEN_SHM void tc_hot_sweep_shard(struct tc_hot *h, int shard);

/* ---- foreign writers (DESIGN-BRIEF 9.13) ------------------------------ */

/* Before COMMIT of a tiercache write transaction whose final commit
 * sequence is @f: record it as reflected; returns the previous value for
 * tc_hot_seen_restore on rollback. */
TC_HIDDEN_SHM uint64_t tc_hot_seen_set(struct tc_hot *h, int shard, uint64_t f);
TC_HIDDEN_SHM void tc_hot_seen_restore(struct tc_hot *h, int shard, uint64_t f,
                                       uint64_t prev);
/* SQLite's commit sequence of @shard is @s: if it is beyond what the hot
 * tier reflects, someone else wrote the shard; invalidate all of it.
 * Returns true in that case. */
TC_HIDDEN_SHM bool tc_hot_foreign_check(struct tc_hot *h, int shard,
                                        uint64_t s);
/* True (for one caller per interval) when a foreign-writer check of
 * @shard is due. */
TC_HIDDEN_SHM bool tc_hot_check_due(struct tc_hot *h, int shard,
                                    uint64_t interval_ms);

/* True (for one caller a second) when an inline fold of access data is
 * due for @shard. */
TC_HIDDEN_SHM bool tc_hot_check_due_fold(struct tc_hot *h, int shard);

/* ---- maintenance ------------------------------------------------------ */

TC_HIDDEN_SHM uint64_t tc_hot_floor(const struct tc_hot *h, int shard);
/* A new segment's shards are closed (floor = TC_HOT_CLOSED). Open @shard
 * with floor @f, the sequence of the commit that announced the segment. */
TC_HIDDEN_SHM void tc_hot_open_shard(struct tc_hot *h, int shard, uint64_t f);
#define TC_HOT_CLOSED UINT64_MAX
TC_HIDDEN_SHM void tc_hot_stats_sum(struct tc_hot *h, tc_hot_stats *out);
/* Recover dead process slots; returns how many. */
TC_HIDDEN_SHM uint64_t tc_hot_recover_dead(struct tc_hot *h);

/* One live item, as tc_hot_foreach hands it out (borrowed pointers). */
struct tc_hot_entry {
    int shard;
    tc_data key, value, tag;
    double expire;
    uint64_t ver;
};
/* Check the structure; call @bad for each problem; then call @each for
 * every live item (copied out under its bucket lock). Returns the number
 * of structural problems. */
TC_HIDDEN_SHM uint64_t
tc_hot_check_walk(struct tc_hot *h, void (*bad)(void *, const char *),
                  void (*each)(void *, const struct tc_hot_entry *), void *arg);

/* The segment and lock-file names of a cache directory (malloc'd). */
TC_HIDDEN_SHM int hot_names(const char *dir, char **seg, char **lock,
                            uint64_t *dev, uint64_t *ino);
/* Segment files: remove the segment of @dir; remove orphans. */
TC_HIDDEN_SHM int tc_hot_unlink_dir(const char *dir);
TC_HIDDEN_SHM int tc_hot_gc_orphans(uint64_t *removed);

/* ---- crash points (compiled in with -Dtest_hooks=true) ---------------- */

/* TIERCACHE_CRASH_AT=<name>[:<n>] kills the process with SIGKILL the n-th
 * time (default 1st) it reaches crash point <name>. Names: after-intent,
 * after-commit, in-bucket-lock, mid-alloc, mid-fill. */
#ifdef TC_TEST_HOOKS
TC_HIDDEN_SHM void tc__crash_point(const char *name);
#define TC_CRASH_POINT(name) tc__crash_point(name)
#else
#define TC_CRASH_POINT(name) ((void)0)
#endif

#endif /* TC_SHM_HOT_H */
