// The demo page: the two documented ways of starting a session, against the demo application, and a call panel
// (sign in as two users in two tabs and call one from the other).
// The session is kept in sessionStorage so that a reload resumes it (a real app decides where to keep it).
import { Client } from "../sdk/callbox.js";

const STORE = "callbox-demo-session";
const $ = (id) => document.getElementById(id);
const key = document.body.dataset.applicationKey;

let client = null;
/** The call on screen (one at a time; another incoming call meanwhile is declined). */
let current = null;
let callsReady = false;

function setState(state) {
  document.body.dataset.state = state;
}

function showError(error) {
  const reason = error && error.reason ? error.reason : "error";
  $("error").textContent = `${reason}: ${error && error.message ? error.message : String(error)}`;
  $("error").hidden = false;
  $("error").dataset.reason = reason;
  setState("error");
}

async function signedIn(how) {
  const session = client.getSession();
  sessionStorage.setItem(STORE, JSON.stringify(session));
  $("error").hidden = true;
  $("status").textContent = `${how}: signed in as ${session.userId} (session ${session.sessionId}, capabilities: ${client.getCapabilities().join(", ") || "none"})`;
  $("profile").textContent = JSON.stringify(await client.getUserProfile(), null, 2);
  $("session").hidden = false;
  $("forms").hidden = true;
  $("calls").hidden = !client.getCapabilities().includes("calling");
  if (!$("calls").hidden) setUpCalls();
  setState("signed-in");
}

function signedOut() {
  sessionStorage.removeItem(STORE);
  $("session").hidden = true;
  $("calls").hidden = true;
  $("forms").hidden = false;
  setState("signed-out");
}

function credentials() {
  return { username: $("username").value.trim(), password: $("password").value };
}

function parseTicket(text) {
  const t = text.trim();
  return t.startsWith("{") ? JSON.parse(t) : t;
}

function run(promise) {
  return promise.fail(showError);
}

// -- calls ---------------------------------------------------------------------------------------------------

/** The status line and which buttons show, for the call on screen (or none). */
function showCall(text) {
  const state = current ? current.state : "idle";
  $("call-status").textContent = text;
  $("call-status").dataset.callState = state;
  const incomingRinging = current && current.direction === "incoming" && state === "ringing";
  const live = current && state !== "ended";
  $("call").hidden = !!live;
  $("callee").disabled = !!live;
  $("answer").hidden = !incomingRinging;
  $("decline").hidden = !incomingRinging;
  $("hangup").hidden = !live || incomingRinging;
  $("mute").hidden = !live || incomingRinging;
  $("mute").textContent = current && current.muted ? "Unmute" : "Mute";
}

function peerOf(call) {
  return call.direction === "outgoing" ? call.toId : call.fromId;
}

/** Follows a call's events on screen. */
function follow(call) {
  current = call;
  call.addEventListener({
    onCallProgressing: (c) => c === current && showCall(`Ringing at ${c.toId}…`),
    onCallEstablished: (c) => {
      if (c !== current) return;
      // Object URLs of a MediaStream are gone from current browsers: the stream is the element's srcObject.
      $("remote-audio").srcObject = c.incomingStream;
      $("remote-audio").play().catch(() => {});
      showCall(`In call with ${peerOf(c)}`);
    },
    onCallEnded: (c) => {
      if (c !== current) return;
      $("remote-audio").srcObject = null;
      const details = c.getDetails();
      const why = details.error ? ` (${details.error.reason}: ${details.error.message})` : "";
      showCall(`Call with ${peerOf(c)} ended: ${c.getEndCause()}, ${details.duration} s${why}`);
    },
  });
}

function setUpCalls() {
  if (callsReady) return;
  callsReady = true;
  const calls = client.getCallClient();
  calls.addEventListener({
    onIncomingCall: (call) => {
      if (current && current.state !== "ended") {
        call.hangup(); // busy with another call
        return;
      }
      follow(call);
      showCall(`Incoming call from ${call.fromId}`);
    },
  });
  $("call").addEventListener("click", () => {
    const callee = $("callee").value.trim();
    if (!callee) {
      showError({ reason: "invalid_argument", message: "type the user id to call" });
      return;
    }
    $("error").hidden = true;
    follow(calls.callUser(callee));
    showCall(`Calling ${callee}…`);
  });
  $("answer").addEventListener("click", () => {
    const call = current;
    showCall(`Answering ${call.fromId}…`);
    call.answer().then(() => call === current && call.state === "answered" && showCall(`Connecting to ${call.fromId}…`)).fail(() => {});
  });
  $("decline").addEventListener("click", () => current && current.hangup());
  $("hangup").addEventListener("click", () => current && current.hangup());
  $("mute").addEventListener("click", () => {
    if (!current) return;
    if (current.muted) current.unmute();
    else current.mute();
    showCall($("call-status").textContent);
  });
  showCall("No call.");
}

if (!key) {
  $("no-demo-app").hidden = false;
  setState("no-demo-app");
} else {
  $("app-key").textContent = key;
  client = new Client({ applicationKey: key, capabilities: { messaging: true, calling: true } });
  window.callboxDemoClient = client;

  $("start-ticket").addEventListener("click", () => {
    let ticket;
    try {
      ticket = parseTicket($("ticket").value);
    } catch {
      showError({ reason: "malformed_ticket", message: "that is not JSON" });
      return;
    }
    run(client.start(ticket).then(() => signedIn("ticket from a backend")));
  });
  $("login").addEventListener("click", () => {
    run(client.start(credentials()).then(() => signedIn("platform-managed login")));
  });
  $("signup").addEventListener("click", () => {
    run(client.newUser(credentials()).then((ticket) => client.start(ticket)).then(() => signedIn("new platform-managed user")));
  });
  $("logout").addEventListener("click", () => {
    run(client.terminate().then(signedOut));
  });

  const saved = sessionStorage.getItem(STORE);
  if (saved) {
    client.start(JSON.parse(saved))
      .then(() => signedIn("resumed saved session"))
      .fail((error) => {
        signedOut();
        showError(error);
      });
  } else {
    signedOut();
  }
}
