// Unit tests of the built SDK (dist/callbox.js, the file Callbox serves), in Node with a fake fetch.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  SinchClient,
  CallboxError,
  CallboxPromise,
  contentMd5,
  stringToSign,
  signRequest,
  errorFromResponse,
  isoSeconds,
} from "../dist/callbox.js";

// PROTOCOL §4 vector.
const SECRET = "JViE5vDor0Sw3WllZka15Q==";
const BODY = '{"message":"Hello world"}';

test("signing: Content-MD5 of the PROTOCOL §4 vector", () => {
  assert.equal(contentMd5(BODY), "jANzQ+rgAHyf1MWQFSwvYw==");
  assert.equal(contentMd5(""), "");
});

test("signing: StringToSign and signature of the PROTOCOL §4 vector", async () => {
  assert.equal(
    stringToSign("POST", "jANzQ+rgAHyf1MWQFSwvYw==", "application/json", "2014-06-04T13:41:58Z", "/v1/sms/+46700000000"),
    'POST\njANzQ+rgAHyf1MWQFSwvYw==\napplication/json\nx-timestamp:2014-06-04T13:41:58Z\n/v1/sms/+46700000000',
  );
  const signed = await signRequest(SECRET, "POST", "/v1/sms/+46700000000", BODY, "application/json", "2014-06-04T13:41:58Z");
  assert.equal(signed.contentMd5, "jANzQ+rgAHyf1MWQFSwvYw==");
  assert.equal(signed.signature, "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=");
});

test("signing: a GET without body signs empty Content-MD5 and Content-Type", async () => {
  const { signature } = await signRequest(SECRET, "GET", "/v1/user/profile", "", "", "2014-06-04T13:41:58Z");
  const { createHmac } = await import("node:crypto");
  const expected = createHmac("sha256", Buffer.from(SECRET, "base64"))
    .update("GET\n\n\nx-timestamp:2014-06-04T13:41:58Z\n/v1/user/profile")
    .digest("base64");
  assert.equal(signature, expected);
});

test("signing: Content-MD5 covers the UTF-8 bytes of non-ASCII bodies", async () => {
  const { createHash } = await import("node:crypto");
  const body = '{"name":"Åsa 😀"}';
  assert.equal(contentMd5(body), createHash("md5").update(Buffer.from(body, "utf8")).digest("base64"));
});

test("X-Timestamp is ISO-8601 UTC to the second", () => {
  assert.equal(isoSeconds(Date.UTC(2014, 5, 4, 13, 41, 58, 123)), "2014-06-04T13:41:58Z");
});

test("errors: the §7 body maps to code, reason, message, retryable, response", () => {
  const body = { errorCode: 40102, message: "the signature does not match", reason: "bad_signature", retryable: false, serverTime: "2026-11-28T02:00:00Z" };
  const error = errorFromResponse(401, body);
  assert.ok(error instanceof CallboxError);
  assert.ok(error instanceof Error);
  assert.equal(error.code, 40102);
  assert.equal(error.reason, "bad_signature");
  assert.equal(error.message, "the signature does not match");
  assert.equal(error.retryable, false);
  assert.deepEqual(error.response, { status: 401, body });
  assert.equal(error.serverTime, "2026-11-28T02:00:00Z");
});

test("errors: locked_out carries retryAfter; a body without errorCode still maps", () => {
  const locked = errorFromResponse(429, { errorCode: 42900, reason: "locked_out", message: "m", retryable: true, retryAfter: 30 });
  assert.equal(locked.retryAfter, 30);
  assert.equal(locked.retryable, true);
  const fromHeader = errorFromResponse(429, { errorCode: 42900, reason: "rate_limited", message: "m", retryable: true }, "7");
  assert.equal(fromHeader.retryAfter, 7);
  const html = errorFromResponse(502, "<html>bad gateway</html>");
  assert.equal(html.code, 50200);
  assert.equal(html.reason, "internal_error");
  assert.equal(html.retryable, true);
  assert.equal(errorFromResponse(404, null).reason, "not_found");
});

// ---- a fake Callbox ----------------------------------------------------------------------------------------

const TICKET = "eyJhcHBsaWNhdGlvbktleSI6ImsifQ==:c2lnbmF0dXJl"; // shape only
const SESSION_SECRET = Buffer.from("0123456789abcdef0123456789abcdef").toString("base64");

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** A fetch that answers like Callbox; `overrides[path]` may answer first. Records every request. */
function fakeCallbox(overrides = {}) {
  const calls = [];
  let secret = SESSION_SECRET;
  let generation = 0;
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    const call = { method: init.method ?? "GET", path: u.pathname, headers: init.headers ?? {}, body: init.body ?? "" };
    calls.push(call);
    const override = overrides[`${call.method} ${call.path}`];
    if (override) {
      const answer = await override(call, calls);
      if (answer) return answer;
    }
    if (call.path === "/v1/timestamp") return json(200, { timestamp: new Date().toISOString() });
    if (call.method === "POST" && call.path === "/v1/users/username/alice/authentication") {
      return JSON.parse(call.body).password === "somethingSecure"
        ? json(200, { authorization: TICKET, user: { identities: [{ type: "username", endpoint: "alice" }] } })
        : json(401, { errorCode: 40100, reason: "invalid_credentials", message: "wrong username or password", retryable: false });
    }
    if (call.method === "POST" && call.path === "/v1/instance") {
      return json(200, { id: "sess1", secret, expiresIn: 3600, capabilities: ["messaging"] });
    }
    if (call.method === "PUT" && call.path === "/v1/instances/id/sess1/authorization") {
      generation += 1;
      secret = Buffer.from(`0123456789abcdef0123456789abcde${generation}`).toString("base64");
      return json(200, { id: "sess1", secret, expiresIn: 3600 });
    }
    // Every other call must be signed with the current secret.
    const auth = call.headers.Authorization ?? "";
    const m = /^Instance ([^:]+):(.+)$/.exec(auth);
    if (!m) return json(401, { errorCode: 40100, reason: "missing_authorization", message: "m", retryable: false });
    const contentType = call.headers["Content-Type"] ?? "";
    const { signature } = await signRequest(secret, call.method, call.path, call.body, contentType, call.headers["X-Timestamp"]);
    if (signature !== m[2]) return json(401, { errorCode: 40102, reason: "bad_signature", message: "m", retryable: false });
    if (call.path === "/v1/instances/id/sess1" && call.method === "GET") {
      return json(200, { id: "sess1", userId: "alice", capabilities: ["messaging"], expiresAt: new Date(Date.now() + 3600e3).toISOString() });
    }
    if (call.path === "/v1/instances/id/sess1" && call.method === "DELETE") return new Response(null, { status: 204 });
    if (call.path === "/v1/user/profile") return json(200, { identities: [{ type: "username", endpoint: "alice" }] });
    return json(404, { errorCode: 40400, reason: "not_found", message: "m", retryable: false });
  };
  return { fetch, calls };
}

test("start with username and password: logs in, exchanges the ticket, signs the session calls", async () => {
  const { fetch, calls } = fakeCallbox();
  const logs = [];
  const client = new SinchClient({ applicationKey: "k", capabilities: { messaging: true }, url: "http://cb.test/", fetch, onLogMessage: (m) => logs.push(m.message) });
  assert.equal(SinchClient, Client);
  const promise = client.start({ username: "alice", password: "somethingSecure" });
  assert.ok(promise instanceof CallboxPromise);
  assert.equal(typeof promise.fail, "function");
  const session = await promise;
  assert.deepEqual(session, { userId: "alice", sessionId: "sess1", sessionSecret: SESSION_SECRET });
  assert.deepEqual(client.getSession(), session);
  assert.deepEqual(await client.getUserProfile(), { identities: [{ type: "username", endpoint: "alice" }] });
  const exchange = calls.find((c) => c.method === "POST" && c.path === "/v1/instance");
  assert.equal(exchange.headers.Authorization, `User ${TICKET}`);
  assert.deepEqual(JSON.parse(exchange.body).services, { im: true });
  assert.equal(calls[0].path, "/v1/timestamp");
  assert.ok(client.getMessageClient());
  await client.terminate();
  assert.equal(client.getSession(), null);
  // Nothing secret was logged.
  for (const line of logs) {
    for (const secret of ["somethingSecure", TICKET, SESSION_SECRET]) assert.ok(!line.includes(secret), line);
  }
});

test("start: a failure reaches .fail() as a CallboxError", async () => {
  const { fetch } = fakeCallbox();
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch });
  const error = await new Promise((resolve) => {
    client.start({ username: "alice", password: "wrong" }).then(() => resolve(null)).fail(resolve);
  });
  assert.ok(error instanceof CallboxError);
  assert.equal(error.code, 40100);
  assert.equal(error.reason, "invalid_credentials");
  assert.equal(error.response.status, 401);
  assert.equal(client.getSession(), null);
});

test("start: a bare JWT string goes out as Bearer, {jwt} too", async () => {
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
  for (const credential of [jwt, { jwt }]) {
    const { fetch, calls } = fakeCallbox();
    const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch });
    await client.start(credential);
    assert.equal(calls.find((c) => c.path === "/v1/instance").headers.Authorization, `Bearer ${jwt}`);
  }
});

test("start: a saved session resumes without a ticket", async () => {
  const { fetch, calls } = fakeCallbox();
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch });
  await client.start({ userId: "alice", sessionId: "sess1", sessionSecret: SESSION_SECRET });
  assert.equal(client.getSession().sessionId, "sess1");
  assert.ok(!calls.some((c) => c.path === "/v1/instance"));
});

test("getMessageClient throws capability_not_granted without messaging", async () => {
  const { fetch } = fakeCallbox({
    "GET /v1/instances/id/sess1": async (call) =>
      call.headers.Authorization?.startsWith("Instance sess1:")
        ? json(200, { id: "sess1", userId: "alice", capabilities: [], expiresAt: new Date(Date.now() + 3600e3).toISOString() })
        : null,
  });
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch });
  await client.start({ userTicket: TICKET });
  assert.throws(() => client.getMessageClient(), (e) => e instanceof CallboxError && e.reason === "capability_not_granted" && e.code === 40300);
});

test("a network failure is a retryable CallboxError", async () => {
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch: async () => { throw new TypeError("Failed to fetch"); } });
  await assert.rejects(client.start({ userTicket: TICKET }), (e) => e instanceof CallboxError && e.reason === "network_error" && e.retryable === true);
});

test("refresh: two calls racing an expiry cause one provider call", async () => {
  let expired = false;
  const { fetch, calls } = fakeCallbox({
    "GET /v1/user/profile": async (call) => {
      // Both calls made with the first secret find the session expired.
      if (expired && call.headers.Authorization.startsWith("Instance sess1:")) {
        const { signature } = await signRequest(SESSION_SECRET, "GET", call.path, "", "", call.headers["X-Timestamp"]);
        if (call.headers.Authorization === `Instance sess1:${signature}`) {
          return json(401, { errorCode: 40100, reason: "session_expired", message: "the session has expired", retryable: false });
        }
      }
      return null;
    },
  });
  let providerCalls = 0;
  const provider = async () => {
    providerCalls += 1;
    await new Promise((r) => setTimeout(r, 20));
    return { userTicket: TICKET };
  };
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch });
  await client.start(provider);
  assert.equal(providerCalls, 1);
  expired = true;
  const [a, b] = await Promise.all([client.getUserProfile(), client.getUserProfile()]);
  assert.deepEqual(a, b);
  assert.equal(providerCalls, 2, "one refresh for both calls");
  assert.equal(calls.filter((c) => c.method === "PUT").length, 1);
  assert.notEqual(client.getSession().sessionSecret, SESSION_SECRET);
  await client.terminate();
});

test("refresh: a session about to expire is refreshed before the call, once for concurrent calls", async () => {
  let expiresIn = 30; // within the 60 s margin
  const { fetch, calls } = fakeCallbox({
    "GET /v1/instances/id/sess1": async (call) => {
      if (!call.headers.Authorization?.startsWith("Instance sess1:")) return null;
      const at = new Date(Date.now() + expiresIn * 1000).toISOString();
      expiresIn = 3600;
      return json(200, { id: "sess1", userId: "alice", capabilities: ["messaging"], expiresAt: at });
    },
  });
  let providerCalls = 0;
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch, refreshMarginSeconds: 60 });
  // The background timer would refresh at once too; it joins the same single flight.
  await client.start(() => {
    providerCalls += 1;
    return Promise.resolve(TICKET);
  });
  await Promise.all([client.getUserProfile(), client.getUserProfile(), client.getUserProfile()]);
  assert.equal(providerCalls, 2);
  assert.equal(calls.filter((c) => c.method === "PUT").length, 1);
  await client.terminate();
});

test("calls before start fail with not_started; bad arguments are refused", async () => {
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch: fakeCallbox().fetch });
  await assert.rejects(client.getUserProfile(), (e) => e.reason === "not_started");
  assert.throws(() => new Client({}), (e) => e.reason === "invalid_argument");
  await assert.rejects(client.start({ nonsense: true }), (e) => e.reason === "invalid_argument");
});

test("newUser resolves to something start() accepts", async () => {
  const { fetch } = fakeCallbox({
    "POST /v1/users": async (call) => {
      const body = JSON.parse(call.body);
      assert.deepEqual(body.identities, [{ type: "username", endpoint: "bob" }]);
      return json(200, { authorization: TICKET, user: { identities: body.identities } });
    },
  });
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch });
  const ticket = await client.newUser({ username: "bob", password: "correct horse" });
  assert.deepEqual(ticket, { userTicket: TICKET });
  await client.start(ticket);
  assert.equal(client.getSession().sessionId, "sess1");
});

test("start: a failure half-way leaves no session behind", async () => {
  const { fetch } = fakeCallbox({
    "GET /v1/instances/id/sess1": async () => json(401, { errorCode: 40102, reason: "bad_signature", message: "m", retryable: false }),
  });
  const client = new Client({ applicationKey: "k", url: "http://cb.test", fetch });
  await assert.rejects(client.start({ userTicket: TICKET }), (e) => e.reason === "bad_signature");
  assert.equal(client.getSession(), null);
});

test("the script-tag bundle defines the globals Callbox and SinchClient", async () => {
  const { readFileSync } = await import("node:fs");
  const vm = await import("node:vm");
  const code = readFileSync(new URL("../dist/callbox.min.js", import.meta.url), "utf8");
  const context = vm.createContext({});
  vm.runInContext(code, context);
  assert.equal(typeof context.Callbox.Client, "function");
  assert.equal(context.SinchClient, context.Callbox.SinchClient);
  assert.equal(context.Callbox.SinchClient, context.Callbox.Client);
});
