#!/usr/bin/env node
'use strict';
// A small AMQP 1.0 broker on rhea, with the command line of `amqp-cli broker`:
//
//   node rhea_broker.js --listen amqp://127.0.0.1:0 [--listen amqps://127.0.0.1:0]
//        [--cert F --key F [--ca F]] [--user USER:PASS]... [--anonymous | --no-anonymous]
//        [--idle-timeout MS] [--trace] [--outcome-prefixes]
//
// Prints "listening URL" (actual port) once per listener, then serves until SIGTERM/SIGINT.
// Every address is a queue (created on first use; "amqps://host/NAME" means NAME). Transfers to an address starting with
// "$reject/", "$release/" or "$modify/" are answered with that outcome and dropped
// (to test how a sender handles outcomes; always on, --outcome-prefixes is accepted for
// the command line of `amqp-cli broker`). Deliveries to consumers are unsettled unless
// the receiver asked for snd-settle-mode settled; a released or modified delivery goes
// back to the head of its queue (modified + delivery-failed increments delivery-count),
// a rejected one is dropped, and unsettled deliveries of a link or connection that goes
// away are requeued. SASL: ANONYMOUS (without --user, or with --anonymous; never with
// --no-anonymous), PLAIN for the --user list,
// EXTERNAL on TLS when the client presents a certificate signed by --ca.
const rhea = require('rhea');
const { parse_args, parse_url, read } = require('./common.js');

let opts;
try {
  opts = parse_args(process.argv.slice(2), {
    listen: 'list', cert: 'value', key: 'value', ca: 'value', user: 'list',
    anonymous: 'flag', no_anonymous: 'flag', idle_timeout: 'value', trace: 'flag', outcome_prefixes: 'flag',
  });
  if (!opts.listen.length) throw new Error('at least one --listen URL is needed');
} catch (e) {
  console.error('rhea_broker: ' + e.message);
  process.exit(2);
}
if (opts.trace) require('debug').enable('rhea:frames,rhea:raw');

const users = new Map(opts.user.map((u) => { const i = u.indexOf(':'); return [u.slice(0, i), u.slice(i + 1)]; }));
const container = rhea.create_container({ id: 'rhea-broker' });
if (users.size) container.sasl_server_mechanisms.enable_plain((u, p) => users.has(u) && users.get(u) === p);
// As `amqp-cli broker`: accounts turn anonymous access off unless --anonymous asks for it.
if (!opts.no_anonymous && (opts.anonymous || !users.size)) container.sasl_server_mechanisms.enable_anonymous();

const stats = { received: 0, delivered: 0, accepted: 0, rejected: 0, released: 0, modified: 0 };

class Queue {
  constructor(name) { this.name = name; this.messages = []; this.consumers = []; this.next = 0; this.seq = 0; }

  push(entry) {
    entry.seq = this.seq++;
    this.messages.push(entry);
    this.dispatch();
  }

  // A released/modified/orphaned entry goes back in its original (FIFO) position.
  requeue(entry) {
    let i = 0;
    while (i < this.messages.length && this.messages[i].seq < entry.seq) i++;
    this.messages.splice(i, 0, entry);
    this.dispatch();
  }

  dispatch() {
    while (this.messages.length && this.consumers.length) {
      let sent = false;
      for (let i = 0; i < this.consumers.length && this.messages.length; i++) {
        const s = this.consumers[(this.next + i) % this.consumers.length];
        if (s.sendable()) {
          this.next = (this.next + i + 1) % this.consumers.length;
          deliver(this, s, this.messages.shift());
          sent = true;
          break;
        }
      }
      if (!sent) break;
    }
  }
}

const queues = new Map();
// uAMQP (and Azure SDKs) put "amqps://host/NAME" in the terminus: the queue is NAME.
function normalize(address) {
  const m = /^amqps?:\/\/[^/]*\/(.*)$/.exec(address || '');
  return m ? m[1] : address;
}
function queue(name) {
  if (!queues.has(name)) queues.set(name, new Queue(name));
  return queues.get(name);
}

function deliver(q, sender, entry) {
  const d = entry.format ? sender.send(entry.message, undefined, entry.format) : sender.send(entry.message);
  stats.delivered++;
  if (!d.settled) {
    d.entry = entry;
    d.queue = q;
    sender.outstanding.add(d);
  }
}

// Applies the outcome the consumer gave delivery d (of sender).
function apply_outcome(sender, d, outcome) {
  if (!d.entry) return;
  sender.outstanding.delete(d);
  stats[outcome]++;
  const entry = d.entry;
  d.entry = undefined;
  if (outcome === 'released') {
    d.queue.requeue(entry);
  } else if (outcome === 'modified') {
    const state = d.remote_state || {};
    if (state.delivery_failed) entry.message.delivery_count = (entry.message.delivery_count || 0) + 1;
    d.queue.requeue(entry);
  }
  if (!d.remote_settled && !sender.is_closed()) d.update(true);
}

function outcome_of(d) {
  const s = d.remote_state;
  const name = s && s.constructor && s.constructor.composite_type;
  return ['accepted', 'rejected', 'released', 'modified'].includes(name) ? name : undefined;
}

// The link or connection went away: dispositions already read (rhea reports them after
// the detach) are applied, the rest is requeued.
function requeue_outstanding(sender) {
  if (!sender.outstanding) return;
  for (const d of [...sender.outstanding]) {
    const outcome = outcome_of(d);
    if (outcome) {
      apply_outcome(sender, d, outcome);
    } else if (d.entry) {
      const e = d.entry;
      d.entry = undefined;
      d.queue.requeue(e);
    }
  }
  sender.outstanding.clear();
}

function unsubscribe(sender) {
  if (!sender.queue) return;
  const q = sender.queue;
  q.consumers = q.consumers.filter((s) => s !== sender);
  sender.queue = undefined;
  requeue_outstanding(sender);
  q.dispatch();
}

container.on('sender_open', (ctx) => {
  // A client's receiving link: we send from the queue named by its source address.
  const s = ctx.sender;
  const src = s.source || {};
  let address = src.address;
  if (src.dynamic) address = 'dynamic-' + rhea.generate_uuid();
  s.set_source({ address });
  s.set_target(s.target || {}); // uAMQP refuses an attach without a target
  s.local.attach.snd_settle_mode = s.snd_settle_mode === 1 ? 1 : 0;
  s.local.attach.rcv_settle_mode = 0;
  if (!address) {
    s.close({ condition: 'amqp:invalid-field', description: 'source address needed' });
    return;
  }
  s.outstanding = new Set();
  s.queue = queue(normalize(address));
  s.queue.consumers.push(s);
});
container.on('sendable', (ctx) => { if (ctx.sender.queue) ctx.sender.queue.dispatch(); });
for (const outcome of ['accepted', 'rejected', 'released', 'modified']) {
  container.on(outcome, (ctx) => apply_outcome(ctx.sender, ctx.delivery, outcome));
}
// Settled without an outcome: taken as accepted.
container.on('settled', (ctx) => { if (ctx.sender && ctx.delivery.entry) apply_outcome(ctx.sender, ctx.delivery, 'accepted'); });
container.on('sender_close', (ctx) => unsubscribe(ctx.sender));

container.on('receiver_open', (ctx) => {
  // A client's sending link: messages go to the queue named by its target address.
  const r = ctx.receiver;
  const tgt = r.target || {};
  r.set_target({ address: tgt.address });
  r.set_source(r.source || {});
  r.local.attach.snd_settle_mode = r.snd_settle_mode === undefined ? 2 : r.snd_settle_mode;
  r.local.attach.rcv_settle_mode = 0;
});

container.on('message', (ctx) => {
  const r = ctx.receiver;
  const d = ctx.delivery;
  const address = normalize((r.target && r.target.address) || (ctx.message && ctx.message.to));
  stats.received++;
  const m = /^\$(reject|release|modify)\//.exec(address || '');
  if (m) {
    if (m[1] === 'reject') d.reject({ condition: 'amqp:precondition-failed', description: 'rejected by address' });
    else if (m[1] === 'release') d.release();
    else d.modified({ delivery_failed: true, undeliverable_here: true });
    return;
  }
  if (d.format === undefined) {
    // rhea would take the payload as an opaque non-AMQP message (body lost on re-encoding).
    console.error('rhea_broker: transfer without message-format (AMQP 1.0 2.7.5: only continuation transfers may omit it)');
    d.reject({ condition: 'amqp:invalid-field', description: 'message-format missing on the first transfer of the delivery (AMQP 1.0 section 2.7.5)' });
    return;
  }
  if (!address) {
    d.reject({ condition: 'amqp:not-found', description: 'no address' });
    return;
  }
  queue(address).push({ message: ctx.message, format: ctx.format });
  if (!d.remote_settled) d.accept();
});

function connection_gone(ctx) {
  const c = ctx.connection;
  for (const q of queues.values()) {
    for (const s of [...q.consumers]) if (s.connection === c) unsubscribe(s);
  }
}
container.on('connection_close', connection_gone);
container.on('disconnected', connection_gone);
container.on('connection_open', (ctx) => {
  if (opts.trace) console.error('connection from %s (%s)', ctx.connection.container_id, ctx.connection.get_peer_certificate ? 'tls' : 'tcp');
});
container.on('error', (e) => console.error('rhea_broker error: ' + (e && e.message ? e.message : e)));
container.on('connection_error', (ctx) => console.error('connection error: ' + JSON.stringify(ctx.connection.error)));
container.on('protocol_error', (ctx) => console.error('protocol error: ' + JSON.stringify(ctx.error)));

const servers = [];
for (const text of opts.listen) {
  const u = parse_url(text);
  const options = {
    host: u.host, port: u.port,
    autoaccept: false, treat_modified_as_released: false,
    container_id: 'rhea-broker',
    max_frame_size: Number(process.env.RHEA_BROKER_MAX_FRAME_SIZE || 65536),
  };
  if (opts.idle_timeout) options.idle_time_out = Number(opts.idle_timeout);
  if (u.tls) {
    if (!opts.cert || !opts.key) { console.error('rhea_broker: amqps needs --cert and --key'); process.exit(2); }
    Object.assign(options, { transport: 'tls', cert: read(opts.cert), key: read(opts.key) });
    if (opts.ca) {
      Object.assign(options, { ca: read(opts.ca), requestCert: true, rejectUnauthorized: false, enable_sasl_external: true });
    }
  }
  const server = container.listen(options);
  server.on('listening', () => {
    const a = server.address();
    console.log('listening %s://%s:%d', u.tls ? 'amqps' : 'amqp', a.address, a.port);
  });
  server.on('error', (e) => { console.error('rhea_broker: listen ' + text + ': ' + e.message); process.exit(1); });
  if (u.tls) server.on('tlsClientError', (e) => console.error('TLS client error: ' + e.message));
  servers.push(server);
}

function shutdown(sig) {
  console.error('rhea_broker: %s; %j', sig, stats);
  for (const s of servers) s.close();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
