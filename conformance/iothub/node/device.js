'use strict';
// The device SDK (azure-iot-device + azure-iot-device-amqp) against iothub-emulator.
//
//   node device.js STATE --scenario telemetry [--transport amqp|amqpws] [--device ID]
//                        [--count N] [--run-id R] [--timeout S]
//   node device.js STATE --scenario c2d [--transport amqp|amqpws] [--device ID] --run-id R
//                        [--check-ids]
//
// STATE is the emulator's state dir or its connection-strings.json.
// telemetry: N messages, each with messageId, correlationId, contentType, contentEncoding and
//   custom properties (run-id, index, kind); the first messageId is a UUID, which the SDK
//   sends as an AMQP uuid. Passes when every sendEvent reports MessageEnqueued.
// c2d: receives the messages service.js sends for run R, each naming what to do in its
//   `action` property: complete, reject, or abandon (the hub must deliver it again; the
//   redelivery is then completed). Passes when all three were settled that way.
//   --check-ids: each message's messageId must also be `R-<action>` and its correlationId
//   `corr-R-<action>` (for senders other than service.js, e.g. our iothub-cli c2d send).
// amqpws dials wss://<GatewayHostName or HostName without port>:443/$iothub/websocket (the
// SDK's port is fixed): the emulator's WSS listener must be on 443.

const crypto = require('crypto');
const c = require('./common');

c.setUsage('usage: node device.js STATE --scenario telemetry|c2d [--transport amqp|amqpws] ' +
           '[--device ID] [--count N] [--run-id R] [--check-ids] [--timeout S]');
const args = c.parseArgs(process.argv.slice(2), {
  scenario: 'telemetry', transport: 'amqp', device: '', count: 5, 'run-id': '', timeout: 60,
  'check-ids': false,
});
if (!['telemetry', 'c2d'].includes(args.scenario)) {
  c.usage(`unknown scenario ${args.scenario}`);
}
if (!['amqp', 'amqpws'].includes(args.transport)) {
  c.usage(`unknown transport ${args.transport}`);
}
const state = c.loadState(args._[0]);
const deviceId = args.device || Object.keys(state.devices)[0];
const runId = args['run-id'] || c.runId();

// The device connection string, made to dial the emulator over WebSockets on 443 (the SDK
// builds wss://HOST:443/..., so HOST must not carry a port).
function deviceConnectionString() {
  const cs = state.devices[deviceId];
  if (!cs) {
    c.usage(`device ${deviceId} is not in ${state.file}`);
  }
  if (args.transport !== 'amqpws') {
    return cs;
  }
  return cs.split(';').map((part) => {
    const m = /^(GatewayHostName|HostName)=([^:]+):\d+$/.exec(part);
    return m ? `${m[1]}=${m[2]}` : part;
  }).join(';');
}

async function checkListening() {
  const [host, port] = c.dialTarget(deviceConnectionString(), 5671);
  await c.preflight(host, args.transport === 'amqpws' ? 443 : port);
}

function openClient() {
  const { Client } = require('azure-iot-device');
  const { Amqp, AmqpWs } = require('azure-iot-device-amqp');
  const fs = require('fs');
  const client = Client.fromConnectionString(deviceConnectionString(),
                                             args.transport === 'amqpws' ? AmqpWs : Amqp);
  client.setOptions({ ca: fs.readFileSync(state.ca, 'utf8') });
  client.on('error', (err) => c.log(`client error: ${c.errorText(err)}`));
  client.on('disconnect', (err) => c.log(`client disconnect: ${c.errorText(err)}`));
  return client;
}

function promisify(fn) {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

async function telemetry() {
  const { Message } = require('azure-iot-device');
  await checkListening();
  const client = openClient();
  c.stage(`opening ${deviceId} over ${args.transport}`);
  await promisify((cb) => client.open(cb));
  for (let i = 0; i < args.count; i++) {
    const m = new Message(JSON.stringify({ run: runId, index: i, device: deviceId }));
    m.messageId = i === 0 ? crypto.randomUUID() : `${runId}-${i}`;
    m.correlationId = `corr-${runId}-${i}`;
    m.contentType = 'application/json';
    m.contentEncoding = 'utf-8';
    m.properties.add('run-id', runId);
    m.properties.add('index', String(i));
    m.properties.add('kind', 'telemetry');
    c.stage(`sending message ${i + 1}/${args.count} (${m.messageId})`);
    const r = await promisify((cb) => client.sendEvent(m, cb));
    const kind = r && r.constructor && r.constructor.name;
    if (kind !== 'MessageEnqueued') {
      throw new Error(`sendEvent ${i} answered ${kind}, expected MessageEnqueued`);
    }
  }
  c.stage('closing');
  await promisify((cb) => client.close(cb));
  return `${args.count} messages enqueued by ${deviceId} over ${args.transport} (run ${runId})`;
}

async function c2d() {
  if (!args['run-id']) {
    c.usage('c2d needs --run-id (the one given to service.js)');
  }
  await checkListening();
  const client = openClient();
  const done = { complete: false, reject: false, abandon: false };
  const seen = {};
  let problem = null;
  let notify = () => {};
  // One settlement per event-loop turn: rhea (1.0.24 here, 3.0.5 too) writes the
  // dispositions of one turn as ranges and gives a range the first delivery's outcome when
  // only two are in it (write_dispositions), so an abandon and a reject made together reach
  // the hub as two releases (docs/iothub-sdk-behaviour.md).
  let chain = Promise.resolve();
  const settle = (verb, msg) => {
    const p = chain.then(() => promisify((cb) => client[verb](msg, cb)));
    chain = p.catch(() => {}).then(() => new Promise((resolve) => setImmediate(resolve)));
    return p;
  };
  client.on('message', (msg) => {
    const props = {};
    for (let i = 0; i < msg.properties.count(); i++) {
      const p = msg.properties.getItem(i);
      props[p.key] = p.value;
    }
    const id = c.idText(msg.messageId);
    if (props['run-id'] !== runId) {
      c.log(`completing a message of another run: ${id}`);
      settle('complete', msg).catch(() => {});
      return;
    }
    const action = props.action;
    seen[id] = (seen[id] || 0) + 1;
    c.log(`received ${id} (action ${action}, delivery ${seen[id]})`);
    let verb = action;
    if (action === 'abandon' && seen[id] > 1) {
      verb = 'complete'; // the redelivery of the abandoned message
    }
    if (!['complete', 'reject', 'abandon'].includes(verb)) {
      problem = `message ${id} has no known action: ${JSON.stringify(props)}`;
      notify();
      return;
    }
    if (msg.data === undefined || String(msg.data) !== `c2d ${action} ${runId}`) {
      problem = `message ${id}: body ${JSON.stringify(String(msg.data))}, ` +
                `expected "c2d ${action} ${runId}" (the hub must deliver it as a data section)`;
    }
    if (args['check-ids'] && (id !== `${runId}-${action}` ||
                              c.idText(msg.correlationId) !== `corr-${runId}-${action}`)) {
      problem = `message ${id}: messageId/correlationId ${id}/${c.idText(msg.correlationId)}, ` +
                `expected ${runId}-${action}/corr-${runId}-${action}`;
    }
    settle(verb, msg).then((r) => {
      c.log(`${verb} ${id}: ${r && r.constructor && r.constructor.name}`);
      if (action === 'abandon') {
        done.abandon = seen[id] > 1;
      } else {
        done[action] = true;
      }
      notify();
    }, (err) => {
      problem = `${verb} ${id}: ${c.errorText(err)}`;
      notify();
    });
  });
  c.stage(`opening ${deviceId} over ${args.transport}, waiting for run ${runId}'s messages`);
  await promisify((cb) => client.open(cb));
  await new Promise((resolve) => {
    notify = () => {
      if (problem || (done.complete && done.reject && done.abandon)) {
        resolve();
      }
      c.stage(`waiting: completed ${done.complete}, rejected ${done.reject}, abandoned and ` +
              `redelivered ${done.abandon}`);
    };
    notify();
  });
  if (problem) {
    throw new Error(problem);
  }
  c.stage('closing');
  await promisify((cb) => client.close(cb));
  return `run ${runId}: completed 1, rejected 1, abandoned 1 and completed its redelivery ` +
         `(${deviceId} over ${args.transport}${args['check-ids'] ? ', ids checked' : ''})`;
}

if (c.ensureCa(state.ca)) {
  c.run(`device-${args.transport}-${args.scenario}`, args.timeout,
        args.scenario === 'telemetry' ? telemetry : c2d);
}
