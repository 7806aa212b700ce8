// End-to-end test of legacy messaging (issue 13): the real legacy SDK (`sinch-rtc` 1.4.12 from the npm registry,
// its Node build, unchanged) against a real `callbox serve`, over TLS on 127.0.0.1:443 as the SDK insists
// (lib/legacy.mjs). Tickets come from the published generator `sinch-ticketgen` 0.0.6, as a customer's backend
// makes them. Every client is a process of its own (lib/client-process.mjs) with startActiveConnection: true.
//
// Each test has an application of its own (so nothing one test sent can be replayed to the next) and closes its
// clients after it; the server is one per file (port 443 can be taken only once).
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { startLegacyServer, sdkDir } from "./lib/legacy.mjs";

const ticketgen = createRequire(join(sdkDir, "package.json"))("sinch-ticketgen");
const PASSWORD = "somethingSecure1";
const TEST = { timeout: 90000 };

let server;
let apps = 0;

before(async () => {
  server = await startLegacyServer();
  console.log(`callbox ${server.mode === "native" ? "terminates TLS itself" : "behind a Node TLS proxy on 127.0.0.1:443"}`);
});

afterEach(async () => {
  await server?.closeClients();
});

after(async () => {
  await server?.stop();
});

/** A fresh messaging application; `platformUserAuth` for one whose users sign up through the SDK. */
function freshApp({ platformUserAuth = false } = {}) {
  apps += 1;
  return server.createApp({ name: `Legacy chat ${apps}`, capabilities: ["messaging"], platformUserAuth, allowedOrigins: ["*"] });
}

/** A ticket for `user`, made by the published Node generator with the app's secret. */
function ticket(app, user) {
  return ticketgen(app.key, app.secret, { username: user });
}

/** A legacy client of `app` started as `user` with a backend ticket (active connection included). */
async function online(app, user) {
  const client = await server.client(app.key, user);
  const started = await client.start(ticket(app, user));
  assert.equal(started.userId, user);
  return client;
}

test("start() with a sinch-ticketgen ticket opens a session; a ticket signed with another secret is refused", TEST, async () => {
  const app = await freshApp();
  const alice = await server.client(app.key, "alice", { activeConnection: false });
  const started = await alice.start(ticket(app, "alice"));
  assert.equal(started.userId, "alice");
  assert.match(started.instanceId, /\S/);
  const { sessions } = await server.admin("GET", `/admin/v1/apps/${app.key}/sessions`);
  assert.ok(
    sessions.some((s) => s.id === started.instanceId && s.userId === "alice"),
    `session ${started.instanceId} of alice listed: ${JSON.stringify(sessions)}`,
  );

  const mallory = await server.client(app.key, "mallory", { activeConnection: false });
  const forged = ticketgen(app.key, "AAAAAAAAAAAAAAAAAAAAAA==", { username: "mallory" });
  const refused = await mallory.start(forged).then(
    () => assert.fail("a ticket signed with another secret started a session"),
    (error) => error.sdk,
  );
  // The SDK wraps the failed POST /v1/instance: ErrorDomainApi (3), ApiApiCallFailed (4000), "<errorCode> <message>".
  assert.equal(refused.domain, 3);
  assert.equal(refused.code, 4000);
  assert.match(refused.message, /^40102 /);
  assert.equal(refused.response.reason, "bad_signature");
});

test("alice and bob exchange messages and each sees the delivery receipt", TEST, async () => {
  const app = await freshApp();
  const alice = await online(app, "alice");
  const bob = await online(app, "bob");

  const sent = await alice.send("bob", "Hello bob");
  const got = await bob.waitForMessage("Hello bob");
  assert.equal(got.senderId, "alice");
  assert.equal(got.messageId, sent.messageId);
  assert.deepEqual([...got.recipientIds].sort(), ["alice", "bob"]);
  await alice.waitForDelivery(sent.messageId, "bob");

  const reply = await bob.send("alice", "Hi alice");
  const back = await alice.waitForMessage("Hi alice");
  assert.equal(back.senderId, "bob");
  assert.equal(back.messageId, reply.messageId);
  await bob.waitForDelivery(reply.messageId, "alice");

  // Each saw the other's message once.
  assert.equal(bob.events.filter((e) => e.event === "message" && !e.outgoing).length, 1);
  assert.equal(alice.events.filter((e) => e.event === "message" && !e.outgoing).length, 1);
});

test("a message long enough to need several frames arrives whole", TEST, async () => {
  const app = await freshApp();
  const alice = await online(app, "alice");
  const bob = await online(app, "bob");
  // 5000 characters, not one repeated letter, so that a frame put back in the wrong place would show.
  let text = "";
  for (let i = 0; text.length < 5000; i++) text += `${i} ${"äbc-".repeat(i % 7)}| `;
  text = text.slice(0, 5000);

  const sent = await alice.send("bob", text);
  const frames = await alice.waitFor((e) => e.event === "frames" && e.messageId === sent.messageId);
  assert.ok(frames.count >= 4, `the SDK cut the message into ${frames.count} frames`);
  const got = await bob.waitForMessage(text);
  assert.equal(got.textBody.length, 5000);
  assert.equal(got.messageId, sent.messageId);
  await alice.waitForDelivery(sent.messageId, "bob");
});

test("a group message reaches both recipients and both receipts come back", TEST, async () => {
  const app = await freshApp();
  const alice = await online(app, "alice");
  const bob = await online(app, "bob");
  const carol = await online(app, "carol");

  const sent = await alice.send(["bob", "carol"], "Hello both");
  for (const [client, name] of [
    [bob, "bob"],
    [carol, "carol"],
  ]) {
    const got = await client.waitForMessage("Hello both");
    assert.equal(got.senderId, "alice", `${name} sees the sender`);
    assert.deepEqual([...got.recipientIds].sort(), ["alice", "bob", "carol"], `${name} sees every member`);
  }
  await alice.waitForDelivery(sent.messageId, "bob");
  await alice.waitForDelivery(sent.messageId, "carol");

  // A reply from carol to the same group reaches alice and bob.
  await carol.send(["alice", "bob"], "Hello from carol");
  assert.equal((await alice.waitForMessage("Hello from carol")).senderId, "carol");
  assert.equal((await bob.waitForMessage("Hello from carol")).senderId, "carol");
});

test("a message sent while bob is away reaches him when he starts again", TEST, async () => {
  const app = await freshApp();
  const alice = await online(app, "alice");
  const bob = await online(app, "bob");
  const first = await alice.send("bob", "Before you go");
  await bob.waitForMessage("Before you go");
  await alice.waitForDelivery(first.messageId, "bob");

  await bob.close();
  const away = await alice.send("bob", "While you were away");

  const bobAgain = await online(app, "bob");
  const got = await bobAgain.waitForMessage("While you were away", { timeoutMs: 20000 });
  assert.equal(got.senderId, "alice");
  assert.equal(got.messageId, away.messageId);
  await alice.waitForDelivery(away.messageId, "bob", { timeoutMs: 20000 });

  // What bob had already received before he left is not shown to him again.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const shown = bobAgain.events.filter((e) => e.event === "message" && !e.outgoing).map((e) => e.textBody);
  assert.deepEqual(shown, ["While you were away"]);
});

test("sending to a user the platform does not know is refused as the SDK reports it", TEST, async () => {
  const app = await freshApp({ platformUserAuth: true });
  // alice and bob sign up through the SDK (POST /v1/users), then start with the ticket it got.
  const clients = {};
  for (const user of ["alice", "bob"]) {
    const client = await server.client(app.key, user);
    const signedUp = await client.call("newUser", { username: user, password: PASSWORD });
    assert.match(signedUp.userTicket ?? signedUp.authorization ?? "", /:/, `${user} got a ticket`);
    assert.equal((await client.start(signedUp)).userId, user);
    clients[user] = client;
  }
  const { alice, bob } = clients;

  // No "carol" on this app: POST /v1/transport leaves her out of `participants`, and the SDK fails the send with
  // MXPError(ErrorDomainCapability = 1, CapabilityUserNotFound = 2000, "User does not exist", [missing users]).
  const refused = await alice.send("carol", "Anyone there?").then(
    () => assert.fail("a message to an unknown user was sent"),
    (error) => error.sdk,
  );
  assert.equal(refused.name, "MXPError");
  assert.equal(refused.domain, 1);
  assert.equal(refused.code, 2000);
  assert.equal(refused.message, "User does not exist");
  assert.deepEqual(refused.response, ["carol"]);

  // A known user on the same app is reached, so it was carol that was refused and not alice.
  const sent = await alice.send("bob", "Hello bob");
  await bob.waitForMessage("Hello bob");
  await alice.waitForDelivery(sent.messageId, "bob");
  assert.ok(!bob.events.some((e) => e.event === "message" && e.textBody === "Anyone there?"));
});
