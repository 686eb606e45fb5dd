/*
 * keyed_value.h - self-describing test values for the concurrency tests:
 * (key, sequence) -> bytes whose length and body follow from both, so a
 * torn, misplaced or stale copy is caught byte for byte. No test
 * framework, so the TSan program (tests/tsan/) can use it too.
 */
#ifndef TC_KEYED_VALUE_H
#define TC_KEYED_VALUE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KV_HDR 16
#define KV_MAX (KV_HDR + 512) /* no value is longer */

static inline uint64_t kv_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline size_t kv_len(int k, uint64_t seq)
{
    return KV_HDR + (size_t)(kv_mix64((uint64_t)k << 40 ^ seq) % 500);
}

static inline uint8_t kv_byte(int k, uint64_t seq, size_t i)
{
    return (uint8_t)(kv_mix64((uint64_t)k << 48 ^ seq << 12 ^ i) >> 7);
}

/* kv_make - the value of (@k, @seq) into @buf (KV_MAX bytes); its length. */
static inline size_t kv_make(int k, uint64_t seq, uint8_t *buf)
{
    size_t n = kv_len(k, seq);
    uint32_t k32 = (uint32_t)k, n32 = (uint32_t)n;
    memcpy(buf, &k32, 4);
    memcpy(buf + 4, &n32, 4);
    memcpy(buf + 8, &seq, 8);
    for (size_t i = KV_HDR; i < n; i++)
        buf[i] = kv_byte(k, seq, i);
    return n;
}

/* kv_check - 0 and the sequence if @p is a value kv_make made for @k. */
static inline int kv_check(int k, const void *p, size_t n, uint64_t *seq)
{
    const uint8_t *b = p;
    uint32_t k32, n32;
    uint64_t s;
    if (n < KV_HDR)
        return -1;
    memcpy(&k32, b, 4);
    memcpy(&n32, b + 4, 4);
    memcpy(&s, b + 8, 8);
    if (k32 != (uint32_t)k || n32 != n || kv_len(k, s) != n)
        return -1;
    for (size_t i = KV_HDR; i < n; i++)
        if (b[i] != kv_byte(k, s, i))
            return -1;
    *seq = s;
    return 0;
}

#endif /* TC_KEYED_VALUE_H */
