#!/usr/bin/env bash
# Runs every libFuzzer target for a while, over the committed corpus.
#
#   fuzz/run.sh <build-dir> <seconds-per-target> [libFuzzer flags...]
#
# <build-dir> is a build configured with AMQP_BUILD_FUZZERS=ON (`cmake --preset fuzz` gives
# build/fuzz). New inputs go to a temporary directory, never into fuzz/corpus/ (grow the corpus
# deliberately: see fuzz/README.md). A crash, failed check, leak, timeout or out-of-memory
# leaves its input under fuzz/artifacts/<target>/ (gitignored) and makes the script exit 1
# after the remaining targets ran. The targets are the directories of fuzz/corpus/;
# FUZZ_TARGETS="a b" limits the run to some of them. fuzz/dict/<target>.dict, if present, is
# the target's libFuzzer dictionary.
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 <build-dir> <seconds-per-target> [libFuzzer flags...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 2
secs=$2
shift 2
cd "$(dirname "$0")/.." || exit 2

# Every target has a corpus directory; a target whose binary is missing is a failure.
if [ -z "${FUZZ_TARGETS:-}" ]; then
  FUZZ_TARGETS=$(cd fuzz/corpus && for d in */; do printf '%s ' "${d%/}"; done)
fi
targets=$FUZZ_TARGETS
# FUZZ_JOBS targets run at once (./dev gives its JOBS); each one's report is printed whole
# when it ends.
jobs=${FUZZ_JOBS:-1}
results=$(mktemp -d "${TMPDIR:-/tmp}/amqp-fuzz-results.XXXXXX")

# fuzz_one TARGET: runs it, prints its report; exit status 1 on a failure.
fuzz_one() {
  local t=$1
  local bin="$build/fuzz/fuzz_$t"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin not found (configure with -DAMQP_BUILD_FUZZERS=ON)" >&2
    return 1
  fi
  local dict=()
  if [ -f "fuzz/dict/$t.dict" ]; then
    dict=(-dict="fuzz/dict/$t.dict")
  fi
  local new
  new=$(mktemp -d "${TMPDIR:-/tmp}/amqp-fuzz-$t.XXXXXX")
  mkdir -p "fuzz/artifacts/$t"
  local log="$new.log"
  echo "== fuzz_$t for ${secs}s"
  "$bin" -seed="${FUZZ_SEED:-1}" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "${dict[@]}" "${extra[@]}" \
    "$new" "fuzz/corpus/$t" >"$log" 2>&1
  local rc=$?
  # The last status line: coverage, features, corpus, exec/s.
  grep -E '^#[0-9]+' "$log" | tail -n 1
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log"
  if [ $rc -ne 0 ]; then
    echo "fuzz_$t FAILED (exit $rc); log:"
    grep -E -A40 '^==[0-9]+==|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -n 80
  fi
  rm -rf "$new" "$log"
  [ $rc -eq 0 ]
}

extra=("$@")
running=0
for t in $targets; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  (fuzz_one "$t" >"$results/$t.out" 2>&1 || touch "$results/$t.failed"; cat "$results/$t.out") &
  running=$((running + 1))
done
wait
failed=()
for t in $targets; do
  if [ -e "$results/$t.failed" ]; then
    failed+=("$t")
  fi
done
rm -rf "$results"

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: failures in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all targets ran ${secs}s without a failure"
