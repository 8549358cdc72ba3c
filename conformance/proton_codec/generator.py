"""Deterministic generation of typed JSON models covering all AMQP types."""

import math
import uuid

from proton_bridge import model_to_pyobj
from typed_json import (COMPOUND_TYPES, DECIMAL_SIZES, FLT_MAX, INT_RANGES, SCALAR_TYPES, array,
                        canonical, described, f32_from_bits, f64_from_bits, scalar_model,
                        to_float32, tv)

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
            count = self.rng.randint(0, 6) if r < 0.8 else self.rng.randint(7, 16)
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
            count = self.rng.randint(0, 6) if self.rng.random() < 0.9 else self.rng.randint(7, 16)
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
