// New-alert count without a reload: ask the server every few seconds how many alerts in this
// person's inbox appeared since the page was loaded.
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var badge = document.getElementById("new-count");
  var since = live.getAttribute("data-since");
  var every = Math.max(1, parseInt(live.getAttribute("data-poll"), 10) || 20) * 1000;
  var title = document.title;
  function tick() {
    fetch(live.getAttribute("data-url") + "?since=" + encodeURIComponent(since), {
      credentials: "same-origin", cache: "no-store"
    }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
      if (!data) return;
      var n = data["new"] || 0;
      badge.hidden = n === 0;
      badge.textContent = n + " new alert" + (n === 1 ? "" : "s") +
        (data.critical ? " (" + data.critical + " critical)" : "") + " · show";
      badge.className = "new-count" + (data.critical ? " critical" : "");
      document.title = (n ? "(" + n + " new) " : "") + title;
      live.setAttribute("data-last", data.published_at || "");
    }).catch(function () {});
  }
  tick();
  setInterval(tick, every);
})();
