#!/usr/bin/python3
"""The examples/ programs against the real iothub-emulator on 127.0.0.1 (free port, state in
a temp dir): ctest iothub_examples.

    run_examples.py EMULATOR EXAMPLES_DIR

device_telemetry sends three readings; read_telemetry reads them back through the redirect
with its enqueued-time filter; service_c2d_send sends a message with full feedback,
device_c2d_receive completes it, service_feedback sees its Success record;
lite_device_send logs in on a fixed buffer and sends. Prints one PASS/FAIL line per check.
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

EMULATOR, EXAMPLES = sys.argv[1], sys.argv[2]
results = []


def check(name, ok, detail=''):
    results.append(ok)
    detail = ' '.join(str(detail).split())[:300]
    print('%s %s%s' % ('PASS' if ok else 'FAIL', name, (': ' + detail) if detail else ''), flush=True)


def run(args, timeout=90):
    p = subprocess.run([os.path.join(EXAMPLES, args[0])] + args[1:], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def main():
    work = tempfile.mkdtemp(prefix='iothub-examples-')
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    out = open(os.path.join(work, 'emulator.out'), 'w+')
    emu = subprocess.Popen([EMULATOR, '--state', os.path.join(work, 'state'), '--amqps',
                            '127.0.0.1:%d' % port, '--wss', 'none', '--device', 'thermostat-1',
                            '--feedback-window', '0.5'],
                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out.seek(0)
            if re.search(r'^hub ', out.read(), re.M):
                break
            time.sleep(0.05)
        cs = json.load(open(os.path.join(work, 'state', 'connection-strings.json')))
        ca, service, device = cs['ca'], cs['service'], cs['devices']['thermostat-1']

        rc, text = run(['device_telemetry', device, ca])
        check('device_telemetry: three readings accepted', rc == 0 and text.count('accepted') == 3, text)
        rc, text = run(['read_telemetry', service, ca, '3'])
        check('read_telemetry: the three read back through the redirect, from the device',
              rc == 0 and text.count('from thermostat-1') == 3 and 'temperature' in text, text)

        rc, text = run(['service_c2d_send', service, 'thermostat-1', 'set-point 20', ca])
        check('service_c2d_send: accepted', rc == 0 and text.strip().endswith('accepted'), text)
        message_id = text.split()[0] if text.split() else '?'
        rc, text = run(['device_c2d_receive', device, ca, '1'])
        check('device_c2d_receive: received and completed', rc == 0 and 'set-point 20' in text, text)
        rc, text = run(['service_feedback', service, ca, '1'])
        check('service_feedback: Success for the message sent',
              rc == 0 and ('%s thermostat-1 Success' % message_id) in text, text)

        fields = dict(p.split('=', 1) for p in device.split(';') if '=' in p)
        rc, text = run(['lite_device_send', 'localhost', str(port), fields['HostName'],
                        'thermostat-1', fields['SharedAccessKey'], ca])
        check('lite_device_send: accepted', rc == 0 and text.strip() == 'accepted', text)
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
