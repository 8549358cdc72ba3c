'use strict';
// Shared by rhea_broker.js and rhea_client.js: command-line parsing and connection options.
const fs = require('fs');

// Parses `argv` against a spec {name: 'flag' | 'value' | 'list'}; positional args in ._.
function parse_args(argv, spec) {
  const out = { _: [] };
  for (const [k, kind] of Object.entries(spec)) {
    if (kind === 'list') out[k] = [];
    else if (kind === 'flag') out[k] = false;
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) { out._.push(a); continue; }
    let name = a.slice(2);
    let value;
    const eq = name.indexOf('=');
    if (eq >= 0) { value = name.slice(eq + 1); name = name.slice(0, eq); }
    const key = name.replace(/-/g, '_');
    const kind = spec[key];
    if (kind === undefined) throw new Error('unknown option --' + name);
    if (kind === 'flag') { out[key] = true; continue; }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new Error('--' + name + ' needs a value');
      value = argv[++i];
    }
    if (kind === 'list') out[key].push(value); else out[key] = value;
  }
  return out;
}

// amqp://[user:pass@]host:port[/path] -> {tls, host, port, user, password, path}
function parse_url(text) {
  const u = new URL(text);
  const tls = u.protocol === 'amqps:';
  if (u.protocol !== 'amqp:' && u.protocol !== 'amqps:') throw new Error('unsupported URL ' + text);
  return {
    tls,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : (tls ? 5671 : 5672),
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    path: u.pathname && u.pathname !== '/' ? decodeURIComponent(u.pathname.slice(1)) : undefined,
  };
}

function read(file) { return fs.readFileSync(file); }

module.exports = { parse_args, parse_url, read };
