// sftdata review: keyboard navigation. Served as a file (the page's CSP forbids inline script); reads the page's
// own links, never data.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.row"));
  var at = -1;
  function select(i) {
    if (!rows.length) return;
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, j) { r.classList.toggle("selected", j === at); });
    rows[at].scrollIntoView({ block: "nearest" });
  }
  function follow(id) {
    var link = document.getElementById(id);
    if (link) window.location.href = link.href;
  }
  if (window.location.hash) {  // back from a row: that row is the selected one, so j / k go on from it
    var back = document.getElementById(window.location.hash.slice(1));
    if (back) select(rows.indexOf(back));
  }
  rows.forEach(function (r, j) {
    r.addEventListener("click", function (e) {
      if (e.target.tagName !== "A") window.location.href = r.getAttribute("data-href");
    });
  });
  document.addEventListener("keydown", function (e) {
    var t = e.target.tagName;
    if (t === "INPUT" || t === "TEXTAREA" || t === "SELECT" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (rows.length) {
      if (e.key === "j") { select(at + 1); e.preventDefault(); return; }
      if (e.key === "k") { select(at - 1); e.preventDefault(); return; }
      if (e.key === "Enter" && at >= 0) { window.location.href = rows[at].getAttribute("data-href"); return; }
      if (e.key === "n") { follow("next-page"); return; }
      if (e.key === "p") { follow("prev-page"); return; }
    } else {
      if (e.key === "j") { follow("next"); return; }
      if (e.key === "k") { follow("prev"); return; }
      if (e.key === "u") { follow("back"); return; }
    }
    if (e.key === "/") {
      var box = document.getElementById("search");
      if (box) { box.focus(); e.preventDefault(); }
    }
  });
})();
