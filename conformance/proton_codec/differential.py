#!/usr/bin/python3
"""Differential conformance test: Qpid Proton's AMQP 1.0 codec versus ours.

Our codec is driven through the ``amqp-cli`` tool (``decode --hex``,
``decode --message --hex`` and ``encode --hex``), which speaks the "typed
JSON" form: every AMQP value is ``{"type": T, "value": V}`` (see README.md).

Checks (all deterministic for a given ``--seed``):

* proton->ours values     Proton encodes generated values; ours decodes them.
* alt-encodings->ours     the same kind of values, written by a small encoder
                          in this file that picks *any* valid encoding
                          (list8/list32/list0, uint0/smalluint/uint, 0x56
                          booleans, ...); Proton first confirms the bytes
                          decode to the intended value, then ours decodes them.
* ours->proton values     ours encodes the typed JSON; Proton decodes it.  The
                          size of our encoding is compared with Proton's.
* proton->ours messages   ``proton.Message`` objects are encoded by Proton and
                          decoded by ours, both generically (``decode --hex``)
                          and section-wise (``decode --message --hex``).
* ours->proton messages   message sections built as typed JSON are encoded by
                          ours and decoded with ``proton.Message``; the message
                          fields are compared with what was generated.

The model of a value is its typed JSON document as Python data, except that
``float``/``double`` values are Python floats (NaN and infinities included).
Expected results always come from the generated model, never from the codec
under test.  With ``--self-check`` Proton itself stands in for amqp-cli, which
tests the harness (generator, JSON writer/reader, comparison, Proton bridge).
"""

import argparse
import concurrent.futures
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import time
import uuid
from fractions import Fraction

import proton
from proton import (Array, Data, Described, Message, char, decimal32, decimal64, decimal128,
                    float32, int32, short, symbol, timestamp, ubyte, uint, ulong, ushort)
from proton import byte as pbyte

# ---------------------------------------------------------------------------
# The typed JSON model
# ---------------------------------------------------------------------------

SCALAR_TYPES = [
    "null", "boolean", "ubyte", "ushort", "uint", "ulong", "byte", "short", "int", "long",
    "float", "double", "decimal32", "decimal64", "decimal128", "char", "timestamp", "uuid",
    "binary", "string", "symbol",
]
COMPOUND_TYPES = ["list", "map", "array", "described"]
ALL_TYPES = SCALAR_TYPES + COMPOUND_TYPES

INT_RANGES = {
    "ubyte": (0, 2**8 - 1), "ushort": (0, 2**16 - 1), "uint": (0, 2**32 - 1),
    "ulong": (0, 2**64 - 1), "byte": (-2**7, 2**7 - 1), "short": (-2**15, 2**15 - 1),
    "int": (-2**31, 2**31 - 1), "long": (-2**63, 2**63 - 1),
    "timestamp": (-2**63, 2**63 - 1),
}
# 64-bit integers travel as decimal strings in the typed JSON form.
STRING_INT_TYPES = {"ulong", "long", "timestamp"}
DECIMAL_SIZES = {"decimal32": 4, "decimal64": 8, "decimal128": 16}

SECTION_NAMES = {
    0x70: "header", 0x71: "delivery-annotations", 0x72: "message-annotations",
    0x73: "properties", 0x74: "application-properties", 0x75: "data",
    0x76: "amqp-sequence", 0x77: "amqp-value", 0x78: "footer",
}
SECTION_CODES = {name: code for code, name in SECTION_NAMES.items()}


def tv(type_name, value=None):
    """Build a typed value; ``null`` carries no "value" key."""
    if type_name == "null":
        return {"type": "null"}
    return {"type": type_name, "value": value}


def scalar_model(type_name, native):
    """Turn a Python-native scalar into its typed JSON model.

    Natives: ints for integer types and char (code point), bytes for binary,
    decimals and uuid, str for string/symbol, float for float/double.
    """
    if type_name == "null":
        return tv("null")
    if type_name in STRING_INT_TYPES:
        return tv(type_name, str(native))
    if type_name in DECIMAL_SIZES or type_name == "binary":
        return tv(type_name, native.hex())
    if type_name == "uuid":
        return tv(type_name, str(uuid.UUID(bytes=native)))
    return tv(type_name, native)


def described(descriptor, value):
    return {"type": "described", "descriptor": descriptor, "value": value}


def array(element, values):
    return {"type": "array", "element": element, "value": values}


# ---------------------------------------------------------------------------
# Float helpers (float32 values are exact Python floats)
# ---------------------------------------------------------------------------

FLT_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]
# Halfway between FLT_MAX and the next (unrepresentable) float32: rounds to inf.
FLT_OVERFLOW = Fraction(2**128 - 2**103)


def f32_bits(x):
    return struct.unpack(">I", struct.pack(">f", x))[0]


def f32_from_bits(bits):
    return struct.unpack(">f", struct.pack(">I", bits))[0]


def f64_bits(x):
    return struct.unpack(">Q", struct.pack(">d", x))[0]


def f64_from_bits(bits):
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


def text_to_float32(text):
    """Round a decimal number text to the nearest float32 (ties to even).

    Going through a double first can double-round, so the neighbours of the
    candidate are checked against the exact rational value.
    """
    d = float(text)
    if d == 0.0 or math.isinf(d) or math.isnan(d):
        return d
    exact = Fraction(text)
    if abs(exact) >= FLT_OVERFLOW:
        return math.copysign(math.inf, d)
    try:
        best = struct.unpack(">f", struct.pack(">f", d))[0]
    except OverflowError:
        best = math.copysign(FLT_MAX, d)
    best_bits = f32_bits(best)
    for bits in (best_bits - 1, best_bits + 1):
        if (bits ^ best_bits) & 0x80000000 or (bits & 0x7f800000) == 0x7f800000:
            continue  # do not cross zero or step into inf/NaN
        cand = f32_from_bits(bits)
        err_cand = abs(Fraction(cand) - exact)
        err_best = abs(Fraction(best) - exact)
        if err_cand < err_best or (err_cand == err_best and bits % 2 == 0):
            best, best_bits = cand, bits
    return best


def to_float32(x):
    """Round a Python float to float32 (overflow gives infinity)."""
    try:
        return struct.unpack(">f", struct.pack(">f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def format_float(type_name, x):
    """JSON text of a float/double: shortest round-trip decimal, or a string."""
    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    if type_name == "double":
        return repr(x)
    for precision in range(1, 10):
        text = "%.*g" % (precision, x)
        if f32_bits(text_to_float32(text)) == f32_bits(x):
            break
    if not any(c in text for c in ".eE"):
        text += ".0"
    return text


# ---------------------------------------------------------------------------
# Typed JSON text: writing, reading, canonical comparison form
# ---------------------------------------------------------------------------


def dump_typed(v, ensure_ascii=True):
    """Serialize a model as one line of typed JSON."""
    t = v["type"]
    parts = ['"type":' + json.dumps(t)]
    if t == "array":
        parts.append('"element":' + json.dumps(v["element"]))
    if t == "described":
        parts.append('"descriptor":' + dump_typed(v["descriptor"], ensure_ascii))
        parts.append('"value":' + dump_typed(v["value"], ensure_ascii))
    elif t in ("list", "array"):
        items = ",".join(dump_typed(e, ensure_ascii) for e in v["value"])
        parts.append('"value":[' + items + "]")
    elif t == "map":
        items = ",".join("[%s,%s]" % (dump_typed(k, ensure_ascii), dump_typed(x, ensure_ascii))
                         for k, x in v["value"])
        parts.append('"value":[' + items + "]")
    elif t in ("float", "double"):
        parts.append('"value":' + format_float(t, v["value"]))
    elif t != "null":
        parts.append('"value":' + json.dumps(v["value"], ensure_ascii=ensure_ascii))
    return "{" + ",".join(parts) + "}"


class JsonNumber:
    """A JSON number kept as its source text (so -0, 1.0 and 1 stay distinct)."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _reject_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


def load_json(text):
    """Parse strict JSON, keeping numbers as JsonNumber."""
    return json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber,
                      parse_constant=_reject_constant)


class ContractError(Exception):
    """A JSON document that does not follow the typed JSON contract."""


INTEGER_RE = re.compile(r"-?(0|[1-9][0-9]*)\Z")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
HEX_RE = re.compile(r"([0-9a-f]{2})*\Z")
FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
EXPECTED_KEYS = {"null": {"type"}, "array": {"type", "element", "value"},
                 "described": {"type", "descriptor", "value"}}


def _integer(x, path):
    if isinstance(x, JsonNumber) and INTEGER_RE.match(x.text):
        return int(x.text)
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    raise ContractError("%s: expected an integer JSON number, got %r" % (path, x))


def _float_value(x, single, path):
    if isinstance(x, str) and x in FLOAT_WORDS:
        f = FLOAT_WORDS[x]
    elif isinstance(x, JsonNumber):
        f = text_to_float32(x.text) if single else float(x.text)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        f = to_float32(float(x)) if single else float(x)
    else:
        raise ContractError("%s: expected a number or NaN/Infinity/-Infinity, got %r" % (path, x))
    return f


def float_key(x, single):
    """Comparison key of a float: its bit pattern, with all NaNs equal."""
    if math.isnan(x):
        return "NaN"
    return f32_bits(x) if single else f64_bits(x)


def canonical(v, path="$"):
    """Validate a typed JSON value strictly and return a hashable canonical form.

    Accepts both parsed JSON (numbers as JsonNumber) and generated models.
    Floats compare by bit pattern (NaN equals NaN, -0.0 differs from 0.0).
    """
    if not isinstance(v, dict):
        raise ContractError("%s: expected an object, got %r" % (path, v))
    t = v.get("type")
    if t not in ALL_TYPES:
        raise ContractError("%s: unknown type %r" % (path, t))
    keys = EXPECTED_KEYS.get(t, {"type", "value"})
    if set(v) != keys:
        raise ContractError("%s: %s needs keys %s, has %s" % (path, t, sorted(keys), sorted(v)))
    x = v.get("value")
    if t == "null":
        return ("null",)
    if t == "boolean":
        if not isinstance(x, bool):
            raise ContractError("%s: expected true/false, got %r" % (path, x))
        return (t, x)
    if t in INT_RANGES:
        if t in STRING_INT_TYPES:
            if not (isinstance(x, str) and INTEGER_RE.match(x)):
                raise ContractError("%s: %s must be a decimal string, got %r" % (path, t, x))
            n = int(x)
        else:
            n = _integer(x, path)
        lo, hi = INT_RANGES[t]
        if not lo <= n <= hi:
            raise ContractError("%s: %s out of range: %d" % (path, t, n))
        return (t, n)
    if t in ("float", "double"):
        return (t, float_key(_float_value(x, t == "float", path), t == "float"))
    if t in DECIMAL_SIZES:
        if not (isinstance(x, str) and HEX_RE.match(x) and len(x) == 2 * DECIMAL_SIZES[t]):
            raise ContractError("%s: %s must be %d lowercase hex digits, got %r"
                                % (path, t, 2 * DECIMAL_SIZES[t], x))
        return (t, x)
    if t == "char":
        n = _integer(x, path)
        if not (0 <= n <= 0x10FFFF) or 0xD800 <= n <= 0xDFFF:
            raise ContractError("%s: char is not a Unicode scalar value: %d" % (path, n))
        return (t, n)
    if t == "uuid":
        if not (isinstance(x, str) and UUID_RE.match(x)):
            raise ContractError("%s: malformed uuid %r" % (path, x))
        return (t, x)
    if t == "binary":
        if not (isinstance(x, str) and HEX_RE.match(x)):
            raise ContractError("%s: binary must be lowercase hex, got %r" % (path, x))
        return (t, x)
    if t in ("string", "symbol"):
        if not isinstance(x, str):
            raise ContractError("%s: %s must be a JSON string, got %r" % (path, t, x))
        return (t, x)
    if t == "described":
        return (t, canonical(v["descriptor"], path + ".descriptor"),
                canonical(x, path + ".value"))
    if not isinstance(x, list):
        raise ContractError("%s: %s value must be a JSON array" % (path, t))
    if t == "list":
        return (t, tuple(canonical(e, "%s[%d]" % (path, i)) for i, e in enumerate(x)))
    if t == "map":
        pairs = []
        for i, pair in enumerate(x):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ContractError("%s[%d]: map entries must be [key, value]" % (path, i))
            pairs.append((canonical(pair[0], "%s[%d].key" % (path, i)),
                          canonical(pair[1], "%s[%d].value" % (path, i))))
        return (t, tuple(pairs))
    element = v["element"]
    if element not in ALL_TYPES:
        raise ContractError("%s: unknown array element type %r" % (path, element))
    items = []
    for i, e in enumerate(x):
        c = canonical(e, "%s[%d]" % (path, i))
        if c[0] != element:
            raise ContractError("%s[%d]: element of type %s in array of %s" % (path, i, c[0], element))
        items.append(c)
    if element == "described" and len({c[1] for c in items}) > 1:
        raise ContractError("%s: described array elements with differing descriptors" % path)
    return (t, element, tuple(items))


def json_to_model(v):
    """Turn a parsed typed JSON document (JsonNumber numbers) into a model."""
    canonical(v)  # validates
    t = v["type"]
    if t in ("float", "double"):
        return tv(t, _float_value(v["value"], t == "float", "$"))
    if t == "char" or (t in INT_RANGES and t not in STRING_INT_TYPES):
        return tv(t, _integer(v["value"], "$"))
    if t == "described":
        return described(json_to_model(v["descriptor"]), json_to_model(v["value"]))
    if t == "list":
        return tv(t, [json_to_model(e) for e in v["value"]])
    if t == "map":
        return tv(t, [[json_to_model(k), json_to_model(x)] for k, x in v["value"]])
    if t == "array":
        return array(v["element"], [json_to_model(e) for e in v["value"]])
    return v


def first_difference(expected, got, path="$"):
    """Locate the first difference between two canonical forms, for messages."""
    if expected == got:
        return None
    if isinstance(expected, tuple) and isinstance(got, tuple) and expected[:1] == got[:1]:
        for i, (e, g) in enumerate(zip(expected, got)):
            if e != g:
                return first_difference(e, g, "%s/%d" % (path, i))
        if len(expected) != len(got):
            return "%s: expected %d items, got %d" % (path, len(expected), len(got))
    return "%s: expected %s, got %s" % (path, _clip(repr(expected), 200), _clip(repr(got), 200))


def compare_json_line(expected_model, line):
    """Compare a typed JSON line with the expected model; return None or a reason."""
    try:
        got = canonical(load_json(line))
    except (ValueError, ContractError) as e:
        return "invalid typed JSON: %s" % e
    return first_difference(canonical(expected_model), got)


# ---------------------------------------------------------------------------
# Value generation
# ---------------------------------------------------------------------------

TEXT_POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_",
    "\"\\/\b\f\n\r\t\x00\x01\x1f\x7f'<>&",          # JSON escaping, controls, NUL
    "\u00e9\u00df\u00fc\u00f1\u00a0\u00ff\u0100\u07ff",  # 2-byte UTF-8
    "\u0800\u20ac\u4e2d\u6587\u2028\u2029\ufeff\ufffd\uffff\ud7ff\ue000",  # 3-byte
    "\U00010000\U0001F600\U0001D11E\U0010FFFF\U0002A6D6",  # 4-byte (supplementary)
]
SYMBOL_CHARS = "".join(chr(c) for c in range(0x20, 0x7F))
CHAR_RANGES = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]

EDGE_NATIVES = {
    "null": [None],
    "boolean": [True, False],
    "ubyte": [0, 1, 127, 128, 254, 255],
    "ushort": [0, 1, 255, 256, 32767, 32768, 65535],
    "uint": [0, 1, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1],
    "ulong": [0, 1, 255, 256, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1],
    "byte": [-128, -127, -1, 0, 1, 126, 127],
    "short": [-32768, -129, -128, -1, 0, 1, 127, 128, 255, 256, 32767],
    "int": [-2**31, -32769, -129, -128, -127, -1, 0, 1, 127, 128, 255, 256, 2**31 - 1],
    "long": [-2**63, -2**31 - 1, -2**31, -129, -128, -127, -1, 0, 1, 127, 128, 255, 256,
             2**31 - 1, 2**31, 2**32, 2**63 - 1],
    "timestamp": [0, 1, -1, 1700000000000, -62135596800000, 253402300799999, -2**63, 2**63 - 1],
    "float": [0.0, -0.0, 1.0, -1.0, 0.5, math.nan, math.inf, -math.inf, 2.0**-149, -2.0**-149,
              2.0**-126, 2.0**-126 - 2.0**-149, FLT_MAX, -FLT_MAX, to_float32(0.1),
              to_float32(1e-7), 16777216.0, to_float32(3.14159265)],
    "double": [0.0, -0.0, 1.0, -1.5, math.nan, math.inf, -math.inf, 5e-324, -5e-324,
               2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308,
               0.1, 1e23, 9007199254740993.0, 123456789.125, -1e-300],
    "decimal32": [bytes(4), b"\xff" * 4, bytes.fromhex("22500001"), bytes.fromhex("01020304")],
    "decimal64": [bytes(8), b"\xff" * 8, bytes.fromhex("0102030405060708")],
    "decimal128": [bytes(16), b"\xff" * 16, bytes(range(16))],
    "char": [0, 0x41, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000,
             0x1F600, 0x10FFFF],
    "uuid": [bytes(16), b"\xff" * 16, uuid.UUID("00112233-4455-6677-8899-aabbccddeeff").bytes],
    "binary": [b"", b"\x00", bytes(range(256))[:255], bytes(range(256)), bytes(1000)],
    "string": ["", "a", "x" * 255, "x" * 256, "\u00e9" * 127 + "a", "\u00e9" * 128,
               "\U0001F600", "a\x00b", "\"quoted\" \\ back/slash\n\t", "\u4e2d\u6587" * 100,
               "\U0010FFFF\ue000\ud7ff", "\u2028\u2029", "x" * 70000],
    "symbol": ["", "a", "amqp:accepted:list", "x" * 255, "y" * 256, "z" * 1000,
               "with \"quote\" and \\"],
}


class ValueGenerator:
    """Deterministic generator of typed JSON models.

    ``python_safe`` restricts map keys to scalar types whose Python objects
    (as produced by ``model_to_pyobj``) are hashable and pairwise unequal, so
    the maps survive Proton's dict-based Message API.
    """

    def __init__(self, rng, python_safe=False):
        self.rng = rng
        self.python_safe = python_safe

    # -- scalars ----------------------------------------------------------

    def scalar(self, type_name=None):
        """A random scalar of the given (or a random) type; edges are likely."""
        rng = self.rng
        if type_name is None:
            type_name = rng.choice(SCALAR_TYPES)
        if rng.random() < 0.25:
            native = rng.choice(EDGE_NATIVES[type_name])
            if type_name == "string" and len(native) > 1000:
                native = native[:300]  # keep the very long edge string for edge_cases()
        else:
            native = self._random_native(type_name)
        return scalar_model(type_name, native)

    def _random_int(self, lo, hi):
        """Uniform over bit widths, so small and large magnitudes are equally likely."""
        bits = self.rng.randint(0, (hi - lo).bit_length())
        magnitude = self.rng.getrandbits(bits) if bits else 0
        n = -magnitude - 1 if lo < 0 and self.rng.random() < 0.5 else magnitude
        return max(lo, min(hi, n))

    def _random_length(self, long_max=400):
        r = self.rng.random()
        if r < 0.6:
            return self.rng.randint(0, 16)
        if r < 0.85:
            return self.rng.randint(17, 120)
        return self.rng.randint(200, long_max)

    def random_text(self):
        pools = self.rng.sample(TEXT_POOLS, self.rng.randint(1, len(TEXT_POOLS)))
        alphabet = "".join(pools)
        return "".join(self.rng.choice(alphabet) for _ in range(self._random_length()))

    def _random_float(self, single):
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            return f32_from_bits(rng.getrandbits(32)) if single else f64_from_bits(rng.getrandbits(64))
        x = rng.uniform(-1, 1) * 10.0 ** rng.randint(-40 if single else -300, 38 if single else 300)
        if r < 0.6:
            x = round(x, rng.randint(0, 6))
        return to_float32(x) if single else x

    def _random_native(self, t):
        rng = self.rng
        if t == "null":
            return None
        if t == "boolean":
            return rng.random() < 0.5
        if t in INT_RANGES:
            return self._random_int(*INT_RANGES[t])
        if t in ("float", "double"):
            return self._random_float(t == "float")
        if t in DECIMAL_SIZES:
            return rng.randbytes(DECIMAL_SIZES[t])
        if t == "uuid":
            return rng.randbytes(16)
        if t == "char":
            return rng.randint(*rng.choice(CHAR_RANGES))
        if t == "binary":
            return rng.randbytes(self._random_length(600))
        if t == "string":
            return self.random_text()
        if t == "symbol":
            return "".join(rng.choice(SYMBOL_CHARS) for _ in range(self._random_length()))
        raise ValueError(t)

    # -- compounds --------------------------------------------------------

    def descriptor(self):
        """A descriptor: mostly ulong (incl. domain-id style codes), sometimes symbol."""
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            return scalar_model("ulong", rng.choice([0, 1, 0x70, 0x77, 0x23, 255, 256, 2**64 - 1]))
        if r < 0.7:
            return scalar_model("ulong", (rng.getrandbits(32) << 32) | rng.getrandbits(32))
        return scalar_model("symbol", rng.choice(["example:thing:list", "com.example:x", "a", ""]))

    def value(self, depth):
        """Any value; compound values nest at most ``depth`` levels."""
        if depth <= 0 or self.rng.random() < 0.4:
            return self.scalar()
        kind = self.rng.choice(COMPOUND_TYPES)
        return getattr(self, kind + "_value")(depth)

    def list_value(self, depth, count=None):
        if count is None:
            r = self.rng.random()
            count = self.rng.randint(0, 6) if r < 0.75 else self.rng.randint(7, 30)
            if r > 0.97:  # more than 255 elements forces list32
                return tv("list", [self.scalar(self.rng.choice(["null", "boolean", "ubyte", "uint"]))
                                   for _ in range(self.rng.randint(256, 300))])
        return tv("list", [self.value(depth - 1) for _ in range(count)])

    def map_key(self, key_types=None):
        if key_types:
            return self.scalar(self.rng.choice(key_types))
        if not self.python_safe and self.rng.random() < 0.05:
            return self.list_value(1, self.rng.randint(0, 2))
        if self.python_safe:
            return self.scalar(self.rng.choice(["string", "symbol", "ulong", "long", "uuid", "binary"]))
        return self.scalar()

    def _key_identity(self, key):
        if self.python_safe:
            obj = model_to_pyobj(key)
            return (type(obj) is bytes, obj)
        return canonical(key)

    def map_value(self, depth, key_types=None, value_types=None, count=None):
        """A map with unique keys; ``value_types`` restricts values to given scalars."""
        if count is None:
            count = self.rng.randint(0, 6) if self.rng.random() < 0.9 else self.rng.randint(7, 40)
        pairs, seen = [], set()
        for _ in range(count * 3):
            if len(pairs) == count:
                break
            key = self.map_key(key_types)
            identity = self._key_identity(key)
            if identity in seen:
                continue
            seen.add(identity)
            if value_types:
                pairs.append([key, self.scalar(self.rng.choice(value_types))])
            else:
                pairs.append([key, self.value(depth - 1)])
        return tv("map", pairs)

    def array_value(self, depth, element=None):
        rng = self.rng
        if element is None:
            element = rng.choice(SCALAR_TYPES * 2 + COMPOUND_TYPES) if depth > 1 else rng.choice(SCALAR_TYPES)
        count = rng.randint(0, 6)
        if element in SCALAR_TYPES and rng.random() < 0.05:
            count = rng.randint(256, 300)  # forces a 32-bit count
        if element == "described":
            descriptor = self.descriptor()
            inner = rng.choice(SCALAR_TYPES)
            return array(element, [described(descriptor, self.scalar(inner))
                                   for _ in range(max(1, count))])
        if element == "array":
            inner = rng.choice(SCALAR_TYPES)
            return array(element, [self.array_value(1, inner) for _ in range(count)])
        if element == "list":
            return array(element, [self.list_value(depth - 1, rng.randint(0, 4)) for _ in range(count)])
        if element == "map":
            return array(element, [self.map_value(depth - 1, count=rng.randint(0, 3)) for _ in range(count)])
        return array(element, [self.scalar(element) for _ in range(count)])

    def described_value(self, depth):
        """A described value whose value is not itself described: Proton 0.37
        loses the rest of an enclosing list or map after such a value."""
        value = self.value(depth - 1)
        while value["type"] == "described":
            value = self.value(depth - 1)
        return described(self.descriptor(), value)

    # -- value sets -------------------------------------------------------

    def edge_cases(self):
        """Every scalar edge value plus hand-picked compound shapes."""
        values = [scalar_model(t, n) for t in SCALAR_TYPES for n in EDGE_NATIVES[t]]
        ulong0 = scalar_model("ulong", 0)
        values += [
            tv("list", []), tv("map", []), tv("list", [tv("list", [])]),
            tv("list", [tv("null")] * 3), tv("list", [scalar_model("ubyte", 1)] * 255),
            tv("list", [scalar_model("ubyte", 1)] * 256),
            tv("list", [scalar_model("binary", bytes(300))]),
            tv("map", [[scalar_model("symbol", "k"), scalar_model("binary", bytes(300))]]),
            described(ulong0, tv("null")), described(scalar_model("ulong", 0x77), tv("list", [])),
            described(scalar_model("symbol", "amqp:data:binary"), scalar_model("binary", b"x")),
            described(scalar_model("ulong", 255), described(ulong0, ulong0)),  # top level only
            array("described", [described(scalar_model("ulong", 0x23), scalar_model("int", 1))]),
            array("array", []), array("array", [array("int", [])]),
            array("array", [array("uint", [scalar_model("uint", 1)]), array("uint", [])]),
            array("list", [tv("list", [])]), array("map", [tv("map", [])]),
            array("boolean", [scalar_model("boolean", b) for b in (True, False, True)]),
            array("ulong", [scalar_model("ulong", 0)] * 3),
            array("uint", [scalar_model("uint", 0)] * 3),
            array("ulong", [scalar_model("ulong", n) for n in (0, 255, 256)]),
            array("int", [scalar_model("int", n) for n in (-128, 127)]),
            array("long", [scalar_model("long", n) for n in (-129, 128)]),
            array("string", [scalar_model("string", "x" * 300)]),
            array("symbol", [scalar_model("symbol", s) for s in ("a", "bb", "")]),
            array("null", [tv("null")] * 2),
        ]
        values += [array(t, []) for t in SCALAR_TYPES + ["list", "map"]]
        nested = tv("list", [])
        for depth in range(6):  # deep alternating nesting
            nested = tv("map", [[scalar_model("uint", depth), nested]]) if depth % 2 else tv("list", [nested])
        values.append(nested)
        return values

    def values(self, count):
        """``count`` values: the edge cases first, then random ones."""
        out = self.edge_cases()[:count]
        while len(out) < count:
            depth = self.rng.randint(1, 5)
            out.append(self.value(depth) if self.rng.random() < 0.5 else self.scalar())
        return out


# ---------------------------------------------------------------------------
# Bridge between the model and proton.Data
# ---------------------------------------------------------------------------

PROTON_TYPE = {
    "null": Data.NULL, "boolean": Data.BOOL, "ubyte": Data.UBYTE, "ushort": Data.USHORT,
    "uint": Data.UINT, "ulong": Data.ULONG, "byte": Data.BYTE, "short": Data.SHORT,
    "int": Data.INT, "long": Data.LONG, "float": Data.FLOAT, "double": Data.DOUBLE,
    "decimal32": Data.DECIMAL32, "decimal64": Data.DECIMAL64, "decimal128": Data.DECIMAL128,
    "char": Data.CHAR, "timestamp": Data.TIMESTAMP, "uuid": Data.UUID, "binary": Data.BINARY,
    "string": Data.STRING, "symbol": Data.SYMBOL, "list": Data.LIST, "map": Data.MAP,
    "array": Data.ARRAY, "described": Data.DESCRIBED,
}
TYPE_NAME = {code: name for name, code in PROTON_TYPE.items()}

# name -> (put(data, json_value), get(data) -> json_value)
SCALAR_BRIDGE = {
    "null": (lambda d, v: d.put_null(), lambda d: None),
    "boolean": (lambda d, v: d.put_bool(v), lambda d: bool(d.get_bool())),
    "ubyte": (lambda d, v: d.put_ubyte(v), lambda d: int(d.get_ubyte())),
    "ushort": (lambda d, v: d.put_ushort(v), lambda d: int(d.get_ushort())),
    "uint": (lambda d, v: d.put_uint(v), lambda d: int(d.get_uint())),
    "ulong": (lambda d, v: d.put_ulong(int(v)), lambda d: str(int(d.get_ulong()))),
    "byte": (lambda d, v: d.put_byte(v), lambda d: int(d.get_byte())),
    "short": (lambda d, v: d.put_short(v), lambda d: int(d.get_short())),
    "int": (lambda d, v: d.put_int(v), lambda d: int(d.get_int())),
    "long": (lambda d, v: d.put_long(int(v)), lambda d: str(int(d.get_long()))),
    "float": (lambda d, v: d.put_float(v), lambda d: float(d.get_float())),
    "double": (lambda d, v: d.put_double(v), lambda d: float(d.get_double())),
    # Proton takes decimal32/64 as the integer whose big-endian bytes are on the wire.
    "decimal32": (lambda d, v: d.put_decimal32(int(v, 16)), lambda d: "%08x" % d.get_decimal32()),
    "decimal64": (lambda d, v: d.put_decimal64(int(v, 16)), lambda d: "%016x" % d.get_decimal64()),
    "decimal128": (lambda d, v: d.put_decimal128(bytes.fromhex(v)),
                   lambda d: bytes(d.get_decimal128()).hex()),
    "char": (lambda d, v: d.put_char(chr(v)), lambda d: ord(d.get_char())),
    "timestamp": (lambda d, v: d.put_timestamp(int(v)), lambda d: str(int(d.get_timestamp()))),
    "uuid": (lambda d, v: d.put_uuid(uuid.UUID(v)), lambda d: str(d.get_uuid())),
    "binary": (lambda d, v: d.put_binary(bytes.fromhex(v)), lambda d: d.get_binary().hex()),
    "string": (lambda d, v: d.put_string(v), lambda d: d.get_string()),
    "symbol": (lambda d, v: d.put_symbol(v), lambda d: str(d.get_symbol())),
}


def put_model(data, v):
    """Append a model value to a proton.Data at the cursor."""
    t = v["type"]
    if t in SCALAR_BRIDGE:
        SCALAR_BRIDGE[t][0](data, v.get("value"))
    elif t == "described":
        data.put_described()
        data.enter()
        put_model(data, v["descriptor"])
        put_model(data, v["value"])
        data.exit()
    elif t in ("list", "map"):
        data.put_list() if t == "list" else data.put_map()
        data.enter()
        for item in v["value"]:
            for x in (item if t == "map" else [item]):
                put_model(data, x)
        data.exit()
    elif v["element"] == "described":
        # Proton's described array: the descriptor is put once, then bare values.
        elements = v["value"]
        data.put_array(True, PROTON_TYPE[elements[0]["value"]["type"]])
        data.enter()
        put_model(data, elements[0]["descriptor"])
        for e in elements:
            put_model(data, e["value"])
        data.exit()
    else:
        data.put_array(False, PROTON_TYPE[v["element"]])
        data.enter()
        for e in v["value"]:
            put_model(data, e)
        data.exit()


def read_model(data):
    """Read the value at the cursor of a proton.Data into a model."""
    t = TYPE_NAME[data.type()]
    if t in SCALAR_BRIDGE:
        return tv(t, SCALAR_BRIDGE[t][1](data))
    if t == "described":
        data.enter()
        data.next()
        descriptor = read_model(data)
        data.next()
        value = read_model(data)
        data.exit()
        return described(descriptor, value)
    if t in ("list", "map"):
        data.enter()
        items = []
        while data.next():
            items.append(read_model(data))
        data.exit()
        if t == "map":
            items = [list(pair) for pair in zip(items[0::2], items[1::2])]
        return tv(t, items)
    _count, is_described, element_code = data.get_array()
    data.enter()
    descriptor = None
    if is_described:
        data.next()
        descriptor = read_model(data)
    elements = []
    while data.next():
        e = read_model(data)
        elements.append(described(descriptor, e) if is_described else e)
    data.exit()
    return array("described" if is_described else TYPE_NAME[element_code], elements)


def proton_encode(v):
    data = Data()
    put_model(data, v)
    return data.encode()


def proton_decode_all(encoded):
    """Decode a concatenation of values with Proton; raises on leftovers/errors."""
    values = []
    while encoded:
        data = Data()
        consumed = data.decode(encoded)
        if consumed <= 0:
            raise proton.DataException("decoder made no progress")
        data.rewind()
        data.next()
        values.append(read_model(data))
        encoded = encoded[consumed:]
    return values


# ---------------------------------------------------------------------------
# Bridge between the model and Proton's Python objects (Message API)
# ---------------------------------------------------------------------------

PY_WRAPPERS = {
    "ubyte": ubyte, "ushort": ushort, "uint": uint, "ulong": ulong, "byte": pbyte,
    "short": short, "int": int32, "long": int, "timestamp": timestamp,
}
PY_TYPE_NAME = {cls: name for name, cls in PY_WRAPPERS.items()}
PY_TYPE_NAME.update({bool: "boolean", float32: "float", float: "double", decimal32: "decimal32",
                     decimal64: "decimal64", decimal128: "decimal128", char: "char",
                     uuid.UUID: "uuid", bytes: "binary", str: "string", symbol: "symbol",
                     type(None): "null", list: "list", dict: "map", Described: "described",
                     Array: "array"})


def model_to_pyobj(v):
    """Convert a model into the Python objects Proton's put_object understands."""
    t, x = v["type"], v.get("value")
    if t == "null":
        return None
    if t in PY_WRAPPERS:
        return PY_WRAPPERS[t](int(x))
    simple = {"boolean": bool, "string": str, "symbol": symbol, "float": float32, "double": float}
    if t in simple:
        return simple[t](x)
    if t in ("decimal32", "decimal64"):
        return (decimal32 if t == "decimal32" else decimal64)(int(x, 16))
    if t == "decimal128":
        return decimal128(bytes.fromhex(x))
    if t == "char":
        return char(chr(x))
    if t == "uuid":
        return uuid.UUID(x)
    if t == "binary":
        return bytes.fromhex(x)
    if t == "list":
        return [model_to_pyobj(e) for e in x]
    if t == "map":
        return {model_to_pyobj(k): model_to_pyobj(e) for k, e in x}
    if t == "described":
        return Described(model_to_pyobj(v["descriptor"]), model_to_pyobj(x))
    if v["element"] == "described":
        return Array(model_to_pyobj(x[0]["descriptor"]), PROTON_TYPE[x[0]["value"]["type"]],
                     *[model_to_pyobj(e["value"]) for e in x])
    return Array(proton.UNDESCRIBED, PROTON_TYPE[v["element"]], *[model_to_pyobj(e) for e in x])


def pyobj_to_model(o):
    """Convert a Python object from Proton's get_object back into a model."""
    t = PY_TYPE_NAME.get(type(o))
    if t is None:
        raise TypeError("no AMQP type for %r" % (o,))
    if t == "null":
        return tv("null")
    if t in DECIMAL_SIZES:
        return tv(t, bytes(o).hex() if t == "decimal128" else "%0*x" % (2 * DECIMAL_SIZES[t], o))
    if t == "char":
        return tv(t, ord(o))
    if t == "uuid":
        return tv(t, str(o))
    if t == "binary":
        return tv(t, o.hex())
    if t in STRING_INT_TYPES:
        return tv(t, str(int(o)))
    if t == "list":
        return tv(t, [pyobj_to_model(e) for e in o])
    if t == "map":
        return tv(t, [[pyobj_to_model(k), pyobj_to_model(e)] for k, e in o.items()])
    if t == "described":
        return described(pyobj_to_model(o.descriptor), pyobj_to_model(o.value))
    if t == "array":
        if o.descriptor == proton.UNDESCRIBED:
            return array(TYPE_NAME[o.type], [pyobj_to_model(e) for e in o.elements])
        d = pyobj_to_model(o.descriptor)
        return array("described", [described(d, pyobj_to_model(e)) for e in o.elements])
    if t in ("float", "double"):
        return tv(t, float(o))
    if t in PY_WRAPPERS:
        return tv(t, int(o))
    return tv(t, bool(o) if t == "boolean" else str(o))  # boolean, string, symbol


# ---------------------------------------------------------------------------
# An independent encoder that may choose any valid AMQP encoding
# ---------------------------------------------------------------------------

FIXED_FORMATS = {  # type -> (constructor, struct format)
    "ubyte": (0x50, ">B"), "ushort": (0x60, ">H"), "byte": (0x51, ">b"), "short": (0x61, ">h"),
    "float": (0x72, ">f"), "double": (0x82, ">d"), "char": (0x73, ">I"), "timestamp": (0x83, ">q"),
}
VARIABLE_CODES = {"binary": (0xA0, 0xB0), "string": (0xA1, 0xB1), "symbol": (0xA3, 0xB3)}
EMPTY_ARRAY_CONSTRUCTORS = {
    "null": [0x40], "boolean": [0x56, 0x41, 0x42], "uint": [0x70, 0x52, 0x43],
    "ulong": [0x80, 0x53, 0x44], "int": [0x71, 0x54], "long": [0x81, 0x55],
    "decimal32": [0x74], "decimal64": [0x84], "decimal128": [0x94], "uuid": [0x98],
    "list": [0xC0, 0xD0, 0x45], "map": [0xC1, 0xD1], "array": [0xE0, 0xF0],
}
EMPTY_ARRAY_CONSTRUCTORS.update({t: list(c) for t, c in VARIABLE_CODES.items()})
EMPTY_ARRAY_CONSTRUCTORS.update({t: [c] for t, (c, _f) in FIXED_FORMATS.items()})


def _compound(code8, code32, count, body):
    """The 8-bit and/or 32-bit framings of a list/map/array body."""
    out = {bytes([code32]): struct.pack(">II", 4 + len(body), count) + body}
    if count < 256 and 1 + len(body) < 256:
        out[bytes([code8])] = struct.pack(">BB", 1 + len(body), count) + body
    return out


class AltEncoder:
    """Encodes models choosing randomly among all valid encodings of each value.

    ``encodings(v)`` returns ``{constructor: payload}`` for every admissible
    constructor, which also gives the common constructors of array elements.
    """

    def __init__(self, rng):
        self.rng = rng

    def encode(self, v):
        constructor, payload = self.rng.choice(sorted(self.encodings(v).items()))
        return constructor + payload

    def encodings(self, v):
        t, x = v["type"], v.get("value")
        if t == "null":
            return {b"\x40": b""}
        if t == "boolean":
            return {b"\x41" if x else b"\x42": b"", b"\x56": b"\x01" if x else b"\x00"}
        if t in FIXED_FORMATS:
            code, fmt = FIXED_FORMATS[t]
            return {bytes([code]): struct.pack(fmt, int(x) if t == "timestamp" else x)}
        if t in ("uint", "ulong"):
            n = int(x)
            wide, small, zero = (0x70, 0x52, 0x43) if t == "uint" else (0x80, 0x53, 0x44)
            out = {bytes([wide]): n.to_bytes(4 if t == "uint" else 8, "big")}
            if n < 256:
                out[bytes([small])] = bytes([n])
            if n == 0:
                out[bytes([zero])] = b""
            return out
        if t in ("int", "long"):
            n = int(x)
            wide, small = (0x71, 0x54) if t == "int" else (0x81, 0x55)
            out = {bytes([wide]): n.to_bytes(4 if t == "int" else 8, "big", signed=True)}
            if -128 <= n <= 127:
                out[bytes([small])] = n.to_bytes(1, "big", signed=True)
            return out
        if t in DECIMAL_SIZES:
            return {bytes([{"decimal32": 0x74, "decimal64": 0x84, "decimal128": 0x94}[t]]):
                    bytes.fromhex(x)}
        if t == "uuid":
            return {b"\x98": uuid.UUID(x).bytes}
        if t in VARIABLE_CODES:
            raw = bytes.fromhex(x) if t == "binary" else x.encode("utf-8")
            code8, code32 = VARIABLE_CODES[t]
            out = {bytes([code32]): struct.pack(">I", len(raw)) + raw}
            if len(raw) < 256:
                out[bytes([code8])] = bytes([len(raw)]) + raw
            return out
        if t == "described":
            prefix = b"\x00" + self.encode(v["descriptor"])
            return {prefix + c: p for c, p in self.encodings(x).items()}
        if t == "list":
            out = _compound(0xC0, 0xD0, len(x), b"".join(self.encode(e) for e in x))
            if not x:
                out[b"\x45"] = b""
            return out
        if t == "map":
            body = b"".join(self.encode(k) + self.encode(e) for k, e in x)
            return _compound(0xC1, 0xD1, 2 * len(x), body)
        return _compound(0xE0, 0xF0, len(x), self._array_body(v))

    def _array_body(self, v):
        """Element constructor plus element payloads, with a constructor all share."""
        element, items = v["element"], v["value"]
        prefix = b""
        if element == "described":
            prefix = b"\x00" + self.encode(items[0]["descriptor"])
            items = [e["value"] for e in items]
        if items:
            options = [self.encodings(e) for e in items]
            shared = set(options[0]).intersection(*options[1:])
            constructor = self.rng.choice(sorted(shared))
            payloads = [o[constructor] for o in options]
        else:
            constructor = bytes([self.rng.choice(EMPTY_ARRAY_CONSTRUCTORS[element])])
            payloads = []
        return prefix + constructor + b"".join(payloads)


# ---------------------------------------------------------------------------
# Codecs under test: amqp-cli, or Proton standing in for it (--self-check)
# ---------------------------------------------------------------------------


class CliFailure:
    """amqp-cli failed (non-zero exit or wrong number of output lines) for one item."""

    def __init__(self, reason):
        self.reason = reason

    def __str__(self):
        return self.reason


class CliCodec:
    """Runs amqp-cli in batches; on a failed batch, bisects to the failing items."""

    def __init__(self, path, timeout=120):
        self.path = path
        self.timeout = timeout

    def _run(self, args, stdin_text):
        proc = subprocess.run([self.path] + args, input=stdin_text.encode("utf-8"),
                              capture_output=True, timeout=self.timeout)
        out = proc.stdout.decode("utf-8", errors="replace")
        err = proc.stderr.decode("utf-8", errors="replace").strip()
        return proc.returncode, [line for line in out.splitlines() if line.strip()], err

    def _batch(self, args, items, counts):
        results = [None] * len(items)

        def solve(lo, hi):
            rc, lines, err = self._run(args, "".join(i + "\n" for i in items[lo:hi]))
            if rc == 0 and len(lines) == sum(counts[lo:hi]):
                pos = 0
                for i in range(lo, hi):
                    results[i] = lines[pos:pos + counts[i]]
                    pos += counts[i]
            elif hi - lo == 1:
                reason = ("exit code %d, stderr: %s" % (rc, err[:300]) if rc != 0 else
                          "expected %d output line(s), got %d: %s"
                          % (counts[lo], len(lines), " | ".join(lines)[:300]))
                results[lo] = CliFailure(reason)
            else:
                mid = (lo + hi) // 2
                solve(lo, mid)
                solve(mid, hi)

        if items:
            solve(0, len(items))
        return results

    def decode_values(self, hex_items, counts):
        """Each item: hex of ``counts[i]`` concatenated values -> that many JSON lines."""
        return self._batch(["decode", "--hex"], hex_items, counts)

    def encode_values(self, json_items):
        """Each item: one typed JSON line -> one hex line."""
        return [r if isinstance(r, CliFailure) else r[0]
                for r in self._batch(["encode", "--hex"], json_items, [1] * len(json_items))]

    def decode_message(self, hex_text):
        rc, lines, err = self._run(["decode", "--message", "--hex"], hex_text + "\n")
        return lines if rc == 0 else CliFailure("exit code %d, stderr: %s" % (rc, err[:300]))


class ProtonStandIn:
    """--self-check: Proton plays amqp-cli, to validate the harness itself."""

    def decode_values(self, hex_items, counts):
        results = []
        for hex_text, count in zip(hex_items, counts):
            values = proton_decode_all(bytes.fromhex(hex_text))
            results.append([dump_typed(v) for v in values] if len(values) == count else
                           CliFailure("expected %d values, got %d" % (count, len(values))))
        return results

    def encode_values(self, json_items):
        return [proton_encode(json_to_model(load_json(line))).hex() for line in json_items]

    def decode_message(self, hex_text):
        return ['{"section":"%s","value":%s}' % (SECTION_NAMES[int(s["descriptor"]["value"])],
                                                 dump_typed(s["value"]))
                for s in proton_decode_all(bytes.fromhex(hex_text))]


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


class CheckResult:
    """Outcome of one check: counts, failures (with details) and notes."""

    def __init__(self, name):
        self.name = name
        self.ok = 0
        self.failures = []
        self.notes = []

    def fail(self, **details):
        self.failures.append(details)

    def summary(self):
        text = "%s: %d ok" % (self.name, self.ok)
        if self.failures:
            text += ", %d FAILED" % len(self.failures)
        return text + "".join(" (%s)" % n for n in self.notes)


def check_decode(name, codec, values, encoder):
    """Encode each model with ``encoder`` and have the codec under test decode it."""
    result = CheckResult(name)
    inputs = []
    for v in values:
        encoded = encoder(v)
        # The bytes must mean the model to Proton too, or the harness is wrong.
        difference = first_difference(canonical(v), canonical(proton_decode_all(encoded)[0]))
        if difference:
            raise RuntimeError("harness bug: Proton reads %s differently from %s: %s"
                               % (encoded.hex(), dump_typed(v), difference))
        inputs.append(encoded.hex())
    outputs = codec.decode_values(inputs, [1] * len(values))
    for v, hex_in, out in zip(values, inputs, outputs):
        reason = str(out) if isinstance(out, CliFailure) else compare_json_line(v, out[0])
        if reason:
            result.fail(reason=reason, input_hex=hex_in, expected=dump_typed(v),
                        got=None if isinstance(out, CliFailure) else out[0])
        else:
            result.ok += 1
    return result


def check_encode(name, codec, values):
    """Have the codec under test encode each model; Proton decodes; compare sizes."""
    result = CheckResult(name)
    inputs = [dump_typed(v, ensure_ascii=(i % 2 == 0)) for i, v in enumerate(values)]
    outputs = codec.encode_values(inputs)
    sizes = {"smaller": 0, "equal": 0, "larger": 0}
    for v, json_in, out in zip(values, inputs, outputs):
        if isinstance(out, CliFailure):
            result.fail(reason=str(out), input_json=json_in)
            continue
        try:
            ours = bytes.fromhex(out)
            decoded = proton_decode_all(ours)
            if len(decoded) != 1:
                raise proton.DataException("%d values instead of 1" % len(decoded))
        except (ValueError, proton.DataException) as e:
            result.fail(reason="Proton cannot decode our output: %s" % e, input_json=json_in,
                        got_hex=out)
            continue
        if canonical(decoded[0]) != canonical(v):
            result.fail(reason="value differs", input_json=json_in, got_hex=out,
                        proton_reads=dump_typed(decoded[0]))
            continue
        theirs = len(proton_encode(v))
        if len(ours) > theirs:
            sizes["larger"] += 1
            result.fail(reason="our encoding is larger than Proton's (%d > %d bytes)"
                        % (len(ours), theirs), input_json=json_in, got_hex=out,
                        proton_hex=proton_encode(v).hex())
            continue
        sizes["smaller" if len(ours) < theirs else "equal"] += 1
        result.ok += 1
    result.notes.append("size vs Proton: %(smaller)d smaller, %(equal)d equal, %(larger)d larger"
                        % sizes)
    return result


# -- messages ---------------------------------------------------------------

HEADER_FIELDS = [("durable", "boolean"), ("priority", "ubyte"), ("ttl", "uint"),
                 ("first_acquirer", "boolean"), ("delivery_count", "uint")]
PROPERTY_FIELDS = [("id", None), ("user_id", "binary"), ("address", "string"),
                   ("subject", "string"), ("reply_to", "string"), ("correlation_id", None),
                   ("content_type", "symbol"), ("content_encoding", "symbol"),
                   ("expiry_time", "timestamp"), ("creation_time", "timestamp"),
                   ("group_id", "string"), ("group_sequence", "uint"),
                   ("reply_to_group_id", "string")]
MESSAGE_ID_TYPES = ["ulong", "uuid", "binary", "string"]
TIME_FIELDS = {"ttl", "expiry_time", "creation_time"}  # Proton's Python API uses seconds


def generate_message_spec(gen):
    """A random message: dict of section name -> content (models / dicts of models)."""
    rng = gen.rng
    spec = {}

    def maybe(p):
        return rng.random() < p

    if maybe(0.7):
        spec["header"] = {f: gen.scalar(t) for f, t in HEADER_FIELDS if maybe(0.5)}
    for section, p in (("delivery-annotations", 0.3), ("message-annotations", 0.4)):
        if maybe(p):
            spec[section] = gen.map_value(3, key_types=["symbol"] * 5 + ["ulong"])
    if maybe(0.7):
        props = {}
        for field, t in PROPERTY_FIELDS:
            if maybe(0.5):
                value = gen.scalar(t or rng.choice(MESSAGE_ID_TYPES))
                if field in TIME_FIELDS:  # keep ms exact through Proton's float seconds
                    value = scalar_model(t, rng.randint(-2**40, 2**42))
                if t == "symbol" and value["value"] == "None":
                    value = scalar_model(t, "none")  # Proton reports absent as 'None'
                props[field] = value
        spec["properties"] = props
    if maybe(0.5):
        spec["application-properties"] = gen.map_value(
            1, key_types=["string"], value_types=[t for t in SCALAR_TYPES])
    r = rng.random()
    if r < 0.35:
        spec["data"] = gen.scalar("binary")
    elif r < 0.55:
        spec["amqp-sequence"] = gen.list_value(3)
    elif r < 0.95:
        spec["amqp-value"] = gen.value(3)
    if maybe(0.15):
        spec["footer"] = gen.map_value(2, key_types=["symbol"])
    return spec


def spec_to_sections(spec, rng):
    """The sections of a spec as described models, in wire order."""
    sections = []
    for name in SECTION_NAMES.values():
        if name not in spec:
            continue
        content = spec[name]
        if name in ("header", "properties"):
            fields = HEADER_FIELDS if name == "header" else PROPERTY_FIELDS
            items = [content.get(f, tv("null")) for f, _t in fields]
            while items and items[-1]["type"] == "null" and rng.random() < 0.8:
                items.pop()  # usually trim trailing nulls, sometimes keep them
            content = tv("list", items)
        sections.append(described(scalar_model("ulong", SECTION_CODES[name]), content))
    return sections


def build_proton_message(spec):
    """Set up a proton.Message through its Python API from a spec."""
    msg = Message()
    for field, value in list(spec.get("header", {}).items()) + list(spec.get("properties", {}).items()):
        obj = model_to_pyobj(value)
        if field in TIME_FIELDS:
            obj = int(obj) / 1000.0
        elif field in ("id", "correlation_id") and value["type"] == "ulong":
            obj = int(obj)
        setattr(msg, field, obj)
    if "delivery-annotations" in spec:
        msg.instructions = model_to_pyobj(spec["delivery-annotations"])
    if "message-annotations" in spec:
        msg.annotations = model_to_pyobj(spec["message-annotations"])
    if "application-properties" in spec:
        msg.properties = model_to_pyobj(spec["application-properties"])
    for body in ("data", "amqp-sequence", "amqp-value"):
        if body in spec:
            msg.body = model_to_pyobj(spec[body])
            msg.inferred = body != "amqp-value"
    return msg


def message_view(msg):
    """The fields of a decoded proton.Message in comparable form."""
    def opt_model(obj):
        return None if obj is None else canonical(pyobj_to_model(obj))

    def message_id(obj):
        if obj is None:
            return None
        if type(obj) is int:
            return canonical(scalar_model("ulong", obj))
        return canonical(pyobj_to_model(obj))

    view = {f: getattr(msg, f) for f in ("durable", "priority", "first_acquirer", "delivery_count",
                                         "user_id", "address", "subject", "reply_to", "group_id",
                                         "group_sequence", "reply_to_group_id")}
    view.update({f: round(getattr(msg, f) * 1000) for f in TIME_FIELDS})
    view.update({f: None if getattr(msg, f) == "None" else str(getattr(msg, f))
                 for f in ("content_type", "content_encoding")})
    view.update(id=message_id(msg.id), correlation_id=message_id(msg.correlation_id),
                instructions=opt_model(msg.instructions), annotations=opt_model(msg.annotations),
                properties=opt_model(msg.properties), inferred=bool(msg.inferred),
                body=opt_model(msg.body))
    return view


def expected_view(spec):
    """What message_view() should report for a message built from ``spec``."""
    header, props = spec.get("header", {}), spec.get("properties", {})

    def field(section, name, default):
        v = section.get(name)
        if v is None:
            return default
        return int(v["value"]) if v["type"] in STRING_INT_TYPES else v["value"]

    view = {"durable": field(header, "durable", False), "priority": field(header, "priority", 4),
            "ttl": field(header, "ttl", 0), "first_acquirer": field(header, "first_acquirer", False),
            "delivery_count": field(header, "delivery_count", 0),
            "user_id": bytes.fromhex(field(props, "user_id", "")),
            "expiry_time": field(props, "expiry_time", 0),
            "creation_time": field(props, "creation_time", 0),
            "group_sequence": field(props, "group_sequence", 0)}
    for name in ("address", "subject", "reply_to", "group_id", "reply_to_group_id",
                 "content_type", "content_encoding"):
        view[name] = field(props, name, None)
    for name in ("id", "correlation_id"):
        view[name] = canonical(props[name]) if name in props else None
    for name, section in (("instructions", "delivery-annotations"),
                          ("annotations", "message-annotations"),
                          ("properties", "application-properties")):
        view[name] = canonical(spec[section]) if section in spec else None
    view["inferred"] = "data" in spec or "amqp-sequence" in spec
    body = spec.get("data") or spec.get("amqp-sequence") or spec.get("amqp-value")
    view["body"] = None if body is None or body["type"] == "null" else canonical(body)
    return view


def check_messages_decode(codec, specs, workers):
    """Proton encodes messages; ours decodes them generically and with --message."""
    generic = CheckResult("proton->ours messages (decode --hex)")
    sectioned = CheckResult("proton->ours messages (decode --message)")
    wires = [build_proton_message(spec).encode() for spec in specs]
    expected = [proton_decode_all(w) for w in wires]
    for sections in expected:
        for s in sections:
            if s["type"] != "described" or s["descriptor"]["type"] != "ulong" or \
                    int(s["descriptor"]["value"]) not in SECTION_NAMES:
                raise RuntimeError("harness bug: Proton wrote a non-section %s" % dump_typed(s))
    hexes = [w.hex() for w in wires]
    outputs = codec.decode_values(hexes, [len(e) for e in expected])
    for hex_in, sections, out in zip(hexes, expected, outputs):
        reasons = [str(out)] if isinstance(out, CliFailure) else \
            [r for r in (compare_json_line(s, line) for s, line in zip(sections, out)) if r]
        if reasons:
            generic.fail(reason="; ".join(reasons), input_hex=hex_in,
                         expected=[dump_typed(s) for s in sections],
                         got=None if isinstance(out, CliFailure) else out)
        else:
            generic.ok += 1

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        outputs = list(pool.map(codec.decode_message, hexes))
    for hex_in, sections, out in zip(hexes, expected, outputs):
        want = [(SECTION_NAMES[int(s["descriptor"]["value"])], s["value"]) for s in sections]
        reason = str(out) if isinstance(out, CliFailure) else compare_sections(want, out)
        if reason:
            sectioned.fail(reason=reason, input_hex=hex_in,
                           expected=['{"section":"%s","value":%s}' % (n, dump_typed(v)) for n, v in want],
                           got=None if isinstance(out, CliFailure) else out)
        else:
            sectioned.ok += 1
    return [generic, sectioned]


def compare_sections(want, lines):
    """Compare ``decode --message`` output lines with (section name, value) pairs."""
    if len(lines) != len(want):
        return "expected %d sections, got %d" % (len(want), len(lines))
    for i, ((name, value), line) in enumerate(zip(want, lines)):
        try:
            doc = load_json(line)
            if not (isinstance(doc, dict) and set(doc) == {"section", "value"}):
                raise ContractError('expected {"section": NAME, "value": V}')
            got = canonical(doc["value"])
        except (ValueError, ContractError) as e:
            return "section %d: invalid JSON: %s" % (i, e)
        if doc["section"] != name:
            return "section %d: expected %s, got %r" % (i, name, doc["section"])
        if got != canonical(value):
            return "section %d (%s): value differs" % (i, name)
    return None


def check_messages_encode(codec, specs, rng):
    """Ours encodes message sections; proton.Message decodes the concatenation."""
    result = CheckResult("ours->proton messages")
    per_message = [spec_to_sections(spec, rng) for spec in specs]
    lines = [dump_typed(s) for sections in per_message for s in sections]
    outputs = iter(codec.encode_values(lines))
    for spec, sections in zip(specs, per_message):
        parts = [next(outputs) for _ in sections]
        inputs = [dump_typed(s) for s in sections]
        failed = [str(p) for p in parts if isinstance(p, CliFailure)]
        if failed:
            result.fail(reason="; ".join(failed), input_json=inputs)
            continue
        wire = "".join(parts)
        msg = Message()
        try:
            msg.decode(bytes.fromhex(wire))
            got = message_view(msg)
        except Exception as e:  # Proton raises several exception types here
            result.fail(reason="Proton cannot decode: %r" % e, input_json=inputs, got_hex=wire)
            continue
        want = expected_view(spec)
        diffs = [k for k in want if want[k] != got[k]]
        if diffs:
            result.fail(reason="fields differ: %s" % ", ".join(diffs), input_json=inputs,
                        got_hex=wire, expected={k: repr(want[k]) for k in diffs},
                        proton_reads={k: repr(got[k]) for k in diffs})
        else:
            result.ok += 1
    if any("footer" in s for s in specs):
        result.notes.append("footers encoded but not compared: Proton's Message ignores them")
    return result


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def print_failures(result, limit):
    for details in result.failures[:limit]:
        print("  --- %s" % result.name)
        for key, value in details.items():
            if isinstance(value, list):
                print("    %s:" % key)
                for item in value:
                    print("      %s" % _clip(str(item)))
            elif isinstance(value, dict):
                print("    %s:" % key)
                for k, item in value.items():
                    print("      %s: %s" % (k, _clip(str(item))))
            else:
                print("    %s: %s" % (key, _clip(str(value))))
    if len(result.failures) > limit:
        print("  ... %d more failure(s) in %s" % (len(result.failures) - limit, result.name))


def _clip(text, limit=2000):
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", help="path to amqp-cli (the codec under test)")
    parser.add_argument("--self-check", action="store_true",
                        help="no amqp-cli: Proton stands in for it, to test this harness")
    parser.add_argument("--count", type=int, default=3000, help="values per direction")
    parser.add_argument("--alt-count", type=int, default=1000,
                        help="values decoded from non-Proton (alternative) encodings")
    parser.add_argument("--messages", type=int, default=300, help="messages per direction")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=5, help="failures shown per check")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                        help="parallel amqp-cli processes for decode --message")
    args = parser.parse_args(argv)
    if bool(args.cli) == args.self_check:
        parser.error("give exactly one of --cli PATH or --self-check")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    codec = ProtonStandIn() if args.self_check else CliCodec(args.cli)

    def rng(phase):
        return random.Random("%d:%s" % (args.seed, phase))

    decode_values = ValueGenerator(rng("decode")).values(args.count)
    alt_values = ValueGenerator(rng("alt")).values(args.alt_count)
    encode_values = ValueGenerator(rng("encode")).values(args.count)
    message_gen = ValueGenerator(rng("messages"), python_safe=True)
    decode_specs = [generate_message_spec(message_gen) for _ in range(args.messages)]
    encode_specs = [generate_message_spec(message_gen) for _ in range(args.messages)]
    alt_encoder = AltEncoder(rng("alt-encoder"))

    if args.self_check:
        print("self-check: Proton stands in for amqp-cli")
    results = [
        check_decode("proton->ours values", codec, decode_values, proton_encode),
        check_decode("alt-encodings->ours values", codec, alt_values, alt_encoder.encode),
        check_encode("ours->proton values", codec, encode_values),
    ]
    results += check_messages_decode(codec, decode_specs, args.jobs)
    results.append(check_messages_encode(codec, encode_specs, rng("sections")))

    for r in results:
        print(r.summary())
    failed = [r for r in results if r.failures]
    for r in failed:
        print_failures(r, args.show)
    print("%s in %.1f s" % ("FAILED" if failed else "all checks passed", time.monotonic() - start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
