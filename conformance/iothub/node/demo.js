'use strict';
// `./dev demo` part 4: the official Azure SDKs against iothub-emulator, printed for people.
//
//   node demo.js STATE [--device ID]
//
// 1. azure-iot-device (Amqp) sends three telemetry messages with properties;
// 2. azure-iothub sends a C2D message with ack "full"; the device receives and completes it;
//    the service's feedback receiver gets the Success record;
// 3. the telemetry is read back through the redirect: a receiver on the IoT Hub's
//    /messages/events/$management gets amqp:link:redirect (as Azure's sample does), and
//    @azure/event-hubs reads every partition from the start on the address it names.
// Exits 0 when all of it happened, 1 otherwise (the reason on stderr).

const fs = require('fs');
const crypto = require('crypto');
const c = require('./common');

c.setUsage('usage: node demo.js STATE [--device ID]');
const args = c.parseArgs(process.argv.slice(2), { device: '', timeout: 90 });
const state = c.loadState(args._[0]);
const deviceId = args.device || Object.keys(state.devices)[0];
const STEP_MS = 30000;

function say(s) {
  process.stdout.write(`${s}\n`);
}

function promisify(fn) {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

function sasToken(resource, key, policy, minutes) {
  const sr = encodeURIComponent(resource);
  const se = Math.round(Date.now() / 1000) + minutes * 60;
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64'))
    .update(`${sr}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${policy}`;
}

async function telemetry(device) {
  const { Message } = require('azure-iot-device');
  for (let i = 1; i <= 3; i++) {
    const m = new Message(JSON.stringify({ temperature: 20 + i, humidity: 60 - i }));
    m.messageId = `demo-${i}`;
    m.contentType = 'application/json';
    m.contentEncoding = 'utf-8';
    m.properties.add('alert', i === 3 ? 'high' : 'none');
    const r = await c.within(STEP_MS, 'telemetry outcome', promisify((cb) => device.sendEvent(m, cb)));
    say(`  device ${deviceId} sent ${m.messageId} ${m.data} {alert: ${i === 3 ? 'high' : 'none'}}: ` +
        `${r.constructor.name}`);
  }
}

async function c2dRoundTrip(device) {
  const { Client } = require('azure-iothub');
  const { Message } = require('azure-iot-common');
  const service = Client.fromConnectionString(state.service);
  await promisify((cb) => service.open(cb));
  const feedback = await promisify((cb) => service.getFeedbackReceiver(cb));
  const gotFeedback = new Promise((resolve) => {
    feedback.on('message', (msg) => {
      const records = JSON.parse(msg.data.toString());
      feedback.complete(msg, () => {});
      resolve(records);
    });
  });
  const received = new Promise((resolve, reject) => {
    device.on('message', (msg) => {
      say(`  device ${deviceId} received C2D ${msg.messageId}: ${msg.data} ` +
          `(ack ${msg.ack}); completing it`);
      device.complete(msg, (err) => (err ? reject(err) : resolve()));
    });
  });
  const m = new Message('turn the fan on');
  m.messageId = 'demo-c2d-1';
  m.ack = 'full';
  const r = await c.within(STEP_MS, 'C2D send outcome',
                           promisify((cb) => service.send(deviceId, m, cb)));
  say(`  service sent C2D ${m.messageId} to ${deviceId}: ${r.constructor.name}`);
  await c.within(STEP_MS, 'the C2D message at the device', received);
  const records = await c.within(STEP_MS, 'the feedback record', gotFeedback);
  for (const rec of records) {
    say(`  service feedback: ${rec.originalMessageId} ${rec.statusCode} (${rec.description}) ` +
        `from ${rec.deviceId} at ${rec.enqueuedTimeUtc}`);
  }
  await promisify((cb) => service.close(cb));
}

// Azure's sample convertIotHubToEventHubsConnectionString: a receiver on the IoT Hub address
// is detached with amqp:link:redirect, whose info names the Event Hubs-compatible endpoint.
async function redirect() {
  const { Connection, isAmqpError } = require('rhea-promise');
  const { HostName, SharedAccessKeyName, SharedAccessKey } = c.parseConnectionString(state.service);
  const [host, port] = c.hostPort(HostName, 5671);
  const connection = new Connection({
    transport: 'tls', host, hostname: host, port, reconnect: false,
    username: `${SharedAccessKeyName}@sas.root.${state.hubName}`,
    password: sasToken(`${HostName}/messages/events`, SharedAccessKey, SharedAccessKeyName, 5),
    ca: fs.readFileSync(state.ca),
  });
  await connection.open();
  try {
    return await c.within(STEP_MS, 'amqp:link:redirect', new Promise((resolve, reject) => {
      const onError = (error) => {
        if (isAmqpError(error) && error.condition === 'amqp:link:redirect') {
          say(`  amqp:link:redirect: ${JSON.stringify(error.info)}`);
          const ehPort = error.info.port ? `:${error.info.port}` : '';
          resolve(`Endpoint=sb://${error.info.hostname}${ehPort}/;EntityPath=${state.hubName};` +
                  `SharedAccessKeyName=${SharedAccessKeyName};SharedAccessKey=${SharedAccessKey}`);
        } else {
          reject(new Error(`expected amqp:link:redirect, got ${c.errorText(error)}`));
        }
      };
      say(`  attaching amqps://${HostName}/messages/events/$management (SASL PLAIN)`);
      connection.createReceiver({
        source: { address: `amqps://${HostName}/messages/events/$management` },
        onMessage: () => {},
        onError: (context) => onError(context.receiver && context.receiver.error),
      }).catch(onError);
    }));
  } finally {
    connection.close().catch(() => {});
  }
}

async function readBack(ehcs) {
  const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');
  const consumer = new EventHubConsumerClient('$Default', ehcs);
  const ids = await consumer.getPartitionIds();
  say(`  @azure/event-hubs: ${ids.length} partitions; reading each from the start`);
  const events = [];
  let subscription;
  await c.within(STEP_MS, 'the three events', new Promise((resolve) => {
    subscription = consumer.subscribe({
      processEvents: async (batch, ctx) => {
        for (const e of batch) {
          if (String(e.messageId).startsWith('demo-')) {
            events.push([ctx.partitionId, e]);
          }
        }
        if (events.length >= 3) {
          resolve();
        }
      },
      processError: async () => {},
    }, { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 });
  }));
  await subscription.close();
  await consumer.close();
  events.sort((a, b) => String(a[1].messageId).localeCompare(String(b[1].messageId)));
  for (const [p, e] of events) {
    const sp = e.systemProperties || {};
    say(`  partition ${p} #${e.sequenceNumber} offset ${e.offset} ${e.messageId} ` +
        `${JSON.stringify(e.body)} properties ${JSON.stringify(e.properties)}`);
    say(`      annotations: iothub-connection-device-id=${sp['iothub-connection-device-id']} ` +
        `iothub-connection-auth-method=${sp['iothub-connection-auth-method']} ` +
        `iothub-enqueuedtime=${new Date(sp['iothub-enqueuedtime']).toISOString()} ` +
        `x-opt-enqueued-time=${e.enqueuedTimeUtc.toISOString()}`);
  }
}

async function main() {
  const { Client } = require('azure-iot-device');
  const { Amqp } = require('azure-iot-device-amqp');
  const device = Client.fromConnectionString(state.devices[deviceId], Amqp);
  device.setOptions({ ca: fs.readFileSync(state.ca, 'utf8') });
  say(`azure-iot-device (AMQPS, CBS put-token): ${deviceId}`);
  await c.within(STEP_MS, 'device open', promisify((cb) => device.open(cb)));
  await telemetry(device);
  say('azure-iothub: cloud-to-device with ack "full", and its feedback');
  await c2dRoundTrip(device);
  await promisify((cb) => device.close(cb));
  say('the telemetry read back through the redirect');
  const ehcs = await redirect();
  await readBack(ehcs);
}

if (c.ensureCa(state.ca)) {
  setTimeout(() => {
    process.stderr.write(`demo failed: timed out after ${args.timeout} s\n`);
    process.exit(1);
  }, args.timeout * 1000).unref();
  main().then(() => process.exit(0)).catch((err) => {
    process.stderr.write(`demo failed: ${c.errorText(err)}\n`);
    process.exit(1);
  });
}
