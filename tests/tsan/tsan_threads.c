/*
 * tsan_threads.c - the threaded coherence stress (tests/mp/threads_stress.h)
 * as a plain program, for the ThreadSanitizer build (tools/test.sh): a
 * data race TSan reports makes it exit non-zero (halt_on_error), and so
 * does a failed coherence check. Usage: tsan_threads [SECONDS]. A plain
 * Cache and a FanoutCache are made in a fresh directory under $TMPDIR (or
 * /tmp), then removed with their segments.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../mp/threads_stress.h"

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int run_one(const char *base, const char *name, int shards,
                   double seconds)
{
    char dir[PATH_MAX], err[600];
    tc_hot_stats hs;
    uint64_t writes = 0;
    snprintf(dir, sizeof dir, "%s/%s", base, name);
    int rc =
        ts_run(dir, shards, 8u << 20, seconds, &hs, &writes, err, sizeof err);
    printf("%s: %s; %llu writes; hot: %llu hits, %llu misses, %llu fills, "
           "%llu retries\n",
           name, rc ? err : "ok", (unsigned long long)writes,
           (unsigned long long)hs.hits, (unsigned long long)hs.misses,
           (unsigned long long)hs.fills, (unsigned long long)hs.retries);
    (void)tc_hot_drop(dir);
    (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (seconds <= 0)
        seconds = 2.0;
    const char *tmp = getenv("TMPDIR");
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/tc-tsan-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror(base);
        return 2;
    }
    int bad = run_one(base, "cache", TC_SHARDS_PLAIN, seconds);
    bad |= run_one(base, "fanout", 4, seconds);
    rmdir(base);
    return bad ? 1 : 0;
}
