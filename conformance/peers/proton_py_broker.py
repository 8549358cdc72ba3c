#!/usr/bin/python3
"""Qpid Proton's Python example broker (/usr/share/proton/examples/python/broker.py),
imported unmodified; this wrapper only adds listeners (plain and TLS) and prints
"listening URL" for each, like `amqp-cli broker`:

    proton_py_broker.py --listen amqp://127.0.0.1:PORT [--listen amqps://127.0.0.1:PORT
        --cert server.pem --key server.key]

SASL: ANONYMOUS only (PLAIN would need a Cyrus SASL password database).
"""

import argparse
import signal
import sys
from urllib.parse import urlsplit

from proton import SSLDomain
from proton.reactor import Container

EXAMPLES = '/usr/share/proton/examples/python'
sys.dont_write_bytecode = True
sys.path.insert(0, EXAMPLES)
import broker as example  # noqa: E402  (examples/python/broker.py)


class Broker(example.Broker):
    def __init__(self, listen, ssl_domain):
        super().__init__(listen[0])
        self.listen = listen
        self.ssl_domain = ssl_domain

    def on_start(self, event):
        self.acceptors = []
        for url in self.listen:
            u = urlsplit(url)
            addr = '%s:%d' % (u.hostname, u.port)
            if u.scheme == 'amqps':
                self.acceptors.append(event.container.listen(addr, ssl_domain=self.ssl_domain))
            else:
                self.acceptors.append(event.container.listen(addr))
            print('listening %s://%s' % (u.scheme, addr), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--listen', action='append', required=True)
    p.add_argument('--cert')
    p.add_argument('--key')
    o = p.parse_args()
    domain = None
    if any(u.startswith('amqps:') for u in o.listen):
        domain = SSLDomain(SSLDomain.MODE_SERVER)
        domain.set_credentials(o.cert, o.key, None)
        domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        Container(Broker(o.listen, domain)).run()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == '__main__':
    main()
