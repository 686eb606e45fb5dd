/*
 * procslot.c - process slots: liveness through kernel-released OFD byte
 * locks, per-process counters, and recovery of what a dead process held
 * (docs/ARCHITECTURE.md, "Processes, liveness and recovery").
 *
 * Slot s is owned by whoever holds the OFD write lock on byte s of the
 * companion file. The kernel drops it when the owner dies, whatever its pid
 * or namespace, so a probe with F_OFD_GETLK is a reliable liveness test.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../core/internal.h"
#include "layout.h"

/* fcntl on the byte of process slot @s; @type returns what F_OFD_GETLK
 * found. */
static int byte_op(int fd, unsigned s, short *type, int cmd)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = *type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)s;
    fl.l_len = 1;
    int r = fcntl(fd, cmd, &fl);
    *type = fl.l_type;
    return r;
}

static int byte_lock(int fd, unsigned s, short type, int cmd)
{
    return byte_op(fd, s, &type, cmd);
}

bool hot_proc_alive(struct tc_hot *h, unsigned s)
{
    if ((int)s == h->slot)
        return true;
    if (s >= HOT_PROCS || h->lockfd < 0)
        return true; /* cannot tell: assume alive, never steal */
    short type = F_WRLCK;
    if (byte_op(h->lockfd, s, &type, F_OFD_GETLK) != 0)
        return true;
    return type != F_UNLCK;
}

bool tc_hot_self_id(struct tc_hot *h, uint32_t *slot, uint32_t *gen,
                    uint64_t *seg)
{
    if (h->slot < 0)
        return false;
    *slot = (uint32_t)h->slot;
    *gen = atomic_load(&h->procs[h->slot].gen);
    *seg = atomic_load(&h->hdr->created_ns);
    return true;
}

int tc_hot_id_alive(struct tc_hot *h, uint32_t slot, uint32_t gen, uint64_t seg)
{
    if (seg != atomic_load(&h->hdr->created_ns) || slot >= HOT_PROCS)
        return -1;
    if ((int)slot == h->slot) /* our slot: ours, or a dead predecessor's */
        return atomic_load(&h->procs[slot].gen) == gen;
    if (h->lockfd < 0)
        return -1;
    /* Probe first, then the generation: a process claiming the slot takes
     * the byte before it bumps gen, so the worst race answers "alive" and
     * the next poll sees the new generation. */
    if (!hot_proc_alive(h, slot))
        return 0;
    return atomic_load(&h->procs[slot].gen) == gen ? 1 : 0;
}

void hot_count(struct tc_hot *h, enum hot_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&h->mine->ctr[c], n, memory_order_relaxed);
}

int hot_proc_claim(struct tc_hot *h)
{
    unsigned start = (unsigned)getpid() % HOT_PROCS;
    for (unsigned i = 0; i < HOT_PROCS; i++) {
        unsigned s = (start + i) % HOT_PROCS;
        if (byte_lock(h->lockfd, s, F_WRLCK, F_OFD_SETLK) != 0) {
            if (errno == EAGAIN || errno == EACCES)
                continue; /* a live process owns it */
            return tc__oserr(errno, "locking a hot-tier process slot",
                             h->lockpath);
        }
        struct hot_proc *p = &h->procs[s];
        /* We own the slot from here on: locks we take while recovering
         * carry our (live, repairable) owner id. */
        hot_set_slot(h, (int)s);
        /* The byte was free: any previous owner is dead. Take back what it
         * held before reusing the slot. */
        if (atomic_load(&p->state) != PROC_FREE) {
            hot_proc_recover(h, s);
            hot_count(h, C_RECOVERED, 1);
        }
        /* Keep what the previous owner counted in the header's sums. */
        for (int c = 0; c < C_COUNT_; c++) {
            uint64_t v = atomic_exchange(&p->ctr[c], 0);
            if (v)
                atomic_fetch_add(&h->hdr->retired_ctr[c], v);
        }
        atomic_fetch_add(&p->gen, 1);
        atomic_store(&p->pid, (int32_t)getpid());
        atomic_store(&p->state, PROC_ACTIVE);
        return TC_OK;
    }
    /* No slot: this process may still read, and its writes invalidate
     * whole shards (no bucket locks without a repairable owner id). */
    hot_set_slot(h, -1);
    return TC_OK;
}

void hot_proc_release(struct tc_hot *h)
{
    if (h->slot < 0)
        return;
    /* Counters stay for tc_hot_stats until the slot is reused. */
    atomic_store(&h->procs[h->slot].state, PROC_FREE);
    if (h->lockfd >= 0)
        byte_lock(h->lockfd, (unsigned)h->slot, F_UNLCK, F_OFD_SETLK);
    hot_set_slot(h, -1);
}

/* ---- recovery ----------------------------------------------------------- */

/* Give chunk @idx, left PRIVATE(@s) by a dead process, to whoever should
 * have it: PUBLISHED if a slot points at it, else FREE. */
/* Give chunk @idx, left PRIVATE(@s) by a dead process, to whoever should
 * have it: PUBLISHED if a slot points at it, else FREE. */
static void recover_chunk(struct tc_hot *h, uint32_t idx, struct hot_item *it,
                          uint32_t csize, uint32_t st)
{
    uint32_t expect = st;
    if (it->shard >= h->nshards || it->key_len > csize - HOT_ITEM_HDR) {
        /* Garbage key fields: nobody can have published it. */
        atomic_compare_exchange_strong(&it->state, &expect, CS_FREE);
        return;
    }
    struct hot_key k;
    hot_key_of_item(h, it, &k);
    hot_lock2(h, k.b1, k.b2);
    bool referenced = hot_chunk_referenced(h, idx, it, csize);
    atomic_compare_exchange_strong(&it->state, &expect,
                                   referenced ? CS_PUBLISHED : CS_FREE);
    hot_unlock2(h, k.b1, k.b2);
}

struct recover_arg {
    struct tc_hot *h;
    unsigned slot;
};

static void recover_visit(void *arg, uint32_t idx, struct hot_item *it,
                          const struct hot_class *cl)
{
    struct recover_arg *ra = arg;
    uint32_t st = atomic_load(&it->state);
    if (CS_KIND(st) == CS_PRIVATE && CS_OWNER(st) == ra->slot)
        recover_chunk(ra->h, idx, it, cl->chunk_size, st);
}

void hot_proc_recover(struct tc_hot *h, unsigned s)
{
    unsigned owner = s + 1;
    /* Bucket locks and fill leases. */
    for (uint64_t bi = 0; bi <= h->mask; bi++) {
        struct hot_bucket *b = &h->buckets[bi];
        uint64_t w = atomic_load(&b->word);
        if (BW_LOCKED(w) && BW_OWNER(w) == owner) {
            uint64_t un = (BW_VERSION(w) + 1) << 16;
            if (atomic_compare_exchange_strong(&b->word, &w, un))
                hot_count(h, C_LOCK_REPAIRS, 1);
        }
        for (int i = 0; i < HOT_SLOTS; i++) {
            uint64_t sw = atomic_load(&b->slot[i]);
            if (SW_KIND(sw) == SW_FILLING && SW_OWNER(sw) == s) {
                hot_bucket_lock(h, b);
                uint64_t again = atomic_load(&b->slot[i]);
                if (again == sw)
                    atomic_store(&b->slot[i], 0);
                hot_bucket_unlock(b);
            }
        }
    }
    /* Chunks it had claimed. */
    hot_pool_lock(h);
    struct recover_arg ra = {h, s};
    hot_each_chunk(h, recover_visit, &ra);
    hot_pool_unlock(h);
    atomic_store(&h->procs[s].state, PROC_FREE);
}

uint64_t tc_hot_recover_dead(struct tc_hot *h)
{
    uint64_t n = 0;
    if (h->readonly || h->lockfd < 0 || h->slot < 0)
        return 0;
    for (unsigned s = 0; s < HOT_PROCS; s++) {
        if ((int)s == h->slot || atomic_load(&h->procs[s].state) == PROC_FREE)
            continue;
        if (byte_lock(h->lockfd, s, F_WRLCK, F_OFD_SETLK) != 0)
            continue; /* alive */
        if (atomic_load(&h->procs[s].state) != PROC_FREE) {
            hot_proc_recover(h, s);
            n++;
        }
        byte_lock(h->lockfd, s, F_UNLCK, F_OFD_SETLK);
    }
    /* A pool lock held by a dead owner is repaired by hot_pool_lock. */
    if (n)
        hot_count(h, C_RECOVERED, n);
    return n;
}
