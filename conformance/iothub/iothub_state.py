"""Shared by the Python uAMQP scenario scripts and run_sdks.py: the emulator's
connection-strings.json, where each identity dials, SAS tokens, and the one result line.

Every scenario script prints exactly one line on stdout, `PASS <scenario>: <detail>` or
`FAIL <scenario>: <reason>`, and exits 0 only after PASS (1: the scenario failed, 2: it could
not start). Progress goes to stderr.
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

RESULT_PREFIXES = ('PASS ', 'FAIL ')


class Setup(Exception):
    """The script cannot start (no state, bad arguments): exit status 2."""


def parse_connection_string(cs):
    out = {}
    for part in str(cs).split(';'):
        k, sep, v = part.partition('=')
        if sep and k:
            out[k] = v
    return out


def host_port(s, default_port):
    host, sep, port = str(s).rpartition(':')
    if sep and port.isdigit():
        return host, int(port)
    return str(s), default_port


class State:
    """connection-strings.json: {"hostname": H, "service": CS, "eventhub": CS,
    "devices": {ID: CS}, "ca": PATH}; STATE is the emulator's state dir or that file."""

    def __init__(self, state_arg):
        path = state_arg
        if os.path.isdir(state_arg):
            path = os.path.join(state_arg, 'connection-strings.json')
        if not os.path.exists(path):
            d = os.path.dirname(path) if state_arg.endswith('.json') else state_arg
            raise Setup('no connection-strings.json at %s: is iothub-emulator running with '
                        '--state %s?' % (path, d))
        try:
            with open(path) as f:
                data = json.load(f)
        except ValueError as e:
            raise Setup('%s is not JSON: %s' % (path, e))
        for k in ('hostname', 'service', 'eventhub', 'devices', 'ca'):
            if k not in data:
                raise Setup('%s has no "%s"' % (path, k))
        self.file = path
        self.data = data
        self.hostname = data['hostname']
        self.hub_name = self.hostname.split('.')[0].split(':')[0]
        self.ca = os.path.join(os.path.dirname(os.path.abspath(path)), data['ca'])
        self.service = parse_connection_string(data['service'])
        self.devices = {k: parse_connection_string(v) for k, v in data['devices'].items()}
        self.eventhub = parse_connection_string(data['eventhub'])

    def service_dial(self):
        """(host, port) the service connection string dials (HostName, default 5671)."""
        return host_port(self.service['HostName'], 5671)

    def device(self, device_id=None):
        if not device_id:
            device_id = sorted(self.devices)[0] if self.devices else None
        if device_id not in self.devices:
            raise Setup('device %r is not in %s' % (device_id, self.file))
        return device_id, self.devices[device_id]

    def device_dial(self, device_id):
        cs = self.devices[device_id]
        return host_port(cs.get('GatewayHostName') or cs['HostName'], 5671)


def generate_sas_token(uri, key, policy_name, expiry=3600):
    """Microsoft's generate_sas_token (iot-hub-dev-guide-sas.md, Python 3 version)."""
    ttl = time.time() + expiry
    sign_key = '%s\n%d' % ((urllib.parse.quote_plus(uri)), int(ttl))
    signature = base64.b64encode(hmac.HMAC(base64.b64decode(key), sign_key.encode('utf-8'),
                                           hashlib.sha256).digest())
    rawtoken = {'sr': uri, 'sig': signature, 'se': str(int(ttl))}
    if policy_name is not None:
        rawtoken['skn'] = policy_name
    return 'SharedAccessSignature ' + urllib.parse.urlencode(rawtoken)


def text(v):
    """uAMQP hands strings back as bytes."""
    if isinstance(v, bytes):
        return v.decode('utf-8', 'replace')
    return v


class Scenario:
    """Result line, stage tracking and a watchdog that ends the process when time is up."""

    def __init__(self, name, timeout):
        self.name = name
        self.stage_text = 'starting'
        self._lock = threading.Lock()
        self._done = False
        t = threading.Timer(timeout, self._timeout, args=(timeout,))
        t.daemon = True
        t.start()

    def log(self, msg):
        print('[%s %s] %s' % (time.strftime('%H:%M:%S'), self.name, msg), file=sys.stderr,
              flush=True)

    def stage(self, s):
        self.stage_text = s
        self.log(s)

    def _line(self, ok, detail):
        with self._lock:
            if self._done:
                return False
            self._done = True
        print('%s %s: %s' % ('PASS' if ok else 'FAIL', self.name, ' '.join(str(detail).split())),
              flush=True)
        return True

    def _timeout(self, seconds):
        if self._line(False, 'timed out after %g s while %s' % (seconds, self.stage_text)):
            os._exit(1)

    def run(self, fn):
        """Runs fn() -> detail; exits 0 on PASS, 1 on FAIL, 2 on Setup."""
        try:
            detail = fn()
        except Setup as e:
            self._line(False, 'setup: %s' % e)
            os._exit(2)
        except Exception as e:  # noqa: BLE001 - every failure becomes the result line
            self._line(False, '%s: %s: %s' % (self.stage_text, type(e).__name__, e))
            os._exit(1)
        self._line(True, detail or 'ok')
        sys.stdout.flush()
        os._exit(0)


def preflight(sc, host, port):
    """Fails at once, clearly, when nothing accepts TCP connections on host:port."""
    sc.stage('checking that something listens on %s:%d' % (host, port))
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        raise RuntimeError('cannot connect to %s:%d (%s): is iothub-emulator running?'
                           % (host, port, e.strerror or e))


def send_all(uamqp, send_client, what):
    """Sends what send_client has queued, closes it; raises if any send did not complete."""
    try:
        results = send_client.send_all_messages(close_on_done=True)
    finally:
        send_client.close()
    failed = [r for r in results if r != uamqp.constants.MessageState.SendComplete]
    if failed:
        raise RuntimeError('%d of %d %s failed: %s' % (len(failed), len(results), what, failed))
