#!/usr/bin/python3
"""python-diskcache's own benchmark workload, run by tiercache-bench.

The workload is python-diskcache's tests/benchmark_core.py: RANGE (100)
byte-string keys str(n).encode(), values str(count).encode() repeated
randrange(1, 100) times, per process OPS operations of which 90% get, 9% set
and 1% delete, the first WARMUP operations untimed, on
FanoutCache(shards=8, timeout=0.010) preloaded with set(key, key).

Differences from benchmark_core.py, all so both engines are measured alike:
workers fork from this process and open the cache after the fork (as
multiprocessing does on Linux), then wait on a pipe barrier instead of
sleeping 10 ms; each op is timed with time.perf_counter_ns() instead of
time.time(); and the raw timings go to files that tiercache-bench reads, so
its C code computes every statistic for both engines the same way.

Output: OUT/py-<num>.bin per worker, native byte order:
  int64 t_first, t_last (CLOCK_MONOTONIC ns: start of the first timed op,
  end of the last), n (timed ops), busy (ops that hit the timeout); then
  n x uint64 ns, n x uint8 op (0 get, 1 set, 2 delete), n x uint8 miss.
Exit status: 0 ok, 3 diskcache cannot be imported, 1 anything else.
"""

import argparse
import array
import os
import random
import sys
import time

try:
    import diskcache
except ImportError as exc:  # pragma: no cover - environment dependent
    print('diskcache_workload: cannot import diskcache: %s' % exc,
          file=sys.stderr)
    sys.exit(3)

RANGE = 100


def worker(num, args, ready_w, go_r):
    random.seed(num)
    cache = diskcache.FanoutCache(args.dir, shards=args.shards,
                                  timeout=args.timeout)
    os.write(ready_w, b'x')
    os.close(ready_w)
    os.read(go_r, 1)  # returns b'' when the parent closes the pipe
    os.close(go_r)

    ns = array.array('Q')
    ops = bytearray()
    miss = bytearray()
    t_first = t_last = 0
    busy = 0
    clock = time.perf_counter_ns
    get, set_, delete = cache.get, cache.set, cache.delete
    for count in range(args.ops):
        key = str(random.randrange(RANGE)).encode('utf-8')
        value = str(count).encode('utf-8') * random.randrange(1, 100)
        choice = random.random()

        if choice < 0.900:
            start = clock()
            result = get(key)
            end = clock()
            op, missed = 0, result is None
        elif choice < 0.990:
            start = clock()
            result = set_(key, value)
            end = clock()
            op, missed = 1, result is False
            busy += missed
        else:
            start = clock()
            result = delete(key)
            end = clock()
            op, missed = 2, result is False

        if count >= args.warmup:
            if not ns:
                t_first = start
            t_last = end
            ns.append(end - start)
            ops.append(op)
            miss.append(1 if missed else 0)

    cache.close()
    path = os.path.join(args.out, 'py-%d.bin' % num)
    with open(path, 'wb') as out:
        array.array('q', [t_first, t_last, len(ns), busy]).tofile(out)
        ns.tofile(out)
        out.write(bytes(ops))
        out.write(bytes(miss))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dir', required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--procs', type=int, default=1)
    parser.add_argument('--ops', type=int, default=100000)
    parser.add_argument('--warmup', type=int, default=1000)
    parser.add_argument('--shards', type=int, default=8)
    parser.add_argument('--timeout', type=float, default=0.010)
    args = parser.parse_args()

    # perf_counter_ns must be CLOCK_MONOTONIC for the wall span to agree
    # with tiercache-bench's clock.
    if time.get_clock_info('perf_counter').implementation != \
            'clock_gettime(CLOCK_MONOTONIC)':
        print('diskcache_workload: perf_counter is not CLOCK_MONOTONIC',
              file=sys.stderr)

    cache = diskcache.FanoutCache(args.dir, shards=args.shards,
                                  timeout=args.timeout)
    for key in range(RANGE):
        key = str(key).encode('utf-8')
        cache.set(key, key)
    cache.close()

    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pids = []
    for num in range(args.procs):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(ready_r)
                os.close(go_w)
                worker(num, args, ready_w, go_r)
                status = 0
            except BaseException as exc:  # report, never return to main
                print('diskcache_workload: worker %d: %r' % (num, exc),
                      file=sys.stderr)
            finally:
                os._exit(status)
        pids.append(pid)
    os.close(ready_w)
    os.close(go_r)
    ready = 0
    while ready < args.procs:
        got = os.read(ready_r, args.procs)
        if not got:
            break
        ready += len(got)
    os.close(go_w)  # start everyone at once
    os.close(ready_r)

    failed = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failed += 1
    return 1 if failed or ready < args.procs else 0


if __name__ == '__main__':
    sys.exit(main())
