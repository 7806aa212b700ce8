// Compiled (not run) by test.sh against dist/callbox.d.ts: code written for the legacy SDK's messaging shape
// type-checks, and misuse does not (each @ts-expect-error must be an error, or tsc fails).
import {
  SinchClient,
  CallboxError,
  type Message,
  type MessageClient,
  type MessageClientListener,
  type MessageDeliveryInfo,
  type MessageFailureInfo,
  type ClientListener,
  type ConnectionState,
  type Call,
  type CallClient,
  type CallDetails,
  type CallEndCauseWord,
  CallEndCause,
} from "../dist/callbox.js";

const client = new SinchClient({ applicationKey: "key", capabilities: { messaging: true } });
client.start({ username: "alice", password: "pw" }).then(() => {
  const messageClient: MessageClient = client.getMessageClient();
  const listener: MessageClientListener = {
    onIncomingMessage(message: Message) {
      const id: string | null = message.messageId;
      const from: string = message.senderId;
      const to: string[] = message.recipientIds;
      const text: string = message.textBody;
      const when: Date = message.timestamp;
      const headers: Record<string, unknown> = message.headers;
      void [id, from, to, text, when, headers];
    },
    onMessageDelivered(info: MessageDeliveryInfo) {
      const at: Date = info.timestamp;
      void [info.messageId, info.recipientId, at];
    },
    onMessageFailed(info: MessageFailureInfo) {
      const error: CallboxError = info.error;
      void [info.reason, error.code];
    },
  };
  messageClient.addEventListener(listener);
  const message = messageClient.newMessage(["bob", "carol"], "hi", { topic: "greeting" });
  messageClient.newMessage("bob", "hi");
  messageClient
    .send(message)
    .then((sent: Message) => sent.messageId)
    .fail((error: CallboxError) => error.retryAfter);
  messageClient.removeEventListener(listener);
  // @ts-expect-error recipients are user ids
  messageClient.newMessage(42, "hi");
  // @ts-expect-error the text is a string
  messageClient.newMessage("bob", { text: "hi" });
});
const lifecycle: ClientListener = {
  onClientFailed(_client, error) {
    const reason: string = error.reason;
    void reason;
  },
  onClientStopped(_client, error: CallboxError | null) {
    void error;
  },
  onConnectionStateChanged(_client, state: ConnectionState) {
    // @ts-expect-error not a state
    const wrong: typeof state = "open";
    void wrong;
  },
};
client.addListener(lifecycle);
client.removeListener(lifecycle);

// The browser's own WebSocket class fits the realtime option (as does the `ws` package's, used by the tests).
new SinchClient({ applicationKey: "key", realtime: { WebSocket, deadAfterMs: 35000 } });

// Calls, as code written for the legacy SDK's call shape writes them.
const caller = new SinchClient({
  applicationKey: "key",
  capabilities: { messaging: true, calling: true },
  calls: { rtcConfiguration: { iceTransportPolicy: "relay" }, mediaTimeoutMs: 10000 },
});
caller.start({ username: "alice", password: "pw" }).then(() => {
  const callClient: CallClient = caller.getCallClient();
  const callListener = {
    onCallProgressing(call: Call) {
      void call.state;
    },
    onCallEstablished(call: Call) {
      const stream: MediaStream | null = call.incomingStream;
      const url: string | null = call.incomingStreamURL;
      void [stream, url];
    },
    onCallEnded(call: Call) {
      const details: CallDetails = call.getDetails();
      const seconds: number = details.duration;
      const started: Date = details.startedTime;
      const established: Date | null = details.establishedTime;
      const cause: CallEndCauseWord | null = call.getEndCause();
      const hungUp: boolean = cause === CallEndCause.HUNG_UP;
      void [seconds, started, established, details.endedTime, details.endCause, details.error, hungUp];
    },
  };
  callClient.addEventListener({
    onIncomingCall(call: Call) {
      const from: string = call.fromId;
      const direction: "incoming" | "outgoing" = call.direction;
      void [from, direction, call.callId, call.toId];
      call.addEventListener(callListener);
      call.answer().fail((error: CallboxError) => error.reason);
    },
  });
  const call: Call = callClient.callUser("bob", { topic: "support" });
  call.addEventListener(callListener);
  call.mute();
  call.unmute();
  call.hangup().then(() => call.getEndCause());
  // @ts-expect-error a user id is a string
  callClient.callUser(42);
  // @ts-expect-error not a cause word
  const wrong: CallEndCauseWord = "HUNG_UP";
  void wrong;
});
