/*
 * diskfile.c - values at or above disk_min_file_size live in files, named
 * and laid out exactly as python-diskcache does: 16 random bytes as 32 hex
 * digits h, stored at h[0:2]/h[2:4]/h[4:32].val relative to the shard's
 * directory. Files are created exclusively, written before the write
 * transaction begins, and removed only after it commits (internal.h (3)).
 *
 * A file name read from the database is untrusted: it must match that
 * exact pattern, so it can never point outside the cache directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define WRITE_ATTEMPTS 10

static bool ishex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

bool tc__file_name_valid(const char *rel)
{
    if (!rel || strlen(rel) != TC_FILENAME_LEN)
        return false;
    for (int i = 0; i < TC_FILENAME_LEN; i++) {
        char ch = rel[i];
        bool ok;
        if (i == 2 || i == 5)
            ok = ch == '/';
        else if (i >= 34)
            ok = ch == ".val"[i - 34];
        else
            ok = ishex(ch);
        if (!ok)
            return false;
    }
    return true;
}

static int random_name(char *rel)
{
    unsigned char rnd[16];
    char hex[33];
    size_t got = 0;

    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return tc__oserr(errno, "getrandom", NULL);
        }
        got += (size_t)n;
    }
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(rel, TC_FILENAME_LEN + 1, "%.2s/%.2s/%.28s.val", hex, hex + 2,
             hex + 4);
    return TC_OK;
}

static int full_path(char *out, size_t cap, const char *dir, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= cap)
        return tc__err(TC_EINVAL, "path too long: %s/%s", dir, rel);
    return TC_OK;
}

/* Create the parent directories ab/ and ab/cd/ (0755 before umask). */
static void make_parents(const char *dir, const char *rel)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/%.2s", dir, rel);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%.5s", dir, rel);
    mkdir(path, 0777);
}

/* Open a fresh value file, retrying on name clashes and on a concurrent
 * remover pruning the parent directory, as diskcache does. */
static int create_file(const char *dir, char *rel, int *fd_out)
{
    char path[PATH_MAX];
    int err = 0;

    for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        int rc = random_name(rel);
        if (rc)
            return rc;
        if ((rc = full_path(path, sizeof path, dir, rel)))
            return rc;
        make_parents(dir, rel);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *fd_out = fd;
            return TC_OK;
        }
        err = errno;
        if (err != EEXIST && err != ENOENT)
            break;
    }
    return tc__oserr(err, "creating value file in", dir);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;

    while (n) {
        ssize_t w = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int tc__file_write(const char *dir, const void *p, size_t n, char *relname)
{
    int fd, rc = create_file(dir, relname, &fd);

    if (rc)
        return rc;
    int err = write_all(fd, p, n);
    if (close(fd) != 0 && !err)
        err = errno;
    if (err) {
        tc__file_remove(dir, relname);
        return tc__oserr(err, "writing value file in", dir);
    }
    return TC_OK;
}

int tc__file_write_fd(const char *dir, int src, char *relname, uint64_t *size)
{
    int fd, rc = create_file(dir, relname, &fd);
    char buf[1 << 16];
    uint64_t total = 0;
    int err = 0;

    if (rc)
        return rc;
    for (;;) {
        ssize_t r = read(src, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (r == 0)
            break;
        if ((err = write_all(fd, buf, (size_t)r)))
            break;
        total += (uint64_t)r;
    }
    if (close(fd) != 0 && !err)
        err = errno;
    if (err) {
        tc__file_remove(dir, relname);
        return tc__oserr(err, "copying value into a file in", dir);
    }
    *size = total;
    return TC_OK;
}

int tc__file_open(const char *dir, const char *rel, int *fd)
{
    char path[PATH_MAX];
    int rc;

    if (!tc__file_name_valid(rel))
        return tc__err(TC_ECORRUPT,
                       "value file name %.80s in the database is not one "
                       "diskcache writes; refusing to open it",
                       rel ? rel : "(null)");
    if ((rc = full_path(path, sizeof path, dir, rel)))
        return rc;
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (*fd < 0) {
        if (errno == ENOENT)
            return tc__err(TC_NOTFOUND, "value file %s is missing", path);
        return tc__oserr(errno, "opening value file", path);
    }
    return TC_OK;
}

int tc__file_read(const char *dir, const char *rel, int64_t expect_size,
                  void **buf_out, size_t *n_out)
{
    struct stat sb;
    int fd, rc = tc__file_open(dir, rel, &fd);

    if (rc)
        return rc;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tc__err(TC_ECORRUPT, "value file %s/%s is not a regular file",
                       dir, rel);
    }
    if (expect_size >= 0 && sb.st_size != expect_size) {
        close(fd);
        return tc__err(TC_ECORRUPT,
                       "value file %s/%s has %lld bytes, the database says "
                       "%lld (truncated or replaced)",
                       dir, rel, (long long)sb.st_size, (long long)expect_size);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return tc__err(TC_ENOMEM, "out of memory reading %zu bytes", n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int err = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            if (err)
                return tc__oserr(err, "reading value file", rel);
            return tc__err(TC_ECORRUPT, "value file %s/%s shrank while read",
                           dir, rel);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *buf_out = buf;
    *n_out = n;
    return TC_OK;
}

void tc__file_remove(const char *dir, const char *rel)
{
    char path[PATH_MAX];

    if (!tc__file_name_valid(rel))
        return; /* never unlink outside the cache directory */
    if (full_path(path, sizeof path, dir, rel))
        return;
    unlink(path);
    /* Prune now-empty parents (os.removedirs); errors mean "not empty" or
     * "a concurrent remover got there first". */
    snprintf(path, sizeof path, "%s/%.5s", dir, rel);
    if (rmdir(path) == 0) {
        snprintf(path, sizeof path, "%s/%.2s", dir, rel);
        rmdir(path);
    }
}
