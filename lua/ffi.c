/*
 * ffi.c - the LuaJIT FFI fast path of get(key).
 *
 * Under LuaJIT a Lua C function cannot be compiled into a trace (the trace
 * is stitched around it), and pushing its result through the C API costs
 * more than ffi.string. So under LuaJIT, unless TIERCACHE_NO_FFI is set,
 * Cache and FanoutCache get their `get` from a small Lua wrapper that
 * handles the common call, get(key [, default]) with a string or number
 * key and a string or number value, through tcl_ffi_get via the FFI, and
 * hands every other call (options, table values, errors, values over
 * 4 KiB) to the C method, which is the one path everywhere else.
 * tiercache._FFI tells which is in use.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* Results of tcl_ffi_get. */
#define FFI_HIT      0
#define FFI_MISS     1 /* missing, expired, or a swallowed timeout */
#define FFI_FALLBACK (-1)

/*
 * tcl_ffi_get - look up a key for the FFI wrapper.
 * @o: the cache object's payload (the wrapper checked its metatable).
 * @kp, @kn: a string key; or @kp NULL and the number @kd.
 * Returns FFI_HIT with the value in @buf (@len bytes, type in @type, only
 * TEXT, BYTES, INT and REAL), FFI_MISS, or FFI_FALLBACK when the C method
 * must handle the call (closed cache, error, MessagePack, too big).
 */
int tcl_ffi_get(tcl_cache *o, const char *kp, size_t kn, double kd, char *buf,
                size_t cap, size_t *len, int *type);

int tcl_ffi_get(tcl_cache *o, const char *kp, size_t kn, double kd, char *buf,
                size_t cap, size_t *len, int *type)
{
    tc_data key;
    int64_t i;

    if (!o || !o->c)
        return FFI_FALLBACK;
    if (kp) {
        key = (tc_data){kp, kn, tc_is_text(kp, kn) ? TC_TEXT : TC_BYTES};
    } else if (isnan(kd)) {
        return FFI_FALLBACK; /* the C method raises "NaN is not a key" */
    } else if (kd == floor(kd) && fabs(kd) <= TCL_EXACT_INT_MAX) {
        i = (int64_t)kd; /* LuaJIT's integers, as compat.h */
        key = tc_int(&i);
    } else {
        key = tc_real(&kd);
    }
    int rc = tc_get_buf(o->c, &key, buf, cap, len, type, NULL, 0);
    if (rc == TC_OK)
        return *type == TC_MSGPACK ? FFI_FALLBACK : FFI_HIT;
    if (rc == TC_NOTFOUND || (rc == TC_EBUSY && o->kind != TCL_CACHE))
        return FFI_MISS;
    return FFI_FALLBACK;
}

#if LUA_VERSION_NUM < 502 /* LuaJIT */

/* The wrapper, compiled once per Lua state. Arguments: the C get, the two
 * metatables it may serve, and the address of tcl_ffi_get. */
static const char wrapper[] =
    "local get_c, mt_cache, mt_fanout, fnptr = ...\n"
    "local ffi = require 'ffi'\n"
    "pcall(ffi.cdef, [[typedef int (*tcl_ffi_get_fn)(void *, const char *, "
    "size_t, double, char *, size_t, size_t *, int *);]])\n"
    "local fget = ffi.cast('tcl_ffi_get_fn', fnptr)\n"
    "local CAP = 4096\n"
    "local buf = ffi.new('char[?]', CAP)\n"
    "local lenp, typep = ffi.new('size_t[1]'), ffi.new('int[1]')\n"
    "local i64p, dblp = ffi.typeof('int64_t *'), ffi.typeof('double *')\n"
    "local getmetatable, type, tonumber = getmetatable, type, tonumber\n"
    "local str, cast = ffi.string, ffi.cast\n"
    "return function(self, key, default, opts)\n"
    "  if opts == nil then\n"
    "    local mt = getmetatable(self)\n"
    "    if mt == mt_cache or mt == mt_fanout then\n"
    "      local kt, rc = type(key), nil\n"
    "      if kt == 'string' then\n"
    "        rc = fget(self, key, #key, 0, buf, CAP, lenp, typep)\n"
    "      elseif kt == 'number' then\n"
    "        rc = fget(self, nil, 0, key, buf, CAP, lenp, typep)\n"
    "      end\n"
    "      if rc == 0 then\n"
    "        local t = typep[0]\n"
    "        if t == 2 or t == 1 then return str(buf, lenp[0]) end\n"
    "        if t == 3 then return tonumber(cast(i64p, buf)[0]) end\n"
    "        if t == 4 then return cast(dblp, buf)[0] end\n"
    "      elseif rc == 1 then\n"
    "        return default\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  return get_c(self, key, default, opts)\n"
    "end\n";

/* Replace `get` in the method tables of @mt_names with the wrapper. */
static int install(lua_State *L)
{
    if (luaL_loadbuffer(L, wrapper, sizeof wrapper - 1, "=tiercache.ffi"))
        return lua_error(L);
    luaL_getmetatable(L, TCL_MT_CACHE);
    lua_getfield(L, -1, "__index");
    lua_getfield(L, -1, "get"); /* the C method */
    lua_replace(L, -3);
    lua_pop(L, 1);
    luaL_getmetatable(L, TCL_MT_CACHE);
    luaL_getmetatable(L, TCL_MT_FANOUT);
    lua_pushlightuserdata(L, (void *)(uintptr_t)tcl_ffi_get);
    lua_call(L, 4, 1);
    for (int i = 0; i < 2; i++) {
        luaL_getmetatable(L, i ? TCL_MT_FANOUT : TCL_MT_CACHE);
        lua_getfield(L, -1, "__index");
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "get");
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return 0;
}
#endif

void tcl_ffi_install(lua_State *L, int module_idx)
{
    int on = 0;
#if LUA_VERSION_NUM < 502
    const char *off = getenv("TIERCACHE_NO_FFI");
    if (!off || !*off || strcmp(off, "0") == 0) {
        /* Any failure (no ffi in this LuaJIT, say) keeps the C path. */
        lua_pushcfunction(L, install);
        on = lua_pcall(L, 0, 0, 0) == 0;
        if (!on)
            lua_pop(L, 1);
    }
#endif
    lua_pushboolean(L, on);
    lua_setfield(L, module_idx, "_FFI");
}
