/*
 * fuzz_mpack.c - libFuzzer target for the MessagePack decoder (lua/mpack.c).
 *
 * The input is untrusted bytes, as a value read back from disk would be.
 * Decoding may fail, but must not crash or leave anything on the stack.
 * When it succeeds, the value must survive the round trip: encode it
 * (canonical), decode that, encode again, and the two encodings must be
 * byte for byte equal. Everything the decoder accepts the encoder can
 * write, so an encoding failure is a bug too. Build with tools/fuzz.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "mpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_mpack: %s%s%s\n", what, err ? ": " : "",
            err ? err : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One state for the whole run: creating one per input would dominate
     * the time spent. */
    static lua_State *L;
    static unsigned long runs;
    tcl_buf first = {0}, second = {0}, plain = {0};
    char err[256];

    if (!L && !(L = luaL_newstate()))
        die("luaL_newstate failed", NULL);
    lua_settop(L, 0);

    if (tcl_mpack_decode(L, (const char *)data, size, err, sizeof err)) {
        if (lua_gettop(L) != 0)
            die("failed decode left values on the stack", err);
        goto done;
    }
    if (lua_gettop(L) != 1)
        die("decode pushed other than one value", NULL);

    /* A nil top-level value is only storable with allow_nil. */
    if (lua_isnil(L, 1) &&
        tcl_mpack_encode(L, 1, &first, 1, 0, err, sizeof err) == 0)
        die("nil encoded without allow_nil", NULL);
    first.len = 0;

    if (tcl_mpack_encode(L, 1, &first, 1, 1, err, sizeof err))
        die("re-encoding a decoded value failed", err);
    if (lua_gettop(L) != 1)
        die("encode changed the stack", NULL);
    if (tcl_mpack_decode(L, first.ptr, first.len, err, sizeof err))
        die("decoding our own encoding failed", err);
    if (tcl_mpack_encode(L, 2, &second, 1, 1, err, sizeof err))
        die("second re-encoding failed", err);
    if (second.len != first.len || memcmp(second.ptr, first.ptr, first.len))
        die("round trip changed the canonical encoding", NULL);

    /* Insertion order only reorders map entries: same length. */
    if (tcl_mpack_encode(L, 2, &plain, 0, 1, err, sizeof err))
        die("non-canonical encoding failed", err);
    if (plain.len != first.len)
        die("canonical and plain encodings differ in length", NULL);
    if (tcl_mpack_decode(L, plain.ptr, plain.len, err, sizeof err))
        die("decoding the plain encoding failed", err);

done:
    free(first.ptr);
    free(second.ptr);
    free(plain.ptr);
    lua_settop(L, 0);
    /* Tables decoded from big inputs are garbage now; bound the heap. */
    if (++runs % 256 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
