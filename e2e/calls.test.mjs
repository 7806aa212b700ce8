// Browser end-to-end test of calls (issue 12, docs/calls.md) in Debian's Chromium (playwright-core, fake microphone)
// against a real `callbox serve` and a real coturn: alice calls bob in two pages; bob's onIncomingCall fires, he
// answers, both see onCallEstablished, audio flows both ways (WebRTC inbound-rtp bytesReceived rising), alice hangs
// up and both see onCallEnded with hung_up and a duration. Then the same call with iceTransportPolicy "relay", so
// the media must pass through coturn with the TURN credentials Callbox handed out (the selected candidate pair is a
// relay one, coturn logged the allocations); then once more with a tampered TURN password: the call never connects
// and the SDK ends it with `failure`. A signaling cut mid-call is rejoined. Last, the demo page's call panel, used
// as a person would in two tabs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startCallbox, mintTicket, chromiumArgs } from "./lib/sdk-servers.mjs";
import { startTurn } from "./lib/turn.mjs";

let turn;
let callbox;
let browser;
let app;

/** How long a tampered call may try before the SDK gives up on its media (CallOptions.mediaTimeoutMs). */
const TAMPERED_MEDIA_TIMEOUT_MS = 6000;

before(async () => {
  turn = await startTurn();
  callbox = await startCallbox({ config: turn.callboxConfig() });
  app = await callbox.createApp({ name: "Calls", allowedOrigins: ["*"], capabilities: ["messaging", "calling"] });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      ...chromiumArgs,
      // A fake microphone (a beep) that needs no permission prompt.
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      // Host candidates as addresses, not mDNS names (nothing resolves .local names here).
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      // Two headless tabs must keep their timers and media running at full speed.
      "--autoplay-policy=no-user-gesture-required",
      "--disable-background-timer-throttling",
      "--disable-renderer-backgrounding",
    ],
  });
});

after(async () => {
  await browser?.close();
  await callbox?.stop();
  await turn?.stop();
});

/**
 * A page of Callbox's origin with the script-tag bundle and a started client `window.phone` for `user`, asking
 * for messaging and calling. `mode` is what the page does to the RTCConfiguration: "direct" (Callbox's as it is),
 * "relay" (iceTransportPolicy relay), "tampered" (relay, and every TURN credential altered). Every call event is
 * recorded in `window.seen` with the time it came.
 */
async function openPhone(user, mode) {
  const context = await browser.newContext();
  // The page's WebSocket, wrapped so the test can cut the signaling (as e2e/messaging.test.mjs does): `net.drop()`
  // closes the live socket and makes new ones fail, `net.restore()` lets them through; `net.sent` lists the types
  // of the frames sent.
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    const net = { sockets: [], blocked: false, sent: [] };
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
        super(net.blocked ? String(url).replace("/v1/realtime", "/v1/unplugged") : url);
        net.sockets.push(this);
      }
      send(data) {
        net.sent.push(JSON.parse(data).type);
        super.send(data);
      }
    };
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${callbox.url}/demo`);
  await page.addScriptTag({ url: `${callbox.url}/sdk/callbox.min.js` });
  const ticket = mintTicket({ key: app.key, secret: app.secret, user });
  const session = await page.evaluate(
    async ([key, ticket, mode, tamperedTimeout]) => {
      const seen = { events: [], incoming: [], iceServers: null, configurations: [] };
      window.seen = seen;
      const rtcConfiguration = (fromCallbox) => {
        seen.iceServers = fromCallbox.iceServers;
        let configuration = fromCallbox;
        if (mode === "relay") configuration = { ...fromCallbox, iceTransportPolicy: "relay" };
        if (mode === "tampered") {
          configuration = {
            ...fromCallbox,
            iceTransportPolicy: "relay",
            iceServers: fromCallbox.iceServers.map((s) => (s.credential ? { ...s, credential: `x${s.credential}` } : s)),
          };
        }
        seen.configurations.push(configuration);
        return configuration;
      };
      const client = new Callbox.SinchClient({
        applicationKey: key,
        capabilities: { messaging: true, calling: true },
        calls: { rtcConfiguration, ...(mode === "tampered" ? { mediaTimeoutMs: tamperedTimeout } : {}) },
      });
      window.phone = client;
      const record = (call) => {
        const at = () => Date.now();
        call.addEventListener({
          onCallProgressing: (c) => seen.events.push({ event: "progressing", state: c.state, at: at() }),
          onCallEstablished: (c) => seen.events.push({ event: "established", state: c.state, hasStream: c.incomingStream instanceof MediaStream, at: at() }),
          onCallEnded: (c) => {
            const d = c.getDetails();
            seen.events.push({
              event: "ended",
              cause: c.getEndCause(),
              duration: d.duration,
              durationMs: d.durationMs,
              endedBy: d.endedBy,
              error: d.error ? d.error.reason : null,
              established: d.establishedTime !== null,
              at: at(),
            });
          },
        });
      };
      window.record = record;
      await client.start(ticket);
      client.getCallClient().addEventListener({
        onIncomingCall: (call) => {
          window.call = call;
          record(call);
          seen.incoming.push({ callId: call.callId, fromId: call.fromId, toId: call.toId, direction: call.direction, state: call.state });
        },
      });
      return client.getSession();
    },
    [app.key, { userTicket: ticket }, mode, TAMPERED_MEDIA_TIMEOUT_MS],
  );
  await page.waitForFunction(() => window.phone.getConnectionState() === "connected");
  return { context, page, session, errors };
}

/** alice's page calls bob; resolves to the call's id once Callbox placed it. */
function callBob(page) {
  return page.evaluate(async () => {
    const call = window.phone.getCallClient().callUser("bob", { topic: "e2e" });
    window.call = call;
    window.record(call);
    const deadline = Date.now() + 10000;
    while (call.callId === null && call.state !== "ended") {
      if (Date.now() > deadline) throw new Error("not placed in time");
      await new Promise((r) => setTimeout(r, 20));
    }
    return { callId: call.callId, direction: call.direction, fromId: call.fromId, toId: call.toId, state: call.state };
  });
}

/**
 * The page's media statistics: audio bytes received and sent (inbound-rtp / outbound-rtp), and the selected
 * candidate pair's local and remote candidate types.
 */
function mediaStats(page) {
  return page.evaluate(async () => {
    const report = await window.call.getStats();
    if (!report) return null;
    const all = [...report.values()];
    const inbound = all.filter((s) => s.type === "inbound-rtp" && s.kind === "audio");
    const outbound = all.filter((s) => s.type === "outbound-rtp" && s.kind === "audio");
    const transport = all.find((s) => s.type === "transport" && s.selectedCandidatePairId);
    const pair = transport
      ? report.get(transport.selectedCandidatePairId)
      : all.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
    const local = pair ? report.get(pair.localCandidateId) : null;
    const remote = pair ? report.get(pair.remoteCandidateId) : null;
    return {
      bytesReceived: inbound.reduce((n, s) => n + (s.bytesReceived ?? 0), 0),
      packetsReceived: inbound.reduce((n, s) => n + (s.packetsReceived ?? 0), 0),
      bytesSent: outbound.reduce((n, s) => n + (s.bytesSent ?? 0), 0),
      pairState: pair ? pair.state : null,
      local: local ? { candidateType: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol ?? null } : null,
      remote: remote ? { candidateType: remote.candidateType } : null,
      connectionState: window.call.peerConnection ? window.call.peerConnection.connectionState : null,
    };
  });
}

const seen = (page) => page.evaluate(() => window.seen);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One whole call in `mode`: placed, ringing, answered, established, audio both ways for ~3 s, hung up by alice.
 * Returns what both sides measured.
 */
async function talk(t, mode) {
  const alice = await openPhone("alice", mode);
  const bob = await openPhone("bob", mode);
  t.after(async () => {
    await alice.context.close();
    await bob.context.close();
  });

  const placed = await callBob(alice.page);
  assert.equal(typeof placed.callId, "string", `placed: ${JSON.stringify(placed)}`);
  assert.deepEqual({ ...placed, callId: undefined }, { callId: undefined, direction: "outgoing", fromId: "alice", toId: "bob", state: placed.state });

  await bob.page.waitForFunction(() => window.seen.incoming.length === 1);
  assert.deepEqual((await seen(bob.page)).incoming, [{ callId: placed.callId, fromId: "alice", toId: "bob", direction: "incoming", state: "ringing" }]);
  await alice.page.waitForFunction(() => window.seen.events.some((e) => e.event === "progressing"));

  await bob.page.evaluate(() => window.call.answer());
  await alice.page.waitForFunction(() => window.seen.events.some((e) => e.event === "established"), null, { timeout: 15000 });
  await bob.page.waitForFunction(() => window.seen.events.some((e) => e.event === "established"), null, { timeout: 15000 });
  for (const side of [alice, bob]) {
    const established = (await seen(side.page)).events.find((e) => e.event === "established");
    assert.equal(established.hasStream, true, "the remote audio is a MediaStream by then");
  }

  // Audio flows both ways: bytes received keep rising over ~3 s on each side.
  const first = { alice: await mediaStats(alice.page), bob: await mediaStats(bob.page) };
  await sleep(3000);
  const second = { alice: await mediaStats(alice.page), bob: await mediaStats(bob.page) };
  for (const who of ["alice", "bob"]) {
    const gained = second[who].bytesReceived - first[who].bytesReceived;
    t.diagnostic(
      `${mode}: ${who} received ${first[who].bytesReceived} → ${second[who].bytesReceived} bytes (+${gained} in ~3 s), ` +
        `sent ${second[who].bytesSent}; selected pair ${JSON.stringify(second[who].local)} → ${JSON.stringify(second[who].remote)}`,
    );
    assert.ok(gained > 4000, `${who}'s inbound audio rose by ${gained} bytes in ~3 s`);
    assert.equal(second[who].pairState, "succeeded");
  }

  // Alice hangs up; both hear of it: hung_up, ended by the caller, a duration over the ~3 s talked.
  await alice.page.evaluate(() => window.call.hangup());
  await bob.page.waitForFunction(() => window.seen.events.some((e) => e.event === "ended"));
  for (const side of [alice, bob]) {
    const events = (await seen(side.page)).events;
    const ended = events.filter((e) => e.event === "ended");
    assert.equal(ended.length, 1);
    assert.equal(ended[0].cause, "hung_up");
    assert.equal(ended[0].endedBy, "caller");
    assert.equal(ended[0].error, null);
    assert.ok(ended[0].duration > 0 && ended[0].durationMs >= 3000, `duration ${ended[0].duration} s (${ended[0].durationMs} ms)`);
    assert.equal(await side.page.evaluate(() => window.call.peerConnection.connectionState), "closed");
  }
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  return { alice, bob, stats: second };
}

test("alice calls bob: ringing, answered, established, audio both ways, hung up (direct)", async (t) => {
  const { alice, stats } = await talk(t, "direct");
  // Callbox handed this session coturn's URL with a shared-secret credential ("<expiry>:<user>").
  const iceServers = (await seen(alice.page)).iceServers;
  const withCredential = iceServers.filter((s) => s.credential !== undefined);
  assert.equal(withCredential.length, 1, JSON.stringify(iceServers));
  assert.deepEqual(withCredential[0].urls, turn.urls);
  assert.match(withCredential[0].username, /^\d{10}:alice$/);
  assert.equal(typeof withCredential[0].credential, "string");
  assert.notEqual(stats.alice.local.candidateType, undefined);
});

test("the same call forced through coturn (iceTransportPolicy relay): the selected pair is a relay one", async (t) => {
  const before = turn.log().length;
  const { stats } = await talk(t, "relay");
  for (const who of ["alice", "bob"]) {
    assert.equal(stats[who].local.candidateType, "relay", `${who}'s selected local candidate`);
  }
  // coturn saw both users' allocations with Callbox's credentials.
  const log = turn.log().slice(before);
  for (const user of ["alice", "bob"]) {
    assert.match(log, new RegExp(`user <\\d+:${user}>.*ALLOCATE processed, success`), `coturn allocated for ${user}`);
  }
});

test("a signaling cut mid-call: bob's SDK reconnects and rejoins, the call and its audio go on, bob hangs up", async (t) => {
  const alice = await openPhone("alice", "direct");
  const bob = await openPhone("bob", "direct");
  t.after(async () => {
    await alice.context.close();
    await bob.context.close();
  });
  await callBob(alice.page);
  await bob.page.waitForFunction(() => window.seen.incoming.length === 1);
  await bob.page.evaluate(() => window.call.answer());
  await bob.page.waitForFunction(() => window.seen.events.some((e) => e.event === "established"));
  await alice.page.waitForFunction(() => window.seen.events.some((e) => e.event === "established"));

  await bob.page.evaluate(() => window.net.drop());
  await bob.page.waitForFunction(() => window.phone.getConnectionState() === "reconnecting");
  const cut = await mediaStats(alice.page);
  await sleep(1500); // within Callbox's grace (10 s); reconnect attempts fail meanwhile
  await bob.page.evaluate(() => window.net.restore());
  await bob.page.waitForFunction(() => window.phone.getConnectionState() === "connected");
  await bob.page.waitForFunction(() => window.net.sent.includes("call.rejoin"));
  await sleep(1500);
  const later = await mediaStats(alice.page);
  t.diagnostic(`cut: alice received ${cut.bytesReceived} → ${later.bytesReceived} bytes across bob's reconnect`);
  assert.ok(later.bytesReceived - cut.bytesReceived > 4000, "bob's audio kept coming (media never depended on the socket)");
  for (const side of [alice, bob]) {
    const events = (await seen(side.page)).events;
    assert.equal(events.filter((e) => e.event === "ended").length, 0, "the call goes on");
    assert.equal(await side.page.evaluate(() => window.call.state), "established");
  }
  assert.equal((await bob.page.evaluate(() => window.net.sent.filter((type) => type === "call.rejoin"))).length, 1);

  // The rejoined connection carries the call's frames: bob hangs up, alice hears it.
  await bob.page.evaluate(() => window.call.hangup());
  await alice.page.waitForFunction(() => window.seen.events.some((e) => e.event === "ended"));
  for (const side of [alice, bob]) {
    const [ended] = (await seen(side.page)).events.filter((e) => e.event === "ended");
    assert.equal(ended.cause, "hung_up");
    assert.equal(ended.endedBy, "callee");
  }
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test("a tampered TURN password: no relay, the call never connects, the SDK ends it with failure", async (t) => {
  const before = turn.log().length;
  const alice = await openPhone("alice", "tampered");
  const bob = await openPhone("bob", "tampered");
  t.after(async () => {
    await alice.context.close();
    await bob.context.close();
  });
  const placed = await callBob(alice.page);
  await bob.page.waitForFunction(() => window.seen.incoming.length === 1);
  const answeredAt = Date.now();
  await bob.page.evaluate(() => window.call.answer());
  // Within the media bound (plus slack), one side gives up with `failure`; Callbox ends it for the other.
  const bound = TAMPERED_MEDIA_TIMEOUT_MS + 8000;
  await alice.page.waitForFunction(() => window.seen.events.some((e) => e.event === "ended"), null, { timeout: bound });
  await bob.page.waitForFunction(() => window.seen.events.some((e) => e.event === "ended"), null, { timeout: bound });
  const endedAfter = Date.now() - answeredAt;
  t.diagnostic(`tampered: the call ended ${endedAfter} ms after the answer`);
  for (const side of [alice, bob]) {
    const events = (await seen(side.page)).events;
    assert.equal(events.filter((e) => e.event === "established").length, 0, "never established");
    const [ended] = events.filter((e) => e.event === "ended");
    assert.equal(ended.cause, "failure");
    assert.equal(ended.established, false);
    const stats = await mediaStats(side.page);
    assert.equal(stats.bytesReceived, 0, "no audio arrived");
  }
  const [aliceEnded] = (await seen(alice.page)).events.filter((e) => e.event === "ended");
  const [bobEnded] = (await seen(bob.page)).events.filter((e) => e.event === "ended");
  // The side whose media timed out (or failed) first says why; the other hears `failure` from Callbox.
  assert.ok(
    [aliceEnded.error, bobEnded.error].includes("media_failed"),
    `one side gave up on its media: ${JSON.stringify([aliceEnded, bobEnded])}`,
  );
  // coturn refused the altered credential.
  const log = turn.log().slice(before);
  assert.doesNotMatch(log, /user <\d+:(alice|bob)>.*ALLOCATE processed, success/, "no allocation with a wrong password");
  for (const user of ["alice", "bob"]) {
    assert.match(log, new RegExp(`user <\\d+:${user}>: incoming packet message processed, error 401`), `coturn refused ${user}'s credential`);
  }
  assert.equal(typeof placed.callId, "string");
});

/** The demo page signed in (platform-managed login through its form) as a new user of the demo application. */
async function openDemoAs(user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${callbox.url}/demo`);
  await page.waitForSelector("body[data-state=signed-out]");
  const demoKey = await page.getAttribute("body", "data-application-key");
  await callbox.admin("POST", `/admin/v1/apps/${demoKey}/users`, { userId: user, password: "somethingSecure" });
  await page.fill("#username", user);
  await page.fill("#password", "somethingSecure");
  await page.click("#login");
  await page.waitForSelector("body[data-state=signed-in]");
  await page.waitForSelector("#calls:not([hidden])");
  return { context, page, errors };
}

const callStatus = (page) => page.textContent("#call-status");

test("the demo page's call panel: two tabs, call, answer, in call with audio, hang up; then a declined call", async (t) => {
  const dora = await openDemoAs("dora");
  const eli = await openDemoAs("eli");
  t.after(async () => {
    await dora.context.close();
    await eli.context.close();
  });
  await dora.page.fill("#callee", "eli");
  await dora.page.click("#call");
  await eli.page.waitForSelector("#call-status[data-call-state=ringing]");
  assert.equal(await callStatus(eli.page), "Incoming call from dora");
  assert.equal(await eli.page.isVisible("#answer"), true);
  assert.equal(await eli.page.isVisible("#decline"), true);
  await dora.page.waitForSelector("#call-status[data-call-state=ringing]");
  assert.equal(await callStatus(dora.page), "Ringing at eli…");
  await eli.page.click("#answer");
  for (const [side, peer] of [[dora, "eli"], [eli, "dora"]]) {
    await side.page.waitForSelector("#call-status[data-call-state=established]");
    assert.equal(await callStatus(side.page), `In call with ${peer}`);
    assert.equal(await side.page.evaluate(() => document.getElementById("remote-audio").srcObject instanceof MediaStream), true);
    assert.equal(await side.page.isVisible("#hangup"), true);
  }
  await eli.page.click("#mute");
  assert.equal(await eli.page.textContent("#mute"), "Unmute");
  await dora.page.click("#hangup");
  for (const side of [dora, eli]) {
    await side.page.waitForSelector("#call-status[data-call-state=ended]");
    assert.match(await callStatus(side.page), /ended: hung_up, \d+ s$/);
    assert.equal(await side.page.evaluate(() => document.getElementById("remote-audio").srcObject), null);
  }

  // Dora calls again; Eli declines.
  await dora.page.click("#call");
  await eli.page.waitForSelector("#call-status[data-call-state=ringing]");
  await eli.page.click("#decline");
  await dora.page.waitForSelector("#call-status[data-call-state=ended]");
  assert.match(await callStatus(dora.page), /^Call with eli ended: denied, 0 s$/);
  await eli.page.waitForSelector("#call-status[data-call-state=ended]");
  assert.match(await callStatus(eli.page), /^Call with dora ended: denied/);
  assert.deepEqual(dora.errors, []);
  assert.deepEqual(eli.errors, []);
});
