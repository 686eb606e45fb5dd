/*
 * err.c - return codes and error detail.
 *
 * One table (TC_RC_MAP in tiercache.h) gives the enum, tc_strerror and
 * tc_errname. Raw SQLite and errno codes are mapped here, at the boundary;
 * their detail is kept per thread for tc_errmsg() (diagnostics only).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char errmsg[512];

const char *tc_strerror(int rc)
{
    switch (rc) {
#define TC_RC_STR(name, code, msg) \
    case code:                     \
        return msg;
        TC_RC_MAP(TC_RC_STR)
#undef TC_RC_STR
    }
    return "unknown error code";
}

const char *tc_errname(int rc)
{
    switch (rc) {
#define TC_RC_NAME(name, code, msg) \
    case code:                      \
        return #name;
        TC_RC_MAP(TC_RC_NAME)
#undef TC_RC_NAME
    }
    return "EUNKNOWN";
}

const char *tc_errmsg(void)
{
    return errmsg[0] ? errmsg : "no error";
}

int tc__err(int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

int tc__sqlerr(sqlite3 *db, int src, const char *what)
{
    int rc;

    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        rc = TC_EBUSY;
        break;
    case SQLITE_NOMEM:
        rc = TC_ENOMEM;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        rc = TC_ECORRUPT;
        break;
    case SQLITE_FULL:
        rc = TC_ENOSPC;
        break;
    case SQLITE_READONLY:
        rc = TC_EREADONLY;
        break;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        rc = TC_EPERM;
        break;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
        rc = TC_EIO;
        break;
    case SQLITE_TOOBIG:
        rc = TC_ETOOBIG;
        break;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        rc = TC_EINVAL;
        break;
    default:
        rc = TC_EINTERNAL;
        break;
    }
    return tc__err(rc, "%s: %s", what,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
}

int tc__oserr(int err, const char *what, const char *path)
{
    int rc;

    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        rc = TC_ENOSPC;
        break;
    case EACCES:
    case EPERM:
        rc = TC_EPERM;
        break;
    case EROFS:
        rc = TC_EREADONLY;
        break;
    case ENOMEM:
        rc = TC_ENOMEM;
        break;
    case ENOTDIR:
    case ENAMETOOLONG:
        rc = TC_EINVAL;
        break;
    default:
        rc = TC_EIO;
        break;
    }
    return tc__err(rc, "%s %s: %s", what, path ? path : "", strerror(err));
}

int tc__err_named(int rc, const char *fn)
{
    char detail[400];

    if (rc >= 0 || strncmp(tc_errmsg(), fn, strlen(fn)) == 0)
        return rc;
    snprintf(detail, sizeof detail, "%s", tc_errmsg());
    return tc__err(rc, "%s: %s", fn, detail);
}
