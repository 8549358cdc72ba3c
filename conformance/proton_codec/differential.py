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

Modules: typed_json (model, JSON form, comparison), generator (values),
proton_bridge (model <-> Proton), alt_encoder (any-valid-encoding writer),
messages (message specs and views), and this driver.
"""

import argparse
import concurrent.futures
import os
import random
import subprocess
import sys
import time

import proton
from proton import Message

# The helper modules live next to this script; do not leave __pycache__ there.
sys.dont_write_bytecode = True

from alt_encoder import AltEncoder
from generator import ValueGenerator
from messages import (build_proton_message, expected_view, generate_message_spec, message_view,
                      spec_to_sections)
from proton_bridge import proton_decode_all, proton_encode
from typed_json import (ContractError, SECTION_NAMES, canonical, clip, compare_json_line,
                        dump_typed, first_difference, json_to_model, load_json)

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
    """Runs amqp-cli in batches; on a failed batch, bisects to the failing items.

    Bisection stops after ``max_isolated`` failing items have been found, so a
    codec that fails on everything does not cost thousands of processes.
    """

    def __init__(self, path, timeout=120, max_isolated=50):
        self.path = path
        self.timeout = timeout
        self.max_isolated = max_isolated

    def _run(self, args, stdin_text):
        """Run amqp-cli once: (exit code, non-empty stdout lines, stderr)."""
        try:
            proc = subprocess.run([self.path] + args, input=stdin_text.encode("utf-8"),
                                  capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return None, [], "timed out after %d s" % self.timeout
        out = proc.stdout.decode("utf-8", errors="replace")
        err = proc.stderr.decode("utf-8", errors="replace").strip()
        return proc.returncode, [line for line in out.splitlines() if line.strip()], err

    def _batch(self, args, items, counts):
        """Feed ``items`` (one per line); item i must yield ``counts[i]`` lines."""
        results = [None] * len(items)
        isolated = 0

        def solve(lo, hi):
            nonlocal isolated
            rc, lines, err = self._run(args, "".join(i + "\n" for i in items[lo:hi]))
            if rc == 0 and len(lines) == sum(counts[lo:hi]):
                pos = 0
                for i in range(lo, hi):
                    results[i] = lines[pos:pos + counts[i]]
                    pos += counts[i]
            elif rc is None or hi - lo == 1 or isolated >= self.max_isolated:
                if rc is None:
                    reason = err
                elif rc != 0:
                    reason = "exit code %d, stderr: %s" % (rc, err[:300])
                else:
                    reason = "expected %d output line(s), got %d: %s" % (
                        sum(counts[lo:hi]), len(lines), " | ".join(lines)[:300])
                if hi - lo > 1:
                    reason = "batch of %d failed, not bisected further: %s" % (hi - lo, reason)
                isolated += 1
                for i in range(lo, hi):
                    results[i] = CliFailure(reason)
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
        """One message (hex) -> one JSON line per section."""
        rc, lines, err = self._run(["decode", "--message", "--hex"], hex_text + "\n")
        if rc == 0:
            return lines
        return CliFailure(err if rc is None else "exit code %d, stderr: %s" % (rc, err[:300]))


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
        difference = first_difference(canonical(v), canonical(decoded[0]))
        if difference:
            result.fail(reason="Proton reads a different value: " + difference,
                        input_json=json_in, got_hex=out, proton_reads=dump_typed(decoded[0]))
            continue
        theirs = proton_encode(v)
        if len(ours) > len(theirs):
            sizes["larger"] += 1
            result.fail(reason="our encoding is larger than Proton's (%d > %d bytes)"
                        % (len(ours), len(theirs)), input_json=json_in, got_hex=out,
                        proton_hex=theirs.hex())
            continue
        sizes["smaller" if len(ours) < len(theirs) else "equal"] += 1
        result.ok += 1
    result.notes.append("size vs Proton: %(smaller)d smaller, %(equal)d equal, %(larger)d larger"
                        % sizes)
    return result


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
        difference = first_difference(canonical(value), got)
        if difference:
            return "section %d (%s): %s" % (i, name, difference)
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
        if not wire:  # Proton's message decoder aborts the process on empty input
            result.fail(reason="empty encoding", input_json=inputs)
            continue
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
    """Print the first ``limit`` failures of a check with all their details."""
    for details in result.failures[:limit]:
        print("  --- %s" % result.name)
        for key, value in details.items():
            if isinstance(value, list):
                print("    %s:" % key)
                for item in value:
                    print("      %s" % clip(str(item)))
            elif isinstance(value, dict):
                print("    %s:" % key)
                for k, item in value.items():
                    print("      %s: %s" % (k, clip(str(item))))
            else:
                print("    %s: %s" % (key, clip(str(value))))
    if len(result.failures) > limit:
        print("  ... %d more failure(s) in %s" % (len(result.failures) - limit, result.name))


def parse_args(argv):
    """Command line options (see README.md)."""
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
    if args.cli and not os.access(args.cli, os.X_OK):
        parser.error("not an executable: %s" % args.cli)
    return args


def main(argv=None):
    """Run every check; return the process exit code (0 = all passed)."""
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
