"""The typed JSON model of AMQP values, shared by the differential test.

A model is the typed JSON document as Python data (``{"type": T, "value": V}``,
see README.md), except that ``float``/``double`` values are Python floats
(NaN and infinities included) and float32 values are floats exactly
representable in float32.  ``canonical()`` validates a document strictly and
gives a hashable form in which floats compare by bit pattern.
"""

import json
import math
import re
import struct
import uuid
from fractions import Fraction

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
    try:
        best = struct.unpack(">f", struct.pack(">f", d))[0]
    except OverflowError:
        best = math.copysign(FLT_MAX, d)
    best_bits = f32_bits(best)
    # Fast path: rounding via the double is only suspect when the double lies
    # exactly halfway between two float32 values (or near the overflow edge).
    if abs(best) < FLT_MAX:
        other = f32_from_bits(best_bits + (1 if abs(d) > abs(best) else -1))
        if d == best or (best + other) / 2 != d:
            return best
    exact = Fraction(text)
    if abs(exact) >= FLT_OVERFLOW:
        return math.copysign(math.inf, d)
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
    return "%s: expected %s, got %s" % (path, clip(repr(expected), 200), clip(repr(got), 200))


def compare_json_line(expected_model, line):
    """Compare a typed JSON line with the expected model; return None or a reason."""
    try:
        got = canonical(load_json(line))
    except (ValueError, ContractError) as e:
        return "invalid typed JSON: %s" % e
    return first_difference(canonical(expected_model), got)


def clip(text, limit=2000):
    """Shorten long text for reports."""
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)
