'use strict';
// The Node.js peer of docs/benchmarks.md: the same ticket -> session exchange (PROTOCOL §2, §6) and the same
// Instance-signed profile call (§4) that Callbox serves, written the way a JS team would: fastify, node:crypto,
// better-sqlite3 12 in WAL mode, and node:cluster with one worker per core so that it uses every core, as
// Callbox's threads do. The workers share one SQLite file, so a session made on one worker is found by a signed
// call on any other.
//
// Durability: by default the peer runs as better-sqlite3 leaves a WAL database, synchronous=NORMAL (it is built
// with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1): a commit is written to the WAL but not synced, so a power cut can lose
// the last sessions. Callbox acknowledges a session only once its commit is synced; PEER_SYNCHRONOUS=FULL gives
// the peer that same promise (and the peer of the runs before issue 14 ran FULL in one process).
//
// Environment: PEER_APP_KEY, PEER_APP_SECRET (base64), PEER_DB (file; default ./peer.db), PEER_LISTEN
// (default 127.0.0.1:0), PEER_WORKERS (default os.availableParallelism(); 1 = one plain process without a
// cluster primary), PEER_SYNCHRONOUS (NORMAL by default, or FULL). Prints
// {"event":"listening","url":...,"workers":N,"synchronous":...} on stdout once every worker is bound, like
// `callbox serve`.

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const os = require('node:os');
const Database = require('better-sqlite3');

const APP_KEY = process.env.PEER_APP_KEY;
const APP_SECRET = Buffer.from(process.env.PEER_APP_SECRET || '', 'base64');
if (!APP_KEY || APP_SECRET.length < 16) {
  console.error('set PEER_APP_KEY and PEER_APP_SECRET (base64, 16+ bytes)');
  process.exit(2);
}
const [HOST, PORT] = (process.env.PEER_LISTEN || '127.0.0.1:0').split(':');
const DB_FILE = process.env.PEER_DB || 'peer.db';
const WORKERS = Number(process.env.PEER_WORKERS || os.availableParallelism());
const SYNCHRONOUS = (process.env.PEER_SYNCHRONOUS || 'NORMAL').toUpperCase();
if (!Number.isInteger(WORKERS) || WORKERS < 1) {
  console.error('PEER_WORKERS must be a whole number >= 1');
  process.exit(2);
}
if (!['FULL', 'NORMAL'].includes(SYNCHRONOUS)) {
  console.error('PEER_SYNCHRONOUS must be FULL or NORMAL');
  process.exit(2);
}
const DEFAULT_TTL = 600, MAX_TTL = 86400, SKEW = 300, SESSION_TTL = 86400, CALL_SKEW = 600;

function openDatabase() {
  const db = new Database(DB_FILE);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${SYNCHRONOUS}`);
  return db;
}

function announce(address, port) {
  const line = { event: 'listening', url: `http://${address}:${port}`, workers: WORKERS, synchronous: SYNCHRONOUS };
  process.stdout.write(JSON.stringify(line) + '\n');
}

if (WORKERS > 1 && cluster.isPrimary) {
  // The schema is made once, before any worker opens the file, so that workers never race on CREATE TABLE.
  const db = openDatabase();
  createSchema(db);
  db.close();
  let listening = 0;
  let stopping = false;
  cluster.on('listening', (_worker, address) => {
    listening += 1;
    if (listening === WORKERS) announce(address.address, address.port);
  });
  cluster.on('exit', (worker, code) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} exited with ${code}; stopping`);
      process.exit(1);
    }
  });
  for (let i = 0; i < WORKERS; i += 1) cluster.fork();
  process.on('SIGTERM', () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    let left = Object.keys(cluster.workers).length;
    if (left === 0) process.exit(0);
    cluster.on('exit', () => {
      left -= 1;
      if (left === 0) process.exit(0);
    });
  });
} else {
  serve();
}

function createSchema(db) {
  db.exec(`CREATE TABLE IF NOT EXISTS sessions (
  id TEXT NOT NULL PRIMARY KEY, app_key TEXT NOT NULL, user_id TEXT NOT NULL, secret TEXT NOT NULL,
  capabilities TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER)`);
}

function serve() {
  const fastify = require('fastify')({ logger: false, bodyLimit: 64 * 1024 });
  const db = openDatabase();
  if (WORKERS === 1) createSchema(db);
  const insertSession = db.prepare('INSERT INTO sessions '
    + '(id, app_key, user_id, secret, capabilities, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const getSession = db.prepare('SELECT * FROM sessions WHERE id = ?');

  function fail(reply, status, code, reason) {
    return reply.code(status).send({
      errorCode: code, message: reason.replace(/_/g, ' '), reason, retryable: false,
      serverTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    });
  }

  function hmac(key, data) {
    return crypto.createHmac('sha256', key).update(data).digest();
  }

  function safeEqual(a, b) {
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  }

  function field(obj, name) {
    for (const k of Object.keys(obj)) if (k.toLowerCase() === name.toLowerCase()) return obj[k];
    return undefined;
  }

  function parseCreated(text) {
    if (typeof text !== 'string') return NaN;
    // Python writes no offset: UTC.
    return Date.parse(/([zZ]|[+-]\d\d:?\d\d)$/.test(text) ? text : text + 'Z');
  }

  fastify.post('/v1/instance', async (request, reply) => {
    const auth = request.headers.authorization || '';
    const m = /^user\s+(.+)$/i.exec(auth);
    if (!m) return fail(reply, 401, 40100, 'missing_authorization');
    const ticket = m[1];
    if (ticket.length > 8192) return fail(reply, 401, 40100, 'malformed_ticket');
    const colon = ticket.indexOf(':');
    if (colon < 0) return fail(reply, 401, 40100, 'malformed_ticket');
    const data = Buffer.from(ticket.slice(0, colon), 'base64');
    const signature = Buffer.from(ticket.slice(colon + 1), 'base64');
    if (!safeEqual(hmac(APP_SECRET, data), signature)) return fail(reply, 401, 40102, 'bad_signature');
    let claims;
    try {
      claims = JSON.parse(data.toString('utf8'));
    } catch {
      return fail(reply, 401, 40100, 'malformed_ticket');
    }
    if (field(claims, 'applicationKey') !== APP_KEY) return fail(reply, 401, 40100, 'unknown_application');
    const identity = field(claims, 'identity') || {};
    const userId = field(identity, 'endpoint');
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > 255) {
      return fail(reply, 401, 40100, 'malformed_ticket');
    }
    const created = parseCreated(field(claims, 'created'));
    if (Number.isNaN(created)) return fail(reply, 401, 40100, 'malformed_ticket');
    const ttl = field(claims, 'expiresIn') ?? DEFAULT_TTL;
    if (ttl > MAX_TTL) return fail(reply, 401, 40100, 'ticket_ttl_exceeds_max');
    const now = Date.now();
    if (now < created - SKEW * 1000) return fail(reply, 401, 40101, 'ticket_not_yet_valid');
    if (now > created + (ttl + SKEW) * 1000) return fail(reply, 401, 40101, 'ticket_expired');
    const services = (request.body && request.body.services) || {};
    const capabilities = [];
    if (services.im) capabilities.push('messaging');
    if (services.voip || services.p2p || services.srtp) capabilities.push('calling');
    const id = crypto.randomUUID();
    const secret = crypto.randomBytes(32).toString('base64');
    insertSession.run(id, APP_KEY, userId, secret, capabilities.join(','), now, now + SESSION_TTL * 1000);
    return { id, secret, expiresIn: SESSION_TTL, capabilities };
  });

  fastify.get('/v1/user/profile', async (request, reply) => {
    const auth = request.headers.authorization || '';
    const m = /^instance\s+([^:]+):(.+)$/i.exec(auth);
    if (!m) return fail(reply, 401, 40100, 'missing_authorization');
    const timestamp = request.headers['x-timestamp'] || '';
    const at = Date.parse(timestamp);
    if (Number.isNaN(at) || Math.abs(Date.now() - at) > CALL_SKEW * 1000) {
      return fail(reply, 401, 40101, 'timestamp_skew');
    }
    const session = getSession.get(m[1]);
    if (!session) return fail(reply, 401, 40100, 'session_revoked');
    const contentType = request.headers['content-type'] || '';
    const path = request.url.split('?')[0];
    const toSign = `GET\n\n${contentType}\nx-timestamp:${timestamp}\n${path}`;
    const expected = hmac(Buffer.from(session.secret, 'base64'), toSign);
    if (!safeEqual(expected, Buffer.from(m[2], 'base64'))) return fail(reply, 401, 40102, 'bad_signature');
    if (session.revoked_at !== null) return fail(reply, 401, 40100, 'session_revoked');
    if (session.expires_at <= Date.now()) return fail(reply, 401, 40100, 'session_expired');
    return { identities: [{ type: 'username', endpoint: session.user_id }] };
  });

  fastify.get('/healthz', async () => ({ status: 'ok' }));

  fastify.listen({ host: HOST, port: Number(PORT) }).then(() => {
    // A cluster worker's bind is reported to the primary ('listening' above), which announces once all are bound.
    if (WORKERS === 1) {
      const { address, port } = fastify.server.address();
      announce(address, port);
    }
  }, (error) => {
    console.error(error);
    process.exit(1);
  });

  process.on('SIGTERM', () => fastify.close().then(() => { db.close(); process.exit(0); }));
}
