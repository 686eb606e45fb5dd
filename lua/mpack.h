/*
 * mpack.h - MessagePack codec between Lua values and bytes.
 *
 * Booleans and tables are stored as MessagePack (tiercache's value mode
 * TC_MSGPACK). The decoder reads bytes that came from disk, so it treats
 * them as untrusted: every length is checked against the bytes left before
 * anything is allocated, nesting is bounded, and garbage gives an error,
 * never a crash. Nothing decoded is ever executed.
 */
#ifndef TCL_MPACK_H
#define TCL_MPACK_H

#include <stddef.h>

#include <lua.h>

/* Deepest nesting of tables accepted by the encoder and the decoder. */
#define TCL_MPACK_MAX_DEPTH 128
/* Largest encoding the encoder produces (shared subtables are copied). */
#define TCL_MPACK_MAX_BYTES ((size_t)1 << 30)

/* A growable byte buffer owned by the caller (free(buf.ptr) when done). */
typedef struct tcl_buf {
    char *ptr;
    size_t len, cap;
} tcl_buf;

/*
 * tcl_mpack_encode - append the MessagePack encoding of the Lua value at
 * @idx to @out.
 * @canonical: if non-zero, map keys are written sorted (by their encoded
 *             bytes), so equal tables always give equal bytes (memoize keys).
 * @allow_nil: if non-zero, nil encodes as MessagePack nil (argument lists);
 *             otherwise nil is an error.
 * @err, @errlen: on failure, receives a message such as "cyclic table",
 *             "cannot store a function", "NaN table key",
 *             "table nested deeper than 128".
 * Returns 0 on success, -1 on failure (@out may hold partial bytes; the
 * caller frees it). Does not raise Lua errors except on out-of-memory of
 * the Lua state itself. The Lua stack is left as it was.
 */
int tcl_mpack_encode(lua_State *L, int idx, tcl_buf *out, int canonical,
                     int allow_nil, char *err, size_t errlen);

/*
 * tcl_mpack_decode - decode exactly one MessagePack value from @n bytes at
 * @p and push it. Returns 0 on success (one value pushed) or -1 with a
 * message in @err (nothing pushed): truncated input, trailing bytes,
 * nesting too deep, an unsupported type (ext), a key Lua cannot hold
 * (nil or NaN), or an array or map as a key (the encoder never writes one,
 * so whatever decodes can be encoded again).
 */
int tcl_mpack_decode(lua_State *L, const char *p, size_t n, char *err,
                     size_t errlen);

/* tcl_buf_append - append @n bytes; returns 0 or -1 when out of memory. */
int tcl_buf_append(tcl_buf *b, const void *p, size_t n);

#endif /* TCL_MPACK_H */
