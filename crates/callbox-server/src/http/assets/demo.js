// The demo page: the two documented ways of starting a session, against the demo application.
// The session is kept in sessionStorage so that a reload resumes it (a real app decides where to keep it).
import { Client } from "../sdk/callbox.js";

const STORE = "callbox-demo-session";
const $ = (id) => document.getElementById(id);
const key = document.body.dataset.applicationKey;

let client = null;

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
  setState("signed-in");
}

function signedOut() {
  sessionStorage.removeItem(STORE);
  $("session").hidden = true;
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

if (!key) {
  $("no-demo-app").hidden = false;
  setState("no-demo-app");
} else {
  $("app-key").textContent = key;
  client = new Client({ applicationKey: key, capabilities: { messaging: true } });
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
