// Browser end-to-end test of realtime messaging (issue 11), in Debian's Chromium (playwright-core) against a real
// `callbox serve`: alice starts with a backend ticket (minted with `callbox ticket mint`), bob is platform-managed
// (signed up and logged in through the SDK). Alice sends, bob receives, alice hears the delivery; bob goes away,
// alice sends three more, bob comes back and receives the three in order (and, before that, a network cut: bob's SDK
// reconnects and resumes, nothing lost or shown twice); revoking bob's session with
// `callbox session revoke` closes his connection and fires the SDK's onClientFailed / onClientStopped.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { startCallbox, callboxBin, chromiumArgs } from "./lib/sdk-servers.mjs";

const run = promisify(execFile);
const PASSWORD = "somethingSecure";

let callbox;
let browser;
let app;

before(async () => {
  callbox = await startCallbox();
  app = await callbox.createApp({
    name: "Chat",
    allowedOrigins: ["*"],
    platformUserAuth: true,
    capabilities: ["messaging"],
  });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: chromiumArgs });
});

after(async () => {
  await browser?.close();
  await callbox?.stop();
});

/** The CLI against this server; resolves to its standard output. */
async function cli(...args) {
  const { stdout } = await run(callboxBin, args, {
    env: { ...process.env, CALLBOX_URL: callbox.url, CALLBOX_DATA: callbox.data },
  });
  return stdout;
}

/**
 * A page of Callbox's origin with the script-tag bundle and a client `window.chat` whose every event is recorded
 * in `window.seen`; `credentials` is what to start with, or "signup" for a new platform-managed user.
 */
async function openChat(credentials, key = app.key) {
  const context = await browser.newContext();
  // The page's WebSocket, wrapped before any script runs so the test can cut the network: `net.drop()` closes the
  // live socket and makes new ones fail (as an unplugged cable would), `net.restore()` lets them through again.
  // `net.auth` records what each auth frame asked to resume after (nothing else of it).
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    const net = { sockets: [], blocked: false, auth: [] };
    net.drop = () => {
      net.blocked = true;
      for (const socket of net.sockets) socket.close();
    };
    net.restore = () => {
      net.blocked = false;
    };
    window.net = net;
    window.WebSocket = class extends Native {
      constructor(url) {
        // Blocked: a path of the same server that refuses the upgrade (404), so the attempt fails at once.
        super(net.blocked ? String(url).replace("/v1/realtime", "/v1/unplugged") : url);
        net.sockets.push(this);
      }
      send(data) {
        const frame = JSON.parse(data);
        if (frame.type === "auth") net.auth.push("resumeAfter" in frame ? frame.resumeAfter : null);
        super.send(data);
      }
    };
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${callbox.url}/demo`);
  await page.addScriptTag({ url: `${callbox.url}/sdk/callbox.min.js` });
  const session = await page.evaluate(
    ([key, credentials, password]) => {
      const seen = { incoming: [], delivered: [], failed: [], clientFailed: [], clientStopped: [], states: [] };
      window.seen = seen;
      const client = new Callbox.SinchClient({ applicationKey: key, capabilities: { messaging: true } });
      window.chat = client;
      client.addListener({
        onClientFailed: (_c, error) => seen.clientFailed.push({ reason: error.reason, code: error.code, at: Date.now() }),
        onClientStopped: (_c, error) => seen.clientStopped.push(error ? error.reason : null),
        onConnectionStateChanged: (_c, state) => seen.states.push(state),
      });
      const started =
        credentials === "signup"
          ? client.newUser({ username: "bob", password }).then(() => client.start({ username: "bob", password }))
          : client.start(credentials);
      return started.then((session) => {
        client.getMessageClient().addEventListener({
          onIncomingMessage: (m) =>
            seen.incoming.push({
              messageId: m.messageId,
              senderId: m.senderId,
              recipientIds: m.recipientIds,
              textBody: m.textBody,
              headers: m.headers,
              isDate: m.timestamp instanceof Date,
            }),
          onMessageDelivered: (info) => seen.delivered.push({ messageId: info.messageId, recipientId: info.recipientId }),
          onMessageFailed: (info) => seen.failed.push({ messageId: info.messageId, recipientId: info.recipientId, reason: info.reason }),
        });
        return session;
      });
    },
    [key, credentials, PASSWORD],
  );
  await page.waitForFunction(() => window.chat.getConnectionState() === "connected");
  return { context, page, session, errors };
}

/** Alice sends `texts` in one go (not waiting in between); resolves to the accepted message ids, in order. */
function send(page, recipients, texts) {
  return page.evaluate(
    ([recipients, texts]) => {
      const messaging = window.chat.getMessageClient();
      return Promise.all(
        texts.map(
          (text) =>
            new Promise((resolve, reject) => {
              messaging
                .send(messaging.newMessage(recipients, text, { n: text }))
                .then((m) => resolve({ messageId: m.messageId, isDate: m.timestamp instanceof Date }))
                .fail((e) => reject(new Error(`${e.reason}: ${e.message}`)));
            }),
        ),
      );
    },
    [recipients, texts],
  );
}

const seen = (page) => page.evaluate(() => window.seen);

test("two browsers chat: delivery with receipts, offline delivery in order after a reconnect, revocation closes the socket", async (t) => {
  const ticket = JSON.parse(await cli("ticket", "mint", "--key", app.key, "--secret", app.secret, "--user", "alice"));
  const alice = await openChat(ticket);
  assert.equal(alice.session.userId, "alice");
  let bob = await openChat("signup");
  assert.equal(bob.session.userId, "bob");

  // Alice sends; bob's onIncomingMessage fires with the text; alice hears it was delivered.
  const [hello] = await send(alice.page, "bob", ["hello bob"]);
  assert.equal(typeof hello.messageId, "string");
  assert.equal(hello.isDate, true);
  await bob.page.waitForFunction(() => window.seen.incoming.length === 1);
  const [got] = (await seen(bob.page)).incoming;
  assert.deepEqual(got, {
    messageId: hello.messageId,
    senderId: "alice",
    recipientIds: ["bob"],
    textBody: "hello bob",
    headers: { n: "hello bob" },
    isDate: true,
  });
  await alice.page.waitForFunction((id) => window.seen.delivered.some((d) => d.messageId === id), hello.messageId);
  assert.deepEqual((await seen(alice.page)).delivered, [{ messageId: hello.messageId, recipientId: "bob" }]);

  // Bob's network drops; alice sends two while he is cut off; when it is back, his SDK reconnects (with backoff),
  // resumes after the last seq it saw, and shows the two, once each, without the first one again.
  await bob.page.evaluate(() => window.net.drop());
  await bob.page.waitForFunction(() => window.chat.getConnectionState() === "reconnecting");
  const away = await send(alice.page, "bob", ["away 1", "away 2"]);
  await new Promise((r) => setTimeout(r, 1000)); // attempts fail meanwhile
  await bob.page.evaluate(() => window.net.restore());
  await bob.page.waitForFunction(() => window.seen.incoming.length >= 3);
  await bob.page.waitForFunction(() => window.chat.getConnectionState() === "connected");
  await new Promise((r) => setTimeout(r, 300));
  const resumed = await seen(bob.page);
  assert.deepEqual(resumed.incoming.map((m) => m.textBody), ["hello bob", "away 1", "away 2"]);
  assert.deepEqual(resumed.incoming.slice(1).map((m) => m.messageId), away.map((m) => m.messageId));
  const auths = await bob.page.evaluate(() => window.net.auth);
  const attempts = await bob.page.evaluate(() => window.net.sockets.length);
  assert.ok(attempts >= 3, `failed attempts while cut off, then one that got through: ${attempts} sockets`);
  assert.equal(auths[0], null, "the first connection of a page asks for every unconfirmed message");
  assert.ok(Number.isInteger(auths.at(-1)) && auths.at(-1) > 0, `the reconnect resumes after a seq: ${auths}`);
  assert.ok(resumed.states.includes("reconnecting"));
  await alice.page.waitForFunction(() => window.seen.delivered.length === 3);

  // A recipient nobody signed up: a failed receipt, no delivery.
  const [stray] = await send(alice.page, "nobody-here", ["anyone?"]);
  await alice.page.waitForFunction(() => window.seen.failed.length === 1);
  assert.deepEqual((await seen(alice.page)).failed, [{ messageId: stray.messageId, recipientId: "nobody-here", reason: "unknown_user" }]);

  // Bob closes his page; alice sends three more while he is away.
  await bob.context.close();
  const three = await send(alice.page, ["bob"], ["one", "two", "three"]);
  assert.equal(new Set(three.map((m) => m.messageId)).size, 3);

  // Bob comes back (a new page, logging in again): the three arrive, in order, once each.
  bob = await openChat({ username: "bob", password: PASSWORD });
  await bob.page.waitForFunction(() => window.seen.incoming.length >= 3);
  await new Promise((r) => setTimeout(r, 500)); // room for a wrong duplicate or the old message to show up
  const back = (await seen(bob.page)).incoming;
  assert.deepEqual(back.map((m) => m.textBody), ["one", "two", "three"]);
  assert.deepEqual(back.map((m) => m.messageId), three.map((m) => m.messageId));
  await alice.page.waitForFunction(() => window.seen.delivered.length === 6);
  assert.deepEqual(
    (await seen(alice.page)).delivered.slice(3).map((d) => d.messageId).sort(),
    three.map((m) => m.messageId).sort(),
  );

  // Revoking bob's session from the CLI closes his connection and fires the SDK's failure and stop events.
  const revokedAt = Date.now();
  await cli("session", "revoke", "--app", app.key, bob.session.sessionId);
  await bob.page.waitForFunction(() => window.seen.clientStopped.length === 1, null, { timeout: 5000 });
  const bobSeen = await seen(bob.page);
  assert.equal(bobSeen.clientFailed.length, 1);
  assert.equal(bobSeen.clientFailed[0].reason, "session_revoked");
  assert.equal(bobSeen.clientFailed[0].code, 40100);
  const closedAfter = bobSeen.clientFailed[0].at - revokedAt;
  t.diagnostic(`bob's SDK reported the revocation ${closedAfter} ms after the CLI was started`);
  assert.ok(closedAfter < 2000, `closed ${closedAfter} ms after the CLI was started`);
  assert.deepEqual(bobSeen.clientStopped, ["session_revoked"]);
  assert.equal(bobSeen.states.at(-1), "stopped");
  assert.equal(await bob.page.evaluate(() => window.chat.getSession()), null);
  // It stays down (no reconnect), and alice's connection is untouched.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await bob.page.evaluate(() => window.chat.getConnectionState()), "stopped");
  assert.equal(await alice.page.evaluate(() => window.chat.getConnectionState()), "connected");

  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
});

test("a session renewed before it expires keeps its connection open past the old expiry (heartbeats both ways)", async (t) => {
  // The shortest session Callbox allows: the SDK renews it at half its life with a signed POST /v1/instance.
  const short = await callbox.createApp({
    name: "Short sessions",
    allowedOrigins: ["*"],
    platformUserAuth: true,
    capabilities: ["messaging"],
    sessionTtl: 60,
  });
  const dave = await openChat("signup", short.key);
  t.after(() => dave.context.close());
  const [before] = (await callbox.admin("GET", `/admin/v1/apps/${short.key}/sessions?userId=bob`)).sessions;
  const firstExpiry = Date.parse(before.expiresAt);
  const firstSecret = dave.session.sessionSecret;
  // Past the first expiry, with margin for the server's recheck at that moment.
  await new Promise((r) => setTimeout(r, firstExpiry - Date.now() + 5000));
  const [after] = (await callbox.admin("GET", `/admin/v1/apps/${short.key}/sessions?userId=bob`)).sessions;
  assert.equal(after.id, before.id, "the same session");
  assert.ok(Date.parse(after.expiresAt) > firstExpiry, "renewed: its expiry moved");
  const state = await dave.page.evaluate(() => ({
    connection: window.chat.getConnectionState(),
    sockets: window.net.sockets.length,
    states: window.seen.states,
    stopped: window.seen.clientStopped,
    secret: window.chat.getSession().sessionSecret,
  }));
  assert.deepEqual(
    { connection: state.connection, sockets: state.sockets, states: state.states, stopped: state.stopped },
    { connection: "connected", sockets: 1, states: ["connecting", "connected"], stopped: [] },
    "one socket all along: no reconnect for the renewal, none for heartbeats",
  );
  assert.notEqual(state.secret, firstSecret, "the renewal brought a new secret");
  // The connection is live and the new secret signs calls.
  const [stray] = await send(dave.page, "nobody-here", ["still there?"]);
  await dave.page.waitForFunction(() => window.seen.failed.length === 1);
  assert.equal((await seen(dave.page)).failed[0].messageId, stray.messageId);
  const profile = await dave.page.evaluate(() => window.chat.getUserProfile());
  assert.deepEqual(profile, { identities: [{ type: "username", endpoint: "bob" }] });
  assert.deepEqual(dave.errors, []);
});
