#!/usr/bin/python3
"""Writes the seed inputs of the iothub_* fuzz corpora: fuzz/corpus/<target>/<sha256>.

    fuzz/seeds/make_iothub_seeds.py [--corpus DIR]

Needs Debian's python3-qpid-proton (`import proton`): the AMQP inputs are encoded by Qpid
Proton, so that the corpus holds what a real peer sends (CBS put-token as uAMQP, Node and
.NET send it, $management requests and responses, redirect info maps, selector filter sets,
batches); the C SDK's out-of-order inner batch messages are put together from sections that
Proton encoded. Texts come from ../shared/docs/iothub-amqp.md and the Node SDK.

Input formats (see each target's header comment):
  iothub_text:     1 byte choosing the parser (0 connection string, 1 SAS token, 2 address,
                   3 selector, 4 URL/base64, 5 SASL user and host:port, 6 UTC time), text;
  iothub_messages: 1 byte choosing the reader (0 batch payload, 1 CBS request, 2 CBS
                   response, 3 $management request, 4 $management response, 5 one value:
                   redirect info or filter-set, 6 one message, sections in any order), bytes;
  iothub_feedback: a feedback JSON body.
"""

import argparse
import os
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from make_seeds import write_corpus  # noqa: E402

import proton  # noqa: E402
from proton import Data, Described, Message, symbol, timestamp, ulong  # noqa: E402

KEY = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
NODE_TOKEN = ("SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1"
              "&sig=sqF%2B8Hk3WVvp%2BhgnyXZP2BlsrIbU3s8sZyxXsmWTdR8%3D&se=1700000000")


def texts():
    out = []
    conn = [
        "HostName=myhub.azure-devices.net;DeviceId=device-1;SharedAccessKey=" + KEY,
        "HostName=myhub.azure-devices.net;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + KEY,
        "HostName=localhost:5671;SharedAccessKeyName=iothubowner;SharedAccessKey=" + KEY
        + ";UseDevelopmentEmulator=true",
        "Endpoint=sb://iothub-ns-myhub-1234.servicebus.windows.net/;SharedAccessKeyName=service;"
        "SharedAccessKey=" + KEY + ";EntityPath=myhub",
        "HostName=h;DeviceId=d;x509=true",
        "HostName=h;DeviceId=d;SharedAccessSignature=" + NODE_TOKEN,
        "hostname=h;deviceid=d;GatewayHostName=edge;Custom=a=b;sharedaccesskey=" + KEY,
        "HostName=h;DeviceId=d;SharedAccessKey=" + KEY + ";SharedAccessSignature=" + NODE_TOKEN,
        "HostName=h;;DeviceId",
    ]
    out += [b"\x00" + t.encode() for t in conn]
    tokens = [
        NODE_TOKEN,
        "SharedAccessSignature sr=localhost%3A5671%2Fdevices%2Fdev%2a%28x%29%21"
        "&sig=UmTaFCfV0ewmEdna0qMw8O5VE2e3DASf%2FwciIRYlqzE%3D&se=1700000000",
        "SharedAccessSignature sr=myhub.azure-devices.net"
        "&sig=aPglbI0MqJ0Q4yLWRMsFp4fEjvnFgFgpiX11rSA3UIw%3D&skn=iothubowner&se=1700000000",
        "SharedAccessSignature sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D"
        "&se=1700000000&sr=myhub.azure-devices.net/devices/device-1",
        "SharedAccessSignature sr=sb%3A%2F%2Fns%2Fhub&sig=x&se=1",
    ]
    out += [b"\x01" + t.encode() for t in tokens]
    addresses = [
        "/devices/d1/messages/events", "amqps://myhub.azure-devices.net/devices/d1/messages/devicebound",
        "amqps://localhost:5671/devices/d1/modules/m1/methods/deviceBound", "/devices/d1/twin",
        "/devices/d%2A1/modules/m%231/twin", "/messages/devicebound",
        "amqps://h/messages/servicebound/feedback", "/messages/serviceBound/filenotifications",
        "/messages/events/ConsumerGroups/$Default/Partitions/0", "/messages/events/$management",
        "$cbs", "amqps://[::1]:5671/$management", "myhub/ConsumerGroups/$Default/Partitions/3",
        "sb://ns:5671/myhub/Partitions/1", "myhub/$management", "myhub",
    ]
    out += [b"\x02" + t.encode() for t in addresses]
    selectors = [
        "amqp.annotation.x-opt-offset > '-1'", "amqp.annotation.x-opt-offset > '@latest'",
        "amqp.annotation.x-opt-sequence-number >= '2995'",
        "amqp.annotation.x-opt-enqueued-time > '1700000000000'",
        "amqp.annotation.x-opt-sequence-number > 2995", "amqp.annotation.x-opt-offset = 'a''b'",
    ]
    out += [b"\x03" + t.encode() for t in selectors]
    out += [b"\x04" + t.encode() for t in [KEY, "YQ==", "a%2Fb%2fc+d", "%zz", "AP/+"]]
    out += [b"\x05" + t.encode() for t in ["iothubowner@sas.root.myhub", "d1/modules/m1@sas.myhub",
                                            "d%2A1@sas.h", "localhost:5671", "[::1]:5671"]]
    out += [b"\x06" + t.encode() for t in ["2015-07-28T16:24:48.789Z", "2021-04-21T11:30:16Z",
                                            "2015-07-28T16:24:48.7891234Z", "2000-02-29T00:00:00Z"]]
    return out


def encode(m):
    return m.encode()


def only_section(encoded, code):
    """The one section with descriptor `code` of a Proton-encoded message (Proton also writes
    a header and a properties section)."""
    while encoded:
        d = Data()
        n = d.decode(encoded)
        if encoded[:3] == bytes([0x00, 0x53, code]):
            return encoded[:n]
        encoded = encoded[n:]
    raise ValueError("no section %#x" % code)


def data_section(payload):
    n = len(payload)
    head = b"\xa0" + bytes([n]) if n < 256 else b"\xb0" + n.to_bytes(4, "big")
    return b"\x00\x53\x75" + head + payload


def encode_value(v):
    d = Data()
    d.put_object(v)
    return d.encode()


def amqp_inputs():
    out = []
    # CBS put-token: uAMQP (ulong id from 0, no reply-to), Node (string id, to, reply-to),
    # .NET (azure-devices.net type, expiration).
    def cbs(mid, typ="servicebus.windows.net:sastoken", **kw):
        m = Message(id=mid, body=NODE_TOKEN, **kw)
        m.properties = {"operation": "put-token", "type": typ,
                        "name": "myhub.azure-devices.net/devices/device-1"}
        return m
    out.append(b"\x01" + encode(cbs(ulong(0))))
    out.append(b"\x01" + encode(cbs("2f6c1a0e-1b2c-4d3e-8f90-a1b2c3d4e5f6", address="$cbs",
                                    reply_to="cbs")))
    dotnet = cbs(uuid.UUID("2f6c1a0e-1b2c-4d3e-8f90-a1b2c3d4e5f6"), "azure-devices.net:sastoken")
    dotnet.properties["expiration"] = timestamp(1700000000000)
    out.append(b"\x01" + encode(dotnet))
    # CBS responses.
    for code in (proton.int32(200), proton.ubyte(200), 401):
        r = Message(correlation_id=ulong(0), body=None)
        r.properties = {"status-code": code, "status-description": "OK"}
        out.append(b"\x02" + encode(r))
    # $management READ requests.
    for props in ({"operation": "READ", "type": "com.microsoft:eventhub", "name": "myhub"},
                  {"operation": "READ", "type": "com.microsoft:partition", "name": "myhub",
                   "partition": "0", "security_token": NODE_TOKEN}):
        m = Message(id="mgmt-1", reply_to="reply", body=None)
        m.properties = props
        out.append(b"\x03" + encode(m))
    # $management responses.
    eh = {"name": "myhub", "type": "com.microsoft:eventhub", "created_at": timestamp(1600000000000),
          "partition_count": proton.int32(2),
          "partition_ids": proton.Array(proton.UNDESCRIBED, proton.Data.STRING, "0", "1")}
    part = {"name": "myhub", "type": "com.microsoft:partition", "partition": "1",
            "begin_sequence_number": 0, "last_enqueued_sequence_number": 41,
            "last_enqueued_offset": "8192", "last_enqueued_time_utc": timestamp(1700000000000),
            "is_partition_empty": False}
    for body in (eh, part):
        m = Message(correlation_id="mgmt-1", body=body)
        m.properties = {"status-code": proton.int32(200), "status-description": "OK"}
        out.append(b"\x04" + encode(m))
    # Redirect info (TRACE iothub-explorer#57) and filter-sets with both descriptors.
    host = "iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net"
    out.append(b"\x05" + encode_value({symbol("hostname"): host, symbol("network-host"): host,
                                       symbol("port"): proton.int32(5671),
                                       symbol("address"): "amqps://" + host + ":5671/smartiot/$management",
                                       symbol("com.microsoft:tracking-id"): "4ad4e1e1-G:1"}))
    sel = "amqp.annotation.x-opt-offset > '-1'"
    out.append(b"\x05" + encode_value({symbol("apache.org:selector-filter:string"):
                                       Described(ulong(0x0000468C00000004), sel)}))
    out.append(b"\x05" + encode_value({symbol("apache.org:selector-filter:string"):
                                       Described(symbol("apache.org:selector-filter:string"),
                                                 "amqp.annotation.x-opt-sequence-number >= '5'")}))
    # Batches: inner messages in spec order and in the C SDK's order (properties,
    # application-properties, message-annotations, data).
    def telemetry(n):
        m = Message(id="msg-%d" % n, content_type="application/json", body=b'{"t":21}')
        m.inferred = True
        m.properties = {"iothub-creation-time-utc": "2021-04-21T11:30:16Z"}
        return m
    props = encode(Message(id="msg-c", content_type="application/json"))
    app = Message()
    app.properties = {"temperature": "21"}
    ann = Message()
    ann.annotations = {symbol("iothub-interface-id"): "urn:azureiot:Security:SecurityAgent:1"}
    data = Message(body=b'{"t":21}')
    data.inferred = True
    c_order = (only_section(props, 0x73) + only_section(encode(app), 0x74)
               + only_section(encode(ann), 0x72) + only_section(encode(data), 0x75))
    envelope = b"".join(data_section(encode(telemetry(k))) for k in range(3))
    out.append(b"\x00" + envelope)
    out.append(b"\x00" + data_section(c_order) + data_section(encode(telemetry(9))))
    fault = Message()
    fault.properties = {"AzIoTHub_FaultOperationType": "KillAmqpD2CLink"}
    out.append(b"\x00" + encode(fault) + data_section(encode(telemetry(1))))
    out.append(b"\x06" + c_order)
    out.append(b"\x06" + encode(telemetry(2)))
    return out


def feedback():
    return [s.encode() for s in [
        '[{"originalMessageId":"0987654321","enqueuedTimeUtc":"2015-07-28T16:24:48.789Z",'
        '"statusCode":"Success","description":"Success","deviceId":"123",'
        '"deviceGenerationId":"abcdefghijklmnopqrstuvwxyz"}]',
        '[{"originalMessageId":null,"deviceGenerationId":"636","deviceId":"d1",'
        '"enqueuedTimeUtc":"2015-07-28T16:24:48.7891234Z","statusCode":"DeliveryCountExceeded",'
        '"description":"DeliveryCountExceeded","extra":{"a":[1,2]}},'
        '{"deviceId":"d2","enqueuedTimeUtc":"2000-02-29T00:00:00Z","statusCode":"Purged"}]',
        '[]',
        '[{"deviceId":7}]',
    ]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(HERE), "corpus"))
    args = ap.parse_args()
    write_corpus(args.corpus, "iothub_text", texts())
    write_corpus(args.corpus, "iothub_messages", amqp_inputs())
    write_corpus(args.corpus, "iothub_feedback", feedback())


if __name__ == "__main__":
    main()
