/*
 * compat.h - one source for Lua 5.4 and LuaJIT 2.1 (OpenResty's fork).
 *
 * The two differ in three ways the module cares about:
 *  - numbers: Lua 5.4 has a separate integer subtype; LuaJIT has doubles
 *    only, so an "integer" there is an integral number within +-2^53
 *    (the spec's rule, so 3.0 is the integer 3 under LuaJIT);
 *  - per-userdata Lua values: user values (5.4) versus environments (5.1);
 *  - lua_rawlen versus lua_objlen.
 * Everything else the module uses is common to both.
 */
#ifndef TCL_COMPAT_H
#define TCL_COMPAT_H

#include <math.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 503
#define TCL_HAS_INTEGERS 1
#else
#define TCL_HAS_INTEGERS 0
#endif

/* Largest integral double that is still exact: LuaJIT's integer range. */
#define TCL_EXACT_INT_MAX 9007199254740992.0 /* 2^53 */

/*
 * tcl_tointeger - 1 and *out if the number at @idx is an integer in the
 * spec's sense (math.type "integer" in 5.4; integral within +-2^53 in
 * LuaJIT), else 0. The value at @idx must be a number.
 */
static inline int tcl_tointeger(lua_State *L, int idx, int64_t *out)
{
#if TCL_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
        *out = (int64_t)lua_tointeger(L, idx);
        return 1;
    }
    return 0;
#else
    double d = lua_tonumber(L, idx);
    /* -0.0 stays a float: as an integer it would come back as 0. */
    if (d == floor(d) && d >= -TCL_EXACT_INT_MAX && d <= TCL_EXACT_INT_MAX &&
        !(d == 0 && signbit(d))) {
        *out = (int64_t)d;
        return 1;
    }
    return 0;
#endif
}

/* tcl_pushint - push a 64-bit integer (a double under LuaJIT, exact within
 * +-2^53). */
static inline void tcl_pushint(lua_State *L, int64_t v)
{
#if TCL_HAS_INTEGERS
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}

/* tcl_rawlen - the raw length of a table or string. */
static inline size_t tcl_rawlen(lua_State *L, int idx)
{
#if LUA_VERSION_NUM >= 502
    return (size_t)lua_rawlen(L, idx);
#else
    return (size_t)lua_objlen(L, idx);
#endif
}

/* tcl_setuservalue - pop a table and attach it to the userdata at @idx. */
static inline void tcl_setuservalue(lua_State *L, int idx)
{
#if LUA_VERSION_NUM >= 504
    lua_setiuservalue(L, idx, 1);
#elif LUA_VERSION_NUM >= 502
    lua_setuservalue(L, idx);
#else
    lua_setfenv(L, idx);
#endif
}

/* tcl_getuservalue - push the table attached to the userdata at @idx. */
static inline void tcl_getuservalue(lua_State *L, int idx)
{
#if LUA_VERSION_NUM >= 504
    lua_getiuservalue(L, idx, 1);
#elif LUA_VERSION_NUM >= 502
    lua_getuservalue(L, idx);
#else
    lua_getfenv(L, idx);
#endif
}

/* tcl_newuserdata - a userdata with room for one user value. */
static inline void *tcl_newuserdata(lua_State *L, size_t size)
{
#if LUA_VERSION_NUM >= 504
    return lua_newuserdatauv(L, size, 1);
#else
    return lua_newuserdata(L, size);
#endif
}

/* tcl_absindex - an index that stays valid as the stack grows. */
static inline int tcl_absindex(lua_State *L, int idx)
{
    return (idx > 0 || idx <= LUA_REGISTRYINDEX) ? idx
                                                 : lua_gettop(L) + idx + 1;
}

/* tcl_tostring - push the string form of a string or number at @idx (the
 * type name for anything else); luaL_tolstring is not in LuaJIT. */
static inline const char *tcl_tostring(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        return lua_tostring(L, -1);
    }
    lua_pushstring(L, lua_typename(L, t));
    return lua_tostring(L, -1);
}

#endif /* TCL_COMPAT_H */
