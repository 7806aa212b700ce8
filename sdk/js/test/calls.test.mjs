// Unit tests of the call client of the built SDK (dist/callbox.js), in Node: a fake Callbox answers the HTTP calls
// (fake fetch, with `iceServers` in GET /v1/configuration/user) and a WebSocket server (the `ws` package) speaks
// the realtime auth of docs/realtime.md and the call frames of docs/calls.md, scripted by each test. Node has no
// WebRTC: the SDK is given a fake RTCPeerConnection and a fake getUserMedia, which record what the SDK did.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { WebSocket, WebSocketServer } from "ws";
import { Client, Call, CallboxError, CallEndCause, signRequest } from "../dist/callbox.js";

const TICKET = "eyJhcHBsaWNhdGlvbktleSI6ImsifQ==:c2lnbmF0dXJl"; // shape only
const CALL_ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const STARTED_AT = "2026-12-03T10:00:00.000Z";
const ANSWERED_AT = "2026-12-03T10:00:02.000Z";
const ENDED_AT = "2026-12-03T10:00:04.500Z";
const ICE_SERVERS = [
  { urls: ["stun:turn.test:3478"] },
  { urls: ["turn:turn.test:3478?transport=udp"], username: "1764748800:alice", credential: "c3VwZXJzZWNyZXQ=" },
];
const LOCAL_CANDIDATE = { candidate: "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "loc1" };
const REMOTE_CANDIDATE = { candidate: "candidate:2 1 udp 2122260223 192.0.2.2 50002 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "rem1" };

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

async function until(predicate, what, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A microphone track: `enabled` is what mute() toggles, `stop()` is called when the call ends. */
function fakeMicrophone() {
  const track = { kind: "audio", enabled: true, stopped: false, stop() { this.stopped = true; } };
  const stream = { id: "mic", getTracks: () => [track] };
  return { track, stream };
}

/**
 * A fake RTCPeerConnection: the SDP is a fixed string, one local candidate is gathered after setLocalDescription
 * (then the end-of-candidates null), setRemoteDescription delivers a remote audio stream, and addIceCandidate
 * refuses a candidate before the remote description (as the browser does). `connect()`, `fail()` and
 * `disconnect()` play the ICE outcome.
 */
class FakePeerConnection {
  constructor(configuration, made) {
    this.configuration = configuration;
    this.tracks = [];
    this.added = [];
    this.localDescription = null;
    this.remoteDescription = null;
    this.connectionState = "new";
    this.iceConnectionState = "new";
    this.closed = false;
    this.onicecandidate = null;
    this.ontrack = null;
    this.onconnectionstatechange = null;
    this.oniceconnectionstatechange = null;
    this.remoteStream = { id: "remote", getTracks: () => [{ kind: "audio" }] };
    made.push(this);
  }
  addTrack(track, stream) {
    this.tracks.push({ track, stream });
  }
  async createOffer() {
    return { type: "offer", sdp: "v=0 offer" };
  }
  async createAnswer() {
    return { type: "answer", sdp: "v=0 answer" };
  }
  async setLocalDescription(description) {
    this.localDescription = description;
    setTimeout(() => {
      this.onicecandidate?.({ candidate: { toJSON: () => LOCAL_CANDIDATE } });
      this.onicecandidate?.({ candidate: null });
    }, 5);
  }
  async setRemoteDescription(description) {
    this.remoteDescription = description;
    this.ontrack?.({ track: { kind: "audio" }, streams: [this.remoteStream] });
  }
  async addIceCandidate(candidate) {
    if (!this.remoteDescription) throw new Error("InvalidStateError: no remote description");
    this.added.push(candidate);
  }
  gather(candidate) {
    this.onicecandidate?.({ candidate: { toJSON: () => candidate } });
  }
  #set(state) {
    this.connectionState = state;
    this.iceConnectionState = state;
    this.onconnectionstatechange?.({});
    this.oniceconnectionstatechange?.({});
  }
  connect() {
    this.#set("connected");
  }
  disconnect() {
    this.#set("disconnected");
  }
  fail() {
    this.#set("failed");
  }
  async getStats() {
    return new Map();
  }
  close() {
    this.closed = true;
    this.connectionState = "closed";
  }
}

/**
 * A fake Callbox for one user (`userId`) with `capabilities`. Every realtime frame after `auth` goes to
 * `onFrame(conn, frame)` (and is kept in `frames`, with the connection it came on).
 */
async function fakeCallbox({ userId = "alice", capabilities = ["messaging", "calling"], onFrame = () => {}, iceServers = ICE_SERVERS } = {}) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  const port = wss.address().port;
  const state = { secret: Buffer.from("0123456789abcdef0123456789abcdef").toString("base64"), connections: [], frames: [], calls: [] };
  wss.on("connection", (ws) => {
    const conn = { ws, frames: [], ready: false, nonce: `nonce${state.connections.length}AAAAAAAAAAAAAAAA` };
    state.connections.push(conn);
    conn.send = (frame) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(frame));
    conn.send({ type: "challenge", nonce: conn.nonce, serverTime: new Date().toISOString() });
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type === "auth" && !conn.ready) {
        const expected = createHmac("sha256", Buffer.from(state.secret, "base64"))
          .update(`GET\n\n\nx-timestamp:${frame.timestamp}\n/v1/realtime/${conn.nonce}`)
          .digest("base64");
        if (frame.signature !== expected) {
          conn.send({ type: "error", errorCode: 40102, reason: "bad_signature", message: "m", retryable: false });
          ws.close(4401, "bad_signature");
          return;
        }
        conn.ready = true;
        conn.send({
          type: "ready", sessionId: "sess1", userId, capabilities,
          expiresAt: new Date(Date.now() + 3600000).toISOString(), heartbeatSeconds: 15, lastSeq: 0,
          limits: { maxFrameBytes: 32768 },
        });
        return;
      }
      if (frame.type === "pong" || frame.type === "ping") return;
      conn.frames.push(frame);
      state.frames.push(frame);
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
      return json(200, { id: "sess1", secret: state.secret, expiresIn: 3600 });
    }
    const m = /^Instance ([^:]+):(.+)$/.exec(auth);
    if (!m) return json(401, { errorCode: 40100, reason: "missing_authorization", message: "m", retryable: false });
    const { signature } = await signRequest(state.secret, call.method, call.path, call.body, call.headers["Content-Type"] ?? "", call.headers["X-Timestamp"]);
    if (signature !== m[2]) return json(401, { errorCode: 40102, reason: "bad_signature", message: "m", retryable: false });
    if (call.path === "/v1/instances/id/sess1" && call.method === "GET") {
      return json(200, { id: "sess1", userId, capabilities, expiresAt: new Date(Date.now() + 3600000).toISOString() });
    }
    if (call.path === "/v1/instances/id/sess1" && call.method === "DELETE") return new Response(null, { status: 204 });
    if (call.path === "/v1/configuration/user" && call.method === "GET") {
      const body = { heartbeatInterval: 15 };
      if (capabilities.includes("calling")) {
        body.iceServers = iceServers;
        body.iceServersExpireAt = new Date(Date.now() + 3600000).toISOString();
      }
      return json(200, body);
    }
    return json(404, { errorCode: 40400, reason: "not_found", message: "m", retryable: false });
  };
  return {
    state,
    fetch,
    url: `http://127.0.0.1:${port}`,
    /** The latest authenticated connection. */
    live: () => state.connections.filter((c) => c.ready).at(-1),
    /** The frames of this type the server got, in order. */
    got: (type) => state.frames.filter((f) => f.type === type),
    close: () =>
      new Promise((r) => {
        for (const client of wss.clients) client.terminate();
        wss.close(r);
      }),
  };
}

/**
 * A started client of `server` with calling; `t.after` terminates it. `events` records every call event as
 * [name, direction, state, cause]; `peers` are the fake peer connections it made, `microphones` the tracks.
 */
async function startedClient(t, server, { calls = {}, refuseMicrophone = null, capabilities = { messaging: true, calling: true } } = {}) {
  const peers = [];
  const microphones = [];
  const logs = [];
  const client = new Client({
    applicationKey: "k",
    capabilities,
    url: server.url,
    fetch: server.fetch,
    onLogMessage: (m) => logs.push(m),
    realtime: { WebSocket, backoffInitialMs: 20, backoffMaxMs: 100 },
    calls: {
      createPeerConnection: (configuration) => new FakePeerConnection(configuration, peers),
      getUserMedia: async (constraints) => {
        assert.deepEqual(constraints, { audio: true, video: false });
        if (refuseMicrophone) throw new DOMException("Permission denied", refuseMicrophone);
        const mic = fakeMicrophone();
        microphones.push(mic.track);
        return mic.stream;
      },
      hangupWaitMs: 300,
      ...calls,
    },
  });
  t.after(async () => {
    await client.terminate().catch(() => {});
    await server.close();
  });
  await client.start({ userTicket: TICKET });
  await until(() => client.getConnectionState() === "connected", "connected");
  const events = [];
  const watch = (call) =>
    call.addEventListener({
      onCallProgressing: (c) => events.push(["progressing", c.direction, c.state, c.getEndCause()]),
      onCallEstablished: (c) => events.push(["established", c.direction, c.state, c.getEndCause()]),
      onCallEnded: (c) => events.push(["ended", c.direction, c.state, c.getEndCause()]),
    });
  return { client, peers, microphones, events, watch, logs };
}

/** The server's side of placing: call.placed then call.progress, in one go (as Callbox sends them). */
function placeAndRing(conn, frame, callId = CALL_ID) {
  conn.send({ type: "call.placed", ref: frame.ref, callId, calleeId: frame.calleeId, startedAt: STARTED_AT });
  conn.send({ type: "call.progress", callId, state: "ringing" });
}

function ended(callId, cause, endedBy, extra = {}) {
  return { type: "call.ended", callId, cause, endedBy, startedAt: STARTED_AT, answeredAt: null, endedAt: ENDED_AT, durationMs: 0, ...extra };
}

/** An outgoing call from alice to bob that Callbox placed and bob's device rings. */
async function ringingOutgoing(t, options = {}) {
  const server = await fakeCallbox({
    onFrame: (conn, frame) => {
      if (frame.type === "call.start") placeAndRing(conn, frame);
      options.onFrame?.(conn, frame);
    },
  });
  const alice = await startedClient(t, server, options);
  const call = alice.client.getCallClient().callUser("bob", options.headers);
  alice.watch(call);
  await until(() => call.state === "ringing", "ringing");
  return { server, call, ...alice };
}

/** An outgoing call answered by bob, with media connected. */
async function establishedOutgoing(t, options = {}) {
  const ctx = await ringingOutgoing(t, options);
  ctx.server.live().send({ type: "call.answered", callId: CALL_ID, answeredAt: ANSWERED_AT, sdp: "v=0 answer" });
  await until(() => ctx.call.state === "answered", "answered");
  await until(() => ctx.peers[0].remoteDescription !== null, "remote description");
  ctx.peers[0].connect();
  await until(() => ctx.call.state === "established", "established");
  return ctx;
}

/** Bob, with a call from alice ringing on this device (not answered). */
async function ringingIncoming(t, options = {}) {
  const server = await fakeCallbox({ userId: "bob", onFrame: (conn, frame) => options.onFrame?.(conn, frame) });
  const bob = await startedClient(t, server, options);
  const incoming = [];
  bob.client.getCallClient().addEventListener({ onIncomingCall: (call) => {
    incoming.push(call);
    bob.watch(call);
  } });
  server.live().send({ type: "call.incoming", callId: CALL_ID, callerId: "alice", calleeId: "bob", sdp: "v=0 offer", headers: { topic: "support" }, startedAt: STARTED_AT });
  await until(() => incoming.length === 1, "onIncomingCall");
  return { server, call: incoming[0], incoming, ...bob };
}

test("calls: placing a call: call.start with the offer, placed and ringing, trickle ICE both ways, the answer, established, hung up", async (t) => {
  const ctx = await ringingOutgoing(t, { headers: { topic: "support" }, calls: { rtcConfiguration: { iceTransportPolicy: "relay" } } });
  const { server, call, peers, events, microphones } = ctx;
  const [start] = server.got("call.start");
  assert.deepEqual({ ...start, ref: undefined }, { type: "call.start", calleeId: "bob", sdp: "v=0 offer", headers: { topic: "support" }, ref: undefined });
  assert.equal(typeof start.ref, "string");
  assert.ok(call instanceof Call);
  assert.deepEqual(
    { callId: call.callId, fromId: call.fromId, toId: call.toId, direction: call.direction, headers: call.headers },
    { callId: CALL_ID, fromId: "alice", toId: "bob", direction: "outgoing", headers: { topic: "support" } },
  );
  assert.equal(call.getDetails().startedTime.toISOString(), STARTED_AT, "Callbox's startedAt");
  assert.deepEqual(events, [["progressing", "outgoing", "ringing", null]], "call.progress right behind call.placed is not lost");
  // The peer connection: Callbox's ICE servers and the app's extra configuration; the microphone's track on it.
  assert.equal(peers.length, 1);
  assert.deepEqual(peers[0].configuration, { iceServers: ICE_SERVERS, iceTransportPolicy: "relay" });
  assert.equal(peers[0].tracks.length, 1);
  assert.equal(peers[0].tracks[0].track, microphones[0]);
  assert.equal(call.peerConnection, peers[0]);
  // The candidate gathered before call.placed goes out once the call has its id; the end-of-candidates does not.
  await until(() => server.got("call.candidate").length === 1, "the local candidate");
  assert.deepEqual(server.got("call.candidate"), [{ type: "call.candidate", callId: CALL_ID, candidate: LOCAL_CANDIDATE }]);
  // A remote candidate before the answer waits for the remote description.
  server.live().send({ type: "call.candidate", callId: CALL_ID, candidate: REMOTE_CANDIDATE });
  await sleep(30);
  assert.deepEqual(peers[0].added, []);
  server.live().send({ type: "call.answered", callId: CALL_ID, answeredAt: ANSWERED_AT, sdp: "v=0 answer" });
  await until(() => peers[0].added.length === 1, "the held candidate added");
  assert.deepEqual(peers[0].remoteDescription, { type: "answer", sdp: "v=0 answer" });
  assert.deepEqual(peers[0].added, [REMOTE_CANDIDATE]);
  assert.equal(call.state, "answered");
  assert.equal(call.getDetails().answeredTime.toISOString(), ANSWERED_AT);
  assert.equal(call.incomingStream, peers[0].remoteStream, "the remote audio");
  assert.equal(call.incomingStreamURL, null, "no object URL of a MediaStream where the platform refuses it");
  // A later remote candidate goes straight in.
  server.live().send({ type: "call.candidate", callId: CALL_ID, candidate: { ...REMOTE_CANDIDATE, usernameFragment: "rem2" } });
  await until(() => peers[0].added.length === 2, "a live candidate added");
  assert.equal(events.length, 1, "not established before media flows");
  peers[0].connect();
  await until(() => call.state === "established", "established");
  assert.deepEqual(events.at(-1), ["established", "outgoing", "established", null]);
  assert.ok(call.getDetails().establishedTime instanceof Date);

  // Alice hangs up: call.hangup without a cause; Callbox's call.ended gives the cause and the times.
  const hungUp = call.hangup();
  await until(() => server.got("call.hangup").length === 1, "call.hangup");
  assert.deepEqual(server.got("call.hangup"), [{ type: "call.hangup", callId: CALL_ID, ref: server.got("call.hangup")[0].ref }]);
  assert.equal(peers[0].closed, true, "media stops at once");
  assert.equal(microphones[0].stopped, true, "the microphone is released");
  server.live().send(ended(CALL_ID, "hung_up", "caller", { answeredAt: ANSWERED_AT, durationMs: 2500 }));
  await hungUp;
  assert.deepEqual(events.at(-1), ["ended", "outgoing", "ended", "hung_up"]);
  assert.equal(call.getEndCause(), CallEndCause.HUNG_UP);
  const details = call.getDetails();
  assert.deepEqual(
    { ...details, startedTime: details.startedTime.toISOString(), answeredTime: details.answeredTime.toISOString(), endedTime: details.endedTime.toISOString(), establishedTime: typeof details.establishedTime },
    { startedTime: STARTED_AT, answeredTime: ANSWERED_AT, establishedTime: "object", endedTime: ENDED_AT, duration: 3, durationMs: 2500, endCause: "hung_up", endedBy: "caller", detail: null, error: null },
  );
  assert.deepEqual(ctx.client.getCallClient().getCalls(), []);
  // A second hangup does nothing; frames for the ended call are ignored.
  await call.hangup();
  server.live().send({ type: "call.answered", callId: CALL_ID, answeredAt: ANSWERED_AT, sdp: "v=0 answer" });
  await sleep(30);
  assert.equal(server.got("call.hangup").length, 1);
  assert.equal(call.state, "ended");
  assert.equal(events.length, 3);
});

test("calls: one realtime connection carries messaging and calls", async (t) => {
  const ctx = await ringingOutgoing(t);
  assert.equal(ctx.server.state.connections.length, 1);
  assert.equal(ctx.client.getMessageClient() !== null, true);
  assert.equal(ctx.client.getCallClient(), ctx.client.getCallClient(), "one call client per client");
});

test("calls: an incoming call rings; answer() sends the answer, trickles only once Callbox took it, established, ended by the caller", async (t) => {
  const ctx = await ringingIncoming(t, {
    onFrame: (conn, frame) => {
      // Callbox's answer to the answering device, without the ref (docs/calls.md lists none on call.answered).
      if (frame.type === "call.answer") setTimeout(() => conn.send({ type: "call.answered", callId: CALL_ID, answeredAt: ANSWERED_AT }), 50);
    },
  });
  const { server, call, peers, events, microphones } = ctx;
  assert.deepEqual(
    { callId: call.callId, fromId: call.fromId, toId: call.toId, direction: call.direction, state: call.state, headers: call.headers },
    { callId: CALL_ID, fromId: "alice", toId: "bob", direction: "incoming", state: "ringing", headers: { topic: "support" } },
  );
  assert.equal(peers.length, 0, "no peer connection, no microphone before the answer");
  assert.equal(microphones.length, 0);
  // The caller's candidates come before the answer: held.
  server.live().send({ type: "call.candidate", callId: CALL_ID, candidate: REMOTE_CANDIDATE });
  await sleep(20);
  let settled = false;
  const answering = call.answer().then(() => {
    settled = true;
  });
  await until(() => server.got("call.answer").length === 1, "call.answer");
  const [answer] = server.got("call.answer");
  assert.equal(answer.callId, CALL_ID);
  assert.equal(answer.sdp, "v=0 answer");
  assert.deepEqual(peers[0].remoteDescription, { type: "offer", sdp: "v=0 offer" });
  assert.deepEqual(peers[0].added, [REMOTE_CANDIDATE], "the held candidate, after the offer");
  assert.deepEqual(peers[0].configuration, { iceServers: ICE_SERVERS });
  await sleep(20); // the local candidate was gathered meanwhile
  assert.equal(settled, false);
  assert.deepEqual(server.got("call.candidate"), [], "the callee sends candidates only after Callbox took the answer");
  await answering;
  assert.equal(call.state, "answered");
  await until(() => server.got("call.candidate").length === 1, "the local candidate");
  assert.deepEqual(server.got("call.candidate")[0], { type: "call.candidate", callId: CALL_ID, candidate: LOCAL_CANDIDATE });
  peers[0].connect();
  await until(() => call.state === "established", "established");
  server.live().send(ended(CALL_ID, "hung_up", "caller", { answeredAt: ANSWERED_AT, durationMs: 1400 }));
  await until(() => call.state === "ended", "ended");
  assert.deepEqual(events, [["established", "incoming", "established", null], ["ended", "incoming", "ended", "hung_up"]]);
  assert.equal(call.getDetails().duration, 1);
  assert.equal(call.getDetails().endedBy, "caller");
  assert.equal(peers[0].closed, true);
  assert.equal(microphones[0].stopped, true);
});

test("calls: a call.answered that echoes the ref settles answer() too", async (t) => {
  const ctx = await ringingIncoming(t, {
    onFrame: (conn, frame) => {
      if (frame.type === "call.answer") conn.send({ type: "call.answered", ref: frame.ref, callId: CALL_ID, answeredAt: ANSWERED_AT });
    },
  });
  await ctx.call.answer();
  assert.equal(ctx.call.state, "answered");
  assert.equal(ctx.call.getDetails().answeredTime.toISOString(), ANSWERED_AT);
});

test("calls: a call that rang before anyone listened is handed to the first onIncomingCall listener", async (t) => {
  const server = await fakeCallbox({ userId: "bob" });
  const bob = await startedClient(t, server);
  server.live().send({ type: "call.incoming", callId: CALL_ID, callerId: "alice", calleeId: "bob", sdp: "v=0 offer", headers: {}, startedAt: STARTED_AT });
  server.live().send({ type: "call.incoming", callId: "0193a1b2-0000-7000-8000-000000000002", callerId: "carol", calleeId: "bob", sdp: "v=0 offer", headers: {}, startedAt: STARTED_AT });
  server.live().send(ended("0193a1b2-0000-7000-8000-000000000002", "canceled", "caller"));
  await sleep(50);
  const incoming = [];
  bob.client.getCallClient().addEventListener({ onIncomingCall: (call) => incoming.push(call) });
  assert.deepEqual(incoming.map((c) => c.fromId), ["alice"], "the one still ringing, not the canceled one");
});

test("calls: other_device_answered ends the call on this device; answer() then fails", async (t) => {
  const ctx = await ringingIncoming(t);
  ctx.server.live().send(ended(CALL_ID, "other_device_answered", "callee"));
  await until(() => ctx.call.state === "ended", "ended");
  assert.deepEqual(ctx.events, [["ended", "incoming", "ended", "other_device_answered"]]);
  assert.equal(ctx.call.getEndCause(), CallEndCause.OTHER_DEVICE_ANSWERED);
  const error = await ctx.call.answer().then(() => null, (e) => e);
  assert.ok(error instanceof CallboxError);
  assert.equal(error.reason, "invalid_argument");
  assert.equal(ctx.peers.length, 0);
  assert.equal(ctx.server.got("call.answer").length, 0);
});

test("calls: answer() refused with call_already_answered fails through .fail(); the call ends as other_device_answered", async (t) => {
  const ctx = await ringingIncoming(t, {
    onFrame: (conn, frame) => {
      if (frame.type === "call.answer") {
        conn.send({ type: "error", ref: frame.ref, errorCode: 40900, reason: "call_already_answered", message: "the call was answered on another device", retryable: false });
      }
    },
  });
  const reason = await new Promise((resolve) => ctx.call.answer().then(() => resolve("answered")).fail((e) => resolve(e.reason)));
  assert.equal(reason, "call_already_answered");
  assert.equal(ctx.call.getEndCause(), "other_device_answered");
  assert.equal(ctx.call.getDetails().error.reason, "call_already_answered");
  assert.equal(ctx.peers[0].closed, true);
  assert.equal(ctx.microphones[0].stopped, true);
});

test("calls: every end cause of docs/calls.md reaches getEndCause(), getDetails() and the legacy CallEndCause names", async (t) => {
  const causes = [
    ["canceled", "caller", "CANCELED", undefined],
    ["denied", "callee", "DENIED", undefined],
    ["no_answer", "server", "NO_ANSWER", "unavailable"],
    ["hung_up", "callee", "HUNG_UP", undefined],
    ["failure", "server", "FAILURE", undefined],
    ["timeout", "server", "TIMEOUT", undefined],
    ["other_device_answered", "callee", "OTHER_DEVICE_ANSWERED", undefined],
    ["revoked", "server", "REVOKED", undefined],
  ];
  assert.deepEqual(Object.keys(CallEndCause).sort(), causes.map((c) => c[2]).sort(), "one legacy name per cause");
  let n = 0;
  const server = await fakeCallbox({
    onFrame: (conn, frame) => {
      if (frame.type !== "call.start") return;
      n += 1;
      const callId = `0193a1b2-0000-7000-8000-00000000000${n}`;
      const [cause, endedBy, , detail] = causes[n - 1];
      placeAndRing(conn, frame, callId);
      conn.send(ended(callId, cause, endedBy, detail ? { detail } : {}));
    },
  });
  const alice = await startedClient(t, server);
  const calls = alice.client.getCallClient();
  for (const [cause, endedBy, legacy, detail] of causes) {
    const call = calls.callUser("bob");
    let endedSeen = 0;
    call.addEventListener({ onCallEnded: () => (endedSeen += 1) });
    await until(() => call.state === "ended", `ended with ${cause}`);
    assert.equal(call.getEndCause(), cause);
    assert.equal(CallEndCause[legacy], cause);
    const details = call.getDetails();
    assert.equal(details.endCause, cause);
    assert.equal(details.endedBy, endedBy);
    assert.equal(details.detail, detail ?? null);
    assert.equal(details.duration, 0);
    assert.equal(details.answeredTime, null);
    assert.equal(details.endedTime.toISOString(), ENDED_AT);
    assert.equal(endedSeen, 1);
  }
});

test("calls: hangup() on a ringing incoming call declines it (call.decline); denied", async (t) => {
  const ctx = await ringingIncoming(t, {
    onFrame: (conn, frame) => {
      if (frame.type === "call.decline") conn.send(ended(CALL_ID, "denied", "callee"));
    },
  });
  await ctx.call.decline();
  assert.equal(ctx.server.got("call.decline").length, 1);
  assert.equal(ctx.server.got("call.decline")[0].callId, CALL_ID);
  assert.equal(ctx.server.got("call.hangup").length, 0);
  assert.deepEqual(ctx.events, [["ended", "incoming", "ended", "denied"]]);
  assert.equal(ctx.call.getDetails().endedBy, "callee");
});

test("calls: the caller cancels a ringing call; Callbox not answering the hang-up in time still ends it here", async (t) => {
  let answerHangup = true;
  const ctx = await ringingOutgoing(t, {
    onFrame: (conn, frame) => {
      if (frame.type === "call.hangup" && answerHangup) conn.send(ended(CALL_ID, "canceled", "caller"));
    },
  });
  await ctx.call.hangup();
  assert.deepEqual(ctx.events.at(-1), ["ended", "outgoing", "ended", "canceled"]);
  assert.equal(ctx.call.getDetails().endedBy, "caller");
  assert.equal(ctx.peers[0].closed, true);

  // A second call, and Callbox says nothing to its hang-up: ended here after hangupWaitMs, cause canceled.
  answerHangup = false;
  const call = ctx.client.getCallClient().callUser("bob");
  await until(() => call.state === "ringing", "ringing");
  const at = Date.now();
  await call.hangup();
  assert.ok(Date.now() - at >= 250, "waited for call.ended first");
  assert.equal(call.getEndCause(), "canceled");
  assert.equal(call.getDetails().endedBy, null, "Callbox did not say");
});

test("calls: a hang-up before the call was placed: nothing is sent, or a call.hangup follows call.placed", async (t) => {
  let holdPlaced = null;
  const server = await fakeCallbox({
    onFrame: (conn, frame) => {
      if (frame.type === "call.start") holdPlaced = () => placeAndRing(conn, frame);
    },
  });
  const alice = await startedClient(t, server);
  const calls = alice.client.getCallClient();
  // Hung up at once: the microphone was not even open yet.
  const early = calls.callUser("bob");
  alice.watch(early);
  await early.hangup();
  assert.equal(early.getEndCause(), "canceled");
  await sleep(50);
  assert.equal(server.got("call.start").length, 0);
  assert.deepEqual(alice.microphones.map((m) => m.stopped), [true], "the microphone opened meanwhile is released");

  // Hung up while call.start is on its way: the call ends here; once placed, Callbox is told.
  const late = calls.callUser("bob");
  await until(() => holdPlaced !== null, "call.start");
  await late.hangup();
  assert.equal(late.getEndCause(), "canceled");
  holdPlaced();
  await until(() => server.got("call.hangup").length === 1, "call.hangup after call.placed");
  assert.equal(server.got("call.hangup")[0].callId, CALL_ID);
});

test("calls: after a reconnect the SDK rejoins a call that goes on; candidates of the gap follow; not_found on rejoin ends it", async (t) => {
  let rejoinAnswer = "rejoined";
  const ctx = await establishedOutgoing(t, {
    onFrame: (conn, frame) => {
      if (frame.type !== "call.rejoin") return;
      if (rejoinAnswer === "rejoined") conn.send({ type: "call.rejoined", ref: frame.ref, callId: frame.callId, state: "answered" });
      else conn.send({ type: "error", ref: frame.ref, errorCode: 40400, reason: "not_found", message: "no such call", retryable: false });
    },
  });
  const { server, call, peers, events, client } = ctx;
  const candidatesBefore = server.got("call.candidate").length;
  server.live().ws.terminate();
  await until(() => client.getConnectionState() === "reconnecting", "reconnecting");
  peers[0].gather({ ...LOCAL_CANDIDATE, usernameFragment: "gap1" }); // gathered while the socket is down
  await until(() => server.got("call.rejoin").length === 1, "call.rejoin");
  assert.equal(server.state.connections.filter((c) => c.ready).length, 2);
  assert.deepEqual({ ...server.got("call.rejoin")[0], ref: undefined }, { type: "call.rejoin", callId: CALL_ID, ref: undefined });
  assert.equal(server.live().frames[0].type, "call.rejoin", "the rejoin is the new connection's first frame");
  await until(() => server.got("call.candidate").length === candidatesBefore + 1, "the candidate of the gap");
  assert.equal(server.got("call.candidate").at(-1).candidate.usernameFragment, "gap1");
  assert.equal(call.state, "established", "the call goes on (media never depended on the socket)");
  assert.equal(events.filter((e) => e[0] === "ended").length, 0);

  // Another drop, and this time the grace ran out: Callbox does not know the call any more.
  rejoinAnswer = "not_found";
  server.live().ws.terminate();
  await until(() => call.state === "ended", "ended after the refused rejoin");
  assert.equal(call.getEndCause(), "timeout");
  assert.equal(call.getDetails().error.reason, "not_found");
  assert.equal(peers[0].closed, true);
});

test("calls: refusals of call.start end the call with failure and the error (rate_limited with retryAfter, too_many_calls)", async (t) => {
  const refusals = [
    { errorCode: 42900, reason: "rate_limited", message: "too many calls started", retryable: true, retryAfter: 2 },
    { errorCode: 42900, reason: "too_many_calls", message: "this session already takes part in 3 calls", retryable: false },
    { errorCode: 40000, reason: "malformed_request", message: "invalid calleeId", retryable: false },
  ];
  let n = 0;
  const server = await fakeCallbox({
    onFrame: (conn, frame) => {
      if (frame.type === "call.start") conn.send({ type: "error", ref: frame.ref, ...refusals[n++] });
    },
  });
  const alice = await startedClient(t, server);
  for (const refusal of refusals) {
    const call = alice.client.getCallClient().callUser("bob");
    const seen = [];
    call.addEventListener({ onCallEnded: (c) => seen.push(c.getEndCause()) });
    await until(() => call.state === "ended", `ended by ${refusal.reason}`);
    assert.deepEqual(seen, ["failure"]);
    const error = call.getDetails().error;
    assert.ok(error instanceof CallboxError);
    assert.equal(error.reason, refusal.reason);
    assert.equal(error.code, refusal.errorCode);
    assert.equal(error.retryAfter, refusal.retryAfter ?? null);
    assert.equal(call.callId, null);
    assert.equal(alice.peers.at(-1).closed, true);
    assert.equal(alice.microphones.at(-1).stopped, true);
  }
});

test("calls: answer() refused with not_found fails; hangup of a call Callbox no longer knows still ends it", async (t) => {
  const ctx = await ringingIncoming(t, {
    onFrame: (conn, frame) => {
      if (frame.type === "call.answer") conn.send({ type: "error", ref: frame.ref, errorCode: 40400, reason: "not_found", message: "no such call", retryable: false });
    },
  });
  const error = await ctx.call.answer().then(() => null, (e) => e);
  assert.equal(error.reason, "not_found");
  assert.equal(ctx.call.getEndCause(), "failure");
  assert.equal(ctx.server.got("call.decline").length, 0, "nothing to decline: Callbox has no such call");
});

test("calls: mute() and unmute() toggle the microphone track's enabled; a mute before the microphone opened holds", async (t) => {
  const server = await fakeCallbox({ onFrame: (conn, frame) => frame.type === "call.start" && placeAndRing(conn, frame) });
  const alice = await startedClient(t, server);
  const call = alice.client.getCallClient().callUser("bob");
  call.mute(); // before getUserMedia resolved
  assert.equal(call.muted, true);
  await until(() => call.state === "ringing", "ringing");
  const [track] = alice.microphones;
  assert.equal(track.enabled, false, "muted from the start");
  call.unmute();
  assert.equal(track.enabled, true);
  assert.equal(call.muted, false);
  call.mute();
  assert.equal(track.enabled, false);
  call.unmute();
  assert.equal(track.enabled, true);
});

test("calls: a refused microphone ends an outgoing call with failure and an error naming the microphone; nothing is sent", async (t) => {
  const server = await fakeCallbox();
  const alice = await startedClient(t, server, { refuseMicrophone: "NotAllowedError" });
  const call = alice.client.getCallClient().callUser("bob");
  alice.watch(call);
  await until(() => call.state === "ended", "ended");
  assert.deepEqual(alice.events, [["ended", "outgoing", "ended", "failure"]]);
  const error = call.getDetails().error;
  assert.equal(error.reason, "microphone_unavailable");
  assert.match(error.message, /microphone/);
  assert.match(error.message, /NotAllowedError/);
  assert.equal(server.got("call.start").length, 0);
  assert.equal(alice.peers.length, 0);
});

test("calls: a refused microphone fails answer(), declines the call to Callbox and ends it here with failure", async (t) => {
  const ctx = await ringingIncoming(t, { refuseMicrophone: "NotFoundError" });
  const error = await ctx.call.answer().then(() => null, (e) => e);
  assert.equal(error.reason, "microphone_unavailable");
  assert.match(error.message, /no microphone was found/);
  assert.equal(ctx.call.getEndCause(), "failure");
  assert.equal(ctx.call.getDetails().error, error);
  await until(() => ctx.server.got("call.decline").length === 1, "call.decline");
  assert.equal(ctx.server.got("call.answer").length, 0);
});

test("calls: media that fails (ICE failed) or never connects is hung up with cause failure", async (t) => {
  const ctx = await establishedOutgoing(t, {
    calls: { mediaTimeoutMs: 150 },
    onFrame: (conn, frame) => {
      if (frame.type === "call.hangup") conn.send(ended(frame.callId, "failure", "caller", { answeredAt: ANSWERED_AT, durationMs: 900 }));
    },
  });
  ctx.peers[0].fail();
  await until(() => ctx.call.state === "ended", "ended");
  assert.deepEqual({ ...ctx.server.got("call.hangup")[0], ref: undefined }, { type: "call.hangup", callId: CALL_ID, cause: "failure", ref: undefined });
  assert.equal(ctx.call.getEndCause(), "failure");
  assert.equal(ctx.call.getDetails().error.reason, "media_failed");

  // Answered, but ICE never connects: hung up after mediaTimeoutMs.
  const call = ctx.client.getCallClient().callUser("bob");
  await until(() => call.state === "ringing", "ringing");
  ctx.server.live().send({ type: "call.answered", callId: CALL_ID, answeredAt: ANSWERED_AT, sdp: "v=0 answer" });
  await until(() => call.state === "answered", "answered");
  await until(() => call.state === "ended", "ended by the media timeout", 2000);
  assert.equal(call.getEndCause(), "failure");
  assert.match(call.getDetails().error.message, /no media flowed within 150 ms/);
  assert.equal(ctx.server.got("call.hangup").at(-1).cause, "failure");
});

test("calls: getCallClient() needs the calling capability; without it no call client", async (t) => {
  const server = await fakeCallbox({ capabilities: ["messaging"] });
  const { client } = await startedClient(t, server, { capabilities: { messaging: true, calling: true } });
  assert.throws(() => client.getCallClient(), (e) => e instanceof CallboxError && e.reason === "capability_not_granted");
  const noSession = new Client({ applicationKey: "k", url: server.url, fetch: server.fetch });
  assert.throws(() => noSession.getCallClient(), (e) => e.reason === "not_started");
});

test("calls: a calling-only session opens the realtime connection too", async (t) => {
  const server = await fakeCallbox({ capabilities: ["calling"] });
  const { client } = await startedClient(t, server, { capabilities: { calling: true } });
  assert.equal(client.getConnectionState(), "connected");
  assert.equal(client.getCallClient().getCalls().length, 0);
});

test("calls: a revoked session ends its calls with revoked; terminate() hangs them up first", async (t) => {
  const ctx = await establishedOutgoing(t);
  ctx.server.live().send({ type: "error", errorCode: 40100, reason: "session_revoked", message: "the session was revoked", retryable: false });
  ctx.server.live().ws.close(4401, "session_revoked");
  await until(() => ctx.call.state === "ended", "ended");
  assert.equal(ctx.call.getEndCause(), "revoked");
  assert.equal(ctx.call.getDetails().error.reason, "session_revoked");
  assert.equal(ctx.peers[0].closed, true);
});

test("calls: terminate() hangs up the calls that go on", async (t) => {
  const ctx = await establishedOutgoing(t);
  await ctx.client.terminate();
  assert.equal(ctx.call.getEndCause(), "hung_up");
  await until(() => ctx.server.got("call.hangup").length === 1, "call.hangup");
  assert.equal(ctx.peers[0].closed, true);
});

test("calls: callUser() checks its arguments", async (t) => {
  const server = await fakeCallbox();
  const { client } = await startedClient(t, server);
  const calls = client.getCallClient();
  assert.throws(() => calls.callUser(""), (e) => e.reason === "invalid_argument");
  assert.throws(() => calls.callUser(42), (e) => e.reason === "invalid_argument");
  assert.throws(() => calls.callUser("bob", ["not", "an", "object"]), (e) => e.reason === "invalid_argument");
});
