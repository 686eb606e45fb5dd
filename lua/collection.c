/*
 * collection.c - what Deque and Index share (lua/deque.c, lua/index.c):
 * the object, a tcl_cache record first with magic and kind 0 (so Cache
 * methods refuse it, and memoize.c can read it as a cache); errors that
 * name the collection; opening python's Cache(directory,
 * eviction_policy='none'); and the lifecycle methods close, cache,
 * directory, __gc, __close and __tostring.
 */
#include <string.h>

#include "module.h"

tcl_cache *tcl_coll_self(lua_State *L, const tcl_coll *k, const char *m)
{
    tcl_cache *o = luaL_testudata(L, 1, k->mt);
    if (!o)
        luaL_error(L,
                   "%s.%s: expected %s as self (use ':' to call methods), "
                   "got %s",
                   k->name, m, k->a_name, luaL_typename(L, 1));
    if (!o->c)
        luaL_error(L, "%s.%s: %s is closed", k->name, m, k->noun);
    return o;
}

int tcl_coll_raise(lua_State *L, const tcl_coll *k, const char *m, int rc)
{
    return tcl_raise_code(L, rc == TC_EBUSY ? "Timeout" : tc_errname(rc),
                          "%s.%s: %s", k->name, m, tc_errmsg());
}

void tcl_coll_value_arg(lua_State *L, const tcl_coll *k, int idx, const char *m,
                        const char *arg, tcl_datum *out)
{
    char err[160];
    if (tcl_value(L, idx, out, err, sizeof err) != 0)
        luaL_error(L, "%s.%s: %s: %s", k->name, m, arg, err);
}

int tcl_coll_push_value(lua_State *L, const tcl_coll *k, const char *m,
                        tc_value *v, const char *what)
{
    char err[160];
    int pr = tcl_push_value(L, v, err, sizeof err);
    tc_value_clear(v);
    if (pr != 0)
        return tcl_raise_code(L, "ECORRUPT", "%s.%s: stored %s: %s", k->name, m,
                              what, err);
    return 1;
}

const char *tcl_coll_dir_arg(lua_State *L, const tcl_coll *k)
{
    if (lua_isnoneornil(L, 1))
        return NULL;
    if (lua_type(L, 1) != LUA_TSTRING)
        luaL_error(L, "%s: directory: expected a string, got %s", k->name,
                   luaL_typename(L, 1));
    return lua_tostring(L, 1);
}

tcl_cache *tcl_coll_open(lua_State *L, const tcl_coll *k, const char *dir,
                         size_t size)
{
    /* Closed until the open below succeeds, so __gc is always safe. */
    tcl_cache *obj = tcl_newuserdata(L, size);
    memset(obj, 0, size);
    luaL_setmetatable(L, k->mt);

    /* tcl_open makes a temporary directory when there is none and raises
     * readable errors; the collection takes over the handle of the Cache
     * object it returns. */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "none");
    lua_setfield(L, -2, "eviction_policy");
    tcl_cache *o = tcl_open(L, TCL_CACHE, dir, lua_gettop(L), TC_SHARDS_PLAIN,
                            -1, 0, k->name);
    obj->c = o->c;
    o->c = NULL;
    lua_pop(L, 2);
    return obj;
}

/* The lifecycle methods; upvalue 1 is the kind (a light userdata). */
#define KIND ((const tcl_coll *)lua_touserdata(L, lua_upvalueindex(1)))

static int coll_close(lua_State *L)
{
    const tcl_coll *k = KIND;
    tcl_cache *o = luaL_testudata(L, 1, k->mt);
    if (!o)
        return luaL_error(L, "%s.close: expected %s as self, got %s", k->name,
                          k->a_name, luaL_typename(L, 1));
    tc_close(o->c);
    o->c = NULL;
    return 0;
}

static int coll_directory(lua_State *L)
{
    tcl_cache *o = tcl_coll_self(L, KIND, "directory");
    lua_pushstring(L, tc_directory(o->c));
    return 1;
}

/* cache(): a Cache object on the collection's directory (python's
 * Deque.cache / Index.cache), opened anew; closing it leaves the
 * collection open. */
static int coll_cache(lua_State *L)
{
    const tcl_coll *k = KIND;
    tcl_cache *o = tcl_coll_self(L, k, "cache");
    lua_pushfstring(L, "%s.cache", k->name);
    tcl_open(L, TCL_CACHE, tc_directory(o->c), 0, TC_SHARDS_PLAIN, -1, 0,
             lua_tostring(L, -1));
    return 1;
}

static int coll_tostring(lua_State *L)
{
    const tcl_coll *k = KIND;
    tcl_cache *o = luaL_checkudata(L, 1, k->mt);
    if (!o->c)
        lua_pushfstring(L, "tiercache.%s (closed)", k->name);
    else
        lua_pushfstring(L, "tiercache.%s(%s)", k->name, tc_directory(o->c));
    return 1;
}

/* __gc of iterator states: a userdata whose first member is a tc_iter *.
 * Upvalue 1: the iterator metatable's name. */
static int coll_iter_gc(lua_State *L)
{
    tc_iter **it = luaL_checkudata(L, 1, lua_tostring(L, lua_upvalueindex(1)));
    tc_iter_close(*it);
    *it = NULL;
    return 0;
}

static void set_closure(lua_State *L, const tcl_coll *k, lua_CFunction f,
                        const char *name)
{
    lua_pushlightuserdata(L, (void *)k);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
}

void tcl_coll_register(lua_State *L, const tcl_coll *k, const luaL_Reg *methods,
                       lua_CFunction len, const char *iter_mt)
{
    luaL_newmetatable(L, k->mt);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    set_closure(L, k, coll_close, "close");
    set_closure(L, k, coll_cache, "cache");
    set_closure(L, k, coll_directory, "directory");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, len);
    lua_setfield(L, -2, "__len");
    set_closure(L, k, coll_close, "__gc");
#if LUA_VERSION_NUM >= 504
    set_closure(L, k, coll_close, "__close");
#endif
    set_closure(L, k, coll_tostring, "__tostring");
    lua_pop(L, 1);

    luaL_newmetatable(L, iter_mt);
    lua_pushstring(L, iter_mt);
    lua_pushcclosure(L, coll_iter_gc, 1);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}
