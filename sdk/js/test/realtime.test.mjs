// Unit tests of the realtime connection and the message client of the built SDK (dist/callbox.js), in Node:
// a fake Callbox answers the HTTP calls (fake fetch) and a small WebSocket server (the `ws` package) plays the
// realtime endpoint of docs/realtime.md, checking every auth frame's signature on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { WebSocket, WebSocketServer } from "ws";
import { Client, CallboxError, CallboxPromise, Message, signRealtimeAuth, signRequest } from "../dist/callbox.js";

const TICKET = "eyJhcHBsaWNhdGlvbktleSI6ImsifQ==:c2lnbmF0dXJl"; // shape only

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** Resolves when `predicate()` holds, polling; rejects after `ms`. */
async function until(predicate, what, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A fake Callbox: HTTP through `fetch`, realtime through a real WebSocket server on 127.0.0.1. Every connection
 * gets a challenge; an auth frame whose signature (computed here with node:crypto) matches the current session
 * secret gets `ready`, then `onReady(conn)` runs. `onFrame(conn, frame)` sees every later frame.
 */
async function fakeCallbox({ expiresInSeconds = 3600, onReady = () => {}, onFrame = () => {}, onConnection } = {}) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  const port = wss.address().port;
  const state = {
    secret: Buffer.from("0123456789abcdef0123456789abcdef").toString("base64"),
    generation: 0,
    calls: [],
    connections: [],
  };
  wss.on("connection", (ws, request) => {
    const conn = { ws, url: request.url, frames: [], auth: null, at: Date.now(), closed: null, nonce: `nonce${state.connections.length}AAAAAAAAAAAAAAAA` };
    state.connections.push(conn);
    conn.send = (frame) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(frame));
    ws.on("close", (code, reason) => {
      conn.closed = { code, reason: String(reason) };
    });
    if (state.dropAll) {
      ws.close(1013, "try_again_later");
      return;
    }
    if (onConnection && onConnection(conn) === false) return;
    conn.send({ type: "challenge", nonce: conn.nonce, serverTime: new Date().toISOString() });
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data));
      conn.frames.push(frame);
      if (frame.type === "auth" && !conn.auth) {
        conn.auth = frame;
        const expected = createHmac("sha256", Buffer.from(state.secret, "base64"))
          .update(`GET\n\n\nx-timestamp:${frame.timestamp}\n/v1/realtime/${conn.nonce}`)
          .digest("base64");
        conn.signatureOk = frame.signature === expected && frame.sessionId === "sess1";
        if (!conn.signatureOk) {
          conn.send({ type: "error", errorCode: 40102, reason: "bad_signature", message: "m", retryable: false });
          ws.close(4401, "bad_signature");
          return;
        }
        conn.send({
          type: "ready",
          sessionId: "sess1",
          userId: "alice",
          capabilities: ["messaging"],
          expiresAt: new Date(Date.now() + expiresInSeconds * 1000).toISOString(),
          heartbeatSeconds: 15,
          limits: { maxRecipients: 3, maxTextBytes: 4096, maxHeadersBytes: 1024, maxFrameBytes: 16384, messagesPerSecond: 20 },
        });
        onReady(conn);
        return;
      }
      onFrame(conn, frame);
    });
  });

  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    const call = { method: init.method ?? "GET", path: u.pathname, headers: init.headers ?? {}, body: init.body ?? "" };
    state.calls.push(call);
    if (call.path === "/v1/timestamp") return json(200, { timestamp: new Date().toISOString() });
    const auth = call.headers.Authorization ?? "";
    if (call.method === "POST" && call.path === "/v1/instance" && auth.startsWith("User ")) {
      return json(200, { id: "sess1", secret: state.secret, expiresIn: expiresInSeconds });
    }
    if (call.method === "PUT" && call.path === "/v1/instances/id/sess1/authorization" && auth.startsWith("User ")) {
      // Re-authorization with a fresh ticket: a new secret.
      state.generation += 1;
      state.secret = Buffer.from(`0123456789abcdef0123456789abcde${state.generation}`).toString("base64");
      return json(200, { id: "sess1", secret: state.secret, expiresIn: 3600 });
    }
    const m = /^Instance ([^:]+):(.+)$/.exec(auth);
    if (!m) return json(401, { errorCode: 40100, reason: "missing_authorization", message: "m", retryable: false });
    const contentType = call.headers["Content-Type"] ?? "";
    const { signature } = await signRequest(state.secret, call.method, call.path, call.body, contentType, call.headers["X-Timestamp"]);
    if (signature !== m[2]) return json(401, { errorCode: 40102, reason: "bad_signature", message: "m", retryable: false });
    if (call.method === "POST" && call.path === "/v1/instance") {
      // A signed renewal: a new expiry and a new secret.
      state.generation += 1;
      state.secret = Buffer.from(`0123456789abcdef0123456789abcde${state.generation}`).toString("base64");
      return json(200, { id: "sess1", secret: state.secret, expiresIn: 3600 });
    }
    if (call.path === "/v1/instances/id/sess1" && call.method === "GET") {
      const expiresAt = new Date(Date.now() + expiresInSeconds * 1000).toISOString();
      return json(200, { id: "sess1", userId: "alice", capabilities: ["messaging"], expiresAt });
    }
    if (call.path === "/v1/instances/id/sess1" && call.method === "DELETE") return new Response(null, { status: 204 });
    return json(404, { errorCode: 40400, reason: "not_found", message: "m", retryable: false });
  };

  return {
    state,
    fetch,
    url: `http://127.0.0.1:${port}`,
    /** The n-th connection that got `ready`. */
    ready: (n) => state.connections.filter((c) => c.auth && c.signatureOk)[n],
    close: () =>
      new Promise((r) => {
        for (const client of wss.clients) client.terminate();
        wss.close(r);
      }),
  };
}

/** A started client of `server` asking for messaging; `t.after` terminates it. */
async function startedClient(t, server, options = {}) {
  const logs = [];
  const states = [];
  const client = new Client({
    applicationKey: "k",
    capabilities: { messaging: true },
    url: server.url,
    fetch: server.fetch,
    onLogMessage: (m) => logs.push(m),
    ...options,
    realtime: { WebSocket, backoffInitialMs: 20, backoffMaxMs: 200, ...(options.realtime ?? {}) },
  });
  client.addListener({ onConnectionStateChanged: (_c, state) => states.push(state) });
  t.after(async () => {
    await client.terminate().catch(() => {});
    await server.close();
  });
  await client.start({ userTicket: TICKET });
  return { client, logs, states };
}

test("realtime: the auth signature of a fixed vector (computed with openssl)", async () => {
  // printf 'GET\n\n\nx-timestamp:2026-12-03T06:00:00Z\n/v1/realtime/q7Yb0xWc3kLmN9pR2sTu4v' |
  //   openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex of the secret> -binary | base64
  const signature = await signRealtimeAuth("JViE5vDor0Sw3WllZka15Q==", "q7Yb0xWc3kLmN9pR2sTu4v", "2026-12-03T06:00:00Z");
  assert.equal(signature, "T1+kHCpdltzM26nsJAAsEgg12iVhLcfaHBgBNKMYkgM=");
  // Another nonce signs differently: a captured auth frame is useless on another connection.
  assert.notEqual(await signRealtimeAuth("JViE5vDor0Sw3WllZka15Q==", "q7Yb0xWc3kLmN9pR2sTu4w", "2026-12-03T06:00:00Z"), signature);
});

test("realtime: start() opens the connection and answers the challenge with a signed auth frame, no credential in the URL", async (t) => {
  const server = await fakeCallbox();
  const { client, logs, states } = await startedClient(t, server);
  await until(() => client.getConnectionState() === "connected", "connected");
  const conn = server.state.connections[0];
  assert.equal(conn.url, "/v1/realtime", "no query string, no credential in the URL");
  assert.equal(conn.signatureOk, true, "the signature matches the one computed from the session secret");
  assert.deepEqual(Object.keys(conn.auth).sort(), ["sessionId", "signature", "timestamp", "type"], "a first connection has no resumeAfter");
  assert.ok(Math.abs(Date.parse(conn.auth.timestamp) - Date.now()) < 5000);
  assert.deepEqual(states, ["connecting", "connected"]);
  const secret = server.state.secret;
  assert.ok(!JSON.stringify(conn.frames).includes(secret), "the session secret never travels");
  assert.ok(!JSON.stringify(logs).includes(secret) && !JSON.stringify(logs).includes(conn.auth.signature), "nor is it logged");
});

test("realtime: the client answers a ping with a pong", async (t) => {
  const server = await fakeCallbox({ onReady: (conn) => conn.send({ type: "ping" }) });
  await startedClient(t, server);
  await until(() => server.ready(0)?.frames.some((f) => f.type === "pong"), "pong");
});

test("messaging: send() resolves on message.accepted; an error frame with its ref reaches .fail()", async (t) => {
  const server = await fakeCallbox({
    onFrame: (conn, frame) => {
      if (frame.type !== "message.send") return;
      if (frame.recipients.length > 3) {
        conn.send({ type: "error", ref: frame.ref, errorCode: 41300, reason: "payload_too_large", message: "too many recipients: at most 3", retryable: false });
      } else {
        conn.send({ type: "message.accepted", ref: frame.ref, messageId: `m-${frame.text}`, timestamp: "2026-12-03T06:00:01.250Z" });
      }
    },
  });
  const { client } = await startedClient(t, server);
  const messaging = client.getMessageClient();
  assert.equal(client.getMessageClient(), messaging, "one message client per client");
  const message = messaging.newMessage("bob", "hello", { topic: "greeting" });
  assert.ok(message instanceof Message);
  assert.equal(message.messageId, null);
  assert.deepEqual([message.senderId, message.recipientIds, message.textBody, message.headers], ["alice", ["bob"], "hello", { topic: "greeting" }]);
  const sending = messaging.send(message);
  assert.ok(sending instanceof CallboxPromise && typeof sending.fail === "function");
  const sent = await sending;
  assert.equal(sent, message);
  assert.equal(message.messageId, "m-hello");
  assert.ok(message.timestamp instanceof Date);
  assert.equal(message.timestamp.toISOString(), "2026-12-03T06:00:01.250Z");
  const frame = server.ready(0).frames.find((f) => f.type === "message.send");
  assert.deepEqual({ ...frame, ref: undefined }, { type: "message.send", ref: undefined, recipients: ["bob"], text: "hello", headers: { topic: "greeting" } });
  assert.equal(typeof frame.ref, "string");

  const refused = await new Promise((resolve) => {
    messaging.send(messaging.newMessage(["b", "c", "d", "e"], "too many")).then(() => resolve("sent")).fail(resolve);
  });
  assert.ok(refused instanceof CallboxError);
  assert.equal(refused.reason, "payload_too_large");
  assert.equal(refused.code, 41300);
  assert.equal(refused.message, "too many recipients: at most 3");
  assert.throws(() => messaging.newMessage([], "x"), (e) => e.reason === "invalid_argument");
  assert.throws(() => messaging.newMessage("bob", 42), (e) => e.reason === "invalid_argument");
});

test("messaging: incoming messages fire once each, are confirmed, and a reconnect resumes after the last seq without duplicates", async (t) => {
  const message = (seq, text) => ({
    type: "message",
    messageId: `id-${seq}`,
    seq,
    senderId: "bob",
    recipientIds: ["alice"],
    text,
    headers: { n: seq },
    timestamp: `2026-12-03T06:00:0${seq}Z`,
  });
  let readyCount = 0;
  const server = await fakeCallbox({
    onReady: (conn) => {
      readyCount += 1;
      if (readyCount === 1) {
        conn.send(message(1, "one"));
        conn.send(message(2, "two"));
        // The server restarts: the connection drops.
        setTimeout(() => conn.ws.close(1012, "service_restart"), 50);
      } else {
        // Replays from after resumeAfter, as asked, and once more the last one seen (an at-least-once replay).
        conn.send(message(2, "two"));
        conn.send(message(3, "three"));
      }
    },
  });
  const incoming = [];
  const { client, states } = await startedClient(t, server);
  client.getMessageClient().addEventListener({ onIncomingMessage: (m) => incoming.push(m) });
  await until(() => incoming.length >= 3 && server.ready(1), "three messages over two connections");
  await sleep(50);
  assert.deepEqual(incoming.map((m) => m.textBody), ["one", "two", "three"], "in order, none twice");
  assert.deepEqual(
    { id: incoming[0].messageId, sender: incoming[0].senderId, to: incoming[0].recipientIds, headers: incoming[0].headers },
    { id: "id-1", sender: "bob", to: ["alice"], headers: { n: 1 } },
  );
  assert.ok(incoming[0].timestamp instanceof Date && incoming[0].timestamp.toISOString() === "2026-12-03T06:00:01.000Z");
  assert.equal(server.ready(1).auth.resumeAfter, 2, "resumes after the last seq seen");
  assert.equal(server.ready(1).signatureOk, true);
  const confirmations = (conn) => conn.frames.filter((f) => f.type === "message.received").map((f) => `${f.messageId}/${f.seq}`);
  assert.deepEqual(confirmations(server.ready(0)), ["id-1/1", "id-2/2"]);
  // The replayed one is confirmed again (the server evidently missed the first confirmation) but not shown again.
  assert.deepEqual(confirmations(server.ready(1)), ["id-2/2", "id-3/3"]);
  assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected"]);
});

test("messaging: receipts fire onMessageDelivered and onMessageFailed once each; removeEventListener stops them", async (t) => {
  const server = await fakeCallbox({
    onFrame: (conn, frame) => {
      if (frame.type !== "message.send") return;
      conn.send({ type: "message.accepted", ref: frame.ref, messageId: "m1", timestamp: "2026-12-03T06:00:00Z" });
      conn.send({ type: "message.receipt", messageId: "m1", recipientId: "nobody", status: "failed", reason: "unknown_user", timestamp: "2026-12-03T06:00:00Z" });
      conn.send({ type: "message.receipt", messageId: "m1", recipientId: "bob", status: "delivered", timestamp: "2026-12-03T06:00:02Z" });
      // A receipt seen twice (replayed) is reported once.
      conn.send({ type: "message.receipt", messageId: "m1", recipientId: "bob", status: "delivered", timestamp: "2026-12-03T06:00:02Z" });
    },
  });
  const { client } = await startedClient(t, server);
  const messaging = client.getMessageClient();
  const delivered = [];
  const failed = [];
  const listener = { onMessageDelivered: (info) => delivered.push(info), onMessageFailed: (info) => failed.push(info) };
  messaging.addEventListener(listener);
  const sent = await messaging.send(messaging.newMessage(["bob", "nobody"], "hi"));
  await until(() => delivered.length === 1 && failed.length === 1, "both receipts");
  await sleep(30);
  assert.equal(delivered.length, 1);
  assert.deepEqual({ ...delivered[0], timestamp: delivered[0].timestamp.toISOString() }, { messageId: sent.messageId, recipientId: "bob", timestamp: "2026-12-03T06:00:02.000Z" });
  assert.equal(failed[0].messageId, "m1");
  assert.equal(failed[0].recipientId, "nobody");
  assert.equal(failed[0].reason, "unknown_user");
  assert.ok(failed[0].error instanceof CallboxError && failed[0].error.reason === "unknown_user");

  messaging.removeEventListener(listener);
  server.ready(0).send({ type: "message.receipt", messageId: "m2", recipientId: "bob", status: "delivered", timestamp: "2026-12-03T06:00:03Z" });
  await sleep(50);
  assert.equal(delivered.length, 1, "a removed listener hears nothing");
});

test("realtime: reconnect attempts back off exponentially with jitter, then connect", async (t) => {
  const server = await fakeCallbox({
    // The first five connections are dropped at once, before any challenge.
    onConnection: (conn) => {
      if (server.state.connections.length <= 5) {
        conn.ws.close(1011, "internal_error");
        return false;
      }
      return true;
    },
  });
  const { client } = await startedClient(t, server, { realtime: { backoffInitialMs: 40, backoffMaxMs: 400 } });
  await until(() => client.getConnectionState() === "connected", "connected after the drops", 5000);
  const at = server.state.connections.map((c) => c.at);
  assert.equal(at.length, 6);
  const gaps = at.slice(1).map((time, i) => time - at[i]);
  // Attempt n waits between half and all of min(400, 40 * 2^n), plus the time the close takes to arrive.
  const bases = [40, 80, 160, 320, 400];
  gaps.forEach((gap, i) => {
    assert.ok(gap >= bases[i] / 2 - 5, `gap ${i} = ${gap} ms, at least half of ${bases[i]}`);
    // Timers never fire early; they may fire late on a busy machine, hence the generous slack.
    assert.ok(gap <= bases[i] + 400, `gap ${i} = ${gap} ms, at most ${bases[i]} plus slack`);
  });
});

test("realtime: a connection without frames for deadAfterMs is taken for dead and replaced", async (t) => {
  // The server pings every 100 ms for 700 ms, then goes silent: no ping, nothing; the TCP connection stays up.
  let silentSince = 0;
  const server = await fakeCallbox({
    onReady: (conn) => {
      if (server.state.connections.length > 1) return;
      const pings = setInterval(() => conn.send({ type: "ping" }), 100);
      setTimeout(() => {
        clearInterval(pings);
        silentSince = Date.now();
      }, 700);
    },
  });
  const { client } = await startedClient(t, server, { realtime: { deadAfterMs: 300 } });
  await until(() => server.ready(0), "first connection");
  await until(() => server.ready(1), "a second connection", 3000);
  assert.ok(silentSince > 0, "a connection that hears pings is kept past the dead time");
  const took = Date.now() - silentSince;
  assert.ok(took >= 150, `replaced ${took} ms after the last frame, not before the dead time`);
  await until(() => client.getConnectionState() === "connected", "connected again");
  await until(() => server.ready(0).closed, "the dead one closed");
  assert.equal(server.ready(0).closed.code, 4408);
});

test("realtime: a session_revoked close fires onClientFailed and onClientStopped, rejects waiting sends, and never reconnects", async (t) => {
  const server = await fakeCallbox({
    onFrame: (conn, frame) => {
      if (frame.type === "message.send" && frame.text === "revoke me") {
        conn.send({ type: "error", errorCode: 40100, reason: "session_revoked", message: "the session was revoked", retryable: false });
        conn.ws.close(4401, "session_revoked");
      }
    },
  });
  const { client, states } = await startedClient(t, server);
  const events = [];
  client.addListener({
    onClientFailed: (c, error) => events.push(["failed", c === client, error.reason, error.code]),
    onClientStopped: (c, error) => events.push(["stopped", c === client, error && error.reason]),
  });
  const messaging = client.getMessageClient();
  await until(() => client.getConnectionState() === "connected", "connected");
  const outcome = await messaging.send(messaging.newMessage("bob", "revoke me")).then(() => "sent", (e) => e.reason);
  assert.equal(outcome, "connection_lost", "the send in flight is not known to be taken");
  await until(() => events.length === 2, "both events");
  assert.deepEqual(events, [["failed", true, "session_revoked", 40100], ["stopped", true, "session_revoked"]]);
  assert.equal(client.getConnectionState(), "stopped");
  assert.equal(client.getSession(), null);
  await sleep(300); // many backoff periods at 20 ms
  assert.equal(server.state.connections.length, 1, "no reconnect");
  assert.deepEqual(states.slice(-2), ["reconnecting", "stopped"]);
  const late = await messaging.send(messaging.newMessage("bob", "after")).then(() => "sent", (e) => e.reason);
  assert.equal(late, "not_started");
});

test("realtime: a timestamp_skew refusal resynchronizes the clock and reconnects; user_disabled on 4403 stops", async (t) => {
  let refusals = 0;
  const server = await fakeCallbox({
    onConnection: (conn) => {
      refusals += 1;
      if (refusals === 1) {
        conn.send({ type: "error", errorCode: 40101, reason: "timestamp_skew", message: "m", retryable: true });
        conn.ws.close(4401, "timestamp_skew");
        return false;
      }
      return true;
    },
    onReady: (conn) => {
      setTimeout(() => {
        conn.send({ type: "error", errorCode: 40300, reason: "user_disabled", message: "m", retryable: false });
        conn.ws.close(4403, "user_disabled");
      }, 30);
    },
  });
  const stopped = [];
  const { client } = await startedClient(t, server);
  client.addListener({ onClientStopped: (_c, error) => stopped.push(error.reason) });
  await until(() => stopped.length === 1, "stopped");
  assert.deepEqual(stopped, ["user_disabled"]);
  assert.equal(server.state.connections.length, 2, "retried after timestamp_skew, not after user_disabled");
  assert.ok(server.state.calls.filter((c) => c.path === "/v1/timestamp").length >= 2, "the clock was synchronized again");
});

test("messaging: a send made while disconnected goes out on the next connection", async (t) => {
  let n = 0;
  const server = await fakeCallbox({
    onReady: (conn) => {
      n += 1;
      if (n === 1) setTimeout(() => conn.ws.close(1001, "going_away"), 10);
    },
    onFrame: (conn, frame) => {
      if (frame.type === "message.send") conn.send({ type: "message.accepted", ref: frame.ref, messageId: "late", timestamp: "2026-12-03T06:00:00Z" });
    },
  });
  const { client } = await startedClient(t, server, { realtime: { backoffInitialMs: 200, backoffMaxMs: 200 } });
  await until(() => client.getConnectionState() === "reconnecting", "disconnected");
  const messaging = client.getMessageClient();
  const sent = await messaging.send(messaging.newMessage("bob", "queued"));
  assert.equal(sent.messageId, "late");
  assert.equal(server.ready(0).frames.filter((f) => f.type === "message.send").length, 0);
  assert.equal(server.ready(1).frames.filter((f) => f.type === "message.send").length, 1);
});

test("realtime: a renewal before expiry changes the secret over HTTP and keeps the socket open; the next auth uses the new secret", async (t) => {
  // A 2 s session: renewed at half its life (the 60 s margin is longer than the whole session).
  const server = await fakeCallbox({ expiresInSeconds: 2 });
  const { client } = await startedClient(t, server);
  await until(() => server.ready(0), "connected");
  const firstSecret = server.state.secret;
  await until(() => server.state.generation === 1, "a renewal", 4000);
  const renewal = server.state.calls.find((c) => c.method === "POST" && c.path === "/v1/instance" && c.headers.Authorization.startsWith("Instance "));
  assert.ok(renewal, "renewed with a signed POST /v1/instance");
  assert.notEqual(server.state.secret, firstSecret);
  assert.equal(client.getSession().sessionSecret, server.state.secret, "the client holds the new secret");
  await sleep(100);
  assert.equal(server.state.connections.length, 1, "no reconnect for a renewal");
  assert.equal(server.ready(0).closed, null);
  // A later reconnect signs with the new secret (the fake server checks it against the current one).
  server.ready(0).ws.close(1012, "service_restart");
  await until(() => server.ready(1), "reconnected with the new secret");
  assert.equal(server.state.connections.length, 2);
});

test("terminate() closes the socket, rejects waiting sends, ends the session and fires onClientStopped(null)", async (t) => {
  const server = await fakeCallbox(); // never accepts a message
  const { client, states } = await startedClient(t, server);
  const stopped = [];
  client.addListener({ onClientStopped: (_c, error) => stopped.push(error) });
  await until(() => client.getConnectionState() === "connected", "connected");
  const messaging = client.getMessageClient();
  const pending = messaging.send(messaging.newMessage("bob", "never answered")).then(() => "sent", (e) => e.reason);
  await until(() => server.ready(0).frames.some((f) => f.type === "message.send"), "sent");
  await client.terminate();
  assert.equal(await pending, "not_started");
  await until(() => server.ready(0).closed, "closed");
  assert.equal(server.ready(0).closed.code, 1000);
  assert.deepEqual(stopped, [null]);
  assert.equal(client.getConnectionState(), "stopped");
  assert.equal(states.at(-1), "stopped");
  assert.ok(server.state.calls.some((c) => c.method === "DELETE" && c.path === "/v1/instances/id/sess1"));
  await sleep(200);
  assert.equal(server.state.connections.length, 1, "no reconnect after terminate");
});

test("realtime: without messaging asked for, or without a WebSocket, no connection is made", async (t) => {
  const server = await fakeCallbox();
  t.after(() => server.close());
  const quiet = new Client({ applicationKey: "k", url: server.url, fetch: server.fetch, realtime: { WebSocket } });
  await quiet.start({ userTicket: TICKET });
  assert.equal(quiet.getConnectionState(), "idle");
  const logs = [];
  const noSocket = new Client({ applicationKey: "k", capabilities: { messaging: true }, url: server.url, fetch: server.fetch, onLogMessage: (m) => logs.push(m.message) });
  await noSocket.start({ userTicket: TICKET });
  assert.equal(noSocket.getConnectionState(), "idle");
  assert.ok(logs.some((m) => m.includes("no WebSocket")));
  const outcome = await noSocket.getMessageClient().send(noSocket.getMessageClient().newMessage("bob", "x")).then(() => "sent", (e) => e.reason);
  assert.equal(outcome, "realtime_unavailable");
  await sleep(50);
  assert.equal(server.state.connections.length, 0);
});

test("messaging: messages that arrive before any onIncomingMessage listener are held unconfirmed, then handed to the first one", async (t) => {
  const server = await fakeCallbox({
    onReady: (conn) => {
      for (const seq of [1, 2]) {
        conn.send({ type: "message", messageId: `early-${seq}`, seq, senderId: "bob", recipientIds: ["alice"], text: `early ${seq}`, timestamp: "2026-12-03T06:00:00Z" });
      }
      // A replay of a held one while still held.
      conn.send({ type: "message", messageId: "early-1", seq: 1, senderId: "bob", recipientIds: ["alice"], text: "early 1", timestamp: "2026-12-03T06:00:00Z" });
    },
  });
  const { client } = await startedClient(t, server);
  await until(() => server.ready(0), "connected");
  await sleep(100);
  const confirmations = () => server.ready(0).frames.filter((f) => f.type === "message.received").map((f) => f.messageId);
  assert.deepEqual(confirmations(), [], "nothing confirmed while nobody listens");
  const messaging = client.getMessageClient();
  messaging.addEventListener({ onMessageDelivered: () => {} }); // not a message listener: still held
  await sleep(20);
  assert.deepEqual(confirmations(), []);
  const incoming = [];
  messaging.addEventListener({ onIncomingMessage: (m) => incoming.push(m.textBody) });
  assert.deepEqual(incoming, ["early 1", "early 2"], "handed over at once, in order, once each");
  await until(() => confirmations().length === 2, "confirmations");
  assert.deepEqual(confirmations(), ["early-1", "early-2"]);
});

test("messaging: the copy of one's own message sent from another device is shown but not confirmed", async (t) => {
  const server = await fakeCallbox({
    onReady: (conn) => {
      // No seq: the sender's other devices get a copy that is not in their inbox.
      conn.send({ type: "message", messageId: "mine", senderId: "alice", recipientIds: ["bob"], text: "from my phone", headers: {}, timestamp: "2026-12-03T06:00:00Z" });
      conn.send({ type: "message", messageId: "theirs", seq: 4, senderId: "bob", recipientIds: ["alice"], text: "answer", headers: {}, timestamp: "2026-12-03T06:00:01Z" });
    },
  });
  const { client } = await startedClient(t, server);
  const incoming = [];
  client.getMessageClient().addEventListener({ onIncomingMessage: (m) => incoming.push([m.senderId, m.textBody]) });
  await until(() => incoming.length === 2, "both");
  await until(() => server.ready(0).frames.some((f) => f.type === "message.received"), "a confirmation");
  await sleep(30);
  assert.deepEqual(incoming, [["alice", "from my phone"], ["bob", "answer"]]);
  assert.deepEqual(server.ready(0).frames.filter((f) => f.type === "message.received"), [{ type: "message.received", messageId: "theirs", seq: 4 }]);
});

test("messaging: a send Callbox never answers fails with the retryable timeout; one queued past the limit with queue_full", async (t) => {
  const server = await fakeCallbox(); // takes message.send and never answers
  const { client } = await startedClient(t, server, { realtime: { requestTimeoutMs: 200 } });
  await until(() => client.getConnectionState() === "connected", "connected");
  const messaging = client.getMessageClient();
  const started = Date.now();
  const error = await messaging.send(messaging.newMessage("bob", "into the void")).then(() => null, (e) => e);
  assert.equal(error.reason, "timeout");
  assert.equal(error.retryable, true);
  assert.ok(Date.now() - started >= 190, "not before the timeout");
  assert.equal(server.ready(0).frames.filter((f) => f.type === "message.send").length, 1);

  // Disconnected for good (every new connection is dropped): the queue fills up to its limit, then refuses.
  server.state.dropAll = true;
  server.ready(0).ws.close(1012, "service_restart");
  await until(() => client.getConnectionState() === "reconnecting", "reconnecting");
  const waiting = Array.from({ length: 1000 }, () => messaging.send(messaging.newMessage("bob", "queued")).then(() => "sent", (e) => e.reason));
  const refused = await messaging.send(messaging.newMessage("bob", "one too many")).then(() => "sent", (e) => e.reason);
  assert.equal(refused, "queue_full");
  const outcomes = new Set(await Promise.all(waiting));
  assert.deepEqual([...outcomes], ["timeout"], "the queued ones time out without a connection");
});

test("terminate() while the socket is still connecting closes it quietly", async (t) => {
  // A listener that accepts TCP and never answers the upgrade: the socket stays in CONNECTING.
  const { createServer } = await import("node:net");
  const sockets = [];
  const tcp = createServer((socket) => sockets.push(socket));
  await new Promise((r) => tcp.listen(0, "127.0.0.1", r));
  const server = await fakeCallbox();
  const client = new Client({
    applicationKey: "k",
    capabilities: { messaging: true },
    url: `http://127.0.0.1:${tcp.address().port}`,
    fetch: server.fetch,
    realtime: { WebSocket },
  });
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    tcp.close();
    await server.close();
  });
  await client.start({ userTicket: TICKET });
  await until(() => sockets.length === 1, "the upgrade request");
  assert.equal(client.getConnectionState(), "connecting");
  await client.terminate();
  await sleep(100); // an unhandled error event would end this process here
  assert.equal(client.getConnectionState(), "stopped");
});

test("realtime: a session_expired close of a session from a credentials provider refreshes it and reconnects, resuming", async (t) => {
  let readies = 0;
  const server = await fakeCallbox({
    onReady: (conn) => {
      readies += 1;
      if (readies > 1) return;
      conn.send({ type: "message", messageId: "m5", seq: 5, senderId: "bob", recipientIds: ["alice"], text: "five", timestamp: "2026-12-03T06:00:00Z" });
      setTimeout(() => {
        conn.send({ type: "error", errorCode: 40100, reason: "session_expired", message: "m", retryable: false });
        conn.ws.close(4401, "session_expired");
      }, 30);
    },
  });
  let tickets = 0;
  const failed = [];
  const client = new Client({ applicationKey: "k", capabilities: { messaging: true }, url: server.url, fetch: server.fetch, realtime: { WebSocket, backoffInitialMs: 20 } });
  client.addListener({ onClientFailed: (_c, e) => failed.push(e.reason) });
  t.after(async () => {
    await client.terminate().catch(() => {});
    await server.close();
  });
  await client.start(() => {
    tickets += 1;
    return { userTicket: TICKET };
  });
  const firstSecret = server.state.secret;
  await until(() => server.ready(1), "reconnected after the refresh");
  assert.equal(tickets, 2, "the provider was asked for a fresh ticket");
  assert.notEqual(server.state.secret, firstSecret);
  assert.equal(server.state.connections.length, 2, "the second connection signed with the refreshed secret at once");
  assert.equal(server.ready(1).auth.resumeAfter, 5);
  await until(() => client.getConnectionState() === "connected", "connected");
  assert.deepEqual(failed, []);
});

test("realtime: a 4429 rate_limited close waits out retryAfter before connecting again", async (t) => {
  const server = await fakeCallbox({
    onConnection: (conn) => {
      if (server.state.connections.length === 1) {
        conn.send({ type: "error", errorCode: 42900, reason: "rate_limited", message: "m", retryable: true, retryAfter: 1 });
        conn.ws.close(4429, "rate_limited");
        return false;
      }
      return true;
    },
  });
  const { client } = await startedClient(t, server); // backoff alone would retry within 20 ms
  await until(() => client.getConnectionState() === "connected", "connected", 4000);
  const waited = server.state.connections[1].at - server.state.connections[0].at;
  assert.ok(waited >= 950, `waited ${waited} ms, the server asked for 1 s`);
});

test("realtime: a page whose origin the application does not allow (4403 origin_not_allowed) stops instead of retrying", async (t) => {
  const server = await fakeCallbox({
    onConnection: (conn) => {
      conn.send({ type: "error", errorCode: 40300, reason: "origin_not_allowed", message: "m", retryable: false });
      conn.ws.close(4403, "origin_not_allowed");
      return false;
    },
  });
  const failed = [];
  const { client } = await startedClient(t, server);
  client.addListener({ onClientFailed: (_c, error) => failed.push(error.reason) });
  await until(() => failed.length === 1, "failed");
  await sleep(200);
  assert.deepEqual(failed, ["origin_not_allowed"]);
  assert.equal(server.state.connections.length, 1);
  assert.equal(client.getConnectionState(), "stopped");
});
