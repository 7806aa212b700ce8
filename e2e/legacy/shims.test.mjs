// The Node shims of lib/shims.mjs, without a server: with them the SDK loads and a SinchClient can be made, and
// the two call shims give wrtc's peer connections what the SDK's calling code uses (`addStream`, and
// `currentTarget` on the ICE state event), checked on a real loopback connection between two wrtc peers.
//
// Each check runs in a Node process of its own, as the clients do (lib/client-process.mjs): the navigator shim
// touches Object.prototype, and wrtc crashes (SIGSEGV) when a process that had a track ends by itself, so the
// child ends with process.exit once it has printed its result.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sdkDir } from "./lib/legacy.mjs";

const shims = join(dirname(fileURLToPath(import.meta.url)), "lib", "shims.mjs");

/** Runs `body` (an async function's text, given `require` for the SDK's packages) in a child; its JSON result. */
function inChild(body) {
  const code = `
    import { createRequire } from "node:module";
    import { installShims, installCallShims } from ${JSON.stringify(shims)};
    installShims();
    const require = createRequire(${JSON.stringify(join(sdkDir, "package.json"))});
    try {
      const result = await (async () => { ${body} })();
      process.stdout.write(JSON.stringify({ ok: true, result }));
    } catch (error) {
      process.stdout.write(JSON.stringify({ ok: false, error: String(error && error.stack || error) }));
    }
    process.exit(0);
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", code], { timeout: 20000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`child failed: ${error.message}\n${stderr}`));
      const answer = JSON.parse(stdout);
      if (!answer.ok) return reject(new Error(answer.error));
      resolve(answer.result);
    });
  });
}

test("with the shims the SDK loads and makes a client", async () => {
  const result = await inChild(`
    const SinchClient = require("sinch-rtc");
    // Port 9 (discard): the client's first call (GET /v1/timestamp) fails at once, which is not what is tested.
    const client = new SinchClient({ applicationKey: "k", capabilities: { messaging: true }, urlObj: { base: "http://127.0.0.1:9/v1/" } });
    const messages = client.getMessageClient();
    const message = messages.newMessage("bob", "hi");
    messages.destroy();
    return { recipients: message.recipientIds, keys: Object.keys({}), json: JSON.stringify({ a: 1 }) };
  `);
  assert.deepEqual(result.recipients, ["bob"]);
  // The navigator strings are invisible to enumeration and serialisation.
  assert.deepEqual(result.keys, []);
  assert.equal(result.json, '{"a":1}');
});

test("addStream and event.currentTarget on wrtc peer connections", { timeout: 30000 }, async () => {
  const result = await inChild(`
    const wrtc = require("wrtc");
    installCallShims(wrtc);
    const { RTCPeerConnection, MediaStream, nonstandard } = wrtc;
    const track = new nonstandard.RTCAudioSource().createTrack();
    const caller = new RTCPeerConnection({ iceServers: [] });
    const callee = new RTCPeerConnection({ iceServers: [] });
    caller.addStream(new MediaStream([track]));
    const senders = caller.getSenders().map((s) => s.track.id === track.id);
    caller.onicecandidate = (e) => e.candidate && callee.addIceCandidate(e.candidate).catch(() => {});
    callee.onicecandidate = (e) => e.candidate && caller.addIceCandidate(e.candidate).catch(() => {});
    const targets = [];
    const connected = new Promise((resolve) => {
      // As the SDK's handler does: the state read from e.currentTarget.
      caller.oniceconnectionstatechange = (e) => {
        targets.push(e.currentTarget === caller);
        if (["connected", "completed"].includes(e.currentTarget.iceConnectionState)) resolve();
      };
    });
    await caller.setLocalDescription(await caller.createOffer());
    await callee.setRemoteDescription(caller.localDescription);
    await callee.setLocalDescription(await callee.createAnswer());
    await caller.setRemoteDescription(callee.localDescription);
    await connected;
    caller.close();
    callee.close();
    return { senders, targets };
  `);
  assert.deepEqual(result.senders, [true], "addStream added the stream's one track");
  assert.ok(result.targets.length > 0 && result.targets.every(Boolean), `currentTarget is the connection: ${result.targets}`);
});
