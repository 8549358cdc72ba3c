#!/usr/bin/python3
"""Real AMQP 1.0 peers for the conformance tests, started and stopped by the tests.

Python 3 standard library only (run with Debian's /usr/bin/python3). Every server binds to
127.0.0.1 on a free port; every process is started in a session of its own, its PID is
recorded, and only that PID's process group is ever signalled (a bounded graceful stop,
then SIGKILL). Each child also gets PR_SET_PDEATHSIG, so a harness killed by a ctest
timeout does not leave peers behind.

    with peers.Workspace() as ws:                  # temp dir + every process it started
        certs = ws.certs()                         # test CA, server and client certificates
        rabbit = peers.RabbitMQ(ws, certs).start() # private node: own epmd, ports, mnesia
        rabbit.url()                               # amqp://127.0.0.1:PORT
        rabbit.kill(); rabbit.start()              # SIGKILL, then restart on the same ports

Peers: RabbitMQ (+ AMQP 1.0 plugin), ProtonCBroker (examples/c/broker.c, built by
CMakeLists.txt), ProtonPyBroker (examples/python/broker.py, with a TLS listener added),
RheaBroker (node/rhea_broker.js) and OurBroker (`amqp-cli broker`), the last two with the
same command line. Clients: Client and the *_client() factories. Capture: Tshark.
"""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = '/usr/bin/python3'
HOST = '127.0.0.1'
RABBITMQ_BIN = '/usr/lib/rabbitmq/bin'


class PeerError(Exception):
    """A peer could not be started, did not become ready, or misbehaved."""


def log(msg):
    print('[peers %s] %s' % (time.strftime('%H:%M:%S'), msg), file=sys.stderr, flush=True)


def which(name, *fallbacks):
    for candidate in (shutil.which(name),) + fallbacks:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


NODE = which('node', '/usr/bin/node')


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

def free_ports(count=1, host=HOST):
    """`count` distinct TCP ports that were free on `host` a moment ago."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host=HOST):
    return free_ports(1, host)[0]


def port_open(port, host=HOST, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def amqp_answers(port, host=HOST, timeout=2.0):
    """True when something on host:port answers an AMQP protocol header with one."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b'AMQP\x03\x01\x00\x00')  # SASL header: every peer here accepts it
            data = b''
            while len(data) < 8:
                chunk = s.recv(8 - len(data))
                if not chunk:
                    break
                data += chunk
            return data[:4] == b'AMQP'
    except OSError:
        return False


def wait_for_port(port, host=HOST, timeout=30.0, proc=None, amqp=False):
    """Waits until host:port accepts connections (and answers AMQP if `amqp`).

    Raises PeerError on timeout or when `proc` (a Process) exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and not proc.alive():
            raise PeerError('%s exited (status %s) before %s:%d was ready\n%s'
                            % (proc.name, proc.returncode(), host, port, proc.tail()))
        ready = amqp_answers(port, host) if amqp else port_open(port, host)
        if ready:
            return
        if time.monotonic() > deadline:
            raise PeerError('%s:%d not ready after %.0f s%s'
                            % (host, port, timeout, '\n' + proc.tail() if proc else ''))
        time.sleep(0.1)


def wait_for_port_closed(port, host=HOST, timeout=10.0):
    deadline = time.monotonic() + timeout
    while port_open(port, host, 0.2):
        if time.monotonic() > deadline:
            raise PeerError('%s:%d still open after %.0f s' % (host, port, timeout))
        time.sleep(0.1)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _child_setup():
    # Runs in the child between fork and exec: die with the harness *thread* that started
    # us (so start long-lived peers from the main thread, not from a worker thread).
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class Process:
    """A child started in its own session (pgid == pid); signals go to that group only.

    Output goes to `log_path`; with `watch_stdout` stdout is also kept in memory so that
    wait_line() can wait for a line such as "listening URL"."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, watch_stdout=False):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._lines = []
        self._cond = threading.Condition()
        self._logf = open(log_path, 'ab', buffering=0)
        self._logf.write(('$ %s\n' % ' '.join(self.argv)).encode())
        self.popen = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if watch_stdout else self._logf, stderr=self._logf,
            start_new_session=True, preexec_fn=_child_setup)
        self.pid = self.popen.pid
        self._reader = None
        if watch_stdout:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        log('started %s, pid %d' % (name, self.pid))

    def _read(self):
        for raw in iter(self.popen.stdout.readline, b''):
            try:
                self._logf.write(raw)
            except ValueError:  # log closed
                pass
            with self._cond:
                self._lines.append(raw.decode('utf-8', 'replace').rstrip('\n'))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def wait_line(self, pattern, timeout=10.0, count=1):
        """The first `count` stdout lines matching `pattern` (regex), as match objects."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in (rx.search(line) for line in self._lines) if m]
                if len(found) >= count:
                    return found[:count]
                if not self.alive() and (self._reader is None or not self._reader.is_alive()):
                    raise PeerError('%s exited (status %s) without printing /%s/\n%s'
                                    % (self.name, self.returncode(), pattern, self.tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerError('%s printed no /%s/ within %.0f s\n%s'
                                    % (self.name, pattern, timeout, self.tail()))
                self._cond.wait(min(left, 0.2))

    def _signal_group(self, sig):
        try:
            os.killpg(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def stop(self, grace=5.0, sig=signal.SIGTERM):
        """`sig` to the group, up to `grace` seconds to exit, then SIGKILL. Idempotent."""
        if self.alive() and sig != signal.SIGKILL:
            self._signal_group(sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                log('%s (pid %d) ignored %s for %.0f s: SIGKILL'
                    % (self.name, self.pid, signal.Signals(sig).name, grace))
        # SIGKILL whatever is left of the group (the leader, or children that outlived it).
        self._signal_group(signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            raise PeerError('%s (pid %d) survived SIGKILL' % (self.name, self.pid))
        if self._reader is not None:
            self._reader.join(2)
        try:
            self._logf.close()
        except OSError:
            pass
        return self.popen.returncode

    def kill(self):
        """SIGKILL at once (fault injection)."""
        return self.stop(grace=0, sig=signal.SIGKILL)

    def tail(self, lines=25):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                text = f.read().decode('utf-8', 'replace')
        except OSError:
            return ''
        return '\n'.join('    | ' + line for line in text.splitlines()[-lines:])


# ---------------------------------------------------------------------------
# Workspace: a temp dir that owns every process started in it
# ---------------------------------------------------------------------------

class Workspace:
    """Temp dir + registry of processes, all stopped (reverse order) on close().

    The dir is removed on close unless AMQP_PEERS_KEEP=1 (then its path is logged)."""

    def __init__(self, prefix='amqp-peers-', keep=None):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.keep = os.environ.get('AMQP_PEERS_KEEP') == '1' if keep is None else keep
        self.procs = []
        self._certs = None
        self._lock = threading.Lock()

    def path(self, *parts):
        p = os.path.join(self.dir, *parts)
        return p

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def start(self, name, argv, env=None, cwd=None, watch_stdout=False, log_name=None):
        log_path = self.path((log_name or re.sub(r'[^A-Za-z0-9_.-]', '_', name)) + '.log')
        proc = Process(name, argv, log_path, env=env, cwd=cwd, watch_stdout=watch_stdout)
        with self._lock:
            self.procs.append(proc)
        return proc

    def certs(self):
        if self._certs is None:
            self._certs = make_certs(self.mkdir('certs'))
        return self._certs

    def close(self):
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as e:  # keep stopping the others
                log('stopping %s: %s' % (proc.name, e))
        self.procs = []
        if self.keep:
            log('kept %s' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# Certificates (openssl CLI)
# ---------------------------------------------------------------------------

class Certs:
    """Paths of a throw-away PKI: ca, server (127.0.0.1 + localhost), client (CN=client)."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, 'ca.pem')
        self.ca_key = os.path.join(d, 'ca.key')
        self.server_cert = os.path.join(d, 'server.pem')
        self.server_key = os.path.join(d, 'server.key')
        self.server_key_encrypted = os.path.join(d, 'server-encrypted.key')
        self.server_key_password = 'tserverpw'  # what examples/c/broker.c hard-codes
        self.client_cert = os.path.join(d, 'client.pem')
        self.client_key = os.path.join(d, 'client.key')
        self.client_name = 'client'


def _openssl(*args, cwd=None):
    r = subprocess.run(('openssl',) + args, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise PeerError('openssl %s failed:\n%s' % (' '.join(args), r.stdout.decode(errors='replace')))


def make_certs(d):
    """Generates the test CA, a server certificate and a client certificate into `d`."""
    c = Certs(d)
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', c.ca_key, '-out', c.ca,
             '-subj', '/CN=amqp-conformance-test-ca', '-days', '30',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    for name, cn, ext in (
            ('server', 'localhost',
             'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'),
            ('client', c.client_name, 'extendedKeyUsage=clientAuth\n')):
        key, csr, cert = (os.path.join(d, name + s) for s in ('.key', '.csr', '.pem'))
        extfile = os.path.join(d, name + '.ext')
        with open(extfile, 'w') as f:
            f.write('basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n' + ext)
        _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr,
                 '-subj', '/CN=' + cn)
        _openssl('x509', '-req', '-in', csr, '-CA', c.ca, '-CAkey', c.ca_key, '-CAcreateserial',
                 '-out', cert, '-days', '30', '-sha256', '-extfile', extfile)
    _openssl('pkey', '-in', c.server_key, '-aes256', '-passout', 'pass:' + c.server_key_password,
             '-out', c.server_key_encrypted)
    for p in (c.server_key, c.client_key, c.ca_key):
        os.chmod(p, 0o644)  # RabbitMQ may read them as another user
    return c


# ---------------------------------------------------------------------------
# Peers (servers)
# ---------------------------------------------------------------------------

class Peer:
    """A server peer. `port` is plain AMQP, `tls_port` AMQP over TLS (or None)."""
    name = 'peer'
    host = HOST
    port = None
    tls_port = None
    users = {}            # user -> password accepted with SASL PLAIN
    sasl_mechs = ()       # mechanisms offered

    def url(self, tls=False, user=None, password=None):
        port = self.tls_port if tls else self.port
        if port is None:
            raise PeerError('%s has no %s listener' % (self.name, 'TLS' if tls else 'plain'))
        cred = ''
        if user is not None:
            cred = '%s:%s@' % (user, password if password is not None else self.users.get(user, ''))
        return '%s://%s%s:%d' % ('amqps' if tls else 'amqp', cred, self.host, port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ProcessPeer(Peer):
    """A server peer that is one process of the workspace (`proc`), which prints a line on
    stdout when it listens."""
    proc = None

    def _launch(self, argv, pattern, timeout, count=1, cwd=None):
        """Starts the peer (stdout watched) and waits for `count` stdout lines matching
        `pattern` (regex); returns their match objects."""
        self.proc = self.ws.start(self.name, argv, cwd=cwd, watch_stdout=True)
        return self.proc.wait_line(pattern, timeout, count=count)

    def _ready(self, timeout):
        """Waits until the plain port answers an AMQP header; returns self."""
        wait_for_port(self.port, timeout=timeout, proc=self.proc, amqp=True)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def kill(self):
        if self.proc is not None:
            self.proc.kill()


class RabbitMQ(Peer):
    """A private RabbitMQ node with the AMQP 1.0 plugin, and its own epmd.

    Everything lives under ws/<name>/: config, enabled plugins, mnesia, logs and HOME (the
    Erlang cookie). epmd is started by us on a private port (ERL_EPMD_PORT) on 127.0.0.1,
    so the node never starts a daemon epmd that would outlive it; both are stopped by PID.
    kill() SIGKILLs the node only; start() again reuses the same ports and mnesia dir (a
    durable queue survives)."""

    name = 'rabbitmq'
    sasl_mechs = ('PLAIN', 'ANONYMOUS', 'AMQPLAIN', 'EXTERNAL')

    def __init__(self, ws, certs=None, tls=True, external=True, name='rabbitmq'):
        self.ws = ws
        self.name = name
        self.certs = certs if certs is not None else (ws.certs() if tls else None)
        self.external = external and self.certs is not None
        self.port, self.tls_port, self.dist_port, self.epmd_port = free_ports(4)
        if self.certs is None:
            self.tls_port = None
        self.users = {'guest': 'guest'}
        self.nodename = 'amqptest%d@localhost' % self.port
        self.base = ws.mkdir(name)
        self.node = None
        self.epmd = None
        self.starts = 0
        for sub in ('mnesia', 'log', 'home'):
            os.makedirs(os.path.join(self.base, sub), exist_ok=True)
        self._write_config()
        self.env = self._environment()

    def _write_config(self):
        lines = ['listeners.tcp.1 = %s:%d' % (HOST, self.port),
                 'amqp1_0.default_user = guest',
                 'amqp1_0.default_vhost = /',
                 'loopback_users = none',
                 'log.file.level = info',
                 'log.console = false']
        plugins = ['rabbitmq_amqp1_0']
        if self.certs is not None:
            lines += ['listeners.ssl.1 = %s:%d' % (HOST, self.tls_port),
                      'ssl_options.cacertfile = ' + self.certs.ca,
                      'ssl_options.certfile = ' + self.certs.server_cert,
                      'ssl_options.keyfile = ' + self.certs.server_key,
                      'ssl_options.verify = verify_peer',
                      'ssl_options.fail_if_no_peer_cert = false']
        if self.external:
            plugins.append('rabbitmq_auth_mechanism_ssl')
            lines += ['auth_mechanisms.1 = PLAIN', 'auth_mechanisms.2 = AMQPLAIN',
                      'auth_mechanisms.3 = EXTERNAL',
                      'ssl_cert_login_from = common_name']
        self.config_file = os.path.join(self.base, 'rabbitmq.conf')
        with open(self.config_file, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.plugins_file = os.path.join(self.base, 'enabled_plugins')
        with open(self.plugins_file, 'w') as f:
            f.write('[%s].\n' % ','.join(plugins))
        self.env_file = os.path.join(self.base, 'rabbitmq-env.conf')
        open(self.env_file, 'w').close()

    def _environment(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('RABBITMQ_', 'ERL_', 'NOTIFY_SOCKET'))}
        env.update({
            'HOME': os.path.join(self.base, 'home'),
            'RABBITMQ_NODENAME': self.nodename,
            'RABBITMQ_NODE_IP_ADDRESS': HOST,
            'RABBITMQ_NODE_PORT': str(self.port),
            'RABBITMQ_DIST_PORT': str(self.dist_port),
            'RABBITMQ_CONFIG_FILE': self.config_file,
            'RABBITMQ_ADVANCED_CONFIG_FILE': os.path.join(self.base, 'advanced.config'),
            'RABBITMQ_CONF_ENV_FILE': self.env_file,
            'RABBITMQ_ENABLED_PLUGINS_FILE': self.plugins_file,
            'RABBITMQ_MNESIA_BASE': os.path.join(self.base, 'mnesia'),
            'RABBITMQ_LOG_BASE': os.path.join(self.base, 'log'),
            'RABBITMQ_PID_FILE': os.path.join(self.base, 'rabbitmq.pid'),
            'ERL_EPMD_ADDRESS': HOST,
            'ERL_EPMD_PORT': str(self.epmd_port),
            # exec the Erlang VM directly (no signal-proxying shell): our PID is the node's.
            'RUNNING_UNDER_SYSTEMD': 'true',
        })
        return env

    def _start_epmd(self):
        if self.epmd is not None and self.epmd.alive():
            return
        epmd = which('epmd', '/usr/bin/epmd')
        if not epmd:
            raise PeerError('epmd not found (rabbitmq-server / erlang-base not installed?)')
        self.epmd = self.ws.start(self.name + '-epmd',
                                  [epmd, '-port', str(self.epmd_port), '-address', HOST],
                                  env=self.env)
        wait_for_port(self.epmd_port, timeout=10, proc=self.epmd)

    def start(self, timeout=60.0):
        server = os.path.join(RABBITMQ_BIN, 'rabbitmq-server')
        if not os.path.exists(server):
            raise PeerError('%s not found: apt-get install --no-install-recommends '
                            'rabbitmq-server' % server)
        if self.node is not None and self.node.alive():
            return self
        for p in (self.port, self.tls_port, self.dist_port):
            if p and port_open(p):
                wait_for_port_closed(p, timeout=10)
        self._start_epmd()
        self.starts += 1
        t0 = time.monotonic()
        self.node = self.ws.start('%s-node' % self.name, [server], env=self.env,
                                  cwd=self.base, log_name='%s-node-%d' % (self.name, self.starts))
        wait_for_port(self.port, timeout=timeout, proc=self.node, amqp=True)
        if self.tls_port:
            wait_for_port(self.tls_port, timeout=timeout, proc=self.node)
        if self.external and self.starts == 1:
            # SASL EXTERNAL maps the client certificate's CN to a user, who must exist.
            self.ctl('add_user', self.certs.client_name, 'unused-password')
            self.ctl('set_permissions', '-p', '/', self.certs.client_name, '.*', '.*', '.*')
        log('%s ready in %.1f s on %s (pid %d)' % (self.name, time.monotonic() - t0,
                                                  self.url(), self.node.pid))
        return self

    def kill(self):
        """SIGKILL the node (epmd stays, so the node can be restarted with start())."""
        if self.node is not None:
            self.node.kill()

    def stop(self):
        if self.node is not None:
            self.node.stop(grace=30)
        if self.epmd is not None:
            self.epmd.stop()

    def restart(self, timeout=60.0):
        self.stop_node()
        return self.start(timeout)

    def stop_node(self):
        if self.node is not None:
            self.node.stop(grace=30)

    def ctl(self, *args, timeout=60):
        """Runs rabbitmqctl against this node; returns its stdout (raises on failure)."""
        r = subprocess.run([os.path.join(RABBITMQ_BIN, 'rabbitmqctl'), '-n', self.nodename,
                            '-q'] + list(args), env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           preexec_fn=_child_setup)
        out = r.stdout.decode('utf-8', 'replace')
        if r.returncode != 0:
            raise PeerError('rabbitmqctl %s: status %d\n%s' % (' '.join(args), r.returncode, out))
        return out

    def declare_durable_queue(self, name):
        """Declares a durable classic queue NAME in vhost / (address /amq/queue/NAME)."""
        self.ctl('eval', 'rabbit_amqqueue:declare(rabbit_misc:r(<<"/">>, queue, <<"%s">>), '
                 'true, false, [], none, <<"guest">>).' % name)

    def queues(self):
        """{name: (durable, messages)} of vhost /."""
        out = self.ctl('list_queues', '-p', '/', 'name', 'durable', 'messages', '--no-table-headers')
        result = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                result[parts[0]] = (parts[1] == 'true', int(parts[2]))
        return result


class ProtonCBroker(ProcessPeer):
    """Qpid Proton's C example broker (examples/c/broker.c), built as proton_c_broker.

    It answers TLS and plain AMQP on the same port (the server certificate is copied to
    ssl-certs/ in its working directory, where broker.c looks for it), offers SASL
    ANONYMOUS only, accepts every transfer, and sends pre-settled."""

    name = 'proton-c-broker'
    sasl_mechs = ('ANONYMOUS',)

    def __init__(self, ws, binary, certs=None, name='proton-c-broker'):
        if not binary or not os.access(binary, os.X_OK):
            raise PeerError('Proton C broker binary not found: %r' % binary)
        self.ws, self.binary, self.name = ws, binary, name
        self.certs = certs if certs is not None else ws.certs()
        self.cwd = ws.mkdir(name)

    def start(self, timeout=10.0):
        ssl_dir = os.path.join(self.cwd, 'ssl-certs')
        os.makedirs(ssl_dir, exist_ok=True)
        shutil.copy(self.certs.server_cert, os.path.join(ssl_dir, 'tserver-certificate.pem'))
        shutil.copy(self.certs.server_key_encrypted, os.path.join(ssl_dir, 'tserver-private-key.pem'))
        m = self._launch([self.binary, HOST, '0'], r'listening on (\d+)', timeout, cwd=self.cwd)[0]
        self.port = self.tls_port = int(m.group(1))
        return self._ready(timeout)


class ProtonPyBroker(ProcessPeer):
    """Qpid Proton's Python example broker (examples/python/broker.py, unmodified, imported
    by proton_py_broker.py, which adds a TLS listener). SASL ANONYMOUS only."""

    name = 'proton-py-broker'
    sasl_mechs = ('ANONYMOUS',)

    def __init__(self, ws, certs=None, tls=True, name='proton-py-broker'):
        self.ws, self.name = ws, name
        self.certs = certs if certs is not None else (ws.certs() if tls else None)
        self.port, self.tls_port = free_ports(2)
        if self.certs is None:
            self.tls_port = None

    def start(self, timeout=15.0):
        argv = [PYTHON, os.path.join(HERE, 'proton_py_broker.py'),
                '--listen', 'amqp://%s:%d' % (HOST, self.port)]
        if self.tls_port:
            argv += ['--listen', 'amqps://%s:%d' % (HOST, self.tls_port),
                     '--cert', self.certs.server_cert, '--key', self.certs.server_key]
        self._launch(argv, r'^listening ', timeout, count=2 if self.tls_port else 1)
        return self._ready(timeout)


class CliBroker(ProcessPeer):
    """A broker with the `amqp-cli broker` command line:
        --listen URL... [--cert F --key F --ca F] [--user U:P]... [--anonymous | --no-anonymous]
        [--idle-timeout MS] --outcome-prefixes
    printing "listening URL" (actual port) once per listener. Listens on port 0. With TLS,
    clients may present a certificate of the workspace CA (SASL EXTERNAL)."""

    sasl_mechs = ('ANONYMOUS', 'PLAIN', 'EXTERNAL')

    def __init__(self, ws, argv_prefix, name, certs=None, tls=True, users=None,
                 anonymous=True, idle_timeout_ms=None, extra_args=()):
        self.ws, self.argv_prefix, self.name = ws, list(argv_prefix), name
        self.certs = certs if certs is not None else (ws.certs() if tls else None)
        self.users = dict(users if users is not None else {'test': 'secret'})
        self.anonymous = anonymous
        self.idle_timeout_ms = idle_timeout_ms
        self.extra_args = list(extra_args)
        self.listening = []

    def argv(self):
        # --outcome-prefixes: "$reject/..." etc. answer with that outcome (cell sender_outcomes)
        argv = self.argv_prefix + ['--listen', 'amqp://%s:0' % HOST, '--outcome-prefixes']
        if self.certs is not None:
            argv += ['--listen', 'amqps://%s:0' % HOST,
                     '--cert', self.certs.server_cert, '--key', self.certs.server_key,
                     '--ca', self.certs.ca]
        for u, p in self.users.items():
            argv += ['--user', '%s:%s' % (u, p)]
        if not self.anonymous:
            argv += ['--no-anonymous']
        elif self.users:
            argv += ['--anonymous']  # with accounts, anonymous access is off unless asked for
        if self.idle_timeout_ms:
            argv += ['--idle-timeout', str(self.idle_timeout_ms)]
        return argv + self.extra_args

    def start(self, timeout=15.0):
        n = 2 if self.certs is not None else 1
        ms = self._launch(self.argv(), r'^listening (amqps?)://[^\s:]+:(\d+)', timeout, count=n)
        self.listening = [m.group(0).split(' ', 1)[1] for m in ms]
        for m in ms:
            if m.group(1) == 'amqps':
                self.tls_port = int(m.group(2))
            else:
                self.port = int(m.group(2))
        return self._ready(timeout)


def RheaBroker(ws, name='rhea-broker', **kw):
    """node/rhea_broker.js: queues by address, ANONYMOUS/PLAIN/EXTERNAL, plain and TLS."""
    if not NODE:
        raise PeerError('node not found')
    if not os.path.isdir(os.path.join(HERE, 'node', 'node_modules', 'rhea')):
        raise PeerError('rhea not installed: npm ci --prefix %s' % os.path.join(HERE, 'node'))
    return CliBroker(ws, [NODE, '--no-deprecation', os.path.join(HERE, 'node', 'rhea_broker.js')],
                     name, **kw)


def OurBroker(ws, cli, name='our-broker', **kw):
    """`amqp-cli broker`."""
    return CliBroker(ws, [cli, 'broker'], name, **kw)


# ---------------------------------------------------------------------------
# Clients: every one has the `amqp-cli send/receive` command line
# ---------------------------------------------------------------------------

SEND_RE = re.compile(r'sent (\d+) accepted (\d+) rejected (\d+) released (\d+) modified (\d+)')
RECV_RE = re.compile(r'received (\d+)')


class Result:
    def __init__(self, argv, rc, output, elapsed):
        self.argv, self.rc, self.output, self.elapsed = argv, rc, output, elapsed
        self.ok = rc == 0
        m = None
        for line in output.splitlines():
            m = SEND_RE.search(line) or RECV_RE.search(line) or m
        self.line = m.group(0) if m else ''
        self.counts = tuple(int(g) for g in m.groups()) if m else None

    @property
    def sent(self):
        return self.counts[0] if self.counts and len(self.counts) == 5 else None

    @property
    def received(self):
        return self.counts[0] if self.counts and len(self.counts) == 1 else None

    def describe(self):
        last = self.output.strip().splitlines()[-1:] or ['']
        return 'exit %s: %s' % (self.rc, self.line or last[0][:200])


class Client:
    """A client program with the `amqp-cli send/receive` interface.

    Options (all programs): --count N --presettled --size BYTES --body TEXT --property K=V
    --ca F --cert F --key F --insecure --sasl MECH --idle-timeout MS --timeout S, and for
    receive: --outcome accept|reject|release|modify --credit C --print.
    Peer clients also take (not amqp-cli): receive --expect-size BYTES, --presettled."""

    def __init__(self, name, argv_prefix, tls_only=False, sasl_mechs=('ANONYMOUS', 'PLAIN', 'EXTERNAL'),
                 peer_extensions=True, notes=''):
        self.name, self.argv_prefix = name, list(argv_prefix)
        self.tls_only = tls_only
        self.sasl_mechs = sasl_mechs
        self.peer_extensions = peer_extensions
        self.notes = notes

    def _opts(self, count=None, timeout=None, ca=None, cert=None, key=None, sasl=None,
              idle_timeout_ms=None, insecure=False, trace=False, extra=()):
        a = []
        if count is not None:
            a += ['--count', str(count)]
        if ca:
            a += ['--ca', ca]
        if cert:
            a += ['--cert', cert, '--key', key]
        if insecure:
            a += ['--insecure']
        if sasl:
            a += ['--sasl', sasl]
        if idle_timeout_ms:
            a += ['--idle-timeout', str(idle_timeout_ms)]
        if trace:
            a += ['--trace']
        if timeout is not None:
            a += ['--timeout', str(timeout)]
        return a + list(extra)

    def send_argv(self, url, address, presettled=False, size=None, body=None, properties=(), **kw):
        a = self.argv_prefix + ['send', url, address] + self._opts(**kw)
        if presettled:
            a += ['--presettled']
        if size is not None:
            a += ['--size', str(size)]
        elif body is not None:
            a += ['--body', body]
        for k, v in properties:
            a += ['--property', '%s=%s' % (k, v)]
        return a

    def receive_argv(self, url, address, outcome=None, credit=None, expect_size=None,
                     presettled=False, **kw):
        a = self.argv_prefix + ['receive', url, address] + self._opts(**kw)
        if outcome:
            a += ['--outcome', outcome]
        if credit:
            a += ['--credit', str(credit)]
        if expect_size is not None and self.peer_extensions:
            a += ['--expect-size', str(expect_size)]
        if presettled and self.peer_extensions:
            a += ['--presettled']
        return a

    @staticmethod
    def run(argv, timeout):
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_child_setup)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, _ = p.communicate()
            out += b'\n[harness] killed after %.0f s' % timeout
        return Result(argv, p.returncode, out.decode('utf-8', 'replace'), time.monotonic() - t0)

    def send(self, url, address, timeout=30, **kw):
        return self.run(self.send_argv(url, address, timeout=timeout, **kw), timeout + 15)

    def receive(self, url, address, timeout=30, **kw):
        return self.run(self.receive_argv(url, address, timeout=timeout, **kw), timeout + 15)

    def start_receive(self, url, address, timeout=30, **kw):
        """Starts a receiver in the background; finish it with finish()."""
        argv = self.receive_argv(url, address, timeout=timeout, **kw)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_child_setup)
        return BackgroundClient(argv, p, timeout + 15)


class BackgroundClient:
    def __init__(self, argv, popen, timeout):
        self.argv, self.popen, self.timeout, self.t0 = argv, popen, timeout, time.monotonic()

    def finish(self):
        try:
            out, _ = self.popen.communicate(timeout=max(1, self.timeout - (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, _ = self.popen.communicate()
            out += b'\n[harness] killed'
        return Result(self.argv, self.popen.returncode, out.decode('utf-8', 'replace'),
                      time.monotonic() - self.t0)


def proton_py_client():
    return Client('proton-python', [PYTHON, os.path.join(HERE, 'proton_client.py')],
                  sasl_mechs=('ANONYMOUS', 'PLAIN', 'EXTERNAL'))


def proton_cpp_client(binary):
    if not binary or not os.access(binary, os.X_OK):
        raise PeerError('Proton C++ client binary not found: %r' % binary)
    return Client('proton-cpp', [binary], sasl_mechs=('ANONYMOUS', 'PLAIN', 'EXTERNAL'))


def rhea_client():
    if not NODE:
        raise PeerError('node not found')
    if not os.path.isdir(os.path.join(HERE, 'node', 'node_modules', 'rhea')):
        raise PeerError('rhea not installed: npm ci --prefix %s' % os.path.join(HERE, 'node'))
    # --no-deprecation: Node warns when rhea passes an IP address as TLS server name (SNI)
    return Client('rhea', [NODE, '--no-deprecation', os.path.join(HERE, 'node', 'rhea_client.js')],
                  sasl_mechs=('ANONYMOUS', 'PLAIN', 'EXTERNAL'))


def uamqp_client():
    try:
        subprocess.run([PYTHON, '-c', 'import uamqp'], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, OSError):
        raise PeerError('uamqp not importable by %s: apt-get install python3-uamqp' % PYTHON)
    return Client('uamqp', [PYTHON, os.path.join(HERE, 'uamqp_client.py')], tls_only=True,
                  sasl_mechs=('ANONYMOUS', 'PLAIN'))


def our_client(cli):
    if not cli or not os.access(cli, os.X_OK):
        raise PeerError('amqp-cli not found: %r' % cli)
    return Client('amqp-cli', [cli], peer_extensions=False,
                  sasl_mechs=('ANONYMOUS', 'PLAIN', 'EXTERNAL'))


# ---------------------------------------------------------------------------
# Wireshark: capture loopback traffic on a port, then look for malformed frames
# ---------------------------------------------------------------------------

class Tshark:
    """tshark -i lo -f "tcp port N" -w FILE, started by PID and stopped after the scenario.

        with Tshark(ws, port) as cap:
            ... traffic ...
        report = cap.check()   # {'frames': n, 'amqp': n, 'problems': [lines]}
    """

    def __init__(self, ws, port, name=None):
        self.ws, self.port = ws, port
        self.name = name or 'tshark-%d' % port
        self.file = ws.path(self.name + '.pcapng')
        self.tshark = which('tshark', '/usr/bin/tshark')
        if not self.tshark:
            raise PeerError('tshark not installed: apt-get install tshark')
        self.proc = None

    def start(self, timeout=15.0):
        self.proc = self.ws.start(self.name, [self.tshark, '-i', 'lo', '-f', 'tcp port %d' % self.port,
                                              '-w', self.file, '-q'], watch_stdout=False)
        # tshark prints "Capturing on 'Loopback: lo'" on stderr (our log) when it is ready.
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.proc.log_path, 'rb') as f:
                    if b'Capturing on' in f.read():
                        break
            except OSError:
                pass
            if not self.proc.alive():
                raise PeerError('tshark exited: %s\n%s' % (self.proc.returncode(), self.proc.tail()))
            if time.monotonic() > deadline:
                raise PeerError('tshark not capturing after %.0f s\n%s' % (timeout, self.proc.tail()))
            time.sleep(0.05)
        time.sleep(0.3)
        return self

    def stop(self):
        if self.proc is not None:
            time.sleep(0.5)  # let the last packets reach the capture
            self.proc.stop(grace=10, sig=signal.SIGINT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _read(self, display_filter, fields=()):
        argv = [self.tshark, '-r', self.file, '-d', 'tcp.port==%d,amqp' % self.port,
                '-Y', display_filter]
        if fields:
            argv += ['-T', 'fields'] + [x for f in fields for x in ('-e', f)]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        if r.returncode != 0:
            raise PeerError('tshark -r failed (%d): %s' % (r.returncode, r.stderr.decode(errors='replace')))
        return [line for line in r.stdout.decode('utf-8', 'replace').splitlines() if line.strip()]

    def check(self):
        """Dissects the capture as AMQP; 'problems' lists malformed packets and expert
        errors. 'performatives' counts the AMQP 1.0 performatives Wireshark recognised."""
        frames = self._read('frame')
        amqp = self._read('amqp')
        problems = self._read('_ws.malformed || _ws.expert.severity >= "Error"')
        details = []
        if problems:
            details = self._read('_ws.malformed || _ws.expert.severity >= "Error"',
                                 fields=('frame.number', '_ws.expert.message', '_ws.col.Info'))
        names = self._read('amqp.performative', fields=('amqp.performative',))
        performatives = {}
        for line in names:
            for p in line.split(','):
                performatives[p] = performatives.get(p, 0) + 1
        return {'frames': len(frames), 'amqp': len(amqp), 'problems': details or problems,
                'performatives': performatives}
