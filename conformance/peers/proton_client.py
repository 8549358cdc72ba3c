#!/usr/bin/python3
"""Qpid Proton Python client with the command line of `amqp-cli send/receive`.

    proton_client.py send URL ADDRESS [--count N] [--presettled] [--size BYTES | --body TEXT]
        [--property K=V]... [--ca F] [--cert F --key F] [--insecure] [--sasl MECH]
        [--idle-timeout MS] [--trace] [--timeout S]
    proton_client.py receive URL ADDRESS [--count N] [--outcome accept|reject|release|modify]
        [--credit C] [--timeout S] [--print] [--expect-size BYTES] [--presettled] (+ TLS/SASL)

Prints "sent N accepted A rejected R released L modified M" or "received N"; exits 0 only
when the scenario succeeded (send: N sent and, unless --presettled, all accepted).
"""

import ipaddress
import os
import sys
from urllib.parse import unquote, urlsplit

from proton import Delivery, Message, SSLDomain
from proton.handlers import MessagingHandler
from proton.reactor import AtLeastOnce, AtMostOnce, Container

from client_args import client_parser


def parse(argv):
    return client_parser('proton_client.py').parse_args(argv)


def is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class Client(MessagingHandler):
    def __init__(self, o):
        # We settle and credit by hand (auto_accept off; prefetch 0 = our own flow control).
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True)
        self.o = o
        self.u = urlsplit(o.url)
        self.counts = dict(sent=0, accepted=0, rejected=0, released=0, modified=0, received=0)
        self.failure = None
        self.done = False
        self.conn = None
        self.outstanding = 0
        self.settled = 0

    # -- connection ------------------------------------------------------------------
    def on_start(self, event):
        o, u = self.o, self.u
        kw = dict(reconnect=False)
        if o.idle_timeout:
            kw['heartbeat'] = o.idle_timeout / 1000.0
        mech = (o.sasl or ('PLAIN' if u.username else 'ANONYMOUS')).upper()
        if mech == 'NONE':
            kw['sasl_enabled'] = False
        else:
            kw['allowed_mechs'] = mech
            kw['allow_insecure_mechs'] = True
            if u.username:
                kw['user'] = unquote(u.username)
                kw['password'] = unquote(u.password or '')
        if u.scheme == 'amqps':
            d = SSLDomain(SSLDomain.MODE_CLIENT)
            if o.ca:
                d.set_trusted_ca_db(o.ca)
            if o.cert:
                d.set_credentials(o.cert, o.key, None)
            if o.insecure:
                d.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
            else:
                d.set_peer_authentication(SSLDomain.VERIFY_PEER if is_ip(u.hostname)
                                          else SSLDomain.VERIFY_PEER_NAME, o.ca)
            kw['ssl_domain'] = d
        # proton.Url would read user:pass itself; give it the bare host:port.
        url = '%s://%s:%d' % (u.scheme, u.hostname, u.port or (5671 if u.scheme == 'amqps' else 5672))
        self.conn = event.container.connect(url, **kw)
        self.timer = event.container.schedule(o.timeout, self)
        if o.mode == 'send':
            event.container.create_sender(
                self.conn, o.address, options=AtMostOnce() if o.presettled else AtLeastOnce())
        else:
            self.receiver = event.container.create_receiver(
                self.conn, o.address, options=AtMostOnce() if o.presettled else AtLeastOnce())

    def on_timer_task(self, event):
        self.fail('timed out after %g s' % self.o.timeout)

    def fail(self, why):
        if not self.failure:
            self.failure = why
        self.finish()

    def finish(self):
        if self.done:
            return
        self.done = True
        self.timer.cancel()
        if self.conn is not None:
            self.conn.close()

    def on_transport_error(self, event):
        c = event.transport.condition
        self.failure = self.failure or 'transport error: %s' % (c.description if c else '?')
        self.done = True
        self.timer.cancel()

    def on_connection_error(self, event):
        self.fail('connection error: %s' % event.connection.remote_condition)

    def on_session_error(self, event):
        self.fail('session error: %s' % event.session.remote_condition)

    def on_session_closing(self, event):
        self.fail('session ended by peer: %s' % event.session.remote_condition)

    def on_link_error(self, event):
        self.fail('link error: %s' % event.link.remote_condition)

    def on_link_closing(self, event):
        if not self.done:
            self.fail('link detached by peer: %s' % event.link.remote_condition)

    def on_disconnected(self, event):
        if not self.done:
            self.failure = self.failure or 'disconnected'
            self.done = True
            self.timer.cancel()

    # -- send ------------------------------------------------------------------------
    def message(self, i):
        o = self.o
        if o.size is not None:
            body = bytes((k + i) % 251 for k in range(o.size)) if o.size < 4096 else \
                (bytes(range(251)) * (o.size // 251 + 2))[i % 251:i % 251 + o.size]
        elif o.body is not None:
            body = o.body
        else:
            body = 'message %d' % i
        props = dict(kv.split('=', 1) for kv in o.property) or None
        return Message(id=i, body=body, durable=True, properties=props)

    def on_sendable(self, event):
        s = event.sender
        while s.credit and self.counts['sent'] < self.o.count and not self.done:
            s.send(self.message(self.counts['sent']))
            self.counts['sent'] += 1
        self.check_send()

    def check_send(self):
        if self.counts['sent'] == self.o.count and (self.o.presettled or self.settled == self.o.count):
            self.finish()

    def outcome(self, name):
        self.counts[name] += 1
        self.settled += 1
        self.check_send()

    def on_accepted(self, event):
        self.outcome('accepted')

    def on_rejected(self, event):
        self.outcome('rejected')

    def on_released(self, event):
        # MessagingHandler reports modified as released: look at the delivery state.
        self.outcome('modified' if event.delivery.remote_state == Delivery.MODIFIED else 'released')

    # -- receive ---------------------------------------------------------------------
    def top_up(self, link):
        want = min(self.o.credit, self.o.count - self.counts['received']) - link.credit
        if want > 0:
            link.flow(want)

    def on_link_opened(self, event):
        if event.link.is_receiver:
            self.top_up(event.link)

    def on_message(self, event):
        if self.done:
            return
        o, d, m = self.o, event.delivery, event.message
        if o.expect_size is not None:
            size = len(m.body) if isinstance(m.body, (bytes, str)) else -1
            if size != o.expect_size and not self.failure:
                self.failure = 'message %d has a %d-byte body, expected %d' % (
                    self.counts['received'], size, o.expect_size)
        if o.print:
            print(repr(m.body)[:200], flush=True)
        if not d.settled:
            if o.outcome == 'accept':
                self.accept(d)
            elif o.outcome == 'reject':
                self.reject(d)
            elif o.outcome == 'release':
                self.release(d, delivered=False)
            else:
                # modified{delivery-failed=true} (MessagingHandler.release(d, delivered=True)
                # would send delivery-failed=false, which RabbitMQ 3.10 refuses)
                d.local.failed = True
                d.update(Delivery.MODIFIED)
                d.settle()
        self.counts['received'] += 1
        if self.counts['received'] == o.count:
            event.link.close()
            self.finish()
        else:
            self.top_up(event.link)

    def result(self):
        c = self.counts
        if self.o.mode == 'send':
            line = 'sent %d accepted %d rejected %d released %d modified %d' % (
                c['sent'], c['accepted'], c['rejected'], c['released'], c['modified'])
            ok = c['sent'] == self.o.count and (self.o.presettled or c['accepted'] == self.o.count)
        else:
            line = 'received %d' % c['received']
            ok = c['received'] == self.o.count
        return line, ok and not self.failure


def main():
    o = parse(sys.argv[1:])
    if o.trace:
        os.environ.setdefault('PN_LOG', 'frame')
    client = Client(o)
    try:
        Container(client).run()
    except Exception as e:  # proton raises on some transport errors
        client.failure = client.failure or '%s: %s' % (type(e).__name__, e)
    line, ok = client.result()
    if client.failure:
        print('proton_client: %s' % client.failure, file=sys.stderr)
    print(line, flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
