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
    then<R1 = T, R2 = never>(onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null, onRejected?: ((reason: any) => R2 | PromiseLike<R2>) | null): CallboxPromise<R1 | R2>;
    catch<R = never>(onRejected?: ((reason: any) => R | PromiseLike<R>) | null): CallboxPromise<T | R>;
    finally(onFinally?: (() => void) | null): CallboxPromise<T>;
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
/**
 * The signature of a realtime `auth` frame (docs/realtime.md): PROTOCOL §4 over
 * `GET`, empty Content-MD5 and Content-Type, the timestamp, and the path `/v1/realtime/{nonce}`.
 */
export declare function signRealtimeAuth(secretBase64: string, nonce: string, timestamp: string): Promise<string>;
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
/** An `error` frame (a §7 body with `type` and maybe `ref`) as a `CallboxError`. */
export declare function errorFromFrame(frame: Record<string, unknown>): CallboxError;
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
/**
 * The realtime connection of one client. Created by the client; features reach it through `on()`, `send()` and
 * `request()`. Exported for the types; applications do not construct it.
 */
export declare class RealtimeConnection {
    #private;
    /** @internal */
    constructor(hooks: RealtimeHooks, options?: RealtimeOptions);
    get state(): ConnectionState;
    /** What the server said in `ready` on the current connection, or null while not connected. */
    get ready(): ReadyFrame | null;
    /** The highest delivery sequence number handled so far (0 for none). */
    get cursor(): number;
    /** Calls `handler` with every frame of this `type`; returns the function that unsubscribes it. */
    on(type: string, handler: (frame: Frame) => void): () => void;
    /** Sends a frame on the authenticated connection; false (nothing sent) while not connected. */
    send(frame: Frame): boolean;
    /**
     * Sends a frame with a fresh `ref` and resolves to the server's answer carrying that `ref` (an `error` answer
     * rejects with its `CallboxError`). Made while not connected, it waits for the next connection; a connection
     * lost after it was sent rejects it with the retryable `connection_lost` (it may or may not have been taken).
     */
    request(frame: Frame, hooks?: RequestHooks): Promise<Frame>;
    /** Opens the connection (again, from a fresh cursor) for a new session. */
    open(): void;
    /** Closes the connection for good; requests not answered yet are rejected. */
    stop(): void;
}
/** Small JSON headers of a message. */
export type MessageHeaders = Record<string, unknown>;
/** A message: made by `newMessage()` to send, or received. */
export declare class Message {
    /** Callbox's id: set once Callbox accepted the message (null before). */
    messageId: string | null;
    senderId: string;
    recipientIds: string[];
    textBody: string;
    headers: MessageHeaders;
    /** Callbox's time for the message (the local time of `newMessage()` until accepted). */
    timestamp: Date;
    /** @internal */
    constructor(messageId: string | null, senderId: string, recipientIds: string[], textBody: string, headers: MessageHeaders, timestamp: Date);
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
/** What the client lends its message client. */
interface MessagingContext {
    client: Client;
    connection: RealtimeConnection | null;
    userId(): string;
    log(level: LogMessage["level"], message: string): void;
}
/** Messaging, for a session granted the `messaging` capability; `client.getMessageClient()` returns it. */
export declare class MessageClient {
    #private;
    /** @internal */
    constructor(context: MessagingContext);
    /** A message to `recipients` (a user id or an array of them) with a text and optional small JSON headers. */
    newMessage(recipients: string | string[], text: string, headers?: MessageHeaders): Message;
    /**
     * Sends a message; resolves to it, with `messageId` and `timestamp` set, once Callbox stored it. Sent while
     * the connection is down, it goes out when it is back (within `requestTimeoutMs`, 30 s). `.fail()` receives a
     * `CallboxError` such as `payload_too_large` (text, headers, or too many recipients), `rate_limited` (with
     * `retryAfter`; the message was not taken), or the retryable `connection_lost` or `timeout` when Callbox did
     * not answer: the message may or may not have been taken, and sending it again makes a second one if it was.
     */
    send(message: Message): CallboxPromise<Message>;
    /** Adds a listener; the first one with `onIncomingMessage` also gets the messages that came before it. */
    addEventListener(listener: MessageClientListener): void;
    removeEventListener(listener: MessageClientListener): void;
    /** The realtime configuration Callbox hands this session (`GET /v1/configuration/user`). */
    getConfiguration(): CallboxPromise<unknown>;
}
/**
 * Why a call ended: the cause words of docs/calls.md. `getEndCause()` and `getDetails().endCause` give these
 * words; `CallEndCause` names them in the legacy upper-case form, so `call.getEndCause() === CallEndCause.HUNG_UP`
 * reads as code written for the legacy SDK does.
 */
export type CallEndCauseWord = "canceled" | "denied" | "no_answer" | "hung_up" | "failure" | "timeout" | "other_device_answered" | "revoked";
/** The end causes under their legacy upper-case names; each value is the docs/calls.md word. */
export declare const CallEndCause: Readonly<{
    readonly CANCELED: "canceled";
    readonly DENIED: "denied";
    readonly NO_ANSWER: "no_answer";
    readonly HUNG_UP: "hung_up";
    readonly FAILURE: "failure";
    readonly TIMEOUT: "timeout";
    readonly OTHER_DEVICE_ANSWERED: "other_device_answered";
    readonly REVOKED: "revoked";
}>;
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
    readonly localDescription: {
        type: string;
        sdp: string;
    } | null;
    onicecandidate: ((event: any) => void) | null;
    ontrack: ((event: any) => void) | null;
    onconnectionstatechange: ((event: any) => void) | null;
    oniceconnectionstatechange: ((event: any) => void) | null;
    addTrack(track: any, ...streams: any[]): unknown;
    createOffer(): Promise<{
        type: string;
        sdp?: string;
    }>;
    createAnswer(): Promise<{
        type: string;
        sdp?: string;
    }>;
    setLocalDescription(description: {
        type: string;
        sdp?: string;
    }): Promise<void>;
    setRemoteDescription(description: {
        type: string;
        sdp: string;
    }): Promise<void>;
    addIceCandidate(candidate: RTCIceCandidateInit): Promise<void>;
    getStats?(): Promise<any>;
    close(): void;
}
/** The media stream the SDK needs from `getUserMedia`: its tracks (each with `enabled` and `stop()`). */
export interface MediaStreamLike {
    getTracks(): {
        kind: string;
        enabled: boolean;
        stop(): void;
    }[];
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
/** One call, outgoing (`callClient.callUser()`) or incoming (`onIncomingCall`). */
export declare class Call {
    #private;
    /** Callbox's call id (a UUIDv7): null for an outgoing call until Callbox placed it. */
    callId: string | null;
    /** The caller's user id. */
    readonly fromId: string;
    /** The callee's user id. */
    readonly toId: string;
    readonly direction: "incoming" | "outgoing";
    /** The caller's `headers` (an outgoing call: the ones given to `callUser()`). */
    readonly headers: CallHeaders;
    /** The remote side's audio, once it arrived (set it as an `<audio>` element's `srcObject`). */
    incomingStream: MediaStream | null;
    /**
     * `URL.createObjectURL(incomingStream)` where the browser still allows it (legacy pages set it as `src`).
     * Current browsers removed object URLs of a MediaStream: there it stays null; use `incomingStream` as
     * `srcObject` instead.
     */
    incomingStreamURL: string | null;
    /** This side's microphone stream, once opened. */
    outgoingStream: MediaStreamLike | null;
    /** The WebRTC peer connection (for `getStats()`), once made. */
    peerConnection: PeerConnectionLike | null;
    /** @internal */ _state: CallState;
    /** @internal */ _started: Date;
    /** @internal */ _answered: Date | null;
    /** @internal */ _established: Date | null;
    /** @internal */ _ended: Date | null;
    /** @internal */ _durationMs: number;
    /** @internal */ _cause: CallEndCauseWord | null;
    /** @internal */ _endedBy: string | null;
    /** @internal */ _detail: string | null;
    /** @internal */ _error: CallboxError | null;
    /** @internal */ _muted: boolean;
    /** @internal */
    constructor(owner: CallClient, direction: "incoming" | "outgoing", fromId: string, toId: string, headers: CallHeaders, started: Date);
    /** Where the call is: `initiating`, `ringing`, `answered`, `established` or `ended`. */
    get state(): CallState;
    /** Whether `mute()` is in force. */
    get muted(): boolean;
    addEventListener(listener: CallListener): void;
    removeEventListener(listener: CallListener): void;
    /**
     * Answers a ringing incoming call: opens the microphone, answers the offer, and resolves once Callbox took
     * the answer. `.fail()` gets `microphone_unavailable` (the call ends with `failure`, and is declined), or
     * Callbox's refusal such as `call_already_answered` (another device was first) or `not_found` (it ended).
     */
    answer(): CallboxPromise<void>;
    /**
     * Ends the call: an outgoing call not answered yet is canceled, a ringing incoming one declined, an answered
     * one hung up. Resolves once it ended (`onCallEnded` has fired).
     */
    hangup(): CallboxPromise<void>;
    /** Declines a ringing incoming call (as `hangup()` does for one). */
    decline(): CallboxPromise<void>;
    /** Stops sending this side's audio (the microphone stays open; its track is disabled). */
    mute(): void;
    unmute(): void;
    /** The docs/calls.md cause word (compare with `CallEndCause.HUNG_UP` etc.); null while the call goes on. */
    getEndCause(): CallEndCauseWord | null;
    getDetails(): CallDetails;
    /** The peer connection's statistics (`RTCPeerConnection.getStats()`); null before it exists. */
    getStats(): CallboxPromise<RTCStatsReport | null>;
    /** @internal */
    _emit(name: keyof CallListener, log: (level: LogMessage["level"], message: string) => void): void;
}
/**
 * Calls, for a session granted the `calling` capability; `client.getCallClient()` returns it. It uses the
 * client's realtime connection (no second socket) and, after a reconnect, rejoins the calls that go on.
 */
export declare class CallClient {
    #private;
    /** @internal */
    constructor(context: CallingContext);
    /**
     * Calls a user of this application. Returns the call at once; `onCallProgressing` fires when the callee's
     * device rings, `onCallEstablished` when media flows, `onCallEnded` at the end (a refusal, such as
     * `rate_limited` or `too_many_calls`, or a microphone that could not be opened, ends it with `failure` and the
     * error in `getDetails().error`).
     */
    callUser(userId: string, headers?: CallHeaders): Call;
    /** Adds a listener; the first one with `onIncomingCall` also gets the calls ringing since before it. */
    addEventListener(listener: CallClientListener): void;
    removeEventListener(listener: CallClientListener): void;
    /** The calls that go on (not ended), outgoing and incoming. */
    getCalls(): Call[];
    /** @internal */
    _answer(call: Call): Promise<void>;
    /** @internal */
    _hangup(call: Call, failure: CallboxError | null): Promise<void>;
    /** @internal */
    _applyMute(call: Call): void;
    /** The client's session ended or was terminated: every call ends here (terminate hangs them up first). */
    /** @internal */
    _shutdown(cause: CallEndCauseWord, error: CallboxError | null, hangUp: boolean): void;
}
/** The Callbox client; also exported as `SinchClient`. */
export declare class Client {
    #private;
    readonly applicationKey: string;
    readonly capabilities: Capabilities;
    readonly url: string;
    constructor(options: ClientOptions);
    /** Adds a listener for the client's life: started, failed, stopped, connection state. */
    addListener(listener: ClientListener): void;
    removeListener(listener: ClientListener): void;
    /** The realtime connection's state (`idle` when none was asked for, or no WebSocket is available). */
    getConnectionState(): ConnectionState;
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
    /**
     * Messaging (the same object on every call); throws `capability_not_granted` when the session has no
     * `messaging` capability.
     */
    getMessageClient(): MessageClient;
    /**
     * Calls (the same object on every call); throws `capability_not_granted` when the session has no `calling`
     * capability (ask for it with `capabilities: {calling: true}`).
     */
    getCallClient(): CallClient;
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
