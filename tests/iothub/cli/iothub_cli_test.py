#!/usr/bin/python3
"""iothub-cli against the real iothub-emulator on 127.0.0.1 (free ports, state in a temp dir):
ctest iothub_cli.

    iothub_cli_test.py IOTHUB_CLI EMULATOR AMQP_CLI

- token: the token iothub-cli prints for a device is accepted by the hub as a SASL PLAIN
  password (sent with amqp-cli); one signed for another device is refused; a bad connection
  string exits 1 with a message naming it.
- send: telemetry with properties, one by one and as a batch, every message accepted; a
  service string refused.
- monitor: those events read back from every partition (through the redirect, and with the
  Event Hubs string), one JSON object each with the device id, the properties, the
  application properties and the x-opt annotations; --device filters; --start seq:N.
- c2d send / c2d receive / feedback: the service sends with --ack full, the device receives
  and completes (and another is rejected), feedback shows Success and Rejected records for
  those message-ids; a C2D message to an unknown device is rejected (exit 1, the condition).
Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'support'))
from iothub_run import Checks, Emulator, cs_fields, free_port  # noqa: E402

CLI, EMULATOR, AMQP_CLI = sys.argv[1], sys.argv[2], sys.argv[3]
check = Checks()


def run(args, timeout=60, stdin=None):
    r = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return r.returncode, r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace')


def main():
    work = tempfile.mkdtemp(prefix='iothub-cli-test-')
    port = free_port()
    state = os.path.join(work, 'state')
    emu = Emulator(EMULATOR, '--state', state, '--amqps', '127.0.0.1:%d' % port, '--wss', 'none',
                   '--device', 'dev-1', '--device', 'dev-2', '--feedback-window', '0.5')
    try:
        if not emu.wait_ready():
            check('the emulator starts', False, emu.text() + emu.text('err'))
            return check.summary()
        cs = emu.connection_strings(state)
        ca = cs['ca']
        dev1 = cs['devices']['dev-1']

        # token
        rc, token, err = run([CLI, 'token', '-c', dev1, '--ttl', '600'])
        token = token.strip()
        check('token: printed', rc == 0 and token.startswith('SharedAccessSignature sr='), err)
        url = 'amqps://%s:%s@localhost:%d' % (urllib.parse.quote('dev-1@sas.emulator', safe=''),
                                              urllib.parse.quote(token, safe=''), port)
        rc, sent, err = run([AMQP_CLI, 'send', url, '/devices/dev-1/messages/events', '--body', 'x',
                             '--ca', ca, '--timeout', '20'])
        check('token: accepted by the hub as a PLAIN password', rc == 0 and 'accepted 1' in sent,
              sent + err)
        other = cs_fields(cs['devices']['dev-2'])
        rc, t2, _ = run([CLI, 'token', '-c', dev1, '--audience',
                         '%s/devices/dev-2' % other['HostName']])
        url2 = 'amqps://%s:%s@localhost:%d' % (urllib.parse.quote('dev-2@sas.emulator', safe=''),
                                               urllib.parse.quote(t2.strip(), safe=''), port)
        rc, sent, err = run([AMQP_CLI, 'send', url2, '/devices/dev-2/messages/events', '--body',
                             'x', '--ca', ca, '--timeout', '20'])
        check('token: signed with another device key, refused', rc != 0, sent + err)
        rc, _, err = run([CLI, 'token', '-c', 'HostName=h;DeviceId=d1'])
        check('token: a bad connection string exits 1, named', rc != 0 and
              'SharedAccessKey' in err, err)
        # send, one by one and as a batch
        rc, text, err = run([CLI, 'send', '-c', dev1, '--ca', ca, '--count', '3', '--message-id',
                             'm-cli', '--content-type', 'application/json', '-p', 'room=kitchen',
                             '{"t": 21}'])
        check('send: 3 accepted', rc == 0 and 'accepted 3, rejected 0' in text, text + err)
        rc, text, err = run([CLI, 'send', '-c', dev1, '--ca', ca, '--count', '4', '--batch',
                             '-p', 'room=hall', 'batched'])
        check('send --batch: 4 accepted in one transfer', rc == 0 and
              'sent 4 in 1 transfers, accepted 4, rejected 0' in text, text + err)
        rc, text, err = run([CLI, 'send', '-c', cs['service'], '--ca', ca, 'x'])
        check('send: a service string refused', rc != 0 and 'device' in err, err)

        # monitor: through the redirect, and with the Event Hubs string
        rc, text, err = run([CLI, 'monitor', '-c', cs['service'], '--ca', ca, '--start',
                             'earliest', '--count', '8', '--timeout', '20'])
        events = [json.loads(l) for l in text.splitlines() if l.startswith('{')]
        # The token check's message (from amqp-cli) comes first; then send's three.
        mine = [e for e in events if e.get('properties', {}).get('messageId') == 'm-cli']
        first = mine[0] if mine else {}
        check('monitor: 8 events through the redirect, 3 of them from send',
              rc == 0 and len(events) == 8 and len(mine) == 3, text + err)
        check('monitor: device id, properties, application properties, annotations',
              first.get('deviceId') == 'dev-1' and
              first.get('properties', {}).get('messageId') == 'm-cli' and
              first.get('properties', {}).get('contentType') == 'application/json' and
              first.get('applicationProperties') == {'room': 'kitchen'} and
              first.get('body') == '{"t": 21}' and
              'x-opt-sequence-number' in first.get('annotations', {}) and
              'x-opt-enqueued-time' in first.get('annotations', {}), json.dumps(first))
        rc, text, err = run([CLI, 'monitor', '-c', cs['eventhub'], '--ca', ca, '--start',
                             'earliest', '--device', 'dev-2', '--timeout', '3'])
        check('monitor: the Event Hubs string, --device filters (dev-2 sent nothing)',
              rc == 0 and text.strip() == '', text + err)
        seq = first.get('sequenceNumber', 0)
        rc, text, err = run([CLI, 'monitor', '-c', cs['eventhub'], '--ca', ca, '--partition',
                             first.get('partition', '0'), '--start', 'seq:%d' % seq, '--count',
                             '1', '--timeout', '10'])
        after = [json.loads(l) for l in text.splitlines() if l.startswith('{')]
        check('monitor --start seq:N: the event after N', rc == 0 and len(after) == 1 and
              after[0]['sequenceNumber'] == seq + 1, text + err)

        # C2D and feedback
        sent = []
        for body in ('complete-me', 'reject-me'):
            rc, text, err = run([CLI, 'c2d', 'send', '-c', cs['service'], '--ca', ca, '--device',
                                 'dev-1', '--ack', 'full', body])
            j = json.loads(text) if text.startswith('{') else {}
            sent.append(j.get('messageId'))
            check('c2d send: accepted (%s)' % body, rc == 0 and j.get('outcome') == 'accepted',
                  text + err)
        rc, text, err = run([CLI, 'c2d', 'receive', '-c', dev1, '--ca', ca, '--count', '1',
                             '--outcome', 'complete'])
        got = [json.loads(l) for l in text.splitlines() if l.startswith('{')]
        check('c2d receive: completed', rc == 0 and len(got) == 1 and
              got[0].get('body') == 'complete-me' and got[0].get('outcome') == 'complete',
              text + err)
        rc, text, err = run([CLI, 'c2d', 'receive', '-c', dev1, '--ca', ca, '--count', '1',
                             '--outcome', 'reject'])
        got = [json.loads(l) for l in text.splitlines() if l.startswith('{')]
        check('c2d receive: rejected', rc == 0 and len(got) == 1 and
              got[0].get('body') == 'reject-me', text + err)
        rc, text, err = run([CLI, 'feedback', '-c', cs['service'], '--ca', ca, '--count', '2',
                             '--timeout', '30'])
        records = {r['originalMessageId']: r['statusCode'] for r in
                   (json.loads(l) for l in text.splitlines() if l.startswith('{'))}
        check('feedback: Success and Rejected for those messages', rc == 0 and
              records.get(sent[0]) == 'Success' and records.get(sent[1]) == 'Rejected',
              text + err)
        rc, text, err = run([CLI, 'c2d', 'send', '-c', cs['service'], '--ca', ca, '--device',
                             'no-such-device', 'x'])
        check('c2d send: an unknown device rejected, exit 1', rc == 1 and
              'amqp:not-found' in text, text + err)

        env = dict(os.environ, IOTHUB_CONNECTION_STRING=dev1)
        r = subprocess.run([CLI, 'token'], stdout=subprocess.PIPE, env=env, timeout=30)
        check('token: from $IOTHUB_CONNECTION_STRING', r.returncode == 0 and
              r.stdout.startswith(b'SharedAccessSignature '))
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    return check.summary()


if __name__ == '__main__':
    sys.exit(main())
