#!/usr/bin/python3
"""Fault test: RabbitMQ killed (SIGKILL) mid-stream and restarted.

Our client (amqp-cli send --reconnect) sends durable messages to a durable queue. While it
sends, the broker node is SIGKILLed and started again on the same ports and mnesia dir. The
client must reconnect, resend what had no outcome, and report every message accepted; then
every message the sender was told was accepted must be in the queue (at-least-once: the
receiver tolerates duplicates, so we count distinct message-ids).

The kill is timed by the sender's progress, not by the clock: the sender traces its frames
(--trace), and the node is killed once a quarter of the messages have been transferred, so
the kill lands mid-stream however fast the machine is. Should the sender still finish first
(it can only between two looks at its trace), the round is run again with four times as many
messages, a few times at most.

Usage: fault_rabbitmq.py --cli build/dev/tools/amqp-cli [--count N] [--kill-at FRACTION]
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402

# A transfer the sender wrote, in its frame trace: "[1] -> [ch 0] transfer(handle=0, ...".
TRANSFER = re.compile(rb'\] -> \[ch \d+\] transfer\(')


class TraceWatch:
    """Counts the transfers in a growing trace file, reading only what was added."""

    def __init__(self, path):
        self.path, self.offset, self.tail, self.transfers = path, 0, b'', 0

    def poll(self):
        with open(self.path, 'rb') as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        data = self.tail + chunk
        cut = data.rfind(b'\n') + 1  # count whole lines only
        self.transfers += len(TRANSFER.findall(data, 0, cut))
        self.tail = data[cut:]
        return self.transfers


def tail_of(path, lines=5):
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:]).strip()


def run_round(args, rabbit, ws, url, count, round_no):
    """One send with a SIGKILL mid-stream. Returns (status, log path): status is 'killed',
    'early' (the sender finished before the kill) or a FAIL message."""
    send_log = os.path.join(ws.dir, 'send-%d.out' % round_no)
    t0 = time.monotonic()
    with open(send_log, 'w') as out:
        sender = subprocess.Popen(
            [args.cli, 'send', url, '/amq/queue/dq', '--count', str(count), '--durable',
             '--reconnect', '--window', '500', '--timeout', '180', '--trace'],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        watch = TraceWatch(send_log)
        kill_at = max(1, int(count * args.kill_at))
        deadline = t0 + 60
        while watch.poll() < kill_at:
            if sender.poll() is not None:
                return 'early', send_log
            if time.monotonic() > deadline:
                return ('FAIL: the sender transferred %d of %d messages in 60 s:\n%s'
                        % (watch.transfers, count, tail_of(send_log)), send_log)
            time.sleep(0.01)
        if sender.poll() is not None:
            return 'early', send_log
        rabbit.kill()
        print('broker SIGKILLed after %.1f s, %d of %d messages transferred'
              % (time.monotonic() - t0, watch.transfers, count))
        rabbit.start()
        print('broker restarted after %.1f s' % (time.monotonic() - t0))
        if 'dq' not in rabbit.queues():
            return ('FAIL: RabbitMQ lost the durable queue dq in the SIGKILL (queues: %s)'
                    % rabbit.queues(), send_log)
        rc = sender.wait(timeout=200)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    with open(send_log, errors='replace') as f:
        summary = [line.strip() for line in f if line.startswith(('sent ', 'amqp-cli:'))]
    print('sender (exit %d): %s' % (rc, ' | '.join(summary)))
    if rc != 0 or not any(line.startswith('sent %d accepted %d ' % (count, count))
                          for line in summary):
        return ('FAIL: not every message was accepted:\n%s' % tail_of(send_log), send_log)
    return 'killed', send_log


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--cli', required=True)
    ap.add_argument('--count', type=int, default=20000)
    ap.add_argument('--kill-at', type=float, default=0.25,
                    help='fraction of the messages transferred before the SIGKILL')
    ap.add_argument('--rounds', type=int, default=4,
                    help='rounds at most (x4 messages each) while the sender finishes first')
    args = ap.parse_args()

    with peers.Workspace(prefix='amqp-fault-') as ws:
        rabbit = peers.RabbitMQ(ws, certs=None, tls=False)
        rabbit.start()
        rabbit.declare_durable_queue('dq')
        # The declaration must survive the SIGKILL: mnesia writes it to a log that is synced
        # lazily, and RabbitMQ accepts and drops messages sent to /amq/queue/ of a queue that
        # does not exist (a CI run lost it that way). Sync the log, then check after restart.
        rabbit.ctl('eval', 'mnesia:sync_log().')
        url = rabbit.url(user='guest')
        count = args.count
        for round_no in range(1, args.rounds + 1):
            status, _ = run_round(args, rabbit, ws, url, count, round_no)
            if status == 'killed':
                break
            if status != 'early':
                print(status)
                return 1
            print('round %d: the sender finished its %d messages before the kill; again with %d'
                  % (round_no, count, 4 * count))
            rabbit.ctl('purge_queue', '-p', '/', 'dq')
            count *= 4
        else:
            print('FAIL: the sender finished before the kill in %d rounds (last: %d messages)'
                  % (args.rounds, count // 4))
            return 1
        recv = subprocess.run(
            [args.cli, 'receive', url, '/amq/queue/dq', '--count', str(10 * count),
             '--print-id', '--until-idle', '3000', '--timeout', '120'],
            capture_output=True, text=True, timeout=150)
        ids = [line[3:] for line in recv.stdout.splitlines() if line.startswith('id ')]
        distinct = set(ids)
        expected = {str(i) for i in range(count)}
        missing = expected - distinct
        print('received %d messages, %d distinct, %d duplicates (resent after the kill)'
              % (len(ids), len(distinct), len(ids) - len(distinct)))
        if recv.returncode != 0 or missing:
            print('FAIL: %d accepted messages missing (e.g. %s); receive exit %d: %s'
                  % (len(missing), sorted(missing, key=int)[:5], recv.returncode,
                     recv.stderr.strip()[:300]))
            return 1
        print('PASS: every accepted message arrived after SIGKILL and restart')
        return 0


if __name__ == '__main__':
    sys.exit(main())
