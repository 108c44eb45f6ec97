// credvault console: enhancement only. Every flow works without this file.
(function () {
  "use strict";
  // Copy buttons: shown only when the clipboard API is there.
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    var field = document.getElementById(btn.getAttribute("data-copy"));
    var status = document.getElementById("copied");
    if (!field) { return; }
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var done = function () { if (status) { status.textContent = "Copied to the clipboard."; } };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(field.value).then(done, function () { field.select(); });
      } else {
        field.select();
        document.execCommand("copy");
        done();
      }
    });
  });
  // Select the whole value on focus, for copying by hand.
  document.querySelectorAll("input[readonly], textarea[readonly]").forEach(function (f) {
    f.addEventListener("focus", function () { f.select(); });
  });
  // A page that shows a secret once replaces its address with the key's
  // own page, so that reloading shows only prefix…last4 and never posts
  // the form again.
  var reveal = document.querySelector("[data-canonical]");
  if (reveal && window.history && history.replaceState) {
    history.replaceState(null, "", reveal.getAttribute("data-canonical"));
  }
  // Buttons with data-confirm ask once more (without JavaScript the
  // server's own confirmation pages do).
  document.querySelectorAll("button[data-confirm]").forEach(function (btn) {
    btn.form.addEventListener("submit", function (e) {
      if (!window.confirm(btn.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
})();
