/*
 * fanout_hash.c - python-diskcache's Disk.hash, which picks a key's shard
 * in a FanoutCache (shard = hash % shards). It must match bit for bit, or
 * the two libraries would look for a key in different shards:
 *   bytes -> adler32(bytes); str -> adler32(utf-8); int -> key % 0xFFFFFFFF
 *   (python's non-negative modulo); float -> adler32(big-endian double).
 */
#include <string.h>

#include <zlib.h>

#include "internal.h"

static uint64_t adler(const void *p, size_t n)
{
    /* Short keys (every hit of a FanoutCache hashes its key): adler32
     * inline. Below 5552 bytes the sums cannot overflow 32 bits before
     * the one modulo at the end (zlib's NMAX). */
    if (n < 5552) {
        const unsigned char *q = p;
        uint32_t s1 = 1, s2 = 0;
        for (size_t i = 0; i < n; i++) {
            s1 += q[i];
            s2 += s1;
        }
        return (uint64_t)(((s2 % 65521u) << 16) | (s1 % 65521u));
    }
    uLong a = adler32(0L, Z_NULL, 0);
    const unsigned char *b = p;

    /* zlib takes uInt lengths: feed large keys in pieces. */
    while (n) {
        uInt step = n > 0x40000000u ? 0x40000000u : (uInt)n;
        a = adler32(a, b, step);
        b += step;
        n -= step;
    }
    return (uint64_t)(a & 0xffffffffu);
}

uint64_t tc__fanout_hash(const tc_data *key)
{
    switch (key->type) {
    case TC_INT: {
        const int64_t mask = 0xffffffffLL;
        int64_t r = *(const int64_t *)key->ptr % mask;
        if (r < 0)
            r += mask;
        return (uint64_t)r;
    }
    case TC_REAL: {
        unsigned char be[8];
        uint64_t bits;
        memcpy(&bits, key->ptr, 8);
        for (int i = 7; i >= 0; i--) {
            be[i] = (unsigned char)(bits & 0xff);
            bits >>= 8;
        }
        return adler(be, 8);
    }
    default:
        return adler(key->len ? key->ptr : "", key->len);
    }
}

int tc_fanout_hash(const tc_data *key, uint64_t *hash)
{
    int rc = tc__check_key(key);

    if (rc)
        return rc;
    if (!hash)
        return tc__err(TC_EINVAL, "tc_fanout_hash: hash is NULL");
    *hash = tc__fanout_hash(key);
    return TC_OK;
}
