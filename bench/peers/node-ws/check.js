'use strict';
// A self-check of the peer (`node check.js`): starts server.js on 127.0.0.1:0 with a temporary database and
// asserts that a forged ticket and a wrong session secret are refused, that a correct signature gets `ready`, and
// that a message is acknowledged, delivered with seq 1, and its confirmation yields a stored receipt; and that a
// call (docs/calls.md) is placed, rings both callee devices, is answered by one (the other gets
// other_device_answered, its late answer not_found), relays a candidate each way, ends hung_up on both sides and
// leaves its record; that a caller who drops after the answer rejoins and gets the answer again; that call
// frames need `calling`, an absent callee is unavailable at once, and call.start is
// rate limited per session (burst 10 by default).
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const TOKEN = crypto.randomBytes(18).toString('base64url');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-ws-check-'));
const server = spawn(process.execPath, [path.join(__dirname, 'server.js')], {
  env: { ...process.env, PEER_ADMIN_TOKEN: TOKEN, PEER_DB: path.join(dir, 'peer.db') }, stdio: ['ignore', 'pipe', 'inherit'],
});
const hmac = (key, data) => crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(data).digest('base64');

function connect(url, session, secret) {
  const ws = new WebSocket(url.replace('http', 'ws') + '/v1/realtime');
  const frames = [];
  const waiters = [];
  ws.on('message', (data) => {
    const frame = JSON.parse(data);
    if (frame.type === 'challenge') {
      const ts = new Date().toISOString();
      ws.send(JSON.stringify({ type: 'auth', sessionId: session.id, timestamp: ts,
        signature: hmac(secret, `GET\n\n\nx-timestamp:${ts}\n/v1/realtime/${frame.nonce}`) }));
      return;
    }
    frames.push(frame);
    waiters.splice(0).forEach((w) => w());
  });
  ws.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.next = async (type) => {
    for (;;) {
      const i = frames.findIndex((f) => f.type === type);
      if (i >= 0) return frames.splice(i, 1)[0];
      await Promise.race([new Promise((r) => waiters.push(r)), ws.closed.then(() => { throw new Error(`closed before ${type}`); })]);
    }
  };
  return ws;
}

async function main(url) {
  const app = await (await fetch(url + '/admin/v1/apps', { method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` }, body: '{"name":"check"}' })).json();
  const noAdmin = await fetch(url + '/admin/v1/apps', { method: 'POST', headers: { authorization: 'Bearer nope' } });
  assert.equal(noAdmin.status, 401);
  const ticket = (user, secret) => {
    const claims = Buffer.from(JSON.stringify({ applicationKey: app.application.applicationKey,
      identity: { type: 'username', endpoint: user }, created: new Date().toISOString(), expiresIn: 600 }));
    return `User ${claims.toString('base64')}:${hmac(secret, claims)}`;
  };
  const session = async (user, services = '{"im":true}') => (await fetch(url + '/v1/instance', { method: 'POST',
    headers: { authorization: ticket(user, app.applicationSecret) }, body: `{"services":${services}}` })).json();
  const forged = await fetch(url + '/v1/instance', { method: 'POST',
    headers: { authorization: ticket('alice', crypto.randomBytes(32).toString('base64')) } });
  assert.equal(forged.status, 401);
  assert.equal((await forged.json()).reason, 'bad_signature');

  const alice = await session('alice');
  const bob = await session('bob');
  const wrong = connect(url, alice, crypto.randomBytes(32).toString('base64'));
  assert.equal((await wrong.next('error')).reason, 'bad_signature');
  assert.deepEqual(await wrong.closed, { code: 4401, reason: 'bad_signature' });

  const a = connect(url, alice, alice.secret);
  const b = connect(url, bob, bob.secret);
  assert.equal((await a.next('ready')).userId, 'alice');
  assert.equal((await b.next('ready')).lastSeq, 0);
  a.send(JSON.stringify({ type: 'message.send', ref: 'r1', recipients: ['bob'], text: 'hi' }));
  const accepted = await a.next('message.accepted');
  assert.equal(accepted.ref, 'r1');
  assert.deepEqual(accepted.recipientIds, ['bob']);
  const message = await b.next('message');
  assert.equal(message.messageId, accepted.messageId);
  assert.equal(message.seq, 1);
  assert.equal(message.text, 'hi');
  b.send(JSON.stringify({ type: 'message.received', messageId: message.messageId, seq: 1 }));
  const receipt = await a.next('message.receipt');
  assert.equal(receipt.status, 'delivered');
  assert.equal(receipt.recipientId, 'bob');
  assert.equal(receipt.seq, 1);
  b.send(JSON.stringify({ type: 'message.received', messageId: crypto.randomUUID(), seq: 9 }));
  assert.equal((await b.next('error')).reason, 'not_found');

  // Calls.
  a.send(JSON.stringify({ type: 'call.start', ref: 'nc', calleeId: 'bob', sdp: 'v=0' }));
  assert.equal((await a.next('error')).reason, 'capability_not_granted'); // alice asked for im only
  a.close();
  b.close();
  const dave = await session('dave', '{"im":true,"voip":true}');
  const erin = await session('erin', '{"voip":true}');
  const caller = connect(url, dave, dave.secret);
  const erin1 = connect(url, erin, erin.secret);
  const erin2 = connect(url, erin, erin.secret);
  assert.deepEqual((await caller.next('ready')).capabilities, ['messaging', 'calling']);
  await erin1.next('ready');
  await erin2.next('ready');
  caller.send(JSON.stringify({ type: 'call.start', ref: 'c1', calleeId: 'erin', sdp: 'v=0 offer' }));
  const placed = await caller.next('call.placed');
  assert.equal(placed.ref, 'c1');
  assert.match(placed.callId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const callId = placed.callId;
  for (const device of [erin1, erin2]) {
    const incoming = await device.next('call.incoming');
    assert.deepEqual([incoming.callId, incoming.callerId, incoming.sdp], [callId, 'dave', 'v=0 offer']);
  }
  assert.equal((await caller.next('call.progress')).state, 'ringing');
  erin1.send(JSON.stringify({ type: 'call.candidate', ref: 'early', callId, candidate: { candidate: 'x' } }));
  assert.equal((await erin1.next('error')).reason, 'malformed_request');
  erin1.send(JSON.stringify({ type: 'call.answer', callId, sdp: 'v=0 answer' }));
  assert.equal((await caller.next('call.answered')).sdp, 'v=0 answer');
  assert.equal((await erin1.next('call.answered')).sdp, undefined);
  assert.equal((await erin2.next('call.ended')).cause, 'other_device_answered');
  erin2.send(JSON.stringify({ type: 'call.answer', ref: 'late', callId, sdp: 'v=0' }));
  const late = await erin2.next('error');
  assert.deepEqual([late.ref, late.reason], ['late', 'not_found']);
  erin1.send(JSON.stringify({ type: 'call.answer', callId, sdp: 'v=0' }));
  assert.equal((await erin1.next('error')).reason, 'call_already_answered');
  erin1.send(JSON.stringify({ type: 'call.candidate', callId, candidate: { candidate: 'c-b' } }));
  assert.equal((await caller.next('call.candidate')).candidate.candidate, 'c-b');
  caller.send(JSON.stringify({ type: 'call.candidate', callId, candidate: { candidate: 'c-a' } }));
  assert.equal((await erin1.next('call.candidate')).candidate.candidate, 'c-a');
  caller.send(JSON.stringify({ type: 'call.hangup', callId }));
  for (const side of [caller, erin1]) {
    const ended = await side.next('call.ended');
    assert.deepEqual([ended.cause, ended.endedBy, typeof ended.answeredAt], ['hung_up', 'caller', 'string']);
  }
  caller.send(JSON.stringify({ type: 'call.hangup', ref: 'again', callId }));
  assert.equal((await caller.next('error')).reason, 'not_found');
  // Nobody there: unavailable at once.
  caller.send(JSON.stringify({ type: 'call.start', calleeId: 'ghost', sdp: 'v=0' }));
  const ghostCall = (await caller.next('call.placed')).callId;
  const unavailable = await caller.next('call.ended');
  assert.deepEqual([unavailable.callId, unavailable.cause, unavailable.detail], [ghostCall, 'no_answer', 'unavailable']);
  // The record, written behind the signaling (the next event-loop turn).
  await new Promise((resolve) => setTimeout(resolve, 100));
  const Database = require('better-sqlite3');
  const db = new Database(path.join(dir, 'peer.db'), { readonly: true });
  const row = db.prepare('SELECT * FROM calls WHERE id = ?').get(callId);
  db.close();
  assert.deepEqual([row.caller_id, row.callee_id, row.end_cause, row.ended_by], ['dave', 'erin', 'hung_up', 'caller']);
  assert.ok(row.started_at <= row.answered_at && row.answered_at <= row.ended_at);
  // The caller drops after the answer and rejoins from a new connection within the grace: the answer again.
  caller.send(JSON.stringify({ type: 'call.start', calleeId: 'erin', sdp: 'v=0 offer 2' }));
  const second = (await caller.next('call.placed')).callId;
  await erin2.next('call.incoming');
  await erin1.next('call.incoming');
  erin1.send(JSON.stringify({ type: 'call.answer', callId: second, sdp: 'v=0 answer 2' }));
  await caller.next('call.answered');
  caller.close();
  await caller.closed;
  const back = connect(url, dave, dave.secret);
  await back.next('ready');
  back.send(JSON.stringify({ type: 'call.rejoin', ref: 'rj', callId: second }));
  const rejoined = await back.next('call.rejoined');
  assert.deepEqual([rejoined.ref, rejoined.state, rejoined.sdp, typeof rejoined.answeredAt],
    ['rj', 'answered', 'v=0 answer 2', 'string']);
  erin1.send(JSON.stringify({ type: 'call.hangup', callId: second }));
  for (const side of [back, erin1]) assert.equal((await side.next('call.ended')).endedBy, 'callee');
  back.close();
  const again = connect(url, dave, dave.secret);
  await again.next('ready');
  // call.start per session: 10 in a burst (3 used above), then rate_limited.
  for (let i = 0; i < 7; i++) {
    again.send(JSON.stringify({ type: 'call.start', calleeId: 'ghost', sdp: 'v=0' }));
    await again.next('call.ended');
  }
  again.send(JSON.stringify({ type: 'call.start', ref: 'r11', calleeId: 'ghost', sdp: 'v=0' }));
  const limited = await again.next('error');
  assert.deepEqual([limited.ref, limited.reason, limited.retryAfter > 0], ['r11', 'rate_limited', true]);
  for (const ws of [again, erin1, erin2]) ws.close();
  console.log('peer check passed');
}

let out = '';
server.stdout.on('data', (chunk) => {
  out += chunk;
  const m = /"url":"([^"]+)"/.exec(out);
  if (m && !main.started) {
    main.started = true;
    main(m[1]).then(() => finish(0), (error) => { console.error(error); finish(1); });
  }
});
function finish(code) {
  server.kill();
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
