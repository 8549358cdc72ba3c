"""An independent AMQP encoder that may choose any valid encoding of a value."""

import struct
import uuid

from typed_json import DECIMAL_SIZES

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
