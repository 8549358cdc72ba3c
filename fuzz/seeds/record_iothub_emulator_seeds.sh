#!/usr/bin/env bash
# Records the seeds of the iothub_emulator fuzz target and adds them to
# fuzz/corpus/iothub_emulator/<sha256 of the content>.
#
#   fuzz/seeds/record_iothub_emulator_seeds.sh <build-dir>
#
# <build-dir> is a tests build (e.g. build/dev) with fuzz_record_iothub_emulator_seeds built.
# Existing corpus files are kept (remove them first to replace the recorded seeds).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 <build-dir>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."
tool="$build/fuzz/fuzz_record_iothub_emulator_seeds"
[ -x "$tool" ] || { echo "record: $tool not found" >&2; exit 2; }
out=$(mktemp -d "${TMPDIR:-/tmp}/amqp-iothub-seeds.XXXXXX")
trap 'rm -rf "$out"' EXIT
"$tool" "$out"
mkdir -p fuzz/corpus/iothub_emulator
for f in "$out"/iothub_emulator/*; do
  cp "$f" "fuzz/corpus/iothub_emulator/$(sha256sum "$f" | cut -c1-64)"
done
echo "fuzz/corpus/iothub_emulator: $(ls fuzz/corpus/iothub_emulator | wc -l) files," \
  "$(du -sk fuzz/corpus/iothub_emulator | cut -f1) KB"
