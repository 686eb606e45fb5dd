/*
 * owner.h - who holds a recipe lock, recorded at its key, and whether that
 * holder still lives (docs/ARCHITECTURE.md, "Recipes").
 *
 * The record is TEXT, readable in any SQLite browser:
 *   "tiercache-owner seg=<hex> slot=<n> gen=<n> pid=<n> thread=<id> count=<n>"
 * Liveness is the hot tier's: the holder's process slot (its kernel-held
 * liveness lock) and the slot's generation, in the segment whose creation
 * stamp is seg. No second mechanism: a holder without a slot records
 * seg=0 and is never judged dead.
 */
#ifndef TC_OWNER_H
#define TC_OWNER_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define TC_OWNER_THREAD_MAX 64
#define TC_OWNER_REC_MAX    192

struct tc_owner {
    uint64_t seg;
    uint32_t slot, gen;
    int32_t pid;
    char thread[TC_OWNER_THREAD_MAX + 1];
    int64_t count; /* RLock depth; 1 for a Lock */
};

/* This process (and @thread: NULL or "" for the calling thread; bytes
 * other than [A-Za-z0-9._:-] become '_', cut at 64) with @count. */
TC_HIDDEN void tc__owner_self(tc_cache *c, const char *thread, int64_t count,
                              struct tc_owner *o);
/* The TEXT record of @o in @buf (TC_OWNER_REC_MAX bytes); its length. */
TC_HIDDEN size_t tc__owner_format(const struct tc_owner *o, char *buf);
/* Parse a stored value: false if it is not exactly a record. */
TC_HIDDEN bool tc__owner_parse(const tc_value *v, struct tc_owner *o);
/* 1 alive, 0 dead, -1 cannot tell (treat as alive). */
TC_HIDDEN int tc__owner_alive(tc_cache *c, const struct tc_owner *o);
/* Same process (and, if @thread, same thread id). */
TC_HIDDEN bool tc__owner_same(const struct tc_owner *a,
                              const struct tc_owner *b, bool thread);

/* Waiting: a poll interval that starts at 1 ms and doubles up to
 * TC_LOCK_POLL_MAX; tc__wait_sleep sleeps it (never past @deadline, a
 * CLOCK_MONOTONIC time; < 0: none) and grows it. False once the deadline
 * has passed. */
TC_HIDDEN double tc__mono_now(void);
TC_HIDDEN bool tc__wait_sleep(double *interval, double deadline);

/* Replace @key's value with @rec (expire as given) if it still is exactly
 * @expected, in one transaction: TC_OK, TC_EXISTS (it changed) or an
 * error. @rec NULL deletes the key instead. */
TC_HIDDEN int tc__replace_if(tc_cache *c, const tc_data *key,
                             const tc_value *expected, const tc_data *rec,
                             double expire);

/* A BLOB key that belongs to @key and nobody else: "\0tiercache-@what\0",
 * @key's type byte, then its bytes (a lease, a holder list). *buf is the
 * caller's to free. */
TC_HIDDEN int tc__side_key(const char *what, const tc_data *key, tc_data *out,
                           unsigned char **buf);

#endif /* TC_OWNER_H */
