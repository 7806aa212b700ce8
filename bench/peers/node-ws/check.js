'use strict';
// A self-check of the peer (`node check.js`): starts server.js on 127.0.0.1:0 with a temporary database and
// asserts that a forged ticket and a wrong session secret are refused, that a correct signature gets `ready`, and
// that a message is acknowledged, delivered with seq 1, and its confirmation yields a stored receipt.
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
  const session = async (user) => (await fetch(url + '/v1/instance', { method: 'POST',
    headers: { authorization: ticket(user, app.applicationSecret) }, body: '{"services":{"im":true}}' })).json();
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
  a.close();
  b.close();
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
