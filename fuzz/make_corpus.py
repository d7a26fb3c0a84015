#!/usr/bin/env python3
"""Writes the seed corpus of the journal fuzz target (fuzz/corpus/journal/): small journal
directory images in format v1 (see include/rondo/io/journal_reader.hpp), whole, torn, flipped,
padded, split in segments. Run it again after a format change: python3 fuzz/make_corpus.py"""
import os
import struct

def make_table():
    t = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t.append(c)
    return t

TABLE = make_table()

def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ TABLE[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF

def header(base):
    h = b"RONDOJNL" + struct.pack("<IIqI", 1, 32, base, 0)
    return h + struct.pack("<I", crc32c(h))

def record(seq, payload):
    crc = crc32c(payload, crc32c(struct.pack("<qI", seq, len(payload))))
    pad = (-len(payload)) % 8
    return struct.pack("<IIq", len(payload), crc, seq) + payload + b"\0" * pad

def segment(base, payloads):
    return header(base) + b"".join(record(base + i, p) for i, p in enumerate(payloads))

payloads = [b"", b"x", b"12345678", b"order 42 buy 100 @ 17", bytes(range(100))]
seeds = {
    "empty_segment": header(0),
    "five_records": segment(0, payloads),
    "torn_tail": segment(0, payloads)[:-37],
    "torn_header": segment(0, payloads[:2]) + header(2)[:19],
    "flipped_middle": bytearray(segment(0, payloads)),
    "zero_padding": segment(7, payloads) + b"\0" * 4000,
    "two_segments": segment(0, payloads[:3]) + segment(3, payloads[3:]),
    "gap": segment(0, payloads[:3]) + segment(9, payloads[3:]),
    "wrong_sequence": header(0) + record(0, b"a") + record(2, b"b"),
    "large_base": segment(123456, [b"abc"] * 4),
    "garbage": bytes((i * 37 + 11) & 0xFF for i in range(200)),
}
seeds["flipped_middle"][32 + 16 + 16 + 3] ^= 0x10
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "journal")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes(data))
print(f"{len(seeds)} seeds in {out}")
