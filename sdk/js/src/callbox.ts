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

/** Messaging, for a session granted the `messaging` capability. */
export class MessageClient {
  readonly #client: Client;

  constructor(client: Client) {
    this.#client = client;
  }

  /** The realtime configuration Callbox hands this session (`GET /v1/configuration/user`). */
  getConfiguration(): CallboxPromise<unknown> {
    return CallboxPromise.from(this.#client.call("GET", "/v1/configuration/user").then((r) => r.body));
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
  }

  /**
   * Starts a session from a ticket (`{userTicket}`, `{jwt}`, a bare JWT string), a username (or email, or
   * number) and password, a saved session (`getSession()`'s answer), or a credentials provider.
   */
  start(credentials: StartCredentials): CallboxPromise<SavedSession> {
    return CallboxPromise.from(
      this.#start(credentials).catch((error: unknown) => {
        // A start that failed half-way leaves nothing behind.
        this.#stopTimer();
        this.#session = null;
        this.#provider = null;
        throw error;
      }),
    );
  }

  async #start(credentials: StartCredentials): Promise<SavedSession> {
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
    this.#schedule();
    this.#log("info", "session started");
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
        const s = this.#session;
        if (!s) return;
        try {
          await this.call("DELETE", `/v1/instances/id/${encodeURIComponent(s.sessionId)}`);
        } finally {
          this.#session = null;
          this.#log("info", "session terminated");
        }
      })(),
    );
  }

  /** Messaging; throws `capability_not_granted` when the session has no `messaging` capability. */
  getMessageClient(): MessageClient {
    if (!this.#session) throw localError("not_started", "start() the client first");
    if (!this.#session.capabilities.includes("messaging")) {
      throw localError("capability_not_granted", "this session was not granted the messaging capability");
    }
    return new MessageClient(this);
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

  #schedule(): void {
    this.#stopTimer();
    const s = this.#session;
    if (!this.#provider || !s || !Number.isFinite(s.expiresAt)) return;
    const delay = Math.max(0, s.expiresAt - this.#now() - this.#refreshMarginMs);
    // Timers beyond ~24.8 days overflow; a session that long is refreshed on the next call instead.
    if (delay > 2 ** 31 - 1) return;
    const timer = setTimeout(() => {
      this.#timer = null;
      this.refresh().catch((error: unknown) => {
        const reason = error instanceof CallboxError ? error.reason : "unknown";
        this.#log("error", `background refresh failed: ${reason}`);
      });
    }, delay);
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
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
