#!/usr/bin/python3
"""iothub-cli against the real iothub-emulator on 127.0.0.1 (free ports, state in a temp dir):
ctest iothub_cli.

    iothub_cli_test.py IOTHUB_CLI EMULATOR AMQP_CLI

- token: the token iothub-cli prints for a device is accepted by the hub as a SASL PLAIN
  password (sent with amqp-cli); one signed for another device is refused; a bad connection
  string exits 1 with a message naming it.
Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

CLI, EMULATOR, AMQP_CLI = sys.argv[1], sys.argv[2], sys.argv[3]
results = []


def check(name, ok, detail=''):
    results.append(ok)
    detail = ' '.join(str(detail).split())[:300]
    print('%s %s%s' % ('PASS' if ok else 'FAIL', name, (': ' + detail) if detail else ''), flush=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(args, timeout=60, stdin=None):
    r = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return r.returncode, r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace')


def cs_fields(cs):
    return dict(p.split('=', 1) for p in cs.split(';') if '=' in p)


def main():
    work = tempfile.mkdtemp(prefix='iothub-cli-test-')
    port = free_port()
    out = open(os.path.join(work, 'emulator.out'), 'w+')
    emu = subprocess.Popen([EMULATOR, '--state', os.path.join(work, 'state'), '--amqps',
                            '127.0.0.1:%d' % port, '--wss', 'none', '--device', 'dev-1',
                            '--device', 'dev-2', '--feedback-window', '0.5'],
                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out.seek(0)
            if re.search(r'^hub ', out.read(), re.M):
                break
            time.sleep(0.05)
        cs = json.load(open(os.path.join(work, 'state', 'connection-strings.json')))
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
        env = dict(os.environ, IOTHUB_CONNECTION_STRING=dev1)
        r = subprocess.run([CLI, 'token'], stdout=subprocess.PIPE, env=env, timeout=30)
        check('token: from $IOTHUB_CONNECTION_STRING', r.returncode == 0 and
              r.stdout.startswith(b'SharedAccessSignature '))
    finally:
        if emu.poll() is None:
            emu.send_signal(signal.SIGTERM)
            try:
                emu.wait(20)
            except subprocess.TimeoutExpired:
                emu.kill()  # our own child, by its PID
        shutil.rmtree(work, ignore_errors=True)
    failed = results.count(False)
    print('%d passed, %d failed' % (results.count(True), failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
