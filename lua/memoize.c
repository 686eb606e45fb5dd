/*
 * memoize.c - memoize for Cache, FanoutCache and DjangoCache.
 *
 * The key is text (raw = 1), the same in every process for the same call:
 *   "<name>:<count>:<hex of canonical MessagePack of the kept arguments>"
 * Canonical means table keys sorted, so {a=1, b=2} and {b=2, a=1} give one
 * key. With typed = true each argument is encoded as {type, value}, type
 * being "integer", "float", "string", "boolean", "table" or "nil".
 *
 * Lua functions can return nil and several values; a cache stores one
 * non-nil value. The memoized function keeps the first result, and a nil
 * result is returned but not stored (the next call computes again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

static const char *arg_type(lua_State *L, int idx)
{
    int64_t i;
    if (lua_type(L, idx) == LUA_TNUMBER)
        return tcl_tointeger(L, idx, &i) ? "integer" : "float";
    return luaL_typename(L, idx);
}

static int ignored(lua_State *L, int ignore_idx, int pos)
{
    if (!ignore_idx)
        return 0;
    size_t n = tcl_rawlen(L, ignore_idx);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, ignore_idx, (int)i);
        int hit = lua_tonumber(L, -1) == pos;
        lua_pop(L, 1);
        if (hit)
            return 1;
    }
    return 0;
}

void tcl_memoize_key(lua_State *L, const char *who, const char *name, int first,
                     int n, int typed, int ignore_idx)
{
    static const char hexdig[] = "0123456789abcdef";
    tcl_buf mp = {NULL, 0, 0};
    char err[160];
    int kept = 0;

    luaL_checkstack(L, 8, who);
    lua_createtable(L, n, 0);
    int args = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        if (ignored(L, ignore_idx, i + 1))
            continue;
        kept++;
        if (typed) {
            lua_createtable(L, 2, 0);
            lua_pushstring(L, arg_type(L, first + i));
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, first + i);
            lua_rawseti(L, -2, 2);
        } else {
            lua_pushvalue(L, first + i);
        }
        lua_rawseti(L, args, kept);
    }
    if (tcl_mpack_encode(L, args, &mp, 1, 1, err, sizeof err) != 0) {
        free(mp.ptr);
        luaL_error(L, "%s: arguments: %s", who, err);
    }
    lua_pop(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, name);
    lua_pushfstring(L, ":%d:", kept);
    /* luaL_addvalue takes the value from the top, above the buffer. */
    luaL_addvalue(&b);
    for (size_t i = 0; i < mp.len; i++) {
        unsigned char c = (unsigned char)mp.ptr[i];
        luaL_addchar(&b, hexdig[c >> 4]);
        luaL_addchar(&b, hexdig[c & 15]);
    }
    free(mp.ptr);
    luaL_pushresult(&b);
}

/* Upvalues shared by the decorator and the memoized function. */
enum {
    UV_OBJ = 1, /* the cache object */
    UV_NAME,    /* name (string) or nil */
    UV_EXPIRE,  /* expire/timeout, as given */
    UV_TYPED,   /* boolean */
    UV_IGNORE,  /* table of positions or nil */
    UV_GETOPTS, /* option table for get */
    UV_SETOPTS, /* option table for set */
    UV_MISS,    /* a unique table: the "missing" default */
    UV_FN,      /* the memoized function (memoized function only) */
    UV_COUNT = UV_FN
};

#define UV(i) lua_upvalueindex(i)

static int memoized_call(lua_State *L)
{
    int n = lua_gettop(L);
    const char *name = lua_tostring(L, UV(UV_NAME));
    int ignore = lua_istable(L, UV(UV_IGNORE)) ? UV(UV_IGNORE) : 0;

    tcl_memoize_key(L, "memoized function", name, 1, n,
                    lua_toboolean(L, UV(UV_TYPED)), ignore);
    int key = lua_gettop(L);

    /* obj:get(key, miss, getopts) */
    luaL_checkstack(L, n + 8, "memoized function");
    lua_pushvalue(L, UV(UV_OBJ));
    lua_getfield(L, -1, "get");
    lua_insert(L, -2);
    lua_pushvalue(L, key);
    lua_pushvalue(L, UV(UV_MISS));
    lua_pushvalue(L, UV(UV_GETOPTS));
    lua_call(L, 4, 1);
    if (!lua_rawequal(L, -1, UV(UV_MISS)))
        return 1;
    lua_pop(L, 1);

    /* fn(...), keeping the first result */
    lua_pushvalue(L, UV(UV_FN));
    for (int i = 1; i <= n; i++)
        lua_pushvalue(L, i);
    lua_call(L, n, 1);
    int result = lua_gettop(L);
    if (lua_isnil(L, result))
        return 1;
    /* An expire (or Django timeout) <= 0 means "do not store", as
     * diskcache's memoize: lookups still happen. */
    if (lua_type(L, UV(UV_EXPIRE)) == LUA_TNUMBER &&
        lua_tonumber(L, UV(UV_EXPIRE)) <= 0)
        return 1;

    /* obj:set(key, result, expire, setopts) */
    lua_pushvalue(L, UV(UV_OBJ));
    lua_getfield(L, -1, "set");
    lua_insert(L, -2);
    lua_pushvalue(L, key);
    lua_pushvalue(L, result);
    lua_pushvalue(L, UV(UV_EXPIRE));
    lua_pushvalue(L, UV(UV_SETOPTS));
    lua_call(L, 5, 0);
    lua_settop(L, result);
    return 1;
}

/* The decorator: decorator(fn) -> memoized function. */
static int decorate(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TFUNCTION)
        return tcl_argerror(L, lua_touserdata(L, UV(UV_OBJ)), "memoize", "fn",
                            "the decorator expects a function, got %s",
                            luaL_typename(L, 1));
    for (int i = 1; i <= UV_COUNT - 1; i++)
        lua_pushvalue(L, UV(i));
    if (lua_isnil(L, UV(UV_NAME))) {
        /* Default name: where the function was defined, the same in every
         * process running the same code. */
        lua_Debug ar;
        lua_pushvalue(L, 1);
        lua_getinfo(L, ">S", &ar);
        lua_pushfstring(L, "%s:%d", ar.source, ar.linedefined);
        lua_replace(L, 1 + UV_NAME); /* the copy of UV_NAME */
    }
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, memoized_call, UV_COUNT);
    return 1;
}

int tcl_memoize_push(lua_State *L, const tcl_cache *o, int name_idx,
                     int expire_idx, int opts_idx)
{
    int t = lua_type(L, name_idx);
    if (t != LUA_TNIL && t != LUA_TNONE && t != LUA_TSTRING)
        tcl_argerror(L, o, "memoize", "name", "expected a string, got %s",
                     lua_typename(L, t));

    lua_pushvalue(L, 1);          /* UV_OBJ */
    lua_pushvalue(L, name_idx);   /* UV_NAME */
    lua_pushvalue(L, expire_idx); /* UV_EXPIRE */
    lua_pushboolean(L, tcl_opt_bool(L, opts_idx, o, "memoize", "typed", 0));
    tcl_opt_push(L, opts_idx, "ignore"); /* UV_IGNORE */
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        tcl_argerror(L, o, "memoize", "ignore",
                     "expected a list of argument positions, got %s",
                     luaL_typename(L, -1));
    /* UV_GETOPTS, UV_SETOPTS: retry = true as diskcache's memoize, plus
     * the version of a DjangoCache. */
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "retry");
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "retry");
    tcl_opt_push(L, opts_idx, "tag");
    lua_setfield(L, -2, "tag");
    if (o->kind == TCL_DJANGO) {
        tcl_opt_push(L, opts_idx, "version");
        lua_pushvalue(L, -1);
        lua_setfield(L, -4, "version");
        lua_setfield(L, -2, "version");
    }
    lua_newtable(L); /* UV_MISS */
    lua_pushcclosure(L, decorate, UV_COUNT - 1);
    return 1;
}
