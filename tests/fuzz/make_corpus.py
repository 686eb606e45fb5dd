#!/usr/bin/env python3
"""make_corpus.py - write the seed corpus of tests/fuzz/fuzz_mpack.c.

Python's standard library has no MessagePack, so the few forms the seeds
need are packed by hand below. Each seed is small and shows the fuzzer one
shape: every type and length form, nesting up to the limit, and some
inputs the decoder must reject. Output: tests/fuzz/corpus/mpack/*.mp
(the directory is rewritten; run again after changing this file).
"""
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "mpack")


def length_header(n, fix, fixmax, t8, t16):
    """Header of a str/bin/array/map of n items, smallest form."""
    if fix is not None and n <= fixmax:
        return bytes([fix | n])
    if t8 is not None and n <= 0xFF:
        return bytes([t8, n])
    if n <= 0xFFFF:
        return bytes([t16]) + struct.pack(">H", n)
    return bytes([t16 + 1]) + struct.pack(">I", n)


def pack(v):
    """A small MessagePack encoder: the forms tiercache writes."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        for lo, hi, tag, fmt in (
            (0, 0xFF, 0xCC, ">B"),
            (0, 0xFFFF, 0xCD, ">H"),
            (0, 0xFFFFFFFF, 0xCE, ">I"),
            (0, 0xFFFFFFFFFFFFFFFF, 0xCF, ">Q"),
            (-0x80, 0x7F, 0xD0, ">b"),
            (-0x8000, 0x7FFF, 0xD1, ">h"),
            (-0x80000000, 0x7FFFFFFF, 0xD2, ">i"),
            (-(1 << 63), (1 << 63) - 1, 0xD3, ">q"),
        ):
            if lo <= v <= hi:
                return bytes([tag]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return length_header(len(b), 0xA0, 31, 0xD9, 0xDA) + b
    if isinstance(v, bytes):
        return length_header(len(v), None, 0, 0xC4, 0xC5) + v
    if isinstance(v, list):
        return length_header(len(v), 0x90, 15, None, 0xDC) + b"".join(
            pack(x) for x in v
        )
    if isinstance(v, dict):
        return length_header(len(v), 0x80, 15, None, 0xDE) + b"".join(
            pack(k) + pack(x) for k, x in v.items()
        )
    raise TypeError(type(v))


def nested(depth):
    """An array nested depth levels deep (the innermost one empty)."""
    v = []
    for _ in range(depth - 1):
        v = [v]
    return v


SEEDS = {
    # Scalars.
    "nil": pack(None),
    "true": pack(True),
    "false": pack(False),
    "fixints": pack([0, 1, 127, -1, -32]),
    "uints": pack([128, 255, 256, 65535, 65536, 0xFFFFFFFF, 1 << 32,
                   (1 << 64) - 1]),
    "ints": pack([-33, -128, -129, -32768, -32769, -(1 << 31),
                  -(1 << 31) - 1, -(1 << 63)]),
    # Wider forms than needed: 1, 127, -1, 0.
    "wide_forms": (b"\x94\xcd\x00\x01\xd0\x7f\xd3" + b"\xff" * 8 +
                   b"\xcf" + b"\x00" * 8),
    "float64": pack([1.5, -0.0, math.inf, -math.inf, math.nan, 1e300,
                     2.0**63]),
    "float32": (b"\x93\xca" + struct.pack(">f", 1.5) +
                b"\xca\x7f\xc0\x00\x00\xca\x3d\xcc\xcc\xcd"),
    # Strings: text is str, anything else bin; every length form.
    "fixstr": pack("hello, h\u00e9llo \U0001f600"),
    "str8": pack("x" * 40),
    "str16": pack("y" * 300),
    "str32": b"\xdb\x00\x00\x00\x03abc",
    "bin8": pack(b"\xff\x00\xc0\x80"),
    "bin16": b"\xc5\x00\x02\xed\xa0",
    "bin32": b"\xc6\x00\x00\x00\x01\xfe",
    # Tables.
    "empty_map": pack({}),
    "empty_array": pack([]),
    "array_holes": b"\x93\x01\xc0\x03",
    "array16": pack(list(range(20))),
    "array32": b"\xdd\x00\x00\x00\x02\xa1a\xc3",
    "map_str": pack({"name": "tier", "size": 42, "tags": ["a", "b"],
                     "ok": True}),
    "map_keys": pack({-5: "neg", 1.5: "float", True: "t", False: "f",
                      7: None}),
    "map16": pack({("k%d" % i): i for i in range(20)}),
    "map32": b"\xdf\x00\x00\x00\x01\x01\x02",
    "map_seq": pack({1: "a", 2: "b", 3: "c"}),
    "dup_keys": b"\x82\xa1a\x01\xa1a\x02",
    "doc": pack({"user": {"id": 9, "roles": ["admin", {"scope": [1, 2]}],
                          "score": 0.25, "blob": b"\x00\x01"},
                 "v": [[[]], {}]}),
    "depth128": pack(nested(128)),
    # Invalid: the decoder must reject these.
    "bad_c1": b"\xc1",
    "bad_fixext": b"\xd4\x01\x00",
    "bad_ext8": b"\xc7\x02\x05ab",
    "bad_truncated": pack({"a": [1, 2, "three"]})[:-3],
    "bad_giant_array": b"\xdd\xff\xff\xff\xff",
    "bad_giant_str": b"\xdb\xff\xff\xff\xffabc",
    "bad_trailing": b"\x01\x02",
    "bad_nil_key": b"\x81\xc0\x01",
    "bad_nan_key": b"\x81\xcb\x7f\xf8" + b"\x00" * 6 + b"\x01",
    "bad_depth129": pack(nested(129)),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".mp"):
            os.remove(os.path.join(OUT, name))
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name + ".mp"), "wb") as f:
            f.write(data)
    print("make_corpus: %d seeds in %s" % (len(SEEDS), OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
