// Helpers for the legacy SDK end-to-end tests: a real `callbox serve` reachable as the legacy SDK insists
// (HTTPS, port 443 of its realtime host), a test certificate made here with openssl, and legacy clients, each the
// real `sinch-rtc` 1.4.12 in a Node process of its own (lib/client-process.mjs).
//
// Why port 443: the SDK's PubNub 3.16.5 (Node build) always connects to port 443 of the `host` that
// `GET /v1/configuration/user` names (`options.port = ssl ? 443 : 80`, ssl forced on by the SDK). So the server
// under test must answer TLS on 127.0.0.1:443; these tests run as root, and take the port for the time of a file
// (one server per test file, files one at a time).
//
// Two ways to get there (LEGACY_E2E_TLS, default `auto`):
// - `native`: `callbox serve --listen 127.0.0.1:443 --tls-cert FILE --tls-key FILE`, with the `[legacy]
//   realtime_host` setting (CALLBOX_LEGACY__REALTIME_HOST) set to 127.0.0.1.
// - `proxy`: callbox as behind a TLS-terminating reverse proxy (or a callbox without TLS): it listens on
//   127.0.0.1:0 (plain HTTP) and a small Node TLS terminator on 127.0.0.1:443 pipes every connection to it. The SDK
//   sees the same thing; callbox takes the realtime host from the Host header of the SDK's request (127.0.0.1, no
//   port, since 443 is the default).
// `auto` picks `native` when `callbox serve --help` lists --tls-cert.
import { execFileSync, fork } from "node:child_process";
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { callboxBin, startListening } from "../../lib/sdk-servers.mjs";

const here = dirname(fileURLToPath(import.meta.url));
/** Where node_modules/sinch-rtc is (e2e/legacy.sh installs it there with `npm ci`). */
export const sdkDir = resolve(process.env.LEGACY_SDK_DIR ?? join(here, ".."));
/** The realtime host the SDK is pointed at: an IP, so that no resolver can send "localhost" to ::1. */
export const HOST = "127.0.0.1";

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl in `dir`: {cert, key} (file paths).
 * The clients trust it through NODE_EXTRA_CA_CERTS (read by Node when a process starts).
 */
export function makeCertificate(dir) {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
      "-subj", "/CN=callbox legacy e2e", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout", key, "-out", cert,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return { cert, key };
}

/** Whether this callbox binary can terminate TLS itself. */
function callboxHasTls() {
  try {
    return execFileSync(callboxBin, ["serve", "--help"], { encoding: "utf8" }).includes("--tls-cert");
  } catch {
    return false;
  }
}

/** A TLS terminator on `port` of 127.0.0.1 that pipes each connection to `target` ({host, port}). */
export function startTlsProxy({ port, cert, key, target }) {
  const sockets = new Set();
  const server = tls.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (front) => {
    const back = net.connect(target);
    sockets.add(front);
    sockets.add(back);
    const drop = () => {
      front.destroy();
      back.destroy();
      sockets.delete(front);
      sockets.delete(back);
    };
    front.on("error", drop).on("close", drop);
    back.on("error", drop).on("close", drop);
    front.pipe(back).pipe(front);
  });
  return new Promise((resolvePromise, reject) => {
    server.once("error", (error) =>
      reject(new Error(`cannot listen on ${HOST}:${port} for the legacy SDK (root needed, port free?): ${error.message}`)),
    );
    server.listen(port, HOST, () =>
      resolvePromise({
        stop: () =>
          new Promise((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}

/** One JSON request with node:http(s) (fetch cannot be given a CA in Node 20); resolves to {status, body}. */
export function requestJson(url, { method = "GET", headers = {}, body, ca } = {}) {
  const target = new URL(url);
  const lib = target.protocol === "https:" ? https : http;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const request = lib.request(
      target,
      {
        method,
        ca,
        headers: { ...headers, ...(payload ? { "Content-Type": "application/json" } : {}) },
        timeout: 10000,
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => (text += chunk));
        response.on("end", () => {
          let parsed = null;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            parsed = text;
          }
          resolvePromise({ status: response.statusCode, body: parsed });
        });
      },
    );
    request.on("timeout", () => request.destroy(new Error(`${method} ${url}: timed out`)));
    request.on("error", reject);
    if (payload) request.write(payload);
    request.end();
  });
}

/**
 * `callbox serve` as the legacy SDK can reach it (see the top of this file), with a fresh data directory and a
 * fresh certificate. `config`: the text of a configuration file given with `--config` (e.g. a `[turn]` table).
 * Resolves to {mode, apiUrl, ca, data, admin, createApp, client, closeClients, stop}.
 */
export async function startLegacyServer({ mode = process.env.LEGACY_E2E_TLS ?? "auto", env = {}, config = null } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "callbox-legacy-e2e-"));
  const data = join(dir, "data");
  const { cert, key } = makeCertificate(dir);
  const configArgs = [];
  if (config !== null) {
    const file = join(dir, "callbox.toml");
    writeFileSync(file, config, { mode: 0o600 });
    configArgs.push("--config", file);
  }
  const ca = readFileSync(cert);
  const chosen = mode === "auto" ? (callboxHasTls() ? "native" : "proxy") : mode;
  let server;
  let proxy = null;
  let adminUrl;
  try {
    if (chosen === "native") {
      server = await startListening(
        callboxBin,
        ["serve", "--listen", `${HOST}:443`, "--data", data, "--tls-cert", cert, "--tls-key", key, ...configArgs],
        { CALLBOX_LEGACY__REALTIME_HOST: HOST, ...env },
      );
      adminUrl = `https://${HOST}`;
    } else if (chosen === "proxy") {
      server = await startListening(callboxBin, ["serve", "--listen", `${HOST}:0`, "--data", data, ...configArgs], env);
      const port = Number(new URL(server.url).port);
      proxy = await startTlsProxy({ port: 443, cert, key, target: { host: HOST, port } });
      adminUrl = server.url;
    } else {
      throw new Error(`LEGACY_E2E_TLS must be auto, native or proxy, not ${mode}`);
    }
  } catch (error) {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  // A test process that dies without `stop()` must not leave callbox holding port 443 for the next run.
  const killOnExit = () => server.process.kill("SIGKILL");
  process.once("exit", killOnExit);
  const token = readFileSync(join(data, "admin-token"), "utf8").trim();
  const admin = async (method, path, body) => {
    const answer = await requestJson(adminUrl + path, {
      method,
      body,
      ca,
      headers: { Authorization: `Bearer ${token}` },
    });
    if (answer.status < 200 || answer.status >= 300) {
      throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  };
  const apiUrl = `https://${HOST}/v1/`;
  const clients = new Set();
  const closeClients = async () => {
    await Promise.all([...clients].map((c) => c.close()));
    clients.clear();
  };
  return {
    mode: chosen,
    apiUrl,
    ca: cert,
    data,
    admin,
    stderr: server.stderr,
    /** Creates an application; resolves to {key, secret}. */
    createApp: async (settings) => {
      const made = await admin("POST", "/admin/v1/apps", settings);
      return { key: made.application.applicationKey, secret: made.applicationSecret };
    },
    /**
     * A legacy client process for the app `key`, initialised (not started); closed by closeClients/stop.
     * `activeConnection: false` leaves out `startActiveConnection` (no realtime subscription at start).
     * `calling: true` adds the calling capability, the client "speaking" a tone of `toneHz`; `ice` is how its
     * calls set up ICE ("sdk", "config" or "relay", see client-process.mjs init).
     */
    client: async (key, name, { activeConnection = true, calling = false, toneHz, ice } = {}) => {
      const c = new LegacyClient({ name, ca: cert });
      clients.add(c);
      await c.ready();
      await c.call("init", { applicationKey: key, apiUrl, activeConnection, calling, toneHz, ice });
      return c;
    },
    closeClients,
    stop: async () => {
      await closeClients();
      await proxy?.stop();
      await server.stop();
      process.removeListener("exit", killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A legacy SDK client process. `call(op, args)` runs one operation (see client-process.mjs) within `timeoutMs`;
 * `events` holds every event the SDK reported, and `waitFor(predicate)` waits for one.
 */
export class LegacyClient {
  constructor({ name, ca, timeoutMs = 15000 }) {
    this.name = name;
    this.timeoutMs = timeoutMs;
    this.events = [];
    this.log = "";
    this.nextId = 1;
    this.pending = new Map();
    this.waiters = new Set();
    this.exited = false;
    this.child = fork(join(here, "client-process.mjs"), [], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: ca, LEGACY_SDK_DIR: sdkDir },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    // LEGACY_E2E_DEBUG: the client's output as it comes, whole lines, each after the client's name.
    let partial = "";
    const keep = (chunk) => {
      this.log = (this.log + chunk).slice(-8000);
      if (!process.env.LEGACY_E2E_DEBUG) return;
      const lines = (partial + chunk).split("\n");
      partial = lines.pop();
      for (const line of lines) process.stderr.write(`${name}| ${line}\n`);
    };
    this.child.stdout.on("data", keep);
    this.child.stderr.on("data", keep);
    this.child.on("message", (message) => this.receive(message));
    this.child.on("exit", (code, signal) => {
      this.exited = true;
      const why = new Error(`${this.name}: client process exited (${code ?? signal}); output:\n${this.log}`);
      for (const { reject } of this.pending.values()) reject(why);
      this.pending.clear();
      for (const waiter of this.waiters) waiter.reject(why);
      this.waiters.clear();
    });
  }

  receive(message) {
    if (message.id !== undefined) {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else {
        const why = new Error(`${this.name}: ${pending.op} failed: ${JSON.stringify(message.error)}; output:\n${this.log}`);
        pending.reject(Object.assign(why, { sdk: message.error }));
      }
      return;
    }
    this.events.push(message);
    for (const waiter of this.waiters) {
      if (waiter.predicate(message)) {
        this.waiters.delete(waiter);
        waiter.resolve(message);
      }
    }
  }

  /** Resolves once the process has loaded the SDK. */
  ready() {
    return this.waitFor((e) => e.event === "ready", { timeoutMs: 30000, what: "the SDK to load" });
  }

  /** Runs `op` in the client; rejects with the SDK's error (as `error.sdk`) or after `timeoutMs`. */
  call(op, args = {}, { timeoutMs = this.timeoutMs } = {}) {
    if (this.exited) return Promise.reject(new Error(`${this.name}: client process has exited`));
    const id = this.nextId++;
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${op} did not finish within ${timeoutMs} ms; output:\n${this.log}`));
      }, timeoutMs);
      this.pending.set(id, {
        op,
        resolve: (value) => {
          clearTimeout(timer);
          resolvePromise(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.send({ id, op, ...args });
    });
  }

  start(login) {
    return this.call("start", { login });
  }

  send(to, text, options) {
    return this.call("send", { to, text }, options);
  }

  /** The first event (seen already or to come) matching `predicate`, within `timeoutMs`. */
  waitFor(predicate, { timeoutMs = this.timeoutMs, what = "an event" } = {}) {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.exited) return Promise.reject(new Error(`${this.name}: client process has exited`));
    return new Promise((resolvePromise, reject) => {
      const waiter = { predicate };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}; output:\n${this.log}`));
      }, timeoutMs);
      waiter.resolve = (value) => {
        clearTimeout(timer);
        resolvePromise(value);
      };
      waiter.reject = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      this.waiters.add(waiter);
    });
  }

  /** An incoming (not own) message with this text. */
  waitForMessage(text, options) {
    return this.waitFor((e) => e.event === "message" && !e.outgoing && e.textBody === text, {
      what: `message ${JSON.stringify(text.slice(0, 40))}`,
      ...options,
    });
  }

  /** The delivery receipt of `messageId` from `recipientId`. */
  waitForDelivery(messageId, recipientId, options) {
    return this.waitFor((e) => e.event === "delivered" && e.messageId === messageId && e.recipientId === recipientId, {
      what: `delivery of ${messageId} to ${recipientId}`,
      ...options,
    });
  }

  /** Calls `to` (`callUser`); resolves to the call's id. */
  async callUser(to, headers) {
    return (await this.call("callUser", { to, headers })).callId;
  }

  /** The first event `event` (e.g. "incoming", "progressing", "established", "ended") of a call. */
  waitForCall(event, callId, options) {
    return this.waitFor((e) => e.event === event && (callId === undefined || e.callId === callId), {
      what: `call event ${event}${callId ? ` of ${callId}` : ""}`,
      ...options,
    });
  }

  /** `stop` in the SDK (leave, terminate), then the process ends; bounded, idempotent. */
  async close() {
    if (process.env.LEGACY_E2E_DEBUG) process.stderr.write(`${this.name} events: ${JSON.stringify(this.events)}\n`);
    if (this.exited) return;
    try {
      await this.call("stop", {}, { timeoutMs: 3000 });
    } catch {
      // A client that cannot stop cleanly is killed all the same.
    }
    if (this.exited) return;
    await new Promise((done) => {
      const kill = setTimeout(() => this.child.kill("SIGKILL"), 2000);
      this.child.once("exit", () => {
        clearTimeout(kill);
        done();
      });
      this.child.kill("SIGTERM");
    });
  }
}
