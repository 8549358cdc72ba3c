#!/usr/bin/python3
"""Writes the seed inputs of the fuzz corpora: fuzz/corpus/<target>/<sha256 of content>.

    fuzz/make_seeds.py [--corpus DIR] [--no-proton]

Existing files are kept; a seed already present (same content, same name) is rewritten
unchanged. Seeds are:
  - every encoding of every AMQP 1.0 type (types.xml), written out by hand below;
  - nested lists, maps and arrays, described values, performative bodies;
  - the reference message of ../shared/bench (when present);
  - with python3-qpid-proton (`import proton`, Debian's python3-qpid-proton), values and
    messages encoded by Qpid Proton, so the corpus holds what a real peer sends.

Input formats (fuzz/support/data_provider.hpp):
  decode_value:    3 bytes of limits (max_depth % 65; max_zero_width_elements, u16 BE,
                   0xffff = 65536), then values back to back;
  roundtrip_value: the same 3 bytes, 1 mode byte (bit 0: shallow copy), then values;
  decode_message:  the bytes of one message.
"""

import argparse
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "..", "shared", "bench", "data", "reference_message.bin")

DEFAULT_LIMITS = bytes.fromhex("20ffff")  # max_depth 32, max_zero_width_elements 65536


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


# ---- hand-written encodings -------------------------------------------------------------

# One or more encodings of every format code, as (name, hex).
SCALARS = [
    ("null", "40"),
    ("true", "41"), ("false", "42"), ("boolean-0", "56 00"), ("boolean-1", "56 01"),
    ("uint0", "43"), ("ulong0", "44"),
    ("ubyte", "50 ff"), ("byte", "51 80"),
    ("smalluint", "52 7f"), ("smallulong", "53 ff"), ("smallint", "54 fe"),
    ("smalllong", "55 80"),
    ("ushort", "60 ff fe"), ("short", "61 80 00"),
    ("uint", "70 ff ff ff ff"), ("uint-small", "70 00 00 00 01"),
    ("int", "71 80 00 00 00"), ("int-small", "71 00 00 00 05"),
    ("float", "72 3f c0 00 00"), ("float-nan", "72 7f c0 00 01"), ("float-negzero", "72 80 00 00 00"),
    ("char", "73 00 01 f6 00"), ("char-max", "73 00 10 ff ff"),
    ("decimal32", "74 22 50 00 01"),
    ("ulong", "80 ff ff ff ff ff ff ff ff"), ("ulong-small", "80 00 00 00 00 00 00 00 07"),
    ("long", "81 80 00 00 00 00 00 00 00"), ("long-small", "81 ff ff ff ff ff ff ff ff"),
    ("double", "82 40 09 21 fb 54 44 2d 18"), ("double-inf", "82 7f f0 00 00 00 00 00 00"),
    ("timestamp", "83 00 00 01 8b cf e5 68 00"),
    ("decimal64", "84 22 38 00 00 00 00 00 01"),
    ("decimal128", "94 22 08 00 00 00 00 00 00 00 00 00 00 00 00 00 01"),
    ("uuid", "98 9c 2d 0f 8e 3b 5a 4e 6f 8a 1b 2c 3d 4e 5f 6a 7b"),
    ("vbin8", "a0 03 00 01 ff"), ("vbin8-empty", "a0 00"),
    ("vbin32", "b0 00 00 00 02 de ad"),
    ("str8", "a1 05 68 65 6c 6c 6f"), ("str8-utf8", "a1 09 c3 a9 e2 82 ac f0 9f 98 80"),
    ("str8-empty", "a1 00"), ("str32", "b1 00 00 00 03 61 62 63"),
    ("sym8", "a3 10 61 70 70 6c 69 63 61 74 69 6f 6e 2f 6a 73 6f 6e"),
    ("sym32", "b3 00 00 00 0e 61 6d 71 70 3a 6e 6f 74 2d 66 6f 75 6e 64"),
    ("list0", "45"),
]

# Builders for compound encodings, so that sizes and counts are computed, not hand-counted.
def u8(n):
    return bytes([n])


def u32(n):
    return struct.pack(">I", n)


def list8(*items):
    body = b"".join(items)
    return b"\xc0" + u8(len(body) + 1) + u8(len(items)) + body if items else h("c0 01 00")


def list32(*items):
    body = b"".join(items)
    return b"\xd0" + u32(len(body) + 4) + u32(len(items)) + body


def map8(*kvs):
    body = b"".join(kvs)
    return b"\xc1" + u8(len(body) + 1) + u8(len(kvs)) + body


def map32(*kvs):
    body = b"".join(kvs)
    return b"\xd1" + u32(len(body) + 4) + u32(len(kvs)) + body


def array8(ctor, count, *bodies):
    """ctor: the element constructor bytes (code, or 00 descriptor code)."""
    body = ctor + b"".join(bodies)
    return b"\xe0" + u8(len(body) + 1) + u8(count) + body


def array32(ctor, count, *bodies):
    body = ctor + b"".join(bodies)
    return b"\xf0" + u32(len(body) + 4) + u32(count) + body


def described(d, v):
    return b"\x00" + d + v


def str8(s):
    b = s.encode()
    return b"\xa1" + u8(len(b)) + b


def sym8(s):
    b = s.encode()
    return b"\xa3" + u8(len(b)) + b


def sym8_body(s):
    return u8(len(s)) + s.encode()


def ulong(code):
    return b"\x53" + u8(code)


COMPOUNDS = [
    list8(),
    list8(h("40"), h("52 05"), str8("x")),
    list32(h("41"), h("42"), h("43"), h("44"), h("45"), h("40")),
    map8(),
    map8(sym8("k"), h("52 01"), str8("s"), str8("v")),
    map32(str8("key"), h("70 00 00 00 2a")),
    map8(h("40"), h("41"), h("53 05"), h("55 fb"), h("45"), list8()),
    array8(h("50"), 3, h("01 02 03")),
    array8(h("70"), 0),
    array8(h("52"), 3, h("01 02 03")),
    array8(h("a3"), 2, sym8_body("abcd"), sym8_body("wxyz")),
    array8(h("a1"), 3, h("01 61 00 03 62 63 64")),
    array8(h("56"), 3, h("00 01 00")),
    array8(h("41"), 5),
    array8(h("42"), 2),
    array8(h("43"), 4),
    array8(h("44"), 4),
    array8(h("40"), 7),
    array8(h("45"), 2),
    array32(h("81"), 2, h("00 00 00 00 00 00 00 01 ff ff ff ff ff ff ff fe")),
    array32(h("40"), 4096),
    array8(h("98"), 2, bytes(16), b"\xff" * 16),
    array8(h("c0"), 2, h("02 01 40"), h("03 01 52 07")),
    array8(h("c1"), 1, h("06 02 a3 01 61 52 01")),
    array8(h("e0"), 2, h("03 01 50 07"), h("04 02 50 08 09")),
    array8(h("00") + sym8("foo") + h("52"), 3, h("01 02 03")),
    array8(h("00 53 70 c0"), 2, h("01 00"), h("02 01 41")),
    array8(h("00 53 70 45"), 3),
    array8(h("00 53 01 40"), 4),
    array8(h("00 53 01 43"), 2),
    array8(h("82"), 2, h("3f f0 00 00 00 00 00 00 40 00 00 00 00 00 00 00")),
    array8(h("73"), 2, h("00 00 00 61 00 01 f6 00")),
    array8(h("83"), 1, h("00 00 01 8b cf e5 68 00")),
    array8(h("00 53 01 c0"), 0),
]

DESCRIBED = [
    described(ulong(5), str8("x")),
    described(sym8("example:xyz"), list8(h("41"), h("42"))),
    described(h("80 00 00 01 37 00 00 00 01"), h("45")),
    described(described(ulong(1), ulong(2)), ulong(3)),  # a described descriptor
    described(ulong(1), described(ulong(2), h("40"))),
    described(ulong(0x74), map8(str8("k"), str8("v"))),
    described(ulong(0x77), array8(h("50"), 2, h("01 02"))),
]

ANON = array8(h("a3"), 1, sym8_body("ANONYMOUS"))

# Performative bodies (AMQP 1.0 §2.7) as they appear in frames: described lists.
PERFORMATIVES = [
    described(ulong(0x10), list8(str8("c1"), str8("h"), h("70 00 01 00 00"), h("60 00 ff"))),
    described(ulong(0x10), list32(str8("c1"), str8("h"), h("70 00 01 00 00"), h("60 00 ff"),
                                  h("70 00 00 75 30"), h("40"), ANON, h("40"), h("40"),
                                  map8(sym8("product"), str8("amqp-cpp")))),
    described(ulong(0x11), list8(h("40"), h("52 01"), h("70 00 00 08 00"), h("70 00 00 08 00"),
                                 h("70 00 00 03 ff"))),
    described(ulong(0x12), list8(str8("l"), h("43"), h("42"), h("50 00"), h("50 00"),
                                 described(ulong(0x28), list8(str8("queue"))),
                                 described(ulong(0x29), list8(str8("queue"))))),
    described(ulong(0x13), list8(h("52 01"), h("70 00 00 08 00"), h("52 01"),
                                 h("70 00 00 08 00"), h("43"), h("43"), h("52 64"))),
    described(ulong(0x14), list8(h("43"), h("43"), h("a0 04 00 00 00 01"), h("43"), h("42"))),
    described(ulong(0x15), list8(h("41"), h("43"), h("43"), h("41"),
                                 described(ulong(0x24), h("45")))),
    described(ulong(0x16), list8(h("43"), h("41"))),
    described(ulong(0x17), h("45")),
    described(ulong(0x18), list8(described(ulong(0x1d), list8(sym8("amqp:decode-error"),
                                                              h("40"))))),
    described(ulong(0x40), list8(ANON)),
    described(ulong(0x41), list8(sym8("PLAIN"), h("a0 03 00 61 62"))),
    described(ulong(0x44), list8(h("50 00"))),
]

NESTED = [
    list8(list8(), h("45"), list8(list8(), h("45"))),
    map8(sym8("a"), map8(sym8("b"), map8(sym8("c"), h("40")))),
    map8(str8("x"), array8(h("c0"), 2, h("02 01 41"), h("03 01 52 07"))),
    list8(list8(list8(list8(list8(list8()))))),
    list8(described(ulong(1), h("40")), described(sym8("a"), h("45"))),
]

# Malformed inputs the decoder must reject: they seed the error paths.
MALFORMED = [
    ("truncated-uint", "70 00 00"),
    ("bad-boolean", "56 02"),
    ("bad-char-surrogate", "73 00 00 d8 00"),
    ("bad-utf8", "a1 02 c0 80"),
    ("bad-symbol", "a3 01 ff"),
    ("list-count-too-big", "c0 02 05 40"),
    ("list-trailing", "c0 03 01 40 40"),
    ("map-odd", "c1 02 01 40"),
    ("invalid-code", "ff"),
    ("array-described-described", "e0 06 01 00 53 01 00 40"),
    ("array-zero-width-huge", "f0 00 00 00 05 ff ff ff ff 40"),
    ("described-missing-value", "00 53 01"),
]


def with_limits(payload, limits=DEFAULT_LIMITS):
    return limits + payload


def deep(n):
    """n nested list8s around list0 (depth n)."""
    v = h("45")
    for _ in range(n):
        v = bytes([0xc0, len(v) + 1, 1]) + v if len(v) + 1 <= 0xff else \
            b"\xd0" + struct.pack(">II", len(v) + 4, 1) + v
    return v


def deep_described(n):
    return h("00 53 01") * n + h("40")


def hand_values():
    out = []
    for group in (SCALARS, MALFORMED):
        out += [bytes.fromhex(x.replace(" ", "")) for _, x in group]
    out += COMPOUNDS + DESCRIBED + PERFORMATIVES + NESTED
    out.append(deep(31))
    out.append(deep(33))
    out.append(deep_described(40))
    # Large strings, binaries and lists that need the 32-bit forms.
    out.append(b"\xb1" + struct.pack(">I", 300) + b"x" * 300)
    out.append(b"\xb0" + struct.pack(">I", 256) + bytes(range(256)))
    items = h("52 01") * 200
    out.append(b"\xd0" + struct.pack(">II", len(items) + 4, 200) + items)
    return out


# ---- messages -----------------------------------------------------------------------------

def section(code, value_hex):
    return bytes([0x00, 0x53, code]) + h(value_hex)


HAND_MESSAGES = [
    b"",
    section(0x77, "a1 05 68 65 6c 6c 6f"),
    section(0x75, "a0 03 01 02 03"),
    section(0x75, "a0 01 61") + section(0x75, "a0 01 62"),
    section(0x76, "c0 03 01 41") + section(0x76, "45"),
    section(0x70, "45") + section(0x77, "40"),
    section(0x70, "c0 0a 05 41 50 09 70 00 00 03 e8 42 43") + section(0x75, "a0 00"),
    section(0x72, "c1 0a 02 a3 05 78 2d 6f 70 74 52 01") + section(0x77, "45"),
    section(0x73, "c0 10 05 a1 02 69 64 40 a1 01 71 40 a1 02 72 65") + section(0x75, "a0 00"),
    section(0x74, "c1 08 02 a1 01 6b a1 01 76") + section(0x77, "52 2a") +
    section(0x78, "c1 01 00"),
    # symbolic descriptors
    h("00 a3 10") + b"amqp:header:list" + h("45") + h("00 a3 10") + b"amqp:data:binary" +
    h("a0 00"),
    # out of order, repeated, unknown descriptor, mixed body kinds
    section(0x77, "40") + section(0x70, "45"),
    section(0x70, "45") + section(0x70, "45"),
    section(0x79, "40"),
    section(0x75, "a0 00") + section(0x76, "45"),
    section(0x77, "40") + section(0x77, "40"),
    section(0x70, "c0 02 01 a1 00"),  # durable as a string: type mismatch
    h("40"),
]


def proton_values():
    from proton import Data, symbol, ulong, ubyte, ushort, uint, char, timestamp, Described, \
        Array, UNDESCRIBED, byte, short, int32, float32, decimal32, decimal64, decimal128
    import uuid

    objs = [
        None, True, False, ubyte(200), ushort(60000), uint(0), uint(7), uint(70000), ulong(0),
        ulong(255), ulong(2 ** 40), byte(-3), short(-300), int32(-1), int32(100000), 12,
        -2 ** 40, float32(1.5), 2.25, char("é"), timestamp(1700000000000),
        uuid.UUID("12345678-1234-5678-1234-567812345678"), b"\x00\x01binary", "unicode ✓",
        symbol("amqp:link:detach-forced"), decimal32(1), decimal64(2), decimal128(b"\x01" * 16),
        [], [1, "two", [3.0, None]], {}, {symbol("k"): 1, "s": [True, False]},
        {None: None, 1: {2: {3: [4]}}},
        Described(ulong(0x70), [True, ubyte(4)]),
        Described(symbol("com.example:thing"), {"a": b"b"}),
        Array(UNDESCRIBED, Data.INT, 1, 2, 3),
        Array(UNDESCRIBED, Data.SYMBOL, symbol("ANONYMOUS"), symbol("PLAIN")),
        Array(UNDESCRIBED, Data.STRING, "a" * 300, "b"),
        Array(UNDESCRIBED, Data.LONG, 5, 2 ** 50),
        Array(ulong(0x70), Data.LIST, [1], [2, 3]),
        Array(UNDESCRIBED, Data.BOOL, True, False, True),
        Array(UNDESCRIBED, Data.ULONG),
    ]
    out = []
    for o in objs:
        d = Data()
        d.put_object(o)
        out.append(d.encode())
    return out


def proton_messages():
    from proton import Message, symbol, ulong, Described, Data
    import uuid

    msgs = []
    m = Message(body="hello")
    msgs.append(m)
    m = Message(body=b"\x00\x01\x02" * 100, durable=True, priority=9, ttl=30.0,
                first_acquirer=True, delivery_count=3)
    m.inferred = True
    msgs.append(m)
    m = Message(id=uuid.UUID(int=42), correlation_id=ulong(7), address="amqps://hub/devices/d1",
                subject="telemetry", reply_to="/replies", content_type="application/json",
                content_encoding="utf-8", expiry_time=1700000000.5, creation_time=1699999999.25,
                group_id="g", group_sequence=5, reply_to_group_id="rg", user_id=b"user",
                body={"temperature": 21.5, "ok": True})
    m.annotations = {symbol("x-opt-sequence-number"): 123456, symbol("x-opt-offset"): "4294967296"}
    m.instructions = {symbol("x-opt-lock-token"): uuid.UUID(int=7)}
    m.properties = {"sensorType": "thermostat", "n": 3, "f": 1.5, "b": False}
    msgs.append(m)
    m = Message(body=[1, 2, [3, 4]], inferred=True)
    msgs.append(m)
    m = Message(body=Described(symbol("custom"), [1, 2]))
    msgs.append(m)
    m = Message(id="msg-1", body=None)
    msgs.append(m)
    m = Message(id=b"\x01\x02", body="x" * 1000)
    m.properties = {"k%d" % i: i for i in range(40)}
    msgs.append(m)
    out = [m.encode() for m in msgs]
    # A footer (Proton's Message API cannot set one): append a footer section.
    d = Data()
    d.put_object(Described(ulong(0x78), {symbol("x-opt-digest"): b"\xaa" * 8}))
    out.append(out[0] + d.encode())
    return out


# ---- output -------------------------------------------------------------------------------

def write_corpus(root, target, inputs):
    path = os.path.join(root, target)
    os.makedirs(path, exist_ok=True)
    new = 0
    for data in inputs:
        name = os.path.join(path, hashlib.sha256(data).hexdigest())
        if not os.path.exists(name):
            new += 1
        with open(name, "wb") as f:
            f.write(data)
    print("%s: %d seeds (%d new)" % (target, len(set(inputs)), new))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--no-proton", action="store_true", help="hand-written seeds only")
    args = ap.parse_args()

    values = hand_values()
    messages = list(HAND_MESSAGES)
    if os.path.exists(REFERENCE):
        with open(REFERENCE, "rb") as f:
            messages.append(f.read())
    if not args.no_proton:
        try:
            values += proton_values()
            messages += proton_messages()
        except ImportError as e:
            print("proton not available (%s): hand-written seeds only" % e, file=sys.stderr)

    # decode_value: each value alone with the default limits; all values back to back; a few
    # with tight limits to reach the limit checks.
    dv = [with_limits(v) for v in values]
    dv.append(with_limits(b"".join(values[:40])))
    dv += [with_limits(m) for m in messages if m]  # a message is a sequence of values
    tight = [bytes([0, 0, 0]), bytes([2, 0, 4]), bytes([4, 0, 0xff])]
    dv += [with_limits(v, t) for t in tight for v in (deep(5), h("e0 03 07 40"),
                                                      h("00 00 53 01 53 02 53 03"))]
    write_corpus(args.corpus, "decode_value", dv)

    # roundtrip_value: deep and shallow copies.
    rv = [DEFAULT_LIMITS + b"\x00" + v for v in values]
    rv += [DEFAULT_LIMITS + b"\x01" + v for v in values if v[:1] in (b"\xc0", b"\xc1", b"\xd0",
                                                                      b"\xd1", b"\xe0", b"\xf0",
                                                                      b"\x00")]
    rv += [DEFAULT_LIMITS + b"\x00" + m for m in messages if m]
    write_corpus(args.corpus, "roundtrip_value", rv)

    write_corpus(args.corpus, "decode_message", messages)


if __name__ == "__main__":
    main()
