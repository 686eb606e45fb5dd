/*
 * demo.c - the main job: one cache directory shared by two processes.
 *
 * The parent writes a few items, forks a child that opens the same
 * directory on its own, reads the parent's writes and answers with its
 * own; the parent then reads the child's answer. Both bump one counter
 * under a cross-process Lock (a holder that dies would not keep it).
 * Usage: tiercache-demo [DIR]   (default: $HOME/.cache/tiercache-demo)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <tiercache.h>
#include <unistd.h>

static void die(const char *what, int rc)
{
    fprintf(stderr, "tiercache-demo: %s: %s (%s)\n", what, tc_strerror(rc),
            tc_errmsg());
    exit(1);
}

static tc_cache *open_cache(const char *dir)
{
    tc_cache *c;
    int rc;

    if ((rc = tc_create(&c)) || (rc = tc_set_timeout(c, 5.0)) ||
        (rc = tc_open(c, dir, 0)))
        die("open", rc);
    return c;
}

/* The counter goes up under a cross-process Lock: a read and a write that
 * only the lock keeps together (tc_incr alone would be atomic already). */
static void bump(tc_cache *c, const char *who)
{
    tc_data lock = tc_text("demo:lock"), key = tc_text("demo:counter");
    int rc = tc_lock_acquire(c, &lock, 60, 10);
    if (rc)
        die("lock", rc);
    tc_item it = TC_ITEM_INIT;
    int64_t n = 0;
    rc = tc_get(c, &key, &it, 0);
    if (rc == TC_OK && it.value.type == TC_INT)
        n = it.value.i;
    else if (rc != TC_OK && rc != TC_NOTFOUND)
        die("get", rc);
    tc_item_clear(&it);
    n++;
    tc_data v = tc_int(&n);
    if ((rc = tc_set(c, &key, &v, TC_NO_EXPIRE, NULL, TC_RETRY)))
        die("set", rc);
    if ((rc = tc_lock_release(c, &lock)))
        die("unlock", rc);
    printf("%-6s under demo:lock, demo:counter -> %lld\n", who, (long long)n);
}

static void show(tc_cache *c, const char *who, const char *k)
{
    tc_data key = tc_text(k);
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(c, &key, &it, 0);

    if (rc == TC_NOTFOUND)
        printf("%-6s get %s -> (missing)\n", who, k);
    else if (rc)
        die("get", rc);
    else
        printf("%-6s get %s -> %.*s\n", who, k, (int)it.value.len,
               (const char *)it.value.ptr);
    tc_item_clear(&it);
}

int main(int argc, char **argv)
{
    char def[4096];
    const char *dir = argc > 1 ? argv[1] : NULL;

    if (!dir) {
        const char *home = getenv("HOME");
        snprintf(def, sizeof def, "%s/.cache/tiercache-demo",
                 home ? home : "/tmp");
        dir = def;
    }
    printf("tiercache %s demo on %s\n", tc_version(), dir);
    tc_cache *c = open_cache(dir);
    printf("parent (pid %d): %s with %d shards\n", (int)getpid(),
           tc_shard_count(c) ? "FanoutCache" : "Cache", tc_shard_count(c));
    tc_data k = tc_text("demo:greeting"), v = tc_text("hello from the parent");
    tc_data tag = tc_text("demo");
    int rc = tc_set(c, &k, &v, 3600, &tag, TC_RETRY);
    if (rc)
        die("set", rc);
    printf("parent set demo:greeting\n");
    bump(c, "parent");

    fflush(stdout); /* nothing buffered may be printed twice */
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        /* The child opens its own handle, as an unrelated process would. */
        tc_cache *cc = open_cache(dir);
        show(cc, "child", "demo:greeting");
        tc_data rk = tc_text("demo:reply");
        char reply[64];
        snprintf(reply, sizeof reply, "hello from the child (pid %d)",
                 (int)getpid());
        tc_data rv = tc_text(reply);
        if ((rc = tc_set(cc, &rk, &rv, 3600, &tag, TC_RETRY)))
            die("set", rc);
        printf("child  set demo:reply\n");
        bump(cc, "child");
        tc_close(cc);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tiercache-demo: child failed\n");
        return 1;
    }
    show(c, "parent", "demo:reply");
    uint64_t n, vol;
    if ((rc = tc_length(c, &n)) || (rc = tc_volume(c, &vol)))
        die("stats", rc);
    printf("parent sees %llu items, %llu bytes on disk\n",
           (unsigned long long)n, (unsigned long long)vol);
    tc_close(c);
    return 0;
}
