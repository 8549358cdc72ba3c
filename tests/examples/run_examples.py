#!/usr/bin/python3
"""The examples/ programs against the real iothub-emulator on 127.0.0.1 (free port, state in
a temp dir): ctest iothub_examples.

    run_examples.py EMULATOR EXAMPLES_DIR

device_telemetry sends three readings; read_telemetry reads them back through the redirect
with its enqueued-time filter; service_c2d_send sends a message with full feedback,
device_c2d_receive completes it, service_feedback sees its Success record;
lite_device_send logs in on a fixed buffer and sends. Prints one PASS/FAIL line per check.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from iothub_run import Checks, Emulator, cs_fields, free_port  # noqa: E402

EMULATOR, EXAMPLES = sys.argv[1], sys.argv[2]
check = Checks()


def run(args, timeout=90):
    p = subprocess.run([os.path.join(EXAMPLES, args[0])] + args[1:], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def main():
    work = tempfile.mkdtemp(prefix='iothub-examples-')
    port = free_port()
    state = os.path.join(work, 'state')
    emu = Emulator(EMULATOR, '--state', state, '--amqps', '127.0.0.1:%d' % port, '--wss', 'none',
                   '--device', 'thermostat-1', '--feedback-window', '0.5')
    try:
        if not emu.wait_ready():
            check('the emulator starts', False, emu.text() + emu.text('err'))
            return check.summary()
        cs = emu.connection_strings(state)
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

        fields = cs_fields(device)
        rc, text = run(['lite_device_send', 'localhost', str(port), fields['HostName'],
                        'thermostat-1', fields['SharedAccessKey'], ca])
        check('lite_device_send: accepted', rc == 0 and text.strip() == 'accepted', text)
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    return check.summary()


if __name__ == '__main__':
    sys.exit(main())
