// Browser end-to-end tests of the JS SDK, in Debian's Chromium (playwright-core), against real `callbox serve`
// and `partner-backend` processes on loopback. (1)-(8) are the cases of issue 4.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startCallbox, startListening, partnerBin, mintTicket, chromiumArgs, repoRoot } from "./lib/sdk-servers.mjs";

const PASSWORD = "somethingSecure";
const screenshots = join(repoRoot, "e2e", "screenshots");

let callbox;
let partner;
let browser;
let demoKey;
let partnerApp;

before(async () => {
  callbox = await startCallbox();
  partnerApp = await callbox.createApp({ name: "Partner app", allowedOrigins: ["*"], platformUserAuth: false });
  partner = await startListening(partnerBin, ["--listen", "127.0.0.1:0"], {
    CALLBOX_URL: callbox.url,
    PARTNER_APP_KEY: partnerApp.key,
    PARTNER_APP_SECRET: partnerApp.secret,
    PARTNER_USERS: `alice:${PASSWORD}`,
  });
  // Only the partner page's own origin may use the partner app.
  await callbox.admin("PATCH", `/admin/v1/apps/${partnerApp.key}`, { allowedOrigins: [partner.url] });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: chromiumArgs });
});

after(async () => {
  await browser?.close();
  await partner?.stop();
  await callbox?.stop();
});

/** A fresh browser context (its own storage) and page, closed when the test ends. */
async function newPage(t) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  t.after(async () => {
    await context.close();
  });
  return { page, errors };
}

/** The demo page, signed out and ready. */
async function openDemo(t) {
  const { page, errors } = await newPage(t);
  await page.goto(`${callbox.url}/demo`);
  await page.waitForSelector("body[data-state=signed-out]");
  if (!demoKey) demoKey = await page.getAttribute("body", "data-application-key");
  assert.ok(demoKey, "the demo page names the demo application");
  return { page, errors };
}

/** Loads the script-tag bundle (global `Callbox`) into the page. */
async function withBundle(page) {
  await page.addScriptTag({ url: `${callbox.url}/sdk/callbox.min.js` });
  assert.equal(await page.evaluate(() => typeof Callbox.SinchClient), "function");
}

/** Runs `client.start(credentials)` in the page with the given options; resolves to the outcome. */
function startInPage(page, options, credentials) {
  return page.evaluate(
    ([options, credentials]) =>
      new Promise((resolve) => {
        const client = new Callbox.Client(options);
        client
          .start(credentials)
          .then((session) => resolve({ ok: true, session }))
          .fail((error) =>
            resolve({
              ok: false,
              isCallboxError: error instanceof Callbox.CallboxError,
              code: error.code,
              reason: error.reason,
              status: error.response ? error.response.status : null,
              message: error.message,
            }),
          );
      }),
    [options, credentials],
  );
}

test("(1) first snippet: the partner page logs in at its backend's /auth and starts with the ticket", async (t) => {
  const { page, errors } = await newPage(t);
  await page.goto(partner.url);
  // A wrong password is refused by the partner backend itself.
  await page.fill("#username", "alice");
  await page.fill("#password", "wrong password");
  await page.click("#login");
  await page.waitForSelector("body[data-state=error]");
  assert.match(await page.textContent("#error"), /wrong username or password/);
  await page.fill("#password", PASSWORD);
  await page.click("#login");
  await page.waitForSelector("body[data-state=signed-in]");
  assert.equal(await page.textContent("#status"), "Signed in as alice");
  const session = await page.evaluate(() => window.partnerClient.getSession());
  assert.equal(session.userId, "alice");
  const live = await callbox.admin("GET", `/admin/v1/apps/${partnerApp.key}/sessions?userId=alice`);
  assert.ok(live.sessions.some((s) => s.id === session.sessionId), "Callbox holds the session");
  assert.deepEqual(errors, []);
});

test("(2) second snippet: start({username, password}) on the demo page; screenshot", async (t) => {
  const { page, errors } = await openDemo(t);
  await callbox.admin("POST", `/admin/v1/apps/${demoKey}/users`, { userId: "bob", password: PASSWORD });
  await page.fill("#username", "bob");
  await page.fill("#password", PASSWORD);
  await page.click("#login");
  await page.waitForSelector("body[data-state=signed-in]");
  assert.match(await page.textContent("#status"), /platform-managed login: signed in as bob/);
  assert.deepEqual(JSON.parse(await page.textContent("#profile")), { identities: [{ type: "username", endpoint: "bob" }] });
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, "demo.png"), fullPage: true });
  // The same snippet, word for word, with the script-tag bundle.
  await withBundle(page);
  const outcome = await page.evaluate(
    ([key, password]) =>
      new Promise((resolve, reject) => {
        var client = new Callbox.SinchClient({ applicationKey: key, capabilities: { messaging: true } });
        client.start({ username: "bob", password: password }).then(function () {
          resolve({ userId: client.getSession().userId, messaging: typeof client.getMessageClient().getConfiguration });
        }).fail(reject);
      }),
    [demoKey, PASSWORD],
  );
  assert.deepEqual(outcome, { userId: "bob", messaging: "function" });
  assert.deepEqual(errors, []);
});

test("demo page, flow 1: a ticket made by a backend (here: minted with a rotated demo secret) is pasted and started", async (t) => {
  const { page, errors } = await openDemo(t);
  const rotated = await callbox.admin("POST", `/admin/v1/apps/${demoKey}/secrets`);
  const ticket = mintTicket({ key: demoKey, secret: rotated.applicationSecret, user: "ivan" });
  await page.fill("#ticket", JSON.stringify({ userTicket: ticket }));
  await page.click("#start-ticket");
  await page.waitForSelector("body[data-state=signed-in]");
  assert.match(await page.textContent("#status"), /ticket from a backend: signed in as ivan/);
  assert.deepEqual(errors, []);
});

test("(3) newUser then start, and (4) a reload resumes the saved session", async (t) => {
  const { page, errors } = await openDemo(t);
  const name = `carol-${Date.now()}`;
  await page.fill("#username", name);
  await page.fill("#password", PASSWORD);
  await page.click("#signup");
  await page.waitForSelector("body[data-state=signed-in]");
  assert.match(await page.textContent("#status"), new RegExp(`new platform-managed user: signed in as ${name}`));
  const before = await page.evaluate(() => window.callboxDemoClient.getSession());
  assert.equal(before.userId, name);

  await page.reload();
  await page.waitForSelector("body[data-state=signed-in]");
  assert.match(await page.textContent("#status"), new RegExp(`resumed saved session: signed in as ${name}`));
  const afterReload = await page.evaluate(() => window.callboxDemoClient.getSession());
  assert.deepEqual(afterReload, before, "the same session, no new ticket");
  // The resumed session signs calls: the profile was read with it.
  assert.deepEqual(JSON.parse(await page.textContent("#profile")), { identities: [{ type: "username", endpoint: name }] });
  assert.deepEqual(errors, []);
});

test("(5) platformUserAuth off: .fail() receives platform_auth_disabled", async (t) => {
  const { page } = await openDemo(t);
  await withBundle(page);
  const app = await callbox.createApp({ name: "Going live", allowedOrigins: ["*"] });
  const signedUp = await page.evaluate(
    ([key, password]) => {
      const client = new Callbox.Client({ applicationKey: key });
      return client.newUser({ username: "dave", password }).then((ticket) => client.start(ticket)).then((s) => s.userId);
    },
    [app.key, PASSWORD],
  );
  assert.equal(signedUp, "dave");
  await callbox.admin("PATCH", `/admin/v1/apps/${app.key}`, { platformUserAuth: false });
  const login = await startInPage(page, { applicationKey: app.key }, { username: "dave", password: PASSWORD });
  assert.deepEqual(
    { ok: login.ok, isCallboxError: login.isCallboxError, code: login.code, reason: login.reason, status: login.status },
    { ok: false, isCallboxError: true, code: 40300, reason: "platform_auth_disabled", status: 403 },
  );
  const signUp = await page.evaluate(
    ([key, password]) =>
      new Promise((resolve) => {
        new Callbox.Client({ applicationKey: key }).newUser({ username: "erin", password }).then(() => resolve("ok")).fail((e) => resolve(e.reason));
      }),
    [app.key, PASSWORD],
  );
  assert.equal(signUp, "platform_auth_disabled");
});

test("(6) an expired ticket: .fail() receives ticket_expired", async (t) => {
  const { page } = await openDemo(t);
  await withBundle(page);
  const app = await callbox.createApp({ name: "Tickets", allowedOrigins: ["*"] });
  const expired = mintTicket({ ...app, user: "frank", created: new Date(Date.now() - 3600e3), expiresIn: 600 });
  const outcome = await startInPage(page, { applicationKey: app.key }, { userTicket: expired });
  assert.equal(outcome.ok, false);
  assert.equal(outcome.isCallboxError, true);
  assert.equal(outcome.reason, "ticket_expired");
  assert.equal(outcome.status, 401);
  assert.ok(!outcome.message.includes(expired), "the ticket is not echoed");
  // The same user with a fresh ticket gets in.
  const fresh = await startInPage(page, { applicationKey: app.key }, { userTicket: mintTicket({ ...app, user: "frank" }) });
  assert.equal(fresh.ok, true);
  assert.equal(fresh.session.userId, "frank");
});

test("(7) after terminate() a signed call fails", async (t) => {
  const { page, errors } = await openDemo(t);
  await callbox.admin("POST", `/admin/v1/apps/${demoKey}/users`, { userId: "grace", password: PASSWORD });
  await page.fill("#username", "grace");
  await page.fill("#password", PASSWORD);
  await page.click("#login");
  await page.waitForSelector("body[data-state=signed-in]");
  const saved = await page.evaluate(() => window.callboxDemoClient.getSession());
  await page.click("#logout");
  await page.waitForSelector("body[data-state=signed-out]");
  assert.equal(await page.evaluate(() => window.callboxDemoClient.getSession()), null);
  const local = await page.evaluate(() =>
    window.callboxDemoClient.getUserProfile().then(() => "ok", (e) => e.reason),
  );
  assert.equal(local, "not_started");
  // The saved secret no longer signs anything: resuming it is refused by Callbox.
  await withBundle(page);
  const resumed = await startInPage(page, { applicationKey: demoKey }, saved);
  assert.equal(resumed.ok, false);
  assert.equal(resumed.status, 401);
  assert.ok(["session_revoked", "session_expired"].includes(resumed.reason), resumed.reason);
  assert.deepEqual(errors, []);
});

test("(8) CORS: a page from an origin the application does not allow is refused", async (t) => {
  const { page } = await newPage(t);
  const closed = await callbox.createApp({ name: "Closed", allowedOrigins: ["https://app.example.com"] });
  await callbox.admin("POST", `/admin/v1/apps/${closed.key}/users`, { userId: "heidi", password: PASSWORD });
  await page.goto(partner.url); // origin 127.0.0.1:<partner port>, not allowed for `closed`
  const options = { applicationKey: closed.key, url: callbox.url };
  const login = await startInPage(page, options, { username: "heidi", password: PASSWORD });
  assert.equal(login.ok, false);
  assert.equal(login.reason, "origin_not_allowed");
  assert.equal(login.status, 403);
  const exchange = await startInPage(page, options, { userTicket: mintTicket({ ...closed, user: "heidi" }) });
  assert.equal(exchange.ok, false);
  assert.equal(exchange.reason, "origin_not_allowed");
  const sessions = await callbox.admin("GET", `/admin/v1/apps/${closed.key}/sessions`);
  assert.deepEqual(sessions.sessions, [], "no session was made");
  // The partner app, which allows this origin, works from the same page.
  const allowed = await startInPage(page, { applicationKey: partnerApp.key, url: callbox.url }, {
    userTicket: mintTicket({ ...partnerApp, user: "alice" }),
  });
  assert.equal(allowed.ok, true);
});

test("the server serves the SDK and the demo page with the right types and policy", async () => {
  const module = await fetch(`${callbox.url}/sdk/callbox.js`);
  assert.equal(module.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.match(await module.text(), /export \{/);
  const bundle = await fetch(`${callbox.url}/sdk/callbox.min.js`);
  assert.equal(bundle.headers.get("content-type"), "text/javascript; charset=utf-8");
  const demo = await fetch(`${callbox.url}/demo`);
  assert.equal(demo.headers.get("content-type"), "text/html; charset=utf-8");
  assert.match(demo.headers.get("content-security-policy"), /script-src 'self'/);
  assert.doesNotMatch(demo.headers.get("content-security-policy"), /unsafe-inline/);
});
