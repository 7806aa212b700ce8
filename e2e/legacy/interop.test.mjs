// Interop end-to-end: a legacy SDK client (the real `sinch-rtc` 1.4.12, Node, over the PubNub-style transport of
// docs/legacy-sdk.md) and a client of Callbox's own SDK (sdk/js in Debian's Chromium, over the WebSocket of
// docs/realtime.md), users of the same application on one `callbox serve`, exchange messages and receipts both
// ways. The server is lib/legacy.mjs's (TLS on 127.0.0.1:443, as the legacy SDK insists); the page, its API calls
// and its WebSocket go to that same https origin, Chromium trusting exactly the test certificate's key
// (lib/browser.mjs).
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { startLegacyServer, sdkDir, HOST } from "./lib/legacy.mjs";
import { launchChromium, openBrowserClient, sendFromPage } from "./lib/browser.mjs";

const ticketgen = createRequire(join(sdkDir, "package.json"))("sinch-ticketgen");
const TEST = { timeout: 90000 };
const ORIGIN = `https://${HOST}`;
/** How long a page waits for an event of the SDK. */
const WAIT = { timeout: 15000 };

let server;
let browser;
let apps = 0;
const pages = new Set();

before(async () => {
  server = await startLegacyServer();
  console.log(`callbox ${server.mode === "native" ? "terminates TLS itself" : "behind a Node TLS proxy on 127.0.0.1:443"}`);
  browser = await launchChromium(server.ca);
});

afterEach(async () => {
  await Promise.all([...pages].map((p) => p.context.close().catch(() => {})));
  pages.clear();
  await server?.closeClients();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A fresh messaging application whose only allowed origin is the server's own (where the page comes from). */
function freshApp() {
  apps += 1;
  return server.createApp({ name: `Interop ${apps}`, capabilities: ["messaging"], allowedOrigins: [ORIGIN] });
}

/** A ticket for `user`, from the published Node generator, as a customer's backend makes it. */
function ticket(app, user) {
  return ticketgen(app.key, app.secret, { username: user });
}

/** A legacy client of `app` started as `user` (active connection). */
async function legacyOnline(app, user) {
  const client = await server.client(app.key, user);
  const started = await client.start(ticket(app, user));
  assert.equal(started.userId, user);
  return client;
}

/** A page with Callbox's SDK started as `user` of `app`. */
async function browserOnline(app, user) {
  const client = await openBrowserClient(browser, { origin: ORIGIN, key: app.key, ticket: ticket(app, user) });
  pages.add(client);
  assert.equal(client.session.userId, user);
  assert.equal(await client.page.evaluate(() => location.protocol), "https:");
  return client;
}

const seen = (page) => page.evaluate(() => window.seen);

test("legacy alice and browser bob of one app exchange messages both ways, with delivery receipts", TEST, async () => {
  const app = await freshApp();
  const alice = await legacyOnline(app, "alice");
  const bob = await browserOnline(app, "bob");

  // 1. Legacy alice → browser bob: the text arrives under the legacy SDK's own message id, bob's SDK confirms it
  // on its WebSocket, and alice's legacy client hears it was delivered to bob.
  const sent = await alice.send("bob", "Hello bob, from the legacy SDK");
  await bob.page.waitForFunction(() => window.seen.incoming.length >= 1, null, WAIT);
  const [got] = (await seen(bob.page)).incoming;
  assert.equal(got.messageId, sent.messageId);
  assert.equal(got.senderId, "alice");
  assert.equal(got.textBody, "Hello bob, from the legacy SDK");
  assert.deepEqual([...got.recipientIds].sort(), ["bob"]);
  assert.deepEqual(got.headers, {}, "a legacy message without headers has none");
  await bob.page.waitForFunction(
    (id) => window.sent.some((f) => f.type === "message.received" && f.messageId === id),
    sent.messageId,
    WAIT,
  );
  await alice.waitForDelivery(sent.messageId, "bob");

  // 2. Browser bob → legacy alice: alice's onIncomingMessage gets the text under the id Callbox gave it, and bob's
  // page sees the delivery receipt of alice's legacy client.
  const replyId = await sendFromPage(bob.page, "alice", "Hi alice, from Callbox's SDK");
  const reply = await alice.waitForMessage("Hi alice, from Callbox's SDK");
  assert.equal(reply.messageId, replyId);
  assert.equal(reply.senderId, "bob");
  assert.ok(reply.recipientIds.includes("alice"), `alice among the recipients: ${JSON.stringify(reply.recipientIds)}`);
  await bob.page.waitForFunction((id) => window.seen.delivered.some((d) => d.messageId === id), replyId, WAIT);
  await new Promise((r) => setTimeout(r, 500)); // room for a wrong duplicate to show up
  const bobSeen = await seen(bob.page);
  assert.deepEqual(bobSeen.delivered, [{ messageId: replyId, recipientId: "alice" }]);
  assert.deepEqual(bobSeen.failed, []);
  assert.deepEqual(bobSeen.clientFailed, []);
  // Each side saw the other's message once.
  assert.equal(bobSeen.incoming.length, 1);
  assert.equal(alice.events.filter((e) => e.event === "message" && !e.outgoing).length, 1);
  assert.deepEqual(bob.errors, []);
});

test("a message sent while the other side is away arrives when it comes back, both ways, with its receipt", TEST, async () => {
  const app = await freshApp();
  let alice = await legacyOnline(app, "alice");
  let bob = await browserOnline(app, "bob");

  // Bob's page closes; legacy alice sends; bob opens a new page and gets it from his inbox.
  await bob.context.close();
  pages.delete(bob);
  const sent = await alice.send("bob", "For bob, while he was away");
  bob = await browserOnline(app, "bob");
  await bob.page.waitForFunction(() => window.seen.incoming.length >= 1, null, WAIT);
  assert.deepEqual(
    (await seen(bob.page)).incoming.map((m) => [m.messageId, m.textBody]),
    [[sent.messageId, "For bob, while he was away"]],
  );
  await alice.waitForDelivery(sent.messageId, "bob");

  // Legacy alice stops; bob sends; alice starts again (a new session) and gets it, and bob the receipt.
  await alice.close();
  const replyId = await sendFromPage(bob.page, "alice", "For alice, while she was away");
  alice = await legacyOnline(app, "alice");
  const reply = await alice.waitForMessage("For alice, while she was away", { timeoutMs: 20000 });
  assert.equal(reply.messageId, replyId);
  await bob.page.waitForFunction((id) => window.seen.delivered.some((d) => d.messageId === id), replyId, WAIT);
  await new Promise((r) => setTimeout(r, 500)); // room for a wrong duplicate to show up
  assert.equal((await seen(bob.page)).incoming.length, 1);
  assert.equal(alice.events.filter((e) => e.event === "message" && !e.outgoing).length, 1);
});

// Headers. The legacy SDK takes a message's headers only as a string ("for cross device compatibility",
// `newMessage(to, text, headers)` throws otherwise), sends it as `nvps.ph` and hands the app `nvps.ph` as it came;
// Callbox's SDK and its WebSocket carry a JSON object. Callbox maps one to the other: a string holding a JSON object
// is that object (any other string is kept as {"ph": string}), and the object goes back to a legacy app as its JSON.
const LEGACY_HEADERS = JSON.stringify({ topic: "interop" });

test("headers of a legacy message (a JSON string) reach Callbox's SDK as the object", TEST, async () => {
  const app = await freshApp();
  const alice = await legacyOnline(app, "alice");
  const bob = await browserOnline(app, "bob");
  const sent = await alice.call("send", { to: "bob", text: "With headers", headers: LEGACY_HEADERS });
  await bob.page.waitForFunction(() => window.seen.incoming.length >= 1, null, WAIT);
  const [got] = (await seen(bob.page)).incoming;
  assert.equal(got.messageId, sent.messageId);
  assert.deepEqual(got.headers, { topic: "interop" });
});

test("headers of a message from Callbox's SDK reach a legacy app as a string, as the legacy SDK's own do", TEST, async () => {
  const app = await freshApp();
  const alice = await legacyOnline(app, "alice");
  const bob = await browserOnline(app, "bob");
  await sendFromPage(bob.page, "alice", "Headers to a legacy app", { topic: "interop" });
  const reply = await alice.waitForMessage("Headers to a legacy app");
  assert.equal(typeof reply.headers, "string", `the legacy app got ${JSON.stringify(reply.headers)}`);
  assert.deepEqual(JSON.parse(reply.headers), { topic: "interop" });
});
