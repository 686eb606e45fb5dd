/*
 * args.c - argument checking and errors for the Lua module.
 *
 * Misuse (a wrong type, an unknown option, a closed cache) raises a string
 * naming the method and the argument: "Cache.set: expire: expected a
 * number or false, got string". Failures of the cache itself raise an
 * error object {code = ..., message = ...} whose tostring is the message,
 * so callers can test e.code == "Timeout" (python-diskcache's Timeout).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "module.h"

const char *tcl_kind_name(int kind)
{
    switch (kind) {
    case TCL_CACHE:
        return "Cache";
    case TCL_FANOUT:
        return "FanoutCache";
    case TCL_DJANGO:
        return "DjangoCache";
    }
    return "tiercache";
}

/* The kind of the cache object at @idx, or 0. Metatables carry their kind
 * in a field so one rawget tells. */
static int kind_of(lua_State *L, int idx)
{
    const tcl_cache *o = lua_touserdata(L, idx);

    /* A light userdata has no length: the size check rejects it too. */
    if (!o || tcl_rawlen(L, idx) < sizeof *o || o->magic != TCL_MAGIC)
        return 0;
    return o->kind;
}

tcl_cache *tcl_self_closed(lua_State *L, const char *method, unsigned kinds)
{
    tcl_cache *o = lua_touserdata(L, 1);
    int kind = o ? kind_of(L, 1) : 0;

    if (!kind || !(kinds & TCL_K(kind)))
        luaL_error(L,
                   "%s: expected a cache object as self (use ':' to call "
                   "methods), got %s",
                   method, luaL_typename(L, 1));
    return o;
}

tcl_cache *tcl_self(lua_State *L, const char *method, unsigned kinds)
{
    tcl_cache *o = tcl_self_closed(L, method, kinds);
    if (!o->c)
        luaL_error(L, "%s.%s: cache is closed", tcl_kind_name(o->kind), method);
    return o;
}

int tcl_argerror(lua_State *L, const tcl_cache *o, const char *method,
                 const char *arg, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return luaL_error(L, "%s.%s: %s: %s",
                      o ? tcl_kind_name(o->kind) : "tiercache", method, arg,
                      msg);
}

int tcl_opts(lua_State *L, int idx, const tcl_cache *o, const char *method,
             const char *const *allowed)
{
    int t = lua_type(L, idx);

    if (t == LUA_TNONE || t == LUA_TNIL)
        return 0;
    if (t != LUA_TTABLE)
        return tcl_argerror(L, o, method, "opts", "expected a table, got %s",
                            lua_typename(L, t));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return tcl_argerror(L, o, method, "opts",
                                "option names are strings, got %s",
                                luaL_typename(L, -1));
        const char *name = lua_tostring(L, -1);
        const char *const *a = allowed;
        while (*a && strcmp(*a, name) != 0)
            a++;
        if (!*a)
            return tcl_argerror(L, o, method, "opts", "unknown option '%s'",
                                name);
    }
    return 1;
}

void tcl_opt_push(lua_State *L, int idx, const char *name)
{
    if (lua_type(L, idx) == LUA_TTABLE)
        lua_getfield(L, idx, name);
    else
        lua_pushnil(L);
}

int tcl_opt_bool(lua_State *L, int idx, const tcl_cache *o, const char *method,
                 const char *name, int dflt)
{
    int v = dflt;

    tcl_opt_push(L, idx, name);
    if (lua_isboolean(L, -1))
        v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
        tcl_argerror(L, o, method, name, "expected a boolean, got %s",
                     luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* Push a new error object {code, message} with the shared metatable. */
static void push_error(lua_State *L, const char *code, const char *msg)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    luaL_getmetatable(L, TCL_MT_ERROR);
    lua_setmetatable(L, -2);
}

int tcl_raise_code(lua_State *L, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    push_error(L, code, msg);
    return lua_error(L);
}

int tcl_raise(lua_State *L, const tcl_cache *o, const char *method, int rc)
{
    const char *detail = tc_errmsg();

    if (!detail || !*detail)
        detail = tc_strerror(rc);
    return tcl_raise_code(L, rc == TC_EBUSY ? "Timeout" : tc_errname(rc),
                          "%s.%s: %s", o ? tcl_kind_name(o->kind) : "tiercache",
                          method, detail);
}
