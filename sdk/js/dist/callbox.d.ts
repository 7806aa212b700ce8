/** The SDK's version, sent to Callbox in the `version` field of session requests. */
export declare const VERSION = "0.1.0";
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
export type PasswordCredential = {
    username: string;
    password: string;
} | {
    email: string;
    password: string;
} | {
    number: string;
    password: string;
};
/** What a credentials provider may resolve to. */
export type Ticket = UserTicket | JwtCredential | string;
/** A function that fetches a fresh ticket from your backend; used again to refresh the session before expiry. */
export type CredentialsProvider = () => Promise<Ticket> | Ticket;
/** Everything `start()` accepts. */
export type StartCredentials = Ticket | PasswordCredential | SavedSession | CredentialsProvider;
/** A Promise that also has `.fail()` (an alias of `.catch()`), as the legacy SDK's promises do. */
export declare class CallboxPromise<T> extends Promise<T> {
    /** Same as `.catch()`. */
    fail<R = never>(onRejected?: ((reason: any) => R | PromiseLike<R>) | null): CallboxPromise<T | R>;
    static from<T>(promise: PromiseLike<T>): CallboxPromise<T>;
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
export declare class CallboxError extends Error {
    readonly code: number;
    readonly reason: string;
    readonly retryable: boolean;
    readonly response: ErrorResponse | null;
    /** Seconds to wait, for `locked_out` and `rate_limited`. */
    readonly retryAfter: number | null;
    /** The server's clock when it refused, when it said. */
    readonly serverTime: string | null;
    constructor(code: number, reason: string, message: string, retryable?: boolean, response?: ErrorResponse | null, retryAfter?: number | null, serverTime?: string | null);
}
/** Maps an HTTP answer that is not a success to a `CallboxError` (PROTOCOL §7). */
export declare function errorFromResponse(status: number, body: unknown, retryAfterHeader?: string | null): CallboxError;
/** `base64(MD5(UTF-8 body))`, or `""` for an empty body. */
export declare function contentMd5(body: string): string;
/** The StringToSign of PROTOCOL §4. */
export declare function stringToSign(method: string, md5: string, contentType: string, timestamp: string, path: string): string;
/** `base64(HMAC-SHA256(base64decode(secret), UTF-8 message))` with WebCrypto. */
export declare function hmacSha256Base64(secretBase64: string, message: string): Promise<string>;
/** What a signed request carries, for the given parts. */
export interface SignedHeaders {
    contentMd5: string;
    signature: string;
}
/** Signs a request per PROTOCOL §4. `path` is the URL path including `/v1`, without the query. */
export declare function signRequest(secretBase64: string, method: string, path: string, body: string, contentType: string, timestamp: string): Promise<SignedHeaders>;
/** ISO-8601 UTC to the second, as `X-Timestamp` wants it. */
export declare function isoSeconds(ms: number): string;
/** Answer of a signed call. */
export interface CallResult<T = unknown> {
    status: number;
    body: T;
}
/** Messaging, for a session granted the `messaging` capability. */
export declare class MessageClient {
    #private;
    constructor(client: Client);
    /** The realtime configuration Callbox hands this session (`GET /v1/configuration/user`). */
    getConfiguration(): CallboxPromise<unknown>;
}
/** The Callbox client; also exported as `SinchClient`. */
export declare class Client {
    #private;
    readonly applicationKey: string;
    readonly capabilities: Capabilities;
    readonly url: string;
    constructor(options: ClientOptions);
    /**
     * Starts a session from a ticket (`{userTicket}`, `{jwt}`, a bare JWT string), a username (or email, or
     * number) and password, a saved session (`getSession()`'s answer), or a credentials provider.
     */
    start(credentials: StartCredentials): CallboxPromise<SavedSession>;
    /** The current session, to save and pass to `start()` later; `null` before start and after terminate. */
    getSession(): SavedSession | null;
    /** The capabilities Callbox granted this session. */
    getCapabilities(): string[];
    /**
     * Signs up a platform-managed user; resolves to `{userTicket}`, which `start()` accepts. Works only while
     * the application's platform-managed users are on.
     */
    newUser(user: PasswordCredential): CallboxPromise<UserTicket>;
    /** Ends the session on the server and forgets it here. */
    terminate(): CallboxPromise<void>;
    /** Messaging; throws `capability_not_granted` when the session has no `messaging` capability. */
    getMessageClient(): MessageClient;
    /** The user's identities (`GET /v1/user/profile`), a signed call. */
    getUserProfile(): CallboxPromise<unknown>;
    /**
     * Makes a call signed with the session secret (PROTOCOL §4). A session started from a credentials provider
     * is refreshed first when it is about to expire, and once more when Callbox says it expired.
     */
    call<T = unknown>(method: string, path: string, body?: unknown): CallboxPromise<CallResult<T>>;
    /**
     * Re-authorizes the session with a fresh ticket from the credentials provider; one refresh in flight at a
     * time, whoever asks.
     */
    refresh(): CallboxPromise<void>;
}
/** The same class under the legacy SDK's name. */
export { Client as SinchClient };
