// Crash test of realtime messaging through the SDK (issue 11): two `callbox serve` nodes on one PostgreSQL and one
// Redis; alice's SDK on node A, bob's SDK on node B behind a switchable TCP proxy (a load balancer's part). While
// alice sends, node B is killed with SIGKILL and the proxy sends new connections to node A: bob's SDK reconnects
// there, resumes, and every message alice saw acknowledged reaches bob's onIncomingMessage exactly once, in order.
// The SDK runs in Node here (dist/callbox.js, the `ws` package as its WebSocket).
//
// Needs CALLBOX_TEST_DATABASE_URL and CALLBOX_TEST_REDIS_URL (scripts/services.sh starts both); skipped without
// them unless CALLBOX_REQUIRE_SCALE_TESTS is set.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import { Client } from "../sdk/js/dist/callbox.js";
import { startListening, callboxBin, mintTicket } from "./lib/sdk-servers.mjs";

const baseUrl = process.env.CALLBOX_TEST_DATABASE_URL;
const redisUrl = process.env.CALLBOX_TEST_REDIS_URL;
const engines = Boolean(baseUrl && redisUrl);
if (!engines && process.env.CALLBOX_REQUIRE_SCALE_TESTS) {
  throw new Error("PostgreSQL and Redis are required (CALLBOX_REQUIRE_SCALE_TESTS) but not started");
}

const MASTER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const MESSAGES = 150;
const KILL_AFTER = 50;

/** A TCP proxy on loopback whose target can be switched; connections made before a switch stay where they are. */
async function switchableProxy(target) {
  let current = target;
  const open = new Set();
  const server = createServer((down) => {
    const up = connect(current.port, current.host);
    open.add(down);
    open.add(up);
    const end = () => {
      down.destroy();
      up.destroy();
      open.delete(down);
      open.delete(up);
    };
    for (const socket of [down, up]) {
      socket.on("error", end);
      socket.on("close", end);
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    switchTo: (next) => {
      current = next;
    },
    close: () =>
      new Promise((r) => {
        for (const socket of open) socket.destroy();
        server.close(r);
      }),
  };
}

const hostPort = (url) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
};

/** A WebSocket that counts the `message` frames it receives, by id (to show how many replays the SDK dropped). */
function countingWebSocket(counts) {
  return class extends WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (event) => {
        const frame = JSON.parse(String(event.data));
        if (frame.type === "message") counts.set(frame.messageId, (counts.get(frame.messageId) ?? 0) + 1);
      });
    }
  };
}

test("SIGKILL of bob's node while alice sends: bob's SDK reconnects to the other node and gets every acknowledged message once, in order", { skip: !engines && "no PostgreSQL/Redis (run scripts/test.sh)" }, async (t) => {
  const database = `callbox_sdk_crash_${process.pid}`;
  const psql = (sql) =>
    execFileSync("psql", [baseUrl, "-qc", sql], { env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" } });
  psql(`DROP DATABASE IF EXISTS ${database}`);
  psql(`CREATE DATABASE ${database}`);
  const databaseUrl = `${baseUrl.slice(0, baseUrl.lastIndexOf("/"))}/${database}`;
  const dirs = [mkdtempSync(join(tmpdir(), "callbox-crash-a-")), mkdtempSync(join(tmpdir(), "callbox-crash-b-"))];
  const env = { CALLBOX_MASTER_KEY: MASTER_KEY, CALLBOX_DEMO_APP: "false" };
  const serve = (data) =>
    startListening(callboxBin, ["serve", "--listen", "127.0.0.1:0", "--data", data, "--database-url", databaseUrl, "--redis-url", redisUrl], env);
  const nodeA = await serve(dirs[0]);
  const nodeB = await serve(dirs[1]);
  const proxy = await switchableProxy(hostPort(nodeB.url));
  const clients = [];
  t.after(async () => {
    for (const client of clients) await client.terminate().catch(() => {});
    await proxy.close();
    await nodeA.stop();
    await nodeB.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  const token = readFileSync(join(dirs[0], "admin-token"), "utf8").trim();
  const created = await fetch(`${nodeA.url}/admin/v1/apps`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "crash", capabilities: ["messaging"] }),
  }).then((r) => r.json());
  const app = { key: created.application.applicationKey, secret: created.applicationSecret };

  const newClient = (url, WebSocketClass) => {
    const client = new Client({ applicationKey: app.key, capabilities: { messaging: true }, url, realtime: { WebSocket: WebSocketClass } });
    clients.push(client);
    return client;
  };
  const alice = newClient(nodeA.url, WebSocket);
  const frameCounts = new Map();
  const bob = newClient(proxy.url, countingWebSocket(frameCounts));
  const bobStates = [];
  bob.addListener({ onConnectionStateChanged: (_c, state) => bobStates.push(state) });
  const received = [];
  await bob.start({ userTicket: mintTicket({ ...app, user: "bob" }) });
  bob.getMessageClient().addEventListener({ onIncomingMessage: (m) => received.push(m.messageId) });
  await alice.start({ userTicket: mintTicket({ ...app, user: "alice" }) });
  const waitFor = async (predicate, what, ms = 20000) => {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor(() => alice.getConnectionState() === "connected" && bob.getConnectionState() === "connected", "both connected");

  // Alice sends one after another (so acknowledgement order is the order bob must see); node B dies part-way.
  const messaging = alice.getMessageClient();
  const acknowledged = [];
  const failures = [];
  let rateLimited = 0;
  let killedAt = 0;
  for (let i = 0; i < MESSAGES; i++) {
    if (i === KILL_AFTER) {
      nodeB.process.kill("SIGKILL");
      killedAt = Date.now();
      proxy.switchTo(hostPort(nodeA.url));
    }
    for (;;) {
      try {
        const sent = await messaging.send(messaging.newMessage("bob", `message ${i}`));
        acknowledged.push(sent.messageId);
        break;
      } catch (error) {
        // Past the per-session rate: not taken, so sent again once the server says it may be.
        if (error.reason === "rate_limited") {
          rateLimited += 1;
          await new Promise((r) => setTimeout(r, 1000 * (error.retryAfter ?? 1)));
          continue;
        }
        failures.push(error.reason); // not acknowledged: no promise was made about it
        break;
      }
    }
  }
  await waitFor(() => acknowledged.every((id) => received.includes(id)), "every acknowledged message at bob", 30000);
  await new Promise((r) => setTimeout(r, 500)); // room for a late duplicate
  const reconnectedAfter = Date.now() - killedAt;

  assert.deepEqual(failures, [], "alice's node stayed up: every send was acknowledged");
  assert.equal(acknowledged.length, MESSAGES);
  assert.equal(new Set(received).size, received.length, "none twice through the SDK");
  assert.deepEqual(received.filter((id) => acknowledged.includes(id)), acknowledged, "in the order alice sent them");
  assert.ok(bobStates.includes("reconnecting"), "bob's connection was lost with node B");
  assert.equal(bob.getConnectionState(), "connected");
  const replays = [...frameCounts.values()].reduce((sum, n) => sum + n - 1, 0);
  t.diagnostic(
    `${MESSAGES} acknowledged (${rateLimited} sends waited out rate_limited), ${received.length} shown to bob once ` +
      `each; ${replays} replayed frames dropped by the SDK; ` +
      `all delivered ${reconnectedAfter} ms after the kill (alice done sending included)`,
  );
});
