#!/usr/bin/env node
'use strict';
// A stand-in for iothub-emulator, with its command line, for run_sdks.py --selftest: it
// lets the scenario scripts' success paths be checked before the emulator exists. It is a
// test double built on rhea from what docs/iothub-sdk-behaviour.md records, not a model
// of IoT Hub: one process, memory only, no limits, no lock timeouts, no token expiry.
//
//   node fake_hub.js --state DIR --cert F --key F --ca F [--hub NAME] [--amqps ADDR]
//                    [--amqp ADDR] [--wss ADDR] [--device ID]... [--partitions N]
//
// --cert/--key/--ca are its own (the emulator makes its CA itself). It prints
// `listening URL` per listener and writes DIR/ca.pem and DIR/connection-strings.json.
// It answers CBS put-token (checking each SAS signature and logging which key form
// matched), SASL PLAIN with a SAS token, the device, C2D, feedback and built-in endpoint
// addresses, the amqp:link:redirect of /messages/events/..., $management READ, and
// Event Hubs selector filters.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const rhea = require('rhea');

function parseArgs(argv) {
  const o = { device: [], hub: 'fakehub', amqps: '127.0.0.1:5671', amqp: '', wss: '127.0.0.1:8443',
              partitions: 4, state: './.iothub-emulator' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[++i];
    if (v === undefined) {
      throw new Error(`${argv[i - 1]} needs a value`);
    }
    if (k === 'device') {
      o.device.push(v);
    } else if (['state', 'cert', 'key', 'ca', 'hub', 'amqps', 'amqp', 'wss', 'partitions'].includes(k)) {
      o[k] = k === 'partitions' ? Number(v) : v;
    } else {
      throw new Error(`unknown option --${k}`);
    }
  }
  for (const k of ['cert', 'key', 'ca']) {
    if (!o[k]) {
      throw new Error(`--${k} is needed`);
    }
  }
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`fake_hub: ${e.message}`);
  process.exit(2);
}

// FAKE_HUB_FAULT=a,b: misbehave on purpose, so that run_sdks.py --selftest can check that
// the scenario scripts notice (each fault is named where it acts).
const FAULTS = new Set((process.env.FAKE_HUB_FAULT || '').split(',').filter(Boolean));

function log(msg) {
  console.error(`[fake_hub ${new Date().toISOString().slice(11, 23)}] ${msg}`);
}

const hostname = `${opts.hub}.azure-devices.net`;
const servicePolicy = 'service';
const serviceKey = crypto.randomBytes(32).toString('base64');
const deviceKeys = new Map(opts.device.map((d) => [d, crypto.randomBytes(32).toString('base64')]));
const N = opts.partitions;
const partitions = Array.from({ length: N }, () => ({ events: [], subscribers: new Set(), bytes: 0 }));
const createdAt = new Date();

// --- SAS ------------------------------------------------------------------------------

function parseToken(token) {
  const m = /^SharedAccessSignature (.*)$/.exec(String(token || ''));
  if (!m) {
    return null;
  }
  const out = {};
  for (const part of m[1].split('&')) {
    const i = part.indexOf('=');
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

// Which form of the key signs the token: 'base64-decoded key' (IoT Hub SDKs) or 'key as
// text' (Event Hubs SDKs, uAMQP's SASTokenAuth), or null.
function keyFormOf(token, key) {
  const t = parseToken(token);
  if (!t || !t.sr || !t.sig || !t.se) {
    return null;
  }
  const toSign = `${t.sr}\n${t.se}`;
  const sig = decodeURIComponent(t.sig);
  const forms = [['base64-decoded key', Buffer.from(key, 'base64')], ['key as text', Buffer.from(key, 'utf8')]];
  for (const [name, k] of forms) {
    if (crypto.createHmac('sha256', k).update(toSign).digest('base64') === sig) {
      return name;
    }
  }
  return null;
}

function keyFor(token) {
  const t = parseToken(token) || {};
  if (t.skn) {
    return decodeURIComponent(t.skn) === servicePolicy ? serviceKey : null;
  }
  const m = /\/devices\/([^/]+)$/i.exec(decodeURIComponent(t.sr || ''));
  return m ? deviceKeys.get(decodeURIComponent(m[1])) : null;
}

function checkToken(what, token) {
  const key = keyFor(token);
  const form = key ? keyFormOf(token, key) : null;
  const t = parseToken(token) || {};
  log(`${what}: sr=${t.sr} skn=${t.skn || '-'} signature ${form ? 'valid with the ' + form : 'INVALID'}`);
  return Boolean(form);
}

// --- addresses ---------------------------------------------------------------------------

function normalize(address) {
  return String(address || '').replace(/^amqps?:\/\/[^/]*/i, '').replace(/^\//, '');
}

function partitionOf(deviceId) {
  return crypto.createHash('md5').update(deviceId).digest().readUInt32BE(0) % N;
}

// --- event store -------------------------------------------------------------------------

function enqueueEvent(deviceId, msg) {
  const p = partitions[partitionOf(deviceId)];
  const now = new Date();
  const seq = p.events.length;
  const offset = String(p.bytes);
  p.bytes += 1000;
  const ev = Object.assign({}, msg);
  if (FAULTS.has('drop-content-encoding')) {
    delete ev.content_encoding;
  }
  ev.message_annotations = Object.assign({}, msg.message_annotations, {
    'iothub-connection-device-id': deviceId,
    'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}',
    'iothub-enqueuedtime': now,
    'iothub-message-source': 'Telemetry',
    'x-opt-sequence-number': rhea.types.wrap_long(seq),
    'x-opt-offset': FAULTS.has('offset-long') ? rhea.types.wrap_long(Number(offset)) : offset,
    'x-opt-enqueued-time': now,
  });
  p.events.push({ seq, offset: Number(offset), time: now.getTime(), message: ev });
  for (const s of p.subscribers) {
    pump(s);
  }
}

// `amqp.annotation.x-opt-<name> (>|>=|=) '<value>'` -> first index to deliver.
function startIndex(p, filter) {
  if (!filter) {
    return p.events.length; // no filter: from the end, as Event Hubs' default @latest
  }
  const m = /^amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>|=)\s*'?([^']*)'?$/i.exec(filter.trim());
  if (!m) {
    return null;
  }
  const [, name, op, raw] = m;
  if (name === 'offset' && raw === '@latest') {
    return p.events.length;
  }
  const v = Number(raw);
  const key = { offset: 'offset', 'sequence-number': 'seq', 'enqueued-time': 'time' }[name.toLowerCase()];
  const strict = op === '>' && !FAULTS.has('filter-inclusive');
  const i = p.events.findIndex((e) => (strict ? e[key] > v : e[key] >= v));
  return i < 0 ? p.events.length : i;
}

function pump(sender) {
  const p = partitions[sender.partition];
  while (sender.next < p.events.length && sender.is_open() && sender.sendable()) {
    sender.send(p.events[sender.next++].message);
  }
}

// --- C2D and feedback ----------------------------------------------------------------------

const c2dQueues = new Map(); // device -> {messages: [], receivers: Set}
const feedbackQueue = [];
const feedbackSenders = new Set();

function c2dQueue(id) {
  if (!c2dQueues.has(id)) {
    c2dQueues.set(id, { messages: [], receivers: new Set() });
  }
  return c2dQueues.get(id);
}

function dispatchC2d(id) {
  const q = c2dQueue(id);
  for (const r of q.receivers) {
    while (q.messages.length && r.is_open() && r.sendable()) {
      const entry = q.messages.shift();
      entry.deliveryCount++;
      const m = Object.assign({}, entry.message, {
        delivery_count: entry.deliveryCount - 1,
        message_annotations: { 'iothub-deliverycount': entry.deliveryCount - 1 },
      });
      const d = r.send(m, Buffer.from(crypto.randomUUID().replace(/-/g, ''), 'hex'));
      d.entry = entry;
      r.locked = r.locked || new Set();
      r.locked.add(d);
    }
  }
}

function feedback(entry, statusCode) {
  const ack = (entry.message.application_properties || {})['iothub-ack'] || 'none';
  const wanted = ack === 'full' || (ack === 'positive' && statusCode === 'Success') ||
                 (ack === 'negative' && statusCode !== 'Success');
  if (!wanted) {
    return;
  }
  const record = {
    originalMessageId: String(entry.message.message_id), enqueuedTimeUtc: new Date().toISOString(),
    statusCode, description: statusCode, deviceId: entry.device, deviceGenerationId: '637000000000000000',
  };
  feedbackQueue.push({
    message_id: crypto.randomUUID(), user_id: Buffer.from(opts.hub),
    content_type: 'application/vnd.microsoft.iothub.feedback.json',
    message_annotations: { 'iothub-enqueuedtime': new Date() },
    body: rhea.message.data_section(Buffer.from(JSON.stringify([record]))),
  });
  dispatchFeedback();
}

function dispatchFeedback() {
  for (const s of feedbackSenders) {
    while (feedbackQueue.length && s.is_open() && s.sendable()) {
      s.send(feedbackQueue.shift());
    }
  }
}

// --- the AMQP side ------------------------------------------------------------------------

const container = rhea.create_container({ id: `DeviceGateway_${crypto.randomUUID().replace(/-/g, '')}` });
// IoT Hub's list (reference §1.3) minus EXTERNAL. MSSBCBS ("CBS will follow", empty
// initial response) is what uAMQP's SASTokenAuth uses; ANONYMOUS is the Event Hubs SDK's.
container.sasl_server_mechanisms.MSSBCBS = () => ({
  outcome: undefined,
  start(response) {
    log(`SASL MSSBCBS, initial response of ${response ? response.length : 0} bytes`);
    this.outcome = true;
  },
});
container.sasl_server_mechanisms.enable_anonymous();
container.sasl_server_mechanisms.enable_plain((username, password) => checkToken(`SASL PLAIN ${username}`, password));

// Answers a request on the link named by reply-to (by name or target address, as the Event
// Hubs SDK does), else on this connection's link whose source is the request's node (the
// Node IoT SDKs say reply-to "cbs"; uAMQP sends no reply-to).
function reply(conn, request, replyTo, status, description, body) {
  const s = conn.find_sender((l) => l.name === replyTo || (l.target && l.target.address) === replyTo) ||
            conn.find_sender((l) => normalize(l.source && l.source.address) === request.node);
  if (!s) {
    log(`no link to answer ${request.node} on (reply-to ${replyTo})`);
    return;
  }
  const id = request.message.message_id;
  s.send({
    correlation_id: typeof id === 'number' ? rhea.types.wrap_ulong(id) : id,
    application_properties: {
      'status-code': FAULTS.has('status-code-string') ? String(status) : rhea.types.wrap_int(status),
      'status-description': description,
    },
    body,
  });
}

container.on('sender_open', (ctx) => {
  const s = ctx.sender;
  const raw = (s.source && s.source.address) || '';
  const a = normalize(raw);
  s.set_source({ address: raw, filter: s.source && s.source.filter });
  s.set_target(s.target || {});
  let m;
  if (!FAULTS.has('no-redirect') && (m = /^messages\/events(\/.*)?$/i.exec(a))) {
    const rest = (m[1] || '').replace(/^\/consumergroups/i, '/ConsumerGroups').replace(/\/partitions\//i, '/Partitions/');
    const port = listening.amqps;
    const info = { hostname: 'localhost', 'network-host': 'localhost', port: rhea.types.wrap_int(port),
                   address: `amqps://localhost:${port}/${opts.hub}${rest}` };
    log(`redirect ${raw} -> ${info.address}`);
    // After the attach reply is out (rhea sends it when this handler returns).
    setImmediate(() => s.close({ condition: 'amqp:link:redirect', description: 'redirect to the Event Hubs endpoint', info }));
    return;
  }
  if (/^\$cbs$/i.test(a) || /\$management$/i.test(a)) {
    return;
  }
  if ((m = /^([^/]+)\/consumergroups\/([^/]+)\/partitions\/([^/]+)$/i.exec(a))) {
    const p = Number(m[3]);
    if (m[1] !== opts.hub || !(p >= 0 && p < N)) {
      s.close({ condition: 'amqp:not-found', description: `no such entity ${a}` });
      return;
    }
    const f = s.source && s.source.filter && s.source.filter['apache.org:selector-filter:string'];
    const text = f && (typeof f === 'string' ? f : f.value);
    const i = startIndex(partitions[p], text);
    log(`consumer ${a} filter ${JSON.stringify(text)} -> index ${i}`);
    if (i === null) {
      s.close({ condition: 'amqp:not-implemented', description: `filter ${text}` });
      return;
    }
    s.partition = p;
    s.next = i;
    partitions[p].subscribers.add(s);
    return;
  }
  if ((m = /^devices\/([^/]+)\/messages\/devicebound$/i.exec(a))) {
    s.device = decodeURIComponent(m[1]);
    c2dQueue(s.device).receivers.add(s);
    return;
  }
  if (/^messages\/servicebound\/feedback$/i.test(a)) {
    feedbackSenders.add(s);
    return;
  }
  s.close({ condition: 'amqp:not-found', description: `fake_hub has no source ${raw}` });
});

container.on('sendable', (ctx) => {
  const s = ctx.sender;
  if (s.partition !== undefined) {
    pump(s);
  } else if (s.device) {
    dispatchC2d(s.device);
  } else if (feedbackSenders.has(s)) {
    dispatchFeedback();
  }
});

function settleC2d(ctx, outcome) {
  const d = ctx.delivery;
  const entry = d.entry;
  if (!entry) {
    return;
  }
  d.entry = undefined;
  if (ctx.sender.locked) {
    ctx.sender.locked.delete(d);
  }
  log(`C2D ${entry.message.message_id} to ${entry.device}: ${outcome}`);
  if (outcome === 'accepted') {
    feedback(entry, 'Success');
  } else if (outcome === 'rejected') {
    feedback(entry, FAULTS.has('feedback-all-success') ? 'Success' : 'Rejected');
  } else if (FAULTS.has('c2d-drop-released')) {
    log('fault c2d-drop-released: dropped');
  } else {
    c2dQueue(entry.device).messages.unshift(entry);
    dispatchC2d(entry.device);
  }
  d.update(true);
}
for (const outcome of ['accepted', 'rejected', 'released', 'modified']) {
  container.on(outcome, (ctx) => {
    if (ctx.sender && ctx.sender.device) {
      settleC2d(ctx, outcome);
    }
  });
}

// A link gone (detached, or its connection lost): unsubscribe it; C2D messages it held
// unsettled go back to the queue (their lock is lost).
function senderGone(s) {
  if (s.partition !== undefined) {
    partitions[s.partition].subscribers.delete(s);
  }
  if (s.device) {
    const q = c2dQueue(s.device);
    q.receivers.delete(s);
    for (const d of s.locked || []) {
      if (d.entry) {
        q.messages.unshift(d.entry);
        d.entry = undefined;
      }
    }
    s.locked = undefined;
    dispatchC2d(s.device);
  }
  feedbackSenders.delete(s);
}
container.on('sender_close', (ctx) => senderGone(ctx.sender));
function connectionGone(ctx) {
  const all = [...feedbackSenders, ...partitions.flatMap((p) => [...p.subscribers]),
               ...[...c2dQueues.values()].flatMap((q) => [...q.receivers])];
  for (const s of all) {
    if (s.connection === ctx.connection) {
      senderGone(s);
    }
  }
}
container.on('connection_close', connectionGone);
container.on('disconnected', connectionGone);

container.on('receiver_open', (ctx) => {
  const r = ctx.receiver;
  r.set_target(r.target || {});
  r.set_source(r.source || {});
});

container.on('message', (ctx) => {
  const r = ctx.receiver;
  const d = ctx.delivery;
  const msg = ctx.message;
  const a = normalize((r.target && r.target.address) || msg.to);
  let m;
  if (/^\$cbs$/i.test(a)) {
    const ap = msg.application_properties || {};
    d.accept();
    const ok = ap.operation === 'put-token' && checkToken(`CBS put-token type=${ap.type} name=${ap.name} ` +
      `message-id=${typeof msg.message_id}:${msg.message_id} reply-to=${msg.reply_to}`, msg.body);
    reply(ctx.connection, { node: '$cbs', message: msg }, msg.reply_to, ok ? 200 : 401,
          ok ? 'OK' : 'The specified SAS token has an invalid signature.');
    return;
  }
  if (/\$management$/i.test(a)) {
    const ap = msg.application_properties || {};
    d.accept();
    log(`$management ${ap.operation} ${ap.type} ${ap.name} ${ap.partition || ''} reply-to=${msg.reply_to}`);
    let body;
    if (ap.type === 'com.microsoft:eventhub') {
      body = { name: opts.hub, type: 'com.microsoft:eventhub', created_at: createdAt,
               partition_count: rhea.types.wrap_int(N),
               partition_ids: rhea.types.wrap_array(partitions.map((_, i) => String(i)), 0xa1) };
    } else if (ap.type === 'com.microsoft:partition') {
      const p = partitions[Number(ap.partition)];
      if (!p) {
        reply(ctx.connection, { node: a, message: msg }, msg.reply_to, 404, 'no such partition');
        return;
      }
      const last = p.events[p.events.length - 1];
      body = { name: opts.hub, type: 'com.microsoft:partition', partition: String(ap.partition),
               begin_sequence_number: rhea.types.wrap_long(0),
               last_enqueued_sequence_number: rhea.types.wrap_long(last ? last.seq : -1),
               last_enqueued_offset: last ? String(last.offset) : '-1',
               last_enqueued_time_utc: new Date(last ? last.time : 0),
               is_partition_empty: !last, runtime_info_retrieval_time_utc: new Date() };
    }
    reply(ctx.connection, { node: a, message: msg }, msg.reply_to, body ? 200 : 400,
          body ? 'OK' : 'unknown type', body);
    return;
  }
  if ((m = /^devices\/([^/]+)\/messages\/events$/i.exec(a))) {
    const device = decodeURIComponent(m[1]);
    if (ctx.delivery.format === 0x80013700 && FAULTS.has('batch-reject')) {
      d.reject({ condition: 'amqp:not-implemented', description: 'fault batch-reject' });
      return;
    }
    if (ctx.delivery.format === 0x80013700) {
      // rhea hands a payload of another message-format over as raw bytes: data sections,
      // each holding one encoded message.
      const reader = new rhea.types.Reader(msg);
      let n = 0;
      while (reader.remaining() > 0) {
        const section = reader.read();
        if (!section.descriptor || Number(section.descriptor.value) !== 0x75) {
          d.reject({ condition: 'amqp:decode-error', description: 'batch: a section that is not data' });
          return;
        }
        enqueueEvent(device, rhea.message.decode(section.value));
        n++;
      }
      log(`batch of ${n} from ${device}`);
    } else {
      enqueueEvent(device, msg);
    }
    d.accept();
    return;
  }
  if (/^messages\/devicebound$/i.test(a)) {
    const to = /^\/devices\/([^/]+)\/messages\/devicebound$/i.exec(msg.to || '');
    if (!to || !deviceKeys.has(decodeURIComponent(to[1]))) {
      d.reject({ condition: 'amqp:not-found', description: `no device for to=${msg.to}` });
      return;
    }
    const device = decodeURIComponent(to[1]);
    c2dQueue(device).messages.push({ message: msg, device, deliveryCount: 0 });
    d.accept();
    dispatchC2d(device);
    return;
  }
  d.reject({ condition: 'amqp:not-found', description: `fake_hub has no target ${a}` });
});

container.on('error', (e) => log(`error: ${e && e.message ? e.message : e}`));
container.on('connection_error', (ctx) => log(`connection error: ${JSON.stringify(ctx.connection.error)}`));
container.on('protocol_error', (ctx) => log(`protocol error: ${JSON.stringify(ctx.error)}`));

// --- listeners and state ---------------------------------------------------------------------

const listening = {};
const cert = fs.readFileSync(opts.cert);
const key = fs.readFileSync(opts.key);

function hostPortOf(addr) {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

function listen(kind, addr) {
  return new Promise((resolve, reject) => {
    const [host, port] = hostPortOf(addr);
    let server;
    if (kind === 'wss') {
      const https = require('https');
      const WebSocket = require('ws');
      server = https.createServer({ cert, key });
      const wss = new WebSocket.Server({ server, handleProtocols: (protocols) => (protocols.has('AMQPWSB10') ? 'AMQPWSB10' : false) });
      wss.on('connection', (ws, req) => {
        log(`WebSocket ${req.url} protocol ${ws.protocol}`);
        container.websocket_accept(ws, { container_id: container.id, autoaccept: false });
      });
      server.listen(port, host);
    } else {
      const o = { host, port, max_frame_size: 65536, idle_time_out: 240000, autoaccept: false };
      if (kind === 'amqps') {
        Object.assign(o, { transport: 'tls', cert, key });
      }
      server = container.listen(o);
    }
    server.on('listening', () => {
      const a = server.address();
      listening[kind] = a.port;
      console.log(`listening ${kind}://${a.address}:${a.port}`);
      resolve();
    });
    server.on('error', (e) => reject(new Error(`listen ${kind} ${addr}: ${e.message}`)));
  });
}

(async () => {
  const kinds = [['amqps', opts.amqps], ['amqp', opts.amqp], ['wss', opts.wss]].filter(([, a]) => a);
  for (const [kind, addr] of kinds) {
    await listen(kind, addr);
  }
  fs.mkdirSync(opts.state, { recursive: true });
  fs.copyFileSync(opts.ca, path.join(opts.state, 'ca.pem'));
  const gw = `localhost:${listening.amqps}`;
  const devices = {};
  for (const [d, k] of deviceKeys) {
    devices[d] = `HostName=${hostname};DeviceId=${d};SharedAccessKey=${k};GatewayHostName=${gw}`;
  }
  const state = {
    hostname,
    service: `HostName=${gw};SharedAccessKeyName=${servicePolicy};SharedAccessKey=${serviceKey}`,
    eventhub: `Endpoint=sb://${gw}/;SharedAccessKeyName=${servicePolicy};SharedAccessKey=${serviceKey};EntityPath=${opts.hub}`,
    devices,
    ca: 'ca.pem',
  };
  const tmp = path.join(opts.state, 'connection-strings.json.tmp');
  fs.writeFileSync(tmp, JSON.stringify(state, null, 1));
  fs.renameSync(tmp, path.join(opts.state, 'connection-strings.json'));
})().catch((e) => {
  console.error(`fake_hub: ${e.message}`);
  process.exit(1);
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
