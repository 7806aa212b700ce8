// A real coturn (Debian's `turnserver`) for the call tests, in the shared-secret mode Callbox hands credentials for
// (docs/calls.md §4): on 127.0.0.1, a free port, relaying on 127.0.0.1 (loopback peers allowed: both browsers are
// on this machine), no TLS/DTLS listeners, no CLI, a random static-auth-secret, logging to a file the test reads.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const turnserverBin = "/usr/bin/turnserver";

/** Whether `port` is free on 127.0.0.1 for both TCP and UDP (coturn listens on both). */
async function portFree(port) {
  const tcp = await new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
  if (!tcp) return false;
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => resolve(false));
    socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
  });
}

/** A free listening port, and a relay range of `span` ports whose ends are free, all from random tries. */
async function freePorts(span) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const listening = 20000 + Math.floor(Math.random() * 10000);
    const min = 40000 + Math.floor(Math.random() * 20000);
    if ((await portFree(listening)) && (await portFree(min)) && (await portFree(min + span - 1))) {
      return { listening, min, max: min + span - 1 };
    }
  }
  throw new Error("no free ports for coturn");
}

function tcpReachable(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts coturn; resolves to {port, secret, realm, urls, log(), stop()}. */
export async function startTurn() {
  if (!existsSync(turnserverBin)) throw new Error(`${turnserverBin} not found: apt-get install coturn (scripts/install-browser.sh does)`);
  const dir = mkdtempSync(join(tmpdir(), "callbox-turn-"));
  const secret = randomBytes(24).toString("base64url");
  const realm = "callbox.test";
  const ports = await freePorts(200);
  const logFile = join(dir, "turn.log");
  const config = [
    "listening-ip=127.0.0.1",
    `listening-port=${ports.listening}`,
    "relay-ip=127.0.0.1",
    `min-port=${ports.min}`,
    `max-port=${ports.max}`,
    "use-auth-secret",
    `static-auth-secret=${secret}`,
    `realm=${realm}`,
    "fingerprint",
    // Both browsers and the relay are on this machine; coturn refuses loopback peers otherwise.
    "allow-loopback-peers",
    "no-multicast-peers",
    "no-cli",
    "no-tls",
    "no-dtls",
    `log-file=${logFile}`,
    "simple-log",
    // Its own files in the scratch directory, not /var/lib/turn or /var/run.
    `userdb=${join(dir, "turndb")}`,
    `pidfile=${join(dir, "turn.pid")}`,
    // "verbose" logs each allocation and each refused credential: the test reads both.
    "verbose",
  ].join("\n");
  const configFile = join(dir, "turnserver.conf");
  writeFileSync(configFile, `${config}\n`, { mode: 0o600 });
  const child = spawn(turnserverBin, ["-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const log = () => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };
  const deadline = Date.now() + 10000;
  while (!(await tcpReachable(ports.listening))) {
    if (child.exitCode !== null) throw new Error(`turnserver exited with ${child.exitCode}: ${stderr}\n${log()}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`turnserver did not listen on ${ports.listening} in time: ${stderr}\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const urls = [`turn:127.0.0.1:${ports.listening}?transport=udp`];
  return {
    port: ports.listening,
    relayPorts: [ports.min, ports.max],
    secret,
    realm,
    urls,
    /** The `[turn]` table of a Callbox configuration file pointing at this coturn (TOML says it plainly; figment
     * would parse `CALLBOX_TURN__URLS='["turn:…"]'` too). */
    callboxConfig: (ttlSeconds = 600) =>
      [
        "[turn]",
        `urls = [${urls.map((url) => JSON.stringify(url)).join(", ")}]`,
        `shared_secret = ${JSON.stringify(secret)}`,
        `credential_ttl_seconds = ${ttlSeconds}`,
        "",
      ].join("\n"),
    log,
    stop: () =>
      new Promise((done) => {
        const finish = () => {
          rmSync(dir, { recursive: true, force: true });
          done();
        };
        if (child.exitCode !== null || child.signalCode !== null) return finish();
        const kill = setTimeout(() => child.kill("SIGKILL"), 3000);
        child.once("exit", () => {
          clearTimeout(kill);
          finish();
        });
        child.kill("SIGTERM");
      }),
  };
}
