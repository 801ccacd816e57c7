// The live page: copies each `snapshot` event of the page's stream into the
// elements marked data-live, and rebuilds the queue table.
(function () {
  var marker = document.querySelector("[data-live-stream]");
  if (!marker || !window.EventSource) return;
  var source = new EventSource(marker.getAttribute("data-live-stream"));
  source.addEventListener("snapshot", function (message) {
    var view = JSON.parse(message.data);
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var value = view[el.getAttribute("data-live")];
      if (value !== undefined) el.textContent = value;
    });
    var body = document.querySelector("[data-live-queues]");
    if (!body) return;
    body.replaceChildren.apply(body, view.queues.map(function (queue) {
      var row = document.createElement("tr");
      ["queue", "waiting", "active", "wrapping_up", "longest_wait"].forEach(function (key) {
        var cell = document.createElement("td");
        cell.textContent = queue[key];
        row.appendChild(cell);
      });
      return row;
    }));
  });
})();
