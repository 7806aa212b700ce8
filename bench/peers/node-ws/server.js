'use strict';
// The realtime peer of docs/benchmarks.md: what a competent JS team would ship for one box without Callbox,
// speaking the same wire as Callbox's /v1/realtime (docs/realtime.md) for every frame the load generator uses:
// challenge -> auth (PROTOCOL §4 signature over "GET\n\n\nx-timestamp:TS\n/v1/realtime/{nonce}" with the session
// secret) -> ready; ping/pong; message.send -> message.accepted (after the commit) -> message to the recipient ->
// message.received -> message.receipt to the sender; the call signaling of docs/calls.md (call.start/answer/
// decline/candidate/hangup/rejoin -> call.placed/incoming/progress/answered/candidate/rejoined/ended). Plus the
// two HTTP calls the load generator makes to set up:
// POST /admin/v1/apps (Bearer admin token) and POST /v1/instance (legacy ticket -> session, PROTOCOL §2, §6).
//
// Design, and why:
// - One process, one event loop: node:http + ws + better-sqlite3 12 (WAL, synchronous=FULL: a commit is on disk
//   when it returns, the durability Callbox promises before `message.accepted`). node:cluster would split the
//   connections over workers, and a 1:1 message whose recipient sits on another worker then needs cross-worker
//   fan-out (IPC or Redis) plus SQLite's single writer lock shared between processes: more moving parts for a
//   2-core box where the second core is busy anyway (here: the load generator). A team would scale out later
//   with Redis pub/sub; on one box they ship this.
// - Group commit per event-loop turn: every write (sends, confirmations) that arrives in one turn is committed in
//   one transaction on setImmediate, then the acks/deliveries/receipts go out. One fsync per turn instead of one
//   per message is the obvious optimisation a team makes once they see fsync in the profile; it keeps the peer
//   honest (durable before the ack) without making it a straw man.
// - Inboxes with per-user sequence numbers (messages and delivered receipts), confirmations, the same limits and
//   per-session rate limit as Callbox's defaults (configurable, like CALLBOX_REALTIME__*), heartbeats and idle
//   close, a bounded outbound buffer (slow reader closed 4503).
//
// - Calls (issue 12): what a Node team builds for one box. Call state in memory in this one process (a Map of
//   calls, each connection's set of call ids), so "first answer wins" is just the first call.answer the event
//   loop runs; candidates relayed as they come; the same limits, timers (answer timeout, rejoin grace) and per-
//   session call.start token bucket as Callbox's defaults. Call records go to the same `calls` table as
//   Callbox's (insert at start, update at answer and at the end) *behind* the signaling, like Callbox: the frames
//   go out at once and the writes of one event-loop turn are committed together on setImmediate (one
//   transaction, one fsync), so no setup waits for a commit.
//
// Environment: PEER_ADMIN_TOKEN (required), PEER_DB (file; default ./peer-ws.db), PEER_LISTEN (default
// 127.0.0.1:0), PEER_MESSAGES_PER_SECOND / PEER_MESSAGE_BURST (default 20 / 40, like Callbox),
// PEER_CALL_ATTEMPTS_PER_MINUTE / PEER_CALL_ATTEMPT_BURST (call.start per session; default 30 / 10, like
// Callbox's calls.attempts_per_minute / calls.attempt_burst), PEER_CALL_RECORDS (`off`: no call records at all;
// only for measuring what the records cost the event loop, docs/benchmarks.md; the comparison keeps them). Prints
// {"event":"listening","url":...} on stdout once bound, like `callbox serve`.

const crypto = require('node:crypto');
const http = require('node:http');
const Database = require('better-sqlite3');
const { WebSocketServer } = require('ws');

const ADMIN_TOKEN = process.env.PEER_ADMIN_TOKEN || '';
if (ADMIN_TOKEN.length < 16) {
  console.error('set PEER_ADMIN_TOKEN (16+ characters)');
  process.exit(2);
}
const [HOST, PORT] = (process.env.PEER_LISTEN || '127.0.0.1:0').split(':');
const TICKET_DEFAULT_TTL = 600, TICKET_MAX_TTL = 86400, TICKET_SKEW = 300, CALL_SKEW = 600;
const LIMITS = {
  maxRecipients: 50, maxTextBytes: 8192, maxHeadersBytes: 1024, maxFrameBytes: 32768,
  messagesPerSecond: Number(process.env.PEER_MESSAGES_PER_SECOND || 20),
  messageBurst: Number(process.env.PEER_MESSAGE_BURST || 40),
};
// docs/calls.md section 6, Callbox's defaults.
const CALLS = {
  answerTimeoutSeconds: 45, graceSeconds: 10, maxConcurrentPerSession: 3, maxSdpBytes: 16384, maxCandidateBytes: 1024,
  attemptsPerMinute: Number(process.env.PEER_CALL_ATTEMPTS_PER_MINUTE || 30),
  attemptBurst: Number(process.env.PEER_CALL_ATTEMPT_BURST || 10),
};
const HEARTBEAT_SECONDS = 15, IDLE_TIMEOUT_SECONDS = 30, AUTH_TIMEOUT_SECONDS = 10;
// A connection whose unsent bytes pass this is a reader that does not drain (Callbox: 256 queued frames).
const MAX_BUFFERED_BYTES = 1024 * 1024;

const db = new Database(process.env.PEER_DB || 'peer-ws.db');
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(`
CREATE TABLE IF NOT EXISTS apps (key TEXT PRIMARY KEY, secret TEXT NOT NULL, name TEXT NOT NULL,
  session_ttl INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, app_key TEXT NOT NULL, user_id TEXT NOT NULL,
  secret TEXT NOT NULL, capabilities TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
  revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS inbox (app_key TEXT NOT NULL, user_id TEXT NOT NULL, seq INTEGER NOT NULL,
  kind TEXT NOT NULL, message_id TEXT NOT NULL, sender_id TEXT NOT NULL, recipient_ids TEXT NOT NULL,
  text TEXT, headers TEXT, status TEXT, timestamp TEXT NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (app_key, user_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls (id TEXT PRIMARY KEY, app_key TEXT NOT NULL, caller_id TEXT NOT NULL,
  callee_id TEXT NOT NULL, started_at INTEGER NOT NULL, answered_at INTEGER, ended_at INTEGER, end_cause TEXT,
  ended_by TEXT);
CREATE INDEX IF NOT EXISTS calls_by_app ON calls (app_key, started_at);
CREATE INDEX IF NOT EXISTS calls_by_caller ON calls (app_key, caller_id, started_at);
CREATE INDEX IF NOT EXISTS calls_by_callee ON calls (app_key, callee_id, started_at);
`);
const q = {
  insertApp: db.prepare('INSERT INTO apps (key, secret, name, session_ttl, created_at) VALUES (?, ?, ?, ?, ?)'),
  getApp: db.prepare('SELECT * FROM apps WHERE key = ?'),
  insertSession: db.prepare(`INSERT INTO sessions (id, app_key, user_id, secret, capabilities, created_at,
    expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
  getSession: db.prepare('SELECT * FROM sessions WHERE id = ?'),
  lastSeq: db.prepare('SELECT coalesce(max(seq), 0) AS seq FROM inbox WHERE app_key = ? AND user_id = ?'),
  append: db.prepare(`INSERT INTO inbox (app_key, user_id, seq, kind, message_id, sender_id, recipient_ids, text,
    headers, status, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
  confirm: db.prepare(`UPDATE inbox SET confirmed = 1 WHERE app_key = ? AND user_id = ? AND seq = ?
    AND message_id = ? AND kind = 'message' AND confirmed = 0 RETURNING sender_id`),
  exists: db.prepare(`SELECT 1 FROM inbox WHERE app_key = ? AND user_id = ? AND seq = ? AND message_id = ?
    AND kind = 'message'`),
  unconfirmed: db.prepare(`SELECT * FROM inbox WHERE app_key = ? AND user_id = ? AND kind = 'message'
    AND confirmed = 0 ORDER BY seq`),
  after: db.prepare('SELECT * FROM inbox WHERE app_key = ? AND user_id = ? AND seq > ? ORDER BY seq'),
  callPlaced: db.prepare(`INSERT INTO calls (id, app_key, caller_id, callee_id, started_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING`),
  callAnswered: db.prepare('UPDATE calls SET answered_at = ? WHERE id = ? AND answered_at IS NULL'),
  callEnded: db.prepare(`UPDATE calls SET ended_at = ?, end_cause = ?, ended_by = ? WHERE id = ?
    AND ended_at IS NULL`),
};

const nowIso = () => new Date().toISOString();
const secondsIso = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const safeEqual = (a, b) => a.length === b.length && crypto.timingSafeEqual(a, b);

const REASONS = {
  malformed_request: [400, 40000], payload_too_large: [413, 41300], missing_authorization: [401, 40100],
  malformed_authorization: [401, 40100], malformed_ticket: [401, 40100], unknown_application: [401, 40100],
  ticket_ttl_exceeds_max: [401, 40100], ticket_expired: [401, 40101], ticket_not_yet_valid: [401, 40101],
  timestamp_skew: [401, 40101], bad_signature: [401, 40102], session_revoked: [401, 40100],
  session_expired: [401, 40100], capability_not_granted: [403, 40300], rate_limited: [429, 42900],
  not_found: [404, 40400], service_unavailable: [503, 50300], call_already_answered: [409, 40900],
  too_many_calls: [429, 42900],
};
function errorBody(reason, extra) {
  const [status, code] = REASONS[reason];
  return { status, body: { errorCode: code, message: reason.replace(/_/g, ' '), reason,
    retryable: reason === 'rate_limited' || reason === 'service_unavailable' || reason === 'too_many_calls',
    serverTime: secondsIso(), ...extra } };
}

// ---- HTTP: the two set-up calls ----

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
function fail(res, reason) {
  const { status, body } = errorBody(reason);
  reply(res, status, body);
}
function field(obj, name) {
  for (const k of Object.keys(obj)) if (k.toLowerCase() === name.toLowerCase()) return obj[k];
  return undefined;
}
function parseCreated(text) {
  if (typeof text !== 'string') return NaN;
  return Date.parse(/([zZ]|[+-]\d\d:?\d\d)$/.test(text) ? text : text + 'Z');
}

function createApp(req, res, body) {
  const auth = req.headers.authorization || '';
  const m = /^bearer\s+(.+)$/i.exec(auth);
  if (!m) return fail(res, 'missing_authorization');
  if (!safeEqual(Buffer.from(m[1]), Buffer.from(ADMIN_TOKEN))) return fail(res, 'bad_signature');
  const key = crypto.randomUUID();
  const secret = crypto.randomBytes(32).toString('base64');
  const ttl = Number.isInteger(body.sessionTtl) && body.sessionTtl > 0 ? body.sessionTtl : 86400;
  q.insertApp.run(key, secret, String(body.name || 'app'), ttl, Date.now());
  reply(res, 201, { application: { applicationKey: key, name: body.name, sessionTtl: ttl }, applicationSecret: secret });
}

function createInstance(req, res, body) {
  const m = /^user\s+(.+)$/i.exec(req.headers.authorization || '');
  if (!m) return fail(res, 'missing_authorization');
  const ticket = m[1];
  const colon = ticket.indexOf(':');
  if (ticket.length > 8192 || colon < 0) return fail(res, 'malformed_ticket');
  const data = Buffer.from(ticket.slice(0, colon), 'base64');
  let claims;
  try {
    claims = JSON.parse(data.toString('utf8'));
  } catch {
    return fail(res, 'malformed_ticket');
  }
  const app = typeof field(claims, 'applicationKey') === 'string' && q.getApp.get(field(claims, 'applicationKey'));
  if (!app) return fail(res, 'unknown_application');
  if (!safeEqual(hmac(Buffer.from(app.secret, 'base64'), data), Buffer.from(ticket.slice(colon + 1), 'base64'))) {
    return fail(res, 'bad_signature');
  }
  const userId = field(field(claims, 'identity') || {}, 'endpoint');
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 255) return fail(res, 'malformed_ticket');
  const created = parseCreated(field(claims, 'created'));
  if (Number.isNaN(created)) return fail(res, 'malformed_ticket');
  const ttl = field(claims, 'expiresIn') ?? TICKET_DEFAULT_TTL;
  if (ttl > TICKET_MAX_TTL) return fail(res, 'ticket_ttl_exceeds_max');
  const now = Date.now();
  if (now < created - TICKET_SKEW * 1000) return fail(res, 'ticket_not_yet_valid');
  if (now > created + (ttl + TICKET_SKEW) * 1000) return fail(res, 'ticket_expired');
  const services = (body && body.services) || {};
  const capabilities = [];
  if (services.im) capabilities.push('messaging');
  if (services.voip || services.p2p || services.srtp) capabilities.push('calling');
  const id = crypto.randomUUID();
  const secret = crypto.randomBytes(32).toString('base64');
  q.insertSession.run(id, app.key, userId, secret, capabilities.join(','), now, now + app.session_ttl * 1000);
  reply(res, 200, { id, secret, expiresIn: app.session_ttl, capabilities });
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/healthz') return reply(res, 200, { status: 'ok' });
  if (req.method === 'GET' && path === '/v1/realtime') return fail(res, 'malformed_request');
  const handler = req.method === 'POST' && { '/admin/v1/apps': createApp, '/v1/instance': createInstance }[path];
  if (!handler) return reply(res, 404, errorBody('not_found').body);
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > 64 * 1024) req.destroy();
    else chunks.push(chunk);
  });
  req.on('end', () => {
    let body = {};
    try {
      if (size > 0) body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return fail(res, 'malformed_request');
    }
    if (body === null || typeof body !== 'object') return fail(res, 'malformed_request');
    handler(req, res, body);
  });
});

// ---- Realtime ----

const wss = new WebSocketServer({ server, path: '/v1/realtime', maxPayload: 2 * LIMITS.maxFrameBytes,
  perMessageDeflate: false, clientTracking: false });
const live = new Map(); // `${appKey}\n${userId}` -> Set of authenticated sockets
const lastSeqs = new Map(); // same key -> highest seq committed (loaded once from the inbox)
const buckets = new Map(); // session id -> { tokens, at }: the rate limit, shared by a session's connections

function nextSeq(key, appKey, userId) {
  let seq = lastSeqs.get(key);
  if (seq === undefined) seq = q.lastSeq.get(appKey, userId).seq;
  lastSeqs.set(key, seq + 1);
  return seq + 1;
}

function send(ws, frame) {
  if (ws.readyState !== ws.OPEN) return;
  if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    sendError(ws, 'service_unavailable');
    ws.close(4503, 'service_unavailable');
    return;
  }
  ws.send(JSON.stringify(frame));
}
function sendError(ws, reason, ref, extra) {
  const { body } = errorBody(reason, extra);
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'error', ...(ref ? { ref } : {}), ...body }));
}
function refuse(ws, reason) {
  sendError(ws, reason);
  ws.close(4000 + REASONS[reason][0], reason);
}
function toUser(key, frame, except) {
  const sockets = live.get(key);
  if (sockets) for (const ws of sockets) if (ws !== except) send(ws, frame);
}

function entryFrame(row) {
  if (row.kind === 'message') {
    return { type: 'message', messageId: row.message_id, seq: row.seq, senderId: row.sender_id,
      recipientIds: JSON.parse(row.recipient_ids), text: row.text, headers: JSON.parse(row.headers),
      timestamp: row.timestamp };
  }
  return { type: 'message.receipt', messageId: row.message_id, recipientId: row.sender_id, status: row.status,
    seq: row.seq, timestamp: row.timestamp };
}

// Writes that arrived in this event-loop turn, committed together in one transaction (one fsync).
let pending = [];
function enqueue(work) {
  pending.push(work);
  if (pending.length === 1) setImmediate(flush);
}
const commit = db.transaction((batch) => {
  for (const work of batch) work.write();
});
function flush() {
  const batch = pending;
  pending = [];
  try {
    commit(batch);
  } catch (error) {
    // The transaction rolled back: nothing of this batch is durable, so nothing is acknowledged.
    console.error('commit failed:', error.message);
    lastSeqs.clear();
    for (const work of batch) sendError(work.ws, 'service_unavailable', work.ref);
    return;
  }
  for (const work of batch) work.after();
}

function takeToken(sessionId) {
  const now = Date.now();
  let bucket = buckets.get(sessionId);
  if (!bucket) {
    bucket = { tokens: LIMITS.messageBurst, at: now };
    buckets.set(sessionId, bucket);
  }
  bucket.tokens = Math.min(LIMITS.messageBurst, bucket.tokens + ((now - bucket.at) / 1000) * LIMITS.messagesPerSecond);
  bucket.at = now;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

const validId = (id) => typeof id === 'string' && id.length > 0 && Buffer.byteLength(id) <= 255 && !/[\x00-\x1f\x7f]/.test(id);

function onSend(ws, frame) {
  const s = ws.session;
  const ref = frame.ref;
  if (!s.messaging) return sendError(ws, 'capability_not_granted', ref);
  let recipients = typeof frame.recipients === 'string' ? [frame.recipients] : frame.recipients;
  if (!Array.isArray(recipients) || recipients.length === 0 || !recipients.every(validId)) {
    return sendError(ws, 'malformed_request', ref);
  }
  recipients = [...new Set(recipients)];
  if (recipients.length > LIMITS.maxRecipients) return sendError(ws, 'payload_too_large', ref);
  if (typeof frame.text !== 'string') return sendError(ws, 'malformed_request', ref);
  if (Buffer.byteLength(frame.text) > LIMITS.maxTextBytes) return sendError(ws, 'payload_too_large', ref);
  const headers = frame.headers === undefined ? {} : frame.headers;
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    return sendError(ws, 'malformed_request', ref);
  }
  const headersJson = JSON.stringify(headers);
  if (Buffer.byteLength(headersJson) > LIMITS.maxHeadersBytes) return sendError(ws, 'payload_too_large', ref);
  if (!takeToken(s.id)) return sendError(ws, 'rate_limited', ref, { retryAfter: 1 });
  const messageId = crypto.randomUUID();
  const timestamp = nowIso();
  const recipientIds = JSON.stringify(recipients);
  const seqs = [];
  enqueue({
    ws, ref,
    write() {
      for (const to of recipients) {
        const seq = nextSeq(`${s.appKey}\n${to}`, s.appKey, to);
        q.append.run(s.appKey, to, seq, 'message', messageId, s.userId, recipientIds, frame.text, headersJson,
          null, timestamp);
        seqs.push(seq);
      }
    },
    after() {
      send(ws, { type: 'message.accepted', ...(ref !== undefined ? { ref } : {}), messageId, timestamp, recipientIds: recipients });
      const base = { type: 'message', messageId, senderId: s.userId, recipientIds: recipients, text: frame.text, headers, timestamp };
      recipients.forEach((to, i) => toUser(`${s.appKey}\n${to}`, { ...base, seq: seqs[i] }));
      // The sender's other devices get a live copy without seq (it is not in the sender's inbox).
      if (!recipients.includes(s.userId)) {
        const { seq, ...copy } = base;
        toUser(s.key, copy, ws);
      }
    },
  });
}

function onReceived(ws, frame) {
  const s = ws.session;
  if (!s.messaging) return sendError(ws, 'capability_not_granted', frame.ref);
  if (typeof frame.messageId !== 'string' || !Number.isInteger(frame.seq) || frame.seq < 1) {
    return sendError(ws, 'malformed_request', frame.ref);
  }
  let receipt = null, known = true;
  enqueue({
    ws, ref: frame.ref,
    write() {
      const row = q.confirm.get(s.appKey, s.userId, frame.seq, frame.messageId);
      if (!row) {
        known = !!q.exists.get(s.appKey, s.userId, frame.seq, frame.messageId);
        return;
      }
      const senderKey = `${s.appKey}\n${row.sender_id}`;
      const seq = nextSeq(senderKey, s.appKey, row.sender_id);
      const timestamp = nowIso();
      q.append.run(s.appKey, row.sender_id, seq, 'receipt', frame.messageId, s.userId, '[]', null, null,
        'delivered', timestamp);
      receipt = { key: senderKey, frame: { type: 'message.receipt', messageId: frame.messageId, recipientId: s.userId,
        status: 'delivered', seq, timestamp } };
    },
    after() {
      if (receipt) toUser(receipt.key, receipt.frame);
      else if (!known) sendError(ws, 'not_found', frame.ref);
    },
  });
}

// ---- Calls (docs/calls.md) ----

const calls = new Map(); // call id -> the call's state (below)
const sessionCalls = new Map(); // session id -> Set of the call ids it takes part in
const callBuckets = new Map(); // session id -> { tokens, at }: call.start per session

// A UUIDv7 (docs/calls.md: callId is one): 48 bits of Unix milliseconds, version 7, variant 10, random bits.
function uuidv7() {
  const bytes = crypto.randomBytes(16);
  const ms = Date.now();
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Record writes of this event-loop turn, committed together after the frames went out (behind the signaling).
let recordWrites = [];
const commitRecords = db.transaction((batch) => {
  for (const write of batch) write();
});
const CALL_RECORDS = process.env.PEER_CALL_RECORDS !== 'off';
function record(write) {
  if (!CALL_RECORDS) return;
  recordWrites.push(write);
  if (recordWrites.length === 1) {
    setImmediate(() => {
      const batch = recordWrites;
      recordWrites = [];
      try {
        commitRecords(batch);
      } catch (error) {
        // Like Callbox: a lost record does not end a call (the signaling never waited for it).
        console.error('call records not written:', error.message);
      }
    });
  }
}

function takeCallToken(sessionId) {
  const now = Date.now();
  let bucket = callBuckets.get(sessionId);
  if (!bucket) {
    bucket = { tokens: CALLS.attemptBurst, at: now };
    callBuckets.set(sessionId, bucket);
  }
  bucket.tokens = Math.min(CALLS.attemptBurst, bucket.tokens + ((now - bucket.at) / 60000) * CALLS.attemptsPerMinute);
  bucket.at = now;
  if (bucket.tokens < 1) return Math.ceil((1 - bucket.tokens) * 60 / CALLS.attemptsPerMinute);
  bucket.tokens -= 1;
  return 0;
}

function join(ws, call) {
  ws.calls.add(call.id);
}
function leave(ws, call) {
  if (ws && ws.calls) ws.calls.delete(call.id);
}
function addSessionCall(sessionId, id) {
  let set = sessionCalls.get(sessionId);
  if (!set) sessionCalls.set(sessionId, (set = new Set()));
  set.add(id);
}
function dropSessionCall(sessionId, id) {
  const set = sessionCalls.get(sessionId);
  if (set && set.delete(id) && set.size === 0) sessionCalls.delete(sessionId);
}

// Everyone on the callee's side: the answering connection, or every ringing device.
function calleeSide(call) {
  return call.callee ? [call.callee] : [...call.ringing];
}

function endCall(call, cause, endedBy, detail) {
  calls.delete(call.id);
  clearTimeout(call.timer);
  for (const timer of Object.values(call.lost)) clearTimeout(timer);
  const endedAt = Date.now();
  const frame = { type: 'call.ended', callId: call.id, cause, endedBy, startedAt: new Date(call.startedAt).toISOString(),
    answeredAt: call.answeredAt === null ? null : new Date(call.answeredAt).toISOString(),
    endedAt: new Date(endedAt).toISOString(), durationMs: call.answeredAt === null ? 0 : endedAt - call.answeredAt,
    ...(detail ? { detail } : {}) };
  for (const ws of [call.caller, ...calleeSide(call)]) {
    if (ws && ws.calls && ws.calls.has(call.id)) {
      send(ws, frame);
      leave(ws, call);
    }
  }
  dropSessionCall(call.callerSession, call.id);
  if (call.calleeSession) dropSessionCall(call.calleeSession, call.id);
  record(() => q.callEnded.run(endedAt, cause, endedBy, call.id));
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function onCall(ws, frame) {
  const s = ws.session;
  const ref = frame.ref;
  if (!s.calling) return sendError(ws, 'capability_not_granted', ref);
  if (frame.type === 'call.start') return onCallStart(ws, frame);
  if (typeof frame.callId !== 'string' || frame.callId === '' || frame.callId.length > 64) {
    return sendError(ws, 'malformed_request', ref);
  }
  if (frame.cause !== undefined && frame.cause !== null && typeof frame.cause !== 'string') {
    return sendError(ws, 'malformed_request', ref);
  }
  const call = calls.get(frame.callId);
  if (frame.type === 'call.rejoin') return onCallRejoin(ws, frame, call);
  // After call.ended (or for another user's call) the id is unknown on this connection.
  if (!call || !ws.calls.has(call.id)) return sendError(ws, 'not_found', ref);
  const isCaller = call.caller === ws;
  switch (frame.type) {
    case 'call.answer': {
      if (isCaller) return sendError(ws, 'not_found', ref);
      if (typeof frame.sdp !== 'string' || frame.sdp === '') return sendError(ws, 'malformed_request', ref);
      if (Buffer.byteLength(frame.sdp) > CALLS.maxSdpBytes) return sendError(ws, 'payload_too_large', ref);
      if (call.callee) return sendError(ws, 'call_already_answered', ref);
      const now = Date.now();
      call.answeredAt = now;
      call.answerSdp = frame.sdp; // for a caller that rejoins (call.rejoined carries it)
      call.callee = ws;
      call.calleeSession = s.id;
      addSessionCall(s.id, call.id);
      clearTimeout(call.timer);
      call.timer = null;
      const answeredAt = new Date(now).toISOString();
      send(call.caller, { type: 'call.answered', callId: call.id, answeredAt, sdp: frame.sdp });
      send(ws, { type: 'call.answered', callId: call.id, answeredAt });
      const others = { type: 'call.ended', callId: call.id, cause: 'other_device_answered', endedBy: 'callee',
        startedAt: new Date(call.startedAt).toISOString(), answeredAt, endedAt: answeredAt, durationMs: 0 };
      for (const device of call.ringing) {
        if (device !== ws) {
          send(device, others);
          leave(device, call);
        }
      }
      call.ringing.clear();
      record(() => q.callAnswered.run(now, call.id));
      return undefined;
    }
    case 'call.decline':
      if (isCaller) return sendError(ws, 'not_found', ref);
      if (call.callee) return sendError(ws, 'call_already_answered', ref);
      return endCall(call, 'denied', 'callee');
    case 'call.candidate': {
      if (!isObject(frame.candidate)) return sendError(ws, 'malformed_request', ref);
      if (Buffer.byteLength(JSON.stringify(frame.candidate)) > CALLS.maxCandidateBytes) {
        return sendError(ws, 'payload_too_large', ref);
      }
      if (!isCaller && call.callee !== ws) {
        return sendError(ws, 'malformed_request', ref); // a ringing device: candidates come after call.answer
      }
      const relayed = { type: 'call.candidate', callId: call.id, candidate: frame.candidate };
      for (const to of isCaller ? calleeSide(call) : [call.caller]) if (to) send(to, relayed);
      return undefined;
    }
    case 'call.hangup': {
      const answered = call.callee !== null;
      const cause = frame.cause === 'failure' ? 'failure' : answered ? 'hung_up' : isCaller ? 'canceled' : 'denied';
      return endCall(call, cause, isCaller ? 'caller' : 'callee');
    }
    default:
      return undefined;
  }
}

function onCallStart(ws, frame) {
  const s = ws.session;
  const ref = frame.ref;
  // Like Callbox: a call needs another user than the caller, and a non-empty SDP.
  if (!validId(frame.calleeId) || frame.calleeId === s.userId || typeof frame.sdp !== 'string' || frame.sdp === '') {
    return sendError(ws, 'malformed_request', ref);
  }
  if (frame.headers !== undefined && !isObject(frame.headers)) return sendError(ws, 'malformed_request', ref);
  if (Buffer.byteLength(frame.sdp) > CALLS.maxSdpBytes) return sendError(ws, 'payload_too_large', ref);
  const headers = frame.headers === undefined ? {} : frame.headers;
  if (Buffer.byteLength(JSON.stringify(headers)) > LIMITS.maxHeadersBytes) return sendError(ws, 'payload_too_large', ref);
  const wait = takeCallToken(s.id);
  if (wait > 0) return sendError(ws, 'rate_limited', ref, { retryAfter: wait });
  const taking = sessionCalls.get(s.id);
  if (taking && taking.size >= CALLS.maxConcurrentPerSession) return sendError(ws, 'too_many_calls', ref);
  const id = uuidv7();
  const startedAt = Date.now();
  const startedIso = new Date(startedAt).toISOString();
  const call = { id, appKey: s.appKey, callerId: s.userId, calleeId: frame.calleeId, caller: ws, callerSession: s.id,
    callee: null, calleeSession: null, ringing: new Set(), startedAt, answeredAt: null, timer: null, lost: {} };
  calls.set(id, call);
  addSessionCall(s.id, id);
  join(ws, call);
  record(() => q.callPlaced.run(id, s.appKey, s.userId, frame.calleeId, startedAt));
  send(ws, { type: 'call.placed', ...(ref !== undefined ? { ref } : {}), callId: id, calleeId: frame.calleeId,
    startedAt: startedIso });
  // Every live calling connection of the callee but the caller's own session (calling another of one's devices).
  const devices = [...(live.get(`${s.appKey}\n${frame.calleeId}`) || [])]
    .filter((d) => d.session.calling && d.session.id !== s.id);
  if (devices.length === 0) return endCall(call, 'no_answer', 'server', 'unavailable');
  const incoming = { type: 'call.incoming', callId: id, callerId: s.userId, calleeId: frame.calleeId, sdp: frame.sdp,
    headers, startedAt: startedIso };
  for (const device of devices) {
    call.ringing.add(device);
    join(device, call);
    send(device, incoming);
  }
  send(ws, { type: 'call.progress', callId: id, state: 'ringing' });
  call.timer = setTimeout(() => {
    if (calls.get(id) === call && !call.callee) endCall(call, 'no_answer', 'server');
  }, CALLS.answerTimeoutSeconds * 1000);
  return undefined;
}

// A connection taking part in `id` closed: a ringing device just stops ringing; the caller or the answering callee
// has `graceSeconds` to call.rejoin from a new connection of the same session.
function callLost(ws, id) {
  const call = calls.get(id);
  if (!call) return;
  if (call.ringing.delete(ws)) return;
  const side = call.caller === ws ? 'caller' : call.callee === ws ? 'callee' : null;
  if (!side) return;
  clearTimeout(call.lost[side]);
  call.lost[side] = setTimeout(() => {
    if (calls.get(id) === call) endCall(call, 'timeout', 'server');
  }, CALLS.graceSeconds * 1000);
}

function onCallRejoin(ws, frame, call) {
  const s = ws.session;
  const ref = frame.ref;
  if (!call || call.appKey !== s.appKey) return sendError(ws, 'not_found', ref);
  if (ws.calls.has(call.id)) return sendError(ws, 'malformed_request', ref);
  let side = null;
  if (s.id === call.callerSession) side = 'caller';
  else if (call.callee && s.id === call.calleeSession) side = 'callee';
  if (!side) {
    if (!call.callee && s.userId === call.calleeId && s.id !== call.callerSession) {
      call.ringing.add(ws); // a ringing device that reconnected rings again
      join(ws, call);
      return send(ws, { type: 'call.rejoined', ...(ref !== undefined ? { ref } : {}), callId: call.id, state: 'ringing' });
    }
    return sendError(ws, 'not_found', ref);
  }
  clearTimeout(call.lost[side]);
  delete call.lost[side];
  leave(side === 'caller' ? call.caller : call.callee, call);
  if (side === 'caller') call.caller = ws;
  else call.callee = ws;
  join(ws, call);
  // A caller of an answered call gets the answer again: it may have missed call.answered while away.
  const missed = side === 'caller' && call.callee
    ? { answeredAt: new Date(call.answeredAt).toISOString(), sdp: call.answerSdp } : {};
  return send(ws, { type: 'call.rejoined', ...(ref !== undefined ? { ref } : {}), callId: call.id,
    state: call.callee ? 'answered' : 'ringing', ...missed });
}

function onAuth(ws, frame) {
  if (typeof frame.sessionId !== 'string' || typeof frame.signature !== 'string') {
    return refuse(ws, 'malformed_authorization');
  }
  if (frame.resumeAfter !== undefined && !(Number.isInteger(frame.resumeAfter) && frame.resumeAfter >= 0)) {
    return refuse(ws, 'malformed_request');
  }
  const at = typeof frame.timestamp === 'string' ? Date.parse(frame.timestamp) : NaN;
  if (Number.isNaN(at) || Math.abs(Date.now() - at) > CALL_SKEW * 1000) return refuse(ws, 'timestamp_skew');
  const row = q.getSession.get(frame.sessionId);
  if (!row) return refuse(ws, 'session_revoked');
  const toSign = `GET\n\n\nx-timestamp:${frame.timestamp}\n/v1/realtime/${ws.nonce}`;
  if (!safeEqual(hmac(Buffer.from(row.secret, 'base64'), toSign), Buffer.from(frame.signature, 'base64'))) {
    return refuse(ws, 'bad_signature');
  }
  if (row.revoked_at !== null) return refuse(ws, 'session_revoked');
  if (row.expires_at <= Date.now()) return refuse(ws, 'session_expired');
  const capabilities = row.capabilities ? row.capabilities.split(',') : [];
  const key = `${row.app_key}\n${row.user_id}`;
  ws.session = { id: row.id, appKey: row.app_key, userId: row.user_id, key, messaging: capabilities.includes('messaging'),
    calling: capabilities.includes('calling') };
  ws.calls = new Set();
  clearTimeout(ws.authTimer);
  ws.authTimer = null;
  let sockets = live.get(key);
  if (!sockets) live.set(key, (sockets = new Set()));
  sockets.add(ws);
  const messaging = ws.session.messaging;
  const lastSeq = messaging ? (lastSeqs.get(key) ?? q.lastSeq.get(row.app_key, row.user_id).seq) : 0;
  send(ws, { type: 'ready', sessionId: row.id, userId: row.user_id, capabilities,
    expiresAt: new Date(row.expires_at).toISOString(), heartbeatSeconds: HEARTBEAT_SECONDS, lastSeq, limits: LIMITS });
  if (messaging) {
    const rows = frame.resumeAfter === undefined ? q.unconfirmed.all(row.app_key, row.user_id)
      : q.after.all(row.app_key, row.user_id, frame.resumeAfter);
    for (const entry of rows) if (entry.seq <= lastSeq) send(ws, entryFrame(entry));
  }
}

function onFrame(ws, data, isBinary) {
  ws.seen = Date.now();
  if (data.length > LIMITS.maxFrameBytes) {
    sendError(ws, 'payload_too_large');
    ws.close(4413, 'payload_too_large');
    return;
  }
  let frame;
  try {
    frame = isBinary ? null : JSON.parse(data.toString('utf8'));
  } catch {
    frame = null;
  }
  const valid = frame !== null && typeof frame === 'object' && !Array.isArray(frame) && typeof frame.type === 'string';
  if (!ws.session) {
    if (!valid) return refuse(ws, 'malformed_request');
    if (frame.type !== 'auth') return refuse(ws, 'missing_authorization');
    return onAuth(ws, frame);
  }
  if (!valid) return sendError(ws, 'malformed_request');
  if (frame.ref !== undefined && !(typeof frame.ref === 'string' && Buffer.byteLength(frame.ref) <= 128)) {
    return sendError(ws, 'malformed_request');
  }
  switch (frame.type) {
    case 'ping': return send(ws, { type: 'pong' });
    case 'pong': return undefined;
    case 'message.send': return onSend(ws, frame);
    case 'message.received': return onReceived(ws, frame);
    case 'call.start': case 'call.answer': case 'call.decline': case 'call.candidate': case 'call.hangup':
    case 'call.rejoin':
      return onCall(ws, frame);
    default: return sendError(ws, 'malformed_request', frame.ref);
  }
}

const authenticated = new Set();
wss.on('connection', (ws) => {
  ws.nonce = crypto.randomBytes(18).toString('base64url');
  ws.seen = Date.now();
  ws.session = null;
  ws.authTimer = setTimeout(() => {
    sendError(ws, 'missing_authorization');
    ws.close(4408, 'missing_authorization');
  }, AUTH_TIMEOUT_SECONDS * 1000);
  ws.on('message', (data, isBinary) => {
    onFrame(ws, data, isBinary);
    if (ws.session && !authenticated.has(ws)) authenticated.add(ws);
  });
  ws.on('pong', () => { ws.seen = Date.now(); });
  ws.on('error', () => {});
  ws.on('close', () => {
    if (ws.authTimer) clearTimeout(ws.authTimer);
    authenticated.delete(ws);
    if (ws.session) {
      for (const id of ws.calls) callLost(ws, id);
      const sockets = live.get(ws.session.key);
      if (sockets) {
        sockets.delete(ws);
        if (sockets.size === 0) live.delete(ws.session.key);
      }
    }
  });
  send(ws, { type: 'challenge', nonce: ws.nonce, serverTime: nowIso() });
});

// One timer for every connection (not one per socket): ping, and close those silent past the idle timeout.
setInterval(() => {
  const cutoff = Date.now() - IDLE_TIMEOUT_SECONDS * 1000;
  for (const ws of authenticated) {
    if (ws.seen < cutoff) {
      sendError(ws, 'service_unavailable');
      ws.close(4408, 'heartbeat_timeout');
    } else {
      send(ws, { type: 'ping' });
    }
  }
}, HEARTBEAT_SECONDS * 1000).unref();

server.listen(Number(PORT), HOST, () => {
  const { address, port } = server.address();
  process.stdout.write(JSON.stringify({ event: 'listening', url: `http://${address}:${port}` }) + '\n');
});

process.on('SIGTERM', () => {
  server.close();
  db.close();
  process.exit(0);
});
