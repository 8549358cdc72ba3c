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
- --module DEVICE/MODULE registers a module (and its device), never re-keys one; module
  telemetry over SASL PLAIN is accepted; --x509-device ID lists an X.509 device, needs
  --client-ca; a device is not both;
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
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'support'))
from iothub_run import Checks, Emulator, cs_fields, free_port  # noqa: E402

EMULATOR, CLI = sys.argv[1], sys.argv[2]
check = Checks(pass_detail=120, fail_detail=None)


def sas_token(resource, key, expiry_s=3600):
    se = int(time.time()) + expiry_s
    sr = urllib.parse.quote_plus(resource)
    sig = base64.b64encode(hmac.new(base64.b64decode(key), ('%s\n%d' % (sr, se)).encode(),
                                    hashlib.sha256).digest()).decode()
    return 'SharedAccessSignature sr=%s&sig=%s&se=%d' % (sr, urllib.parse.quote_plus(sig), se)


def main():
    work = tempfile.mkdtemp(prefix='iothub-emulator-program-')
    try:
        state = os.path.join(work, 'state')
        port = free_port()
        e = Emulator(EMULATOR, '--state', state, '--hub', 'proghub', '--amqps', '127.0.0.1:%d' % port,
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
                                                        'modules', 'service', 'x509_devices'] and
              cs['modules'] == {} and cs['x509_devices'] == {} and
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
        e2 = Emulator(EMULATOR, '--state', state, '--amqps', '127.0.0.1:%d' % port, '--wss', 'none',
                      '--device', 'dev-1', '--device', 'dev-2')
        ok = e2.wait_ready()
        after = json.load(open(os.path.join(state, 'connection-strings.json')))
        check('restart: the hub name is kept', ok and after['hostname'] == 'proghub.azure-devices.net',
              after['hostname'])
        check('restart: keys kept, --device adds', after['devices']['dev-1'] == before['devices']['dev-1']
              and 'dev-2' in after['devices'] and after['service'] == before['service'])
        e2.stop()
        e3 = Emulator(EMULATOR, '--state', state, '--amqps', '127.0.0.1:0', '--wss', 'none',
                      '--partitions', '8')
        rc = e3.p.wait(20)
        check('another --partitions is refused', rc == 1 and 'partitions' in e3.text('err'),
              e3.text('err').strip())

        # Modules and X.509 devices.
        def refused(args, words):
            r = Emulator(EMULATOR, '--state', state, '--amqps', '127.0.0.1:0', '--wss', 'none', *args)
            rc = r.p.wait(20)
            err = r.text('err')
            return rc == 1 and all(w in err for w in words), err.strip()
        ok, err = refused(['--x509-device', 'cert-1'], ['--x509-device needs --client-ca'])
        check('--x509-device without --client-ca is refused', ok, err)
        for bad in ('dev-1', 'dev-1/', '/m', 'a/b/c'):
            ok, err = refused(['--module', bad], ["--module takes DEVICE/MODULE, not '%s'" % bad])
            check('--module %s is refused' % bad, ok, err)
        ca = os.path.join(state, 'ca.pem')  # any CA file: no certificate is made here
        e4 = Emulator(EMULATOR, '--state', state, '--amqps', '127.0.0.1:%d' % port, '--wss', 'none',
                      '--module', 'dev-1/mod-a', '--module', 'edge-9/$edgeHub',
                      '--x509-device', 'cert-1', '--client-ca', ca)
        ok = e4.wait_ready()
        mods = json.load(open(os.path.join(state, 'connection-strings.json')))
        gw = ';GatewayHostName=localhost:%d' % port
        ma = cs_fields(mods['modules'].get('dev-1/mod-a', ''))
        check('--module: module strings under "modules"', ok and
              sorted(mods['modules']) == ['dev-1/mod-a', 'edge-9/$edgeHub'] and
              mods['modules']['dev-1/mod-a'].startswith(
                  'HostName=proghub.azure-devices.net;DeviceId=dev-1;ModuleId=mod-a;SharedAccessKey=')
              and mods['modules']['dev-1/mod-a'].endswith(gw) and
              ma.get('SharedAccessKey') not in (None, dev['SharedAccessKey']),
              json.dumps(mods.get('modules'))[:300])
        check('--module: a missing device is registered, an existing one keeps its keys',
              'edge-9' in mods['devices'] and mods['devices']['dev-1'] == before['devices']['dev-1'])
        check('--x509-device: under "x509_devices", not "devices"',
              mods['x509_devices'] == {'cert-1': 'HostName=proghub.azure-devices.net;DeviceId=cert-1;'
                                                 'x509=true' + gw} and
              'cert-1' not in mods['devices'], json.dumps(mods.get('x509_devices')))
        check('startup line counts the modules', re.search(r'^hub proghub, 4 partitions, 4 devices, '
                                                           r'2 modules; ', e4.text(), re.M) is not None,
              e4.text()[-200:])
        # Module telemetry: SASL PLAIN as dev-1/modules/mod-a with the module's token; the
        # device's token does not pass for the module.
        mtoken = sas_token('%s/devices/dev-1/modules/mod-a' % ma['HostName'], ma['SharedAccessKey'])
        def send_as(user, tok, address):
            url = 'amqps://%s:%s@localhost:%d' % (urllib.parse.quote(user, safe=''),
                                                  urllib.parse.quote(tok, safe=''), port)
            r = subprocess.run([CLI, 'send', url, address, '--count', '2', '--body', 'm',
                                '--ca', cs['ca'], '--timeout', '20'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            return r.returncode, r.stdout.decode('utf-8', 'replace')
        rc, out = send_as('dev-1/modules/mod-a@sas.proghub', mtoken,
                          '/devices/dev-1/modules/mod-a/messages/events')
        check('module telemetry over SASL PLAIN accepted', rc == 0 and 'accepted 2' in out, out[-300:])
        dtoken = sas_token('%s/devices/dev-1' % dev['HostName'], dev['SharedAccessKey'])
        rc, out = send_as('dev-1/modules/mod-a@sas.proghub', dtoken,
                          '/devices/dev-1/modules/mod-a/messages/events')
        check("the device's token is not the module's", rc != 0 and 'refused the PLAIN login' in out,
              out[-300:])
        e4.stop()
        # Again: the module keeps its key; a device is not both kinds.
        e5 = Emulator(EMULATOR, '--state', state, '--amqps', '127.0.0.1:%d' % port, '--wss', 'none',
                      '--module', 'dev-1/mod-a')
        ok = e5.wait_ready()
        again = json.load(open(os.path.join(state, 'connection-strings.json')))
        e5.stop()
        check('restart: modules and X.509 devices kept, module keys too',
              ok and again['modules'] == mods['modules'] and
              again['x509_devices'] == mods['x509_devices'])
        ok, err = refused(['--x509-device', 'dev-1', '--client-ca', ca],
                          ["device 'dev-1' is registered with keys"])
        check('--x509-device of a device with keys is refused', ok, err)
        ok, err = refused(['--device', 'cert-1'], ["device 'cert-1' is registered for X.509"])
        check('--device of an X.509 device is refused', ok, err)

        # :memory: keeps nothing in the state dir, and removes its temp dir at exit.
        mem = Emulator(EMULATOR, '--state', ':memory:', '--amqps', '127.0.0.1:0', '--wss', 'none',
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
    return check.summary()


if __name__ == '__main__':
    sys.exit(main())
