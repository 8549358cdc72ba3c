'use strict';
// Shared by the SDK scenario scripts: arguments, the emulator's connection-strings.json, the
// CA (NODE_EXTRA_CA_CERTS), the one result line and the watchdog.
//
// Every script prints exactly one result line on stdout, `PASS <scenario>: <detail>` or
// `FAIL <scenario>: <reason>`, and exits 0 only after PASS (1: the scenario failed, 2: it
// could not start: no connection-strings.json, bad arguments). Progress goes to stderr.

const fs = require('fs');
const path = require('path');
const childProcess = require('child_process');

let scenarioName = 'setup';
let currentStage = 'starting';
let finished = false;

function log(msg) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)} ${scenarioName}] ${msg}\n`);
}

// Records what the script is doing, so that a timeout or an error says where it stopped.
function stage(name) {
  currentStage = name;
  log(name);
}

function finish(ok, detail, code) {
  if (finished) {
    return;
  }
  finished = true;
  const line = `${ok ? 'PASS' : 'FAIL'} ${scenarioName}: ${String(detail).replace(/\s+/g, ' ')}`;
  process.stdout.write(line + '\n', () => process.exit(ok ? 0 : code || 1));
}

function pass(detail) {
  finish(true, detail);
}

function fail(detail, code) {
  finish(false, detail, code);
}

function errorText(err) {
  if (!err) {
    return 'unknown error';
  }
  const parts = [err.name, err.message || String(err)];
  if (err.code) {
    parts.push(`code ${err.code}`);
  }
  if (err.condition) {
    parts.push(`condition ${err.condition}`);
  }
  const inner = err.innerError || err.amqpError || err.cause;
  if (inner && inner !== err) {
    parts.push(`(inner: ${inner.condition || inner.name || ''} ${inner.message || inner.description || ''})`);
  }
  return parts.filter(Boolean).join(' ');
}

// Fails the scenario with where it stopped after `seconds` (the scripts never wait unbounded).
function watchdog(seconds) {
  const t = setTimeout(() => fail(`timed out after ${seconds} s while ${currentStage}`), seconds * 1000);
  return t;
}

// `--name value` and `--flag` options after the positional STATE argument.
function parseArgs(argv, spec) {
  const out = { _: [] };
  for (const [k, v] of Object.entries(spec)) {
    out[k] = v;
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      out._.push(a);
      continue;
    }
    const key = a.slice(2);
    if (!(key in spec)) {
      usage(`unknown option ${a}`);
    }
    if (typeof spec[key] === 'boolean') {
      out[key] = true;
    } else {
      if (i + 1 >= argv.length) {
        usage(`${a} needs a value`);
      }
      const v = argv[++i];
      out[key] = typeof spec[key] === 'number' ? Number(v) : v;
      if (typeof spec[key] === 'number' && !Number.isFinite(out[key])) {
        usage(`${a} needs a number`);
      }
    }
  }
  if (out._.length !== 1) {
    usage('STATE (the emulator state dir or its connection-strings.json) is required');
  }
  return out;
}

let usageText = '';
function setUsage(text) {
  usageText = text;
}

function usage(msg) {
  process.stderr.write(`${msg}\n${usageText}\n`);
  fail(`usage: ${msg}`, 2);
  // fail() exits asynchronously; stop here.
  throw new UsageStop();
}

class UsageStop extends Error {}

// usage() and loadState() stop the script by throwing UsageStop after printing the result
// line: not a crash.
process.on('uncaughtException', (err) => {
  if (err instanceof UsageStop) {
    return;
  }
  fail(`uncaught exception while ${currentStage}: ${errorText(err)}`);
});
process.on('unhandledRejection', (err) => {
  if (err instanceof UsageStop) {
    return;
  }
  fail(`unhandled rejection while ${currentStage}: ${errorText(err)}`);
});

// Parses `K=V;K=V` connection strings (values may contain '=').
function parseConnectionString(cs) {
  const out = {};
  for (const part of String(cs).split(';')) {
    const i = part.indexOf('=');
    if (i > 0) {
      out[part.slice(0, i)] = part.slice(i + 1);
    }
  }
  return out;
}

// Reads the emulator's connection-strings.json (STATE is its dir or the file itself):
// {"hostname": H, "service": CS, "eventhub": CS, "devices": {ID: CS}, "ca": PATH}.
function loadState(stateArg) {
  let file = stateArg;
  if (fs.existsSync(stateArg) && fs.statSync(stateArg).isDirectory()) {
    file = path.join(stateArg, 'connection-strings.json');
  }
  if (!fs.existsSync(file)) {
    const dir = file === stateArg && stateArg.endsWith('.json') ? path.dirname(file) : stateArg;
    fail(`no connection-strings.json at ${file}: is iothub-emulator running with --state ${dir}?`, 2);
    throw new UsageStop();
  }
  let state;
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    fail(`${file} is not JSON: ${e.message}`, 2);
    throw new UsageStop();
  }
  for (const k of ['hostname', 'service', 'eventhub', 'devices', 'ca']) {
    if (!(k in state)) {
      fail(`${file} has no "${k}"`, 2);
      throw new UsageStop();
    }
  }
  state.file = file;
  state.ca = path.resolve(path.dirname(file), state.ca);
  state.hubName = String(state.hostname).split(/[.:]/)[0];
  return state;
}

// Node reads NODE_EXTRA_CA_CERTS only at start-up, and the service and Event Hubs SDKs take
// no CA option: unless it already names the emulator's CA, run this script again with it.
// Returns true when this process is the one to go on.
function ensureCa(caPath) {
  if (process.env.NODE_EXTRA_CA_CERTS === caPath) {
    return true;
  }
  if (!fs.existsSync(caPath)) {
    fail(`the emulator's CA ${caPath} does not exist`, 2);
    throw new UsageStop();
  }
  const child = childProcess.spawn(process.execPath, process.argv.slice(1), {
    stdio: 'inherit',
    env: Object.assign({}, process.env, { NODE_EXTRA_CA_CERTS: caPath }),
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => child.kill(sig));
  }
  child.on('exit', (code, signal) => process.exit(code === null ? (signal ? 1 : 1) : code));
  finished = true; // the child prints the result line
  return false;
}

// Runs `main` (an async function) with the scenario name and a watchdog, mapping every
// outcome onto one result line.
function run(name, timeoutSeconds, main) {
  scenarioName = name;
  watchdog(timeoutSeconds);
  Promise.resolve()
    .then(main)
    .then((detail) => pass(detail || 'ok'))
    .catch((err) => {
      if (err instanceof UsageStop) {
        return;
      }
      fail(`${currentStage}: ${errorText(err)}`);
    });
}

function setScenario(name) {
  scenarioName = name;
}

// A random run id: scripts tag what they send with it, to find it again.
function runId() {
  return `r${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

// Promise with a deadline: rejects with `what` after `ms`.
function within(ms, what, promise) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`no ${what} within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// Resolves when predicate() is true; `poke(resolve)` registers a callback run on each event.
function waitFor(predicate, subscribe) {
  return new Promise((resolve) => {
    if (predicate()) {
      resolve();
      return;
    }
    subscribe(() => {
      if (predicate()) {
        resolve();
      }
    });
  });
}

// AMQP ids can come back as strings, numbers or 16-byte uuid buffers: one string form.
function idText(id) {
  if (Buffer.isBuffer(id) && id.length === 16) {
    const h = id.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  return id === undefined || id === null ? id : String(id);
}

// `host[:port]` -> [host, port].
function hostPort(s, defaultPort) {
  const m = /^(.*?)(?::(\d+))?$/.exec(String(s));
  return [m[1], m[2] ? Number(m[2]) : defaultPort];
}

// Where a connection string dials: [host, port] (GatewayHostName wins over HostName, as in
// the device SDK; Endpoint=sb://host:port/ for Event Hubs).
function dialTarget(cs, defaultPort) {
  const p = parseConnectionString(cs);
  if (p.Endpoint) {
    return hostPort(p.Endpoint.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, ''), defaultPort);
  }
  return hostPort(p.GatewayHostName || p.HostName, defaultPort);
}

// Fails at once, with a clear message, when nothing accepts TCP connections on host:port
// (the SDKs would retry silently until the watchdog fires).
function preflight(host, port) {
  const net = require('net');
  stage(`checking that something listens on ${host}:${port}`);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.setTimeout(5000);
    sock.on('connect', () => {
      sock.destroy();
      resolve();
    });
    sock.on('timeout', () => {
      sock.destroy();
      reject(new Error(`no TCP answer from ${host}:${port} within 5 s: is iothub-emulator running?`));
    });
    sock.on('error', (err) => reject(new Error(
      `cannot connect to ${host}:${port} (${err.code || err.message}): is iothub-emulator running?`)));
  });
}

module.exports = {
  hostPort, dialTarget, preflight,
  log, stage, pass, fail, run, parseArgs, setUsage, usage, loadState, ensureCa,
  parseConnectionString, runId, within, waitFor, idText, errorText, setScenario, UsageStop,
};
