/*
 * worker.c - the library side of the background worker (tiercached): its
 * lock, the liveness check writers use, one maintenance pass, the status
 * record, and auto-start.
 *
 * Layering: called by tools/tiercached.c through the public API, and by
 * ops.c (tc__worker_live) and cache.c (open/close). Uses maint.c and
 * hotpath.c for the batch-bounded steps.
 *
 * Invariants owned here:
 *  (1) A worker is live exactly while some open file description holds an
 *      OFD write lock on DIR/cache.db-tiercached.lock; the kernel drops it
 *      when the holder dies, so a SIGKILLed worker is never "live".
 *  (2) Every step of a pass is a series of short write transactions
 *      (expire 100 rows, fold 1000 rows, cull 10-100 rows), so a pass
 *      never holds a shard's write lock for long, and a worker killed
 *      mid-pass leaves only committed batches behind.
 *  (3) The status record is replaced by rename, so a reader sees either
 *      the previous record or the new one.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void dir_file(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

int tc_set_worker(tc_cache *c, int mode)
{
    if (!c)
        return tc__err(TC_EINVAL, "tc_set_worker: handle is NULL");
    if (c->opened)
        return tc__err(TC_EINVAL, "tc_set_worker: must be called before "
                                  "tc_open");
    if (mode != TC_WORKER_OFF && mode != TC_WORKER_AUTO)
        return tc__err(TC_EINVAL, "tc_set_worker: unknown mode %d", mode);
    c->worker_mode = mode;
    return TC_OK;
}

/* ---- the lock ------------------------------------------------------------ */

static int64_t read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strtoll(buf, NULL, 10);
}

int tc_worker_lock(const char *dir, int *fd, int64_t *holder)
{
    char path[PATH_MAX];

    if (!dir || !fd)
        return tc__err(TC_EINVAL, "tc_worker_lock: NULL argument");
    dir_file(path, sizeof path, dir, TC_WORKER_LOCK_NAME);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0)
        return tc__oserr(errno, "opening the worker lock", path);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(f, F_OFD_SETLK, &fl) != 0) {
        int e = errno;
        if (e == EAGAIN || e == EACCES) {
            if (holder)
                *holder = read_pid(f);
            close(f);
            return tc__err(TC_EXISTS, "a worker already runs on %s", dir);
        }
        close(f);
        return tc__oserr(e, "locking", path);
    }
    /* The pid is for people and for the "already runs" message only;
     * liveness is the lock itself (invariant 1). */
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld\n", (long long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, buf, (size_t)n, 0) != n) {
        int e = errno;
        close(f);
        return tc__oserr(e, "writing", path);
    }
    *fd = f;
    return TC_OK;
}

/* Is the lock held by anyone (this process's other descriptions too)? */
static bool live_now(tc_cache *c)
{
    int fd = atomic_load(&c->worker_fd1) - 1;
    if (fd < 0) {
        char path[PATH_MAX];
        dir_file(path, sizeof path, c->dir, TC_WORKER_LOCK_NAME);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return false; /* no lock file: no worker ever ran here */
        int expect = 0;
        if (!atomic_compare_exchange_strong(&c->worker_fd1, &expect, fd + 1)) {
            close(fd);
            fd = expect - 1;
        }
    }
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
        return false;
    return fl.l_type != F_UNLCK;
}

bool tc__worker_live(tc_cache *c)
{
    uint64_t now = mono_ms();
    uint64_t last = atomic_load_explicit(&c->worker_ms, memory_order_relaxed);
    if (last != 0 && now - last < 1000)
        return atomic_load_explicit(&c->worker_live, memory_order_relaxed);
    bool live = live_now(c);
    atomic_store_explicit(&c->worker_live, live, memory_order_relaxed);
    atomic_store_explicit(&c->worker_ms, now ? now : 1, memory_order_relaxed);
    return live;
}

int tc_worker_live(tc_cache *c)
{
    if (!c || !c->opened)
        return 0;
    bool live = live_now(c);
    atomic_store(&c->worker_live, live);
    atomic_store(&c->worker_ms, mono_ms() | 1);
    return live;
}

void tc__worker_close(tc_cache *c)
{
    int fd = atomic_exchange(&c->worker_fd1, 0) - 1;
    if (fd >= 0)
        close(fd);
}

/* ---- one pass ------------------------------------------------------------ */

void tc_worker_stop(tc_cache *c)
{
    if (c)
        atomic_store(&c->worker_stop, 1);
}

void tc_worker_resume(tc_cache *c)
{
    if (c)
        atomic_store(&c->worker_stop, 0);
}

static bool stop_asked(tc_cache *c)
{
    return atomic_load(&c->worker_stop) != 0;
}

/* Count an error of one step; the pass goes on with the next step. */
static void step_failed(tc_worker_status *st, int rc, int *first)
{
    st->errors++;
    snprintf(st->last_error, sizeof st->last_error, "%s: %s", tc_errname(rc),
             tc_errmsg());
    if (*first == TC_OK)
        *first = rc;
}

static int checkpoint(tc_cache *c, int shard)
{
    struct tc_work w;
    int rc = tc__work_read(c, shard, &w);
    if (rc)
        return rc;
    int src = sqlite3_wal_checkpoint_v2(w.k->db, NULL,
                                        SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (src != SQLITE_OK && src != SQLITE_BUSY)
        rc = tc__sqlerr(w.k->db, src, "checkpointing the WAL");
    return tc__work_end(&w, rc);
}

int tc_worker_pass(tc_cache *c, tc_worker_status *out)
{
    tc_worker_status st;
    int first = TC_OK, rc;
    uint64_t n;

    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "tc_worker_pass: handle is not open");
    if (c->readonly)
        return tc__err(TC_EREADONLY, "cache %s is opened read-only", c->dir);
    tc__after_fork_check(c);
    memset(&st, 0, sizeof st);
    double t0 = mono_s();
    for (int i = 0; i < c->nshards && !stop_asked(c); i++) {
        n = 0;
        if ((rc = tc__shard_expire_stoppable(c, i, NAN, &n)))
            step_failed(&st, rc, &first);
        st.expired += n;
        n = 0;
        if ((rc = tc__hot_fold_batched(c, i, 1000, &n)))
            step_failed(&st, rc, &first);
        st.folded += n;
        n = 0;
        if (!stop_asked(c) && (rc = tc__shard_cull_stoppable(c, i, &n)))
            step_failed(&st, rc, &first);
        st.culled += n;
        if ((rc = checkpoint(c, i)))
            step_failed(&st, rc, &first);
    }
    n = 0;
    if (atomic_load(&c->hot) && (rc = tc_hot_recover(c, &n)))
        step_failed(&st, rc, &first);
    st.recovered = n;
    st.last_pass = tc__now(c);
    st.duration_s = mono_s() - t0;
    if (out) {
        out->last_pass = st.last_pass;
        out->duration_s = st.duration_s;
        out->expired = st.expired;
        out->culled = st.culled;
        out->folded = st.folded;
        out->recovered = st.recovered;
        out->errors = st.errors;
        memcpy(out->last_error, st.last_error, sizeof st.last_error);
    }
    return first;
}

int tc_hot_fold(tc_cache *c, unsigned batch, uint64_t *folded)
{
    uint64_t total = 0;
    int rc = TC_OK;

    if (!c || !c->opened)
        return tc__err(TC_ECLOSED, "tc_hot_fold: handle is not open");
    if (c->readonly)
        return tc__err(TC_EREADONLY, "cache %s is opened read-only", c->dir);
    tc__after_fork_check(c);
    for (int i = 0; i < c->nshards && rc == TC_OK; i++) {
        uint64_t n = 0;
        rc = tc__hot_fold_batched(c, i, batch, &n);
        total += n;
    }
    if (folded)
        *folded = total;
    return rc;
}

/* ---- the status record --------------------------------------------------- */

int tc_worker_status_put(tc_cache *c, const tc_worker_status *st)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], err[sizeof st->last_error];

    if (!c || !c->opened || !st)
        return tc__err(TC_EINVAL, "tc_worker_status_put: bad argument");
    dir_file(path, sizeof path, c->dir, TC_WORKER_STATUS_NAME);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(err, sizeof err, "%s", st->last_error);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    FILE *f = fopen(tmp, "we");
    if (!f)
        return tc__oserr(errno, "writing", tmp);
    fprintf(f,
            "pid %lld\nstarted %.6f\nlast_pass %.6f\nduration_s %.6f\n"
            "passes %llu\nexpired %llu\nculled %llu\nfolded %llu\n"
            "recovered %llu\nerrors %llu\ntotal_expired %llu\n"
            "total_culled %llu\ntotal_errors %llu\nlast_error %s\n",
            (long long)st->pid, st->started, st->last_pass, st->duration_s,
            (unsigned long long)st->passes, (unsigned long long)st->expired,
            (unsigned long long)st->culled, (unsigned long long)st->folded,
            (unsigned long long)st->recovered, (unsigned long long)st->errors,
            (unsigned long long)st->total_expired,
            (unsigned long long)st->total_culled,
            (unsigned long long)st->total_errors, err);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        return tc__err(TC_EIO, "writing %s", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tc__oserr(e, "renaming", tmp);
    }
    return TC_OK;
}

int tc_worker_status_get(tc_cache *c, tc_worker_status *out)
{
    char path[PATH_MAX], line[256];

    if (!c || !c->opened || !out)
        return tc__err(TC_EINVAL, "tc_worker_status_get: bad argument");
    memset(out, 0, sizeof *out);
    dir_file(path, sizeof path, c->dir, TC_WORKER_STATUS_NAME);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return TC_NOTFOUND;
        return tc__oserr(errno, "reading", path);
    }
    while (fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp++ = 0;
        sp[strcspn(sp, "\n")] = 0;
        unsigned long long u = strtoull(sp, NULL, 10);
        if (!strcmp(line, "pid"))
            out->pid = strtoll(sp, NULL, 10);
        else if (!strcmp(line, "started"))
            out->started = strtod(sp, NULL);
        else if (!strcmp(line, "last_pass"))
            out->last_pass = strtod(sp, NULL);
        else if (!strcmp(line, "duration_s"))
            out->duration_s = strtod(sp, NULL);
        else if (!strcmp(line, "passes"))
            out->passes = u;
        else if (!strcmp(line, "expired"))
            out->expired = u;
        else if (!strcmp(line, "culled"))
            out->culled = u;
        else if (!strcmp(line, "folded"))
            out->folded = u;
        else if (!strcmp(line, "recovered"))
            out->recovered = u;
        else if (!strcmp(line, "errors"))
            out->errors = u;
        else if (!strcmp(line, "total_expired"))
            out->total_expired = u;
        else if (!strcmp(line, "total_culled"))
            out->total_culled = u;
        else if (!strcmp(line, "total_errors"))
            out->total_errors = u;
        else if (!strcmp(line, "last_error"))
            snprintf(out->last_error, sizeof out->last_error, "%s", sp);
    }
    fclose(f);
    return TC_OK;
}

/* ---- auto-start ---------------------------------------------------------- */

static bool executable(const char *p)
{
    return access(p, X_OK) == 0;
}

/* DESIGN-BRIEF 9.16: $TIERCACHED, else beside the library (or ../bin),
 * else beside the running executable. */
static bool find_worker(char *out, size_t cap)
{
    const char *env = getenv("TIERCACHED");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return executable(out);
    }
    Dl_info info;
    if (dladdr((void *)tc_set_worker, &info) && info.dli_fname) {
        char dir[PATH_MAX - 32];
        snprintf(dir, sizeof dir, "%s", info.dli_fname);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, cap, "%s/tiercached", dir);
            if (executable(out))
                return true;
            snprintf(out, cap, "%s/../bin/tiercached", dir);
            if (executable(out))
                return true;
        }
    }
    char exe[PATH_MAX - 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, cap, "%s/tiercached", exe);
            return executable(out);
        }
    }
    return false;
}

/* In the grandchild, before exec: only async-signal-safe calls. */
static void close_inherited(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
        return;
#endif
    for (int fd = 3; fd < 65536; fd++)
        close(fd);
}

static void spawn(const char *prog, const char *dir)
{
    char *argv[] = {(char *)"tiercached", (char *)dir, (char *)"--syslog",
                    NULL};
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        /* First child: new session, fork the worker, exit at once so the
         * opener reaps it and the worker is adopted by init. */
        if (setsid() < 0 || fork() != 0)
            _exit(0);
        close_inherited();
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 2)
                close(null);
        }
        if (chdir("/") != 0)
            _exit(127);
        /* An nginx worker may ignore or block signals the worker needs. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE};
        for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
            sigaction(sigs[i], &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(prog, argv);
        _exit(127);
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

void tc__worker_open(tc_cache *c)
{
    char prog[PATH_MAX], dir[PATH_MAX];

    if (c->worker_mode != TC_WORKER_AUTO || c->readonly)
        return;
    if (live_now(c))
        return;
    if (!find_worker(prog, sizeof prog))
        return; /* inline culling keeps the cache bounded */
    /* The worker must find the directory after chdir("/"). */
    if (c->dir[0] == '/')
        snprintf(dir, sizeof dir, "%s", c->dir);
    else if (!realpath(c->dir, dir))
        return;
    spawn(prog, dir);
}
