#!/usr/bin/python3
"""iothub-emulator killed with SIGKILL under load and restarted on the same state dir.

    sigkill_test.py --emulator PATH [--devices N] [--messages N] [--keep] [-v]

1. The emulator starts (--state DIR, AMQPS on a free port, devices dev-1..dev-N,
   4 partitions, --c2d-lock 5).
2. C2D before the kill: the service (uAMQP, SASL PLAIN) sends two messages to dev-1 and one
   to dev-2; a dev-1 receiver takes both of its messages and settles neither (they stay
   locked, 5 s); dev-2's stays queued.
3. N uAMQP devices (one process each, SASL PLAIN with a SAS token) send --messages
   telemetry messages each, unsettled, up to uAMQP's window in flight; every accepted outcome
   is written to a file as it arrives. Once every device has had 200 accepted, the emulator
   gets SIGKILL, mid-stream.
4. The emulator starts again on the same state dir (new port). Each device resends what it
   had not seen accepted (as the SDKs' retry does), and all of it must be accepted.
5. Every partition is read from the start (Event Hubs form, SASTokenAuth with the key as
   text): sequence numbers 0..n-1 with no hole and no repeat, offsets increasing; every
   message accepted before the kill is there exactly once; every message resent after the
   restart is there once or twice (twice: it was committed before the kill but its outcome
   never reached the device, so the resend stored it again: at-least-once, as IoT Hub); no
   message is missing.
6. C2D after the restart: dev-2's queued message comes at once; dev-1's two locked messages
   come only when their lock from before the kill ends, with the delivery count they had (0).

Prints PASS/FAIL lines and exits 1 on a FAIL (77 when uamqp is missing: ctest's skip).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'peers'))
sys.path.insert(0, HERE)
import iothub_state as hs  # noqa: E402
import peers  # noqa: E402

PYTHON = peers.PYTHON
HUB = 'sdkhub'
PARTITIONS = 4
LOCK_S = 5


class Fail(Exception):
    pass


def start_emulator(ws, path, state, devices, name):
    port = peers.free_port()
    argv = [path, '--state', state, '--hub', HUB, '--amqps', '%s:%d' % (peers.HOST, port),
            '--wss', 'none', '--partitions', str(PARTITIONS), '--c2d-lock', str(LOCK_S)]
    for d in devices:
        argv += ['--device', d]
    proc = ws.start(name, argv, watch_stdout=True)
    proc.wait_line(r'^listening amqps://', timeout=30)
    proc.wait_line(r'connection strings in', timeout=30)
    return proc


def device_auth(st, device_id):
    from uamqp import authentication
    cs = st.devices[device_id]
    host, port = st.device_dial(device_id)
    token = hs.generate_sas_token('%s/devices/%s' % (cs['HostName'], device_id),
                                  cs['SharedAccessKey'], None)
    return authentication.SASLPlain(host, '%s@sas.%s' % (device_id, st.hub_name), token,
                                    port=port, verify=st.ca)


def service_auth(st):
    from uamqp import authentication
    host, port = st.service_dial()
    policy, key = st.service['SharedAccessKeyName'], st.service['SharedAccessKey']
    token = hs.generate_sas_token(st.hostname, key, policy)
    return authentication.SASLPlain(host, '%s@sas.root.%s' % (policy, st.hub_name), token,
                                    port=port, verify=st.ca)


# ---------------------------------------------------------------------------
# --sender: one device sending, in a process of its own
# ---------------------------------------------------------------------------

def sender_main(args):
    import uamqp
    st = hs.State(args.state)
    device_id = args.device
    indices = [int(x) for x in open(args.indices).read().split()]
    uri = 'amqps://%s/devices/%s/messages/events' % (st.devices[device_id]['HostName'], device_id)
    client = uamqp.SendClient(uri, auth=device_auth(st, device_id))
    out = open(args.out, 'a', buffering=1)

    def done_cb(i):
        def cb(result, error):
            if result == uamqp.constants.MessageSendResult.Ok:
                out.write('%d\n' % i)
        return cb
    for i in indices:
        props = uamqp.message.MessageProperties(message_id='%s-%s-%d' % (args.run_id, device_id, i))
        body = ('{"device": "%s", "index": %d}' % (device_id, i)).encode()
        m = uamqp.Message(body, properties=props, application_properties={'run-id': args.run_id})
        m.on_send_complete = done_cb(i)
        client.queue_message(m)
    try:
        client.send_all_messages(close_on_done=True)
    except Exception as e:  # the emulator was killed: expected in the first phase
        print('sender %s: %s: %s' % (device_id, type(e).__name__, e), file=sys.stderr)
    finally:
        try:
            client.close()
        except Exception:
            pass
    out.close()
    return 0


def count_lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def read_acked(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def c2d_send(st, sends):
    import uamqp
    client = uamqp.SendClient('amqps://%s/messages/devicebound' % st.hostname, auth=service_auth(st))
    for device_id, mid in sends:
        props = uamqp.message.MessageProperties(message_id=mid,
                                                to='/devices/%s/messages/devicebound' % device_id)
        client.queue_message(uamqp.Message(('c2d %s' % mid).encode(), properties=props,
                                           application_properties={'iothub-ack': 'none'}))
    try:
        results = client.send_all_messages(close_on_done=True)
    finally:
        client.close()
    if any(r != uamqp.constants.MessageState.SendComplete for r in results):
        raise Fail('C2D sends failed: %s' % results)


def c2d_receiver(st, device_id):
    import uamqp
    uri = 'amqps://%s/devices/%s/messages/devicebound' % (st.devices[device_id]['HostName'],
                                                          device_id)
    return uamqp.ReceiveClient(uri, auth=device_auth(st, device_id), auto_complete=False)


def c2d_take(client, want, timeout_s):
    """Messages until `want` ids are seen or the time is up: {id: (time, delivery count, msg)}."""
    got = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        for msg in client.receive_message_batch(max_batch_size=10, timeout=500):
            mid = hs.text(msg.properties.message_id)
            ann = {hs.text(k): v for k, v in (msg.annotations or {}).items()}
            got[mid] = (time.monotonic(), ann.get('iothub-deliverycount'), msg)
    return got


def read_partitions(st):
    """Every event of every partition: [(partition, sequence, offset, message id)]."""
    import uamqp
    host, port = st.service_dial()
    policy, key = st.service['SharedAccessKeyName'], st.service['SharedAccessKey']
    events = []
    for p in range(PARTITIONS):
        address = 'amqps://%s:%d/%s/ConsumerGroups/$Default/Partitions/%d' % (host, port, st.hub_name, p)
        source = uamqp.address.Source(address)
        source.set_filter(b"amqp.annotation.x-opt-sequence-number > '-1'")
        auth = uamqp.authentication.SASTokenAuth.from_shared_access_key(address, policy, key,
                                                                         port=port, verify=st.ca)
        client = uamqp.ReceiveClient(source, auth=auth, prefetch=1000)
        try:
            empty = 0
            while empty < 2:
                batch = client.receive_message_batch(max_batch_size=1000, timeout=1500)
                if not batch:
                    empty += 1
                    continue
                empty = 0
                for msg in batch:
                    ann = {hs.text(k): v for k, v in (msg.annotations or {}).items()}
                    events.append((p, ann['x-opt-sequence-number'], int(hs.text(ann['x-opt-offset'])),
                                   hs.text(msg.properties.message_id)))
                    msg.accept()
        finally:
            client.close()
    return events


def run_test(args):
    results = []

    def check(name, ok, detail):
        results.append(('PASS' if ok else 'FAIL', name, detail))
        print('%s %s: %s' % ('PASS' if ok else 'FAIL', name, detail), flush=True)

    devices = ['dev-%d' % i for i in range(1, args.devices + 1)]
    run_id = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    with peers.Workspace(prefix='iothub-sigkill-', keep=args.keep or None) as ws:
        state = ws.mkdir('state')
        emu = start_emulator(ws, args.emulator, state, devices, 'iothub-emulator-1')
        st = hs.State(state)

        # C2D: two messages locked by a dev-1 receiver that never settles, one queued for dev-2.
        c2d_send(st, [('dev-1', 'lock-1'), ('dev-1', 'lock-2'), ('dev-2', 'queued-1')])
        holder = c2d_receiver(st, 'dev-1')
        held = c2d_take(holder, 2, 15)
        t_locked = time.monotonic()
        if sorted(held) != ['lock-1', 'lock-2']:
            raise Fail('dev-1 received %s before the kill, expected lock-1 and lock-2' % sorted(held))

        # Telemetry under load, then SIGKILL once every device has 200 accepted.
        senders = {}
        for d in devices:
            idx = ws.path('%s.indices' % d)
            with open(idx, 'w') as f:
                f.write('\n'.join(str(i) for i in range(args.messages)))
            out = ws.path('%s.acked-1' % d)
            senders[d] = (subprocess.Popen(
                [PYTHON, os.path.abspath(__file__), '--sender', '--state', state, '--device', d,
                 '--indices', idx, '--out', out, '--run-id', run_id],
                stdout=subprocess.DEVNULL, stderr=open(ws.path('%s-1.log' % d), 'w'),
                start_new_session=True), out)
        deadline = time.monotonic() + 60
        while min(count_lines(o) for _, o in senders.values()) < 200:
            if time.monotonic() > deadline:
                raise Fail('the devices did not get 200 messages accepted each within 60 s: %s'
                           % {d: count_lines(o) for d, (_, o) in senders.items()})
            time.sleep(0.02)
        emu.kill()
        t_kill = time.monotonic()
        for d, (p, _) in senders.items():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        # Every outcome a sender recorded left the hub before the kill (a sender may still
        # have been reading them when the kill came: hence read once the senders are done).
        acked_before = {d: read_acked(o) for d, (_, o) in senders.items()}
        try:
            holder.close()
        except Exception:
            pass
        total_before = sum(len(v) for v in acked_before.values())
        peers.log('killed with %d accepted (%s) after %.1f s' % (
            total_before, ', '.join('%s %d' % (d, len(v)) for d, v in acked_before.items()),
            t_kill - t0))

        # Restart on the same state dir.
        emu2 = start_emulator(ws, args.emulator, state, devices, 'iothub-emulator-2')
        st = hs.State(state)
        resent = {}
        procs = []
        for d in devices:
            missing = sorted(set(range(args.messages)) - set(acked_before[d]))
            resent[d] = missing
            idx = ws.path('%s.indices-2' % d)
            with open(idx, 'w') as f:
                f.write('\n'.join(str(i) for i in missing))
            out = ws.path('%s.acked-2' % d)
            procs.append((d, subprocess.Popen(
                [PYTHON, os.path.abspath(__file__), '--sender', '--state', state, '--device', d,
                 '--indices', idx, '--out', out, '--run-id', run_id],
                stdout=subprocess.DEVNULL, stderr=open(ws.path('%s-2.log' % d), 'w'),
                start_new_session=True), out))

        # C2D after the restart (while the resends run).
        dev2 = c2d_receiver(st, 'dev-2')
        t_restart = time.monotonic()
        q = c2d_take(dev2, 1, 10)
        check('c2d_queued_survives', 'queued-1' in q and q['queued-1'][0] - t_restart < 5,
              'dev-2 got %s %.1f s after the restart' % (sorted(q), (q.get('queued-1') or (t_restart,))[0] - t_restart))
        for _, _, m in q.values():
            m.accept()
        dev1 = c2d_receiver(st, 'dev-1')
        again = c2d_take(dev1, 2, LOCK_S + 15)
        waited = [again[m][0] - t_locked for m in again]
        counts = sorted(str(again[m][1]) for m in again)
        check('c2d_lock_survives',
              sorted(again) == ['lock-1', 'lock-2'] and min(waited or [0]) >= LOCK_S - 1,
              'dev-1 got %s again %s s after they were locked (lock %d s)'
              % (sorted(again), ', '.join('%.1f' % w for w in waited), LOCK_S))
        check('c2d_delivery_count_kept', counts == ['0', '0'],
              'iothub-deliverycount after the lock ran out: %s (the count they had: 0)' % counts)
        for _, _, m in again.values():
            m.accept()
        for c in (dev1, dev2):
            c.close()

        for d, p, _ in procs:
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        acked_after = {d: read_acked(o) for d, _, o in procs}
        not_acked = {d: sorted(set(resent[d]) - set(acked_after[d])) for d in devices}
        check('resent_accepted', not any(not_acked.values()),
              'after the restart every resent message was accepted (%d resent)' % sum(
                  len(v) for v in resent.values()) if not any(not_acked.values())
              else 'not accepted after the restart: %s' % {d: v[:5] for d, v in not_acked.items() if v})

        events = read_partitions(st)
        emu2.stop()
        by_partition = {}
        for p, seq, off, mid in events:
            by_partition.setdefault(p, []).append((seq, off, mid))
        holes = []
        for p, evs in by_partition.items():
            seqs = [s for s, _, _ in evs]
            if seqs != list(range(len(seqs))):
                holes.append('partition %d sequence numbers %s...' % (p, seqs[:10]))
            offs = [o for _, o, _ in evs]
            if any(b <= a for a, b in zip(offs, offs[1:])):
                holes.append('partition %d offsets not increasing' % p)
        check('sequence_numbers', not holes,
              '%d events in %d partitions, sequence numbers 0..n-1 in each, offsets increasing'
              % (len(events), len(by_partition)) if not holes else '; '.join(holes))
        seen = {}
        for _, _, _, mid in events:
            if mid and mid.startswith(run_id + '-'):
                seen[mid] = seen.get(mid, 0) + 1
        wrong_before = []
        for d, idxs in acked_before.items():
            for i in idxs:
                n = seen.get('%s-%s-%d' % (run_id, d, i), 0)
                if n != 1:
                    wrong_before.append('%s-%d x%d' % (d, i, n))
        check('acked_before_kill_exactly_once', not wrong_before,
              '%d messages accepted before the kill, each read back once' % total_before
              if not wrong_before else 'read back other than once: %s' % wrong_before[:10])
        twice = 0
        wrong_after = []
        for d, idxs in resent.items():
            for i in idxs:
                n = seen.get('%s-%s-%d' % (run_id, d, i), 0)
                if n == 2:
                    twice += 1
                elif n != 1:
                    wrong_after.append('%s-%d x%d' % (d, i, n))
        check('resent_once_or_twice', not wrong_after,
              '%d resent messages read back, %d of them twice (committed before the kill, '
              'outcome lost, stored again when resent)' % (sum(len(v) for v in resent.values()), twice)
              if not wrong_after else 'read back neither once nor twice: %s' % wrong_after[:10])
    fails = sum(1 for s, _, _ in results if s == 'FAIL')
    print('%d passed, %d failed (%.0f s)' % (len(results) - fails, fails, time.monotonic() - t0),
          flush=True)
    return 1 if fails else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--emulator')
    p.add_argument('--devices', type=int, default=4)
    p.add_argument('--messages', type=int, default=3000)
    p.add_argument('--keep', action='store_true')
    p.add_argument('--sender', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--state', help=argparse.SUPPRESS)
    p.add_argument('--device', help=argparse.SUPPRESS)
    p.add_argument('--indices', help=argparse.SUPPRESS)
    p.add_argument('--out', help=argparse.SUPPRESS)
    p.add_argument('--run-id', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sender:
        return sender_main(args)
    if not args.emulator:
        p.error('--emulator is required')
    try:
        import uamqp  # noqa: F401
    except ImportError:
        print('SKIP: uamqp is not importable by %s (apt-get install python3-uamqp)' % PYTHON)
        return 77
    try:
        return run_test(args)
    except (Fail, peers.PeerError) as e:
        print('FAIL sigkill: %s' % e, flush=True)
        return 1


if __name__ == '__main__':
    sys.exit(main())
