'use strict';
// @azure/event-hubs (EventHubConsumerClient) on the emulator's built-in Event Hub-compatible
// endpoint.
//
//   node eventhubs.js STATE [--connection eventhub|redirect|redirect-ws] [--partitions N]
//                     [--per-device K] [--run-id R] [--timeout S]
//   node eventhubs.js STATE --scenario read --run-id R --expect JSON [--connection ...]
//
// --scenario read: sends nothing; reads every partition from the earliest event until it has
// found the `count` events whose application property run-id is R (sent by another client,
// e.g. our iothub-cli), and checks each against --expect, a JSON object
//   {"count": N, "device": ID, "messageId": S, "correlationId": S, "contentType": S,
//    "contentEncoding": S, "properties": {K: V, ...}, "body": TEXT}
// every field compared exactly: the application properties as a whole (no key more or
// less), the body as the bytes of one data section (not parsed as JSON), the device as the
// hub's iothub-connection-device-id annotation.
//
// --connection eventhub      the "eventhub" connection string of connection-strings.json
// --connection redirect      the one Azure's sample iothubConnectionString.ts derives from the
//                            IoT Hub service connection string: SASL PLAIN
//                            `<policy>@sas.root.<hub>`, a token for `<HostName>/messages/events`,
//                            a receiver on `amqps://<HostName>/messages/events/$management`,
//                            and the `amqp:link:redirect` detach's info (hostname, address)
// --connection redirect-ws   the same over wss://<host>:443/$servicebus/websocket
//                            (iothubConnectionStringWebsockets.ts; needs the WSS listener on 443)
// Ported with two changes, both needed only because the emulator is not on Azure: the hub
// name is the first label of connection-strings.json's "hostname" (the service connection
// string's HostName is localhost:PORT), and the Event Hubs endpoint keeps the redirect's
// `port` (the samples drop it and so dial 5671). The emulator's CA comes from
// NODE_EXTRA_CA_CERTS.
//
// Then: $management (getEventHubProperties, getPartitionIds, getPartitionProperties of
// every partition); K telemetry messages from every device of connection-strings.json (the
// device SDK over AMQP), tagged with run id R; every partition read from the earliest event
// until all of R's messages are found, their properties checked; then, in each partition
// holding R's messages, the first event from a sequence number, an offset (each exclusive
// and inclusive) and an enqueued time must be the expected one; finally every partition
// from the latest position must deliver only events sent after it was opened.

const crypto = require('crypto');
const fs = require('fs');
const c = require('./common');

c.setUsage('usage: node eventhubs.js STATE [--scenario full|read] ' +
           '[--connection eventhub|redirect|redirect-ws] [--partitions N] [--per-device K] ' +
           '[--run-id R] [--expect JSON] [--timeout S]');
const args = c.parseArgs(process.argv.slice(2), {
  scenario: 'full', connection: 'eventhub', partitions: 0, 'per-device': 2, 'run-id': '',
  expect: '', timeout: 120,
});
if (!['full', 'read'].includes(args.scenario)) {
  c.usage(`unknown --scenario ${args.scenario}`);
}
let expected = null;
if (args.scenario === 'read') {
  if (!args['run-id'] || !args.expect) {
    c.usage('--scenario read needs --run-id and --expect');
  }
  try {
    expected = JSON.parse(args.expect);
  } catch (e) {
    c.usage(`--expect is not JSON: ${e.message}`);
  }
  if (!(expected.count > 0)) {
    c.usage('--expect needs "count" > 0');
  }
}
if (!['eventhub', 'redirect', 'redirect-ws'].includes(args.connection)) {
  c.usage(`unknown --connection ${args.connection}`);
}
const state = c.loadState(args._[0]);
const runId = args['run-id'] || c.runId();
const STEP_MS = 30000; // bound of each single await below (the watchdog bounds the whole)

// Azure's sample's generateSasToken, unchanged.
function generateSasToken(resourceUri, signingKey, policyName, expiresInMins) {
  resourceUri = encodeURIComponent(resourceUri);
  const expiresInSeconds = Math.ceil(Date.now() / 1000 + expiresInMins * 60);
  const toSign = resourceUri + '\n' + expiresInSeconds;
  const hmac = crypto.createHmac('sha256', Buffer.from(signingKey, 'base64'));
  hmac.update(toSign);
  const base64UriEncoded = encodeURIComponent(hmac.digest('base64'));
  return `SharedAccessSignature sr=${resourceUri}&sig=${base64UriEncoded}&se=${expiresInSeconds}&skn=${policyName}`;
}

// Azure's sample's convertIotHubToEventHubsConnectionString, ported (see the header).
async function redirectConnectionString(overWebSockets) {
  const { Connection, isAmqpError } = require('rhea-promise');
  const { HostName, SharedAccessKeyName, SharedAccessKey } =
    c.parseConnectionString(state.service);
  if (!HostName || !SharedAccessKey || !SharedAccessKeyName) {
    throw new Error('Invalid IotHub connection string.');
  }
  const iotHubName = state.hubName;
  const token = generateSasToken(`${HostName}/messages/events`, SharedAccessKey,
                                 SharedAccessKeyName, 5);
  const [host, port] = c.hostPort(HostName, 5671);
  const options = {
    transport: 'tls',
    host,
    hostname: host,
    username: `${SharedAccessKeyName}@sas.root.${iotHubName}`,
    port,
    reconnect: false,
    password: token,
    ca: fs.readFileSync(state.ca),
  };
  if (overWebSockets) {
    options.port = 443;
    options.webSocketOptions = {
      webSocket: require('ws'),
      protocol: ['AMQPWSB10'],
      url: `wss://${host}:443/$servicebus/websocket`,
    };
  }
  const connection = new Connection(options);
  c.stage(`redirect: connecting to ${overWebSockets ? options.webSocketOptions.url : `${host}:${port}`}`);
  await connection.open();
  try {
    return await c.within(STEP_MS, 'amqp:link:redirect detach', new Promise((resolve, reject) => {
      const onError = (error) => {
        if (isAmqpError(error) && error.condition === 'amqp:link:redirect' && error.info) {
          const hostname = error.info.hostname;
          const iotAddress = error.info.address;
          const regex = /:\d+\/(.*)\/\$management/i;
          const regexResults = regex.exec(iotAddress);
          if (!hostname || (!overWebSockets && !regexResults)) {
            reject(new Error(`redirect info lacks hostname or address: ${JSON.stringify(error.info)}`));
            return;
          }
          const eventHubName = overWebSockets ? iotHubName : regexResults[1];
          const ehPort = error.info.port ? `:${error.info.port}` : '';
          c.log(`redirected: ${JSON.stringify(error.info)}`);
          resolve(`Endpoint=sb://${hostname}${ehPort}/;EntityPath=${eventHubName};` +
                  `SharedAccessKeyName=${SharedAccessKeyName};SharedAccessKey=${SharedAccessKey}`);
        } else {
          reject(new Error(`expected an amqp:link:redirect error, got ${c.errorText(error)}`));
        }
      };
      c.stage(`redirect: attaching amqps://${HostName}/messages/events/$management`);
      // The handlers go in the options, so that a detach arriving with the attach is not lost.
      connection.createReceiver({
        source: { address: `amqps://${HostName}/messages/events/$management` },
        onMessage: () => {}, // rhea-promise wants one with onError; no message is expected
        onError: (context) => onError(context.receiver && context.receiver.error),
        onClose: (context) => {
          if (context.receiver && !context.receiver.error) {
            reject(new Error('the receiver was detached without an error (expected amqp:link:redirect)'));
          }
        },
      }).catch(onError);
    }));
  } finally {
    connection.close().catch(() => {});
  }
}

function promisify(fn) {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

// One device SDK client per device, kept open for the probes of the "latest" check.
async function openDevices() {
  const { Client } = require('azure-iot-device');
  const { Amqp } = require('azure-iot-device-amqp');
  const ca = fs.readFileSync(state.ca, 'utf8');
  const devices = {};
  for (const [id, cs] of Object.entries(state.devices)) {
    c.stage(`opening device ${id}`);
    const client = Client.fromConnectionString(cs, Amqp);
    client.setOptions({ ca });
    client.on('error', (err) => c.log(`device ${id} error: ${c.errorText(err)}`));
    await promisify((cb) => client.open(cb));
    devices[id] = client;
  }
  return devices;
}

async function sendTelemetry(client, deviceId, tag, index, messageId) {
  const { Message } = require('azure-iot-device');
  const m = new Message(JSON.stringify({ run: tag, device: deviceId, index }));
  m.messageId = messageId;
  m.correlationId = `corr-${messageId}`;
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  m.properties.add('run-id', tag);
  m.properties.add('index', String(index));
  const r = await promisify((cb) => client.sendEvent(m, cb));
  if (!r || r.constructor.name !== 'MessageEnqueued') {
    throw new Error(`sendEvent ${messageId} answered ${r && r.constructor.name}`);
  }
}

function describe(ev) {
  return `seq ${ev.sequenceNumber} offset ${JSON.stringify(ev.offset)} ` +
         `enqueued ${ev.enqueuedTimeUtc && ev.enqueuedTimeUtc.getTime()} id ${c.idText(ev.messageId)}`;
}

// The first event `consumer` delivers from `position` on `partition`.
async function firstEvent(consumer, partition, position) {
  let sub;
  try {
    return await c.within(STEP_MS, `event on partition ${partition} from ${JSON.stringify(position)}`,
                          new Promise((resolve, reject) => {
      sub = consumer.subscribe(partition, {
        processEvents: async (events) => {
          if (events.length) {
            resolve(events[0]);
          }
        },
        processError: async (err) => reject(err),
      }, { startPosition: position, maxBatchSize: 1, maxWaitTimeInSeconds: 5 });
    }));
  } finally {
    if (sub) {
      await sub.close();
    }
  }
}

function checkOurEvent(ev, sent, problems) {
  const want = sent.get(c.idText(ev.messageId));
  const where = `event ${c.idText(ev.messageId)}`;
  const raw = ev.getRawAmqpMessage();
  const sys = ev.systemProperties || {};
  const checks = [
    ['body', JSON.stringify(ev.body), JSON.stringify({ run: runId, device: want.device, index: want.index })],
    ['correlationId', c.idText(ev.correlationId), `corr-${want.messageId}`],
    ['contentType', ev.contentType, 'application/json'],
    ['content-encoding', raw.properties && raw.properties.contentEncoding, 'utf-8'],
    ['property run-id', ev.properties && ev.properties['run-id'], runId],
    ['property index', ev.properties && ev.properties.index, String(want.index)],
    ['iothub-connection-device-id', sys['iothub-connection-device-id'], want.device],
    ['sequenceNumber type', typeof ev.sequenceNumber, 'number'],
    ['offset type', typeof ev.offset, 'string'],
    ['enqueuedTimeUtc', ev.enqueuedTimeUtc instanceof Date && !isNaN(ev.enqueuedTimeUtc), true],
  ];
  for (const [what, got, expected] of checks) {
    if (got !== expected) {
      problems.push(`${where}: ${what} ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
    }
  }
}

// The differences between one event of the read scenario and --expect (empty: none).
function compareToExpected(ev) {
  const raw = ev.getRawAmqpMessage();
  const sys = ev.systemProperties || {};
  const body = Buffer.isBuffer(ev.body) ? ev.body.toString('utf8') : ev.body;
  const checks = [
    ['messageId', c.idText(ev.messageId), expected.messageId],
    ['correlationId', c.idText(ev.correlationId), expected.correlationId],
    ['contentType', ev.contentType, expected.contentType],
    ['content-encoding', raw.properties && raw.properties.contentEncoding, expected.contentEncoding],
    ['application properties', JSON.stringify(ev.properties || {}, Object.keys(ev.properties || {}).sort()),
     JSON.stringify(expected.properties, Object.keys(expected.properties).sort())],
    ['body section', raw.bodyType, 'data'],
    ['body', body, expected.body],
    ['iothub-connection-device-id', sys['iothub-connection-device-id'], expected.device],
  ];
  const out = [];
  for (const [what, got, want] of checks) {
    if (want !== undefined && got !== want) {
      out.push(`${what} ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
  }
  return out;
}

// --scenario read: the events of run R sent by someone else, each checked against --expect.
async function readScenario(consumer, ids) {
  const { earliestEventPosition } = require('@azure/event-hubs');
  const found = [];
  const problems = [];
  const subs = [];
  c.stage(`reading ${ids.length} partitions from the earliest event for the ${expected.count} ` +
          `events of run ${runId}`);
  await c.within(STEP_MS * 2, `${expected.count} events of run ${runId}`,
                 new Promise((resolve) => {
    for (const p of ids) {
      subs.push(consumer.subscribe(p, {
        processEvents: async (events) => {
          for (const ev of events) {
            if (!ev.properties || ev.properties['run-id'] !== runId) {
              continue;
            }
            found.push(`${p}/${ev.sequenceNumber}`);
            for (const d of compareToExpected(ev)) {
              problems.push(`event ${found.length} (partition ${p}, seq ${ev.sequenceNumber}): ${d}`);
            }
          }
          if (found.length >= expected.count) {
            resolve();
          }
        },
        processError: async (err) => problems.push(`partition ${p}: ${c.errorText(err)}`),
      }, { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 2,
           skipParsingBodyAsJson: true }));
    }
  })).finally(() => Promise.all(subs.map((s) => s.close())));
  if (problems.length) {
    throw new Error(problems.slice(0, 5).join('; '));
  }
  if (found.length !== expected.count) {
    throw new Error(`${found.length} events of run ${runId}, expected ${expected.count}`);
  }
  return `run ${runId}: ${found.length} events (${found.join(', ')}) from ${expected.device}, ` +
         'message-id, correlation-id, content-type, content-encoding, ' +
         `${Object.keys(expected.properties).length} application properties and body as sent`;
}

async function main() {
  const { EventHubConsumerClient, earliestEventPosition, latestEventPosition } =
    require('@azure/event-hubs');
  let ehcs = state.eventhub;
  if (args.connection === 'redirect-ws') {
    await c.preflight(c.dialTarget(state.service, 5671)[0], 443);
  } else if (args.connection === 'redirect') {
    await c.preflight(...c.dialTarget(state.service, 5671));
  }
  if (args.connection !== 'eventhub') {
    ehcs = await redirectConnectionString(args.connection === 'redirect-ws');
  }
  const entity = c.parseConnectionString(ehcs).EntityPath;
  c.log(`Event Hubs connection string: ${ehcs.replace(/SharedAccessKey=[^;]*/, 'SharedAccessKey=***')}`);
  await c.preflight(...c.dialTarget(ehcs, 5671));
  const consumer = new EventHubConsumerClient('$Default', ehcs);
  const notes = [];
  try {
    c.stage('$management: getEventHubProperties');
    const hub = await c.within(STEP_MS, 'eventhub properties', consumer.getEventHubProperties());
    if (hub.name !== entity) {
      throw new Error(`getEventHubProperties name ${hub.name}, expected ${entity}`);
    }
    if (!(hub.createdOn instanceof Date) || isNaN(hub.createdOn)) {
      throw new Error(`getEventHubProperties createdOn ${hub.createdOn} (created_at must be a timestamp)`);
    }
    c.stage('$management: getPartitionIds');
    const ids = await c.within(STEP_MS, 'partition ids', consumer.getPartitionIds());
    if (JSON.stringify(ids) !== JSON.stringify(hub.partitionIds)) {
      throw new Error(`getPartitionIds ${JSON.stringify(ids)} != partitionIds ${JSON.stringify(hub.partitionIds)}`);
    }
    if (args.partitions && ids.length !== args.partitions) {
      throw new Error(`${ids.length} partitions (${ids.join(',')}), expected ${args.partitions}`);
    }
    for (const p of ids) {
      c.stage(`$management: getPartitionProperties ${p}`);
      const pp = await c.within(STEP_MS, `partition ${p} properties`, consumer.getPartitionProperties(p));
      if (pp.partitionId !== p || pp.eventHubName !== entity || typeof pp.isEmpty !== 'boolean') {
        throw new Error(`getPartitionProperties(${p}) = ${JSON.stringify(pp)}`);
      }
    }
    if (args.scenario === 'read') {
      return await readScenario(consumer, ids);
    }

    // Telemetry tagged with this run, from every device.
    const devices = await openDevices();
    const sent = new Map();
    for (const [id, client] of Object.entries(devices)) {
      for (let i = 0; i < args['per-device']; i++) {
        const messageId = `${runId}-${id}-${i}`;
        c.stage(`device ${id}: sending ${messageId}`);
        await sendTelemetry(client, id, runId, i, messageId);
        sent.set(messageId, { messageId, device: id, index: i });
      }
    }

    // Earliest: every partition until all of this run's events are found.
    c.stage(`reading ${ids.length} partitions from the earliest event for ${sent.size} events of run ${runId}`);
    const all = {};
    const found = new Map();
    const problems = [];
    let seqProblem = null;
    const subs = [];
    await c.within(STEP_MS * 2, `all ${sent.size} events of run ${runId} from the earliest position`,
                   new Promise((resolve, reject) => {
      for (const p of ids) {
        all[p] = [];
        subs.push(consumer.subscribe(p, {
          processEvents: async (events) => {
            for (const ev of events) {
              const prev = all[p][all[p].length - 1];
              if (prev && !(ev.sequenceNumber > prev.sequenceNumber)) {
                seqProblem = `partition ${p}: sequence numbers not increasing: ${describe(prev)} then ${describe(ev)}`;
              }
              all[p].push(ev);
              const id = c.idText(ev.messageId);
              if (sent.has(id) && !found.has(id)) {
                found.set(id, p);
                checkOurEvent(ev, sent, problems);
              }
            }
            if (seqProblem) {
              reject(new Error(seqProblem));
            }
            if (found.size === sent.size) {
              resolve();
            }
          },
          processError: async (err) => reject(err),
        }, { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 5 }));
      }
    })).finally(() => Promise.all(subs.map((s) => s.close())));
    if (problems.length) {
      throw new Error(problems.slice(0, 5).join('; '));
    }
    const devicePartition = {};
    for (const [id, p] of found) {
      devicePartition[sent.get(id).device] = p;
    }
    const used = [...new Set(Object.values(devicePartition))].sort();
    c.log(`devices to partitions: ${JSON.stringify(devicePartition)}`);
    for (const [id, p] of found) {
      const d = sent.get(id).device;
      if (devicePartition[d] !== p) {
        throw new Error(`device ${d}'s events are in partitions ${devicePartition[d]} and ${p} ` +
                        '(a device must map to one partition)');
      }
    }

    // Partition properties now reflect the events.
    for (const p of used) {
      const mine = all[p].filter((ev) => sent.has(c.idText(ev.messageId)));
      const last = mine[mine.length - 1];
      const pp = await c.within(STEP_MS, `partition ${p} properties`, consumer.getPartitionProperties(p));
      if (pp.isEmpty || pp.lastEnqueuedSequenceNumber < last.sequenceNumber ||
          pp.beginningSequenceNumber > all[p][0].sequenceNumber) {
        throw new Error(`getPartitionProperties(${p}) = ${JSON.stringify(pp)} after reading ` +
                        `${describe(all[p][0])} .. ${describe(last)}`);
      }
    }

    // Sequence number, offset, enqueued time, in each partition holding this run's events.
    let positions = 0;
    for (const p of used) {
      const lastMine = all[p].map((ev) => sent.has(c.idText(ev.messageId))).lastIndexOf(true);
      const L = all[p].slice(0, lastMine + 1);
      const cases = [];
      if (L.length >= 2) {
        const pivot = L[L.length - 2];
        const next = L[L.length - 1];
        cases.push([{ sequenceNumber: pivot.sequenceNumber }, next, 'sequence number, exclusive']);
        cases.push([{ offset: pivot.offset }, next, 'offset, exclusive']);
        let t = L.length - 2;
        while (t >= 0 && !(L[t].enqueuedTimeUtc.getTime() < next.enqueuedTimeUtc.getTime())) {
          t--;
        }
        if (t >= 0) {
          const from = L[t].enqueuedTimeUtc;
          const expected = L.find((ev) => ev.enqueuedTimeUtc.getTime() > from.getTime());
          cases.push([{ enqueuedOn: from }, expected, 'enqueued time']);
        } else {
          notes.push(`partition ${p}: every event in the same millisecond, enqueued-time case not run`);
        }
      }
      const pivot = L[L.length - 1];
      cases.push([{ sequenceNumber: pivot.sequenceNumber, isInclusive: true }, pivot, 'sequence number, inclusive']);
      cases.push([{ offset: pivot.offset, isInclusive: true }, pivot, 'offset, inclusive']);
      for (const [position, expected, what] of cases) {
        c.stage(`partition ${p}: first event from ${what} ${JSON.stringify(position)}`);
        const ev = await firstEvent(consumer, p, position);
        if (ev.sequenceNumber !== expected.sequenceNumber) {
          throw new Error(`partition ${p} from ${what} ${JSON.stringify(position)}: first event ` +
                          `${describe(ev)}, expected ${describe(expected)}`);
        }
        positions++;
      }
    }

    // Latest: only events sent after the subscriptions were opened. The SDK tells no
    // "link attached" event, so probes are sent once a second until one arrives in each
    // partition that this run's devices map to.
    const before = {};
    for (const p of ids) {
      before[p] = (await consumer.getPartitionProperties(p)).lastEnqueuedSequenceNumber;
    }
    const latestTag = `${runId}-latest`;
    const got = new Set();
    let latestProblem = null;
    const latestSubs = ids.map((p) => consumer.subscribe(p, {
      processEvents: async (events) => {
        for (const ev of events) {
          if (ev.sequenceNumber <= before[p]) {
            latestProblem = `partition ${p} from latest delivered ${describe(ev)}, older than the ` +
                            `subscription (last sequence number then ${before[p]})`;
          } else if (ev.properties && ev.properties['run-id'] === latestTag) {
            got.add(p);
          }
        }
      },
      processError: async (err) => {
        latestProblem = `partition ${p} from latest: ${c.errorText(err)}`;
      },
    }, { startPosition: latestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 }));
    try {
      let round = 0;
      while (!used.every((p) => got.has(p)) && !latestProblem) {
        if (++round > 30) {
          throw new Error(`from latest, no probe arrived in partitions ${used.filter((p) => !got.has(p))} ` +
                          `after ${round - 1} rounds`);
        }
        c.stage(`latest: probe round ${round}`);
        for (const [id, client] of Object.entries(devices)) {
          if (!got.has(devicePartition[id])) {
            await sendTelemetry(client, id, latestTag, round, `${latestTag}-${id}-${round}`);
          }
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
      if (latestProblem) {
        throw new Error(latestProblem);
      }
    } finally {
      await Promise.all(latestSubs.map((s) => s.close()));
    }
    for (const client of Object.values(devices)) {
      await promisify((cb) => client.close(cb));
    }
    return `${args.connection}: hub ${entity}, ${ids.length} partitions, ${sent.size} events ` +
           `found from earliest in partitions ${used.join(',')}, ${positions} start positions, ` +
           `latest ok${notes.length ? '; ' + notes.join('; ') : ''}`;
  } finally {
    await consumer.close();
  }
}

if (c.ensureCa(state.ca)) {
  c.run(`eventhubs-${args.scenario === 'read' ? 'read-' : ''}${args.connection}`, args.timeout, main);
}
