"""Conversions between the typed JSON model and Qpid Proton.

* ``put_model``/``read_model`` walk a ``proton.Data`` (the codec proper);
* ``model_to_pyobj``/``pyobj_to_model`` convert to and from the Python
  objects of Proton's ``put_object``/``get_object`` (used by the Message API).
"""

import uuid

import proton
from proton import (Array, Data, Described, char, decimal32, decimal64, decimal128, float32,
                    int32, short, symbol, timestamp, ubyte, uint, ulong, ushort)
from proton import byte as pbyte

from typed_json import DECIMAL_SIZES, STRING_INT_TYPES, array, described, tv

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
    if t is None and isinstance(o, dict):  # AnnotationDict, PropertyDict
        t = "map"
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
