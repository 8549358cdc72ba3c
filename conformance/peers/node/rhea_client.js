#!/usr/bin/env node
'use strict';
// rhea client with the command line of `amqp-cli send/receive` (see ../README.md):
//
//   node rhea_client.js send URL ADDRESS [--count N] [--presettled] [--size BYTES | --body TEXT]
//        [--property K=V]... [--ca F] [--cert F --key F] [--insecure] [--sasl MECH]
//        [--idle-timeout MS] [--trace] [--timeout S]
//   node rhea_client.js receive URL ADDRESS [--count N] [--outcome accept|reject|release|modify]
//        [--credit C] [--timeout S] [--print] [--expect-size BYTES] [--presettled] (+ TLS/SASL)
//
// Prints "sent N accepted A rejected R released L modified M" or "received N" and exits 0
// only when the scenario succeeded.
const rhea = require('rhea');
const { parse_args, parse_url, read } = require('./common.js');

const SPEC = {
  count: 'value', presettled: 'flag', size: 'value', body: 'value', property: 'list',
  ca: 'value', cert: 'value', key: 'value', insecure: 'flag', sasl: 'value',
  idle_timeout: 'value', trace: 'flag', timeout: 'value', outcome: 'value', credit: 'value',
  print: 'flag', expect_size: 'value',
};

let opts, mode, url, address;
try {
  opts = parse_args(process.argv.slice(2), SPEC);
  [mode, url, address] = opts._;
  if (!['send', 'receive'].includes(mode) || !url || !address) {
    throw new Error('usage: rhea_client.js send|receive URL ADDRESS [options]');
  }
} catch (e) {
  console.error(e.message);
  process.exit(2);
}
if (opts.trace) require('debug').enable('rhea:frames');

const count = Number(opts.count || 1);
const timeout_s = Number(opts.timeout || 30);
const u = parse_url(url);
const container = rhea.create_container({ id: 'rhea-client-' + process.pid });

const conn_opts = { host: u.host, port: u.port, reconnect: false, container_id: 'rhea-client-' + process.pid };
if (opts.idle_timeout) conn_opts.idle_time_out = Number(opts.idle_timeout);
if (u.tls) {
  conn_opts.transport = 'tls';
  if (opts.ca) conn_opts.ca = read(opts.ca);
  if (opts.cert) { conn_opts.cert = read(opts.cert); conn_opts.key = read(opts.key); }
  if (opts.insecure) conn_opts.rejectUnauthorized = false;
  if (!/^[0-9.:]+$/.test(u.host)) conn_opts.servername = u.host;
}
const mech = (opts.sasl || (u.user ? 'PLAIN' : 'ANONYMOUS')).toUpperCase();
if (mech === 'PLAIN') {
  conn_opts.username = u.user;
  conn_opts.password = u.password || '';
} else if (mech === 'ANONYMOUS') {
  const m = rhea.sasl.client_mechanisms();
  m.enable_anonymous(u.user);
  conn_opts.sasl_mechanisms = m;
} else if (mech === 'EXTERNAL') {
  conn_opts.enable_sasl_external = true;
  conn_opts.sasl_mechanisms = rhea.sasl.client_mechanisms();
} else if (mech !== 'NONE') {
  console.error('unsupported --sasl ' + mech);
  process.exit(2);
}

let done = false;
const counts = { sent: 0, accepted: 0, rejected: 0, released: 0, modified: 0, received: 0 };
let failure = null;

function result_line() {
  return mode === 'send'
    ? `sent ${counts.sent} accepted ${counts.accepted} rejected ${counts.rejected} released ${counts.released} modified ${counts.modified}`
    : `received ${counts.received}`;
}

function success() {
  if (failure) return false;
  if (mode === 'send') return counts.sent === count && (opts.presettled || counts.accepted === count);
  return counts.received === count;
}

function finish(reason) {
  if (done) return;
  done = true;
  if (reason || failure) console.error('rhea_client: ' + (reason || failure));
  console.log(result_line());
  process.exit(success() ? 0 : 1);
}

const timer = setTimeout(() => finish('timed out after ' + timeout_s + ' s'), timeout_s * 1000);

function close_and_finish(conn) {
  clearTimeout(timer);
  const t = setTimeout(() => finish(), 2000); // peer does not answer close
  conn.on('connection_close', () => { clearTimeout(t); finish(); });
  conn.on('disconnected', () => { clearTimeout(t); finish(); });
  conn.close();
}

function make_message(i) {
  const msg = { message_id: i, durable: true };
  if (opts.size !== undefined) {
    const n = Number(opts.size);
    const buf = Buffer.alloc(n);
    for (let k = 0; k < n; k++) buf[k] = (k + i) % 251;
    msg.body = rhea.message.data_section(buf);
  } else if (opts.body !== undefined) {
    msg.body = opts.body;
  } else {
    msg.body = 'message ' + i;
  }
  if (opts.property.length) {
    msg.application_properties = {};
    for (const kv of opts.property) {
      const j = kv.indexOf('=');
      msg.application_properties[kv.slice(0, j)] = kv.slice(j + 1);
    }
  }
  return msg;
}

function body_size(message) {
  const b = message.body;
  if (b && b.typecode === 0x75) return b.content.length; // data section
  if (Buffer.isBuffer(b)) return b.length;
  if (typeof b === 'string') return Buffer.byteLength(b);
  return -1;
}

const conn = container.connect(conn_opts);
conn.on('connection_error', (ctx) => { failure = 'connection error: ' + JSON.stringify(ctx.connection.error); finish(failure); });
conn.on('disconnected', (ctx) => { if (!done) { failure = 'disconnected' + (ctx.error ? ': ' + ctx.error.message : ''); finish(failure); } });
conn.on('session_error', (ctx) => { failure = 'session error: ' + JSON.stringify(ctx.session.error); finish(failure); });
conn.on('session_close', () => { if (!done) { failure = 'session ended by peer'; finish(failure); } });
container.on('error', (e) => { failure = 'error: ' + (e && e.message ? e.message : e); finish(failure); });

if (mode === 'send') {
  const sender = conn.open_sender({ target: { address }, snd_settle_mode: opts.presettled ? 1 : 0, treat_modified_as_released: false });
  let settled = 0;
  // rhea counts credit down only when a transfer is written, so sendable() stays true for a
  // whole loop: what is queued but unwritten (sent - delivery_count) uses credit too.
  const unwritten = () => counts.sent - sender.delivery_count;
  let closing = false;
  const check = () => {
    if (closing || counts.sent !== count) return;
    if (opts.presettled) {
      // nothing comes back: close once every transfer is written out
      if (unwritten() > 0) { setTimeout(check, 5); return; }
    } else if (settled !== count) {
      return;
    }
    closing = true;
    close_and_finish(conn);
  };
  sender.on('sendable', () => {
    while (counts.sent < count && sender.credit - unwritten() > 0) {
      sender.send(make_message(counts.sent));
      counts.sent++;
    }
    check();
  });
  for (const outcome of ['accepted', 'rejected', 'released', 'modified']) {
    sender.on(outcome, () => { counts[outcome]++; settled++; check(); });
  }
  sender.on('sender_error', (ctx) => { failure = 'link error: ' + JSON.stringify(ctx.sender.error); finish(failure); });
  sender.on('sender_close', () => { if (!done) { failure = 'link detached by peer'; finish(failure); } });
} else {
  const outcome = opts.outcome || 'accept';
  if (!['accept', 'reject', 'release', 'modify'].includes(outcome)) { console.error('bad --outcome'); process.exit(2); }
  const credit = Number(opts.credit || 100);
  const expect = opts.expect_size !== undefined ? Number(opts.expect_size) : undefined;
  const receiver = conn.open_receiver({
    source: { address }, credit_window: 0, autoaccept: false,
    snd_settle_mode: opts.presettled ? 1 : 0, rcv_settle_mode: 0,
  });
  let outstanding = 0;
  const top_up = () => {
    const want = Math.min(credit, count - counts.received) - outstanding;
    if (want > 0) { receiver.add_credit(want); outstanding += want; }
  };
  receiver.on('receiver_open', top_up);
  receiver.on('message', (ctx) => {
    outstanding--;
    const d = ctx.delivery;
    if (d.format === undefined && !failure) {
      failure = 'transfer without message-format (AMQP 1.0 2.7.5: only continuation transfers may omit it)';
    }
    if (expect !== undefined && body_size(ctx.message) !== expect) {
      failure = `message ${counts.received} has a ${body_size(ctx.message)}-byte body, expected ${expect}`;
    }
    if (opts.print) console.log(JSON.stringify(ctx.message.body));
    if (!d.remote_settled) {
      if (outcome === 'accept') d.accept();
      else if (outcome === 'reject') d.reject({ condition: 'amqp:precondition-failed', description: 'rejected by test' });
      else if (outcome === 'release') d.release();
      else d.modified({ delivery_failed: true });
    }
    counts.received++;
    if (counts.received === count) {
      receiver.close();
      close_and_finish(conn);
    } else {
      top_up();
    }
  });
  receiver.on('receiver_error', (ctx) => { failure = 'link error: ' + JSON.stringify(ctx.receiver.error); finish(failure); });
  receiver.on('receiver_close', () => { if (!done && counts.received < count) { failure = 'link detached by peer'; finish(failure); } });
}
