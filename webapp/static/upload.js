// Progressive enhancement of the "Add knowledge" form: each file is sent on its own to the JSON API,
// with a progress bar and its own result. Without JavaScript the form posts everything at once.
(function () {
  "use strict";
  var form = document.getElementById("add-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
  var list = document.getElementById("outcomes");
  var label = function (status) { return form.dataset["label" + status.charAt(0).toUpperCase() + status.slice(1)] || status; };

  function row(name) {
    var li = document.createElement("li");
    li.className = "outcome";
    var strong = document.createElement("strong");
    strong.textContent = name;
    var state = document.createElement("span");
    state.textContent = ": " + label("uploading") + " ";
    var bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    li.append(strong, state, bar);
    list.append(li);
    return { li: li, state: state, bar: bar };
  }

  function finish(view, result) {
    view.bar.remove();
    view.li.classList.add(result.status);
    view.state.textContent = ": " + label(result.status) + " ";
    (result.doc_ids || []).slice(0, 5).forEach(function (id) {
      var a = document.createElement("a");
      a.href = "/documents/" + id; a.textContent = "#" + id;
      view.li.append(a, " ");
    });
    if (result.error) {
      var reason = document.createElement("span");
      reason.className = "reason"; reason.textContent = result.error;
      view.li.append(reason);
    }
  }

  // With a queue the file is ingested by a worker: ask how its job is doing until it has finished.
  function follow(jobId, view) {
    var url = form.dataset.jobs.replace("JOB_ID", encodeURIComponent(jobId));
    return new Promise(function (resolve) {
      function poll() {
        var xhr = new XMLHttpRequest();
        xhr.open("GET", url);
        xhr.onload = function () {
          var job = null;
          try { job = JSON.parse(xhr.responseText); } catch (err) { job = null; }
          if (!job || !job.files) { finish(view, { status: "failed", error: "HTTP " + xhr.status }); resolve(); return; }
          if (job.state === "done" || job.state === "failed") {
            job.files.forEach(function (f) { finish(view, { status: f.state, doc_ids: f.doc_ids, error: f.error }); });
            resolve();
            return;
          }
          view.state.textContent = ": " + label(job.state === "running" ? "running" : "queued") + " ";
          setTimeout(poll, 1000);
        };
        xhr.onerror = function () { setTimeout(poll, 3000); };
        xhr.send();
      }
      poll();
    });
  }

  function send(body, view, isJson) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.api);
      var csrf = document.querySelector('meta[name="csrf-token"]');
      if (csrf) { xhr.setRequestHeader("X-CSRFToken", csrf.getAttribute("content")); }
      if (isJson) { xhr.setRequestHeader("Content-Type", "application/json"); }
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { view.bar.value = Math.round(100 * e.loaded / e.total); } };
      xhr.onload = function () {
        var payload = null;
        try { payload = JSON.parse(xhr.responseText); } catch (err) { payload = null; }
        if (payload && payload.job_id && payload.results.some(function (r) { return r.status === "queued"; })) {
          view.state.textContent = ": " + label("queued") + " ";
          follow(payload.job_id, view).then(resolve);
          return;
        }
        if (payload && payload.results) { payload.results.forEach(function (r) { finish(view, r); }); }
        else { finish(view, { status: "failed", error: (payload && payload.error && payload.error.message) || ("HTTP " + xhr.status) }); }
        resolve();
      };
      xhr.onerror = function () { finish(view, { status: "failed", error: "network error" }); resolve(); };
      xhr.send(body);
    });
  }

  form.addEventListener("submit", function (event) {
    var files = Array.prototype.slice.call(form.elements.files.files);
    var text = form.elements.text.value;
    if (!files.length && !text.trim()) { return; }  // let the server say what is missing
    event.preventDefault();
    list.textContent = "";
    document.getElementById("outcomes-heading").classList.remove("visually-hidden");
    var chain = Promise.resolve();
    files.forEach(function (file) {
      chain = chain.then(function () {
        var body = new FormData();
        body.append("files", file, file.name);
        if (form.elements.visibility.value) { body.append("visibility", form.elements.visibility.value); }
        if (form.elements.topics.value.trim()) { body.append("topics", form.elements.topics.value); }
        return send(body, row(file.name), false);
      });
    });
    if (text.trim()) {
      chain = chain.then(function () {
        var tags = form.elements.tags.value.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
        var payload = { text: text, title: form.elements.title.value, tags: tags };
        if (form.elements.lang.value) { payload.lang = form.elements.lang.value; }
        if (form.elements.visibility.value) { payload.visibility = form.elements.visibility.value; }
        return send(JSON.stringify(payload), row(form.elements.title.value || "text"), true);
      });
    }
    chain.then(function () { form.reset(); });
  });
})();
