/*
 * cache.c - Cache and FanoutCache methods with python-diskcache semantics.
 *
 * Every method reads its arguments from fixed stack slots (self is 1), so
 * DjangoCache can rewrite its arguments (made key, backend timeout, its own
 * retry defaults) and call the same function. A busy timeout raises a
 * Timeout error object from a Cache; a FanoutCache and a DjangoCache
 * swallow it and return the default or false, as diskcache does.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "module.h"

/* A busy timeout that this kind of cache turns into a quiet failure. */
static int swallowed(const tcl_cache *o, int rc)
{
    return rc == TC_EBUSY && o->kind != TCL_CACHE;
}

static unsigned retry_flag(lua_State *L, int opts, const tcl_cache *o,
                           const char *m)
{
    return tcl_opt_bool(L, opts, o, m, "retry", 0) ? TC_RETRY : 0;
}

/* Push one part of an item read from the cache (@what: "value", "tag" or
 * "key"; a missing tag is nil), or raise naming the method. The item is
 * kept on success and cleared before raising. */
static void push_part(lua_State *L, const tcl_cache *o, const char *m,
                      tc_item *it, const tc_value *v, const char *what)
{
    char err[160];

    if (v->type == TC_NONE && v == &it->tag) {
        lua_pushnil(L);
    } else if (tcl_push_value(L, v, err, sizeof err) != 0) {
        tc_item_clear(it);
        tcl_raise_code(L, "ECORRUPT", "%s.%s: stored %s: %s",
                       tcl_kind_name(o->kind), m, what, err);
    }
}

static void push_item_value(lua_State *L, const tcl_cache *o, const char *m,
                            tc_item *it)
{
    push_part(L, o, m, it, &it->value, "value");
}

static void push_tag(lua_State *L, const tcl_cache *o, const char *m,
                     tc_item *it)
{
    push_part(L, o, m, it, &it->tag, "tag");
}

static void push_key(lua_State *L, const tcl_cache *o, const char *m,
                     tc_item *it)
{
    push_part(L, o, m, it, &it->key, "key");
}

/* ---- set / add --------------------------------------------------------- */

static const char *const O_SET[] = {"read", "tag", "retry", NULL};

/* add while reading a file: diskcache's add(read=True). The C API has no
 * add-from-fd, so check and store in one transaction. */
static int add_fd(tc_cache *c, const tc_data *key, int fd, double expire,
                  const tc_data *tag, unsigned flags)
{
    int rc = tc_begin(c, flags);
    if (rc)
        return rc;
    rc = tc_contains(c, key);
    if (rc == TC_OK)
        rc = TC_EXISTS;
    else if (rc == TC_NOTFOUND)
        rc = tc_set_fd(c, key, fd, expire, tag, flags);
    if (rc == TC_OK)
        return tc_commit(c);
    tc_rollback(c);
    return rc;
}

static int store(lua_State *L, int add)
{
    const char *m = add ? "add" : "set";
    tcl_cache *o = tcl_self(L, m, TCL_K_ALL);
    tcl_datum key, val, tag;
    int rc;

    tcl_key(L, 2, o, m, "key", &key);
    double expire = tcl_expire_arg(L, 4, o, m, "expire");
    tcl_opts(L, 5, o, m, O_SET);
    int read = tcl_opt_bool(L, 5, o, m, "read", 0);
    unsigned flags = retry_flag(L, 5, o, m);
    tcl_opt_push(L, 5, "tag");
    int has_tag = tcl_tag(L, lua_gettop(L), o, m, &tag);
    if (read) {
        int fd = tcl_file_fd(L, 3);
        if (fd < 0)
            return tcl_argerror(
                L, o, m, "value",
                "with read = true, expected an open file handle, got %s",
                luaL_typename(L, 3));
        rc = add ? add_fd(o->c, &key.d, fd, expire, has_tag ? &tag.d : NULL,
                          flags)
                 : tc_set_fd(o->c, &key.d, fd, expire, has_tag ? &tag.d : NULL,
                             flags);
    } else {
        tcl_value_check(L, 3, o, m, "value", &val);
        rc = add ? tc_add(o->c, &key.d, &val.d, expire, has_tag ? &tag.d : NULL,
                          flags)
                 : tc_set(o->c, &key.d, &val.d, expire, has_tag ? &tag.d : NULL,
                          flags);
        tcl_datum_free(&val);
    }
    if (rc == TC_OK || rc == TC_EXISTS || swallowed(o, rc)) {
        lua_pushboolean(L, rc == TC_OK);
        return 1;
    }
    return tcl_raise(L, o, m, rc);
}

int tcl_m_set(lua_State *L)
{
    lua_settop(L, 5);
    return store(L, 0);
}

int tcl_m_add(lua_State *L)
{
    lua_settop(L, 5);
    return store(L, 1);
}

/* ---- get / read / pop -------------------------------------------------- */

static const char *const O_GET[] = {"read", "expire_time", "tag", "retry",
                                    NULL};
static const char *const O_POP[] = {"expire_time", "tag", "retry", NULL};

/* Push default [, nil] [, nil]: a miss with the extras asked for. */
static int push_miss(lua_State *L, int dflt, int want_exp, int want_tag)
{
    lua_pushvalue(L, dflt);
    if (want_exp)
        lua_pushnil(L);
    if (want_tag)
        lua_pushnil(L);
    return 1 + want_exp + want_tag;
}

/* Push value [, expire_time] [, tag] of a found item and clear it. */
static int push_found(lua_State *L, const tcl_cache *o, const char *m,
                      tc_item *it, int want_exp, int want_tag)
{
    push_item_value(L, o, m, it);
    if (want_exp)
        tcl_push_expire(L, it->expire_time);
    if (want_tag)
        push_tag(L, o, m, it);
    tc_item_clear(it);
    return 1 + want_exp + want_tag;
}

/* The common case, get(key [, default]): the hot tier copies into a stack
 * buffer and nothing is allocated. */
static int get_plain(lua_State *L, tcl_cache *o, const tc_data *key)
{
    char buf[4096];
    size_t len;
    int type;
    tc_value v = TC_VALUE_INIT;
    char err[160];

    int rc = tc_get_buf(o->c, key, buf, sizeof buf, &len, &type, NULL, 0);
    if (rc == TC_OK) {
        v.type = type;
        v.ptr = buf;
        v.len = len;
        if (type == TC_INT)
            memcpy(&v.i, buf, 8);
        else if (type == TC_REAL)
            memcpy(&v.d, buf, 8);
        if (tcl_push_value(L, &v, err, sizeof err) != 0)
            return tcl_raise_code(L, "ECORRUPT", "%s.get: stored value: %s",
                                  tcl_kind_name(o->kind), err);
        return 1;
    }
    if (rc == TC_ETOOSMALL) {
        tc_item it = TC_ITEM_INIT;
        rc = tc_get(o->c, key, &it, 0);
        if (rc == TC_OK)
            return push_found(L, o, "get", &it, 0, 0);
    }
    if (rc == TC_NOTFOUND || swallowed(o, rc))
        return push_miss(L, 3, 0, 0);
    return tcl_raise(L, o, "get", rc);
}

int tcl_m_get(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "get", TCL_K_ALL);
    tcl_datum key;
    tc_item it = TC_ITEM_INIT;
    int rc;

    tcl_key(L, 2, o, "get", "key", &key);
    /* get(key [, default]): nothing pushed before the result, so slot 3
     * may be absent (pushing it pushes nil). */
    if (lua_type(L, 4) <= LUA_TNIL)
        return get_plain(L, o, &key.d);
    lua_settop(L, 4);
    tcl_opts(L, 4, o, "get", O_GET);
    int read = tcl_opt_bool(L, 4, o, "get", "read", 0);
    int want_exp = tcl_opt_bool(L, 4, o, "get", "expire_time", 0);
    int want_tag = tcl_opt_bool(L, 4, o, "get", "tag", 0);
    unsigned flags = retry_flag(L, 4, o, "get");
    if (!read && !want_exp && !want_tag)
        return get_plain(L, o, &key.d);
    if (!read) {
        rc = tc_get(o->c, &key.d, &it, flags);
        if (rc == TC_OK)
            return push_found(L, o, "get", &it, want_exp, want_tag);
    } else {
        /* The handle, then the item's metadata if asked for. */
        int fd = -1;
        rc = tc_read(o->c, &key.d, &fd, flags);
        if (rc == TC_OK && (want_exp || want_tag)) {
            rc = tc_get(o->c, &key.d, &it, flags);
            if (rc != TC_OK)
                close(fd);
        }
        if (rc == TC_OK) {
            if (tcl_push_fd_file(L, fd) != 0) {
                tc_item_clear(&it);
                return tcl_raise_code(L, "EIO",
                                      "%s.get: cannot open a file handle "
                                      "on the value",
                                      tcl_kind_name(o->kind));
            }
            if (want_exp)
                tcl_push_expire(L, it.expire_time);
            if (want_tag)
                push_tag(L, o, "get", &it);
            tc_item_clear(&it);
            return 1 + want_exp + want_tag;
        }
    }
    if (rc == TC_NOTFOUND || swallowed(o, rc))
        return push_miss(L, 3, want_exp, want_tag);
    return tcl_raise(L, o, "get", rc);
}

/* read(key): a file handle on the value, or nil. */
int tcl_m_read(lua_State *L)
{
    lua_settop(L, 2);
    tcl_cache *o = tcl_self(L, "read", TCL_K_ALL);
    tcl_datum key;
    int fd;

    tcl_key(L, 2, o, "read", "key", &key);
    int rc = tc_read(o->c, &key.d, &fd, 0);
    if (rc == TC_OK) {
        if (tcl_push_fd_file(L, fd) != 0)
            return tcl_raise_code(L, "EIO",
                                  "%s.read: cannot open a file handle on "
                                  "the value",
                                  tcl_kind_name(o->kind));
        return 1;
    }
    if (rc == TC_NOTFOUND || swallowed(o, rc)) {
        lua_pushnil(L);
        return 1;
    }
    return tcl_raise(L, o, "read", rc);
}

int tcl_m_pop(lua_State *L)
{
    lua_settop(L, 4);
    tcl_cache *o = tcl_self(L, "pop", TCL_K_ALL);
    tcl_datum key;
    tc_item it = TC_ITEM_INIT;

    tcl_key(L, 2, o, "pop", "key", &key);
    tcl_opts(L, 4, o, "pop", O_POP);
    int want_exp = tcl_opt_bool(L, 4, o, "pop", "expire_time", 0);
    int want_tag = tcl_opt_bool(L, 4, o, "pop", "tag", 0);
    unsigned flags = retry_flag(L, 4, o, "pop");
    int rc = tc_pop(o->c, &key.d, &it, flags);
    if (rc == TC_OK)
        return push_found(L, o, "pop", &it, want_exp, want_tag);
    if (rc == TC_NOTFOUND || swallowed(o, rc))
        return push_miss(L, 3, want_exp, want_tag);
    return tcl_raise(L, o, "pop", rc);
}

/* ---- delete / touch / contains / incr ---------------------------------- */

/* Push whether the item existed: true on TC_OK, false when missing or on
 * a timeout this kind of cache swallows; raise on anything else. */
static int push_existed(lua_State *L, const tcl_cache *o, const char *m, int rc)
{
    if (rc == TC_OK || rc == TC_NOTFOUND || swallowed(o, rc)) {
        lua_pushboolean(L, rc == TC_OK);
        return 1;
    }
    return tcl_raise(L, o, m, rc);
}

static const char *const O_RETRY[] = {"retry", NULL};

int tcl_m_delete(lua_State *L)
{
    lua_settop(L, 3);
    tcl_cache *o = tcl_self(L, "delete", TCL_K_ALL);
    tcl_datum key;

    tcl_key(L, 2, o, "delete", "key", &key);
    tcl_opts(L, 3, o, "delete", O_RETRY);
    int rc = tc_delete(o->c, &key.d, retry_flag(L, 3, o, "delete"));
    return push_existed(L, o, "delete", rc);
}

int tcl_m_touch(lua_State *L)
{
    lua_settop(L, 4);
    tcl_cache *o = tcl_self(L, "touch", TCL_K_ALL);
    tcl_datum key;

    tcl_key(L, 2, o, "touch", "key", &key);
    double expire = tcl_expire_arg(L, 3, o, "touch", "expire");
    tcl_opts(L, 4, o, "touch", O_RETRY);
    int rc = tc_touch(o->c, &key.d, expire, retry_flag(L, 4, o, "touch"));
    return push_existed(L, o, "touch", rc);
}

int tcl_m_contains(lua_State *L)
{
    lua_settop(L, 2);
    tcl_cache *o = tcl_self(L, "contains", TCL_K_ALL);
    tcl_datum key;

    tcl_key(L, 2, o, "contains", "key", &key);
    int rc = tc_contains(o->c, &key.d);
    return push_existed(L, o, "contains", rc);
}

/* A number argument for incr: integer or float datum. */
static void number_arg(lua_State *L, int idx, const tcl_cache *o, const char *m,
                       const char *arg, tcl_datum *out)
{
    if (lua_type(L, idx) != LUA_TNUMBER)
        tcl_argerror(L, o, m, arg, "expected a number, got %s",
                     luaL_typename(L, idx));
    tcl_key(L, idx, o, m, arg, out);
}

void tcl_incr_delta(lua_State *L, int idx, const tcl_cache *o, const char *m,
                    int sign, tcl_datum *delta)
{
    if (lua_isnoneornil(L, idx)) {
        delta->i = 1;
        delta->d = tc_int(&delta->i);
    } else {
        number_arg(L, idx, o, m, "delta", delta);
    }
    if (sign > 0)
        return;
    if (delta->d.type == TC_INT) {
        if (delta->i == INT64_MIN)
            tcl_argerror(L, o, m, "delta", "out of range");
        delta->i = -delta->i;
    } else {
        delta->f = -delta->f;
    }
}

int tcl_incr_push(lua_State *L, const tcl_cache *o, const char *m,
                  const tc_data *key, const tc_data *delta,
                  const tc_data *deflt, unsigned flags)
{
    tc_value out = TC_VALUE_INIT;
    int rc = tc_incr(o->c, key, delta, deflt, &out, flags);
    if (rc == TC_OK) {
        if (out.type == TC_INT)
            tcl_pushint(L, out.i);
        else
            lua_pushnumber(L, (lua_Number)out.d);
        tc_value_clear(&out);
        return 1;
    }
    if (swallowed(o, rc)) {
        lua_pushnil(L);
        return 1;
    }
    if (rc == TC_NOTFOUND)
        return 0;
    return tcl_raise(L, o, m, rc);
}

/* incr(key, delta, default, opts) and decr: stack 1..5. */
static int incr_common(lua_State *L, int sign)
{
    const char *m = sign > 0 ? "incr" : "decr";
    tcl_cache *o = tcl_self(L, m, TCL_K_ALL);
    tcl_datum key, delta, deflt;

    tcl_key(L, 2, o, m, "key", &key);
    tcl_incr_delta(L, 3, o, m, sign, &delta);
    int has_default = 1;
    if (lua_isnoneornil(L, 4)) {
        deflt.i = 0;
        deflt.d = tc_int(&deflt.i);
    } else if (lua_isboolean(L, 4) && !lua_toboolean(L, 4)) {
        has_default = 0;
    } else {
        number_arg(L, 4, o, m, "default", &deflt);
    }
    tcl_opts(L, 5, o, m, O_RETRY);
    unsigned flags = retry_flag(L, 5, o, m);
    if (tcl_incr_push(L, o, m, &key.d, &delta.d, has_default ? &deflt.d : NULL,
                      flags))
        return 1;
    lua_pushfstring(L, "%s.%s: key '", tcl_kind_name(o->kind), m);
    tcl_tostring(L, 2);
    lua_pushliteral(L, "' not found");
    lua_concat(L, 3);
    return lua_error(L);
}

int tcl_m_incr(lua_State *L)
{
    lua_settop(L, 5);
    return incr_common(L, 1);
}

int tcl_m_decr(lua_State *L)
{
    lua_settop(L, 5);
    return incr_common(L, -1);
}

/* ---- queues (plain Cache only) ----------------------------------------- */

static const char *const O_PUSH[] = {"prefix", "side",  "expire", "read",
                                     "tag",    "retry", NULL};
static const char *const O_PULL[] = {"prefix", "default", "side", "expire_time",
                                     "tag",    "retry",   NULL};

static int side_opt(lua_State *L, int opts, const tcl_cache *o, const char *m,
                    int dflt)
{
    int side = dflt;
    tcl_opt_push(L, opts, "side");
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "back") == 0)
            side = TC_BACK;
        else if (strcmp(s, "front") == 0)
            side = TC_FRONT;
        else
            tcl_argerror(L, o, m, "side",
                         "expected 'front' or 'back', got '%s'", s);
    } else if (!lua_isnil(L, -1)) {
        tcl_argerror(L, o, m, "side", "expected 'front' or 'back', got %s",
                     luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return side;
}

/* The prefix option: a string, or NULL for integer keys. The string stays
 * valid while the option table is on the stack. */
static const char *prefix_opt(lua_State *L, int opts, const tcl_cache *o,
                              const char *m)
{
    const char *p = NULL;
    tcl_opt_push(L, opts, "prefix");
    if (lua_type(L, -1) == LUA_TSTRING)
        p = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        tcl_argerror(L, o, m, "prefix", "expected a string, got %s",
                     luaL_typename(L, -1));
    lua_pop(L, 1);
    return p;
}

/* push while reading a file: diskcache's push(read=True) stores a file
 * whatever its size. The C API has no push-from-fd, so push a placeholder
 * and replace it in one transaction (an update keeps the key). */
static int push_fd(tc_cache *c, int fd, const char *prefix, int side,
                   double expire, const tc_data *tag, tc_value *key,
                   unsigned flags)
{
    int rc = tc_begin(c, flags);
    if (rc)
        return rc;
    tc_data empty = tc_bytes("", 0);
    rc = tc_push(c, &empty, prefix, side, expire, tag, key, flags);
    if (rc == TC_OK) {
        tc_data k = key->type == TC_INT ? tc_int(&key->i)
                                        : tc_textn(key->ptr, key->len);
        rc = tc_set_fd(c, &k, fd, expire, tag, flags);
    }
    if (rc == TC_OK)
        return tc_commit(c);
    tc_rollback(c);
    tc_value_clear(key);
    return rc;
}

int tcl_m_push(lua_State *L)
{
    lua_settop(L, 3);
    tcl_cache *o = tcl_self(L, "push", TCL_K(TCL_CACHE));
    tcl_datum val, tag;
    tc_value key = TC_VALUE_INIT;
    int rc;

    tcl_opts(L, 3, o, "push", O_PUSH);
    const char *prefix = prefix_opt(L, 3, o, "push");
    int side = side_opt(L, 3, o, "push", TC_BACK);
    tcl_opt_push(L, 3, "expire");
    double expire = tcl_expire_arg(L, lua_gettop(L), o, "push", "expire");
    int read = tcl_opt_bool(L, 3, o, "push", "read", 0);
    unsigned flags = retry_flag(L, 3, o, "push");
    tcl_opt_push(L, 3, "tag");
    int has_tag = tcl_tag(L, lua_gettop(L), o, "push", &tag);
    if (read) {
        int fd = tcl_file_fd(L, 2);
        if (fd < 0)
            return tcl_argerror(
                L, o, "push", "value",
                "with read = true, expected an open file handle, got %s",
                luaL_typename(L, 2));
        rc = push_fd(o->c, fd, prefix, side, expire, has_tag ? &tag.d : NULL,
                     &key, flags);
    } else {
        tcl_value_check(L, 2, o, "push", "value", &val);
        rc = tc_push(o->c, &val.d, prefix, side, expire,
                     has_tag ? &tag.d : NULL, &key, flags);
        tcl_datum_free(&val);
    }
    if (rc != TC_OK)
        return tcl_raise(L, o, "push", rc);
    char err[160];
    int pr = tcl_push_value(L, &key, err, sizeof err);
    tc_value_clear(&key);
    if (pr != 0)
        return tcl_raise_code(L, "ECORRUPT", "Cache.push: key: %s", err);
    return 1;
}

/* pull and peek: key, value [, expire_time] [, tag]. */
static int pull_common(lua_State *L, int remove)
{
    const char *m = remove ? "pull" : "peek";
    tcl_cache *o = tcl_self(L, m, TCL_K(TCL_CACHE));
    tc_item it = TC_ITEM_INIT;

    tcl_opts(L, 2, o, m, O_PULL);
    const char *prefix = prefix_opt(L, 2, o, m);
    int side = side_opt(L, 2, o, m, TC_FRONT);
    int want_exp = tcl_opt_bool(L, 2, o, m, "expire_time", 0);
    int want_tag = tcl_opt_bool(L, 2, o, m, "tag", 0);
    unsigned flags = retry_flag(L, 2, o, m);
    int rc = remove ? tc_pull(o->c, prefix, side, &it, flags)
                    : tc_peek(o->c, prefix, side, &it, flags);
    if (rc == TC_OK) {
        push_key(L, o, m, &it);
        return 1 + push_found(L, o, m, &it, want_exp, want_tag);
    }
    if (rc == TC_NOTFOUND) {
        lua_pushnil(L);
        tcl_opt_push(L, 2, "default");
        return 2 + (want_exp ? (lua_pushnil(L), 1) : 0) +
               (want_tag ? (lua_pushnil(L), 1) : 0);
    }
    return tcl_raise(L, o, m, rc);
}

int tcl_m_pull(lua_State *L)
{
    lua_settop(L, 2);
    return pull_common(L, 1);
}

int tcl_m_peek(lua_State *L)
{
    lua_settop(L, 2);
    return pull_common(L, 0);
}

int tcl_m_peekitem(lua_State *L)
{
    lua_settop(L, 3);
    tcl_cache *o = tcl_self(L, "peekitem", TCL_K(TCL_CACHE));
    tc_item it = TC_ITEM_INIT;

    int last = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    tcl_opts(L, 3, o, "peekitem", O_POP);
    int want_exp = tcl_opt_bool(L, 3, o, "peekitem", "expire_time", 0);
    int want_tag = tcl_opt_bool(L, 3, o, "peekitem", "tag", 0);
    unsigned flags = retry_flag(L, 3, o, "peekitem");
    int rc = tc_peekitem(o->c, last, &it, flags);
    if (rc == TC_OK) {
        push_key(L, o, "peekitem", &it);
        return 1 + push_found(L, o, "peekitem", &it, want_exp, want_tag);
    }
    if (rc == TC_NOTFOUND)
        return luaL_error(L, "Cache.peekitem: dictionary is empty");
    return tcl_raise(L, o, "peekitem", rc);
}

/* ---- bulk maintenance -------------------------------------------------- */

/* A FanoutCache keeps going through busy shards, as diskcache's retry
 * loop does; a Cache raises Timeout (diskcache's retry=False default).
 * (Also used by check and transact, defined below.) */
static unsigned bulk_flags(const tcl_cache *o)
{
    return o->kind == TCL_CACHE ? 0 : TC_RETRY;
}

/* Raise on @rc, else push *@count. (A pointer: the call that fills it
 * must run before the count is read.) */
static int push_count(lua_State *L, const tcl_cache *o, const char *m, int rc,
                      const uint64_t *count)
{
    if (rc != TC_OK)
        return tcl_raise(L, o, m, rc);
    tcl_pushint(L, (int64_t)*count);
    return 1;
}

int tcl_m_expire(lua_State *L)
{
    lua_settop(L, 2);
    tcl_cache *o = tcl_self(L, "expire", TCL_K_ALL);
    double now = NAN;
    uint64_t n = 0;

    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER)
            return tcl_argerror(L, o, "expire", "now",
                                "expected a number, got %s",
                                luaL_typename(L, 2));
        now = (double)lua_tonumber(L, 2);
    }
    return push_count(L, o, "expire", tc_expire(o->c, now, &n, bulk_flags(o)),
                      &n);
}

int tcl_m_evict(lua_State *L)
{
    lua_settop(L, 2);
    tcl_cache *o = tcl_self(L, "evict", TCL_K_ALL);
    tcl_datum tag;
    uint64_t n = 0;

    if (!tcl_tag(L, 2, o, "evict", &tag))
        return tcl_argerror(L, o, "evict", "tag",
                            "expected a string or a number, got nil");
    return push_count(L, o, "evict", tc_evict(o->c, &tag.d, &n, bulk_flags(o)),
                      &n);
}

int tcl_m_clear(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "clear", TCL_K_ALL);
    uint64_t n = 0;
    int rc = tc_clear(o->c, &n, bulk_flags(o));
    if (o->kind == TCL_DJANGO)
        return rc == TC_OK ? 0 : tcl_raise(L, o, "clear", rc);
    return push_count(L, o, "clear", rc, &n);
}

int tcl_m_cull(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "cull", TCL_K_ALL);
    uint64_t n = 0;
    return push_count(L, o, "cull", tc_cull(o->c, &n, bulk_flags(o)), &n);
}

/* check(fix): the warnings as a list of strings. They are collected in C
 * first: no Lua error may unwind through tc_check. */
struct warnings {
    char **msg;
    size_t n, cap;
    int oom;
};

static void collect_warning(void *arg, const char *kind, const char *msg)
{
    struct warnings *w = arg;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        char **p = realloc(w->msg, cap * sizeof *p);
        if (!p) {
            w->oom = 1;
            return;
        }
        w->msg = p;
        w->cap = cap;
    }
    size_t len = strlen(kind) + strlen(msg) + 3;
    char *s = malloc(len);
    if (!s) {
        w->oom = 1;
        return;
    }
    snprintf(s, len, "%s: %s", kind, msg);
    w->msg[w->n++] = s;
}

int tcl_m_check(lua_State *L)
{
    lua_settop(L, 2);
    tcl_cache *o = tcl_self(L, "check", TCL_K_CORE);
    struct warnings w = {NULL, 0, 0, 0};
    uint64_t count = 0;

    int fix = lua_toboolean(L, 2);
    int rc = tc_check(o->c, fix, collect_warning, &w, &count, bulk_flags(o));
    if (rc == TC_OK && !w.oom) {
        lua_createtable(L, (int)w.n, 0);
        for (size_t i = 0; i < w.n; i++) {
            lua_pushstring(L, w.msg[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
    }
    for (size_t i = 0; i < w.n; i++)
        free(w.msg[i]);
    free(w.msg);
    if (w.oom)
        return luaL_error(L, "%s.check: out of memory", tcl_kind_name(o->kind));
    return rc == TC_OK ? 1 : tcl_raise(L, o, "check", rc);
}

/* ---- statistics, size, settings ---------------------------------------- */

int tcl_m_stats(lua_State *L)
{
    lua_settop(L, 3);
    tcl_cache *o = tcl_self(L, "stats", TCL_K_ALL);
    uint64_t hits = 0, misses = 0;
    int enable = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    int reset = lua_toboolean(L, 3);
    int rc = tc_stats(o->c, enable, reset, &hits, &misses);
    if (rc != TC_OK)
        return tcl_raise(L, o, "stats", rc);
    tcl_pushint(L, (int64_t)hits);
    tcl_pushint(L, (int64_t)misses);
    return 2;
}

int tcl_m_volume(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "volume", TCL_K_ALL);
    uint64_t bytes = 0;
    return push_count(L, o, "volume", tc_volume(o->c, &bytes), &bytes);
}

int tcl_m_len(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "len", TCL_K_CORE);
    uint64_t n = 0;
    return push_count(L, o, "len", tc_length(o->c, &n), &n);
}

int tcl_m_reset(lua_State *L)
{
    lua_settop(L, 3);
    tcl_cache *o = tcl_self(L, "reset", TCL_K_CORE);
    tc_value v = TC_VALUE_INIT;
    char err[160];
    int rc;

    if (lua_type(L, 2) != LUA_TSTRING)
        return tcl_argerror(L, o, "reset", "setting",
                            "expected a setting name, got %s",
                            luaL_typename(L, 2));
    const char *name = lua_tostring(L, 2);
    if (!lua_isnoneornil(L, 3)) {
        tcl_datum d;
        if (lua_isboolean(L, 3)) {
            d.i = lua_toboolean(L, 3);
            d.d = tc_int(&d.i);
        } else {
            tcl_key(L, 3, o, "reset", "value", &d);
        }
        rc = tc_setting_put(o->c, name, &d.d);
        if (rc != TC_OK)
            return tcl_raise(L, o, "reset", rc);
    }
    rc = tc_setting_get(o->c, name, &v);
    if (rc != TC_OK)
        return tcl_raise(L, o, "reset", rc);
    int pr = tcl_push_value(L, &v, err, sizeof err);
    tc_value_clear(&v);
    if (pr != 0)
        return tcl_raise_code(L, "ECORRUPT", "%s.reset: %s",
                              tcl_kind_name(o->kind), err);
    return 1;
}

int tcl_m_create_tag_index(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "create_tag_index", TCL_K_ALL);
    int rc = tc_create_tag_index(o->c);
    return rc == TC_OK ? 0 : tcl_raise(L, o, "create_tag_index", rc);
}

int tcl_m_drop_tag_index(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "drop_tag_index", TCL_K_ALL);
    int rc = tc_drop_tag_index(o->c);
    return rc == TC_OK ? 0 : tcl_raise(L, o, "drop_tag_index", rc);
}

/* ---- iteration ---------------------------------------------------------- */

/* The iterator state is a userdata so an abandoned loop is closed by the
 * garbage collector. */
typedef struct tcl_iter {
    tc_iter *it;
} tcl_iter;

int tcl_iter_gc(lua_State *L)
{
    tcl_iter *s = luaL_checkudata(L, 1, TCL_MT_ITER);
    if (s->it) {
        tc_iter_close(s->it);
        s->it = NULL;
    }
    return 0;
}

/* The generic-for step: upvalue 1 is the state, upvalue 2 the cache (kept
 * alive, and checked open). */
static int iter_step(lua_State *L)
{
    tcl_iter *s = lua_touserdata(L, lua_upvalueindex(1));
    tcl_cache *o = lua_touserdata(L, lua_upvalueindex(2));
    tc_value key = TC_VALUE_INIT;
    char err[160];

    if (!s->it)
        return 0;
    if (!o->c) {
        tc_iter_close(s->it);
        s->it = NULL;
        return luaL_error(L, "%s.keys: cache is closed",
                          tcl_kind_name(o->kind));
    }
    for (;;) {
        int rc = tc_iter_next(s->it, &key);
        if (rc == TC_OK)
            break;
        if (rc == TC_EUNSUPPORTED) /* a pickled key: skip it */
            continue;
        tc_iter_close(s->it);
        s->it = NULL;
        if (rc == TC_NOTFOUND)
            return 0;
        return tcl_raise(L, o, "keys", rc);
    }
    int pr = tcl_push_value(L, &key, err, sizeof err);
    tc_value_clear(&key);
    if (pr != 0)
        return tcl_raise_code(L, "ECORRUPT", "%s.keys: %s",
                              tcl_kind_name(o->kind), err);
    return 1;
}

static int push_iterator(lua_State *L, tcl_cache *o, const char *m, int order)
{
    tcl_iter *s = tcl_newuserdata(L, sizeof *s);
    s->it = NULL;
    luaL_setmetatable(L, TCL_MT_ITER);
    int rc = tc_iter_open(o->c, order, &s->it);
    if (rc != TC_OK)
        return tcl_raise(L, o, m, rc);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, iter_step, 2);
    return 1;
}

int tcl_m_keys(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "keys", TCL_K_CORE);
    return push_iterator(L, o, "keys", TC_ITER_INSERTION);
}

int tcl_m_iterkeys(lua_State *L)
{
    lua_settop(L, 2);
    tcl_cache *o = tcl_self(L, "iterkeys", TCL_K(TCL_CACHE));
    int order = TC_ITER_KEYS | (lua_toboolean(L, 2) ? TC_ITER_REVERSE : 0);
    return push_iterator(L, o, "iterkeys", order);
}

/* ---- transactions, memoize, lifecycle ----------------------------------- */

/* transact(fn): fn(cache) runs inside one transaction; its results are
 * returned; an error rolls back and is raised again. fn must not yield
 * (the transaction belongs to the thread, not to a coroutine). */
int tcl_m_transact(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "transact", TCL_K_CORE);
    if (lua_type(L, 2) != LUA_TFUNCTION)
        return tcl_argerror(L, o, "transact", "fn",
                            "expected a function, got %s", luaL_typename(L, 2));
    lua_settop(L, 2);
    /* A Cache raises Timeout (diskcache's transact(retry=False)); a
     * FanoutCache waits (its transact asserts retry=True). */
    int rc = tc_begin(o->c, bulk_flags(o));
    if (rc != TC_OK)
        return tcl_raise(L, o, "transact", rc);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != 0) {
        tc_rollback(o->c);
        return lua_error(L);
    }
    rc = tc_commit(o->c);
    if (rc != TC_OK)
        return tcl_raise(L, o, "transact", rc);
    return lua_gettop(L) - 2;
}

static const char *const O_MEMOIZE[] = {"typed", "tag", "ignore", NULL};

int tcl_m_memoize(lua_State *L)
{
    lua_settop(L, 4);
    tcl_cache *o = tcl_self(L, "memoize", TCL_K_CORE);
    tcl_expire_arg(L, 3, o, "memoize", "expire"); /* checked; set uses it */
    tcl_opts(L, 4, o, "memoize", O_MEMOIZE);
    return tcl_memoize_push(L, o, 2, 3, 4);
}

int tcl_m_close(lua_State *L)
{
    /* Closing twice is harmless, as in diskcache (and <close> after an
     * explicit close). */
    tcl_cache *o = tcl_self_closed(L, "close", TCL_K_ALL);
    tc_close(o->c);
    o->c = NULL;
    return 0;
}

/* ---- FanoutCache sub-collections ---------------------------------------- */

/* A sub-collection name: "a/b" nests; no empty, "." or ".." parts and no
 * leading "/", so it cannot leave the cache's directory. */
static void check_subname(lua_State *L, const tcl_cache *o, const char *m,
                          const char *name)
{
    const char *p = name;
    if (!*p)
        tcl_argerror(L, o, m, "name", "empty name");
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.'))
            tcl_argerror(L, o, m, "name", "'%s' has an empty, '.' or '..' part",
                         name);
        p += n;
        if (*p == '/')
            p++;
    }
}

int tcl_m_subcache(lua_State *L)
{
    tcl_cache *o = tcl_self(L, "cache", TCL_K_FANOUT);
    if (lua_type(L, 2) != LUA_TSTRING)
        return tcl_argerror(L, o, "cache", "name", "expected a string, got %s",
                            luaL_typename(L, 2));
    const char *name = lua_tostring(L, 2);
    check_subname(L, o, "cache", name);
    /* One object per name, kept in the parent's user value table. */
    tcl_getuservalue(L, 1);
    lua_pushfstring(L, "cache/%s", name);
    lua_rawget(L, -2);
    if (lua_touserdata(L, -1) && ((tcl_cache *)lua_touserdata(L, -1))->c)
        return 1;
    lua_pop(L, 1);
    lua_pushfstring(L, "%s/cache/%s", tc_directory(o->c), name);
    tcl_open(L, TCL_CACHE, lua_tostring(L, -1), 0, TC_SHARDS_PLAIN, -1, 0,
             "cache");
    lua_pushfstring(L, "cache/%s", name);
    lua_pushvalue(L, -2);
    lua_rawset(L, -5);
    return 1;
}

/* fc:deque(name, maxlen) and fc:index(name): a Deque or Index in
 * "<dir>/deque/<name>" or "<dir>/index/<name>", as python-diskcache's
 * FanoutCache.deque/index. Each call opens a new object. */
static int subcollection(lua_State *L, const char *m, lua_CFunction ctor)
{
    tcl_cache *o = tcl_self(L, m, TCL_K_FANOUT);
    if (lua_type(L, 2) != LUA_TSTRING)
        return tcl_argerror(L, o, m, "name", "expected a string, got %s",
                            luaL_typename(L, 2));
    const char *name = lua_tostring(L, 2);
    check_subname(L, o, m, name);
    lua_settop(L, 3);
    lua_pushcfunction(L, ctor);
    lua_pushfstring(L, "%s/%s/%s", tc_directory(o->c), m, name);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    return 1;
}

int tcl_m_subdeque(lua_State *L)
{
    return subcollection(L, "deque", tcl_new_deque);
}

int tcl_m_subindex(lua_State *L)
{
    lua_settop(L, 2);
    return subcollection(L, "index", tcl_new_index);
}

/* ---- method tables ------------------------------------------------------ */

/* The methods Cache and FanoutCache share. */
#define CORE_METHODS                                                          \
    {"set", tcl_m_set}, {"add", tcl_m_add}, {"get", tcl_m_get},               \
        {"read", tcl_m_read}, {"touch", tcl_m_touch}, {"incr", tcl_m_incr},   \
        {"decr", tcl_m_decr}, {"pop", tcl_m_pop}, {"delete", tcl_m_delete},   \
        {"contains", tcl_m_contains}, {"expire", tcl_m_expire},               \
        {"evict", tcl_m_evict}, {"clear", tcl_m_clear}, {"cull", tcl_m_cull}, \
        {"check", tcl_m_check}, {"stats", tcl_m_stats},                       \
        {"volume", tcl_m_volume}, {"len", tcl_m_len}, {"keys", tcl_m_keys},   \
        {"transact", tcl_m_transact}, {"memoize", tcl_m_memoize},             \
        {"create_tag_index", tcl_m_create_tag_index},                         \
        {"drop_tag_index", tcl_m_drop_tag_index}, {"reset", tcl_m_reset},     \
    {                                                                         \
        "close", tcl_m_close                                                  \
    }

const luaL_Reg tcl_cache_methods[] = {CORE_METHODS,
                                      {"push", tcl_m_push},
                                      {"pull", tcl_m_pull},
                                      {"peek", tcl_m_peek},
                                      {"peekitem", tcl_m_peekitem},
                                      {"iterkeys", tcl_m_iterkeys},
                                      {"__len", tcl_m_len},
                                      {NULL, NULL}};

const luaL_Reg tcl_fanout_methods[] = {CORE_METHODS,
                                       {"cache", tcl_m_subcache},
                                       {"deque", tcl_m_subdeque},
                                       {"index", tcl_m_subindex},
                                       {"__len", tcl_m_len},
                                       {NULL, NULL}};
