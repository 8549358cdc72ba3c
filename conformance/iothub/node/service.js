'use strict';
// The service SDK (azure-iothub Client) against iothub-emulator: C2D send and feedback.
//
//   node service.js STATE --scenario c2d --run-id R [--device ID] [--actions A,B] [--timeout S]
//
// Opens the feedback receiver (getFeedbackReceiver), then sends three C2D messages to the
// device with ack 'full', a messageId, an expiry and properties; each names in its `action`
// property what device.js --scenario c2d --run-id R does with it (complete, reject,
// abandon then complete). Passes when the feedback records for all three arrived: Success
// for the completed ones, Rejected for the rejected one. Feedback messages are completed.
// The hub batches feedback (up to 15 s on Azure): give --timeout room for it.
// --actions complete,reject sends only those (in that order; default complete,reject,abandon),
// for a device that settles each message as one fixed outcome (e.g. our iothub-cli c2d receive).

const c = require('./common');

c.setUsage('usage: node service.js STATE --scenario c2d --run-id R [--device ID] ' +
           '[--actions A,B] [--timeout S]');
const args = c.parseArgs(process.argv.slice(2), {
  scenario: 'c2d', device: '', 'run-id': '', actions: 'complete,reject,abandon', timeout: 90,
});
if (args.scenario !== 'c2d') {
  c.usage(`unknown scenario ${args.scenario}`);
}
if (!args['run-id']) {
  c.usage('--run-id is needed (the one given to device.js --scenario c2d)');
}
const state = c.loadState(args._[0]);
const deviceId = args.device || Object.keys(state.devices)[0];
const runId = args['run-id'];

const FEEDBACK = { complete: 'Success', reject: 'Rejected', abandon: 'Success' };
const EXPECTED = {};
for (const a of args.actions.split(',')) {
  if (!(a in FEEDBACK)) {
    c.usage(`unknown action ${a} in --actions (complete, reject, abandon)`);
  }
  EXPECTED[a] = FEEDBACK[a];
}

function promisify(fn) {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

async function main() {
  const { Client } = require('azure-iothub');
  const { Message } = require('azure-iot-common');
  await c.preflight(...c.dialTarget(state.service, 5671));
  const client = Client.fromConnectionString(state.service);
  const ids = {};
  for (const action of Object.keys(EXPECTED)) {
    ids[`${runId}-${action}`] = action;
  }
  const records = {};
  let problem = null;
  let notify = () => {};

  c.stage('opening the service client');
  await promisify((cb) => client.open(cb));
  c.stage('attaching the feedback receiver');
  const receiver = await promisify((cb) => client.getFeedbackReceiver(cb));
  receiver.on('error', (err) => {
    problem = `feedback receiver error: ${c.errorText(err)}`;
    notify();
  });
  receiver.on('message', (msg) => {
    let batch;
    try {
      batch = JSON.parse(String(msg.data));
    } catch (e) {
      problem = `feedback body is not JSON: ${JSON.stringify(String(msg.data)).slice(0, 200)} ` +
                '(the hub must send a data section holding a JSON array)';
      notify();
      return;
    }
    if (!Array.isArray(batch)) {
      problem = `feedback body is not a JSON array: ${JSON.stringify(batch).slice(0, 200)}`;
      notify();
      return;
    }
    if (msg.contentType && msg.contentType !== 'application/vnd.microsoft.iothub.feedback.json') {
      problem = `feedback content-type ${msg.contentType}`;
    }
    for (const r of batch) {
      c.log(`feedback record ${JSON.stringify(r)}`);
      if (r.originalMessageId in ids) {
        records[r.originalMessageId] = r;
        if (r.deviceId !== deviceId) {
          problem = `feedback record ${r.originalMessageId} names device ${r.deviceId}`;
        }
      }
    }
    receiver.complete(msg, (err) => {
      if (err) {
        problem = `completing a feedback message: ${c.errorText(err)}`;
      }
      notify();
    });
  });

  for (const [id, action] of Object.entries(ids)) {
    const m = new Message(`c2d ${action} ${runId}`);
    m.messageId = id;
    m.ack = 'full';
    m.expiryTimeUtc = Date.now() + 10 * 60 * 1000;
    m.properties.add('run-id', runId);
    m.properties.add('action', action);
    c.stage(`sending C2D ${id} to ${deviceId}`);
    const r = await promisify((cb) => client.send(deviceId, m, cb));
    const kind = r && r.constructor && r.constructor.name;
    if (kind !== 'MessageEnqueued') {
      throw new Error(`send ${id} answered ${kind}, expected MessageEnqueued`);
    }
  }
  c.stage(`waiting for the feedback of ${Object.keys(ids).join(', ')}`);
  await new Promise((resolve) => {
    notify = () => {
      if (problem || Object.keys(ids).every((id) => id in records)) {
        resolve();
      }
    };
    notify();
  });
  if (problem) {
    throw new Error(problem);
  }
  const wrong = Object.entries(ids)
    .filter(([id, action]) => records[id].statusCode !== EXPECTED[action])
    .map(([id, action]) => `${id}: statusCode ${records[id].statusCode}, expected ${EXPECTED[action]}`);
  if (wrong.length) {
    throw new Error(`feedback: ${wrong.join('; ')}`);
  }
  c.stage('closing');
  await promisify((cb) => client.close(cb));
  return `run ${runId}: ${Object.keys(ids).length} C2D messages enqueued for ${deviceId}; ` +
         `feedback ${Object.values(ids).map((a) => `${a}: ${EXPECTED[a]}`).join(', ')}`;
}

if (c.ensureCa(state.ca)) {
  c.run('service-c2d-feedback', args.timeout, main);
}
