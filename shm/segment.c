/*
 * segment.c - finding, creating, validating, retiring and removing the
 * segment of a cache directory (docs/ARCHITECTURE.md, "Finding the
 * segment"). Creation and replacement happen under flock(LOCK_EX) on the
 * companion lock file, so two processes never build two segments; attach
 * takes LOCK_SH only long enough to validate.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/internal.h"
#include "layout.h"

uint64_t hot_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *shm_dir(void)
{
    const char *d = getenv("TIERCACHE_SHM_DIR");
    return d && *d ? d : "/dev/shm";
}

int hot_names(const char *dir, char **seg, char **lock, uint64_t *dev,
              uint64_t *ino)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return tc__oserr(errno, "stat", dir);
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    if (asprintf(seg, "%s/tiercache-%llx-%llx", shm_dir(),
                 (unsigned long long)*dev, (unsigned long long)*ino) < 0)
        return tc__err(TC_ENOMEM, "out of memory");
    if (asprintf(lock, "%s.lock", *seg) < 0) {
        free(*seg);
        return tc__err(TC_ENOMEM, "out of memory");
    }
    return TC_OK;
}

/* ---- the process's attachments, for the fork handler ------------------ */

static pthread_mutex_t attached_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tc_hot *attached;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
    pthread_mutex_lock(&attached_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&attached_lock);
}

/* The child must not keep its parent's liveness lock alive: close its copy
 * of every companion descriptor now (close is async-signal-safe). */
static void fork_child(void)
{
    for (struct tc_hot *h = attached; h; h = h->next_attached) {
        if (h->lockfd >= 0)
            close(h->lockfd);
        h->lockfd = -1;
        hot_set_slot(h, -1);
    }
    pthread_mutex_unlock(&attached_lock);
}

static void atfork_init(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void attached_add(struct tc_hot *h)
{
    pthread_once(&atfork_once, atfork_init);
    pthread_mutex_lock(&attached_lock);
    h->next_attached = attached;
    attached = h;
    pthread_mutex_unlock(&attached_lock);
}

static void attached_remove(struct tc_hot *h)
{
    pthread_mutex_lock(&attached_lock);
    for (struct tc_hot **p = &attached; *p; p = &(*p)->next_attached)
        if (*p == h) {
            *p = h->next_attached;
            break;
        }
    pthread_mutex_unlock(&attached_lock);
}

/* ---- geometry ----------------------------------------------------------- */

struct geometry {
    uint32_t page_size, npages, nclasses, nbuckets_log2;
    uint32_t class_size[HOT_MAX_CLASS];
    uint64_t shards_off, procs_off, classes_off, pagetab_off, pagelist_off,
        buckets_off, pages_off;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* Sizes 64..256 in 16-byte steps, then about x1.2 (16-byte multiples) up
 * to one page: little rounding waste for small values, few classes. */
static uint32_t make_classes(uint32_t page_size, uint32_t *out)
{
    uint32_t n = 0, sz = HOT_MIN_CHUNK;
    while (n < HOT_MAX_CLASS) {
        if (sz >= page_size) {
            out[n++] = page_size;
            break;
        }
        out[n++] = sz;
        sz = sz < 256 ? sz + 16 : (uint32_t)align_up(sz + sz / 5, 16);
    }
    return n;
}

static int geometry_for(uint64_t size, int nshards, struct geometry *g)
{
    memset(g, 0, sizeof *g);
    uint64_t ps = 256u << 10;
    while (ps > (16u << 10) && ps * 256 > size)
        ps >>= 1;
    g->page_size = (uint32_t)ps;
    g->nclasses = make_classes(g->page_size, g->class_size);
    /* Fixed parts first, then an index sized for items of ~192 bytes at
     * ~6 of 7 slots used, then pages with what is left. */
    uint64_t off = sizeof(struct hot_header);
    off = align_up(off, HOT_LINE);
    g->shards_off = off;
    off += (uint64_t)nshards * sizeof(struct hot_shard);
    g->procs_off = off;
    off += (uint64_t)HOT_PROCS * sizeof(struct hot_proc);
    g->classes_off = off;
    off += (uint64_t)HOT_MAX_CLASS * sizeof(struct hot_class);
    uint64_t est_pages = size / g->page_size;
    if (est_pages > HOT_MAX_PAGES)
        est_pages = HOT_MAX_PAGES;
    g->pagetab_off = off;
    off += align_up(est_pages * sizeof(struct hot_page), HOT_LINE);
    g->pagelist_off = off;
    off += align_up((uint64_t)g->nclasses * est_pages * 4, HOT_LINE);
    uint64_t items = size / 192, nb = 1;
    uint32_t lg = 0;
    while (nb * 6 < items) {
        nb <<= 1;
        lg++;
    }
    g->nbuckets_log2 = lg;
    g->buckets_off = align_up(off, 4096);
    off = g->buckets_off + nb * sizeof(struct hot_bucket);
    g->pages_off = align_up(off, 4096);
    if (g->pages_off >= size)
        return tc__err(TC_EINVAL, "hot_size %llu is too small for the hot tier",
                       (unsigned long long)size);
    uint64_t np = (size - g->pages_off) / g->page_size;
    if (np > est_pages)
        np = est_pages;
    if (np < 4)
        return tc__err(TC_EINVAL, "hot_size %llu is too small for the hot tier",
                       (unsigned long long)size);
    g->npages = (uint32_t)np;
    return TC_OK;
}

/* ---- mapping and validation --------------------------------------------- */

/* The process-local view of a mapped segment, from a header @hd that
 * header_sane accepted: a copy taken once, so another process changing
 * the shared header afterwards cannot change the bounds readers use. */
static void view_init(struct tc_hot *h, const struct hot_header *hd)
{
    h->hdr = (struct hot_header *)h->base;
    h->nshards = hd->nshards;
    h->npages = hd->npages;
    h->page_size = hd->page_size;
    h->page_shift = (unsigned)__builtin_ctz(hd->page_size);
    h->pages_len = (uint64_t)hd->npages * hd->page_size;
    h->nclasses = hd->nclasses;
    h->seed = hd->seed;
    for (unsigned t = 0; t < 8; t++)
        h->type_seed[t] = h->seed ^ (t * UINT64_C(0x9E3779B97F4A7C15));
    h->mask = (UINT64_C(1) << hd->nbuckets_log2) - 1;
    h->shards = (struct hot_shard *)(h->base + hd->shards_off);
    h->procs = (struct hot_proc *)(h->base + hd->procs_off);
    h->classes = (struct hot_class *)(h->base + hd->classes_off);
    h->pagetab = (struct hot_page *)(h->base + hd->pagetab_off);
    h->pagelist = (uint32_t *)(h->base + hd->pagelist_off);
    h->buckets = (struct hot_bucket *)(h->base + hd->buckets_off);
    h->pages = h->base + hd->pages_off;
}

/* Every offset and count of the header (a private copy), checked against
 * the size before view_init trusts them; @base is the mapping, for the
 * class table. */
static bool header_sane(const struct hot_header *hd, const unsigned char *base,
                        uint64_t size)
{
    if (hd->nshards < 1 || hd->nshards > 1000 || hd->nclasses < 1 ||
        hd->nclasses > HOT_MAX_CLASS || hd->npages < 1 ||
        hd->npages > HOT_MAX_PAGES || hd->page_size < 4096 ||
        hd->page_size > (1u << 20) ||
        (hd->page_size & (hd->page_size - 1)) != 0 || hd->nbuckets_log2 > 40 ||
        hd->nprocs != HOT_PROCS)
        return false;
    /* Buckets are read a line at a time with aligned vector loads; chunk
     * indexes count 16-byte units from the first page. */
    if (hd->buckets_off % HOT_LINE || hd->pages_off % HOT_LINE)
        return false;
    uint64_t nb = UINT64_C(1) << hd->nbuckets_log2;
    struct {
        uint64_t off, len;
    } parts[] = {
        {hd->shards_off, (uint64_t)hd->nshards * sizeof(struct hot_shard)},
        {hd->procs_off, (uint64_t)HOT_PROCS * sizeof(struct hot_proc)},
        {hd->classes_off, (uint64_t)HOT_MAX_CLASS * sizeof(struct hot_class)},
        {hd->pagetab_off, (uint64_t)hd->npages * sizeof(struct hot_page)},
        {hd->pagelist_off, (uint64_t)hd->nclasses * hd->npages * 4},
        {hd->buckets_off, nb * sizeof(struct hot_bucket)},
        {hd->pages_off, (uint64_t)hd->npages * hd->page_size},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i].off < sizeof *hd || parts[i].off % 8 ||
            parts[i].off > size || parts[i].len > size - parts[i].off)
            return false;
    const struct hot_class *cl =
        (const struct hot_class *)(base + hd->classes_off);
    for (uint32_t i = 0; i < hd->nclasses; i++)
        if (cl[i].chunk_size < HOT_MIN_CHUNK ||
            cl[i].chunk_size > hd->page_size ||
            cl[i].chunk_size % HOT_CHUNK_UNIT ||
            cl[i].per_page != hd->page_size / cl[i].chunk_size)
            return false;
    return true;
}

/* Ask for transparent huge pages: with /dev/shm's shmem_enabled at
 * "advise", the index and the items take far fewer TLB misses. A hint
 * only; without it (shmem_enabled=never) nothing changes. */
static void huge_pages(void *m, size_t len)
{
#ifdef MADV_HUGEPAGE
    (void)madvise(m, len, MADV_HUGEPAGE);
#else
    (void)m;
    (void)len;
#endif
}

enum verdict { SEG_OK, SEG_MISSING, SEG_REPLACE, SEG_REFUSE };

/* Open and validate the existing segment at h->path. On SEG_OK the
 * mapping is in h. */
static enum verdict seg_open(struct tc_hot *h, const struct tc_hot_params *p,
                             uint64_t dev, uint64_t ino)
{
    int fd = open(h->path,
                  (h->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return SEG_MISSING;
        tc__oserr(errno, "opening the hot-tier segment", h->path);
        return SEG_REFUSE;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        tc__err(TC_EUNSUPPORTED, "hot-tier segment %s is not a regular file",
                h->path);
        return SEG_REFUSE;
    }
    if (st.st_uid != p->uid || (st.st_mode & 022)) {
        close(fd);
        tc__err(TC_EUNSUPPORTED,
                "hot-tier segment %s is owned by uid %u (cache.db: %u) or is "
                "group/other-writable; not using it",
                h->path, (unsigned)st.st_uid, (unsigned)p->uid);
        return SEG_REFUSE;
    }
    if ((uint64_t)st.st_size < sizeof(struct hot_header)) {
        close(fd);
        return SEG_REPLACE;
    }
    void *m = mmap(NULL, (size_t)st.st_size,
                   h->readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        tc__oserr(errno, "mapping the hot-tier segment", h->path);
        return SEG_REFUSE;
    }
    huge_pages(m, (size_t)st.st_size);
    const struct hot_header *hd = m; /* for the atomic words only */
    struct hot_header hc;            /* everything else: checked once */
    memcpy(&hc, m, sizeof hc);
    enum verdict v = SEG_OK;
    if (hc.pre.magic != HOT_MAGIC || hc.pre.format != HOT_FORMAT ||
        hc.pre.total_size != (uint64_t)st.st_size ||
        hc.pre.preamble_size != sizeof(struct hot_preamble))
        v = SEG_REPLACE;
    else if (atomic_load(&hd->pre.retired) || !atomic_load(&hd->ready))
        v = SEG_REPLACE;
    else if ((uint64_t)st.st_size != p->size && p->size != 0)
        v = SEG_REPLACE;
    else if (hc.nshards != (uint32_t)p->nshards || hc.dir_dev != dev ||
             hc.dir_ino != ino ||
             strncmp(hc.cache_id, p->cache_id, HOT_ID_LEN) != 0)
        v = SEG_REPLACE;
    else if (!header_sane(&hc, m, (uint64_t)st.st_size))
        v = SEG_REPLACE;
    /* A segment that may hold unflushed write-back data is never replaced
     * by a process that does not speak its format (write-back notes 2). */
    if (v == SEG_REPLACE && hc.pre.magic == HOT_MAGIC &&
        atomic_load(&hd->pre.wb_active)) {
        munmap(m, (size_t)st.st_size);
        tc__err(TC_EUNSUPPORTED,
                "hot-tier segment %s may hold unflushed writes in a format "
                "this version cannot read; refusing to open it",
                h->path);
        return SEG_REFUSE;
    }
    if (v != SEG_OK) {
        munmap(m, (size_t)st.st_size);
        return v;
    }
    h->base = m;
    h->size = (uint64_t)st.st_size;
    view_init(h, &hc);
    return SEG_OK;
}

/* Mark the segment at h->path retired (if it is one of ours) and unlink
 * it; processes still attached notice and re-attach. Under LOCK_EX. */
static void seg_retire(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 &&
            (uint64_t)st.st_size >= sizeof(struct hot_preamble)) {
            struct hot_preamble *pre = mmap(
                NULL, sizeof *pre, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (pre != MAP_FAILED) {
                if (pre->magic == HOT_MAGIC)
                    atomic_store(&pre->retired, 1);
                munmap(pre, sizeof *pre);
            }
        }
        close(fd);
    }
    unlink(path);
}

static int seg_create(struct tc_hot *h, const struct tc_hot_params *p,
                      uint64_t dev, uint64_t ino)
{
    struct geometry g;
    int rc = geometry_for(p->size, p->nshards, &g);
    if (rc)
        return rc;
    mode_t mode = (p->mode & 0644) | 0600;
    int fd =
        open(h->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return tc__oserr(errno, "creating the hot-tier segment", h->path);
    if (geteuid() == 0)
        (void)fchown(fd, p->uid, p->gid);
    (void)fchmod(fd, mode); /* umask must not narrow cache.db's bits */
    int err = posix_fallocate(fd, 0, (off_t)p->size);
    if (err) {
        close(fd);
        unlink(h->path);
        return tc__err(TC_EUNSUPPORTED,
                       "cannot reserve %llu bytes for the hot tier in %s (%s); "
                       "running cold-only",
                       (unsigned long long)p->size, h->path, strerror(err));
    }
    void *m =
        mmap(NULL, (size_t)p->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        unlink(h->path);
        return tc__oserr(errno, "mapping the hot-tier segment", h->path);
    }
    huge_pages(m, (size_t)p->size);
    struct hot_header *hd = m;
    hd->pre.magic = HOT_MAGIC;
    hd->pre.format = HOT_FORMAT;
    hd->pre.preamble_size = sizeof(struct hot_preamble);
    hd->pre.total_size = p->size;
    hd->nshards = (uint32_t)p->nshards;
    hd->nbuckets_log2 = g.nbuckets_log2;
    hd->npages = g.npages;
    hd->page_size = g.page_size;
    hd->nclasses = g.nclasses;
    hd->nprocs = HOT_PROCS;
    if (getrandom(&hd->seed, sizeof hd->seed, 0) != sizeof hd->seed)
        hd->seed = (uint64_t)time(NULL) * UINT64_C(0x9E3779B97F4A7C15) ^
                   (uint64_t)getpid();
    hd->shards_off = g.shards_off;
    hd->procs_off = g.procs_off;
    hd->classes_off = g.classes_off;
    hd->pagetab_off = g.pagetab_off;
    hd->pagelist_off = g.pagelist_off;
    hd->buckets_off = g.buckets_off;
    hd->pages_off = g.pages_off;
    hd->dir_dev = dev;
    hd->dir_ino = ino;
    snprintf(hd->cache_id, sizeof hd->cache_id, "%s", p->cache_id);
    snprintf(hd->dir, sizeof hd->dir, "%s", p->dir);
    /* Every shard starts closed to fills and publishes (floor = max):
     * tc_hot_open_shard opens it once every tiercache writer is sure to
     * see the segment (the hot_epoch protocol in core/hotpath.c). */
    struct hot_shard *shd =
        (struct hot_shard *)((unsigned char *)m + g.shards_off);
    for (int i = 0; i < p->nshards; i++)
        atomic_store(&shd[i].floor, UINT64_MAX);
    struct hot_class *cl =
        (struct hot_class *)((unsigned char *)m + g.classes_off);
    for (uint32_t i = 0; i < g.nclasses; i++) {
        cl[i].chunk_size = g.class_size[i];
        cl[i].per_page = g.page_size / g.class_size[i];
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store(&hd->created_ns,
                 (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    atomic_store_explicit(&hd->ready, 1, memory_order_release);
    h->base = m;
    h->size = p->size;
    view_init(h, (const struct hot_header *)m); /* ours, just written */
    return TC_OK;
}

static void hot_free_struct(struct tc_hot *h)
{
    if (!h)
        return;
    if (h->base)
        munmap(h->base, h->size);
    if (h->lockfd >= 0)
        close(h->lockfd);
    free(h->path);
    free(h->lockpath);
    free(h->dir);
    free(h);
}

/* flock @how on the companion file, making sure the descriptor still is
 * the file at its name: drop and gc unlink lock files, and two creators
 * must never serialise on two different inodes. Reopens if needed. */
static int relock(struct tc_hot *h, int how, int oflags, mode_t mode)
{
    for (int tries = 0; tries < 100; tries++) {
        flock(h->lockfd, how);
        struct stat a, b;
        if (fstat(h->lockfd, &a) == 0 && stat(h->lockpath, &b) == 0 &&
            a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            return TC_OK;
        flock(h->lockfd, LOCK_UN);
        int fd = open(h->lockpath, oflags | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
            return errno == ENOENT ? TC_NOTFOUND
                                   : tc__oserr(errno, "opening", h->lockpath);
        close(h->lockfd);
        h->lockfd = fd;
    }
    return tc__err(TC_EBUSY, "hot-tier lock file %s keeps changing",
                   h->lockpath);
}

int tc_hot_attach(const struct tc_hot_params *p, struct tc_hot **out)
{
    uint64_t dev, ino;
    struct tc_hot *h = calloc(1, sizeof *h);
    if (!h)
        return tc__err(TC_ENOMEM, "out of memory");
    h->lockfd = -1;
    hot_set_slot(h, -1);
    h->readonly = p->readonly;
    int rc = hot_names(p->dir, &h->path, &h->lockpath, &dev, &ino);
    if (rc == TC_OK && !(h->dir = strdup(p->dir)))
        rc = tc__err(TC_ENOMEM, "out of memory");
    if (rc) {
        hot_free_struct(h);
        return rc;
    }
    mode_t mode = (p->mode & 0644) | 0600;
    h->lockfd = open(h->lockpath,
                     (p->readonly ? O_RDONLY
                      : p->size   ? O_RDWR | O_CREAT
                                  : O_RDWR) |
                         O_CLOEXEC | O_NOFOLLOW,
                     mode);
    if (h->lockfd < 0) {
        rc = errno == ENOENT
                 ? TC_NOTFOUND
                 : tc__oserr(errno, "opening the hot-tier lock file",
                             h->lockpath);
        hot_free_struct(h);
        return rc;
    }
    if (geteuid() == 0 && !p->readonly)
        (void)fchown(h->lockfd, p->uid, p->gid);
    struct stat lst;
    if (fstat(h->lockfd, &lst) != 0 || lst.st_uid != p->uid ||
        (lst.st_mode & 022)) {
        rc = tc__err(TC_EUNSUPPORTED,
                     "hot-tier lock file %s has the wrong owner or mode",
                     h->lockpath);
        hot_free_struct(h);
        return rc;
    }

    int oflags = p->readonly ? O_RDONLY : p->size ? O_RDWR | O_CREAT : O_RDWR;
    /* Fast path: validate under a shared lock. */
    if ((rc = relock(h, LOCK_SH, oflags, mode))) {
        hot_free_struct(h);
        return rc;
    }
    enum verdict v = seg_open(h, p, dev, ino);
    flock(h->lockfd, LOCK_UN);
    if (v == SEG_REFUSE) {
        hot_free_struct(h);
        return TC_EUNSUPPORTED;
    }
    if (v != SEG_OK) {
        if (p->readonly || p->size == 0) {
            hot_free_struct(h);
            return v == SEG_MISSING ? TC_NOTFOUND : TC_EUNSUPPORTED;
        }
        if ((rc = relock(h, LOCK_EX, oflags, mode))) {
            hot_free_struct(h);
            return rc;
        }
        v = seg_open(h, p, dev, ino); /* someone may have just built it */
        if (v == SEG_REPLACE)
            seg_retire(h->path);
        if (v == SEG_REPLACE || v == SEG_MISSING)
            rc = seg_create(h, p, dev, ino);
        else if (v == SEG_REFUSE)
            rc = TC_EUNSUPPORTED;
        flock(h->lockfd, LOCK_UN);
        if (rc) {
            hot_free_struct(h);
            return rc;
        }
        uint64_t gone;
        (void)tc_hot_gc_orphans(&gone);
    }
    if (!h->readonly && (rc = hot_proc_claim(h))) {
        hot_free_struct(h);
        return rc;
    }
    attached_add(h);
    *out = h;
    return TC_OK;
}

void tc_hot_detach(struct tc_hot *h)
{
    if (!h)
        return;
    attached_remove(h);
    hot_proc_release(h);
    hot_free_struct(h);
}

int tc_hot_after_fork(struct tc_hot *h)
{
    if (h->readonly || h->lockfd >= 0)
        return TC_OK;
    h->lockfd = open(h->lockpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (h->lockfd < 0)
        return tc__oserr(errno, "reopening the hot-tier lock file",
                         h->lockpath);
    return hot_proc_claim(h);
}

bool tc_hot_retired(const struct tc_hot *h)
{
    return atomic_load_explicit(&h->hdr->pre.retired, memory_order_relaxed);
}

/* ---- removal ------------------------------------------------------------ */

int tc_hot_unlink_dir(const char *dir)
{
    char *seg, *lock;
    uint64_t dev, ino;
    int rc = hot_names(dir, &seg, &lock, &dev, &ino);
    if (rc)
        return rc == TC_NOTFOUND ? TC_OK : rc;
    int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0)
        flock(fd, LOCK_EX);
    seg_retire(seg);
    unlink(lock); /* openers re-check the inode after locking (relock) */
    if (fd >= 0)
        close(fd);
    free(seg);
    free(lock);
    return TC_OK;
}

/* A segment is an orphan when the directory it records is gone or is now
 * another inode (a new directory reusing the name). */
static bool orphan(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    struct stat st;
    bool gone = false;
    if (fstat(fd, &st) == 0 &&
        (uint64_t)st.st_size >= sizeof(struct hot_header)) {
        struct hot_header *hd =
            mmap(NULL, sizeof *hd, PROT_READ, MAP_SHARED, fd, 0);
        if (hd != MAP_FAILED) {
            if (hd->pre.magic == HOT_MAGIC && atomic_load(&hd->ready)) {
                char dir[HOT_PATH_LEN];
                memcpy(dir, hd->dir, sizeof dir);
                dir[sizeof dir - 1] = 0;
                struct stat ds;
                gone = stat(dir, &ds) != 0
                           ? errno == ENOENT
                           : (uint64_t)ds.st_ino != hd->dir_ino ||
                                 (uint64_t)ds.st_dev != hd->dir_dev;
            } else if (hd->pre.magic == HOT_MAGIC &&
                       atomic_load(&hd->pre.retired)) {
                gone = true;
            }
            munmap(hd, sizeof *hd);
        }
    }
    close(fd);
    return gone;
}

int tc_hot_gc_orphans(uint64_t *removed)
{
    *removed = 0;
    DIR *d = opendir(shm_dir());
    if (!d)
        return tc__oserr(errno, "opening", shm_dir());
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long a, b;
        int n = 0;
        if (sscanf(e->d_name, "tiercache-%llx-%llx%n", &a, &b, &n) != 2)
            continue;
        if (!strcmp(e->d_name + n, ".lock")) {
            /* A lock file without its segment, that nobody holds. */
            char *lp, *sp;
            if (asprintf(&lp, "%s/%s", shm_dir(), e->d_name) < 0)
                break;
            if (asprintf(&sp, "%.*s", (int)strlen(lp) - 5, lp) < 0) {
                free(lp);
                break;
            }
            int fd = open(lp, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
            struct stat st;
            if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
                stat(sp, &st) != 0 && errno == ENOENT) {
                struct flock fl = {.l_type = F_WRLCK,
                                   .l_whence = SEEK_SET,
                                   .l_start = 0,
                                   .l_len = 0};
                if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_UNLCK)
                    unlink(lp); /* not counted: @removed counts segments */
            }
            if (fd >= 0)
                close(fd);
            free(lp);
            free(sp);
            continue;
        }
        if (e->d_name[n] != 0)
            continue;
        char *path, *lock;
        if (asprintf(&path, "%s/%s", shm_dir(), e->d_name) < 0)
            break;
        if (asprintf(&lock, "%s.lock", path) < 0) {
            free(path);
            break;
        }
        if (orphan(path)) {
            int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
            if (fd >= 0)
                flock(fd, LOCK_EX);
            if (orphan(path)) {
                unlink(path);
                unlink(lock);
                (*removed)++;
            }
            if (fd >= 0)
                close(fd);
        }
        free(path);
        free(lock);
    }
    closedir(d);
    return TC_OK;
}

#ifdef TC_TEST_HOOKS
/* TIERCACHE_CRASH_AT=<name>[:<n>]: die on the n-th arrival (per process). */
void tc__crash_point(const char *name)
{
    static _Thread_local char seen_name[64];
    static _Thread_local long seen;
    const char *spec = getenv("TIERCACHE_CRASH_AT");
    if (!spec)
        return;
    size_t len = strcspn(spec, ":");
    if (strlen(name) != len || strncmp(spec, name, len) != 0)
        return;
    long want = spec[len] == ':' ? strtol(spec + len + 1, NULL, 10) : 1;
    if (strcmp(seen_name, name) != 0) {
        snprintf(seen_name, sizeof seen_name, "%s", name);
        seen = 0;
    }
    if (++seen >= want)
        raise(SIGKILL);
}
#endif
