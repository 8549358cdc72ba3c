#!/usr/bin/python3
"""Python uAMQP 1.5.3 as an IoT Hub device, following Microsoft's AMQP guide
(articles/iot-hub/iot-hub-amqp-support.md, "Device client"), against iothub-emulator.

    uamqp_device.py STATE --scenario telemetry|batch|c2d [--device ID] [--count N]
                    [--run-id R] [--timeout S]

STATE is the emulator's state dir or its connection-strings.json. SASL PLAIN with username
`<device>@sas.<hub>` and a SAS token for `<host>/devices/<device>` as password, as in the
guide. Changed from the guide only so that it runs on Python 3 against a local endpoint
(the doc's reference §10): urllib.parse instead of urllib, bytes joined with b'', and the
host, port and CA given to a SASLPlain auth object (uAMQP takes them nowhere else) instead
of credentials in the URI.

telemetry  N messages on /devices/<device>/messages/events, each with message-id,
           correlation-id, content-type, content-encoding, user-id and application
           properties (run-id, index, kind); every one must be accepted.
batch      the same N messages in one uamqp.message.BatchMessage (one transfer,
           message-format 0x80013700, one data section per message); it must be accepted.
c2d        receives run R's messages on /devices/<device>/messages/devicebound (sent by
           uamqp_service.py --scenario c2d-send) and settles each as its `action` property
           says: complete = accept, reject = reject, abandon = release, then accept the
           redelivery.
"""

import argparse
import os
import sys
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import iothub_state as hs  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('state')
    p.add_argument('--scenario', choices=('telemetry', 'batch', 'c2d'), default='telemetry')
    p.add_argument('--device')
    p.add_argument('--count', type=int, default=5)
    p.add_argument('--first-index', type=int, default=0,
                   help='index of the first message (ids and the index property follow it)')
    p.add_argument('--run-id', default='')
    p.add_argument('--timeout', type=float, default=60)
    return p.parse_args()


def connect(sc, args):
    import uamqp
    from uamqp import authentication
    st = hs.State(args.state)
    device_id, cs = st.device(args.device)
    hostname = cs['HostName']
    iot_hub_name = hostname.split('.')[0]
    host, port = st.device_dial(device_id)
    hs.preflight(sc, host, port)
    username = '{device_id}@sas.{iot_hub_name}'.format(device_id=device_id,
                                                       iot_hub_name=iot_hub_name)
    sas_token = hs.generate_sas_token('{hostname}/devices/{device_id}'.format(
        hostname=hostname, device_id=device_id), cs['SharedAccessKey'], None)
    auth = authentication.SASLPlain(host, username, sas_token, port=port, verify=st.ca)
    return uamqp, auth, hostname, device_id


def make_message(uamqp, run_id, device_id, i):
    msg_props = uamqp.message.MessageProperties()
    msg_props.message_id = str(uuid.uuid4()) if i == 0 else '%s-u-%d' % (run_id, i)
    msg_props.correlation_id = 'corr-%s-%d' % (run_id, i)
    msg_props.content_type = 'application/json'
    msg_props.content_encoding = 'utf-8'
    msg_props.user_id = device_id.encode()
    application_properties = {'run-id': run_id, 'index': str(i), 'kind': 'uamqp-telemetry'}
    body = ('{"run": "%s", "device": "%s", "index": %d}' % (run_id, device_id, i)).encode()
    return uamqp.Message(body, properties=msg_props, application_properties=application_properties)


def telemetry(sc, args, batch):
    uamqp, auth, hostname, device_id = connect(sc, args)
    run_id = args.run_id or uuid.uuid4().hex[:12]
    operation = '/devices/{device_id}/messages/events'.format(device_id=device_id)
    uri = 'amqps://{}{}'.format(hostname, operation)
    send_client = uamqp.SendClient(uri, auth=auth, debug=bool(os.environ.get('UAMQP_DEBUG')))
    first = args.first_index
    messages = [make_message(uamqp, run_id, device_id, i) for i in range(first, first + args.count)]
    if batch:
        # One transfer: message-format 0x80013700, each message encoded in a data section.
        send_client.queue_message(uamqp.message.BatchMessage(data=messages, multi_messages=False))
    else:
        for m in messages:
            send_client.queue_message(m)
    sc.stage('sending %d messages%s to %s' % (args.count, ' as one batch' if batch else '', uri))
    hs.send_all(uamqp, send_client, 'sends')
    return '%d messages%s accepted for %s (run %s)' % (
        args.count, ' in one batch transfer' if batch else '', device_id, run_id)


def c2d(sc, args):
    if not args.run_id:
        raise hs.Setup('c2d needs --run-id (the one given to uamqp_service.py)')
    uamqp, auth, hostname, device_id = connect(sc, args)
    operation = '/devices/{device_id}/messages/devicebound'.format(device_id=device_id)
    uri = 'amqps://{}{}'.format(hostname, operation)
    receive_client = uamqp.ReceiveClient(uri, auth=auth, auto_complete=False,
                                         debug=bool(os.environ.get('UAMQP_DEBUG')))
    done = {'complete': False, 'reject': False, 'abandon': False}
    seen = {}
    try:
        while not all(done.values()):
            sc.stage('receiving run %s: %s' % (args.run_id, done))
            batch = receive_client.receive_message_batch(max_batch_size=5, timeout=5000)
            for msg in batch:
                props = {hs.text(k): hs.text(v) for k, v in (msg.application_properties or {}).items()}
                mid = hs.text(msg.properties.message_id)
                to = hs.text(msg.properties.to)
                if props.get('run-id') != args.run_id:
                    sc.log('accepting a message of another run: %s' % mid)
                    msg.accept()
                    continue
                action = props.get('action')
                seen[mid] = seen.get(mid, 0) + 1
                sc.log('received %s (action %s, delivery %d, to %s)' % (mid, action, seen[mid], to))
                body = b''.join(msg.get_data())
                if body != ('c2d %s %s' % (action, args.run_id)).encode():
                    raise RuntimeError('message %s: body %r' % (mid, body))
                if action == 'complete' or (action == 'abandon' and seen[mid] > 1):
                    msg.accept()
                    done[action] = True
                elif action == 'reject':
                    msg.reject()
                    done['reject'] = True
                elif action == 'abandon':
                    msg.release()
                else:
                    raise RuntimeError('message %s has no known action: %r' % (mid, props))
    finally:
        receive_client.close()
    return ('run %s: accepted 1, rejected 1, released 1 and accepted its redelivery (%s)'
            % (args.run_id, device_id))


def main():
    args = parse_args()
    sc = hs.Scenario('uamqp-device-%s' % args.scenario, args.timeout)
    if args.scenario == 'c2d':
        sc.run(lambda: c2d(sc, args))
    else:
        sc.run(lambda: telemetry(sc, args, args.scenario == 'batch'))


if __name__ == '__main__':
    main()
