#!/usr/bin/python3
"""The official Azure SDKs and Python uAMQP against iothub-emulator: operation x SDK.

    run_sdks.py --emulator PATH [--cli PATH] [--only CELLS] [--keep] [--trace] [-v] [--budget S]
    run_sdks.py --state DIR [--wss-443] ...   an emulator already running (not started here)
    run_sdks.py --selftest                    the scripts themselves, no emulator

With --emulator, the emulator is started here in a temp dir (conformance/peers/peers.py
Workspace: free ports on 127.0.0.1, stopped by PID):
    iothub-emulator --state DIR --hub sdkhub --amqps 127.0.0.1:P --amqp 127.0.0.1:Q
                    --wss 127.0.0.1:443 (root, port free) or 127.0.0.1:R
                    --device dev-1 ... --device dev-6 --partitions 4 --feedback-window 2
and is ready when it has printed one `listening URL` line per listener and written
DIR/connection-strings.json. Every scenario script (node/*.js, uamqp_*.py) then runs with
DIR; each prints one PASS/FAIL line. The Node device SDK's WebSocket transport dials port
443 only: without the WSS listener there, the AmqpWs cells are skips with that reason.
--feedback-window 2 batches feedback records after 2 s instead of the hub's 15 s, so the
C2D cells do not wait 15 s each for their feedback; --trace adds the emulator's --trace
(every frame, secrets redacted, in iothub-emulator.log of the --keep dir).

The last column, `ours x SDK`, crosses our own clients (the iothub-cli program, --cli PATH)
with the SDKs, each checking content, not just exit codes:
  telemetry          iothub-cli send (message-id, correlation-id, content-type,
                     content-encoding, application properties, a non-ASCII body) -> the
                     @azure/event-hubs EventHubConsumerClient (eventhubs.js --scenario read)
                     checks every property and the body bytes of each event
  c2d_receive        azure-iothub (service.js --actions complete,reject, ack full) sends two
                     C2D messages -> iothub-cli c2d receive completes the first and rejects the
                     second (its JSON: ids, properties, body) -> the SDK's feedback receiver
                     sees Success and Rejected
  c2d_send_feedback  iothub-cli c2d send --ack full (three, each naming an action) ->
                     azure-iot-device (device.js --scenario c2d --check-ids) receives them with
                     their ids, properties and bodies, completes, rejects, abandons and
                     completes -> iothub-cli feedback sees Success, Rejected, Success
  eh_redirect        azure-iot-device (device.js telemetry, 3 messages) -> iothub-cli monitor
                     (service connection string, so through amqp:link:redirect; --start at
                     the time device.js started, --device, --count 3) sees each with its
                     device id, ids, content type and encoding, application properties, body
They run after every SDK cell (a feedback receiver completes the batches of other runs too).
Without --cli these cells are `miss` (not run here).

Prints a table, one row per operation and one column per SDK (pass / FAIL / skip; `-`
where the SDK has no such operation), then the details; exits 1 on any FAIL.

--selftest checks every script without an emulator: it must fail cleanly, with one FAIL
line that says what is wrong, when the state dir does not exist (exit 2), when nothing
listens where connection-strings.json points (exit 1, at once), and when the peer accepts
TCP but never answers (exit 1 when its --timeout runs out, naming the stage). (The
scripts' success paths are proven against the emulator itself; the rhea stand-in they were
first written against, node/fake_hub.js, is in the git history.)

Node packages: npm ci --prefix conformance/iothub/node.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'peers'))
sys.path.insert(0, HERE)
import peers  # noqa: E402
from peers import PeerError  # noqa: E402

NODE_DIR = os.path.join(HERE, 'node')
PYTHON = peers.PYTHON
HUB = 'sdkhub'
DEVICES = ['dev-%d' % i for i in range(1, 7)]
PARTITIONS = 4
# Exit status when every cell was a skip (no SDK installed): ctest's SKIP_RETURN_CODE, so
# that a run that tested nothing is not reported as a pass.
SKIPPED_ALL = 77
# Seconds feedback records wait for their batch (the hub's default is 15).
FEEDBACK_WINDOW_S = 2
DEFAULT_BUDGET_S = 600
RESULT_RE = re.compile(r'^(PASS|FAIL) (\S+): (.*)$')

# Columns (SDKs) and rows (operations). A cell is (row, column).
COLUMNS = [
    ('device-amqp', 'azure-iot-device Amqp'),
    ('device-amqpws', 'azure-iot-device AmqpWs'),
    ('service', 'azure-iothub'),
    ('eventhubs', '@azure/event-hubs'),
    ('uamqp', 'uAMQP 1.5.3'),
    ('ours', 'ours x SDK (iothub-cli, see --help)'),
]
ROWS = [
    ('telemetry', 'telemetry, every property'),
    ('telemetry_batch', 'telemetry batch (0x80013700)'),
    ('c2d_receive', 'C2D receive: complete/reject/abandon'),
    ('c2d_send_feedback', 'C2D send (ack full) + feedback'),
    ('eh_eventhub', 'built-in endpoint, "eventhub" CS'),
    ('eh_redirect', 'built-in endpoint via amqp:link:redirect'),
    ('eh_redirect_ws', 'redirect over WSS 443'),
]


class Skip(Exception):
    pass


class Missing(Skip):
    """A peer or a port this machine lacks (not a limitation of the SDK): the run is then
    incomplete, and the ctest says so (exit 77, skipped) instead of passing."""


class Fail(Exception):
    pass


# ---------------------------------------------------------------------------
# Running one scenario script
# ---------------------------------------------------------------------------

class ScriptResult:
    def __init__(self, argv, rc, output, elapsed):
        self.argv, self.rc, self.output, self.elapsed = argv, rc, output, elapsed
        self.status, self.name, self.detail = None, None, None
        lines = [m for m in (RESULT_RE.match(x) for x in output.splitlines()) if m]
        self.result_lines = len(lines)
        if lines:
            self.status, self.name, self.detail = lines[-1].groups()

    @property
    def ok(self):
        return self.rc == 0 and self.status == 'PASS' and self.result_lines == 1

    def describe(self):
        if self.status:
            return '%s (exit %s, %.1f s)' % (self.detail, self.rc, self.elapsed)
        tail = ' | '.join(x.strip() for x in self.output.strip().splitlines()[-4:])
        return 'no result line, exit %s: %s' % (self.rc, tail[:300])


def node_argv(script, *args):
    if not peers.NODE:
        raise Missing('node not found')
    if not os.path.isdir(os.path.join(NODE_DIR, 'node_modules', 'azure-iot-device')):
        raise Missing('SDKs not installed: npm ci --prefix %s' % NODE_DIR)
    return [peers.NODE, '--no-deprecation', os.path.join(NODE_DIR, script)] + list(args)


def py_argv(script, *args):
    return [PYTHON, os.path.join(HERE, script)] + list(args)


def uamqp_available():
    r = subprocess.run([PYTHON, '-c', 'import uamqp'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0


def run_script(argv, timeout, log_path=None):
    """Runs argv (its own session, killed by PID at timeout + 15 s); stderr to log_path."""
    t0 = time.monotonic()
    with open(log_path or os.devnull, 'ab') as log:
        log.write(('$ %s\n' % ' '.join(argv)).encode())
        log.flush()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                             start_new_session=True, preexec_fn=peers._child_setup)
        try:
            out, _ = p.communicate(timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            out, _ = p.communicate()
            out += b'\n[harness] killed after %.0f s' % (timeout + 15)
        log.write(out)
    return ScriptResult(argv, p.returncode, out.decode('utf-8', 'replace'), time.monotonic() - t0)


def start_script(argv, timeout, log_path):
    """run_script in a thread; join() gives the ScriptResult."""
    box = {}
    th = threading.Thread(target=lambda: box.setdefault('r', run_script(argv, timeout, log_path)),
                          daemon=True)
    th.start()

    def join():
        th.join()
        return box['r']
    return join


def expect_pass(r, what):
    if not r.ok:
        raise Fail('%s: %s' % (what, r.describe()))
    return r.detail


# ---------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------

def port_free(port, host=peers.HOST):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Emulator:
    """iothub-emulator (argv_prefix [path]) or a stand-in with its command line."""

    def __init__(self, ws, path, argv_prefix=None, extra_args=(), name='iothub-emulator', env=None):
        self.ws, self.path = ws, path
        self.argv_prefix = list(argv_prefix) if argv_prefix else [path]
        self.extra_args, self.name, self.env = list(extra_args), name, env
        self.state = ws.mkdir('state-%s' % name)
        self.amqps, self.amqp, other_wss = peers.free_ports(3)
        self.wss_443 = os.geteuid() == 0 and port_free(443)
        self.wss = 443 if self.wss_443 else other_wss
        self.proc = None
        self.listening = []

    def argv(self):
        a = self.argv_prefix + ['--state', self.state, '--hub', HUB,
             '--amqps', '%s:%d' % (peers.HOST, self.amqps),
             '--amqp', '%s:%d' % (peers.HOST, self.amqp),
             '--wss', '%s:%d' % (peers.HOST, self.wss),
             '--partitions', str(PARTITIONS), '--feedback-window', str(FEEDBACK_WINDOW_S)]
        for d in DEVICES:
            a += ['--device', d]
        return a + self.extra_args

    def start(self, timeout=30.0):
        if not os.access(self.path, os.X_OK):
            raise PeerError('%s not found or not executable: %r' % (self.name, self.path))
        self.proc = self.ws.start(self.name, self.argv(), watch_stdout=True, env=self.env)
        ms = self.proc.wait_line(r'^listening (\S+)', timeout=timeout, count=3)
        self.listening = [m.group(1) for m in ms]
        cs = os.path.join(self.state, 'connection-strings.json')
        deadline = time.monotonic() + timeout
        while not os.path.exists(cs):  # written at start-up, next to the listening lines
            if not self.proc.alive() or time.monotonic() > deadline:
                raise PeerError('%s wrote no %s\n%s' % (self.name, cs, self.proc.tail()))
            time.sleep(0.05)
        peers.log('%s listening on %s' % (self.name, ', '.join(self.listening)))
        return self


# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------

class Env:
    def __init__(self, args, ws, state, wss_443):
        self.args, self.ws, self.state, self.wss_443 = args, ws, state, wss_443
        self.timeout = args.script_timeout
        with open(os.path.join(state, 'connection-strings.json')) as f:
            self.cs = json.load(f)
        self.devices = sorted(self.cs['devices'])
        self.results = {}
        self.uamqp = uamqp_available()
        self.emulator = None
        self.cli = os.path.abspath(args.cli) if args.cli else None

    def log(self, name):
        return self.ws.path('%s.log' % name)

    def device(self, i):
        return self.devices[i % len(self.devices)]

    def need_wss(self):
        if not self.wss_443:
            raise Missing('the SDK dials wss://host:443 only and the WSS listener is not on '
                       '127.0.0.1:443 (run as root with port 443 free)')

    def need_cli(self):
        if not self.cli:
            raise Missing('our iothub-cli not given (--cli PATH)')
        if not os.access(self.cli, os.X_OK):
            raise Fail('iothub-cli not found or not executable: %r' % self.cli)
        return self.cli

    def need_uamqp(self):
        if not self.uamqp:
            raise Missing('uamqp not importable by %s: apt-get install python3-uamqp' % PYTHON)


def rid(tag):
    return '%s-%s' % (tag, uuid.uuid4().hex[:8])


def cell_telemetry(env, col):
    if col == 'ours':
        return cross_send_to_eventhubs(env)
    if col in ('device-amqp', 'device-amqpws'):
        transport = col.split('-')[1]
        if transport == 'amqpws':
            env.need_wss()
        r = run_script(node_argv('device.js', env.state, '--scenario', 'telemetry', '--transport',
                                 transport, '--device', env.device(0), '--count', '5',
                                 '--timeout', str(env.timeout)), env.timeout, env.log(col + '-telemetry'))
        return expect_pass(r, 'device.js telemetry')
    if col == 'uamqp':
        env.need_uamqp()
        env.uamqp_run = rid('uq')
        r = run_script(py_argv('uamqp_device.py', env.state, '--scenario', 'telemetry',
                               '--device', env.device(1), '--count', '5', '--run-id', env.uamqp_run,
                               '--timeout', str(env.timeout)), env.timeout, env.log('uamqp-telemetry'))
        env.uamqp_sent = getattr(env, 'uamqp_sent', 0) + (5 if r.ok else 0)
        return expect_pass(r, 'uamqp_device.py telemetry')
    return None


def cell_telemetry_batch(env, col):
    if col in ('device-amqp', 'device-amqpws'):
        raise Skip('azure-iot-device-amqp 1.14: sendEventBatch throws NotImplementedError '
                   '("AMQP Transport does not support batching yet")')
    if col == 'uamqp':
        env.need_uamqp()
        if not getattr(env, 'uamqp_run', None):
            env.uamqp_run = rid('uq')
        r = run_script(py_argv('uamqp_device.py', env.state, '--scenario', 'batch', '--device',
                               env.device(1), '--count', '5', '--first-index', '5', '--run-id',
                               env.uamqp_run, '--timeout', str(env.timeout)),
                       env.timeout, env.log('uamqp-batch'))
        env.uamqp_sent = getattr(env, 'uamqp_sent', 0) + (5 if r.ok else 0)
        return expect_pass(r, 'uamqp_device.py batch')
    return None


def c2d_pair(env, transport):
    """azure-iothub sends and checks the feedback; azure-iot-device settles. Both results."""
    run = rid('c2d-%s' % transport)
    device = env.device(2 if transport == 'amqp' else 3)
    t = max(env.timeout, 90)
    svc = start_script(node_argv('service.js', env.state, '--scenario', 'c2d', '--device', device,
                                 '--run-id', run, '--timeout', str(t)), t,
                       env.log('service-c2d-%s' % transport))
    dev = run_script(node_argv('device.js', env.state, '--scenario', 'c2d', '--transport', transport,
                               '--device', device, '--run-id', run, '--timeout', str(t)), t,
                     env.log('device-%s-c2d' % transport))
    return svc(), dev


def cell_c2d_receive(env, col):
    if col == 'ours':
        return cross_sdk_c2d_to_cli(env)
    if col in ('device-amqp', 'device-amqpws'):
        transport = col.split('-')[1]
        if transport == 'amqpws':
            env.need_wss()
        svc, dev = c2d_pair(env, transport)
        env.results_extra = getattr(env, 'results_extra', {})
        env.results_extra[transport] = svc
        if not dev.ok:
            extra = '' if svc.ok else ' [the sender, service.js: %s]' % svc.describe()
            raise Fail('device.js c2d: %s%s' % (dev.describe(), extra))
        return dev.detail
    if col == 'uamqp':
        env.need_uamqp()
        run = rid('c2d-uq')
        device = env.device(4)
        t = max(env.timeout, 90)
        send = run_script(py_argv('uamqp_service.py', env.state, '--scenario', 'c2d-send',
                                  '--device', device, '--run-id', run, '--timeout', str(t)), t,
                          env.log('uamqp-c2d-send'))
        env.uamqp_c2d = (run, device, send)
        expect_pass(send, 'uamqp_service.py c2d-send')
        r = run_script(py_argv('uamqp_device.py', env.state, '--scenario', 'c2d', '--device', device,
                               '--run-id', run, '--timeout', str(t)), t, env.log('uamqp-c2d'))
        return expect_pass(r, 'uamqp_device.py c2d')
    return None


def cell_c2d_send_feedback(env, col):
    if col == 'ours':
        return cross_cli_c2d_to_sdk(env)
    if col == 'service':
        svc = getattr(env, 'results_extra', {}).get('amqp')
        if svc is None:  # the device-amqp C2D cell did not run (--only): run the pair here
            svc, _ = c2d_pair(env, 'amqp')
        return expect_pass(svc, 'service.js c2d (device.js Amqp settling)')
    if col == 'uamqp':
        env.need_uamqp()
        if not getattr(env, 'uamqp_c2d', None):
            raise Skip('needs the uamqp C2D receive cell (the device settles what is sent)')
        run, device, send = env.uamqp_c2d
        expect_pass(send, 'uamqp_service.py c2d-send')
        t = max(env.timeout, 90)
        r = run_script(py_argv('uamqp_service.py', env.state, '--scenario', 'feedback', '--run-id',
                               run, '--timeout', str(t)), t, env.log('uamqp-feedback'))
        return '%s; %s' % (send.detail, expect_pass(r, 'uamqp_service.py feedback'))
    return None


def eventhubs_cell(env, connection):
    t = max(env.timeout, 180)
    r = run_script(node_argv('eventhubs.js', env.state, '--connection', connection, '--partitions',
                             str(PARTITIONS), '--per-device', '2', '--timeout', str(t)), t,
                   env.log('eventhubs-%s' % connection))
    return expect_pass(r, 'eventhubs.js --connection %s' % connection)


def cell_eh_eventhub(env, col):
    if col == 'eventhubs':
        return eventhubs_cell(env, 'eventhub')
    return None


def cell_eh_redirect(env, col):
    if col == 'ours':
        return cross_sdk_telemetry_to_monitor(env)
    if col == 'eventhubs':
        return eventhubs_cell(env, 'redirect')
    if col == 'uamqp':
        env.need_uamqp()
        if not getattr(env, 'uamqp_sent', 0):
            raise Skip('needs the uamqp telemetry cells (their messages are read back)')
        t = max(env.timeout, 120)
        r = run_script(py_argv('uamqp_service.py', env.state, '--scenario', 'telemetry-read',
                               '--run-id', env.uamqp_run, '--expect', str(env.uamqp_sent),
                               '--partitions', str(PARTITIONS), '--timeout', str(t)), t,
                       env.log('uamqp-telemetry-read'))
        return expect_pass(r, 'uamqp_service.py telemetry-read')
    return None


def cell_eh_redirect_ws(env, col):
    if col == 'eventhubs':
        env.need_wss()
        return eventhubs_cell(env, 'redirect-ws')
    return None


# ---------------------------------------------------------------------------
# ours x SDK: our iothub-cli crossed with the SDKs (the `ours` column)
# ---------------------------------------------------------------------------

def run_cli(env, name, *args, timeout=60):
    """iothub-cli ARGS (its stderr in NAME.log): (exit status, stdout, its JSON lines)."""
    r = run_script([env.need_cli()] + list(args), timeout, env.log(name))
    objs = []
    for line in r.output.splitlines():
        if line.startswith('{'):
            try:
                objs.append(json.loads(line))
            except ValueError:
                raise Fail('%s printed a line that is not JSON: %r' % (name, line[:200]))
    return r.rc, r.output, objs


def check_fields(what, got, expected):
    """Fail naming every field of `expected` that `got` (a dict) has otherwise."""
    wrong = ['%s %r, expected %r' % (k, got.get(k), v) for k, v in expected.items()
             if got.get(k) != v]
    if wrong:
        raise Fail('%s: %s (got %s)' % (what, '; '.join(wrong), json.dumps(got)[:400]))


def cross_send_to_eventhubs(env):
    """Our device (iothub-cli send) -> the @azure/event-hubs consumer reads and checks."""
    env.need_cli()  # before any peer starts
    device = env.device(5)
    run = rid('cli-eh')
    count = 3
    body = json.dumps({'run': run, 'text': 'h\u00e9llo \u2713 from iothub-cli'}, ensure_ascii=False)
    expect = {'count': count, 'device': device, 'messageId': 'mid-' + run,
              'correlationId': 'corr-' + run, 'contentType': 'application/json',
              'contentEncoding': 'utf-8',
              'properties': {'run-id': run, 'kind': 'cross', 'unit': '\u00b0C'}, 'body': body}
    args = ['send', '-c', env.cs['devices'][device], '--ca', env.cs['ca'], '--count', str(count),
            '--message-id', expect['messageId'], '--correlation-id', expect['correlationId'],
            '--content-type', expect['contentType'], '--content-encoding',
            expect['contentEncoding']]
    for k, v in expect['properties'].items():
        args += ['-p', '%s=%s' % (k, v)]
    rc, out, _ = run_cli(env, 'ours-send', *(args + [body]))
    if rc != 0 or 'accepted %d, rejected 0' % count not in out:
        raise Fail('iothub-cli send (exit %s): %s' % (rc, out.strip()[-300:]))
    t = max(env.timeout, 120)
    r = run_script(node_argv('eventhubs.js', env.state, '--scenario', 'read', '--run-id', run,
                             '--expect', json.dumps(expect), '--partitions', str(PARTITIONS),
                             '--timeout', str(t)), t, env.log('ours-send-eventhubs-read'))
    return 'iothub-cli send -> %s' % expect_pass(r, 'eventhubs.js --scenario read')


def cross_sdk_telemetry_to_monitor(env):
    """The SDK device (device.js telemetry) -> our reader (iothub-cli monitor) checks."""
    env.need_cli()  # before any peer starts
    device = env.device(0)
    run = rid('sdk-mon')
    count = 3
    # The reader starts at the time the device starts: only this run's events follow (the
    # cells run one at a time); a second back, for the enqueued time's rounding.
    start = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - 1))
    r = run_script(node_argv('device.js', env.state, '--scenario', 'telemetry', '--device', device,
                             '--count', str(count), '--run-id', run, '--timeout',
                             str(env.timeout)), env.timeout, env.log('ours-device-telemetry'))
    expect_pass(r, 'device.js telemetry')
    rc, out, events = run_cli(env, 'ours-monitor', 'monitor', '-c', env.cs['service'], '--ca',
                              env.cs['ca'], '--start', 'time:' + start, '--device', device,
                              '--count', str(count), '--timeout', '20', timeout=60)
    if rc != 0 or len(events) != count:
        raise Fail('iothub-cli monitor (exit %s): %d events, expected %d: %s'
                   % (rc, len(events), count, out.strip()[-400:]))
    seen = []
    for ev in events:
        app = ev.get('applicationProperties', {})
        if app.get('run-id') != run:
            raise Fail('iothub-cli monitor: an event of another run: %s' % json.dumps(ev)[:300])
        i = int(app.get('index', -1))
        props = ev.get('properties', {})
        what = 'event %d' % i
        check_fields(what, ev, {
            'deviceId': device,
            'applicationProperties': {'run-id': run, 'index': str(i), 'kind': 'telemetry'},
            'body': json.dumps({'run': run, 'index': i, 'device': device}, separators=(',', ':'))})
        check_fields(what + ' properties', props, {
            'correlationId': 'corr-%s-%d' % (run, i), 'contentType': 'application/json',
            'contentEncoding': 'utf-8'})
        mid = props.get('messageId')
        if i == 0:  # the SDK sends a UUID string message-id as an AMQP uuid
            ok = isinstance(mid, dict) and mid.get('type') == 'uuid' and \
                re.match(r'^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$', str(mid.get('value')))
        else:
            ok = mid == '%s-%d' % (run, i)
        if not ok:
            raise Fail('%s: messageId %r (got %s)' % (what, mid, json.dumps(ev)[:400]))
        for k in ('sequenceNumber', 'offset', 'enqueuedTime', 'partition'):
            if k not in ev:
                raise Fail('%s: no %s (got %s)' % (what, k, json.dumps(ev)[:400]))
        seen.append(i)
    if sorted(seen) != list(range(count)):
        raise Fail('iothub-cli monitor: indexes %s, expected 0..%d' % (seen, count - 1))
    return ('device.js sent %d (run %s) -> iothub-cli monitor (redirect, --start time, --device) '
            'read them: device id, message-id (an AMQP uuid, then strings), correlation-id, content type and '
            'encoding, 3 application properties, body' % (count, run))


def cross_sdk_c2d_to_cli(env):
    """azure-iothub sends C2D (ack full) -> our device settles -> the SDK sees the feedback."""
    env.need_cli()  # before any peer starts
    device = env.device(5)
    run = rid('sdk-c2d')
    t = max(env.timeout, 90)
    svc = start_script(node_argv('service.js', env.state, '--scenario', 'c2d', '--device', device,
                                 '--run-id', run, '--actions', 'complete,reject', '--timeout',
                                 str(t)), t, env.log('ours-service-c2d'))
    try:
        for action in ('complete', 'reject'):
            rc, out, got = run_cli(env, 'ours-c2d-receive', 'c2d', 'receive', '-c',
                                   env.cs['devices'][device], '--ca', env.cs['ca'], '--count', '1',
                                   '--timeout', '60', '--outcome', action, timeout=90)
            if rc != 0 or len(got) != 1:
                raise Fail('iothub-cli c2d receive --outcome %s (exit %s): %s'
                           % (action, rc, out.strip()[-300:]))
            m = got[0]
            check_fields('c2d receive --outcome %s' % action, m, {
                'outcome': action, 'body': 'c2d %s %s' % (action, run),
                # azure-iothub sends the ack as the application property iothub-ack
                'applicationProperties': {'run-id': run, 'action': action, 'iothub-ack': 'full'}})
            check_fields('c2d receive --outcome %s properties' % action, m.get('properties', {}),
                         {'messageId': '%s-%s' % (run, action)})
            if 'absoluteExpiryTime' not in m.get('properties', {}):
                raise Fail('c2d receive: no absoluteExpiryTime (service.js sets an expiry): %s'
                           % json.dumps(m)[:300])
    finally:
        result = svc()
    detail = expect_pass(result, 'service.js c2d --actions complete,reject (its feedback)')
    return 'iothub-cli c2d receive completed and rejected, ids/properties/body checked; %s' % detail


def cross_cli_c2d_to_sdk(env):
    """Our service (iothub-cli c2d send --ack full) -> the SDK device settles -> our feedback."""
    env.need_cli()  # before any peer starts
    device = env.device(0)
    run = rid('cli-c2d')
    actions = {'complete': 'Success', 'reject': 'Rejected', 'abandon': 'Success'}
    for action in actions:
        mid = '%s-%s' % (run, action)
        rc, out, got = run_cli(env, 'ours-c2d-send', 'c2d', 'send', '-c', env.cs['service'],
                               '--ca', env.cs['ca'], '--device', device, '--ack', 'full',
                               '--message-id', mid, '--correlation-id', 'corr-' + mid,
                               '--ttl', '600', '-p', 'run-id=' + run, '-p', 'action=' + action,
                               'c2d %s %s' % (action, run))
        if rc != 0 or len(got) != 1:
            raise Fail('iothub-cli c2d send %s (exit %s): %s' % (action, rc, out.strip()[-300:]))
        check_fields('c2d send %s' % action, got[0], {'messageId': mid, 'outcome': 'accepted'})
    t = max(env.timeout, 90)
    r = run_script(node_argv('device.js', env.state, '--scenario', 'c2d', '--device', device,
                             '--run-id', run, '--check-ids', '--timeout', str(t)), t,
                   env.log('ours-device-c2d'))
    dev = expect_pass(r, 'device.js c2d --check-ids')
    # Every feedback record until 8 s pass without a batch (the window is 2 s): earlier
    # cells' leftovers are skipped by message-id.
    rc, out, records = run_cli(env, 'ours-feedback', 'feedback', '-c', env.cs['service'], '--ca',
                               env.cs['ca'], '--count', '0', '--timeout', '8', timeout=60)
    mine = {x.get('originalMessageId'): x for x in records}
    for action, status in actions.items():
        mid = '%s-%s' % (run, action)
        if mid not in mine:
            raise Fail('iothub-cli feedback (exit %s): no record for %s; got %s'
                       % (rc, mid, out.strip()[-400:]))
        check_fields('feedback record %s' % mid, mine[mid], {'statusCode': status,
                                                              'deviceId': device})
    if rc != 0:
        raise Fail('iothub-cli feedback exit %s: %s' % (rc, out.strip()[-300:]))
    return ('iothub-cli c2d send x3 (ack full) -> %s -> iothub-cli feedback: Success, Rejected, '
            'Success' % dev)


CELL_FNS = {
    'telemetry': cell_telemetry,
    'telemetry_batch': cell_telemetry_batch,
    'c2d_receive': cell_c2d_receive,
    'c2d_send_feedback': cell_c2d_send_feedback,
    'eh_eventhub': cell_eh_eventhub,
    'eh_redirect': cell_eh_redirect,
    'eh_redirect_ws': cell_eh_redirect_ws,
}


def applicable(row, col):
    """Whether the SDK has the operation at all (else the cell prints `-`)."""
    table = {
        'telemetry': {'device-amqp', 'device-amqpws', 'uamqp', 'ours'},
        'telemetry_batch': {'device-amqp', 'device-amqpws', 'uamqp'},
        'c2d_receive': {'device-amqp', 'device-amqpws', 'uamqp', 'ours'},
        'c2d_send_feedback': {'service', 'uamqp', 'ours'},
        'eh_eventhub': {'eventhubs'},
        'eh_redirect': {'eventhubs', 'uamqp', 'ours'},
        'eh_redirect_ws': {'eventhubs'},
    }
    return col in table[row]


def run_cell(env, row, col, results, verbose, deadline):
    t0 = time.monotonic()
    if t0 > deadline:
        results[(row, col)] = ('FAIL', 'not run: the time budget (--budget) was spent', 0.0)
        return
    try:
        detail = CELL_FNS[row](env, col)
        status = 'pass'
    except Missing as e:
        status, detail = 'miss', str(e)
    except Skip as e:
        status, detail = 'skip', str(e)
    except Fail as e:
        status, detail = 'FAIL', str(e)
    except Exception as e:  # a harness bug is a failure too
        status, detail = 'FAIL', 'harness: %s\n%s' % (e, traceback.format_exc())
    el = time.monotonic() - t0
    proc = env.emulator.proc if env.emulator else None
    if status == 'FAIL' and proc is not None and not proc.alive():
        detail += ' [iothub-emulator is gone: exit status %s]' % proc.returncode()
    results[(row, col)] = (status, detail or '', el)
    if verbose or status == 'FAIL':
        peers.log('%-20s %-14s %-4s %5.1fs %s' % (row, col, status, el,
                                                  (detail or '').splitlines()[0][:160] if detail else ''))


def print_table(title, rows, columns, results, cell_applies, elapsed):
    width = max(len(label) for _, label in rows) + 2
    out = ['', '%s (%.0f s)' % (title, elapsed)]
    for i, (_, label) in enumerate(columns):
        out.append('  [%d] %s' % (i + 1, label))
    out.append(' ' * width + '  '.join(('[%d]' % (i + 1)).ljust(5) for i in range(len(columns))))
    counts = {'pass': 0, 'FAIL': 0, 'skip': 0, 'miss': 0}
    notes = []
    for row, label in rows:
        line = label.ljust(width)
        for col, clabel in columns:
            if not cell_applies(row, col):
                line += '-'.ljust(5) + '  '
                continue
            status, detail, el = results.get((row, col), ('FAIL', 'not run', 0.0))
            counts[status] += 1
            line += status.ljust(5) + '  '
            notes.append('  %-4s %s / %s (%.1f s): %s' % (status, label, clabel, el, detail))
        out.append(line.rstrip())
    out += ['', 'details:'] + notes + ['']
    out.append('%d passed, %d failed, %d skipped (SDK limitations), %d not run (a peer or '
               'port missing here)' % (counts['pass'], counts['FAIL'], counts['skip'],
                                       counts['miss']))
    print('\n'.join(out), flush=True)
    # Cells not run for want of a peer make the run incomplete: ctest shows it as skipped
    # (never as a pass) unless something failed.
    if counts['FAIL'] == 0 and counts['miss'] > 0:
        return SKIPPED_ALL
    return counts['FAIL']


# ---------------------------------------------------------------------------
# --selftest: the scripts without an emulator
# ---------------------------------------------------------------------------

SELF_SCRIPTS = [
    ('device.js telemetry amqp', lambda s, t: node_argv('device.js', s, '--timeout', t)),
    ('device.js c2d amqp', lambda s, t: node_argv('device.js', s, '--scenario', 'c2d', '--run-id',
                                                  'x', '--timeout', t)),
    ('service.js c2d', lambda s, t: node_argv('service.js', s, '--run-id', 'x', '--timeout', t)),
    ('eventhubs.js eventhub', lambda s, t: node_argv('eventhubs.js', s, '--timeout', t)),
    ('eventhubs.js redirect', lambda s, t: node_argv('eventhubs.js', s, '--connection', 'redirect',
                                                     '--timeout', t)),
    ('eventhubs.js read', lambda s, t: node_argv('eventhubs.js', s, '--scenario', 'read', '--run-id',
                                                 'x', '--expect', '{"count": 1}', '--timeout', t)),
    ('service.js c2d complete', lambda s, t: node_argv('service.js', s, '--run-id', 'x', '--actions',
                                                       'complete', '--timeout', t)),
    ('uamqp_device.py telemetry', lambda s, t: py_argv('uamqp_device.py', s, '--timeout', t)),
    ('uamqp_device.py c2d', lambda s, t: py_argv('uamqp_device.py', s, '--scenario', 'c2d',
                                                 '--run-id', 'x', '--timeout', t)),
    ('uamqp_service.py c2d-send', lambda s, t: py_argv('uamqp_service.py', s, '--scenario',
                                                       'c2d-send', '--run-id', 'x', '--timeout', t)),
    ('uamqp_service.py feedback', lambda s, t: py_argv('uamqp_service.py', s, '--scenario',
                                                       'feedback', '--run-id', 'x', '--timeout', t)),
    ('uamqp_service.py telemetry-read', lambda s, t: py_argv('uamqp_service.py', s, '--scenario',
                                                             'telemetry-read', '--run-id', 'x',
                                                             '--timeout', t)),
]

SELF_COLUMNS = [('syntax', 'parses (node --check / py_compile)'),
                ('no_state', 'no state dir: FAIL, exit 2'),
                ('refused', 'nothing listening: FAIL at once, exit 1'),
                ('silent', 'silent peer: FAIL at --timeout, exit 1')]


class SilentPeer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (a stalled emulator)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((peers.HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def write_state(d, port, ca):
    os.makedirs(d, exist_ok=True)
    key = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='
    data = {
        'hostname': '%s.azure-devices.net' % HUB,
        'service': 'HostName=localhost:%d;SharedAccessKeyName=service;SharedAccessKey=%s' % (port, key),
        'eventhub': 'Endpoint=sb://localhost:%d/;SharedAccessKeyName=service;SharedAccessKey=%s;'
                    'EntityPath=%s' % (port, key, HUB),
        'devices': {'dev-1': 'HostName=%s.azure-devices.net;DeviceId=dev-1;SharedAccessKey=%s;'
                             'GatewayHostName=localhost:%d' % (HUB, key, port)},
        'ca': ca,
    }
    with open(os.path.join(d, 'connection-strings.json'), 'w') as f:
        json.dump(data, f, indent=1)
    return d


def self_cell(ws, name, make, col, states):
    t = 4
    if col == 'syntax':
        script = make('S', '1')
        path = next(a for a in script if a.endswith(('.js', '.py')))
        if path.endswith('.js'):
            argv = [peers.NODE, '--check', path]
        else:
            argv = [PYTHON, '-m', 'py_compile', path]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode:
            raise Fail(r.stdout.decode(errors='replace')[-300:])
        return 'ok'
    if col == 'no_state':
        r = run_script(make(states['missing'], str(t)), t, ws.path('self-%s.log' % col))
        if r.rc != 2 or r.status != 'FAIL' or 'no connection-strings.json' not in r.detail:
            raise Fail('expected FAIL naming the missing connection-strings.json, exit 2: %s'
                       % r.describe())
        return r.detail
    if col == 'refused':
        r = run_script(make(states['refused'], '20'), 20, ws.path('self-%s.log' % col))
        if r.rc != 1 or r.status != 'FAIL' or 'is iothub-emulator running' not in r.detail \
                or r.elapsed > 10:
            raise Fail('expected an immediate FAIL asking whether iothub-emulator runs, exit 1: %s'
                       % r.describe())
        return '%s (%.1f s)' % (r.detail, r.elapsed)
    if col == 'silent':
        r = run_script(make(states['silent'], str(t)), t, ws.path('self-%s.log' % col))
        if r.rc != 1 or r.status != 'FAIL' or 'timed out after %d s while' % t not in r.detail \
                or r.elapsed > t + 10:
            raise Fail('expected FAIL "timed out after %d s while <stage>", exit 1: %s'
                       % (t, r.describe()))
        return '%s (%.1f s)' % (r.detail, r.elapsed)
    raise ValueError(col)


def selftest(args):
    t0 = time.monotonic()
    results = {}
    with peers.Workspace(prefix='iothub-sdks-self-', keep=args.keep or None) as ws:
        certs = ws.certs()
        silent = SilentPeer()
        refused_port = peers.free_port()
        states = {'missing': ws.path('no-such-state'),
                  'refused': write_state(ws.path('refused'), refused_port, certs.ca),
                  'silent': write_state(ws.path('silent'), silent.port, certs.ca)}
        try:
            rows = [(n, n) for n, _ in SELF_SCRIPTS]
            makers = dict(SELF_SCRIPTS)
            jobs = []
            for name, _ in rows:
                for col, _ in SELF_COLUMNS:
                    jobs.append((name, col))

            def work(job):
                name, col = job
                t1 = time.monotonic()
                try:
                    status, detail = 'pass', self_cell(ws, name, makers[name], col, states)
                except Skip as e:
                    status, detail = 'skip', str(e)
                except Fail as e:
                    status, detail = 'FAIL', str(e)
                except Exception as e:
                    status, detail = 'FAIL', 'harness: %s\n%s' % (e, traceback.format_exc())
                results[job] = (status, detail, time.monotonic() - t1)
                if args.verbose or status == 'FAIL':
                    peers.log('%-32s %-9s %s %s' % (name, col, status, detail.splitlines()[0][:140]))
            # Two at a time: the machine has two cores and every job is a Node or Python start.
            pending = list(jobs)
            lock = threading.Lock()

            def worker():
                while True:
                    with lock:
                        if not pending:
                            return
                        job = pending.pop(0)
                    work(job)
            ths = [threading.Thread(target=worker) for _ in range(2)]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
        finally:
            silent.close()
    return print_table('the scenario scripts without an emulator', rows, SELF_COLUMNS, results,
                       lambda r, c: True, time.monotonic() - t0)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--emulator', help='iothub-emulator binary (started here)')
    g.add_argument('--state', help='state dir of an iothub-emulator already running')
    g.add_argument('--selftest', action='store_true',
                   help='the scripts without an emulator: they must fail cleanly, saying why')
    p.add_argument('--cli', help='our iothub-cli binary, for the `ours x SDK` column')
    p.add_argument('--trace', action='store_true',
                   help='run the emulator with --trace (frames in iothub-emulator.log, with --keep)')
    p.add_argument('--wss-443', action='store_true',
                   help='with --state: the running emulator has its WSS listener on 127.0.0.1:443')
    p.add_argument('--only', action='append',
                   help='rows or row/column cells, comma-separated (e.g. telemetry,c2d_receive/uamqp)')
    p.add_argument('--keep', action='store_true', help='keep the temp dir (logs, state)')
    p.add_argument('--budget', type=float, default=DEFAULT_BUDGET_S,
                   help='seconds; cells not started by then fail as "not run" (default %(default)s)')
    p.add_argument('--script-timeout', type=int, default=60,
                   help='--timeout given to each script (C2D and Event Hubs get more)')
    p.add_argument('--verbose', '-v', action='store_true')
    return p.parse_args(argv)


def selected_cells(args):
    # Row by row, except that the `ours` column comes after every SDK cell: a feedback
    # receiver takes every batch it is given (completing records of other runs too), so no
    # C2D cell may run between the uAMQP C2D cell and the uAMQP feedback cell that reads
    # its records.
    cells = [(r, c) for r, _ in ROWS for c, _ in COLUMNS if applicable(r, c) and c != 'ours']
    cells += [(r, 'ours') for r, _ in ROWS if applicable(r, 'ours')]
    if not args.only:
        return cells
    wanted = [w for item in args.only for w in item.split(',') if w]
    rows = {r for r, _ in ROWS}
    out = []
    for w in wanted:
        row, _, col = w.partition('/')
        if row not in rows or (col and col not in dict(COLUMNS)):
            raise SystemExit('unknown cell %r (rows: %s; columns: %s)'
                             % (w, ', '.join(sorted(rows)), ', '.join(c for c, _ in COLUMNS)))
        out += [(r, c) for r, c in cells if r == row and (not col or c == col)]
    return [c for c in cells if c in out]


def scenarios(args, title, make_emulator=None, state=None, wss_443=False):
    """Every selected cell against the emulator make_emulator(ws) starts (or the one
    already running with `state`); prints the table; returns the number of FAILs."""
    cells = selected_cells(args)
    t0 = time.monotonic()
    deadline = t0 + args.budget
    results = {}
    with peers.Workspace(prefix='iothub-sdks-', keep=args.keep or None) as ws:
        emulator = None
        if make_emulator:
            try:
                emulator = make_emulator(ws)
                emulator.start()
                state, wss_443 = emulator.state, emulator.wss_443
            except PeerError as e:
                for cell in cells:
                    results[cell] = ('FAIL', 'the emulator did not start: %s' % e, 0.0)
                peers.log('the emulator did not start: %s' % e)
        if not results:
            env = Env(args, ws, state, wss_443)
            env.emulator = emulator
            for row, col in cells:
                run_cell(env, row, col, results, args.verbose, deadline)
    rows = [(r, label) for r, label in ROWS if any(c[0] == r for c in cells)]
    cols = [(c, label) for c, label in COLUMNS if any(x[1] == c for x in cells)]
    return print_table(title, rows, cols, results, lambda r, c: (r, c) in cells,
                       time.monotonic() - t0)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.selftest:
        failed = selftest(args)
        return SKIPPED_ALL if failed == SKIPPED_ALL else 1 if failed else 0
    if args.emulator:
        path = os.path.abspath(args.emulator)
        extra = ['--trace'] if args.trace else []
        failed = scenarios(args, 'Azure SDKs and uAMQP against iothub-emulator',
                           lambda ws: Emulator(ws, path, extra_args=extra))
    else:
        failed = scenarios(args, 'Azure SDKs and uAMQP against iothub-emulator (--state)',
                           state=os.path.abspath(args.state), wss_443=args.wss_443)
    if failed == SKIPPED_ALL:
        return SKIPPED_ALL
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
