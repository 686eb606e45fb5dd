/*
 * fuzz_records.c - libFuzzer target for the recipes' record parsers, which
 * read bytes another process (or anyone who can write the cache) stored:
 * holder records (core/owner.c) and the MessagePack records of Averager,
 * throttle and memoize_stampede (core/small_mpack.c).
 *
 * Each input is tried as every kind of record. Whatever parses must
 * survive a round trip: formatting (or encoding) what was parsed and
 * parsing that again gives the same fields. Built and run by
 * `FUZZ_TARGET=records bash tools/fuzz.sh`.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "owner.h"
#include "small_mpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_double(double a, double b)
{
    if (!(a == b || (isnan(a) && isnan(b))))
        abort();
}

static void owner_round_trip(const uint8_t *data, size_t size)
{
    tc_value v = {TC_TEXT, (void *)data, size, 0, 0};
    struct tc_owner o, o2;
    if (!tc__owner_parse(&v, &o))
        return;
    char buf[TC_OWNER_REC_MAX];
    size_t n = tc__owner_format(&o, buf);
    tc_value v2 = {TC_TEXT, buf, n, 0, 0};
    if (!tc__owner_parse(&v2, &o2))
        abort();
    if (o.seg != o2.seg || o.slot != o2.slot || o.gen != o2.gen ||
        o.pid != o2.pid || o.count != o2.count ||
        strcmp(o.thread, o2.thread) != 0)
        abort();
}

static void pair_round_trip(const uint8_t *data, size_t size)
{
    tc_value v = {TC_MSGPACK, (void *)data, size, 0, 0};
    double a, b, a2, b2;
    if (tc__mp_pair_parse(&v, &a, &b) != TC_OK)
        return;
    unsigned char buf[TC_MP_PAIR_MAX];
    tc_value v2 = {TC_MSGPACK, buf, tc__mp_pair(buf, a, b, 0), 0, 0};
    if (tc__mp_pair_parse(&v2, &a2, &b2) != TC_OK)
        abort();
    same_double(a, a2);
    same_double(b, b2);
}

static void delta_round_trip(const uint8_t *data, size_t size)
{
    tc_value v = {TC_MSGPACK, (void *)data, size, 0, 0};
    tc_value r = TC_VALUE_INIT, r2 = TC_VALUE_INIT;
    double d, d2;
    if (tc__mp_with_delta_parse(&v, &d, &r) != TC_OK) {
        tc_value_clear(&r);
        return;
    }
    unsigned char *enc;
    size_t len;
    tc_data rd = {r.ptr, r.len, r.type};
    if (tc__mp_with_delta(d, &rd, &enc, &len) != TC_OK)
        abort();
    tc_value v2 = {TC_MSGPACK, enc, len, 0, 0};
    if (tc__mp_with_delta_parse(&v2, &d2, &r2) != TC_OK)
        abort();
    same_double(d, d2);
    if (r.type != r2.type || r.len != r2.len ||
        (r.type == TC_REAL  ? memcmp(&r.d, &r2.d, 8) != 0
         : r.type == TC_INT ? r.i != r2.i
                            : r.len != 0 && memcmp(r.ptr, r2.ptr, r.len) != 0))
        abort();
    free(enc);
    tc_value_clear(&r);
    tc_value_clear(&r2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    owner_round_trip(data, size);
    pair_round_trip(data, size);
    delta_round_trip(data, size);
    return 0;
}
