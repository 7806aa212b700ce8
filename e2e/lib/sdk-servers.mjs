// Helpers for the SDK browser tests: real `callbox serve` and `partner-backend` processes on loopback, the
// admin API, tickets minted here (for the cases a backend would not mint), and Debian's Chromium.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = resolve(repoRoot, process.env.CARGO_TARGET_DIR ?? "target");
// CALLBOX_BIN (set by the runner scripts) names a binary built elsewhere.
export const callboxBin = process.env.CALLBOX_BIN ? resolve(process.env.CALLBOX_BIN) : join(targetDir, "debug", "callbox");
export const partnerBin = join(targetDir, "debug", "partner-backend");

/** Starts a process that prints `{"event":"listening","url":...}` on stdout; resolves to {url, stop}. */
export function startListening(bin, args, env = {}, timeoutMs = 30000) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, RUST_LOG: "warn", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr = (stderr + chunk).slice(-8000);
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${bin} did not print its listening line in time; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited with ${code} before listening; stderr:\n${stderr}`));
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (event.event === "listening") {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        resolvePromise({
          url: event.url,
          process: child,
          stderr: () => stderr,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done();
              const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
              child.once("exit", () => {
                clearTimeout(kill);
                done();
              });
              child.kill("SIGTERM");
            }),
        });
      }
    });
  });
}

/**
 * `callbox serve` on 127.0.0.1:0 with a fresh data directory; adds `admin(method, path, body)`. `config`: the
 * text of a configuration file passed with `--config` (e.g. a `[turn]` table), `env`: extra `CALLBOX_*` variables.
 */
export async function startCallbox({ config = null, env = {} } = {}) {
  const data = mkdtempSync(join(tmpdir(), "callbox-sdk-e2e-"));
  const args = ["serve", "--listen", "127.0.0.1:0", "--data", data];
  if (config !== null) {
    const file = join(data, "callbox.toml");
    writeFileSync(file, config, { mode: 0o600 });
    args.push("--config", file);
  }
  const server = await startListening(callboxBin, args, env);
  const token = readFileSync(join(data, "admin-token"), "utf8").trim();
  const admin = async (method, path, body) => {
    const response = await fetch(server.url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return parsed;
  };
  const stop = server.stop;
  return {
    ...server,
    data,
    admin,
    /** Creates an application; resolves to {key, secret}. */
    createApp: async (settings) => {
      const made = await admin("POST", "/admin/v1/apps", settings);
      return { key: made.application.applicationKey, secret: made.applicationSecret };
    },
    stop: async () => {
      await stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** A legacy user ticket (PROTOCOL §2), made as the published Node generator does. */
export function mintTicket({ key, secret, user, created = new Date(), expiresIn = 600 }) {
  const json = JSON.stringify({
    applicationKey: key,
    identity: { type: "username", endpoint: user },
    created: created.toISOString(),
    expiresIn,
  });
  const signature = createHmac("sha256", Buffer.from(secret, "base64")).update(json).digest("base64");
  return `${Buffer.from(json).toString("base64")}:${signature}`;
}

export const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
