#!/usr/bin/env bash
# End to end through amqp-cli: `broker` on loopback (plain, TLS, WebSocket), `send` and
# `receive` against it, outcomes, SASL PLAIN, and the frame trace with the password redacted.
# Usage: net_cli_test.sh AMQP_CLI CERT_DIR
set -euo pipefail
cli=$1
certs=$2
work=$(mktemp -d)
broker_pid=
broker2_pid=
broker3_pid=
broker4_pid=
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  [ -n "$broker2_pid" ] && kill "$broker2_pid" 2>/dev/null && wait "$broker2_pid" 2>/dev/null
  [ -n "$broker3_pid" ] && kill "$broker3_pid" 2>/dev/null && wait "$broker3_pid" 2>/dev/null
  [ -n "$broker4_pid" ] && kill "$broker4_pid" 2>/dev/null && wait "$broker4_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$cli" broker --listen amqp://127.0.0.1:0 --listen amqps://127.0.0.1:0 --listen ws://127.0.0.1:0/amqp \
  --cert "$certs/server.pem" --key "$certs/server.key" --user alice:Pa55-w0rd-s3cret --anonymous \
  >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
for _ in $(seq 50); do
  [ "$(grep -c '^listening' "$work/broker.out" || true)" -eq 3 ] && break
  sleep 0.1
done
port() { sed -n "s|^listening $1://127.0.0.1:\([0-9]*\).*|\1|p" "$work/broker.out"; }
amqp=$(port amqp)
amqps=$(port amqps)
ws=$(port ws)
[ -n "$amqp" ] && [ -n "$amqps" ] && [ -n "$ws" ] || { cat "$work/broker.out" "$work/broker.err"; exit 1; }

expect() { # expect "TEXT" COMMAND...: runs COMMAND, fails unless its stdout contains TEXT
  local want=$1
  shift
  local out
  out=$("$@" 2>"$work/last.err") || { echo "FAILED: $*"; echo "$out"; cat "$work/last.err"; exit 1; }
  grep -qF -- "$want" <<<"$out" || { echo "FAILED: $* printed: $out (wanted $want)"; exit 1; }
  echo "ok: $*"
}

expect "sent 1000 accepted 1000" "$cli" send "amqp://127.0.0.1:$amqp" q1 -n 1000 --size 200
expect "received 1000" "$cli" receive "amqp://127.0.0.1:$amqp" q1 -n 1000
expect "sent 100 accepted 0" "$cli" send "amqp://127.0.0.1:$amqp" q2 -n 100 --presettled
expect "received 100" "$cli" receive "amqp://127.0.0.1:$amqp" q2 -n 100 --outcome reject
expect "sent 2 accepted 2" "$cli" send "amqps://127.0.0.1:$amqps" q3 -n 2 --size 1048576 --ca "$certs/ca.pem"
expect "received 2" "$cli" receive "amqps://localhost:$amqps" q3 -n 2 --ca "$certs/ca.pem"
expect "sent 50 accepted 50" "$cli" send "ws://127.0.0.1:$ws/amqp" q4 -n 50
expect "received 50" "$cli" receive "ws://127.0.0.1:$ws/amqp" q4 -n 50
# Released messages come back: receive one with release, then it is still there.
expect "sent 1 accepted 1" "$cli" send "amqp://127.0.0.1:$amqp" q5 --body hello
expect "received 1" "$cli" receive "amqp://127.0.0.1:$amqp" q5 --outcome release
expect "hello" "$cli" receive "amqp://127.0.0.1:$amqp" q5 --print
# rcv-settle-mode second: the broker settles each outcome; released ones still come back.
expect "sent 20 accepted 20" "$cli" send "amqp://127.0.0.1:$amqp" q8 -n 20
expect "received 20" "$cli" receive "amqp://127.0.0.1:$amqp" q8 -n 20 --settle-second --outcome release
expect "received 20" "$cli" receive "amqp://127.0.0.1:$amqp" q8 -n 20 --settle-second
if "$cli" receive "amqp://127.0.0.1:$amqp" q8 --timeout 1 >/dev/null 2>&1; then
  echo "FAILED: q8 still has a message after 20 accepted with --settle-second"
  exit 1
fi
echo "ok: q8 empty"
# A wrong CA: the TLS handshake fails, exit status 1.
if "$cli" send "amqps://127.0.0.1:$amqps" q6 --ca "$certs/other-ca.pem" --timeout 5 >/dev/null 2>&1; then
  echo "FAILED: TLS with an untrusted CA succeeded"
  exit 1
fi
echo "ok: untrusted CA refused"
# SASL PLAIN with --trace: the frames are printed, the password never is.
expect "sent 1 accepted 1" "$cli" send "amqp://alice:Pa55-w0rd-s3cret@127.0.0.1:$amqp" q7 --trace
grep -q "sasl-init" "$work/last.err" || { echo "FAILED: no trace"; exit 1; }
if grep -q "Pa55-w0rd-s3cret" "$work/last.err"; then
  echo "FAILED: the password appears in the trace"
  exit 1
fi
echo "ok: trace without the password"
if "$cli" send "amqp://alice:wrong@127.0.0.1:$amqp" q8 --timeout 5 >/dev/null 2>"$work/bad.err"; then
  echo "FAILED: a wrong password was accepted"
  exit 1
fi
grep -q "authentication failed" "$work/bad.err" || { cat "$work/bad.err"; exit 1; }
echo "ok: wrong password refused"
# Whole messages: send --message then receive --json gives back the same lines, every section
# and body kind.
messages=$(dirname "$0")/messages.jsonl
n=$(grep -c . "$messages")
expect "sent $n accepted $n" "$cli" send "amqp://127.0.0.1:$amqp" q12 --message "$messages"
"$cli" receive "amqp://127.0.0.1:$amqp" q12 -n "$n" --json >"$work/received.jsonl" 2>"$work/received.err"
grep -q "received $n" "$work/received.err" || { echo "FAILED: receive --json"; cat "$work/received.err"; exit 1; }
diff "$messages" "$work/received.jsonl" || { echo "FAILED: the messages received differ from those sent"; exit 1; }
echo "ok: send --message / receive --json round trip ($n messages)"
# And from standard input, sent again unchanged.
"$cli" send "amqp://127.0.0.1:$amqp" q13 --message - <"$work/received.jsonl" >/dev/null
"$cli" receive "amqp://127.0.0.1:$amqp" q13 -n "$n" --json 2>/dev/null | diff "$messages" - ||
  { echo "FAILED: resending receive --json output"; exit 1; }
echo "ok: receive --json output sent again unchanged"
# A bad line: nothing is sent, the line and the problem are named.
{ head -n 1 "$messages"; echo '{"properties":{"to":{"type":"symbol","value":"q"}}}'; } >"$work/bad.jsonl"
if "$cli" send "amqp://127.0.0.1:$amqp" q14 --message "$work/bad.jsonl" >/dev/null 2>"$work/bad.err"; then
  echo "FAILED: a bad message line was accepted"
  exit 1
fi
grep -qF "line 2: invalid message JSON: \$.properties.to: to must be string, got symbol" "$work/bad.err" ||
  { echo "FAILED: the error does not name the line:"; cat "$work/bad.err"; exit 1; }
if "$cli" receive "amqp://127.0.0.1:$amqp" q14 --timeout 1 >/dev/null 2>&1; then
  echo "FAILED: a message was sent from a file with a bad line"
  exit 1
fi
echo "ok: a bad message line is named, nothing sent"
echo "all amqp-cli network checks passed"
# TLS client certificates: a broker that requires one, and SASL EXTERNAL as its subject.
"$cli" broker --listen amqps://127.0.0.1:0 --cert "$certs/server.pem" --key "$certs/server.key" \
  --ca "$certs/ca.pem" --require-client-cert --no-anonymous --trace \
  >"$work/broker2.out" 2>"$work/broker2.err" &
broker2_pid=$!
for _ in $(seq 50); do
  grep -q '^listening' "$work/broker2.out" && break
  sleep 0.1
done
mtls=$(sed -n "s|^listening amqps://127.0.0.1:\([0-9]*\).*|\1|p" "$work/broker2.out")
[ -n "$mtls" ] || { cat "$work/broker2.out" "$work/broker2.err"; exit 1; }
expect "sent 1 accepted 1" "$cli" send "amqps://127.0.0.1:$mtls" q9 --ca "$certs/ca.pem" \
  --cert "$certs/client.pem" --key "$certs/client.key" --sasl EXTERNAL
grep -q "sasl-init(mechanism=:EXTERNAL" "$work/broker2.err" || { echo "FAILED: no EXTERNAL"; exit 1; }
if "$cli" send "amqps://127.0.0.1:$mtls" q9 --ca "$certs/ca.pem" --timeout 5 >/dev/null 2>&1; then
  echo "FAILED: a client without a certificate was accepted"
  exit 1
fi
echo "ok: client certificate required"
# With a --user account and no --anonymous, anonymous clients (SASL ANONYMOUS, no SASL) are
# refused; PLAIN works.
"$cli" broker --listen amqp://127.0.0.1:0 --user bob:b0b-pw >"$work/broker3.out" 2>"$work/broker3.err" &
broker3_pid=$!
for _ in $(seq 50); do
  grep -q '^listening' "$work/broker3.out" && break
  sleep 0.1
done
plain3=$(sed -n "s|^listening amqp://127.0.0.1:\([0-9]*\).*|\1|p" "$work/broker3.out")
[ -n "$plain3" ] || { cat "$work/broker3.out" "$work/broker3.err"; exit 1; }
for how in "" "--no-sasl"; do
  # shellcheck disable=SC2086 # $how: no option, or one
  if "$cli" send "amqp://127.0.0.1:$plain3" q10 --timeout 5 $how >/dev/null 2>"$work/anon.err"; then
    echo "FAILED: an anonymous client ($how) was accepted by a broker with accounts"
    exit 1
  fi
done
echo "ok: anonymous clients refused when accounts are configured"
expect "sent 1 accepted 1" "$cli" send "amqp://bob:b0b-pw@127.0.0.1:$plain3" q10
rc=0
timeout 5 "$cli" broker --listen amqp://127.0.0.1:0 --anonymous --no-anonymous >/dev/null \
  2>"$work/both.err" || rc=$?
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || ! grep -q "excludes" "$work/both.err"; then
  echo "FAILED: --anonymous with --no-anonymous was accepted (status $rc)"
  cat "$work/both.err"
  exit 1
fi
echo "ok: --anonymous excludes --no-anonymous"
# --handshake-timeout: a raw TCP client that sends a protocol header (or nothing) and then
# nothing is disconnected once the deadline (1 s) passes, not before.
"$cli" broker --listen amqp://127.0.0.1:0 --handshake-timeout 1 >"$work/broker4.out" 2>"$work/broker4.err" &
broker4_pid=$!
for _ in $(seq 50); do
  grep -q '^listening' "$work/broker4.out" && break
  sleep 0.1
done
plain4=$(sed -n "s|^listening amqp://127.0.0.1:\([0-9]*\).*|\1|p" "$work/broker4.out")
[ -n "$plain4" ] || { cat "$work/broker4.out" "$work/broker4.err"; exit 1; }
for header in 'AMQP\0\1\0\0' 'AMQP\3\1\0\0' ''; do
  t0=${EPOCHREALTIME/./}
  exec 3<>"/dev/tcp/127.0.0.1/$plain4"
  printf "$header" >&3 # the header's escapes are printf's: one NUL per \0
  rc=0
  timeout 10 cat <&3 >"$work/handshake.out" || rc=$?
  exec 3<&-
  ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
  if [ "$rc" -ne 0 ] || [ "$ms" -lt 900 ] || [ "$ms" -gt 8000 ]; then
    echo "FAILED: header '$header': status $rc after $ms ms (wanted EOF after about 1000 ms)"
    exit 1
  fi
  echo "ok: header '$header' then silence: disconnected after $ms ms"
done
expect "sent 1 accepted 1" "$cli" send "amqp://127.0.0.1:$plain4" q11
