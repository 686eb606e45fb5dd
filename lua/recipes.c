/*
 * recipes.c - Lock, RLock, BoundedSemaphore, Averager, throttle, barrier
 * and memoize_stampede for Lua (spec/lua-api.md, "Recipes").
 *
 * The cross-process work is the C library's (core/lock.c, semaphore.c,
 * averager.c, throttle.c, stampede.c). What must be Lua lives in
 * recipes.lua, compiled into the module: waiting, because inside an
 * OpenResty request it has to yield through ngx.sleep, which a C function
 * cannot do under LuaJIT; and the decorators, which call Lua functions
 * and must release what they hold when those raise. This file gives that
 * chunk its primitives (table C) and builds the recipe objects.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "module.h"
#include "recipes_lua.h" /* tcl_recipes_lua: recipes.lua as a C string */

/* Registry names of the recipe metatables; a recipe object is a userdata
 * whose user value is its state {cache, key, expire, value}. */
static const char *const kinds[] = {"Lock", "RLock", "BoundedSemaphore",
                                    "Averager", NULL};
#define MT_PREFIX "tiercache."

/* Raise "who: message" with no position: the caller is recipes.lua, whose
 * line would only mislead. */
static int fail(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(lua_State *L, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushstring(L, msg);
    return lua_error(L);
}

/* The open core cache object at @idx (a Cache or a FanoutCache). */
static tcl_cache *cache_arg(lua_State *L, int idx, const char *who)
{
    tcl_cache *o = luaL_testudata(L, idx, TCL_MT_CACHE);
    if (!o)
        o = luaL_testudata(L, idx, TCL_MT_FANOUT);
    if (!o)
        fail(L, "%s: cache: expected a Cache or FanoutCache, got %s", who,
             luaL_typename(L, idx));
    if (!o->c)
        fail(L, "%s: cache is closed", who);
    return o;
}

/* Raise the error of @rc from a recipe call, as the cache methods do. */
static int raise(lua_State *L, const char *who, int rc)
{
    if (rc == TC_EBUSY)
        return tcl_raise_code(L, "Timeout", "%s: %s", who, tc_errmsg());
    return fail(L, "%s: %s", who, tc_errmsg());
}

/* ---- constructors --------------------------------------------------- */

/* tiercache.<Kind>(cache, key, [value,] expire): kind index in upvalue 1. */
static int new_recipe(lua_State *L)
{
    int k = (int)lua_tointeger(L, lua_upvalueindex(1));
    char who[64];
    snprintf(who, sizeof who, "tiercache.%s", kinds[k]);
    cache_arg(L, 1, who);
    tcl_datum key;
    tcl_key(L, 2, NULL, kinds[k], "key", &key); /* checks the key */
    int expire_idx = 3;
    int64_t value = 1;
    if (!strcmp(kinds[k], "BoundedSemaphore")) {
        expire_idx = 4;
        if (!lua_isnoneornil(L, 3) &&
            (lua_type(L, 3) != LUA_TNUMBER || !tcl_tointeger(L, 3, &value) ||
             value < 1))
            return luaL_error(L,
                              "%s: value: expected a positive integer, "
                              "got %s",
                              who, tcl_tostring(L, 3));
    }
    double expire = tcl_expire_arg(L, expire_idx, NULL, kinds[k], "expire");
    tcl_newuserdata(L, 1);
    luaL_getmetatable(L, lua_tostring(L, lua_upvalueindex(2)));
    lua_setmetatable(L, -2);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "cache");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "key");
    lua_pushnumber(L, (lua_Number)expire);
    lua_setfield(L, -2, "expire");
    tcl_pushint(L, value);
    lua_setfield(L, -2, "value");
    tcl_setuservalue(L, -2);
    return 1;
}

/* C.state(obj, kind, method): the state table of a recipe object. */
static int c_state(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 2);
    const char *method = luaL_checkstring(L, 3);
    char mt[64];
    snprintf(mt, sizeof mt, MT_PREFIX "%s", kind);
    if (!luaL_testudata(L, 1, mt))
        return fail(L, "%s.%s: expected a %s object (use obj:%s())", kind,
                    method, kind, method);
    tcl_getuservalue(L, 1);
    return 1;
}

/* ---- primitives the chunk calls: (who, cache, key, ...) -------------- */

struct prim {
    const char *who;
    tcl_cache *o;
    tcl_datum key;
};

static void prim_args(lua_State *L, struct prim *p)
{
    p->who = luaL_checkstring(L, 1);
    p->o = cache_arg(L, 2, p->who);
    tcl_key(L, 3, NULL, p->who, "key", &p->key);
}

static double num(lua_State *L, int idx, const char *who, const char *arg)
{
    if (lua_type(L, idx) != LUA_TNUMBER)
        fail(L, "%s: %s: expected a number, got %s", who, arg,
             luaL_typename(L, idx));
    double d = (double)lua_tonumber(L, idx);
    if (isnan(d))
        fail(L, "%s: %s: NaN is not allowed", who, arg);
    return d;
}

/* C.lock_try(who, cache, key, expire, thread|nil): true if acquired. A
 * thread makes it an RLock. */
static int c_lock_try(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    double expire = num(L, 4, p.who, "expire");
    int rc =
        lua_isnoneornil(L, 5)
            ? tc_lock_acquire(p.o->c, &p.key.d, expire, 0)
            : tc_rlock_acquire(p.o->c, &p.key.d, lua_tostring(L, 5), expire, 0);
    if (rc != TC_OK && rc != TC_EXISTS)
        return raise(L, p.who, rc);
    lua_pushboolean(L, rc == TC_OK);
    return 1;
}

/* C.lock_release(who, cache, key, thread|nil) */
static int c_lock_release(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    int rc = lua_isnoneornil(L, 4)
                 ? tc_lock_release(p.o->c, &p.key.d)
                 : tc_rlock_release(p.o->c, &p.key.d, lua_tostring(L, 4));
    if (rc == TC_NOTFOUND || rc == TC_EPERM)
        return fail(L, "%s: cannot release un-acquired lock", p.who);
    if (rc != TC_OK)
        return raise(L, p.who, rc);
    return 0;
}

static int c_lock_locked(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    int rc = tc_lock_locked(p.o->c, &p.key.d);
    if (rc != TC_OK && rc != TC_NOTFOUND)
        return raise(L, p.who, rc);
    lua_pushboolean(L, rc == TC_OK);
    return 1;
}

/* C.sem_try(who, cache, key, value, expire) / C.sem_release(...) */
static int c_sem(lua_State *L, int release)
{
    struct prim p;
    prim_args(L, &p);
    int64_t value = 1;
    if (lua_type(L, 4) != LUA_TNUMBER || !tcl_tointeger(L, 4, &value))
        return fail(L, "%s: value: expected an integer", p.who);
    double expire = num(L, 5, p.who, "expire");
    int rc = release ? tc_sem_release(p.o->c, &p.key.d, value, expire)
                     : tc_sem_acquire(p.o->c, &p.key.d, value, expire, 0);
    if (release && rc == TC_EPERM)
        return fail(L, "%s: cannot release un-acquired semaphore", p.who);
    if (rc != TC_OK && (release || rc != TC_EXISTS))
        return raise(L, p.who, rc);
    lua_pushboolean(L, rc == TC_OK);
    return 1;
}
static int c_sem_try(lua_State *L)
{
    return c_sem(L, 0);
}
static int c_sem_release(lua_State *L)
{
    return c_sem(L, 1);
}

/* C.avg_add(who, cache, key, value, expire) */
static int c_avg_add(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    double v = num(L, 4, p.who, "value");
    int rc =
        tc_averager_add(p.o->c, &p.key.d, v, num(L, 5, p.who, "expire"), NULL);
    if (rc == TC_EINVAL)
        return fail(L, "%s: value: %s", p.who, tc_errmsg());
    if (rc != TC_OK)
        return raise(L, p.who, rc);
    return 0;
}

/* C.avg_get(who, cache, key, pop): the average, or nil. */
static int c_avg_get(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    double avg;
    int rc = lua_toboolean(L, 4) ? tc_averager_pop(p.o->c, &p.key.d, &avg)
                                 : tc_averager_get(p.o->c, &p.key.d, &avg);
    if (rc == TC_NOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != TC_OK)
        return raise(L, p.who, rc);
    lua_pushnumber(L, (lua_Number)avg);
    return 1;
}

/* C.throttle(who, cache, key, count, seconds, expire, now, init): the
 * delay to sleep before trying again (0: a call may run now). */
static int c_throttle(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    double count = num(L, 4, p.who, "count");
    double seconds = num(L, 5, p.who, "seconds");
    double expire = num(L, 6, p.who, "expire");
    double now = num(L, 7, p.who, "time_func()");
    double delay = 0;
    int rc =
        lua_toboolean(L, 8)
            ? tc_throttle_init(p.o->c, &p.key.d, count, seconds, expire, now)
            : tc_throttle_take(p.o->c, &p.key.d, count, seconds, expire, now,
                               &delay);
    if (rc != TC_OK)
        return raise(L, p.who, rc);
    lua_pushnumber(L, (lua_Number)delay);
    return 1;
}

/* C.stampede_begin(who, cache, key, beta, rnd): "use"|"compute"|"wait",
 * and the cached result (nil if none). */
static int c_stampede_begin(lua_State *L)
{
    static const char *const names[] = {"use", "compute", "wait"};
    struct prim p;
    prim_args(L, &p);
    double beta = num(L, 4, p.who, "beta");
    double rnd = num(L, 5, p.who, "random");
    tc_value cached = TC_VALUE_INIT;
    int action = TC_STAMPEDE_WAIT;
    int rc = tc_stampede_begin(p.o->c, &p.key.d, beta, rnd, &cached, &action);
    if (rc != TC_OK) {
        tc_value_clear(&cached);
        return raise(L, p.who, rc);
    }
    lua_pushstring(L, names[action]);
    char err[128];
    if (cached.type == TC_NONE) {
        lua_pushnil(L);
    } else if (tcl_push_value(L, &cached, err, sizeof err) != 0) {
        tc_value_clear(&cached);
        if (action == TC_STAMPEDE_COMPUTE)
            tc_stampede_abort(p.o->c, &p.key.d);
        return fail(L, "%s: %s", p.who, err);
    }
    tc_value_clear(&cached);
    return 2;
}

/* C.stampede_end(who, cache, key, result, delta, expire, tag|nil) */
static int c_stampede_end(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    double delta = num(L, 5, p.who, "delta");
    double expire = num(L, 6, p.who, "expire");
    tcl_datum val, tag;
    char err[160];
    if (tcl_value(L, 4, &val, err, sizeof err) != 0) {
        tc_stampede_abort(p.o->c, &p.key.d);
        return fail(L, "%s: result: %s", p.who, err);
    }
    int has_tag = tcl_tag(L, 7, NULL, p.who, &tag);
    int rc = tc_stampede_end(p.o->c, &p.key.d, &val.d, delta, expire,
                             has_tag ? &tag.d : NULL);
    tcl_datum_free(&val);
    if (has_tag)
        tcl_datum_free(&tag);
    if (rc != TC_OK)
        return raise(L, p.who, rc);
    return 0;
}

static int c_stampede_abort(lua_State *L)
{
    struct prim p;
    prim_args(L, &p);
    int rc = tc_stampede_abort(p.o->c, &p.key.d);
    if (rc != TC_OK && rc != TC_NOTFOUND && rc != TC_EPERM)
        return raise(L, p.who, rc);
    return 0;
}

/* C.memo_key(who, name, typed, ignore|nil, ...): memoize's key. */
static int c_memo_key(lua_State *L)
{
    const char *who = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int typed = lua_toboolean(L, 3);
    int ignore = lua_istable(L, 4) ? 4 : 0;
    int n = lua_gettop(L) - 4;
    tcl_memoize_key(L, who, name, 5, n < 0 ? 0 : n, typed, ignore);
    return 1;
}

/* C.fn_name(fn): "<source>:<line>", memoize's default name. */
static int c_fn_name(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_Debug ar;
    lua_pushvalue(L, 1);
    lua_getinfo(L, ">S", &ar);
    lua_pushfstring(L, "%s:%d", ar.source, ar.linedefined);
    return 1;
}

/* C.sleep(seconds): a blocking sleep (outside OpenResty's yieldable
 * phases). C.mono(): a monotonic clock in seconds. */
static int c_sleep(lua_State *L)
{
    double s = (double)luaL_checknumber(L, 1);
    if (!(s > 0))
        return 0;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return 0;
}

static int c_mono(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

void tcl_recipes_register(lua_State *L, int module_idx)
{
    static const luaL_Reg prims[] = {
        {"state", c_state},
        {"lock_try", c_lock_try},
        {"lock_release", c_lock_release},
        {"lock_locked", c_lock_locked},
        {"sem_try", c_sem_try},
        {"sem_release", c_sem_release},
        {"avg_add", c_avg_add},
        {"avg_get", c_avg_get},
        {"throttle", c_throttle},
        {"stampede_begin", c_stampede_begin},
        {"stampede_end", c_stampede_end},
        {"stampede_abort", c_stampede_abort},
        {"memo_key", c_memo_key},
        {"fn_name", c_fn_name},
        {"sleep", c_sleep},
        {"mono", c_mono},
        {NULL, NULL},
    };
    module_idx = tcl_absindex(L, module_idx);
    /* The chunk returns a table of method tables by kind, and the
     * module-level decorators. */
    if (luaL_loadbuffer(L, tcl_recipes_lua, sizeof tcl_recipes_lua - 1,
                        "=tiercache/recipes.lua") != 0)
        lua_error(L);
    lua_newtable(L);
    luaL_setfuncs(L, prims, 0);
    lua_pushnumber(L, TC_LOCK_POLL_MAX);
    lua_setfield(L, -2, "POLL_MAX");
    lua_pushvalue(L, module_idx);
    lua_call(L, 2, 1);
    int defs = lua_gettop(L);
    for (int k = 0; kinds[k]; k++) {
        char mt[64];
        snprintf(mt, sizeof mt, MT_PREFIX "%s", kinds[k]);
        luaL_newmetatable(L, mt);
        lua_getfield(L, defs, kinds[k]); /* the kind's methods */
        lua_setfield(L, -2, "__index");
        lua_pushstring(L, kinds[k]);
        lua_setfield(L, -2, "__name");
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
        lua_pushinteger(L, k);
        lua_pushstring(L, mt);
        lua_pushcclosure(L, new_recipe, 2);
        lua_setfield(L, module_idx, kinds[k]);
    }
    static const char *const decorators[] = {"throttle", "barrier",
                                             "memoize_stampede", NULL};
    for (int i = 0; decorators[i]; i++) {
        lua_getfield(L, defs, decorators[i]);
        lua_setfield(L, module_idx, decorators[i]);
    }
    lua_settop(L, defs - 1);
}
