#!/usr/bin/python3
"""Interop test: tiercache's Deque and Index <-> python-diskcache's.

Run by meson as `/usr/bin/python3 test_collections.py PATH/TO/tc_collections`.

For the Deque and for the Index:

  1. One script of operations (maxlen, rotate both ways and by more than
     the length, reverse, remove, indexed get/set/delete, count with 1 and
     1.0, popitem, setdefault, push/pull, ...) runs on python-diskcache in
     directory P and on tiercache (tc_collections) in directory T. Every
     answer must be the same, line for line, with raw-typed values only
     (str, bytes, int, float; values over disk_min_file_size included).
  2. P and T hold the same contents in the same order, and the same keys
     (the Deque's integer keys, the Index's keys in rowid order).
  3. Each side reads the other's directory: tiercache dumps P, python
     dumps T, and python's check() finds nothing wrong in T.
  4. Each side goes on writing in the other's directory (a second script:
     python on T, tiercache on P); the answers and the final contents
     must again agree.

python-diskcache before 5.6 has no Deque maxlen: the python side then
applies 5.6's rule itself (a push that makes the deque too long pops one
item from the other end in the same transaction; setting maxlen pops from
the left until the deque fits).

Prints one line per check and `collections: N passed, M failed`; exits 1
on any failure, 77 (meson's skip) when python3-diskcache is missing unless
CI=true.
"""

import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile

try:
    import diskcache
except ImportError:
    if os.environ.get('CI') == 'true':
        print('FAIL - python3-diskcache is not installed (CI=true)')
        print('collections: 0 passed, 1 failed')
        sys.exit(1)
    print('collections: skipped (python3-diskcache is not installed)')
    sys.exit(77)

TOOL = sys.argv[1]
PASSED, FAILED = [0], [0]
BIG_TEXT = 'é' * 20000 + 'x' * 20000  # 40000 characters: a value file
BIG_BYTES = bytes(range(256)) * 200  # 51200 bytes: a value file


def check(name, cond, detail=''):
    if cond:
        PASSED[0] += 1
        print('ok   ' + name)
    else:
        FAILED[0] += 1
        print('FAIL ' + name + (': ' + detail if detail else ''))


# ---- data encoding (tc_collections' datum format) -------------------------

def enc(v):
    """TYPE and PAYLOAD fields of a raw-typed python value."""
    if isinstance(v, str):
        return 'text\t' + v.encode('utf-8').hex()
    if isinstance(v, bytes):
        return 'bytes\t' + v.hex()
    if isinstance(v, int):
        return 'int\t%d' % v
    if isinstance(v, float):
        return 'real\t' + struct.pack('!d', v).hex()
    raise TypeError(repr(v))


def op_line(op):
    """A script line for tc_collections."""
    name, args = op[0], op[1:]
    fields = [name]
    for a in args:
        if isinstance(a, list):  # extend's values
            fields += [enc(v) for v in a]
        elif isinstance(a, tuple):  # a raw field (index, side, prefix)
            fields += [str(x) for x in a]
        else:
            fields.append(enc(a))
    return '\t'.join(fields)


def run_tc(kind, directory, ops):
    script = ''.join(op_line(op) + '\n' for op in ops)
    res = subprocess.run([TOOL, kind, directory], input=script.encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = res.stdout.decode().splitlines()
    if res.returncode != 0:
        out.append('exit %d %s' % (res.returncode, res.stderr.decode()))
    return out


# ---- the python side --------------------------------------------------------

NATIVE_MAXLEN = hasattr(diskcache.Deque, 'maxlen')


class PyDeque:
    """diskcache.Deque with 5.6's maxlen, emulated before 5.6."""

    def __init__(self, directory):
        self.d = diskcache.Deque(directory=directory)
        self.maxlen = None

    def set_maxlen(self, n):
        self.maxlen = None if n < 0 else n
        if NATIVE_MAXLEN:
            self.d.maxlen = float('inf') if n < 0 else n
            return
        with self.d.transact():
            while self.maxlen is not None and len(self.d) > self.maxlen:
                self.d.popleft()

    def push(self, v, left):
        if NATIVE_MAXLEN:
            (self.d.appendleft if left else self.d.append)(v)
            return
        with self.d.transact():
            (self.d.appendleft if left else self.d.append)(v)
            if self.maxlen is not None and len(self.d) > self.maxlen:
                (self.d.pop if left else self.d.popleft)()

    def extend(self, vals, left):
        with self.d.transact():
            for v in vals:
                self.push(v, left)


def answer_value(v):
    return 'value\t' + enc(v)


def run_py_deque(directory, ops):
    dq = PyDeque(directory)
    d = dq.d
    out = []
    for op in ops:
        name = op[0]
        if name in ('append', 'appendleft'):
            dq.push(op[1], name == 'appendleft')
        elif name in ('extend', 'extendleft'):
            dq.extend(op[1], name == 'extendleft')
        elif name in ('pop', 'popleft', 'peek', 'peekleft'):
            try:
                out.append(answer_value(getattr(d, name)()))
            except IndexError:
                out.append('empty')
        elif name == 'get':
            try:
                out.append(answer_value(d[op[1][0]]))
            except IndexError:
                out.append('range')
        elif name in ('set', 'delete'):
            try:
                if name == 'set':
                    d[op[1][0]] = op[2]
                else:
                    del d[op[1][0]]
                out.append('ok')
            except IndexError:
                out.append('range')
        elif name == 'count':
            out.append('count\t%d' % d.count(op[1]))
        elif name == 'remove':
            try:
                d.remove(op[1])
                out.append('ok')
            except ValueError:
                out.append('missing')
        elif name == 'reverse':
            d.reverse()
        elif name == 'rotate':
            d.rotate(op[1][0])
        elif name == 'maxlen':
            dq.set_maxlen(op[1][0])
        elif name == 'clear':
            d.clear()
        elif name == 'len':
            out.append('len\t%d' % len(d))
        elif name == 'dump':
            items = list(d)
            out.append('dump\t%d' % len(items))
            out += ['item\t' + enc(v) for v in items]
        else:
            raise ValueError(name)
    d.cache.close()
    return out


def run_py_index(directory, ops):
    ix = diskcache.Index(directory)
    out = []
    for op in ops:
        name = op[0]
        if name == 'set':
            ix[op[1]] = op[2]
        elif name in ('get', 'pop'):
            try:
                out.append(answer_value(ix[op[1]] if name == 'get'
                                        else ix.pop(op[1])))
            except KeyError:
                out.append('missing')
        elif name == 'delete':
            try:
                del ix[op[1]]
                out.append('ok')
            except KeyError:
                out.append('missing')
        elif name == 'setdefault':
            out.append(answer_value(ix.setdefault(op[1], op[2])))
        elif name in ('popitem', 'peekitem'):
            try:
                k, v = getattr(ix, name)(last=bool(op[1][0]))
                out.append('item\t%s\t%s' % (enc(k), enc(v)))
            except KeyError:
                out.append('empty')
        elif name == 'push':
            side, prefix = op[2]
            key = ix.push(op[1], prefix=None if prefix == '-' else prefix,
                          side=side)
            out.append('key\t' + enc(key))
        elif name == 'pull':
            side, prefix = op[1]
            k, v = ix.pull(prefix=None if prefix == '-' else prefix,
                           side=side)
            out.append('empty' if k is None else
                       'item\t%s\t%s' % (enc(k), enc(v)))
        elif name == 'clear':
            ix.clear()
        elif name == 'len':
            out.append('len\t%d' % len(ix))
        elif name == 'dump':
            items = list(ix.items())
            out.append('dump\t%d' % len(items))
            out += ['item\t%s\t%s' % (enc(k), enc(v)) for k, v in items]
        else:
            raise ValueError(name)
    ix.cache.close()
    return out


# ---- scripts ------------------------------------------------------------------

DEQUE_OPS = [
    ('extend', ['a', b'b', 1, 2.5, 'é', BIG_TEXT, BIG_BYTES, -7]),
    ('append', 1.0), ('appendleft', 'left'), ('extendleft', [b'x', 'y', 0]),
    ('dump',), ('len',),
    ('count', 1), ('count', 1.0), ('count', 'a'), ('count', b'a'),
    ('count', BIG_TEXT), ('count', BIG_BYTES), ('count', 'nope'),
    ('rotate', (2,)), ('dump',), ('rotate', (-3,)), ('dump',),
    ('rotate', (25,)), ('rotate', (-40,)), ('rotate', (0,)), ('dump',),
    ('reverse',), ('dump',),
    ('get', (0,)), ('get', (-1,)), ('get', (3,)), ('get', (-5,)),
    ('get', (100,)), ('get', (-100,)),
    ('set', (1,), 'S'), ('set', (-2,), 42), ('set', (0,), BIG_BYTES),
    ('set', (99,), 'x'), ('set', (-99,), 'x'), ('dump',),
    ('delete', (0,)), ('delete', (-1,)), ('delete', (4,)), ('delete', (77,)),
    ('dump',),
    ('remove', 'a'), ('remove', 'nope'), ('remove', 1), ('remove', 1.0),
    ('remove', BIG_TEXT), ('dump',),
    ('peek',), ('peekleft',), ('pop',), ('popleft',), ('dump',),
    ('maxlen', (4,)), ('dump',), ('append', 'm1'), ('appendleft', 'm0'),
    ('dump',), ('extend', ['e1', 'e2', 'e3']), ('dump',),
    ('extendleft', ['l1', 'l2', 'l3', 'l4', 'l5']), ('dump',),
    ('rotate', (1,)), ('reverse',), ('dump',),
    ('maxlen', (-1,)), ('extend', [1, 2, 3]), ('len',), ('dump',),
    ('clear',), ('pop',), ('popleft',), ('peek',), ('peekleft',),
    ('rotate', (3,)), ('reverse',), ('get', (0,)), ('dump',),
    ('extend', ['z', 2, 'z', 2.0, b'z']), ('dump',),
]

DEQUE_MORE = [
    ('dump',), ('append', 'after'), ('appendleft', b'before'),
    ('rotate', (-2,)), ('reverse',), ('remove', 'z'), ('count', 2),
    ('set', (-1,), 3.5), ('delete', (1,)), ('dump',),
    ('maxlen', (3,)), ('append', 'last'), ('dump',),
]

INDEX_OPS = [
    ('set', 'a', 1), ('set', b'b', 'bee'), ('set', 3, 2.5),
    # -4.5: a float key outside the integer queue range (0, 999999999999999)
    # that push/pull below use.
    ('set', -4.5, b'\xff\x00'), ('set', 'big', BIG_TEXT),
    ('set', 'bin', BIG_BYTES), ('set', 'a', 'one'),  # an update keeps its place
    ('dump',), ('len',),
    ('get', 'a'), ('get', b'b'), ('get', 'b'), ('get', 3), ('get', 3.0),
    ('get', 'nope'),
    ('delete', 'a'), ('delete', 'a'), ('pop', 3), ('pop', 3),
    ('setdefault', 'new', 'dflt'), ('setdefault', 'new', 'other'),
    ('setdefault', 'big', 'x'), ('dump',),
    ('peekitem', (1,)), ('peekitem', (0,)),
    ('popitem', (1,)), ('popitem', (0,)), ('dump',),
    ('push', 'q1', ('back', '-')), ('push', 'q0', ('front', '-')),
    ('push', 'f1', ('back', 'fruit')), ('push', 'f2', ('back', 'fruit')),
    ('dump',),
    ('pull', ('front', '-')), ('pull', ('back', 'fruit')),
    ('pull', ('front', 'none')), ('dump',),
    ('popitem', (1,)), ('popitem', (1,)), ('popitem', (1,)),
    ('popitem', (1,)), ('popitem', (1,)), ('popitem', (0,)),
    ('peekitem', (1,)), ('len',),
    ('set', 'x', 1), ('set', 'y', 2), ('clear',), ('len',),
    ('set', 'k1', 'v1'), ('set', 2, 'v2'), ('set', 'k3', BIG_BYTES),
    ('dump',),
]

INDEX_MORE = [
    ('dump',), ('set', 'k4', 4), ('setdefault', 'k1', 'x'),
    ('setdefault', 'k5', 5.5), ('popitem', (0,)), ('delete', 2),
    ('push', 'p', ('back', '-')), ('pull', ('back', '-')),
    ('dump',),
]


# ---- the checks -----------------------------------------------------------------

def sql_keys(directory, order):
    db = sqlite3.connect(os.path.join(directory, 'cache.db'))
    try:
        return db.execute('SELECT key, raw FROM Cache ORDER BY ' +
                          order).fetchall()
    finally:
        db.close()


def compare(name, got_py, got_tc):
    if got_py == got_tc:
        check(name, True)
        return
    for i, (p, t) in enumerate(zip(got_py, got_tc)):
        if p != t:
            check(name, False, 'line %d: python %r, tiercache %r' %
                  (i + 1, p[:120], t[:120]))
            return
    check(name, False, 'python gave %d lines, tiercache %d; extra: %r' %
          (len(got_py), len(got_tc),
           (got_py[len(got_tc):] or got_tc[len(got_py):])[:3]))


def scenario(kind, ops, more, run_py, key_order):
    base = tempfile.mkdtemp(prefix='tc-collections-')
    p_dir, t_dir = os.path.join(base, 'py'), os.path.join(base, 'tc')
    ok = True
    try:
        out_py = run_py(p_dir, ops)
        out_tc = run_tc(kind, t_dir, ops)
        compare(kind + ': same answers to the same operations', out_py,
                out_tc)
        check(kind + ': the script checked something',
              len(out_py) > 40, '%d answers' % len(out_py))

        keys_py, keys_tc = sql_keys(p_dir, key_order), sql_keys(t_dir,
                                                                key_order)
        check(kind + ': same keys in the same order (SQLite)',
              keys_py == keys_tc, 'python %r, tiercache %r' %
              (keys_py[:8], keys_tc[:8]))

        # Each side reads the other's directory.
        compare(kind + ': tiercache reads the python directory',
                run_py(p_dir, [('dump',)]), run_tc(kind, p_dir, [('dump',)]))
        compare(kind + ': python reads the tiercache directory',
                run_tc(kind, t_dir, [('dump',)]), run_py(t_dir, [('dump',)]))
        cache = diskcache.Cache(t_dir)
        warnings = cache.check()
        cache.close()
        check(kind + ': python check() of the tiercache directory is clean',
              not warnings, repr(warnings[:3]))

        # Each side goes on in the other's directory.
        more_py = run_py(t_dir, more)
        more_tc = run_tc(kind, p_dir, more)
        compare(kind + ': python on the tiercache directory answers as '
                'tiercache on the python one', more_py, more_tc)
        compare(kind + ': both directories end with the same contents',
                run_py(p_dir, [('dump',)]), run_py(t_dir, [('dump',)]))
        check(kind + ': and the same keys', sql_keys(p_dir, key_order) ==
              sql_keys(t_dir, key_order))
        cache = diskcache.Cache(p_dir)
        warnings = cache.check()
        cache.close()
        check(kind + ': python check() after tiercache wrote is clean',
              not warnings, repr(warnings[:3]))
        ok = FAILED[0] == 0
    finally:
        if ok and os.environ.get('TC_INTEROP_KEEP') != '1':
            drop_segments([p_dir, t_dir])
            shutil.rmtree(base, ignore_errors=True)
        else:
            print('     kept ' + base)


def drop_segments(dirs):
    """Remove the hot-tier segments tiercache made for these directories
    (shm/segment.c names them after the directory's device and inode)."""
    shm = os.environ.get('TIERCACHE_SHM_DIR') or '/dev/shm'
    for d in dirs:
        try:
            st = os.stat(d)
        except OSError:
            continue
        seg = os.path.join(shm, 'tiercache-%x-%x' % (st.st_dev, st.st_ino))
        for path in (seg, seg + '.lock'):
            try:
                os.unlink(path)
            except OSError:
                pass


def main():
    print('python-diskcache %s (Deque maxlen: %s)' %
          (diskcache.__version__, 'native' if NATIVE_MAXLEN else
           'emulated as 5.6'))
    scenario('deque', DEQUE_OPS, DEQUE_MORE, run_py_deque, 'key, raw')
    scenario('index', INDEX_OPS, INDEX_MORE, run_py_index, 'rowid')
    print('collections: %d passed, %d failed' % (PASSED[0], FAILED[0]))
    sys.exit(1 if FAILED[0] else 0)


if __name__ == '__main__':
    main()
