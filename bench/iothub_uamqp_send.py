#!/usr/bin/python3
"""bench_iothub's uAMQP driver: Python uAMQP 1.5.3 as an IoT Hub device sending telemetry,
as conformance/iothub/uamqp_device.py does (SASL PLAIN, username <device>@sas.<hub>, a SAS
token for <host>/devices/<device> as password, /devices/<device>/messages/events), in its
fastest form: every message queued, then send_all_messages.

    iothub_uamqp_send.py HOST PORT CA HUB_HOSTNAME DEVICE KEY COUNT

Connects (not timed), then times queue + send_all_messages until every outcome is in.
Prints `accepted N`, `failed N` and `seconds S` on stdout; exits 1 if any send failed.
"""

import base64
import hashlib
import hmac
import sys
import time
import urllib.parse

BODY = (b'{"deviceId":"sensor-device-0042","timestamp":"2023-11-14T22:13:20.000Z",'
        b'"temperature":21.53,"humidity":44.20,"pressure":1013.25,"battery":87.5,'
        b'"rssi":-67,"status":"ok","firmware":"1.4.2","seq":123456}')
MESSAGE_ID = '9c2d0f8e-3b5a-4e6f-8a1b-2c3d4e5f6a7b'


def sas_token(uri, key, expiry=3600):
    ttl = int(time.time() + expiry)
    sign_key = '%s\n%d' % (urllib.parse.quote_plus(uri), ttl)
    sig = base64.b64encode(hmac.HMAC(base64.b64decode(key), sign_key.encode('utf-8'),
                                     hashlib.sha256).digest())
    return 'SharedAccessSignature ' + urllib.parse.urlencode({'sr': uri, 'sig': sig,
                                                              'se': str(ttl)})


def main():
    if len(sys.argv) != 8:
        sys.stderr.write(__doc__)
        return 2
    host, port, ca, hub_host, device, key, count = sys.argv[1:]
    count = int(count)
    assert len(BODY) == 200, len(BODY)
    import uamqp
    from uamqp import authentication
    username = '%s@sas.%s' % (device, hub_host.split('.')[0])
    auth = authentication.SASLPlain(host, username,
                                    sas_token('%s/devices/%s' % (hub_host, device), key),
                                    port=int(port), verify=ca)
    uri = 'amqps://%s/devices/%s/messages/events' % (hub_host, device)
    client = uamqp.SendClient(uri, auth=auth)
    client.open()
    while not client.client_ready():
        client.do_work()
    messages = []
    for _ in range(count):
        props = uamqp.message.MessageProperties(message_id=MESSAGE_ID,
                                                content_type='application/json',
                                                content_encoding='utf-8')
        messages.append(uamqp.Message(BODY, properties=props, application_properties={
            'sensorType': 'thermostat', 'building': 'B12-north', 'alert': 'none'}))
    start = time.monotonic()
    for m in messages:
        client.queue_message(m)
    results = client.send_all_messages(close_on_done=False)
    seconds = time.monotonic() - start
    client.close()
    ok = sum(1 for r in results if r == uamqp.constants.MessageState.SendComplete)
    print('accepted %d' % ok)
    print('failed %d' % (len(results) - ok))
    print('seconds %.6f' % seconds)
    return 0 if ok == count else 1


if __name__ == '__main__':
    sys.exit(main())
