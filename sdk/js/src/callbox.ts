/**
 * Callbox browser SDK.
 *
 * Starts a session from a user ticket made by your backend, a registration JWT, a username and password
 * (platform-managed users), a saved session, or a credentials provider; then signs every session call per
 * PROTOCOL §4 (HMAC-SHA256 with WebCrypto, Content-MD5 with spark-md5). The class is also exported as
 * `SinchClient`, so code written for the legacy Sinch JS SDK runs unchanged (with `url` pointing at Callbox).
 *
 * No secret, ticket, password or signature is ever passed to `onLogMessage` or the console.
 */
import SparkMD5 from "spark-md5";

/** The SDK's version, sent to Callbox in the `version` field of session requests. */
export const VERSION = "0.1.0";

/** What the client asks for; Callbox grants the intersection with what the application allows. */
export interface Capabilities {
  messaging?: boolean;
  calling?: boolean;
  video?: boolean;
}

/** A log line for `onLogMessage`. Never carries a secret, a ticket, a password or a signature. */
export interface LogMessage {
  level: "debug" | "info" | "warn" | "error";
  message: string;
}

export interface ClientOptions {
  /** The application's public key. */
  applicationKey: string;
  /** Capabilities wanted, e.g. `{ messaging: true }`. */
  capabilities?: Capabilities;
  /** Callbox's base URL, such as `http://127.0.0.1:8080`; default the page's origin. */
  url?: string;
  /** Receives the SDK's log lines. */
  onLogMessage?: (message: LogMessage) => void;
  /** Seconds before expiry at which a session started from a credentials provider is refreshed (default 60). */
  refreshMarginSeconds?: number;
  /** The `fetch` to use (default the global one); for tests and unusual environments. */
  fetch?: typeof fetch;
  /** The realtime connection's WebSocket class and timings (docs/realtime.md); the defaults suit browsers. */
  realtime?: RealtimeOptions;
  /** Calling: extra RTCConfiguration (e.g. `{iceTransportPolicy: "relay"}`), injected WebRTC for tests. */
  calls?: CallOptions;
}

/** What `client.addListener()` takes; every member is optional. */
export interface ClientListener {
  /** `start()` succeeded. */
  onClientStarted?(client: Client): void;
  /**
   * The session ended on the server's side (revoked, expired, user disabled, application deleted): the realtime
   * connection was closed with this error and is not reopened. `onClientStopped` follows.
   */
  onClientFailed?(client: Client, error: CallboxError): void;
  /** The client stopped: `error` is null after `terminate()`, else why the server ended the session. */
  onClientStopped?(client: Client, error: CallboxError | null): void;
  /** The realtime connection's state changed. */
  onConnectionStateChanged?(client: Client, state: ConnectionState): void;
}

/** A session that `start()` can resume from, as `getSession()` returns it. */
export interface SavedSession {
  userId: string;
  sessionId: string;
  sessionSecret: string;
}

/** A legacy user ticket, as your backend answers it: `{"userTicket": "..."}`. */
export interface UserTicket {
  userTicket: string;
}

/** A registration JWT (PROTOCOL §3). */
export interface JwtCredential {
  jwt: string;
}

/** Username (or email, or number) and password of a platform-managed user. */
export type PasswordCredential =
  | { username: string; password: string }
  | { email: string; password: string }
  | { number: string; password: string };

/** What a credentials provider may resolve to. */
export type Ticket = UserTicket | JwtCredential | string;

/** A function that fetches a fresh ticket from your backend; used again to refresh the session before expiry. */
export type CredentialsProvider = () => Promise<Ticket> | Ticket;

/** Everything `start()` accepts. */
export type StartCredentials = Ticket | PasswordCredential | SavedSession | CredentialsProvider;

/** A Promise that also has `.fail()` (an alias of `.catch()`), as the legacy SDK's promises do. */
export class CallboxPromise<T> extends Promise<T> {
  // `then`, `catch` and `finally` already return a CallboxPromise at run time (the species is the subclass);
  // these signatures say so, so that `send(m).then(ok).fail(err)` type-checks as legacy code writes it.
  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: any) => R2 | PromiseLike<R2>) | null,
  ): CallboxPromise<R1 | R2> {
    return super.then(onFulfilled, onRejected) as CallboxPromise<R1 | R2>;
  }

  catch<R = never>(onRejected?: ((reason: any) => R | PromiseLike<R>) | null): CallboxPromise<T | R> {
    return super.catch(onRejected) as CallboxPromise<T | R>;
  }

  finally(onFinally?: (() => void) | null): CallboxPromise<T> {
    return super.finally(onFinally) as CallboxPromise<T>;
  }

  /** Same as `.catch()`. */
  fail<R = never>(onRejected?: ((reason: any) => R | PromiseLike<R>) | null): CallboxPromise<T | R> {
    return this.catch(onRejected) as CallboxPromise<T | R>;
  }

  static from<T>(promise: PromiseLike<T>): CallboxPromise<T> {
    return new CallboxPromise<T>((resolve, reject) => {
      promise.then(resolve, reject);
    });
  }
}

/** The HTTP answer that an error came from. */
export interface ErrorResponse {
  status: number;
  body: unknown;
}

/**
 * Every failure of the SDK. `code` is the PROTOCOL §7 `errorCode` (0 when no answer came), `reason` its stable
 * snake_case word, `retryable` whether trying again may help, `response` the HTTP answer when there was one.
 */
export class CallboxError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly retryable: boolean;
  readonly response: ErrorResponse | null;
  /** Seconds to wait, for `locked_out` and `rate_limited`. */
  readonly retryAfter: number | null;
  /** The server's clock when it refused, when it said. */
  readonly serverTime: string | null;

  constructor(
    code: number,
    reason: string,
    message: string,
    retryable = false,
    response: ErrorResponse | null = null,
    retryAfter: number | null = null,
    serverTime: string | null = null,
  ) {
    super(message);
    this.name = "CallboxError";
    this.code = code;
    this.reason = reason;
    this.retryable = retryable;
    this.response = response;
    this.retryAfter = retryAfter;
    this.serverTime = serverTime;
  }
}

const LOCAL_CODES: Record<string, number> = {
  not_started: 40100,
  capability_not_granted: 40300,
  invalid_argument: 40000,
  network_error: 0,
  malformed_response: 50000,
};

function localError(reason: string, message: string, retryable = false): CallboxError {
  return new CallboxError(LOCAL_CODES[reason] ?? 0, reason, message, retryable);
}

/** Maps an HTTP answer that is not a success to a `CallboxError` (PROTOCOL §7). */
export function errorFromResponse(status: number, body: unknown, retryAfterHeader?: string | null): CallboxError {
  const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
  const code = typeof b.errorCode === "number" ? b.errorCode : status * 100;
  const reason = typeof b.reason === "string" ? b.reason : reasonForStatus(status);
  const message = typeof b.message === "string" ? b.message : `Callbox answered HTTP ${status}`;
  const retryable = typeof b.retryable === "boolean" ? b.retryable : status === 429 || status >= 500;
  let retryAfter: number | null = typeof b.retryAfter === "number" ? b.retryAfter : null;
  if (retryAfter === null && retryAfterHeader) {
    const n = Number(retryAfterHeader);
    if (Number.isFinite(n)) retryAfter = n;
  }
  const serverTime = typeof b.serverTime === "string" ? b.serverTime : null;
  return new CallboxError(code, reason, message, retryable, { status, body }, retryAfter, serverTime);
}

function reasonForStatus(status: number): string {
  switch (status) {
    case 400:
      return "malformed_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 429:
      return "rate_limited";
    case 503:
      return "service_unavailable";
    default:
      return status >= 500 ? "internal_error" : "http_error";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Signing (PROTOCOL §4)

function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin);
}

/** `base64(MD5(UTF-8 body))`, or `""` for an empty body. */
export function contentMd5(body: string): string {
  if (body === "") return "";
  const bytes = new TextEncoder().encode(body);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return btoa(SparkMD5.ArrayBuffer.hash(buffer, true));
}

/** The StringToSign of PROTOCOL §4. */
export function stringToSign(
  method: string,
  md5: string,
  contentType: string,
  timestamp: string,
  path: string,
): string {
  return `${method.toUpperCase()}\n${md5}\n${contentType}\nx-timestamp:${timestamp}\n${path}`;
}

/** `base64(HMAC-SHA256(base64decode(secret), UTF-8 message))` with WebCrypto. */
export async function hmacSha256Base64(secretBase64: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    base64ToBytes(secretBase64) as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message) as BufferSource);
  return bytesToBase64(new Uint8Array(mac));
}

/**
 * The signature of a realtime `auth` frame (docs/realtime.md): PROTOCOL §4 over
 * `GET`, empty Content-MD5 and Content-Type, the timestamp, and the path `/v1/realtime/{nonce}`.
 */
export function signRealtimeAuth(secretBase64: string, nonce: string, timestamp: string): Promise<string> {
  return hmacSha256Base64(secretBase64, stringToSign("GET", "", "", timestamp, `/v1/realtime/${nonce}`));
}

/** What a signed request carries, for the given parts. */
export interface SignedHeaders {
  contentMd5: string;
  signature: string;
}

/** Signs a request per PROTOCOL §4. `path` is the URL path including `/v1`, without the query. */
export async function signRequest(
  secretBase64: string,
  method: string,
  path: string,
  body: string,
  contentType: string,
  timestamp: string,
): Promise<SignedHeaders> {
  const md5 = contentMd5(body);
  const signature = await hmacSha256Base64(secretBase64, stringToSign(method, md5, contentType, timestamp, path));
  return { contentMd5: md5, signature };
}

/** ISO-8601 UTC to the second, as `X-Timestamp` wants it. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

// ---------------------------------------------------------------------------------------------------------------
// Credentials

type Exchange = { scheme: "User" | "Bearer"; credential: string };

function isFunction(x: unknown): x is CredentialsProvider {
  return typeof x === "function";
}

function isSaved(x: unknown): x is SavedSession {
  const o = x as Record<string, unknown>;
  return !!o && typeof o === "object" && typeof o.sessionId === "string" && typeof o.sessionSecret === "string";
}

function passwordIdentity(x: unknown): { type: string; endpoint: string; password: string } | null {
  const o = x as Record<string, unknown>;
  if (!o || typeof o !== "object" || typeof o.password !== "string") return null;
  for (const type of ["username", "email", "number"]) {
    if (typeof o[type] === "string") return { type, endpoint: o[type] as string, password: o.password };
  }
  return null;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function ticketExchange(x: unknown): Exchange | null {
  if (typeof x === "string") {
    const s = x.trim();
    if (JWT_SHAPE.test(s)) return { scheme: "Bearer", credential: s };
    if (s.includes(":")) return { scheme: "User", credential: s };
    return null;
  }
  const o = x as Record<string, unknown>;
  if (!o || typeof o !== "object") return null;
  if (typeof o.userTicket === "string") return { scheme: "User", credential: o.userTicket };
  if (typeof o.jwt === "string") return { scheme: "Bearer", credential: o.jwt };
  // The platform's own answer to a sign-up or login.
  if (typeof o.authorization === "string") return { scheme: "User", credential: o.authorization };
  return null;
}

function servicesFor(capabilities: Capabilities): Record<string, boolean> {
  const services: Record<string, boolean> = {};
  if (capabilities.messaging) services.im = true;
  if (capabilities.calling) services.calling = true;
  if (capabilities.video) services.video = true;
  return services;
}

interface Session {
  userId: string;
  sessionId: string;
  sessionSecret: string;
  capabilities: string[];
  /** Local clock, ms. */
  expiresAt: number;
}

/** Answer of a signed call. */
export interface CallResult<T = unknown> {
  status: number;
  body: T;
}

// ---------------------------------------------------------------------------------------------------------------
// The realtime connection (docs/realtime.md): one authenticated WebSocket per client, shared by every feature
// that rides on it (messaging now, calls next). Features register handlers by frame `type` and send frames or
// requests (a frame whose answer carries the same `ref`); the connection owns authentication, heartbeats,
// reconnecting with backoff and the resume cursor.

/**
 * The part of the browser's `WebSocket` the SDK uses; the `ws` package's class has it too. (Handlers take `any`
 * so that both classes, whose event types differ, fit.)
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A `WebSocket` constructor (the browser's by default). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Tuning of the realtime connection; the defaults suit browsers. */
export interface RealtimeOptions {
  /** The WebSocket class to use (default the global `WebSocket`); for Node and tests. */
  WebSocket?: WebSocketConstructor;
  /** A connection that sends no frame for this long is taken for dead and replaced (default 35000 ms). */
  deadAfterMs?: number;
  /** First reconnect delay (default 500 ms); it doubles with each failed attempt, with jitter. */
  backoffInitialMs?: number;
  /** Ceiling of the reconnect delay (default 30000 ms). */
  backoffMaxMs?: number;
  /** A request (such as a message send) not answered within this time fails with `timeout` (default 30000 ms). */
  requestTimeoutMs?: number;
}

/**
 * `idle` before the first connection, `connecting` until the server said `ready`, `connected`, `reconnecting`
 * after a connection was lost (waiting out the backoff or connecting again), `stopped` for good.
 */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "stopped";

/** One frame of the realtime connection: a JSON object with a `type`. */
export interface Frame {
  type: string;
  [field: string]: unknown;
}

/** The `ready` frame: what the server granted this connection. */
export interface ReadyFrame extends Frame {
  type: "ready";
  sessionId: string;
  userId: string;
  capabilities: string[];
  expiresAt: string;
  heartbeatSeconds: number;
  /** The highest sequence number in this user's inbox when the connection opened. */
  lastSeq?: number;
  limits: Record<string, number>;
}

/** What the connection needs from the client that owns it. */
interface RealtimeHooks {
  url: string;
  WebSocket: WebSocketConstructor;
  /** The signed `auth` frame answering a challenge's nonce. */
  authFrame(nonce: string, resumeAfter: number | null): Promise<Frame>;
  log(level: LogMessage["level"], message: string): void;
  stateChanged(state: ConnectionState): void;
  /**
   * The server refused or ended the session on this connection (close code 4401 or 4403). Resolves to true when
   * the client mended it (clock resynchronized, session refreshed) and the connection should try again.
   */
  refused(error: CallboxError): Promise<boolean>;
  /** The connection stopped for good after `refused` said not to try again. */
  ended(error: CallboxError): void;
}

/**
 * Refusals after which connecting again can only fail the same way: the session ended (docs/realtime.md §5), or
 * this page may not use the application (its origin is not allowed).
 */
const FINAL_REFUSALS = new Set([
  "session_revoked",
  "session_expired",
  "user_disabled",
  "unknown_application",
  "origin_not_allowed",
  "capability_not_granted",
  "unauthorized",
  "forbidden",
]);

/** A WebSocket close code of the 4000 + HTTP status family, as a §7 error code (4401 → 40100). */
function errorCodeForClose(code: number): number {
  return code >= 4000 && code < 5000 ? (code - 4000) * 100 : 0;
}

/** An `error` frame (a §7 body with `type` and maybe `ref`) as a `CallboxError`. */
export function errorFromFrame(frame: Record<string, unknown>): CallboxError {
  const code = typeof frame.errorCode === "number" ? frame.errorCode : 0;
  const reason = typeof frame.reason === "string" ? frame.reason : "unknown_error";
  const message = typeof frame.message === "string" ? frame.message : `Callbox refused: ${reason}`;
  const retryable = typeof frame.retryable === "boolean" ? frame.retryable : reason === "rate_limited";
  const retryAfter = typeof frame.retryAfter === "number" ? frame.retryAfter : null;
  const serverTime = typeof frame.serverTime === "string" ? frame.serverTime : null;
  return new CallboxError(code, reason, message, retryable, null, retryAfter, serverTime);
}

function connectionLost(): CallboxError {
  return new CallboxError(0, "connection_lost", "the realtime connection was lost before Callbox answered", true);
}

/** How many requests may wait for a connection; more fail at once with `queue_full` (memory stays bounded). */
const MAX_QUEUED = 1000;

function stoppedError(): CallboxError {
  return localError("not_started", "the realtime connection is stopped: start() the client first");
}

/** Timers must not keep a Node process alive (browsers have no `unref`). */
function unrefTimer<T>(timer: T): T {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

interface PendingRequest {
  frame: Frame;
  sent: boolean;
  /** Also settles the request: a frame without its `ref` that answers it (see `RequestHooks.settledBy`). */
  settledBy?: (frame: Frame) => boolean;
  resolve: (frame: Frame) => void;
  reject: (error: CallboxError) => void;
}

/** Optional extras of `RealtimeConnection.request()`. */
export interface RequestHooks {
  /**
   * Runs synchronously with the answer, before any later frame is dispatched (a promise continuation runs too
   * late when the server sends the answer and the next frame back to back, e.g. `call.placed` then
   * `call.progress`).
   */
  onAnswer?: (frame: Frame) => void;
  /**
   * A frame that answers the request without echoing its `ref` (e.g. `call.answered` after `call.answer`, which
   * docs/calls.md does not list with a `ref`): it settles the request too, and is still dispatched.
   */
  settledBy?: (frame: Frame) => boolean;
}

const OPEN = 1;

/**
 * The realtime connection of one client. Created by the client; features reach it through `on()`, `send()` and
 * `request()`. Exported for the types; applications do not construct it.
 */
export class RealtimeConnection {
  readonly #hooks: RealtimeHooks;
  readonly #deadAfterMs: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #requestTimeoutMs: number;
  readonly #handlers = new Map<string, Set<(frame: Frame) => void>>();
  /** Requests by ref, in the order they were made (a Map keeps insertion order: the queue is flushed in it). */
  readonly #pending = new Map<string, PendingRequest>();
  #state: ConnectionState = "idle";
  #socket: WebSocketLike | null = null;
  #ready: ReadyFrame | null = null;
  #readyAt = 0;
  /** The highest `seq` handled: the `resumeAfter` of the next connection. */
  #cursor = 0;
  #attempt = 0;
  #refCounter = 0;
  /** The last `error` frame without a `ref`: it says why the server is about to close. */
  #lastError: Frame | null = null;
  #deadTimer: ReturnType<typeof setTimeout> | null = null;
  #pingTimer: ReturnType<typeof setInterval> | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #lastReceived = 0;

  /** @internal */
  constructor(hooks: RealtimeHooks, options: RealtimeOptions = {}) {
    this.#hooks = hooks;
    this.#deadAfterMs = options.deadAfterMs ?? 35000;
    this.#backoffInitialMs = options.backoffInitialMs ?? 500;
    this.#backoffMaxMs = options.backoffMaxMs ?? 30000;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30000;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** What the server said in `ready` on the current connection, or null while not connected. */
  get ready(): ReadyFrame | null {
    return this.#ready;
  }

  /** The highest delivery sequence number handled so far (0 for none). */
  get cursor(): number {
    return this.#cursor;
  }

  /** Calls `handler` with every frame of this `type`; returns the function that unsubscribes it. */
  on(type: string, handler: (frame: Frame) => void): () => void {
    let set = this.#handlers.get(type);
    if (!set) {
      set = new Set();
      this.#handlers.set(type, set);
    }
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  /** Sends a frame on the authenticated connection; false (nothing sent) while not connected. */
  send(frame: Frame): boolean {
    const socket = this.#socket;
    if (this.#state !== "connected" || !socket || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends a frame with a fresh `ref` and resolves to the server's answer carrying that `ref` (an `error` answer
   * rejects with its `CallboxError`). Made while not connected, it waits for the next connection; a connection
   * lost after it was sent rejects it with the retryable `connection_lost` (it may or may not have been taken).
   */
  request(frame: Frame, hooks: RequestHooks = {}): Promise<Frame> {
    if (this.#state === "stopped" || this.#state === "idle") return Promise.reject(stoppedError());
    let queued = 0;
    for (const pending of this.#pending.values()) if (!pending.sent) queued += 1;
    if (queued >= MAX_QUEUED) {
      const message = `${MAX_QUEUED} requests already wait for the connection`;
      return Promise.reject(new CallboxError(0, "queue_full", message, true));
    }
    const ref = `r${++this.#refCounter}`;
    const withRef = { ...frame, ref };
    return new Promise<Frame>((resolve, reject) => {
      const timer = unrefTimer(
        setTimeout(() => {
          if (this.#pending.get(ref) !== pending) return;
          this.#pending.delete(ref);
          const message = pending.sent
            ? "Callbox did not answer in time (the request may or may not have been taken)"
            : "no connection to send the request on in time";
          reject(new CallboxError(0, "timeout", message, true));
        }, this.#requestTimeoutMs),
      );
      const pending: PendingRequest = {
        frame: withRef,
        sent: false,
        settledBy: hooks.settledBy,
        resolve: (answer) => {
          clearTimeout(timer);
          if (hooks.onAnswer) {
            try {
              hooks.onAnswer(answer);
            } catch {
              this.#hooks.log("error", `realtime: the ${answer.type} answer handler threw`);
            }
          }
          resolve(answer);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#pending.set(ref, pending);
      if (this.send(withRef)) pending.sent = true;
    });
  }

  /** Opens the connection (again, from a fresh cursor) for a new session. */
  open(): void {
    this.#stopQuietly(stoppedError());
    this.#cursor = 0;
    this.#attempt = 0;
    this.#setState("connecting");
    this.#connect();
  }

  /** Closes the connection for good; requests not answered yet are rejected. */
  stop(): void {
    this.#stopQuietly(stoppedError());
  }

  // -- internals --------------------------------------------------------------------------------------------

  #stopQuietly(error: CallboxError): void {
    const wasRunning = this.#state !== "idle" && this.#state !== "stopped";
    this.#clearTimers();
    if (this.#retryTimer !== null) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    const socket = this.#detach();
    if (socket) {
      try {
        socket.close(1000, "terminated");
      } catch {
        // Already closing.
      }
    }
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    if (wasRunning) this.#setState("stopped");
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#hooks.stateChanged(state);
  }

  #connect(): void {
    this.#retryTimer = null;
    this.#ready = null;
    this.#lastError = null;
    let socket: WebSocketLike;
    try {
      socket = new this.#hooks.WebSocket(this.#hooks.url);
    } catch {
      this.#hooks.log("warn", "realtime: could not open a WebSocket");
      this.#scheduleReconnect(0);
      return;
    }
    this.#socket = socket;
    this.#lastReceived = Date.now();
    this.#armDeadTimer();
    socket.onmessage = (event: { data: unknown }) => {
      if (this.#socket === socket) this.#receive(event.data);
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.#socket === socket) this.#closed(event.code, event.reason);
    };
    socket.onerror = () => {
      // A close event follows; it decides what happens next.
    };
  }

  /** Forgets the current socket (its late events are ignored from now on). */
  #detach(): WebSocketLike | null {
    const socket = this.#socket;
    this.#socket = null;
    this.#ready = null;
    if (socket) {
      socket.onmessage = null;
      socket.onclose = null;
      socket.onopen = null;
      // Not null: Node's `ws` throws an error event nobody listens to (closing a socket still connecting).
      socket.onerror = () => {};
    }
    return socket;
  }

  #clearTimers(): void {
    if (this.#deadTimer !== null) {
      clearTimeout(this.#deadTimer);
      this.#deadTimer = null;
    }
    if (this.#pingTimer !== null) {
      clearInterval(this.#pingTimer);
      this.#pingTimer = null;
    }
  }

  #armDeadTimer(): void {
    if (this.#deadTimer !== null) clearTimeout(this.#deadTimer);
    this.#deadTimer = unrefTimer(
      setTimeout(() => {
        this.#deadTimer = null;
        this.#hooks.log("warn", `realtime: no frame for ${this.#deadAfterMs} ms, connecting again`);
        const socket = this.#socket;
        if (socket) {
          // A dead peer may never complete the closing handshake: do not wait for the close event.
          this.#detach();
          try {
            socket.close(4408, "heartbeat_timeout");
          } catch {
            // Never opened.
          }
        }
        this.#closed(1006, "heartbeat_timeout");
      }, this.#deadAfterMs),
    );
  }

  #receive(data: unknown): void {
    this.#lastReceived = Date.now();
    this.#armDeadTimer();
    if (typeof data !== "string") {
      this.#hooks.log("warn", "realtime: ignored a binary frame");
      return;
    }
    let frame: Frame;
    try {
      frame = JSON.parse(data) as Frame;
    } catch {
      this.#hooks.log("warn", "realtime: ignored a frame that is not JSON");
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") {
      this.#hooks.log("warn", "realtime: ignored a frame without a type");
      return;
    }
    // Only an error frame right before a close says why the server closed.
    if (frame.type !== "error") this.#lastError = null;
    switch (frame.type) {
      case "ping":
        this.#sendRaw({ type: "pong" });
        return;
      case "pong":
        return;
      case "challenge":
        this.#authenticate(frame);
        return;
      case "ready":
        this.#becomeReady(frame as ReadyFrame);
        break;
      case "error":
        if (this.#answer(frame)) return;
        this.#lastError = frame;
        this.#hooks.log("warn", `realtime: the server said ${String(frame.reason)}`);
        break;
      default:
        if (this.#answer(frame)) return;
        this.#settleBy(frame);
    }
    this.#dispatch(frame);
  }

  /** Settles the requests that this frame answers without their `ref` (`RequestHooks.settledBy`). */
  #settleBy(frame: Frame): void {
    for (const [ref, pending] of this.#pending) {
      if (!pending.sent || !pending.settledBy) continue;
      let matches = false;
      try {
        matches = pending.settledBy(frame);
      } catch {
        matches = false;
      }
      if (matches) {
        this.#pending.delete(ref);
        pending.resolve(frame);
      }
    }
  }

  /** Settles the request this frame answers, if it carries a known `ref`. */
  #answer(frame: Frame): boolean {
    if (typeof frame.ref !== "string") return false;
    const pending = this.#pending.get(frame.ref);
    if (!pending) return false;
    this.#pending.delete(frame.ref);
    if (frame.type === "error") pending.reject(errorFromFrame(frame));
    else pending.resolve(frame);
    return true;
  }

  #dispatch(frame: Frame): void {
    const handlers = this.#handlers.get(frame.type);
    if (handlers) {
      for (const handler of [...handlers]) {
        try {
          handler(frame);
        } catch {
          this.#hooks.log("error", `realtime: a ${frame.type} handler threw`);
        }
      }
    }
    // Advanced only after the handlers saw it: a frame is not resumed past before it was handled.
    if (typeof frame.seq === "number" && frame.seq > this.#cursor) this.#cursor = frame.seq;
  }

  #sendRaw(frame: Frame): void {
    const socket = this.#socket;
    if (socket && socket.readyState === OPEN) socket.send(JSON.stringify(frame));
  }

  #authenticate(challenge: Frame): void {
    const socket = this.#socket;
    const nonce = challenge.nonce;
    if (typeof nonce !== "string" || nonce === "") {
      this.#hooks.log("warn", "realtime: a challenge without a nonce");
      return;
    }
    this.#hooks
      .authFrame(nonce, this.#cursor > 0 ? this.#cursor : null)
      .then((auth) => {
        if (this.#socket === socket) this.#sendRaw(auth);
      })
      .catch(() => {
        this.#hooks.log("error", "realtime: could not sign the auth frame");
        if (this.#socket === socket) socket?.close(1000, "no_session");
      });
  }

  #becomeReady(ready: ReadyFrame): void {
    this.#ready = ready;
    this.#readyAt = Date.now();
    this.#hooks.log("info", "realtime: connected");
    this.#setState("connected");
    const heartbeatMs = 1000 * (typeof ready.heartbeatSeconds === "number" ? ready.heartbeatSeconds : 15);
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    // The server pings too; a ping of our own after a quiet spell makes a half-open connection show itself.
    this.#pingTimer = unrefTimer(
      setInterval(() => {
        if (Date.now() - this.#lastReceived >= heartbeatMs) this.#sendRaw({ type: "ping" });
      }, heartbeatMs),
    );
    for (const pending of this.#pending.values()) {
      if (!pending.sent && this.send(pending.frame)) pending.sent = true;
    }
  }

  #closed(code: number, reason: string): void {
    const wasReady = this.#ready !== null;
    const readyFor = wasReady ? Date.now() - this.#readyAt : 0;
    this.#clearTimers();
    this.#detach();
    // What was sent may or may not have been taken; what was still queued goes out on the next connection.
    for (const [ref, pending] of this.#pending) {
      if (pending.sent) {
        this.#pending.delete(ref);
        pending.reject(connectionLost());
      }
    }
    if (this.#state === "stopped" || this.#state === "idle") return;
    // A connection that held for a while starts the backoff over; one that keeps failing backs off further.
    if (readyFor >= 10000) this.#attempt = 0;
    const last = this.#lastError;
    this.#lastError = null;
    if (code === 4401 || code === 4403) {
      const error =
        last && (last.reason === reason || !reason)
          ? errorFromFrame(last)
          : new CallboxError(errorCodeForClose(code), reason || "unauthorized", `the connection was closed: ${reason}`);
      this.#hooks.log("warn", `realtime: closed with ${code} ${error.reason}`);
      this.#setState("reconnecting");
      this.#hooks.refused(error).then(
        (again) => {
          if (this.#state !== "reconnecting" || this.#socket !== null || this.#retryTimer !== null) return;
          if (again) {
            this.#scheduleReconnect(0);
          } else {
            this.#stopQuietly(error);
            this.#hooks.ended(error);
          }
        },
        () => {
          this.#stopQuietly(error);
          this.#hooks.ended(error);
        },
      );
      return;
    }
    this.#hooks.log("info", `realtime: closed with ${code}${reason ? ` ${reason}` : ""}, connecting again`);
    const retryAfter = last && typeof last.retryAfter === "number" ? last.retryAfter * 1000 : 0;
    this.#setState("reconnecting");
    this.#scheduleReconnect(retryAfter);
  }

  #scheduleReconnect(atLeastMs: number): void {
    const base = Math.min(this.#backoffMaxMs, this.#backoffInitialMs * 2 ** this.#attempt);
    this.#attempt += 1;
    // Half fixed, half random: clients dropped together by a restart do not come back together.
    const delay = Math.max(atLeastMs, base / 2 + (Math.random() * base) / 2);
    this.#hooks.log("debug", `realtime: reconnecting in ${Math.round(delay)} ms`);
    this.#retryTimer = unrefTimer(setTimeout(() => this.#connect(), delay));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Messaging (docs/realtime.md, capability `messaging`)

/** Small JSON headers of a message. */
export type MessageHeaders = Record<string, unknown>;

/** A message: made by `newMessage()` to send, or received. */
export class Message {
  /** Callbox's id: set once Callbox accepted the message (null before). */
  messageId: string | null;
  senderId: string;
  recipientIds: string[];
  textBody: string;
  headers: MessageHeaders;
  /** Callbox's time for the message (the local time of `newMessage()` until accepted). */
  timestamp: Date;

  /** @internal */
  constructor(
    messageId: string | null,
    senderId: string,
    recipientIds: string[],
    textBody: string,
    headers: MessageHeaders,
    timestamp: Date,
  ) {
    this.messageId = messageId;
    this.senderId = senderId;
    this.recipientIds = recipientIds;
    this.textBody = textBody;
    this.headers = headers;
    this.timestamp = timestamp;
  }
}

/** A recipient received a message (its client confirmed it). */
export interface MessageDeliveryInfo {
  messageId: string;
  recipientId: string;
  timestamp: Date;
}

/** A message could not be delivered to a recipient, e.g. `unknown_user`. */
export interface MessageFailureInfo {
  messageId: string;
  recipientId: string;
  reason: string;
  error: CallboxError;
  timestamp: Date;
}

/** What `addEventListener` takes; every member is optional. */
export interface MessageClientListener {
  /** A message for this user, or one this user sent from another device. */
  onIncomingMessage?(message: Message): void;
  onMessageDelivered?(info: MessageDeliveryInfo): void;
  onMessageFailed?(info: MessageFailureInfo): void;
}

/** How many message ids (and receipts) are remembered to drop replays. */
const SEEN_LIMIT = 10000;

/**
 * How many incoming messages are held, unconfirmed, while no `onIncomingMessage` listener is registered (offline
 * messages arrive right after the connection opens, maybe before the app added its listener). Past this they are
 * dropped unconfirmed: Callbox delivers them again on the next connection.
 */
const BACKLOG_LIMIT = 1000;

/** Remembers the last `SEEN_LIMIT` keys; true when the key was new. */
class RecentSet {
  readonly #keys = new Set<string>();

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  add(key: string): boolean {
    if (this.#keys.has(key)) return false;
    this.#keys.add(key);
    if (this.#keys.size > SEEN_LIMIT) {
      const oldest = this.#keys.values().next().value;
      if (oldest !== undefined) this.#keys.delete(oldest);
    }
    return true;
  }
}

function dateOr(text: unknown, fallback: Date): Date {
  if (typeof text !== "string") return fallback;
  const at = Date.parse(text);
  return Number.isNaN(at) ? fallback : new Date(at);
}

/** What the client lends its message client. */
interface MessagingContext {
  client: Client;
  connection: RealtimeConnection | null;
  userId(): string;
  log(level: LogMessage["level"], message: string): void;
}

/** Messaging, for a session granted the `messaging` capability; `client.getMessageClient()` returns it. */
export class MessageClient {
  readonly #context: MessagingContext;
  readonly #listeners = new Set<MessageClientListener>();
  readonly #seenMessages = new RecentSet();
  readonly #seenReceipts = new RecentSet();
  /** Messages that came while nobody listened for them, by id, in arrival order. */
  readonly #backlog = new Map<string, Frame>();

  /** @internal */
  constructor(context: MessagingContext) {
    this.#context = context;
    const connection = context.connection;
    if (connection) {
      connection.on("message", (frame) => this.#incoming(frame));
      connection.on("message.receipt", (frame) => this.#receipt(frame));
    }
  }

  /** A message to `recipients` (a user id or an array of them) with a text and optional small JSON headers. */
  newMessage(recipients: string | string[], text: string, headers?: MessageHeaders): Message {
    const ids = typeof recipients === "string" ? [recipients] : recipients;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === "string" && id !== "")) {
      throw localError("invalid_argument", "newMessage() needs a user id or a non-empty array of them");
    }
    if (typeof text !== "string") throw localError("invalid_argument", "newMessage() needs a text");
    if (headers !== undefined && (headers === null || typeof headers !== "object" || Array.isArray(headers))) {
      throw localError("invalid_argument", "newMessage() headers must be a JSON object");
    }
    return new Message(null, this.#context.userId(), [...ids], text, { ...(headers ?? {}) }, new Date());
  }

  /**
   * Sends a message; resolves to it, with `messageId` and `timestamp` set, once Callbox stored it. Sent while
   * the connection is down, it goes out when it is back (within `requestTimeoutMs`, 30 s). `.fail()` receives a
   * `CallboxError` such as `payload_too_large` (text, headers, or too many recipients), `rate_limited` (with
   * `retryAfter`; the message was not taken), or the retryable `connection_lost` or `timeout` when Callbox did
   * not answer: the message may or may not have been taken, and sending it again makes a second one if it was.
   */
  send(message: Message): CallboxPromise<Message> {
    return CallboxPromise.from(
      (async () => {
        if (!(message instanceof Message)) throw localError("invalid_argument", "send() takes a newMessage()");
        const connection = this.#context.connection;
        if (!connection) throw new CallboxError(0, "realtime_unavailable", "no WebSocket in this environment", false);
        const frame: Frame = { type: "message.send", recipients: message.recipientIds, text: message.textBody };
        if (Object.keys(message.headers).length > 0) frame.headers = message.headers;
        const accepted = await connection.request(frame);
        if (typeof accepted.messageId !== "string") {
          throw localError("malformed_response", "message.accepted without a messageId");
        }
        message.messageId = accepted.messageId;
        message.timestamp = dateOr(accepted.timestamp, message.timestamp);
        // Our own message must not come back as new if the server also echoes it to this connection.
        this.#seenMessages.add(accepted.messageId);
        return message;
      })(),
    );
  }

  /** Adds a listener; the first one with `onIncomingMessage` also gets the messages that came before it. */
  addEventListener(listener: MessageClientListener): void {
    this.#listeners.add(listener);
    if (typeof listener.onIncomingMessage === "function" && this.#backlog.size > 0) {
      const held = [...this.#backlog.values()];
      this.#backlog.clear();
      for (const frame of held) this.#deliver(frame);
    }
  }

  removeEventListener(listener: MessageClientListener): void {
    this.#listeners.delete(listener);
  }

  /** The realtime configuration Callbox hands this session (`GET /v1/configuration/user`). */
  getConfiguration(): CallboxPromise<unknown> {
    return CallboxPromise.from(this.#context.client.call("GET", "/v1/configuration/user").then((r) => r.body));
  }

  #emit<K extends keyof MessageClientListener>(
    name: K,
    value: Parameters<NonNullable<MessageClientListener[K]>>[0],
  ): void {
    for (const listener of [...this.#listeners]) {
      const fn = listener[name] as ((v: typeof value) => void) | undefined;
      if (typeof fn !== "function") continue;
      try {
        fn.call(listener, value);
      } catch {
        this.#context.log("error", `messaging: ${name} threw`);
      }
    }
  }

  #incoming(frame: Frame): void {
    const messageId = frame.messageId;
    if (typeof messageId !== "string" || messageId === "") return;
    // A replay of one still held is confirmed when the held one is handed over.
    if (this.#backlog.has(messageId)) return;
    const listening = [...this.#listeners].some((l) => typeof l.onIncomingMessage === "function");
    if (listening) {
      this.#deliver(frame);
    } else if (this.#seenMessages.has(messageId)) {
      // Handed to a listener before (since removed): only confirmed again.
      this.#confirm(frame);
    } else if (this.#backlog.size < BACKLOG_LIMIT) {
      // Not confirmed until someone gets it: a page closed before it listened has it delivered again.
      this.#backlog.set(messageId, frame);
    }
  }

  #deliver(frame: Frame): void {
    const messageId = frame.messageId as string;
    const recipientIds = Array.isArray(frame.recipientIds)
      ? frame.recipientIds.filter((id): id is string => typeof id === "string")
      : [];
    const fresh = this.#seenMessages.add(messageId);
    if (fresh) {
      const isObject = frame.headers && typeof frame.headers === "object" && !Array.isArray(frame.headers);
      const headers = isObject ? frame.headers : {};
      const message = new Message(
        messageId,
        typeof frame.senderId === "string" ? frame.senderId : "",
        recipientIds,
        typeof frame.text === "string" ? frame.text : "",
        headers as MessageHeaders,
        dateOr(frame.timestamp, new Date()),
      );
      this.#emit("onIncomingMessage", message);
    }
    // Confirmed again on a replay too: the replay means the server did not get the first confirmation.
    this.#confirm(frame);
  }

  /**
   * Tells Callbox this user's client has the message. Only a recipient's copy carries the `seq` that names it in
   * the inbox; the copy of one's own message sent from another device has none and is not confirmed.
   */
  #confirm(frame: Frame): void {
    const recipientIds = Array.isArray(frame.recipientIds) ? frame.recipientIds : [];
    if (typeof frame.seq !== "number" || !recipientIds.includes(this.#context.userId())) return;
    this.#context.connection?.send({ type: "message.received", messageId: frame.messageId, seq: frame.seq });
  }

  #receipt(frame: Frame): void {
    const { messageId, recipientId, status } = frame;
    if (typeof messageId !== "string" || typeof recipientId !== "string") return;
    if (!this.#seenReceipts.add(`${status}\n${messageId}\n${recipientId}`)) return;
    const timestamp = dateOr(frame.timestamp, new Date());
    if (status === "delivered") {
      this.#emit("onMessageDelivered", { messageId, recipientId, timestamp });
    } else if (status === "failed") {
      const reason = typeof frame.reason === "string" ? frame.reason : "failed";
      const error = new CallboxError(
        typeof frame.errorCode === "number" ? frame.errorCode : 0,
        reason,
        `the message could not be delivered to ${recipientId}: ${reason}`,
      );
      this.#emit("onMessageFailed", { messageId, recipientId, reason, error, timestamp });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Calls (docs/calls.md, capability `calling`): the signaling rides the client's one realtime connection; the
// media goes browser to browser over WebRTC, directly or through the TURN relay Callbox hands out.

/**
 * Why a call ended: the cause words of docs/calls.md. `getEndCause()` and `getDetails().endCause` give these
 * words; `CallEndCause` names them in the legacy upper-case form, so `call.getEndCause() === CallEndCause.HUNG_UP`
 * reads as code written for the legacy SDK does.
 */
export type CallEndCauseWord =
  | "canceled"
  | "denied"
  | "no_answer"
  | "hung_up"
  | "failure"
  | "timeout"
  | "other_device_answered"
  | "revoked";

/** The end causes under their legacy upper-case names; each value is the docs/calls.md word. */
export const CallEndCause = Object.freeze({
  CANCELED: "canceled",
  DENIED: "denied",
  NO_ANSWER: "no_answer",
  HUNG_UP: "hung_up",
  FAILURE: "failure",
  TIMEOUT: "timeout",
  OTHER_DEVICE_ANSWERED: "other_device_answered",
  REVOKED: "revoked",
} as const);

/**
 * `initiating` (outgoing, until the callee rings), `ringing` (outgoing: the callee's device rings; incoming:
 * waiting for `answer()`), `answered` (media connecting), `established` (media flows), `ended`.
 */
export type CallState = "initiating" | "ringing" | "answered" | "established" | "ended";

/** What `call.getDetails()` answers: times, duration and why the call ended. */
export interface CallDetails {
  /** When the call started (Callbox's `startedAt` once known; before that, when `callUser()` was called). */
  startedTime: Date;
  /** When it was answered (Callbox's `answeredAt`), null if it never was. */
  answeredTime: Date | null;
  /** When media started to flow here (ICE connected), null if it never did. */
  establishedTime: Date | null;
  /** When it ended (Callbox's `endedAt` when Callbox said; else the local time), null while it goes on. */
  endedTime: Date | null;
  /** Seconds from the answer to the end, rounded (Callbox's `durationMs`); 0 for a call never answered. */
  duration: number;
  /** The same in milliseconds. */
  durationMs: number;
  /** The docs/calls.md cause word, null while the call goes on. */
  endCause: CallEndCauseWord | null;
  /** Who ended it: `caller`, `callee`, `server`, or null (ended here without Callbox saying, or not ended). */
  endedBy: string | null;
  /** Callbox's `detail`, e.g. `unavailable` with `no_answer`. */
  detail: string | null;
  /** Why it failed, when it did (a refused frame, the microphone, media that never flowed, the connection). */
  error: CallboxError | null;
}

/** What `call.addEventListener()` takes; every member is optional. */
export interface CallListener {
  /** Outgoing: the callee's device rings. */
  onCallProgressing?(call: Call): void;
  /** The call was answered and media flows (ICE connected). */
  onCallEstablished?(call: Call): void;
  /** The call ended: see `getEndCause()` and `getDetails()`. */
  onCallEnded?(call: Call): void;
}

/** What `callClient.addEventListener()` takes. */
export interface CallClientListener {
  /** A call for this user rings on this device; `call.answer()` or `call.hangup()` (declines) it. */
  onIncomingCall?(call: Call): void;
}

/** Small JSON headers of a call (`call.start`'s `headers`). */
export type CallHeaders = Record<string, unknown>;

/**
 * The part of `RTCPeerConnection` the SDK uses; the browser's class has it. Tests inject a fake through
 * `CallOptions.createPeerConnection` (Node has no WebRTC).
 */
export interface PeerConnectionLike {
  readonly connectionState?: string;
  readonly iceConnectionState?: string;
  readonly localDescription: { type: string; sdp: string } | null;
  onicecandidate: ((event: any) => void) | null;
  ontrack: ((event: any) => void) | null;
  onconnectionstatechange: ((event: any) => void) | null;
  oniceconnectionstatechange: ((event: any) => void) | null;
  addTrack(track: any, ...streams: any[]): unknown;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  createAnswer(): Promise<{ type: string; sdp?: string }>;
  setLocalDescription(description: { type: string; sdp?: string }): Promise<void>;
  setRemoteDescription(description: { type: string; sdp: string }): Promise<void>;
  addIceCandidate(candidate: RTCIceCandidateInit): Promise<void>;
  getStats?(): Promise<any>;
  close(): void;
}

/** The media stream the SDK needs from `getUserMedia`: its tracks (each with `enabled` and `stop()`). */
export interface MediaStreamLike {
  getTracks(): { kind: string; enabled: boolean; stop(): void }[];
}

/** Calling options of `new Client({calls})`; the defaults suit browsers. */
export interface CallOptions {
  /**
   * Extra `RTCConfiguration` for every call's peer connection, e.g. `{iceTransportPolicy: "relay"}` to force
   * media through TURN. An object is merged over the configuration built from Callbox's `iceServers` (its own
   * `iceServers` are added after Callbox's); a function receives that configuration and returns the one to use.
   */
  rtcConfiguration?: RTCConfiguration | ((fromCallbox: RTCConfiguration) => RTCConfiguration);
  /** Makes a peer connection (default `new RTCPeerConnection(configuration)`); for tests. */
  createPeerConnection?: (configuration: RTCConfiguration) => PeerConnectionLike;
  /** Opens the microphone (default `navigator.mediaDevices.getUserMedia`); for tests. */
  getUserMedia?: (constraints: MediaStreamConstraints) => Promise<MediaStreamLike>;
  /**
   * An answered call whose media does not flow within this time (ICE not connected, or disconnected this long)
   * is hung up with cause `failure` (default 20000 ms).
   */
  mediaTimeoutMs?: number;
  /** How long `hangup()` waits for Callbox's `call.ended` before ending the call here anyway (default 3000 ms). */
  hangupWaitMs?: number;
}

/** What the client lends its call client. */
interface CallingContext {
  connection: RealtimeConnection | null;
  options: CallOptions;
  userId(): string;
  /** The session's `GET /v1/configuration/user` (signed). */
  configuration(): Promise<unknown>;
  log(level: LogMessage["level"], message: string): void;
}

/** How many remote candidates are held for a call whose remote description is not set yet. */
const MAX_HELD_CANDIDATES = 200;

function callError(reason: string, message: string, retryable = false): CallboxError {
  return new CallboxError(LOCAL_CODES[reason] ?? 0, reason, message, retryable);
}

/** The error of a microphone that could not be opened; it names the microphone and the browser's reason. */
function microphoneError(error: unknown): CallboxError {
  const name = error && typeof error === "object" && typeof (error as { name?: unknown }).name === "string"
    ? (error as { name: string }).name
    : "Error";
  const why: Record<string, string> = {
    NotAllowedError: "access to the microphone was refused (by the user or the browser's settings)",
    SecurityError: "the page may not use the microphone",
    NotFoundError: "no microphone was found",
    NotReadableError: "the microphone is in use by another application or could not be read",
    OverconstrainedError: "no microphone fits the constraints",
  };
  return callError("microphone_unavailable", `the microphone could not be opened: ${why[name] ?? name} (${name})`);
}

/** One call, outgoing (`callClient.callUser()`) or incoming (`onIncomingCall`). */
export class Call {
  /** Callbox's call id (a UUIDv7): null for an outgoing call until Callbox placed it. */
  callId: string | null = null;
  /** The caller's user id. */
  readonly fromId: string;
  /** The callee's user id. */
  readonly toId: string;
  readonly direction: "incoming" | "outgoing";
  /** The caller's `headers` (an outgoing call: the ones given to `callUser()`). */
  readonly headers: CallHeaders;
  /** The remote side's audio, once it arrived (set it as an `<audio>` element's `srcObject`). */
  incomingStream: MediaStream | null = null;
  /**
   * `URL.createObjectURL(incomingStream)` where the browser still allows it (legacy pages set it as `src`).
   * Current browsers removed object URLs of a MediaStream: there it stays null; use `incomingStream` as
   * `srcObject` instead.
   */
  incomingStreamURL: string | null = null;
  /** This side's microphone stream, once opened. */
  outgoingStream: MediaStreamLike | null = null;
  /** The WebRTC peer connection (for `getStats()`), once made. */
  peerConnection: PeerConnectionLike | null = null;

  /** @internal */ _state: CallState;
  /** @internal */ _started: Date;
  /** @internal */ _answered: Date | null = null;
  /** @internal */ _established: Date | null = null;
  /** @internal */ _ended: Date | null = null;
  /** @internal */ _durationMs = 0;
  /** @internal */ _cause: CallEndCauseWord | null = null;
  /** @internal */ _endedBy: string | null = null;
  /** @internal */ _detail: string | null = null;
  /** @internal */ _error: CallboxError | null = null;
  /** @internal */ _muted = false;
  readonly #listeners = new Set<CallListener>();
  readonly #owner: CallClient;

  /** @internal */
  constructor(
    owner: CallClient,
    direction: "incoming" | "outgoing",
    fromId: string,
    toId: string,
    headers: CallHeaders,
    started: Date,
  ) {
    this.#owner = owner;
    this.direction = direction;
    this.fromId = fromId;
    this.toId = toId;
    this.headers = headers;
    this._started = started;
    this._state = direction === "outgoing" ? "initiating" : "ringing";
  }

  /** Where the call is: `initiating`, `ringing`, `answered`, `established` or `ended`. */
  get state(): CallState {
    return this._state;
  }

  /** Whether `mute()` is in force. */
  get muted(): boolean {
    return this._muted;
  }

  addEventListener(listener: CallListener): void {
    this.#listeners.add(listener);
  }

  removeEventListener(listener: CallListener): void {
    this.#listeners.delete(listener);
  }

  /**
   * Answers a ringing incoming call: opens the microphone, answers the offer, and resolves once Callbox took
   * the answer. `.fail()` gets `microphone_unavailable` (the call ends with `failure`, and is declined), or
   * Callbox's refusal such as `call_already_answered` (another device was first) or `not_found` (it ended).
   */
  answer(): CallboxPromise<void> {
    return CallboxPromise.from(this.#owner._answer(this));
  }

  /**
   * Ends the call: an outgoing call not answered yet is canceled, a ringing incoming one declined, an answered
   * one hung up. Resolves once it ended (`onCallEnded` has fired).
   */
  hangup(): CallboxPromise<void> {
    return CallboxPromise.from(this.#owner._hangup(this, null));
  }

  /** Declines a ringing incoming call (as `hangup()` does for one). */
  decline(): CallboxPromise<void> {
    if (this.direction !== "incoming") {
      return CallboxPromise.from(Promise.reject(callError("invalid_argument", "only an incoming call is declined")));
    }
    return this.hangup();
  }

  /** Stops sending this side's audio (the microphone stays open; its track is disabled). */
  mute(): void {
    this._muted = true;
    this.#owner._applyMute(this);
  }

  unmute(): void {
    this._muted = false;
    this.#owner._applyMute(this);
  }

  /** The docs/calls.md cause word (compare with `CallEndCause.HUNG_UP` etc.); null while the call goes on. */
  getEndCause(): CallEndCauseWord | null {
    return this._cause;
  }

  getDetails(): CallDetails {
    return {
      startedTime: this._started,
      answeredTime: this._answered,
      establishedTime: this._established,
      endedTime: this._ended,
      duration: Math.round(this._durationMs / 1000),
      durationMs: this._durationMs,
      endCause: this._cause,
      endedBy: this._endedBy,
      detail: this._detail,
      error: this._error,
    };
  }

  /** The peer connection's statistics (`RTCPeerConnection.getStats()`); null before it exists. */
  getStats(): CallboxPromise<RTCStatsReport | null> {
    const pc = this.peerConnection;
    return CallboxPromise.from(pc && pc.getStats ? pc.getStats() : Promise.resolve(null));
  }

  /** @internal */
  _emit(name: keyof CallListener, log: (level: LogMessage["level"], message: string) => void): void {
    for (const listener of [...this.#listeners]) {
      const fn = listener[name];
      if (typeof fn !== "function") continue;
      try {
        fn.call(listener, this);
      } catch {
        log("error", `calls: ${name} threw`);
      }
    }
  }
}

/** What the call client keeps of a call besides the `Call` the app sees. */
interface CallRecord {
  call: Call;
  /** The remote offer of an incoming call. */
  offer: string | null;
  pc: PeerConnectionLike | null;
  /** Remote candidates waiting for the remote description. */
  remoteCandidates: RTCIceCandidateInit[];
  remoteDescriptionSet: boolean;
  /** Local candidates waiting until they may go (callId known; callee: answer taken; connection up). */
  localCandidates: RTCIceCandidateInit[];
  /** Whether local candidates may be sent (the caller once placed, the callee once its answer was taken). */
  mayTrickle: boolean;
  /** `hangup()` was asked for before Callbox placed the call. */
  hangupAsked: boolean;
  /** Media timer: answered but not connected, or disconnected. */
  mediaTimer: ReturnType<typeof setTimeout> | null;
  /** Set while `hangup()` waits for `call.ended`. */
  ending: Promise<void> | null;
  connected: boolean;
}

/**
 * Calls, for a session granted the `calling` capability; `client.getCallClient()` returns it. It uses the
 * client's realtime connection (no second socket) and, after a reconnect, rejoins the calls that go on.
 */
export class CallClient {
  readonly #context: CallingContext;
  readonly #listeners = new Set<CallClientListener>();
  /** Calls that go on, by Callbox's id. */
  readonly #calls = new Map<string, CallRecord>();
  /** Every record not ended, placed or not. */
  readonly #records = new Set<CallRecord>();
  /** Incoming calls that rang while nobody listened for them. */
  readonly #held: CallRecord[] = [];
  #iceServers: RTCIceServer[] | null = null;
  #iceServersUntil = 0;

  /** @internal */
  constructor(context: CallingContext) {
    this.#context = context;
    const connection = context.connection;
    if (connection) {
      connection.on("ready", () => this.#rejoinAll());
      connection.on("call.incoming", (frame) => this.#incoming(frame));
      connection.on("call.progress", (frame) => this.#progress(frame));
      connection.on("call.answered", (frame) => this.#answered(frame));
      connection.on("call.candidate", (frame) => this.#remoteCandidate(frame));
      connection.on("call.ended", (frame) => this.#endedFrame(frame));
    }
  }

  /**
   * Calls a user of this application. Returns the call at once; `onCallProgressing` fires when the callee's
   * device rings, `onCallEstablished` when media flows, `onCallEnded` at the end (a refusal, such as
   * `rate_limited` or `too_many_calls`, or a microphone that could not be opened, ends it with `failure` and the
   * error in `getDetails().error`).
   */
  callUser(userId: string, headers?: CallHeaders): Call {
    if (typeof userId !== "string" || userId === "") {
      throw callError("invalid_argument", "callUser() needs the callee's user id");
    }
    if (headers !== undefined && (headers === null || typeof headers !== "object" || Array.isArray(headers))) {
      throw callError("invalid_argument", "callUser() headers must be a JSON object");
    }
    const call = new Call(this, "outgoing", this.#context.userId(), userId, { ...(headers ?? {}) }, new Date());
    const record = this.#record(call, null);
    void this.#place(record);
    return call;
  }

  /** Adds a listener; the first one with `onIncomingCall` also gets the calls ringing since before it. */
  addEventListener(listener: CallClientListener): void {
    this.#listeners.add(listener);
    if (typeof listener.onIncomingCall === "function" && this.#held.length > 0) {
      const held = this.#held.splice(0);
      for (const record of held) if (record.call._state === "ringing") this.#emitIncoming(record.call);
    }
  }

  removeEventListener(listener: CallClientListener): void {
    this.#listeners.delete(listener);
  }

  /** The calls that go on (not ended), outgoing and incoming. */
  getCalls(): Call[] {
    return [...this.#records].map((r) => r.call);
  }

  // -- for Call -----------------------------------------------------------------------------------------------

  /** @internal */
  async _answer(call: Call): Promise<void> {
    const record = this.#recordOf(call);
    if (call.direction !== "incoming") throw callError("invalid_argument", "only an incoming call is answered");
    if (!record || call._state !== "ringing" || record.pc) {
      throw callError("invalid_argument", `the call cannot be answered now (it is ${call._state})`);
    }
    const connection = this.#context.connection;
    const callId = call.callId as string;
    let stream: MediaStreamLike;
    try {
      stream = await this.#openMicrophone(call);
    } catch (error) {
      const failure = error instanceof CallboxError ? error : microphoneError(error);
      if (call.state !== "ended") {
        // Callbox is told the call is not taken here; this side ends it with `failure`, naming the microphone.
        connection?.send({ type: "call.decline", callId });
        this.#finishLocally(record, "failure", failure);
      }
      throw failure;
    }
    try {
      const pc = await this.#peer(record);
      for (const track of stream.getTracks()) pc.addTrack(track, stream);
      await pc.setRemoteDescription({ type: "offer", sdp: record.offer ?? "" });
      await this.#remoteDescriptionSet(record);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (call._state !== "ringing") throw callError("not_found", "the call ended while it was being answered");
      if (!connection) throw callError("realtime_unavailable", "no realtime connection");
      const sdp = pc.localDescription?.sdp ?? answer.sdp ?? "";
      await connection.request(
        { type: "call.answer", callId, sdp },
        {
          settledBy: (f) => f.type === "call.answered" && f.callId === callId,
          onAnswer: (f) => this.#answered(f),
        },
      );
    } catch (error) {
      const failure = error instanceof CallboxError ? error : callError("failure", `answering failed: ${String(error)}`);
      if (call.state !== "ended") {
        // Another device was first: the call goes on there (Callbox's `call.ended` may come late, or not at all).
        const cause = failure.reason === "call_already_answered" ? "other_device_answered" : "failure";
        if (cause === "failure" && failure.reason !== "not_found") connection?.send({ type: "call.decline", callId });
        this.#finishLocally(record, cause, failure);
      }
      throw failure;
    }
  }

  /** @internal */
  async _hangup(call: Call, failure: CallboxError | null): Promise<void> {
    const record = this.#recordOf(call);
    if (!record || call._state === "ended") return;
    if (record.ending) return record.ending;
    const connection = this.#context.connection;
    const answered = call._state === "answered" || call._state === "established";
    const localCause: CallEndCauseWord = failure
      ? "failure"
      : answered
        ? "hung_up"
        : call.direction === "incoming"
          ? "denied"
          : "canceled";
    // Kept for `getDetails().error` whoever's `call.ended` ends the call.
    if (failure) call._error = failure;
    // Media stops at once; `onCallEnded` waits (a little) for Callbox's `call.ended` and its times.
    this.#stopMedia(record);
    if (call.callId === null || !connection) {
      record.hangupAsked = true;
      this.#finishLocally(record, localCause, failure);
      return;
    }
    const callId = call.callId;
    const frame: Frame =
      call.direction === "incoming" && !answered
        ? { type: "call.decline", callId }
        : failure
          ? { type: "call.hangup", callId, cause: "failure" }
          : { type: "call.hangup", callId };
    const ended = (f: Frame) => f.type === "call.ended" && f.callId === callId;
    record.ending = new Promise<void>((resolve) => {
      const timer = unrefTimer(
        setTimeout(() => {
          this.#finishLocally(record, localCause, failure);
          resolve();
        }, this.#context.options.hangupWaitMs ?? 3000),
      );
      connection
        .request(frame, { settledBy: ended, onAnswer: (f) => (ended(f) ? this.#endedFrame(f) : undefined) })
        .catch((error: unknown) => {
          // `not_found`: it had already ended (its `call.ended` was missed); anything else: end it here.
          this.#finishLocally(record, localCause, failure ?? (error instanceof CallboxError ? error : null));
        })
        .finally(() => {
          clearTimeout(timer);
          this.#finishLocally(record, localCause, failure);
          resolve();
        });
    });
    return record.ending;
  }

  /** @internal */
  _applyMute(call: Call): void {
    const stream = call.outgoingStream;
    if (!stream) return;
    for (const track of stream.getTracks()) if (track.kind === "audio") track.enabled = !call._muted;
  }

  /** The client's session ended or was terminated: every call ends here (terminate hangs them up first). */
  /** @internal */
  _shutdown(cause: CallEndCauseWord, error: CallboxError | null, hangUp: boolean): void {
    for (const record of [...this.#records]) {
      const call = record.call;
      const answered = call._state === "answered" || call._state === "established";
      if (hangUp && call.callId) {
        const frame =
          call.direction === "incoming" && !answered
            ? { type: "call.decline", callId: call.callId }
            : { type: "call.hangup", callId: call.callId };
        this.#context.connection?.send(frame);
      }
      const local: CallEndCauseWord = hangUp
        ? answered
          ? "hung_up"
          : call.direction === "incoming"
            ? "denied"
            : "canceled"
        : cause;
      this.#finishLocally(record, local, error);
    }
  }

  // -- internals ----------------------------------------------------------------------------------------------

  #record(call: Call, offer: string | null): CallRecord {
    const record: CallRecord = {
      call,
      offer,
      pc: null,
      remoteCandidates: [],
      remoteDescriptionSet: false,
      localCandidates: [],
      mayTrickle: false,
      hangupAsked: false,
      mediaTimer: null,
      ending: null,
      connected: false,
    };
    this.#records.add(record);
    if (call.callId) this.#calls.set(call.callId, record);
    return record;
  }

  #recordOf(call: Call): CallRecord | null {
    for (const record of this.#records) if (record.call === call) return record;
    return null;
  }

  async #place(record: CallRecord): Promise<void> {
    const call = record.call;
    const connection = this.#context.connection;
    try {
      if (!connection) throw callError("realtime_unavailable", "no WebSocket in this environment: no calls");
      const stream = await this.#openMicrophone(call);
      const pc = await this.#peer(record);
      for (const track of stream.getTracks()) pc.addTrack(track, stream);
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (call._state === "ended") return;
      const frame: Frame = { type: "call.start", calleeId: call.toId, sdp: pc.localDescription?.sdp ?? offer.sdp ?? "" };
      if (Object.keys(call.headers).length > 0) frame.headers = call.headers;
      await connection.request(frame, { onAnswer: (placed) => this.#placed(record, placed) });
    } catch (error) {
      if (call._state === "ended") return; // hung up meanwhile: nothing more to tell
      const failure =
        error instanceof CallboxError ? error : callError("failure", `the call could not be set up: ${String(error)}`);
      this.#context.log("warn", `calls: the call to a user failed: ${failure.reason}`);
      this.#finishLocally(record, "failure", failure);
    }
  }

  /** `call.placed`: the call has its id; a hang-up asked for meanwhile goes out now. */
  #placed(record: CallRecord, frame: Frame): void {
    if (typeof frame.callId !== "string") return;
    const call = record.call;
    if (record.hangupAsked || call._state === "ended") {
      this.#context.connection?.send({ type: "call.hangup", callId: frame.callId });
      return;
    }
    call.callId = frame.callId;
    call._started = dateOr(frame.startedAt, call._started);
    this.#calls.set(frame.callId, record);
    record.mayTrickle = true;
    this.#flushCandidates(record);
  }

  #incoming(frame: Frame): void {
    const { callId, callerId, calleeId, sdp } = frame;
    if (typeof callId !== "string" || typeof callerId !== "string" || typeof sdp !== "string") return;
    if (this.#calls.has(callId)) return;
    const headers =
      frame.headers && typeof frame.headers === "object" && !Array.isArray(frame.headers)
        ? (frame.headers as CallHeaders)
        : {};
    const call = new Call(
      this,
      "incoming",
      callerId,
      typeof calleeId === "string" ? calleeId : this.#context.userId(),
      headers,
      dateOr(frame.startedAt, new Date()),
    );
    call.callId = callId;
    const record = this.#record(call, sdp);
    const listening = [...this.#listeners].some((l) => typeof l.onIncomingCall === "function");
    if (listening) this.#emitIncoming(call);
    else this.#held.push(record);
  }

  #emitIncoming(call: Call): void {
    for (const listener of [...this.#listeners]) {
      if (typeof listener.onIncomingCall !== "function") continue;
      try {
        listener.onIncomingCall.call(listener, call);
      } catch {
        this.#context.log("error", "calls: onIncomingCall threw");
      }
    }
  }

  #progress(frame: Frame): void {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : undefined;
    if (!record || record.call.direction !== "outgoing" || record.call._state !== "initiating") return;
    record.call._state = "ringing";
    record.call._emit("onCallProgressing", this.#context.log);
  }

  /** `call.answered`: to the caller with the answer's SDP; to the answering callee, its answer was taken. */
  #answered(frame: Frame): void {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : undefined;
    if (!record) return;
    const call = record.call;
    if (call._state !== "initiating" && call._state !== "ringing") return;
    call._state = "answered";
    call._answered = dateOr(frame.answeredAt, new Date());
    this.#armMediaTimer(record);
    if (call.direction === "outgoing") {
      const pc = record.pc;
      if (!pc || typeof frame.sdp !== "string") {
        void this._hangup(call, callError("failure", "the answer came without an SDP"));
        return;
      }
      pc.setRemoteDescription({ type: "answer", sdp: frame.sdp })
        .then(() => this.#remoteDescriptionSet(record))
        .catch(() => {
          void this._hangup(call, callError("failure", "the callee's answer could not be applied"));
        });
    } else {
      record.mayTrickle = true;
      this.#flushCandidates(record);
    }
    this.#maybeEstablished(record);
  }

  #remoteCandidate(frame: Frame): void {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : undefined;
    const candidate = frame.candidate;
    if (!record || !candidate || typeof candidate !== "object") return;
    const init = candidate as RTCIceCandidateInit;
    if (record.remoteDescriptionSet && record.pc) {
      record.pc.addIceCandidate(init).catch(() => this.#context.log("warn", "calls: a remote candidate was refused"));
    } else if (record.remoteCandidates.length < MAX_HELD_CANDIDATES) {
      record.remoteCandidates.push(init);
    }
  }

  async #remoteDescriptionSet(record: CallRecord): Promise<void> {
    record.remoteDescriptionSet = true;
    const held = record.remoteCandidates.splice(0);
    for (const candidate of held) {
      try {
        await record.pc?.addIceCandidate(candidate);
      } catch {
        this.#context.log("warn", "calls: a remote candidate was refused");
      }
    }
  }

  #endedFrame(frame: Frame): void {
    const record = typeof frame.callId === "string" ? this.#calls.get(frame.callId) : undefined;
    if (!record) return;
    const call = record.call;
    if (call._state === "ended") return;
    const cause = typeof frame.cause === "string" ? (frame.cause as CallEndCauseWord) : "failure";
    call._answered = typeof frame.answeredAt === "string" ? dateOr(frame.answeredAt, new Date()) : call._answered;
    call._started = dateOr(frame.startedAt, call._started);
    call._endedBy = typeof frame.endedBy === "string" ? frame.endedBy : null;
    call._detail = typeof frame.detail === "string" ? frame.detail : null;
    const endedAt = dateOr(frame.endedAt, new Date());
    const durationMs = typeof frame.durationMs === "number" && frame.durationMs >= 0 ? frame.durationMs : null;
    this.#finish(record, cause, call._error, endedAt, durationMs);
  }

  /** Ends a call with what this side knows (no `call.ended` from Callbox, or not yet). */
  #finishLocally(record: CallRecord, cause: CallEndCauseWord, error: CallboxError | null): void {
    this.#finish(record, cause, error, new Date(), null);
  }

  #finish(
    record: CallRecord,
    cause: CallEndCauseWord,
    error: CallboxError | null,
    endedAt: Date,
    durationMs: number | null,
  ): void {
    const call = record.call;
    if (call._state === "ended") return;
    this.#stopMedia(record);
    call._state = "ended";
    call._cause = cause;
    call._error = error ?? call._error;
    call._ended = endedAt;
    call._durationMs =
      durationMs ?? (call._answered ? Math.max(0, endedAt.getTime() - call._answered.getTime()) : 0);
    this.#records.delete(record);
    if (call.callId && this.#calls.get(call.callId) === record) this.#calls.delete(call.callId);
    const heldAt = this.#held.indexOf(record);
    if (heldAt >= 0) this.#held.splice(heldAt, 1);
    this.#context.log("info", `calls: a call ended: ${cause}`);
    call._emit("onCallEnded", this.#context.log);
  }

  #stopMedia(record: CallRecord): void {
    if (record.mediaTimer !== null) {
      clearTimeout(record.mediaTimer);
      record.mediaTimer = null;
    }
    const pc = record.pc;
    if (pc) {
      pc.onicecandidate = null;
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.oniceconnectionstatechange = null;
      try {
        pc.close();
      } catch {
        // Closed already.
      }
    }
    if (record.call.outgoingStream) this.#stopTracks(record.call.outgoingStream);
  }

  #stopTracks(stream: MediaStreamLike): void {
    for (const track of stream.getTracks()) {
      try {
        track.stop();
      } catch {
        // Stopped already.
      }
    }
  }

  async #openMicrophone(call: Call): Promise<MediaStreamLike> {
    const given = this.#context.options.getUserMedia;
    const devices = (globalThis as { navigator?: { mediaDevices?: MediaDevices } }).navigator?.mediaDevices;
    const open = given ?? (devices && devices.getUserMedia ? (c: MediaStreamConstraints) => devices.getUserMedia(c) : null);
    if (!open) {
      throw callError(
        "microphone_unavailable",
        "the microphone could not be opened: this page has no navigator.mediaDevices (browsers give it only to https pages and http://localhost)",
      );
    }
    let stream: MediaStreamLike;
    try {
      stream = await open({ audio: true, video: false });
    } catch (error) {
      throw microphoneError(error);
    }
    if (call._state === "ended") {
      // Hung up while the browser asked for the microphone.
      this.#stopTracks(stream);
      throw callError("not_found", "the call ended before the microphone was open");
    }
    call.outgoingStream = stream;
    this._applyMute(call);
    return stream;
  }

  /** The RTCConfiguration of a call: Callbox's `iceServers` (cached until shortly before they expire), then the app's. */
  async #rtcConfiguration(): Promise<RTCConfiguration> {
    if (this.#iceServers === null || Date.now() >= this.#iceServersUntil) {
      try {
        const body = (await this.#context.configuration()) as { iceServers?: unknown; iceServersExpireAt?: unknown };
        this.#iceServers = Array.isArray(body?.iceServers) ? (body.iceServers as RTCIceServer[]) : [];
        const expires = typeof body?.iceServersExpireAt === "string" ? Date.parse(body.iceServersExpireAt) : NaN;
        // A minute of margin; a configuration without an expiry is asked for again at the next call.
        this.#iceServersUntil = Number.isNaN(expires) ? 0 : expires - 60000;
      } catch (error) {
        const reason = error instanceof CallboxError ? error.reason : "error";
        this.#context.log("warn", `calls: no ICE servers from Callbox (${reason}): direct connections only`);
        this.#iceServers = [];
        this.#iceServersUntil = 0;
      }
    }
    const fromCallbox: RTCConfiguration = { iceServers: this.#iceServers.map((s) => ({ ...s })) };
    const extra = this.#context.options.rtcConfiguration;
    if (typeof extra === "function") return extra(fromCallbox);
    if (extra && typeof extra === "object") {
      return { ...fromCallbox, ...extra, iceServers: [...(fromCallbox.iceServers ?? []), ...(extra.iceServers ?? [])] };
    }
    return fromCallbox;
  }

  async #peer(record: CallRecord): Promise<PeerConnectionLike> {
    const configuration = await this.#rtcConfiguration();
    const make =
      this.#context.options.createPeerConnection ??
      ((c: RTCConfiguration) => {
        const Native = (globalThis as { RTCPeerConnection?: new (c: RTCConfiguration) => PeerConnectionLike })
          .RTCPeerConnection;
        if (!Native) throw callError("webrtc_unavailable", "this browser has no RTCPeerConnection");
        return new Native(c);
      });
    // A call ended while the configuration was fetched gets no peer connection (nothing would close it).
    if (record.call._state === "ended") throw callError("not_found", "the call ended while it was being set up");
    const pc = make(configuration);
    record.pc = pc;
    record.call.peerConnection = pc;
    pc.onicecandidate = (event: { candidate?: { toJSON?: () => RTCIceCandidateInit } | null }) => {
      const c = event?.candidate;
      // The end of gathering (a null candidate) is not signaled: docs/calls.md has no frame for it.
      if (!c) return;
      const init = typeof c.toJSON === "function" ? c.toJSON() : (c as RTCIceCandidateInit);
      record.localCandidates.push(init);
      this.#flushCandidates(record);
    };
    pc.ontrack = (event: { track?: unknown; streams?: MediaStream[] }) => {
      const call = record.call;
      let stream: MediaStream | null = event?.streams && event.streams[0] ? event.streams[0] : null;
      const MediaStreamClass = (globalThis as { MediaStream?: new (tracks: unknown[]) => MediaStream }).MediaStream;
      if (!stream && event?.track && MediaStreamClass) stream = new MediaStreamClass([event.track]);
      if (!stream || call.incomingStream === stream) return;
      call.incomingStream = stream;
      call.incomingStreamURL = null;
      try {
        // Gone from current browsers (a TypeError there): `incomingStream` as `srcObject` is the way now.
        const url = (URL as { createObjectURL?: (o: unknown) => string }).createObjectURL?.(stream);
        if (typeof url === "string") call.incomingStreamURL = url;
      } catch {
        call.incomingStreamURL = null;
      }
    };
    const stateChanged = () => this.#mediaState(record);
    pc.onconnectionstatechange = stateChanged;
    pc.oniceconnectionstatechange = stateChanged;
    return pc;
  }

  #flushCandidates(record: CallRecord): void {
    const connection = this.#context.connection;
    const callId = record.call.callId;
    if (!record.mayTrickle || !callId || !connection || record.call._state === "ended") return;
    while (record.localCandidates.length > 0) {
      const candidate = record.localCandidates[0];
      if (!connection.send({ type: "call.candidate", callId, candidate })) return; // kept for the rejoin
      record.localCandidates.shift();
    }
  }

  /** The peer connection's state: connected → established; failed, or disconnected too long → failure. */
  #mediaState(record: CallRecord): void {
    const pc = record.pc;
    if (!pc || record.call._state === "ended") return;
    const state = pc.connectionState ?? "";
    const ice = pc.iceConnectionState ?? "";
    if (state === "failed" || ice === "failed") {
      void this._hangup(record.call, callError("media_failed", "the media connection failed (ICE found no working path)"));
      return;
    }
    const connected = state === "connected" || (state === "" && (ice === "connected" || ice === "completed"));
    if (connected) {
      record.connected = true;
      if (record.mediaTimer !== null) {
        clearTimeout(record.mediaTimer);
        record.mediaTimer = null;
      }
      this.#maybeEstablished(record);
    } else if (record.connected && (state === "disconnected" || ice === "disconnected")) {
      record.connected = false;
      this.#armMediaTimer(record);
    }
  }

  #armMediaTimer(record: CallRecord): void {
    if (record.connected || record.mediaTimer !== null) return;
    const ms = this.#context.options.mediaTimeoutMs ?? 20000;
    record.mediaTimer = unrefTimer(
      setTimeout(() => {
        record.mediaTimer = null;
        if (record.connected || record.call._state === "ended") return;
        void this._hangup(
          record.call,
          callError("media_failed", `no media flowed within ${ms} ms (ICE did not connect)`),
        );
      }, ms),
    );
  }

  #maybeEstablished(record: CallRecord): void {
    const call = record.call;
    if (call._state !== "answered" || !record.connected) return;
    call._state = "established";
    call._established = new Date();
    call._emit("onCallEstablished", this.#context.log);
  }

  /** A new realtime connection (`ready`): every call that goes on is rejoined (docs/calls.md §3). */
  #rejoinAll(): void {
    const connection = this.#context.connection;
    if (!connection) return;
    for (const record of [...this.#calls.values()]) {
      const call = record.call;
      const callId = call.callId;
      if (!callId || call._state === "ended") continue;
      this.#context.log("info", "calls: rejoining a call after a reconnect");
      connection
        .request(
          { type: "call.rejoin", callId },
          {
            onAnswer: (f) => {
              if (f.type !== "call.rejoined" || call._state === "ended") return;
              if (f.state === "answered" && call.direction === "outgoing" && !record.remoteDescriptionSet) {
                // The answer came while this side was away: call.rejoined carries it (docs/calls.md).
                if (typeof f.sdp === "string" && (call._state === "initiating" || call._state === "ringing")) {
                  this.#answered({ ...f, type: "call.answered" });
                } else if (typeof f.sdp !== "string") {
                  void this._hangup(call, callError("failure", "the call was answered while the connection was down"));
                }
                return;
              }
              this.#flushCandidates(record);
            },
          },
        )
        .catch((error: unknown) => {
          if (!(error instanceof CallboxError) || call._state === "ended") return;
          // Gone meanwhile (it ended while this side was away: its call.ended was lost with the old connection).
          if (error.reason === "not_found") this.#finishLocally(record, "timeout", error);
        });
    }
  }
}

const JSON_TYPE = "application/json; charset=UTF-8";

/** The Callbox client; also exported as `SinchClient`. */
export class Client {
  readonly applicationKey: string;
  readonly capabilities: Capabilities;
  readonly url: string;
  readonly #log: (level: LogMessage["level"], message: string) => void;
  readonly #fetch: typeof fetch;
  readonly #refreshMarginMs: number;
  #offsetMs: number | null = null;
  #session: Session | null = null;
  #provider: CredentialsProvider | null = null;
  #refreshing: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  readonly #listeners = new Set<ClientListener>();
  /** Null where there is no WebSocket (Node without one given in `options.realtime`). */
  readonly #connection: RealtimeConnection | null;
  /** Made with the client, so that messages arriving before the app asks for it are held, not lost. */
  readonly #messageClient: MessageClient;
  /** Made with the client too: a call ringing before the app asks for it is held for its first listener. */
  readonly #callClient: CallClient;

  constructor(options: ClientOptions) {
    if (!options || typeof options.applicationKey !== "string" || options.applicationKey === "") {
      throw localError("invalid_argument", "new Client({applicationKey}) needs the application key");
    }
    this.applicationKey = options.applicationKey;
    this.capabilities = { ...(options.capabilities ?? {}) };
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    const url = options.url ?? origin;
    if (!url) throw localError("invalid_argument", "no url given and no page origin to default to");
    this.url = url.replace(/\/+$/, "");
    const sink = options.onLogMessage;
    this.#log = (level, message) => {
      if (sink) {
        try {
          sink({ level, message });
        } catch {
          // A failing log sink must not break the client.
        }
      }
    };
    const f = options.fetch ?? (globalThis.fetch as typeof fetch | undefined);
    if (!f) throw localError("invalid_argument", "no fetch available");
    this.#fetch = options.fetch ? f : (input, init) => globalThis.fetch(input, init);
    this.#refreshMarginMs = 1000 * (options.refreshMarginSeconds ?? 60);
    const realtime = options.realtime ?? {};
    const WebSocketClass =
      realtime.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? null;
    this.#connection = WebSocketClass
      ? new RealtimeConnection(
          {
            url: `${this.url.replace(/^http/i, "ws")}/v1/realtime`,
            WebSocket: WebSocketClass,
            authFrame: (nonce, resumeAfter) => this.#authFrame(nonce, resumeAfter),
            log: this.#log,
            stateChanged: (state) => this.#emit("onConnectionStateChanged", state),
            refused: (error) => this.#realtimeRefused(error),
            ended: (error) => this.#ended(error),
          },
          realtime,
        )
      : null;
    this.#messageClient = new MessageClient({
      client: this,
      connection: this.#connection,
      userId: () => this.#session?.userId ?? "",
      log: this.#log,
    });
    this.#callClient = new CallClient({
      connection: this.#connection,
      options: { ...(options.calls ?? {}) },
      userId: () => this.#session?.userId ?? "",
      configuration: () => this.call("GET", "/v1/configuration/user").then((r) => r.body),
      log: this.#log,
    });
  }

  /** Adds a listener for the client's life: started, failed, stopped, connection state. */
  addListener(listener: ClientListener): void {
    this.#listeners.add(listener);
  }

  removeListener(listener: ClientListener): void {
    this.#listeners.delete(listener);
  }

  /** The realtime connection's state (`idle` when none was asked for, or no WebSocket is available). */
  getConnectionState(): ConnectionState {
    return this.#connection?.state ?? "idle";
  }

  /**
   * Starts a session from a ticket (`{userTicket}`, `{jwt}`, a bare JWT string), a username (or email, or
   * number) and password, a saved session (`getSession()`'s answer), or a credentials provider.
   */
  start(credentials: StartCredentials): CallboxPromise<SavedSession> {
    return CallboxPromise.from(
      this.#start(credentials).catch((error: unknown) => {
        // A start that failed half-way leaves nothing behind.
        this.#connection?.stop();
        this.#stopTimer();
        this.#session = null;
        this.#provider = null;
        throw error;
      }),
    );
  }

  async #start(credentials: StartCredentials): Promise<SavedSession> {
    this.#callClient._shutdown("hung_up", null, true);
    this.#connection?.stop();
    this.#stopTimer();
    this.#session = null;
    this.#provider = null;
    await this.#syncClock();
    if (isFunction(credentials)) {
      this.#provider = credentials;
      this.#log("info", "starting a session from the credentials provider");
      await this.#exchange(await this.#ticketFromProvider());
    } else if (isSaved(credentials)) {
      this.#log("info", "resuming a saved session");
      this.#session = {
        userId: credentials.userId,
        sessionId: credentials.sessionId,
        sessionSecret: credentials.sessionSecret,
        capabilities: [],
        expiresAt: Number.POSITIVE_INFINITY,
      };
      try {
        await this.#describe();
      } catch (error) {
        this.#session = null;
        throw error;
      }
    } else {
      const password = passwordIdentity(credentials);
      let exchange: Exchange | null;
      if (password) {
        this.#log("info", `logging in ${password.type} user`);
        exchange = ticketExchange(await this.#logIn(password));
      } else {
        exchange = ticketExchange(credentials);
      }
      if (!exchange) {
        throw localError(
          "invalid_argument",
          "start() takes {userTicket}, {jwt}, a JWT, {username, password}, a saved session or a function",
        );
      }
      await this.#exchange(exchange);
    }
    this.#openRealtime();
    this.#schedule();
    this.#log("info", "session started");
    this.#emit("onClientStarted");
    return this.getSession() as SavedSession;
  }

  /** The current session, to save and pass to `start()` later; `null` before start and after terminate. */
  getSession(): SavedSession | null {
    const s = this.#session;
    return s ? { userId: s.userId, sessionId: s.sessionId, sessionSecret: s.sessionSecret } : null;
  }

  /** The capabilities Callbox granted this session. */
  getCapabilities(): string[] {
    return this.#session ? [...this.#session.capabilities] : [];
  }

  /**
   * Signs up a platform-managed user; resolves to `{userTicket}`, which `start()` accepts. Works only while
   * the application's platform-managed users are on.
   */
  newUser(user: PasswordCredential): CallboxPromise<UserTicket> {
    return CallboxPromise.from(
      (async () => {
        const id = passwordIdentity(user);
        if (!id) throw localError("invalid_argument", "newUser() takes {username, password}");
        await this.#syncClock();
        this.#log("info", `signing up a ${id.type} user`);
        const answer = await this.#request("POST", "/v1/users", `Application ${this.applicationKey}`, {
          password: id.password,
          identities: [{ type: id.type, endpoint: id.endpoint }],
        });
        return { userTicket: this.#ticketFrom(answer.body) };
      })(),
    );
  }

  /** Ends the session on the server and forgets it here. */
  terminate(): CallboxPromise<void> {
    return CallboxPromise.from(
      (async () => {
        this.#stopTimer();
        this.#provider = null;
        // Calls that go on are hung up (Callbox is told on the socket while it is still open).
        this.#callClient._shutdown("hung_up", null, true);
        this.#connection?.stop();
        const s = this.#session;
        if (!s) return;
        try {
          await this.call("DELETE", `/v1/instances/id/${encodeURIComponent(s.sessionId)}`);
        } finally {
          this.#session = null;
          this.#log("info", "session terminated");
          this.#emit("onClientStopped", null);
        }
      })(),
    );
  }

  /**
   * Messaging (the same object on every call); throws `capability_not_granted` when the session has no
   * `messaging` capability.
   */
  getMessageClient(): MessageClient {
    if (!this.#session) throw localError("not_started", "start() the client first");
    if (!this.#session.capabilities.includes("messaging")) {
      throw localError("capability_not_granted", "this session was not granted the messaging capability");
    }
    return this.#messageClient;
  }

  /**
   * Calls (the same object on every call); throws `capability_not_granted` when the session has no `calling`
   * capability (ask for it with `capabilities: {calling: true}`).
   */
  getCallClient(): CallClient {
    if (!this.#session) throw localError("not_started", "start() the client first");
    if (!this.#session.capabilities.includes("calling")) {
      throw localError("capability_not_granted", "this session was not granted the calling capability");
    }
    return this.#callClient;
  }

  /** The user's identities (`GET /v1/user/profile`), a signed call. */
  getUserProfile(): CallboxPromise<unknown> {
    return CallboxPromise.from(this.call("GET", "/v1/user/profile").then((r) => r.body));
  }

  /**
   * Makes a call signed with the session secret (PROTOCOL §4). A session started from a credentials provider
   * is refreshed first when it is about to expire, and once more when Callbox says it expired.
   */
  call<T = unknown>(method: string, path: string, body?: unknown): CallboxPromise<CallResult<T>> {
    return CallboxPromise.from(this.#call<T>(method, path, body));
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<CallResult<T>> {
    if (!this.#session) throw localError("not_started", "start() the client first");
    if (this.#provider && this.#session.expiresAt - this.#now() <= this.#refreshMarginMs) {
      await this.refresh();
    }
    try {
      return await this.#signed<T>(method, path, body);
    } catch (error) {
      if (this.#provider && error instanceof CallboxError && error.reason === "session_expired") {
        await this.refresh();
        return this.#signed<T>(method, path, body);
      }
      throw error;
    }
  }

  /**
   * Re-authorizes the session with a fresh ticket from the credentials provider; one refresh in flight at a
   * time, whoever asks.
   */
  refresh(): CallboxPromise<void> {
    if (!this.#refreshing) {
      this.#refreshing = this.#refresh().finally(() => {
        this.#refreshing = null;
      });
    }
    return CallboxPromise.from(this.#refreshing);
  }

  async #refresh(): Promise<void> {
    if (!this.#provider) throw localError("not_started", "only a session started from a function can refresh");
    const s = this.#session;
    this.#log("info", "refreshing the session");
    const exchange = await this.#ticketFromProvider();
    if (!s) {
      await this.#exchange(exchange);
    } else {
      try {
        const answer = await this.#request(
          "PUT",
          `/v1/instances/id/${encodeURIComponent(s.sessionId)}/authorization`,
          `${exchange.scheme} ${exchange.credential}`,
          { ...this.#instanceBody(), instanceId: s.sessionId },
        );
        const grant = answer.body as { id?: unknown; secret?: unknown; expiresIn?: unknown };
        if (typeof grant.secret !== "string") throw localError("malformed_response", "no secret in the answer");
        s.sessionSecret = grant.secret;
        if (typeof grant.id === "string") s.sessionId = grant.id;
        s.expiresAt = this.#now() + 1000 * (typeof grant.expiresIn === "number" ? grant.expiresIn : 0);
        await this.#describe();
      } catch (error) {
        // The session is gone (ended, or expired past renewal): start a new one with a fresh ticket.
        if (error instanceof CallboxError && (error.code === 40400 || error.reason === "session_expired")) {
          await this.#exchange(await this.#ticketFromProvider());
        } else {
          throw error;
        }
      }
    }
    this.#schedule();
    this.#log("info", "session refreshed");
  }

  // -- internals --------------------------------------------------------------------------------------------

  #now(): number {
    return Date.now();
  }

  #serverNow(): number {
    return Date.now() + (this.#offsetMs ?? 0);
  }

  async #syncClock(): Promise<void> {
    if (this.#offsetMs !== null) return;
    const before = Date.now();
    const answer = await this.#request("GET", "/v1/timestamp", null, undefined);
    const after = Date.now();
    const ts = (answer.body as { timestamp?: unknown }).timestamp;
    const server = typeof ts === "string" ? Date.parse(ts) : NaN;
    if (Number.isNaN(server)) throw localError("malformed_response", "GET /v1/timestamp gave no timestamp");
    this.#offsetMs = server - Math.round((before + after) / 2);
    this.#log("debug", `clock offset ${this.#offsetMs} ms`);
  }

  async #ticketFromProvider(): Promise<Exchange> {
    const provider = this.#provider;
    if (!provider) throw localError("not_started", "no credentials provider");
    let ticket: unknown;
    try {
      ticket = await provider();
    } catch (error) {
      if (error instanceof CallboxError) throw error;
      throw new CallboxError(0, "credentials_provider_failed", "the credentials provider failed", true);
    }
    const exchange = ticketExchange(ticket);
    if (!exchange) {
      throw localError("invalid_argument", "the credentials provider must resolve to {userTicket}, {jwt} or a JWT");
    }
    return exchange;
  }

  #instanceBody(): Record<string, unknown> {
    return { version: { sdk: "callbox-js", sdkVersion: VERSION }, services: servicesFor(this.capabilities) };
  }

  async #logIn(id: { type: string; endpoint: string; password: string }): Promise<Ticket> {
    const path = `/v1/users/${encodeURIComponent(id.type)}/${encodeURIComponent(id.endpoint)}/authentication`;
    const answer = await this.#request("POST", path, `Application ${this.applicationKey}`, { password: id.password });
    return { userTicket: this.#ticketFrom(answer.body) };
  }

  #ticketFrom(body: unknown): string {
    const ticket = (body as { authorization?: unknown }).authorization;
    if (typeof ticket !== "string") throw localError("malformed_response", "no ticket in the answer");
    return ticket;
  }

  async #exchange(exchange: Exchange): Promise<void> {
    const answer = await this.#request(
      "POST",
      "/v1/instance",
      `${exchange.scheme} ${exchange.credential}`,
      this.#instanceBody(),
    );
    const grant = answer.body as { id?: unknown; secret?: unknown; expiresIn?: unknown };
    if (typeof grant.id !== "string" || typeof grant.secret !== "string") {
      throw localError("malformed_response", "no session in the answer");
    }
    this.#session = {
      userId: "",
      sessionId: grant.id,
      sessionSecret: grant.secret,
      capabilities: [],
      expiresAt: this.#now() + 1000 * (typeof grant.expiresIn === "number" ? grant.expiresIn : 0),
    };
    await this.#describe();
  }

  /** Reads the session back with a signed call: user, capabilities, expiry (and proves the secret works). */
  async #describe(): Promise<void> {
    const s = this.#session;
    if (!s) throw localError("not_started", "no session");
    const answer = await this.#signed<{ userId?: unknown; capabilities?: unknown; expiresAt?: unknown }>(
      "GET",
      `/v1/instances/id/${encodeURIComponent(s.sessionId)}`,
    );
    const info = answer.body;
    if (typeof info.userId === "string") s.userId = info.userId;
    if (Array.isArray(info.capabilities)) s.capabilities = info.capabilities.filter((c) => typeof c === "string");
    if (typeof info.expiresAt === "string") {
      const at = Date.parse(info.expiresAt);
      if (!Number.isNaN(at)) s.expiresAt = at - (this.#offsetMs ?? 0);
    }
  }

  async #signed<T>(method: string, path: string, body?: unknown): Promise<CallResult<T>> {
    const s = this.#session;
    if (!s) throw localError("not_started", "start() the client first");
    const text = body === undefined ? "" : JSON.stringify(body);
    const contentType = text === "" ? "" : JSON_TYPE;
    const timestamp = isoSeconds(this.#serverNow());
    const signPath = path.split("?")[0];
    const { signature } = await signRequest(s.sessionSecret, method, signPath, text, contentType, timestamp);
    return this.#send<T>(method, path, `Instance ${s.sessionId}:${signature}`, text, contentType, timestamp);
  }

  async #request(
    method: string,
    path: string,
    authorization: string | null,
    body: unknown,
  ): Promise<CallResult<unknown>> {
    const text = body === undefined || body === null ? "" : JSON.stringify(body);
    return this.#send(method, path, authorization, text, text === "" ? "" : JSON_TYPE, null);
  }

  async #send<T>(
    method: string,
    path: string,
    authorization: string | null,
    text: string,
    contentType: string,
    timestamp: string | null,
  ): Promise<CallResult<T>> {
    const headers: Record<string, string> = {};
    if (authorization) headers.Authorization = authorization;
    if (contentType) headers["Content-Type"] = contentType;
    if (timestamp) headers["X-Timestamp"] = timestamp;
    let response: Response;
    try {
      response = await this.#fetch(this.url + path, {
        method,
        headers,
        body: text === "" ? undefined : text,
        credentials: "omit",
      });
    } catch {
      this.#log("warn", `${method} ${path.split("?")[0]}: no answer`);
      throw new CallboxError(0, "network_error", `no answer from Callbox for ${method} ${path.split("?")[0]}`, true);
    }
    const raw = await response.text();
    let parsed: unknown = null;
    if (raw !== "") {
      try {
        parsed = JSON.parse(raw);
      } catch {
        parsed = raw;
      }
    }
    if (!response.ok) {
      const error = errorFromResponse(response.status, parsed, response.headers.get("Retry-After"));
      this.#log("warn", `${method} ${path.split("?")[0]}: ${response.status} ${error.reason}`);
      throw error;
    }
    this.#log("debug", `${method} ${path.split("?")[0]}: ${response.status}`);
    return { status: response.status, body: parsed as T };
  }

  /** Whether this session keeps a realtime connection (asked for, granted, and a WebSocket to make it with). */
  #wantsRealtime(): boolean {
    const s = this.#session;
    if (!s || !this.#connection) return false;
    const asked = (this.capabilities.messaging && s.capabilities.includes("messaging")) ||
      (this.capabilities.calling && s.capabilities.includes("calling"));
    return !!asked;
  }

  #openRealtime(): void {
    if (this.#wantsRealtime()) this.#connection?.open();
    else if (this.#connection === null && (this.capabilities.messaging || this.capabilities.calling)) {
      this.#log("warn", "no WebSocket in this environment: no realtime connection");
    }
  }

  /**
   * A session started from a credentials provider is refreshed with a fresh ticket before it expires; one with
   * a realtime connection is renewed with a signed `POST /v1/instance`, the connection staying open.
   */
  #schedule(retryMs?: number): void {
    this.#stopTimer();
    const s = this.#session;
    if (!s || !Number.isFinite(s.expiresAt)) return;
    const provider = this.#provider !== null;
    if (!provider && !this.#wantsRealtime()) return;
    const remaining = s.expiresAt - this.#now();
    // A renewal goes at the margin before expiry, but never before half the lifetime left: a session shorter
    // than the margin is not renewed in a tight loop.
    const delay =
      retryMs ??
      (provider
        ? Math.max(0, remaining - this.#refreshMarginMs)
        : Math.max(remaining - this.#refreshMarginMs, remaining / 2, 0));
    // Timers beyond ~24.8 days overflow; a session that long is refreshed on the next call instead.
    if (delay > 2 ** 31 - 1) return;
    const timer = setTimeout(() => {
      this.#timer = null;
      const renewal = provider ? this.refresh() : this.#renewOnce();
      renewal.catch((error: unknown) => {
        const reason = error instanceof CallboxError ? error.reason : "unknown";
        this.#log("error", `background ${provider ? "refresh" : "renewal"} failed: ${reason}`);
        // A network failure is tried again while the session lasts; a refusal ends it (the socket says so).
        if (error instanceof CallboxError && error.retryable && this.#session === s) {
          this.#schedule(Math.min(30000, Math.max(1000, (s.expiresAt - this.#now()) / 2)));
        }
      });
    }, delay);
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  /** One renewal at a time, sharing the refresh guard (the realtime auth frame waits for it). */
  #renewOnce(): Promise<void> {
    if (!this.#refreshing) {
      this.#refreshing = this.#renew().finally(() => {
        this.#refreshing = null;
      });
    }
    return this.#refreshing;
  }

  /** Extends the session (signed `POST /v1/instance`): a new expiry and a new secret; the socket stays open. */
  async #renew(): Promise<void> {
    const s = this.#session;
    if (!s) return;
    this.#log("info", "renewing the session");
    const answer = await this.#signed<{ id?: unknown; secret?: unknown; expiresIn?: unknown }>(
      "POST",
      "/v1/instance",
      this.#instanceBody(),
    );
    const grant = answer.body;
    if (typeof grant.secret !== "string") throw localError("malformed_response", "no secret in the answer");
    if (this.#session !== s) return;
    s.sessionSecret = grant.secret;
    if (typeof grant.expiresIn === "number") s.expiresAt = this.#now() + 1000 * grant.expiresIn;
    this.#schedule();
    this.#log("info", "session renewed");
  }

  /** The `auth` frame answering a realtime challenge: §4 signature over GET /v1/realtime/{nonce}. */
  async #authFrame(nonce: string, resumeAfter: number | null): Promise<Frame> {
    // A renewal in flight changes the secret: sign with the one it brings.
    if (this.#refreshing) await this.#refreshing.catch(() => undefined);
    const s = this.#session;
    if (!s) throw localError("not_started", "no session");
    const timestamp = isoSeconds(this.#serverNow());
    const signature = await signRealtimeAuth(s.sessionSecret, nonce, timestamp);
    const frame: Frame = { type: "auth", sessionId: s.sessionId, timestamp, signature };
    if (resumeAfter !== null) frame.resumeAfter = resumeAfter;
    return frame;
  }

  /** Decides whether a refused realtime connection may try again (see `RealtimeHooks.refused`). */
  async #realtimeRefused(error: CallboxError): Promise<boolean> {
    if (!this.#session) return false;
    if (error.reason === "timestamp_skew") {
      this.#offsetMs = null;
      await this.#syncClock().catch(() => undefined);
      return true;
    }
    if (error.reason === "session_expired" && this.#provider) {
      // Refreshed, or replaced by a new session when past renewal: either way the next auth frame signs with
      // what it brought, and the resume cursor stays valid (the inbox is the user's, not the session's).
      try {
        await this.refresh();
        return true;
      } catch {
        return false;
      }
    }
    return !FINAL_REFUSALS.has(error.reason);
  }

  /** The server ended the session: forget it and tell the listeners. */
  #ended(error: CallboxError): void {
    this.#log("error", `the session ended: ${error.reason}`);
    this.#stopTimer();
    this.#provider = null;
    this.#session = null;
    // Callbox ended this side's calls with the session (`revoked`); the socket that would say so is closed.
    this.#callClient._shutdown("revoked", error, false);
    this.#emit("onClientFailed", error);
    this.#emit("onClientStopped", error);
  }

  #emit(name: "onClientStarted"): void;
  #emit(name: "onClientFailed", value: CallboxError): void;
  #emit(name: "onClientStopped", value: CallboxError | null): void;
  #emit(name: "onConnectionStateChanged", value: ConnectionState): void;
  #emit(name: keyof ClientListener, value?: unknown): void {
    for (const listener of [...this.#listeners]) {
      const fn = listener[name] as ((client: Client, value?: unknown) => void) | undefined;
      if (typeof fn !== "function") continue;
      try {
        fn.call(listener, this, value);
      } catch {
        this.#log("error", `${name} threw`);
      }
    }
  }

  #stopTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

/** The same class under the legacy SDK's name. */
export { Client as SinchClient };
