'use strict';
// bench_iothub's Node drivers (run with NODE_PATH=conformance/iothub/node/node_modules and
// NODE_EXTRA_CA_CERTS=<the emulator's CA>):
//
//   node iothub_node.js device_send DEVICE_CONNECTION_STRING CA COUNT WINDOW
//     azure-iot-device over Amqp (azure-iot-device-amqp): opens the client (not timed), then
//     COUNT sendEvent calls with up to WINDOW in flight, timed until every callback is in.
//   node iothub_node.js monitor EVENTHUB_CONNECTION_STRING COUNT
//     @azure/event-hubs EventHubConsumerClient: reads the partition ids (connects; not
//     timed), then subscribes to every partition from the earliest event and counts COUNT
//     events, timed from the subscribe.
//
// Prints `accepted N`, `failed N` (device_send) or `events N` (monitor), and `seconds S`
// on stdout; exits 1 on failure.

const fs = require('fs');

const BODY = '{"deviceId":"sensor-device-0042","timestamp":"2023-11-14T22:13:20.000Z",' +
  '"temperature":21.53,"humidity":44.20,"pressure":1013.25,"battery":87.5,' +
  '"rssi":-67,"status":"ok","firmware":"1.4.2","seq":123456}';
const MESSAGE_ID = '9c2d0f8e-3b5a-4e6f-8a1b-2c3d4e5f6a7b';

function die(what) {
  process.stderr.write(`iothub_node.js: ${what}\n`);
  process.exit(1);
}

function deviceSend(cs, ca, count, window) {
  const { Client, Message } = require('azure-iot-device');
  const { Amqp } = require('azure-iot-device-amqp');
  const client = Client.fromConnectionString(cs, Amqp);
  client.setOptions({ ca: fs.readFileSync(ca, 'utf8') });
  client.on('error', (err) => die(`client error: ${err && err.message}`));
  const messages = [];
  for (let i = 0; i < count; i++) {
    const m = new Message(BODY);
    m.messageId = MESSAGE_ID;
    m.contentType = 'application/json';
    m.contentEncoding = 'utf-8';
    m.properties.add('sensorType', 'thermostat');
    m.properties.add('building', 'B12-north');
    m.properties.add('alert', 'none');
    messages.push(m);
  }
  client.open((err) => {
    if (err) {
      die(`open: ${err.message}`);
    }
    let next = 0;
    let done = 0;
    let accepted = 0;
    let failed = 0;
    const start = process.hrtime.bigint();
    const sendOne = () => {
      const m = messages[next++];
      client.sendEvent(m, (e, res) => {
        ++done;
        if (!e && res && res.constructor && res.constructor.name === 'MessageEnqueued') {
          ++accepted;
        } else {
          ++failed;
        }
        if (next < count) {
          sendOne();
        } else if (done === count) {
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          process.stdout.write(`accepted ${accepted}\nfailed ${failed}\nseconds ${seconds}\n`);
          client.close(() => process.exit(failed === 0 ? 0 : 1));
        }
      });
    };
    for (let i = 0; i < Math.min(window, count); i++) {
      sendOne();
    }
  });
}

async function monitor(ehcs, count) {
  const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');
  const consumer = new EventHubConsumerClient('$Default', ehcs);
  const ids = await consumer.getPartitionIds();
  let seen = 0;
  let finished = false;
  const start = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    consumer.subscribe({
      processEvents: async (events) => {
        seen += events.length;
        if (seen >= count && !finished) {
          finished = true;
          resolve();
        }
      },
      processError: async (err) => reject(err),
    }, { startPosition: earliestEventPosition, maxBatchSize: 300, maxWaitTimeInSeconds: 1 });
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(`events ${seen}\npartitions ${ids.length}\nseconds ${seconds}\n`);
  await consumer.close();
  process.exit(0);
}

const [mode, ...rest] = process.argv.slice(2);
setTimeout(() => die('timed out after 300 s'), 300 * 1000).unref();
if (mode === 'device_send' && rest.length === 4) {
  deviceSend(rest[0], rest[1], Number(rest[2]), Number(rest[3]));
} else if (mode === 'monitor' && rest.length === 2) {
  monitor(rest[0], Number(rest[1])).catch((e) => die(`monitor: ${e && e.message}`));
} else {
  die('usage: iothub_node.js device_send CS CA COUNT WINDOW | monitor EHCS COUNT');
}
