#!/usr/bin/python3
"""python-diskcache's Deque, Index and recipes, run by tiercache-bench
--only recipes (bench/bench_recipes.c runs the same rows in C).

usage: diskcache_recipes.py DIR [--row GROUP] [--runs N] [--lock-ops N] ...
(see main() for every size; tiercache-bench passes them all, and runs one
--row group at a time, right after its own rows of that group)

Every row works in its own directory under DIR, with str keys and
100-character str values as the C side. Each row runs one untimed warm-up
run (except "held") and then RUNS timed runs, timed with
time.perf_counter_ns(). Output: "version X.Y.Z" first, then one line per
timed run:

  lock RUN NS              Lock.acquire() + release(), uncontended, per pair
  handoff RUN NS COUNTER FIRST CHANGES
                           2 forked processes, N iterations each of
                           acquire / cache[k] = cache[k] + 1 / release:
                           wall ns from the start barrier to both exits,
                           the counter afterwards (2N when exact), ns
                           until the first process was done, and the
                           iterations that found the other's write
  held RUN ADDS SECONDS    calls of cache.add (each one BEGIN IMMEDIATE
                           write transaction) made by one Lock.acquire()
                           loop in HOLD seconds while a forked process
                           holds the lock, and the seconds measured
  deque_pair RUN NS        deque.append + popleft on a 1000-item deque
  deque_mid RUN NS         deque[len // 2] of that deque
  index_set RUN NS         index[key] = value, SET_PASSES passes over KEYS
                           keys (the warm-up stores, the timed runs
                           overwrite)
  index_get RUN NS         index[key], PASSES passes over KEYS keys
  stampede_hit RUN NS      a memoize_stampede(expire=3600, beta=1) hit
  averager_add RUN NS      Averager.add(1.0)
  throttle_take RUN NS     a throttle(count=1e9, seconds=1) no-op call
and after the recipes group: "calls stampede N" (computations of the memoized
function: 1 when every timed call was a hit) and "calls throttle_sleep N"
(throttle's sleeps: 0 expected). Exit status: 0 ok, 3 diskcache cannot be
imported, 1 otherwise.
"""

import argparse
import os
import struct
import sys
import time

try:
    import diskcache
    from diskcache.recipes import Averager, Lock, memoize_stampede, throttle
except ImportError as exc:  # pragma: no cover - environment dependent
    print('diskcache_recipes: cannot import diskcache: %s' % exc,
          file=sys.stderr)
    sys.exit(3)

VALUE = 'v' * 100
clock = time.perf_counter_ns


def out(*fields):
    print(*fields, flush=True)


def timed_runs(name, runs, ops, body):
    """Call body() once untimed, then RUNS times; print ns per op."""
    for run in range(-1, runs):
        t0 = clock()
        body()
        ns = (clock() - t0) / ops
        if run >= 0:
            out(name, run, '%.1f' % ns)


def row_lock(base, args):
    cache = diskcache.Cache(os.path.join(base, 'lock'))
    lock = Lock(cache, 'lock')

    def body():
        acquire, release = lock.acquire, lock.release
        for _ in range(args.lock_ops):
            acquire()
            release()

    timed_runs('lock', args.runs, args.lock_ops, body)
    cache.close()


def handoff_worker(directory, n, ready_w, go_r, res_w):
    cache = diskcache.Cache(directory)
    lock = Lock(cache, 'lock')
    os.write(ready_w, b'x')
    os.close(ready_w)
    os.read(go_r, 1)  # b'' when the parent closes the pipe: start
    os.close(go_r)
    mine = changes = 0
    for _ in range(n):
        lock.acquire()
        value = cache['counter']
        changes += value != mine  # the other process held it in between
        mine = value + 1
        cache['counter'] = mine
        lock.release()
    os.write(res_w, struct.pack('qq', clock(), changes))
    cache.close()


def fork_child(parent_fds, target, *fargs):
    """Fork; the child closes @parent_fds (the parent's pipe ends, or a
    read would never see EOF) and runs target(*fargs)."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            for fd in parent_fds:
                os.close(fd)
            target(*fargs)
            status = 0
        except BaseException as exc:  # report, never return to main
            print('diskcache_recipes: child: %r' % exc, file=sys.stderr)
        finally:
            os._exit(status)
    return pid


def row_handoff(base, args):
    directory = os.path.join(base, 'handoff')
    for run in range(-1, args.runs):
        # No Cache is open in this process across the fork: diskcache's
        # connections must not be shared with a child.
        with diskcache.Cache(directory) as cache:
            cache['counter'] = 0
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        res_r, res_w = os.pipe()
        pids = [fork_child((ready_r, go_w, res_r), handoff_worker, directory,
                           args.handoff_n, ready_w, go_r, res_w)
                for _ in range(2)]
        os.close(ready_w)
        os.close(go_r)
        os.close(res_w)
        ready = 0
        while ready < 2:
            got = os.read(ready_r, 2)
            if not got:
                break
            ready += len(got)
        t0 = clock()
        os.close(go_w)
        os.close(ready_r)
        failed = 0
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            failed += status != 0
        ns = clock() - t0
        ends = os.read(res_r, 32)
        os.close(res_r)
        if failed or ready < 2 or len(ends) != 32:
            raise RuntimeError('handoff: a worker failed')
        end0, changes0, end1, changes1 = struct.unpack('qqqq', ends)
        with diskcache.Cache(directory) as cache:
            counter = cache['counter']
        if run >= 0:
            out('handoff', run, ns, counter, min(end0, end1) - t0,
                changes0 + changes1)


class Deadline(Exception):
    pass


def holder(directory, ready_w, go_r):
    cache = diskcache.Cache(directory)
    lock = Lock(cache, 'lock')
    lock.acquire()
    os.write(ready_w, b'x')
    os.close(ready_w)
    os.read(go_r, 1)  # until the parent closes the pipe
    lock.release()
    cache.close()


def row_held(base, args):
    directory = os.path.join(base, 'held')
    for run in range(args.runs):
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = fork_child((ready_r, go_w), holder, directory, ready_w, go_r)
        os.close(ready_w)
        os.close(go_r)
        if os.read(ready_r, 1) != b'x':
            raise RuntimeError('held: the holder died before it held')
        os.close(ready_r)
        cache = diskcache.Cache(directory)
        lock = Lock(cache, 'lock')
        real_add = cache.add
        state = {'adds': 0, 'won': 0}
        deadline = 0

        def counting_add(*a, **k):
            if clock() >= deadline:
                raise Deadline()
            state['adds'] += 1
            added = real_add(*a, **k)
            state['won'] += bool(added)
            return added

        cache.add = counting_add  # what Lock.acquire calls
        t0 = clock()
        deadline = t0 + int(args.hold * 1e9)
        try:
            lock.acquire()
        except Deadline:
            pass
        secs = (clock() - t0) / 1e9
        cache.close()
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
        if status != 0 or state['won']:
            raise RuntimeError('held: the lock was not held throughout')
        out('held', run, state['adds'], '%.6f' % secs)


def row_deque(base, args):
    deque = diskcache.Deque(directory=os.path.join(base, 'deque'))
    deque.extend([VALUE] * args.deque_len)

    def pairs():
        append, popleft = deque.append, deque.popleft
        for _ in range(args.deque_pairs):
            append(VALUE)
            if popleft() != VALUE:
                raise RuntimeError('deque: popleft returned another value')

    timed_runs('deque_pair', args.runs, args.deque_pairs, pairs)
    mid = len(deque) // 2

    def gets():
        for _ in range(args.deque_gets):
            if deque[mid] != VALUE:
                raise RuntimeError('deque: deque[mid] is another value')

    timed_runs('deque_mid', args.runs, args.deque_gets, gets)
    deque.cache.close()


def row_index(base, args):
    index = diskcache.Index(os.path.join(base, 'index'))
    keys = ['key-%d' % i for i in range(args.index_keys)]

    def sets():
        for _ in range(args.index_set_passes):
            for k in keys:
                index[k] = VALUE

    timed_runs('index_set', args.runs, len(keys) * args.index_set_passes,
               sets)

    def gets():
        for _ in range(args.index_passes):
            for k in keys:
                if index[k] != VALUE:
                    raise RuntimeError('index: %s holds another value' % k)

    timed_runs('index_get', args.runs, len(keys) * args.index_passes, gets)
    index.cache.close()


def row_recipes(base, args):
    cache = diskcache.Cache(os.path.join(base, 'recipes'))
    calls = {'stampede': 0, 'throttle_sleep': 0}

    @memoize_stampede(cache, expire=3600, beta=1)
    def compute():
        calls['stampede'] += 1
        return VALUE

    def hits():
        for _ in range(args.stampede_ops):
            if compute() != VALUE:
                raise RuntimeError('stampede: another value')

    timed_runs('stampede_hit', args.runs, args.stampede_ops, hits)

    averager = Averager(cache, 'avg')

    def adds():
        add = averager.add
        for _ in range(args.averager_ops):
            add(1.0)

    timed_runs('averager_add', args.runs, args.averager_ops, adds)
    if averager.get() != 1.0:
        raise RuntimeError('averager: the average is not 1.0')

    def sleep(seconds):
        calls['throttle_sleep'] += 1
        time.sleep(seconds)

    @throttle(cache, 1e9, 1, name='throttle', sleep_func=sleep)
    def noop():
        pass

    def takes():
        for _ in range(args.throttle_ops):
            noop()

    timed_runs('throttle_take', args.runs, args.throttle_ops, takes)
    cache.close()
    out('calls', 'stampede', calls['stampede'])
    out('calls', 'throttle_sleep', calls['throttle_sleep'])


ROWS = {'lock': row_lock, 'handoff': row_handoff, 'held': row_held,
        'deque': row_deque, 'index': row_index, 'recipes': row_recipes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dir')
    parser.add_argument('--row', default='all',
                        choices=('all',) + tuple(ROWS))
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--lock-ops', type=int, default=4000)
    parser.add_argument('--handoff-n', type=int, default=500)
    parser.add_argument('--hold', type=float, default=2.0)
    parser.add_argument('--deque-len', type=int, default=1000)
    parser.add_argument('--deque-pairs', type=int, default=4000)
    parser.add_argument('--deque-gets', type=int, default=200)
    parser.add_argument('--index-keys', type=int, default=1000)
    parser.add_argument('--index-set-passes', type=int, default=5)
    parser.add_argument('--index-passes', type=int, default=2)
    parser.add_argument('--stampede-ops', type=int, default=20000)
    parser.add_argument('--averager-ops', type=int, default=5000)
    parser.add_argument('--throttle-ops', type=int, default=5000)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    out('version', diskcache.__version__)
    for name, row in ROWS.items():
        if args.row in ('all', name):
            row(args.dir, args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
