#!/usr/bin/python3
"""clang-tidy 14 with the project's .clang-tidy over the sources of amqp, transport, broker,
iothub and tools (./dev test tidy).

    .ci/tidy.py BUILD_DIR [-j N] [--no-cache] [--files REGEX]

BUILD_DIR holds compile_commands.json (configuring the dev preset is enough: nothing is
built). Findings are errors (.clang-tidy: WarningsAsErrors '*'), also in the project's own
headers. Exit status 1 if any file has a finding.

A file that passed is remembered (like ccache, in $AMQP_TIDY_CACHE or
~/.cache/amqp-clang-tidy), under a key made of what decides the result: clang-tidy's
version, .clang-tidy, the compile command (the source directory written as a placeholder,
so another clone shares the cache) and the file preprocessed by clang with that command
(every header it reads, system headers included). A later run with the same key skips the
file. Files with findings are never remembered.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

TIDY = "clang-tidy-14"
CLANG = "clang++-14"
SOURCES = r"(amqp/src|transport/src|broker/src|iothub/src|iothub/emulator|iothub/client|iothub/cli|tools)/[^/]+(/[^/]+)?\.cpp$"
HEADERS = r"/(amqp|transport|broker|iothub|tools)/"
CACHE_ENTRIES_KEPT = 4000


def entry_args(entry):
    if "arguments" in entry:
        return list(entry["arguments"])
    return shlex.split(entry["command"])


def compile_args(entry):
    """The compiler's arguments without the launcher, the compiler, -o OUT and -c FILE."""
    args = entry_args(entry)
    if os.path.basename(args[0]) in ("ccache", "sccache"):
        args = args[1:]
    args = args[1:]  # the compiler
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD") or a == entry["file"]:
            continue
        out.append(a)
    return out


def cache_key(root, entry, version, config):
    args = compile_args(entry)
    pre = subprocess.run(
        [CLANG, *args, "-E", "-P", "-w", "-Wno-unknown-warning-option", entry["file"]],
        cwd=entry["directory"], capture_output=True, check=False)
    if pre.returncode != 0:
        return None  # no key: the file is checked (clang-tidy reports the error)
    h = hashlib.sha256()
    for part in (version, config, " ".join(args).replace(str(root), "@ROOT@"),
                 os.path.relpath(entry["file"], root)):
        h.update(part.encode())
        h.update(b"\0")
    # __FILE__ expands to an absolute path: written as the placeholder too.
    h.update(pre.stdout.replace(str(root).encode(), b"@ROOT@"))
    return h.hexdigest()


def check(root, build, entry, cache, version, config):
    """(relative file, passed, output, from cache)."""
    rel = os.path.relpath(entry["file"], root)
    key = cache_key(root, entry, version, config) if cache else None
    if key and (cache / key).exists():
        (cache / key).touch()
        return rel, True, "", True
    r = subprocess.run(
        [TIDY, "-p", str(build), "--quiet", f"--header-filter=^{re.escape(str(root))}{HEADERS}",
         entry["file"]], capture_output=True, text=True, check=False)
    # Only our diagnostics: clang-tidy also prints "N warnings generated" and the like.
    output = "\n".join(
        line for line in (r.stdout + r.stderr).splitlines()
        if not re.match(r"^\d+ warnings? (and \d+ errors? )?generated\.$", line) and
        not line.startswith("Suppressed ") and
        not line.startswith("Use -header-filter") and
        not line.startswith("Error while processing"))
    passed = r.returncode == 0 and ": warning: " not in output and ": error: " not in output
    if passed and key:
        (cache / key).touch()
    return rel, passed, output.strip(), False


def prune(cache):
    entries = sorted(cache.iterdir(), key=lambda p: p.stat().st_mtime)
    for p in entries[:-CACHE_ENTRIES_KEPT]:
        p.unlink(missing_ok=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--files", default="", help="only the files matching this regex")
    ap.add_argument("-j", type=int, default=int(os.environ.get("JOBS", "2")))
    ap.add_argument("--no-cache", action="store_true")
    a = ap.parse_args()

    root = Path(__file__).resolve().parent.parent
    build = Path(a.build).resolve()
    db = json.loads((build / "compile_commands.json").read_text())
    entries = {}
    for e in db:
        f = os.path.normpath(os.path.join(e["directory"], e["file"]))
        rel = os.path.relpath(f, root)
        if re.match(SOURCES, rel) and re.search(a.files, rel):
            entries[f] = dict(e, file=f)  # each file once (the library's objects)
    if not entries:
        print("tidy: no source matches", file=sys.stderr)
        return 2

    version = subprocess.run([TIDY, "--version"], capture_output=True, text=True,
                             check=True).stdout
    config = (root / ".clang-tidy").read_text()
    cache = None
    if not a.no_cache:
        cache = Path(os.environ.get("AMQP_TIDY_CACHE",
                                    Path.home() / ".cache" / "amqp-clang-tidy"))
        cache.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    failed = []
    cached = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.j)) as pool:
        jobs = [pool.submit(check, root, build, e, cache, version, config)
                for e in sorted(entries.values(), key=lambda e: e["file"])]
        for job in concurrent.futures.as_completed(jobs):
            rel, passed, output, hit = job.result()
            cached += hit
            if not passed:
                failed.append(rel)
                print(output or f"{rel}: clang-tidy failed", flush=True)
    if cache:
        prune(cache)
    print(f"tidy: {len(entries)} files, {len(entries) - len(failed)} clean "
          f"({cached} known clean from an earlier run), {len(failed)} with findings, "
          f"{time.monotonic() - t0:.0f} s")
    for rel in sorted(failed):
        print(f"tidy: findings in {rel}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
