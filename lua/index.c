/*
 * index.c - tiercache.Index, python-diskcache's persistent ordered mapping
 * for Lua (spec/lua-api.md, "Deque and Index").
 *
 *   local ix = tiercache.Index(directory)   -- nil directory: temporary
 *   ix:set("a", 1)  ix:get("a")  ix:pop("a")  ix:popitem()  #ix ...
 *
 * An Index is a plain Cache with eviction_policy "none"; its order is
 * insertion order. As python's Index, every call retries on a busy
 * database (no Timeout errors) and items never expire. Where python raises
 * KeyError, pop without a default, popitem and peekitem raise; delete
 * returns whether the key existed, as Cache:delete.
 *
 * The userdata is a tcl_cache record whose kind is 0 and magic 0: Cache
 * methods refuse it, and memoize.c (which reads its object as a
 * tcl_cache) can memoize through the Index's own get and set.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "module.h"

#define MT_INDEX "tiercache.Index"
#define MT_ITER  "tiercache.IndexIterator"

static const tcl_coll KIND = {"Index", MT_INDEX, "an Index", "index"};

/* ---- arguments and errors ------------------------------------------------ */

static tcl_cache *self(lua_State *L, const char *m)
{
    return tcl_coll_self(L, &KIND, m);
}

static int argerror(lua_State *L, const char *m, const char *arg,
                    const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return luaL_error(L, "Index.%s: %s: %s", m, arg, msg);
}

static int raise(lua_State *L, const char *m, int rc)
{
    return tcl_coll_raise(L, &KIND, m, rc);
}

static const char *type_of(lua_State *L, int idx)
{
    return lua_isnone(L, idx) ? "nil" : luaL_typename(L, idx);
}

/* A key: a string or a number (not NaN). Checked here so that the error
 * names the Index; tcl_key then cannot fail. */
static void key_arg(lua_State *L, int idx, const char *m, tcl_datum *out)
{
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        argerror(L, m, "key", "expected a string or a number, got %s",
                 type_of(L, idx));
    if (t == LUA_TNUMBER && isnan((double)lua_tonumber(L, idx)))
        argerror(L, m, "key", "NaN is not a valid key");
    tcl_key(L, idx, NULL, m, "key", out);
}

static void value_arg(lua_State *L, int idx, const char *m, const char *arg,
                      tcl_datum *out)
{
    tcl_coll_value_arg(L, &KIND, idx, m, arg, out);
}

/* Push a value read from the index (cleared either way). */
static void push_value(lua_State *L, const char *m, tc_value *v,
                       const char *what)
{
    tcl_coll_push_value(L, &KIND, m, v, what);
}

/* Push a key and its value, clearing both (also when raising). */
static int push_pair(lua_State *L, const char *m, tc_value *key,
                     tc_value *value)
{
    char err[160];
    int pr = tcl_push_value(L, key, err, sizeof err);
    tc_value_clear(key);
    if (pr != 0) {
        tc_value_clear(value);
        return tcl_raise_code(L, "ECORRUPT", "Index.%s: stored key: %s", m,
                              err);
    }
    push_value(L, m, value, "value");
    return 2;
}

/* The same for an item read whole (its tag is not wanted). */
static int push_item(lua_State *L, const char *m, tc_item *it)
{
    tc_value_clear(&it->tag);
    return push_pair(L, m, &it->key, &it->value);
}

/* An option table: nil, or a table whose names are in @allowed. */
static int opts_arg(lua_State *L, int idx, const char *m,
                    const char *const *allowed)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNONE || t == LUA_TNIL)
        return 0;
    if (t != LUA_TTABLE)
        return argerror(L, m, "opts", "expected a table, got %s",
                        lua_typename(L, t));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *name =
            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        const char *const *a = allowed;
        while (name && *a && strcmp(*a, name) != 0)
            a++;
        if (!name || !*a)
            return argerror(L, m, "opts", "unknown option '%s'",
                            tcl_tostring(L, -1));
    }
    return 1;
}

/* A boolean option (nil: @dflt). */
static int opt_bool(lua_State *L, int idx, const char *m, const char *name,
                    int dflt)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return dflt;
    lua_getfield(L, idx, name);
    int t = lua_type(L, -1), v = dflt;
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        argerror(L, m, name, "expected a boolean, got %s", lua_typename(L, t));
    lua_pop(L, 1);
    return v;
}

/* retry is accepted (memoize passes it) and always on, as python's
 * Index passes retry=True to every Cache call. */
static const char *const O_RETRY[] = {"retry", NULL};

static void retry_opts(lua_State *L, int idx, const char *m)
{
    opts_arg(L, idx, m, O_RETRY);
    opt_bool(L, idx, m, "retry", 1);
}

/* ---- constructor ------------------------------------------------------------
 */

int tcl_new_index(lua_State *L)
{
    lua_settop(L, 1);
    tcl_coll_open(L, &KIND, tcl_coll_dir_arg(L, &KIND), sizeof(tcl_cache));
    return 1;
}

/* ---- mapping ----------------------------------------------------------------
 */

/* get(key, default, opts{retry}) -> the value, or default. */
static int ix_get(lua_State *L)
{
    lua_settop(L, 4);
    tcl_cache *o = self(L, "get");
    tcl_datum key;
    tc_item it = TC_ITEM_INIT;
    key_arg(L, 2, "get", &key);
    retry_opts(L, 4, "get");
    int rc = tc_get(o->c, &key.d, &it, TC_RETRY);
    if (rc == TC_NOTFOUND) {
        lua_pushvalue(L, 3);
        return 1;
    }
    if (rc != TC_OK)
        return raise(L, "get", rc);
    tc_value_clear(&it.tag);
    push_value(L, "get", &it.value, "value");
    return 1;
}

/* set(key, value): python's index[key] = value. For memoize, a third
 * argument (expire) may be given as nil or false only, and opts{retry}. */
static int ix_set(lua_State *L)
{
    lua_settop(L, 5);
    tcl_cache *o = self(L, "set");
    tcl_datum key, val;
    key_arg(L, 2, "set", &key);
    if (!lua_isnil(L, 4) && !(lua_isboolean(L, 4) && !lua_toboolean(L, 4)))
        return argerror(L, "set", "expire", "items of an Index never expire");
    retry_opts(L, 5, "set");
    value_arg(L, 3, "set", "value", &val);
    int rc = tc_set(o->c, &key.d, &val.d, TC_NO_EXPIRE, NULL, TC_RETRY);
    tcl_datum_free(&val);
    return rc == TC_OK ? 0 : raise(L, "set", rc);
}

/* delete(key) -> whether the key existed. */
static int ix_delete(lua_State *L)
{
    tcl_cache *o = self(L, "delete");
    tcl_datum key;
    key_arg(L, 2, "delete", &key);
    int rc = tc_delete(o->c, &key.d, TC_RETRY);
    if (rc != TC_OK && rc != TC_NOTFOUND)
        return raise(L, "delete", rc);
    lua_pushboolean(L, rc == TC_OK);
    return 1;
}

/* pop(key, default): the value removed; default when missing, or an error
 * when no default is given (python's KeyError). */
static int ix_pop(lua_State *L)
{
    int has_default = lua_gettop(L) >= 3;
    lua_settop(L, 3);
    tcl_cache *o = self(L, "pop");
    tcl_datum key;
    tc_item it = TC_ITEM_INIT;
    key_arg(L, 2, "pop", &key);
    int rc = tc_pop(o->c, &key.d, &it, TC_RETRY);
    if (rc == TC_NOTFOUND) {
        if (!has_default)
            return luaL_error(L, "Index.pop: key not found");
        lua_pushvalue(L, 3);
        return 1;
    }
    if (rc != TC_OK)
        return raise(L, "pop", rc);
    tc_value_clear(&it.tag);
    push_value(L, "pop", &it.value, "value");
    return 1;
}

/* setdefault(key, default) -> the stored value, storing default first
 * when the key is missing. */
static int ix_setdefault(lua_State *L)
{
    lua_settop(L, 3);
    tcl_cache *o = self(L, "setdefault");
    tcl_datum key, dflt;
    tc_item it = TC_ITEM_INIT;
    int rc;
    key_arg(L, 2, "setdefault", &key);
    if (lua_isnil(L, 3)) {
        /* python would store None; Lua cannot store nil: read only. */
        rc = tc_get(o->c, &key.d, &it, TC_RETRY);
        if (rc == TC_NOTFOUND)
            return argerror(L, "setdefault", "default",
                            "cannot store a nil value");
    } else {
        value_arg(L, 3, "setdefault", "default", &dflt);
        rc = tc_index_setdefault(o->c, &key.d, &dflt.d, &it.value);
        tcl_datum_free(&dflt);
    }
    if (rc != TC_OK)
        return raise(L, "setdefault", rc);
    tc_value_clear(&it.tag);
    push_value(L, "setdefault", &it.value, "value");
    return 1;
}

/* popitem(last) / peekitem(last): key, value of the newest (last = true,
 * the default) or oldest item; an error on an empty index. */
static int item_end(lua_State *L, int remove, const char *m)
{
    lua_settop(L, 2);
    tcl_cache *o = self(L, m);
    tc_item it = TC_ITEM_INIT;
    int last = lua_isnil(L, 2) ? 1 : lua_toboolean(L, 2);
    int rc = remove ? tc_index_popitem(o->c, last, &it)
                    : tc_peekitem(o->c, last, &it, TC_RETRY);
    if (rc == TC_NOTFOUND)
        return luaL_error(L, "Index.%s: dictionary is empty", m);
    if (rc != TC_OK)
        return raise(L, m, rc);
    return push_item(L, m, &it);
}

static int ix_popitem(lua_State *L)
{
    return item_end(L, 1, "popitem");
}

static int ix_peekitem(lua_State *L)
{
    return item_end(L, 0, "peekitem");
}

static int ix_clear(lua_State *L)
{
    tcl_cache *o = self(L, "clear");
    int rc = tc_clear(o->c, NULL, TC_RETRY);
    return rc == TC_OK ? 0 : raise(L, "clear", rc);
}

static int ix_len(lua_State *L)
{
    tcl_cache *o = self(L, "len");
    uint64_t n = 0;
    int rc = tc_length(o->c, &n);
    if (rc != TC_OK)
        return raise(L, "len", rc);
    tcl_pushint(L, (int64_t)n);
    return 1;
}

/* ---- queues
 * ------------------------------------------------------------------ */

/* side = "back" or "front" in @opts (nil: @dflt). */
static int side_opt(lua_State *L, int opts, const char *m, int dflt)
{
    int side = dflt;
    if (lua_type(L, opts) != LUA_TTABLE)
        return side;
    lua_getfield(L, opts, "side");
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (s && strcmp(s, "back") == 0)
        side = TC_BACK;
    else if (s && strcmp(s, "front") == 0)
        side = TC_FRONT;
    else if (!lua_isnil(L, -1))
        argerror(L, m, "side", "expected \"back\" or \"front\", got %s",
                 tcl_tostring(L, -1));
    lua_pop(L, 1);
    return side;
}

/* prefix in @opts: nil (integer keys) or a string. The string stays on
 * the stack (in the option table) while the caller uses it. */
static const char *prefix_opt(lua_State *L, int opts, const char *m)
{
    if (lua_type(L, opts) != LUA_TTABLE)
        return NULL;
    lua_getfield(L, opts, "prefix");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        argerror(L, m, "prefix", "expected a string, got %s",
                 luaL_typename(L, -1));
    return lua_tostring(L, -1);
}

static const char *const O_PUSH[] = {"prefix", "side", NULL};
static const char *const O_PULL[] = {"prefix", "default", "side", NULL};

/* push(value, opts{prefix, side = "back"}) -> the new key. */
static int ix_push(lua_State *L)
{
    lua_settop(L, 3);
    tcl_cache *o = self(L, "push");
    tcl_datum val;
    tc_value key = TC_VALUE_INIT;
    opts_arg(L, 3, "push", O_PUSH);
    int side = side_opt(L, 3, "push", TC_BACK);
    const char *prefix = prefix_opt(L, 3, "push");
    value_arg(L, 2, "push", "value", &val);
    int rc =
        tc_push(o->c, &val.d, prefix, side, TC_NO_EXPIRE, NULL, &key, TC_RETRY);
    tcl_datum_free(&val);
    if (rc != TC_OK)
        return raise(L, "push", rc);
    push_value(L, "push", &key, "key");
    return 1;
}

/* pull(opts{prefix, default, side = "front"}) -> key, value; nil, default
 * when the queue is empty. */
static int ix_pull(lua_State *L)
{
    lua_settop(L, 2);
    tcl_cache *o = self(L, "pull");
    tc_item it = TC_ITEM_INIT;
    opts_arg(L, 2, "pull", O_PULL);
    int side = side_opt(L, 2, "pull", TC_FRONT);
    const char *prefix = prefix_opt(L, 2, "pull");
    int rc = tc_pull(o->c, prefix, side, &it, TC_RETRY);
    if (rc == TC_NOTFOUND) {
        lua_pushnil(L);
        if (lua_istable(L, 2))
            lua_getfield(L, 2, "default");
        else
            lua_pushnil(L);
        return 2;
    }
    if (rc != TC_OK)
        return raise(L, "pull", rc);
    return push_item(L, "pull", &it);
}

/* ---- iteration
 * --------------------------------------------------------------- */

typedef struct ix_iter {
    tc_iter *it;
    int what; /* ITER_KEYS, ITER_VALUES or ITER_ITEMS */
} ix_iter;

enum { ITER_KEYS, ITER_VALUES, ITER_ITEMS };
static const char *const iter_names[] = {"keys", "values", "items"};

static int iter_end(lua_State *L, ix_iter *s, int rc)
{
    tc_iter_close(s->it);
    s->it = NULL;
    return rc == TC_NOTFOUND ? 0 : raise(L, iter_names[s->what], rc);
}

/* Keys in insertion order, as python's iter(index); values are read in
 * turn, and keys whose item vanished on the way are skipped (python's
 * views would raise KeyError). Upvalues: the state and the index. */
static int iter_step(lua_State *L)
{
    ix_iter *s = lua_touserdata(L, lua_upvalueindex(1));
    tcl_cache *o = lua_touserdata(L, lua_upvalueindex(2));
    const char *m = iter_names[s->what];
    tc_value key = TC_VALUE_INIT;
    tc_item it = TC_ITEM_INIT;

    if (!s->it)
        return 0;
    if (!o->c) {
        iter_end(L, s, TC_NOTFOUND);
        return luaL_error(L, "Index.%s: index is closed", m);
    }
    for (;;) {
        int rc = tc_iter_next(s->it, &key);
        if (rc == TC_EUNSUPPORTED) /* a pickled key: skipped, as keys() */
            continue;
        if (rc != TC_OK)
            return iter_end(L, s, rc);
        if (s->what == ITER_KEYS) {
            push_value(L, m, &key, "key");
            return 1;
        }
        tc_data k = {key.ptr, key.len, key.type};
        rc = tc_get(o->c, &k, &it, TC_RETRY);
        if (rc == TC_OK)
            break;
        tc_value_clear(&key);
        if (rc != TC_NOTFOUND)
            return iter_end(L, s, rc);
    }
    tc_value_clear(&it.tag);
    if (s->what == ITER_ITEMS)
        return push_pair(L, m, &key, &it.value);
    tc_value_clear(&key);
    push_value(L, m, &it.value, "value");
    return 1;
}

static int push_iter(lua_State *L, int what)
{
    tcl_cache *o = self(L, iter_names[what]);
    ix_iter *s = tcl_newuserdata(L, sizeof *s);
    s->it = NULL;
    s->what = what;
    luaL_setmetatable(L, MT_ITER);
    int rc = tc_iter_open(o->c, TC_ITER_INSERTION, &s->it);
    if (rc != TC_OK)
        return raise(L, iter_names[what], rc);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, iter_step, 2);
    return 1;
}

static int ix_keys(lua_State *L)
{
    return push_iter(L, ITER_KEYS);
}

static int ix_values(lua_State *L)
{
    return push_iter(L, ITER_VALUES);
}

static int ix_items(lua_State *L)
{
    return push_iter(L, ITER_ITEMS);
}

/* ---- memoize, lifecycle
 * -------------------------------------------------------- */

static const char *const O_MEMOIZE[] = {"typed", "ignore", NULL};

/* The decorator memoize.c makes, behind a check that names the Index. */
static int decorate(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TFUNCTION)
        return argerror(L, "memoize", "fn",
                        "the decorator expects a function, got %s",
                        type_of(L, 1));
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

/* memoize(name, opts{typed, ignore}): python's Index.memoize, results
 * never expire. The arguments are checked here, so memoize.c's own
 * checks (which name a Cache kind) never fire. */
static int ix_memoize(lua_State *L)
{
    lua_settop(L, 4); /* 4 stays nil: the expire memoize passes to set */
    tcl_cache *o = self(L, "memoize");
    if (!lua_isnil(L, 2) && lua_type(L, 2) != LUA_TSTRING)
        return argerror(L, "memoize", "name", "expected a string, got %s",
                        luaL_typename(L, 2));
    opts_arg(L, 3, "memoize", O_MEMOIZE);
    opt_bool(L, 3, "memoize", "typed", 0);
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "ignore");
        if (!lua_isnil(L, -1) && !lua_istable(L, -1))
            return argerror(L, "memoize", "ignore",
                            "expected a list of argument positions, got %s",
                            luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    tcl_memoize_push(L, o, 2, 4, 3);
    lua_pushcclosure(L, decorate, 1);
    return 1;
}

void tcl_index_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"get", ix_get},           {"set", ix_set},
        {"delete", ix_delete},     {"pop", ix_pop},
        {"popitem", ix_popitem},   {"setdefault", ix_setdefault},
        {"peekitem", ix_peekitem}, {"push", ix_push},
        {"pull", ix_pull},         {"clear", ix_clear},
        {"len", ix_len},           {"keys", ix_keys},
        {"values", ix_values},     {"items", ix_items},
        {"memoize", ix_memoize},   {NULL, NULL}};

    tcl_coll_register(L, &KIND, methods, ix_len, MT_ITER);
}
