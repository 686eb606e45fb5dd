/*
 * module.h - what the parts of the Lua module share.
 *
 * The module is one C library, `require "tiercache"`, built from the same
 * sources for Lua 5.4 and LuaJIT 2.1. Its parts:
 *   module.c   luaopen_tiercache, constructors, version/now, metatables
 *   args.c     argument and option checking, error objects
 *   value.c    Lua values <-> tiercache typed data, file handles
 *   cache.c    Cache and FanoutCache methods (python-diskcache semantics)
 *   django.c   DjangoCache (Django's cache API over a FanoutCache)
 *   memoize.c  memoize keys and the memoizing wrapper
 *   mpack.c    MessagePack for booleans and tables
 *   collection.c  what Deque and Index share
 *   deque.c    Deque (python-diskcache's persistent deque)
 *   index.c    Index (python-diskcache's persistent ordered mapping)
 *   recipes.c  Lock, RLock, BoundedSemaphore, Averager, throttle, barrier,
 *              memoize_stampede (with recipes.lua, compiled in)
 */
#ifndef TCL_MODULE_H
#define TCL_MODULE_H

#include <stdint.h>

#include "compat.h"
#include "mpack.h"
#include "tiercache.h"

/* The three kinds of cache object; each has its own metatable. */
enum tcl_kind { TCL_CACHE = 1, TCL_FANOUT = 2, TCL_DJANGO = 3 };

/* The userdata behind every cache object. */
/* First word of every cache object: lets a method check self without a
 * metatable lookup (pure Lua cannot forge a userdata's bytes). */
#define TCL_MAGIC UINT64_C(0x7463616368654c31) /* "tcacheL1" */

typedef struct tcl_cache {
    uint64_t magic; /* TCL_MAGIC */
    tc_cache *c;    /* NULL once closed */
    int kind;       /* enum tcl_kind */
    /* DjangoCache only: Django's TIMEOUT, KEY_PREFIX and VERSION. */
    int dj_never; /* TIMEOUT = false: items never expire */
    double dj_timeout;
    int64_t dj_version;
    char *dj_prefix;
    char *dj_head; /* "KEY_PREFIX:VERSION:", made once */
} tcl_cache;

/* Registry names of the metatables. */
#define TCL_MT_CACHE  "tiercache.Cache"
#define TCL_MT_FANOUT "tiercache.FanoutCache"
#define TCL_MT_DJANGO "tiercache.DjangoCache"
#define TCL_MT_ERROR  "tiercache.Error"
#define TCL_MT_ITER   "tiercache.Iterator"
/* Registry slot of io.open, captured at load (a script may replace io). */
#define TCL_IO_OPEN "tiercache.io_open"

/* ---- args.c ------------------------------------------------------------ */

/* "Cache", "FanoutCache" or "DjangoCache". */
const char *tcl_kind_name(int kind);

/*
 * tcl_self - the open cache object at index 1 for method @method; raises
 * "Cache.get: expected a cache object" or "Cache.get: cache is closed".
 * @kinds: bit mask (1 << kind) of the kinds that have this method.
 */
tcl_cache *tcl_self(lua_State *L, const char *method, unsigned kinds);
/* tcl_self_closed - tcl_self that accepts a closed object (close()). */
tcl_cache *tcl_self_closed(lua_State *L, const char *method, unsigned kinds);
#define TCL_K(k)     (1u << (k))
#define TCL_K_CORE   (TCL_K(TCL_CACHE) | TCL_K(TCL_FANOUT))
#define TCL_K_ALL    (TCL_K_CORE | TCL_K(TCL_DJANGO))
#define TCL_K_FANOUT (TCL_K(TCL_FANOUT) | TCL_K(TCL_DJANGO))

/* tcl_argerror - raise "<Kind>.<method>: <arg>: <message>". */
int tcl_argerror(lua_State *L, const tcl_cache *o, const char *method,
                 const char *arg, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * tcl_opts - check the option table at @idx (nil or none is allowed):
 * every key must be a string in the NULL-terminated @allowed list. Returns
 * 1 if there is a table, 0 if not. Raises on a non-table or unknown name.
 */
int tcl_opts(lua_State *L, int idx, const tcl_cache *o, const char *method,
             const char *const *allowed);
/* Option readers: the field's value, or @dflt when absent (nil). */
int tcl_opt_bool(lua_State *L, int idx, const tcl_cache *o, const char *method,
                 const char *name, int dflt);
/* Pushes the field (nil when absent or when there is no table). */
void tcl_opt_push(lua_State *L, int idx, const char *name);

/*
 * tcl_raise - raise the error of tiercache return code @rc as an error
 * object {code, message}: code "Timeout" for TC_EBUSY, else the return
 * code's name ("EIO", "ECORRUPT", ...). Never returns.
 */
int tcl_raise(lua_State *L, const tcl_cache *o, const char *method, int rc);
/* tcl_raise_code - raise an error object with this code and message. */
int tcl_raise_code(lua_State *L, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- value.c ----------------------------------------------------------- */

/* A tc_data built from a Lua value, with the storage it points into. */
typedef struct tcl_datum {
    tc_data d;
    int64_t i;
    double f;
    tcl_buf mp; /* MessagePack bytes for booleans and tables */
} tcl_datum;

/*
 * tcl_key - convert the key at @idx (string, integer or float; NaN is an
 * error) into @out. Raises naming @method and @arg on bad input.
 */
void tcl_key(lua_State *L, int idx, const tcl_cache *o, const char *method,
             const char *arg, tcl_datum *out);
/*
 * tcl_value - convert a value (string, number, boolean, table) into @out.
 * Tables and booleans become MessagePack in out->mp, which the caller
 * releases with tcl_datum_free (also on error paths before raising).
 * Returns 0, or -1 with a message in @err (nothing to free).
 */
int tcl_value(lua_State *L, int idx, tcl_datum *out, char *err, size_t errlen);
/* tcl_value_check - tcl_value that raises (naming method/arg) on error. */
void tcl_value_check(lua_State *L, int idx, const tcl_cache *o,
                     const char *method, const char *arg, tcl_datum *out);
/* tcl_tag - like tcl_key, for a tag; returns 0 when the tag is nil. */
int tcl_tag(lua_State *L, int idx, const tcl_cache *o, const char *method,
            tcl_datum *out);
void tcl_datum_free(tcl_datum *d);

/*
 * tcl_push_value - push a value read from the cache. Returns 0, or -1 with
 * a message in @err (a corrupt MessagePack value); nothing pushed then.
 */
int tcl_push_value(lua_State *L, const tc_value *v, char *err, size_t errlen);
/* tcl_push_expire - push an expire_time: a float, or nil for never. */
void tcl_push_expire(lua_State *L, double expire_time);

/* tcl_expire_arg - seconds from now at @idx: nil/false/none = never. */
double tcl_expire_arg(lua_State *L, int idx, const tcl_cache *o,
                      const char *method, const char *arg);

/* tcl_file_fd - the descriptor of the Lua file handle at @idx, positioned
 * where the handle's reader is; -1 if @idx is not a file handle. */
int tcl_file_fd(lua_State *L, int idx);
/* tcl_push_fd_file - push a Lua file handle for reading on @fd (which is
 * closed; the handle has its own descriptor). Returns 0 or -1. */
int tcl_push_fd_file(lua_State *L, int fd);

/* ---- cache.c / django.c / memoize.c ------------------------------------ */

/* Method tables (name -> C function), registered by module.c. */
extern const luaL_Reg tcl_cache_methods[];
extern const luaL_Reg tcl_fanout_methods[];
extern const luaL_Reg tcl_django_methods[];

/* cache.c: the methods (self at 1, arguments in diskcache's order), also
 * called by django.c after it rewrites its arguments. */
int tcl_m_set(lua_State *L);
int tcl_m_add(lua_State *L);
int tcl_m_get(lua_State *L);
int tcl_m_read(lua_State *L);
int tcl_m_pop(lua_State *L);
int tcl_m_delete(lua_State *L);
int tcl_m_touch(lua_State *L);
int tcl_m_contains(lua_State *L);
int tcl_m_incr(lua_State *L);
int tcl_m_decr(lua_State *L);
int tcl_m_push(lua_State *L);
int tcl_m_pull(lua_State *L);
int tcl_m_peek(lua_State *L);
int tcl_m_peekitem(lua_State *L);
int tcl_m_expire(lua_State *L);
int tcl_m_evict(lua_State *L);
int tcl_m_clear(lua_State *L);
int tcl_m_cull(lua_State *L);
int tcl_m_check(lua_State *L);
int tcl_m_stats(lua_State *L);
int tcl_m_volume(lua_State *L);
int tcl_m_len(lua_State *L);
int tcl_m_reset(lua_State *L);
int tcl_m_create_tag_index(lua_State *L);
int tcl_m_drop_tag_index(lua_State *L);
int tcl_m_keys(lua_State *L);
int tcl_m_iterkeys(lua_State *L);
int tcl_m_transact(lua_State *L);
int tcl_m_memoize(lua_State *L);
int tcl_m_close(lua_State *L);
int tcl_m_subcache(lua_State *L);
int tcl_m_subdeque(lua_State *L);
int tcl_m_subindex(lua_State *L);
/* cache.c, shared with django.c's incr/decr: the delta at @idx (nil: 1),
 * negated when @sign < 0; and tc_incr with the new value pushed (nil for
 * a timeout a FanoutCache or DjangoCache swallows). tcl_incr_push returns
 * 1, or 0 when the key is missing without a default (the caller raises
 * its own message); it raises on other errors. */
void tcl_incr_delta(lua_State *L, int idx, const tcl_cache *o, const char *m,
                    int sign, tcl_datum *delta);
int tcl_incr_push(lua_State *L, const tcl_cache *o, const char *m,
                  const tc_data *key, const tc_data *delta,
                  const tc_data *deflt, unsigned flags);

/* cache.c: __gc of iterator states. */
int tcl_iter_gc(lua_State *L);

/* ffi.c: under LuaJIT (unless TIERCACHE_NO_FFI is set) put the FFI
 * fast path in front of Cache and FanoutCache get; sets the module
 * table's _FFI (at @module_idx) to whether it did. */
void tcl_ffi_install(lua_State *L, int module_idx);

/* django.c: the DjangoCache constructor. */
int tcl_new_django(lua_State *L);

/*
 * tcl_open - open @dir as @kind with the settings table at @settings_idx
 * (0: none) and push the new object. @timeout: seconds, or -1 for the
 * kind's default. @django_opts: accept Django's ignored
 * OPTIONS names (MAX_ENTRIES, CULL_FREQUENCY). Raises on error.
 */
tcl_cache *tcl_open(lua_State *L, int kind, const char *dir, int settings_idx,
                    int shards, double timeout, int django_opts,
                    const char *who);

/*
 * tcl_memoize_push - push the memoizing decorator for the cache object at
 * index 1 (memoize.c). The decorator, called with a function, returns the
 * memoized function, which reads and writes through the object's own
 * get and set methods: obj:get(key, <miss>, getopts) and
 * obj:set(key, result, <expire>, setopts).
 * @name_idx: the name (string, or nil: "<source>:<line>" of the function).
 * @expire_idx: the expire/timeout argument, passed to set as given.
 * @opts_idx: the option table (typed, tag, ignore, and for DjangoCache
 *            version), already checked by the caller.
 */
int tcl_memoize_push(lua_State *L, const tcl_cache *o, int name_idx,
                     int expire_idx, int opts_idx);

/*
 * tcl_memoize_key - push the memoize key for @name and the @n arguments
 * starting at stack index @first: "<name>:<count>:<hex>", where count is
 * the number of arguments kept and hex the lowercase hex of the canonical
 * MessagePack encoding (map keys sorted) of the kept arguments, each
 * replaced by {type, value} when @typed. @ignore_idx: a table of 1-based
 * positions to leave out (0: none). Raises on arguments that cannot be
 * encoded (functions, cycles).
 */
void tcl_memoize_key(lua_State *L, const char *who, const char *name, int first,
                     int n, int typed, int ignore_idx);

/* ---- deque.c / index.c / recipes.c ------------------------------------ */

/* Each registers its metatables in the registry (called once at load). */
void tcl_deque_register(lua_State *L);
void tcl_index_register(lua_State *L);
/* recipes.c: put Lock, RLock, BoundedSemaphore, Averager, throttle,
 * barrier and memoize_stampede into the module table at @module_idx. */
void tcl_recipes_register(lua_State *L, int module_idx);

/* collection.c: what Deque and Index share. Their objects start with a
 * tcl_cache record (magic and kind 0: Cache methods refuse it). */
typedef struct tcl_coll {
    const char *name;   /* "Deque": the prefix of every error */
    const char *mt;     /* registry name of the metatable */
    const char *a_name; /* "a Deque", in "expected a Deque as self" */
    const char *noun;   /* "deque", in "deque is closed" */
} tcl_coll;

/* The open collection at index 1 for method @m (raises otherwise). */
tcl_cache *tcl_coll_self(lua_State *L, const tcl_coll *k, const char *m);
/* Raise "<Name>.<m>: <tc_errmsg>" with the code of @rc (Timeout: EBUSY). */
int tcl_coll_raise(lua_State *L, const tcl_coll *k, const char *m, int rc);
/* tcl_value, raising "<Name>.<m>: <arg>: <why>" on a bad value. */
void tcl_coll_value_arg(lua_State *L, const tcl_coll *k, int idx, const char *m,
                        const char *arg, tcl_datum *out);
/* Push a stored @what ("value", "key"), clearing @v either way; raises
 * ECORRUPT on a corrupt one. Returns 1. */
int tcl_coll_push_value(lua_State *L, const tcl_coll *k, const char *m,
                        tc_value *v, const char *what);
/* The constructors' common part: the directory argument at index 1
 * (NULL for nil: a temporary one); then a zeroed object of @size bytes
 * pushed, with python's Cache(dir, eviction_policy='none') opened in it. */
const char *tcl_coll_dir_arg(lua_State *L, const tcl_coll *k);
tcl_cache *tcl_coll_open(lua_State *L, const tcl_coll *k, const char *dir,
                         size_t size);
/* Register the metatable: @methods plus close, cache and directory, and
 * __len (@len), __gc, __close, __tostring; and the iterator metatable
 * @iter_mt, whose userdata start with a tc_iter *. */
void tcl_coll_register(lua_State *L, const tcl_coll *k, const luaL_Reg *methods,
                       lua_CFunction len, const char *iter_mt);

/* tiercache.Deque(directory, maxlen) and tiercache.Index(directory): a nil
 * directory makes a new temporary one. fc:deque(name, maxlen) and
 * fc:index(name) call them with "<fanout dir>/deque/<name>" and
 * "<fanout dir>/index/<name>", as python-diskcache does. */
int tcl_new_deque(lua_State *L);
int tcl_new_index(lua_State *L);

#endif /* TCL_MODULE_H */
