#!/usr/bin/env bash
# Minimises a target's corpus together with new inputs and replaces fuzz/corpus/<target>/ with
# the result, each file named by the sha256 of its content.
#
#   fuzz/merge_corpus.sh <build-dir> <target> [dir-of-new-inputs...]
#
# libFuzzer's -merge=1 keeps the smallest set of inputs covering every feature; inputs that
# crash or time out are left out (minimise those into fuzz/regressions/<target>/).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 <build-dir> <target> [dir-of-new-inputs...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
t=$2
shift 2
extra=()
for d in "$@"; do extra+=("$(cd "$d" && pwd)"); done
cd "$(dirname "$0")/.."

bin="$build/fuzz/fuzz_$t"
[ -x "$bin" ] || { echo "merge: $bin not found" >&2; exit 2; }
mkdir -p "fuzz/corpus/$t"
min=$(mktemp -d "${TMPDIR:-/tmp}/amqp-merge-$t.XXXXXX")
trap 'rm -rf "$min"' EXIT
"$bin" -merge=1 -use_counters=0 -max_len=65536 -timeout=10 -rss_limit_mb=2048 "$min" "fuzz/corpus/$t" \
  "${extra[@]}" >"$min.log" 2>&1 || { tail -n 20 "$min.log" >&2; rm -f "$min.log"; exit 1; }
grep -E '^MERGE-OUTER: [0-9]+ new files' "$min.log" || true
rm -f "$min.log"

rm -f "fuzz/corpus/$t"/*
for f in "$min"/*; do
  [ -e "$f" ] || continue
  cp "$f" "fuzz/corpus/$t/$(sha256sum "$f" | cut -c1-64)"
done
echo "fuzz/corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) files, $(du -sk "fuzz/corpus/$t" | cut -f1) KB"
