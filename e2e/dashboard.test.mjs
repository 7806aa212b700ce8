// The dashboard in a real browser (Debian's Chromium, driven by playwright-core) against a real `callbox serve`.
// Run: bash e2e/dashboard.sh (installs Chromium and playwright-core when missing, builds callbox, runs this).
// Screenshots of every page go to e2e/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.CALLBOX_BIN || path.resolve(root, process.env.CARGO_TARGET_DIR || 'target', 'debug', 'callbox');
const SHOTS = path.join(root, 'e2e', 'screenshots');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

let server; // { proc, url, data, token }
let context; // the browser (persistent context on a fresh profile)
let page;
let profileDir;
let attacker; // a same-site, other-origin page server for the CSRF test
const app = {}; // the application made through the dashboard: key, secret, oldSecret
const users = {}; // sessions made on the way

// ----- helpers ----------------------------------------------------------------------------------------------

async function startServer() {
  const data = mkdtempSync(path.join(tmpdir(), 'callbox-dashboard-'));
  // Debug logs of Callbox itself, so that the test of the ticket debugger's secret sees everything it could log.
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', data],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn,callbox=debug,callbox_server=debug,tower_http=debug' } });
  let stderr = '';
  let stdout = '';
  proc.stderr.on('data', (chunk) => { stderr += chunk; });
  proc.stdout.on('data', (chunk) => { stdout += chunk; });
  const url = await new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`no listening line; stderr:\n${stderr}`)), 30_000);
    proc.stdout.on('data', (chunk) => {
      buffered += chunk;
      for (const line of buffered.split('\n')) {
        try {
          const event = JSON.parse(line);
          if (event.event === 'listening') { clearTimeout(timer); resolve(event.url); }
        } catch { /* not a whole line yet */ }
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`callbox exited with ${code}:\n${stderr}`)); });
  });
  const token = readFileSync(path.join(data, 'admin-token'), 'utf8').trim();
  return { proc, url, data, token, logs: () => stdout + stderr };
}

/** The admin API with the Bearer token, for the test's own checks (the dashboard uses its cookie). */
async function admin(method, apiPath, body) {
  const response = await fetch(server.url + apiPath, {
    method,
    headers: { Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

/** `callbox ticket mint`, returning the bare ticket. */
function mint(secret, user, extra = []) {
  const out = execFileSync(BIN, ['ticket', 'mint', '--key', app.key, '--secret', secret, '--user', user, ...extra]);
  return JSON.parse(out.toString()).userTicket;
}

/** `POST /v1/instance` with a ticket; `services.voip` asks for the `calling` capability as well. */
async function exchange(ticket, services = { im: true }) {
  const response = await fetch(`${server.url}/v1/instance`, {
    method: 'POST',
    headers: { Authorization: `User ${ticket}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ services }),
  });
  return { status: response.status, body: await response.json() };
}

async function login(username, password) {
  const response = await fetch(`${server.url}/v1/users/username/${encodeURIComponent(username)}/authentication`, {
    method: 'POST',
    headers: { Authorization: `Application ${app.key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ password }),
  });
  return { status: response.status, body: await response.json() };
}

/** A session-signed `GET /v1/user/profile` (PROTOCOL §4). */
async function profile(session) {
  const ts = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const stringToSign = `GET\n\n\nx-timestamp:${ts}\n/v1/user/profile`;
  const signature = createHmac('sha256', Buffer.from(session.secret, 'base64')).update(stringToSign).digest('base64');
  const response = await fetch(`${server.url}/v1/user/profile`, {
    headers: { Authorization: `Instance ${session.id}:${signature}`, 'X-Timestamp': ts },
  });
  return { status: response.status, body: await response.json() };
}

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Every control on the page has an accessible name (a label, aria-label or text). */
async function assertLabelled() {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
    .filter((el) => !el.closest('dialog:not([open])') && el.type !== 'hidden')
    .filter((el) => {
      if (el.getAttribute('aria-label')) return false;
      if (el.labels && el.labels.length > 0) return false;
      return !(el.textContent || '').trim();
    })
    .map((el) => el.outerHTML.slice(0, 120)));
  assert.deepEqual(unlabelled, [], 'every control is labelled');
}

async function status(text) {
  await page.getByRole('status').filter({ hasText: text }).waitFor();
}

async function openTab(name) {
  await page.getByRole('navigation', { name: 'Application' }).getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: new RegExp(`: ${name}$`) }).waitFor();
}

async function confirm(button) {
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await dialog.getByRole('button', { name: button, exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

/** The SDK's `newUser` when the server serves /sdk/callbox.js, run in the dashboard's page (same origin). */
async function sdkSignUp(username, password) {
  return page.evaluate(async ({ key, username, password }) => {
    const probe = await fetch('/sdk/callbox.js', { method: 'HEAD' });
    if (probe.ok) {
      const { Client } = await import('/sdk/callbox.js');
      const client = new Client({ applicationKey: key });
      try {
        const ticket = await client.newUser({ username, password });
        return { via: 'sdk', ok: true, ticket: ticket.userTicket };
      } catch (error) {
        return { via: 'sdk', ok: false, reason: error.reason, code: error.code };
      }
    }
    // The same wire call the SDK makes (POST /v1/users with the application key).
    const response = await fetch('/v1/users', {
      method: 'POST',
      headers: { Authorization: `Application ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ password, identities: [{ type: 'username', endpoint: username }] }),
    });
    const body = await response.json();
    return response.ok
      ? { via: 'fetch', ok: true, ticket: body.authorization }
      : { via: 'fetch', ok: false, reason: body.reason, code: body.errorCode };
  }, { key: app.key, username, password });
}

// ----- setup ------------------------------------------------------------------------------------------------

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer();
  profileDir = mkdtempSync(path.join(tmpdir(), 'callbox-dashboard-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(10_000);
  // The attacker: a page on another port of the same host (same site, other origin) that posts a form.
  attacker = createServer((request, response) => {
    response.setHeader('Content-Type', 'text/html');
    response.end(`<!doctype html><form id=f method=POST enctype="text/plain" action="${server.url}/admin/v1/apps">` +
      '<input name=\'{"name":"csrf-attack","x":"\' value=\'"}\'></form><script>document.getElementById("f").submit()</script>');
  });
  await new Promise((resolve) => attacker.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  await context?.close();
  attacker?.close();
  if (server) {
    server.proc.kill('SIGTERM');
    rmSync(server.data, { recursive: true, force: true });
  }
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

// ----- the tests, in order ------------------------------------------------------------------------------------

test('the dashboard is served with a strict CSP, nosniff and no referrer', async () => {
  const response = await page.goto(`${server.url}/dashboard`);
  assert.equal(response.status(), 200);
  const headers = response.headers();
  assert.equal(headers['content-security-policy'], "default-src 'self'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');
  for (const asset of ['/dashboard/app.js', '/dashboard/app.css']) {
    const res = await fetch(server.url + asset);
    assert.equal(res.status, 200, asset);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  }
});

test('a wrong admin token does not sign in', async () => {
  await page.getByLabel('Admin token').fill('cbadm_not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'not right' }).waitFor();
  const cookies = await context.cookies(server.url);
  assert.ok(!cookies.some((c) => c.name === 'callbox_dashboard'), 'no session cookie');
  assert.equal((await page.evaluate(() => fetch('/admin/v1/apps').then((r) => r.status))), 401);
  // Sign-in without the sign-in form's token (login CSRF) is refused even with the right admin token.
  const bare = await page.evaluate((token) => fetch('/dashboard/api/signin', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
  }).then((r) => r.status), server.token);
  assert.equal(bare, 401);
  assert.ok(!(await context.cookies(server.url)).some((c) => c.name === 'callbox_dashboard'));
  await assertLabelled();
  await shot('signin');
});

test('sign in with the admin token: an HttpOnly, SameSite=Strict session cookie', async () => {
  await page.getByLabel('Admin token').fill(server.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Applications' }).waitFor();
  const cookie = (await context.cookies(server.url)).find((c) => c.name === 'callbox_dashboard');
  assert.ok(cookie, 'session cookie set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.secure, false, 'plain HTTP here; Secure behind an HTTPS proxy');
  assert.equal(await page.evaluate(() => document.cookie.includes('callbox_dashboard')), false, 'not readable by scripts');
});

test('create an application: the secret is shown once, with a copy button', async () => {
  await page.getByLabel('Application name').fill('Voice app');
  await page.getByRole('button', { name: 'Create application' }).click();
  const secretField = page.getByLabel('Application secret');
  await secretField.waitFor();
  app.secret = await secretField.inputValue();
  assert.match(app.secret, /^[A-Za-z0-9+/]{32}$/);
  const link = page.getByRole('link', { name: 'Voice app' });
  app.key = decodeURIComponent((await link.getAttribute('href')).split('/')[2]);
  await page.getByRole('button', { name: 'Copy the secret' }).click();
  await status('Copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), app.secret);
  await assertLabelled();
  await shot('applications');
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Applications' }).waitFor();
  assert.equal(await page.getByLabel('Application secret').count(), 0, 'the secret is not shown again');
  assert.equal(await page.getByText(app.secret).count(), 0);
});

test('settings: platform-managed users off refuses an SDK sign-up with platform_auth_disabled; on again, it works', async () => {
  await page.getByRole('link', { name: 'Voice app' }).click();
  await page.getByRole('heading', { level: 1, name: 'Voice app: Settings' }).waitFor();
  // Let the dashboard's own origin call the client API (where the SDK runs in this test).
  await page.getByLabel('Allowed origins').fill(server.url);
  await page.getByRole('button', { name: 'Save settings' }).click();
  await status('Settings saved');

  const toggle = page.getByRole('switch', { name: 'Platform-managed users' });
  assert.equal(await toggle.isChecked(), true, 'new applications start with platform-managed users on');
  const warning = page.getByRole('note').filter({ hasText: 'Anyone can sign up' });
  await warning.waitFor();
  assert.match(await warning.textContent(), /before going live/);

  await toggle.click();
  await status('switched off');
  assert.equal(await toggle.isChecked(), false);
  assert.equal(await warning.count(), 0, 'no warning while off');
  assert.equal((await admin('GET', `/admin/v1/apps/${app.key}`)).body.platformUserAuth, false);
  const refused = await sdkSignUp('alice', 'correct horse battery');
  console.log(`# sign-up made through ${refused.via === 'sdk' ? 'the SDK (/sdk/callbox.js)' : 'fetch (the SDK wire call)'}`);
  assert.equal(refused.ok, false);
  assert.equal(refused.reason, 'platform_auth_disabled');
  await shot('settings-off');

  await toggle.click();
  await status('switched on');
  await warning.waitFor();
  const accepted = await sdkSignUp('alice', 'correct horse battery');
  assert.equal(accepted.ok, true, JSON.stringify(accepted));
  assert.ok(accepted.ticket);
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Voice app: Settings' }).waitFor();
  assert.equal(await toggle.isChecked(), true, 'saved');
  await warning.waitFor();
  await assertLabelled();
  await shot('settings');
});

test('rotate the secret: a ticket signed with the old one is accepted until that secret is retired', async () => {
  app.oldSecret = app.secret;
  await openTab('Secrets');
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  const field = page.getByLabel('Application secret');
  await field.waitFor();
  app.secret = await field.inputValue();
  assert.notEqual(app.secret, app.oldSecret);
  assert.equal(await page.getByRole('row').count(), 3, 'two active secrets (and the header row)');

  const old = await exchange(mint(app.oldSecret, 'bob'));
  assert.equal(old.status, 200, 'old secret still verifies');
  users.bob = old.body;
  assert.equal((await exchange(mint(app.secret, 'bob'))).status, 200, 'new secret verifies');
  await assertLabelled();
  await shot('secrets');

  // The older secret is listed last (newest first).
  await page.getByRole('button', { name: /^Retire secret/ }).last().click();
  await confirm('Retire secret');
  await status('retired');
  assert.equal(await page.getByRole('row').count(), 2);
  const refused = await exchange(mint(app.oldSecret, 'bob'));
  assert.equal(refused.status, 401);
  assert.equal(refused.body.reason, 'bad_signature');
  assert.equal((await exchange(mint(app.secret, 'bob'))).status, 200);
});

test('users: search, set a password, disable and enable, add and remove', async () => {
  await openTab('Users');
  await page.getByLabel('Search users').fill('ali');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByRole('cell', { name: 'alice', exact: true }).waitFor();

  await page.getByRole('button', { name: 'Set password of alice' }).click();
  await page.getByRole('dialog').getByLabel('New password').fill('a brand new password');
  await confirm('Set password');
  await status('Password of alice set');
  assert.equal((await login('alice', 'correct horse battery')).status, 401);
  assert.equal((await login('alice', 'a brand new password')).status, 200);

  await page.getByRole('button', { name: 'Disable alice' }).click();
  await status('alice disabled');
  const disabled = await login('alice', 'a brand new password');
  assert.equal(disabled.status, 403);
  assert.equal(disabled.body.reason, 'user_disabled');
  await page.getByRole('button', { name: 'Enable alice' }).click();
  await status('alice enabled');
  assert.equal((await login('alice', 'a brand new password')).status, 200);

  await page.getByLabel('User id', { exact: true }).fill('carol');
  await page.getByLabel('Password', { exact: true }).fill('carol password 1');
  await page.getByRole('button', { name: 'Add user' }).click();
  await status('carol added');
  await page.getByRole('link', { name: 'Users', exact: true }).click();
  await page.getByRole('cell', { name: 'carol', exact: true }).waitFor();
  await assertLabelled();
  await shot('users');
  await page.getByRole('button', { name: 'Remove carol' }).click();
  await confirm('Remove user');
  await status('carol removed');
  assert.equal(await page.getByRole('cell', { name: 'carol', exact: true }).count(), 0);
  assert.deepEqual((await admin('GET', `/admin/v1/apps/${app.key}/users?search=carol`)).body.users, []);
});

test("sessions: revoke one, and all of a user's; their signed calls are refused", async () => {
  const ticket = async () => (await login('alice', 'a brand new password')).body.authorization;
  const a1 = (await exchange(await ticket())).body;
  const a2 = (await exchange(await ticket())).body;
  for (const s of [a1, a2, users.bob]) assert.equal((await profile(s)).status, 200);

  await openTab('Sessions');
  await page.getByRole('button', { name: `Revoke session ${users.bob.id}` }).click();
  await status(`Session ${users.bob.id} revoked`);
  const bob = await profile(users.bob);
  assert.equal(bob.status, 401);
  assert.equal(bob.body.reason, 'session_revoked');
  assert.equal((await profile(a1)).status, 200, 'other sessions live on');

  await page.getByLabel('User id').fill('alice');
  await page.getByRole('button', { name: 'Show sessions' }).click();
  await page.getByRole('button', { name: `Revoke session ${a1.id}` }).waitFor();
  await page.getByRole('button', { name: `Revoke session ${a2.id}` }).waitFor();
  await assertLabelled();
  await shot('sessions');
  await page.getByRole('button', { name: 'Revoke all sessions of alice' }).click();
  await confirm('Revoke all');
  await status('session(s) of alice revoked');
  for (const s of [a1, a2]) {
    const refused = await profile(s);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.reason, 'session_revoked');
  }
  await page.getByText('alice has no live session.').waitFor();
});

/**
 * A live realtime connection of `session` (signed first frame, docs/realtime.md); resolves once `ready`, with
 * `send(frame)` and `expect(type, callId)` (the next frame of that type, and of that call when given, that came
 * after `ready`) for the call frames.
 */
function realtimeConnection(session) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}/v1/realtime`);
    const closed = new Promise((done) => socket.on('close', (code, reason) => done({ code, reason: String(reason) })));
    const inbox = [];
    const waiters = new Set();
    let ready = null;
    const send = (frame) => socket.send(JSON.stringify(frame));
    const expect = (type, callId) => new Promise((found, missing) => {
      const timer = setTimeout(() => {
        waiters.delete(look);
        missing(new Error(`no ${type} frame${callId ? ` of ${callId}` : ''} within 10 s; got ${JSON.stringify(inbox)}`));
      }, 10_000);
      function look() {
        const at = inbox.findIndex((frame) => frame.type === type && (!callId || frame.callId === callId));
        if (at < 0) return;
        clearTimeout(timer);
        waiters.delete(look);
        found(inbox.splice(at, 1)[0]);
      }
      waiters.add(look);
      look();
    });
    socket.on('error', reject);
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type === 'ping') {
        socket.send(JSON.stringify({ type: 'pong' }));
      } else if (ready) {
        inbox.push(frame);
        for (const look of [...waiters]) look();
      } else if (frame.type === 'challenge') {
        const timestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        const stringToSign = `GET\n\n\nx-timestamp:${timestamp}\n/v1/realtime/${frame.nonce}`;
        const signature = createHmac('sha256', Buffer.from(session.secret, 'base64')).update(stringToSign).digest('base64');
        socket.send(JSON.stringify({ type: 'auth', sessionId: session.id, timestamp, signature }));
      } else if (frame.type === 'ready') {
        ready = frame;
        resolve({ socket, closed, ready, send, expect });
      } else if (frame.type === 'error') {
        reject(new Error(`${frame.reason}: ${frame.message}`));
      }
    });
  });
}

test("realtime: the app's live connections and messages, and dropping a user's connections", async () => {
  const ticket = (await login('alice', 'a brand new password')).body.authorization;
  const session = (await exchange(ticket)).body;
  const live = await realtimeConnection(session);
  await openTab('Realtime');
  assert.equal(await page.locator('#live-connections').textContent(), '1');
  assert.match(await page.locator('#messages-last-hour').textContent(), /^\d+$/);
  await page.getByLabel('User id').fill('alice');
  await page.getByRole('button', { name: 'Show connections' }).click();
  const row = page.getByRole('row').filter({ hasText: session.id });
  await row.waitFor();
  await assertLabelled();
  await shot('realtime');
  await page.getByRole('button', { name: 'Drop the connections of alice' }).click();
  await status('connection(s) of alice closed');
  const closed = await live.closed;
  assert.equal(closed.code, 4503, JSON.stringify(closed));
  await page.getByText('alice has no live connection on this node.').waitFor();
  assert.equal(await page.locator('#live-connections').textContent(), '0');
});

/** Calls `callee` from `caller`'s connection (docs/calls.md); resolves with the call id once placed. */
async function placeCall(caller, calleeId) {
  caller.send({ type: 'call.start', calleeId, sdp: 'v=0 offer (test)' });
  return (await caller.expect('call.placed')).callId;
}

test('calls: the recent calls of the application, real ones placed over the realtime connection, filtered by user', async () => {
  const calling = { im: true, voip: true };
  const connect = async (user) => realtimeConnection((await exchange(mint(app.secret, user), calling)).body);
  const alice = await connect('alice');
  const bob = await connect('bob');
  assert.ok(alice.ready.capabilities.includes('calling'), JSON.stringify(alice.ready));

  // 1. alice calls bob, bob answers, they talk a moment, alice hangs up.
  const talked = await placeCall(alice, 'bob');
  await bob.expect('call.incoming', talked);
  bob.send({ type: 'call.answer', callId: talked, sdp: 'v=0 answer (test)' });
  await alice.expect('call.answered');
  await new Promise((done) => setTimeout(done, 120));
  alice.send({ type: 'call.hangup', callId: talked });
  assert.equal((await alice.expect('call.ended', talked)).cause, 'hung_up');
  assert.equal((await bob.expect('call.ended', talked)).cause, 'hung_up');
  // 2. bob calls carol, who has no connection: unavailable at once.
  const unanswered = await placeCall(bob, 'carol');
  assert.equal((await bob.expect('call.ended', unanswered)).cause, 'no_answer');
  // 3. alice calls bob again, and bob declines.
  const declined = await placeCall(alice, 'bob');
  await bob.expect('call.incoming', declined);
  bob.send({ type: 'call.decline', callId: declined });
  assert.equal((await alice.expect('call.ended', declined)).cause, 'denied');

  // The records are written behind the signaling: wait until the three have their end.
  let listed = [];
  for (let tries = 0; tries < 200; tries += 1) {
    listed = (await admin('GET', `/admin/v1/apps/${app.key}/calls`)).body.calls;
    if (listed.length === 3 && listed.every((c) => c.endedAt)) break;
    await new Promise((done) => setTimeout(done, 50));
  }
  assert.deepEqual(listed.map((c) => c.callId), [declined, unanswered, talked], 'newest first');
  alice.socket.close();
  bob.socket.close();

  await openTab('Calls');
  const table = page.getByRole('table', { name: 'Recent calls' });
  await table.waitFor();
  const rows = table.getByRole('row');
  assert.equal(await rows.count(), 4, 'a header and three calls');
  const cells = async (index) => (await rows.nth(index).getByRole('cell').allTextContents()).map((text) => text.trim());
  const [newest, middle, oldest] = [await cells(1), await cells(2), await cells(3)];
  assert.deepEqual([newest[1], newest[2], newest[5], newest[6]], ['alice', 'bob', 'callee', declined]);
  assert.match(newest[4], /^denied the callee declined$/);
  assert.equal(newest[3], '—', 'a declined call has no talk time');
  assert.deepEqual([middle[1], middle[2], middle[5], middle[6]], ['bob', 'carol', 'server', unanswered]);
  assert.match(middle[4], /^no_answer nobody answered/);
  assert.deepEqual([oldest[1], oldest[2], oldest[5], oldest[6]], ['alice', 'bob', 'caller', talked]);
  assert.match(oldest[4], /^hung_up /);
  const talkTime = listed[2].durationMs;
  assert.ok(talkTime >= 120 && talkTime < 10_000, `talk time ${talkTime} ms`);
  assert.equal(oldest[3], `${Math.floor(talkTime / 1000)}.${Math.floor((talkTime % 1000) / 100)} s`);
  assert.match(oldest[0], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  await assertLabelled();
  await shot('calls');

  // The user filter matches the caller or the callee.
  await page.getByLabel('User id').fill('carol');
  await page.getByRole('button', { name: 'Show calls' }).click();
  const carols = page.getByRole('table', { name: 'Calls of carol' });
  await carols.waitFor();
  assert.match(page.url(), /\/calls\?user=carol$/);
  assert.equal(await carols.getByRole('row').count(), 2);
  assert.equal(await carols.getByRole('row').filter({ hasText: unanswered }).count(), 1);

  await page.getByLabel('User id').fill('alice');
  await page.getByRole('button', { name: 'Show calls' }).click();
  const alices = page.getByRole('table', { name: 'Calls of alice' });
  await alices.waitFor();
  assert.equal(await alices.getByRole('row').count(), 3);
  assert.equal(await alices.getByRole('row').filter({ hasText: unanswered }).count(), 0, 'not a call of alice');
  await shot('calls-filtered');

  await page.getByLabel('User id').fill('dave');
  await page.getByRole('button', { name: 'Show calls' }).click();
  await page.getByText('dave has no call.').waitFor();
  await page.getByRole('link', { name: 'Show the calls of every user' }).click();
  await table.waitFor();
  assert.equal(await table.getByRole('row').count(), 4);

  // A filter that is no user id is the server's 400, shown beside the filter, which stays to be corrected.
  await page.getByLabel('User id').fill('bad\u0001user');
  await page.getByRole('button', { name: 'Show calls' }).click();
  await page.locator('#calls-error').filter({ hasText: 'malformed_request' }).waitFor();
  assert.equal(await page.getByRole('alert').filter({ hasText: 'malformed_request' }).count(), 1);
  await page.getByRole('link', { name: 'Show the calls of every user' }).click();
  await table.waitFor();
  assert.equal(await page.locator('#calls-error').textContent(), '');
});

test('auth events: the reason word and a plain-language explanation of the fix', async () => {
  const threeHoursAgo = new Date(Date.now() - 3 * 3600 * 1000).toISOString();
  const expired = await exchange(mint(app.secret, 'dave', ['--ttl', '3600', '--at', threeHoursAgo]));
  assert.equal(expired.body.reason, 'ticket_expired');

  await openTab('Auth events');
  await page.getByLabel('Reason').selectOption('ticket_expired');
  await page.getByRole('button', { name: 'Filter' }).click();
  const row = page.getByRole('row').filter({ hasText: 'dave' });
  await row.waitFor();
  assert.match(await row.textContent(), /ticket_expired/);
  assert.match(await row.textContent(), /the ticket was created 3 h ago but expires after 1 h/);
  assert.match(await row.textContent(), /clock or the expiresIn/);

  await page.getByLabel('Reason').selectOption('');
  await page.getByRole('button', { name: 'Filter' }).click();
  const badSignature = page.getByRole('row').filter({ hasText: 'bad_signature' }).first();
  await badSignature.waitFor();
  assert.match(await badSignature.textContent(), /matches none of this application's active secrets/);
  await assertLabelled();
  await shot('events');
});

test('the ticket debugger names bad_signature for a ticket with a changed byte', async () => {
  await openTab('Ticket debugger');
  const good = mint(app.secret, 'erin');
  await page.getByLabel('Ticket or JWT').fill(good);
  await page.getByRole('button', { name: 'Check ticket' }).click();
  await page.locator('#verdict').filter({ hasText: 'Accepted' }).waitFor();

  const [data, signature] = good.split(':');
  const i = 5;
  const changed = `${data}:${signature.slice(0, i)}${signature[i] === 'A' ? 'B' : 'A'}${signature.slice(i + 1)}`;
  await page.getByLabel('Ticket or JWT').fill(changed);
  await page.getByRole('button', { name: 'Check ticket' }).click();
  const verdict = page.locator('#verdict').filter({ hasText: 'Refused' });
  await verdict.waitFor();
  assert.match(await verdict.textContent(), /bad_signature/);
  const signatureCheck = page.getByRole('listitem').filter({ hasText: /^failed\s+signature/ });
  await signatureCheck.waitFor();
  assert.match(await page.getByRole('listitem').filter({ hasText: /time window/ }).textContent(), /^passed/);
  assert.match(await page.locator('#diagnosis').textContent(), /erin/, 'the decoded fields are shown');
  await assertLabelled();
  await shot('debugger');
});

/** `callbox ticket verify` of `ticket` for the test application: its diagnosis JSON. */
function verifyWithCli(ticket, secret) {
  try {
    return JSON.parse(execFileSync(BIN, ['ticket', 'verify', '--key', app.key, '--secret', secret, ticket]).toString());
  } catch (failure) {
    return JSON.parse(failure.stdout.toString()); // exit status 1: an invalid ticket, still a diagnosis
  }
}

/** The checks shown on the page: name → { verdict, detail }. */
async function shownChecks() {
  return page.locator('#diagnosis li[data-check]').evaluateAll((items) => Object.fromEntries(items.map((li) =>
    [li.dataset.check, { verdict: li.querySelector('.mark').textContent, detail: li.querySelector('.check-detail').textContent }])));
}

test('the ticket debugger is in the main navigation: verdicts and the sentences of callbox ticket verify, and a typed secret stays out of the logs', async () => {
  await page.getByRole('link', { name: 'Applications' }).first().click();
  await page.getByRole('heading', { level: 1, name: 'Applications' }).waitFor();
  const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Ticket debugger', exact: true });
  await link.click();
  await page.getByRole('heading', { level: 1, name: 'Ticket debugger' }).waitFor();
  assert.equal(await link.getAttribute('aria-current'), 'page');
  await admin('POST', '/admin/v1/apps', { name: 'Another app' }); // so that the choice of application matters
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Ticket debugger' }).waitFor();

  // A good ticket, pasted as the {"userTicket": ...} object a backend answers: its application is picked from it.
  const wrapped = execFileSync(BIN, ['ticket', 'mint', '--key', app.key, '--secret', app.secret, '--user', 'frank']).toString();
  const good = JSON.parse(wrapped).userTicket;
  await page.getByLabel('Ticket or JWT').fill(wrapped.trim());
  assert.equal(await page.getByLabel('Application', { exact: true }).inputValue(), app.key, 'the ticket names its app');
  await page.getByLabel('Application secret (optional)').fill(app.secret);
  await page.getByRole('button', { name: 'Check ticket' }).click();
  await page.locator('#verdict').filter({ hasText: 'Accepted' }).waitFor();
  const cli = verifyWithCli(good, app.secret);
  assert.equal(cli.valid, true);
  let shown = await shownChecks();
  assert.deepEqual(Object.keys(shown), cli.checks.map((c) => c.name), 'the same checks, in the same order');
  for (const check of cli.checks) {
    assert.equal(shown[check.name].verdict, 'passed', check.name);
    if (check.name !== 'time_window') assert.equal(shown[check.name].detail, check.detail, `the same sentence: ${check.name}`);
  }
  assert.match(shown.time_window.detail, /^valid until \S+ \(server time \S+\)$/);
  assert.match(shown.signature.detail, /^matches secret #1 of 1 /, 'checked against the typed secret alone');
  assert.match(await page.locator('#diagnosis').textContent(), /Checked against the secret you typed/);
  assert.doesNotMatch(await page.locator('#diagnosis').textContent(), /null|undefined/);
  await assertLabelled();
  await shot('ticket-debugger');

  // The same ticket with one byte of its signature changed.
  const [data, signature] = good.split(':');
  const tampered = `${data}:${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
  await page.getByLabel('Ticket or JWT').fill(tampered);
  await page.getByRole('button', { name: 'Check ticket' }).click();
  const refused = page.locator('#verdict').filter({ hasText: 'Refused' });
  await refused.waitFor();
  assert.match(await refused.textContent(), /bad_signature/);
  const cliTampered = verifyWithCli(tampered, app.secret);
  assert.equal(cliTampered.reason, 'bad_signature');
  assert.ok((await refused.textContent()).includes(cliTampered.message), 'the same refusal sentence');
  shown = await shownChecks();
  assert.equal(shown.signature.verdict, 'failed');
  assert.equal(shown.signature.detail, cliTampered.checks.find((c) => c.name === 'signature').detail);
  assert.equal(shown.signature.detail, 'matches none of the 1 secret(s) given');
  assert.equal(shown.format.verdict, 'passed');
  assert.match(await page.locator('.fix').textContent(), /matches none of this application's active secrets/);
  await shot('ticket-debugger-refused');

  // Passed only thanks to the clock skew: said so, and by how much (the core's sentence, as in the CLI).
  const late = new Date(Date.now() - 70_000).toISOString();
  const skewed = mint(app.secret, 'frank', ['--ttl', '60', '--created', late]);
  await page.getByLabel('Ticket or JWT').fill(skewed);
  await page.getByRole('button', { name: 'Check ticket' }).click();
  await page.locator('#verdict').filter({ hasText: 'Accepted' }).waitFor();
  shown = await shownChecks();
  assert.equal(shown.time_window.verdict, 'passed');
  assert.match(shown.time_window.detail, /^passed within the allowed clock skew: expired 1\d s ago, skew 300 s; valid until /);

  // A secret that is not one: a precise error, the typed text not repeated.
  const notASecret = 'surely-not-base64-secret!';
  await page.getByLabel('Application secret (optional)').fill(notASecret);
  await page.getByRole('button', { name: 'Check ticket' }).click();
  const alert = page.getByRole('alert').filter({ hasText: 'malformed_request' });
  await alert.waitFor();
  assert.match(await alert.textContent(), /secret: the secret is not standard base64/);

  // Without a secret: the stored ones (one active secret after the rotation above).
  await page.getByLabel('Application secret (optional)').fill('');
  await page.getByLabel('Ticket or JWT').fill(good);
  await page.getByRole('button', { name: 'Check ticket' }).click();
  await page.locator('#verdict').filter({ hasText: 'Accepted' }).waitFor();
  assert.match(await page.locator('#diagnosis').textContent(), /Active secrets of this application: #1 /);

  // The typed secrets went nowhere but the admin API: not in the address, the page's storage, or any log line.
  assert.ok(!page.url().includes(encodeURIComponent(app.secret)) && !page.url().includes(notASecret));
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes(app.secret));
  await new Promise((resolve) => setTimeout(resolve, 200)); // let the last log lines arrive
  const logs = server.logs();
  assert.ok(logs.length > 0 && /DEBUG|debug/.test(logs), 'debug logs were captured');
  for (const text of [app.secret, notASecret, app.secret.replace(/=+$/, '')]) {
    assert.ok(!logs.includes(text), `a typed secret is in the server's log output: ${text}`);
  }
});

test('CSRF: a change posted without the token is refused', async () => {
  const patch = (headers) => page.evaluate(async ({ key, headers }) => {
    const response = await fetch(`/admin/v1/apps/${key}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ name: 'renamed by CSRF' }),
    });
    return { status: response.status, body: await response.json() };
  }, { key: app.key, headers });
  const without = await patch({});
  assert.equal(without.status, 401);
  assert.equal(without.body.reason, 'invalid_admin_token');
  assert.match(without.body.message, /CSRF/);
  assert.equal((await patch({ 'X-CSRF-Token': 'not-the-token' })).status, 401);
  assert.equal((await admin('GET', `/admin/v1/apps/${app.key}`)).body.name, 'Voice app', 'nothing changed');

  // A form posted from another origin of the same site (so the SameSite=Strict cookie is sent) is refused too.
  const other = await context.newPage();
  const answer = other.waitForResponse((r) => r.url() === `${server.url}/admin/v1/apps`);
  await other.goto(`http://127.0.0.1:${attacker.address().port}/`);
  assert.equal((await answer).status(), 401);
  await other.close();
  const names = (await admin('GET', '/admin/v1/apps')).body.applications.map((a) => a.name);
  assert.ok(!names.includes('csrf-attack'), 'no application created by the forged form');
});

test('delete an application, with confirmation', async () => {
  await admin('POST', '/admin/v1/apps', { name: 'Throwaway' });
  await page.getByRole('link', { name: 'Applications' }).first().click();
  await page.getByRole('heading', { level: 1, name: 'Applications' }).waitFor();
  await page.getByRole('button', { name: 'Delete application Throwaway' }).click();
  await page.getByRole('dialog').waitFor();
  await shot('delete-confirmation');
  await confirm('Cancel');
  assert.equal(await page.getByRole('link', { name: 'Throwaway' }).count(), 1, 'cancel keeps it');
  await page.getByRole('button', { name: 'Delete application Throwaway' }).click();
  await confirm('Delete application');
  await status('Throwaway deleted');
  assert.equal(await page.getByRole('link', { name: 'Throwaway' }).count(), 0);
  const names = (await admin('GET', '/admin/v1/apps')).body.applications.map((a) => a.name);
  assert.ok(!names.includes('Throwaway'));
});

test('keyboard only, and a phone-width screen', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/dashboard/#/apps/${encodeURIComponent(app.key)}/settings`);
  await page.getByRole('heading', { level: 1, name: 'Voice app: Settings' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling on a phone (overflow ${overflow}px)`);
  await shot('settings-phone');

  // Tab to the switch and flip it with the space bar, then back.
  let reached = false;
  for (let i = 0; i < 30 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.getAttribute('role') === 'switch');
  }
  assert.ok(reached, 'the switch is reachable with Tab');
  await page.keyboard.press('Space');
  await status('switched off');
  await page.keyboard.press('Space');
  await status('switched on');

  for (const tab of ['Secrets', 'Users', 'Sessions', 'Auth events', 'Realtime', 'Calls', 'Ticket debugger']) {
    await openTab(tab);
    const sideways = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(sideways <= 0, `${tab}: no sideways scrolling (${sideways}px)`);
    await shot(`${tab.toLowerCase().replace(' ', '-')}-phone`);
  }
  await page.getByRole('link', { name: 'Applications' }).first().click();
  await page.getByRole('heading', { level: 1, name: 'Applications' }).waitFor();
  await shot('applications-phone');
  await page.setViewportSize({ width: 1280, height: 860 });
});

test('sign out ends the session', async () => {
  const cookie = (await context.cookies(server.url)).find((c) => c.name === 'callbox_dashboard');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin token').waitFor();
  assert.ok(!(await context.cookies(server.url)).some((c) => c.name === 'callbox_dashboard'), 'cookie deleted');
  const replay = await fetch(`${server.url}/admin/v1/apps`, { headers: { Cookie: `callbox_dashboard=${cookie.value}` } });
  assert.equal(replay.status, 401, 'the old cookie no longer works');
});
