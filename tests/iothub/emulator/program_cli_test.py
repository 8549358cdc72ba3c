#!/usr/bin/python3
"""iothub-emulator as a program, on 127.0.0.1 with free ports (Python standard library and
amqp-cli only): ctest iothub_emulator_program.

    program_cli_test.py EMULATOR AMQP_CLI

- first run: the listening lines, ca.pem / server.pem / connection-strings.json as the
  contract says; SIGTERM stops it with exit status 0;
- telemetry sent by amqp-cli with SASL PLAIN (a device SAS token as password) is accepted;
- --trace: the frames are printed, the PLAIN password and the token never are;
- a restart on the same state dir keeps every key; --device adds a device, never re-keys one;
  another --partitions is refused;
- --state :memory: writes nothing to the state dir, names its temp dir and removes it at exit.
Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import base64
import hashlib
import hmac
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

EMULATOR, CLI = sys.argv[1], sys.argv[2]
results = []


def check(name, ok, detail=''):
    results.append(ok)
    detail = ' '.join(str(detail).split())
    if ok:
        detail = detail[:120]
    print('%s %s%s' % ('PASS' if ok else 'FAIL', name, (': ' + detail) if detail else ''), flush=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Emulator:
    def __init__(self, *args):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen([EMULATOR] + list(args), stdout=self.out, stderr=self.err,
                                  stdin=subprocess.DEVNULL)

    def text(self, which='out'):
        f = self.out if which == 'out' else self.err
        f.seek(0)
        return f.read().decode('utf-8', 'replace')

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r'^hub .*connection strings in', self.text(), re.M):
                return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()  # our own child, by its PID
            return self.p.wait()


def sas_token(resource, key, expiry_s=3600):
    se = int(time.time()) + expiry_s
    sr = urllib.parse.quote_plus(resource)
    sig = base64.b64encode(hmac.new(base64.b64decode(key), ('%s\n%d' % (sr, se)).encode(),
                                    hashlib.sha256).digest()).decode()
    return 'SharedAccessSignature sr=%s&sig=%s&se=%d' % (sr, urllib.parse.quote_plus(sig), se)


def cs_fields(cs):
    return dict(p.split('=', 1) for p in cs.split(';') if '=' in p)


def main():
    work = tempfile.mkdtemp(prefix='iothub-emulator-program-')
    try:
        state = os.path.join(work, 'state')
        port = free_port()
        e = Emulator('--state', state, '--hub', 'proghub', '--amqps', '127.0.0.1:%d' % port,
                     '--wss', '127.0.0.1:0', '--device', 'dev-1', '--trace')
        ready = e.wait_ready()
        out = e.text()
        listening = re.findall(r'^listening (\S+)$', out, re.M)
        check('listening lines', ready and len(listening) == 2 and
              listening[0] == 'amqps://127.0.0.1:%d' % port and
              re.match(r'wss://127\.0\.0\.1:\d+/\$iothub/websocket$', listening[1]) is not None,
              ', '.join(listening) or out[-300:])
        cs = json.load(open(os.path.join(state, 'connection-strings.json')))
        check('connection-strings.json', sorted(cs) == ['ca', 'devices', 'eventhub', 'hostname',
                                                        'service'] and
              cs['hostname'] == 'proghub.azure-devices.net' and
              os.path.exists(cs['ca']) and list(cs['devices']) == ['dev-1'] and
              cs['service'].startswith('HostName=localhost:%d;SharedAccessKeyName=service;' % port) and
              cs['eventhub'].startswith('Endpoint=sb://localhost:%d/;' % port) and
              cs['eventhub'].endswith(';EntityPath=proghub') and
              cs['devices']['dev-1'].endswith(';GatewayHostName=localhost:%d' % port),
              json.dumps(cs)[:200])
        check('files', all(os.path.exists(os.path.join(state, f)) for f in
                           ('ca.pem', 'ca.key', 'server.pem', 'server.key', 'hub.db')) and
              (os.stat(os.path.join(state, 'ca.key')).st_mode & 0o077) == 0)

        # Telemetry with SASL PLAIN: user dev-1@sas.proghub, password a device token.
        dev = cs_fields(cs['devices']['dev-1'])
        token = sas_token('%s/devices/dev-1' % dev['HostName'], dev['SharedAccessKey'])
        url = 'amqps://%s:%s@localhost:%d' % (urllib.parse.quote('dev-1@sas.proghub', safe=''),
                                              urllib.parse.quote(token, safe=''), port)
        r = subprocess.run([CLI, 'send', url, '/devices/dev-1/messages/events', '--count', '3',
                            '--body', 'hello', '--ca', cs['ca'], '--timeout', '20'],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        sent = r.stdout.decode('utf-8', 'replace')
        check('telemetry over SASL PLAIN accepted', r.returncode == 0 and 'accepted 3' in sent, sent[-300:])
        # A CBS put-token (SASL ANONYMOUS), sent as a whole message in amqp-cli's JSON form.
        def typed(t, v):
            return {'type': t, 'value': v}
        put = {'properties': {'message-id': typed('string', 'put-1'), 'to': typed('string', '$cbs'),
                              'reply-to': typed('string', 'cbs')},
               'application-properties': typed('map', [
                   [typed('string', 'operation'), typed('string', 'put-token')],
                   [typed('string', 'type'), typed('string', 'servicebus.windows.net:sastoken')],
                   [typed('string', 'name'), typed('string', '%s/devices/dev-1' % dev['HostName'])]]),
               'body': {'amqp-value': typed('string', token)}}
        r = subprocess.run([CLI, 'send', 'amqps://localhost:%d' % port, '$cbs', '--sasl', 'ANONYMOUS',
                            '--message', '-', '--ca', cs['ca'], '--timeout', '20'],
                           input=(json.dumps(put) + '\n').encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        sent = r.stdout.decode('utf-8', 'replace')
        check('put-token accepted', r.returncode == 0 and 'accepted 1' in sent, sent[-300:])
        rc = e.stop()
        check('SIGTERM: exit 0', rc == 0, 'exit status %s' % rc)
        trace = e.text('err')
        sig = urllib.parse.parse_qs(token.split(' ', 1)[1])['sig'][0]
        check('--trace: frames shown', 'sasl-init(mechanism=:PLAIN' in trace and 'transfer(' in trace
              and 'passwd=***' in trace and 'body(put-token, ' in trace, trace[:200])
        check('--trace: no token, signature or key', 'SharedAccessSignature' not in trace and
              sig not in trace and urllib.parse.quote_plus(sig) not in trace and
              dev['SharedAccessKey'] not in trace)

        # A restart keeps every key; --device adds, never re-keys.
        before = cs
        e2 = Emulator('--state', state, '--amqps', '127.0.0.1:%d' % port, '--wss', 'none',
                      '--device', 'dev-1', '--device', 'dev-2')
        ok = e2.wait_ready()
        after = json.load(open(os.path.join(state, 'connection-strings.json')))
        check('restart: the hub name is kept', ok and after['hostname'] == 'proghub.azure-devices.net',
              after['hostname'])
        check('restart: keys kept, --device adds', after['devices']['dev-1'] == before['devices']['dev-1']
              and 'dev-2' in after['devices'] and after['service'] == before['service'])
        e2.stop()
        e3 = Emulator('--state', state, '--amqps', '127.0.0.1:0', '--wss', 'none',
                      '--partitions', '8')
        rc = e3.p.wait(20)
        check('another --partitions is refused', rc == 1 and 'partitions' in e3.text('err'),
              e3.text('err').strip())

        # :memory: keeps nothing in the state dir, and removes its temp dir at exit.
        mem = Emulator('--state', ':memory:', '--amqps', '127.0.0.1:0', '--wss', 'none',
                       '--device', 'x')
        ok = mem.wait_ready()
        m = re.search(r'connection-strings.json in (\S+)', mem.text())
        tmp = m.group(1) if m else ''
        had = bool(tmp) and os.path.exists(os.path.join(tmp, 'connection-strings.json'))
        rc = mem.stop()
        check(':memory: names its temp dir, removes it at exit', ok and had and rc == 0 and
              not os.path.exists(tmp) and not os.path.exists(':memory:'), tmp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = results.count(False)
    print('%d passed, %d failed' % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
