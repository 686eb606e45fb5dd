/*
 * small_mpack.h - the few MessagePack forms the recipes store: a short
 * array of numbers ([total, count], [last, tally]) and [delta, result]
 * where the result is any tc_data. Lua reads them back as tables, as
 * python-diskcache's callers read its tuples.
 *
 * Readers treat the bytes as untrusted: every length is checked, and a
 * record that is not exactly the expected form is TC_ETYPE.
 */
#ifndef TC_SMALL_MPACK_H
#define TC_SMALL_MPACK_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Largest fixed record: array header plus two 9-byte numbers. */
#define TC_MP_PAIR_MAX 19

/* [a, b] with @a a float64 and @b a float64 (@b_int = 0) or an int64
 * (@b_int = 1) into @buf (TC_MP_PAIR_MAX bytes); returns the length. */
TC_HIDDEN size_t tc__mp_pair(unsigned char *buf, double a, double b, int b_int);
/* Parse a stored value as [number, number]: TC_OK or TC_ETYPE. */
TC_HIDDEN int tc__mp_pair_parse(const tc_value *v, double *a, double *b);

/* [delta, result] as one malloc'd buffer (caller frees): TC_OK, TC_EINVAL
 * (a type the record cannot hold) or TC_ENOMEM. */
TC_HIDDEN int tc__mp_with_delta(double delta, const tc_data *result,
                                unsigned char **out, size_t *len);
/* Split a stored [delta, result]: the result becomes a new tc_value in
 * @result (TEXT, BYTES, INT, REAL, or MSGPACK for anything else). */
TC_HIDDEN int tc__mp_with_delta_parse(const tc_value *v, double *delta,
                                      tc_value *result);

#endif /* TC_SMALL_MPACK_H */
