// A client of Callbox's own SDK (sdk/js, the WebSocket at /v1/realtime) in Debian's Chromium, for the tests where
// it meets legacy SDK clients on the same server (interop.test.mjs). The page and the SDK bundle come from the
// callbox under test itself (`/demo`, `/sdk/callbox.min.js`) over the same TLS listener the legacy clients use
// (https://127.0.0.1, port 443), so the page's origin, API calls and WebSocket are all that one server.
//
// Trusting the test certificate: Chromium is told to accept exactly its key,
// `--ignore-certificate-errors-spki-list=<base64 SHA-256 of the SubjectPublicKeyInfo>`, not every certificate
// (`--ignore-certificate-errors`, playwright's `ignoreHTTPSErrors`). Chromium honours the flag only with a
// `--user-data-dir`, which playwright always passes.
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { chromiumArgs } from "../../lib/sdk-servers.mjs";

/**
 * The base64 SHA-256 of the SubjectPublicKeyInfo of the certificate in `certPath`, as openssl computes it
 * (`openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`), checked
 * against Node's own reading of the certificate.
 */
export function spkiHash(certPath) {
  const pem = execFileSync("openssl", ["x509", "-in", certPath, "-pubkey", "-noout"], { encoding: "utf8" });
  const der = execFileSync("openssl", ["pkey", "-pubin", "-outform", "der"], { input: pem });
  const fromOpenssl = createHash("sha256").update(der).digest("base64");
  const spki = new X509Certificate(readFileSync(certPath)).publicKey.export({ type: "spki", format: "der" });
  const fromNode = createHash("sha256").update(spki).digest("base64");
  if (fromOpenssl !== fromNode) throw new Error(`SPKI hash: openssl says ${fromOpenssl}, node ${fromNode}`);
  return fromOpenssl;
}

/** Debian's Chromium trusting exactly the key of the certificate in `certPath`. */
export function launchChromium(certPath) {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [...chromiumArgs, `--ignore-certificate-errors-spki-list=${spkiHash(certPath)}`],
  });
}

/**
 * A page of `origin` (the server's https origin) with Callbox's SDK started as `ticket` ({userTicket}) for the
 * app `key`, messaging on. In the page: `window.chat` (the client), `window.seen` (every incoming message,
 * delivery and failure the SDK reported) and `window.sent` (every frame the SDK sent on its WebSocket, by type and
 * message id: how the test sees the SDK confirm a message). Resolves to {context, page, session, errors}.
 */
export async function openBrowserClient(browser, { origin, key, ticket, timeoutMs = 15000 }) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    const sent = [];
    window.sent = sent;
    window.WebSocket = class extends Native {
      send(data) {
        try {
          const frame = JSON.parse(data);
          sent.push({ type: frame.type, messageId: frame.messageId ?? null });
        } catch {
          sent.push({ type: null, messageId: null });
        }
        super.send(data);
      }
    };
  });
  const page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  try {
    await page.goto(`${origin}/demo`);
    await page.addScriptTag({ url: `${origin}/sdk/callbox.min.js` });
    const session = await page.evaluate(
      ([key, ticket]) => {
        const seen = { incoming: [], delivered: [], failed: [], clientFailed: [] };
        window.seen = seen;
        const client = new Callbox.SinchClient({ applicationKey: key, capabilities: { messaging: true } });
        window.chat = client;
        client.addListener({
          onClientFailed: (_c, error) => seen.clientFailed.push({ reason: error.reason, code: error.code }),
        });
        return client.start(ticket).then((session) => {
          client.getMessageClient().addEventListener({
            onIncomingMessage: (m) =>
              seen.incoming.push({
                messageId: m.messageId,
                senderId: m.senderId,
                recipientIds: m.recipientIds,
                textBody: m.textBody,
                headers: m.headers,
              }),
            onMessageDelivered: (info) => seen.delivered.push({ messageId: info.messageId, recipientId: info.recipientId }),
            onMessageFailed: (info) =>
              seen.failed.push({ messageId: info.messageId, recipientId: info.recipientId, reason: info.reason }),
          });
          return { userId: session.userId, sessionId: session.sessionId };
        });
      },
      [key, ticket],
    );
    await page.waitForFunction(() => window.chat.getConnectionState() === "connected");
    return { context, page, session, errors };
  } catch (error) {
    await context.close();
    throw error;
  }
}

/** Sends `text` (with `headers`, if any) from the page's client; resolves to the message id Callbox gave it. */
export function sendFromPage(page, recipients, text, headers) {
  return page.evaluate(
    ([recipients, text, headers]) =>
      new Promise((resolve, reject) => {
        const messaging = window.chat.getMessageClient();
        messaging
          .send(messaging.newMessage(recipients, text, headers ?? undefined))
          .then((m) => resolve(m.messageId))
          .fail((e) => reject(new Error(`${e.reason}: ${e.message}`)));
      }),
    [recipients, text, headers ?? null],
  );
}
