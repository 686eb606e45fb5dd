/*
 * deque.c - tiercache.Deque, python-diskcache's persistent deque for Lua
 * (spec/lua-api.md, "Deque and Index"), over the core's tc_deque_* calls.
 *
 *   local dq = tiercache.Deque(directory, maxlen)   -- nil directory: temp
 *   dq:append(v)  dq:appendleft(v)  dq:pop()  dq:popleft()  dq:peek() ...
 *
 * Lua conventions where python has its own: indexes are 1-based (negative
 * ones count from the end, -1 is the last item); pop/popleft/peek/peekleft
 * on an empty deque return nil. remove of a missing value raises, as
 * python's ValueError. count and remove compare stored encodings: strings
 * by type (text or bytes) and bytes, numbers by value (1 equals 1.0), and
 * booleans and tables by their MessagePack encoding, so two tables with
 * the same contents built in a different order may compare unequal.
 *
 * maxlen belongs to the object, as in python (it is not stored): a push
 * that makes the deque longer drops items from the other end, and
 * dq:maxlen(n) trims from the left.
 */
#include <stdint.h>

#include "module.h"

#define MT_DEQUE "tiercache.Deque"
#define MT_ITER  "tiercache.DequeIterator"

typedef struct tcl_deque {
    tcl_cache base; /* base.c: NULL once closed (collection.c) */
    int64_t maxlen; /* < 0: unbounded */
} tcl_deque;

static const tcl_coll KIND = {"Deque", MT_DEQUE, "a Deque", "deque"};

/* ---- arguments and errors ------------------------------------------------ */

static tcl_deque *self(lua_State *L, const char *m)
{
    return (tcl_deque *)tcl_coll_self(L, &KIND, m);
}

static int argerror(lua_State *L, const char *m, const char *arg,
                    const char *what)
{
    return luaL_error(L, "Deque.%s: %s: %s", m, arg, what);
}

/* Raise the error of a failed tc_deque_* call (Timeout for a busy one). */
static int raise(lua_State *L, const char *m, int rc)
{
    return tcl_coll_raise(L, &KIND, m, rc);
}

/* "string", "float 1.5" (a number that is not an integer), ... */
static const char *describe(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER)
        return lua_pushfstring(L, "number %s", tcl_tostring(L, idx));
    return lua_isnone(L, idx) ? "nil" : luaL_typename(L, idx);
}

static int64_t integer_arg(lua_State *L, int idx, const char *m,
                           const char *arg)
{
    int64_t i = 0;
    if (lua_type(L, idx) != LUA_TNUMBER || !tcl_tointeger(L, idx, &i))
        argerror(L, m, arg,
                 lua_pushfstring(L, "expected an integer, got %s",
                                 describe(L, idx)));
    return i;
}

/* A 1-based index (negative from the end) as the core's 0-based one. */
static int64_t index_arg(lua_State *L, int idx, const char *m)
{
    int64_t i = integer_arg(L, idx, m, "index");
    if (i == 0)
        luaL_error(L, "Deque.%s: index 0 out of range", m);
    return i > 0 ? i - 1 : i;
}

/* The out-of-range error names the index as the caller gave it. */
static int index_error(lua_State *L, const char *m, int idx, int rc)
{
    if (rc == TC_NOTFOUND)
        return luaL_error(L, "Deque.%s: index %s out of range", m,
                          tcl_tostring(L, idx));
    return raise(L, m, rc);
}

static void value_arg(lua_State *L, int idx, const char *m, const char *arg,
                      tcl_datum *out)
{
    tcl_coll_value_arg(L, &KIND, idx, m, arg, out);
}

/* Push @v (cleared either way); raises on a corrupt stored value. */
static int push_value(lua_State *L, const char *m, tc_value *v)
{
    return tcl_coll_push_value(L, &KIND, m, v, "value");
}

/* maxlen as given to the constructor or the setter: nil or false for
 * unbounded, else an integer >= 0. */
static int64_t maxlen_arg(lua_State *L, int idx, const char *who)
{
    if (lua_isnoneornil(L, idx) ||
        (lua_isboolean(L, idx) && !lua_toboolean(L, idx)))
        return -1;
    int64_t n = 0;
    if (lua_type(L, idx) != LUA_TNUMBER || !tcl_tointeger(L, idx, &n) || n < 0)
        luaL_error(L, "%s: maxlen: expected an integer >= 0 or nil, got %s",
                   who, describe(L, idx));
    return n;
}

/* ---- constructor ----------------------------------------------------------
 */

int tcl_new_deque(lua_State *L)
{
    lua_settop(L, 2);
    const char *dir = tcl_coll_dir_arg(L, &KIND);
    int64_t maxlen = maxlen_arg(L, 2, "Deque");
    tcl_deque *d = (tcl_deque *)tcl_coll_open(L, &KIND, dir, sizeof *d);
    d->maxlen = maxlen;
    return 1;
}

/* ---- ends ------------------------------------------------------------------
 */

static int push_side(lua_State *L, int side, const char *m)
{
    tcl_deque *d = self(L, m);
    tcl_datum v;
    value_arg(L, 2, m, "value", &v);
    int rc = tc_deque_push(d->base.c, &v.d, side, d->maxlen);
    tcl_datum_free(&v);
    return rc == TC_OK ? 0 : raise(L, m, rc);
}

static int dq_append(lua_State *L)
{
    return push_side(L, TC_BACK, "append");
}

static int dq_appendleft(lua_State *L)
{
    return push_side(L, TC_FRONT, "appendleft");
}

/* pop/peek: the value, or nil when the deque is empty. */
static int take(lua_State *L, int side, int remove, const char *m)
{
    tcl_deque *d = self(L, m);
    tc_value v = TC_VALUE_INIT;
    int rc = remove ? tc_deque_pop(d->base.c, side, &v)
                    : tc_deque_peek(d->base.c, side, &v);
    if (rc == TC_NOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != TC_OK)
        return raise(L, m, rc);
    return push_value(L, m, &v);
}

static int dq_pop(lua_State *L)
{
    return take(L, TC_BACK, 1, "pop");
}

static int dq_popleft(lua_State *L)
{
    return take(L, TC_FRONT, 1, "popleft");
}

static int dq_peek(lua_State *L)
{
    return take(L, TC_BACK, 0, "peek");
}

static int dq_peekleft(lua_State *L)
{
    return take(L, TC_FRONT, 0, "peekleft");
}

/* extend(values) / extendleft(values): the array part of a table, pushed
 * in one transaction (the whole batch or nothing). */
static int extend_side(lua_State *L, int side, const char *m)
{
    tcl_deque *d = self(L, m);
    if (!lua_istable(L, 2))
        return argerror(
            L, m, "values",
            lua_pushfstring(L, "expected a table, got %s", describe(L, 2)));
    size_t n = tcl_rawlen(L, 2);
    if (n > SIZE_MAX / sizeof(tcl_datum))
        return argerror(L, m, "values", "too many values");
    /* Both arrays are userdata: the collector frees them whatever raises.
     * The datums point into strings the table keeps alive. */
    tcl_datum *dv = tcl_newuserdata(L, n ? n * sizeof *dv : 1);
    tc_data *vals = tcl_newuserdata(L, n ? n * sizeof *vals : 1);
    char err[160];
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)(i + 1));
        int bad = tcl_value(L, -1, &dv[i], err, sizeof err);
        lua_pop(L, 1);
        if (bad) {
            for (size_t j = 0; j < i; j++)
                tcl_datum_free(&dv[j]);
            return luaL_error(L, "Deque.%s: values[%d]: %s", m, (int)(i + 1),
                              err);
        }
        vals[i] = dv[i].d;
    }
    int rc = tc_deque_extend(d->base.c, vals, n, side, d->maxlen);
    for (size_t i = 0; i < n; i++)
        tcl_datum_free(&dv[i]);
    return rc == TC_OK ? 0 : raise(L, m, rc);
}

static int dq_extend(lua_State *L)
{
    return extend_side(L, TC_BACK, "extend");
}

static int dq_extendleft(lua_State *L)
{
    return extend_side(L, TC_FRONT, "extendleft");
}

/* ---- whole deque -----------------------------------------------------------
 */

static int dq_clear(lua_State *L)
{
    tcl_deque *d = self(L, "clear");
    int rc = tc_deque_clear(d->base.c);
    return rc == TC_OK ? 0 : raise(L, "clear", rc);
}

static int dq_count(lua_State *L)
{
    tcl_deque *d = self(L, "count");
    tcl_datum v;
    uint64_t n = 0;
    value_arg(L, 2, "count", "value", &v);
    int rc = tc_deque_count(d->base.c, &v.d, &n);
    tcl_datum_free(&v);
    if (rc != TC_OK)
        return raise(L, "count", rc);
    tcl_pushint(L, (int64_t)n);
    return 1;
}

static int dq_remove(lua_State *L)
{
    tcl_deque *d = self(L, "remove");
    tcl_datum v;
    value_arg(L, 2, "remove", "value", &v);
    int rc = tc_deque_remove(d->base.c, &v.d);
    tcl_datum_free(&v);
    if (rc == TC_NOTFOUND)
        return luaL_error(L, "Deque.remove: value not in deque");
    return rc == TC_OK ? 0 : raise(L, "remove", rc);
}

static int dq_reverse(lua_State *L)
{
    tcl_deque *d = self(L, "reverse");
    int rc = tc_deque_reverse(d->base.c);
    return rc == TC_OK ? 0 : raise(L, "reverse", rc);
}

static int dq_rotate(lua_State *L)
{
    tcl_deque *d = self(L, "rotate");
    int64_t steps =
        lua_isnoneornil(L, 2) ? 1 : integer_arg(L, 2, "rotate", "steps");
    int rc = tc_deque_rotate(d->base.c, steps);
    return rc == TC_OK ? 0 : raise(L, "rotate", rc);
}

static int dq_len(lua_State *L)
{
    tcl_deque *d = self(L, "len");
    uint64_t n = 0;
    int rc = tc_deque_len(d->base.c, &n);
    if (rc != TC_OK)
        return raise(L, "len", rc);
    tcl_pushint(L, (int64_t)n);
    return 1;
}

/* maxlen() -> limit or nil; maxlen(n) sets it and trims from the left
 * (nil or false: unbounded). */
static int dq_maxlen(lua_State *L)
{
    tcl_deque *d = self(L, "maxlen");
    if (lua_gettop(L) < 2) {
        if (d->maxlen < 0)
            lua_pushnil(L);
        else
            tcl_pushint(L, d->maxlen);
        return 1;
    }
    int64_t n = maxlen_arg(L, 2, "Deque.maxlen");
    int rc = tc_deque_trim(d->base.c, n, TC_FRONT);
    if (rc != TC_OK)
        return raise(L, "maxlen", rc);
    d->maxlen = n;
    return 0;
}

/* ---- indexed access -------------------------------------------------------
 */

static int dq_get(lua_State *L)
{
    tcl_deque *d = self(L, "get");
    tc_value v = TC_VALUE_INIT;
    int rc = tc_deque_get(d->base.c, index_arg(L, 2, "get"), &v);
    if (rc != TC_OK)
        return index_error(L, "get", 2, rc);
    return push_value(L, "get", &v);
}

static int dq_set(lua_State *L)
{
    tcl_deque *d = self(L, "set");
    int64_t i = index_arg(L, 2, "set");
    tcl_datum v;
    value_arg(L, 3, "set", "value", &v);
    int rc = tc_deque_set(d->base.c, i, &v.d);
    tcl_datum_free(&v);
    return rc == TC_OK ? 0 : index_error(L, "set", 2, rc);
}

static int dq_delete(lua_State *L)
{
    tcl_deque *d = self(L, "delete");
    int rc = tc_deque_delete(d->base.c, index_arg(L, 2, "delete"));
    return rc == TC_OK ? 0 : index_error(L, "delete", 2, rc);
}

/* ---- iteration --------------------------------------------------------------
 */

/* The iterator state: a userdata, so an abandoned loop is closed by the
 * collector. */
typedef struct dq_iter {
    tc_iter *it;
} dq_iter;

static int iter_fail(lua_State *L, dq_iter *s, int rc)
{
    tc_iter_close(s->it);
    s->it = NULL;
    return raise(L, "values", rc);
}

/* As python's __iter__: keys in key order, each read in turn; items that
 * vanish on the way (popped by another process) are skipped. Upvalues:
 * the state and the deque (kept alive, checked open). */
static int iter_step(lua_State *L)
{
    dq_iter *s = lua_touserdata(L, lua_upvalueindex(1));
    tcl_deque *d = lua_touserdata(L, lua_upvalueindex(2));
    tc_value key = TC_VALUE_INIT;
    tc_item it = TC_ITEM_INIT;

    if (!s->it)
        return 0;
    if (!d->base.c) {
        tc_iter_close(s->it);
        s->it = NULL;
        return luaL_error(L, "Deque.values: deque is closed");
    }
    for (;;) {
        int rc = tc_iter_next(s->it, &key);
        if (rc == TC_EUNSUPPORTED) /* a pickled key: not a deque item */
            continue;
        if (rc == TC_NOTFOUND) {
            tc_iter_close(s->it);
            s->it = NULL;
            return 0;
        }
        if (rc != TC_OK)
            return iter_fail(L, s, rc);
        tc_data k = {key.ptr, key.len, key.type};
        rc = tc_get(d->base.c, &k, &it, TC_RETRY);
        tc_value_clear(&key);
        if (rc == TC_OK)
            break;
        if (rc != TC_NOTFOUND)
            return iter_fail(L, s, rc);
    }
    /* push_value clears the value, also when it raises. */
    tc_value_clear(&it.key);
    tc_value_clear(&it.tag);
    return push_value(L, "values", &it.value);
}

static int dq_values(lua_State *L)
{
    tcl_deque *d = self(L, "values");
    dq_iter *s = tcl_newuserdata(L, sizeof *s);
    s->it = NULL;
    luaL_setmetatable(L, MT_ITER);
    int rc = tc_iter_open(d->base.c, TC_ITER_KEYS, &s->it);
    if (rc != TC_OK)
        return raise(L, "values", rc);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, iter_step, 2);
    return 1;
}

/* ---- lifecycle -------------------------------------------------------------
 */

void tcl_deque_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"append", dq_append}, {"appendleft", dq_appendleft},
        {"pop", dq_pop},       {"popleft", dq_popleft},
        {"peek", dq_peek},     {"peekleft", dq_peekleft},
        {"extend", dq_extend}, {"extendleft", dq_extendleft},
        {"clear", dq_clear},   {"count", dq_count},
        {"remove", dq_remove}, {"reverse", dq_reverse},
        {"rotate", dq_rotate}, {"get", dq_get},
        {"set", dq_set},       {"delete", dq_delete},
        {"values", dq_values}, {"maxlen", dq_maxlen},
        {"len", dq_len},       {NULL, NULL}};

    tcl_coll_register(L, &KIND, methods, dq_len, MT_ITER);
}
