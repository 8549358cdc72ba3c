"""AMQP messages for the differential test: generation, sections, Proton views.

A message *spec* maps section names (``header``, ``properties``, ...,
``amqp-value``, ``footer``) to content: for ``header`` and ``properties`` a
dict of field name -> model, otherwise a model (map, binary, list, value).
"""

from proton import Message

from proton_bridge import model_to_pyobj, pyobj_to_model
from typed_json import (SCALAR_TYPES, SECTION_CODES, SECTION_NAMES, STRING_INT_TYPES, canonical,
                        described, scalar_model, tv)

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
                if t in ("string", "symbol"):  # Proton's Message API uses C strings
                    value = scalar_model(t, value["value"].replace("\x00", ""))
                props[field] = value
        spec["properties"] = props
    if maybe(0.5):
        spec["application-properties"] = gen.map_value(
            1, key_types=["string"], value_types=SCALAR_TYPES)
    r = rng.random()
    if r < 0.35:
        spec["data"] = gen.scalar("binary")
    elif r < 0.55:
        spec["amqp-sequence"] = gen.list_value(3)
    elif r < 0.95 or not spec:  # never an empty message
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
