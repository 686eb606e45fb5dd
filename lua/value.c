/*
 * value.c - Lua values <-> tiercache typed data (the spec's value table).
 *
 *   string, strict UTF-8  -> TC_TEXT   (python str)
 *   other string          -> TC_BYTES  (python bytes)
 *   integer               -> TC_INT    (compat.h decides what an integer is)
 *   float                 -> TC_REAL   (a NaN value goes to MessagePack:
 *                                       SQLite turns a NaN REAL into NULL)
 *   boolean, table        -> TC_MSGPACK (tiercache's own value mode)
 * Keys and tags are strings and numbers only; a NaN key is an error.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "module.h"

/* Strings and numbers, shared by keys and tags. Returns 0, or -1 when the
 * value is neither (the caller names the problem). */
static int scalar(lua_State *L, int idx, tcl_datum *out)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        out->d.ptr = s;
        out->d.len = n;
        out->d.type = tc_is_text(s, n) ? TC_TEXT : TC_BYTES;
        return 0;
    }
    case LUA_TNUMBER:
        if (tcl_tointeger(L, idx, &out->i)) {
            out->d.ptr = &out->i;
            out->d.len = 8;
            out->d.type = TC_INT;
        } else {
            out->f = (double)lua_tonumber(L, idx);
            out->d.ptr = &out->f;
            out->d.len = 8;
            out->d.type = TC_REAL;
        }
        return 0;
    }
    return -1;
}

void tcl_key(lua_State *L, int idx, const tcl_cache *o, const char *method,
             const char *arg, tcl_datum *out)
{
    out->mp.ptr = NULL;
    if (scalar(L, idx, out) != 0)
        tcl_argerror(L, o, method, arg, "expected a string or a number, got %s",
                     /* a missing argument reads as nil, as in Lua */
                     lua_isnone(L, idx) ? "nil" : luaL_typename(L, idx));
    if (out->d.type == TC_REAL && isnan(out->f))
        tcl_argerror(L, o, method, arg, "NaN is not a valid key");
}

int tcl_tag(lua_State *L, int idx, const tcl_cache *o, const char *method,
            tcl_datum *out)
{
    out->mp.ptr = NULL;
    if (lua_isnoneornil(L, idx))
        return 0;
    if (scalar(L, idx, out) != 0)
        tcl_argerror(L, o, method, "tag",
                     "expected a string or a number, got %s",
                     luaL_typename(L, idx));
    return 1;
}

int tcl_value(lua_State *L, int idx, tcl_datum *out, char *err, size_t errlen)
{
    int t = lua_type(L, idx);

    out->mp = (tcl_buf){NULL, 0, 0};
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        scalar(L, idx, out);
        if (!(out->d.type == TC_REAL && isnan(out->f)))
            return 0;
    } else if (t != LUA_TBOOLEAN && t != LUA_TTABLE) {
        snprintf(err, errlen, "cannot store a %s value", lua_typename(L, t));
        return -1;
    }
    if (tcl_mpack_encode(L, idx, &out->mp, 0, 0, err, errlen) != 0) {
        tcl_datum_free(out);
        return -1;
    }
    out->d.ptr = out->mp.ptr;
    out->d.len = out->mp.len;
    out->d.type = TC_MSGPACK;
    return 0;
}

void tcl_value_check(lua_State *L, int idx, const tcl_cache *o,
                     const char *method, const char *arg, tcl_datum *out)
{
    char err[160];

    if (tcl_value(L, idx, out, err, sizeof err) != 0)
        tcl_argerror(L, o, method, arg, "%s", err);
}

void tcl_datum_free(tcl_datum *d)
{
    free(d->mp.ptr);
    d->mp = (tcl_buf){NULL, 0, 0};
}

int tcl_push_value(lua_State *L, const tc_value *v, char *err, size_t errlen)
{
    switch (v->type) {
    case TC_TEXT:
    case TC_BYTES:
        lua_pushlstring(L, v->ptr ? v->ptr : "", v->len);
        return 0;
    case TC_INT:
        tcl_pushint(L, v->i);
        return 0;
    case TC_REAL:
        lua_pushnumber(L, (lua_Number)v->d);
        return 0;
    case TC_MSGPACK:
        if (tcl_mpack_decode(L, v->ptr, v->len, err, errlen) != 0)
            return -1;
        return 0;
    }
    snprintf(err, errlen, "stored value has unknown type %d", v->type);
    return -1;
}

void tcl_push_expire(lua_State *L, double expire_time)
{
    if (isinf(expire_time) || isnan(expire_time))
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)expire_time);
}

double tcl_expire_arg(lua_State *L, int idx, const tcl_cache *o,
                      const char *method, const char *arg)
{
    int t = lua_type(L, idx);

    if (t == LUA_TNONE || t == LUA_TNIL ||
        (t == LUA_TBOOLEAN && !lua_toboolean(L, idx)))
        return TC_NO_EXPIRE;
    if (t != LUA_TNUMBER)
        tcl_argerror(L, o, method, arg, "expected a number or false, got %s",
                     lua_typename(L, t));
    double s = (double)lua_tonumber(L, idx);
    if (isnan(s))
        tcl_argerror(L, o, method, arg, "NaN is not a number of seconds");
    return s;
}

/*
 * Lua file handles. Lua 5.4 (luaL_Stream) and LuaJIT (IOFileUD) both keep
 * the FILE * first in a userdata whose metatable is registered as "FILE*",
 * so one check serves both.
 */
int tcl_file_fd(lua_State *L, int idx)
{
    FILE **fp = luaL_testudata(L, idx, "FILE*");

    if (!fp || !*fp)
        return -1;
#if LUA_VERSION_NUM >= 502
    /* A closed 5.4 handle keeps its (freed) FILE *; closef tells. */
    if (((luaL_Stream *)fp)->closef == NULL)
        return -1;
#endif
    int fd = fileno(*fp);
    if (fd < 0)
        return -1;
    /* The stream may have read ahead: put the descriptor where the
     * stream's reader is, so the value starts where Lua would read. */
    off_t pos = ftello(*fp);
    if (pos >= 0)
        lseek(fd, pos, SEEK_SET);
    return fd;
}

int tcl_push_fd_file(lua_State *L, int fd)
{
    char path[64];

    /* io.open on /proc/self/fd/N gives each interpreter its own kind of
     * handle with its own descriptor; ours is closed either way. */
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    lua_getfield(L, LUA_REGISTRYINDEX, TCL_IO_OPEN);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        close(fd);
        return -1;
    }
    lua_pushstring(L, path);
    lua_pushliteral(L, "rb");
    int rc = lua_pcall(L, 2, 1, 0);
    close(fd);
    if (rc != 0 || lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}
