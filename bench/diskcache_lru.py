#!/usr/bin/python3
"""python-diskcache's LRU get, run by tiercache-bench --only worker.

usage: diskcache_lru.py DIR KEYS VALUE_BYTES RUNS

Makes Cache(DIR, eviction_policy='least-recently-used'), sets KEYS str
keys "key-N" to str values of VALUE_BYTES bytes (as bench_worker.c does),
then times one untimed warm-up pass and RUNS passes of cache.get over every
key with time.perf_counter_ns(); prints each timed pass's ns per get, one
per line. Exit status: 0 ok, 3 diskcache cannot be imported, 1 otherwise.
"""

import sys
import time

try:
    import diskcache
except ImportError as exc:  # pragma: no cover - environment dependent
    print('diskcache_lru: cannot import diskcache: %s' % exc, file=sys.stderr)
    sys.exit(3)


def value_of(i, n):
    head = 'v%d:' % i
    return head + ''.join(chr(ord('a') + (i + j) % 26)
                          for j in range(len(head), n))


def main():
    directory, keys, vlen, runs = sys.argv[1], *map(int, sys.argv[2:5])
    names = ['key-%d' % i for i in range(keys)]
    with diskcache.Cache(directory,
                         eviction_policy='least-recently-used') as cache:
        for i, k in enumerate(names):
            cache.set(k, value_of(i, vlen))
        for run in range(-1, runs):
            get = cache.get
            t0 = time.perf_counter_ns()
            for k in names:
                if get(k) is None:
                    print('diskcache_lru: miss on %s' % k, file=sys.stderr)
                    sys.exit(1)
            ns = (time.perf_counter_ns() - t0) / keys
            if run >= 0:
                print('%.1f' % ns, flush=True)


if __name__ == '__main__':
    main()
