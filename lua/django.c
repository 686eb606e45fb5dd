/*
 * django.c - DjangoCache: Django's cache API over a FanoutCache, as
 * python-diskcache's diskcache.DjangoCache.
 *
 * Keys are made as Django does, "KEY_PREFIX:VERSION:key"; timeouts follow
 * Django (nil = TIMEOUT, false = never, 0 = stored already expired). Most
 * methods rewrite their arguments into the core method's slots (made key,
 * backend timeout, an option table with diskcache's DjangoCache retry
 * default) and call the core method, so both behave the same.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* The DjangoCache at index 1. */
static tcl_cache *dj_self(lua_State *L, const char *m)
{
    return tcl_self(L, m, TCL_K(TCL_DJANGO));
}

/* Push the string form of a key or version part (strings and numbers). */
static void push_part(lua_State *L, int idx, const tcl_cache *o, const char *m,
                      const char *arg)
{
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        tcl_argerror(L, o, m, arg, "expected a string or a number, got %s",
                     lua_typename(L, t));
    tcl_tostring(L, idx);
}

/* Push "KEY_PREFIX:VERSION:key" for the key at @key_idx and the version at
 * @ver_idx (0 or nil: the cache's VERSION). */
static void push_made_key(lua_State *L, const tcl_cache *o, const char *m,
                          int key_idx, int ver_idx)
{
    key_idx = tcl_absindex(L, key_idx);
    ver_idx = ver_idx ? tcl_absindex(L, ver_idx) : 0;
    if (o->dj_head && !(ver_idx && !lua_isnil(L, ver_idx))) {
        /* The cache's own VERSION: the head is made already. */
        lua_pushstring(L, o->dj_head);
        push_part(L, key_idx, o, m, "key");
        lua_concat(L, 2);
        return;
    }
    lua_pushstring(L, o->dj_prefix ? o->dj_prefix : "");
    lua_pushliteral(L, ":");
    if (ver_idx && !lua_isnil(L, ver_idx))
        push_part(L, ver_idx, o, m, "version");
    else {
        char v[24];
        snprintf(v, sizeof v, "%" PRId64, o->dj_version);
        lua_pushstring(L, v);
    }
    lua_pushliteral(L, ":");
    push_part(L, key_idx, o, m, "key");
    lua_concat(L, 5);
}

/* Push the backend expiry for the Django timeout at @idx: seconds, or
 * false for never (get_backend_timeout). */
static void push_backend_timeout(lua_State *L, const tcl_cache *o,
                                 const char *m, int idx)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNONE || t == LUA_TNIL) {
        if (o->dj_never)
            lua_pushboolean(L, 0);
        else if (o->dj_timeout == floor(o->dj_timeout) &&
                 fabs(o->dj_timeout) < 1e15)
            tcl_pushint(L, (int64_t)o->dj_timeout); /* TIMEOUT = 300 */
        else
            lua_pushnumber(L, (lua_Number)o->dj_timeout);
    } else if (t == LUA_TBOOLEAN && !lua_toboolean(L, idx)) {
        lua_pushboolean(L, 0);
    } else if (t == LUA_TNUMBER) {
        if (lua_tonumber(L, idx) == 0)
            lua_pushinteger(L, -1);
        else
            lua_pushvalue(L, idx);
    } else {
        tcl_argerror(L, o, m, "timeout", "expected a number or false, got %s",
                     lua_typename(L, t));
    }
}

/*
 * Rewrite the call into the core method's slots: check the option table at
 * @opts against @allowed (version plus the core's options), put the made
 * key in slot 2 and a fresh option table with the core options (retry
 * defaulting to @retry) in slot @opts. Returns with the stack at @opts.
 */
static void rewrite(lua_State *L, const tcl_cache *o, const char *m, int opts,
                    const char *const *allowed, int retry)
{
    lua_settop(L, opts);
    tcl_opts(L, opts, o, m, allowed);
    tcl_opt_push(L, opts, "version");
    push_made_key(L, o, m, 2, -1);
    lua_replace(L, 2);
    lua_pop(L, 1);
    lua_createtable(L, 0, 4);
    for (const char *const *a = allowed; *a; a++) {
        if (strcmp(*a, "version") == 0)
            continue;
        tcl_opt_push(L, opts, *a);
        if (strcmp(*a, "retry") == 0 && lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushboolean(L, retry);
        }
        lua_setfield(L, -2, *a);
    }
    lua_replace(L, opts);
}

static int dj_add(lua_State *L)
{
    static const char *const allowed[] = {"version", "read", "tag", "retry",
                                          NULL};
    tcl_cache *o = dj_self(L, "add");
    rewrite(L, o, "add", 5, allowed, 1);
    push_backend_timeout(L, o, "add", 4);
    lua_replace(L, 4);
    return tcl_m_add(L);
}

static int dj_set(lua_State *L)
{
    static const char *const allowed[] = {"version", "read", "tag", "retry",
                                          NULL};
    tcl_cache *o = dj_self(L, "set");
    rewrite(L, o, "set", 5, allowed, 1);
    push_backend_timeout(L, o, "set", 4);
    lua_replace(L, 4);
    return tcl_m_set(L);
}

static int dj_get(lua_State *L)
{
    static const char *const allowed[] = {"version", "read",  "expire_time",
                                          "tag",     "retry", NULL};
    tcl_cache *o = dj_self(L, "get");
    if (lua_isnoneornil(L, 4)) {
        /* The common case stays cheap: no option table to rebuild. */
        lua_settop(L, 3);
        push_made_key(L, o, "get", 2, 0);
        lua_replace(L, 2);
        return tcl_m_get(L);
    }
    rewrite(L, o, "get", 4, allowed, 0);
    return tcl_m_get(L);
}

static int dj_pop(lua_State *L)
{
    static const char *const allowed[] = {"version", "expire_time", "tag",
                                          "retry", NULL};
    tcl_cache *o = dj_self(L, "pop");
    rewrite(L, o, "pop", 4, allowed, 1);
    return tcl_m_pop(L);
}

static int dj_delete(lua_State *L)
{
    static const char *const allowed[] = {"version", "retry", NULL};
    tcl_cache *o = dj_self(L, "delete");
    rewrite(L, o, "delete", 3, allowed, 1);
    return tcl_m_delete(L);
}

static int dj_touch(lua_State *L)
{
    static const char *const allowed[] = {"version", "retry", NULL};
    tcl_cache *o = dj_self(L, "touch");
    rewrite(L, o, "touch", 4, allowed, 1);
    push_backend_timeout(L, o, "touch", 3);
    lua_replace(L, 3);
    return tcl_m_touch(L);
}

static int dj_read(lua_State *L)
{
    static const char *const allowed[] = {"version", NULL};
    tcl_cache *o = dj_self(L, "read");
    rewrite(L, o, "read", 3, allowed, 0);
    return tcl_m_read(L);
}

static int dj_has_key(lua_State *L)
{
    static const char *const allowed[] = {"version", NULL};
    tcl_cache *o = dj_self(L, "has_key");
    rewrite(L, o, "has_key", 3, allowed, 0);
    return tcl_m_contains(L);
}

/* incr(key, delta, opts{version, default, retry}): Django raises
 * "Key '<made key>' not found" when the key is missing and no default. */
static int incr_common(lua_State *L, int sign)
{
    static const char *const allowed[] = {"version", "default", "retry", NULL};
    const char *m = sign > 0 ? "incr" : "decr";
    tcl_cache *o = dj_self(L, m);
    tcl_datum key, delta, deflt;

    lua_settop(L, 4);
    tcl_opts(L, 4, o, m, allowed);
    tcl_opt_push(L, 4, "version");
    push_made_key(L, o, m, 2, -1);
    lua_replace(L, 2);
    lua_pop(L, 1);
    tcl_key(L, 2, o, m, "key", &key);
    tcl_incr_delta(L, 3, o, m, sign, &delta);
    tcl_opt_push(L, 4, "default");
    int has_default = !lua_isnil(L, -1);
    if (has_default) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            return tcl_argerror(L, o, m, "default", "expected a number, got %s",
                                luaL_typename(L, -1));
        tcl_key(L, -1, o, m, "default", &deflt);
    }
    unsigned flags = tcl_opt_bool(L, 4, o, m, "retry", 1) ? TC_RETRY : 0;
    if (tcl_incr_push(L, o, m, &key.d, &delta.d, has_default ? &deflt.d : NULL,
                      flags))
        return 1;
    /* Django's ValueError message, exactly: no "file:line:" prefix. */
    lua_pushfstring(L, "Key '%s' not found", lua_tostring(L, 2));
    return lua_error(L);
}

static int dj_incr(lua_State *L)
{
    return incr_common(L, 1);
}

static int dj_decr(lua_State *L)
{
    return incr_common(L, -1);
}

static int dj_memoize(lua_State *L)
{
    static const char *const allowed[] = {"version", "typed", "tag", "ignore",
                                          NULL};
    tcl_cache *o = dj_self(L, "memoize");
    lua_settop(L, 4);
    tcl_opts(L, 4, o, "memoize", allowed);
    push_backend_timeout(L, o, "memoize", 3); /* checks it */
    lua_pop(L, 1);
    return tcl_memoize_push(L, o, 2, 3, 4);
}

static int dj_get_backend_timeout(lua_State *L)
{
    tcl_cache *o = dj_self(L, "get_backend_timeout");
    push_backend_timeout(L, o, "get_backend_timeout", 2);
    return 1;
}

static int dj_make_key(lua_State *L)
{
    tcl_cache *o = dj_self(L, "make_key");
    lua_settop(L, 3);
    push_made_key(L, o, "make_key", 2, 3);
    return 1;
}

static int dj_clear(lua_State *L)
{
    dj_self(L, "clear");
    lua_settop(L, 1);
    return tcl_m_clear(L);
}

/* ---- Django's BaseCache helpers ---------------------------------------- */

/* Call dj:<method>(args...) with @nargs arguments already pushed after
 * the method and self; leaves @nres results. */
static void call_method(lua_State *L, const char *method, int nargs, int nres)
{
    /* stack: ... args; insert method and self below them */
    lua_getfield(L, 1, method);
    lua_insert(L, -1 - nargs);
    lua_pushvalue(L, 1);
    lua_insert(L, -1 - nargs);
    lua_call(L, nargs + 1, nres);
}

static void push_version_opts(lua_State *L, int opts)
{
    lua_createtable(L, 0, 1);
    tcl_opt_push(L, opts, "version");
    lua_setfield(L, -2, "version");
}

/* The arguments of get_many, set_many and delete_many: self, a table
 * (@arg) at 2 and opts{version} at @top. */
static tcl_cache *many_args(lua_State *L, const char *m, const char *arg,
                            int top)
{
    static const char *const allowed[] = {"version", NULL};
    tcl_cache *o = dj_self(L, m);
    lua_settop(L, top);
    if (!lua_istable(L, 2))
        tcl_argerror(L, o, m, arg, "expected a table, got %s",
                     luaL_typename(L, 2));
    tcl_opts(L, top, o, m, allowed);
    return o;
}

static int dj_get_many(lua_State *L)
{
    many_args(L, "get_many", "keys", 3);
    lua_newtable(L); /* result */
    int res = lua_gettop(L);
    lua_newtable(L); /* a unique "missing" marker */
    int miss = lua_gettop(L);
    size_t n = tcl_rawlen(L, 2);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (int)i);
        lua_pushvalue(L, -1);
        lua_pushvalue(L, miss);
        push_version_opts(L, 3);
        call_method(L, "get", 3, 1);
        if (lua_rawequal(L, -1, miss))
            lua_pop(L, 2);
        else
            lua_rawset(L, res);
    }
    lua_settop(L, res);
    return 1;
}

static int dj_set_many(lua_State *L)
{
    tcl_cache *o = many_args(L, "set_many", "mapping", 4);
    push_backend_timeout(L, o, "set_many", 3); /* checks it */
    lua_pop(L, 1);
    lua_newtable(L); /* keys that failed */
    int failed = lua_gettop(L);
    int nfailed = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        int val = lua_gettop(L);
        lua_pushvalue(L, val - 1); /* key */
        lua_pushvalue(L, val);
        lua_pushvalue(L, 3);
        push_version_opts(L, 4);
        call_method(L, "set", 4, 1);
        if (!lua_toboolean(L, -1)) {
            lua_pushvalue(L, val - 1);
            lua_rawseti(L, failed, ++nfailed);
        }
        lua_settop(L, val - 1);
    }
    lua_settop(L, failed);
    return 1;
}

static int dj_delete_many(lua_State *L)
{
    many_args(L, "delete_many", "keys", 3);
    size_t n = tcl_rawlen(L, 2);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (int)i);
        push_version_opts(L, 3);
        call_method(L, "delete", 2, 0);
    }
    return 0;
}

/* get_or_set(key, default_or_fn, timeout, opts{version}) */
static int dj_get_or_set(lua_State *L)
{
    static const char *const allowed[] = {"version", NULL};
    tcl_cache *o = dj_self(L, "get_or_set");
    lua_settop(L, 5);
    tcl_opts(L, 5, o, "get_or_set", allowed);
    lua_newtable(L); /* missing marker, at 6 */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 6);
    push_version_opts(L, 5);
    call_method(L, "get", 3, 1);
    if (!lua_rawequal(L, -1, 6))
        return 1;
    lua_pop(L, 1);
    if (lua_isfunction(L, 3)) {
        lua_pushvalue(L, 3);
        lua_call(L, 0, 1);
        lua_replace(L, 3);
    }
    if (lua_isnil(L, 3)) {
        lua_pushnil(L); /* nothing to store; Django returns None */
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 4);
    push_version_opts(L, 5);
    call_method(L, "add", 4, 0);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    push_version_opts(L, 5);
    call_method(L, "get", 3, 1);
    return 1;
}

/* incr_version(key, delta, opts{version}): the value moves to version +
 * delta; returns the new version. */
static int version_common(lua_State *L, int sign)
{
    static const char *const allowed[] = {"version", NULL};
    const char *m = sign > 0 ? "incr_version" : "decr_version";
    tcl_cache *o = dj_self(L, m);
    int64_t delta = 1, version = o->dj_version;

    lua_settop(L, 4);
    tcl_opts(L, 4, o, m, allowed);
    if (!lua_isnil(L, 3) &&
        (lua_type(L, 3) != LUA_TNUMBER || !tcl_tointeger(L, 3, &delta)))
        return tcl_argerror(L, o, m, "delta", "expected an integer");
    tcl_opt_push(L, 4, "version");
    if (!lua_isnil(L, -1) &&
        (lua_type(L, -1) != LUA_TNUMBER || !tcl_tointeger(L, -1, &version)))
        return tcl_argerror(L, o, m, "version", "expected an integer");
    lua_pop(L, 1);
    delta *= sign;

    lua_newtable(L); /* missing marker, at 5 */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 5);
    lua_createtable(L, 0, 1);
    tcl_pushint(L, version);
    lua_setfield(L, -2, "version");
    call_method(L, "get", 3, 1);
    if (lua_rawequal(L, -1, 5)) {
        push_part(L, 2, o, m, "key");
        lua_pushfstring(L, "Key '%s' not found", lua_tostring(L, -1));
        return lua_error(L);
    }
    int val = lua_gettop(L);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, val);
    lua_pushnil(L);
    lua_createtable(L, 0, 1);
    tcl_pushint(L, version + delta);
    lua_setfield(L, -2, "version");
    call_method(L, "set", 4, 0);
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 1);
    tcl_pushint(L, version);
    lua_setfield(L, -2, "version");
    call_method(L, "delete", 2, 0);
    tcl_pushint(L, version + delta);
    return 1;
}

static int dj_incr_version(lua_State *L)
{
    return version_common(L, 1);
}

static int dj_decr_version(lua_State *L)
{
    return version_common(L, -1);
}

const luaL_Reg tcl_django_methods[] = {
    {"add", dj_add},
    {"get", dj_get},
    {"set", dj_set},
    {"delete", dj_delete},
    {"touch", dj_touch},
    {"incr", dj_incr},
    {"decr", dj_decr},
    {"has_key", dj_has_key},
    {"clear", dj_clear},
    {"read", dj_read},
    {"pop", dj_pop},
    {"cache", tcl_m_subcache},
    {"deque", tcl_m_subdeque},
    {"index", tcl_m_subindex},
    {"expire", tcl_m_expire},
    {"cull", tcl_m_cull},
    {"evict", tcl_m_evict},
    {"stats", tcl_m_stats},
    {"create_tag_index", tcl_m_create_tag_index},
    {"drop_tag_index", tcl_m_drop_tag_index},
    {"volume", tcl_m_volume},
    {"close", tcl_m_close},
    {"memoize", dj_memoize},
    {"get_backend_timeout", dj_get_backend_timeout},
    {"make_key", dj_make_key},
    {"get_many", dj_get_many},
    {"set_many", dj_set_many},
    {"delete_many", dj_delete_many},
    {"get_or_set", dj_get_or_set},
    {"incr_version", dj_incr_version},
    {"decr_version", dj_decr_version},
    {NULL, NULL}};

/* ---- constructor -------------------------------------------------------- */

/* DjangoCache(directory, params): params with Django's names. */
int tcl_new_django(lua_State *L)
{
    static const char *const names[] = {
        "SHARDS",     "DATABASE_TIMEOUT", "OPTIONS", "TIMEOUT",
        "KEY_PREFIX", "VERSION",          NULL};
    const char *dir = NULL;
    int shards = TC_SHARDS_AUTO, options = 0;
    double timeout = 0.010;
    int64_t i;

    lua_settop(L, 2);
    if (!lua_isnil(L, 1)) {
        if (lua_type(L, 1) != LUA_TSTRING)
            return luaL_error(L,
                              "DjangoCache: directory: expected a "
                              "string, got %s",
                              luaL_typename(L, 1));
        dir = lua_tostring(L, 1);
    }
    if (!lua_isnil(L, 2) && !lua_istable(L, 2))
        return luaL_error(L, "DjangoCache: params: expected a table, got %s",
                          luaL_typename(L, 2));
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pop(L, 1);
            const char *k =
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            const char *const *a = names;
            while (k && *a && strcmp(*a, k) != 0)
                a++;
            if (!k || !*a)
                return luaL_error(L, "DjangoCache: params: unknown name '%s'",
                                  k ? k : luaL_typename(L, -1));
        }
    }
    tcl_opt_push(L, 2, "SHARDS");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || !tcl_tointeger(L, -1, &i) ||
            i < 1 || i > 999)
            return luaL_error(L, "DjangoCache: SHARDS: expected an integer "
                                 "from 1 to 999");
        shards = (int)i;
    }
    tcl_opt_push(L, 2, "DATABASE_TIMEOUT");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) >= 0) ||
            lua_tonumber(L, -1) > 1e6)
            return luaL_error(L, "DjangoCache: DATABASE_TIMEOUT: expected "
                                 "seconds from 0 to 1e6");
        timeout = (double)lua_tonumber(L, -1);
    }
    tcl_opt_push(L, 2, "OPTIONS");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "DjangoCache: OPTIONS: expected a table");
        options = lua_gettop(L);
    }
    tcl_opt_push(L, 2, "TIMEOUT");
    int t_idx = lua_gettop(L);
    int t = lua_type(L, t_idx);
    if (t != LUA_TNIL && t != LUA_TNUMBER &&
        !(t == LUA_TBOOLEAN && !lua_toboolean(L, t_idx)))
        return luaL_error(L, "DjangoCache: TIMEOUT: expected seconds or "
                             "false (never)");
    tcl_opt_push(L, 2, "KEY_PREFIX");
    int p_idx = lua_gettop(L);
    if (!lua_isnil(L, p_idx) && lua_type(L, p_idx) != LUA_TSTRING)
        return luaL_error(L, "DjangoCache: KEY_PREFIX: expected a string");
    tcl_opt_push(L, 2, "VERSION");
    int64_t version = 1;
    if (!lua_isnil(L, -1) &&
        (lua_type(L, -1) != LUA_TNUMBER || !tcl_tointeger(L, -1, &version)))
        return luaL_error(L, "DjangoCache: VERSION: expected an integer");

    tcl_cache *o = tcl_open(L, TCL_DJANGO, dir, options, shards, timeout, 1,
                            "DjangoCache");
    o->dj_version = version;
    o->dj_never = t == LUA_TBOOLEAN;
    o->dj_timeout = t == LUA_TNUMBER ? (double)lua_tonumber(L, t_idx) : 300;
    if (!lua_isnil(L, p_idx)) {
        o->dj_prefix = strdup(lua_tostring(L, p_idx));
        if (!o->dj_prefix)
            return luaL_error(L, "DjangoCache: out of memory");
    }
    if (asprintf(&o->dj_head, "%s:%" PRId64 ":",
                 o->dj_prefix ? o->dj_prefix : "", o->dj_version) < 0) {
        o->dj_head = NULL;
        return luaL_error(L, "DjangoCache: out of memory");
    }
    return 1;
}
