#!/usr/bin/python3
"""Python uAMQP (Azure's uAMQP-C) client with the command line of `amqp-cli send/receive`.

    uamqp_client.py send amqps://[user:pass@]host:port ADDRESS [--count N] [--presettled]
        [--size BYTES | --body TEXT] [--property K=V]... [--ca F] [--sasl ANONYMOUS|PLAIN]
        [--idle-timeout MS] [--trace] [--timeout S]
    uamqp_client.py receive amqps://... ADDRESS [--count N]
        [--outcome accept|reject|release|modify] [--credit C] [--timeout S] [--print]
        [--expect-size BYTES] [--presettled] [--rcv-settle-mode first|second]

uAMQP quirks (README.md): TLS only (an amqp:// URL exits 2); host, port and CA go to the
SASL auth object; the link address is what uAMQP makes of "amqps://host:port/ADDRESS"
(scheme + host + path, without the port); no client certificates (no SASL EXTERNAL). The
receiver asks for rcv-settle-mode second (uAMQP's default, --rcv-settle-mode first for
"ReceiveAndDelete", where uAMQP applies no outcome of ours). A sender learns only
"accepted" or "not accepted": every other outcome is counted as rejected.
"""

import logging
import sys
import time
from urllib.parse import unquote, urlsplit

import uamqp
from uamqp import authentication, constants, errors

from client_args import client_parser


def parse(argv):
    p = client_parser('uamqp_client.py')
    p.add_argument('--rcv-settle-mode', choices=('first', 'second'), default='second')
    return p.parse_args(argv)


def usage_error(msg):
    print('uamqp_client: %s' % msg, file=sys.stderr)
    sys.exit(2)


def make_auth(o, u):
    if u.scheme != 'amqps':
        usage_error('uAMQP connects with TLS only: an amqps:// URL is needed')
    if o.cert:
        usage_error('uAMQP has no client certificates (SASL EXTERNAL)')
    if o.insecure:
        usage_error('uAMQP cannot skip certificate verification here')
    port = u.port or 5671
    mech = (o.sasl or ('PLAIN' if u.username else 'ANONYMOUS')).upper()
    if mech == 'PLAIN':
        return authentication.SASLPlain(u.hostname, unquote(u.username or ''),
                                        unquote(u.password or ''), port=port, verify=o.ca)
    if mech == 'ANONYMOUS':
        return authentication.SASLAnonymous(u.hostname, port=port, verify=o.ca)
    usage_error('uAMQP supports --sasl ANONYMOUS or PLAIN, not %s' % mech)


def body_of(o, i):
    if o.size is not None:
        return (bytes(range(251)) * (o.size // 251 + 2))[i % 251:i % 251 + o.size]
    if o.body is not None:
        return o.body
    return 'message %d' % i


def body_size(message):
    try:
        data = b''.join(bytes(d) for d in message.get_data())
        return len(data)
    except Exception:  # amqp-value body
        value = message.get_data()
        return len(value) if isinstance(value, (bytes, str)) else -1


class Sender(uamqp.SendClient):
    """Records the raw delivery state of each send (uAMQP reports only ok / error)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.states = []

    def _on_message_sent(self, message, result, delivery_state=None):
        self.states.append((constants.MessageSendResult(result), delivery_state))
        return super()._on_message_sent(message, result, delivery_state)


def send(o, u, auth, common):
    client = Sender(
        'amqps://%s:%d/%s' % (u.hostname, u.port or 5671, o.address), auth=auth,
        send_settle_mode=constants.SenderSettleMode.Settled if o.presettled
        else constants.SenderSettleMode.Unsettled,
        msg_timeout=int(o.timeout * 1000), **common)
    counts = dict(sent=0, accepted=0, rejected=0, released=0, modified=0)
    failure = None
    try:
        client.open()
        for i in range(o.count):
            props = dict(kv.split('=', 1) for kv in o.property) or None
            m = uamqp.Message(body_of(o, i), properties=uamqp.message.MessageProperties(message_id=i),
                              header=uamqp.message.MessageHeader(), application_properties=props)
            m.header.durable = True
            client.queue_message(m)
        client.send_all_messages(close_on_done=False)
        counts['sent'] = o.count
        if not o.presettled:
            for result, state in client.states:
                if result == constants.MessageSendResult.Ok:
                    counts['accepted'] += 1
                else:
                    counts['rejected'] += 1  # uAMQP does not tell rejected/released/modified
                    failure = failure or 'send result %s: %r' % (result.name, state)
    except Exception as e:  # uAMQP raises on link/connection errors
        failure = '%s: %s' % (type(e).__name__, e)
    finally:
        try:
            client.close()
        except Exception:
            pass
    ok = failure is None and counts['sent'] == o.count and (o.presettled or counts['accepted'] == o.count)
    line = 'sent %(sent)d accepted %(accepted)d rejected %(rejected)d released %(released)d modified %(modified)d' % counts
    return line, ok, failure


def receive(o, u, auth, common):
    prefetch = max(1, min(o.credit, o.count))
    client = uamqp.ReceiveClient(
        'amqps://%s:%d/%s' % (u.hostname, u.port or 5671, o.address), auth=auth,
        auto_complete=False, prefetch=prefetch,
        receive_settle_mode=constants.ReceiverSettleMode.ReceiveAndDelete
        if o.rcv_settle_mode == 'first' else constants.ReceiverSettleMode.PeekLock,
        send_settle_mode=constants.SenderSettleMode.Settled if o.presettled
        else constants.SenderSettleMode.Unsettled,
        **common)
    received = 0
    failure = None
    deadline = time.monotonic() + o.timeout
    try:
        client.open()
        while received < o.count:
            left = deadline - time.monotonic()
            if left <= 0:
                failure = 'timed out after %g s' % o.timeout
                break
            # uAMQP refuses a batch larger than its prefetch (the link credit).
            batch = client.receive_message_batch(max_batch_size=min(o.count - received, prefetch),
                                                 timeout=int(min(left, 1.0) * 1000) or 1)
            for m in batch:
                if o.expect_size is not None and body_size(m) != o.expect_size and not failure:
                    failure = 'message %d has a %d-byte body, expected %d' % (
                        received, body_size(m), o.expect_size)
                if o.print:
                    print(repr(m.get_data())[:200], flush=True)
                if o.outcome == 'accept':
                    m.accept()
                elif o.outcome == 'reject':
                    m.reject(condition='amqp:precondition-failed', description='rejected by test')
                elif o.outcome == 'release':
                    m.release()
                else:
                    m.modify(True, True)
                received += 1
        # let the dispositions go out before the link is detached
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            client.do_work()
            time.sleep(0.02)
    except Exception as e:
        failure = failure or '%s: %s' % (type(e).__name__, e)
    finally:
        try:
            client.close()
        except Exception:
            pass
    return 'received %d' % received, failure is None and received == o.count, failure


def main():
    o = parse(sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if o.trace else logging.CRITICAL, stream=sys.stderr)
    u = urlsplit(o.url)
    auth = make_auth(o, u)
    common = dict(debug=o.trace, client_name='uamqp-client', max_message_size=16 * 1024 * 1024,
                  error_policy=errors.ErrorPolicy(max_retries=0))
    if o.idle_timeout:
        common['idle_timeout'] = o.idle_timeout
    line, ok, failure = (send if o.mode == 'send' else receive)(o, u, auth, common)
    if failure:
        print('uamqp_client: %s' % failure, file=sys.stderr)
    print(line, flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
