/* Filter, sort and expand the divergence groups; sort tables by a header click; open the
   groups around a linked case. Without this script the page reads the same (the tools stay hidden). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var $ = function (id) { return document.getElementById(id); };
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };
  var groups = Array.prototype.slice.call(document.querySelectorAll("details.grp"));
  groups.forEach(function (g) {
    g.head = g.querySelector("summary").textContent.toLowerCase();
    g.items = Array.prototype.map.call(g.querySelectorAll("li.item"), function (li) {
      var text = "";  // the case's own text, not its reproducer's
      each(li.children, function (c) { if (!c.classList.contains("repro")) text += " " + c.textContent; });
      return { li: li, text: text.toLowerCase() };
    });
  });

  function filter() {
    var words = $("f-text").value.toLowerCase().split(/\s+/).filter(Boolean);
    var fw = $("f-fw").value, verdict = $("f-verdict").value, shownGroups = 0;
    groups.forEach(function (g) {
      var shown = 0;
      g.items.forEach(function (it) {
        var hit = words.every(function (w) { return g.head.indexOf(w) >= 0 || it.text.indexOf(w) >= 0; });
        it.li.hidden = !hit;
        if (hit) shown++;
      });
      g.hidden = !shown || (fw && g.dataset.fw !== fw) || (verdict && g.dataset.verdict !== verdict);
      if (!g.hidden) shownGroups++;
    });
    each(document.querySelectorAll("div.groups"), function (box) {  // a heading with nothing under it goes too
      var heading = box.previousElementSibling;
      heading.hidden = box.hidden = !box.querySelector("details.grp:not([hidden])");
    });
    $("f-status").textContent = shownGroups + " of " + groups.length + " groups";
  }

  function sortGroups(key) {
    each(document.querySelectorAll("div.groups"), function (box) {
      var list = Array.prototype.slice.call(box.children);
      list.sort(function (a, b) {
        if (key === "n") return b.dataset.n - a.dataset.n;
        var x = a.dataset[key], y = b.dataset[key];
        return x < y ? -1 : x > y ? 1 : b.dataset.n - a.dataset.n;
      });
      list.forEach(function (g) { box.appendChild(g); });
    });
  }

  function sortTable(table, column) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var down = table.dataset.column === String(column) && table.dataset.down !== "1";
    var value = function (row) {
      var text = row.cells[column].textContent.trim(), n = parseFloat(text.replace(/,/g, ""));
      return isNaN(n) ? text.toLowerCase() : n;
    };
    rows.sort(function (a, b) {
      var x = value(a), y = value(b), c = x < y ? -1 : x > y ? 1 : 0;
      return down ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.dataset.column = column;
    table.dataset.down = down ? "1" : "0";
  }

  function reveal() {  // a link to a case inside closed (or filtered-out) groups opens them
    var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (!target) return;
    for (var e = target; e; e = e.parentElement) {
      if (e.hidden) { $("f-text").value = ""; $("f-fw").value = ""; $("f-verdict").value = ""; filter(); }
      if (e.tagName === "DETAILS") e.open = true;
    }
    target.scrollIntoView();
  }

  if ($("f-text")) {
    $("f-text").addEventListener("input", filter);
    $("f-fw").addEventListener("change", filter);
    $("f-verdict").addEventListener("change", filter);
    each(document.querySelectorAll(".tools [data-sort]"), function (b) {
      b.addEventListener("click", function () { sortGroups(b.dataset.sort); });
    });
    $("f-open").addEventListener("click", function () { groups.forEach(function (g) { if (!g.hidden) g.open = true; }); });
    $("f-close").addEventListener("click", function () { groups.forEach(function (g) { g.open = false; }); });
    $("f-status").textContent = groups.length + " groups";
  }
  each(document.querySelectorAll("table.sortable"), function (table) {
    table.classList.add("js-sort");
    each(table.tHead.rows[0].cells, function (th, i) {
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortTable(table, i); });
    });
  });
  window.addEventListener("hashchange", reveal);
  reveal();
})();
