#!/usr/bin/python3
"""Interop suite: tiercache <-> python-diskcache 5.x, in both directions.

Run by meson as `/usr/bin/python3 test_interop.py PATH/TO/tc_interop`.

For a plain Cache (DIR/cache.db) and a FanoutCache with 8 shards:

  1. python-diskcache writes the dataset into A (every raw key/value type,
     values at and over 32 KiB, tags of every type, expiry in the future and
     already expired); python's check() must be clean; tiercache then dumps A
     and looks keys up, and must see exactly the dataset.
  2. tiercache writes the same dataset into B (tc_interop write).
  3. The SQLite rows of A and B are compared directly: key, raw, mode, value,
     size, tag, expire_time, filename pattern, value files, shard placement,
     Settings rows, schema objects and pragmas.
  4. python-diskcache reads B (get with expire_time and tag, iteration,
     len, reset('count'), volume, check()).
  5. python writes more to B (including pickles, which tiercache must report
     as unsupported, never crash on); tiercache dumps B again.
  6. tiercache writes more to A (including a MessagePack value, which python
     reads as None); python reads A again and check() must stay clean.

The four scenarios are: plain and 8 shards with default settings, and the
same with non-default settings (disk_min_file_size 1000, LRU, tag index,
cull_limit 0, size_limit split across shards) written by both sides.

Also: Disk.hash on fixed vectors and ~1400 random keys; tc_get, tc_read and
tc_get_buf on python-written data; look-alike keys (1 vs 1.0, 'a' vs b'a');
vanished value files; invalid UTF-8 refused; a python key over
TC_MAX_KEY_BYTES; LRU/LFU/statistics bookkeeping of reads equal to python's.

Expiry notes: python's set() culls up to cull_limit expired rows in its own
transaction, the new row included, so items written already expired vanish
at once (the model below mirrors that); items that must be read as
"expired but present" are written with a short expiry (SOON) and read after
it has passed, or with cull_limit 0.

Set TC_INTEROP_KEEP=1 to keep the cache directories (they are always kept
when a check fails).

Prints one line per check and finally `interop: N passed, M failed`; exits 1
on any failure, 77 (meson's skip) when python3-diskcache is missing unless
CI=true.
"""

import collections
import math
import os
import pickle
import random
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import diskcache
except ImportError:
    if os.environ.get('CI') == 'true':
        print('FAIL - python3-diskcache is not installed (CI=true)')
        print('interop: 0 passed, 1 failed')
        sys.exit(1)
    print('interop: skipped (python3-diskcache is not installed)')
    sys.exit(77)

SHARDS = 8
CULL_LIMIT = 10
SETTINGS = {'disk_min_file_size': 1000,
            'eviction_policy': 'least-recently-used', 'cull_limit': 0,
            'tag_index': 1, 'size_limit': 2 ** 28}
SOON = 2.0  # expiry of items that must expire between writing and reading
MIN_FILE = 32768
EXPIRE_SLACK = 60.0  # seconds allowed between expected and stored expiry
FILENAME_RE = re.compile(r'^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val$')
# Schema objects and files tiercache may add next to python-diskcache's.
TC_EXTRA_RE = re.compile(r'tiercache|^tc_', re.IGNORECASE)
MISSING = object()

PASSED = 0
FAILED = 0


def report(name, ok, detail=''):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print('ok - %s' % name)
    else:
        FAILED += 1
        print('FAIL - %s%s' % (name, (': ' + detail) if detail else ''))
    sys.stdout.flush()
    return ok


def note(msg):
    print('# %s' % msg)


_NOTED = set()


def note_once(msg):
    if msg not in _NOTED:
        _NOTED.add(msg)
        note(msg)


def short(x, n=120):
    s = repr(x)
    return s if len(s) <= n else s[:n] + '...(%d chars)' % len(s)


def section(fn):
    """Run a group of checks; an exception is one failure, not the end."""
    def run(*args, **kw):
        try:
            return fn(*args, **kw)
        except Exception:
            report('%s raised' % fn.__name__, False,
                   traceback.format_exc().strip().replace('\n', '\n# '))
            return None
    run.__name__ = fn.__name__
    return run


# ---------------------------------------------------------------------------
# Encoding shared with tc_interop.c: TYPE and PAYLOAD fields.

class Msgpack:
    """A value tiercache stores with its own mode 16."""

    def __init__(self, data):
        self.data = bytes(data)

    def __repr__(self):
        return 'Msgpack(%s)' % short(self.data, 40)


INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1


def is_raw(x):
    """True when python-diskcache stores x without pickling it."""
    t = type(x)
    if t is int:
        return INT64_MIN <= x <= INT64_MAX
    return t in (bytes, str, float)


def enc(x):
    """(type, payload) of a python value, as tc_interop prints it."""
    t = type(x)
    if x is None:
        return ('none', '')
    if t is bytes:
        return ('bytes', x.hex())
    if t is str:
        return ('text', x.encode('utf-8').hex())
    if t is int and INT64_MIN <= x <= INT64_MAX:
        return ('int', str(x))
    if t is float:
        return ('real', struct.pack('!d', x).hex())
    if t is Msgpack:
        return ('msgpack', x.data.hex())
    return ('pickle', repr(x))


def enc_line(x):
    e = enc(x)
    assert e[0] != 'pickle', 'tc_interop cannot write %r' % (x,)
    return '%s\t%s' % e


def python_view(x):
    """What python-diskcache returns for a stored value x."""
    return None if type(x) is Msgpack else x


def expected_mode(value, min_file):
    """The mode python-diskcache picks for a value (5.4.0 Disk.store)."""
    t = type(value)
    if t is Msgpack:
        return 16
    if t is bytes:
        return 1 if len(value) < min_file else 2
    if t is str:
        return 1 if len(value) < min_file else 3
    if is_raw(value):
        return 1
    return 4


_DISK = None


def disk_hash(key):
    """Disk.hash as a Cache's Disk computes it (pickled keys depend on the
    pickle protocol, which a bare Disk() leaves at 0)."""
    global _DISK
    if _DISK is None:
        _DISK = diskcache.Disk(tempfile.gettempdir(), min_file_size=MIN_FILE,
                               pickle_protocol=pickle.HIGHEST_PROTOCOL)
    return _DISK.hash(key)


# ---------------------------------------------------------------------------
# Running the helper.

HELPER = None


def helper(args, stdin_text=''):
    proc = subprocess.run([HELPER] + args, input=stdin_text,
                          capture_output=True, text=True, encoding='utf-8',
                          errors='replace', timeout=240)
    return proc


def helper_ok(name, args, stdin_text=''):
    proc = helper(args, stdin_text)
    errors = [ln for ln in proc.stdout.splitlines() if ln.startswith('error')]
    ok = proc.returncode == 0 and not errors
    if proc.returncode < 0:
        detail = 'killed by signal %d' % -proc.returncode
    else:
        detail = 'exit %d' % proc.returncode
    report(name, ok, '%s; %s; stderr: %s' % (detail, short(errors, 600),
                                             short(proc.stderr, 600)))
    return proc


class Dump:
    def __init__(self, text):
        self.records = []
        self.meta = {}
        self.errors = []
        for line in text.splitlines():
            f = line.split('\t')
            if f[0] == 'item' and len(f) == 9:
                exp = None if f[6] == '-' else float(f[6])
                self.records.append(('item', int(f[1]), (f[2], f[3]),
                                     (f[4], f[5]), exp, (f[7], f[8])))
            elif f[0] in ('missing', 'unsupported') and len(f) == 4:
                self.records.append((f[0], int(f[1]), (f[2], f[3])))
            elif f[0] == 'read' and len(f) == 5:
                self.records.append(('read', int(f[1]), (f[2], f[3]), f[4]))
            elif f[0] == 'buf' and len(f) == 7:
                exp = None if f[6] == '-' else float(f[6])
                self.records.append(('buf', int(f[1]), (f[2], f[3]),
                                     (f[4], f[5]), exp))
            elif f[0] == 'unsupported-key':
                self.records.append(('unsupported-key',))
            elif f[0] in ('shards', 'length', 'volume', 'end', 'warnings'):
                self.meta[f[0]] = int(f[1])
            elif f[0] == 'warning':
                self.records.append(tuple(f))
            elif f[0] == 'error':
                # kept in the stream too, so later records stay aligned
                self.records.append(('error', line))
                self.errors.append(line)
            else:
                self.errors.append(line)


# ---------------------------------------------------------------------------
# The model of what a cache directory should hold.

Entry = collections.namedtuple('Entry', 'key value expire_abs tag')


class Model:
    """Items of a cache in rowid order per shard, as diskcache keeps them."""

    def __init__(self, shards, settings=None):
        self.shards = shards
        self.settings = dict(settings or {})
        self.min_file = self.settings.get('disk_min_file_size', MIN_FILE)
        self.cull_limit = self.settings.get('cull_limit', CULL_LIMIT)
        self.parts = [collections.OrderedDict()
                      for _ in range(max(shards, 1))]

    def shard(self, key):
        return disk_hash(key) % self.shards if self.shards else 0

    def ident(self, key):
        return enc(key)

    def set(self, key, value, expire_abs, tag, now):
        part = self.parts[self.shard(key)]
        part[self.ident(key)] = Entry(key, value, expire_abs, tag)
        self.cull(part, now)

    def cull(self, part, now):
        """diskcache's _cull inside every set: up to cull_limit rows with
        expire_time < now, oldest expiry first, the new row included.
        Size-based culling never triggers here (volume << size_limit)."""
        expired = sorted((e.expire_abs, ident) for ident, e in part.items()
                         if e.expire_abs is not None and e.expire_abs < now)
        for _, ident in expired[:self.cull_limit]:
            del part[ident]

    def delete(self, key):
        del self.parts[self.shard(key)][self.ident(key)]

    def entries(self):
        """(shard, Entry) in iteration order (shards chained)."""
        for i, part in enumerate(self.parts):
            for e in part.values():
                yield i, e

    def __len__(self):
        return sum(len(p) for p in self.parts)


def is_expired(e, now):
    return e.expire_abs is not None and e.expire_abs <= now


def expected_dump(model, now):
    out = []
    for shard, e in model.entries():
        if not is_raw(e.key):
            out.append(('unsupported-key',))
        elif is_expired(e, now):
            out.append(('missing', shard, enc(e.key)))
        elif not is_raw(e.value) and type(e.value) is not Msgpack:
            out.append(('unsupported', shard, enc(e.key)))
        else:
            out.append(('item', shard, enc(e.key), enc(e.value), e.expire_abs,
                        enc(e.tag)))
    return out


def same_record(got, want):
    if got[0] != want[0]:
        return False
    if got[0] != 'item':
        return got == want
    if got[:4] != want[:4] or got[5] != want[5]:
        return False
    if (got[4] is None) != (want[4] is None):
        return False
    return got[4] is None or abs(got[4] - want[4]) <= EXPIRE_SLACK


def compare_records(name, got, want):
    bad = []
    for i in range(max(len(got), len(want))):
        g = got[i] if i < len(got) else None
        w = want[i] if i < len(want) else None
        if g is None or w is None or not same_record(g, w):
            bad.append('#%d got %s want %s' % (i, short(g, 200),
                                               short(w, 200)))
    report(name, not bad, '%d of %d differ; %s' % (
        len(bad), len(want), '; '.join(bad[:6])))


def check_dump(name, proc, model, now):
    d = Dump(proc.stdout)
    report('%s: no error lines' % name, not d.errors and proc.returncode == 0,
           'exit %d %s %s' % (proc.returncode, short(d.errors, 600),
                              short(proc.stderr, 300)))
    report('%s: shard count' % name, d.meta.get('shards') == model.shards,
           'got %r' % d.meta.get('shards'))
    compare_records('%s: items, order, values, tags, expiry' % name,
                    d.records, expected_dump(model, now))
    report('%s: tc_length counts every row' % name,
           d.meta.get('length') == len(model),
           'got %r want %d' % (d.meta.get('length'), len(model)))
    report('%s: iteration saw every row' % name,
           d.meta.get('end') == len(model),
           'got %r want %d' % (d.meta.get('end'), len(model)))
    return d


# ---------------------------------------------------------------------------
# Datasets.

def make_dataset(rng):
    """[(key, value, expire, tag)] covering every listed type."""
    keys = [b'', b'\x00\x01\xfe\xff', b'a', 'a', '', 'hello',
            'h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001f389',
            'tab\tnew\nline\r\\', 'nul\x00inside', b'nul\x00inside',
            -1, 0, 1, INT64_MAX, INT64_MIN,
            4294967295, 4294967296, -4294967297, 1.5, 1e300, -2.5e-300,
            float('inf'), 0.1, 'x' * 1000, b'\xff' * 5000]
    values = [
        b'', bytes(range(256)), rng.randbytes(MIN_FILE - 1),
        rng.randbytes(MIN_FILE), rng.randbytes(100000),
        '', '\u00fcn\u00efc\u00f6d\u00e9 \u2713 \u65e5\u672c\u8a9e \U0001f389',
        'a' * (MIN_FILE - 1), 'b' * MIN_FILE,
        # multibyte text: python decides by characters, not bytes
        '\u00e9' * (MIN_FILE - 1),        # 65534 bytes, inline
        '\u00e9' * MIN_FILE,              # 65536 bytes, file
        '\u65e5' * (MIN_FILE - 1),        # 98301 bytes, inline
        '\U0001f389' * (MIN_FILE - 1),    # 131068 bytes, inline
        '\U0001f389' * MIN_FILE,          # 131072 bytes, file
        'a\u65e5\U0001f389' * 11000,      # 33000 chars, 88000 bytes, file
        '\u00e9' * 20000,                 # 40000 bytes, inline
        'v\x00w', 'x' * 999, b'y' * 1000, '\u00e9' * 1000,
        0, -12345, INT64_MAX, INT64_MIN, 1.5, 1e300, -2.5e-300, -0.0,
        float('inf'), float('-inf'), 3.0,
    ]
    tags = [None, 'tag-text', 'tag \u2713 \u00fcn\u00ef', b'tag\x00bytes',
            b'', 7, -3, INT64_MAX, 2.5, -1e-300, '', 'a\x00b']
    expires = [None, None, 3600.0, None, 86400.0 * 365]
    items = []
    n = 0
    for k in keys:
        items.append((k, values[n % len(values)], expires[n % len(expires)],
                      tags[n % len(tags)]))
        n += 1
    for i, v in enumerate(values):
        items.append(('v%02d' % i, v, expires[n % len(expires)],
                      tags[n % len(tags)]))
        n += 1
    for i, t in enumerate(tags):
        items.append(('tag%02d' % i, i, 600.0 if i % 2 else None, t))
    # Already expired when written: diskcache's set culls such a row in its
    # own transaction, so neither side may keep it (nor its file).
    items += [('expired-inline', 'gone', -10.0, 'tag-text'),
              ('expired-file', rng.randbytes(40000), -10.0, None),
              ('expired-textfile', 'z' * 40000, -5.0, 3),
              (b'expired-bytes-key', 1.5, -1.0, 7),
              (-42, 'negative int key, expired', -5.0, 2.5)]
    # fillers, so every one of the 8 shards holds several keys
    for i in range(48):
        v = [i, float(i) / 7, 'filler %d' % i, b'filler %d' % i][i % 4]
        items.append(('filler-%03d' % i, v, None, None))
    # Expire SOON seconds after being written, last so that no later set of
    # the dataset culls them: the rows stay, and once wait_expired() has run
    # both sides must read them as missing (while len() still counts them).
    items += [('soon-inline', 'soon gone', SOON, 'tag-text'),
              ('soon-file', rng.randbytes(40000), SOON, b'soon'),
              ('soon-textfile', '\u00e9' * 40000, SOON, None),
              (b'soon-bytes-key', 1.5, SOON, 7),
              (-43, 'negative int key, soon expired', SOON, 2.5),
              (7.25, 99, SOON, None)]
    return items


def wait_expired(model, late=0.0):
    """Sleep until every item of model with a short expiry has expired.
    @late: how much later than the model says the items may have been
    written (the helper's run time: the model takes the time before it)."""
    now = time.time()
    soon = [e.expire_abs for _, e in model.entries()
            if e.expire_abs is not None and e.expire_abs < now + 2 * SOON]
    until = max(soon) + late + 0.2 if soon else 0
    if until > now:
        time.sleep(until - now)


def more_python_items(rng):
    """Written by python into B after tiercache wrote it (5.)."""
    return [
        ('set', 'more-text', 'more', None, None),
        ('set', 'more-file', rng.randbytes(50000), 3600.0, 'more'),
        ('set', 'more-textfile', '\u00fc' * 40000, None, b'more'),
        ('set', 'v03', 'replaced a file value', None, None),
        ('set', 'v00', rng.randbytes(60000), None, 9),
        ('delete', 'hello'),
        ('set', ('t', 1), 'tuple key is pickled', None, None),
        ('set', 2 ** 70, 'big int key is pickled', None, None),
        ('set', 'pickled-dict', {'a': 1, 'b': [1, 2]}, None, 'p'),
        ('set', 'pickled-big', list(range(20000)), None, None),
        ('set', 'pickled-bool', True, None, None),
        ('set', 'pickled-bigint', 2 ** 70, None, None),
        ('set', 'more-expired', 'x', -5.0, None),
        ('set', 'more-after-pickles', 12.25, None, None),
    ]


MSGPACK_SMALL = Msgpack(bytes.fromhex('82a16101a1629201 02'.replace(' ', '')))
MSGPACK_BIG = Msgpack(b'\xc6' + struct.pack('>I', 40000) + b'\x5a' * 40000)


def more_tc_items():
    """Written by tiercache into A after python wrote it (6.)."""
    return [
        ('set', 'tc-msgpack', MSGPACK_SMALL, None, 'mp'),
        ('set', 'tc-msgpack-big', MSGPACK_BIG, None, None),
        ('set', 'v04', 'from tiercache (replaced a file)', None, None),
        ('set', 'v01', '\u00e9' * MIN_FILE, 3600.0, b't'),
        ('delete', 'a'),
        ('set', 'tc-new-int', -7, 3600.0, b'x'),
        ('set', 'tc-expired', 'x', -5.0, None),
        ('set', b'tc-bytes-key', 2.75, None, 1.5),
    ]


# ---------------------------------------------------------------------------
# Writers.

def open_py(path, shards, settings=None):
    """Open as python-diskcache does; settings must be passed on every open
    (FanoutCache always rewrites size_limit, default 2**30 / shards)."""
    if shards:
        return diskcache.FanoutCache(path, shards=shards, **(settings or {}))
    return diskcache.Cache(path, **(settings or {}))


def py_apply(path, shards, ops, model):
    """Apply ops with python-diskcache, mirroring them in model."""
    cache = open_py(path, shards, model.settings)
    failures = []
    try:
        for op in ops:
            if op[0] == 'set':
                _, k, v, exp, tag = op
                now = time.time()
                if not cache.set(k, v, expire=exp, tag=tag):
                    failures.append(short(k))
                model.set(k, v, None if exp is None else now + exp, tag, now)
            else:
                if not cache.delete(op[1]):
                    failures.append('delete %s' % short(op[1]))
                model.delete(op[1])
    finally:
        cache.close()
    return failures


def tc_spec(ops, model):
    """The tc_interop write spec for ops, mirroring them in model."""
    lines = []
    now = time.time()
    for op in ops:
        if op[0] == 'set':
            _, k, v, exp, tag = op
            lines.append('set\t%s\t%s\t%s\t%s' % (
                enc_line(k), enc_line(v), '-' if exp is None else repr(exp),
                enc_line(tag)))
            model.set(k, v, None if exp is None else now + exp, tag, now)
        else:
            lines.append('delete\t%s' % enc_line(op[1]))
            model.delete(op[1])
    return ''.join(line + '\n' for line in lines)


def as_ops(items):
    return [('set', k, v, exp, tag) for k, v, exp, tag in items]


# ---------------------------------------------------------------------------
# python-diskcache reading a directory.

def py_check(path, shards, settings):
    cache = open_py(path, shards, settings)
    try:
        return [str(w.message) for w in cache.check()]
    finally:
        cache.close()


def same_value(got, want):
    return enc(got) == enc(want)


@section
def py_read_all(name, path, model):
    """python-diskcache get/iter/len/check against the model."""
    cache = open_py(path, model.shards, model.settings)
    now = time.time()
    bad = []
    try:
        for shard, e in model.entries():
            got = cache.get(e.key, default=MISSING, expire_time=True, tag=True)
            if not isinstance(got, tuple) or len(got) != 3:
                bad.append('%s: got %s' % (short(e.key), short(got)))
                continue
            value, exp, tag = got
            if is_expired(e, now):
                if value is not MISSING:
                    bad.append('%s expired but read %s' % (
                        short(e.key), short(value)))
                continue
            want = python_view(e.value)
            if value is MISSING or not same_value(value, want):
                bad.append('%s value %s want %s' % (
                    short(e.key), short(value), short(want)))
            if not same_value(tag, e.tag):
                bad.append('%s tag %s want %s' % (
                    short(e.key), short(tag), short(e.tag)))
            if (exp is None) != (e.expire_abs is None) or (
                    exp is not None and
                    abs(exp - e.expire_abs) > EXPIRE_SLACK):
                bad.append('%s expire_time %r want %r' % (
                    short(e.key), exp, e.expire_abs))
        report('%s: python get of every key (value, tag, expire_time, '
               'expired items missing)' % name, not bad,
               '%d bad; %s' % (len(bad), '; '.join(bad[:8])))

        got_keys = [enc(k) for k in cache]
        want_keys = [enc(e.key) for _, e in model.entries()]
        report('%s: python iteration order (shards chained, rowid order)'
               % name, got_keys == want_keys,
               'got %s want %s' % (short(got_keys, 300),
                                   short(want_keys, 300)))
        report('%s: python len() counts every row' % name,
               len(cache) == len(model),
               'got %d want %d' % (len(cache), len(model)))
        if model.shards:
            count = sum(s.reset('count') for s in cache._shards)
        else:
            count = cache.reset('count')
        report("%s: python reset('count')" % name, count == len(model),
               'got %r want %d' % (count, len(model)))
        vol = cache.volume()
        report('%s: python volume() covers the value files' % name,
               vol >= sum(file_sizes(path).values()),
               'volume %d files %d' % (vol, sum(file_sizes(path).values())))
        warns = [str(w.message) for w in cache.check()]
        report('%s: python check() has no warnings' % name, not warns,
               short(warns, 800))
    finally:
        cache.close()


def file_sizes(path):
    sizes = {}
    for root, _, files in os.walk(path):
        for f in files:
            if f.endswith('.val'):
                full = os.path.join(root, f)
                sizes[full] = os.path.getsize(full)
    return sizes


# ---------------------------------------------------------------------------
# Direct SQLite comparison.

ROW_SQL = ('SELECT rowid, key, typeof(key), raw, store_time, expire_time, '
           'access_time, access_count, tag, typeof(tag), size, mode, '
           'filename, value, typeof(value) FROM Cache ORDER BY rowid')
Row = collections.namedtuple(
    'Row', 'rowid key key_type raw store_time expire_time access_time '
    'access_count tag tag_type size mode filename value value_type')


def shard_dirs(path, shards):
    if not shards:
        return [path]
    return [os.path.join(path, '%03d' % i) for i in range(shards)]


def connect_ro(dbdir):
    uri = 'file:%s?mode=ro' % os.path.join(dbdir, 'cache.db')
    return sqlite3.connect(uri, uri=True)


def read_rows(path, shards):
    """{key ident: (shard, Row)} plus the per-shard key order."""
    rows, order = {}, []
    for i, d in enumerate(shard_dirs(path, shards)):
        db = connect_ro(d)
        try:
            keys = []
            for r in db.execute(ROW_SQL):
                row = Row(*r)
                ident = enc(row.key) if row.raw else ('pickle', row.key)
                rows[ident] = (i, row)
                keys.append(ident)
            order.append(keys)
        finally:
            db.close()
    return rows, order


def read_file(dbdir, filename):
    with open(os.path.join(dbdir, filename), 'rb') as f:
        return f.read()


def row_problems(side, path, shards, shard, row, e, min_file):
    """Problems of one row against the model entry (both directions)."""
    out = []
    d = shard_dirs(path, shards)[shard]
    mode = expected_mode(e.value, min_file)
    if row.raw != 1:
        out.append('%s raw=%r' % (side, row.raw))
    if row.mode != mode:
        out.append('%s mode %r want %r' % (side, row.mode, mode))
    if enc(row.tag) != enc(e.tag):
        out.append('%s tag %s (%s) want %s' % (side, short(row.tag),
                                               row.tag_type, short(e.tag)))
    if (row.expire_time is None) != (e.expire_abs is None):
        out.append('%s expire_time %r want %r' % (side, row.expire_time,
                                                  e.expire_abs))
    elif row.expire_time is not None and (
            abs(row.expire_time - e.expire_abs) > EXPIRE_SLACK):
        out.append('%s expire_time %r want ~%r' % (side, row.expire_time,
                                                   e.expire_abs))
    now = time.time()
    for col in ('store_time', 'access_time'):
        t = getattr(row, col)
        if not isinstance(t, float) or abs(t - now) > 3600:
            out.append('%s %s %r' % (side, col, t))
    if row.access_count != 0:
        out.append('%s access_count %r' % (side, row.access_count))
    if mode in (2, 3):
        if row.filename is None or not FILENAME_RE.match(row.filename):
            out.append('%s filename %r' % (side, row.filename))
            return out
        if row.value is not None:
            out.append('%s value not NULL for a file' % side)
        try:
            data = read_file(d, row.filename)
        except OSError as exc:
            out.append('%s file %s: %s' % (side, row.filename, exc))
            return out
        want = e.value if mode == 2 else e.value.encode('utf-8')
        if data != want:
            out.append('%s file contents differ (%d bytes, want %d)' % (
                side, len(data), len(want)))
        if row.size != len(want):
            out.append('%s size %r want %d' % (side, row.size, len(want)))
    elif mode == 1:
        if row.filename is not None:
            out.append('%s filename %r for an inline value' % (side,
                                                               row.filename))
        if row.size != 0:
            out.append('%s size %r for an inline value' % (side, row.size))
        val = bytes(row.value) if isinstance(row.value, bytes) else row.value
        if enc(val) != enc(e.value):
            out.append('%s value %s (%s) want %s' % (
                side, short(val), row.value_type, short(e.value)))
    return out


@section
def compare_rows(name, a, b, model):
    shards = model.shards
    rows_a, order_a = read_rows(a, shards)
    rows_b, order_b = read_rows(b, shards)
    bad = []
    for shard, e in model.entries():
        ident = enc(e.key)
        ra, rb = rows_a.get(ident), rows_b.get(ident)
        if ra is None or rb is None:
            bad.append('%s: row missing in %s' % (
                short(e.key), 'A' if ra is None else 'B'))
            continue
        if ra[0] != shard or rb[0] != shard:
            bad.append('%s: shard A=%d B=%d want %d' % (
                short(e.key), ra[0], rb[0], shard))
            continue
        ra, rb = ra[1], rb[1]
        probs = row_problems('A', a, shards, shard, ra, e, model.min_file)
        probs += row_problems('B', b, shards, shard, rb, e, model.min_file)
        for col in ('key_type', 'raw', 'mode', 'size', 'tag_type',
                    'value_type', 'access_count'):
            if getattr(ra, col) != getattr(rb, col):
                probs.append('%s A=%r B=%r' % (col, getattr(ra, col),
                                               getattr(rb, col)))
        if enc(ra.key) != enc(rb.key):
            probs.append('key A=%s B=%s' % (short(ra.key), short(rb.key)))
        if (ra.filename is None) != (rb.filename is None):
            probs.append('filename A=%r B=%r' % (ra.filename, rb.filename))
        elif ra.filename is not None and (
                read_file(shard_dirs(a, shards)[shard], ra.filename) !=
                read_file(shard_dirs(b, shards)[shard], rb.filename)):
            probs.append('value files differ')
        if probs:
            bad.append('%s: %s' % (short(e.key, 40), ', '.join(probs)))
    report('%s: Cache rows A (python) vs B (tiercache), row by row' % name,
           not bad, '%d bad rows; %s' % (len(bad), ' | '.join(bad[:8])))
    extra = sorted(set(rows_b) - set(rows_a))
    report('%s: B has no rows python did not write' % name, not extra,
           short(extra, 300))
    report('%s: insertion (rowid) order per shard equal' % name,
           order_a == order_b, 'A %s B %s' % (short(order_a, 200),
                                              short(order_b, 200)))
    want_order = [[enc(e.key) for e in p.values()] for p in model.parts]
    report('%s: rowid order follows the write order' % name,
           order_b == want_order, short(order_b, 300))


def read_settings(dbdir):
    db = connect_ro(dbdir)
    try:
        return {k: (v, t) for k, v, t in db.execute(
            'SELECT key, value, typeof(value) FROM Settings')}
    finally:
        db.close()


@section
def compare_settings(name, a, b, shards):
    for i, (da, db_) in enumerate(zip(shard_dirs(a, shards),
                                      shard_dirs(b, shards))):
        sa, sb = read_settings(da), read_settings(db_)
        where = '%s shard %d' % (name, i) if shards else name
        missing = sorted(set(sa) - set(sb))
        extra = sorted(set(sb) - set(sa))
        report('%s: Settings keys equal' % where, not missing and not extra,
               'missing in B %s, extra in B %s' % (missing, extra))
        diff = ['%s A=%r B=%r' % (k, sa[k], sb[k])
                for k in sorted(set(sa) & set(sb)) if sa[k] != sb[k]]
        report('%s: Settings values and types equal (defaults, count, size)'
               % where, not diff, '; '.join(diff))


def schema(dbdir):
    db = connect_ro(dbdir)
    try:
        objs = {n: (t, tbl, s) for t, n, tbl, s in db.execute(
            'SELECT type, name, tbl_name, sql FROM sqlite_master')}
        cols = {}
        for n, (t, tbl, s) in objs.items():
            if t == 'table':
                cols[n] = db.execute(
                    'PRAGMA table_info("%s")' % n).fetchall()
            elif t == 'index':
                cols[n] = (db.execute(
                    'PRAGMA index_xinfo("%s")' % n).fetchall(),
                    [r[2] for r in db.execute(
                        'PRAGMA index_list("%s")' % tbl) if r[1] == n])
        pragmas = {p: db.execute('PRAGMA %s' % p).fetchone()[0]
                   for p in ('auto_vacuum', 'journal_mode', 'page_size',
                             'encoding')}
        return objs, cols, pragmas
    finally:
        db.close()


def norm_sql(s):
    if s is None:
        return None
    s = s.replace('"', "'")
    return re.sub(r'\s+', ' ', re.sub(r'\s*([(),;=+-])\s*', r'\1', s)
                  ).strip().lower()


@section
def compare_schema(name, snap_a, b, shards):
    """snap_a: schema() of each shard of python's A before tiercache opened
    it, so that everything tiercache adds is listed."""
    for i, db_ in enumerate(shard_dirs(b, shards)):
        where = '%s shard %d' % (name, i) if shards else name
        oa, ca, pa = snap_a[i]
        ob, cb, pb = schema(db_)
        missing = sorted(set(oa) - set(ob))
        extra = sorted(set(ob) - set(oa))
        ours = sorted(n for n in ob if TC_EXTRA_RE.search(n))
        if i == 0 and ours:
            note('%s: tiercache schema objects: %s' % (
                where, ', '.join('%s %s on %s' % (ob[n][0], n, ob[n][1])
                                 for n in ours)))
        report('%s: every python-diskcache schema object exists' % where,
               not missing, short(missing, 400))
        bad_extra = [n for n in extra if not TC_EXTRA_RE.search(n)]
        report('%s: extra schema objects are tiercache-named' % where,
               not bad_extra, short(bad_extra, 400))
        diff = []
        for n in sorted(set(oa) & set(ob)):
            if oa[n][:2] != ob[n][:2]:
                diff.append('%s kind A=%s B=%s' % (n, oa[n][:2], ob[n][:2]))
            elif ca.get(n) != cb.get(n):
                diff.append('%s columns A=%s B=%s' % (n, ca.get(n),
                                                      cb.get(n)))
            elif norm_sql(oa[n][2]) != norm_sql(ob[n][2]):
                diff.append('%s sql A=%r B=%r' % (n, oa[n][2], ob[n][2]))
        report('%s: tables, indexes, triggers identical (quotes aside)'
               % where, not diff, ' | '.join(diff))
        report('%s: pragmas auto_vacuum/journal_mode/page_size/encoding'
               % where, pa == pb, 'A %s B %s' % (pa, pb))


@section
def compare_files(name, path, shards, who):
    """Every file in the cache is cache.db*, a referenced .val, or ours."""
    rows, _ = read_rows(path, shards)
    referenced = set()
    for shard, row in rows.values():
        if row.filename is not None:
            referenced.add(os.path.normpath(os.path.join(
                shard_dirs(path, shards)[shard], row.filename)))
    unknown, empty = [], []
    for d in shard_dirs(path, shards):
        for root, dirs, files in os.walk(d):
            if root != d and not dirs and not files:
                empty.append(os.path.relpath(root, path))
            for f in files:
                full = os.path.normpath(os.path.join(root, f))
                if 'cache.db' in f or full in referenced:
                    continue
                unknown.append(os.path.relpath(full, path))
    report('%s: no unknown files in %s' % (name, who), not unknown,
           short(unknown, 400))
    report('%s: no empty value directories in %s' % (name, who), not empty,
           short(empty, 400))
    if shards:
        top = sorted(os.listdir(path))
        want = ['%03d' % i for i in range(shards)]
        odd = [n for n in top if n not in want and not TC_EXTRA_RE.search(n)]
        report('%s: top-level entries of %s' % (name, who), not odd,
               short(top, 300))


# ---------------------------------------------------------------------------
# Scenarios.

@section
def hash_vectors(tmp):
    vectors = [('a', 6422626), (b'a', 6422626), ('', 1),
               ('hello', 103547413), (1, 1), (-1, 4294967294), (0, 0),
               (4294967295, 0), (4294967296, 1), (1.5, 147325240),
               (1.0, 143655216)]
    for k, want in vectors:
        report('python Disk.hash(%r) == %d' % (k, want),
               disk_hash(k) == want, 'got %d' % disk_hash(k))
    proc = helper(['hash'], ''.join(enc_line(k) + '\n' for k, _ in vectors))
    got = proc.stdout.split()
    for (k, want), g in zip(vectors, got + [''] * len(vectors)):
        report('tc_fanout_hash(%r) == %d' % (k, want), g == str(want),
               'got %r' % g)

    rng = random.Random(20240601)
    keys = []

    def rand_text(n):
        out = []
        for _ in range(n):
            c = rng.choice([rng.randrange(0x20, 0x7f),
                            rng.randrange(0x80, 0x800),
                            rng.randrange(0x800, 0xd800),
                            rng.randrange(0xe000, 0x10000),
                            rng.randrange(0x10000, 0x110000)])
            out.append(chr(c))
        return ''.join(out)

    for _ in range(300):
        keys.append(rand_text(rng.randrange(0, 60)))
        keys.append(rng.randbytes(rng.randrange(0, 200)))
    keys += ['x' * 100000, rand_text(40000), b'\xff' * 100000,
             rng.randbytes(6000), b'\x00' * 5553, 'y' * 5552, 'y' * 5553]
    ints = [INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, -2, 2,
            2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, -(2 ** 32),
            -(2 ** 32) + 1, -(2 ** 32) - 1, 2 ** 31, -(2 ** 31),
            4294967295 * 3, -4294967295 * 5]
    for _ in range(200):
        ints.append(rng.randrange(INT64_MIN, INT64_MAX + 1))
        ints.append(rng.randrange(-10 ** 6, 10 ** 6))
    keys += ints
    floats = [0.0, -0.0, 1.0, -1.0, 0.1, 1e300, -1e300, 5e-324, -5e-324,
              float('inf'), float('-inf'), 2.0 ** 63,
              1.7976931348623157e308]
    while len(floats) < 213:
        f = struct.unpack('!d', rng.randbytes(8))[0]
        if not math.isnan(f):  # NaN is no usable key (SQLite makes it NULL)
            floats.append(f)
    for _ in range(200):
        floats.append(rng.uniform(-1e6, 1e6))
    keys += floats
    nan = helper(['hash'], enc_line(float('nan')) + '\n')
    note('NaN key: Disk.hash gives %d, tc_fanout_hash says %s' % (
        disk_hash(float('nan')), nan.stdout.strip().replace('\t', ' ')))
    proc = helper(['hash'], ''.join(enc_line(k) + '\n' for k in keys))
    got = proc.stdout.splitlines()
    bad = []
    for i, k in enumerate(keys):
        want = str(disk_hash(k))
        g = got[i] if i < len(got) else None
        if g != want:
            bad.append('%s: got %r want %s' % (short(k, 50), g, want))
    report('tc_fanout_hash == Disk.hash for %d random keys '
           '(str, bytes, int, float)' % len(keys),
           not bad and proc.returncode == 0,
           '%d differ; %s; stderr %s' % (len(bad), '; '.join(bad[:6]),
                                         short(proc.stderr)))


@section
def probe_lookups(name, path, model):
    """tiercache get vs python get on the same keys, plus look-alikes."""
    probes = [e.key for _, e in model.entries() if is_raw(e.key)]
    probes += [1.0, 0.0, -0.0, 4294967295.0, 'A', 'nonexistent',
               b'nonexistent', b'hello', 'v00\x00', 2, -2, 1.5000000000000002]
    cache = open_py(path, model.shards, model.settings)
    try:
        want = []
        for k in probes:
            r = cache.get(k, default=MISSING, expire_time=True, tag=True)
            if r[0] is MISSING:
                want.append(('missing', k))
            elif r[0] is None and type(model_value(model, k)) is Msgpack:
                want.append(('msgpack', k))
            else:
                want.append(('item', enc(r[0]), r[1], enc(r[2])))
    finally:
        cache.close()
    proc = helper(['get', path], ''.join(enc_line(k) + '\n' for k in probes))
    d = Dump(proc.stdout)
    bad = []
    recs = d.records + [None] * len(probes)
    for k, w, g in zip(probes, want, recs):
        if g is None:
            bad.append('%s: no output' % short(k))
        elif w[0] == 'missing':
            if g[0] != 'missing':
                bad.append('%s: tiercache %s, python missing' % (
                    short(k), short(g)))
        elif w[0] == 'msgpack':
            if g[0] != 'item' or g[3][0] != 'msgpack':
                bad.append('%s: %s' % (short(k), short(g)))
        elif g[0] != 'item' or g[3] != w[1] or g[5] != w[3] or (
                (g[4] is None) != (w[2] is None)) or (
                g[4] is not None and abs(g[4] - w[2]) > 1e-3):
            bad.append('%s: tiercache %s python %s' % (short(k), short(g),
                                                       short(w)))
    report('%s: tiercache get == python get on %d probe keys (1 vs 1.0, '
           "'a' vs b'a', absent keys)" % (name, len(probes)),
           not bad and not d.errors,
           '%s %s' % ('; '.join(bad[:8]), short(d.errors)))


@section
def read_paths(name, path, model):
    """tc_read and tc_get_buf on every raw key agree with the model."""
    now = time.time()
    entries = [(shard, e) for shard, e in model.entries() if is_raw(e.key)]
    keys_in = ''.join(enc_line(e.key) + '\n' for _, e in entries)
    for cmd in ('read', 'getbuf'):
        proc = helper([cmd, path], keys_in)
        d = Dump(proc.stdout)
        recs = d.records + [None] * len(entries)
        bad = []
        unchecked = collections.Counter()
        for (shard, e), g in zip(entries, recs):
            k = enc(e.key)
            if is_expired(e, now):
                want = ('missing', shard, k)
            elif not is_raw(e.value) and type(e.value) is not Msgpack:
                want = ('unsupported', shard, k)
            elif cmd == 'getbuf':
                want = ('buf', shard, k, enc(e.value), e.expire_abs)
            elif type(e.value) in (bytes, str, Msgpack):
                data = e.value.data if type(e.value) is Msgpack else (
                    e.value if type(e.value) is bytes
                    else e.value.encode('utf-8'))
                want = ('read', shard, k, data.hex())
            else:
                unchecked[type(e.value).__name__] += 1
                continue
            if g is None:
                ok = False
            elif want[0] == 'buf':
                ok = (len(g) == 5 and g[:4] == want[:4]
                      and (g[4] is None) == (want[4] is None)
                      and (g[4] is None or
                           abs(g[4] - want[4]) <= EXPIRE_SLACK))
            else:
                ok = g == want
            if not ok:
                bad.append('%s: got %s want %s' % (short(e.key, 40),
                                                   short(g, 150),
                                                   short(want, 150)))
        label = 'tc_read' if cmd == 'read' else 'tc_get_buf'
        report('%s: %s on %d keys (files and inline values)' % (
            name, label, len(entries)), not bad and proc.returncode == 0,
            'exit %d; %d bad; %s; stderr: %s' % (
                proc.returncode, len(bad), '; '.join(bad[:6]),
                short(proc.stderr, 1500)))
        if unchecked:
            note_once('tc_read contents not asserted for int/float values')


def model_value(model, key):
    try:
        part = model.parts[model.shard(key)]
    except Exception:
        return None
    e = part.get(enc(key))
    return e.value if e else None


@section
def tc_check_clean(name, path):
    proc = helper(['check', path])
    d = Dump(proc.stdout)
    report('%s: tiercache check has no warnings' % name,
           proc.returncode == 0 and d.meta.get('warnings') == 0
           and not d.errors,
           'exit %d %s %s %s' % (proc.returncode, short(d.records, 600),
                                 short(d.errors, 300), short(proc.stderr)))


@section
def msgpack_rows(name, path, shards, settings):
    rows, _ = read_rows(path, shards)
    for mp in (MSGPACK_SMALL, MSGPACK_BIG):
        key = 'tc-msgpack' if mp is MSGPACK_SMALL else 'tc-msgpack-big'
        got = rows.get(enc(key))
        if not report('%s: %s row exists' % (name, key), got is not None):
            continue
        shard, row = got
        ok = row.mode == 16 and row.raw == 1
        if row.filename is None:
            ok = ok and bytes(row.value or b'') == mp.data and row.size == 0
            where = 'inline'
        else:
            data = read_file(shard_dirs(path, shards)[shard], row.filename)
            ok = ok and data == mp.data and row.size == len(data)
            ok = ok and FILENAME_RE.match(row.filename) is not None
            where = 'file %s' % row.filename
        report('%s: %s stored with mode 16 (%s, %d bytes)' % (
            name, key, where, len(mp.data)), ok,
            'mode %r raw %r size %r value %s' % (row.mode, row.raw, row.size,
                                                 short(row.value)))
    cache = open_py(path, shards, settings)
    try:
        v = cache.get('tc-msgpack', default=MISSING)
        report('%s: python reads a mode-16 value as None (documented)'
               % name, v is None, 'got %s' % short(v))
    finally:
        cache.close()


def settings_spec(settings):
    """tc_interop setting lines (size_limit is the total for a fanout)."""
    return ''.join('setting\t%s\t%s\n' % (k, enc_line(v))
                   for k, v in sorted(settings.items()))


@section
def py_settings_pickup(name, path, shards, settings):
    """python-diskcache opened without arguments uses what tiercache
    persisted (each shard of a fanout holds its part of size_limit)."""
    for i, d in enumerate(shard_dirs(path, shards)):
        cache = diskcache.Cache(d)
        try:
            bad = []
            for k, v in sorted(settings.items()):
                want = v / shards if shards and k == 'size_limit' else v
                got = getattr(cache, k)
                if got != want or type(got) is not type(want):
                    bad.append('%s=%r want %r' % (k, got, want))
            if shards and i:
                continue
            report('%s: python Cache() without arguments picks up the '
                   'persisted settings%s' % (
                       name, ' (shard %d)' % i if shards else ''),
                   not bad, '; '.join(bad))
        finally:
            cache.close()


@section
def scenario(tmp, shards, dataset, rng, settings=None):
    name = 'fanout%d' % shards if shards else 'plain'
    if settings:
        name += '+settings'
    a = os.path.join(tmp, name + '-A')
    b = os.path.join(tmp, name + '-B')
    model_a = Model(shards, settings)

    # 1. python writes A; tiercache reads it after python's check.
    fails = py_apply(a, shards, as_ops(dataset), model_a)
    report('%s: python-diskcache wrote %d items into A' % (
        name, len(dataset)), not fails, short(fails))
    wait_expired(model_a)
    warns = py_check(a, shards, model_a.settings)
    report('%s: python check() of A is clean' % name, not warns,
           short(warns, 600))
    schema_a = [schema(x) for x in shard_dirs(a, shards)]
    settings_a = [read_settings(x) for x in shard_dirs(a, shards)]
    d = check_dump('%s: tiercache dump of python-written A' % name,
                   helper(['dump', a]), model_a, time.time())
    after = [read_settings(x) for x in shard_dirs(a, shards)]
    report('%s: opening python\'s A leaves its Settings rows alone' % name,
           after == settings_a, 'before %s after %s' % (
               short(settings_a, 300), short(after, 300)))
    # after the dump: tiercache's first open adds its own table (a page)
    pyc = open_py(a, shards, model_a.settings)
    py_volume = pyc.volume()
    pyc.close()
    report('%s: tc_volume == python volume() on A' % name,
           d.meta.get('volume') == py_volume,
           'tiercache %r python %d' % (d.meta.get('volume'), py_volume))
    tc_check_clean('%s A' % name, a)
    probe_lookups('%s A' % name, a, model_a)
    read_paths('%s A' % name, a, model_a)

    # 2. tiercache writes the same dataset into B.
    model_b = Model(shards, settings)
    spec = settings_spec(model_b.settings) + tc_spec(as_ops(dataset),
                                                     model_b)
    started = time.time()
    helper_ok('%s: tiercache wrote %d items into B' % (name, len(dataset)),
              ['write', b, str(shards) if shards else 'plain'], spec)
    wait_expired(model_b, time.time() - started)

    # 3. compare the SQLite files before python opens B (opening rewrites
    # Settings rows).
    compare_rows(name, a, b, model_b)
    compare_settings(name, a, b, shards)
    compare_schema(name, schema_a, b, shards)
    compare_files(name, b, shards, 'tiercache-written B')
    compare_files(name, a, shards, 'python-written A')
    check_dump('%s: tiercache dump of its own B' % name,
               helper(['dump', b]), model_b, time.time())
    if settings:
        py_settings_pickup(name, b, shards, settings)

    # 4. python reads B.
    tcd = Dump(helper(['dump', b]).stdout)
    py_read_all('%s B' % name, b, model_b)
    pyc = open_py(b, shards, model_b.settings)
    py_volume = pyc.volume()
    pyc.close()
    report('%s: python volume() == tc_volume on B' % name,
           tcd.meta.get('volume') == py_volume,
           'tiercache %r python %d' % (tcd.meta.get('volume'), py_volume))

    # 5. python writes more into the directory tiercache created.
    fails = py_apply(b, shards, more_python_items(rng), model_b)
    report('%s: python-diskcache wrote more into B' % name, not fails,
           short(fails))
    check_dump('%s: tiercache dump of B after python wrote pickles' % name,
               helper(['dump', b]), model_b, time.time())
    tc_check_clean('%s B after python writes' % name, b)
    read_paths('%s B after python writes' % name, b, model_b)
    py_read_all('%s B after python writes' % name, b, model_b)
    compare_files(name, b, shards, 'B after python writes')

    # 6. tiercache writes more into the directory python created.
    spec = tc_spec(more_tc_items(), model_a)
    helper_ok('%s: tiercache wrote more into A' % name,
              ['write', a, 'auto'], spec)
    py_read_all('%s A after tiercache writes' % name, a, model_a)
    msgpack_rows('%s A' % name, a, shards, model_a.settings)
    compare_files(name, a, shards, 'A after tiercache writes')
    check_dump('%s: tiercache dump of A after its writes' % name,
               helper(['dump', a]), model_a, time.time())
    tc_check_clean('%s A after tiercache writes' % name, a)
    read_paths('%s A after tiercache writes' % name, a, model_a)


@section
def zero_expire(tmp):
    """set(expire=0): python takes one clock reading for expire_time,
    store_time and the inline cull, so the row (expire_time == store_time)
    survives its own cull (expire_time < now) while reads (expire_time >
    now) miss it: len() counts it until the next set culls it."""
    tries = 10
    result = {}
    for who in ('python', 'tiercache'):
        kept, bad = 0, []
        for i in range(tries):
            d = os.path.join(tmp, 'zero-%s-%d' % (who, i))
            if who == 'python':
                c = diskcache.Cache(d)
                c.set('a', 1)
                c.set('zero', 'z', expire=0)
                c.close()
            else:
                helper(['write', d, 'plain'], ''.join(
                    'set\t%s\t%s\t%s\tnone\t\n' % (enc_line(k),
                                                      enc_line(v), e)
                    for k, v, e in (('a', 1, '-'), ('zero', 'z', '0.0'))))
            rows, _ = read_rows(d, 0)
            row = rows.get(enc('zero'))
            if row is not None:
                kept += 1
                if row[1].expire_time != row[1].store_time:
                    bad.append(row[1].expire_time - row[1].store_time)
        result[who] = (kept, bad)
    report('set(expire=0) keeps its row with expire_time == store_time, as '
           'python does (%d tries)' % tries,
           result['tiercache'] == (tries, []),
           'rows kept: python %d/%d, tiercache %d/%d; expire_time - '
           'store_time of kept tiercache rows %s' % (
               result['python'][0], tries, result['tiercache'][0], tries,
               result['tiercache'][1]))


@section
def vanished_file(tmp):
    """A value file deleted behind the cache's back reads as missing on
    both sides (python: IOError -> miss) and tiercache does not crash."""
    d = os.path.join(tmp, 'vanished')
    c = diskcache.Cache(d)
    c.set('gone', b'g' * 50000)
    c.set('gone-text', 'h' * 50000)
    c.set('kept', b'k' * 50000)
    c.close()
    rows, _ = read_rows(d, 0)
    for k in ('gone', 'gone-text'):
        os.unlink(os.path.join(d, rows[enc(k)][1].filename))
    proc = helper(['get', d], ''.join(enc_line(k) + '\n' for k in
                                     ('gone', 'gone-text', 'kept')))
    got = [r[0] for r in Dump(proc.stdout).records]
    report('tiercache: a vanished value file reads as missing',
           got == ['missing', 'missing', 'item'], short(proc.stdout, 300))
    c = diskcache.Cache(d)
    try:
        got = [c.get(k, default=MISSING) is MISSING
               for k in ('gone', 'gone-text', 'kept')]
    finally:
        c.close()
    report('python: a vanished value file reads as missing',
           got == [True, True, False], repr(got))


@section
def invalid_text(tmp):
    """tiercache refuses TEXT that python could not decode (invalid UTF-8,
    surrogates, overlong forms) as key, value or tag, and stores nothing."""
    d = os.path.join(tmp, 'badtext')
    bad = ['ff', 'c080', 'eda080', 'e282', 'f4908080', '61ff62']
    good_key = enc_line('good')
    lines = []
    for h in bad:
        lines.append('set\ttext\t%s\t%s\t-\tnone\t' % (h, enc_line(1)))
        lines.append('set\t%s\ttext\t%s\t-\tnone\t' % (good_key, h))
        lines.append('set\t%s\t%s\t-\ttext\t%s' % (good_key, enc_line(2),
                                                       h))
    big = ('61' * 40000) + 'ff'  # a file-sized value ending badly
    lines.append('set\t%s\ttext\t%s\t-\tnone\t' % (good_key, big))
    lines.append('set\t%s\t%s\t-\tnone\t' % (good_key, enc_line('ok')))
    proc = helper(['write', d, 'plain'], ''.join(x + '\n' for x in lines))
    errs = [ln.split('\t')[2] for ln in proc.stdout.splitlines()
            if ln.startswith('error')]
    want = len(lines) - 1
    report('tiercache rejects %d invalid UTF-8 texts (key, value, tag, '
           'file-sized value)' % want,
           len(errs) == want and set(errs) <= {'EINVAL'},
           'errors %s; stderr %s' % (short(errs, 300), short(proc.stderr)))
    c = diskcache.Cache(d)
    try:
        keys = list(c)
        value = c.get('good', default=MISSING, tag=True)
        warns = [str(w.message) for w in c.check()]
    finally:
        c.close()
    report('after the rejected writes python sees only the good item',
           keys == ['good'] and value == ('ok', None) and not warns,
           'keys %s value %s warnings %s' % (short(keys), short(value),
                                             short(warns)))


@section
def big_python_key(tmp):
    """A python key over TC_MAX_KEY_BYTES: tiercache must not crash and
    must keep iterating (the key itself may be refused with ETOOBIG)."""
    d = os.path.join(tmp, 'bigkey')
    c = diskcache.Cache(d)
    c.set(b'k' * (2 * 1024 * 1024 + 1), 'big key')
    c.set('after', 1)
    c.close()
    proc = helper(['dump', d])
    dd = Dump(proc.stdout)
    first = dd.records[0] if dd.records else None
    ok_first = first is not None and (
        first[0] == 'item' or (first[0] == 'error' and 'ETOOBIG' in first[1]))
    after = ('item', 0, enc('after'), enc(1), None, enc(None))
    report('tiercache survives a 2 MiB python key and keeps iterating',
           proc.returncode in (0, 1) and ok_first and after in dd.records
           and dd.meta.get('end') == 2,
           short(proc.stdout, 300) + short(proc.stderr))
    if first is not None and first[0] == 'error':
        note('a python key over TC_MAX_KEY_BYTES is listed by tc_iter_next '
             'but tc_get refuses it: %s' % first[1].replace('\t', ' '))


@section
def policy_metadata(tmp):
    """Reads update what the eviction policy and statistics need exactly
    as python's get does (hits/misses, access_time, access_count)."""
    for policy in ('least-recently-used', 'least-frequently-used'):
        kw = {'eviction_policy': policy, 'statistics': 1}
        dirs = {}
        for who in ('py', 'tc'):
            d = os.path.join(tmp, 'policy-%s-%s' % (policy, who))
            c = diskcache.Cache(d, **kw)
            for k in ('k1', 'k2', 'k3'):
                c.set(k, k.upper())
            c.close()
            dirs[who] = d
        time.sleep(0.05)
        reads = ['k1', 'k1', 'k2', 'absent', 'k1']
        c = diskcache.Cache(dirs['py'], **kw)
        try:
            for k in reads:
                c.get(k)
        finally:
            c.close()
        proc = helper(['get', dirs['tc']],
                      ''.join(enc_line(k) + '\n' for k in reads))
        report('%s: tiercache reads' % policy,
               proc.returncode == 0 and 'error' not in proc.stdout,
               short(proc.stdout, 300))
        got = {}
        for who, d in dirs.items():
            st = read_settings(d)
            db = connect_ro(d)
            try:
                rows = {k: (n, at > st_ + 1e-4) for k, n, at, st_ in
                        db.execute('SELECT key, access_count, access_time, '
                                   'store_time FROM Cache')}
            finally:
                db.close()
            got[who] = (st['hits'][0], st['misses'][0], rows)
        report('%s + statistics: hits, misses, access_count and '
               'access_time updates equal python\'s' % policy,
               got['py'] == got['tc'],
               'python %s tiercache %s' % (got['py'], got['tc']))


@section
def wrong_shards(tmp):
    """Opening a python FanoutCache as plain must fail, not misread."""
    d = os.path.join(tmp, 'shape')
    c = diskcache.FanoutCache(d, shards=4)
    c.set('k', 'v')
    c.close()
    proc = helper(['write', d, 'plain'], 'set\t%s\t%s\t-\tnone\t\n' % (
        enc_line('k2'), enc_line('v2')))
    report('tc_open of a 4-shard FanoutCache with TC_SHARDS_PLAIN fails',
           proc.returncode != 0 and 'EINVAL' in proc.stdout,
           short(proc.stdout + proc.stderr, 300))
    proc = helper(['dump', d])
    dd = Dump(proc.stdout)
    report('tc_open auto-detects a python FanoutCache with 4 shards',
           dd.meta.get('shards') == 4 and not dd.errors,
           short(proc.stdout, 300))
    proc = helper(['dump', os.path.join(tmp, 'nothing-here')])
    report('dump of a missing cache fails with ENOCACHE (NOCREATE)',
           proc.returncode != 0 and 'ENOCACHE' in proc.stdout,
           short(proc.stdout + proc.stderr, 300))


def main():
    global HELPER
    if len(sys.argv) != 2:
        print('usage: test_interop.py PATH/TO/tc_interop', file=sys.stderr)
        return 2
    HELPER = os.path.abspath(sys.argv[1])
    note('python-diskcache %s, sqlite %s, helper %s' % (
        diskcache.__version__, sqlite3.sqlite_version, HELPER))
    tmp = tempfile.mkdtemp(prefix='tc-interop-')
    keep = os.environ.get('TC_INTEROP_KEEP') == '1'
    try:
        hash_vectors(tmp)
        rng = random.Random(424242)
        dataset = make_dataset(rng)
        scenario(tmp, 0, dataset, rng)
        scenario(tmp, SHARDS, dataset, rng)
        # Non-default settings: smaller file threshold, LRU (its own index),
        # a tag index, no culling (expired rows stay until read), and a
        # size_limit that a FanoutCache splits across its shards.
        scenario(tmp, 0, dataset, rng, SETTINGS)
        scenario(tmp, SHARDS, dataset, rng, SETTINGS)
        wrong_shards(tmp)
        zero_expire(tmp)
        vanished_file(tmp)
        invalid_text(tmp)
        big_python_key(tmp)
        policy_metadata(tmp)
    finally:
        if keep or FAILED:
            note('directories kept in %s' % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print('interop: %d passed, %d failed' % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == '__main__':
    sys.exit(main())
