#!/usr/bin/python3
"""Captures the bytes Qpid Proton sends, for the frame layer's tests and fuzz seeds.

    tests/tools/capture_proton_frames.py [--vectors FILE] [--corpus DIR]

Runs connection scenarios between two in-memory Proton transports (Debian's
python3-qpid-proton; no sockets) and writes:
  --vectors FILE  (default tests/vectors/frames/proton.md) the literate vectors: each stream
                  one side sent, with its expected log (see tests/vectors/frames/README.md).
                  The log is computed here, independently of our C++ code: frame headers
                  are parsed by hand and each performative is measured with proton.Data.
  --corpus DIR    (default fuzz/corpus/decode_frame) seeds for fuzz/decode_frame.cpp, named
                  by the sha256 of their content: each stream and each frame alone, behind
                  the 8 parameter bytes that target reads first.
"""

import argparse
import hashlib
import os
import struct
import textwrap

import proton
from proton import Connection, Delivery, Message, Transport

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

NAMES = {
    0x10: "open", 0x11: "begin", 0x12: "attach", 0x13: "flow", 0x14: "transfer",
    0x15: "disposition", 0x16: "detach", 0x17: "end", 0x18: "close",
    0x40: "sasl-mechanisms", 0x41: "sasl-init", 0x42: "sasl-challenge",
    0x43: "sasl-response", 0x44: "sasl-outcome",
}
HEADERS = {b"AMQP\x00\x01\x00\x00": "amqp", b"AMQP\x03\x01\x00\x00": "sasl"}


def pump(a, b, out_a, out_b):
    """Moves bytes between two transports until both are quiet."""
    while True:
        moved = False
        for src, dst, log in ((a, b, out_a), (b, a, out_b)):
            n = src.pending()
            if n > 0:
                data = src.peek(n)
                src.pop(n)
                log += data
                dst.push(data)
                moved = True
        if not moved:
            return


def exchange(sasl=None, body="hello", server_max_frame=None, idle_timeout=None):
    """A client sends one message to a server; both close. Returns (client, server) bytes."""
    c1, t1 = Connection(), Transport()
    c2, t2 = Connection(), Transport(Transport.SERVER)
    if server_max_frame:
        t2.max_frame_size = server_max_frame
    if idle_timeout:
        t2.idle_timeout = idle_timeout
    if sasl:
        t1.sasl().allowed_mechs(sasl)
        t2.sasl().allowed_mechs(sasl)
    t1.bind(c1)
    t2.bind(c2)
    a, b = bytearray(), bytearray()
    c1.container, c1.hostname = "client", "localhost"
    c1.open()
    pump(t1, t2, a, b)
    c2.container = "server"
    c2.open()
    ssn = c1.session()
    ssn.open()
    snd = ssn.sender("link-1")
    snd.target.address = "queue"
    snd.open()
    pump(t1, t2, a, b)
    if idle_timeout:
        # Proton's clock starts at the first tick; at 0.8 of the timeout nothing has been
        # sent for more than half of it, so the client sends an empty frame.
        for now in (idle_timeout * 0.25, idle_timeout * 0.8):
            t1.tick(now)
            t2.tick(now)
            pump(t1, t2, a, b)
    s2 = c2.session_head(0)
    s2.open()
    rcv = c2.link_head(0)
    rcv.source.address = rcv.remote_source.address
    rcv.target.address = rcv.remote_target.address
    rcv.open()
    rcv.flow(10)
    pump(t1, t2, a, b)
    snd.delivery("tag-1")
    snd.send(Message(body=body).encode())
    snd.advance()
    pump(t1, t2, a, b)
    d = rcv.current
    if d is not None:
        rcv.recv(d.pending)
        d.update(Delivery.ACCEPTED)
        d.settle()
        rcv.advance()
    pump(t1, t2, a, b)
    snd.close()
    ssn.close()
    c1.close()
    pump(t1, t2, a, b)
    rcv.close()
    s2.close()
    c2.close()
    pump(t1, t2, a, b)
    return bytes(a), bytes(b)


def plain_client():
    """A SASL PLAIN client's stream. Proton's built-in SASL cannot serve PLAIN, so the
    server's sasl-mechanisms (offering PLAIN) and sasl-outcome (ok) are written by hand."""
    c, t = Connection(), Transport()
    s = t.sasl()
    s.allowed_mechs("PLAIN")
    s.allow_insecure_mechs = True
    c.user, c.password = "device-1", "secret"
    t.bind(c)
    c.container, c.hostname = "client", "localhost"
    c.open()
    out = bytearray()
    mechanisms = bytes.fromhex("00000018 02010000 005340 c00b01 e00801a305 504c41494e"
                               .replace(" ", ""))
    outcome = bytes.fromhex("00000010 02010000 005344 c00301 5000".replace(" ", ""))
    for push in (b"", b"AMQP\x03\x01\x00\x00" + mechanisms, outcome + b"AMQP\x00\x01\x00\x00"):
        t.push(push)
        n = t.pending()
        if n > 0:
            out += t.peek(n)
            t.pop(n)
    return bytes(out)


def split_stream(data):
    """Splits a stream into ('header', bytes) and ('frame', bytes) pieces, by hand."""
    pieces, pos = [], 0
    while pos < len(data):
        if data[pos:pos + 4] == b"AMQP":
            pieces.append(("header", data[pos:pos + 8]))
            pos += 8
            continue
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        pieces.append(("frame", data[pos:pos + size]))
        pos += size
    return pieces


def log_of(data):
    """The expected log of a stream: one line per header and per frame."""
    lines = []
    for kind, b in split_stream(data):
        if kind == "header":
            lines.append("header " + HEADERS[b])
            continue
        doff, ftype = b[4], b[5]
        (channel,) = struct.unpack(">H", b[6:8])
        body = b[doff * 4:]
        if ftype == 1:
            lines.append("SASL " + name_of(body)[0])
        elif not body:
            lines.append("AMQP ch=%d heartbeat" % channel)
        else:
            name, used = name_of(body)
            lines.append("AMQP ch=%d %s payload=%d" % (channel, name, len(body) - used))
    return lines


def name_of(body):
    d = proton.Data()
    used = d.decode(body)
    d.rewind()
    d.next()
    d.enter()
    d.next()
    return NAMES[int(d.get_object())], used


def hex_lines(data, width=32):
    h = data.hex()
    out = []
    for i in range(0, len(h), width * 2):
        chunk = h[i:i + width * 2]
        out.append(" ".join(chunk[j:j + 2] for j in range(0, len(chunk), 2)))
    return "\n".join(out)


SCENARIOS = [
    ("client without SASL", "the client's stream: header, open, begin, attach (sender), transfer "
     "of one small message, then detach, end and close", dict(), 0, None),
    ("server without SASL", "the server's answers: header, open, begin, attach (receiver), flow "
     "granting credit, disposition settling the delivery, detach, end, close", dict(), 1, None),
    ("client with SASL ANONYMOUS", "the SASL header, sasl-init, then, pipelined without waiting "
     "for the outcome, the AMQP header and the AMQP frames (§5.3.2)", dict(sasl="ANONYMOUS"), 0,
     None),
    ("server with SASL ANONYMOUS", "the SASL header, sasl-mechanisms, sasl-outcome, then the "
     "AMQP header and frames", dict(sasl="ANONYMOUS"), 1, None),
    ("client with SASL PLAIN", "sasl-init carrying an initial response (§5.3.3.2), then, "
     "once the outcome is in, the AMQP header and open", "plain", 0, None),
    ("multi-frame transfer at max-frame-size 512", "the server announces max-frame-size 512, so "
     "Proton splits a 1500-byte message over four transfer frames, the first three with "
     "more=true and filled to exactly 512 bytes (§2.7.5)", dict(body="x" * 1500, server_max_frame=512), 0,
     None),
    ("one large transfer frame", "a 3000-byte message in one frame: accepted under "
     "max-frame-size 4096", dict(body="y" * 3000), 0, "max-frame-size=4096"),
    ("one large transfer frame above the limit", "the same stream under max-frame-size 1024: "
     "the transfer's header announces a frame too large, refused before its body is read "
     "(§2.7.1: framing-error)", dict(body="y" * 3000), 0, "max-frame-size=1024"),
    ("heartbeat", "the server asks for an idle timeout of 2 s (open.idle-time-out 1000 ms, half "
     "of it); the client, with nothing to send, sends an empty frame (§2.4.5)",
     dict(idle_timeout=2.0), 0, None),
]


def fuzz_params(flags, max_frame=512, sasl_max=512, chunk_a=0, chunk_b=0, depth=32):
    """The 8 parameter bytes of fuzz/decode_frame.cpp."""
    return struct.pack(">BHHBBB", flags, max_frame, sasl_max, chunk_a, chunk_b, depth)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", default=os.path.join(ROOT, "tests/vectors/frames/proton.md"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "fuzz/corpus/decode_frame"))
    args = ap.parse_args()

    md = ["# Frames as Qpid Proton sends them", "",
          "Streams captured from Qpid Proton %s (python3-qpid-proton) by" %
          ".".join(map(str, proton.VERSION)),
          "`tests/tools/capture_proton_frames.py`: two in-memory transports, a client sending one",
          "message to a server. Each stream begins with its protocol header (AMQP 1.0 §2.2, "
          "§5.3.1);",
          "the frames follow the layout of §2.3.1. Generated: edit the script, not this file.", ""]
    seeds = []
    for title, prose, kw, side, config in SCENARIOS:
        stream = plain_client() if kw == "plain" else exchange(**kw)[side]
        lines = log_of(stream)
        if config == "max-frame-size=1024":
            # The log up to the large frame, then the error raised from its header alone.
            cut = next(i for i, l in enumerate(lines) if "transfer" in l)
            lines = lines[:cut] + ["error: frame larger than the maximum frame size"]
        md += ["## " + title, ""] + textwrap.wrap(prose[0].upper() + prose[1:] + ".", 92) + [""]
        if config:
            md += ["```config", config, "```", ""]
        if title.startswith("multi-frame"):
            sizes = [len(p) for k, p in split_stream(stream) if k == "frame"]
            assert sizes[3:7] == [512, 512, 512, sizes[6]] and sizes[6] < 512, sizes
        md += ["```hex", hex_lines(stream), "```", "", "```log"] + lines + ["```", ""]
        big = 4096 if config else 512
        seeds.append(fuzz_params(1, big, 512) + stream)
        seeds.append(fuzz_params(1, big, 512, 1, 7) + stream)
        mode_sasl = False
        for kind, piece in split_stream(stream):
            if kind == "header":
                mode_sasl = piece[4] == 3
                continue
            seeds.append(fuzz_params(2 if mode_sasl else 0, big, 512, 3, 0) + piece)
    os.makedirs(os.path.dirname(args.vectors), exist_ok=True)
    with open(args.vectors, "w") as f:
        f.write("\n".join(md))
    os.makedirs(args.corpus, exist_ok=True)
    written = set()
    for s in seeds:
        name = hashlib.sha256(s).hexdigest()
        if name in written:
            continue
        written.add(name)
        with open(os.path.join(args.corpus, name), "wb") as f:
            f.write(s)
    print("%s: %d vectors; %s: %d seeds" % (args.vectors, len(SCENARIOS), args.corpus,
                                            len(written)))


if __name__ == "__main__":
    main()
