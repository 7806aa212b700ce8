// The first documented snippet, as a real app writes it. `$.post` is a ten-line stand-in for jQuery's, so the
// page needs nothing but the Callbox SDK (the script-tag bundle, which defines `SinchClient` as the legacy SDK did).
var $ = {
  post: function (url, data, success, onError) {
    fetch(url, { method: "POST", body: new URLSearchParams(data), credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
          return body;
        });
      })
      .then(success, onError);
  },
};

var body = document.body;
var client = new SinchClient({
  applicationKey: body.dataset.applicationKey,
  capabilities: { messaging: true },
  url: body.dataset.callboxUrl,
});
window.partnerClient = client;

function show(id, text) {
  var el = document.getElementById(id);
  el.textContent = text;
  el.hidden = false;
}

document.getElementById("login-form").addEventListener("submit", function (event) {
  event.preventDefault();
  var username = document.getElementById("username").value;
  var password = document.getElementById("password").value;
  $.post("/auth", { username: username, password: password }, function (authTicket) {
    client.start(authTicket).then(function () {
      // Show the UI.
      document.getElementById("error").hidden = true;
      show("status", "Signed in as " + client.getSession().userId);
      body.dataset.state = "signed-in";
    }).fail(function (error) {
      show("error", error.reason + ": " + error.message);
      body.dataset.state = "error";
    });
  }, function (error) {
    show("error", error.message);
    body.dataset.state = "error";
  });
});
