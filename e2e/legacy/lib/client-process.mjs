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
import { installShims } from "./shims.mjs";

installShims();
const sdkDir = process.env.LEGACY_SDK_DIR;
if (!sdkDir) throw new Error("LEGACY_SDK_DIR is not set");
const require = createRequire(join(sdkDir, "package.json"));
const SinchClient = require("sinch-rtc");

let client = null;
let messages = null;

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

const ops = {
  /** A SinchClient with messaging and an active connection, every API base pointing at `apiUrl` (…/v1/). */
  init({ applicationKey, apiUrl, activeConnection = true }) {
    const urlObj = {};
    for (const name of ["base", "user", "portal", "reporting", "calling", "messaging"]) urlObj[name] = apiUrl;
    client = new SinchClient({
      applicationKey,
      capabilities: { messaging: true },
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
    return { subInstanceId: client._subInstanceId };
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

// The SDK logs some failures only as unhandled rejections; report them instead of letting Node exit on them.
process.on("unhandledRejection", (reason) => emit({ event: "unhandled", error: describe(reason) }));
process.on("disconnect", () => process.exit(0));
emit({ event: "ready" });
