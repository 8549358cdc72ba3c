#!/usr/bin/python3
"""Python uAMQP 1.5.3 as an IoT Hub service client, following Microsoft's AMQP guide
(articles/iot-hub/iot-hub-amqp-support.md, "Service client"), against iothub-emulator.

    uamqp_service.py STATE --scenario c2d-send|feedback|telemetry-read --run-id R
                     [--device ID] [--expect N] [--partitions P] [--timeout S]

STATE is the emulator's state dir or its connection-strings.json. SASL PLAIN with username
`<policy>@sas.root.<hub>` and a SAS token for the hub host name, as in the guide. Changed
from the guide only so that it runs on Python 3 against a local endpoint (the doc's
reference §10): urllib.parse, bytes joined with b'', the host, port and CA given to the auth
objects (uAMQP takes them nowhere else; after the redirect: the redirect's port and our CA),
`redirect.address` decoded (uAMQP hands it over as bytes), and the filter value quoted
(`> '-1'`, where the guide has `> 2995`).

c2d-send        three messages for device.js-style settlement (`action` complete, reject,
                abandon) to /messages/devicebound, `to` = /devices/<id>/messages/devicebound,
                iothub-ack full, message-id R-complete/-reject/-abandon; all accepted.
feedback        /messages/serviceBound/feedback until the records of R's three messages
                arrived: Success, Rejected, Success; each feedback message accepted.
telemetry-read  /messages/events/ConsumerGroups/$Default/Partitions/<p> with a selector
                filter, for p in 0..P-1; on LinkRedirect, the redirect's address with a new
                SASTokenAuth; until N messages of run R (uamqp_device.py) were read, their
                properties and Event Hubs annotations checked.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iothub_state as hs  # noqa: E402

ACTIONS = ('complete', 'reject', 'abandon')
EXPECTED = {'complete': 'Success', 'reject': 'Rejected', 'abandon': 'Success'}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('state')
    p.add_argument('--scenario', choices=('c2d-send', 'feedback', 'telemetry-read'), required=True)
    p.add_argument('--run-id', required=True)
    p.add_argument('--device')
    p.add_argument('--expect', type=int, default=5, help='telemetry-read: messages of run R')
    p.add_argument('--partitions', type=int, default=4)
    p.add_argument('--timeout', type=float, default=90)
    return p.parse_args()


class Service:
    def __init__(self, sc, args):
        import uamqp
        from uamqp import authentication
        self.uamqp, self.authentication = uamqp, authentication
        self.sc, self.args = sc, args
        self.st = hs.State(args.state)
        svc = self.st.service
        self.policy_name = svc['SharedAccessKeyName']
        self.access_key = svc['SharedAccessKey']
        self.hostname = self.st.hostname
        self.iot_hub_name = self.st.hub_name
        self.host, self.port = self.st.service_dial()
        hs.preflight(sc, self.host, self.port)
        self.debug = bool(os.environ.get('UAMQP_DEBUG'))

    def auth(self):
        username = '{policy_name}@sas.root.{iot_hub_name}'.format(
            policy_name=self.policy_name, iot_hub_name=self.iot_hub_name)
        sas_token = hs.generate_sas_token(self.hostname, self.access_key, self.policy_name)
        return self.authentication.SASLPlain(self.host, username, sas_token, port=self.port,
                                             verify=self.st.ca)

    def uri(self, operation):
        return 'amqps://{}{}'.format(self.hostname, operation)


def c2d_send(sc, args):
    s = Service(sc, args)
    uamqp = s.uamqp
    device_id, _ = s.st.device(args.device)
    send_client = uamqp.SendClient(s.uri('/messages/devicebound'), auth=s.auth(), debug=s.debug)
    to = '/devices/{device_id}/messages/devicebound'.format(device_id=device_id)
    for action in ACTIONS:
        msg_props = uamqp.message.MessageProperties(message_id='%s-%s' % (args.run_id, action), to=to)
        app_props = {'iothub-ack': 'full', 'run-id': args.run_id, 'action': action}
        msg_content = ('c2d %s %s' % (action, args.run_id)).encode()
        send_client.queue_message(uamqp.Message(msg_content, properties=msg_props,
                                                application_properties=app_props))
    sc.stage('sending 3 C2D messages to %s' % device_id)
    hs.send_all(uamqp, send_client, 'C2D sends')
    return 'run %s: 3 C2D messages with iothub-ack full accepted for %s' % (args.run_id, device_id)


def feedback(sc, args):
    s = Service(sc, args)
    wanted = {'%s-%s' % (args.run_id, a): a for a in ACTIONS}
    records = {}
    receive_client = s.uamqp.ReceiveClient(s.uri('/messages/serviceBound/feedback'), auth=s.auth(),
                                           auto_complete=False, debug=s.debug)
    try:
        while not all(k in records for k in wanted):
            sc.stage('waiting for feedback on %s' % ', '.join(k for k in wanted if k not in records))
            batch = receive_client.receive_message_batch(max_batch_size=10, timeout=5000)
            for msg in batch:
                content_type = hs.text(msg.properties.content_type)
                if content_type != 'application/vnd.microsoft.iothub.feedback.json':
                    raise RuntimeError('feedback content-type %r' % content_type)
                msg_body = json.loads(b''.join(msg.get_data()).decode('utf-8'))
                for fb in msg_body:
                    sc.log('feedback record %s' % json.dumps(fb))
                    if fb.get('originalMessageId') in wanted:
                        records[fb['originalMessageId']] = fb
                msg.accept()
    finally:
        receive_client.close()
    wrong = ['%s: %s, expected %s' % (k, records[k].get('statusCode'), EXPECTED[a])
             for k, a in wanted.items() if records[k].get('statusCode') != EXPECTED[a]]
    if wrong:
        raise RuntimeError('feedback: ' + '; '.join(wrong))
    return 'run %s: feedback Success, Rejected, Success' % args.run_id


def set_endpoint_filter(uamqp, uri, endpoint_filter=''):
    source_uri = uamqp.address.Source(uri)
    source_uri.set_filter(endpoint_filter)
    return source_uri


def check_event(msg, run_id, problems):
    props = msg.properties
    app = {hs.text(k): hs.text(v) for k, v in (msg.application_properties or {}).items()}
    ann = {hs.text(k): v for k, v in (msg.annotations or {}).items()}
    mid = hs.text(props.message_id)
    index = app.get('index')
    checks = [
        ('correlation-id', hs.text(props.correlation_id), 'corr-%s-%s' % (run_id, index)),
        ('content-type', hs.text(props.content_type), 'application/json'),
        ('content-encoding', hs.text(props.content_encoding), 'utf-8'),
        ('kind', app.get('kind'), 'uamqp-telemetry'),
        ('x-opt-sequence-number is an int', isinstance(ann.get('x-opt-sequence-number'), int), True),
        ('x-opt-offset is a string', isinstance(hs.text(ann.get('x-opt-offset')), str), True),
        ('x-opt-enqueued-time present', ann.get('x-opt-enqueued-time') is not None, True),
        ('iothub-connection-device-id present', ann.get('iothub-connection-device-id') is not None, True),
    ]
    for what, got, want in checks:
        if got != want:
            problems.append('%s: %s %r, expected %r' % (mid, what, got, want))


def telemetry_read(sc, args):
    s = Service(sc, args)
    uamqp = s.uamqp
    # The guide's `> 2995` unquoted; Event Hubs wants the value quoted.
    endpoint_filter = b"amqp.annotation.x-opt-sequence-number > '-1'"
    found, problems, partitions_with = {}, [], set()
    for p_id in range(args.partitions):
        if len(found) >= args.expect:
            break
        operation = '/messages/events/ConsumerGroups/{consumer_group}/Partitions/{p_id}'.format(
            consumer_group='$Default', p_id=p_id)
        sc.stage('partition %d: attaching %s (expecting amqp:link:redirect)' % (p_id, operation))
        receive_client = uamqp.ReceiveClient(set_endpoint_filter(uamqp, s.uri(operation),
                                                                 endpoint_filter),
                                             auth=s.auth(), debug=s.debug)
        try:
            batch = receive_client.receive_message_batch(max_batch_size=5, timeout=10000)
            raise RuntimeError('partition %d: no LinkRedirect (received %d messages on the IoT '
                               'Hub address itself)' % (p_id, len(batch)))
        except uamqp.errors.LinkRedirect as redirect:
            receive_client.close()
            address = hs.text(redirect.address)
            sc.log('redirect: address %s hostname %s port %s' % (
                address, hs.text(redirect.hostname), redirect.port))
            sas_auth = uamqp.authentication.SASTokenAuth.from_shared_access_key(
                address, s.policy_name, s.access_key, port=redirect.port or 5671, verify=s.st.ca)
            receive_client = uamqp.ReceiveClient(set_endpoint_filter(uamqp, address, endpoint_filter),
                                                 auth=sas_auth, debug=s.debug)
        try:
            while True:
                sc.stage('partition %d: reading (%d of %d found)' % (p_id, len(found), args.expect))
                batch = receive_client.receive_message_batch(max_batch_size=50, timeout=3000)
                if not batch:
                    break  # this partition has nothing more for now
                for msg in batch:
                    app = {hs.text(k): hs.text(v) for k, v in (msg.application_properties or {}).items()}
                    if app.get('run-id') == args.run_id:
                        mid = hs.text(msg.properties.message_id)
                        if mid not in found:
                            found[mid] = p_id
                            partitions_with.add(p_id)
                            check_event(msg, args.run_id, problems)
                    msg.accept()
        finally:
            receive_client.close()
    if problems:
        raise RuntimeError('; '.join(problems[:5]))
    if len(found) != args.expect:
        raise RuntimeError('found %d of the %d messages of run %s in partitions 0..%d'
                           % (len(found), args.expect, args.run_id, args.partitions - 1))
    return ('run %s: %d messages read after the redirect, from partitions %s'
            % (args.run_id, len(found), ','.join(map(str, sorted(partitions_with)))))


def main():
    args = parse_args()
    sc = hs.Scenario('uamqp-service-%s' % args.scenario, args.timeout)
    fn = {'c2d-send': c2d_send, 'feedback': feedback, 'telemetry-read': telemetry_read}[args.scenario]
    sc.run(lambda: fn(sc, args))


if __name__ == '__main__':
    main()
