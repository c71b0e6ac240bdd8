// "This helped" in place: the form's button toggles the agent's mark through the JSON API
// (POST marks, DELETE takes it back) and the count changes where it is. Without JavaScript
// the same form posts to the portal and comes back to the same page.
(function () {
  "use strict";
  if (!window.fetch) { return; }
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function update(form, body) {
    var button = form.querySelector(".helped-button");
    var undo = form.querySelector("input[name=undo]");
    form.querySelectorAll(".n").forEach(function (n) { n.textContent = String(body.helped); });
    button.setAttribute("aria-pressed", body.marked ? "true" : "false");
    if (body.marked && !undo) {
      undo = document.createElement("input");
      undo.type = "hidden"; undo.name = "undo"; undo.value = "1";
      form.prepend(undo);
    } else if (!body.marked && undo) {
      undo.remove();
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("helped") || !form.dataset.api) { return; }
    event.preventDefault();
    var button = form.querySelector(".helped-button");
    var pressed = button.getAttribute("aria-pressed") === "true";
    button.disabled = true;
    fetch(form.dataset.api, {
      method: pressed ? "DELETE" : "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (body) {
      update(form, body);
      button.disabled = false;
    }).catch(function () {
      button.disabled = false;
      form.submit();  // the plain form does the same without the API
    });
  });
}());
