#!/usr/bin/python3
"""Conformance matrix against real AMQP 1.0 peers: peer x scenario, pass / FAIL / skip.

Directions (--direction):
  client   our client (`amqp-cli send/receive`, --cli) against each broker:
           RabbitMQ, the Qpid Proton C and Python example brokers, rhea (--broker picks).
  broker   peer clients (Proton Python, Proton C++, rhea, uAMQP; --client picks) against
           our broker (`amqp-cli broker`).
  both     (default) both.
--self-test runs the same scenarios peer to peer, without amqp-cli, to prove the harness:
  RabbitMQ <- Proton C++, Proton C broker <- rhea, Proton Python broker <- Proton Python,
  rhea <- Proton Python (with the tshark cell), and every peer client against rhea standing
  in for `amqp-cli broker` (same command line).

Every peer is started here on free ports of 127.0.0.1 and stopped by PID (peers.py). Exit
status 0 only when no cell failed. Examples:
  run_matrix.py --self-test --proton-c-broker B/proton_c_broker --proton-cpp-client B/proton_cpp_client
  run_matrix.py --cli build/dev/tools/amqp-cli --direction client --broker rabbitmq --long
  run_matrix.py --cli ... --direction broker --client rhea --only unsettled,large_1MiB
"""

import argparse
import glob
import itertools
import os
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
from peers import PeerError  # noqa: E402

MiB = 1024 * 1024
SHORT_IDLE_MS = 2000    # idle-time-out for the short heartbeat cells
IDLE_WAIT_S = 6         # how long those connections stay idle (3x the timeout)
RABBIT_IDLE_WAIT_S = 70  # RabbitMQ announces 60 s
CALL_TIMEOUT_S = 20     # --timeout of one client run (large_1MiB: 40)
DEFAULT_BUDGET_S = 240  # cells not started by then fail as "not run" (ctest TIMEOUT is 300)

BROKERS = ('rabbitmq', 'proton_broker', 'proton_py_broker', 'rhea_broker')
CLIENTS = ('proton_python', 'proton_cpp', 'rhea', 'uamqp')


class Skip(Exception):
    pass


class Fail(Exception):
    pass


# ---------------------------------------------------------------------------
# What each broker offers (so that a cell it cannot run is a skip with a reason)
# ---------------------------------------------------------------------------

PROFILES = {
    'rabbitmq': dict(
        label='RabbitMQ 3.10 + amqp1_0', sasl={'ANONYMOUS', 'PLAIN', 'EXTERNAL'},
        user=('guest', 'guest'), outcomes=True, requeues_released=True, requeues_modified=True,
        no_modified=True,
        sender_outcomes=None, idle_option=False, tls=True),
    'proton_broker': dict(
        label='Proton C broker.c', sasl={'ANONYMOUS'}, user=None,
        outcomes=False, requeues_released=False, requeues_modified=False,
        sender_outcomes=None, idle_option=False, tls=True),
    'proton_py_broker': dict(
        label='Proton Python broker.py', sasl={'ANONYMOUS'}, user=None,
        outcomes=True, requeues_released=False, requeues_modified=False,
        sender_outcomes=None, idle_option=False, tls=True),
    'rhea_broker': dict(
        label='rhea broker', sasl={'ANONYMOUS', 'PLAIN', 'EXTERNAL'}, user=('test', 'secret'),
        outcomes=True, requeues_released=True, requeues_modified=True,
        sender_outcomes='$%s/', idle_option=True, tls=True),
    # `amqp-cli broker` (and rhea standing in for it in --self-test: same options).
    'our_broker': dict(
        label='amqp-cli broker', sasl={'ANONYMOUS', 'PLAIN', 'EXTERNAL'}, user=('test', 'secret'),
        outcomes=True, requeues_released=True, requeues_modified=True,
        sender_outcomes='$%s/', idle_option=True, tls=True),
}

SKIP_REASONS = {
    ('proton_broker', 'outcomes'): 'broker.c sends every message pre-settled: no outcome to apply',
    ('rabbitmq', 'modified'): "RabbitMQ 3.10's AMQP 1.0 plugin knows accepted/rejected/released "
                              'only: a modified disposition ends the session (amqp:invalid-field '
                              '"Unrecognised state", and the unsettled messages are requeued)',
    ('proton_py_broker', 'requeue'): 'broker.py settles a released/modified delivery and drops '
                                     'the message (example code, no requeue)',
    ('rabbitmq', 'sender_outcomes'): 'RabbitMQ accepts every transfer here (no address rejects)',
    ('proton_broker', 'sender_outcomes'): 'broker.c accepts every transfer',
    ('proton_py_broker', 'sender_outcomes'): 'broker.py accepts every transfer',
    ('proton_broker', 'sasl'): 'Proton brokers offer ANONYMOUS only (no Cyrus SASL password db)',
    ('proton_py_broker', 'sasl'): 'Proton brokers offer ANONYMOUS only (no Cyrus SASL password db)',
    ('proton_broker', 'idle'): 'broker.c has no idle-time-out option',
    ('proton_py_broker', 'idle'): 'broker.py has no idle-time-out option',
    ('rabbitmq', 'idle'): "RabbitMQ's is 60 s: see heartbeat_rabbitmq_70s (--long)",
}


# ---------------------------------------------------------------------------
# A target: one broker and the client(s) that run the scenarios against it
# ---------------------------------------------------------------------------

class Target:
    def __init__(self, name, broker_kind, client, env, broker_key, interop=None, tshark=True):
        self.name = name                 # row label
        self.broker_kind = broker_kind   # key of PROFILES
        self.profile = PROFILES[broker_kind]
        self.client = client             # peers.Client
        self.env = env
        self.broker_key = broker_key     # brokers shared between targets have the same key
        self.interop = interop           # another Client for cross checks (or None)
        self.tshark = tshark
        self._n = itertools.count(1)
        self.broker = None

    def addr(self, cell):
        return 'q-%s-%s-%d' % (cell, self.client.name, next(self._n))

    # URLs and options ----------------------------------------------------------------
    def url(self, tls=None, user=None, password=None, broker=None):
        b = broker or self.broker
        if tls is None:
            tls = self.client.tls_only
        return b.url(tls=tls, user=user, password=password)

    def tls_kw(self, url):
        return dict(ca=self.env.certs.ca) if url.startswith('amqps:') else {}

    def send(self, address, url=None, client=None, timeout=CALL_TIMEOUT_S, **kw):
        url = url or self.url()
        kw = dict(self.tls_kw(url), **kw)
        return (client or self.client).send(url, address, timeout=timeout, **kw)

    def receive(self, address, url=None, client=None, timeout=CALL_TIMEOUT_S, **kw):
        url = url or self.url()
        kw = dict(self.tls_kw(url), **kw)
        return (client or self.client).receive(url, address, timeout=timeout, **kw)

    def start_receive(self, address, url=None, timeout=CALL_TIMEOUT_S, **kw):
        url = url or self.url()
        kw = dict(self.tls_kw(url), **kw)
        return self.client.start_receive(url, address, timeout=timeout, **kw)


def expect(result, what, ok=True, sent=None, accepted=None, received=None, **counts):
    """Fails the cell unless `result` matches."""
    problems = []
    if ok is not None and result.ok != ok:
        problems.append('exit %s' % result.rc)
    c = result.counts
    if sent is not None and result.sent != sent:
        problems.append('sent %s, expected %d' % (result.sent, sent))
    if accepted is not None and (c is None or len(c) != 5 or c[1] != accepted):
        problems.append('accepted %s, expected %d' % (c[1] if c and len(c) == 5 else None, accepted))
    for name, idx in (('rejected', 2), ('released', 3), ('modified', 4)):
        if name in counts and (c is None or len(c) != 5 or c[idx] != counts[name]):
            problems.append('%s %s, expected %d' % (name, c[idx] if c and len(c) == 5 else None, counts[name]))
    if received is not None and result.received != received:
        problems.append('received %s, expected %d' % (result.received, received))
    if problems:
        tail = ' | '.join(line.strip() for line in result.output.strip().splitlines()[-4:])
        raise Fail('%s: %s [%s] (%s)' % (what, '; '.join(problems), result.line or 'no result line',
                                         tail[:400]))
    return result


def round_trip(t, what, count=1, send_kw=None, recv_kw=None, url=None):
    a = t.addr(what)
    expect(t.send(a, url=url, count=count, **(send_kw or {})), 'send', sent=count)
    expect(t.receive(a, url=url, count=count, **(recv_kw or {})), 'receive', received=count)


def expect_empty(t, address, what):
    r = t.receive(address, count=1, timeout=2)
    expect(r, what + ' (queue must be empty)', ok=False, received=0)


# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------

def cell_presettled(t):
    a = t.addr('presettled')
    expect(t.send(a, count=10, presettled=True), 'send --presettled', sent=10)
    expect(t.receive(a, count=10), 'receive', received=10)


def cell_unsettled(t):
    a = t.addr('unsettled')
    expect(t.send(a, count=10), 'send', sent=10, accepted=10)
    expect(t.receive(a, count=10, outcome='accept'), 'receive --outcome accept', received=10)


def _outcome(t, outcome):
    p, kind = t.profile, t.broker_kind
    if not p['outcomes']:
        raise Skip(SKIP_REASONS[(kind, 'outcomes')])
    if outcome == 'modify' and p.get('no_modified'):
        raise Skip(SKIP_REASONS[(kind, 'modified')])
    a = t.addr(outcome)
    expect(t.send(a, count=3), 'send', sent=3, accepted=3)
    expect(t.receive(a, count=3, outcome=outcome), 'receive --outcome ' + outcome, received=3)
    if outcome == 'reject':
        expect_empty(t, a, 'after reject')
    else:
        if not p['requeues_released' if outcome == 'release' else 'requeues_modified']:
            raise Skip(SKIP_REASONS[(kind, 'requeue')] + ' (the %s itself was sent)' % outcome)
        expect(t.receive(a, count=3, outcome='accept'), 'after %s, receive again' % outcome,
               received=3)


def cell_outcome_reject(t):
    _outcome(t, 'reject')


def cell_outcome_release(t):
    _outcome(t, 'release')


def cell_outcome_modify(t):
    _outcome(t, 'modify')


def cell_sender_outcomes(t):
    """The broker settles our transfers as rejected / released / modified."""
    prefix = t.profile['sender_outcomes']
    if not prefix:
        raise Skip(SKIP_REASONS[(t.broker_kind, 'sender_outcomes')])
    note = None
    for outcome, field in (('reject', 'rejected'), ('release', 'released'), ('modify', 'modified')):
        if t.client.name == 'uamqp' and outcome == 'modify':
            # uamqp/errors.py builds MessageException(condition=None) for a modified outcome
            # (it has no error) and fails on condition.decode(): the send never completes.
            note = ('modify not run: Python uAMQP 1.5.3 raises AttributeError on a modified '
                    'outcome (errors.py, condition None)')
            continue
        r = t.send((prefix % outcome) + t.addr('sender-outcome'), count=2)
        if t.client.name == 'uamqp':  # tells only "not accepted" (counted as rejected)
            expect(r, 'send to a %s address' % outcome, ok=False, sent=2, accepted=0)
        else:
            expect(r, 'send to a %s address' % outcome, ok=False, sent=2, accepted=0, **{field: 2})
    return note


def cell_small_credit(t):
    """A backlog received with a credit of 10: many top-ups, the credit often at zero.

    RabbitMQ 3.10 overshoots such a credit (rabbitmq-server#2597: 15 transfers after a grant
    of 10 in a frame trace here); our receiver tolerates as many as its credit by default."""
    a = t.addr('small-credit')
    expect(t.send(a, count=1000), 'send', sent=1000, accepted=1000)
    expect(t.receive(a, count=1000, credit=10), 'receive --credit 10', received=1000)


def cell_large_1MiB(t):
    a = t.addr('large')
    expect(t.send(a, count=1, size=MiB, timeout=40), 'send --size 1MiB', sent=1, accepted=1)
    expect(t.receive(a, count=1, expect_size=MiB, timeout=40), 'receive', received=1)


def cell_sasl_anonymous(t):
    round_trip(t, 'anon', send_kw=dict(sasl='ANONYMOUS'), recv_kw=dict(sasl='ANONYMOUS'))


def _plain_url(t, password=None):
    if 'PLAIN' not in t.profile['sasl'] or not t.profile['user']:
        raise Skip(SKIP_REASONS.get((t.broker_kind, 'sasl'), 'broker offers no PLAIN'))
    if 'PLAIN' not in t.client.sasl_mechs:
        raise Skip('%s has no SASL PLAIN' % t.client.name)
    user, pw = t.profile['user']
    return t.url(user=user, password=pw if password is None else password)


def cell_sasl_plain(t):
    url = _plain_url(t)
    round_trip(t, 'plain', url=url, send_kw=dict(sasl='PLAIN'), recv_kw=dict(sasl='PLAIN'))


def cell_sasl_plain_bad_password(t):
    url = _plain_url(t, password='wrong-password')
    r = t.send(t.addr('badpw'), url=url, count=1, sasl='PLAIN', timeout=15)
    expect(r, 'send with a wrong password', ok=False)
    if r.sent:
        raise Fail('sent %d message(s) with a wrong password' % r.sent)


def cell_tls(t):
    if not t.profile['tls']:
        raise Skip('no TLS listener')
    round_trip(t, 'tls', count=3, url=t.url(tls=True))


def cell_tls_sasl_external(t):
    if 'EXTERNAL' not in t.profile['sasl']:
        raise Skip('%s offers no SASL EXTERNAL' % t.profile['label'])
    if 'EXTERNAL' not in t.client.sasl_mechs:
        raise Skip('%s has no client certificates / SASL EXTERNAL' % t.client.name)
    c = t.env.certs
    kw = dict(sasl='EXTERNAL', cert=c.client_cert, key=c.client_key)
    round_trip(t, 'external', url=t.url(tls=True), send_kw=kw, recv_kw=kw)


def _idle_round_trip(t, what, wait_s, url=None, receiver_kw=None, sender_kw=None):
    """A receiver connects and waits `wait_s` with nothing to do; then a message arrives."""
    a = t.addr(what)
    bg = t.start_receive(a, url=url, count=1, timeout=wait_s + 30, **(receiver_kw or {}))
    time.sleep(wait_s)
    if bg.popen.poll() is not None:
        r = bg.finish()
        tail = ' | '.join(line.strip() for line in r.output.strip().splitlines()[-4:])
        raise Fail('the idle receiver ended after %.0f s: exit %s (%s)' % (r.elapsed, r.rc, tail[:400]))
    s = t.send(a, url=url, count=1, **(sender_kw or {}))
    r = bg.finish()
    expect(s, 'send after the idle period', sent=1)
    expect(r, 'receiver idle for %d s' % wait_s, received=1)


# These cells once failed against Qpid Proton (Python and C++): Proton re-arms its heartbeat
# timer only on its next tick, so it can stay silent for the whole idle-time-out the peer
# announced. Our engine announced its real threshold and closed at exactly that time. It
# now announces half, as AMQP 1.0 §2.4.5 recommends (and Proton does itself).


def cell_heartbeat_client_idle(t):
    """The client asks for a short idle-time-out: the broker must send empty frames."""
    kw = dict(idle_timeout_ms=SHORT_IDLE_MS)
    _idle_round_trip(t, 'hb-client', IDLE_WAIT_S, receiver_kw=kw)


def cell_heartbeat_broker_idle(t):
    """The broker announces a short idle-time-out: the client must send empty frames."""
    if not t.profile['idle_option']:
        raise Skip(SKIP_REASONS[(t.broker_kind, 'idle')])
    b = t.env.idle_broker(t)
    url = b.url(tls=t.client.tls_only)
    _idle_round_trip(t, 'hb-broker', IDLE_WAIT_S, url=url)


def cell_heartbeat_rabbitmq_70s(t):
    """RabbitMQ's open carries idle-time-out 60000: a receiver idle ~70 s must survive."""
    if t.broker_kind != 'rabbitmq':
        raise Skip('RabbitMQ only')
    if not t.env.long:
        raise Skip('long cell: run with --long')
    _idle_round_trip(t, 'hb-rabbit', RABBIT_IDLE_WAIT_S)


def cell_interop_to_peer(t):
    """Our sender, a peer's receiver (through the broker)."""
    if t.interop is None:
        raise Skip('no second client for this row')
    a = t.addr('interop-out')
    expect(t.send(a, count=3, size=1000), 'send', sent=3)
    expect(t.receive(a, client=t.interop, count=3, expect_size=1000), '%s receive' % t.interop.name,
           received=3)


def cell_interop_from_peer(t):
    """A peer's sender, our receiver."""
    if t.interop is None:
        raise Skip('no second client for this row')
    a = t.addr('interop-in')
    expect(t.send(a, client=t.interop, count=3, size=1000), '%s send' % t.interop.name, sent=3)
    expect(t.receive(a, count=3), 'receive', received=3)


PERFORMATIVES = {0x10: 'open', 0x11: 'begin', 0x12: 'attach', 0x13: 'flow', 0x14: 'transfer',
                 0x15: 'disposition', 0x16: 'detach', 0x17: 'end', 0x18: 'close'}


def cell_tshark_reads_our_traffic(t):
    """Wireshark's AMQP dissector reads the traffic: no malformed packet, no expert error.

    Single-frame messages only: Wireshark 4.0 does not reassemble a delivery split over
    several transfer frames and decodes each fragment as message sections (so a 1 MiB
    message shows as malformed whoever sends it)."""
    if not t.tshark:
        raise Skip('tshark cell runs on another row')
    if t.client.tls_only:
        raise Skip('%s speaks TLS only: not readable on the wire' % t.client.name)
    cap = peers.Tshark(t.env.ws, t.broker.port, name='tshark-%s' % t.name.replace(' ', '_'))
    with cap:
        a = t.addr('tshark')
        expect(t.send(a, count=3, properties=[('k', 'v')]), 'send', sent=3, accepted=3)
        expect(t.send(a, count=2, presettled=True, size=2000), 'send --presettled', sent=2)
        # --credit 2: no extra deliveries in flight (lost at close on a pre-settling broker)
        expect(t.receive(a, count=2, outcome='release', credit=2), 'receive --outcome release',
               received=2)
        left = 5 if t.profile['outcomes'] and t.profile['requeues_released'] else 3
        expect(t.receive(a, count=left), 'receive', received=left)
    rep = cap.check()
    seen = set()
    for code, n in rep['performatives'].items():
        try:
            seen.add(PERFORMATIVES.get(int(code, 0), code))
        except ValueError:
            seen.add(code)
    if rep['problems']:
        raise Fail('%d malformed/error packet(s) in %s: %s' % (
            len(rep['problems']), cap.file, ' | '.join(rep['problems'][:5])[:600]))
    missing = {'open', 'begin', 'attach', 'flow', 'transfer', 'disposition', 'close'} - seen
    if rep['amqp'] == 0 or missing:
        raise Fail('tshark decoded %d AMQP packets of %d; performatives seen %s, missing %s (%s)'
                   % (rep['amqp'], rep['frames'], sorted(seen), sorted(missing), cap.file))
    return '%d packets, %d AMQP, %s' % (rep['frames'], rep['amqp'], ' '.join(sorted(seen)))


CELLS = [
    ('presettled', cell_presettled, False),
    ('unsettled', cell_unsettled, False),
    ('outcome_reject', cell_outcome_reject, False),
    ('outcome_release', cell_outcome_release, False),
    ('outcome_modify', cell_outcome_modify, False),
    ('sender_outcomes', cell_sender_outcomes, False),
    ('small_credit', cell_small_credit, False),
    ('large_1MiB', cell_large_1MiB, False),
    ('sasl_anonymous', cell_sasl_anonymous, False),
    ('sasl_plain', cell_sasl_plain, False),
    ('sasl_plain_bad_password', cell_sasl_plain_bad_password, False),
    ('tls', cell_tls, False),
    ('tls_sasl_external', cell_tls_sasl_external, False),
    ('interop_to_peer', cell_interop_to_peer, False),
    ('interop_from_peer', cell_interop_from_peer, False),
    ('tshark_reads_our_traffic', cell_tshark_reads_our_traffic, False),
    # background cells: mostly waiting, run in parallel with the others
    ('heartbeat_client_idle', cell_heartbeat_client_idle, True),
    ('heartbeat_broker_idle', cell_heartbeat_broker_idle, True),
    ('heartbeat_rabbitmq_70s', cell_heartbeat_rabbitmq_70s, True),
]


# ---------------------------------------------------------------------------
# Environment: workspace, certificates, brokers started once and shared
# ---------------------------------------------------------------------------

class Env:
    def __init__(self, args):
        self.args = args
        self.long = args.long
        self.ws = peers.Workspace(keep=args.keep or None)
        self.certs = self.ws.certs()
        self.brokers = {}
        self.idle_brokers = {}
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + args.budget

    def close(self):
        self.ws.close()

    def make_broker(self, kind, idle_timeout_ms=None, name=None):
        a = self.args
        if kind == 'rabbitmq':
            return peers.RabbitMQ(self.ws, self.certs, name=name or 'rabbitmq')
        if kind == 'proton_broker':
            return peers.ProtonCBroker(self.ws, a.proton_c_broker, self.certs)
        if kind == 'proton_py_broker':
            return peers.ProtonPyBroker(self.ws, self.certs)
        if kind == 'rhea_broker':
            return peers.RheaBroker(self.ws, name=name or 'rhea-broker', certs=self.certs,
                                    idle_timeout_ms=idle_timeout_ms)
        if kind == 'our_broker':
            if a.self_test:  # rhea with the same command line stands in for amqp-cli broker
                return peers.CliBroker(
                    self.ws, [peers.NODE, '--no-deprecation',
                              os.path.join(peers.HERE, 'node', 'rhea_broker.js')],
                    name or 'rhea-as-our-broker', certs=self.certs, idle_timeout_ms=idle_timeout_ms)
            return peers.OurBroker(self.ws, a.cli, name=name or 'our-broker', certs=self.certs,
                                   idle_timeout_ms=idle_timeout_ms)
        raise ValueError(kind)

    def broker(self, t):
        with self.lock:
            if t.broker_key not in self.brokers:
                b = self.make_broker(t.broker_kind)
                self.brokers[t.broker_key] = b
                b.start()
            return self.brokers[t.broker_key]

    def idle_broker(self, t):
        """A second instance of t's broker announcing a short idle-time-out."""
        with self.lock:
            key = t.broker_key
            if key not in self.idle_brokers:
                b = self.make_broker(t.broker_kind, idle_timeout_ms=SHORT_IDLE_MS,
                                     name='%s-idle' % key)
                self.idle_brokers[key] = b
                b.start()
            return self.idle_brokers[key]


def client_factory(args, name):
    if name == 'ours':
        return peers.our_client(args.cli)
    if name == 'proton_python':
        return peers.proton_py_client()
    if name == 'proton_cpp':
        return peers.proton_cpp_client(args.proton_cpp_client)
    if name == 'rhea':
        return peers.rhea_client()
    if name == 'uamqp':
        return peers.uamqp_client()
    raise ValueError(name)


def build_targets(args, env, errors):
    """The rows of the matrix, as [(Target or None, row name)]; errors: row -> why not."""
    rows = []

    def client(name):
        try:
            return client_factory(args, name)
        except PeerError as e:
            return e

    def add(row, kind, cname, key, interop=None, tshark=True):
        c = client(cname)
        if isinstance(c, PeerError):
            errors[row] = str(c)
            rows.append((None, row))
            return
        i = client(interop) if interop else None
        rows.append((Target(row, kind, c, env, key, None if isinstance(i, PeerError) else i,
                            tshark), row))

    def add_our_broker_rows(label):
        # Every --client against our broker (or, --self-test, rhea standing in for it).
        for cname in args.client:
            add('%s <- %s' % (label, cname), 'our_broker', cname, 'our_broker',
                'rhea' if cname == 'proton_python' else 'proton_python',
                tshark=(cname == 'proton_python'))

    if args.self_test:
        plan_a = [('rabbitmq', 'proton_cpp', 'proton_python'),
                  ('proton_broker', 'rhea', 'proton_python'),
                  ('proton_py_broker', 'proton_python', 'rhea'),
                  ('rhea_broker', 'proton_python', 'rhea')]
        for kind, cname, interop in plan_a:
            if kind in args.broker and args.direction in ('client', 'both'):
                add('%s <- %s' % (kind, cname), kind, cname, kind, interop,
                    tshark=(kind == 'rhea_broker'))
        if args.direction in ('broker', 'both'):
            add_our_broker_rows('rhea-as-our-broker')
        return rows
    if args.direction in ('client', 'both'):
        for kind in args.broker:
            add('%s <- amqp-cli' % kind, kind, 'ours', kind, 'proton_python')
    if args.direction in ('broker', 'both'):
        add_our_broker_rows('amqp-cli broker')
    return rows


# ---------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------

def run_cell(t, name, fn, results, verbose):
    t0 = time.monotonic()
    if t0 > t.env.deadline:
        results[(t.name, name)] = ('FAIL', 'not run: the time budget (--budget %.0f s) was spent'
                                   % t.env.args.budget, 0.0)
        return
    try:
        note = fn(t)
        status, detail = 'pass', note or ''
    except Skip as e:
        status, detail = 'skip', str(e)
    except Fail as e:
        status, detail = 'FAIL', str(e)
    except PeerError as e:
        status, detail = 'FAIL', 'peer: %s' % e
    except Exception as e:  # a harness bug is a failure too, with its traceback
        status, detail = 'FAIL', 'harness: %s\n%s' % (e, traceback.format_exc())
    elapsed = time.monotonic() - t0
    proc = getattr(t.broker, 'proc', None)
    if status == 'FAIL' and proc is not None and not proc.alive():
        detail += ' [the broker process is gone: exit status %s]' % proc.returncode()
    results[(t.name, name)] = (status, detail, elapsed)
    if verbose or status == 'FAIL':
        peers.log('%-28s %-26s %-4s %5.1fs %s' % (t.name, name, status, elapsed,
                                                  detail.splitlines()[0][:160] if detail else ''))


def run_target(t, cells, results, args):
    try:
        t.broker = t.env.broker(t)
    except PeerError as e:
        for name, _, _ in cells:
            results[(t.name, name)] = ('FAIL', 'broker did not start: %s' % e, 0.0)
        peers.log('%s: broker did not start: %s' % (t.name, e))
        return
    # Peers get PR_SET_PDEATHSIG, tied to the thread that starts them: start every broker
    # here, on the main thread, not in a background cell's thread.
    if t.profile['idle_option'] and any(c[0] == 'heartbeat_broker_idle' for c in cells):
        try:
            t.env.idle_broker(t)
        except PeerError as e:
            peers.log('%s: idle broker did not start: %s' % (t.name, e))
    background = []
    for name, fn, bg in cells:
        if bg:
            th = threading.Thread(target=run_cell, args=(t, name, fn, results, args.verbose),
                                  daemon=True)
            th.start()
            background.append(th)
    for name, fn, bg in cells:
        if not bg:
            run_cell(t, name, fn, results, args.verbose)
    for th in background:
        th.join()


def print_matrix(rows, cells, results, errors, elapsed):
    names = [row for _, row in rows]
    width = max([len(c) for c, _, _ in cells] + [8])
    colw = [max(len(n), 6) for n in names]
    out = ['', 'conformance matrix (%.0f s)' % elapsed]
    for i, n in enumerate(names):
        out.append('  [%d] %s' % (i + 1, n))
    out.append(' ' * (width + 2) + '  '.join(('[%d]' % (i + 1)).ljust(6) for i in range(len(names))))
    counts = {'pass': 0, 'FAIL': 0, 'skip': 0}
    for cname, _, _ in cells:
        line = cname.ljust(width + 2)
        for n in names:
            status = results.get((n, cname), ('FAIL', errors.get(n, 'not run'), 0))[0]
            counts[status] += 1
            line += status.ljust(6) + '  '
        out.append(line.rstrip())
    notes = []
    for n in names:
        for cname, _, _ in cells:
            status, detail, el = results.get((n, cname), ('FAIL', errors.get(n, 'not run'), 0))
            if status != 'pass' or detail:
                notes.append('  %-4s %s / %s (%.1f s): %s' % (status, n, cname, el, detail))
    if notes:
        out.append('')
        out.append('details (FAIL and skip reasons, notes):')
        out.extend(notes)
    out.append('')
    out.append('matrix: %d passed, %d failed, %d skipped' % (counts['pass'], counts['FAIL'],
                                                            counts['skip']))
    print('\n'.join(out), flush=True)
    return counts['FAIL']


def find_built(name):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    for pattern in ('build/*/conformance/peers/%s' % name, 'build/peers/%s' % name):
        for p in sorted(glob.glob(os.path.join(root, pattern))):
            if os.access(p, os.X_OK):
                return p
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cli', help='amqp-cli (ours)')
    p.add_argument('--proton-c-broker', help='built examples/c/broker.c (CMake target proton_c_broker)')
    p.add_argument('--proton-cpp-client', help='built proton_cpp_client')
    p.add_argument('--direction', choices=('client', 'broker', 'both'), default='both')
    p.add_argument('--broker', action='append', choices=BROKERS,
                   help='brokers for --direction client (default: all)')
    p.add_argument('--client', action='append', choices=CLIENTS,
                   help='peer clients for --direction broker (default: all)')
    p.add_argument('--only', action='append', help='cells to run (comma-separated names)')
    p.add_argument('--long', action='store_true', help='add heartbeat_rabbitmq_70s (~75 s)')
    p.add_argument('--self-test', action='store_true', help='peer-to-peer, no amqp-cli')
    p.add_argument('--keep', action='store_true', help='keep the temp dir (logs, captures)')
    p.add_argument('--budget', type=float, default=DEFAULT_BUDGET_S,
                   help='seconds; cells not started by then fail as "not run" (default %(default)s)')
    p.add_argument('--verbose', '-v', action='store_true')
    a = p.parse_args(argv)
    a.broker = a.broker or list(BROKERS)
    a.client = a.client or list(CLIENTS)
    a.proton_c_broker = a.proton_c_broker or find_built('proton_c_broker')
    a.proton_cpp_client = a.proton_cpp_client or find_built('proton_cpp_client')
    if not a.self_test and not a.cli:
        p.error('--cli PATH is needed (or --self-test)')
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cells = CELLS
    if args.only:
        wanted = {c for item in args.only for c in item.split(',') if c}
        unknown = wanted - {c for c, _, _ in CELLS}
        if unknown:
            print('unknown cells: %s' % ', '.join(sorted(unknown)), file=sys.stderr)
            return 2
        cells = [c for c in CELLS if c[0] in wanted]
    if not args.long:
        cells = [c for c in cells if c[0] != 'heartbeat_rabbitmq_70s']
    t0 = time.monotonic()
    env = Env(args)
    results, errors = {}, {}
    try:
        rows = build_targets(args, env, errors)
        for t, row in rows:
            if t is None:
                continue
            peers.log('row %s' % row)
            run_target(t, cells, results, args)
    finally:
        env.close()
    failed = print_matrix(rows, cells, results, errors, time.monotonic() - t0)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
