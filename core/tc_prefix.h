/*
 * tc_prefix.h - feature macros, included first in every core translation
 * unit (Lua's lprefix.h, Redis's fmacros.h): we need POSIX 2008 plus the
 * GNU extensions used for memfd_create and O_PATH-free openat helpers.
 */
#ifndef TC_PREFIX_H
#define TC_PREFIX_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#endif
