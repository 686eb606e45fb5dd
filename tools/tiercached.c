/*
 * tiercached.c - the background worker: one process per cache directory
 * that expires, culls, folds the hot tier's access data, checkpoints the
 * WAL and recovers dead processes' hot-tier state, every --interval
 * seconds (tc_worker_pass), and writes a status record after each pass.
 *
 * Layering: a tool, so only the public API (tiercache.h).
 *
 * Lifecycle:
 *
 *   open (validate DIR) -> tc_worker_lock -> [--daemon: fork, setsid,
 *   fork] -> open -> loop { tc_worker_pass -> tc_worker_status_put ->
 *   sleep --interval } -> close -> exit 0
 *
 * SIGTERM/SIGINT set the stop flag and call tc_worker_stop, so the pass
 * ends after its current batch; SIGHUP closes and reopens the cache at
 * the end of the pass (re-reading size_limit, eviction_policy and the
 * other settings). The lock is an OFD lock: the kernel releases it when
 * the process dies, however it dies.
 *
 * Exit statuses: 0 stopped cleanly (or --once done), 1 no cache in DIR,
 * 2 usage, 3 another worker holds the lock, 4 I/O or other error.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "tiercache.h"

enum { XS_OK, XS_NOCACHE, XS_USAGE, XS_RUNNING, XS_ERROR };
enum { L_ERROR, L_WARNING, L_INFO, L_DEBUG };

struct opts {
    const char *dir;
    double interval; /* seconds between passes */
    int daemon;      /* fork into the background, log to syslog */
    int use_syslog;  /* log to syslog without forking (auto-start) */
    const char *pidfile;
    int level;   /* L_* */
    int once;    /* one pass, then exit */
    double skew; /* TIERCACHED_NOW_OFFSET: seconds added to the clock */
};

static struct opts g_o = {NULL, 60.0, 0, 0, NULL, L_INFO, 0, 0.0};
static volatile sig_atomic_t g_stop, g_reload;
static int g_detached; /* --daemon forked: stderr is gone, use syslog */
static tc_cache *volatile g_cache;

static void logmsg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logmsg(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[512];
    va_list ap;

    if (level > g_o.level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_detached || g_o.use_syslog)
        syslog(prio[level], "%s: %s", g_o.dir, msg);
    else
        fprintf(stderr, "tiercached[%ld]: %s: %s\n", (long)getpid(),
                names[level], msg);
}

static void usage(FILE *f)
{
    fputs("usage: tiercached DIR [--interval S] [--daemon] [--pidfile F]\n"
          "                  [--log-level error|warning|info|debug] "
          "[--once]\n"
          "  One background worker per cache directory: expires, culls "
          "to\n"
          "  size_limit, folds hot-tier accesses, checkpoints the WAL.\n"
          "  --interval S   seconds between passes (default 60)\n"
          "  --daemon       detach and log to syslog\n"
          "  --syslog       log to syslog without detaching (auto-start)\n"
          "  --pidfile F    write the worker's pid to F\n"
          "  --once         run one pass and exit\n"
          "  Tests only: TIERCACHED_NOW_OFFSET=S shifts the worker's clock\n"
          "  by S seconds (expiry is judged at now + S).\n"
          "Exit: 0 ok, 1 no cache in DIR, 2 usage, 3 a worker already "
          "runs, 4 error\n",
          f);
}

static int parse_level(const char *s)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(XS_OK);
        } else if (!strcmp(a, "--interval") && v) {
            g_o.interval = strtod(v, &end);
            if (*end || !(g_o.interval > 0) || !isfinite(g_o.interval))
                return -1;
            i++;
        } else if (!strcmp(a, "--daemon")) {
            g_o.daemon = 1;
        } else if (!strcmp(a, "--syslog")) {
            g_o.use_syslog = 1;
        } else if (!strcmp(a, "--pidfile") && v) {
            g_o.pidfile = v;
            i++;
        } else if (!strcmp(a, "--log-level") && v) {
            if ((g_o.level = parse_level(v)) < 0)
                return -1;
            i++;
        } else if (!strcmp(a, "--once")) {
            g_o.once = 1;
        } else if (a[0] == '-' || g_o.dir) {
            return -1;
        } else {
            g_o.dir = a;
        }
    }
    const char *skew = getenv("TIERCACHED_NOW_OFFSET");
    if (skew && *skew) {
        char *end;
        g_o.skew = strtod(skew, &end);
        if (*end || !isfinite(g_o.skew))
            return -1;
    }
    return g_o.dir ? 0 : -1;
}

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
    tc_worker_stop(g_cache);
}

static void on_hup(int sig)
{
    (void)sig;
    g_reload = 1;
}

static void signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop; /* no SA_RESTART: the sleep is cut short */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static double skewed_clock(void *arg)
{
    struct timespec ts;
    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + g_o.skew;
}

static int open_cache(tc_cache **out)
{
    tc_cache *c;
    int rc = tc_create(&c);
    if (rc)
        return rc;
    if (g_o.skew != 0)
        tc_set_clock(c, skewed_clock, NULL);
    if ((rc = tc_open(c, g_o.dir, TC_OPEN_NOCREATE))) {
        tc_close(c);
        return rc;
    }
    if (tc_is_readonly(c)) {
        tc_close(c);
        return TC_EREADONLY;
    }
    *out = c;
    return TC_OK;
}

/* Fork into the background; the parent exits 0 once the child runs. */
static void daemonize(int lockfd)
{
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tiercached: fork: %s\n", strerror(errno));
        exit(XS_ERROR);
    }
    if (pid > 0)
        _exit(XS_OK);
    setsid();
    if ((pid = fork()) != 0)
        _exit(pid < 0 ? XS_ERROR : XS_OK);
    g_detached = 1;
    if (chdir("/") != 0)
        _exit(XS_ERROR);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    /* The lock survives the forks (it belongs to the open file
     * description); record the worker's own pid in it. */
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(lockfd, 0) != 0 || pwrite(lockfd, buf, (size_t)n, 0) != n)
        logmsg(L_WARNING, "cannot record the pid in the lock file");
}

static int write_pidfile(void)
{
    if (!g_o.pidfile)
        return 0;
    FILE *f = fopen(g_o.pidfile, "we");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        logmsg(L_ERROR, "cannot write pidfile %s: %s", g_o.pidfile,
               strerror(errno));
        return -1;
    }
    return 0;
}

/* Sleep @s seconds, cut short by a signal that asks to stop. */
static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (!g_stop && !g_reload && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int run(tc_worker_status *st)
{
    int status = XS_OK;

    while (!g_stop) {
        int rc = tc_worker_pass(g_cache, st);
        st->passes++;
        st->total_expired += st->expired;
        st->total_culled += st->culled;
        st->total_errors += st->errors;
        if (rc)
            logmsg(L_WARNING, "pass %llu: %llu errors, last: %s",
                   (unsigned long long)st->passes,
                   (unsigned long long)st->errors, st->last_error);
        logmsg(L_DEBUG,
               "pass %llu: expired %llu, culled %llu, folded %llu, "
               "recovered %llu in %.3f s",
               (unsigned long long)st->passes, (unsigned long long)st->expired,
               (unsigned long long)st->culled, (unsigned long long)st->folded,
               (unsigned long long)st->recovered, st->duration_s);
        if ((rc = tc_worker_status_put(g_cache, st)))
            logmsg(L_WARNING, "cannot write the status record: %s",
                   tc_errmsg());
        if (g_o.once)
            break;
        nap(g_o.interval);
        if (g_reload && !g_stop) {
            g_reload = 0;
            tc_cache *old = g_cache, *fresh;
            if ((rc = open_cache(&fresh))) {
                logmsg(L_ERROR, "SIGHUP: reopening %s failed: %s", g_o.dir,
                       tc_errmsg());
                continue; /* keep the old handle */
            }
            g_cache = fresh;
            tc_close(old);
            logmsg(L_INFO, "SIGHUP: settings re-read");
        }
    }
    return status;
}

int main(int argc, char **argv)
{
    tc_cache *c;
    int lockfd, rc;
    int64_t holder = 0;

    if (parse_args(argc, argv)) {
        usage(stderr);
        return XS_USAGE;
    }
    /* A daemon runs in "/": keep DIR and the pidfile absolute. */
    static char dir_abs[PATH_MAX], pid_abs[PATH_MAX];
    if (realpath(g_o.dir, dir_abs))
        g_o.dir = dir_abs;
    if (g_o.pidfile && g_o.pidfile[0] != '/') {
        char cwd[PATH_MAX / 2];
        if (!getcwd(cwd, sizeof cwd)) {
            fprintf(stderr, "tiercached: getcwd: %s\n", strerror(errno));
            return XS_ERROR;
        }
        snprintf(pid_abs, sizeof pid_abs, "%s/%s", cwd, g_o.pidfile);
        g_o.pidfile = pid_abs;
    }
    if (g_o.daemon || g_o.use_syslog)
        openlog("tiercached", LOG_PID, LOG_DAEMON);
    /* Validate DIR while errors still reach the terminal. */
    if ((rc = open_cache(&c))) {
        logmsg(L_ERROR, "cannot open %s: %s", g_o.dir,
               rc == TC_EREADONLY ? "cache is not writable" : tc_errmsg());
        return rc == TC_ENOCACHE ? XS_NOCACHE : XS_ERROR;
    }
    tc_close(c);
    if ((rc = tc_worker_lock(g_o.dir, &lockfd, &holder))) {
        if (rc == TC_EXISTS) {
            logmsg(L_ERROR, "another tiercached (pid %lld) already runs on %s",
                   (long long)holder, g_o.dir);
            return XS_RUNNING;
        }
        logmsg(L_ERROR, "cannot take the worker lock: %s", tc_errmsg());
        return XS_ERROR;
    }
    if (g_o.daemon)
        daemonize(lockfd);
    if (write_pidfile())
        return XS_ERROR;
    signals();
    if ((rc = open_cache(&c))) {
        logmsg(L_ERROR, "cannot open %s: %s", g_o.dir, tc_errmsg());
        return XS_ERROR;
    }
    g_cache = c;
    if (g_stop) /* a signal that came before the handle existed */
        tc_worker_stop(c);
    tc_worker_status st;
    memset(&st, 0, sizeof st);
    st.pid = getpid();
    st.started = tc_now(c);
    logmsg(L_INFO, "started on %s (interval %g s)", g_o.dir, g_o.interval);
    int status = run(&st);
    logmsg(L_INFO, "stopped after %llu passes", (unsigned long long)st.passes);
    c = g_cache;
    g_cache = NULL;
    tc_close(c);
    if (g_o.pidfile)
        unlink(g_o.pidfile);
    close(lockfd);
    return status;
}
