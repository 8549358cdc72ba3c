#!/usr/bin/python3
"""Fault test: RabbitMQ killed (SIGKILL) mid-stream and restarted.

Our client (amqp-cli send --reconnect) sends durable messages to a durable queue. While it
sends, the broker node is SIGKILLed and started again on the same ports and mnesia dir. The
client must reconnect, resend what had no outcome, and report every message accepted; then
every message the sender was told was accepted must be in the queue (at-least-once: the
receiver tolerates duplicates, so we count distinct message-ids).

Usage: fault_rabbitmq.py --cli build/dev/tools/amqp-cli [--count N]
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--cli', required=True)
    ap.add_argument('--count', type=int, default=20000)
    ap.add_argument('--kill-after', type=float, default=1.0,
                    help='seconds of sending before the SIGKILL')
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
        send_log = os.path.join(ws.dir, 'send.out')
        t0 = time.monotonic()
        with open(send_log, 'w') as out:
            sender = subprocess.Popen(
                [args.cli, 'send', url, '/amq/queue/dq', '--count', str(args.count), '--durable',
                 '--reconnect', '--window', '500', '--timeout', '180'],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            time.sleep(args.kill_after)
            killed_at = time.monotonic() - t0
            if sender.poll() is not None:
                print('FAIL: the sender finished before the broker was killed; raise --count')
                return 1
            rabbit.kill()
            print('broker SIGKILLed after %.1f s of sending' % killed_at)
            rabbit.start()
            print('broker restarted after %.1f s' % (time.monotonic() - t0))
            if 'dq' not in rabbit.queues():
                print('FAIL: RabbitMQ lost the durable queue dq in the SIGKILL (queues: %s)'
                      % rabbit.queues())
                return 1
            rc = sender.wait(timeout=200)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
        with open(send_log) as f:
            send_out = f.read().strip()
        print('sender (exit %d): %s' % (rc, ' | '.join(send_out.splitlines()[-2:])))
        if rc != 0 or ('sent %d accepted %d ' % (args.count, args.count)) not in send_out:
            print('FAIL: not every message was accepted:\n' + send_out)
            return 1
        recv = subprocess.run(
            [args.cli, 'receive', url, '/amq/queue/dq', '--count', str(10 * args.count),
             '--print-id', '--until-idle', '3000', '--timeout', '120'],
            capture_output=True, text=True, timeout=150)
        ids = [line[3:] for line in recv.stdout.splitlines() if line.startswith('id ')]
        distinct = set(ids)
        expected = {str(i) for i in range(args.count)}
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
