// The live pages: copies each `snapshot` event of the page's stream into the
// elements marked data-live, rebuilds the queue table, and rebuilds every
// table body marked data-live-rows from the event's list of that name
// (columns in data-columns, the one in data-link linking to the row's
// href). Text only: nothing from the stream is parsed as HTML.
(function () {
  var marker = document.querySelector("[data-live-stream]");
  if (!marker || !window.EventSource) return;
  function rebuild(body, items) {
    var columns = body.getAttribute("data-columns").split(",");
    var link = body.getAttribute("data-link");
    if (items.length === 0) {
      var row = document.createElement("tr");
      var cell = document.createElement("td");
      cell.colSpan = columns.length;
      cell.className = "muted";
      cell.textContent = body.getAttribute("data-empty") || "";
      row.appendChild(cell);
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren.apply(body, items.map(function (item) {
      var row = document.createElement("tr");
      if (item.band_code) row.setAttribute("data-band", item.band_code);
      columns.forEach(function (key) {
        var cell = document.createElement("td");
        if (key === link && item.href) {
          var a = document.createElement("a");
          a.href = item.href;
          a.textContent = item[key];
          cell.appendChild(a);
        } else {
          cell.textContent = item[key];
        }
        row.appendChild(cell);
      });
      return row;
    }));
  }
  var source = new EventSource(marker.getAttribute("data-live-stream"));
  source.addEventListener("snapshot", function (message) {
    var view = JSON.parse(message.data);
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var value = view[el.getAttribute("data-live")];
      if (value !== undefined) el.textContent = value;
    });
    document.querySelectorAll("[data-live-rows]").forEach(function (body) {
      var items = view[body.getAttribute("data-live-rows")];
      if (Array.isArray(items)) rebuild(body, items);
    });
    var body = document.querySelector("[data-live-queues]");
    if (!body || !view.queues) return;
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
