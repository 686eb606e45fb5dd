/*
 * test_mpack_unit.c - checks of the MessagePack codec (lua/mpack.c) that
 * build against Lua 5.4 and LuaJIT 2.1 alike. Plain C, no test framework:
 * every failed check is printed and the exit status is the failure count
 * (capped), so meson and shell scripts both read it.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#if LUA_VERSION_NUM < 502
#include <luajit.h>
#endif

#include "compat.h"
#include "mpack.h"

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "%s:%d: failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* Hex text ("cd 01 00", spaces optional) to bytes; returns the count. */
static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;

    while (*hex) {
        if (*hex == ' ') {
            hex++;
            continue;
        }
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1 || n == cap) {
            fprintf(stderr, "bad hex in test: %s\n", hex);
            exit(2);
        }
        out[n++] = (unsigned char)v;
        hex += 2;
    }
    return n;
}

/* Bytes to "cd 01 00" for messages (a static buffer, one use per line). */
static const char *tohex(const void *p, size_t n)
{
    static char s[3 * 64 + 8];
    size_t i, o = 0;

    for (i = 0; i < n && i < 64; i++)
        o += (size_t)snprintf(s + o, sizeof s - o, "%s%02x", i ? " " : "",
                              ((const unsigned char *)p)[i]);
    if (i < n)
        snprintf(s + o, sizeof s - o, " ...");
    else
        s[o] = '\0';
    return s;
}

/* Run @code and leave its one result on the stack. */
static void eval(lua_State *L, const char *code)
{
    if (luaL_loadstring(L, code) || lua_pcall(L, 0, 1, 0)) {
        fprintf(stderr, "Lua error in test code: %s\n", lua_tostring(L, -1));
        exit(2);
    }
}

/* Deep equality in Lua: NaN equals NaN and, in 5.4, the integer/float
 * subtype must match too (the codec keeps it). */
static const char deq_src[] =
    "local function deq(a, b, loose)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    if a ~= a then return b ~= b end\n"
    "    if not loose and math.type and math.type(a) ~= math.type(b) then\n"
    "      return false\n"
    "    end\n"
    "    return a == b\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  local n = 0\n"
    "  for k, v in pairs(a) do\n"
    "    n = n + 1\n"
    "    if not deq(v, rawget(b, k), loose) then return false end\n"
    "  end\n"
    "  for _ in pairs(b) do n = n - 1 end\n"
    "  return n == 0\n"
    "end\n"
    "return deq\n";

/* Deep equality; @loose compares numbers by value only (canonical mode
 * writes integral floats as integers: 3.0 and 3 are one memoize key). */
static int deep_equal_mode(lua_State *L, int a, int b, int loose)
{
    a = tcl_absindex(L, a);
    b = tcl_absindex(L, b);
    lua_getglobal(L, "deq");
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_pushboolean(L, loose);
    lua_call(L, 3, 1);
    int eq = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return eq;
}

static int deep_equal(lua_State *L, int a, int b)
{
    return deep_equal_mode(L, a, b, 0);
}

static int encode(lua_State *L, int idx, tcl_buf *b, int canonical,
                  int allow_nil, char *err)
{
    int top = lua_gettop(L);

    b->len = 0;
    err[0] = '\0';
    int rc = tcl_mpack_encode(L, idx, b, canonical, allow_nil, err, 256);
    CHECK(lua_gettop(L) == top, "encode left %d values on the stack",
          lua_gettop(L) - top);
    return rc;
}

static int decode(lua_State *L, const void *p, size_t n, char *err)
{
    int top = lua_gettop(L);

    err[0] = '\0';
    int rc = tcl_mpack_decode(L, p, n, err, 256);
    CHECK(lua_gettop(L) == top + (rc == 0), "decode rc %d, stack %+d", rc,
          lua_gettop(L) - top);
    return rc;
}

/* The value of @code survives encode/decode in both modes, and encoding the
 * decoded value again (canonical) gives the same bytes. */
static void roundtrip(lua_State *L, const char *code)
{
    int top = lua_gettop(L);
    tcl_buf a = {0}, b = {0};
    char err[256];

    eval(L, code);
    for (int canonical = 1; canonical >= 0; canonical--) {
        if (encode(L, -1, &a, canonical, 1, err)) {
            CHECK(0, "%s: encode: %s", code, err);
            break;
        }
        if (decode(L, a.ptr, a.len, err)) {
            CHECK(0, "%s: decode: %s", code, err);
            break;
        }
        CHECK(deep_equal_mode(L, top + 1, -1, canonical),
              "%s (canonical %d): not equal", code, canonical);
        if (canonical) {
            CHECK(encode(L, -1, &b, 1, 1, err) == 0, "%s: %s", code, err);
            CHECK(a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0,
                  "%s: re-encoding differs", code);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    free(a.ptr);
    free(b.ptr);
}

/* The value of @code encodes (canonically, or plain) to exactly @hex. */
static void expect_code_mode(lua_State *L, const char *code, const char *hex,
                             int canonical)
{
    unsigned char want[256];
    size_t n = unhex(hex, want, sizeof want);
    tcl_buf b = {0};
    char err[256];

    eval(L, code);
    if (encode(L, -1, &b, canonical, 1, err))
        CHECK(0, "%s: encode: %s", code, err);
    else
        CHECK(b.len == n && memcmp(b.ptr, want, n) == 0, "%s: got %s, want %s",
              code, tohex(b.ptr, b.len), hex);
    lua_pop(L, 1);
    free(b.ptr);
}

static void expect_code(lua_State *L, const char *code, const char *hex)
{
    expect_code_mode(L, code, hex, 1);
}

/* Encoding the value on top fails with a message containing @msg. */
static void expect_encode_error(lua_State *L, const char *what, int allow_nil,
                                const char *msg)
{
    tcl_buf b = {0};
    char err[256];

    int rc = encode(L, -1, &b, 1, allow_nil, err);
    CHECK(rc == -1 && strstr(err, msg), "%s: rc %d, err '%s', want '%s'", what,
          rc, err, msg);
    lua_pop(L, 1);
    free(b.ptr);
}

static void expect_decode_error(lua_State *L, const void *p, size_t n,
                                const char *what, const char *msg)
{
    char err[256];
    int rc = decode(L, p, n, err);

    CHECK(rc == -1, "%s: decoded (%s)", what, tohex(p, n));
    if (rc == 0)
        lua_pop(L, 1);
    else if (msg)
        CHECK(strstr(err, msg), "%s: err '%s', want '%s'", what, err, msg);
}

static void expect_decode_error_hex(lua_State *L, const char *hex,
                                    const char *msg)
{
    unsigned char in[64];
    size_t n = unhex(hex, in, sizeof in);

    expect_decode_error(L, in, n, hex, msg);
}

/* ===================================================================== */

static void test_tables(lua_State *L)
{
    roundtrip(L, "return {1, 2, 3}");
    roundtrip(L, "return {a = 1, b = {c = {d = 'x'}}}");
    roundtrip(L, "return {1, 2, x = 'y', [10] = 5}");
    roundtrip(L, "return {[-1] = 'a', [-2^40] = 'b', [0] = 'z'}");
    roundtrip(L, "return {[1.5] = 'f', [-0.25] = true, [1e300] = 3}");
    roundtrip(L, "return {[true] = 1, [false] = 0}");
    roundtrip(L, "return {}");
    roundtrip(L, "return {{}, {{}}, {1, {2, {3, {}}}}, {k = {}}}");
    roundtrip(L, "return {1, nil, 3}");
    roundtrip(L, "return {0/0, 1/0, -1/0, 0.5, 'x', false}");
    roundtrip(L, "local t = {} for i = 1, 70000 do t[i] = i * 3 end return t");
    roundtrip(L, "local t = {} for i = 1, 300 do t['k' .. i] = {i} end "
                 "return t");
    roundtrip(L, "local s = {1} return {s, s, {s}}"); /* shared, not cyclic */

    /* Array or map: exactly the keys 1..n make an array. */
    expect_code(L, "return {}", "80");
    expect_code(L, "return {7, 8}", "92 07 08");
    expect_code(L, "local t = {} t[3] = 3 t[1] = 1 t[2] = 2 return t",
                "93 01 02 03");
    expect_code(L, "return {[2] = 2}", "81 02 02");
    expect_code(L, "return {[1] = 1, [3] = 3}", "82 01 01 03 03");
    expect_code(L, "return {[0] = 0, 1}", "82 00 00 01 01");
    expect_code(L, "return {a = 1}", "81 a1 61 01");
    expect_code(L, "return {[1.5] = 1}", "81 cb 3f f8 00 00 00 00 00 00 01");
    expect_code(L, "local t = {} for i = 1, 16 do t[i] = 0 end return t",
                "dc 00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    expect_code(L, "local t = {} for i = 1, 16 do t[i] = i end return t[16]",
                "10");

    /* Nesting: 128 tables deep is fine, 129 is not. */
    eval(L, "local t = {} for i = 2, 128 do t = {t} end return t");
    {
        tcl_buf b = {0};
        char err[256];
        CHECK(encode(L, -1, &b, 0, 0, err) == 0, "depth 128: %s", err);
        CHECK(b.len == 128 && (unsigned char)b.ptr[0] == 0x91 &&
                  (unsigned char)b.ptr[127] == 0x80,
              "depth 128: %s", tohex(b.ptr, b.len));
        CHECK(decode(L, b.ptr, b.len, err) == 0, "depth 128: %s", err);
        lua_pop(L, 2);
        free(b.ptr);
    }
    eval(L, "local t = {} for i = 2, 129 do t = {t} end return t");
    expect_encode_error(L, "depth 129", 0, "nested deeper than 128");
    eval(L, "local t = {} for i = 2, 129 do t = {k = t} end return t");
    expect_encode_error(L, "map depth 129", 0, "nested deeper than 128");
    roundtrip(L, "local t = {x = 1} for i = 2, 128 do "
                 "t = (i % 2 == 0) and {k = t} or {t} end return t");
    eval(L, "return {{{{{{{{{{}}}}}}}}}}");
    {
        tcl_buf b = {0};
        char err[256];
        CHECK(encode(L, -1, &b, 1, 0, err) == 0, "depth 10: %s", err);
        CHECK(b.len == 10, "depth 10: %zu bytes", b.len);
        lua_pop(L, 1);
        free(b.ptr);
    }
}

static void check_int(lua_State *L, int64_t v, const char *hex)
{
    unsigned char want[16];
    size_t n = unhex(hex, want, sizeof want);
    tcl_buf b = {0};
    char err[256];

    tcl_pushint(L, v);
    if (encode(L, -1, &b, 0, 0, err)) {
        CHECK(0, "%lld: %s", (long long)v, err);
    } else {
        CHECK(b.len == n && memcmp(b.ptr, want, n) == 0,
              "%lld: got %s, want %s", (long long)v, tohex(b.ptr, b.len), hex);
        if (decode(L, b.ptr, b.len, err) == 0) {
            int64_t back = 0;
            CHECK(lua_type(L, -1) == LUA_TNUMBER &&
                      tcl_tointeger(L, -1, &back) && back == v,
                  "%lld came back as %lld", (long long)v, (long long)back);
            lua_pop(L, 1);
        } else {
            CHECK(0, "%lld: decode: %s", (long long)v, err);
        }
    }
    lua_pop(L, 1);
    free(b.ptr);
}

/* Decoding @hex gives the integer @v. */
static void check_decode_int(lua_State *L, const char *hex, int64_t v)
{
    unsigned char in[16];
    size_t n = unhex(hex, in, sizeof in);
    char err[256];
    int64_t got = 0;

    if (decode(L, in, n, err)) {
        CHECK(0, "%s: %s", hex, err);
        return;
    }
    CHECK(lua_type(L, -1) == LUA_TNUMBER && tcl_tointeger(L, -1, &got) &&
              got == v,
          "%s: got %lld, want %lld", hex, (long long)got, (long long)v);
    lua_pop(L, 1);
}

/* Decoding @hex gives the (float) number @v, or NaN when @v is. */
static void check_decode_num(lua_State *L, const char *hex, double v)
{
    unsigned char in[16];
    size_t n = unhex(hex, in, sizeof in);
    char err[256];

    if (decode(L, in, n, err)) {
        CHECK(0, "%s: %s", hex, err);
        return;
    }
    double got = lua_tonumber(L, -1);
    CHECK(
        lua_type(L, -1) == LUA_TNUMBER &&
            (isnan(v) ? isnan(got) : got == v && !signbit(got) == !signbit(v)),
        "%s: got %.17g, want %.17g", hex, got, v);
#if TCL_HAS_INTEGERS
    CHECK(!lua_isinteger(L, -1), "%s: decoded as an integer", hex);
#endif
    lua_pop(L, 1);
}

static void test_ints(lua_State *L)
{
    check_int(L, 0, "00");
    check_int(L, 1, "01");
    check_int(L, -1, "ff");
    check_int(L, 127, "7f");
    check_int(L, 128, "cc 80");
    check_int(L, 255, "cc ff");
    check_int(L, 256, "cd 01 00");
    check_int(L, 65535, "cd ff ff");
    check_int(L, 65536, "ce 00 01 00 00");
    check_int(L, -32, "e0");
    check_int(L, -33, "d0 df");
    check_int(L, -128, "d0 80");
    check_int(L, -129, "d1 ff 7f");
    check_int(L, -32768, "d1 80 00");
    check_int(L, -32769, "d2 ff ff 7f ff");
    check_int(L, INT32_MAX, "ce 7f ff ff ff");
    check_int(L, (int64_t)INT32_MAX + 1, "ce 80 00 00 00");
    check_int(L, UINT32_MAX, "ce ff ff ff ff");
    check_int(L, (int64_t)UINT32_MAX + 1, "cf 00 00 00 01 00 00 00 00");
    check_int(L, INT32_MIN, "d2 80 00 00 00");
    check_int(L, (int64_t)INT32_MIN - 1, "d3 ff ff ff ff 7f ff ff ff");
    check_int(L, INT64_C(9007199254740992), "cf 00 20 00 00 00 00 00 00");
    check_int(L, -INT64_C(9007199254740992), "d3 ff e0 00 00 00 00 00 00");
#if TCL_HAS_INTEGERS
    check_int(L, INT64_MAX, "cf 7f ff ff ff ff ff ff ff");
    check_int(L, INT64_MIN, "d3 80 00 00 00 00 00 00 00");
    check_decode_int(L, "d3 80 00 00 00 00 00 00 00", INT64_MIN);
    check_decode_int(L, "cf 7f ff ff ff ff ff ff ff", INT64_MAX);
#else
    /* LuaJIT: beyond 2^53 a number is a float, even if integral. */
    expect_code(L, "return 2^53 + 2", "cb 43 40 00 00 00 00 00 01");
    expect_code(L, "return -2^63", "cb c3 e0 00 00 00 00 00 00");
    expect_code(L, "return 3.0", "03");
    check_decode_num(L, "d3 80 00 00 00 00 00 00 00", -9223372036854775808.0);
#endif
    /* Above INT64_MAX: a float in both. */
    check_decode_num(L, "cf ff ff ff ff ff ff ff ff", 18446744073709551615.0);
    check_decode_num(L, "cf 80 00 00 00 00 00 00 00", 9223372036854775808.0);
    /* Wider forms than needed are still read. */
    check_decode_int(L, "cd 00 01", 1);
    check_decode_int(L, "cf 00 00 00 00 00 00 00 05", 5);
    check_decode_int(L, "d0 ff", -1);
    check_decode_int(L, "d0 7f", 127);
    check_decode_int(L, "d1 ff ff", -1);
    check_decode_int(L, "d2 ff ff ff fe", -2);
    check_decode_int(L, "d3 ff ff ff ff ff ff ff ff", -1);
    check_decode_int(L, "d3 00 00 00 00 00 00 00 07", 7);
}

static void test_floats(lua_State *L)
{
    expect_code(L, "return 1.5", "cb 3f f8 00 00 00 00 00 00");
    expect_code(L, "return -2.25", "cb c0 02 00 00 00 00 00 00");
    expect_code(L, "return 1/0", "cb 7f f0 00 00 00 00 00 00");
    expect_code(L, "return -1/0", "cb ff f0 00 00 00 00 00 00");
#if TCL_HAS_INTEGERS
    /* math.type round-trips: an integral float stays a float, except in
     * canonical mode (memoize keys), where 3.0 and 3 are one call. */
    expect_code_mode(L, "return 3.0", "cb 40 08 00 00 00 00 00 00", 0);
    expect_code_mode(L, "return -0.0", "cb 80 00 00 00 00 00 00 00", 0);
    expect_code(L, "return 3.0", "03");
    expect_code(L, "return -0.0", "00");
    expect_code(L, "return 2^63", "cb 43 e0 00 00 00 00 00 00");
    check_decode_num(L, "cb 40 08 00 00 00 00 00 00", 3.0);
    check_decode_num(L, "cb 80 00 00 00 00 00 00 00", -0.0);
    roundtrip(L, "return {3.0, 3, -0.0, 0, [2.0^70] = 1.0}");
#else
    {
        /* -0.0 is what compat.h's tcl_tointeger makes of it: the integer 0,
         * or a float that keeps its sign. */
        int64_t i;
        lua_pushnumber(L, -0.0);
        int is_int = tcl_tointeger(L, -1, &i);
        lua_pop(L, 1);
        expect_code_mode(L, "return -0.0",
                         is_int ? "00" : "cb 80 00 00 00 00 00 00 00", 0);
        expect_code(L, "return -0.0", "00");
        if (!is_int)
            check_decode_num(L, "cb 80 00 00 00 00 00 00 00", -0.0);
    }
#endif
    /* NaN: any payload encodes as a float64 NaN and decodes as NaN. */
    {
        tcl_buf b = {0};
        char err[256];
        lua_pushnumber(L, (lua_Number)NAN);
        CHECK(encode(L, -1, &b, 0, 0, err) == 0, "NaN: %s", err);
        CHECK(b.len == 9 && (unsigned char)b.ptr[0] == 0xcb &&
                  ((unsigned char)b.ptr[1] & 0x7f) == 0x7f &&
                  ((unsigned char)b.ptr[2] & 0xf0) == 0xf0,
              "NaN: %s", tohex(b.ptr, b.len));
        lua_pop(L, 1);
        free(b.ptr);
    }
    check_decode_num(L, "cb 7f f8 00 00 00 00 00 00", NAN);
    check_decode_num(L, "cb 3f f8 00 00 00 00 00 00", 1.5);
    check_decode_num(L, "cb ff f0 00 00 00 00 00 00", -INFINITY);
    /* float32 is read (as a double) though never written. */
    check_decode_num(L, "ca 3f c0 00 00", 1.5);
    check_decode_num(L, "ca 7f c0 00 00", NAN);
    check_decode_num(L, "ca ff 80 00 00", -INFINITY);
    check_decode_num(L, "ca 3d cc cc cd", (double)0.1f);
}

/* A string of @n bytes of @c encodes with header @hex. */
static void check_string_header(lua_State *L, size_t n, char c, const char *hex)
{
    unsigned char want[8];
    size_t hn = unhex(hex, want, sizeof want);
    char *s = malloc(n ? n : 1);
    tcl_buf b = {0};
    char err[256];

    memset(s, c, n);
    lua_pushlstring(L, s, n);
    if (encode(L, -1, &b, 0, 0, err)) {
        CHECK(0, "string of %zu: %s", n, err);
    } else {
        CHECK(b.len == hn + n && memcmp(b.ptr, want, hn) == 0 &&
                  memcmp(b.ptr + hn, s, n) == 0,
              "string of %zu x %02x: got %s, want header %s", n,
              (unsigned char)c, tohex(b.ptr, b.len < 8 ? b.len : 8), hex);
        if (decode(L, b.ptr, b.len, err) == 0) {
            CHECK(lua_rawequal(L, -1, -2), "string of %zu changed", n);
            lua_pop(L, 1);
        } else {
            CHECK(0, "string of %zu: decode: %s", n, err);
        }
    }
    lua_pop(L, 1);
    free(s);
    free(b.ptr);
}

static void test_strings(lua_State *L)
{
    expect_code(L, "return ''", "a0");
    expect_code(L, "return 'abc'", "a3 61 62 63");
    expect_code(L, "return 'a\\0b'", "a3 61 00 62");
    expect_code(L, "return 'h\\195\\169'", "a3 68 c3 a9"); /* hé */
    expect_code(L, "return '\\240\\159\\152\\128'", "a4 f0 9f 98 80");
    /* Not strict UTF-8: bin. */
    expect_code(L, "return '\\255'", "c4 01 ff");
    expect_code(L, "return '\\192\\128'", "c4 02 c0 80"); /* overlong */
    expect_code(L, "return '\\237\\160\\128'",
                "c4 03 ed a0 80"); /* surrogate */
    expect_code(L, "return '\\244\\144\\128\\128'", "c4 04 f4 90 80 80");
    expect_code(L, "return 'ab\\195'", "c4 03 61 62 c3"); /* truncated */
    /* Header sizes, text and binary. */
    check_string_header(L, 31, 'x', "bf");
    check_string_header(L, 32, 'x', "d9 20");
    check_string_header(L, 255, 'x', "d9 ff");
    check_string_header(L, 256, 'x', "da 01 00");
    check_string_header(L, 65535, 'x', "da ff ff");
    check_string_header(L, 65536, 'x', "db 00 01 00 00");
    check_string_header(L, 1, (char)0x80, "c4 01");
    check_string_header(L, 255, (char)0xfe, "c4 ff");
    check_string_header(L, 256, (char)0xfe, "c5 01 00");
    check_string_header(L, 65536, (char)0xfe, "c6 00 01 00 00");
    /* str and bin both decode to Lua strings. */
    {
        char err[256];
        CHECK(decode(L, "\xc4\x02hi", 4, err) == 0, "bin: %s", err);
        CHECK(decode(L, "\xa2hi", 3, err) == 0, "fixstr: %s", err);
        CHECK(decode(L, "\xd9\x02hi", 4, err) == 0, "str8: %s", err);
        CHECK(lua_gettop(L) == 3 && lua_rawequal(L, -1, -2) &&
                  lua_rawequal(L, -2, -3) && lua_type(L, -1) == LUA_TSTRING,
              "%s", "str/bin decode differently");
        lua_pop(L, 3);
    }
}

static void test_rejected(lua_State *L)
{
    tcl_buf b = {0};
    char err[256];

    eval(L, "local t = {} t.self = t return t");
    expect_encode_error(L, "self cycle", 0, "cyclic table");
    eval(L, "local a = {} local b = {a} a[1] = {x = b} return a");
    expect_encode_error(L, "longer cycle", 0, "cyclic table");
    eval(L, "local a = {} a[a] = 1 return a"); /* a table key, a cycle too */
    expect_encode_error(L, "table key", 0, "table key");
    eval(L, "return {[{}] = 1}");
    expect_encode_error(L, "table key", 0, "cannot use a table as a table key");
    eval(L, "return {[print] = 1}");
    expect_encode_error(L, "function key", 0, "a function as a table key");
    eval(L, "return print");
    expect_encode_error(L, "function", 0, "cannot store a function");
    eval(L, "return {1, {f = function() end}}");
    expect_encode_error(L, "nested function", 0, "cannot store a function");
    eval(L, "return coroutine.create(print)");
    expect_encode_error(L, "thread", 0, "cannot store a thread");
    eval(L, "return {io.stdout}");
    expect_encode_error(L, "userdata", 0, "cannot store a userdata");
    lua_pushlightuserdata(L, &b);
    expect_encode_error(L, "light userdata", 0,
                        "cannot store a light userdata");
    lua_pushnil(L);
    expect_encode_error(L, "nil", 0, "cannot store nil");

    lua_pushnil(L);
    CHECK(encode(L, -1, &b, 0, 1, err) == 0 && b.len == 1 &&
              (unsigned char)b.ptr[0] == 0xc0,
          "nil with allow_nil: %s", err);
    lua_pop(L, 1);
    /* A failure deep inside a traversal still leaves the stack balanced
     * (encode() checks), with values below it untouched. */
    lua_pushinteger(L, 42);
    eval(L, "return {a = {b = {c = {1, 2, print}}}}");
    expect_encode_error(L, "deep function", 0, "cannot store a function");
    CHECK(lua_gettop(L) == 1 && lua_tointeger(L, 1) == 42, "%s",
          "stack below the value changed");
    lua_pop(L, 1);
    free(b.ptr);
}

static void test_canonical(lua_State *L)
{
    static const char *const builds[] = {
        /* The same table, built in three different insertion orders. */
        "local t = {} for i = 1, 60 do t['k' .. i] = i end "
        "t[1.5] = 'f' t[true] = {z = 1, y = 2} t[-7] = 'n' "
        "for i = 1, 40 do t['k' .. i] = nil end "
        "for i = 1, 40 do t['k' .. i] = i end return t",
        "local t = {} t[-7] = 'n' t[true] = {y = 2, z = 1} "
        "for i = 60, 1, -1 do t['k' .. i] = i end t[1.5] = 'f' return t",
        "local t = {[true] = {}, [1.5] = 'f'} t[true].z = 1 "
        "for i = 1, 60, 2 do t['k' .. i] = i end t[-7] = 'n' "
        "for i = 2, 60, 2 do t['k' .. i] = i end t[true].y = 2 return t",
    };
    tcl_buf first = {0}, b = {0};
    char err[256];

    for (size_t i = 0; i < sizeof builds / sizeof *builds; i++) {
        eval(L, builds[i]);
        if (encode(L, -1, i ? &b : &first, 1, 0, err)) {
            CHECK(0, "canonical build %zu: %s", i, err);
        } else if (i) {
            CHECK(b.len == first.len && memcmp(b.ptr, first.ptr, b.len) == 0,
                  "canonical build %zu differs", i);
        }
        lua_pop(L, 1);
    }
    /* Order by encoded key: 0x0a < a1 61 < a1 62 < a2 .. < c3 < cb ... */
    expect_code(L,
                "return {[true] = 3, b = 1, ab = 4, a = 2, [10] = 0, "
                "[0.5] = 5}",
                "86 0a 00 a1 61 02 a1 62 01 a2 61 62 04 c3 03 "
                "cb 3f e0 00 00 00 00 00 00 05");
    expect_code(L, "return {[-1] = 1, [1] = 2, [300] = 3}",
                "83 01 02 cd 01 2c 03 ff 01");
    free(first.ptr);
    free(b.ptr);
}

static void test_decode_shapes(lua_State *L)
{
    char err[256];

    /* Arrays become sequences 1..n; nil elements leave holes. */
    eval(L, "return {1, nil, 3}");
    CHECK(decode(L, "\x93\x01\xc0\x03", 4, err) == 0, "holes: %s", err);
    CHECK(deep_equal(L, -1, -2), "%s", "array with a nil hole");
    lua_pop(L, 2);
    /* Empty array and empty map both give an empty table. */
    eval(L, "return {}");
    CHECK(decode(L, "\x90", 1, err) == 0 && deep_equal(L, -1, -2), "[]: %s",
          err);
    lua_pop(L, 1);
    CHECK(decode(L, "\x80", 1, err) == 0 && deep_equal(L, -1, -2), "{}: %s",
          err);
    lua_pop(L, 2);
    /* A map with keys 1..n is a sequence in Lua, so it re-encodes as an
     * array; a later duplicate key wins. */
    {
        tcl_buf b = {0};
        CHECK(decode(L, "\x82\x02\xa1\x62\x01\xa1\x61", 7, err) == 0, "%s",
              err);
        CHECK(encode(L, -1, &b, 1, 0, err) == 0 && b.len == 5 &&
                  memcmp(b.ptr, "\x92\xa1\x61\xa1\x62", 5) == 0,
              "map 1..n: %s", tohex(b.ptr, b.len));
        lua_pop(L, 1);
        free(b.ptr);
    }
    eval(L, "return {a = 2}");
    CHECK(decode(L, "\x82\xa1\x61\x01\xa1\x61\x02", 7, err) == 0 &&
              deep_equal(L, -1, -2),
          "duplicate key: %s", err);
    lua_pop(L, 2);
    /* Values already on the stack stay. */
    lua_pushinteger(L, 7);
    CHECK(decode(L, "\xc3", 1, err) == 0 && lua_gettop(L) == 2 &&
              lua_toboolean(L, -1) && lua_tointeger(L, 1) == 7,
          "%s", "push onto a used stack");
    lua_pop(L, 2);
    CHECK(decode(L, "\xc0", 1, err) == 0 && lua_isnil(L, -1), "nil: %s", err);
    lua_pop(L, 1);
    CHECK(decode(L, "\xc2", 1, err) == 0 && lua_type(L, -1) == LUA_TBOOLEAN &&
              !lua_toboolean(L, -1),
          "false: %s", err);
    lua_pop(L, 1);
    /* array16/32 and map16/32 with few elements are read. */
    eval(L, "return {1, 2}");
    CHECK(decode(L, "\xdc\x00\x02\x01\x02", 5, err) == 0 &&
              deep_equal(L, -1, -2),
          "array16: %s", err);
    lua_pop(L, 1);
    CHECK(decode(L, "\xdd\x00\x00\x00\x02\x01\x02", 7, err) == 0 &&
              deep_equal(L, -1, -2),
          "array32: %s", err);
    lua_pop(L, 1);
    CHECK(decode(L, "\xde\x00\x02\x01\x01\x02\x02", 7, err) == 0 &&
              deep_equal(L, -1, -2),
          "map16: %s", err);
    lua_pop(L, 1);
    CHECK(decode(L, "\xdf\x00\x00\x00\x02\x02\x02\x01\x01", 9, err) == 0 &&
              deep_equal(L, -1, -2),
          "map32: %s", err);
    lua_pop(L, 2);
    /* Nesting 128 deep decodes; 129 does not (also through maps). */
    {
        unsigned char in[300];
        memset(in, 0x91, 127);
        in[127] = 0x90;
        CHECK(decode(L, in, 128, err) == 0, "depth 128: %s", err);
        lua_pop(L, 1);
        memset(in, 0x91, 128);
        in[128] = 0x90;
        expect_decode_error(L, in, 129, "depth 129", "nested deeper than 128");
        for (int i = 0; i < 129; i++) {
            in[2 * i] = 0x81;
            in[2 * i + 1] = 0x01;
        }
        in[258] = 0xc3;
        expect_decode_error(L, in, 259, "map depth 129",
                            "nested deeper than 128");
        CHECK(decode(L, in + 2, 257, err) == 0, "map depth 128: %s", err);
        lua_pop(L, 1);
    }
}

/* Decoding @hex fails as truncated before Lua allocates for the length it
 * declares: the collector is stopped, so whatever was allocated shows. */
static void check_no_big_alloc(lua_State *L, const char *hex)
{
    lua_gc(L, LUA_GCCOLLECT, 0);
    lua_gc(L, LUA_GCSTOP, 0);
    int before = lua_gc(L, LUA_GCCOUNT, 0);
    expect_decode_error_hex(L, hex, "truncated");
    int after = lua_gc(L, LUA_GCCOUNT, 0);
    lua_gc(L, LUA_GCRESTART, 0);
    CHECK(after - before < 16, "%s: decoding allocated %d KiB", hex,
          after - before);
}

static void test_malformed(lua_State *L)
{
    /* Every proper prefix of a valid nested encoding is rejected. */
    {
        tcl_buf b = {0};
        char err[256];
        eval(L, "return {1, -200, 70000, 'text', '\\255bin', {a = {true, "
                "false, 1.5}, [2.5] = {}}, {{}, {{'deep'}}}, 2^40, "
                "k = string.rep('x', 300)}");
        CHECK(encode(L, -1, &b, 1, 0, err) == 0, "%s", err);
        lua_pop(L, 1);
        for (size_t n = 0; n < b.len; n++)
            expect_decode_error(L, b.ptr, n, "truncated prefix", "truncated");
        CHECK(decode(L, b.ptr, b.len, err) == 0, "whole: %s", err);
        lua_pop(L, 1);
        free(b.ptr);
    }
    expect_decode_error(L, NULL, 0, "NULL input", "truncated");
    /* Declared lengths far beyond the input fail before allocating. */
    check_no_big_alloc(L, "dd ff ff ff ff");
    check_no_big_alloc(L, "91 dd ff ff ff ff c0 c0 c0");
    check_no_big_alloc(L, "df ff ff ff ff 01 01");
    check_no_big_alloc(L, "dc ff ff c0 c0 c0 c0 c0 c0 c0 c0");
    check_no_big_alloc(L, "de ff ff c0 c0 c0 c0 c0 c0 c0 c0");
    check_no_big_alloc(L, "db ff ff ff ff 61 62");
    check_no_big_alloc(L, "c6 7f ff ff ff 61 62");
    expect_decode_error_hex(L, "dd ff ff ff ff", "truncated");
    expect_decode_error_hex(L, "dd ff ff ff ff 01", "truncated");
    expect_decode_error_hex(L, "df ff ff ff ff", "truncated");
    expect_decode_error_hex(L, "df ff ff ff ff 01 01", "truncated");
    expect_decode_error_hex(L, "dc ff ff c0 c0", "truncated");
    expect_decode_error_hex(L, "de ff ff 01", "truncated");
    expect_decode_error_hex(L, "db ff ff ff ff 61", "truncated");
    expect_decode_error_hex(L, "c6 ff ff ff ff 61", "truncated");
    expect_decode_error_hex(L, "c5 ff ff 61", "truncated");
    expect_decode_error_hex(L, "da 00 03 61 62", "truncated");
    expect_decode_error_hex(L, "d9 05 61", "truncated");
    expect_decode_error_hex(L, "bf 61", "truncated");
    expect_decode_error_hex(L, "92 01", "truncated");
    expect_decode_error_hex(L, "81 01", "truncated");
    expect_decode_error_hex(L, "cb 00 00", "truncated");
    expect_decode_error_hex(L, "cf 00", "truncated");
    expect_decode_error_hex(L, "d3", "truncated");
    expect_decode_error_hex(L, "ca 00 00 00", "truncated");
    /* ext, fixext and the never-used byte. */
    expect_decode_error_hex(L, "c1", "unsupported MessagePack type 0xc1");
    expect_decode_error_hex(L, "c7 01 05 00", "type 0xc7");
    expect_decode_error_hex(L, "c8 00 01 05 00", "type 0xc8");
    expect_decode_error_hex(L, "c9 00 00 00 01 05 00", "type 0xc9");
    expect_decode_error_hex(L, "d4 05 00", "type 0xd4");
    expect_decode_error_hex(L, "d5 05 00 00", "type 0xd5");
    expect_decode_error_hex(L, "d6 05 00 00 00 00", "type 0xd6");
    expect_decode_error_hex(L, "d7 ff 00 00 00 00 00 00 00 00", "type 0xd7");
    expect_decode_error_hex(L, "d8 05 00", "type 0xd8");
    expect_decode_error_hex(L, "92 01 d4 05 00", "type 0xd4");
    /* Exactly one value. */
    expect_decode_error_hex(L, "01 02", "trailing");
    expect_decode_error_hex(L, "90 00", "trailing");
    expect_decode_error_hex(L, "c0 c0", "trailing");
    expect_decode_error_hex(L, "a1 61 62", "trailing");
    /* Keys Lua cannot hold, and container keys. */
    expect_decode_error_hex(L, "81 c0 01", "nil table key");
    expect_decode_error_hex(L, "82 01 01 c0 01", "nil table key");
    expect_decode_error_hex(L, "81 cb 7f f8 00 00 00 00 00 00 01",
                            "NaN table key");
    expect_decode_error_hex(L, "81 ca 7f c0 00 00 01", "NaN table key");
    expect_decode_error_hex(L, "81 90 01", "array or map");
    expect_decode_error_hex(L, "81 80 01", "array or map");
    expect_decode_error_hex(L, "81 dc 00 00 01", "array or map");
    expect_decode_error_hex(L, "81 df 00 00 00 00 01", "array or map");
    expect_decode_error_hex(L, "91 81 c0 01", "nil table key");
}

int main(void)
{
    lua_State *L = luaL_newstate();

    if (!L)
        return 2;
    luaL_openlibs(L);
    eval(L, deq_src);
    lua_setglobal(L, "deq");

    test_tables(L);
    test_ints(L);
    test_floats(L);
    test_strings(L);
    test_rejected(L);
    test_canonical(L);
    test_decode_shapes(L);
    test_malformed(L);
    CHECK(lua_gettop(L) == 0, "%d values left on the stack", lua_gettop(L));

    lua_close(L);
#if TCL_HAS_INTEGERS
    const char *lua = LUA_RELEASE;
#else
    const char *lua = LUAJIT_VERSION;
#endif
    if (failures) {
        fprintf(stderr, "test_mpack_unit (%s): %d checks failed\n", lua,
                failures);
        return failures > 100 ? 100 : failures;
    }
    printf("test_mpack_unit (%s): all checks passed\n", lua);
    return 0;
}
