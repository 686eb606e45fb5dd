/*
 * module.c - luaopen_tiercache: the module table, constructors and the
 * metatables of the objects.
 *
 *   local tiercache = require "tiercache"
 *   local c  = tiercache.Cache(directory, settings)
 *   local fc = tiercache.FanoutCache(directory, settings)
 *   local dj = tiercache.DjangoCache(directory, params)
 *
 * Objects are userdata (so #obj works under LuaJIT too); each kind has a
 * metatable whose __index is its method table; the object's first word,
 * TCL_MAGIC, and its kind let tcl_self check self without a lookup (its
 * __tcl_kind field names the kind for readers of the metatable).
 */
#include "module.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- settings ----------------------------------------------------------- */

/* Apply one settings-table entry (key at -2, value at -1) to @c. */
static void apply_setting(lua_State *L, tcl_cache *o, int kind, int django_opts,
                          const char *who)
{
    /* DjangoCache settings come from its OPTIONS param. */
    const char *where = django_opts ? "OPTIONS" : "settings";
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "%s: %s: names are strings, got %s", who, where,
                   luaL_typename(L, -2));
    const char *name = lua_tostring(L, -2);
    int t = lua_type(L, -1);
    int64_t i = 0;

    if (strcmp(name, "timeout") == 0) {
        /* The core refuses NaN and absurd waits (over 1e6 s). */
        if (t != LUA_TNUMBER ||
            tc_set_timeout(o->c, (double)lua_tonumber(L, -1)) != TC_OK)
            luaL_error(L, "%s: %s: timeout: expected seconds from 0 to 1e6",
                       who, where);
        return;
    }
    if (strcmp(name, "shards") == 0 && kind == TCL_FANOUT && !django_opts) {
        if (t != LUA_TNUMBER || !tcl_tointeger(L, -1, &i) || i < 1 || i > 999)
            luaL_error(L, "%s: %s: shards: expected an integer from 1 to 999",
                       who, where);
        tc_set_shards(o->c, (int)i);
        return;
    }
    if (strcmp(name, "hot_size") == 0) {
        if (t != LUA_TNUMBER || !tcl_tointeger(L, -1, &i) || i < 0)
            luaL_error(L, "%s: %s: hot_size: expected bytes >= 0", who, where);
        if (tc_set_hot_size(o->c, (uint64_t)i) != TC_OK)
            luaL_error(L, "%s: %s: hot_size: %s", who, where, tc_errmsg());
        return;
    }
    if (strcmp(name, "worker") == 0) {
        if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
            return;
        if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "auto") == 0) {
            /* tc_open starts tiercached when none runs: found through
             * $TIERCACHED or beside the library (core/worker.c). */
            tc_set_worker(o->c, TC_WORKER_AUTO);
            return;
        }
        luaL_error(L, "%s: %s: worker: expected \"auto\" or false", who, where);
    }
    /* Django's own options, carried over from settings.py and ignored:
     * size_limit and culling do their job. */
    if (django_opts && (strcmp(name, "MAX_ENTRIES") == 0 ||
                        strcmp(name, "CULL_FREQUENCY") == 0))
        return;

    tcl_datum d;
    if (t == LUA_TBOOLEAN) {
        d.i = lua_toboolean(L, -1);
        d.d = tc_int(&d.i);
    } else if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        tcl_key(L, -1, o, "settings", name, &d);
    } else {
        luaL_error(L,
                   "%s: %s: %s: expected a string, number or boolean, got %s",
                   who, where, name, lua_typename(L, t));
    }
    if (tc_set_setting(o->c, name, &d.d) != TC_OK)
        luaL_error(L, "%s: %s: %s", who, where, tc_errmsg());
}

tcl_cache *tcl_open(lua_State *L, int kind, const char *dir, int settings_idx,
                    int shards, double timeout, int django_opts,
                    const char *who)
{
    char tmpl[4096];

    /* The object exists first, so __gc frees the handle if a bad setting
     * raises half way. */
    tcl_cache *o = tcl_newuserdata(L, sizeof *o);
    memset(o, 0, sizeof *o);
    o->magic = TCL_MAGIC;
    o->kind = kind;
    luaL_setmetatable(L, kind == TCL_CACHE    ? TCL_MT_CACHE
                         : kind == TCL_FANOUT ? TCL_MT_FANOUT
                                              : TCL_MT_DJANGO);
    lua_newtable(L); /* sub-collections opened through this object */
    tcl_setuservalue(L, -2);
    int self = lua_gettop(L);

    if (tc_create(&o->c) != TC_OK)
        luaL_error(L, "%s: out of memory", who);
    tc_set_shards(o->c, kind == TCL_CACHE ? TC_SHARDS_PLAIN : shards);
    if (timeout != -1 && tc_set_timeout(o->c, timeout) != TC_OK)
        luaL_error(L, "%s: timeout: expected seconds from 0 to 1e6", who);
    if (settings_idx) {
        lua_pushnil(L);
        while (lua_next(L, settings_idx)) {
            apply_setting(L, o, kind == TCL_DJANGO ? TCL_FANOUT : kind,
                          django_opts, who);
            lua_pop(L, 1);
        }
    }
    if (!dir) {
        /* No directory: a new temporary one, as diskcache does (under
         * $TMPDIR, as Python's tempfile). */
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp || strlen(tmp) > sizeof tmpl - 32)
            tmp = "/tmp";
        snprintf(tmpl, sizeof tmpl, "%s/tiercache-XXXXXX", tmp);
        dir = mkdtemp(tmpl);
        if (!dir)
            luaL_error(L, "%s: cannot create a temporary directory: %s", who,
                       strerror(errno));
    }
    int rc = tc_open(o->c, dir, 0);
    if (rc != TC_OK)
        tcl_raise_code(L, rc == TC_EBUSY ? "Timeout" : tc_errname(rc),
                       "%s: cannot open '%s': %s", who, dir, tc_errmsg());
    if (kind != TCL_CACHE && tc_shard_count(o->c) == 0)
        luaL_error(L, "%s: '%s' holds a plain Cache, not a FanoutCache", who,
                   dir);
    lua_settop(L, self);
    return o;
}

/* Cache(directory, settings) and FanoutCache(directory, settings). */
static int open_core(lua_State *L, int kind)
{
    const char *who = tcl_kind_name(kind);
    const char *dir = NULL;

    if (!lua_isnoneornil(L, 1)) {
        if (lua_type(L, 1) != LUA_TSTRING)
            return luaL_error(L, "%s: directory: expected a string, got %s",
                              who, luaL_typename(L, 1));
        dir = lua_tostring(L, 1);
    }
    int settings = 0;
    if (!lua_isnoneornil(L, 2)) {
        if (!lua_istable(L, 2))
            return luaL_error(L, "%s: settings: expected a table, got %s", who,
                              luaL_typename(L, 2));
        settings = 2;
    }
    tcl_open(L, kind, dir, settings, TC_SHARDS_AUTO, -1, 0, who);
    return 1;
}

static int new_cache(lua_State *L)
{
    return open_core(L, TCL_CACHE);
}

static int new_fanout(lua_State *L)
{
    return open_core(L, TCL_FANOUT);
}

/* ---- object metamethods ------------------------------------------------- */

static int obj_gc(lua_State *L)
{
    tcl_cache *o = lua_touserdata(L, 1);
    if (o) {
        tc_close(o->c);
        o->c = NULL;
        free(o->dj_prefix);
        o->dj_prefix = NULL;
        free(o->dj_head);
        o->dj_head = NULL;
    }
    return 0;
}

static int obj_tostring(lua_State *L)
{
    tcl_cache *o = lua_touserdata(L, 1);
    if (!o->c)
        lua_pushfstring(L, "tiercache.%s (closed)", tcl_kind_name(o->kind));
    else
        lua_pushfstring(L, "tiercache.%s(%s)", tcl_kind_name(o->kind),
                        tc_directory(o->c));
    return 1;
}

static void new_kind(lua_State *L, const char *mt, int kind,
                     const luaL_Reg *methods)
{
    luaL_newmetatable(L, mt);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_getfield(L, -1, "__len");
    lua_setfield(L, -3, "__len");
    lua_pushnil(L);
    lua_setfield(L, -2, "__len"); /* a metamethod, not a method */
    lua_pop(L, 1);
    lua_pushinteger(L, kind);
    lua_setfield(L, -2, "__tcl_kind");
    lua_pushcfunction(L, obj_gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    /* local c <close> = tiercache.Cache(dir) */
    lua_pushcfunction(L, obj_gc);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, obj_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

/* Error objects: tostring(e) is the message. */
static int error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1))
        lua_pushliteral(L, "tiercache error");
    return 1;
}

/* ---- module functions --------------------------------------------------- */

static int m_version(lua_State *L)
{
    lua_pushstring(L, tc_version());
    return 1;
}

/* now(): the clock caches use by default (Unix seconds, as time.time()). */
static int m_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

int luaopen_tiercache(lua_State *L);

int luaopen_tiercache(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"Cache", new_cache},
                                     {"FanoutCache", new_fanout},
                                     {"DjangoCache", tcl_new_django},
                                     {"Deque", tcl_new_deque},
                                     {"Index", tcl_new_index},
                                     {"version", m_version},
                                     {"now", m_now},
                                     {NULL, NULL}};

    new_kind(L, TCL_MT_CACHE, TCL_CACHE, tcl_cache_methods);
    new_kind(L, TCL_MT_FANOUT, TCL_FANOUT, tcl_fanout_methods);
    new_kind(L, TCL_MT_DJANGO, TCL_DJANGO, tcl_django_methods);

    luaL_newmetatable(L, TCL_MT_ERROR);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    luaL_newmetatable(L, TCL_MT_ITER);
    lua_pushcfunction(L, tcl_iter_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    /* io.open as it is now, for handles returned by read(). */
    lua_getglobal(L, "io");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "open");
        lua_setfield(L, LUA_REGISTRYINDEX, TCL_IO_OPEN);
    }
    lua_pop(L, 1);

    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    tcl_deque_register(L);
    tcl_index_register(L);
    tcl_recipes_register(L, lua_gettop(L));
    lua_pushstring(L, tc_version());
    lua_setfield(L, -2, "_VERSION");
    tcl_ffi_install(L, lua_gettop(L));
    return 1;
}
