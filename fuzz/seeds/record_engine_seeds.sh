#!/usr/bin/env bash
# Records the seeds of the engine fuzz targets (connection_client, connection_server, sasl)
# and adds them to fuzz/corpus/<target>/<sha256 of the content>.
#
#   fuzz/seeds/record_engine_seeds.sh <build-dir>
#
# <build-dir> is a tests build (e.g. build/dev) with fuzz_record_engine_seeds built:
#   cmake --build build/dev --target fuzz_record_engine_seeds
# Existing corpus files are kept (remove them first to replace the recorded seeds).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 <build-dir>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."
tool="$build/fuzz/fuzz_record_engine_seeds"
[ -x "$tool" ] || { echo "record: $tool not found" >&2; exit 2; }
out=$(mktemp -d "${TMPDIR:-/tmp}/amqp-engine-seeds.XXXXXX")
trap 'rm -rf "$out"' EXIT
"$tool" "$out"
for dir in "$out"/*/; do
  t=$(basename "$dir")
  mkdir -p "fuzz/corpus/$t"
  for f in "$dir"*; do
    cp "$f" "fuzz/corpus/$t/$(sha256sum "$f" | cut -c1-64)"
  done
  echo "fuzz/corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) files, $(du -sk "fuzz/corpus/$t" | cut -f1) KB"
done
