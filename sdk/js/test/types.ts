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
