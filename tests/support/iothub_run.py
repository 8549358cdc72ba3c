"""What the Python tests that run the real iothub-emulator share (iothub-cli's, the examples',
the emulator program's): PASS/FAIL checks, a free port, connection-string fields, and the
emulator as a child process started on 127.0.0.1 and stopped by its PID.

A test script imports it after putting this directory on sys.path:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
"""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time


class Checks:
    """One PASS/FAIL line per check; summary() prints the counts and gives the exit status."""

    def __init__(self, pass_detail=300, fail_detail=300):
        self.results = []
        self.pass_detail = pass_detail
        self.fail_detail = fail_detail

    def __call__(self, name, ok, detail=''):
        self.results.append(bool(ok))
        detail = ' '.join(str(detail).split())[:self.pass_detail if ok else self.fail_detail]
        print('%s %s%s' % ('PASS' if ok else 'FAIL', name, (': ' + detail) if detail else ''),
              flush=True)

    def summary(self):
        failed = self.results.count(False)
        print('%d passed, %d failed' % (self.results.count(True), failed))
        return 1 if failed else 0


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cs_fields(cs):
    """The fields of a connection string, as a dict."""
    return dict(p.split('=', 1) for p in cs.split(';') if '=' in p)


class Emulator:
    """iothub-emulator PROGRAM started with ARGS; its stdout and stderr kept in temp files."""

    def __init__(self, program, *args):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen([program] + list(args), stdout=self.out, stderr=self.err,
                                  stdin=subprocess.DEVNULL)

    def text(self, which='out'):
        """What it printed so far on stdout ('out') or stderr ('err')."""
        f = self.out if which == 'out' else self.err
        f.seek(0)
        return f.read().decode('utf-8', 'replace')

    def wait_ready(self, timeout=60):
        """True once it printed where its connection strings are; False if it ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r'^hub .*connection strings in', self.text(), re.M):
                return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def connection_strings(self, state_dir):
        """The connection-strings.json it wrote in STATE_DIR."""
        with open(os.path.join(state_dir, 'connection-strings.json')) as f:
            return json.load(f)

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL after TIMEOUT seconds (our own child, by its PID); its status."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()
