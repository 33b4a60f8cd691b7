// The saga page's script: refreshes the saga while it runs, and sends cancel and retry,
// with the operator's bearer token when the orchestrator asks for one.
(function () {
  "use strict";
  var section = document.getElementById("saga");
  if (!section) {
    return;
  }
  var sagaId = section.getAttribute("data-saga-id");
  var liveUrl = section.getAttribute("data-live-url");
  var tokenBox = document.getElementById("token-box");
  var tokenInput = document.getElementById("token");
  var operatorInput = document.getElementById("operator");
  var result = document.getElementById("action-result");
  var cancelButton = document.getElementById("cancel");
  var retryButton = document.getElementById("retry");
  var TOKEN_KEY = "saga-operator-token";
  var timer = null;

  function currentStatus() {
    var badge = document.getElementById("status");
    return badge ? badge.textContent.trim() : "";
  }

  function updateButtons() {
    var status = currentStatus();
    cancelButton.disabled = status !== "STARTED";
    cancelButton.title = cancelButton.disabled ? "Only a STARTED saga can be cancelled" : "";
    var finished = status !== "STARTED" && status !== "COMPENSATING";
    retryButton.disabled = !finished;
    retryButton.title = finished ? "" : "Retry is for a saga that has ended";
  }

  function schedule(delay) {
    if (timer !== null) {
      clearTimeout(timer);
    }
    timer = setTimeout(refresh, delay);
  }

  function refresh() {
    timer = null;
    if (section.getAttribute("data-final") === "true") {
      return;
    }
    fetch(liveUrl, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          section.innerHTML = html;
          if (!section.querySelector(".live")) {
            section.setAttribute("data-final", "true");
          }
          updateButtons();
        }
      })
      .catch(function () {})
      .then(function () {
        schedule(1000);
      });
  }

  function say(text, kind) {
    result.textContent = text;
    result.className = kind;
  }

  function act(action) {
    if (action === "cancel" && !window.confirm("Cancel this saga? Its completed steps will be undone.")) {
      return;
    }
    var token = tokenInput.value.trim() || window.sessionStorage.getItem(TOKEN_KEY) || "";
    var headers = { Accept: "application/json" };
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    var operator = operatorInput.value.trim();
    if (operator) {
      headers["X-Operator"] = operator;
    }
    var options = { method: "POST", headers: headers };
    if (action === "cancel") {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify({ reason: "cancelled by " + (operator || "an operator") + " from the saga page" });
    }
    say("Sending " + action + "…", "pending");
    fetch("/api/sagas/" + encodeURIComponent(sagaId) + "/" + action, options)
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (body) {
            return { status: response.status, body: body };
          });
      })
      .then(function (answer) {
        var error = answer.body && answer.body.error ? answer.body.error : "";
        if (answer.status === 401) {
          window.sessionStorage.removeItem(TOKEN_KEY);
          tokenBox.hidden = false;
          tokenInput.focus();
          say("Refused: " + (error || "the operator token is required") + ". Enter the operator token and press the button again.", "refused");
          return;
        }
        if (answer.status >= 200 && answer.status < 300) {
          if (token) {
            window.sessionStorage.setItem(TOKEN_KEY, token);
          }
          say("Done: " + action + " accepted; the saga is now " + (answer.body.status || "changing") + ".", "done");
          section.setAttribute("data-final", "false");
          schedule(0);
          return;
        }
        say("Not done (HTTP " + answer.status + "): " + (error || "the orchestrator refused it") + ".", "refused");
      })
      .catch(function (problem) {
        say("Not sent: " + problem + ".", "refused");
      });
  }

  cancelButton.addEventListener("click", function () {
    act("cancel");
  });
  retryButton.addEventListener("click", function () {
    act("retry");
  });
  updateButtons();
  schedule(1000);
})();
