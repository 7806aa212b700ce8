// One legacy SDK client (a "device"), in a Node process of its own, driven by the test over the IPC channel of
// `child_process.fork` (lib/legacy.mjs, LegacyClient). A process per client because the SDK keeps its state in
// module globals (localStorage, its PubNub instance), because the navigator shim touches Object.prototype
// (lib/shims.mjs), and because NODE_EXTRA_CA_CERTS (the test CA) is only read when a process starts.
//
// The SDK is loaded from LEGACY_SDK_DIR (a directory with node_modules/sinch-rtc, installed by e2e/legacy.sh),
// unchanged. Requests: {id, op, ...} → {id, ok: true, result} or {id, ok: false, error}; the SDK's events are sent
// as {event, ...} as they happen.
import { createRequire } from "node:module";
import { join } from "node:path";
import { installShims, installCallShims } from "./shims.mjs";
import { startTone, measureTone } from "./tones.mjs";

installShims();
const sdkDir = process.env.LEGACY_SDK_DIR;
if (!sdkDir) throw new Error("LEGACY_SDK_DIR is not set");
const require = createRequire(join(sdkDir, "package.json"));
// The SDK's Node build requires `wrtc` when it loads (calls or not); the call shims only change its prototypes.
const wrtc = require("wrtc");
installCallShims(wrtc);
const SinchClient = require("sinch-rtc");

let client = null;
let messages = null;
/** Calls: the SDK's CallClient, the calls by id, the tone this client "speaks", how it sets up ICE (see init). */
let calls = null;
const callsById = new Map();
let tone = null;
let iceMode = "sdk";

/** What the test learns of an SDK error: its fields, and for a failed HTTP call the status and JSON body. */
function describe(error) {
  if (error === null || typeof error !== "object") return { message: String(error) };
  const out = { name: error.name, message: error.message, domain: error.domain, code: error.code };
  if (typeof error.status === "number") {
    // The SDK rejects a failed call with its XMLHttpRequest.
    out.status = error.status;
    out.body = error.data ?? error.responseText;
  }
  const response = error.response;
  if (response !== undefined && typeof response !== "string") {
    try {
      out.response = JSON.parse(JSON.stringify(response));
    } catch {
      out.response = String(response);
    }
  } else if (response !== undefined) {
    out.response = response;
  }
  return out;
}

/** A log line's object, cut short. */
function brief(value) {
  if (value === undefined) return "";
  try {
    return (JSON.stringify(value) ?? "").slice(0, 200);
  } catch {
    return "";
  }
}

function emit(event) {
  process.send?.(event);
}

function callById(callId) {
  const call = callsById.get(callId);
  if (!call) throw new Error(`no call ${callId} in this client`);
  return call;
}

/** A call as the test sees it: ids, direction, state, end cause (the SDK's names) and the error it ended with. */
function describeCall(call) {
  const details = call.getDetails();
  return {
    callId: call.callId,
    direction: call.getDirection() === 1 ? "outgoing" : "incoming",
    remoteUserId: call.getRemoteUserId(),
    state: call.getState(),
    endCause: call.getEndCause(),
    error: call.error ? { message: call.error.message, domain: call.error.domain, code: call.error.code } : null,
    established: Boolean(details.establishedTime),
    duration: details.duration,
  };
}

/**
 * The app-side TURN workaround (see init), as docs/legacy-sdk.md section 6 gives it: Callbox's iceServers, as the
 * SDK kept them, in place of the call's own.
 */
function applyIce(call) {
  if (iceMode === "sdk") return;
  const iceServers = client.user.mxpConfig?.iceServers;
  // No iceServers in the configuration (a server without [turn]): the call keeps the SDK's own, and the test
  // that asked for them sees it in `route`.
  if (!iceServers) return;
  call.webRtcConfig = { ...call.webRtcConfig, iceServers, ...(iceMode === "relay" ? { iceTransportPolicy: "relay" } : {}) };
}

/** Reports the call's events to the test as they happen. */
function track(call) {
  callsById.set(call.callId, call);
  call.addEventListener({
    onCallProgressing: () => emit({ event: "progressing", callId: call.callId }),
    onCallEstablished: () => emit({ event: "established", callId: call.callId }),
    onCallEnded: () => emit({ event: "ended", ...describeCall(call) }),
    onConnectionChange: (_call, state) => emit({ event: "ice", callId: call.callId, state }),
  });
}

const ops = {
  /**
   * A SinchClient with messaging and an active connection, every API base pointing at `apiUrl` (…/v1/).
   * Calls: `calling: true` adds the calling capability, with a tone of `toneHz` as this client's microphone (Node
   * has none: the same stream goes to `callUser` and, as `customStream`, to incoming calls); `ice` says how this
   * client's calls set up ICE: "sdk" (the SDK's own hard-coded STUN servers), "config" (the app-side workaround:
   * the `iceServers` of Callbox's configuration answer copied into each call's `webRtcConfig`), "relay" (the same,
   * and `iceTransportPolicy: "relay"`: TURN only).
   */
  init({ applicationKey, apiUrl, activeConnection = true, calling = false, toneHz = 440, ice = "sdk" }) {
    const urlObj = {};
    for (const name of ["base", "user", "portal", "reporting", "calling", "messaging"]) urlObj[name] = apiUrl;
    if (calling) {
      tone = startTone(wrtc, toneHz);
      iceMode = ice;
    }
    client = new SinchClient({
      applicationKey,
      capabilities: calling ? { messaging: true, calling: true } : { messaging: true },
      ...(calling ? { customStream: tone.stream } : {}),
      startActiveConnection: activeConnection,
      urlObj,
      onLogMessage: (entry) => {
        // The SDK's log, to stderr: the test shows the tail of it when something fails.
        process.stderr.write(`[sdk] ${entry?.message} ${brief(entry?.response ?? entry?.object)}\n`);
        // How many PubNub frames the SDK cut a message into (a test of multi-frame messages checks it).
        const object = entry?.object;
        if (entry?.message === "Split message into frames as needed" && object?.decrypted?.md === 1) {
          emit({ event: "frames", messageId: object.mxpSessionId, count: object.encodedFrames.length });
        }
        // Calls: the answer of POST /v1/calls/data as the SDK read it (the call is placed), and a FAILURE frame
        // (md 9) as it came, which tell a server's answer from the SDK's own timeouts and errors.
        if (entry?.message === "Successfully initiated call, waiting for MXP signalling.") {
          emit({
            event: "placed",
            body: object?.body ?? null,
            signalChannel: object?.signalChannel ?? null,
            instances: object?.instances ?? null,
            hasKey: typeof object?.encryptionKey === "string" && object.encryptionKey.length > 0,
          });
        }
        if (entry?.message === "Call FAILURE Received") {
          emit({ event: "failureFrame", callId: object?.mxpSessionId ?? null, bt: object?.decrypted?.bt ?? null, bd: object?.decrypted?.bd ?? null });
        }
      },
    });
    messages = client.getMessageClient();
    messages.addEventListener({
      onIncomingMessage: (message) =>
        emit({
          event: "message",
          messageId: message.messageId,
          senderId: message.senderId,
          recipientIds: message.recipientIds,
          textBody: message.textBody,
          // What the SDK hands the app as the message's headers (`nvps.ph` of the frame, as it came).
          headers: message.headers ?? null,
          // The SDK's `direction` is true for a message this client sent (it shows those too).
          outgoing: message.direction === true,
        }),
      onMessageDelivered: (info) => emit({ event: "delivered", messageId: info.messageId, recipientId: info.recipientId }),
    });
    if (calling) {
      calls = client.getCallClient();
      calls.addEventListener({
        onIncomingCall: (call) => {
          // The workaround must be in place before the SDK makes the call's peer connection, which it does
          // after this listener returns (initStream, then the ACK).
          applyIce(call);
          track(call);
          emit({ event: "incoming", callId: call.callId, remoteUserId: call.getRemoteUserId(), headers: call.getHeaders() ?? null });
        },
      });
    }
    return { subInstanceId: client._subInstanceId };
  },
  /** `callUser(to, headers, stream)`; resolves to {callId} as soon as the SDK returns the call (it places it later). */
  callUser({ to, headers }) {
    const call = calls.callUser(to, headers, tone.stream);
    // Right after callUser() returns: the SDK makes the peer connection only once the stream and the signal
    // subscription are ready (promises), so the call's webRtcConfig can still be changed here.
    applyIce(call);
    track(call);
    return { callId: call.callId };
  },
  /** `answer()` on a call this client has. */
  answer({ callId }) {
    callById(callId).answer();
    return { state: callById(callId).getState() };
  },
  /** `hangup()`: hang up, decline (incoming, ringing) or cancel (outgoing, ringing). */
  hangup({ callId }) {
    callById(callId).hangup();
    return { state: callById(callId).getState() };
  },
  /** The call's state, end cause and details as the SDK gives them. */
  callState({ callId }) {
    return describeCall(callById(callId));
  },
  /** What the other side's audio on this call is for `ms` milliseconds: {frames, audibleFrames, frequency, rms}. */
  async measure({ callId, ms }) {
    const stream = callById(callId).incomingStream;
    const audio = stream?.getAudioTracks()[0];
    if (!audio) throw new Error(`call ${callId} has no incoming audio track`);
    return await measureTone(wrtc, audio, ms);
  },
  /**
   * The ICE route of the call's peer connection (getStats): the selected pair's local and remote candidate
   * types, and the `webRtcConfig` the SDK made the connection with (URLs and policy, no credentials).
   */
  async route({ callId }) {
    const call = callById(callId);
    const instance = call.peerConnections[call.activeInstance] ?? Object.values(call.peerConnections)[0];
    if (!instance) throw new Error(`call ${callId} has no peer connection`);
    const pc = instance.peerConnection;
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((report) => byId.set(report.id, report));
    let pair = null;
    for (const report of byId.values()) {
      if (report.type === "transport" && report.selectedCandidatePairId) pair = byId.get(report.selectedCandidatePairId) ?? null;
    }
    const local = pair ? byId.get(pair.localCandidateId) : null;
    const remote = pair ? byId.get(pair.remoteCandidateId) : null;
    const config = instance.webrtcConfig ?? {};
    return {
      iceConnectionState: pc.iceConnectionState,
      pair: pair ? { state: pair.state, bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived } : null,
      local: local ? { type: local.candidateType, address: local.address ?? local.ip, port: local.port, protocol: local.protocol } : null,
      remote: remote ? { type: remote.candidateType, address: remote.address ?? remote.ip, port: remote.port } : null,
      iceServers: (config.iceServers ?? []).map((server) => ({ urls: server.urls, withCredential: Boolean(server.credential) })),
      iceTransportPolicy: config.iceTransportPolicy ?? "all",
    };
  },
  /** The `iceServers` of the configuration answer the SDK keeps (`user.mxpConfig`), credentials included. */
  configuredIceServers() {
    return client.user.mxpConfig?.iceServers ?? null;
  },
  /** `newUser({username, password})` on a platform-managed app: resolves to the ticket object the SDK got. */
  async newUser({ username, password }) {
    return await client.newUser({ username, password }, (ticket) => ticket, () => {});
  },
  /** `start(login)`: a ticket object {userTicket} or {username, password}. */
  async start({ login }) {
    await client.start(login, () => {}, () => {});
    return { userId: client.user.userId, instanceId: client._sessionId };
  },
  /**
   * Sends `text` to `to` (a user id or a list), with `headers` if given (the SDK takes them only as a string);
   * resolves when the SDK says it is sent.
   */
  async send({ to, text, headers }) {
    const message = headers === undefined ? messages.newMessage(to, text) : messages.newMessage(to, text, headers);
    const sent = await messages.send(message, (m) => m, () => {});
    return { messageId: message.messageId, resolvedId: sent?.messageId ?? null };
  },
  /** Closes the active connection (PubNub leave) and terminates the client, as an app going away does. */
  async stop() {
    tone?.stop();
    if (client?.mxp) {
      await client.stopActiveConnection();
    }
    client?.terminate();
    // The leave request and the IM report go out asynchronously; give them a moment before the process exits.
    await new Promise((resolve) => setTimeout(resolve, 300));
    return {};
  },
};

process.on("message", async (request) => {
  const op = ops[request.op];
  if (!op) {
    emit({ id: request.id, ok: false, error: { message: `unknown op ${request.op}` } });
    return;
  }
  try {
    emit({ id: request.id, ok: true, result: (await op(request)) ?? null });
  } catch (error) {
    emit({ id: request.id, ok: false, error: describe(error) });
  }
});

// The SDK reports some failures only with console.error (e.g. "Could not report call!" when the PUT of a call
// report fails): the test sees them as events too.
const consoleError = console.error.bind(console);
console.error = (...args) => {
  emit({ event: "console-error", text: args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ").slice(0, 300) });
  consoleError(...args);
};
// The SDK logs some failures only as unhandled rejections; report them instead of letting Node exit on them.
process.on("unhandledRejection", (reason) => emit({ event: "unhandled", error: describe(reason) }));
process.on("disconnect", () => process.exit(0));
emit({ event: "ready" });
